#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# rfork end to end between two network namespaces joined by a veth pair:
# "src" runs rfork, "dst" runs rforkd. Asserts, on real store state:
#  1. a snapshot of $RF_TEST_MIB MiB (default 64) of mixed pages arrives
#     intact (every page filled and compared, `warmfork verify` passes);
#  2. a second, ~95%-similar snapshot costs <= 10% of the first's bytes;
#  3. a wrong key is rejected by both sides, no snapshot appears;
#  4. a byte flipped in the stream by a proxy is rejected, no snapshot;
#  5. a link cut mid-transfer leaves no snapshot, rfork exits non-zero
#     with one line;
#  5b. a twin that cannot start (its output dir cannot be created): rfork
#     says so in one line, the original keeps running, no snapshot remains;
#  6. rfork PID: the twin runs on the receiver (in a new pid namespace, as
#     the pid is taken on this one machine), continues from the checkpoint
#     with the same memory checksum, the original keeps running; a second
#     rfork of it sends <= 10% of the bytes; --attach brings the twin's
#     output back, forwards SIGTERM and exits with the twin's status; --move ends the original once
#     the twin runs; a cut link leaves the original running, unchanged;
#  plus the daemon's refusals (no key, open key file).
# Exit 0 pass, 1 fail, 77 skip.
#
# usage: test-netns.sh RFORKD RFORK SNAPTOOL WARMFORK TWINPROG
set -u
RFORKD=$1 RFORK=$2 SNAPTOOL=$3 WARMFORK=$4 TWINPROG=$5
MIB=${RF_TEST_MIB:-64}

. "$(dirname "$0")/hosts.sh"
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces)"
command -v ip >/dev/null || skip "needs iproute2"
command -v python3 >/dev/null || skip "needs python3 (tamper proxy)"

hosts_names rf 200
T=$(mktemp -d /tmp/rf-netns.XXXXXX)
PIDS=()
DAEMONS=()
failed=0

cleanup() {
	hosts_down
}
trap cleanup EXIT
trap "exit 1" TERM INT HUP

hosts_up

head -c 32 /dev/urandom > "$T/key"; chmod 600 "$T/key"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$T/wrong"; chmod 600 "$T/wrong"
cp "$T/key" "$T/open-key"; chmod 644 "$T/open-key"

# rforkd NAME PORT STORE [ARGS...]: start in dst, wait for its listening line.
start_rforkd() {
	local name=$1 port=$2 store=$3; shift 3
	# ip netns exec execs the daemon: $! is its pid, ours to kill and reap
	ip netns exec "$NS_DST" "$RFORKD" --listen "$A_DST:$port" --key-file "$T/key" \
		--store "$store" "$@" < /dev/null > /dev/null 2> "$T/$name.log" &
	PIDS+=($!)
	DAEMONS+=($!)
	for _ in $(seq 100); do
		grep -q "listening on" "$T/$name.log" && return 0
		kill -0 $! 2>/dev/null || break
		sleep 0.05
	done
	echo "rforkd $name did not start:"; cat "$T/$name.log"; exit 1
}

nsnap() { "$SNAPTOOL" list "$1" | wc -l; }
bytes_of() { sed -n 's/.*: \([0-9]*\) bytes (.*/\1/p' "$1"; }

# --- the daemon refuses to run without a key, or with an open key file
if in_dst "$RFORKD" --listen "$A_DST:7700" --store "$T/x" 2> "$T/nokey.err"; then
	fail "rforkd ran without --key-file"
fi
grep -q "without --key-file" "$T/nokey.err" || fail "no-key refusal not explained: $(cat "$T/nokey.err")"
if in_dst "$RFORKD" --listen "$A_DST:7700" --key-file "$T/open-key" --store "$T/x" 2> "$T/open.err"; then
	fail "rforkd accepted a group/world-readable key file"
fi

# --- snapshots in the sender's store
ID1=$("$SNAPTOOL" make "$T/src" "$MIB" 1) || { echo "FAIL: make snapshot 1"; exit 1; }
ID2=$("$SNAPTOOL" make "$T/src" "$MIB" 2) || { echo "FAIL: make snapshot 2"; exit 1; }

start_rforkd d1 7717 "$T/dst" --timeout 5 --output-dir "$T/out1"

# --- 1. first push arrives intact
if ! in_src "$RFORK" --host "$A_DST:7717" --key-file "$T/key" --store "$T/src" \
	--snapshot "$ID1" > "$T/p1.out" 2> "$T/p1.err"; then
	fail "first push: $(cat "$T/p1.err")"
fi
R1=$(cat "$T/p1.out")
cat "$T/p1.err"
[ "$(wc -l < "$T/p1.err")" = 1 ] || fail "rfork printed more than one line on stderr"
"$SNAPTOOL" check "$T/dst" "$R1" "$MIB" 1 || fail "first snapshot differs on the receiver"
B1=$(bytes_of "$T/p1.err")
"$WARMFORK" --store "$T/dst" verify "$R1" > "$T/v1.out" 2>&1 || fail "warmfork verify $R1: $(cat "$T/v1.out")"

# --- 2. a similar snapshot sends <= 10% of the bytes
if ! in_src "$RFORK" --host "$A_DST:7717" --key-file "$T/key" --store "$T/src" \
	--snapshot "$ID2" > "$T/p2.out" 2> "$T/p2.err"; then
	fail "second push: $(cat "$T/p2.err")"
fi
R2=$(cat "$T/p2.out")
cat "$T/p2.err"
"$SNAPTOOL" check "$T/dst" "$R2" "$MIB" 2 || fail "second snapshot differs on the receiver"
B2=$(bytes_of "$T/p2.err")
"$WARMFORK" --store "$T/dst" verify > "$T/v2.out" 2>&1 || fail "warmfork verify: $(cat "$T/v2.out")"
if [ -z "$B1" ] || [ -z "$B2" ] || [ $((B2 * 10)) -gt "$B1" ]; then
	fail "second push sent $B2 bytes, first $B1: more than 10%"
fi
# several sessions at once: two pushes in parallel both land
for k in 1 2; do
	ip netns exec "$NS_SRC" "$RFORK" --host "$A_DST:7717" --key-file "$T/key" --store "$T/src" \
		--snapshot "$([ $k = 1 ] && echo "$ID1" || echo "$ID2")" > "$T/c$k.out" 2> "$T/c$k.err" &
	CP[$k]=$!
done
for k in 1 2; do wait "${CP[$k]}" || fail "concurrent push $k: $(cat "$T/c$k.err")"; done
N=$(nsnap "$T/dst")
[ "$N" = 4 ] || fail "receiver holds $N snapshots, want 4"

# --- 3. wrong key: both sides refuse, nothing is stored
if in_src "$RFORK" --host "$A_DST:7717" --key-file "$T/wrong" --store "$T/src" \
	--snapshot "$ID1" > "$T/p3.out" 2> "$T/p3.err"; then
	fail "push with a wrong key succeeded"
fi
[ "$(wc -l < "$T/p3.err")" = 1 ] || fail "wrong key: not one line: $(cat "$T/p3.err")"
grep -q "wrong key" "$T/p3.err" || fail "wrong key not reported by rfork: $(cat "$T/p3.err")"
sleep 0.2
grep -q "rejected" "$T/d1.log" || fail "rforkd did not log the rejected session"
# and a client that skips the server's proof: the daemon itself must refuse it
in_src python3 - "$A_DST" 7717 <<'PY' >/dev/null 2>&1
import socket, struct, sys, os
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
def rec(t, p): s.sendall(struct.pack("<IHH", 4 + len(p), t, 0) + p)
rec(1, struct.pack("<IHH", 0x4b524657, 2, 0) + os.urandom(32))   # RF_VERSION
s.recv(4096)
rec(3, os.urandom(32))     # a forged proof
s.recv(4096)
PY
sleep 0.3
grep -q "client failed to prove" "$T/d1.log" || fail "rforkd accepted a forged proof: $(tail -2 "$T/d1.log")"
# a client of an older protocol version (1: before RUNS) is refused in the handshake
in_src python3 - "$A_DST" 7717 <<'PY' >/dev/null 2>&1
import socket, struct, sys, os
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.sendall(struct.pack("<IHH", 4 + 40, 1, 0) + struct.pack("<IHH", 0x4b524657, 1, 0) + os.urandom(32))
s.recv(4096)
PY
sleep 0.3
grep -q "peer speaks protocol version 1, we speak 2" "$T/d1.log" ||
	fail "rforkd did not refuse protocol version 1: $(tail -2 "$T/d1.log")"
[ "$(nsnap "$T/dst")" = 4 ] || fail "a snapshot appeared after a rejected key"

# --- 4. a byte flipped in flight: rejected, nothing stored
cat > "$T/proxy.py" <<'PY'
import socket, sys, threading
lport, host, port, flip_at = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", lport)); ls.listen(1)
print("ready", flush=True)
c, _ = ls.accept()
u = socket.create_connection((host, port))
def back():
    try:
        while True:
            b = u.recv(65536)
            if not b: break
            c.sendall(b)
    except OSError: pass
    try: c.shutdown(socket.SHUT_WR)
    except OSError: pass
threading.Thread(target=back, daemon=True).start()
n = 0
try:
    while True:
        b = bytearray(c.recv(65536))
        if not b: break
        if n <= flip_at < n + len(b): b[flip_at - n] ^= 0x01
        n += len(b)
        u.sendall(b)
except OSError: pass
try: u.shutdown(socket.SHUT_WR)
except OSError: pass
PY
ID3=$("$SNAPTOOL" make "$T/src" "$MIB" 3) || { echo "FAIL: make snapshot 3"; exit 1; }
ip netns exec "$NS_SRC" python3 "$T/proxy.py" 9999 "$A_DST" 7717 300000 > "$T/proxy.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q ready "$T/proxy.out" && break; sleep 0.05; done
if in_src "$RFORK" --host 127.0.0.1:9999 --key-file "$T/key" --store "$T/src" \
	--snapshot "$ID3" > "$T/p4.out" 2> "$T/p4.err"; then
	fail "push through a tampering proxy succeeded"
fi
cat "$T/p4.err"
[ "$(wc -l < "$T/p4.err")" = 1 ] || fail "tamper: rfork printed not one line"
sleep 0.3
grep -q "failed authentication" "$T/d1.log" || fail "rforkd did not report the forged frame: $(tail -2 "$T/d1.log")"
[ "$(nsnap "$T/dst")" = 4 ] || fail "a snapshot appeared after a tampered frame"

# --- 5. link cut mid-transfer: a fresh receiver store (everything travels)
# behind a 50 Mbit/s link, cut after a second
touch "$T/out2"	# a file: d2's twins cannot get their stdio files (test 5b)
start_rforkd d2 7718 "$T/dst2" --timeout 3 --output-dir "$T/out2"
in_src tc qdisc add dev "$V_SRC" root tbf rate 50mbit burst 64kb latency 200ms ||
	fail "cannot rate-limit the link"
T0=$(date +%s)
ip netns exec "$NS_SRC" "$RFORK" --host "$A_DST:7718" --key-file "$T/key" --store "$T/src" \
	--timeout 3 --snapshot "$ID1" > "$T/p5.out" 2> "$T/p5.err" &
RF=$!
PIDS+=($RF)
sleep 1
in_src ip link set "$V_SRC" down
if wait $RF; then fail "push over a cut link succeeded"; fi
T1=$(date +%s)
cat "$T/p5.err"
[ "$(wc -l < "$T/p5.err")" = 1 ] || fail "cut: rfork printed not one line"
[ $((T1 - T0)) -le 20 ] || fail "cut: rfork took $((T1 - T0)) s to give up"
sleep 4		# the receiver's own timeout
grep -q "push failed" "$T/d2.log" || fail "rforkd did not log the broken push: $(cat "$T/d2.log")"
[ "$(nsnap "$T/dst2")" = 0 ] || fail "a snapshot appeared after a cut link"
in_src ip link set "$V_SRC" up

# the same with a running process: it must be left running, unchanged
ip netns exec "$NS_SRC" "$TWINPROG" "$MIB" > "$T/orig2.out" 2>&1 &
ORIG2=$!
PIDS+=($ORIG2)
for _ in $(seq 300); do [ -s "$T/orig2.out" ] && break; sleep 0.05; done
SUM2=$(awk 'NR==1{print $2}' "$T/orig2.out")
ip netns exec "$NS_SRC" "$RFORK" --host "$A_DST:7718" --key-file "$T/key" --timeout 3 \
	"$ORIG2" > "$T/f5.out" 2> "$T/f5.err" &
RF=$!
PIDS+=($RF)
sleep 1
in_src ip link set "$V_SRC" down
if wait $RF; then fail "rfork PID over a cut link succeeded"; fi
cat "$T/f5.err"
[ "$(wc -l < "$T/f5.err")" = 1 ] || fail "cut: rfork PID printed not one line"
in_src ip link set "$V_SRC" up
N0=$(wc -l < "$T/orig2.out")
sleep 0.5
kill -0 "$ORIG2" 2>/dev/null || fail "the original died when the link was cut"
[ "$(wc -l < "$T/orig2.out")" -gt "$N0" ] || fail "the original stopped running after a cut link"
awk -v s="$SUM2" '$2 != s {bad=1} END {exit bad}' "$T/orig2.out" ||
	fail "the original's memory changed after a failed rfork"
in_src tc qdisc del dev "$V_SRC" root
sleep 3.5	# the receiver's own timeout
[ "$(nsnap "$T/dst2")" = 0 ] || fail "a snapshot appeared after a cut link (rfork PID)"
grep -c "push failed" "$T/d2.log" | grep -q 2 || fail "rforkd did not log the second broken push"

# --- 5b. the twin cannot start on the receiver
if ip netns exec "$NS_SRC" "$RFORK" --host "$A_DST:7718" --key-file "$T/key" "$ORIG2" \
	> "$T/f6.out" 2> "$T/f6.err"; then
	fail "rfork PID succeeded although the twin could not start"
fi
cat "$T/f6.err"
[ "$(wc -l < "$T/f6.err")" = 1 ] || fail "twin failure: rfork printed not one line"
grep -q "restoring snapshot" "$T/f6.err" || fail "twin failure not explained: $(cat "$T/f6.err")"
[ -s "$T/f6.out" ] && fail "rfork printed a pid although the twin did not start"
N0=$(wc -l < "$T/orig2.out")
sleep 0.5
[ "$(wc -l < "$T/orig2.out")" -gt "$N0" ] || fail "the original stopped after a failed twin start"
sleep 0.3
[ "$(nsnap "$T/dst2")" = 0 ] || fail "the receiver kept the snapshot of a twin that did not start"
grep -q "restoring snapshot .*Not a directory" "$T/d2.log" || fail "rforkd did not log the failed twin"
kill "$ORIG2"

# --- 6. rfork PID
TWINS=()
ip netns exec "$NS_SRC" "$TWINPROG" "$MIB" > "$T/orig.out" 2>&1 &
ORIG=$!
PIDS+=($ORIG)
for _ in $(seq 300); do [ -s "$T/orig.out" ] && break; sleep 0.05; done
SUM=$(awk 'NR==1{print $2}' "$T/orig.out")
[ -n "$SUM" ] || fail "the test process printed nothing"

# check_twin N PID_FILE ERR_FILE: the twin runs and prints the original's checksum
check_twin() {
	local n=$1 out err=$3 twin outf first
	twin=$(cat "$2")
	[ -n "$twin" ] || { fail "rfork $n: no twin pid"; return; }
	TWINS+=("$twin")
	[ "$(wc -l < "$err")" = 1 ] || fail "rfork $n printed not one line on stderr"
	grep -q "new pid namespace" "$err" || fail "rfork $n did not say the twin got a new pid namespace"
	outf=$(sed -n 's/.*its stdout "\([^"]*\)".*/\1/p' "$err")
	for _ in $(seq 40); do [ -s "$outf" ] && break; sleep 0.05; done
	sleep 0.3
	kill -0 "$twin" 2>/dev/null || fail "rfork $n: twin $twin is not running"
	[ -s "$outf" ] || { fail "rfork $n: the twin printed nothing to \"$outf\""; return; }
	awk -v s="$SUM" '$2 != s {bad=1} END {exit bad}' "$outf" ||
		fail "rfork $n: the twin's memory checksum differs: $(head -2 "$outf")"
	first=$(awk 'NR==1{print $1}' "$outf")
	[ "$first" -gt 0 ] || fail "rfork $n: the twin started over instead of continuing"
}

if ! ip netns exec "$NS_SRC" "$RFORK" --host "$A_DST:7717" --key-file "$T/key" "$ORIG" \
	> "$T/f1.out" 2> "$T/f1.err"; then
	fail "rfork PID: $(cat "$T/f1.err")"
fi
cat "$T/f1.err"
check_twin 1 "$T/f1.out" "$T/f1.err"
kill -0 "$ORIG" 2>/dev/null || fail "the original died with rfork (without --move)"
BF1=$(bytes_of "$T/f1.err")

if ! ip netns exec "$NS_SRC" "$RFORK" --host "$A_DST:7717" --key-file "$T/key" "$ORIG" \
	> "$T/f2.out" 2> "$T/f2.err"; then
	fail "second rfork PID: $(cat "$T/f2.err")"
fi
cat "$T/f2.err"
check_twin 2 "$T/f2.out" "$T/f2.err"
BF2=$(bytes_of "$T/f2.err")
if [ -z "$BF1" ] || [ -z "$BF2" ] || [ $((BF2 * 10)) -gt "$BF1" ]; then
	fail "second rfork PID sent $BF2 bytes, first $BF1: more than 10%"
fi

# --attach: the twin's output comes back to rfork, whose status is the twin's
ip netns exec "$NS_SRC" "$RFORK" --host "$A_DST:7717" --key-file "$T/key" --attach "$ORIG" \
	> "$T/a.out" 2> "$T/a.err" &
RA=$!
PIDS+=($RA)
for _ in $(seq 100); do [ "$(wc -l < "$T/a.out")" -ge 4 ] && break; sleep 0.1; done
cat "$T/a.err"
TWA=$(head -1 "$T/a.out")
[ "$(tail -n +2 "$T/a.out" | wc -l)" -ge 3 ] || fail "rfork --attach relayed no output"
tail -n +2 "$T/a.out" | awk -v s="$SUM" '$2 != s {bad=1} END {exit bad}' ||
	fail "the attached twin's output differs: $(sed -n 2p "$T/a.out")"
grep -q "attached" "$T/a.err" || fail "rfork --attach did not say so"
# SIGTERM to rfork is forwarded: the twin ends, rfork exits with its status
kill -TERM $RA
wait $RA
RC=$?
[ $RC = 143 ] || fail "rfork --attach exited $RC, want 143 (twin ended by the forwarded SIGTERM)"
sleep 0.2
[ -n "$TWA" ] && kill -0 "$TWA" 2>/dev/null && { fail "the attached twin survived SIGTERM"; kill "$TWA"; }

if ! ip netns exec "$NS_SRC" "$RFORK" --host "$A_DST:7717" --key-file "$T/key" --move "$ORIG" \
	> "$T/f3.out" 2> "$T/f3.err"; then
	fail "rfork --move: $(cat "$T/f3.err")"
fi
cat "$T/f3.err"
check_twin 3 "$T/f3.out" "$T/f3.err"
wait "$ORIG" 2>/dev/null
kill -0 "$ORIG" 2>/dev/null && fail "rfork --move left the original running"
for tw in "${TWINS[@]}"; do kill "$tw" 2>/dev/null; done
sleep 0.3

# --- the daemons logged one line per session, and are still running
for p in "${DAEMONS[@]}"; do kill -0 "$p" 2>/dev/null || fail "an rforkd died"; done
echo "--- rforkd log"; cat "$T/d1.log" "$T/d2.log"
[ $failed = 0 ] && echo "ok: push $B1 bytes, similar push $B2 bytes; rfork PID $BF1 bytes, again $BF2"
exit $failed
