#!/usr/bin/env bash
# Builds the example image the README's first command imports: busybox-static from Debian as a
# one-layer OCI image, written by umoci (so strata reads an image it did not write), plus an
# oci-archive and a docker-archive of it written by skopeo.
#
#   scripts/make-example-image.sh [DIR]     (default DIR: /var/cache/strata-example)
#
# Prints the import source on stdout: `oci:DIR/busybox:latest`. Rerunning reuses a finished
# image. Needs umoci, skopeo and busybox-static (scripts/setup.sh installs them).
set -euo pipefail

dir=${1:-/var/cache/strata-example}
layout="$dir/busybox"
if [ -f "$layout/index.json" ] && [ -f "$dir/busybox.docker.tar" ]; then
  echo "oci:$layout:latest"
  exit 0
fi
mkdir -p "$dir"
work=$(mktemp -d "$dir/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

umoci init --layout "$work/oci" >&2
umoci new --image "$work/oci:latest" >&2
umoci unpack --image "$work/oci:latest" "$work/bundle" >&2
(
  cd "$work/bundle/rootfs"
  mkdir -p bin etc root tmp proc sys dev
  cp /bin/busybox bin/busybox
  for applet in sh ls cat echo env id ps mount uname sleep; do ln -s busybox "bin/$applet"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > etc/passwd
  printf 'root:x:0:\nnogroup:x:65534:\n' > etc/group
  chmod 0700 root
  chmod 1777 tmp
)
umoci repack --image "$work/oci:latest" "$work/bundle" >&2
umoci config --image "$work/oci:latest" --config.cmd=/bin/sh \
  --config.env=PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  --config.label=org.opencontainers.image.title=strata-example-busybox >&2
umoci gc --layout "$work/oci" >&2
skopeo --insecure-policy copy --quiet "oci:$work/oci:latest" "docker-archive:$work/busybox.docker.tar:localhost/example/busybox:latest" >&2
skopeo --insecure-policy copy --quiet "oci:$work/oci:latest" "oci-archive:$work/busybox.oci.tar:latest" >&2

rm -rf "$layout" "$dir/busybox.docker.tar" "$dir/busybox.oci.tar"
mv "$work/busybox.docker.tar" "$work/busybox.oci.tar" "$dir/"
mv "$work/oci" "$layout"
echo "oci:$layout:latest"
