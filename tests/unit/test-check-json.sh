#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# `warmfork check --json` is one valid JSON object that agrees with the exit
# status and with the table that `warmfork check` prints.
# Usage: test-check-json.sh PATH/TO/warmfork
set -u
wf=$1
command -v python3 >/dev/null || { echo "SKIP: python3 not installed"; exit 77; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

"$wf" check --json >"$tmp/json" 2>"$tmp/json.err"
json_rc=$?
"$wf" check >"$tmp/table" 2>"$tmp/table.err"
table_rc=$?

exec python3 - "$tmp" "$json_rc" "$table_rc" <<'PY'
import json, sys
tmp, json_rc, table_rc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fail = []
with open(tmp + "/json") as f:
    text = f.read()
try:
    d = json.loads(text)
except ValueError as e:
    print("FAIL: --json output is not JSON:", e)
    print(text[:2000])
    sys.exit(1)
if not isinstance(d, dict):
    fail.append("top level is not an object")
feats = d.get("features", [])
if not feats:
    fail.append("no features")
for x in feats:
    for k, t in (("name", str), ("supported", bool), ("required", bool),
                 ("purpose", str), ("detail", str)):
        if not isinstance(x.get(k), t):
            fail.append("feature %r: %s is not %s" % (x.get("name"), k, t.__name__))
    if x.get("supported") != (x.get("error") is None):
        fail.append("feature %r: supported but error set, or the reverse" % x.get("name"))
missing = [x["name"] for x in feats if x.get("required") and not x.get("supported")]
if d.get("missing_required") != missing:
    fail.append("missing_required %r, expected %r" % (d.get("missing_required"), missing))
if d.get("ok") != (not missing):
    fail.append("ok=%r with missing %r" % (d.get("ok"), missing))
if json_rc != (1 if missing else 0):
    fail.append("exit status %d with missing %r" % (json_rc, missing))
if table_rc != json_rc:
    fail.append("table exit %d, json exit %d" % (table_rc, json_rc))
if missing:
    err = open(tmp + "/json.err").read()
    if not all(m in err for m in missing):
        fail.append("stderr does not name every missing feature: %r" % err)
if not isinstance(d.get("values", {}).get("pid_max"), int):
    fail.append("values.pid_max missing")

# The table: one row per feature, same order and status.
rows = {}
order = []
for line in open(tmp + "/table"):
    w = line.split()
    if len(w) >= 3 and w[1] in ("supported", "MISSING") and w[2] in ("required", "optional"):
        rows[w[0]] = (w[1] == "supported", w[2] == "required")
        order.append(w[0])
if order != [x["name"] for x in feats]:
    fail.append("table rows %r differ from json %r" % (order, [x["name"] for x in feats]))
for x in feats:
    if rows.get(x["name"]) != (x["supported"], x["required"]):
        fail.append("feature %r: table says %r" % (x["name"], rows.get(x["name"])))

for m in fail:
    print("FAIL:", m)
if fail:
    sys.exit(1)
print("check --json: %d features, valid and consistent with the table" % len(feats))
PY
