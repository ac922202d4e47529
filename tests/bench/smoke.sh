#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Smoke run of the benchmark tools: the side-by-side suite in --smoke mode
# (every system for a second), then kite-bench's pcap writer checked by
# reading the file back. Usage: smoke.sh BUILD_ROOT SOURCE_ROOT
set -u
build=$1
src=$2

if [ "$(id -u)" != 0 ]; then
	echo "skipped: needs root (DPDK, network namespaces)"
	exit 77
fi
out=$(mktemp -d /tmp/kite-bench-smoke.XXXXXX) || exit 1
trap 'rm -rf "$out"' EXIT INT TERM

"$src/tools/bench/kite-bench-suite" --smoke --no-plots --build "$build" --out "$out/suite" ||
	exit 1
[ -s "$out/suite/summary.json" ] || { echo "no summary.json"; exit 1; }
# kited's own GET service time (STAT: RX burst to TX) is at most what the client saw
# (STAT's quantile is the top of its bucket: up to 25 % above the true value).
python3 - "$out/suite/summary.json" <<'PY' || exit 1
import json, sys
s = json.load(open(sys.argv[1]))
seen = []
for sc, d in s["scenarios"].items():
    for sy, m in d["systems"].items():
        if m.get("server_service_get_p99_us") is None:
            continue
        assert m["server_service_get_p50_us"] <= 1.25 * m["p50_us"], (sc, sy, m)
        assert m["server_service_get_p99_us"] <= 1.25 * m["p99_us"], (sc, sy, m)
        seen.append("%s %s: server p99 %.1f us, client %.1f us" % (
            sc, sy, m["server_service_get_p99_us"], m["p99_us"]))
assert seen, "no kited run reported its service time"
print("service time: " + "; ".join(seen))
PY

# The ablation mode: kited with a data-path step off, paired with kited as built.
"$src/tools/bench/kite-bench-suite" --smoke --no-plots --build "$build" --out "$out/ablate" \
	--ablate-steps bulk,txbatch --repeats 1 || exit 1
python3 - "$out/ablate/summary.json" <<'PY' || exit 1
import json, sys
s = json.load(open(sys.argv[1]))
p = s["paired"]["smoke"]
for sy in ("kited-memif-no-bulk", "kited-memif-no-txbatch"):
    assert p[sy]["pairs"] == 1 and p[sy]["gain_median"] > 0, (sy, p[sy])
print("ablation: %s" % ", ".join("%s %.2fx" % (k, v["gain_median"]) for k, v in p.items()))
PY

# The guard modes: kite-bench with cookies, and with a tenant MAC, in every datagram
# (the suite fails a run unless kited counted its datagrams validated and authenticated).
"$src/tools/bench/kite-bench-suite" --smoke --no-plots --build "$build" --out "$out/guard" \
	--guard-modes --repeats 1 || exit 1
python3 - "$out/guard/summary.json" <<'PY' || exit 1
import json, sys
s = json.load(open(sys.argv[1]))
p = s["paired"]["get-b1"]
for sy in ("kited-memif-guard-cookie", "kited-memif-guard-mac"):
    assert p[sy]["pairs"] == 1 and p[sy]["gain_median"] > 0, (sy, p[sy])
print("guard: %s" % ", ".join("%s %.2fx" % (k, v["gain_median"]) for k, v in p.items()))
PY

# The open-loop latency tool, briefly: kited's adaptive idle policy and memcached at one
# light rate, and one point of the curve. The node must sleep when nothing comes (its CPU
# use with no traffic; docs/tuning.rst: about 2 %) and both servers answer every request.
"$src/tools/bench/kite-bench-latency" --quick --build "$build" --out "$out/latency" \
	--policies adaptive --light-rates 20000 --points 50 >"$out/latency.log" 2>&1 ||
	{ tail -30 "$out/latency.log"; exit 1; }
python3 - "$out/latency/summary.json" <<'PY' || exit 1
import json, sys
s = json.load(open(sys.argv[1]))
a = s["idle"]["summary"]["adaptive"]
assert a["idle_cpu"] < 0.10, "an idle adaptive node used %.1f %% CPU" % (100 * a["idle_cpu"])
for name in ("kited", "memcached"):
    pt = s["curve"]["systems"][name]["points"]["50"]
    assert pt["p50"] > 0 and pt["achieved"] > 0 and pt["timeouts"] == 0, (name, pt)
print("latency: idle adaptive node %.1f %% CPU; at 50 %%: kited p50 %.0f us, memcached %.0f us"
      % (100 * a["idle_cpu"], s["curve"]["systems"]["kited"]["points"]["50"]["p50"],
         s["curve"]["systems"]["memcached"]["points"]["50"]["p50"]))
PY

"$build/app/kite-bench/kite-bench" --mode pcap --write-pcap "$out/req.pcap" --pcap-count 100 \
	--batch 4 --mix get:50,set:50 --value-size uniform:8-3000 --keys 1000 >"$out/pcap.log" ||
	{ cat "$out/pcap.log"; exit 1; }
# 100 datagrams; SETs above the MTU are IPv4 fragments, so at least 100 frames.
python3 - "$out/req.pcap" <<'PY' || exit 1
import struct, sys
data = open(sys.argv[1], "rb").read()
magic, _, _, _, _, snap, link = struct.unpack("<IHHiIII", data[:24])
assert magic == 0xa1b2c3d4 and link == 1, "not an Ethernet pcap"
off, frames, first = 24, 0, 0
while off < len(data):
    _, _, caplen, length = struct.unpack("<IIII", data[off:off + 16])
    frame = data[off + 16:off + 16 + caplen]
    assert frame[12:14] == b"\x08\x00", "not IPv4"
    assert sum(struct.unpack("!10H", frame[14:34])) % 0xffff == 0, "bad IPv4 checksum"
    frag = struct.unpack("!H", frame[20:22])[0]
    if frag & 0x1fff == 0:
        first += 1
    frames += 1
    off += 16 + caplen
assert first == 100, "expected 100 datagrams, found %d" % first
print("pcap: %d frames, %d datagrams" % (frames, first))
PY
echo "bench smoke: ok"
