# SPDX-License-Identifier: GPL-2.0-or-later
# An HTTP server for the warm-exec tests (python3's http.server), started as
#   warm-exec --ready=notify -- python3 wx-server.py PORT
# It does slow start-up work, draws a random token, listens on 127.0.0.1:PORT,
# then says READY=1 on $NOTIFY_SOCKET (the sd_notify protocol) and serves.
# GET / answers "token T work W served N": a warm run that answers the token
# of the snapshotted run continued its memory, and N counts the requests this
# copy served (the snapshot was taken before any). SIGTERM: exit 43.
import hashlib
import http.server
import os
import signal
import socket
import sys

port = int(sys.argv[1])
token = os.urandom(8).hex()

# The slow start-up: a result that costs time to compute.
h = hashlib.sha256()
for i in range(300000):
    h.update(str(i * i).encode())
work = h.hexdigest()[:16]
served = 0


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global served
        served += 1
        body = ("token %s work %s served %d\n" % (token, work, served)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


def on_term(sig, frame):
    sys.exit(43)


signal.signal(signal.SIGTERM, on_term)
server = http.server.HTTPServer(("127.0.0.1", port), Handler)

addr = os.environ.get("NOTIFY_SOCKET")
if addr:
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(b"READY=1", addr)
server.serve_forever()
