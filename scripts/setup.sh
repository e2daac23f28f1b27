#!/usr/bin/env bash
# Installs everything strata and its tests need on a fresh Debian 12 machine of this kind:
# Debian packages (runtimes, image tools, FUSE tools, the official OCI schemas), then the npm
# packages and the native addon (npm ci runs node-gyp for native/).
set -euo pipefail
cd "$(dirname "$0")/.."

# build-essential: node-gyp compiles native/ (the addon, strata-hook and the strata front end).
# golang-github-containers-common: /usr/share/containers/seccomp.json, podman's default seccomp
# profile, which strata applies to every container (src/spec/seccomp.ts).
packages=(
  build-essential crun runc podman skopeo umoci buildah busybox-static debootstrap
  golang-github-containers-common
  golang-github-opencontainers-image-spec-dev golang-github-opencontainers-specs-dev
  fuse3 fuse-overlayfs squashfuse squashfs-tools hyperfine zstd util-linux libcap2-bin attr python3
  containerd protobuf-compiler golang-github-containerd-containerd-dev golang-github-containerd-cgroups-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
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

# containerd finds `--runtime io.containerd.strata.v2` as containerd-shim-strata-v2 on its PATH.
shim="$PWD/native/build/Release/containerd-shim-strata-v2"
shim_link=/usr/local/bin/containerd-shim-strata-v2
if [ -x "$shim" ] && { [ ! -e "$shim_link" ] || [ -L "$shim_link" ]; }; then
  ln -sfn "$shim" "$shim_link"
  echo "setup: $shim_link -> $shim"
fi
