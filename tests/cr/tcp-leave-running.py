#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""tcp-leave-running: checkpoint --leave-running --tcp-established.

Usage: tcp-leave-running.py WARMFORK TCP_CONN

TCP_CONN is tests/cr/tcp-conn.c (an established connection to a forked
peer, queues full both ways, the peer sending while it is frozen). It is
checkpointed with --leave-running --tcp-established: the connection was
locked (drop filter, repair mode, closed send window) for the capture and
must be given back. Then, while the original still holds the connection,
a restore (--pidns=new, so that the pid is no obstacle) must fail in one
line saying the connection exists on this host and start nothing (no new
process under us, a child subreaper). Last, the original is told "go" and
must pass all its checks: the conversation goes on, every byte once and in
order, the peer saw it frozen. Exit 0 pass, 1 fail, 77 skip.
"""
import ctypes
import glob
import os
import signal
import subprocess
import sys
import tempfile
import time

WARMFORK, PROG = sys.argv[1], sys.argv[2]


def fail(msg):
    print("FAIL tcp-leave-running: " + msg, flush=True)
    sys.exit(1)


def descendants():
    """Pids whose parent is us (children and adopted orphans)."""
    me, out = os.getpid(), set()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == me:
                    out.add(int(d))
        except (OSError, IndexError, ValueError):
            pass
    return out


def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return 77
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: the peer comes back to us
    tmp = tempfile.mkdtemp(prefix="cr-tcp-lr.")
    env = dict(os.environ, CR_DIR=tmp)
    prog = subprocess.Popen([PROG, "v4", "cut", "nolisten"], env=env, stdin=subprocess.DEVNULL,
                            close_fds=True)
    try:
        for _ in range(400):
            ready = glob.glob(os.path.join(tmp, "ready.*"))
            if ready and open(ready[0]).read().strip():
                break
            time.sleep(0.05)
        else:
            fail("the program never got ready")
        store = os.path.join(tmp, "store")
        ck = subprocess.run([WARMFORK, "--store", store, "checkpoint", "--leave-running",
                             "--tcp-established", str(prog.pid)],
                            capture_output=True, text=True, timeout=60)
        if ck.returncode != 0:
            fail("checkpoint --leave-running failed: " + ck.stderr.strip())
        snap = ck.stdout.strip()
        with open("/proc/%d/status" % prog.pid) as f:
            status = f.read()
        if "TracerPid:\t0" not in status:
            fail("the original is still traced after --leave-running")
        before = descendants()
        rs = subprocess.run([WARMFORK, "--store", store, "restore", "--pidns=new", "--detach",
                             snap], capture_output=True, text=True, timeout=60)
        time.sleep(0.2)
        reap()
        extra = descendants() - before
        if rs.returncode == 0:
            fail("restore succeeded while the original holds the connection")
        if "exists on this host already" not in rs.stderr:
            fail("the refused restore does not say why: " + rs.stderr.strip())
        if len(rs.stderr.strip().splitlines()) != 1:
            fail("the refused restore printed more than one line: " + rs.stderr.strip())
        if extra:
            fail("the refused restore left processes: %s" % sorted(extra))
        prog.send_signal(signal.SIGUSR1)
        try:
            rc = prog.wait(timeout=60)
        except subprocess.TimeoutExpired:
            fail("the original did not finish its conversation")
        if rc != 0:
            fail("the original failed its checks after the checkpoint (exit %d)" % rc)
        print("PASS tcp-leave-running", flush=True)
        return 0
    finally:
        if prog.poll() is None:
            prog.kill()
        time.sleep(0.1)
        for p in descendants():
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.1)
        reap()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    sys.exit(main())
