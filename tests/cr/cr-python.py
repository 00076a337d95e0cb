# SPDX-License-Identifier: GPL-2.0-or-later
# cr-python: a CPython process that imported a large part of the standard library,
# in the cr protocol (tests/cr/README.md): before the cut it computes results with
# many modules; after SIGUSR1 ("go") it computes them again with the same
# interpreter state and compares, and checks that the heap objects built before
# the cut are intact. Exit 0 pass, 1 fail. Mode "bench": see bench/engine.
import os, sys, signal, time

import abc, argparse, array, ast, asyncio, base64, bisect, bz2, calendar, cmath
import collections, concurrent.futures, configparser, contextlib, copy, csv, ctypes
import dataclasses, datetime, decimal, difflib, dis, email, email.mime.text, enum
import fnmatch, fractions, functools, gettext, glob, gzip, hashlib, heapq, hmac, html
import html.parser, http.client, http.server, importlib, inspect, io, ipaddress
import itertools, json, locale, logging, lzma, math, mimetypes, multiprocessing
import numbers, operator, optparse, pathlib, pickle, pkgutil, platform, plistlib
import pprint, queue, random, re, sched, secrets, shlex, shutil, socket, sqlite3
import statistics, string, struct, subprocess, tarfile, tempfile, textwrap
import threading, timeit, tokenize, traceback, types, typing, unicodedata, unittest
import urllib.parse, urllib.request, uuid, warnings, weakref, xml.dom.minidom
import xml.etree.ElementTree, zipfile, zlib, tomllib, graphlib, contextvars

CR_DIR = os.environ.get("CR_DIR")
go = False


def on_go(sig, frame):
    global go
    go = True


def work(seed):
    """Deterministic results from many modules."""
    rnd = random.Random(seed)
    data = bytes(rnd.getrandbits(8) for _ in range(50000))
    out = {}
    out["sha256"] = hashlib.sha256(data).hexdigest()
    out["blake2"] = hashlib.blake2b(data, digest_size=16).hexdigest()
    out["zlib"] = zlib.crc32(zlib.compress(data, 6))
    out["lzma"] = len(lzma.compress(data[:20000]))
    out["bz2"] = zlib.crc32(bz2.decompress(bz2.compress(data[:20000])))
    out["json"] = json.dumps({"a": [1, 2.5, None, "x" * 3], "b": {"c": seed}}, sort_keys=True)
    out["re"] = re.findall(r"(\w+)@(\w+)\.com", "a@b.com, cc@dd.com; e@f.org")
    decimal.getcontext().prec = 50
    out["decimal"] = str(decimal.Decimal(1) / decimal.Decimal(7))
    out["fraction"] = str(sum(fractions.Fraction(1, k) for k in range(1, 40)))
    out["stats"] = statistics.pstdev([rnd.random() for _ in range(1000)])
    db = sqlite3.connect(":memory:")
    db.execute("create table t (k integer primary key, v text)")
    db.executemany("insert into t values (?, ?)", [(i, str(i * i)) for i in range(2000)])
    out["sqlite"] = db.execute("select sum(length(v)), count(*) from t where k % 7 = 3").fetchone()
    db.close()
    out["pickle"] = hashlib.md5(pickle.dumps({"x": list(range(300)), "y": (1, 2)}, 4)).hexdigest()
    out["xml"] = ElementTree_roundtrip()
    out["uuid"] = str(uuid.uuid5(uuid.NAMESPACE_DNS, "warmfork%d" % seed))
    out["struct"] = struct.pack("<iqd", 7, -3, 2.5).hex()
    out["unicodedata"] = unicodedata.name("\u00e9")
    out["ipaddress"] = str(ipaddress.ip_network("10.1.0.0/16").broadcast_address)
    out["datetime"] = (datetime.datetime(2020, 2, 29) + datetime.timedelta(days=400)).isoformat()
    out["ast"] = len(ast.dump(ast.parse("def f(x):\n    return [i*i for i in range(x)]\n")))
    out["textwrap"] = textwrap.fill("lorem ipsum dolor sit amet " * 10, 30)
    out["heap"] = heapq.nsmallest(5, [rnd.randint(0, 10**9) for _ in range(5000)])
    out["base64"] = base64.b85encode(data[:64]).decode()
    out["difflib"] = list(difflib.unified_diff(["a", "b", "c"], ["a", "x", "c"], lineterm=""))
    return out


def ElementTree_roundtrip():
    root = xml.etree.ElementTree.fromstring("<r><a k='1'>x</a><a k='2'>y</a></r>")
    return [(e.get("k"), e.text) for e in root.iter("a")]


def ready_path():
    ns = os.stat("/proc/self/ns/pid").st_ino
    return "%s/ready.%d" % (CR_DIR, ns), int(os.readlink("/proc/self"))


def heartbeat(state):
    path, hostpid = ready_path()
    if not os.path.exists(path):
        if state["ready"]:
            state["restores"] += 1
        tmp = "%s/tmp.%d" % (CR_DIR, hostpid)
        with open(tmp, "w") as f:
            f.write("%d %d 0x0 0\n" % (os.getpid(), hostpid))
        os.rename(tmp, path)
    state["ready"] = True


def main():
    if not CR_DIR:
        print("FAIL cr-python: CR_DIR not set", file=sys.stderr)
        return 1
    signal.signal(signal.SIGUSR1, on_go)
    seed = 12345
    expected = work(seed)
    big = {i: ("v%d" % i) * 3 for i in range(200000)}   # heap objects across the cut
    big_sum = sum(len(v) for v in big.values())
    pid = os.getpid()
    state = {"ready": False, "restores": 0}
    heartbeat(state)
    while not go:
        heartbeat(state)
        time.sleep(0.002)
    fails = []
    got = work(seed)
    for k in expected:
        if got[k] != expected[k]:
            fails.append("%s: %r != %r" % (k, got[k], expected[k]))
    if sum(len(v) for v in big.values()) != big_sum or big[123456] != "v123456" * 3:
        fails.append("dict of 200000 strings changed")
    if os.getpid() != pid:
        fails.append("pid %d, was %d" % (os.getpid(), pid))
    # Threads and time still work.
    t = threading.Thread(target=lambda: expected.__setitem__("thread", 1))
    t.start()
    t.join(5)
    if expected.get("thread") != 1:
        fails.append("a new thread did not run")
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        if sum(ex.map(lambda x: x * x, range(100))) != 328350:
            fails.append("thread pool result wrong")
    for f in fails:
        print("FAIL cr-python: " + f, file=sys.stderr)
    if not fails:
        print("PASS cr-python (restores seen: %d, modules: %d)" % (state["restores"], len(sys.modules)),
              file=sys.stderr)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
