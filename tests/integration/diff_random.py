#!/usr/bin/env python3
"""Workload and checker for tests/integration/diff_random.sh.

  schema                    print the schema the root is created with
  writer --db DB --log LOG  commit a mixed workload (inserts, updates, deletes,
                            rows with overflow pages, updates that change only
                            the overflow part of a row, a WITHOUT ROWID table,
                            ALTER TABLE ADD COLUMN, CREATE TABLE / INDEX, a
                            VACUUM, users rotating e-mail addresses and codes
                            under unique indexes on lower(email) and code),
                            logging "T <k> <unix time>" after each commit
  check --sqlenvfs BIN --root R --log LOG --tmp DIR --pairs N
                            for N random pairs of logged times T1 < T2:
                            restore both, apply `sqlenvfs diff` to the T1 copy
                            and compare every table (rows, rowids, schema)
                            with T2; compare `diff --summary` with
                            `sqldiff --summary` on the two restored files
"""
import argparse
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
CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price REAL, data BLOB);
CREATE INDEX items_name ON items(name);
CREATE TABLE plain(a, b, c);
CREATE TABLE kv(k TEXT, j INTEGER, v, PRIMARY KEY(k, j)) WITHOUT ROWID;
CREATE TABLE audit(id INTEGER PRIMARY KEY, what TEXT, item INTEGER);
CREATE TRIGGER items_ins AFTER INSERT ON items BEGIN
  INSERT INTO audit(what, item) VALUES ('ins', new.id); END;
CREATE TRIGGER items_del AFTER DELETE ON items BEGIN
  INSERT INTO audit(what, item) VALUES ('del', old.id); END;
CREATE VIEW big_items AS SELECT id, name FROM items WHERE length(data) > 5000;
CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT NOT NULL, code INTEGER UNIQUE, n INTEGER);
CREATE UNIQUE INDEX users_email ON users(lower(email));
"""

N_USERS = 12


def rotate_users(conn, rnd):
    """Two or three users pass their e-mail addresses (in another case)
    or their codes round: between two states the moves add up to cycles
    and chains under the unique indexes."""
    ids = rnd.sample(range(1, N_USERS + 1), rnd.choice([2, 3]))
    col = rnd.choice(["email", "code"])
    vals = [conn.execute("SELECT %s FROM users WHERE id=?" % col, (i,)).fetchone()[0]
            for i in ids]
    vals = vals[1:] + vals[:1]
    if col == "email":
        vals = [v.upper() if rnd.random() < 0.5 else v.lower() for v in vals]
    for i in ids:
        conn.execute("UPDATE users SET %s=%s WHERE id=?"
                     % (col, "'tmp' || id" if col == "email" else "-id"), (i,))
    for i, v in zip(ids, vals):
        conn.execute("UPDATE users SET %s=?, n=n+1 WHERE id=?" % col, (v, i))


def blob(rnd, n):
    return bytes(rnd.getrandbits(8) for _ in range(n))


def flip_overflow(conn):
    """Flip the last byte of a random row whose data spills onto overflow
    pages, keeping its length: SQLite overwrites the cell in place, and only
    the overflow pages change. False when there is no such row."""
    row = conn.execute("SELECT id, data FROM items WHERE length(data) > 5000"
                       " ORDER BY random() LIMIT 1").fetchone()
    if not row:
        return False
    d = bytearray(row[1])
    d[-1] ^= 0xff
    conn.execute("UPDATE items SET data=? WHERE id=?", (bytes(d), row[0]))
    return True


def writer(args):
    rnd = random.Random(args.seed)
    log = open(args.log, "a", buffering=1)
    conn = sqlite3.connect(args.db, isolation_level=None, timeout=60)
    k = 0
    next_id = 1
    altered = created = vacuumed = False

    def text(n):
        return "".join(rnd.choice("abcdefghij 'xyz\n\t") for _ in range(n))

    while k < args.commits:
        k += 1
        conn.execute("BEGIN IMMEDIATE")
        if k == 1:
            for i in range(1, N_USERS + 1):
                conn.execute("INSERT INTO users VALUES(?,?,?,0)", (i, "User%d@x.org" % i, i))
        elif rnd.random() < 0.4:
            rotate_users(conn, rnd)
        for _ in range(rnd.randint(1, 4)):
            op = rnd.random()
            if op < 0.35 or next_id < 20:
                big = rnd.random() < 0.2
                conn.execute("INSERT INTO items(id, name, qty, price, data) VALUES(?,?,?,?,?)",
                             (next_id, text(rnd.randint(0, 12)), rnd.randint(-5, 10**12),
                              rnd.random() * 1000, blob(rnd, 9000 if big else rnd.randint(0, 60))))
                next_id += 1
            elif op < 0.5:
                conn.execute("UPDATE items SET qty=qty+1, name=? WHERE id=?",
                             (text(5), rnd.randint(1, next_id)))
            elif op < 0.6:
                flip_overflow(conn)
            elif op < 0.7:
                conn.execute("DELETE FROM items WHERE id=?", (rnd.randint(1, next_id),))
            elif op < 0.8:
                conn.execute("INSERT INTO plain VALUES(?,?,?)",
                             (rnd.randint(0, 100), text(4), None if rnd.random() < 0.3 else 1.5))
                if rnd.random() < 0.3:
                    conn.execute("DELETE FROM plain WHERE rowid IN"
                                 " (SELECT rowid FROM plain ORDER BY random() LIMIT 1)")
            else:
                key = rnd.choice(["a", "b", "c", "d'q"]) + str(rnd.randint(0, 30))
                v = blob(rnd, 3000) if rnd.random() < 0.2 else rnd.randint(0, 9)
                if rnd.random() < 0.2:
                    conn.execute("DELETE FROM kv WHERE k=?", (key,))
                else:
                    conn.execute("INSERT OR REPLACE INTO kv VALUES(?,?,?)",
                                 (key, rnd.randint(0, 3), v))
        if altered:
            conn.execute("UPDATE items SET note=? WHERE id=?", (text(3), rnd.randint(1, next_id)))
        kind = ""
        if k % 25 == 0:
            # a transaction of its own that changes only the overflow part
            # of a row: its leaf page is not written at all
            conn.execute("COMMIT")
            log.write("T %d %.6f\n" % (k, time.time()))
            k += 1
            conn.execute("BEGIN IMMEDIATE")
            log.write("O %d %.6f\n" % (k, time.time()))
            if flip_overflow(conn):
                kind = " overflow"
        if created:
            conn.execute("INSERT INTO later(y) VALUES(?)", (text(6),))
        conn.execute("COMMIT")
        log.write("T %d %.6f%s\n" % (k, time.time(), kind))
        if not altered and k >= args.commits * 0.3:
            conn.execute("ALTER TABLE items ADD COLUMN note TEXT DEFAULT 'n/a'")
            k += 1
            log.write("T %d %.6f alter\n" % (k, time.time()))
            altered = True
        if not created and k >= args.commits * 0.5:
            conn.execute("CREATE TABLE later(x INTEGER PRIMARY KEY, y TEXT)")
            conn.execute("CREATE INDEX later_y ON later(y)")
            # a trigger and a view replaced, one created
            conn.execute("DROP TRIGGER items_del")
            conn.execute("CREATE TRIGGER items_del AFTER DELETE ON items BEGIN"
                         " INSERT INTO audit(what, item) VALUES ('gone', old.id); END")
            conn.execute("DROP VIEW big_items")
            conn.execute("CREATE VIEW big_items AS SELECT id FROM items WHERE length(data) > 4000")
            conn.execute("CREATE TRIGGER later_ins AFTER INSERT ON later BEGIN"
                         " UPDATE audit SET what = what || '+' WHERE id = (SELECT max(id) FROM audit);"
                         " END")
            k += 2
            log.write("T %d %.6f create\n" % (k, time.time()))
            created = True
        if not vacuumed and k >= args.commits * 0.7:
            conn.execute("VACUUM")
            k += 1
            log.write("T %d %.6f vacuum\n" % (k, time.time()))
            vacuumed = True
        time.sleep(rnd.uniform(0, args.max_sleep))
    # Last, a few commits that only add small rows to one table.
    log.write("P %.6f\n" % time.time())
    for _ in range(8):
        k += 1
        conn.execute("INSERT INTO plain VALUES(?,?,?)", (k, text(4), 2.5))
        log.write("T %d %.6f\n" % (k, time.time()))
        time.sleep(rnd.uniform(0, args.max_sleep))
    conn.close()
    print(k)


def commit_records(archive):
    return [r for r in archive_dump.records(archive) if r["type"] == "COMMIT"]


def table_rows(conn, name):
    try:
        rows = conn.execute('SELECT rowid, * FROM "%s"' % name.replace('"', '""')).fetchall()
    except sqlite3.OperationalError:
        rows = conn.execute('SELECT * FROM "%s"' % name.replace('"', '""')).fetchall()
    return sorted(rows, key=repr)


def content(path):
    conn = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    schema = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_schema"
                          " WHERE type IN ('table', 'index') ORDER BY type, name").fetchall()
    tables = {}
    for (name,) in conn.execute("SELECT name FROM sqlite_schema WHERE type='table'"):
        cols = [r[1] for r in conn.execute("PRAGMA table_info(\"%s\")" % name)]
        tables[name] = (cols, table_rows(conn, name))
    conn.close()
    return schema, tables


def run(cmd):
    p = subprocess.run(cmd, capture_output=True)
    if p.returncode != 0:
        raise SystemExit("FAIL: %s exited %d: %s" % (" ".join(cmd), p.returncode,
                                                      p.stderr.decode(errors="replace")))
    return p.stdout, p.stderr.decode(errors="replace")


def check(args):
    rnd = random.Random(args.seed)
    # Pairs of archived states: the times of COMMIT records.
    records = commit_records(args.archive)
    times = [r["time"] for r in records]
    lines = [l.split() for l in open(args.log)]
    # The record of a transaction that changed only a row's overflow pages
    # is one of the first two captured after it began (the one before it
    # may have been captured after that too).
    only_overflow = []
    for l in lines:
        if l[0] == "O":
            after = [i for i, t in enumerate(times) if t >= float(l[2]) and i > 0]
            only_overflow += after[:2]
    restored = {}

    def restore(t):
        if t not in restored:
            out = os.path.join(args.tmp, "at-%d.db" % len(restored))
            run([args.sqlenvfs, "restore", "--root", args.root, "--time", "@%.6f" % t,
                 "--output", out])
            restored[t] = out
        return restored[t]

    n_stmts = 0
    notes = set()
    pairs = []
    for i in range(args.pairs):
        a = rnd.randrange(len(times) - 1)
        # short ranges (a few commits) and long ones
        b = min(len(times) - 1, a + rnd.choice([1, 2, 5, 20, len(times)]))
        pairs.append((times[a], times[b]))
    # The commits right around updates of only a row's overflow pages.
    for i in only_overflow[:4]:
        pairs.append((times[i - 1], times[i]))
    for t1, t2 in pairs:
        f1, f2 = restore(t1), restore(t2)
        script, err = run([args.sqlenvfs, "diff", "--root", args.root, "--from", "@%.6f" % t1,
                           "--to", "@%.6f" % t2])
        notes.update(l.split(":")[0] + ":" + l.split(":")[1] for l in err.splitlines() if l)
        work = os.path.join(args.tmp, "work.db")
        shutil.copyfile(f1, work)
        conn = sqlite3.connect(work, isolation_level=None)
        try:
            conn.executescript(script.decode())
        except sqlite3.Error as e:
            raise SystemExit("FAIL: the diff %.6f -> %.6f does not apply: %s\n%s"
                             % (t1, t2, e, script.decode()[:2000]))
        conn.close()
        n_stmts += script.count(b";\n")
        got, want = content(work), content(f2)
        if got[0] != want[0]:
            raise SystemExit("FAIL: schema after applying the diff %.6f -> %.6f:\n%s\nexpected\n%s"
                             % (t1, t2, got[0], want[0]))
        for name in want[1]:
            if got[1].get(name) != want[1][name]:
                g = got[1].get(name, ([], []))
                w = want[1][name]
                extra = [r for r in g[1] if r not in w[1]][:3]
                missing = [r for r in w[1] if r not in g[1]][:3]
                raise SystemExit("FAIL: table %s after applying the diff %.6f -> %.6f differs:"
                                 " %d rows, expected %d; columns %s, expected %s;"
                                 " rows not expected: %.300s; rows missing: %.300s"
                                 % (name, t1, t2, len(g[1]), len(w[1]), g[0], w[0],
                                    extra, missing))
        summary, _ = run([args.sqlenvfs, "diff", "--root", args.root, "--summary",
                          "--from", "@%.6f" % t1, "--to", "@%.6f" % t2])
        expect, _ = run([args.sqldiff, "--summary", f1, f2])
        if summary != expect:
            raise SystemExit("FAIL: diff --summary %.6f -> %.6f:\n%s\nsqldiff --summary:\n%s"
                             % (t1, t2, summary.decode(), expect.decode()))
    print("ok: %d pairs, %d statements applied, summaries equal sqldiff's; notes: %s"
          % (len(pairs), n_stmts, "; ".join(sorted(notes)) or "none"))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("schema")
    w = sub.add_parser("writer")
    w.add_argument("--db", required=True)
    w.add_argument("--log", required=True)
    w.add_argument("--commits", type=int, default=300)
    w.add_argument("--seed", type=int, default=1)
    w.add_argument("--max-sleep", type=float, default=0.01)
    c = sub.add_parser("check")
    c.add_argument("--sqlenvfs", required=True)
    c.add_argument("--sqldiff", default="sqldiff")
    c.add_argument("--root", required=True)
    c.add_argument("--log", required=True)
    c.add_argument("--archive", required=True)
    c.add_argument("--tmp", required=True)
    c.add_argument("--pairs", type=int, default=10)
    c.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.cmd == "schema":
        print(SCHEMA)
    elif args.cmd == "writer":
        writer(args)
    else:
        check(args)


if __name__ == "__main__":
    main()
