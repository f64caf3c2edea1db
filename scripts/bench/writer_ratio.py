#!/usr/bin/env python3
"""Writer throughput with the archiver running / without, measured in
interleaved pairs, and the archiver's capture and durable latency under
that saturating writer.

    writer_ratio.py SQLENVFS [--pairs N] [--seconds S] [--batch B]

The writer is Python's sqlite3 inserting B rows (default 1) per
transaction, synchronous=NORMAL, as fast as it can for S seconds (the
writer of scripts/bench.py's row 5). Each pair runs it once on a fresh
root alone and once on a fresh root with `sqlenvfs archive` running
(started, its first segment and base snapshot written, before the writer
starts), the order alternating from pair to pair so that a machine that
gets busier or quieter during the run weighs on both sides alike. A pair's
ratio is its two rates divided; the median of the pairs' ratios is the
result, with the pairs' spread (min, quartiles, max). The archiver's CPU
time (user + system) per commit and its own capture and durable latency
percentiles (over its last 4096 commits, printed by `sqlenvfs archive`
when it stops) come from the "with" runs.

The writer and the archiver each run in a session of their own, as an
application and the mount daemon do: with the scheduler's autogroups
(Linux's default) processes of one session share one fair share of the
CPUs, so an archiver started in the writer's session would take its CPU
time from the writer's share, which is not how they run in production.
The writer's time per commit is also split into time on a CPU, waiting for
one (a busy machine) and blocked (locks, sleeps, I/O).
"""
import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

WRITER = r"""
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA synchronous=NORMAL")
db.execute("CREATE TABLE IF NOT EXISTS w(id INTEGER PRIMARY KEY, v TEXT)")
batch, dur = int(sys.argv[2]), float(sys.argv[3])
t0 = time.monotonic_ns()
with open("/proc/self/schedstat") as f:
    s0 = [int(x) for x in f.read().split()[:2]]
end = time.time() + dur
n = 0
while time.time() < end:
    db.execute("BEGIN")
    for _ in range(batch):
        db.execute("INSERT INTO w(v) VALUES ('x' || hex(randomblob(16)))")
    db.execute("COMMIT")
    n += batch
with open("/proc/self/schedstat") as f:
    s1 = [int(x) for x in f.read().split()[:2]]
# commits, then ns on a CPU, waiting for one, and neither (blocked: locks,
# sleeps, I/O)
elapsed = time.monotonic_ns() - t0
run, wait = s1[0] - s0[0], s1[1] - s0[1]
print(n, run, wait, elapsed - run - wait)
"""

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fresh_root(sqlenvfs, work):
    root = os.path.join(work, "root")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    shutil.copy(os.path.join(REPO, "schema.sql"), root)
    subprocess.run([sqlenvfs, "init", "-r", root], check=True, stdout=subprocess.DEVNULL)
    return root


def writer(db, batch, seconds):
    """Commits, and the writer's nanoseconds on a CPU, waiting for one, and
    blocked."""
    r = subprocess.run([sys.executable, "-c", WRITER, db, str(batch), str(seconds)],
                       capture_output=True, text=True, check=True, start_new_session=True)
    n, run, wait, blocked = (int(x) for x in r.stdout.split())
    return n, (run, wait, blocked)


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(cond, what, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def run_with(sqlenvfs, root, batch, seconds):
    """The writer's commits with `sqlenvfs archive` running, and what the
    archiver says about them."""
    adir = os.path.join(root, "backups/prod/wal_archives/app")
    sdir = os.path.join(root, "backups/prod/snapshots")
    out = open(os.path.join(root, "..", "archive.out"), "w+")
    p = subprocess.Popen([sqlenvfs, "archive", "-r", root], stdout=out,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: any(n.endswith(".seg") for n in os.listdir(adir))
                 if os.path.isdir(adir) else False, "the first segment")
        wait_for(lambda: any(os.path.exists(os.path.join(sdir, s, "MANIFEST"))
                             for s in os.listdir(sdir)), "the base snapshot")
        cpu0 = cpu_s(p.pid)
        n, times = writer(os.path.join(root, "data/prod/app.db"), batch, seconds)
        cpu = cpu_s(p.pid) - cpu0
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(timeout=60)
    out.seek(0)
    text = out.read()
    m = re.search(r"capture latency p50 ([\d.]+) ms p99 ([\d.]+) ms max ([\d.]+) ms; "
                  r"durable p50 ([\d.]+) ms p99 ([\d.]+) ms max ([\d.]+) ms", text)
    lat = tuple(float(x) for x in m.groups()) if m else (float("nan"),) * 6
    return n, times, cpu, lat


def quartiles(v):
    v = sorted(v)
    if len(v) < 4:
        return v[0], v[-1]
    q = statistics.quantiles(v, n=4)
    return q[0], q[2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sqlenvfs")
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="writer-ratio-")
    ratios, cap99, dur99, cpu_per = [], [], [], []
    per = {"alone": [], "with": []}
    print(f"{'pair':>4} {'alone c/s':>10} {'with c/s':>10} {'ratio':>6} {'arch CPU us/c':>13} "
          f"{'capture p50/p99/max ms':>24} {'durable p50/p99/max ms':>24} "
          f"{'writer us/c run/wait/blocked, alone | with':>44}", flush=True)
    try:
        for i in range(args.pairs):
            rates = {}
            for side in (("alone", "with") if i % 2 == 0 else ("with", "alone")):
                root = fresh_root(args.sqlenvfs, work)
                if side == "alone":
                    m, times = writer(os.path.join(root, "data/prod/app.db"), args.batch,
                                      args.seconds)
                    rates[side] = m / args.seconds
                else:
                    n, times, cpu, lat = run_with(args.sqlenvfs, root, args.batch, args.seconds)
                    m = n
                    rates[side] = n / args.seconds
                per[side].append(tuple(t / 1000 / max(m, 1) for t in times))
            r = rates["with"] / rates["alone"]
            ratios.append(r)
            cap99.append(lat[1])
            dur99.append(lat[4])
            cpu_per.append(cpu * 1e6 / max(n, 1))
            print(f"{i + 1:>4} {rates['alone']:>10.0f} {rates['with']:>10.0f} {r:>6.2f} "
                  f"{cpu_per[-1]:>13.1f} {lat[0]:>8.2f}/{lat[1]:>6.2f}/{lat[2]:>7.2f} "
                  f"{lat[3]:>8.2f}/{lat[4]:>6.2f}/{lat[5]:>7.2f} "
                  f"{'/'.join(f'{x:.1f}' for x in per['alone'][-1]):>20} | "
                  f"{'/'.join(f'{x:.1f}' for x in per['with'][-1]):<20}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    q1, q3 = quartiles(ratios)
    print(f"ratio with/alone: median {statistics.median(ratios):.2f} (pairs: min {min(ratios):.2f}, "
          f"quartiles {q1:.2f}-{q3:.2f}, max {max(ratios):.2f}; {len(ratios)} pairs of "
          f"{args.seconds:g} s)")
    print(f"capture p99: median {statistics.median(cap99):.2f} ms, max {max(cap99):.2f} ms; "
          f"durable p99: median {statistics.median(dur99):.2f} ms, max {max(dur99):.2f} ms; "
          f"archiver CPU per commit: median {statistics.median(cpu_per):.1f} us")
    for side in ("alone", "with"):
        med = [statistics.median(x[k] for x in per[side]) for k in range(3)]
        print(f"writer {side}: per commit, median us on a CPU {med[0]:.1f}, waiting for a CPU "
              f"{med[1]:.1f}, blocked {med[2]:.1f}")


if __name__ == "__main__":
    main()
