#!/usr/bin/env python3
"""How the cost of point-in-time recovery grows with the history kept.

Run through scripts/bench/history.sh (which builds what it needs). For each
count of archived commits (10 thousand, 100 thousand, 1 million, 10 million,
up to --max), a root is built by gen_archive (which drives the archive
writer directly: one-row commits of text written into production, each
archived from its WAL frames; the base is a real backup taken after the
first commit), or, with --real, by a Python writer under the real
`sqlenvfs archive`. Then, side by side in one run, with T at 90% of the
history (so that a restore rolls forward over most of it and must leave
the rest out):

  ls -l pitr/T/         first lookup through a fresh mount, each run (at least
                        9 runs; how many met the target, and the load average)
  daemon peak RSS       VmHWM of the mount daemon after that lookup
  cat status            on that mount
  restore plan          time from the start of `restore --time T` to the
                        first byte written to its output
  restore full          against the physical limit: reading the base and
                        the last version of each page changed since it once
                        (a `cat` of that many bytes, warm like the restore)
  restore peak RSS      ru_maxrss of the restore process
  verify, 1 new segment `verify` after one new segment was sealed (everything
                        before it verified), against `cat` of that segment

With --big-db BYTES (history.sh big-db), instead, one root whose database
is grown to BYTES by random blobs before archiving starts (gen_archive
--prefill-bytes: the base holds them, the archive only --big-commits
one-row commits), mounted once, and for times T never read before (each
run a new one, commits spread over the history):

  first byte, new T     open() of pitr/T/app.db to the first byte of a
                        read(), through the running mount (warm: the base
                        in the page cache as far as earlier runs brought
                        it; cold: page cache dropped before the run)
  whole file, new T     `cat pitr/T/app.db > /dev/null` of a T never read
                        before (the state's first read, all of it), against
                        the physical limit measured right after it: `cat`
                        of the base and of as many bytes as there are pages
                        changed since it (each page's last version read
                        once), as for a restore; warm (the base read once
                        before the first run); the ratio of each run, median
                        and extremes, and the mount daemon's CPU during the
                        read
  point query, new T    `sqlite3 'file:pitr/T/app.db?mode=ro&immutable=1'`
                        reading one row by id (and that the next is absent
                        at T), page cache dropped before it; the bytes the
                        mount daemon read for it, against the database's
                        size: rchar of /proc/<daemon>/io across the query
                        (every byte its read calls returned, from disk or
                        from the page cache: the base, the archive, and the
                        few the pitr cache file and /dev/fuse add); also
                        read_bytes (what came from disk), the daemon's own
                        bytes_read_from_sources (status), and with
                        --trace-reads one more query under strace, its
                        read calls' bytes by file

Each timing is repeated until its spread (max/min) is within 1.3x, at least
3 and at most --max-runs times (fewer when one run takes long); the median
is reported with the spread in brackets. Every restore is checked: exactly
rows 1..K at T, and `PRAGMA integrity_check` ok.
"""
import argparse
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

COUNTS = [10_000, 100_000, 1_000_000, 10_000_000]
ROWS = []  # (section, name, median, lo, hi, unit, target, verdict)
LS_RUNS = 9  # the first lookup is repeated at least this many times
TARGETS = {"ls": 50.0, "plan": 100.0, "rss": 64.0, "restore": 1.5, "verify": 2.0,
           "first_byte": 100.0, "point_pct": 1.0, "whole": 1.5}


def log(msg):
    print(f"# {msg}", flush=True)


def record(section, name, value, lo=None, hi=None, unit="", target=None, ok=None):
    verdict = "" if ok is None else ("PASS" if ok else "MISS")
    ROWS.append((section, name, value, lo, hi, unit, target or "", verdict))
    rng = f"[{lo:.3g}-{hi:.3g}]" if lo is not None else ""
    print(f"{section:<10} {name:<52} {value:>10.3g} {unit:<4} {rng:<20} {target or '':<10} {verdict}",
          flush=True)


def repeat(fn, min_runs, max_runs, budget_s=60.0, spread=1.3):
    """Call fn() (which returns one sample) until the spread of the samples
    is at most `spread`, at least min_runs and at most max_runs times, or
    until budget_s has passed after min_runs. Returns (median, min, max, n)."""
    samples = []
    t0 = time.monotonic()
    while len(samples) < max_runs:
        samples.append(fn())
        if len(samples) >= min_runs:
            lo, hi = min(samples), max(samples)
            if (lo > 0 and hi / lo <= spread) or time.monotonic() - t0 > budget_s:
                break
    return statistics.median(samples), min(samples), max(samples), len(samples)


def human(n):
    for div, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= div and n % div == 0:
            return f"{n // div}{suffix}"
    return str(n)


def vm_hwm_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Bench:
    def __init__(self, args):
        self.args = args
        self.bin = args.sqlenvfs
        self.dir = args.dir or tempfile.mkdtemp(prefix="sqlenvfs-history-", dir="/var/tmp")
        os.makedirs(self.dir, exist_ok=True)
        self.mount_proc = None
        self.mnt = os.path.join(self.dir, "mnt")

    # -- building a root ------------------------------------------------

    def generate(self, n, root):
        mark = max(1, n - n // 10)
        t0 = time.monotonic()
        out = subprocess.run([self.args.gen, "--sqlenvfs", self.bin, "--root", root,
                              "--commits", str(n), "--mark", str(mark)],
                             check=True, capture_output=True, text=True).stdout
        took = time.monotonic() - t0
        for line in out.splitlines():
            if not line.startswith("mark "):
                log(line)
        m = re.search(r"^mark (\d+) us=(\d+) rows=(\d+) db_pages=(\d+) changed_pages=(\d+) "
                      r"page_size=(\d+)$", out, re.M)
        if not m:
            raise RuntimeError(f"gen_archive printed no mark line:\n{out}")
        k, us, rows, _, changed, ps = (int(x) for x in m.groups())
        return {"rows": rows, "us": us, "changed": changed, "page_size": ps, "gen_s": took}

    def real_writer(self, n, root):
        """`sqlenvfs init`, `sqlenvfs archive` running, a Python writer of
        one-row commits until n commits are archived."""
        os.makedirs(root)
        with open(os.path.join(root, "schema.sql"), "w") as f:
            f.write("CREATE TABLE log(id INTEGER PRIMARY KEY, at TEXT, user TEXT, level TEXT,"
                    " message TEXT);\n")
        subprocess.run([self.bin, "init", "--root", root], check=True, stdout=subprocess.DEVNULL)
        archlog = open(os.path.join(self.dir, "archive.log"), "w")
        arch = subprocess.Popen([self.bin, "archive", "--root", root], stdout=archlog,
                                stderr=subprocess.STDOUT)
        t0 = time.monotonic()
        try:
            snaps = os.path.join(root, "backups/prod/snapshots")
            while not (os.path.isdir(snaps) and [s for s in os.listdir(snaps)
                                                 if not s.startswith(".")]):
                if arch.poll() is not None or time.monotonic() - t0 > 60:
                    raise RuntimeError("the archiver took no first snapshot (see archive.log)")
                time.sleep(0.1)
            db = os.path.join(root, "data/prod/app.db")
            mark = max(1, n - n // 10)
            writer = os.path.join(os.path.dirname(os.path.abspath(__file__)), "text_rows.py")
            subprocess.run([sys.executable, writer, db, str(mark)], check=True,
                           stdout=subprocess.DEVNULL)
            # T: a moment after every commit of the first phase was archived
            # and before the second phase starts, so that a restore to T
            # holds exactly rows 1..mark.
            self.wait_archived(root, mark + 1)
            t_us = int(time.time() * 1e6)
            time.sleep(0.1)
            subprocess.run([sys.executable, writer, db, str(n - mark)], check=True,
                           stdout=subprocess.DEVNULL)
            self.wait_archived(root, n + 1)
        finally:
            arch.terminate()
            arch.wait(timeout=120)
            archlog.close()
        took = time.monotonic() - t0
        log(f"real writer: {n} commits written and archived in {took:.0f} s "
            f"({n / took:.0f} commits/s)")
        return {"rows": mark, "us": t_us, "changed": None, "page_size": 4096, "gen_s": took}

    def wait_archived(self, root, n):
        """Wait until the archive's indexes hold n records and have not grown
        for a second (the archiver syncs, and writes index entries, at most
        50 ms after a commit)."""
        t0 = time.monotonic()
        last, since = -1, time.monotonic()
        while True:
            c = self.archived_commits(root)
            if c != last:
                last, since = c, time.monotonic()
            elif c >= n and time.monotonic() - since >= 1.0:
                return
            if time.monotonic() - t0 > 1800:
                raise RuntimeError(f"only {c} of {n} records archived after 30 minutes")
            time.sleep(0.2)

    def archived_commits(self, root):
        d = os.path.join(root, "backups/prod/wal_archives/app")
        total = 0
        for name in os.listdir(d) if os.path.isdir(d) else []:
            if name.endswith(".idx"):
                total += max(0, (os.path.getsize(os.path.join(d, name)) - 32) // 112)
        return total  # records: the commits, the first GAP, and SEALs

    # -- the mount ------------------------------------------------------

    def mount(self, root):
        if os.path.ismount(self.mnt) or (os.path.lexists(self.mnt) and not os.path.isdir(self.mnt)):
            # A mount left behind by a daemon that was killed.
            subprocess.run(["fusermount3", "-uz", self.mnt], check=False,
                           stderr=subprocess.DEVNULL)
        os.makedirs(self.mnt, exist_ok=True)
        errlog = open(os.path.join(self.dir, "mount.log"), "a")
        self.mount_proc = subprocess.Popen([self.bin, "mount", "--foreground", root, self.mnt],
                                           stdout=errlog, stderr=errlog)
        errlog.close()
        t0 = time.monotonic()
        while not os.path.ismount(self.mnt):
            if self.mount_proc.poll() is not None:
                raise RuntimeError(f"the mount exited (see {self.dir}/mount.log)")
            if time.monotonic() - t0 > 60:
                raise RuntimeError("the mount did not appear in 60 s")
            time.sleep(0.01)

    def umount(self):
        if self.mount_proc is None:
            return
        subprocess.run(["fusermount3", "-u", self.mnt], check=False,
                       stderr=subprocess.DEVNULL)
        # The daemon finishes its work (and holds the root's locks) after
        # the mount is gone; on a long archive that can take minutes.
        try:
            self.mount_proc.wait(timeout=1800)
        except subprocess.TimeoutExpired:
            self.mount_proc.kill()
            self.mount_proc.wait()
            subprocess.run(["fusermount3", "-uz", self.mnt], check=False,
                           stderr=subprocess.DEVNULL)
        self.mount_proc = None

    def cleanup(self):
        self.umount()
        if not self.args.dir and not self.args.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- the measurements -----------------------------------------------

    def measure(self, n, root, meta):
        a = self.args
        label = human(n)
        sec = "history" if not a.real else "real"
        t_arg = f"@{meta['us'] // 1_000_000}.{meta['us'] % 1_000_000:06d}"
        t_name = t_arg
        res = {"n": n}

        # 1. ls -l pitr/T/ through a fresh mount (the first lookup), the
        #    daemon's peak RSS after it, and cat status. At least LS_RUNS
        #    runs (a run is a mount, one lookup and an unmount: about a
        #    second), since the first on a new root also checks every
        #    record and the target is for every run; how many met it and
        #    the load average after each run are recorded with it.
        rss, status, ls_ms, loads = [], [], [], []

        def one_ls():
            self.mount(root)
            try:
                t0 = time.perf_counter()
                subprocess.run(["ls", "-l", os.path.join(self.mnt, "pitr", t_name) + "/"],
                               check=True, stdout=subprocess.DEVNULL)
                ms = (time.perf_counter() - t0) * 1000
                ls_ms.append(ms)
                loads.append(os.getloadavg()[0])
                rss.append(vm_hwm_mib(self.mount_proc.pid))
                t0 = time.perf_counter()
                subprocess.run(["cat", os.path.join(self.mnt, "status")], check=True,
                               stdout=subprocess.DEVNULL)
                status.append((time.perf_counter() - t0) * 1000)
            finally:
                self.umount()
            return ms
        ls = repeat(one_ls, max(a.min_runs, LS_RUNS), max(a.max_runs, LS_RUNS), a.budget)
        res["ls"] = ls[0]
        record(sec, f"{label}: ls -l pitr/T/, first lookup ({ls[3]} runs)", ls[0], ls[1], ls[2],
               "ms", f"<= {TARGETS['ls']:g} ms", ls[0] <= TARGETS["ls"])
        met = sum(ms <= TARGETS["ls"] for ms in ls_ms)
        record(sec, f"{label}: ls -l pitr/T/, runs within {TARGETS['ls']:g} ms", met,
               unit=f"of {len(ls_ms)}")
        record(sec, f"{label}: load average (1 min) after each lookup", statistics.median(loads),
               min(loads), max(loads))
        res["daemon_rss"] = statistics.median(rss)
        record(sec, f"{label}: mount daemon peak RSS after the lookup", res["daemon_rss"],
               min(rss), max(rss), "MiB", f"<= {TARGETS['rss']:g} MiB",
               res["daemon_rss"] <= TARGETS["rss"])
        res["status"] = statistics.median(status)
        record(sec, f"{label}: cat status (after the lookup)", res["status"], min(status),
               max(status), "ms")

        # 2. restore --time T: plan (first byte written), full, peak RSS.
        outdir = os.path.join(self.dir, "restore-out")
        plans, rsss = [], []

        def one_restore():
            shutil.rmtree(outdir, ignore_errors=True)
            os.makedirs(outdir)
            out = os.path.join(outdir, "out.db")
            t0 = time.perf_counter()
            p = subprocess.Popen([self.bin, "restore", "--root", root, "--time", t_arg,
                                  "--output", out], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
            first = None
            while first is None:
                for e in os.scandir(outdir):
                    try:
                        if e.stat().st_blocks > 0:
                            first = time.perf_counter()
                            break
                    except FileNotFoundError:
                        pass
                if first is None:
                    if p.poll() is not None:
                        first = time.perf_counter()
                        break
                    time.sleep(0.0005)
            _, status_, ru = os.wait4(p.pid, 0)
            end = time.perf_counter()
            p.returncode = os.waitstatus_to_exitcode(status_)
            err = p.stderr.read().decode()
            p.stderr.close()
            if p.returncode != 0:
                raise RuntimeError(f"restore --time {t_arg} failed: {err.strip()}")
            plans.append((first - t0) * 1000)
            rsss.append(ru.ru_maxrss / 1024)
            return end - t0
        restore = repeat(one_restore, a.min_runs, a.max_runs, a.budget)
        out = os.path.join(outdir, "out.db")
        self.check_restored(out, meta["rows"])
        res["plan"] = statistics.median(plans)
        record(sec, f"{label}: restore plan (start to first byte written)", res["plan"],
               min(plans), max(plans), "ms", f"<= {TARGETS['plan']:g} ms",
               res["plan"] <= TARGETS["plan"])
        res["restore_rss"] = statistics.median(rsss)
        record(sec, f"{label}: restore peak RSS", res["restore_rss"], min(rsss), max(rsss), "MiB",
               f"<= {TARGETS['rss']:g} MiB", res["restore_rss"] <= TARGETS["rss"])
        res["restore_s"] = restore[0]
        record(sec, f"{label}: restore --time T, full ({restore[3]} runs)", restore[0], restore[1],
               restore[2], "s")

        # The physical limit: the base, and the last version of each page
        # changed since, read once (warm, as the restore's inputs are).
        base = self.base_file(root)
        changed = meta["changed"]
        if changed is None:  # real writer: every page that differs from the base
            changed = self.pages_differing(base, out)
        pages = os.path.join(self.dir, "changed-pages")
        with open(out, "rb") as src, open(pages, "wb") as dst:
            left = changed * meta["page_size"]
            while left > 0:
                b = src.read(min(left, 1 << 20))
                if not b:
                    break
                dst.write(b)
                left -= len(b)
        subprocess.run(["cat", base, pages], check=True, stdout=subprocess.DEVNULL)

        def one_cat():
            t0 = time.perf_counter()
            subprocess.run(["cat", base, pages], check=True, stdout=subprocess.DEVNULL)
            return time.perf_counter() - t0
        phys = repeat(one_cat, a.min_runs, a.max_runs * 2, a.budget)
        ratio = restore[0] / phys[0]
        res["restore_ratio"] = ratio
        record(sec, f"{label}: restore full / physical limit ({changed} pages + base)", ratio,
               restore[1] / phys[2], restore[2] / phys[1], "x", f"<= {TARGETS['restore']:g}x",
               ratio <= TARGETS["restore"])
        # A restore also writes its output and makes it durable, which the
        # limit above does not: beside it, the restored database copied to a
        # new file and fsync'd (information, no target).
        restored = os.path.join(self.dir, "restored.db")
        os.replace(out, restored)

        def one_copy():
            shutil.rmtree(outdir, ignore_errors=True)
            os.makedirs(outdir)
            dst = os.path.join(outdir, "copy.db")
            t0 = time.perf_counter()
            subprocess.run(["cp", restored, dst], check=True)
            fd = os.open(dst, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            return time.perf_counter() - t0
        copy = repeat(one_copy, a.min_runs, a.max_runs, a.budget)
        record(sec, f"{label}: restore full / (cp of its output + fsync) (information)",
               restore[0] / copy[0], restore[1] / copy[2], restore[2] / copy[1], "x")
        os.unlink(restored)
        os.unlink(pages)
        shutil.rmtree(outdir, ignore_errors=True)

        # 3. verify after one new segment, against reading that segment.
        if not a.no_verify:
            res.update(self.measure_verify(n, root, sec, label))
        return res

    def measure_verify(self, n, root, sec, label):
        a = self.args
        # verify remembers a file only once it has been left unchanged for
        # a moment (1.5 s): run it after that, or the timed runs below
        # would check the last few segments of the generation again, not
        # only the new one.
        time.sleep(1.6)
        t0 = time.monotonic()
        subprocess.run([self.bin, "verify", "--root", root], check=True, stdout=subprocess.DEVNULL)
        full_s = time.monotonic() - t0
        record(sec, f"{label}: verify, first run (reads everything)", full_s, unit="s")
        out = subprocess.run([a.gen, "--sqlenvfs", self.bin, "--root", root, "--append",
                              "100000000", "--until-sealed"], check=True, capture_output=True,
                             text=True).stdout
        log(out.strip().splitlines()[-1])
        d = os.path.join(root, "backups/prod/wal_archives/app")
        segs = sorted(x for x in os.listdir(d) if x.endswith(".seg"))
        new_seg = os.path.join(d, segs[-2])  # the one just sealed
        memo = os.path.join(root, ".sqlenvfs/verified")
        saved = memo + ".bench"
        shutil.copyfile(memo, saved)
        subprocess.run(["cat", new_seg], check=True, stdout=subprocess.DEVNULL)
        shutil.copyfile(saved, memo)
        said = subprocess.run([self.bin, "verify", "--root", root], check=True,
                              capture_output=True, text=True).stdout
        log(f"each timed verify: {[x for x in said.splitlines() if x.startswith('checked')][0]}")

        def one_verify():
            shutil.copyfile(saved, memo)
            t = time.perf_counter()
            subprocess.run([self.bin, "verify", "--root", root], check=True,
                           stdout=subprocess.DEVNULL)
            return time.perf_counter() - t

        def one_cat():
            t = time.perf_counter()
            subprocess.run(["cat", new_seg], check=True, stdout=subprocess.DEVNULL)
            return time.perf_counter() - t
        # In pairs, a verify then a cat, so that both see the same load on a
        # busy machine; the ratio of the medians, with the extremes of the
        # pairs' ratios.
        pairs = []
        t0 = time.monotonic()
        while len(pairs) < a.max_runs:
            pairs.append((one_verify(), one_cat()))
            if len(pairs) >= a.min_runs:
                rs = [pv / pc for pv, pc in pairs]
                if max(rs) / min(rs) <= 1.3 or time.monotonic() - t0 > a.budget:
                    break
        os.unlink(saved)
        rs = [pv / pc for pv, pc in pairs]
        r = statistics.median(pv for pv, _ in pairs) / statistics.median(pc for _, pc in pairs)
        record(sec, f"{label}: verify after 1 new segment / cat of it ({len(segs)} segments)", r,
               min(rs), max(rs), "x", f"<= {TARGETS['verify']:g}x", r <= TARGETS["verify"])
        return {"verify_ratio": r}

    def base_file(self, root):
        for kind in ("daily", "snapshots"):
            d = os.path.join(root, "backups/prod", kind)
            names = sorted(x for x in os.listdir(d) if not x.startswith(".")) if os.path.isdir(d) else []
            if names:
                return os.path.join(d, names[0], "app.db")
        raise RuntimeError(f"no base in {root}")

    def pages_differing(self, base, out, ps=4096):
        n = 0
        with open(base, "rb") as f, open(out, "rb") as g:
            while True:
                a, b = f.read(ps), g.read(ps)
                if not b:
                    return n
                n += a != b

    def check_restored(self, path, rows):
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            ic = db.execute("PRAGMA integrity_check").fetchone()[0]
            cnt, mx = db.execute("SELECT count(*), coalesce(max(id), 0) FROM log").fetchone()
        finally:
            db.close()
        if ic != "ok" or cnt != rows or mx != rows:
            raise RuntimeError(f"the restore to T is wrong: integrity_check {ic!r}, {cnt} rows "
                               f"(max id {mx}), expected rows 1..{rows}")


def parse_bytes(text):
    m = re.fullmatch(r"(\d+)\s*([KMGT]?)(i?B)?", text.strip(), re.I)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: give a byte count, e.g. 4294967296 or 4GiB")
    return int(m.group(1)) << (10 * " KMGT".index((m.group(2) or " ").upper()))


def daemon_io(pid):
    """rchar and read_bytes of a process, all its threads."""
    io = {}
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            k, v = line.split(":")
            io[k] = int(v)
    return io


def daemon_cpu(pid):
    """User and system CPU seconds of a process so far, all its threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drop_caches():
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def big_db_states(a):
    """How many states --big-db reads, each once."""
    return 2 + 4 * max(a.max_runs, 5, a.min_runs)


class BigDb:
    """First byte of a new pitr time and the bytes a point query reads, on
    one root with a large database (see the module's doc)."""

    def __init__(self, bench, size, commits):
        self.b, self.a = bench, bench.args
        self.size, self.n = size, commits

    def generate(self, root):
        # Commits to read, one state each: the mount's first, two first-byte
        # timings and the point queries, at most max_runs each, and one for
        # --trace-reads; spread over the history, none of them the last.
        m = big_db_states(self.a)
        marks = sorted({max(2, self.n * (i + 1) // (m + 1)) for i in range(m)})
        cmd = [self.a.gen, "--sqlenvfs", self.b.bin, "--root", root, "--commits", str(self.n),
               "--prefill-bytes", str(self.size)]
        for k in marks:
            cmd += ["--mark", str(k)]
        t0 = time.monotonic()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        took = time.monotonic() - t0
        states = []
        for line in out.splitlines():
            mm = re.match(r"mark (\d+) us=(\d+) rows=\d+ db_pages=(\d+) changed_pages=(\d+) "
                          r"page_size=(\d+)$", line)
            if mm:
                k, us, pages, changed, ps = (int(x) for x in mm.groups())
                states.append({"k": k, "t": f"@{us // 1_000_000}.{us % 1_000_000:06d}",
                               "db_bytes": pages * ps, "changed": changed, "page_size": ps})
            else:
                log(line)
        if len(states) != len(marks):
            raise RuntimeError(f"gen_archive printed {len(states)} mark lines, not {len(marks)}")
        log(f"big-db: {self.size} bytes, {self.n} commits generated in {took:.0f} s")
        # A pitr file counts whole against [cache] max-bytes (default 4 GiB)
        # while it is filled: room for two states of this size (a state
        # larger than max-bytes is still served, once the others are
        # evicted).
        with open(os.path.join(root, "sqlenvfs.conf"), "a") as f:
            f.write(f"[cache]\nmax-bytes={2 * states[-1]['db_bytes'] + (1 << 30)}\n")
        return states

    def run(self):
        a, b = self.a, self.b
        if os.geteuid() != 0:
            raise RuntimeError("big-db drops the page cache: run as root")
        label = f"{self.size / (1 << 30):.3g} GiB, {human(self.n)} commits"
        root = os.path.join(b.dir, "root-big")
        shutil.rmtree(root, ignore_errors=True)
        try:
            states = self.generate(root)
            free = list(states)
            b.mount(root)
            pid = b.mount_proc.pid
            # The mount's first pitr lookup loads the timeline (the rows of
            # `ls -l pitr/T/` above): done once, on a state not measured.
            s0 = free.pop(0)
            t = self.first_byte(s0)
            record("big-db", f"{label}: first byte, first pitr time of the mount", t, unit="ms")

            def fb(drop):
                def one():
                    if drop:
                        drop_caches()
                    return self.first_byte(free.pop(0))
                return one
            for drop, what in ((False, "warm"), (True, "page cache dropped")):
                r = repeat(fb(drop), max(5, a.min_runs), a.max_runs, a.budget)
                record("big-db", f"{label}: first byte of a new pitr time, {what} ({r[3]} runs)",
                       r[0], r[1], r[2], "ms", f"<= {TARGETS['first_byte']:g} ms",
                       r[0] <= TARGETS["first_byte"])

            self.whole_reads(root, free, label)

            pct, rchar, own, ms = [], [], [], []

            def pq():
                st = free.pop(0)
                drop_caches()
                own0 = self.read_from_sources()
                io0 = daemon_io(pid)
                t0 = time.perf_counter()
                self.point_query(st)
                ms.append((time.perf_counter() - t0) * 1000)
                io1 = daemon_io(pid)
                # `status` is made at its lookup, which the kernel keeps for
                # a second: a fresh one after that.
                time.sleep(1.2)
                own1 = self.read_from_sources()
                pct.append(100.0 * (io1["read_bytes"] - io0["read_bytes"]) / st["db_bytes"])
                rchar.append(100.0 * (io1["rchar"] - io0["rchar"]) / st["db_bytes"])
                own.append(100.0 * (own1 - own0) / st["db_bytes"])
                return pct[-1]
            # Point queries on states with nothing read yet: at most what
            # is left of the marks (one kept for --trace-reads).
            runs = min(len(free) - 1, max(5, a.min_runs))
            for _ in range(runs):
                pq()
            db_mib = states[-1]["db_bytes"] / (1 << 20)
            med = statistics.median(rchar)
            record("big-db", f"{label}: point query, new T: bytes the daemon read ({runs} runs)",
                   med, min(rchar), max(rchar), "%", f"<= {TARGETS['point_pct']:g}%",
                   med <= TARGETS["point_pct"])
            log(f"  = {med * db_mib * 1.048576 / 100:.3g} MB of a {db_mib:.0f} MiB database "
                f"(rchar: every byte its read calls returned, page cache or not)")
            record("big-db", f"{label}: point query: of which from disk (read_bytes)",
                   statistics.median(pct), min(pct), max(pct), "%")
            record("big-db", f"{label}: point query: status bytes_read_from_sources",
                   statistics.median(own), min(own), max(own), "%")
            record("big-db", f"{label}: point query, page cache dropped: time",
                   statistics.median(ms), min(ms), max(ms), "ms")
            if a.trace_reads:
                self.trace_reads(pid, free.pop(0))
        finally:
            b.umount()
            shutil.rmtree(root, ignore_errors=True)

    def whole_reads(self, root, free, label):
        """The first read of a whole pitr file, each run a T never read,
        against the physical limit measured right after it."""
        a = self.a
        base = self.b.base_file(root)
        pages = os.path.join(self.b.dir, "changed-pages")
        times, limits = [], []

        def cat(*paths):
            t0 = time.perf_counter()
            subprocess.run(["cat", *paths], check=True, stdout=subprocess.DEVNULL)
            return time.perf_counter() - t0

        pid = self.b.mount_proc.pid
        cpus = []

        def one():
            st = free.pop(0)
            with open(base, "rb") as src, open(pages, "wb") as dst:
                dst.write(src.read(st["changed"] * st["page_size"]))
            c0 = daemon_cpu(pid)
            times.append(cat(os.path.join(self.b.mnt, "pitr", st["t"], "app.db")))
            cpus.append(daemon_cpu(pid) - c0)
            limits.append(cat(base, pages))
            log(f"  run {len(times)}: pitr {times[-1]:.3f} s, limit {limits[-1]:.3f} s, "
                f"ratio {times[-1] / limits[-1]:.2f}, daemon CPU {cpus[-1]:.2f} s, "
                f"load average {os.getloadavg()[0]:.1f}")
            return times[-1] / limits[-1]
        cat(base)  # warm, as the limit is
        r = repeat(one, max(5, a.min_runs), a.max_runs, a.budget)
        os.unlink(pages)
        record("big-db", f"{label}: daemon CPU for the first read of the whole file",
               statistics.median(cpus), min(cpus), max(cpus), "s")
        record("big-db", f"{label}: pitr first read of the whole file, new T ({r[3]} runs)",
               statistics.median(times), min(times), max(times), "s")
        record("big-db", f"{label}: physical limit (cat of the base and the changed pages)",
               statistics.median(limits), min(limits), max(limits), "s")
        record("big-db", f"{label}: pitr first read of the whole file / physical limit", r[0],
               r[1], r[2], "x", f"<= {TARGETS['whole']:g}x", r[0] <= TARGETS["whole"])

    def trace_reads(self, pid, st):
        """One more point query (page cache dropped) under `strace -f` on
        the daemon: the bytes its read calls returned, by file."""
        drop_caches()
        trace = os.path.join(self.b.dir, "reads.strace")
        p = subprocess.Popen(["strace", "-f", "-qq", "-y", "-s0", "-e", "signal=none",
                              "-e", "trace=read,pread64,readv,preadv,preadv2", "-o", trace,
                              "-p", str(pid)], stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # strace attaches to every thread
        self.point_query(st)
        time.sleep(0.2)
        p.terminate()
        p.wait()
        by = {}
        pat = re.compile(r"\b(?:p?readv?2?|pread64)\(\d+<([^>]*)>.*\)\s+=\s+(\d+)")
        with open(trace) as f:
            for line in f:
                m = pat.search(line)
                if m:
                    path = m.group(1)
                    kind = ("archive " + os.path.splitext(path)[1] if "/wal_archives/" in path else
                            "base" if "/backups/" in path or "/snapshots/" in path else
                            "pitr cache file" if "/.cache/" in path else
                            "/dev/fuse" if path == "/dev/fuse" else path)
                    calls, n = by.get(kind, (0, 0))
                    by[kind] = (calls + 1, n + int(m.group(2)))
        os.unlink(trace)
        log(f"reads of the mount daemon during one more point query (strace -f), of a "
            f"{st['db_bytes']} byte database:")
        for kind, (calls, n) in sorted(by.items(), key=lambda x: -x[1][1]):
            log(f"  {n:>12} bytes {100.0 * n / st['db_bytes']:8.3f}% in {calls:>6} calls  {kind}")

    def first_byte(self, st):
        path = os.path.join(self.b.mnt, "pitr", st["t"], "app.db")
        t0 = time.perf_counter()
        fd = os.open(path, os.O_RDONLY)
        try:
            data = os.read(fd, 1)
            t1 = time.perf_counter()
        finally:
            os.close(fd)
        if data != b"S":
            raise RuntimeError(f"{path}: first byte {data!r}, not the start of a SQLite header")
        return (t1 - t0) * 1000

    def point_query(self, st):
        path = os.path.join(self.b.mnt, "pitr", st["t"], "app.db")
        k = st["k"]
        out = subprocess.run(["sqlite3", f"file:{path}?mode=ro&immutable=1",
                              f"SELECT id FROM log WHERE id = {k}; "
                              f"SELECT count(*) FROM log WHERE id = {k + 1};"],
                             check=True, capture_output=True, text=True).stdout.split()
        if out != [str(k), "0"]:
            raise RuntimeError(f"point query on {path}: {out!r}, expected row {k} and not {k + 1}")

    def read_from_sources(self):
        import json
        with open(os.path.join(self.b.mnt, "status")) as f:
            return json.load(f)["pitr_cache"]["bytes_read_from_sources"]


def write_data(results, path, commit):
    with open(path, "w") as f:
        f.write(f"# sqlenvfs history benchmark, commit {commit}\n")
        f.write("# commits ls_ms plan_ms restore_rss_mib daemon_rss_mib restore_s restore_ratio "
                "verify_ratio status_ms\n")
        for r in results:
            f.write(" ".join(str(r.get(k, "NaN")) for k in
                             ("n", "ls", "plan", "restore_rss", "daemon_rss", "restore_s",
                              "restore_ratio", "verify_ratio", "status")) + "\n")


def plot(data, svg, title):
    if not shutil.which("gnuplot"):
        log("gnuplot is not installed (scripts/deps.sh installs gnuplot-nox): no plot")
        return
    script = f"""
set terminal svg size 960,420 dynamic font "sans,11" background rgb "white"
set output "{svg}"
set multiplot layout 1,2 title "{title}"
set logscale x
set logscale y
set grid
set key top left
set xlabel "commits kept in the archive"
set ylabel "milliseconds"
set format x "10^{{%L}}"
plot "{data}" using 1:2 with linespoints lw 2 pt 7 title "ls -l pitr/T/ (first lookup)", \\
     "{data}" using 1:3 with linespoints lw 2 pt 5 title "restore plan (to first byte)", \\
     50 with lines dt 2 lc rgb "#9400d3" title "lookup target 50 ms", \\
     100 with lines dt 2 lc rgb "#009e73" title "plan target 100 ms"
set ylabel "peak RSS, MiB"
plot "{data}" using 1:4 with linespoints lw 2 pt 7 title "restore", \\
     "{data}" using 1:5 with linespoints lw 2 pt 5 title "mount daemon after the lookup", \\
     64 with lines dt 2 lc rgb "red" title "target 64 MiB"
unset multiplot
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    log(f"plot written to {svg}")


def code_commit():
    """The last commit that changed the code measured (src/, include/), with
    "+changes" when the work tree differs from it there."""
    here = os.path.dirname(os.path.abspath(__file__))
    git = ["git", "-C", os.path.join(here, "..", "..")]
    c = subprocess.run(git + ["log", "-1", "--format=%h", "--", "src", "include"],
                       capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(git + ["diff", "--quiet", "HEAD", "--", "src", "include"]).returncode
    return (c or "?") + ("+changes" if dirty else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sqlenvfs", required=True)
    ap.add_argument("--gen", required=True, help="the gen_archive binary")
    ap.add_argument("--max", type=int, default=1_000_000,
                    help="the largest count of commits (default 1000000; 10000000 for all)")
    ap.add_argument("--counts", help="comma-separated counts instead of 10k,100k,1M,10M")
    ap.add_argument("--real", type=int, metavar="N",
                    help="one count, N commits from a Python writer under `sqlenvfs archive`")
    ap.add_argument("--big-db", type=parse_bytes, metavar="BYTES",
                    help="instead: first byte of a new pitr time and the bytes a point query "
                         "reads, on a database of BYTES (e.g. 4GiB)")
    ap.add_argument("--big-commits", type=int, default=100_000,
                    help="one-row commits archived on the --big-db root (default 100000)")
    ap.add_argument("--trace-reads", action="store_true",
                    help="with --big-db: one more point query under strace, its reads by file")
    ap.add_argument("--min-runs", type=int, default=3)
    ap.add_argument("--max-runs", type=int, default=9)
    ap.add_argument("--budget", type=float, default=60.0,
                    help="seconds after which a timing stops repeating past --min-runs")
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument("--data", help="write the rows for gnuplot to this file")
    ap.add_argument("--svg", help="plot the rows to this SVG file (gnuplot)")
    ap.add_argument("--plot-only", action="store_true",
                    help="only plot --data (as written by an earlier run) to --svg")
    ap.add_argument("--dry-run", action="store_true",
                    help="print the counts and the commands that build their roots, and stop")
    ap.add_argument("--dir")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    if a.plot_only:
        with open(a.data) as f:
            commit = f.readline().split("commit")[-1].strip()
        plot(a.data, a.svg, f"sqlenvfs: cost against history kept (commit {commit})")
        return
    if a.big_db:
        need = 2 * (big_db_states(a) + 1)
        if a.big_commits < need:
            ap.error(f"--big-commits {a.big_commits}: too few commits for {need // 2 - 1} "
                     f"distinct times to read; give at least {need}")
        b = Bench(a)
        log(f"history benchmark, big database: commit {code_commit()}, {a.big_db} bytes, "
            f"{human(a.big_commits)} commits; work in {b.dir}")
        try:
            BigDb(b, a.big_db, a.big_commits).run()
        finally:
            b.cleanup()
        met = sum(1 for r in ROWS if r[7] == "PASS")
        print(f"# {met} targets met, {sum(1 for r in ROWS if r[7] == 'MISS')} missed")
        return
    counts = ([a.real] if a.real else
              [int(x) for x in a.counts.split(",")] if a.counts else
              [c for c in COUNTS if c <= a.max])
    commit = code_commit()
    if a.dry_run:
        for n in counts:
            mark = max(1, n - n // 10)
            print(f"{human(n)}: " + (f"a Python writer under `sqlenvfs archive`, {n} commits"
                                     if a.real else
                                     f"{a.gen} --sqlenvfs {a.sqlenvfs} --root DIR/root-{n} "
                                     f"--commits {n} --mark {mark}"))
        return
    b = Bench(a)
    log(f"history benchmark: commit {commit or '?'}, counts {', '.join(map(human, counts))}, "
        f"{'a real writer under the archiver' if a.real else 'gen_archive (drives the archive writer directly)'}; "
        f"work in {b.dir}")
    results = []
    try:
        for n in counts:
            root = os.path.join(b.dir, f"root-{n}")
            shutil.rmtree(root, ignore_errors=True)
            meta = b.real_writer(n, root) if a.real else b.generate(n, root)
            if not a.real:
                log(f"{human(n)}: generated in {meta['gen_s']:.1f} s; T = commit {meta['rows']}")
            results.append(b.measure(n, root, meta))
            if a.data:
                write_data(results, a.data, commit)
            shutil.rmtree(root, ignore_errors=True)
    finally:
        b.cleanup()
    if a.svg and a.data:
        plot(a.data, a.svg, f"sqlenvfs: cost against history kept (commit {commit})")
    met = sum(1 for r in ROWS if r[7] == "PASS")
    missed = sum(1 for r in ROWS if r[7] == "MISS")
    print(f"# {met} targets met, {missed} missed")
    # Flat RSS: the largest count against the smallest.
    if len(results) >= 2:
        r0, r1 = results[0], results[-1]
        print(f"# restore peak RSS grows {r1['restore_rss'] - r0['restore_rss']:+.1f} MiB and the "
              f"daemon's {r1['daemon_rss'] - r0['daemon_rss']:+.1f} MiB from {human(r0['n'])} to "
              f"{human(r1['n'])} commits (flat: within a few MiB)")


if __name__ == "__main__":
    main()
