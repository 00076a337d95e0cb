#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The page store on real data (the main job is scripts/demo.sh: warm-exec).
# As root on a fresh Debian 12: installs what is missing, builds, checks the
# kernel, then stores the memory of a running python3 (twice) and a few large
# files in a temporary store, and shows ls, inspect (dedup), verify, rm + gc
# and a summary. The program and the store are removed on any exit.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
	echo "demo: run as root (it reads another process's memory)" >&2
	exit 1
fi
scripts/deps.sh
scripts/build.sh
wf=$PWD/build/src/warmfork

work=$(mktemp -d /tmp/warmfork-demo.XXXXXX)
store=$work/store
prog_pid=
cleanup() {
	local rc=$?
	if [ -n "$prog_pid" ]; then
		kill -KILL "$prog_pid" 2>/dev/null || true
		wait "$prog_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
	[ $rc = 0 ] || echo "demo: FAILED (exit $rc)" >&2
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

step() { printf '\n== %s\n' "$*"; }
wfs() { "$wf" --store "$store" "$@"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
store_bytes() { du -sb --apparent-size "$store" | cut -f1; }
# Ingest, print the new snapshot's id (16 hex digits) or fail.
ingest() {
	local id
	id=$(wfs ingest "$@" | grep -oE '\b[0-9a-f]{16}\b' | tail -n1)
	[ -n "$id" ] || { echo "demo: warmfork ingest $* printed no snapshot id" >&2; return 1; }
	echo "$id"
}

step "warmfork check (kernel features)"
if "$wf" check >"$work/check.txt" 2>&1; then
	tail -n1 "$work/check.txt"
else
	grep -E 'MISSING|missing' "$work/check.txt" || true
	echo "(the store demo below does not need the missing features)"
fi

step "A real program: python3 importing most of its standard library"
python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3)
cat >"$work/load.py" <<'EOF'
import importlib, sys, time
# Modules that open windows, print, or install things on import.
skip = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo",
        "lib2to3", "ensurepip", "venv", "pydoc_data"}
n = 0
for name in sorted(sys.stdlib_module_names):
    if name in skip or name.startswith("_"):
        continue
    try:
        importlib.import_module(name)
        n += 1
    except Exception:
        pass
with open(sys.argv[1], "w") as f:
    f.write("%d\n" % n)
while True:
    time.sleep(3600)
EOF
"$python" "$work/load.py" "$work/ready" </dev/null >/dev/null 2>&1 &
prog_pid=$!
for _ in $(seq 300); do
	[ -s "$work/ready" ] && break
	kill -0 "$prog_pid" 2>/dev/null || { echo "demo: $python died" >&2; exit 1; }
	sleep 0.1
done
[ -s "$work/ready" ] || { echo "demo: $python not ready after 30 s" >&2; exit 1; }
rss_kib=$(awk '/^VmRSS/ { print $2 }' "/proc/$prog_pid/status")
echo "$python (pid $prog_pid) imported $(cat "$work/ready") modules; resident $(mib $((rss_kib * 1024)))"

step "warmfork ingest --pid $prog_pid, twice"
id1=$(ingest --pid "$prog_pid")
after1=$(store_bytes)
echo "snapshot $id1: store is now $(mib "$after1")"
id2=$(ingest --pid "$prog_pid")
after2=$(store_bytes)
echo "snapshot $id2: store grew by $(mib $((after2 - after1))) (its pages are already stored)"

step "warmfork ingest FILE...: the python binary, libc and large libraries"
# The binary and libc are mapped by the program too: their pages dedup
# against its memory snapshots.
mapfile -t files < <(
	readlink -f "$python"
	readlink -f /lib/x86_64-linux-gnu/libc.so.6
	find /usr/lib/x86_64-linux-gnu -maxdepth 1 -type f -name '*.so*' -size -64M \
		-printf '%s %p\n' | sort -rn | head -n 6 | cut -d' ' -f2-)
file_bytes=$(du -cb --apparent-size "${files[@]}" | tail -n1 | cut -f1)
id3=$(ingest "${files[@]}")
after3=$(store_bytes)
echo "snapshot $id3: ${#files[@]} files, $(mib "$file_bytes"); store grew by $(mib $((after3 - after2)))"

step "warmfork ls"
wfs ls
logical=$(wfs ls --json | "$python" -c \
	'import json, sys; print(sum(s["logical_bytes"] for s in json.load(sys.stdin)))')

# inspect prints one line per area: show its header and totals.
show_inspect() {
	wfs inspect "$1" >"$work/inspect.txt"
	sed -n '1,/^$/p' "$work/inspect.txt" | sed '/^$/d'
	echo "... $(grep -cE '^ +[0-9]+ +0x' "$work/inspect.txt") areas ..."
	tail -n2 "$work/inspect.txt"
}
step "warmfork inspect $id2 (second memory snapshot)"
show_inspect "$id2"
step "warmfork inspect $id3 (files)"
show_inspect "$id3"

step "warmfork verify (rehash every stored page)"
wfs verify

step "warmfork rm $id1; warmfork gc; warmfork verify $id2"
wfs rm "$id1" >/dev/null
wfs gc
wfs verify "$id2"
final=$(store_bytes)

step "Summary"
echo "3 snapshots ingested, $(mib "$logical") logical; store on disk $(mib "$after3")" \
	"($(awk -v a="$after3" -v b="$logical" 'BEGIN { printf "%.2f", a / b }') of logical)"
echo "the second memory snapshot added $(mib $((after2 - after1))) to the store"
echo "after rm + gc: $(mib "$final") on disk, every remaining page verified"
