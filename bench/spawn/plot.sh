#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Plot issue 6's spawn benchmarks as one PNG (three panels):
#   bench/spawn/plot.sh SPAWN.json TEMPLATE.json OUT.png [TITLE]
# SPAWN.json: the line of bench-spawn (N = 1, 10, 100; spawn vs fork, memory);
# TEMPLATE.json: bench-template lines (spawnee-200m, jvm): pool acquire.
# Needs gnuplot (Debian: gnuplot-nox); the plot is documentation only.
set -euo pipefail
spawn=$1 tpl=$2 out=$3 title=${4:-}
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot is missing" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 - "$spawn" "$tpl" "$tmp" <<'PY'
import json, sys
spawn = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")][-1]
tpl = [json.loads(l) for l in open(sys.argv[2]) if l.startswith("{")]
d = sys.argv[3]
with open(d + "/time.dat", "w") as f:
    f.write("# n instance_ms fork_ms fork_run_ms\n")
    for r in spawn["runs"]:
        f.write("%d %.3f %.3f %.3f\n" % (r["n"], r["instance_ms"], r["fork_ms"], r.get("fork_run_ms", r["fork_ms"])))
with open(d + "/mem.dat", "w") as f:
    f.write("# n pss_sum_mib n_x_rss_mib two_rss_mib\n")
    for r in spawn["runs"]:
        rss = r["rss_one_kib"] / 1024.0
        f.write("%d %.1f %.1f %.1f\n" % (r["n"], r["pss_sum_kib"] / 1024.0, r["n"] * rss, 2 * rss))
with open(d + "/acq.dat", "w") as f:
    names = {"spawnee-200m": "200 MiB spawnee", "jvm": "JVM"}
    for r in tpl:
        f.write('"%s\\n(%d thread%s)" %.3f %.3f %.3f\n' % (names.get(r["name"], r["name"]), r["threads"], "s" if r["threads"] > 1 else "",
                r["acquire_ms_p50"], r["acquire_ms_p99"], r["spawn_ms_p50"]))
PY
gnuplot <<GP
set terminal pngcairo size 1500,540 font "sans,10"
set bmargin 5
set output "$out"
set multiplot layout 1,3 title "$title"
set grid
set logscale x
set xrange [0.8:130]
set xtics ("1" 1, "10" 10, "100" 100)
set xlabel "instances N"
set key top left
set title "time per instance, 200 MiB process"
set ylabel "ms per instance"
set yrange [0:*]
plot "$tmp/time.dat" using 1:2 with linespoints lw 2 pt 7 title "warmfork spawn (until it runs)", \
     "" using 1:4 with linespoints lw 2 pt 5 title "fork() (until the child runs)", \
     "" using 1:3 with linespoints lw 1 pt 4 dt 2 title "fork() call only"
set title "memory of N idle instances (PSS sum)"
set ylabel "MiB"
set logscale y
set yrange [50:*]
plot "$tmp/mem.dat" using 1:2 with linespoints lw 2 pt 7 title "PSS sum of the N instances", \
     "" using 1:3 with linespoints lw 1 pt 4 dt 2 title "N x one instance's RSS (no sharing)", \
     "" using 1:4 with lines lw 1 dt 3 title "target: 2 x one RSS"
unset logscale
unset xtics
set xtics nomirror
set autoscale x
set xrange [-0.6:*]
set title "pool acquire (parked -> running) and spawn, per instance"
set ylabel "ms"
set logscale y
set yrange [0.05:100]
set xlabel ""
set key top left
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
plot "$tmp/acq.dat" using 2:xtic(1) title "acquire p50", \
     "" using 3 title "acquire p99", \
     "" using 4 title "spawn+start p50"
unset multiplot
GP
echo "plot.sh: wrote $out"
