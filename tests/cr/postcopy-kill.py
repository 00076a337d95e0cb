#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""postcopy-kill: `warmfork restore` killed while the pages still arrive.

Usage: postcopy-kill.py WARMFORK

A python3 child holds 384 MiB of patterned memory and waits for a byte on
stdin; it then checks every byte and answers P (intact) or F. It is
checkpointed and restored (post-copy, the default) three times from one snapshot:
  - control: warmfork restore left alone: the copy answers P, exit 0;
  - checkpointed again (--leave-running) the moment the copy runs: while pages
    still arrive that must fail, naming each mapping and the userfaultfd, and leave
    the copy running (it answers P); if the pages were all in by then, the new
    snapshot must restore into a copy that answers P;
  - killed: SIGKILL to warmfork restore the moment the copy runs (blocked in
    its read, most of its pages not in place yet): the copy must not go on
    with memory reading zero. The watchdog kills it: it must die of SIGKILL
    without answering, and nothing may remain.
Exit 0 pass, 1 fail, 77 skip.
"""
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time

WARMFORK = sys.argv[1]
PROG = r'''
import os, sys
pat = bytes(range(251)) * 4096
mem = bytearray(pat * 391)             # ~384 MiB
os.write(1, b"R")
os.read(0, 1)
ok = mem == bytearray(pat * 391)
os.write(1, b"P" if ok else b"F")
sys.exit(0 if ok else 1)
'''


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def reading_stdin(pid):
    """The program's own code runs: blocked in read(0, ...) (syscall 0)."""
    try:
        with open("/proc/%d/syscall" % pid) as f:
            return f.read().split()[:2] == ["0", "0x0"]
    except OSError:
        return False


def read_byte(fd, timeout):
    import select
    r, _, _ = select.select([fd], [], [], timeout)
    if not r:
        return None
    b = os.read(fd, 1)
    return b or b""


def restore(store, snap):
    inr, inw = os.pipe()
    outr, outw = os.pipe()
    err = open(os.path.join(os.path.dirname(store), "restore.err"), "w+")
    wf = subprocess.Popen([WARMFORK, "--store", store, "restore", "--inherit-stdio", snap],
                          stdin=inr, stdout=outw, stderr=err)
    wf.err = err
    os.close(inr)
    os.close(outw)
    return wf, inw, outr


def wait_running(wf, pid):
    deadline = time.monotonic() + 60
    while not reading_stdin(pid):
        if wf.poll() is not None:
            wf.err.seek(0)
            check(False, "warmfork restore ended (status %s) before the copy ran: %s"
                  % (wf.returncode, wf.err.read().strip()))
        check(time.monotonic() < deadline, "the copy never ran")
        time.sleep(0.0002)


def main():
    if os.geteuid() != 0:
        print("postcopy-kill: needs root (ptrace, userfaultfd)")
        return 77
    # Orphans (the copy once warmfork is gone) come to us to be reaped.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    with tempfile.TemporaryDirectory(prefix="wf-pckill-") as tmp:
        store = os.path.join(tmp, "store")
        p = subprocess.Popen(["/usr/bin/python3", "-c", PROG], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        check(p.stdout.read(1) == b"R", "the program did not get ready")
        out = subprocess.run([WARMFORK, "--store", store, "checkpoint", str(p.pid)],
                             capture_output=True, text=True)
        check(out.returncode == 0, "checkpoint failed: %s" % out.stderr.strip())
        snap = out.stdout.strip()
        p.wait()
        pid = p.pid

        # Control: left alone, the copy passes.
        wf, inw, outr = restore(store, snap)
        os.write(inw, b"x")
        check(read_byte(outr, 60) == b"P", "control: the restored copy did not answer P")
        check(wf.wait(60) == 0, "control: warmfork restore exit status %s" % wf.returncode)
        os.close(inw)
        os.close(outr)

        # A checkpoint of the copy while its pages arrive.
        wf, inw, outr = restore(store, snap)
        wait_running(wf, pid)
        out = subprocess.run([WARMFORK, "--store", store, "checkpoint", "--leave-running",
                              str(pid)], capture_output=True, text=True)
        if out.returncode != 0:
            lines = out.stderr.strip().splitlines()
            check(lines and all("userfaultfd" in l for l in lines[:-1]) and "refused" in lines[-1],
                  "the refused checkpoint did not name the mappings and why: %r" % out.stderr)
            check(out.stdout == "", "the refused checkpoint printed %r" % out.stdout)
            again = None
        else:
            again = out.stdout.strip()
        os.write(inw, b"x")
        check(read_byte(outr, 60) == b"P", "after the checkpoint: the copy did not answer P")
        check(wf.wait(60) == 0, "after the checkpoint: warmfork restore exit status %s"
              % wf.returncode)
        os.close(inw)
        os.close(outr)
        if again:
            wf, inw, outr = restore(store, again)
            os.write(inw, b"x")
            check(read_byte(outr, 60) == b"P", "the snapshot taken during the restore: "
                  "its copy did not answer P")
            check(wf.wait(60) == 0, "its warmfork restore exit status %s" % wf.returncode)
            os.close(inw)
            os.close(outr)
        print("postcopy-kill: a checkpoint while the pages arrived: %s"
              % ("refused (%s)" % out.stderr.strip().splitlines()[-1] if not again
                 else "taken after them, intact"))

        # Killed: SIGKILL to warmfork once the copy runs (in its read).
        wf, inw, outr = restore(store, snap)
        wait_running(wf, pid)
        t_kill = time.monotonic()
        wf.kill()
        wf.wait()
        t_kill = time.monotonic() - t_kill
        # Nothing may read its memory as zero: it dies, answering nothing
        # (already gone: its stdin has no reader).
        try:
            os.write(inw, b"x")
        except BrokenPipeError:
            pass
        b = read_byte(outr, 30)
        check(b == b"", "the copy answered %r after warmfork restore was killed" % b)
        w, st = os.waitpid(pid, 0)
        check(os.WIFSIGNALED(st) and os.WTERMSIG(st) == signal.SIGKILL,
              "the copy ended with status %#x, not by SIGKILL" % st)
        # The watchdog is gone too (our orphan now): reap whatever is left.
        time.sleep(0.2)
        while True:
            try:
                w, st = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if w == 0:
                check(False, "a process of the restore remains")
        print("postcopy-kill: warmfork restore killed (%.1f ms) while the copy ran; the copy "
              "was SIGKILLed and answered nothing" % (t_kill * 1e3))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Fail as e:
        print("FAIL postcopy-kill: %s" % e)
        sys.exit(1)
