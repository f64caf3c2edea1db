#!/usr/bin/env python3
"""A restore and a pitr first read deep in a history, for one or more
sqlenvfs binaries side by side, against the physical limit.

    deep_read.py ROOT T RESTORED_PAGES BIN [BIN...] [--runs N]

ROOT: a root with a long archive (for example from gen_archive --commits
1000000 --mark K, which prints T and the changed pages of commit K); T: a
time in sqlenvfs's forms (@<unix seconds>); RESTORED_PAGES: the pages that
differ from the base at T (the physical limit reads the base and that many
pages, once, warm). Each run, for each binary in turn (the order turning
from run to run): `restore --time T` to a new file (timed to its exit: it
writes, syncs and checks its output), then a mount of ROOT and the first
read of pitr/<T'>/app.db whole for a T' never read (T minus a few
milliseconds per run: another state each time). Prints medians and
ranges, and the ratios to the limit; checks that every binary's restore
gives the same bytes.
"""
import argparse
import filecmp
import glob
import os
import statistics
import subprocess
import tempfile
import time


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("t")
    ap.add_argument("pages", type=int)
    ap.add_argument("bins", nargs="+")
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="deep-read-")
    bases = sorted(glob.glob(os.path.join(a.root, "backups/prod/*/*/app.db")))
    base = bases[0]
    limit_pages = os.path.join(tmp, "pages")
    restore_s = {b: [] for b in a.bins}
    pitr_s = {b: [] for b in a.bins}
    outs = {}
    for run in range(a.runs):
        order = a.bins if run % 2 == 0 else list(reversed(a.bins))
        for k, b in enumerate(order):
            out = os.path.join(tmp, f"out-{a.bins.index(b)}.db")
            if os.path.exists(out):
                os.unlink(out)
            restore_s[b].append(timed(lambda: subprocess.run(
                [b, "restore", "--root", a.root, "--time", a.t, "--output", out],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
            outs[b] = out
            mnt = os.path.join(tmp, "mnt")
            os.makedirs(mnt, exist_ok=True)
            subprocess.run([b, "mount", a.root, mnt], check=True)
            try:
                t = float(a.t.lstrip("@")) - 0.003 * (run * len(a.bins) + k + 1)
                path = os.path.join(mnt, "pitr", "@%.6f" % t, "app.db")
                os.listdir(os.path.join(mnt, "pitr"))

                def read_all():
                    with open(path, "rb") as f:
                        while f.read(1 << 20):
                            pass
                pitr_s[b].append(timed(read_all))
            finally:
                subprocess.run(["fusermount3", "-u", mnt], check=True)
    first = outs[a.bins[0]]
    for b in a.bins[1:]:
        if not filecmp.cmp(first, outs[b], shallow=False):
            raise SystemExit(f"{b}: its restore differs from {a.bins[0]}'s")
    # The limit: the base and the restored pages, read once, warm.
    with open(first, "rb") as src, open(limit_pages, "wb") as dst:
        head = src.read(100)
        page_size = int.from_bytes(head[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        src.seek(0)
        dst.write(src.read(a.pages * page_size))
    cat = ["cat", base, limit_pages]
    subprocess.run(cat, check=True, stdout=subprocess.DEVNULL)
    limits = [timed(lambda: subprocess.run(cat, check=True, stdout=subprocess.DEVNULL))
              for _ in range(15)]
    lim = statistics.median(limits)
    print(f"physical limit (cat of the base and {a.pages} pages): {lim * 1000:.1f} ms")
    for b in a.bins:
        r, p = restore_s[b], pitr_s[b]
        print(f"{b}: restore {statistics.median(r):.3f} s [{min(r):.3f}-{max(r):.3f}] "
              f"= {statistics.median(r) / lim:.1f}x the limit; pitr first whole read "
              f"{statistics.median(p):.3f} s [{min(p):.3f}-{max(p):.3f}] "
              f"= {statistics.median(p) / lim:.1f}x ({a.runs} runs)")
    subprocess.run(["rm", "-rf", tmp], check=True)


if __name__ == "__main__":
    main()
