#!/usr/bin/env bash
# Builds the guest of `strata run --vm` (docs/architecture.md#vm-guests) from Debian packages only:
#   OUT/vmlinuz        the Debian cloud kernel. amd64: linux-image-cloud-amd64 from /boot (a
#                      bzImage). arm64: linux-image-cloud-arm64 downloaded from Debian's archive
#                      (apt-get download of :arm64 packages; scripts/setup.sh adds the architecture)
#                      and stored as an uncompressed arm64 `Image`, the one format both qemu's
#                      -kernel and Virtualization.framework's VZLinuxBootLoader accept (a gzip'd
#                      Image or an EFI zboot image is unpacked here).
#   OUT/initramfs.img  gzip'd newc cpio: /init = strata-agent (static, built for ARCH), busybox-static,
#                      crun and the libraries it links, the kernel modules the agent loads
#                      (/etc/strata/modules, dependency order: virtio-pci, virtio-console, fuse,
#                      virtiofs, overlay, virtio vsock for vfkit)
#   OUT/manifest       what went in (arch, kernel release, agent sha256)
# Usage: scripts/build-vm-image.sh [--arch amd64|arm64] OUT [AGENT] [KERNEL_RELEASE]
#   ARCH default amd64. AGENT default native/build/Release/strata-agent (amd64) or
#   strata-agent-arm64 (arm64). KERNEL_RELEASE default the newest /boot/vmlinuz-*-cloud-amd64
#   (amd64) or the release linux-image-cloud-arm64:arm64 depends on in apt's lists (arm64).
#   src/vm/image.ts calls it into a temp dir and renames the result into its cache
#   (/var/cache/strata/vm/<key>), so a finished OUT is always complete.
set -euo pipefail
arch=amd64
if [ "${1:-}" = --arch ]; then
  arch=${2:?--arch needs amd64 or arm64}
  shift 2
fi
case "$arch" in
  amd64 | arm64) ;;
  *) echo "build-vm-image: unknown arch $arch (amd64 or arm64)" >&2; exit 2 ;;
esac
out=${1:?usage: build-vm-image.sh [--arch amd64|arm64] OUT [AGENT] [KERNEL_RELEASE]}
repo="$(cd "$(dirname "$0")/.." && pwd)"
if [ "$arch" = amd64 ]; then
  agent=${2:-$repo/native/build/Release/strata-agent}
else
  agent=${2:-$repo/native/build/Release/strata-agent-$arch}
fi
release=${3:-}
command -v cpio >/dev/null || { echo "build-vm-image: cpio is missing: apt-get install cpio" >&2; exit 3; }
[ -x "$agent" ] || { echo "build-vm-image: $agent is not built: npm install (arm64: apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross first)" >&2; exit 3; }

mkdir -p "$out"
root=$(mktemp -d "$out/.root.XXXXXX")
debs=$(mktemp -d "$out/.debs.XXXXXX")
trap 'rm -rf "$root" "$debs"' EXIT

if [ "$arch" = amd64 ]; then
  # The host's own packages (this script runs on amd64 Debian).
  if [ -z "$release" ]; then
    kernel=$(ls -1 /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$kernel" ] || { echo "build-vm-image: no /boot/vmlinuz-*-cloud-amd64: apt-get install linux-image-cloud-amd64" >&2; exit 3; }
    release=${kernel#/boot/vmlinuz-}
  fi
  kernel=/boot/vmlinuz-$release
  moddir=/lib/modules/$release
  busybox=/bin/busybox
  crun=$(command -v crun || true)
  [ -r "$kernel" ] || { echo "build-vm-image: $kernel is missing: apt-get install linux-image-cloud-amd64" >&2; exit 3; }
  [ -d "$moddir" ] || { echo "build-vm-image: $moddir is missing: apt-get install linux-image-$release" >&2; exit 3; }
  [ -x "$busybox" ] || { echo "build-vm-image: /bin/busybox is missing: apt-get install busybox-static" >&2; exit 3; }
else
  # Debian's archive: the :arm64 packages, downloaded (not installed) and unpacked here.
  nomulti="the $arch packages are not in apt's lists: dpkg --add-architecture $arch && apt-get update (scripts/setup.sh)"
  if [ -z "$release" ]; then
    release=$(apt-cache depends "linux-image-cloud-$arch:$arch" 2>/dev/null |
      sed -n "s/^ *Depends: linux-image-\(.*-cloud-$arch\):$arch\$/\1/p" | sort -V | tail -n 1)
    [ -n "$release" ] || { echo "build-vm-image: $nomulti" >&2; exit 3; }
  fi
  # crun and the packages of the libraries it links (the closure of its Depends; not libelogind0,
  # the alternative to libsystemd0 that ships a libsystemd.so.0 of its own).
  crun_pkgs=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances "crun:$arch" 2>/dev/null | grep -E "^[a-z0-9][^ ]*:$arch\$" |
    grep -v '^libelogind0:' | sort -u)
  [ -n "$crun_pkgs" ] || { echo "build-vm-image: $nomulti" >&2; exit 3; }
  # shellcheck disable=SC2086 # word splitting of the package list is meant
  (cd "$debs" && apt-get download -q -o APT::Sandbox::User=root \
    "linux-image-$release:$arch" "busybox-static:$arch" $crun_pkgs >/dev/null) ||
    { echo "build-vm-image: apt-get download of the $arch packages failed" >&2; exit 3; }
  mkdir "$debs/x"
  for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$debs/x"; done
  kernel=$debs/x/boot/vmlinuz-$release
  moddir=$debs/x/lib/modules/$release
  busybox=$debs/x/bin/busybox
  crun=$debs/x/usr/bin/crun
  [ -r "$kernel" ] && [ -d "$moddir" ] || { echo "build-vm-image: linux-image-$release:$arch has no $kernel" >&2; exit 3; }
  # modules.dep is written by depmod when a kernel is installed, not shipped: write it here.
  depmod -b "$debs/x" "$release"
fi

mkdir -p "$root"/{bin,sbin,usr/bin,etc/strata,proc,sys,dev,run,tmp,lib/modules,lib64,root}
install -m 0755 "$agent" "$root/init"
install -m 0755 "$busybox" "$root/bin/busybox"
for a in sh ls cat echo mount umount ps kill sleep mkdir dmesg poweroff true false env id; do
  ln -s busybox "$root/bin/$a"
done

# crun with the shared libraries it links (Debian builds it dynamically): ldd on the host's own;
# for another arch, the DT_NEEDED closure (readelf reads any ELF) found in the unpacked packages,
# and the program interpreter.
if [ "$arch" = amd64 ]; then
  if [ -n "$crun" ]; then
    install -m 0755 "$crun" "$root/usr/bin/crun"
    for lib in $(ldd "$crun" | grep -o '/[^ ]*' | sort -u); do
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    done
  fi
else
  install -m 0755 "$crun" "$root/usr/bin/crun"
  interp=$(readelf -lW "$crun" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
  mkdir -p "$root$(dirname "$interp")"
  cp -L "$debs/x$interp" "$root$interp"
  todo=("$crun")
  declare -A have=()
  while [ ${#todo[@]} -gt 0 ]; do
    f=${todo[0]}
    todo=("${todo[@]:1}")
    for so in $(readelf -dW "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
      [ -n "${have[$so]:-}" ] && continue
      have[$so]=1
      found=
      for dir in lib/aarch64-linux-gnu usr/lib/aarch64-linux-gnu lib usr/lib; do
        if [ -e "$debs/x/$dir/$so" ]; then found=$dir/$so; break; fi
      done
      [ -n "$found" ] || { echo "build-vm-image: $so (needed by $(basename "$f")) is in none of the $arch packages" >&2; exit 3; }
      mkdir -p "$root/$(dirname "$found")"
      cp -L "$debs/x/$found" "$root/$found"
      todo+=("$debs/x/$found")
    done
  done
fi

# The modules and their dependencies, in load order (modules.dep lists a module's dependencies
# deepest last).
# vmw_vsock_virtio_transport: vfkit reaches the agent over virtio-vsock (the agent listens there
# only when the VM has a virtio vsock device).
want=(virtio_pci virtio_console fuse virtiofs overlay vmw_vsock_virtio_transport)
declare -A seen=()
order=()
add() {
  local rel=$1 deps
  [ -n "${seen[$rel]:-}" ] && return
  seen[$rel]=1
  deps=$(grep -E "^$rel:" "$moddir/modules.dep" | cut -d: -f2)
  local d rev=()
  for d in $deps; do rev=("$d" "${rev[@]}"); done
  for d in "${rev[@]}"; do add "$d"; done
  order+=("$rel")
}
for m in "${want[@]}"; do
  rel=$(grep -oE "^[^:]*/$m\.ko(\.xz|\.zst)?:" "$moddir/modules.dep" | head -n 1 | tr -d :)
  if [ -z "$rel" ]; then
    # built in, or absent: the agent reports what it cannot find
    grep -qE "/$m\.ko" "$moddir/modules.builtin" 2>/dev/null || echo "build-vm-image: module $m not found in $moddir" >&2
    continue
  fi
  add "$rel"
done
: >"$root/etc/strata/modules"
for rel in "${order[@]}"; do
  dest="$root/lib/modules/$(basename "$rel")"
  case "$rel" in
    *.xz) xz -dc "$moddir/$rel" >"${dest%.xz}"; dest=${dest%.xz} ;;
    *.zst) zstd -qdc "$moddir/$rel" >"${dest%.zst}"; dest=${dest%.zst} ;;
    *) cp "$moddir/$rel" "$dest" ;;
  esac
  echo "/lib/modules/$(basename "$dest")" >>"$root/etc/strata/modules"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"

(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet --reproducible) |
  gzip -1 -n >"$out/initramfs.img.tmp"
mv "$out/initramfs.img.tmp" "$out/initramfs.img"
if [ "$arch" = amd64 ]; then
  cp "$kernel" "$out/vmlinuz"
else
  # arm64: an uncompressed Image (magic "ARMd" at 0x38). Debian's bookworm vmlinuz is one; a
  # gzip'd Image or an EFI zboot image ("zimg" at 4: payload offset and size at 8 and 12, the
  # compression's name at 24) is unpacked.
  magic() { od -An -c -j "$2" -N "$3" "$1" | tr -d ' \n'; }
  if [ "$(magic "$kernel" 56 4)" = ARMd ]; then
    cp "$kernel" "$out/vmlinuz"
  elif [ "$(od -An -tx1 -N2 "$kernel" | tr -d ' \n')" = 1f8b ]; then
    gzip -dc "$kernel" >"$out/vmlinuz"
  elif [ "$(magic "$kernel" 4 4)" = zimg ]; then
    off=$(od -An -tu4 -j 8 -N 4 "$kernel" | tr -d ' ')
    size=$(od -An -tu4 -j 12 -N 4 "$kernel" | tr -d ' ')
    comp=$(od -An -c -j 24 -N 8 "$kernel" | tr -d ' \n' | sed 's/\\0//g')
    case "$comp" in
      gzip) dec='gzip -dc' ;; zstd) dec='zstd -qdc' ;; xz) dec='xz -dc' ;; lzma) dec='xz --format=lzma -dc' ;;
      *) echo "build-vm-image: $kernel is an EFI zboot image compressed with '$comp': not unpacked" >&2; exit 3 ;;
    esac
    tail -c +$((off + 1)) "$kernel" | head -c "$size" | $dec >"$out/vmlinuz"
  else
    echo "build-vm-image: $kernel is not an arm64 Image, a gzip'd one or an EFI zboot image" >&2
    exit 3
  fi
  [ "$(magic "$out/vmlinuz" 56 4)" = ARMd ] || { echo "build-vm-image: unpacking $kernel gave no arm64 Image" >&2; exit 3; }
fi
{
  echo "arch $arch"
  echo "kernel $release"
  echo "agent $(sha256sum "$agent" | cut -d' ' -f1)"
  echo "modules ${order[*]}"
} >"$out/manifest"
echo "build-vm-image: $out ($(du -sh "$out/initramfs.img" | cut -f1) initramfs, $arch kernel $release)"
