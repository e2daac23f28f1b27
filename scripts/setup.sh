#!/usr/bin/env bash
# Installs everything strata and its tests need on a fresh Debian 12 machine of this kind:
# Debian packages (runtimes, image tools, FUSE tools, the official OCI schemas), then the npm
# packages and the native addon (npm ci runs node-gyp for native/).
set -euo pipefail
cd "$(dirname "$0")/.."

# qemu-system-x86, linux-image-cloud-amd64, cpio: the VM guests of `strata run --vm`
# (scripts/build-vm-image.sh); gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, qemu-user-static:
# the arm64 guest agent is cross-built by node-gyp and tested under qemu-aarch64-static.
# qemu-system-arm: arm64 guests (Apple silicon's kind) boot here under qemu-system-aarch64
# (test/vm/arm64.test.ts); their kernel, crun and busybox are Debian's :arm64 packages, downloaded
# (never installed) by scripts/build-vm-image.sh --arch arm64, so apt's lists need arm64 (below).
# build-essential: node-gyp compiles native/ (the addon, strata-hook and the strata front end).
# golang-github-containers-common: /usr/share/containers/seccomp.json, podman's default seccomp
# profile, which strata applies to every container (src/spec/seccomp.ts).
# containerd (with ctr): `strata image import containerd:NAME` asks ctr for an image's digest; the
# containerd tests run a private one. catatonit: the pause image of their CRI pods.
# docker-registry, apache2-utils (htpasswd), openssl: the loopback registry of test/registry/
# (Basic and token auth) and npm run bench:pull.
# bats: podman's own system tests (scripts/podman-system-tests.sh; a fast subset in npm test,
# test/integration/podman-system.test.ts).
packages=(
  build-essential crun runc podman skopeo umoci buildah busybox-static debootstrap
  bats
  golang-github-containers-common
  golang-github-opencontainers-image-spec-dev golang-github-opencontainers-specs-dev
  fuse3 fuse-overlayfs squashfuse squashfs-tools hyperfine zstd util-linux libcap2-bin attr python3
  qemu-system-x86 qemu-user-static gcc-aarch64-linux-gnu libc6-dev-arm64-cross linux-image-cloud-amd64 cpio
  qemu-system-arm
  containerd catatonit
  docker-registry apache2-utils openssl
  containerd protobuf-compiler golang-github-containerd-containerd-dev golang-github-containerd-cgroups-dev
)
update=
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "setup: dpkg --add-architecture arm64 (apt-get download of the arm64 guest's packages)"
  dpkg --add-architecture arm64
  update=1
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
elif [ -n "$update" ]; then
  apt-get update -q
fi

npm ci --no-audit --no-fund
npm run build

# `strata` on PATH is the native front end (native/front/strata.c): `strata run` talks to the warm
# daemon without paying Node's start; every other command it hands to dist/src/cli/main.js.
front="$PWD/native/build/Release/strata"
link=/usr/local/bin/strata
if [ -x "$front" ] && { [ ! -e "$link" ] || [ -L "$link" ]; }; then
  ln -sfn "$front" "$link"
  echo "setup: $link -> $front"
elif [ -e "$link" ] && [ ! -L "$link" ]; then
  echo "setup: $link exists and is not ours; leaving it (the front end is $front)"
fi

# `strata-runtime` on PATH: the runc-compatible CLI for `podman --runtime` and runc's other drivers
# (native/runtime/strata-runtime.c).
rt="$PWD/native/build/Release/strata-runtime"
rt_link=/usr/local/bin/strata-runtime
if [ -x "$rt" ] && { [ ! -e "$rt_link" ] || [ -L "$rt_link" ]; }; then
  ln -sfn "$rt" "$rt_link"
  echo "setup: $rt_link -> $rt"
elif [ -e "$rt_link" ] && [ ! -L "$rt_link" ]; then
  echo "setup: $rt_link exists and is not ours; leaving it (strata-runtime is $rt)"
fi

# containerd finds `--runtime io.containerd.strata.v2` as containerd-shim-strata-v2 on its PATH.
shim="$PWD/native/build/Release/containerd-shim-strata-v2"
shim_link=/usr/local/bin/containerd-shim-strata-v2
if [ -x "$shim" ] && { [ ! -e "$shim_link" ] || [ -L "$shim_link" ]; }; then
  ln -sfn "$shim" "$shim_link"
  echo "setup: $shim_link -> $shim"
fi
