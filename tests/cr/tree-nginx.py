#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""tree-nginx: a real multi-process server nobody here wrote, checkpointed as a tree.

    tree-nginx.py WARMFORK [CYCLES] [--pidns]

nginx (Debian's nginx-light) runs with `daemon off; master_process on;
worker_processes 2;` on 127.0.0.1, answering "$pid $connection" (the worker's
pid and its connection serial number). Each cycle, while it serves:
  warmfork checkpoint --tree MASTER  (the master and both workers; they are
                                      killed: the port must refuse afterwards)
  warmfork restore --detach SNAP     (the master's pid is printed)
and then it must answer again: from the same worker pids, each worker's
connection serial going on from where it was (memory kept), the shared
listening socket accepted by both workers over the cycles, no worker crash in
the error log. Exit 0 pass, 1 fail, 77 skip (no nginx, not root).
"""
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PR_SET_CHILD_SUBREAPER = 36


def fail(msg):
    print("FAIL tree-nginx: " + msg, flush=True)
    raise SystemExit(1)


def reap_all():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def run(args, timeout=60):
    """Run a command while reaping whatever dies meanwhile (the checkpointed
    master is our child, its workers come to us as their subreaper)."""
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, close_fds=True)
    deadline = time.monotonic() + timeout
    while p.poll() is None:
        reap_all()
        if time.monotonic() > deadline:
            p.kill()
            p.wait()
            fail("%s: no answer within %d s" % (" ".join(args), timeout))
        time.sleep(0.002)
    out, err = p.communicate()
    return p.returncode, out.decode(), err.decode()


def get(port, timeout=5.0):
    """One HTTP/1.0 request; returns (pid, connection serial) or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            data = b""
            while True:
                b = s.recv(4096)
                if not b:
                    break
                data += b
    except OSError:
        return None
    body = data.split(b"\r\n\r\n", 1)[-1].decode().split()
    if len(body) != 2 or not data.startswith(b"HTTP/1.1 200"):
        fail("unexpected answer %r" % data[:200])
    return int(body[0]), int(body[1])


def wait_answer(port, seconds=20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        r = get(port, 2.0)
        if r:
            return r
        reap_all()
        time.sleep(0.01)
    return None


def children(pid):
    try:
        out = []
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                out += [int(x) for x in f.read().split()]
        return sorted(out)
    except OSError:
        return []


def kill_tree(pid):
    for c in children(pid):
        kill_tree(c)
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CONF = """daemon off;
master_process on;
worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/error.log notice;
events {{ worker_connections 64; }}
http {{
  access_log {d}/access.log;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  keepalive_timeout 0;
  server {{
    listen 127.0.0.1:{port};
    location / {{ return 200 "$pid $connection\\n"; }}
  }}
}}
"""


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    pidns = "--pidns" in sys.argv
    if not args:
        print("usage: tree-nginx.py WARMFORK [CYCLES] [--pidns]")
        return 1
    warmfork = args[0]
    cycles = int(args[1]) if len(args) > 1 else 10
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return 77
    if not os.access(NGINX, os.X_OK):
        print("SKIP: nginx is not installed (scripts/deps.sh installs nginx-light)")
        return 77
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        fail("PR_SET_CHILD_SUBREAPER failed")
    d = tempfile.mkdtemp(prefix="tree-nginx-")
    store = os.path.join(d, "store")
    port = free_port()
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(CONF.format(d=d, port=port))
    log = open(os.path.join(d, "nginx.out"), "w")
    ng = subprocess.Popen([NGINX, "-c", os.path.join(d, "nginx.conf"), "-p", d],
                          stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=True)
    master = ng.pid
    ok = False
    try:
        if not wait_answer(port):
            fail("nginx does not answer on port %d" % port)
        workers = children(master)
        if len(workers) != 2:
            fail("nginx master %d has children %s, expected 2 workers" % (master, workers))
        serial = {}
        seen = set()
        for _ in range(20):
            r = get(port)
            if not r or r[0] not in workers:
                fail("answer %s not from a worker %s" % (r, workers))
            serial[r[0]] = max(serial.get(r[0], 0), r[1])
            seen.add(r[0])
        for cycle in range(1, cycles + 1):
            t0 = time.monotonic()
            rc, snap, err = run([warmfork, "--store", store, "checkpoint", "--tree", str(master)])
            snap = snap.strip()
            if rc != 0 or not snap:
                fail("cycle %d: checkpoint failed (%d): %s" % (cycle, rc, err.strip()))
            t1 = time.monotonic()
            for p in [master] + workers:
                if os.path.exists("/proc/%d" % p):
                    reap_all()
                    time.sleep(0.05)
                    if os.path.exists("/proc/%d/status" % p):
                        fail("cycle %d: process %d still exists after the checkpoint" % (cycle, p))
            if get(port, 1.0):
                fail("cycle %d: port %d still answers after the checkpoint" % (cycle, port))
            flags = ["--detach"] + (["--pidns=new"] if pidns else [])
            rc, out, err = run([warmfork, "--store", store, "restore"] + flags + [snap])
            if rc != 0:
                fail("cycle %d: restore failed (%d): %s" % (cycle, rc, err.strip()))
            t2 = time.monotonic()
            got = int(out.strip() or 0)
            if not pidns and got != master:
                fail("cycle %d: restore printed pid %d, expected the master %d" % (cycle, got, master))
            master = got
            now_workers = children(master)
            if not pidns and now_workers != workers:
                fail("cycle %d: workers %s after restore, expected %s" % (cycle, now_workers, workers))
            if pidns and len(now_workers) != 2:
                fail("cycle %d: %d workers after restore" % (cycle, len(now_workers)))
            workers = now_workers
            for n in range(8):
                r = get(port)
                if not r:
                    fail("cycle %d: no answer after restore (request %d)" % (cycle, n))
                wpid, conn = r
                if wpid not in serial:
                    fail("cycle %d: answer from pid %d, not one of the original workers %s"
                         % (cycle, wpid, sorted(serial)))
                if conn <= serial[wpid]:
                    fail("cycle %d: worker %d's connection serial %d, not after %d (state lost)"
                         % (cycle, wpid, conn, serial[wpid]))
                serial[wpid] = conn
                seen.add(wpid)
            print("cycle %d: checkpoint %.0f ms, restore %.0f ms, answers from %s"
                  % (cycle, (t1 - t0) * 1000, (t2 - t1) * 1000, sorted(seen)), flush=True)
        with open(os.path.join(d, "error.log")) as f:
            bad = [l for l in f if "exited on signal" in l or "[emerg]" in l or "[alert]" in l]
        if bad:
            fail("nginx's error log: %s" % bad[0].strip())
        if len(seen) != 2:
            fail("only worker(s) %s ever answered (the shared listener)" % sorted(seen))
        # A clean stop: the master waits for its workers (SIGCHLD, wait).
        os.kill(master, signal.SIGQUIT)
        deadline = time.monotonic() + 10
        while os.path.exists("/proc/%d/status" % master) and time.monotonic() < deadline:
            reap_all()
            time.sleep(0.01)
        reap_all()
        if os.path.exists("/proc/%d/status" % master):
            fail("the restored master did not stop on SIGQUIT")
        print("PASS tree-nginx: %d cycles" % cycles, flush=True)
        ok = True
    finally:
        if not ok:
            kill_tree(master)
            print("files kept in " + d, flush=True)
        for _ in range(100):
            reap_all()
            if not children(os.getpid()):
                break
            time.sleep(0.01)
        if ok:
            shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
