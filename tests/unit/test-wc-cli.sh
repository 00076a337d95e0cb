#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# The store subcommands end to end: ingest, ls, inspect, verify, rm, gc,
# their JSON, their exit codes (0 ok, 1 error, 2 usage) and their reports.
# Usage: test-wc-cli.sh WARMFORK
set -u
W=${1:?usage: $0 WARMFORK}
command -v python3 >/dev/null || { echo "SKIP: python3 needed to parse JSON"; exit 77; }
T=$(mktemp -d "${TMPDIR:-/tmp}/wc-cli-XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
S="$T/store"
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
wf() { "$W" --store "$S" "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# Two files: b shares its first MiB with a, then has its own MiB; a has
# 3 MiB of its own (so that after rm a, its pack is mostly dead).
head -c 1048576 /dev/urandom > "$T/a1" && head -c 3145728 /dev/urandom > "$T/a2" &&
head -c 1048576 /dev/urandom > "$T/b2" || exit 1
cat "$T/a1" "$T/a2" > "$T/a"; cat "$T/a1" "$T/b2" > "$T/b"

# A store that does not exist lists as empty and is not created.
out=$(wf ls --json) || fail "ls of a missing store failed"
[ "$out" = "[]" ] || fail "ls of a missing store printed $out"
[ ! -e "$S" ] || fail "ls created the store"

A=$(wf ingest --label k=v "$T/a") || fail "ingest a"
B=$(wf ingest "$T/b") || fail "ingest b"
[ ${#A} -eq 16 ] && [ ${#B} -eq 16 ] || fail "ids: '$A' '$B'"

n=$(wf ls --json | json 'len(d)')
[ "$n" = 2 ] || fail "ls lists $n snapshots"
first=$(wf ls --json | json 'd[0]["id"]')
[ "$first" = "$B" ] || fail "ls is not newest first ($first)"

# inspect by prefix: 768 unique pages, 256 shared with the other.
P=$(printf %.6s "$A")
wf inspect --json "$P" > "$T/ia.json" || fail "inspect $P"
[ "$(json 'd["id"]' < "$T/ia.json")" = "$A" ] || fail "inspect resolved the wrong id"
[ "$(json 'd["labels"]["k"]' < "$T/ia.json")" = "v" ] || fail "label k lost"
[ "$(json 'd["unique_bytes"]' < "$T/ia.json")" = 3145728 ] || fail "unique bytes $(json 'd["unique_bytes"]' < "$T/ia.json")"
[ "$(json 'd["shared_bytes"]' < "$T/ia.json")" = 1048576 ] || fail "shared bytes"
[ "$(json 'd["areas"][0]["pages"]["data"]' < "$T/ia.json")" = 1024 ] || fail "data pages"
wf inspect "$A" | grep -q "^label    k=v" || fail "text inspect lacks the label"

wf verify > "$T/v.out" || fail "verify of a clean store failed"
grep -q "^ok: 1280 distinct pages checked" "$T/v.out" || fail "verify said: $(cat "$T/v.out")"

# Usage errors exit 2, unknown snapshots 1 with one line on stderr.
wf inspect >/dev/null 2>&1; [ $? = 2 ] || fail "inspect without SNAP did not exit 2"
wf rm >/dev/null 2>&1; [ $? = 2 ] || fail "rm without SNAP did not exit 2"
wf ingest >/dev/null 2>&1; [ $? = 2 ] || fail "ingest without files did not exit 2"
wf inspect 0000000000000000 2>"$T/err" >/dev/null; [ $? = 1 ] || fail "unknown snapshot did not exit 1"
[ "$(wc -l < "$T/err")" = 1 ] || fail "unknown snapshot: $(cat "$T/err")"
wf ingest "$T/missing" >/dev/null 2>"$T/err"; [ $? = 1 ] || fail "ingest of a missing file did not exit 1"
grep -q "$T/missing" "$T/err" || fail "ingest error does not name the file: $(cat "$T/err")"

# Damage: flip a byte of the first stored page of a (shared with b).
pack=$(ls "$S"/packs/*.pack | head -n 1)
python3 - "$pack" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(100); c = f.read(1); f.seek(100); f.write(bytes([c[0] ^ 1]))
PY
wf verify > "$T/v.out" 2> "$T/v.err"; rc=$?
[ $rc = 1 ] || fail "verify of a damaged store exited $rc"
[ "$(grep -c "does not match" "$T/v.out")" = 2 ] || fail "expected one line per snapshot: $(cat "$T/v.out")"
grep -q "snapshot $A area 0 ($T/a) page 0 at 0x10000000" "$T/v.out" || fail "line does not name snapshot/area/page: $(cat "$T/v.out")"
wf verify "$B" > "$T/v.out" 2>/dev/null; [ $? = 1 ] || fail "verify of b missed the damage"
[ "$(wc -l < "$T/v.out")" = 1 ] || fail "verify b: $(cat "$T/v.out")"
python3 - "$pack" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(100); c = f.read(1); f.seek(100); f.write(bytes([c[0] ^ 1]))
PY
wf verify >/dev/null || fail "verify after repair failed"

# rm a, gc: a's own MiB goes, b stays intact.
wf rm "$A" > "$T/rm.out" || fail "rm"
[ "$(cat "$T/rm.out")" = "$A" ] || fail "rm printed $(cat "$T/rm.out")"
wf gc --json > "$T/gc.json" || fail "gc"
before=$(json 'd["bytes_before"]' < "$T/gc.json"); after=$(json 'd["bytes_after"]' < "$T/gc.json")
[ "$before" = 5242880 ] && [ "$after" = 2097152 ] || fail "gc: $before -> $after bytes"
wf verify "$B" >/dev/null || fail "b damaged by gc"
[ "$(wf inspect --json "$B" | json 'd["unique_bytes"]')" = 2097152 ] || fail "b's pages not all unique now"
wf gc | grep -q "^gc: reclaimed 0 B" || fail "second gc reclaimed something"

[ $fails = 0 ] || { echo "wc-cli: $fails failure(s)"; exit 1; }
echo "wc-cli: ok"
