#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# rfork --lazy end to end between two network namespaces joined by a veth
# pair whose rate tc limits ("src" runs rfork, "dst" runs rforkd):
#  1. a process with a $RF_TEST_MIB MiB (default 256) mixed heap is rforked
#     with --lazy: the twin runs before any page of the heap was sent (rfork
#     reports the bytes on the wire when the twin ran: < 1% of the heap);
#     it answers (a checksum of a small part of the heap,
#     printed every 100 ms) while rfork is still sending pages, and many
#     bytes go over the link after that answer; meanwhile 4 of its threads
#     checksum the whole heap at once and a child it forks sees the whole
#     heap too, both equal to the original's; once rfork is done, the
#     twin's full-heap checksum equals the original's; the receiver's store
#     holds the whole snapshot (keys computed as the pages arrived), so a
#     second (pipelined, keyed) rfork sends <= 10% of the bytes;
#  2. the link is cut while the lazy pages stream: rfork fails with one
#     line, the receiver kills the twin, the original keeps running with
#     the same memory;
#  2b. the receiving rforkd session is SIGKILLed while the lazy pages
#     stream: its watchdog kills the twin (its faults must not read zeros),
#     the original keeps running;
#  3. rfork --pipelined: the twin is restored while its pages stream in but
#     stays stopped (prints nothing) until it holds every page, then runs
#     with the original's full-heap checksum;
#  4. plain rfork (pipelined by default) of a process with mlock'ed memory,
#     which cannot be restored lazily: it falls back to eager, one line;
#  5. a MADV_HUGEPAGE heap rforked lazily, changed, then rforked pipelined
#     (so the second restore fills held pages next to lacking ones): the twin's
#     checksum is the changed original's (no huge page may make a lacking
#     page present before it arrives);
#  6. rfork --lazy --move: the original stays (frozen) until the twin holds
#     every page, then it is gone; the twin has the original's checksum.
# Exit 0 pass, 1 fail, 77 skip.
#
# usage: test-lazy.sh RFORKD RFORK LAZYPROG WARMFORK
set -u
RFORKD=$1 RFORK=$2 PROG=$3 WARMFORK=$4
MIB=${RF_TEST_MIB:-256}

. "$(dirname "$0")/hosts.sh"
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, userfaultfd)"
command -v ip >/dev/null || skip "needs iproute2"
command -v tc >/dev/null || skip "needs tc (iproute2)"

hosts_names rl 150
T=$(mktemp -d /tmp/rf-lazy.XXXXXX)
PIDS=()
TWINS=()
failed=0

cleanup() {
	# twins first, while rforkd (a subreaper) still reaps them
	for p in "${TWINS[@]}"; do kill -9 "$p" 2>/dev/null; done
	sleep 0.3
	hosts_down
}
trap cleanup EXIT
trap "exit 1" TERM INT HUP

hosts_up
head -c 32 /dev/urandom > "$T/key"; chmod 600 "$T/key"

ip netns exec "$NS_DST" "$RFORKD" --listen "$A_DST:7717" --key-file "$T/key" \
	--store "$T/dst" --timeout 3 --output-dir "$T/out" < /dev/null > /dev/null 2> "$T/d.log" &
RFORKD_PID=$!
PIDS+=($!)
for _ in $(seq 100); do grep -q "listening on" "$T/d.log" && break; sleep 0.05; done
grep -q "listening on" "$T/d.log" || { echo "FAIL: rforkd did not start: $(cat "$T/d.log")"; exit 1; }

tx_bytes() { in_src cat "/sys/class/net/$V_SRC/statistics/tx_bytes"; }
# start_prog OUT: the lazy program in src; sets PROG_PID, FULL_SUM, PART_SUM
start_prog() {
	ip netns exec "$NS_SRC" "$PROG" "$MIB" "${2:-0}" "${3:-0}" "${4:-0}" > "$1" 2>&1 &
	PROG_PID=$!
	PIDS+=($PROG_PID)
	for _ in $(seq 600); do [ "$(wc -l < "$1")" -ge 2 ] && break; sleep 0.05; done
	FULL_SUM=$(awk '$1 == "FULL" {print $3; exit}' "$1")
	PART_SUM=$(awk '$1 != "FULL" {print $2; exit}' "$1")
	[ -n "$FULL_SUM" ] && [ -n "$PART_SUM" ] || { echo "FAIL: $PROG did not start"; exit 1; }
}
# wait_for COND_CMD TENTHS: poll a command until it succeeds
wait_for() {
	local n=$2
	while [ "$n" -gt 0 ]; do eval "$1" && return 0; sleep 0.1; n=$((n - 1)); done
	return 1
}

# --- 1. the twin answers before the transfer completes
start_prog "$T/orig1.out"
in_src tc qdisc add dev "$V_SRC" root tbf rate 200mbit burst 64kb latency 50ms ||
	skip "cannot rate-limit the link (tbf)"
TX_START=$(tx_bytes)
in_src "$RFORK" --host "$A_DST:7717" --key-file "$T/key" --timeout 5 --lazy "$PROG_PID" \
	> "$T/f1.out" 2> "$T/f1.err" &
RF=$!
PIDS+=($RF)
wait_for '[ -s "$T/f1.out" ]' 600 || fail "rfork --lazy printed no twin pid: $(cat "$T/f1.err")"
TWIN=$(head -1 "$T/f1.out")
[ -n "$TWIN" ] && TWINS+=("$TWIN")
# the twin's answer: a line of its stdout file (the only .out in the dir)
wait_for 'ls "$T"/out/*.out >/dev/null 2>&1 && awk '\''$1 != "FULL"'\'' "$T"/out/*.out | grep -q .' 600 ||
	fail "the lazy twin never answered"
TX_ANSWER=$(tx_bytes)
kill -0 "$RF" 2>/dev/null && STILL=1 || STILL=0
OUTF=$(ls "$T"/out/*.out 2>/dev/null | head -1)
ANSWER=$(awk '$1 != "FULL" {print; exit}' "$OUTF" 2>/dev/null)
# while the pages still arrive: a full checksum by 4 threads faulting at
# once, and a fork (the child gets the pages too)
kill -USR1 "$TWIN" 2>/dev/null
kill -USR2 "$TWIN" 2>/dev/null
wait_for 'grep -q "^CHILD" "$OUTF"' 600 || fail "the lazy twin's child printed nothing"
kill -0 "$RF" 2>/dev/null || echo "note: the transfer ended before the child was done"
CSUM=$(awk '$1 == "CHILD" {print $3; exit}' "$OUTF")
[ "$CSUM" = "$FULL_SUM" ] || fail "the lazy twin's child sees checksum $CSUM, the original $FULL_SUM"
wait "$RF"; RC=$?
TX_END=$(tx_bytes)
cat "$T/f1.err"
[ $RC = 0 ] || fail "rfork --lazy exited $RC"
[ "$(wc -l < "$T/f1.err")" = 1 ] || fail "rfork --lazy printed not one line on stderr"
[ "$STILL" = 1 ] || fail "the twin answered only after rfork was done (not lazily)"
AFTER=$((TX_END - TX_ANSWER)) TOTAL=$((TX_END - TX_START))
echo "twin answered \"$ANSWER\" after $((TX_ANSWER - TX_START)) of $TOTAL bytes; $AFTER bytes went out after the answer"
[ $((AFTER * 2)) -gt "$TOTAL" ] || fail "less than half of the bytes went out after the twin answered ($AFTER of $TOTAL)"
[ "$(echo "$ANSWER" | awk '{print $2}')" = "$PART_SUM" ] ||
	fail "the twin's answer \"$ANSWER\" differs from the original's part checksum $PART_SUM"
grep -q "lazily to .* twin running after" "$T/f1.err" || fail "rfork did not report the lazy twin"
# the twin ran before the heap's contents were sent: no memory phase
RUNB=$(sed -n 's/.*twin running after [0-9.]* s (\([0-9]*\) bytes on the wire then).*/\1/p' "$T/f1.err")
HEAPB=$((MIB * 1048576))
echo "twin running with $RUNB bytes on the wire ($HEAPB bytes of heap)"
[ -n "$RUNB" ] && [ $((RUNB * 100)) -lt "$HEAPB" ] ||
	fail "the lazy twin ran only after ${RUNB:-?} bytes were sent (>= 1% of the $HEAPB-byte heap)"
kill -0 "$TWIN" 2>/dev/null || fail "the twin $TWIN is not running after the transfer"
kill -USR1 "$TWIN" 2>/dev/null
wait_for '[ "$(awk '\''$1 == "FULL" && $2 > 0 {print $3; exit}'\'' "$OUTF")" != "" ]' 300 ||
	fail "the twin printed no full checksum"
TSUM=$(awk '$1 == "FULL" && $2 > 0 {print $3; exit}' "$OUTF")
[ "$TSUM" = "$FULL_SUM" ] || fail "the twin's full-heap checksum $TSUM differs from the original's $FULL_SUM"
kill -0 "$PROG_PID" 2>/dev/null || fail "the original died (no --move)"
grep -q "lazily restored snapshot" "$T/d.log" || fail "rforkd did not log the lazy twin"
# once every page is in, the receiver keeps the whole snapshot (as eager
# rfork does), and only that one
sleep 0.5
WHOLE=$(sed -n 's/.*stored whole as \([0-9a-f]\{16\}\).*/\1/p' "$T/d.log" | head -1)
[ -n "$WHOLE" ] || fail "rforkd did not store the lazy twin's snapshot whole: $(tail -1 "$T/d.log")"
[ -n "$WHOLE" ] && { "$WARMFORK" --store "$T/dst" verify "$WHOLE" > "$T/v.out" 2>&1 ||
	fail "warmfork verify $WHOLE: $(cat "$T/v.out")"; }
NS=$("$WARMFORK" --store "$T/dst" ls | tail -n +2 | wc -l)
[ "$NS" = 1 ] || fail "the receiver's store holds $NS snapshots after one lazy rfork, want 1"
# a second rfork (pipelined: keyed, deduplicated) of the same process: the
# receiver's store holds the pages that arrived lazily under the keys it
# computed, so <= 10% of the bytes travel
in_src "$RFORK" --host "$A_DST:7717" --key-file "$T/key" --timeout 5 --pipelined "$PROG_PID" \
	> "$T/f1b.out" 2> "$T/f1b.err" || fail "second rfork: $(cat "$T/f1b.err")"
cat "$T/f1b.err"
B1=$(sed -n 's/.* \([0-9]*\) bytes (.*/\1/p' "$T/f1.err")
B2=$(sed -n 's/.* \([0-9]*\) bytes (.*/\1/p' "$T/f1b.err")
if [ -z "$B1" ] || [ -z "$B2" ] || [ $((B2 * 10)) -gt "$B1" ]; then
	fail "second rfork sent $B2 bytes, first (lazy) $B1: more than 10%"
fi
TWINB=$(head -1 "$T/f1b.out")
[ -n "$TWINB" ] && TWINS+=("$TWINB") && kill -9 "$TWINB" 2>/dev/null
kill -9 "$TWIN" 2>/dev/null
kill "$PROG_PID" 2>/dev/null
rm -f "$T"/out/*

# --- 2. link cut while the lazy pages stream: twin killed, source runs on
in_src tc qdisc change dev "$V_SRC" root tbf rate 50mbit burst 64kb latency 50ms
start_prog "$T/orig2.out" 2	# other content: the receiver lacks it
in_src "$RFORK" --host "$A_DST:7717" --key-file "$T/key" --timeout 3 --lazy "$PROG_PID" \
	> "$T/f2.out" 2> "$T/f2.err" &
RF=$!
PIDS+=($RF)
wait_for '[ -s "$T/f2.out" ]' 600 || fail "rfork --lazy (cut) printed no twin pid: $(cat "$T/f2.err")"
TWIN2=$(head -1 "$T/f2.out")
[ -n "$TWIN2" ] && TWINS+=("$TWIN2")
kill -0 "$TWIN2" 2>/dev/null || fail "the lazy twin is not running before the cut"
sleep 0.5
in_src ip link set "$V_SRC" down
if wait "$RF"; then fail "rfork --lazy over a cut link succeeded"; fi
cat "$T/f2.err"
[ "$(wc -l < "$T/f2.err")" = 1 ] || fail "cut: rfork printed not one line"
grep -q "the original keeps running" "$T/f2.err" || fail "cut: rfork did not say the original runs on"
wait_for '! kill -0 "$TWIN2" 2>/dev/null' 150 || fail "the lazy twin $TWIN2 survived the cut link"
grep -q "lazy twin $TWIN2 .*killed" "$T/d.log" || fail "rforkd did not log the killed twin: $(tail -2 "$T/d.log")"
in_src ip link set "$V_SRC" up
N0=$(wc -l < "$T/orig2.out")
sleep 0.5
kill -0 "$PROG_PID" 2>/dev/null || fail "the original died when the link was cut"
[ "$(wc -l < "$T/orig2.out")" -gt "$N0" ] || fail "the original stopped running after the cut"
kill -USR1 "$PROG_PID"
wait_for '[ "$(awk '\''$1 == "FULL" && $2 > 0'\'' "$T/orig2.out")" != "" ]' 100 ||
	fail "the original printed no full checksum after the cut"
awk -v s="$FULL_SUM" '$1 == "FULL" && $3 != s {bad=1} END {exit bad}' "$T/orig2.out" ||
	fail "the original's memory changed after a failed lazy rfork"

kill "$PROG_PID" 2>/dev/null
rm -f "$T"/out/*

# --- 2b. the receiving session dies (SIGKILL) mid-transfer
start_prog "$T/orig2b.out" 5
in_src "$RFORK" --host "$A_DST:7717" --key-file "$T/key" --timeout 3 --lazy "$PROG_PID" \
	> "$T/f2b.out" 2> "$T/f2b.err" &
RF=$!
PIDS+=($RF)
wait_for '[ -s "$T/f2b.out" ]' 600 || fail "rfork --lazy (session kill) printed no twin pid: $(cat "$T/f2b.err")"
TWIN2B=$(head -1 "$T/f2b.out")
[ -n "$TWIN2B" ] && TWINS+=("$TWIN2B")
sleep 0.5
SESS=""
for c in $(cat /proc/"$RFORKD_PID"/task/*/children 2>/dev/null); do
	# the session process (not the twin's namespace init or the watchdog)
	[ "$(readlink /proc/"$c"/exe 2>/dev/null)" = "$(readlink -f "$RFORKD")" ] &&
		grep -q "^PPid:[[:space:]]*$RFORKD_PID\$" /proc/"$c"/status && SESS=$c
done
[ -n "$SESS" ] || fail "cannot find the rforkd session process"
[ -n "$SESS" ] && kill -9 "$SESS"
wait_for '! kill -0 "$TWIN2B" 2>/dev/null' 50 || fail "the lazy twin survived its rforkd session"
if wait "$RF"; then fail "rfork --lazy succeeded although its receiver died"; fi
kill -0 "$PROG_PID" 2>/dev/null || fail "the original died with the receiver's session"
kill "$PROG_PID" 2>/dev/null
rm -f "$T"/out/*

# --- 3. --pipelined: restored early, running only with every page
in_src ip link set "$V_SRC" up
in_src tc qdisc change dev "$V_SRC" root tbf rate 200mbit burst 64kb latency 50ms
start_prog "$T/orig3.out" 3
in_src "$RFORK" --host "$A_DST:7717" --key-file "$T/key" --timeout 5 --pipelined "$PROG_PID" \
	> "$T/f3.out" 2> "$T/f3.err" &
RF=$!
PIDS+=($RF)
wait_for 'ls "$T"/out/*.out >/dev/null 2>&1' 600 || fail "pipelined: the twin was never restored"
EARLY=0 SEEN=0
while kill -0 "$RF" 2>/dev/null; do
	SEEN=1
	[ -s "$(ls "$T"/out/*.out | head -1)" ] && EARLY=1
	sleep 0.1
done
wait "$RF"; RC=$?
cat "$T/f3.err"
[ $RC = 0 ] || fail "rfork --pipelined exited $RC"
[ "$SEEN" = 1 ] || fail "pipelined: rfork was done before the twin was restored: nothing was checked"
[ "$EARLY" = 0 ] && echo "pipelined: the twin printed nothing before it held every page" ||
	fail "pipelined: the twin ran before it held every page"
TWIN3=$(head -1 "$T/f3.out")
[ -n "$TWIN3" ] && TWINS+=("$TWIN3")
OUTF=$(ls "$T"/out/*.out | head -1)
wait_for '[ -s "$OUTF" ]' 100 || fail "pipelined: the twin does not run"
kill -USR1 "$TWIN3" 2>/dev/null
wait_for '[ "$(awk '\''$1 == "FULL" && $2 > 0 {print $3; exit}'\'' "$OUTF")" != "" ]' 300 ||
	fail "pipelined: the twin printed no full checksum"
TSUM=$(awk '$1 == "FULL" && $2 > 0 {print $3; exit}' "$OUTF")
[ "$TSUM" = "$FULL_SUM" ] || fail "pipelined: the twin's checksum $TSUM differs from the original's $FULL_SUM"
kill -9 "$TWIN3" 2>/dev/null
kill "$PROG_PID" 2>/dev/null
rm -f "$T"/out/*

# --- 4. mlock'ed memory: the default (pipelined) falls back to eager
in_src tc qdisc del dev "$V_SRC" root
start_prog "$T/orig4.out" 4 1
in_src "$RFORK" --host "$A_DST:7717" --key-file "$T/key" --timeout 5 "$PROG_PID" \
	> "$T/f4.out" 2> "$T/f4.err" || fail "rfork of a process with mlock'ed memory: $(cat "$T/f4.err")"
cat "$T/f4.err"
[ "$(wc -l < "$T/f4.err")" = 1 ] || fail "mlock fallback: rfork printed not one line"
grep -q "lazy restore: .*not unlocked anonymous" "$T/d.log" || fail "rforkd did not refuse the lazy restore"
TWIN4=$(head -1 "$T/f4.out")
[ -n "$TWIN4" ] && TWINS+=("$TWIN4")
OUTF=$(ls "$T"/out/*.out 2>/dev/null | head -1)
wait_for '[ -s "$OUTF" ]' 100 || fail "mlock fallback: the twin does not run"
kill -USR1 "$TWIN4" 2>/dev/null
wait_for '[ "$(awk '\''$1 == "FULL" && $2 > 0 {print $3; exit}'\'' "$OUTF")" != "" ]' 300 ||
	fail "mlock fallback: the twin printed no full checksum"
TSUM=$(awk '$1 == "FULL" && $2 > 0 {print $3; exit}' "$OUTF")
[ "$TSUM" = "$FULL_SUM" ] || fail "mlock fallback: the twin's checksum $TSUM differs from $FULL_SUM"
kill -9 "$TWIN4" 2>/dev/null
kill "$PROG_PID" 2>/dev/null
rm -f "$T"/out/*

# --- 5. huge pages: held pages filled next to lacking ones
start_prog "$T/orig5.out" 7 0 1
in_src "$RFORK" --host "$A_DST:7717" --key-file "$T/key" --timeout 5 --lazy "$PROG_PID" \
	> "$T/f5a.out" 2> "$T/f5a.err" || fail "huge: first rfork --lazy: $(cat "$T/f5a.err")"
TW=$(head -1 "$T/f5a.out")
[ -n "$TW" ] && kill -9 "$TW" 2>/dev/null
kill -HUP "$PROG_PID"
wait_for '[ "$(awk '\''$1 == "FULL" && $2 > 0 {print $3; exit}'\'' "$T/orig5.out")" != "" ]' 100 ||
	fail "huge: the original printed no changed checksum"
SUM5=$(awk '$1 == "FULL" && $2 > 0 {print $3; exit}' "$T/orig5.out")
rm -f "$T"/out/*
in_src "$RFORK" --host "$A_DST:7717" --key-file "$T/key" --timeout 5 --pipelined "$PROG_PID" \
	> "$T/f5b.out" 2> "$T/f5b.err" || fail "huge: second rfork (pipelined): $(cat "$T/f5b.err")"
cat "$T/f5b.err"
TW=$(head -1 "$T/f5b.out")
[ -n "$TW" ] && TWINS+=("$TW")
OUTF=$(ls "$T"/out/*.out 2>/dev/null | head -1)
kill -USR1 "$TW" 2>/dev/null
wait_for '[ "$(awk '\''$1 == "FULL" && $2 > 0 {print $3; exit}'\'' "$OUTF")" != "" ]' 300 ||
	fail "huge: the twin printed no full checksum"
TSUM=$(awk '$1 == "FULL" && $2 > 0 {print $3; exit}' "$OUTF")
[ "$TSUM" = "$SUM5" ] || fail "huge: the twin's checksum $TSUM differs from the changed original's $SUM5"

kill -9 "$TW" 2>/dev/null
kill "$PROG_PID" 2>/dev/null
rm -f "$T"/out/*

# --- 6. --lazy --move: the original (frozen meanwhile) ends only once the
# twin holds every page
in_src tc qdisc add dev "$V_SRC" root tbf rate 200mbit burst 64kb latency 50ms
start_prog "$T/orig6.out" 6
in_src "$RFORK" --host "$A_DST:7717" --key-file "$T/key" --timeout 5 --lazy --move "$PROG_PID" \
	> "$T/f6.out" 2> "$T/f6.err" &
RF=$!
PIDS+=($RF)
wait_for '[ -s "$T/f6.out" ]' 600 || fail "lazy move: no twin pid: $(cat "$T/f6.err")"
TW6=$(head -1 "$T/f6.out")
[ -n "$TW6" ] && TWINS+=("$TW6")
ALIVE=0
kill -0 "$RF" 2>/dev/null && kill -0 "$PROG_PID" 2>/dev/null && ALIVE=1
wait "$RF"; RC=$?
cat "$T/f6.err"
[ $RC = 0 ] || fail "rfork --lazy --move exited $RC"
[ "$ALIVE" = 1 ] || fail "lazy move: the original was gone (or rfork done) as soon as the twin ran"
wait_for '! kill -0 "$PROG_PID" 2>/dev/null' 50 || fail "lazy move: the original survived the move"
OUTF=$(ls "$T"/out/*.out 2>/dev/null | head -1)
kill -USR1 "$TW6" 2>/dev/null
wait_for '[ "$(awk '\''$1 == "FULL" && $2 > 0 {print $3; exit}'\'' "$OUTF")" != "" ]' 300 ||
	fail "lazy move: the twin printed no full checksum"
TSUM=$(awk '$1 == "FULL" && $2 > 0 {print $3; exit}' "$OUTF")
[ "$TSUM" = "$FULL_SUM" ] || fail "lazy move: the twin's checksum $TSUM differs from the original's $FULL_SUM"

[ $failed = 0 ] && echo "PASS"
exit $failed
