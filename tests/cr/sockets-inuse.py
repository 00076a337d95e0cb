#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""sockets-inuse: restoring a listener whose address is still taken.

Usage: sockets-inuse.py WARMFORK

A server (a python3 child) listens on 127.0.0.1 and answers every connection
with its start-up token. It is checkpointed with --leave-running, so the
original keeps listening. Without SO_REUSEPORT the restore (--pidns=new) must
fail with one line naming the address in use, start nothing (no new process
appears under us, a child subreaper) and leave the original answering. With
SO_REUSEPORT the restore must succeed and, once the original is killed, the
copy must answer with the original's token. Exit 0 pass, 1 fail, 77 skip.
"""
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

WARMFORK = sys.argv[1]
SERVER = r'''
import os, socket, sys
os.closerange(3, 65536)
token = os.urandom(8).hex()
s = socket.socket()
if sys.argv[1] == "reuseport":
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(("127.0.0.1", 0))
s.listen(8)
print(s.getsockname()[1], token, flush=True)
while True:
    c, _ = s.accept()
    c.sendall(token.encode())
    c.close()
'''


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def children():
    """Pids whose parent is us (orphans of a detached restore land here)."""
    me, out = os.getpid(), []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        if int(st[st.rindex(")") + 2:].split()[1]) == me:
            out.append(int(d))
    return out


def ask(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.settimeout(5)
        return c.recv(64).decode()


def reap_all():
    for pid in children():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def case(store, mode):
    srv = subprocess.Popen([sys.executable, "-c", SERVER, mode], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, close_fds=True)
    port, token = srv.stdout.readline().decode().split()
    port = int(port)
    check(ask(port) == token, "%s: the server does not answer" % mode)
    p = subprocess.run([WARMFORK, "--store", store, "checkpoint", "--leave-running", str(srv.pid)],
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "%s: checkpoint failed: %s" % (mode, p.stderr))
    snap = p.stdout.strip()
    before = set(children())
    # Files, not pipes: the detached copy inherits our stdio (its saved
    # stdout was a pipe) and would hold a pipe open.
    with tempfile.TemporaryFile("w+") as o, tempfile.TemporaryFile("w+") as e:
        p = subprocess.run([WARMFORK, "--store", store, "restore", "--pidns=new", "--detach",
                            snap], stdin=subprocess.DEVNULL, stdout=o, stderr=e, timeout=60)
        o.seek(0)
        e.seek(0)
        p.stdout, p.stderr = o.read(), e.read()
    if mode == "plain":
        err = p.stderr.strip()
        check(p.returncode != 0, "restore succeeded while the address was taken")
        check(len(err.splitlines()) == 1 and "in use" in err and
              ("127.0.0.1:%d" % port) in err, "not one line naming the address: %r" % err)
        time.sleep(0.3)
        check(set(children()) == before, "the refused restore left processes: %r"
              % (set(children()) - before))
        check(ask(port) == token, "the original no longer answers")
        print("refused: %s" % err)
    else:
        check(p.returncode == 0, "restore with SO_REUSEPORT failed: %s" % p.stderr)
        srv.kill()
        srv.wait()
        got = ask(port)
        check(got == token, "the copy answers %r, expected the original's %r" % (got, token))
        print("restored next to the original (SO_REUSEPORT), copy answers %s" % got)
    reap_all()


def main():
    if os.geteuid() != 0:
        print("skip: needs root")
        return 77
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:		# PR_SET_CHILD_SUBREAPER
        print("skip: cannot become a child subreaper")
        return 77
    with tempfile.TemporaryDirectory(prefix="cr-sockets-inuse-") as tmp:
        try:
            case(os.path.join(tmp, "s1"), "plain")
            case(os.path.join(tmp, "s2"), "reuseport")
        except (Fail, subprocess.TimeoutExpired, OSError, ValueError) as e:
            print("FAIL sockets-inuse: %s" % e)
            return 1
        finally:
            reap_all()
    print("PASS sockets-inuse")
    return 0


if __name__ == "__main__":
    sys.exit(main())
