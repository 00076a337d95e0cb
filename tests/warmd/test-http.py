# SPDX-License-Identifier: GPL-2.0-or-later
"""
test-http.py WARMD WARMFORK FRONTEND HANDLER_PY N: the example front end
(examples/http-frontend) answers N HTTP requests, each from a fresh instance
of the pre-warmed Python handler held by warmd (root; skips otherwise).

Checked on the real answers: every request gets 200 and a JSON body whose
instance served exactly one request (its first), runs with the handler's
saved pid inside its own pid namespace, and no two answers share a
namespace (namespace inodes are reused once one ends, so freshness is
"served == 1", not a new inode); a few requests run concurrently; the front end exits 0 after N
requests; warmd then has no running instance and exits 0 on SIGTERM.
Exit 0 pass, 1 fail, 77 skip.
"""
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

failures = []


def fail(msg):
    print("FAIL:", msg, file=sys.stderr)
    failures.append(msg)


def wait_for(pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    return None


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def main():
    if len(sys.argv) != 6:
        print("usage: test-http.py WARMD WARMFORK FRONTEND HANDLER_PY N", file=sys.stderr)
        return 2
    warmd, warmfork, frontend, handler, n = sys.argv[1:6]
    n = int(n)
    if os.geteuid() != 0:
        print("SKIP: needs root (checkpoint, pid namespaces)")
        return 77
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: the handler's pid is ours to reap

    d = tempfile.mkdtemp(prefix="test-http.")
    store = os.path.join(d, "store")
    sock = os.path.join(d, "warmd.sock")
    ready = os.path.join(d, "ready")
    procs = []
    try:
        # The handler, warmed up, waits on a pipe nobody writes to.
        rfd, wfd = os.pipe()
        h = subprocess.Popen([sys.executable if os.path.exists(sys.executable) else "python3",
                              handler, ready], stdin=rfd, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        os.close(rfd)
        pid = wait_for(lambda: os.path.exists(ready) and open(ready).read().strip(), 30)
        if not pid:
            fail("the handler did not get ready")
            h.kill()
            return 1
        saved = int(pid)
        time.sleep(0.1)  # into its read(0)
        # The checkpoint returns once the handler's pid is free: reap it
        # (our child) while waiting.
        ck = subprocess.Popen([warmfork, "--store", store, "checkpoint", str(saved)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        h.wait()
        ck_out, ck_err = ck.communicate()
        os.close(wfd)
        if ck.returncode != 0:
            fail("checkpoint of the handler failed: " + ck_err.strip())
            return 1
        snap = ck_out.strip()

        wd = subprocess.Popen([warmd, "--socket", sock, "--store", store], stderr=subprocess.PIPE,
                              text=True)
        procs.append(wd)
        if not wait_for(lambda: os.path.exists(sock), 10):
            fail("warmd did not start")
            return 1
        fe = subprocess.Popen([frontend, "--warmd", sock, "--pool", "py", "--snapshot", snap,
                               "--idle", "4", "--listen", "127.0.0.1:0", "--requests", str(n)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(fe)
        line = fe.stdout.readline().strip()
        if not line.startswith("listening on "):
            fail("the front end did not start: " + fe.stderr.read())
            return 1
        port = int(line.rsplit(":", 1)[1])

        answers = []
        lock = threading.Lock()

        def one(i):
            try:
                status, body = get(port, "/hello?i=%d" % i)
                with lock:
                    answers.append((i, status, body))
            except Exception as e:  # noqa: BLE001 - recorded as a failure
                with lock:
                    answers.append((i, None, repr(e).encode()))

        # Sequential first, then 4 at a time.
        seq = n // 2
        t0 = time.monotonic()
        for i in range(seq):
            one(i)
        i = seq
        while i < n:
            ts = [threading.Thread(target=one, args=(k,)) for k in range(i, min(i + 4, n))]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            i += len(ts)
        elapsed = time.monotonic() - t0

        namespaces = set()
        for i, status, body in sorted(answers):
            if status != 200:
                fail("request %d: status %s: %s" % (i, status, body[:200]))
                continue
            try:
                j = json.loads(body)
            except ValueError:
                fail("request %d: not JSON: %r" % (i, body[:200]))
                continue
            if j.get("served") != 1:
                fail("request %d: its instance served %s requests: not fresh" % (i, j.get("served")))
            if j.get("pid") != saved:
                fail("request %d: pid %s in its namespace, not the saved %d" % (i, j.get("pid"), saved))
            if j.get("route") != "hello":
                fail("request %d: route %r" % (i, j.get("route")))
            if j.get("pidns") == os.stat("/proc/self/ns/pid").st_ino:
                fail("request %d: answered from our own pid namespace" % i)
            namespaces.add(j.get("pidns"))
        if len(answers) != n:
            fail("%d answers for %d requests" % (len(answers), n))

        try:
            fe.wait(timeout=30)
        except subprocess.TimeoutExpired:
            fail("the front end did not exit after %d requests" % n)
            fe.kill()
            fe.wait()
        err = fe.stderr.read()
        if fe.returncode != 0:
            fail("the front end exited %d: %s" % (fe.returncode, err.strip()))
        print("%d requests in %.2f s; %s" % (n, elapsed, err.strip()))

        # Nothing of the instances is left running: all released and reaped.
        wd.send_signal(signal.SIGTERM)
        try:
            wd.wait(timeout=30)
        except subprocess.TimeoutExpired:
            fail("warmd did not stop")
            wd.kill()
            wd.wait()
        if wd.returncode != 0:
            fail("warmd exited %d: %s" % (wd.returncode, wd.stderr.read()))
        def leftovers():
            # The ready path is in every handler's command line, nowhere else.
            out = subprocess.run(["pgrep", "-f", ready], capture_output=True, text=True).stdout
            return [p for p in out.split() if int(p) != os.getpid()]
        left = leftovers()
        if left:
            ps = subprocess.run(["ps", "-o", "pid,ppid,stat,args", "-p", ",".join(left)],
                                capture_output=True, text=True).stdout
            fail("handler processes left running:\n" + ps)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        shutil.rmtree(d, ignore_errors=True)
    if failures:
        print("%d check(s) failed" % len(failures), file=sys.stderr)
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
