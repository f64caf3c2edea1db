#!/usr/bin/env python3
"""Remote restores against local ones and the oracle's commit log:

    remote_check.py --sqlenvfs BIN --root ROOT --url URL --log LOG --tmp DIR
                    --proxy http://127.0.0.1:PORT [--random N] [--around N]

For many times T (inside and around the windows of the local `list`, and
`latest` and `earliest`):
`restore --remote URL` run from an empty directory with no sqlenvfs.conf
must exit as the local `restore --root ROOT` does, give the same bytes, or
the same one-line refusal; each result is checked against the commit log
(pitr_oracle.py); each restore makes at most one LIST request (counted by
the proxy); `list --remote --json` gives the local windows.
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pitr_oracle as po  # noqa: E402


def proxy(px, what):
    return json.loads(urllib.request.urlopen(px + "/__fault/" + what, timeout=10).read() or b"{}")


def run(cmd, cwd):
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    return p.returncode, p.stdout, p.stderr.strip()


def segment_times(root, db):
    """{segment file name: (first record time, last record time)} from the
    local indexes (seconds)."""
    import struct
    d = os.path.join(root, "backups", "prod", "wal_archives", db)
    out = {}
    for f in os.listdir(d):
        if f.endswith(".idx"):
            b = open(os.path.join(d, f), "rb").read()
            if len(b) >= 32 + 112:
                first = struct.unpack_from("<q", b, 32 + 24)[0] / 1e6
                last = struct.unpack_from("<q", b, len(b) - 112 + 24)[0] / 1e6
                out[f[:-4] + ".seg"] = (first, last)
    return out


def check_fetched(log, segs, T, base_state, when):
    """A restore to T fetched one base and only the segments between the
    base's state and T (and at most two that start after T)."""
    keys = {urllib.parse.unquote(p.split("?")[0]) for (m, p, _) in log if m == "GET"}
    dbs = [k for k in keys if k.endswith(".db")]
    if len(dbs) != 1:
        raise po.Fail("restore --remote to %s fetched %d base files: %r" % (when, len(dbs), dbs))
    after = before = 0
    for k in keys:
        name = k.rsplit("/", 1)[-1]
        if name in segs:
            if segs[name][0] > T:
                after += 1
            if segs[name][1] < base_state - 0.001:
                before += 1
    # one segment starting after T, and the unsealed one after it when that
    # is the last sealed one (an OUTAGE record may follow late records)
    if after > 2 or before > 0:
        raise po.Fail("restore --remote to %s fetched %d segments after T and %d before its base"
                      % (when, after, before))


def main():
    ap = argparse.ArgumentParser()
    for a in ("--sqlenvfs", "--root", "--url", "--log", "--tmp", "--proxy"):
        ap.add_argument(a, required=True)
    ap.add_argument("--db", default="app")
    ap.add_argument("--random", type=int, default=8)
    ap.add_argument("--around", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    txns, start = po.parse_log(a.log)
    wins = po.windows(a.sqlenvfs, a.root, a.db)
    if not wins:
        raise po.Fail("no recoverable window")
    work = os.path.join(a.tmp, "elsewhere")
    os.makedirs(work, exist_ok=True)

    # list --remote: the same windows
    rc, so, se = run([a.sqlenvfs, "list", "--json", "--remote", a.url], work)
    if rc != 0:
        raise po.Fail("list --remote failed: %s" % se)
    rw = [(po.iso_to_unix(w["from"]), po.iso_to_unix(w["to"]))
          for w in json.loads(so)["windows"] if w["database"] == a.db]
    if rw != [(x, y) for (x, y, _) in wins]:
        raise po.Fail("list --remote windows %r differ from the local ones %r" % (rw, wins))

    rnd = random.Random(a.seed)
    first, last = wins[0][0], wins[-1][1]
    ts = {rnd.uniform(first, last) for _ in range(a.random)}
    for (k, t0, t1, kind) in rnd.sample(txns, min(a.around, len(txns))):
        ts.update([t0 - 0.0005, t1 + 0.0005])
    for (x, y, _) in wins:
        ts.update([x, y, x - 0.5, y + 0.5])
    ts.update([first - 5.0, last + 120.0])
    loc = os.path.join(a.tmp, "local.db")
    rem = os.path.join(work, "remote.db")
    segs = segment_times(a.root, a.db)
    n_same = n_refused = 0
    max_lists = 0
    for T in sorted(ts) + ["latest", "earliest"]:
        when = T if isinstance(T, str) else "@%.6f" % T
        at = None if T == "latest" else first if T == "earliest" else T
        for f in (loc, rem):
            if os.path.exists(f):
                os.unlink(f)
        lrc, _, lse = run([a.sqlenvfs, "restore", "--root", a.root, "--db", a.db, "--time", when,
                           "--output", loc], a.tmp)
        proxy(a.proxy, "reset")
        rrc, rso, rse = run([a.sqlenvfs, "restore", "--remote", a.url, "--db", a.db, "--time",
                             when, "--output", rem], work)
        log = proxy(a.proxy, "stats")["log"]
        lists = sum(1 for (m, path, _) in log if m == "GET" and "list-type=2" in path)
        max_lists = max(max_lists, lists)
        if lists > 1:
            raise po.Fail("restore --remote to %s made %d LIST requests" % (when, lists))
        leftovers = [f for f in os.listdir(work) if f.startswith(".tmp-")]
        if leftovers:
            raise po.Fail("restore --remote to %s left %r in %s" % (when, leftovers, work))
        if lrc != rrc:
            raise po.Fail("restore to %s: local exit %d (%s), remote exit %d (%s)"
                          % (when, lrc, lse, rrc, rse))
        if lrc != 0:
            if lse != rse:
                raise po.Fail("restore to %s refused differently:\n local: %s\nremote: %s"
                              % (when, lse, rse))
            n_refused += 1
            continue
        if open(loc, "rb").read() != open(rem, "rb").read():
            raise po.Fail("restore to %s: the remote restore differs from the local one" % when)
        if oct(os.stat(rem).st_mode & 0o777) not in ("0o600", "0o640", "0o644"):
            raise po.Fail("restore --remote wrote mode %o" % (os.stat(rem).st_mode & 0o777))
        if at is not None:
            m = re.search(r"\(state of (\S+)\)", rso)
            if m is None:
                raise po.Fail("restore --remote printed no base state: %r" % rso)
            check_fetched(log, segs, at, po.iso_to_unix(m.group(1)), when)
        k = po.check_db(rem, txns, at, quick=True)
        if at is not None:
            lo, hi = po.bounds(txns, at)
            if not lo <= k <= hi:
                raise po.Fail("restore to %s gave 1..%d; expected %d..%d" % (when, k, lo, hi))
        n_same += 1
    if n_same < 5 or n_refused < 2:
        raise po.Fail("too few cases: %d identical, %d refused" % (n_same, n_refused))
    print("ok: %d remote restores byte-for-byte the local ones, %d refused with the local "
          "message; at most %d LIST per restore; list --remote windows equal"
          % (n_same, n_refused, max_lists))


def check_file():
    """remote_check.py check-file LOG DB T: DB holds exactly the transactions
    committed by T (within the oracle's bounds); prints k."""
    txns, _ = po.parse_log(sys.argv[2])
    T = float(sys.argv[4])
    k = po.check_db(sys.argv[3], txns, T, quick=True)
    lo, hi = po.bounds(txns, T)
    if not lo <= k <= hi:
        raise po.Fail("%s holds 1..%d; the log says %d..%d at %.6f" % (sys.argv[3], k, lo, hi, T))
    print(k)


if __name__ == "__main__":
    try:
        if len(sys.argv) > 1 and sys.argv[1] == "check-file":
            check_file()
            sys.exit(0)
        main()
    except po.Fail as e:
        print("FAIL: %s" % e, file=sys.stderr)
        sys.exit(1)
