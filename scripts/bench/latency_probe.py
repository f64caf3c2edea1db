#!/usr/bin/env python3
"""Capture latency as an application sees it: commit small transactions at an
irregular pace (5-23 ms after the previous one was archived) and print, for
each, the milliseconds from COMMIT returning until the archive's segments
have grown (5 s at most).

    latency_probe.py DB ARCHIVE_DIR SYNCHRONOUS N
"""
import glob
import os
import sqlite3
import sys
import time


def archived(adir):
    return sum(os.path.getsize(f) for f in glob.glob(os.path.join(adir, "*.seg")))


def main():
    db_path, adir, sync, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA synchronous=" + sync)
    db.execute("CREATE TABLE IF NOT EXISTS lat(id INTEGER PRIMARY KEY, v TEXT)")
    lat = []
    for i in range(n):
        before = archived(adir)
        db.execute("INSERT INTO lat(v) VALUES (hex(randomblob(16)))")
        t = time.monotonic()
        while archived(adir) == before and time.monotonic() - t < 5:
            time.sleep(0.0002)
        lat.append((time.monotonic() - t) * 1000)
        time.sleep(0.005 + (i % 7) * 0.003)
    print(" ".join(f"{x:.3f}" for x in lat))


if __name__ == "__main__":
    main()
