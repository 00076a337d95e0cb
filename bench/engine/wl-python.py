# SPDX-License-Identifier: GPL-2.0-or-later
# wl-python: the benchmark's CPython process (~25 MB): a large part of the standard
# library imported and exercised, then the protocol of bench-engine.c: 'R' on
# stdout, a blocking read of one byte on stdin, 'A' at once, then a check of
# results computed before the cut ('P' or 'F').
import os, sys
import argparse, ast, base64, bz2, collections, concurrent.futures, csv, ctypes
import dataclasses, datetime, decimal, difflib, email, email.mime.text, enum, fractions
import functools, gzip, hashlib, heapq, html.parser, inspect
import ipaddress, itertools, json, logging, lzma, pathlib, pickle
import platform, random, re, secrets, shlex, shutil, socket, sqlite3, statistics
import string, struct, subprocess, tarfile, tempfile, textwrap, threading, tokenize
import typing, unicodedata, urllib.parse, uuid, xml.dom.minidom
import xml.etree.ElementTree, zipfile, zlib, tomllib


def work(seed):
    rnd = random.Random(seed)
    data = bytes(rnd.getrandbits(8) for _ in range(20000))
    db = sqlite3.connect(":memory:")
    db.execute("create table t (k integer primary key, v text)")
    db.executemany("insert into t values (?, ?)", [(i, str(i * i)) for i in range(1000)])
    r = (hashlib.sha256(data).hexdigest(), zlib.crc32(lzma.compress(data[:5000])),
         json.dumps({"a": [1, 2, None], "s": seed}, sort_keys=True),
         str(decimal.Decimal(1) / decimal.Decimal(7)),
         db.execute("select sum(length(v)) from t").fetchone()[0],
         re.findall(r"\d+", "a1b22c333"), str(uuid.uuid5(uuid.NAMESPACE_DNS, "x%d" % seed)))
    db.close()
    return r


expected = work(7)
table = {i: "v%d" % i for i in range(20000)}   # heap objects across the cut
os.write(1, b"R")
os.read(0, 1)
os.write(1, b"A")
ok = work(7) == expected and table[19999] == "v19999" and len(table) == 20000
os.write(1, b"P" if ok else b"F")
sys.exit(0 if ok else 1)
