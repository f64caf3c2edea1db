#!/usr/bin/env python3
"""The point-in-time recovery oracle, used by the pitr_* integration tests.

writer: commits numbered transactions to a production database with Python's
    sqlite3 (a separate process, as an application would), and logs the wall
    time just before and just after each COMMIT:
        T <k> <before> <after> <kind>
    kinds: small (one row), overflow (a row whose blob spans overflow pages),
    big (rewrites every row of `big`: hundreds of pages, past the checkpoint
    thresholds). Between transactions, now and then: an application-issued
    PRAGMA wal_checkpoint(TRUNCATE) ("C <before> <after>"), one VACUUM
    ("V ..."), and, on request, closing every connection ("X ...": SQLite
    then checkpoints and deletes the WAL unless another connection holds the
    database open).

check: restores many times T with `sqlenvfs restore` and checks each result
    against the log: the rows are exactly transactions 1..k for some k, every
    transaction whose COMMIT returned more than 1 s before T is in, none whose
    COMMIT began after T is in, `big` holds the version of the last big
    transaction <= k, every blob is intact, integrity_check is ok. Times
    outside the windows `sqlenvfs list --json` reports must be refused.
"""
import argparse
import datetime
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
import zlib

SCHEMA = """
CREATE TABLE tx(k INTEGER PRIMARY KEY, kind TEXT NOT NULL, payload BLOB NOT NULL,
                crc INTEGER NOT NULL);
CREATE TABLE big(id INTEGER PRIMARY KEY, gen INTEGER NOT NULL, v BLOB NOT NULL);
"""

BIG_ROWS = 300
BIG_ROW_BYTES = 3000


def blob(seed, n):
    out = bytearray()
    x = seed & 0xFFFFFFFF
    while len(out) < n:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        out += x.to_bytes(4, "little")
    return bytes(out[:n])


def big_value(gen, row):
    return blob(gen * 100003 + row, BIG_ROW_BYTES)


# ---------------------------------------------------------------- writer

def writer(args):
    rnd = random.Random(args.seed)
    log = open(args.log, "a", buffering=1)
    conns = []

    def connect():
        c = sqlite3.connect(args.db, isolation_level=None, timeout=60)
        conns.append(c)
        return c

    conn = connect()
    if args.k0 == 0:
        log.write("S %.6f\n" % time.time())
    k = args.k0
    deadline = time.time() + args.duration
    n_since_ckpt = 0
    vacuumed = args.no_vacuum

    def commit(kind):
        nonlocal k
        k += 1
        conn.execute("BEGIN IMMEDIATE")
        if kind in ("big", "bigfill"):
            if kind == "bigfill":
                conn.execute("DELETE FROM big")
            for row in range(1, BIG_ROWS + 1):
                conn.execute("INSERT OR REPLACE INTO big(id, gen, v) VALUES (?, ?, ?)",
                             (row, k, big_value(k, row)))
        size = 10000 if kind == "overflow" else 40
        payload = blob(k, size)
        conn.execute("INSERT INTO tx(k, kind, payload, crc) VALUES (?, ?, ?, ?)",
                     (k, kind, payload, zlib.crc32(payload)))
        t0 = time.time()
        conn.execute("COMMIT")
        t1 = time.time()
        log.write("T %d %.6f %.6f %s\n" % (k, t0, t1, kind))

    if args.k0 == 0:
        commit("bigfill")
    was_quiet = False
    while time.time() < deadline:
        if args.stop_file and os.path.exists(args.stop_file):
            break
        if args.pause_file and os.path.exists(args.pause_file):
            time.sleep(0.01)
            continue
        i = k + 1
        quiet = args.quiet_file and os.path.exists(args.quiet_file)
        if quiet != was_quiet:
            # No checkpoint of the application's own while quiet either, so
            # that the WAL cannot restart.
            conn.execute("PRAGMA wal_autocheckpoint=%d" % (0 if quiet else 1000)).fetchall()
            was_quiet = quiet
        if quiet:
            commit("small")
        elif i % 40 == 0:
            commit("big")
        elif i % 7 == 0:
            commit("overflow")
        else:
            commit("small")
        n_since_ckpt += 1
        if args.truncate_every and n_since_ckpt >= args.truncate_every and not quiet:
            t0 = time.time()
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            log.write("C %.6f %.6f\n" % (t0, time.time()))
            n_since_ckpt = 0
        if args.truncate_file and os.path.exists(args.truncate_file):
            t0 = time.time()
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            log.write("C %.6f %.6f\n" % (t0, time.time()))
            os.unlink(args.truncate_file)
        if not vacuumed and time.time() > deadline - args.duration / 2:
            t0 = time.time()
            conn.execute("VACUUM")
            log.write("V %.6f %.6f\n" % (t0, time.time()))
            vacuumed = True
        if args.close_every and k % args.close_every == 0:
            t0 = time.time()
            for c in conns:
                c.close()
            conns.clear()
            log.write("X %.6f %.6f\n" % (t0, time.time()))
            conn = connect()
        time.sleep(rnd.uniform(0, args.max_sleep))
    for c in conns:
        c.close()
    log.write("E %d %.6f\n" % (k, time.time()))
    print(k)


# ---------------------------------------------------------------- checker

def parse_log(path):
    txns, start = [], None
    for line in open(path):
        f = line.split()
        if f[0] == "T":
            txns.append((int(f[1]), float(f[2]), float(f[3]), f[4]))
        elif f[0] == "S" and start is None:
            start = float(f[1])
    txns.sort()
    for i, t in enumerate(txns):
        assert t[0] == i + 1, "log: transaction %d missing" % (i + 1)
    return txns, start


def iso_to_unix(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def windows(sqlenvfs, root, db):
    out = subprocess.run([sqlenvfs, "list", "--json", "--root", root], check=True,
                         capture_output=True, text=True).stdout
    ws = [w for w in json.loads(out)["windows"] if w["database"] == db]
    return [(iso_to_unix(w["from"]), iso_to_unix(w["to"]), w.get("note")) for w in ws]


class Fail(Exception):
    pass


def expected_gen(txns, k):
    gen = 0
    for t in txns[:k]:
        if t[3] in ("big", "bigfill"):
            gen = t[0]
    return gen


def check_db(path, txns, T, quick):
    c = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        ic = c.execute("PRAGMA integrity_check").fetchone()[0]
        if ic != "ok":
            raise Fail("integrity_check: %s" % ic)
        n, mx = c.execute("SELECT count(*), coalesce(max(k), 0) FROM tx").fetchone()
        if n != mx:
            raise Fail("rows are not exactly 1..k: %d rows, max k %d" % (n, mx))
        k = mx
        for (kk, crc, payload) in c.execute("SELECT k, crc, payload FROM tx"):
            if zlib.crc32(payload) != crc or payload != blob(kk, len(payload)):
                raise Fail("transaction %d: blob damaged" % kk)
        gen = expected_gen(txns, k)
        rows = c.execute("SELECT count(*), min(gen), max(gen) FROM big").fetchone()
        if gen == 0:
            if rows[0] != 0:
                raise Fail("big has rows before it was filled")
        elif rows != (BIG_ROWS, gen, gen):
            raise Fail("big: expected %d rows of generation %d, got %r" % (BIG_ROWS, gen, rows))
        if gen:
            for row in ([1, BIG_ROWS // 2, BIG_ROWS] if quick else range(1, BIG_ROWS + 1)):
                v = c.execute("SELECT v FROM big WHERE id = ?", (row,)).fetchone()[0]
                if v != big_value(gen, row):
                    raise Fail("big row %d: wrong content" % row)
        return k
    finally:
        c.close()


def bounds(txns, T):
    """k must be in [lo, hi]: every COMMIT that returned more than 1 s before
    T is in, none that began after T."""
    lo = 0
    hi = len(txns)
    for (k, t0, t1, _) in txns:
        if t1 < T - 1.0:
            lo = k
        if t0 > T and hi == len(txns):
            hi = k - 1
    return lo, hi


def restore(sqlenvfs, root, db, when, out):
    if os.path.exists(out):
        os.unlink(out)
    p = subprocess.run([sqlenvfs, "restore", "--root", root, "--db", db, "--time", when,
                        "--output", out], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr.strip()


def check(args):
    txns, start = parse_log(args.log)
    wins = windows(args.sqlenvfs, args.root, args.db)
    if not wins:
        raise Fail("no recoverable window")
    rnd = random.Random(args.seed)
    first, last = wins[0][0], wins[-1][1]
    ts = set()
    for _ in range(args.random):
        ts.add(rnd.uniform(first, last))
    sample = rnd.sample(txns, min(args.around, len(txns)))
    for (k, t0, t1, kind) in sample:
        ts.update([t0 - 0.0005, t1 + 0.0005, t1 + 1.001])
    for line in open(args.log):
        f = line.split()
        if f[0] in ("C", "V", "X"):
            ts.update([float(f[1]) - 0.0005, float(f[2]) + 0.0005])
    for (a, b, _) in wins:
        ts.update([a, b, a - 0.5, b + 0.5])
    ts.update([first - 5.0, last + 120.0])
    out = os.path.join(args.tmp, "restored.db")
    results = []
    n_ok = n_refused = 0
    for T in sorted(ts):
        if T < start - 10:
            continue
        inside = any(a <= T <= b for (a, b, _) in wins)
        when = "@%.6f" % T
        rc, so, se = restore(args.sqlenvfs, args.root, args.db, when, out)
        if not inside:
            if rc == 0:
                raise Fail("restore to %s succeeded but the time is outside every window %r"
                           % (when, wins))
            if not any(w in se for w in ("before the earliest", "after the latest", "gap")) \
                    or "\n" in se:
                raise Fail("restore to %s: unclear refusal: %r" % (when, se))
            n_refused += 1
            continue
        if rc != 0:
            raise Fail("restore to %s (inside a window) failed: %s" % (when, se))
        k = check_db(out, txns, T, quick=True)
        lo, hi = bounds(txns, T)
        if not lo <= k <= hi:
            raise Fail("restore to %s gave transactions 1..%d; expected between %d and %d"
                       % (when, k, lo, hi))
        results.append((T, k))
        n_ok += 1
    for i in range(1, len(results)):
        if results[i][1] < results[i - 1][1]:
            raise Fail("restores are not monotonic: %r then %r" % (results[i - 1], results[i]))
    # latest: everything committed (the writer has stopped and the archive caught up)
    rc, so, se = restore(args.sqlenvfs, args.root, args.db, "latest", out)
    if rc != 0:
        raise Fail("restore to latest failed: %s" % se)
    k = check_db(out, txns, None, quick=False)
    if args.expect_latest and k != len(txns):
        raise Fail("latest gave transactions 1..%d, the writer committed %d" % (k, len(txns)))
    print("ok: %d restores exact, %d refused outside %d window(s); %d transactions; latest %d"
          % (n_ok, n_refused, len(wins), len(txns), k))


def probe(args):
    """Restore one time and expect an exact result or a refusal."""
    txns, _ = parse_log(args.log)
    out = os.path.join(args.tmp, "probe.db")
    rc, so, se = restore(args.sqlenvfs, args.root, args.db, args.time, out)
    if args.expect == "refused":
        if rc == 0:
            raise Fail("restore to %s succeeded; expected a refusal" % args.time)
        if "\n" in se or (args.match and args.match not in se):
            raise Fail("restore to %s: expected one line mentioning %r, got %r"
                       % (args.time, args.match, se))
        if os.path.exists(out):
            raise Fail("a refused restore left %s behind" % out)
        print("refused: %s" % se)
        return
    if rc != 0:
        raise Fail("restore to %s failed: %s" % (args.time, se))
    T = float(args.time[1:]) if args.time.startswith("@") else None
    k = check_db(out, txns, T, quick=False)
    if T is not None:
        lo, hi = bounds(txns, T)
        if not lo <= k <= hi:
            raise Fail("restore to %s gave 1..%d, expected between %d and %d" % (args.time, k, lo, hi))
    print("exact: transactions 1..%d" % k)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("writer")
    w.add_argument("--db", required=True)
    w.add_argument("--log", required=True)
    w.add_argument("--duration", type=float, default=10)
    w.add_argument("--seed", type=int, default=1)
    w.add_argument("--k0", type=int, default=0)
    w.add_argument("--truncate-every", type=int, default=0)
    w.add_argument("--close-every", type=int, default=0)
    w.add_argument("--no-vacuum", action="store_true")
    w.add_argument("--max-sleep", type=float, default=0.004)
    w.add_argument("--stop-file")
    w.add_argument("--pause-file")
    w.add_argument("--quiet-file", help="while this file exists: small transactions only, "
                   "no checkpoints (the WAL cannot restart)")
    w.add_argument("--truncate-file", help="when this file appears: one TRUNCATE checkpoint, "
                   "then the file is removed")
    s = sub.add_parser("schema")
    c = sub.add_parser("check")
    c.add_argument("--sqlenvfs", required=True)
    c.add_argument("--root", required=True)
    c.add_argument("--db", default="app")
    c.add_argument("--log", required=True)
    c.add_argument("--tmp", required=True)
    c.add_argument("--seed", type=int, default=2)
    c.add_argument("--random", type=int, default=12)
    c.add_argument("--around", type=int, default=8)
    c.add_argument("--expect-latest", action="store_true")
    p = sub.add_parser("probe")
    p.add_argument("--sqlenvfs", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--db", default="app")
    p.add_argument("--log", required=True)
    p.add_argument("--tmp", required=True)
    p.add_argument("--time", required=True)
    p.add_argument("--expect", choices=["ok", "refused"], required=True)
    p.add_argument("--match")
    args = ap.parse_args()
    if args.cmd == "writer":
        writer(args)
    elif args.cmd == "schema":
        sys.stdout.write(SCHEMA)
    else:
        try:
            check(args) if args.cmd == "check" else probe(args)
        except Fail as e:
            print("FAIL: %s" % e, file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
