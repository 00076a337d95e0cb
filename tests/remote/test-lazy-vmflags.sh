#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# rfork --lazy reads the vmas' VmFlags without /proc/PID/smaps (a BPF vma
# iterator, engine/dump/vmflags.c: smaps walks every page table entry, the
# largest per-page cost before a lazy twin ran). A process whose vmas carry
# every flag the engine records (vmflags-prog: dc wf hg nh dd rr sr mg on
# 4-page ranges of a written region, a MAP_GROWSDOWN and a MAP_NORESERVE
# mapping) is rforked --lazy between two network namespaces: rfork says
# the flags came without smaps, and each flagged vma of the twin carries
# the same recorded flags (gd dc hg nh dd wf mg lo lf rr sr) as the
# original's, and the original's never-written pages are still absent (the
# sender does not read them). Then two plain (pipelined) rforks of the same process, which
# lack no page on the receiver, succeed. Exit 0 pass, 1 fail, 77 skip.
#
# usage: test-lazy-vmflags.sh RFORKD RFORK VMFLAGSPROG
set -u
RFORKD=$1 RFORK=$2 PROG=$3

. "$(dirname "$0")/hosts.sh"
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, userfaultfd, BPF)"
command -v ip >/dev/null || skip "needs iproute2"

hosts_names rv 100
T=$(mktemp -d /tmp/rf-vmflags.XXXXXX)
PIDS=()
TWIN=
failed=0

cleanup() {
	# the twin first, while rforkd (a subreaper) still reaps it
	[ -n "$TWIN" ] && kill -9 "$TWIN" 2>/dev/null && sleep 0.3
	hosts_down
}
trap cleanup EXIT
trap "exit 1" TERM INT HUP

hosts_up
head -c 32 /dev/urandom > "$T/key"; chmod 600 "$T/key"

ip netns exec "$NS_DST" "$RFORKD" --listen "$A_DST:7717" --key-file "$T/key" --store "$T/dst" \
	--output-dir "$T/out" < /dev/null > /dev/null 2> "$T/rforkd.log" &
PIDS+=($!)
for _ in $(seq 100); do grep -q "listening on" "$T/rforkd.log" && break; sleep 0.05; done
grep -q "listening on" "$T/rforkd.log" || { echo "FAIL: rforkd did not start: $(cat "$T/rforkd.log")"; exit 1; }

# only stdio: the engine refuses descriptors it cannot capture
(
	for fd in $(ls /proc/$BASHPID/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
	exec ip netns exec "$NS_SRC" "$PROG" < /dev/null > "$T/prog.out" 2>&1
) &
ORIG=$!
PIDS+=($ORIG)
for _ in $(seq 100); do grep -q '^ready' "$T/prog.out" && break; sleep 0.05; done
grep -q '^ready' "$T/prog.out" || { echo "FAIL: vmflags-prog did not get ready: $(cat "$T/prog.out")"; exit 1; }

ip netns exec "$NS_SRC" "$RFORK" --host "$A_DST:7717" --key-file "$T/key" --timeout 30 --lazy \
	"$ORIG" > "$T/rfork.out" 2> "$T/rfork.err" ||
	{ echo "FAIL: rfork --lazy failed: $(cat "$T/rfork.err"); rforkd: $(tail -2 "$T/rforkd.log")"; exit 1; }
cat "$T/rfork.err"
TWIN=$(cat "$T/rfork.out")
[ -n "$TWIN" ] && [ -d "/proc/$TWIN" ] || { echo "FAIL: no twin running (pid '$TWIN')"; exit 1; }
if [ -r /sys/kernel/btf/vmlinux ]; then
	grep -q "(vm flags without smaps)" "$T/rfork.err" ||
		fail "rfork --lazy read smaps although this kernel has BTF (and we are root)"
else
	echo "note: no kernel BTF here: the flags came from smaps"
fi

# the recorded VmFlags (engine/include/engine.h ENG_MADV_*) of the vma at $2 in pid $1
flags() {
	awk -v a="$2" '/^[0-9a-f]+-/ { split($1, r, "-"); cur = r[1] }
		/^VmFlags:/ && cur == a { for (i = 2; i <= NF; i++)
			if ($i ~ /^(gd|dc|hg|nh|dd|wf|mg|lo|lf|rr|sr)$/) print $i }' "/proc/$1/smaps" | sort | tr '\n' ' '
}
checked=0
while read -r name addr; do
	[ "$name" = ready ] && continue
	[ "$name" = nr ] && continue	# MAP_NORESERVE: only present, nothing recorded
	o=$(flags "$ORIG" "$addr") t=$(flags "$TWIN" "$addr")
	case " $o " in *" $name "*) ;; *) fail "original: vma $addr lacks $name ($o)";; esac
	[ "$o" = "$t" ] || fail "vma $addr ($name): original has '$o', twin has '$t'"
	checked=$((checked + 1))
done < "$T/prog.out"
[ "$checked" -ge 8 ] || fail "only $checked flagged vmas compared"

# The MAP_NORESERVE mapping has only its first page written: the engine
# announced it whole without a walk, so the sender must have told its
# absent pages apart (PAGEMAP_SCAN) instead of reading them, which would
# map the zero page into the original there (pagemap: present).
NRA=$(awk '$1 == "nr" { print $2 }' "$T/prog.out")
present=$(python3 - "$ORIG" "$NRA" <<'PY'
import struct, sys
pid, addr = int(sys.argv[1]), int(sys.argv[2], 16)
with open("/proc/%d/pagemap" % pid, "rb") as f:
    f.seek(addr // 4096 * 8)
    print(" ".join(str(struct.unpack("<Q", f.read(8))[0] >> 63) for _ in range(4)))
PY
)
[ "$present" = "1 0 0 0" ] ||
	fail "the original's half-written mapping has pages present '$present' after rfork --lazy (want 1 0 0 0)"

# The same process twice more with plain (pipelined, keyed) rfork: the
# receiver's store holds every page by then, so these lack none (a push
# with no lazy page at all must work too).
for i in 1 2; do
	if ip netns exec "$NS_SRC" "$RFORK" --host "$A_DST:7717" --key-file "$T/key" --timeout 30 \
		"$ORIG" > "$T/p$i.out" 2> "$T/p$i.err"; then
		P=$(cat "$T/p$i.out")
		[ -n "$P" ] && kill -9 "$P" 2>/dev/null
	else
		fail "pipelined rfork $i of an unchanged process failed: $(cat "$T/p$i.err")"
	fi
done
[ "$failed" = 0 ] && echo "PASS ($checked flagged vmas, the same flags in the twin)"
exit "$failed"
