#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Plot one bench-warm-exec JSON line (cold vs warm per program) as a PNG.
#   bench/warm-exec/plot.sh RESULT.json OUT.png
# Needs gnuplot (Debian: gnuplot-nox), installed here only when missing: the
# plot is documentation, nothing of warmfork depends on it.
set -euo pipefail
json=$1 out=$2
if ! command -v gnuplot >/dev/null; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gnuplot-nox >/dev/null
fi
dat=$(mktemp)
trap 'rm -f "$dat"' EXIT
# Columns: label, plain cold, first warm-exec run, warm restore (median),
# warm copy of the kept template (median); title line.
/usr/bin/python3 - "$json" "$dat" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
names = {"jshell": "jshell --execution local: 6*7", "python": "python3: import %s, compute"}
with open(sys.argv[2], "w") as f:
    f.write("# %s load1 %.1f-%.1f %s, %d cpus\n" % (r["date"], r["load1_start"], r["load1_end"],
                                                   r.get("cpu", "?"), r["cpus"]))
    for k in ("jshell", "python"):
        if k in r and r[k].get("warm_ms"):
            p = r[k]
            label = names[k] % p["stack"] if k == "python" else names[k]
            f.write('"%s\\nwarm %.1fx faster" %.1f %.1f %.1f %.1f\n' % (
                label, p["speedup"], p["cold_ms"], p["first_ms"],
                p.get("warm_restore_ms") or p["warm_ms"], p["warm_ms"]))
PY
title=$(/usr/bin/python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print("warm-exec: time to the first correct answer, %s, %d vCPU %s, load %.0f" % (r["date"][:16].replace("T"," ")+" UTC", r["cpus"], r.get("cpu",""), r["load1_start"]))' "$json")
gnuplot <<GP
set terminal pngcairo size 900,520 font "sans,11"
set output "$out"
set title "$title"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [5:30000]
set ylabel "wall time, ms (log scale)"
set grid ytics
set key top right
set xtics nomirror
set bmargin 4.5
set xrange [-0.6:1.6]
plot "$dat" using 2:xtic(1) title "cold (plain command)" lc rgb "#c0392b", \
     "" using 3 title "warm-exec, first run (warms)" lc rgb "#e67e22", \
     "" using 4 title "warm-exec, restore from the store (median)" lc rgb "#7fb3d5", \
     "" using 5 title "warm-exec, copy of the kept template (median)" lc rgb "#2471a3", \
     "" using (\$0-0.34):(\$2*1.25):(sprintf("%.0f", \$2)) with labels notitle, \
     "" using (\$0-0.11):(\$3*1.25):(sprintf("%.0f", \$3)) with labels notitle, \
     "" using (\$0+0.11):(\$4*1.25):(sprintf("%.0f", \$4)) with labels notitle, \
     "" using (\$0+0.34):(\$5*1.25):(sprintf("%.0f", \$5)) with labels notitle
GP
