# SPDX-License-Identifier: GPL-2.0-or-later
"""bench-warm-exec: cold vs warm wall time to a first correct answer, one JSON line.

    bench-warm-exec.py --warm-exec PATH [--runs N] [--cold-runs N] [--only NAME[,NAME]]

Programs (real slow starters nobody here wrote):
  jshell  `jshell --execution local`, stdin "System.out.println(6*7)": the answer
          is a line "42" in its output.
  python  `/usr/bin/python3 -c PROG` importing pandas (Debian's python3-pandas;
          python3-sympy when pandas is not installed): it reads n from stdin, then
          prints the sum of squares 0..n-1 computed by pandas/numpy (sympy: the
          factorisation of 2**n+1).

Each program gets the same stdin every run: a pipe holding the input, closed
(EOF after it). Figures (milliseconds, wall clock, CLOCK_MONOTONIC):
  cold_ms        median over --cold-runs runs of the plain command (no warm-exec):
                 from just before the spawn to the moment the correct answer
                 arrives on the command's stdout pipe.
  first_ms       the same for the first `warm-exec -- CMD` against a fresh empty
                 store: cold start, readiness, checkpoint, restore, answer.
  warm_restore_ms  median over --runs later `warm-exec --keep-warm=0 -- CMD` runs:
                 restore from the snapshot the first run made, then the answer.
  warm_ms        median over --runs later `warm-exec -- CMD` runs as a user gets
                 them by default: copies of the template the keeper holds (the
                 run before them restored and left the keeper; warm_is_copy says
                 a verbose run saw a copy). See docs/warm-exec.md, keep-warm.
                 Every run (cold, restore, copy) starts gap_ms (500) after the
                 previous one ended, as runs of a command started thousands of
                 times a day do: the keeper prepares its next copy in between.
  warm_b2b_ms    the copies again, back to back (no gap: the next copy is
                 used before it is fully prepared).
  exit_ms        median time to the exit of warm-exec in the warm runs
                 (warm_restore_exit_ms: in the restore runs).
  speedup        cold_ms / warm_ms; target: jshell >= 25, python >= 10
                 (speedup_restore: cold_ms / warm_restore_ms).
Every run must print the correct answer and exit 0, else the program's figures
are marked failed. Children get no descriptor beyond 0, 1, 2 (a stray inherited
pipe would make the program uncheckpointable). The machine is shared: the JSON
line records the 1-minute load average before and after, and machine facts.

jshell runs warm-exec with --warmup: 30 snippets (`System.out.println(100*3)`..)
fed before the snapshot, so the compiler paths a snippet takes are warm; the answer
to 6*7 is still computed after the restore. "jshell_nowarmup" (the same without
--warmup) is measured too with --only jshell_nowarmup.
"""
import argparse
import json
import os
import platform
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# jshell compiles every snippet with javac in-process: a fresh JVM needs ~150 ms
# per snippet, one that has compiled ~20 snippets ~25 ms (the JIT has warmed
# javac). The warm-up feeds 30 snippets (other numbers) before the snapshot.
JSH_WARMUP_N = int(os.environ.get("BENCH_JSHELL_WARMUP", "30"))
JSH_WARMUP = "".join("System.out.println(%d*3)\\n" % i for i in range(100, 100 + JSH_WARMUP_N))
PY_PANDAS = ("import sys, numpy as np, pandas as pd\n"
             "n = int(sys.stdin.readline())\n"
             "print(int(pd.DataFrame({'x': np.arange(n, dtype=np.int64)})['x'].pow(2).sum()))\n")
PY_SYMPY = ("import sys, sympy\n"
            "n = int(sys.stdin.readline())\n"
            "print(sympy.factorint(2**n + 1))\n")


def msg(*a):
    print("bench-warm-exec:", *a, file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def run_once(argv, stdin_bytes, answer_re, env, timeout_s=120.0):
    """Spawn @argv with @stdin_bytes on a closed pipe; return (answer_ms, exit_ms,
    rc, output). answer_ms is None when the answer never appeared."""
    rfd, wfd = os.pipe2(os.O_CLOEXEC)
    os.write(wfd, stdin_bytes)
    os.close(wfd)
    t0 = time.monotonic_ns()
    p = subprocess.Popen(argv, stdin=rfd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         close_fds=True, env=env)
    os.close(rfd)
    out = b""
    err = b""
    answer_ns = None
    deadline = time.monotonic() + timeout_s
    fds = {p.stdout.fileno(): "out", p.stderr.fileno(): "err"}
    while fds:
        left = deadline - time.monotonic()
        if left <= 0:
            p.kill()
            break
        ready, _, _ = select.select(list(fds), [], [], left)
        for fd in ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                del fds[fd]
                continue
            if fds[fd] == "out":
                out += chunk
                if answer_ns is None and answer_re.search(out):
                    answer_ns = time.monotonic_ns()
            else:
                err += chunk
    rc = p.wait()
    end_ns = time.monotonic_ns()
    p.stdout.close()
    p.stderr.close()
    ans = None if answer_ns is None else (answer_ns - t0) / 1e6
    return ans, (end_ns - t0) / 1e6, rc, out.decode(errors="replace"), err.decode(errors="replace")


def median(xs):
    return round(statistics.median(xs), 1) if xs else None


def bench_program(name, cmd, stdin_bytes, answer_re, we, we_opts, runs, cold_runs, env, target,
                  gap_s=0.5):
    res = {"cmd": " ".join(cmd), "ok": True}
    store = tempfile.mkdtemp(prefix="bench-warm-exec-")
    os.rmdir(store)		# warm-exec creates it (refuses a non-store directory)
    we_argv = [we, "--store", store] + we_opts + ["--"] + cmd
    try:
        def check(kind, r):
            ans, ex, rc, out, err = r
            if ans is None or rc != 0:
                res["ok"] = False
                res.setdefault("errors", []).append(
                    "%s: rc %d, answer %s; stdout %r; stderr %r"
                    % (kind, rc, "missing" if ans is None else "found", out[-300:], err[-300:]))
                msg(name, kind, "FAILED", res["errors"][-1])
            return r

        cold = []
        for _ in range(cold_runs):
            time.sleep(gap_s)
            cold.append(check("cold", run_once(cmd, stdin_bytes, answer_re, env)))
        first = check("first", run_once(we_argv, stdin_bytes, answer_re, env))
        # Warm from the store every time (no keeper): --keep-warm=0.
        rst_argv = [we, "--store", store, "--keep-warm=0"] + we_opts + ["--"] + cmd
        rst = []
        for _ in range(runs):
            time.sleep(gap_s)
            rst.append(check("warm-restore", run_once(rst_argv, stdin_bytes, answer_re, env)))
        verbose = run_once([we, "-v", "--store", store, "--keep-warm=0"] + we_opts + ["--"] + cmd,
                           stdin_bytes, answer_re, env)
        phases = re.findall(r"\[\s*([\d.]+) ms\] (restoring|restored)", verbose[4])
        # The default: the first of these restores and leaves a keeper behind,
        # the others are copies of its template.
        check("warm-keeper", run_once(we_argv, stdin_bytes, answer_re, env))
        keep_dir = os.path.join(store, "warm-exec")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
                f.endswith(".keep") for f in os.listdir(keep_dir)):
            time.sleep(0.05)
        time.sleep(0.5)		# its first copy parked
        warm = []
        for _ in range(runs):
            time.sleep(gap_s)
            warm.append(check("warm", run_once(we_argv, stdin_bytes, answer_re, env)))
        # The same back to back (no gap: the keeper has no time to prepare
        # its next copy between runs).
        b2b = [check("warm-b2b", run_once(we_argv, stdin_bytes, answer_re, env))
               for _ in range(runs)]
        vk = run_once([we, "-v", "--store", store] + we_opts + ["--"] + cmd,
                      stdin_bytes, answer_re, env)
        copies = len(re.findall(r"a copy of the kept snapshot", vk[4]))
        # Stop the keeper (it leaves once the command's snapshot is gone).
        subprocess.run([we, "--store", store, "--forget", "--"] + cmd, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cold_ms = [r[0] for r in cold if r[0] is not None]
        warm_ms = [r[0] for r in warm if r[0] is not None]
        rst_ms = [r[0] for r in rst if r[0] is not None]
        res.update({
            "cold_ms": median(cold_ms),
            "cold_ms_all": [round(x, 1) for x in cold_ms],
            "first_ms": None if first[0] is None else round(first[0], 1),
            "warm_ms": median(warm_ms),
            "warm_ms_min": round(min(warm_ms), 1) if warm_ms else None,
            "warm_ms_max": round(max(warm_ms), 1) if warm_ms else None,
            "exit_ms": median([r[1] for r in warm]),
            "warm_b2b_ms": median([r[0] for r in b2b if r[0] is not None]),
            "gap_ms": round(gap_s * 1000),
            "warm_is_copy": copies == 1,
            "warm_restore_ms": median(rst_ms),
            "warm_restore_exit_ms": median([r[1] for r in rst]),
            "runs": runs,
            "cold_runs": cold_runs,
            "restore_phase_ms": (round(float(phases[1][0]) - float(phases[0][0]), 1)
                                 if len(phases) == 2 else None),
            "store_bytes": sum(os.path.getsize(os.path.join(d, f))
                               for d, _, fs in os.walk(store) for f in fs),
        })
        if res["cold_ms"] and res["warm_restore_ms"]:
            res["speedup_restore"] = round(res["cold_ms"] / res["warm_restore_ms"], 1)
        if res["cold_ms"] and res["warm_ms"]:
            res["speedup"] = round(res["cold_ms"] / res["warm_ms"], 1)
            res["target"] = target
            res["target_met"] = res["ok"] and res["speedup"] >= target
        msg(name, "cold", res["cold_ms"], "first", res["first_ms"], "warm (copy)", res["warm_ms"],
            "speedup", res.get("speedup"), "warm (restore)", res["warm_restore_ms"],
            "speedup", res.get("speedup_restore"))
    finally:
        shutil.rmtree(store, ignore_errors=True)
    return res


def machine():
    m = {"kernel": platform.release(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    m["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            m["mem_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--warm-exec", required=True)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--cold-runs", type=int, default=3)
    ap.add_argument("--only", default="jshell,python")
    a = ap.parse_args()

    # warm-exec's keepers end up ours when it exits: reap them.
    import ctypes
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)	# PR_SET_CHILD_SUBREAPER
    if os.geteuid() != 0:
        print("bench-warm-exec: SKIP: needs root (warm-exec restores into pid namespaces)")
        return 77
    jshell = shutil.which("jshell")
    if not jshell or not os.access("/usr/bin/python3", os.X_OK):
        print("bench-warm-exec: SKIP: jshell or /usr/bin/python3 missing")
        return 77

    py_stack = "pandas"
    if subprocess.run(["/usr/bin/python3", "-c", "import pandas"], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode != 0:
        py_stack = "sympy"
        if subprocess.run(["/usr/bin/python3", "-c", "import sympy"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode != 0:
            print("bench-warm-exec: SKIP: neither python3-pandas nor python3-sympy installed")
            return 77

    # A stable environment: the key covers it, and nothing of the session leaks in.
    env = {k: v for k, v in os.environ.items()
           if k in ("PATH", "HOME", "LANG", "LC_ALL", "TERM", "JAVA_HOME")}
    env.setdefault("PATH", "/usr/bin:/bin")
    env.setdefault("LANG", "C.UTF-8")

    out = {"bench": "warm-exec",
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "load1_start": loadavg()}
    out.update(machine())
    only = a.only.split(",")
    jsh_cmd = [jshell, "--execution", "local"]
    jsh_in = b"System.out.println(6*7)\n"
    jsh_re = re.compile(rb"(^|[\s\x08])42\r?\n")  # jshell writes "\b42"
    if "jshell" in only:
        out["jshell"] = bench_program("jshell", jsh_cmd, jsh_in, jsh_re, a.warm_exec,
                                      ["--warmup=" + JSH_WARMUP],
                                      a.runs, a.cold_runs, env, 25)
    if "jshell_nowarmup" in only:
        out["jshell_nowarmup"] = bench_program("jshell_nowarmup", jsh_cmd, jsh_in, jsh_re,
                                               a.warm_exec, [], a.runs, a.cold_runs, env, 25)
    if "python" in only:
        if py_stack == "pandas":
            prog, stdin_b, ans = PY_PANDAS, b"1000000\n", rb"333332833333500000\n"
        else:
            prog, stdin_b, ans = PY_SYMPY, b"64\n", rb"\{274177: 1, 67280421310721: 1\}\n"
        out["python"] = bench_program("python", ["/usr/bin/python3", "-c", prog], stdin_b,
                                      re.compile(ans), a.warm_exec, [], a.runs, a.cold_runs,
                                      env, 10)
        out["python"]["stack"] = py_stack
        out["python"]["cmd"] = "/usr/bin/python3 -c '<import %s; answer from stdin>'" % py_stack
    out["load1_end"] = loadavg()
    progs = [out[k] for k in ("jshell", "jshell_nowarmup", "python") if k in out]
    out["targets_met"] = all(p.get("target_met", False) for p in progs)
    time.sleep(1.5)		# the keepers notice --forget within a second
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
    print(json.dumps(out, separators=(",", ":")), flush=True)
    return 0 if all(p["ok"] for p in progs) else 1


if __name__ == "__main__":
    sys.exit(main())
