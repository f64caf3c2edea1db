#!/usr/bin/env python3
"""Workload and checker for tests/integration/diff_overflow.sh: rows whose
payload spans several overflow pages.

  schema                       print the schema the root is created with
  writer --db DB --archive DIR --out STATES
                               commit three states (below), each in one
                               transaction; after each, wait until the
                               archive holds its COMMIT record and write
                               "<record time> <sha256 of the content>" to
                               STATES
  check --sqlenvfs BIN --root R --states STATES --tmp DIR
                               for each pair of states T1 < T2: restore both
                               (each must be the content committed), apply
                               `sqlenvfs diff` to the T1 copy and compare it
                               with T2 (every row, rowid and the schema);
                               `diff --summary` must print what
                               `sqldiff --summary` prints; no table may be
                               compared in full (the changed rows are found
                               from the changed pages)

The states (page size 4096: a table row's overflow page holds 4092 bytes):
  0  blobs and texts of 3 to 5 overflow pages; a WITHOUT ROWID table whose
     keys are 9000 characters long (the part that tells them apart is on
     their third overflow page) with values behind them
  1  only bytes in the middle or at the end of overflow chains change, the
     sizes stay: SQLite rewrites those overflow pages alone, no leaf page,
     so the rows are found only by following each chain past its first
     overflow page, and a WITHOUT ROWID row's key only by reading its
     whole chain
  2  rows deleted, inserted, resized (chains rewritten), bytes changed near
     the start and at the end of chains of rows whose leaf changed too: those
     overflow pages are known from the chains of the rows collected on the
     leaves, and need no search
"""
import argparse
import hashlib
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import archive_dump  # noqa: E402

SCHEMA = """
CREATE TABLE big(id INTEGER PRIMARY KEY, name TEXT, data BLOB);
CREATE TABLE wr(k TEXT PRIMARY KEY, n INTEGER, v BLOB) WITHOUT ROWID;
"""

KEY_LEN = 9000


def key(i):
    return "k" * KEY_LEN + "-%03d" % i


def blob(rnd, n):
    return bytes(rnd.getrandbits(8) for _ in range(n))


def text(rnd, n):
    """@n characters, a newline every 500 or so: sqldiff's form of a text
    (and diff's) joins each newline with ||, and SQLite parses no more than
    1000 of those in one expression."""
    return "".join(rnd.choice("abcdefghij 'xyz" + ("\n" if i % 500 == 7 else ""))
                   for i in range(n))


def flip(b, at):
    """@b (bytes or str) with the byte or character at @at changed."""
    if isinstance(b, str):
        return b[:at] + ("Q" if b[at] != "Q" else "R") + b[at + 1:]
    d = bytearray(b)
    d[at] ^= 0x5a
    return bytes(d)


def state0(conn, rnd):
    for i, n in enumerate([13000, 17000, 21000], start=1):
        conn.execute("INSERT INTO big VALUES(?,?,?)", (i, "blob %d" % i, blob(rnd, n)))
    conn.execute("INSERT INTO big VALUES(4, ?, NULL)", (text(rnd, 12500),))
    conn.execute("INSERT INTO big VALUES(5, ?, x'00')", (text(rnd, 16500),))
    conn.execute("INSERT INTO big VALUES(6, 'six', ?)", (blob(rnd, 19000),))
    for i in range(1, 7):
        conn.execute("INSERT INTO wr VALUES(?,?,?)", (key(i), i, blob(rnd, 600)))
    for i in range(10, 40):
        conn.execute("INSERT INTO big VALUES(?, 'small', ?)", (i, blob(rnd, 20)))


def update(conn, table, col, where, arg, change):
    (old,) = conn.execute("SELECT %s FROM %s WHERE %s=?" % (col, table, where), (arg,)).fetchone()
    new = change(old)
    assert len(new) == len(old)
    conn.execute("UPDATE %s SET %s=? WHERE %s=?" % (table, col, where), (new, arg))


def state1(conn, rnd):
    # the middle of a 5-page chain, of a 4-page text, the end of a 3-page one
    update(conn, "big", "data", "id", 3, lambda b: flip(b, 9000))
    update(conn, "big", "name", "id", 4, lambda s: flip(s, 6000))
    update(conn, "big", "data", "id", 1, lambda b: flip(b, 12999))
    # a WITHOUT ROWID value behind a key that ends on the third overflow page
    update(conn, "wr", "v", "k", key(2), lambda b: flip(b, 300))


def state2(conn, rnd):
    conn.execute("DELETE FROM big WHERE id=2")
    conn.execute("INSERT INTO big VALUES(7, 'seven', ?)", (blob(rnd, 15000),))
    conn.execute("UPDATE big SET data=? WHERE id=6", (blob(rnd, 9000),))
    update(conn, "big", "name", "id", 5, lambda s: flip(s, len(s) - 1))
    update(conn, "big", "data", "id", 3, lambda b: flip(b, 4500))
    conn.execute("UPDATE wr SET v=? WHERE k=?", (blob(rnd, 5000), key(4)))
    conn.execute("DELETE FROM wr WHERE k=?", (key(5),))
    conn.execute("INSERT INTO wr VALUES(?,?,?)", (key(7), 7, blob(rnd, 100)))
    update(conn, "wr", "v", "k", key(6), lambda b: flip(b, 599))


def digest(path):
    """The content of every table (rowids too) and the schema, hashed."""
    conn = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    h = hashlib.sha256()
    for row in conn.execute("SELECT type, name, sql FROM sqlite_schema ORDER BY type, name"):
        h.update(repr(row).encode())
    for (name,) in conn.execute("SELECT name FROM sqlite_schema WHERE type='table'"
                                " ORDER BY name").fetchall():
        try:
            rows = conn.execute('SELECT rowid, * FROM "%s" ORDER BY rowid' % name).fetchall()
        except sqlite3.OperationalError:
            rows = conn.execute('SELECT * FROM "%s" ORDER BY 1' % name).fetchall()
        h.update(("%s %r" % (name, rows)).encode())
    conn.close()
    return h.hexdigest()


def n_commits(archive):
    return sum(1 for r in archive_dump.records(archive) if r["type"] == "COMMIT")


def writer(args):
    rnd = random.Random(args.seed)
    conn = sqlite3.connect(args.db, isolation_level=None, timeout=60)
    out = open(args.out, "w")
    for make in (state0, state1, state2):
        n0 = n_commits(args.archive)
        conn.execute("BEGIN IMMEDIATE")
        make(conn, rnd)
        conn.execute("COMMIT")
        deadline = time.monotonic() + 30
        while n_commits(args.archive) <= n0:
            if time.monotonic() > deadline:
                raise SystemExit("FAIL: the archive holds no record of %s after 30 s"
                                 % make.__name__)
            time.sleep(0.05)
        t = [r["time"] for r in archive_dump.records(args.archive) if r["type"] == "COMMIT"][-1]
        out.write("%.6f %s\n" % (t, digest(args.db)))
        out.flush()
    conn.close()


def run(cmd):
    p = subprocess.run(cmd, capture_output=True)
    if p.returncode != 0:
        raise SystemExit("FAIL: %s exited %d: %s" % (" ".join(cmd), p.returncode,
                                                      p.stderr.decode(errors="replace")))
    return p.stdout, p.stderr.decode(errors="replace")


def check(args):
    states = [l.split() for l in open(args.states)]
    files = []
    for k, (t, want) in enumerate(states):
        f = os.path.join(args.tmp, "state%d.db" % k)
        run([args.sqlenvfs, "restore", "--root", args.root, "--time", "@" + t, "--output", f])
        if digest(f) != want:
            raise SystemExit("FAIL: state %d restored at @%s is not what was committed" % (k, t))
        files.append(f)
    for a, b in ((0, 1), (1, 2), (0, 2)):
        ta, tb = "@" + states[a][0], "@" + states[b][0]
        script, err = run([args.sqlenvfs, "diff", "--root", args.root, "--stats",
                           "--from", ta, "--to", tb])
        if ", 0 in full," not in err:
            raise SystemExit("FAIL: diff %d -> %d compared a table in full: %s" % (a, b, err))
        if (a, b) == (0, 1) and "are overflow pages" not in err:
            raise SystemExit("FAIL: diff 0 -> 1 did not search the overflow chains"
                             " (did a leaf page change?): %s" % err)
        # From state 1 on, every overflow page that changes is in the chain
        # of a row on a changed leaf (or freed): known from that row's whole
        # chain, it is not searched for.
        if (a, b) != (0, 1) and "are overflow pages" in err:
            raise SystemExit("FAIL: diff %d -> %d searched for the owners of overflow pages in"
                             " the chains of rows it had collected: %s" % (a, b, err))
        work = os.path.join(args.tmp, "work.db")
        shutil.copyfile(files[a], work)
        conn = sqlite3.connect(work, isolation_level=None)
        try:
            conn.executescript(script.decode())
        except sqlite3.Error as e:
            raise SystemExit("FAIL: the diff %d -> %d does not apply: %s\n%.2000s"
                             % (a, b, e, script.decode()))
        conn.close()
        if digest(work) != digest(files[b]):
            stmts = [s[:80] + "..." for s in script.decode().split(";\n") if s]
            raise SystemExit("FAIL: the diff %d -> %d applied to state %d does not give state %d;"
                             " its statements: %s" % (a, b, a, b, stmts))
        summary, _ = run([args.sqlenvfs, "diff", "--root", args.root, "--summary",
                          "--from", ta, "--to", tb])
        expect, _ = run([args.sqldiff, "--summary", files[a], files[b]])
        if summary != expect:
            raise SystemExit("FAIL: diff --summary %d -> %d:\n%s\nsqldiff --summary:\n%s"
                             % (a, b, summary.decode(), expect.decode()))
        print("ok - diff %d -> %d (%d statements) applies exactly; summary equals sqldiff's"
              % (a, b, script.count(b";\n")))
        for line in err.strip().splitlines():
            print("# " + line)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("schema")
    w = sub.add_parser("writer")
    w.add_argument("--db", required=True)
    w.add_argument("--archive", required=True)
    w.add_argument("--out", required=True)
    w.add_argument("--seed", type=int, default=1)
    c = sub.add_parser("check")
    c.add_argument("--sqlenvfs", required=True)
    c.add_argument("--sqldiff", default="sqldiff")
    c.add_argument("--root", required=True)
    c.add_argument("--states", required=True)
    c.add_argument("--tmp", required=True)
    args = ap.parse_args()
    if args.cmd == "schema":
        print(SCHEMA)
    elif args.cmd == "writer":
        writer(args)
    else:
        check(args)


if __name__ == "__main__":
    main()
