#!/usr/bin/env python3
"""Write realistic text rows, one row per transaction, into a SQLite database
in WAL mode.

    text_rows.py DB N [--keep-wal] [--seconds S]

Each row is a short log message made of English words (not repeated
characters), a user name and a time, about 60-120 bytes, as an application
writes them. With --keep-wal the WAL is never checkpointed, so that it holds
every commit's pages, copied to DB.wal before the database is closed (input
for compress_pages); without it the database is
an ordinary one (the archiver's workload). With --seconds the writer runs for
that long instead of N rows and prints the commits per second.
"""
import random
import shutil
import sqlite3
import sys
import time

WORDS = """the a an of to and in is it that for on with as was at by be this are from
or have not but had they his her she he you we all were when there can which
their said if do will each about how up out them then many some so these would
other into has more two like him see time could no make than first been its who
now people my made over did down only way find use may water long little very
after words called just where most know get through back much before go good new
write our used me man too any day same right look think also around another came
come work three word must because does part even place well such here take why
things help put years different away again off went old number great tell men say
small every found still between name should home big give air line set own under
read last never us left end along while might next sound below saw something
thought both few those always looked show large often together asked house world
going want school important until form food keep children feet land side without
boy once animals life enough took sometimes four head above kind began almost live
page got earth need far hand high year mother light parts country father let night
following picture being study second eyes soon times story boys since white days
paper hard near sentence better best across during today others however sure means
knew its try told young miles sun ways thing whole hear example heard several change
answer room sea against top turned learn point city play toward five using himself
usually order payment invoice customer account shipped delivered refund pending
login logout session error warning timeout retry queue worker database backup""".split()
USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan",
         "judy", "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent",
         "victor", "walter", "zoe"]


def row(rng, t):
    msg = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 14)))
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)), rng.choice(USERS),
            rng.choice(["info", "info", "info", "warn", "error"]), msg.capitalize() + ".")


def main():
    args = sys.argv[1:]
    keep_wal = "--keep-wal" in args
    seconds = None
    if "--seconds" in args:
        i = args.index("--seconds")
        seconds = float(args[i + 1])
        del args[i:i + 2]
    args = [a for a in args if not a.startswith("--")]
    db, n = args[0], int(args[1])
    rng = random.Random(12)
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    if keep_wal:
        con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("CREATE TABLE IF NOT EXISTS log(id INTEGER PRIMARY KEY, at TEXT, user TEXT,"
                " level TEXT, message TEXT)")
    t0 = time.time()
    done = 0
    base = 1764000000
    while True:
        if seconds is None and done >= n:
            break
        if seconds is not None and done % 256 == 0 and time.time() - t0 >= seconds:
            break
        con.execute("INSERT INTO log(at, user, level, message) VALUES (?, ?, ?, ?)",
                    row(rng, base + done))
        done += 1
    el = time.time() - t0
    print(f"commits={done} seconds={el:.2f} commits_per_s={done / el:.0f}")
    if keep_wal:
        shutil.copyfile(db + "-wal", db + ".wal")  # closing would checkpoint it away
        print(f"wal copied to {db}.wal")
    con.close()


if __name__ == "__main__":
    main()
