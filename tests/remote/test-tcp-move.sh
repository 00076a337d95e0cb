#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# rfork --move of a server with an established TCP connection, across three
# network namespaces joined by a bridge (in the client's namespace):
#
#   src (10.N.1)  --veth--+
#                         br0 (client 10.N.3)      service address 10.N.100
#   dst (10.N.2)  --veth--+                        (starts on src)
#
# The server (python3, in src) accepts one client on the service address
# and answers every line "n" with "n total" (a running sum: the state that
# must move). The client (python3, in the client namespace) sends a line
# every 20 ms and checks each answer for the whole run, on one connection:
# it never reconnects, and any reset, wrong or missing answer fails it.
#  1. rfork --move --move-addr to an rforkd that does not take addresses
#     (no --move-addr-dev): rfork fails in one line, the original runs on
#     (same pid, address back on src) and keeps answering on the same
#     connection;
#  2. rfork --move --move-addr to an rforkd with --move-addr-dev: the twin
#     runs on dst with the address (gone from src), the original is gone,
#     and the client's conversation goes on with the twin (its answers go
#     on from the sum the original had), no reconnect.
# With "v6" the same over IPv6 (fd00:N::/64, the receiver announces the
# address with unsolicited neighbour advertisements instead of ARP).
# Exit 0 pass, 1 fail, 77 skip.
#
# usage: test-tcp-move.sh RFORKD RFORK [v4|v6]
set -u
RFORKD=$1 RFORK=$2 FAM=${3:-v4}

. "$(dirname "$0")/hosts.sh"
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces)"
command -v ip >/dev/null || skip "needs iproute2"
PY=$(command -v python3) || skip "needs python3 (server and client)"

ID=$$
NS_SRC=tmsrc$ID NS_DST=tmdst$ID NS_CLI=tmcli$ID
if [ "$FAM" = v6 ]; then
	NET=fd00:$(printf %x $((ID % 60000 + 1))):
	A_SRC=${NET}:1 A_DST=${NET}:2 A_CLI=${NET}:3 SVC=${NET}:100 PLEN=64 IPF=-6 NODAD=nodad
	HOSTPORT() { echo "[$1]:$2"; }
else
	NET=10.$((150 + ID % 50)).$((ID / 50 % 250))
	A_SRC=$NET.1 A_DST=$NET.2 A_CLI=$NET.3 SVC=$NET.100 PLEN=24 IPF=-4 NODAD=
	HOSTPORT() { echo "$1:$2"; }
fi
PORT=8080
T=$(mktemp -d /tmp/rf-tcpmove.XXXXXX)
PIDS=()
failed=0

cleanup() {
	# The twin first, while its rforkd (a subreaper) is there to reap it
	# and its namespace's init: pid 1 here reaps nothing.
	if [ -s "$T/twin.pid" ] && kill -9 "$(cat "$T/twin.pid")" 2>/dev/null; then
		sleep 0.3
	fi
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	ip netns del "$NS_SRC" 2>/dev/null
	ip netns del "$NS_DST" 2>/dev/null
	ip netns del "$NS_CLI" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap "exit 1" TERM INT HUP
in_cli() { ip netns exec "$NS_CLI" "$@"; }

for ns in "$NS_SRC" "$NS_DST" "$NS_CLI"; do
	ip netns add "$ns" || skip "cannot create network namespaces"
done
in_cli ip link add br0 type bridge || skip "no bridge"
ip link add tms$ID type veth peer name tmsb$ID || skip "no veth"
ip link add tmd$ID type veth peer name tmdb$ID
ip link set tms$ID netns "$NS_SRC"
ip link set tmd$ID netns "$NS_DST"
ip link set tmsb$ID netns "$NS_CLI"
ip link set tmdb$ID netns "$NS_CLI"
in_cli ip link set tmsb$ID master br0
in_cli ip link set tmdb$ID master br0
in_src ip addr add "$A_SRC/$PLEN" dev tms$ID $NODAD
# (IPv6: deprecated, so that src's own connections, rfork's included, do
# not take the newest address as their source; the server binds to it)
in_src ip addr add "$SVC/$PLEN" dev tms$ID $NODAD ${NODAD:+preferred_lft 0}
in_dst ip addr add "$A_DST/$PLEN" dev tmd$ID $NODAD
in_cli ip addr add "$A_CLI/$PLEN" dev br0 $NODAD
for ns in "$NS_SRC" "$NS_DST" "$NS_CLI"; do ip netns exec "$ns" ip link set lo up; done
in_src ip link set tms$ID up
in_dst ip link set tmd$ID up
in_cli ip link set tmsb$ID up
in_cli ip link set tmdb$ID up
in_cli ip link set br0 up
for _ in $(seq 50); do in_cli ping $IPF -c1 -W1 "$SVC" >/dev/null 2>&1 && break; sleep 0.1; done

head -c 32 /dev/urandom > "$T/key"; chmod 600 "$T/key"

cat > "$T/server.py" <<'EOF'
import os, socket, sys
os.closerange(3, 1 << 16)	# whatever the test's caller left open
addr, port, ready = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ls = socket.socket(socket.AF_INET6 if ':' in addr else socket.AF_INET)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((addr, port))
ls.listen(1)
with open(ready + '.tmp', 'w') as f:
    f.write('%d\n' % os.getpid())
os.rename(ready + '.tmp', ready)
c, _ = ls.accept()
ls.close()
total, buf = 0, b''
while True:
    d = c.recv(4096)
    if not d:
        break
    buf += d
    while b'\n' in buf:
        line, buf = buf.split(b'\n', 1)
        n = int(line)
        total += n
        c.sendall(b'%d %d\n' % (n, total))
EOF
cat > "$T/client.py" <<'EOF'
import os, socket, sys, time
addr, port, progress, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
c = socket.create_connection((addr, port), timeout=5)
c.settimeout(20)
me = c.getsockname()
total, n, buf, worst = 0, 0, b'', 0.0
f = c.makefile('rb')
while not os.path.exists(stop):
    n += 1
    t0 = time.time()
    c.sendall(b'%d\n' % n)
    line = f.readline()
    if not line:
        sys.exit('client: EOF after %d answers' % (n - 1))
    total += n
    got = line.split()
    if [int(x) for x in got] != [n, total]:
        sys.exit('client: answer %r to %d, want %d %d' % (line, n, n, total))
    worst = max(worst, time.time() - t0)
    if c.getsockname() != me:
        sys.exit('client: the connection changed')
    with open(progress + '.tmp', 'w') as p:
        p.write('%d %.3f\n' % (n, worst))
    os.rename(progress + '.tmp', progress)
    time.sleep(0.02)
print('client: %d answers on one connection, longest wait %.3f s' % (n, worst))
EOF

answers() { awk '{print $1}' "$T/progress" 2>/dev/null || echo 0; }
# wait_answers N: until the client has N answers (10 s)
wait_answers() {
	for _ in $(seq 200); do
		[ "$(answers)" -ge "$1" ] 2>/dev/null && return 0
		kill -0 "$CLIENT" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# rforkd NAME PORT [ARGS...] in dst
start_rforkd() {
	local name=$1 port=$2; shift 2
	# ip netns exec execs: $! is the daemon itself
	ip netns exec "$NS_DST" "$RFORKD" --listen "$(HOSTPORT "$A_DST" "$port")" --key-file "$T/key" --store "$T/$name.store" \
		--output-dir "$T/$name.out" "$@" < /dev/null > /dev/null 2> "$T/$name.log" &
	PIDS+=($!)
	for _ in $(seq 100); do
		grep -q "listening on" "$T/$name.log" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "rforkd $name did not start:"; cat "$T/$name.log"; exit 1
}
start_rforkd plain 7731
start_rforkd takes 7732 --move-addr-dev tmd$ID

ip netns exec "$NS_SRC" "$PY" "$T/server.py" "$SVC" $PORT "$T/server.pid" < /dev/null > "$T/server.out" 2>&1 &
ORIG=$!
PIDS+=($ORIG)
for _ in $(seq 100); do [ -s "$T/server.pid" ] && break; sleep 0.05; done
[ "$(cat "$T/server.pid" 2>/dev/null)" = "$ORIG" ] || { fail "the server did not start"; exit 1; }
ip netns exec "$NS_CLI" "$PY" "$T/client.py" "$SVC" $PORT "$T/progress" "$T/stop" > "$T/client.out" 2>&1 &
CLIENT=$!
PIDS+=($CLIENT)
wait_answers 20 || { fail "the client got no answers: $(cat "$T/client.out")"; exit 1; }

# --- 1. the receiver does not take addresses: the original runs on
N0=$(answers)
if in_src "$RFORK" --host "$(HOSTPORT "$A_DST" 7731)" --key-file "$T/key" --move --move-addr "$SVC/$PLEN" \
	"$ORIG" > "$T/f1.out" 2> "$T/f1.err"; then
	fail "rfork --move-addr to a receiver without --move-addr-dev succeeded"
fi
cat "$T/f1.err"
[ "$(grep -c . "$T/f1.err")" = 1 ] || fail "the failed rfork printed not one line"
grep -q "move-addr-dev" "$T/f1.err" || fail "the failed rfork does not say why"
kill -0 "$ORIG" 2>/dev/null || fail "the original died with a failed rfork --move"
in_src ip $IPF addr show | grep -q "inet6\\? $SVC/" || fail "the service address is not back on src"
in_dst ip $IPF addr show | grep -q "inet6\\? $SVC/" && fail "the receiver kept the service address"
wait_answers $((N0 + 30)) || fail "no answers from the original after the failed move: $(cat "$T/client.out")"
grep -q "State:.*[RS]" /proc/"$ORIG"/status || fail "the original is not running"
grep -q "TracerPid:[[:space:]]*0" /proc/"$ORIG"/status || fail "the original is still traced"

# --- 2. the move
N1=$(answers)
if ! in_src "$RFORK" --host "$(HOSTPORT "$A_DST" 7732)" --key-file "$T/key" --move --move-addr "$SVC/$PLEN" \
	"$ORIG" > "$T/f2.out" 2> "$T/f2.err"; then
	fail "rfork --move --move-addr: $(cat "$T/f2.err")"
fi
cat "$T/f2.err"
TWIN=$(head -1 "$T/f2.out")
echo "$TWIN" > "$T/twin.pid"
# dead: a zombie of ours (reap it) or gone
for _ in $(seq 100); do
	st=$(awk '/^State:/ {print $2}' /proc/"$ORIG"/status 2>/dev/null)
	[ -z "$st" ] || [ "$st" = Z ] && break
	sleep 0.05
done
if [ -z "$st" ] || [ "$st" = Z ]; then
	wait "$ORIG" 2>/dev/null
else
	fail "rfork --move left the original running"
fi
[ -n "$TWIN" ] && kill -0 "$TWIN" 2>/dev/null || fail "the twin ($TWIN) is not running"
in_src ip $IPF addr show | grep -q "inet6\\? $SVC/" && fail "the service address is still on src"
in_dst ip $IPF addr show dev tmd$ID | grep -q "inet6\\? $SVC/" || fail "the service address is not on dst"
wait_answers $((N1 + 50)) || fail "the conversation did not go on with the twin: $(cat "$T/client.out")"
in_dst ss -tn state established "( sport = :$PORT )" | grep -q "$A_CLI" ||
	fail "no established connection to the client on dst"
in_src ss -tn state established "( sport = :$PORT )" | grep -q "$A_CLI" &&
	fail "src still has the connection"
touch "$T/stop"
wait "$CLIENT"
RC=$?
cat "$T/client.out"
[ $RC = 0 ] || fail "the client failed (exit $RC)"
[ $failed = 0 ] && echo "ok: $(cat "$T/client.out") ($N1 before the move)"
exit $failed
