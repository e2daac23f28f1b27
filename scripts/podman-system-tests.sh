#!/usr/bin/env bash
# podman's own system tests (bats, from Debian's libpod 4.3.1 source package) with the plain
# runtime (the baseline: runc; crun cannot run podman's containers on this host, see
# docs/architecture.md#host-facts) and with strata-runtime serving the test image from a private
# strata store. Prints per-file pass/fail/skip counts for both and exits 1 if strata-runtime fails
# a test the baseline passes.
#
#   scripts/podman-system-tests.sh [FILE...]     (default: 030-run 035-logs 050-stop 055-rm
#                                                 075-exec 080-pause 130-kill)
#   STRATA_BATS_FILTER=REGEX   only tests whose name matches (bats --filter): the fast subset
#   STRATA_BATS_BASELINE=0     skip the runc baseline; then any test strata-runtime fails counts
#                              (for a subset known to pass here: test/integration/podman-system.test.ts)
#   PODMAN_SYSTEM_TESTS=DIR    use this test/system directory instead of fetching the source
#
# The source comes from Debian's archive through a private deb-src list (the system's apt
# configuration is untouched) and is cached under $STRATA_TEST_CACHE (default
# /var/cache/strata-test). The tests expect quay.io/libpod/testimage:20220615 locally; the
# stand-in built here is busybox-static with the files the tests look for (/home/podman/
# testimage-id, /home/podman/pause, WORKDIR /home/podman, the same CMD and labels).
# Everything else lives in a temp dir removed at the end: podman's --root/--runroot, the strata
# store, daemon and socket.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${STRATA_TEST_CACHE:-/var/cache/strata-test}
version=4.3.1+ds1
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(030-run 035-logs 050-stop 055-rm 075-exec 080-pause 130-kill)
filter=${STRATA_BATS_FILTER:-}
baseline=${STRATA_BATS_BASELINE:-1}

runtime_exe=$repo/native/build/Release/strata-runtime
[ -e "$runtime_exe" ] || { echo "missing $runtime_exe: run npm install" >&2; exit 2; }
# The strata CLI: compiled if built, else from sources through tsx (as the tests run it).
if [ -e "$repo/dist/src/cli/main.js" ]; then cli=(dist/src/cli/main.js); else cli=(--import tsx src/cli/main.ts); fi
strata() { (cd "$repo" && exec node "${cli[@]}" "$@"); }

# ---- the tests ----
tests=${PODMAN_SYSTEM_TESTS:-$cache/libpod-$version/test/system}
if [ ! -f "$tests/helpers.bash" ]; then
  mkdir -p "$cache"
  (
    flock 9
    if [ ! -f "$tests/helpers.bash" ]; then
      work=$(mktemp -d "$cache/libpod.XXXXXX")
      trap 'rm -rf "$work"' EXIT
      mkdir -p "$work/parts" "$work/lists/partial" "$work/cache" "$work/src"
      printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        >"$work/parts/src.sources"
      opts=(-o APT::Sandbox::User=root -o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/parts"
        -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache")
      apt-get "${opts[@]}" update >/dev/null
      (cd "$work/src" && apt-get "${opts[@]}" source --download-only "libpod=4.3.1+ds1-8+deb12u1" >/dev/null 2>&1 ||
        apt-get "${opts[@]}" source --download-only libpod >/dev/null 2>&1)
      tar -C "$work/src" -xJf "$work/src/libpod_$version.orig.tar.xz" --wildcards '*/test/system/*'
      rm -rf "$cache/libpod-$version"
      mv "$work/src/libpod-$version" "$cache/libpod-$version"
    fi
  ) 9>"$cache/libpod.lock"
fi

tmp=$(mktemp -d /tmp/strata-podman-bats.XXXXXX)
daemon_pid=
cleanup() {
  for mode in runc strata; do
    [ -d "$tmp/$mode" ] || continue
    CONTAINERS_CONF=$tmp/$mode.conf podman --root "$tmp/$mode/root" --runroot "$tmp/$mode/run" \
      system reset --force >/dev/null 2>&1 || true
  done
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
  grep -o " $tmp[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# One containers.conf per mode: this host's ulimits, and podman's per-boot state and container
# locks in the mode's own directory. By default every podman on the machine shares /run/libpod
# and the /dev/shm/libpod_lock table, whatever its --root: another podman's `system reset` or lock
# numbering then breaks these tests ("acquiring lock N ... file exists", "/run/libpod/alive").
for mode in runc strata; do
  mkdir -p "$tmp/$mode"
  printf '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n[engine]\ntmp_dir = "%s"\nlock_type = "file"\n' \
    "$tmp/$mode/tmp" >"$tmp/$mode.conf"
done

# ---- the stand-in test image ----
rootfs=$tmp/image-rootfs
mkdir -p "$rootfs"/{bin,etc,tmp,home/podman,root,proc,sys,dev,var/tmp,run}
chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $("$rootfs/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' >"$rootfs/etc/group"
echo 20220615 >"$rootfs/home/podman/testimage-id"
touch --date=@1600000000 "$rootfs/home/podman/testimage-id"
printf '#!/bin/sh\necho Confirmed: testimage pause invoked as $0\nwhile :; do\n    sleep 0.1\ndone\n' >"$rootfs/home/podman/pause"
chmod 755 "$rootfs/home/podman/pause"
tar -C "$rootfs" -cf "$tmp/image.tar" .

image=quay.io/libpod/testimage:20220615
setup_podman() { # MODE RUNTIME
  local p=(podman --root "$tmp/$1/root" --runroot "$tmp/$1/run" --runtime "$2")
  CONTAINERS_CONF=$tmp/$1.conf "${p[@]}" import -q \
    --change 'WORKDIR /home/podman' \
    --change 'CMD ["/bin/echo", "This container is intended for podman CI testing"]' \
    --change 'LABEL created_by=test/system/build-testimage' \
    --change 'LABEL created_at=2022-06-15T00:00:00Z' \
    "$tmp/image.tar" "$image" >/dev/null
  echo "${p[*]}"
}

# ---- strata: a private store and daemon, the image imported from podman's save ----
export STRATA_ROOT=$tmp/strata/store
socket=$tmp/strata/strata.sock
(cd "$repo" && exec node "${cli[@]}" daemon --socket "$socket" --log-file "$tmp/strata/daemon.log" >/dev/null 2>&1) &
daemon_pid=$!
cat >"$tmp/strata/strata-runtime" <<EOF
#!/bin/sh
export STRATA_SOCKET=$socket STRATA_RUNTIME_CONF=$tmp/strata/runtime.conf
exec $runtime_exe "\$@"
EOF
chmod 755 "$tmp/strata/strata-runtime"
echo "log = $tmp/strata/notes.log" >"$tmp/strata/runtime.conf"

PODMAN_RUNC=
[ "$baseline" = 0 ] || PODMAN_RUNC=$(setup_podman runc "$(command -v runc || echo /usr/sbin/runc)")
PODMAN_STRATA=$(setup_podman strata "$tmp/strata/strata-runtime")
CONTAINERS_CONF=$tmp/strata.conf podman --root "$tmp/strata/root" --runroot "$tmp/strata/run" save -q -o "$tmp/image.docker.tar" "$image"
strata image import "docker-archive:$tmp/image.docker.tar" --name testimage >/dev/null
for _ in $(seq 50); do [ -S "$socket" ] && break; sleep 0.1; done

# ---- run ----
declare -A pass fail skip
run_mode() { # MODE PODMAN-CMD FILE
  local out=$tmp/$1-$3.tap
  local args=(--tap)
  [ -n "$filter" ] && args+=(--filter "$filter")
  CONTAINERS_CONF=$tmp/$1.conf PODMAN="$2" timeout 1800 bats "${args[@]}" "$tests/$3.bats" >"$out" 2>&1 || true
  pass[$1-$3]=$(grep '^ok ' "$out" | grep -vc '# skip' || true)
  skip[$1-$3]=$(grep -c '^ok .*# skip' "$out" || true)
  fail[$1-$3]=$(grep -c '^not ok ' "$out" || true)
}

regressions=0
printf '%-12s %-28s %-28s\n' file "baseline runc (ok/fail/skip)" "strata-runtime (ok/fail/skip)"
for f in "${files[@]}"; do
  f=${f%.bats}
  if [ "$baseline" = 0 ]; then : >"$tmp/runc-$f.tap"; else run_mode runc "$PODMAN_RUNC" "$f"; fi
  run_mode strata "$PODMAN_STRATA" "$f"
  printf '%-12s %-28s %-28s\n' "$f" "${pass[runc-$f]:--}/${fail[runc-$f]:--}/${skip[runc-$f]:--}" \
    "${pass[strata-$f]}/${fail[strata-$f]}/${skip[strata-$f]}"
  # A test the baseline passes (any test, without a baseline) and strata-runtime fails.
  while read -r name; do
    [ -n "$name" ] || continue
    if [ "$baseline" = 0 ] || grep -qxF "ok $name" <(sed -E 's/^ok [0-9]+ /ok /' "$tmp/runc-$f.tap"); then
      echo "  REGRESSION in $f: $name"
      regressions=$((regressions + 1))
    fi
  done < <(sed -nE 's/^not ok [0-9]+ (.*)$/\1/p' "$tmp/strata-$f.tap")
  grep -h '^not ok ' "$tmp/runc-$f.tap" | sed "s/^/  baseline fails: /" || true
done
served=$(grep -c 'serving image' "$tmp/strata/daemon.log" || true)
echo "strata-runtime: $served containers served from the strata store"
if [ "$served" -eq 0 ]; then
  echo "strata-runtime served nothing: the test image did not reach strata's store" >&2
  exit 1
fi
if [ "$regressions" -gt 0 ]; then
  echo "$regressions test(s) fail with strata-runtime that pass with the baseline" >&2
  exit 1
fi
echo "strata-runtime fails no test the baseline passes"
