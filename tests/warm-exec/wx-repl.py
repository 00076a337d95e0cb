# SPDX-License-Identifier: GPL-2.0-or-later
# A line-oriented worker for the warm-exec tests. It picks a random token and
# prints some output before it is ready (blocked reading stdin); a warm run
# must answer with the token of the run that was snapshotted, and replay the
# early output. Commands on stdin: token, count, pid, eval EXPR, exit N, kill SIG.
import ctypes
import os
import signal
import sys

token = os.urandom(8).hex()
lib = os.environ.get("WX_LIB")
if lib:
    ctypes.CDLL(lib)
if os.environ.get("WX_HOLD_PIPE"):
    held_pipe = os.pipe()       # a kernel object copies of a snapshot would share


def on_term(sig, frame):
    # Not print(): the signal may come in the middle of one (a reentrant
    # call into the same buffered writer raises).
    os.write(1, b"got TERM\n")
    os._exit(42)


signal.signal(signal.SIGTERM, on_term)
sys.stdout.write("booting\n")
sys.stdout.flush()
sys.stderr.write("warn: early\n")
sys.stderr.flush()
print("ready", flush=True)

commands = 0
for line in sys.stdin:
    cmd = line.strip()
    commands += 1
    if cmd == "count":
        print("count", commands, flush=True)
    elif cmd == "token":
        print("token", token, flush=True)
    elif cmd == "pid":
        print("pid", os.getpid(), flush=True)
    elif cmd.startswith("eval "):
        print(eval(cmd[5:]), flush=True)
    elif cmd.startswith("exit "):
        sys.exit(int(cmd[5:]))
    elif cmd.startswith("kill "):
        os.kill(os.getpid(), int(cmd[5:]))
sys.exit(0)
