#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A program that must differ between its restored copies.

Started under warm-exec, it does its slow start-up once, then asks warm-exec
(through the systemd notify socket) to send it SIGUSR2 after every restore,
and says it is ready. Whatever must be unique per instance (random seeds,
instance ids) is drawn again in the handler. Run it twice:

    warm-exec --ready=notify -- ./restore-aware.py   # cold: warms, saves
    warm-exec --ready=notify -- ./restore-aware.py   # warm: restored, new id

Protocol: send "X_WARM_EXEC_RESTORE_SIGNAL=<number>" on $NOTIFY_SOCKET
(before or with READY=1). warm-exec keeps the number with the snapshot, and
every restored copy resumes with that signal pending: the handler runs before
any other code of the program.
"""
import os
import random
import signal
import socket
import sys
import time

restored = 0
instance = None


def new_identity():
    global instance
    random.seed(os.urandom(16))
    instance = "%016x" % random.getrandbits(64)


def on_restore(sig, frame):
    global restored
    restored += 1
    new_identity()


def notify(msg):
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(msg.encode(), path)


# The slow part that warm-exec saves us from.
boot = time.time()
table = {i: i * i for i in range(200000)}
new_identity()
signal.signal(signal.SIGUSR2, on_restore)
notify("X_WARM_EXEC_RESTORE_SIGNAL=%d\nREADY=1" % signal.SIGUSR2)

line = sys.stdin.readline()
print("instance %s restored %d boot %.6f squares %d" %
      (instance, restored, boot, len(table)), flush=True)
