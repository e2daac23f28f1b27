#!/bin/sh
# The arm64 guest agent (Apple silicon guests), cross-built by binding.gyp when Debian's
# gcc-aarch64-linux-gnu is installed; tested under qemu-aarch64-static (test/vm/agent.test.ts).
# Usage (from native/): sh vm/cross-build-arm64.sh OUT
out=$1
if ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1; then
  echo "strata-agent-arm64 skipped: no aarch64-linux-gnu-gcc (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross)" >&2
  exit 0
fi
exec aarch64-linux-gnu-gcc -std=gnu11 -Wall -Wextra -O2 -static -Igenerated -o "$out" vm/strata-agent.c vm/agent-fast-path.c
