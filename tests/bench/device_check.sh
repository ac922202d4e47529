#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# tools/bench/device-check as a lent machine without DPDK runs it: the
# programs packed by device-check --pack, the system's DPDK plugin folder hidden
# (a private mount namespace), --quick. Checks that both parts ran and
# that their results came back in results.tgz.
# Usage: device_check.sh BUILD_ROOT SOURCE_ROOT
set -u
build=$1
src=$2

if [ "$(id -u)" != 0 ]; then
	echo "skipped: needs root (DPDK, memif sockets, a mount namespace)"
	exit 77
fi
command -v dpdk-testpmd >/dev/null || { echo "skipped: no dpdk-testpmd"; exit 77; }
unshare -m true 2>/dev/null || { echo "skipped: no private mount namespace (unshare -m)"; exit 77; }
out=$(mktemp -d /tmp/kite-device-check.XXXXXX) || exit 1
pack=$build/device-check-pack
trap 'rm -rf "$out" "$pack"' EXIT
trap 'exit 1' INT TERM
# The pack may not sit under a world-writable folder (EAL refuses its plugins
# there): device-check --pack refuses one with status 2 (a clone under /tmp),
# and then the pack goes to a folder of root's own.
"$src/tools/bench/device-check" --pack "$pack" --build "$build"
rc=$?
if [ $rc = 2 ]; then
	pack=$(mktemp -d /var/lib/kite-device-check.XXXXXX) || exit 1
	"$src/tools/bench/device-check" --pack "$pack" --build "$build"
	rc=$?
fi
[ $rc = 0 ] || exit 1
plugins=$(pkg-config --variable=pmdsdir libdpdk 2>/dev/null)
hide=$(dirname "${plugins:-/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0}")
mkdir -p "$out/empty" "$out/result"
# Everything the packed programs load comes from the pack (the host's C library
# version need not match there).
for p in "$pack"/bin/* "$pack"/pmd/*.so; do
	"$pack/lib/ld.so" --library-path "$pack/lib" --list "$p" | awk -v pack="$pack/lib/" '
		/=>/ && $3 ~ /^\// && index($3, pack) != 1 { print "outside the pack: " $0; bad = 1 }
		/not found/ { print "missing: " $0; bad = 1 }
		END { exit bad }' || { echo "$p: not self-contained"; exit 1; }
done
unshare -m sh -c "mount --bind '$out/empty' '$hide' && '$src/tools/bench/device-check' --quick '$pack' '$out/result'"
rc=$?
cat "$out/result/device-check.log"
[ $rc = 0 ] || exit 1
mkdir -p "$out/x" && tar -C "$out/x" -xzf "$out/result/results.tgz" || exit 1
python3 - "$out/x" <<'PY' || exit 1
import json, os, sys
d = sys.argv[1]
s = json.load(open(os.path.join(d, "suite", "summary.json")))
g = s["scenarios"]["get-b1"]["systems"]
assert g["ceiling"]["requests_per_s"] > 0 and g["kited-memif"]["requests_per_s"] > 0, g
sc = json.load(open(os.path.join(d, "scaling", "scaling.json")))
assert sc["rows"] and all(r["steer_misses"] == 0 for r in sc["rows"]), sc["rows"]
print("device-check: ceiling %.0f, kited %.0f req/s; scaling rows %d" % (
    g["ceiling"]["requests_per_s"], g["kited-memif"]["requests_per_s"], len(sc["rows"])))
PY
