#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""tty-relay: a shell job on a pty restored onto a NEW pty that warmfork
restore relays to its own stdio (itself on a pty here).

  tty-relay.py WARMFORK CR-TTY-PAIR [plain|pidns|shelljob|intr|detach]

1. `cr-tty-pair shell` runs on a pty (window 33x111): the session leader S
   sets -ECHO and VINTR=^G, its job J (foreground group) prints "ready" and
   blocks reading the terminal.
2. `warmfork checkpoint --tree S` (S and J killed).
3. `warmfork restore [--pidns=new] SNAP` runs on another pty of ours, of
   size 40x90; once it made that terminal raw (relaying), "ping" must be
   answered "pong ok" by J (its own checks: termios, window size 33x111 =
   the saved one, foreground group, session, a /dev/pts name), nothing
   echoed first; "size" answers 33x111 until we resize our terminal to
   50x100, then 50x100 (SIGWINCH passed on); ^G (the restored VINTR)
   interrupts J ("int"), S exits with J's verdict, and warmfork restore
   with S's status: 0.
With "shelljob": restore --shell-job onto the harness's second terminal
(shell_job() below); with "intr": ^C to a relayed job (intr_job() below);
with "detach": restore --detach (detach() below).
Exit 0 pass, 1 fail, 77 skip.
"""
import ctypes
import fcntl
import os
import pty
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time


class Fail(Exception):
    pass


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def expect(fd, what, seen, timeout=10.0):
    """Read @fd until @what appears in seen[0] (bytes), or fail."""
    end = time.monotonic() + timeout
    while what not in seen[0]:
        left = end - time.monotonic()
        if left <= 0:
            raise Fail("waited for %r, got %r" % (what, seen[0][-300:]))
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        try:
            b = os.read(fd, 4096)
        except OSError:
            b = b""
        if not b:
            raise Fail("pty closed waiting for %r, got %r" % (what, seen[0][-300:]))
        seen[0] += b
    return seen[0]


def spawn_on_pty(argv, rows, cols):
    pid, fd = pty.fork()
    if pid == 0:
        os.closerange(3, 4096)
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    set_size(fd, rows, cols)
    return pid, fd


def reap(pid, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        p, st = os.waitpid(pid, os.WNOHANG)
        if p == pid:
            return st
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise Fail("pid %d did not exit" % pid)


def shell_job(rfd, rpid, pids):
    """--shell-job: the job on our (second) terminal, in warmfork's session:
    the saved modes (-ECHO, VINTR=^G) put on it, the job in its foreground,
    our window size (40x90), our modes back once warmfork restore exits."""
    end = time.monotonic() + 10
    while termios.tcgetattr(rfd)[3] & termios.ECHO:     # the saved -ECHO applied
        if time.monotonic() > end:
            raise Fail("the saved termios were not put on our terminal")
        time.sleep(0.005)
    seen = [b""]
    os.write(rfd, b"pjob\n")
    out = expect(rfd, b"pong", seen)
    if not out.startswith(b"pong ok"):
        raise Fail("answer %r (echo, or a check of the job failed)" % out)
    expect(rfd, b"\n", seen)
    seen = [b""]
    os.write(rfd, b"size\n")
    if b"size 40x90" not in expect(rfd, b"\n", seen):
        raise Fail("window size on our terminal: %r (want ours, 40x90)" % seen[0])
    seen = [b""]
    os.write(rfd, b"\x07")
    expect(rfd, b"int", seen)
    st = reap(rpid)
    pids.remove(rpid)
    if not os.WIFEXITED(st) or os.WEXITSTATUS(st) != 0:
        raise Fail("warmfork restore exited with status 0x%x" % st)
    if not termios.tcgetattr(rfd)[3] & termios.ECHO:
        raise Fail("our terminal's modes were not put back")
    print("PASS tty-relay (shell job)")
    return 0


def intr_job(warmfork, store, pids):
    """A job that leads no session (`sleep` under a bash on our pty),
    checkpointed alone and restored by `warmfork restore` onto a relayed new
    pty of which no session is the owner: ^C typed on our terminal must still
    interrupt it (the relay's SIGINT): warmfork restore exits 130."""
    bpid, bfd = spawn_on_pty(["/bin/bash", "-c", "sleep 1000; echo done"], 24, 80)
    pids.append(bpid)
    end = time.monotonic() + 10
    kids = []
    while not kids and time.monotonic() < end:
        with open("/proc/%d/task/%d/children" % (bpid, bpid)) as f:
            kids = f.read().split()
        time.sleep(0.01)
    if not kids:
        raise Fail("bash started no job")
    job = int(kids[0])
    ck = subprocess.Popen([warmfork, "--store", store, "checkpoint", str(job)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 60
    while ck.poll() is None and time.monotonic() < end:
        time.sleep(0.005)
    out, err = ck.communicate(timeout=5)
    if ck.returncode != 0:
        raise Fail("checkpoint: %s" % err.strip())
    os.kill(bpid, 9)
    reap(bpid)
    pids.remove(bpid)
    os.close(bfd)
    rpid, rfd = spawn_on_pty([warmfork, "--store", store, "restore", out.split()[0]], 24, 80)
    pids.append(rpid)
    end = time.monotonic() + 10
    while termios.tcgetattr(rfd)[3] & termios.ICANON:
        if time.monotonic() > end:
            raise Fail("warmfork restore did not start relaying")
        time.sleep(0.005)
    os.write(rfd, b"\x03")
    st = reap(rpid)
    pids.remove(rpid)
    if not os.WIFEXITED(st) or os.WEXITSTATUS(st) != 130:
        raise Fail("warmfork restore exited with status 0x%x, not 130 (SIGINT)" % st)
    print("PASS tty-relay (^C to a job)")
    return 0


def detach(warmfork, store, snap, pidns, pids):
    """restore --detach of the shell job: it prints the pid, then the new
    pty's path, which the restored session leader's stdin is on; a holder
    keeps the master (the job is not hung up: still alive a moment later,
    and the pty is its controlling terminal); once the tree is killed the
    holder leaves too (it is our child then: we are the subreaper)."""
    argv = [warmfork, "--store", store, "restore", "--detach"] + \
        (["--pidns=new"] if pidns else []) + [snap]
    # A file, not a pipe: the holder keeps our stdout (the program's output).
    outp = os.path.join(os.path.dirname(store), "detach.out")
    errp = os.path.join(os.path.dirname(store), "detach.err")
    with open(outp, "w") as out, open(errp, "w") as err:
        r = subprocess.run(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, timeout=60)
    if r.returncode != 0:
        with open(errp) as f:
            raise Fail("restore --detach: %s" % f.read().strip())
    with open(outp) as f:
        printed = f.read()
    lines = printed.split()
    if len(lines) != 2 or not lines[1].startswith("/dev/pts/"):
        raise Fail("restore --detach printed %r, want a pid and a pty path" % printed)
    top = int(lines[0])
    pids.append(top)
    time.sleep(0.2)
    with open("/proc/self/task/%d/children" % os.getpid()) as f:
        ours = [int(x) for x in f.read().split()]
    holders = [p for p in ours if p != top]
    # the leader in our namespace: top itself, or the init's child (pidns)
    leader = top
    if pidns:
        with open("/proc/%d/task/%d/children" % (top, top)) as f:
            leader = int(f.read().split()[0])
    link = os.readlink("/proc/%d/fd/0" % leader)
    if link != lines[1]:
        raise Fail("the leader's stdin is %s, not the printed %s" % (link, lines[1]))
    with open("/proc/%d/stat" % leader) as f:
        tty_nr = int(f.read().rsplit(")", 1)[1].split()[4])
    st = os.stat(lines[1])
    if tty_nr != ((os.minor(st.st_rdev) & 0xff) | (os.major(st.st_rdev) << 8) |
                  ((os.minor(st.st_rdev) & ~0xff) << 12)):
        raise Fail("the leader's controlling terminal is not the new pty (tty_nr %d)" % tty_nr)
    if len(holders) != 1:
        raise Fail("want one pty holder next to the tree, our children: %r" % ours)
    os.kill(top, 9)
    for p in holders + [top]:
        reap(p)
        if p in pids:
            pids.remove(p)
    print("PASS tty-relay (detach)")
    return 0


def main():
    if os.geteuid() != 0:
        print("SKIP tty-relay: needs root")
        return 77
    warmfork, prog = sys.argv[1], sys.argv[2]
    pidns = len(sys.argv) > 3 and sys.argv[3] == "pidns"
    shelljob = len(sys.argv) > 3 and sys.argv[3] == "shelljob"
    # Orphans of a failed run come back to us (pid 1 does not reap here);
    # meson's SIGTERM (timeout) still runs the cleanup below.
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)   # PR_SET_CHILD_SUBREAPER
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    tmp = tempfile.mkdtemp(prefix="cr-tty-relay-")
    store = os.path.join(tmp, "store")
    pids = []
    try:
        if len(sys.argv) > 3 and sys.argv[3] == "intr":
            return intr_job(warmfork, store, pids)
        # 1. the shell job on its first pty
        spid, sfd = spawn_on_pty([prog, "shell"], 33, 111)
        pids.append(spid)
        seen = [b""]
        expect(sfd, b"ready", seen)
        # 2. checkpoint the tree (S is spid: pty.fork's child execs it)
        # The checkpoint returns once the pids are free: reap S and J (an
        # orphan of ours, the subreaper) meanwhile.
        ck = subprocess.Popen([warmfork, "--store", store, "checkpoint", "--tree", str(spid)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        end = time.monotonic() + 60
        while ck.poll() is None and time.monotonic() < end:
            try:
                p, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                p = 0
            if p == spid:
                pids.remove(spid)
            if p <= 0:
                time.sleep(0.005)
        out, err = ck.communicate(timeout=5)
        if ck.returncode != 0:
            raise Fail("checkpoint: %s" % err.strip())
        snap = out.split()[0]
        if spid in pids:
            reap(spid)
            pids.remove(spid)
        os.close(sfd)
        if len(sys.argv) > 3 and sys.argv[3] == "detach":
            return detach(warmfork, store, snap, False, pids)
        # 3. restore onto a new pty, relayed to ours
        argv = [warmfork, "--store", store, "restore"] + (["--pidns=new"] if pidns else []) + \
            (["--shell-job"] if shelljob else []) + [snap]
        rpid, rfd = spawn_on_pty(argv, 40, 90)
        pids.append(rpid)
        if shelljob:
            return shell_job(rfd, rpid, pids)
        end = time.monotonic() + 10
        while termios.tcgetattr(rfd)[3] & termios.ICANON:   # relaying: ours is raw
            if time.monotonic() > end:
                raise Fail("warmfork restore did not start relaying: %r" % os.read(rfd, 4096))
            time.sleep(0.005)
        seen = [b""]
        os.write(rfd, b"ping\n")
        out = expect(rfd, b"pong", seen)
        if not out.startswith(b"pong ok"):
            raise Fail("answer %r (echo, or a check of the job failed)" % out)
        expect(rfd, b"\n", seen)
        seen = [b""]
        os.write(rfd, b"size\n")
        if b"size 33x111" not in expect(rfd, b"\n", seen):
            raise Fail("window size before a resize: %r (want the saved 33x111)" % seen[0])
        set_size(rfd, 50, 100)   # SIGWINCH to warmfork restore, passed on
        ok = False
        for _ in range(100):
            seen = [b""]
            os.write(rfd, b"size\n")
            if b"size 50x100" in expect(rfd, b"\n", seen):
                ok = True
                break
            time.sleep(0.02)
        if not ok:
            raise Fail("resize not passed on: %r" % seen[0])
        seen = [b""]
        os.write(rfd, b"\x07")
        expect(rfd, b"int", seen)
        st = reap(rpid)
        pids.remove(rpid)
        if not os.WIFEXITED(st) or os.WEXITSTATUS(st) != 0:
            raise Fail("warmfork restore exited with status 0x%x" % st)
        print("PASS tty-relay%s" % (" (pidns)" if pidns else ""))
        return 0
    except Fail as e:
        print("FAIL tty-relay: %s" % e)
        return 1
    finally:
        for p in pids:
            try:
                os.kill(p, 9)
                os.waitpid(p, 0)
            except OSError:
                pass
        # Whatever else is ours (orphans): kill and reap.
        try:
            with open("/proc/self/task/%d/children" % os.getpid()) as f:
                left = [int(x) for x in f.read().split()]
        except OSError:
            left = []
        for p in left:
            try:
                os.kill(p, 9)
                os.waitpid(p, 0)
            except OSError:
                pass
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
