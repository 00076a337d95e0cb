# SPDX-License-Identifier: GPL-2.0-or-later
"""
handler.py READY_FILE: a pre-warmed Python HTTP request handler for warmd.

It imports and prepares everything a request needs (the slow part of a
Python cold start), writes its pid to READY_FILE and then waits for a
request on fd 0. That is where it is checkpointed (warmfork checkpoint).
Every instance warmd starts from the snapshot resumes in that read, now on
the connection the front end passed as its fds 0 and 1: it reads one HTTP
request, answers it and exits. A fresh instance per request: nothing of one
request can leak into the next.

The answer is JSON: the instance's pid (in its own pid namespace), its
namespace's inode, how many requests this process served (always 1), how
long ago the warm-up ended, and a digest of the request path.
"""
import os
import sys
import time

# The warm-up: what a real handler would import and build before serving.
import email.parser, hashlib, html, http, json, re, urllib.parse, uuid, zlib, decimal

ROUTES = {
    "/": "index",
    "/hello": "hello",
    "/digest": "digest",
}
TEMPLATE = json.dumps({"ok": True})
WARM_NS = time.monotonic_ns()
served = 0


def read_request(fd):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = os.read(fd, 65536)
        if not chunk:
            return None
        buf += chunk
        if len(buf) > 1 << 20:
            return None
    return buf


def answer(req):
    global served
    served += 1
    head = req.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    line = head.split("\r\n", 1)[0]
    parts = line.split(" ")
    path = urllib.parse.urlsplit(parts[1] if len(parts) > 1 else "/").path
    status = "200 OK" if path in ROUTES else "404 Not Found"
    body = json.dumps({
        "route": ROUTES.get(path),
        "pid": os.getpid(),
        "pidns": os.stat("/proc/self/ns/pid").st_ino,
        "served": served,
        "since_warm_ms": (time.monotonic_ns() - WARM_NS) / 1e6,
        "digest": hashlib.sha256(path.encode()).hexdigest()[:16],
    }).encode()
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


def main():
    os.closerange(3, 65536)
    ready = sys.argv[1]
    with open(ready + ".tmp", "w") as f:
        f.write(f"{os.getpid()}\n")
    os.rename(ready + ".tmp", ready)
    # Checkpointed here, blocked in read(0).
    req = read_request(0)
    if req is None:
        os._exit(0)
    out = answer(req)
    while out:
        n = os.write(1, out)
        out = out[n:]
    os._exit(0)


if __name__ == "__main__":
    main()
