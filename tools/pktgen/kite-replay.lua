-- SPDX-License-Identifier: BSD-3-Clause
--
-- kite-replay.lua: replay a kite-bench request pcap with pktgen-dpdk at a
-- chosen rate for a fixed time and count what comes back.
--
-- pktgen loads the pcap itself (command line `-s P:FILE`); this script
-- switches the port to pcap mode, sends for KITE_SECONDS at KITE_RATE
-- percent of the link, waits for the last replies, and prints requests
-- out, reply datagrams in and their ratio. See tools/pktgen/README.rst.
--
--   KITE_PORT=0 KITE_RATE=10 KITE_SECONDS=10 \
--     pktgen -l 0-2 -a PCI -- -P -m "[1:2].0" -s 0:requests.pcap -f kite-replay.lua
--
-- Environment (all optional):
--   KITE_PORT      pktgen port number                     (default 0)
--   KITE_RATE      transmit rate, percent of link speed   (default 10)
--   KITE_SECONDS   seconds of load                        (default 10)
--   KITE_DRAIN_MS  wait for late replies after stopping   (default 500)
--   KITE_QUIT      "1": exit pktgen when done             (default 1)

package.path = package.path .. ";?.lua;test/?.lua;app/?.lua;"
require "Pktgen"

local function env(name, default)
	local v = os.getenv(name)
	if v == nil or v == "" then
		return default
	end
	return v
end

local port = env("KITE_PORT", "0")
local rate = tonumber(env("KITE_RATE", "10"))
local seconds = tonumber(env("KITE_SECONDS", "10"))
local drain_ms = tonumber(env("KITE_DRAIN_MS", "500"))
local quit = env("KITE_QUIT", "1") == "1"
local idx = tonumber(port)

if rate == nil or rate <= 0 or rate > 100 then
	error("KITE_RATE must be a percentage in (0, 100]")
end
if seconds == nil or seconds <= 0 then
	error("KITE_SECONDS must be a positive number")
end

-- Replies go to whatever source MAC the pcap carries: take every frame.
pktgen.screen("off")
pktgen.set(port, "rate", rate)
pktgen.pcap(port, "on")
pktgen.clr()
pktgen.delay(500)

local before = pktgen.portStats(port, "port")[idx]
printf("kite-replay: port %s, %g%% of link, %g s\n", port, rate, seconds)
pktgen.start(port)
-- Progress once a second, from the port counters.
local last = before
for s = 1, math.floor(seconds) do
	pktgen.delay(1000)
	local now = pktgen.portStats(port, "port")[idx]
	printf("[%3d s] %10d requests/s out  %10d replies/s in\n", s,
	       now.opackets - last.opackets, now.ipackets - last.ipackets)
	last = now
end
local rest = seconds - math.floor(seconds)
if rest > 0 then
	pktgen.delay(math.floor(rest * 1000))
end
pktgen.stop(port)
pktgen.delay(drain_ms)

local after = pktgen.portStats(port, "port")[idx]
local out = after.opackets - before.opackets
local back = after.ipackets - before.ipackets
printf("kite-replay: %d request frames sent, %d reply frames received in %g s\n",
       out, back, seconds)
printf("kite-replay: %.0f requests/s, %.0f replies/s, %.3f replies per request frame\n",
       out / seconds, back / seconds, out > 0 and back / out or 0)
printf("kite-replay: receive errors %d, missed %d\n", after.ierrors - before.ierrors,
       (after.imissed or 0) - (before.imissed or 0))
if quit then
	pktgen.quit()
end
