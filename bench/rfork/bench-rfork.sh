#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# rfork benchmark (issue 7): rfork the 1 GiB mixed-memory process (bench/engine's
# wl-mem: half unique, a quarter 64 repeated patterns, a quarter zero) from one
# network namespace to another over a veth whose rate tc limits (tbf, RATE
# Mbit/s, both directions). Prints one JSON line:
#   eager_s           rfork start until rfork reports the twin running (rfork PID:
#                     pipelined, i.e. restored while its pages arrive and
#                     running once it holds them all)
#   wire_bytes        what rfork says it sent (frames on the session)
#   unique_bytes      the distinct non-zero page bytes of the process
#   unique_s          unique_bytes at the link rate (computed: bytes*8/rate)
#   eager_ratio       eager_s / unique_s (target <= 1.3)
#   repeat_s, repeat_bytes, repeat_fraction  a second rfork of the same process
#                     (target: fraction <= 0.10)
#   lazy_run_s        rfork --lazy to a receiver with an empty store (every
#                     page travels): rfork start until the twin runs, as rfork
#                     reports it (target <= 0.1)
#   lazy_run_bytes    bytes rfork had sent when the twin ran (no page of the
#                     heap goes before: the engine has no memory phase then)
#   lazy_total_s      the same, until the twin holds every page (rfork exits)
#   classic_s         rfork --eager to an empty store (the restore starts after
#                     the last page): rfork start until the twin runs
#   classic_ratio     classic_s / unique_s
#   big_mib, big_lazy_run_s, big_lazy_run_bytes  "whatever the size": a
#                     second wl-mem of BIG_MIB (4096 by default, 0: skip)
#                     rforked --lazy alone, to a fresh receiver, over the same
#                     veth with the rate limit lifted (only the time until
#                     the twin runs is measured; lifting it only shortens the
#                     stream of its 3 GiB afterwards; the stores' writes of
#                     the runs before are synced first); the receiver's
#                     line goes to stderr
# usage: bench-rfork.sh RFORKD RFORK WL_MEM [MIB] [RATE_MBIT] [BIG_MIB]   (root; 77 otherwise)
RFORKD=$1 RFORK=$2 WLMEM=$3 MIB=${4:-1024} RATE=${5:-1000} BIG=${6:-4096}
[ "$(id -u)" = 0 ] || { echo "skip: needs root (network namespaces, tc)"; exit 77; }
command -v tc > /dev/null || { echo "skip: no tc"; exit 77; }

NS_SRC=rfb-src-$$ NS_DST=rfb-dst-$$ V_SRC=rfbs$$ V_DST=rfbd$$
A_SRC=10.231.0.1 A_DST=10.231.0.2
T=$(mktemp -d /tmp/rf-bench.XXXXXX)
PIDS=()
cleanup() {
	exec 3>&- 2>/dev/null
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	ip netns del "$NS_SRC" 2>/dev/null
	ip netns del "$NS_DST" 2>/dev/null
	[ -n "$KEEP" ] && cp "$T/rforkd.log" "$KEEP"
	rm -rf "$T"
}
trap cleanup EXIT
now() { date +%s.%N; }

ip netns add "$NS_SRC" && ip netns add "$NS_DST" || { echo "skip: no network namespaces"; exit 77; }
ip link add "$V_SRC" type veth peer name "$V_DST" || { echo "skip: no veth"; exit 77; }
ip link set "$V_SRC" netns "$NS_SRC"; ip link set "$V_DST" netns "$NS_DST"
ip -n "$NS_SRC" addr add "$A_SRC/24" dev "$V_SRC"; ip -n "$NS_DST" addr add "$A_DST/24" dev "$V_DST"
for ns in "$NS_SRC" "$NS_DST"; do ip -n "$ns" link set lo up; done
ip -n "$NS_SRC" link set "$V_SRC" up; ip -n "$NS_DST" link set "$V_DST" up
# tbf: burst a few ms of the rate, queue at most 20 ms
for d in "$NS_SRC:$V_SRC" "$NS_DST:$V_DST"; do
	ip netns exec "${d%%:*}" tc qdisc add dev "${d#*:}" root tbf rate "${RATE}mbit" \
		burst $((RATE * 1000 / 8 * 2 / 1000 + 16))kb latency 20ms ||
		{ echo "skip: tc tbf refused"; exit 77; }
done

head -c 32 /dev/urandom > "$T/key"; chmod 600 "$T/key"
start_rforkd() {
	ip netns exec "$NS_DST" "$1" --listen "$A_DST:${2:-7717}" --key-file "$T/key" \
		--store "$T/dst${2:-}" --output-dir "$T/out" < /dev/null > /dev/null \
		2> "$T/rforkd${2:-}.log" &
	RFORKD_PID=$!
	PIDS+=($!)
	for _ in $(seq 100); do grep -q "listening on" "$T/rforkd${2:-}.log" && break; sleep 0.05; done
	grep -q "listening on" "$T/rforkd${2:-}.log" ||
		{ echo "rforkd did not start: $(cat "$T/rforkd${2:-}.log")" >&2; exit 1; }
}
start_rforkd "$RFORKD"

mkfifo "$T/in"
# only stdio: the engine refuses descriptors it cannot capture (inherited pipes)
(
	for fd in $(ls /proc/$BASHPID/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
	exec ip netns exec "$NS_SRC" "$WLMEM" "$MIB" < "$T/in" > "$T/wl.out" 2> /dev/null
) &
WL=$!
PIDS+=($WL)
exec 3> "$T/in"
for _ in $(seq 1200); do [ -s "$T/wl.out" ] && break; sleep 0.05; done
[ "$(head -c1 "$T/wl.out")" = R ] || { echo "wl-mem did not get ready" >&2; exit 1; }

# rfork_once N: time one rfork, its bytes and the twin's pid
rfork_once() {
	local t0 t1
	t0=$(now)
	ip netns exec "$NS_SRC" "$RFORK" --host "$A_DST:7717" --key-file "$T/key" "$WL" \
		> "$T/r$1.out" 2> "$T/r$1.err" ||
		{ echo "rfork $1 failed: $(cat "$T/r$1.err"); rforkd: $(tail -3 "$T/rforkd.log")" >&2; exit 1; }
	t1=$(now)
	echo "$t0 $t1" > "$T/r$1.time"
	cat "$T/r$1.err" >&2
}
rfork_once 1
# A/B of the receiver: RFORKD_REPEAT=other-rforkd serves the repeat rfork (same store)
if [ -n "$RFORKD_REPEAT" ]; then
	kill "$RFORKD_PID"; wait "$RFORKD_PID" 2>/dev/null
	start_rforkd "$RFORKD_REPEAT"
fi
rfork_once 2
# --lazy to a second daemon with an empty store: every page is lazy
start_rforkd "$RFORKD" 7718
t0=$(now)
ip netns exec "$NS_SRC" "$RFORK" --host "$A_DST:7718" --key-file "$T/key" --lazy "$WL" \
	> "$T/r3.out" 2> "$T/r3.err" ||
	{ echo "rfork --lazy failed: $(cat "$T/r3.err"); rforkd: $(tail -3 "$T/rforkd7718.log")" >&2; exit 1; }
t1=$(now)
cat "$T/r3.err" >&2
# the receiver's side of the lazy start (logged once its store holds it all)
for _ in $(seq 100); do grep -q "lazily restored" "$T/rforkd7718.log" && break; sleep 0.1; done
grep "lazily restored" "$T/rforkd7718.log" >&2
L_RUN=$(sed -n 's/.*twin running after \([0-9.]*\) s.*/\1/p' "$T/r3.err")
L_RUNB=$(sed -n 's/.*twin running after [0-9.]* s (\([0-9]*\) bytes on the wire then).*/\1/p' "$T/r3.err")
L_TOTAL=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
[ -n "$L_RUN" ] || { echo "no lazy figures in rfork's report" >&2; exit 1; }
# --eager (the restore after the last page) to a third daemon, empty store
start_rforkd "$RFORKD" 7719
t0=$(now)
ip netns exec "$NS_SRC" "$RFORK" --host "$A_DST:7719" --key-file "$T/key" --eager "$WL" \
	> "$T/r4.out" 2> "$T/r4.err" ||
	{ echo "rfork --eager failed: $(cat "$T/r4.err"); rforkd: $(tail -3 "$T/rforkd7719.log")" >&2; exit 1; }
t1=$(now)
cat "$T/r4.err" >&2
P_RUN=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
# "whatever the size": BIG MiB rforked --lazy alone (the 1 GiB process ends first)
B_RUN=0 B_RUNB=0
if [ "$BIG" -gt 0 ]; then
	exec 3>&-
	kill "$WL" 2>/dev/null; wait "$WL" 2>/dev/null
	# the runs above left GiBs of store writes in flight: flushed first, or
	# the receiver's store commit and open wait for that write-back here
	sync
	for d in "$NS_SRC:$V_SRC" "$NS_DST:$V_DST"; do
		ip netns exec "${d%%:*}" tc qdisc del dev "${d#*:}" root 2>/dev/null
	done
	rm -f "$T/in" "$T/wl.out"
	mkfifo "$T/in"
	(
		for fd in $(ls /proc/$BASHPID/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
		exec ip netns exec "$NS_SRC" "$WLMEM" "$BIG" < "$T/in" > "$T/wl.out" 2> /dev/null
	) &
	WL=$!
	PIDS+=($WL)
	exec 3> "$T/in"
	for _ in $(seq 2400); do [ -s "$T/wl.out" ] && break; sleep 0.05; done
	[ "$(head -c1 "$T/wl.out")" = R ] || { echo "wl-mem $BIG did not get ready" >&2; exit 1; }
	start_rforkd "$RFORKD" 7720
	ip netns exec "$NS_SRC" "$RFORK" --host "$A_DST:7720" --key-file "$T/key" --lazy "$WL" \
		> "$T/r5.out" 2> "$T/r5.err" ||
		{ echo "rfork --lazy of $BIG MiB failed: $(cat "$T/r5.err"); rforkd: $(tail -3 "$T/rforkd7720.log")" >&2; exit 1; }
	cat "$T/r5.err" >&2
	for _ in $(seq 100); do grep -q "lazily restored" "$T/rforkd7720.log" && break; sleep 0.1; done
	grep "lazily restored" "$T/rforkd7720.log" >&2
	B_RUN=$(sed -n 's/.*twin running after \([0-9.]*\) s.*/\1/p' "$T/r5.err")
	B_RUNB=$(sed -n 's/.*twin running after [0-9.]* s (\([0-9]*\) bytes on the wire then).*/\1/p' "$T/r5.err")
	[ -n "$B_RUN" ] || { echo "no lazy figures in rfork's report ($BIG MiB)" >&2; exit 1; }
fi
secs() { awk '{printf "%.3f", $2 - $1}' "$1"; }
bytes() { sed -n 's/.*: \([0-9]*\) bytes (.*/\1/p' "$1"; }
E1=$(secs "$T/r1.time") E2=$(secs "$T/r2.time")
B1=$(bytes "$T/r1.err") B2=$(bytes "$T/r2.err")
[ -n "$B1" ] && [ -n "$B2" ] || { echo "no byte count in rfork's report" >&2; exit 1; }
# wl-mem: MIB*256 pages, half unique, plus 64 distinct patterns
UNIQ=$((MIB * 256 / 2 * 4096 + 64 * 4096))
awk -v e1="$E1" -v e2="$E2" -v b1="$B1" -v b2="$B2" -v u="$UNIQ" -v rate="$RATE" -v mib="$MIB" \
	-v lr="$L_RUN" -v lrb="${L_RUNB:-0}" -v lt="$L_TOTAL" -v pr="$P_RUN" \
	-v big="$BIG" -v br="$B_RUN" -v brb="${B_RUNB:-0}" \
	-v load="$(cut -d' ' -f1-3 /proc/loadavg)" 'BEGIN {
	us = u * 8 / (rate * 1e6)
	printf "{\"bench\":\"rfork\",\"mib\":%d,\"rate_mbit\":%d,\"eager_s\":%.3f,\"wire_bytes\":%d," \
	       "\"unique_bytes\":%d,\"unique_s\":%.3f,\"eager_ratio\":%.3f,\"repeat_s\":%.3f," \
	       "\"repeat_bytes\":%d,\"repeat_fraction\":%.4f,\"lazy_run_s\":%.3f,\"lazy_run_bytes\":%d," \
	       "\"lazy_total_s\":%.3f,\"classic_s\":%.3f,\"classic_ratio\":%.3f," \
	       "\"big_mib\":%d,\"big_lazy_run_s\":%.3f,\"big_lazy_run_bytes\":%d," \
	       "\"loadavg\":\"%s\"}\n",
	       mib, rate, e1, b1, u, us, e1 / us, e2, b2, b2 / b1, lr, lrb, lt, pr, pr / us,
	       big, br, brb, load }'
