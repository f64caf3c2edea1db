#!/usr/bin/env python3
"""Capture latency as an application sees it: commit small transactions at an
irregular pace (5-23 ms after the previous one was archived) and print, for
each, the milliseconds from COMMIT returning until the archive's segments
have grown (5 s at most).

    latency_probe.py DB ARCHIVE_DIR SYNCHRONOUS N [PITR_DIR]

With PITR_DIR (a mount's pitr/ directory) a second line follows: for each
commit, the milliseconds from COMMIT returning until the first time T whose
state (pitr/T, or a restore at T) holds it, that is its capture time minus
the time COMMIT returned (negative: captured before the application saw
COMMIT return). The capture time of commit i is read as the mtime of
pitr/T/<db>.db for T just before commit i+1 began: the state at T is the one
after commit i, and its mtime is that commit's capture time.
"""
import glob
import os
import sqlite3
import sys
import time


def archived(adir):
    return sum(os.path.getsize(f) for f in glob.glob(os.path.join(adir, "*.seg")))


def pitr_mtime_ns(pitr, db, t_ns):
    name = f"@{t_ns // 10**9}.{(t_ns % 10**9) // 1000:06d}"
    return os.stat(os.path.join(pitr, name, db + ".db")).st_mtime_ns


def main():
    db_path, adir, sync, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    pitr = sys.argv[5] if len(sys.argv) > 5 else None
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA synchronous=" + sync)
    db.execute("CREATE TABLE IF NOT EXISTS lat(id INTEGER PRIMARY KEY, v TEXT)")
    lat, began, returned = [], [], []
    for i in range(n):
        before = archived(adir)
        began.append(time.time_ns())
        db.execute("INSERT INTO lat(v) VALUES (hex(randomblob(16)))")
        t = time.monotonic()
        returned.append(time.time_ns())
        while archived(adir) == before and time.monotonic() - t < 5:
            time.sleep(0.0002)
        lat.append((time.monotonic() - t) * 1000)
        time.sleep(0.005 + (i % 7) * 0.003)
    began.append(time.time_ns())
    print(" ".join(f"{x:.3f}" for x in lat))
    if pitr:
        name = os.path.splitext(os.path.basename(db_path))[0]
        incl = [(pitr_mtime_ns(pitr, name, began[i + 1] - 1000) - returned[i]) / 1e6
                for i in range(n)]
        print(" ".join(f"{x:.3f}" for x in incl))


if __name__ == "__main__":
    main()
