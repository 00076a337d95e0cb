#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""spawn-jvm.py WARMFORK JAVA_SRC N: `warmfork spawn -n N` of a running JVM.

Compiles SpawnJvm.java, runs it (serial GC, no perf data), checkpoints it and
spawns N instances. Checks real state: N distinct pids, each in its own pid
namespace with the saved pid (NSpid) and as many threads as the JVM had; each
instance's main thread writes its own file ($DIR/alive.<pid-ns inode>) with its
pid as it sees it, the sum of its 4 workers' counters and the smallest of them,
which must both grow between two reads (every worker runs); the Pss sum of the instances is below N/2 x one instance's Rss.
A child subreaper: kills the instances and reaps everything, nothing may remain.
Exit 0 pass, 1 fail, 77 skip (not root, no java/javac).
"""
import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import time

FAILS = []


def fail(msg):
    FAILS.append(msg)
    print("FAIL:", msg, file=sys.stderr)


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def nspid(pid):
    t = read("/proc/%d/status" % pid) or ""
    for line in t.splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    return -1


def main():
    if len(sys.argv) != 4:
        print("usage: spawn-jvm.py WARMFORK JAVA_SRC N", file=sys.stderr)
        return 1
    wf, src, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return 77
    if not shutil.which("java") or not shutil.which("javac"):
        print("SKIP: no java/javac")
        return 77
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    d = tempfile.mkdtemp(prefix="spawn-jvm-")
    pids = []
    prog = None
    try:
        subprocess.run(["javac", "-d", d, src], check=True)
        prog = subprocess.Popen(["java", "-XX:+UseSerialGC", "-XX:-UsePerfData", "-Xmx128m",
                                 "-cp", d, "SpawnJvm", d], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, close_fds=True)
        deadline = time.time() + 60
        while not os.path.exists(d + "/ready") and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        nthreads = len(os.listdir("/proc/%d/task" % prog.pid))
        saved = prog.pid
        # No file open in the JVM at the checkpoint (it would be reopened
        # by path at the spawn: /proc/<old pid>/status is gone by then).
        open(d + "/hold", "w").close()
        time.sleep(0.1)
        ck = subprocess.Popen([wf, "--store", d + "/store", "checkpoint", str(saved)],
                              stdout=subprocess.PIPE)
        # The checkpoint waits until the pid is free: reap it meanwhile.
        while ck.poll() is None:
            if prog.poll() is not None:
                prog = None
                break
            time.sleep(0.01)
        out, _ = ck.communicate()
        if ck.returncode != 0:
            fail("checkpoint exited %d" % ck.returncode)
            return 1
        snap = out.split()[0].decode()
        os.unlink(d + "/hold")
        # The original's files go (each instance writes its own), except a
        # .tmp one it may have held open at the checkpoint: a restore
        # reopens that by path.
        for f in os.listdir(d):
            if f.startswith("alive.") and not f.endswith(".tmp"):
                os.unlink(os.path.join(d, f))
        t0 = time.time()
        r = subprocess.run([wf, "--store", d + "/store", "spawn", "-n", str(n), "--null-stdio",
                            "--stats", snap], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        ms = (time.time() - t0) * 1000
        print(r.stderr.decode().strip())
        pids = [int(x) for x in r.stdout.split()]
        if r.returncode != 0 or len(pids) != n or len(set(pids)) != n:
            fail("spawn exited %d with %d pids" % (r.returncode, len(pids)))
            return 1
        print("spawn of %d JVM instances (%d threads each): %.0f ms" % (n, nthreads, ms))
        inos = []
        for pid in pids:
            ino = os.stat("/proc/%d/ns/pid" % pid).st_ino
            inos.append(ino)
            if nspid(pid) != saved:
                fail("pid %d: %d in its namespace, not %d" % (pid, nspid(pid), saved))
            nt = len(os.listdir("/proc/%d/task" % pid))
            if nt != nthreads:
                fail("pid %d: %d threads, not %d" % (pid, nt, nthreads))
        if len(set(inos)) != n or os.stat("/proc/self/ns/pid").st_ino in inos:
            fail("the instances are not each in a pid namespace of its own")
        first = {}
        deadline = time.time() + 60
        for ino in inos:
            t = None
            while not t and time.time() < deadline:
                t = read("%s/alive.%d" % (d, ino))
                time.sleep(0.02)
            if not t:
                fail("the instance of namespace %d never wrote its file" % ino)
                continue
            first[ino] = t.split()
        time.sleep(1.0)
        pss = rss = 0
        for i, ino in enumerate(inos):
            if ino not in first:
                continue
            t = (read("%s/alive.%d" % (d, ino)) or "").split()
            if len(t) != 5 or t[0] != str(saved):
                fail("instance %d: getpid() %s, not %d" % (i, t[:1], saved))
                continue
            if int(t[1]) <= int(first[ino][1]) or t[2] != "1" or len(first[ino]) != 5 or \
                    int(t[4]) <= int(first[ino][4]):
                fail("instance %d: its workers do not all run (%s then %s)" %
                     (i, first[ino], t))
        for i, pid in enumerate(pids):
            v = {}
            for line in (read("/proc/%d/smaps_rollup" % pid) or "").splitlines()[1:]:
                v[line.split(":")[0]] = int(line.split()[1])
            pss += v.get("Pss", 0)
            rss = rss or v.get("Rss", 0)
        print("memory: one instance Rss %d KiB, %d instances Pss sum %d KiB" % (rss, n, pss))
        if n >= 2 and pss * 2 > n * rss:
            fail("no sharing: Pss sum %d KiB, %d x Rss %d KiB" % (pss, n, rss))
    finally:
        if prog:
            prog.kill()
        for pid in pids:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        deadline = time.time() + 30
        while True:
            try:
                w, _ = os.waitpid(-1, os.WNOHANG | 0x40000000)
            except ChildProcessError:
                break
            if w == 0:
                if time.time() > deadline:
                    fail("processes remain")
                    break
                time.sleep(0.02)
        shutil.rmtree(d, ignore_errors=True)
    if FAILS:
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
