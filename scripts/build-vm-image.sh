#!/usr/bin/env bash
# Builds the guest of `strata run --vm` (docs/architecture.md#vm-guests) from Debian packages only:
#   OUT/vmlinuz        the Debian cloud kernel (linux-image-cloud-amd64, from /boot)
#   OUT/initramfs.img  gzip'd newc cpio: /init = strata-agent (static), busybox-static, crun and
#                      the libraries it links, the kernel modules the agent loads
#                      (/etc/strata/modules, dependency order: virtio-pci, virtio-console, fuse,
#                      virtiofs, overlay)
#   OUT/manifest       what went in (kernel release, agent sha256)
# Usage: scripts/build-vm-image.sh OUT [AGENT] [KERNEL_RELEASE]
#   AGENT default native/build/Release/strata-agent; KERNEL_RELEASE default the newest
#   /boot/vmlinuz-*-cloud-amd64. src/vm/image.ts calls it into a temp dir and renames the result
#   into its cache (/var/cache/strata/vm/<key>), so a finished OUT is always complete.
set -euo pipefail
out=${1:?usage: build-vm-image.sh OUT [AGENT] [KERNEL_RELEASE]}
repo="$(cd "$(dirname "$0")/.." && pwd)"
agent=${2:-$repo/native/build/Release/strata-agent}
release=${3:-}
if [ -z "$release" ]; then
  kernel=$(ls -1 /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$kernel" ] || { echo "build-vm-image: no /boot/vmlinuz-*-cloud-amd64: apt-get install linux-image-cloud-amd64" >&2; exit 3; }
  release=${kernel#/boot/vmlinuz-}
fi
kernel=/boot/vmlinuz-$release
moddir=/lib/modules/$release
[ -r "$kernel" ] || { echo "build-vm-image: $kernel is missing: apt-get install linux-image-cloud-amd64" >&2; exit 3; }
[ -d "$moddir" ] || { echo "build-vm-image: $moddir is missing: apt-get install linux-image-$release" >&2; exit 3; }
[ -x "$agent" ] || { echo "build-vm-image: $agent is not built: npm install" >&2; exit 3; }
command -v cpio >/dev/null || { echo "build-vm-image: cpio is missing: apt-get install cpio" >&2; exit 3; }
[ -x /bin/busybox ] || { echo "build-vm-image: /bin/busybox is missing: apt-get install busybox-static" >&2; exit 3; }

mkdir -p "$out"
root=$(mktemp -d "$out/.root.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,etc/strata,proc,sys,dev,run,tmp,lib/modules,lib64,root}
install -m 0755 "$agent" "$root/init"
install -m 0755 /bin/busybox "$root/bin/busybox"
for a in sh ls cat echo mount umount ps kill sleep mkdir dmesg poweroff true false env id; do
  ln -s busybox "$root/bin/$a"
done

# crun with the shared libraries it links (Debian builds it dynamically).
if crun=$(command -v crun); then
  install -m 0755 "$crun" "$root/usr/bin/crun"
  for lib in $(ldd "$crun" | grep -o '/[^ ]*' | sort -u); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
fi

# The modules and their dependencies, in load order (modules.dep lists a module's dependencies
# deepest last).
want=(virtio_pci virtio_console fuse virtiofs overlay)
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
cp "$kernel" "$out/vmlinuz"
{
  echo "kernel $release"
  echo "agent $(sha256sum "$agent" | cut -d' ' -f1)"
  echo "modules ${order[*]}"
} >"$out/manifest"
echo "build-vm-image: $out ($(du -sh "$out/initramfs.img" | cut -f1) initramfs, kernel $release)"
