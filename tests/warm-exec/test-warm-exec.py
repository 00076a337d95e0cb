#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""warm-exec end to end, on real programs, as root.

Usage: test-warm-exec.py WARM_EXEC WARMFORK TEST

Each test uses a fresh store. The worker (wx-repl.py) draws a random token at
start-up, before it is ready: a warm run that answers with the token of the
snapshotted run really continued that process's memory; a different token
means a cold start. Exit 0 pass, 1 fail, 77 skip.
"""
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPL = os.path.join(HERE, "wx-repl.py")
PY = "/usr/bin/python3"
WARM_EXEC, WARMFORK, TEST = sys.argv[1], sys.argv[2], sys.argv[3]
TIMEOUT = 60


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def run(args, stdin_data="", env=None, timeout=TIMEOUT):
    try:
        p = subprocess.run(args, input=stdin_data.encode(), capture_output=True,
                           env=env, timeout=timeout, close_fds=True)
    except subprocess.TimeoutExpired as e:
        raise Fail("%s with input %r timed out after %d s: out %r err %r"
                   % (" ".join(args), stdin_data, timeout, e.stdout, e.stderr))
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def token_of(out):
    for line in out.splitlines():
        if line.startswith("token "):
            return line.split()[1]
    raise Fail("no token in output: %r" % out)


def snapshots(env):
    rc, out, err = run([WARMFORK, "ls", "--json"], env=env)
    check(rc == 0, "warmfork ls failed: %s" % err)
    return out.count('"id"')


def verify(env):
    rc, out, err = run([WARMFORK, "verify"], env=env)
    check(rc == 0, "warmfork verify failed: %s %s" % (out, err))


def test_answers(env, tmp):
    """Cold and warm runs answer alike, the warm one from the snapshot; the
    early output is replayed; exit status passes through; --refresh
    re-warms; --list and --forget."""
    cmd = [WARM_EXEC, "--", PY, REPL]
    rc1, out1, err1 = run(cmd, "token\npid\neval 6*7\nexit 3\n", env)
    check(rc1 == 3, "cold run exit status %d, want 3 (stderr %r)" % (rc1, err1))
    check(out1.startswith("booting\nready\n"), "cold output %r" % out1)
    check("42\n" in out1, "cold run did not compute 6*7: %r" % out1)
    check("pid 2\n" in out1, "the program runs as pid 2 of its own namespace: %r" % out1)
    check("warn: early" in err1, "cold stderr %r" % err1)
    check(snapshots(env) == 1, "one snapshot after the first run")
    t1 = token_of(out1)
    for i in range(3):
        rc, out, err = run(cmd, "token\npid\neval 6*7\nexit 3\n", env)
        check(rc == 3, "warm run %d exit status %d (stderr %r)" % (i, rc, err))
        check(out == out1, "warm run %d output differs:\n%r\n%r" % (i, out, out1))
        check("warn: early" in err, "early stderr not replayed: %r" % err)
        check(token_of(out) == t1, "warm run %d did not continue the snapshot" % i)
    check(snapshots(env) == 1, "warm runs must not add snapshots")
    rc, out, err = run([WARM_EXEC, "--refresh", "--", PY, REPL], "token\nexit 0\n", env)
    t2 = token_of(out)
    check(rc == 0 and t2 != t1, "--refresh must start cold")
    rc, out, err = run(cmd, "token\nexit 0\n", env)
    check(token_of(out) == t2, "after --refresh the new snapshot is used")
    rc, out, err = run([WARM_EXEC, "--list"], "", env)
    check(rc == 0 and "current" in out and REPL in out, "--list: %r" % out)
    rc, out, err = run([WARM_EXEC, "--forget", "--", PY, REPL], "", env)
    check(rc == 0, "--forget failed: %s" % err)
    rc, out, err = run(cmd, "token\nexit 0\n", env)
    check(token_of(out) not in (t1, t2), "after --forget the run is cold")
    verify(env)


def test_invalidate(env, tmp):
    """A changed executable or library means a cold start (and a re-warm)."""
    py = os.path.join(tmp, "python3")
    shutil.copy2(os.path.realpath(PY), py)
    lib = os.path.join(tmp, "libz.so.1")
    shutil.copy2(os.path.realpath("/lib/x86_64-linux-gnu/libz.so.1"), lib)
    env = dict(env, WX_LIB=lib)
    cmd = [WARM_EXEC, "--", py, REPL]
    _, out, _ = run(cmd, "token\n", env)
    t1 = token_of(out)
    _, out, _ = run(cmd, "token\n", env)
    check(token_of(out) == t1, "second run must be warm")

    # The library the program loaded changes: the snapshot is stale.
    st = os.stat(lib)
    os.utime(lib, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    rc, out, err = run(cmd, "token\n", env)
    t2 = token_of(out)
    check(t2 != t1, "a changed library must force a cold start")
    check("starting cold" in err and "libz" in err, "say why in one line: %r" % err)
    _, out, err = run(cmd, "token\n", env)
    check(token_of(out) == t2, "the re-warmed snapshot is used next")
    check("starting cold" not in err, "no message once warm again: %r" % err)
    os.utime(lib, ns=(st.st_atime_ns, st.st_mtime_ns + 2 * 10**9))
    _, out, err = run([WARM_EXEC, "--quiet", "--", py, REPL], "token\n", env)
    check(token_of(out) not in (t1, t2) and err.count("warm-exec") == 0,
          "--quiet hides the fallback line: %r" % err)

    # The executable changes: a different key, a cold start.
    _, out, _ = run(cmd, "token\n", env)
    t3 = token_of(out)
    st = os.stat(py)
    os.utime(py, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    _, out, _ = run(cmd, "token\n", env)
    check(token_of(out) != t3, "a changed executable must force a cold start")
    verify(env)


def test_concurrent(env, tmp):
    """Four first runs at once: all answer, one snapshot, a sound store."""
    cmd = [WARM_EXEC, "--", PY, REPL]
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env) for _ in range(4)]
    outs = []
    for p in procs:
        out, err = p.communicate(b"token\neval 6*7\nexit 5\n", timeout=TIMEOUT)
        check(p.returncode == 5, "concurrent run exit %d: %r" % (p.returncode, err))
        outs.append(out.decode())
        check("42\n" in outs[-1], "concurrent run answered %r" % outs[-1])
    check(snapshots(env) == 1, "exactly one snapshot, got %d" % snapshots(env))
    verify(env)
    _, out, _ = run(cmd, "token\n", env)
    check(token_of(out) in [token_of(o) for o in outs], "later run uses the warmed one")


def test_signals(env, tmp):
    """Signals reach the restored program; its exit status is ours."""
    cmd = [WARM_EXEC, "--", PY, REPL]
    run(cmd, "exit 0\n", env)		# warm it
    for warm in (False, True):
        args = cmd if warm else [WARM_EXEC, "--refresh", "--", PY, REPL]
        p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env)
        p.stdin.write(b"token\n")
        p.stdin.flush()
        line = b""
        deadline = time.time() + TIMEOUT
        while not line.startswith(b"token") and time.time() < deadline:
            line = p.stdout.readline()
        check(line.startswith(b"token"), "no answer before the signal")
        program_reading(p)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=TIMEOUT)		# stdin stays open: no EOF race
        out, err = p.communicate(timeout=TIMEOUT)
        check(p.returncode == 42, "SIGTERM: exit %d, want 42 (%r)" % (p.returncode, err))
        check(b"got TERM" in out, "the program's handler ran: %r" % out)
    # Death by a signal: reported like a shell does, 128 + signal.
    rc, out, err = run(cmd, "kill %d\n" % signal.SIGUSR2, env)
    check(rc in (128 + signal.SIGUSR2, -signal.SIGUSR2), "killed by SIGUSR2: exit %d" % rc)


def pty_session(args, env, steps):
    """Run @args on a new pty; steps: (send, expect) pairs.
    Returns (exit code, everything the terminal showed)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(args[0], args, env)
    buf = b""
    seen = b""

    def expect(what, timeout=TIMEOUT):
        nonlocal buf, seen
        deadline = time.time() + timeout
        while what not in buf:
            left = deadline - time.time()
            if left <= 0:
                raise Fail("pty: waited for %r, screen: %r" % (what, buf[-400:]))
            r, _, _ = select.select([fd], [], [], left)
            if r:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    data = b""
                if not data:
                    raise Fail("pty closed waiting for %r: %r" % (what, buf[-400:]))
                buf += data
                seen += data
        buf = buf[buf.index(what) + len(what):]

    try:
        for send, want in steps:
            if send == b"\x03":
                time.sleep(0.5)		# let the loop start: ^C interrupts it
            if send:
                os.write(fd, send)
            if want:
                expect(want)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), seen
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass
        os.close(fd)


def test_tty(env, tmp):
    """An interactive Python on a terminal, cold then warm: it answers from
    the snapshot's memory, Ctrl-C interrupts it, its exit status comes back."""
    args = [WARM_EXEC, "--", PY, "-q", "-i", "-c", "import os; t = os.urandom(4).hex()"]
    tokens = []
    for run_no in range(3):
        steps = [
            (None, b">>> "),
            (b"print('TOKEN', t, 6*7)\r", b"42"),
            (None, b">>> "),
            (b"while True: pass\r", b"... "),
            (b"\r", None),
            (b"\x03", b"KeyboardInterrupt"),
            (None, b">>> "),
            (b"exit(7)\r", None),
        ]
        try:
            code, seen = pty_session(args, env, steps)
        except Fail as e:
            raise Fail("tty run %d: %s" % (run_no, e))
        check(code == 7, "tty run %d: exit %d, want 7" % (run_no, code))
        words = seen.decode(errors="replace").split()
        i = [k for k, w in enumerate(words) if w == "TOKEN" and k + 2 < len(words)
             and words[k + 2] == "42"]
        check(i, "tty run %d: no answer on the screen: %r" % (run_no, seen[-300:]))
        tokens.append(words[i[-1] + 1])
    check(snapshots(env) == 1, "one snapshot for the terminal session")
    check(tokens[1] == tokens[0] and tokens[2] == tokens[0],
          "warm terminal runs continue the snapshot: %r" % tokens)


def test_warmup(env, tmp):
    """--warmup feeds input before the snapshot: the snapshot has processed
    it, its answers are never shown, cold and warm runs look the same."""
    cmd = [WARM_EXEC, "--warmup=eval 1000+1\\neval 1000+2", "--", PY, REPL]
    rc, out1, err = run(cmd, "count\ntoken\n", env)
    check(rc == 0, "cold run with warm-up: exit %d (%r)" % (rc, err))
    check("1001" not in out1 and "1002" not in out1, "warm-up answers shown: %r" % out1)
    check("count 3\n" in out1, "the program had processed the warm-up: %r" % out1)
    check(out1.startswith("booting\nready\n"), "early output: %r" % out1)
    rc, out2, err = run(cmd, "count\ntoken\n", env)
    check(out2 == out1, "warm run differs:\n%r\n%r" % (out2, out1))


def test_restore_signal(env, tmp):
    """A program that asks (X_WARM_EXEC_RESTORE_SIGNAL on the notify socket)
    gets its signal in every restored copy before it reads its input: the
    copies share the start-up, and each draws its own identity."""
    example = os.path.join(HERE, "..", "..", "examples", "warm-exec", "restore-aware.py")
    cmd = [WARM_EXEC, "--ready=notify", "--", PY, example]
    seen = []
    for i in range(3):
        rc, out, err = run(cmd, "go\n", env)
        check(rc == 0, "run %d: exit %d (%r)" % (i, rc, err))
        words = out.split()
        check(len(words) == 8 and words[0] == "instance", "run %d: %r" % (i, out))
        check(words[3] == "1", "run %d: the restore signal was not handled first: %r" % (i, out))
        seen.append((words[1], words[5]))
    check(len({b for _, b in seen}) == 1, "all copies continue one start-up: %r" % seen)
    check(len({inst for inst, _ in seen}) == 3, "each copy has its own identity: %r" % seen)


def http_get(port, deadline):
    """GET / on 127.0.0.1:PORT, retried until @deadline (connection refused
    while the program starts, or between its checkpoint and its restore)."""
    import urllib.request
    while True:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=5) as r:
                return r.read().decode()
        except OSError as e:
            if time.time() > deadline:
                raise Fail("no HTTP answer on port %d: %s" % (port, e))
            time.sleep(0.05)


def test_server(env, tmp):
    """A server (http.server) that speaks sd_notify is warmed with its
    listening socket: the cold run and a warm run both answer HTTP; the warm
    run answers with the cold run's start-up token (it continued the
    snapshot), its own request count, and exits 43 on SIGTERM like the cold."""
    import socket
    server = os.path.join(HERE, "wx-server.py")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [WARM_EXEC, "--ready=notify", "--", PY, server, str(port)]
    answers = []
    for i in range(2):
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env)
        try:
            deadline = time.time() + TIMEOUT
            if i == 0:
                while snapshots(env) < 1:
                    if p.poll() is not None or time.time() > deadline:
                        p.kill()
                        raise Fail("the cold run made no snapshot: %r" % (p.communicate()[1],))
                    time.sleep(0.05)
            first = http_get(port, deadline).split()
            second = http_get(port, deadline).split()
            check(len(first) == 6 and first[0] == "token", "answer: %r" % first)
            check(second[:4] == first[:4] and int(second[5]) == int(first[5]) + 1,
                  "the same server answers: %r %r" % (first, second))
            answers.append(first)
            p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=TIMEOUT)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        check(p.returncode == 43, "run %d: SIGTERM: exit %d, want 43 (%r)" % (i, p.returncode, err))
        if i == 1:
            check(b"cold" not in err, "the second run was not warm: %r" % err)
    cold, warm = answers
    check(warm[1] == cold[1] and warm[3] == cold[3],
          "the warm run continued the snapshot: %r vs %r" % (warm, cold))
    check(warm[5] == "1", "the warm copy served its first request: %r" % warm)
    check(snapshots(env) == 1, "one snapshot")


def keepers(store):
    """Pids of running warm-exec keepers of @store (one of their
    descriptors is in it): comm warm-exec-keep, not zombies, whose parent
    is not one (the template and the instances' inits, forked by the
    keeper, inherit the name). Other tests' keepers are not ours."""
    procs = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
            except OSError:
                continue
            comm = st[st.index("(") + 1:st.rindex(")")]
            fields = st.rsplit(")", 1)[1].split()
            procs[int(d)] = (comm, fields[0], int(fields[1]))

    def in_store(pid):
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            return False
        for fd in fds:
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith(store + "/"):
                    return True
            except OSError:
                pass
        return False
    return [p for p, (comm, state, ppid) in procs.items()
            if comm == "warm-exec-keep" and state != "Z"
            and procs.get(ppid, ("",))[0] != "warm-exec-keep" and in_store(p)]


def describe(pids):
    """pid: stat line, for a failure message."""
    out = []
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                out.append(f.read().strip()[:120])
        except OSError:
            out.append("%d gone" % pid)
    return out


def program_reading(p):
    """Wait until the REPL that warm-exec @p runs (its child, or a kept
    copy reading @p's stdin pipe) is blocked reading its stdin; return its
    pid. A signal sent before that may land between CPython's last check
    for signals and its read(), and CPython then runs the handler only once
    the read returns: a race of the interpreter, not of warm-exec."""
    pipe = "pipe:[%d]" % os.fstat(p.stdin.fileno()).st_ino
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        ppid = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open("/proc/%s/stat" % d) as f:
                        ppid[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    pass
        for pid in ppid:
            a, mine = pid, False
            while a > 1 and not mine:
                a = ppid.get(a, 0)
                mine = a == p.pid
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    argv = f.read().split(b"\0")
                if b"wx-repl.py" not in b" ".join(argv) or b"python" not in os.path.basename(argv[0]):
                    continue
                if not mine and os.readlink("/proc/%d/fd/0" % pid) != pipe:
                    continue
                with open("/proc/%d/syscall" % pid) as f:
                    sc = f.read().split()
            except OSError:
                continue
            if len(sc) > 1 and sc[0] == "0" and sc[1] == "0x0":
                return pid
        time.sleep(0.01)
    raise Fail("the program never blocked reading its stdin")


def wait_for(cond, what, timeout=TIMEOUT):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise Fail("timed out waiting for " + what)


def test_keep(env, tmp):
    """A restored snapshot is kept warm: later runs are copies of it that
    continue the snapshot's memory (same token), are independent of each
    other, get their own stdio, signals and exit status; the keeper goes
    away on --forget; --keep-warm=0 restores every time."""
    env = dict(env, WARM_EXEC_KEEP_WARM="2m")
    cmd = [WARM_EXEC, "-v", "--", PY, REPL]
    before = set(keepers(env["WARMFORK_STORE"]))
    rc, out, err = run(cmd, "token\nexit 0\n", env)      # cold, then restored
    t1 = token_of(out)
    wait_for(lambda: set(keepers(env["WARMFORK_STORE"])) - before, "a keeper after the first run")
    mine = sorted(set(keepers(env["WARMFORK_STORE"])) - before)
    kdir = os.path.join(env["WARMFORK_STORE"], "warm-exec")
    wait_for(lambda: any(f.endswith(".keep") for f in os.listdir(kdir)),
             "the keeper's socket (its template restored)")
    check(len(mine) == 1, "one keeper per snapshot, got %s" % describe(mine))
    # A copy: same token, its own counter, exit status passes through.
    for i in range(3):
        rc, out, err = run(cmd, "token\ncount\ncount\nexit 5\n", env)
        check("copy of the kept snapshot" in err, "run %d was not a copy: %r" % (i, err))
        check(rc == 5, "copy exit status %d, want 5 (%r)" % (rc, err))
        check(token_of(out) == t1, "a copy continues the snapshot's memory")
        check("count 3\n" in out, "copies are independent (count restarts): %r" % out)
        check(out.startswith("booting\nready\n"), "early output replayed: %r" % out)
    check(sorted(set(keepers(env["WARMFORK_STORE"])) - before) == mine, "still one keeper")
    # Three copies at once, each answering on its own stdio.
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env) for _ in range(3)]
    for k, p in enumerate(procs):
        p.stdin.write(("eval %d*11\n" % (k + 1)).encode())
        p.stdin.flush()
    for k, p in enumerate(procs):
        out, err = p.communicate(b"exit 0\n", timeout=TIMEOUT)
        check(p.returncode == 0 and ("%d\n" % ((k + 1) * 11)).encode() in out,
              "concurrent copy %d: rc %d out %r err %r" % (k, p.returncode, out, err))
    # Signals reach a copy; its death by a signal is ours.
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    p.stdin.write(b"token\n")
    p.stdin.flush()
    check(p.stdout.readline().startswith(b"booting"), "copy started")
    line = b""
    deadline = time.time() + TIMEOUT
    while not line.startswith(b"token") and time.time() < deadline:
        line = p.stdout.readline()
    program_reading(p)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=TIMEOUT)		# stdin stays open: no EOF race
    out, err = p.communicate(timeout=TIMEOUT)
    check(p.returncode == 42 and b"got TERM" in out,
          "SIGTERM to a copy: rc %d out %r err %r" % (p.returncode, out, err))
    rc, out, err = run(cmd, "kill %d\n" % signal.SIGUSR2, env)
    check(rc in (128 + signal.SIGUSR2, -signal.SIGUSR2), "copy killed by SIGUSR2: exit %d" % rc)
    # A caller that dies takes its copy with it.
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    copy = None
    deadline = time.time() + TIMEOUT
    while copy is None and time.time() < deadline:
        line = p.stderr.readline().decode()
        check(line, "warm-exec ended before running a copy")
        if "copy of the kept snapshot" in line:
            copy = int(line.split("running as pid ")[1].split(",")[0])
    check(copy and os.path.exists("/proc/%d" % copy), "the copy runs")
    p.kill()
    p.wait()

    def gone(pid):
        try:
            with open("/proc/%d/stat" % pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except OSError:
            return True
    wait_for(lambda: gone(copy), "the copy of a killed caller to end", 10)
    # --keep-warm=0: a restore, not a copy.
    rc, out, err = run([WARM_EXEC, "-v", "--keep-warm=0", "--", PY, REPL], "token\nexit 0\n", env)
    check("copy of the kept snapshot" not in err and token_of(out) == t1,
          "--keep-warm=0 restores: %r" % err)
    # A snapshot holding a pipe is not kept (copies would share the pipe):
    # every warm run restores it.
    penv = dict(env, WX_HOLD_PIPE="1")
    run(cmd, "exit 0\n", penv)
    for i in range(2):
        rc, out, err = run(cmd, "token\nexit 0\n", penv)
        check(rc == 0 and "restored, running as pid" in err and "copy of the kept" not in err,
              "a snapshot holding a pipe is restored, not copied: %r" % err)
    check("not keeping the snapshot warm: fd" in err, "say why it is not kept: %r" % err)
    # --forget: the keeper leaves.
    rc, out, err = run([WARM_EXEC, "--forget", "--", PY, REPL], "", env)
    check(rc == 0, "--forget failed: %s" % err)
    wait_for(lambda: not (set(keepers(env["WARMFORK_STORE"])) & set(mine)), "the keeper to leave after --forget", 10)
    verify(env)
    while True:         # reap the keeper (we are its subreaper)
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break


def test_fallback(env, tmp):
    """A program that holds what cannot be saved (here an inherited pipe)
    goes on cold: one line says so, it still gets its input and EOF, and
    nothing is saved."""
    r, w = os.pipe()
    p = subprocess.Popen([WARM_EXEC, "--", PY, REPL], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                         pass_fds=(r,))
    os.close(r)
    try:
        out, err = p.communicate(b"token\neval 6*7\n", timeout=TIMEOUT)
    finally:
        os.close(w)
    out, err = out.decode(), err.decode()
    check(p.returncode == 0, "exit %d, want 0 (EOF reached the program): %r" % (p.returncode, err))
    check("42\n" in out and "token " in out, "the cold program answered: %r" % out)
    check("goes on cold" in err and "pipe" in err, "one line says why: %r" % err)
    check(snapshots(env) == 0, "nothing saved")


TESTS = {
    "keep": test_keep,
    "fallback": test_fallback,
    "server": test_server,
    "restore-signal": test_restore_signal,
    "warmup": test_warmup,
    "answers": test_answers,
    "invalidate": test_invalidate,
    "concurrent": test_concurrent,
    "signals": test_signals,
    "tty": test_tty,
}


def main():
    if os.geteuid() != 0:
        print("skip: needs root (ptrace, pid namespaces)")
        return 77
    if not os.path.exists(PY):
        print("skip: %s missing" % PY)
        return 77
    # We reap what warm-exec leaves detached (its keepers; pid 1 here does
    # not reap orphans).
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)	# PR_SET_CHILD_SUBREAPER
    tmp = tempfile.mkdtemp(prefix="wx-")
    # Keepers only where a test asks for them (test_keep).
    env = dict(os.environ, WARMFORK_STORE=os.path.join(tmp, "store"), WARM_EXEC_KEEP_WARM="0")
    env.pop("NOTIFY_SOCKET", None)
    try:
        TESTS[TEST](env, tmp)
    except Fail as e:
        print("FAIL %s: %s" % (TEST, e))
        return 1
    except subprocess.TimeoutExpired as e:
        print("FAIL %s: timed out: %s" % (TEST, e))
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("ok %s" % TEST)
    return 0


if __name__ == "__main__":
    sys.exit(main())
