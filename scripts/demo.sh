#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The main job: warm-exec on a real slow-starting program, cold vs warm.
# As root on a fresh Debian 12: installs what is missing, builds, then runs
# jshell (the JDK's REPL, a JVM that takes seconds to start) answering
# System.out.println(6*7): once plainly, once through warm-exec's first
# (cold) run, then warm. Uses a temporary store, removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
	echo "demo: run as root (checkpoint/restore needs ptrace and pid namespaces)" >&2
	exit 1
fi
scripts/deps.sh openjdk-17-jdk-headless
scripts/build.sh
we=$PWD/build/src/warm-exec
wf=$PWD/build/src/warmfork

work=$(mktemp -d /tmp/warmfork-demo.XXXXXX)
export WARMFORK_STORE=$work/store
cleanup() {
	local rc=$?
	# The keeper leaves once its snapshot is forgotten.
	[ -n "${jshell:-}" ] && "$we" --forget -- "${cmd[@]}" >/dev/null 2>&1 || true
	rm -rf "$work"
	[ $rc = 0 ] || echo "demo: FAILED (exit $rc)" >&2
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

"$wf" check >"$work/check.txt" 2>&1 || { cat "$work/check.txt"; exit 1; }
echo "warmfork check: $(tail -n1 "$work/check.txt")"

jshell=$(command -v jshell)
cmd=("$jshell" --execution local -q)
input='System.out.println(6*7)'
# Before the snapshot, warm-exec feeds jshell 30 snippets of the same kind
# (--warmup): the snapshot has compiled and run snippets, so a warm run's
# snippet takes warm code paths. The answer to 6*7 is computed after it.
warmup=$(printf 'System.out.println(%d*3)\\n' $(seq 100 129))

# Run once; print the milliseconds until the answer (42) appeared on its
# output, or fail. The program then ends on its own (stdin reaches EOF).
timed() {
	local t0 t1
	t0=$(date +%s%N)
	t1=$(printf '%s\n' "$input" | "$@" 2>/dev/null |
		while IFS= read -r line; do
			case $line in 42|*[!0-9]42) date +%s%N ;; esac
		done | head -n1)
	[ -n "$t1" ] || { echo "demo: no answer from $*" >&2; return 1; }
	echo "$(( (t1 - t0) / 1000000 ))"
}

printf '\n%s\n' "jshell answering $input: time to the answer"
plain=$(timed "${cmd[@]}")
printf '  %-34s %6s ms\n' "plain jshell (cold)" "$plain"
first=$(timed "$we" --warmup="$warmup" -- "${cmd[@]}")
printf '  %-34s %6s ms\n' "warm-exec, first run (cold + save)" "$first"
rst=$(timed "$we" --keep-warm=0 --warmup="$warmup" -- "${cmd[@]}")
printf '  %-34s %6s ms\n' "warm-exec, warm run (restore)" "$rst"
# A warm run leaves a keeper holding the snapshot as a template: later runs
# are copies of it (docs/warm-exec.md, "Keeping a snapshot warm").
t=$(timed "$we" --warmup="$warmup" -- "${cmd[@]}")
printf '  %-34s %6s ms\n' "warm-exec, warm run (restore)" "$t"
for _ in $(seq 100); do
	ls "$WARMFORK_STORE"/warm-exec/*.keep >/dev/null 2>&1 && break
	sleep 0.2
done
best=
for i in 1 2 3; do
	t=$(timed "$we" --warmup="$warmup" -- "${cmd[@]}")
	printf '  %-34s %6s ms\n' "warm-exec, warm run (kept copy)" "$t"
	if [ -z "$best" ] || [ "$t" -lt "$best" ]; then best=$t; fi
done
awk -v c="$plain" -v r="$rst" -v w="$best" 'BEGIN {
	printf "  warm is %.1fx faster than cold (%.1fx restoring from the store)\n", c / w, c / r }'
printf '\n%s\n' "the snapshot in the store ($WARMFORK_STORE)"
"$we" --list
"$wf" ls
