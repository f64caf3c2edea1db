#!/usr/bin/env python3
"""Power cuts under a running root, on the crash filesystem (tests/crashfs).

    crash_power.py run --sqlenvfs BIN --crashfs BIN --tmp DIR --cuts N --seed S
                       [--extra-cuts N] [--op OP] [--hard-startup] [--only SEED] [--verbose]
    crash_power.py writer --db PATH --log PATH --start ID

`run` keeps a whole root (production, development, backups, snapshots, the
WAL archive, .cache) on crashfs. Each cycle boots the "machine" (mounts
crashfs, starts `sqlenvfs archive`), lets a writer commit numbered rows with
synchronous=FULL while one operation runs (the archiver alone capturing and
checkpointing, the archiver idle after the writer stopped, the archiver
starting, backup, snapshot, refresh-dev, prune, a
pitr rebuild through the mount, a restore), cuts the power at a random moment (crashfs drops
every unsynced write and entry operation, or a seeded random prefix or
subset of them), kills every process, unmounts, mounts what survived and checks:

  1. production passes integrity_check and holds every row whose COMMIT
     returned, rows 1..N with nothing missing;
  2. the archive as the cut left it passes `verify`, and a restore of it
     (before the archiver runs again and re-reads the WAL) holds every row
     whose COMMIT returned before the alive time read before the cut (what
     the archiver had published as durable); the archiver restarts
     (resuming, or recording a gap), `verify` is clean, and a restore at the
     alive time still works;
  3. every backup and snapshot present is whole (verify checks it against
     its MANIFEST; each database passes integrity_check), and one whose
     command had finished before the cut is there;
  4. development, if present, is whole and marked development;
  5. a restore output present under its final name is whole, and one whose
     command had finished is there; a pitr file served after the reboot is
     the same database as `restore` writes for that time.

--extra-cuts N adds N cycles of each operation that runs only when asked for
(EXTRA_OPS; with --op, of that one) after the --cuts ones, each operation
with seeds of its own, so that a seed gives every cycle the operation and
the cut it gave it before an operation was added: `prune-replica`, a prune
with a replica configured (a shipping state naming everything as shipped, no
server), cut right after the first copy it removes left its name, or up to
half a second later:

  6. every copy and segment the prune removed is queued for removal from
     the replica (or left in the prune's pending file, and queued by the
     next prune, which leaves no pending file).

and `seal`, cut right after a new name appears in the archive (the
archiver sealing a segment: the temporary of its summary or of its last
versions, the summary, the next segment) or a moment later; small segments
(--segment-records) make that every few hundred commits. After every cut,
once the archiver has started again, the archive holds no temporary and
every segment but the last has its summary.

and `archiver-kill`: the writer commits 20 rows and stops; the archiver,
whose fsync and fdatasync sleep 20 ms first (slow_sync.c, built with cc),
is killed with -9 up to 60 ms later (mostly between writing records and
syncing them), a new one starts and publishes an alive time past the last
commit, and the power is cut a moment later: check 2 holds for that alive
time.

and `init-force`: the writer commits some rows and is killed (-9: its last
commits only in the -wal), a note is committed to development, the
archiver (left running) publishes an alive time past the last commit, and
`init --force` is cut at a random moment or right after its moves list
appeared (in some cycles it waits 20 ms after each move aside). After the
reboot, and again after what a user runs next (`init`, `init --force`, or
`doctor` and what it advises):

  7. the old production (every acknowledged row) and the old development
     (its note) are each in exactly one readable place, the live name or
     <db>.db.replaced-<time> opened with its own -wal, whole; no -wal or
     -journal is apart from its database (while a moves list is left, only
     after the next init); a live database present passes integrity_check
     and carries its own marker, and no development file is marked
     production; a restore at the alive time holds every row;
  8. after the next command: both databases are in place, no .tmp-init-*
     is left, and the moves list is gone.

A failure prints the cycle's seed; `--only SEED` replays one cycle's cut on
a fresh root. Prints per-operation counts and one JSON summary line.
"""
import argparse
import datetime
import hashlib
import json
import os
import random
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import zlib

OPS = ["idle", "archive", "startup", "backup", "snapshot", "refresh-dev", "prune", "pitr", "restore"]
# Operations run only when asked for (--op, or --extra-cuts after the cycles
# of OPS), so that the cycles a seed gives to OPS stay what they were.
EXTRA_OPS = ["prune-replica", "seal", "archiver-kill", "init-force"]
REPLICA_URL = "s3://crash-test/replica"
SCHEMA = "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL);\n"


# Bytes of text per row; 0: short, compressible rows (value() below).
ROW_BYTES = 0


def value(i):
    if ROW_BYTES:
        # text that compresses to about half: archive segments fill (and
        # roll) every few hundred commits
        return random.Random(i).randbytes(ROW_BYTES // 2).hex()
    return ("row-%d-" % i) * (1 + i % 23)


# --------------------------------------------------------------------------
# The writer: a real client committing numbered rows.

def writer(args):
    db = sqlite3.connect(args.db, isolation_level=None, timeout=30)
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=30000")
    i = args.start
    with open(args.log, "a", buffering=1) as log:
        while args.count == 0 or i < args.start + args.count:
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t(id, v) VALUES(?, ?)", (i, value(i)))
            db.execute("COMMIT")
            log.write("%d %.6f\n" % (i, time.time()))
            i += 1
            time.sleep(0.002)


# --------------------------------------------------------------------------
# The machine.

class Failure(Exception):
    pass


def wait_for(cond, what, deadline=20.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.02)
    raise Failure("timed out waiting for " + what)


def is_mounted(path):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


class Machine:
    def __init__(self, a):
        self.a = a
        self.tmp = os.path.abspath(a.tmp)
        self.store = os.path.join(self.tmp, "store")
        self.mnt = os.path.join(self.tmp, "mnt")
        self.root = os.path.join(self.mnt, "root")
        self.mnt2 = os.path.join(self.tmp, "view")
        self.logs = os.path.join(self.tmp, "logs")
        for d in (self.store, self.mnt, self.mnt2, self.logs):
            os.makedirs(d, exist_ok=True)
        self.procs = []
        self.crashfs = None
        self.acked = {}          # id -> time its COMMIT returned
        self.checked = set()     # (kind, name) of copies found whole
        self.n_boot = 0

    def sq(self, *args, **kw):
        return subprocess.run([self.a.sqlenvfs, *args, "--root", self.root],
                              capture_output=True, text=True, **kw)

    def spawn(self, argv, name, env=None):
        out = open(os.path.join(self.logs, name + ".out"), "w")
        err = open(os.path.join(self.logs, name + ".err"), "w")
        p = subprocess.Popen(argv, stdout=out, stderr=err, start_new_session=True,
                             env=dict(os.environ, **env) if env else None)
        p.name = name
        self.procs.append(p)
        return p

    def boot(self):
        self.n_boot += 1
        self.crashfs = subprocess.Popen([self.a.crashfs, self.store, self.mnt, "-f"],
                                        stderr=open(os.path.join(self.logs, "crashfs.err"), "a"))
        wait_for(lambda: is_mounted(self.mnt), "crashfs to mount")

    def ctl(self, cmd):
        with open(os.path.join(self.mnt, ".crashfs"), "w") as f:
            f.write(cmd + "\n")

    def halt(self):
        """After the cut: kill every process, unmount everything."""
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in self.procs:
            p.wait()
        self.procs = []
        if is_mounted(self.mnt2):
            subprocess.run(["fusermount3", "-u", "-z", self.mnt2])
        subprocess.run(["fusermount3", "-u", "-z", self.mnt])
        self.crashfs.wait(timeout=30)
        self.crashfs = None

    def shutdown(self):
        try:
            if self.procs or self.crashfs:
                for p in self.procs:
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    p.wait()
                self.procs = []
                for m in (self.mnt2, self.mnt):
                    if is_mounted(m):
                        subprocess.run(["fusermount3", "-u", "-z", m])
                if self.crashfs:
                    self.crashfs.wait(timeout=30)
        except Exception as e:  # noqa: BLE001 - best effort on the way out
            print("# shutdown: %s" % e, file=sys.stderr)

    def diagnose(self, i):
        """After a failure: what the archiver said in the cycle, and the
        windows the archive holds now (when the root is still mounted)."""
        for tag in ("%d" % i, "%dr" % i):
            path = os.path.join(self.logs, "archive-%s.err" % tag)
            if os.path.exists(path):
                lines = open(path, errors="replace").read().splitlines()
                print("  archive-%s.err (last %d lines):" % (tag, min(len(lines), 15)),
                      file=sys.stderr)
                for line in lines[-15:]:
                    print("    " + line[:300], file=sys.stderr)
        if self.crashfs and is_mounted(self.mnt):
            print("  alive file now: %r" % (self.read_alive(),), file=sys.stderr)
            r = self.sq("list")
            for line in (r.stdout + r.stderr).splitlines()[-15:]:
                print("    " + line[:300], file=sys.stderr)

    # ---- the root ------------------------------------------------------

    def init(self):
        os.makedirs(self.root)
        with open(os.path.join(self.root, "schema.sql"), "w") as f:
            f.write(SCHEMA)
        with open(os.path.join(self.root, "sqlenvfs.conf"), "w") as f:
            f.write("[archive]\nsegment-max-bytes=1048576\ncheckpoint-pages=40\n" +
                    ("segment-max-records=%d\n" % self.a.segment_records
                     if self.a.segment_records else "") +
                    "[retention]\ndaily-keep-days=0\ndaily-keep-count=1\n"
                    "snapshot-keep-days=0\nsnapshot-keep-count=3\npitr-keep-days=1\n")
        # the user's own files are made durable by the user
        for path in ("schema.sql", "sqlenvfs.conf", ".", ".."):
            fd = os.open(os.path.join(self.root, path), os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        r = self.sq("init")
        if r.returncode:
            raise Failure("init: " + r.stderr)

    def slow_sync(self):
        """An LD_PRELOAD library whose fsync and fdatasync sleep
        SLOW_SYNC_MS first (tests/integration/slow_sync.c), built once."""
        so = os.path.join(self.tmp, "slow_sync.so")
        if not os.path.exists(so):
            src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slow_sync.c")
            subprocess.run(["cc", "-O2", "-shared", "-fPIC", src, "-o", so, "-ldl"], check=True)
        return so

    def start_archiver(self, tag, env=None):
        snaps = os.path.join(self.root, "backups/prod/snapshots")
        n0 = len(copies(self.root))
        p = self.spawn([self.a.sqlenvfs, "archive", "--root", self.root], "archive-" + tag, env)
        err = os.path.join(self.logs, "archive-%s.err" % tag)

        def capturing():
            if p.poll() is not None:
                raise Failure("the archiver exited: " + open(err).read())
            text = open(err).read()
            if "archiver app: capturing" not in text:
                return False
            if "first start" in text or "a new chain" in text:
                # a new chain starts from a snapshot: wait for it
                return os.path.isdir(snaps) and len(copies(self.root)) > n0
            return True
        wait_for(capturing, "the archiver to capture (%s)" % err)
        return p

    def prod_max(self):
        db = sqlite3.connect("file:%s/data/prod/app.db?mode=ro" % self.root, uri=True)
        try:
            return db.execute("SELECT coalesce(max(id), 0) FROM t").fetchone()[0]
        finally:
            db.close()

    def read_alive(self):
        path = os.path.join(self.root, "backups/prod/wal_archives/app/alive")
        try:
            b = open(path, "rb").read()
        except FileNotFoundError:
            return None
        if len(b) != 32 or b[:8] != b"SQEFSALV":
            return None
        t, seq, _zero, crc = struct.unpack("<qQII", b[8:32])
        if zlib.crc32(b[:28]) != crc:
            return None
        return t, seq

    def read_acked(self, log):
        out = {}
        try:
            with open(log) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 2 and line.endswith("\n"):
                        out[int(parts[0])] = float(parts[1])
        except FileNotFoundError:
            pass
        return out


# --------------------------------------------------------------------------
# Checks

def check_rows(path, need_max, what, exact_max=None):
    """Opens @path read-only: integrity ok, rows 1..N contiguous with the
    writer's values, N >= need_max. Returns N."""
    if not os.path.isfile(path):
        raise Failure("%s: %s is gone" % (what, path))
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        ic = db.execute("PRAGMA integrity_check").fetchall()
        if ic != [("ok",)]:
            raise Failure("%s: integrity_check: %s" % (what, ic[:5]))
        n, mx = db.execute("SELECT count(*), coalesce(max(id), 0) FROM t").fetchone()
        if n != mx:
            raise Failure("%s: rows are not 1..%d (%d rows)" % (what, mx, n))
        if mx < need_max:
            raise Failure("%s: holds rows up to %d, but %d was acknowledged" % (what, mx, need_max))
        if exact_max is not None and mx != exact_max:
            raise Failure("%s: holds rows up to %d, expected exactly %d" % (what, mx, exact_max))
        for (i, v) in db.execute("SELECT id, v FROM t WHERE id % 97 = 1 OR id = ?", (mx,)):
            if v != value(i):
                raise Failure("%s: row %d holds a wrong value" % (what, i))
        return mx
    finally:
        db.close()


def sha(path):
    """The hash of a database file, but for bytes 18-19 of its header (the
    journal format: the mount serves rollback format, restore writes WAL)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        head = bytearray(f.read(100))
        head[18:20] = b"\0\0"
        h.update(head)
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def remove_db(path):
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(path + suffix)
        except FileNotFoundError:
            pass


def iso_us(s):
    """Microseconds since the epoch of an ISO 8601 UTC time as list prints it."""
    whole, _, frac = s.rstrip("Z").partition(".")
    t = datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc)
    return int(t.timestamp()) * 1000000 + int((frac + "000000")[:6])


def timestr(us):
    return "@%d.%06d" % (us // 1000000, us % 1000000)


def copies(root):
    out = []
    for kind in ("daily", "snapshots"):
        d = os.path.join(root, "backups/prod", kind)
        if os.path.isdir(d):
            out += [(kind, n) for n in sorted(os.listdir(d)) if not n.startswith(".")]
    return out


def write_durably(path, data):
    """Replace @path as its user would, durably: a temporary, fsync, rename,
    fsync of the directory."""
    tmp = path + ".harness-tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    fsync_dir(os.path.dirname(path))


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def archive_files(root):
    d = os.path.join(root, "backups/prod/wal_archives/app")
    if not os.path.isdir(d):
        return []
    return sorted(n for n in os.listdir(d)
                  if len(n) == 20 and n[:16].isdigit() and n[16:] in (".seg", ".idx", ".sum"))


def replica_setup(m):
    """A replica as a shipper that had shipped everything would leave it:
    [replica] url in sqlenvfs.conf and a shipping state naming every file of
    every copy and segment (no server: prune needs none, and the archiver
    of the cycle started before the url was there). Returns the keys."""
    root = m.root
    base = os.path.join(root, "backups/prod")
    keys = {}
    for kind, name in copies(root):
        d = os.path.join(base, kind, name)
        for f in os.listdir(d):
            keys["%s/%s/%s" % (kind, name, f)] = os.path.getsize(os.path.join(d, f))
    for f in archive_files(root):
        k = "wal_archives/app/" + f
        keys[k] = os.path.getsize(os.path.join(base, k))
    text = "sqlenvfs-replica-shipped 1\nurl %s\n" % REPLICA_URL
    for k in sorted(keys):
        text += "%d %s\n" % (keys[k], k)
    text += "end %08x\n" % zlib.crc32(text.encode())
    state = os.path.join(root, ".sqlenvfs")
    if not os.path.isdir(state):
        os.makedirs(state, mode=0o700)
        fsync_dir(root)
    write_durably(os.path.join(state, "replica-shipped"), text.encode())
    conf = os.path.join(root, "sqlenvfs.conf")
    old = open(conf).read()
    write_durably(conf, (old + "[replica]\nurl=%s\n" % REPLICA_URL).encode())
    return keys


def replica_pending(m):
    state = os.path.join(m.root, ".sqlenvfs")
    return [n for n in os.listdir(state) if n.startswith(".tmp-replica-remove-")]


def replica_queued(m, pending):
    """The keys queued for removal from the replica (the queue, the one a
    shipper was taking, and with @pending the pending files of prunes that
    did not finish, which the next prune queues)."""
    names = ["replica-remove", "replica-remove.taking"] + (replica_pending(m) if pending else [])
    out = []
    for name in names:
        try:
            with open(os.path.join(m.root, ".sqlenvfs", name)) as f:
                out += [line for line in f.read().split("\n") if line]
        except FileNotFoundError:
            pass
    return out


def replica_check(m, keys, before, what, pending):
    """Every copy and segment that was there before the prune and is gone
    now is queued for removal from the replica (its MANIFEST, its .seg),
    and nothing but shipped keys is queued. Returns the number checked."""
    queued = replica_queued(m, pending)
    if not pending and replica_pending(m):
        raise Failure("%s: pending removals are left: %s" % (what, replica_pending(m)))
    for k in queued:
        if k not in keys:
            raise Failure("%s: replica-remove queues %r, which was never shipped" % (what, k))
    queued = set(queued)
    n = 0
    now = set(copies(m.root))
    for kind, name in before[0]:
        if (kind, name) not in now:
            n += 1
            if "%s/%s/MANIFEST" % (kind, name) not in queued:
                raise Failure("%s: %s/%s was pruned, its removal from the replica is not "
                              "queued" % (what, kind, name))
    segs = set(archive_files(m.root))
    for f in before[1]:
        if f.endswith(".seg") and f not in segs:
            n += 1
            if "wal_archives/app/" + f not in queued:
                raise Failure("%s: segment %s was pruned, its removal from the replica is "
                              "not queued" % (what, f))
    return n


def replica_teardown(m):
    """Back to a root without a replica, as the other cycles expect."""
    conf = os.path.join(m.root, "sqlenvfs.conf")
    old = open(conf).read()
    write_durably(conf, old.split("[replica]\n")[0].encode())
    state = os.path.join(m.root, ".sqlenvfs")
    for name in ("replica-shipped", "replica-remove", "replica-remove.taking"):
        try:
            os.unlink(os.path.join(state, name))
        except FileNotFoundError:
            pass
    fsync_dir(state)


# --------------------------------------------------------------------------
# init --force under a power cut

def db_state(path):
    """(marker, rows, max id, integrity, notes) of the database at @path opened as
    a user opens it, with its own -wal; read from a copy of the database and
    its -wal (and -journal) outside the root, so that nothing there moves.
    notes: the values of its table `note` (a developer's own work in
    development), if any. None when @path is not there."""
    if not os.path.isfile(path):
        return None
    scratch = path.replace("/", "_")[-60:]
    d = os.path.join(DB_SCRATCH[0], scratch)
    os.makedirs(d, exist_ok=True)
    copy = os.path.join(d, "x.db")
    remove_db(copy)
    for sfx in ("", "-wal", "-journal"):
        if os.path.isfile(path + sfx):
            subprocess.run(["cp", path + sfx, copy + sfx], check=True)
    db = sqlite3.connect(copy, isolation_level=None)
    try:
        ic = db.execute("PRAGMA integrity_check").fetchall()
        if ic != [("ok",)]:
            return ("?", 0, 0, "integrity_check: %s" % (ic[:3],), ())
        env = [r[0] for r in db.execute("SELECT name FROM _environment")] \
            if db.execute("SELECT count(*) FROM sqlite_master WHERE name = '_environment'"
                          ).fetchone()[0] else []
        n, mx = db.execute("SELECT count(*), coalesce(max(id), 0) FROM t").fetchone()
        notes = tuple(r[0] for r in db.execute("SELECT v FROM note ORDER BY v")) \
            if db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'note'"
                          ).fetchone()[0] else ()
        for (k, v) in db.execute("SELECT id, v FROM t WHERE id % 97 = 1 OR id = ?", (mx,)):
            if v != value(k):
                return (",".join(env), n, mx, "row %d holds a wrong value" % k, notes)
        return (",".join(env), n, mx, "ok", notes)
    except sqlite3.DatabaseError as e:
        return ("?", 0, 0, "cannot be read: %s" % e, ())
    finally:
        db.close()
        remove_db(copy)
        if os.path.exists(copy + "-journal"):
            os.unlink(copy + "-journal")


DB_SCRATCH = [None]


def init_force_places(m, before):
    """Where the old databases can be now: the live ones and the files
    init moved aside since @before (the names there before the cycle)."""
    out = []
    for env in ("prod", "dev"):
        d = os.path.join(m.root, "data", env)
        out.append((env, os.path.join(d, "app.db")))
        for n in sorted(os.listdir(d)):
            if n.startswith("app.db.replaced-") and n not in before[env] and \
                    not n.endswith(("-wal", "-shm", "-journal")):
                out.append((env, os.path.join(d, n)))
    return out


def init_force_check(m, before, old_prod_max, old_dev, what, settled, pending=False):
    """The promises of init --force, on the root as it is now: the old
    production (rows 1..@old_prod_max) and the old development (the one
    whose notes hold @old_dev) each in exactly one readable place; a live database present
    is whole and carries its own marker; no -wal or -journal left apart from
    its database. @settled: after the next command (no temporaries, no
    moves list, both databases there). @pending: a moves list is left for
    the next init to finish (a -wal may be apart from its database until
    then): only the live databases are checked (a database moved aside
    before its -wal may be partly checkpointed: whole only with it). Returns
    "old", "new" or "missing": what the live production is."""
    places = {"prod": [], "dev": []}
    live = {}
    listing = "; ".join("data/%s: %s" % (env, " ".join(sorted(os.listdir(
        os.path.join(m.root, "data", env))))) for env in ("prod", "dev"))
    what = "%s (%s%s)" % (what, listing, "; a moves list" if pending else "")
    for env, path in init_force_places(m, before):
        if pending and not path.endswith("/app.db"):
            continue
        st = db_state(path)
        if st is None:
            continue
        marker, n, mx, ok, notes = st
        name = os.path.relpath(path, m.root)
        if ok != "ok":
            if path.endswith("/app.db"):
                raise Failure("%s: %s %s" % (what, name, ok))
            raise Failure("%s: %s (moved aside) %s" % (what, name, ok))
        want = "production" if env == "prod" else "development"
        if marker != want:
            raise Failure("%s: %s is marked %r, not %s" % (what, name, marker, want))
        if path.endswith("/app.db"):
            live[env] = (n, mx)
        if env == "prod" and n > 0:
            places["prod"].append((name, n, mx))
        if env == "dev" and old_dev in notes:
            places["dev"].append((name, n, mx))
    if pending:
        return "missing" if "prod" not in live else \
            ("new" if live["prod"][0] == 0 else "old")
    for env in ("prod", "dev"):
        d = os.path.join(m.root, "data", env)
        names = set(os.listdir(d))
        for n in names:
            for sfx in ("-wal", "-journal"):
                if n.endswith(sfx) and n[:-len(sfx)] not in names and \
                        os.path.getsize(os.path.join(d, n)) > 0:
                    raise Failure("%s: data/%s/%s is apart from its database" % (what, env, n))
    if len(places["prod"]) != 1:
        raise Failure("%s: the old production (rows 1..%d) is in %d places: %s" % (
            what, old_prod_max, len(places["prod"]), places["prod"]))
    name, n, mx = places["prod"][0]
    if n != mx or mx < old_prod_max:
        raise Failure("%s: %s holds rows up to %d (%d rows), but 1..%d were acknowledged" % (
            what, name, mx, n, old_prod_max))
    if len(places["dev"]) != 1:
        raise Failure("%s: the old development (note %r) is in %d places: %s" % (
            what, old_dev, len(places["dev"]), places["dev"]))
    if settled:
        left = [os.path.join("data", env, n) for env in ("prod", "dev")
                for n in os.listdir(os.path.join(m.root, "data", env))
                if n.startswith(".tmp-init-")]
        if left:
            raise Failure("%s: temporaries left: %s" % (what, left))
        if os.path.exists(os.path.join(m.root, ".sqlenvfs/init-moves")):
            raise Failure("%s: the moves list is still there" % what)
        for env in ("prod", "dev"):
            if env not in live:
                raise Failure("%s: there is no live %s database" % (what, env))
    if "prod" not in live:
        return "missing"
    return "old" if places["prod"][0][0] == "data/prod/app.db" else "new"


def cycle_init_force(m, i, seed, stats):
    """init --force on a root whose production a writer committed to (it is
    stopped with kill -9, its last commits only in the -wal), cut at a
    random moment; then what a user runs next."""
    rng = random.Random(seed)
    mode = rng.choice(["all", "random", "subset"])
    tag = "%d" % i
    DB_SCRATCH[0] = os.path.join(m.tmp, "scratch")
    m.boot()
    start = m.prod_max() + 1
    m.start_archiver(tag)
    wlog = os.path.join(m.logs, "writer-%s.log" % tag)
    writer_p = m.spawn([sys.executable, os.path.abspath(__file__), "writer", "--db",
                        os.path.join(m.root, "data/prod/app.db"), "--log", wlog,
                        "--start", str(start)], "writer-" + tag)
    n_rows = rng.randint(5, 60)
    wait_for(lambda: len(m.read_acked(wlog)) >= n_rows, "the writer's commits")
    # the application stops as after kill -9: its last commits are in the -wal
    os.killpg(writer_p.pid, signal.SIGKILL)
    writer_p.wait()
    acked = m.read_acked(wlog)
    m.acked.update(acked)
    old_prod_max = max(m.acked)
    wal = os.path.join(m.root, "data/prod/app.db-wal")
    if not os.path.exists(wal) or os.path.getsize(wal) == 0:
        raise Failure("production has no -wal before init --force")
    # a developer's own work in development, which must not be lost either
    old_dev = "cycle-%d" % i
    db = sqlite3.connect(os.path.join(m.root, "data/dev/app.db"), isolation_level=None)
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS note(v TEXT)")
    db.execute("INSERT INTO note VALUES(?)", (old_dev,))
    db.close()
    before = {env: set(os.listdir(os.path.join(m.root, "data", env))) for env in ("prod", "dev")}
    # the archiver (left running, as init --force allows) publishes an alive
    # time past the last commit: a restore at it holds every row
    last = max(acked.values())
    wait_for(lambda: (m.read_alive() or (0, 0))[0] > last * 1e6 + 300000,
             "the alive time to pass the last commit")
    alive = m.read_alive()
    # the moment of the cut: a random time in the first 100 ms (init takes
    # some 50 ms here), or right after the moves list appeared, or a moment
    # later; in some cycles init waits 20 ms after each move aside, so that
    # more cuts fall between two moves
    when = rng.choice(["time", "time", "moves", "moves", "moves"])
    delay = rng.choice([0, 0, 20])
    proc = m.spawn([m.a.sqlenvfs, "init", "--force", "--root", m.root], "op-" + tag,
                   {"SQLENVFS_TEST_INIT_DELAY_MS": str(delay)})

    def names():
        out = set()
        for d in ("data/prod", "data/dev", ".sqlenvfs"):
            try:
                out |= {(d, n) for n in os.listdir(os.path.join(m.root, d))}
            except FileNotFoundError:
                pass
        return out
    t0 = time.monotonic()
    seen = []
    if when == "time":
        time.sleep(rng.uniform(0.0, 0.1 + delay * 0.005))
    else:
        # right after the moves list appeared, or a moment later
        cur = names()
        end = time.monotonic() + 10
        while time.monotonic() < end and proc.poll() is None and \
                (".sqlenvfs", "init-moves") not in cur:
            now = names()
            if now != cur:
                seen.append(sorted(n for _, n in now ^ cur))
                cur = now
            time.sleep(0.0002)
        time.sleep(rng.choice([0, 0, 0.001, 0.003, 0.01, 0.03]) * (1 + delay / 10))
    op_done = proc.poll() == 0
    if m.a.verbose:
        print("# init-force: cut %s at %.3f s (%s, delay %d ms), after %s" % (
            mode, time.monotonic() - t0, "done" if op_done else "running", delay, seen[-3:]))
    cut = "cut" if mode == "all" else "cut %s %d" % (mode, seed)
    m.ctl(cut)
    m.halt()
    stats["cuts"]["init-force"] = stats["cuts"].get("init-force", 0) + 1
    stats["modes"][mode] = stats["modes"].get(mode, 0) + 1
    stats["acked_checked"] += len(acked)

    # ---- the power comes back ------------------------------------------
    m.boot()
    after = m.read_alive()
    if after is None or after[0] < alive[0]:
        raise Failure("the alive time published before the cut, %s, is %s after it" % (
            timestr(alive[0]), timestr(after[0]) if after else "gone"))
    moves = os.path.join(m.root, ".sqlenvfs/init-moves")
    # what a user runs next
    nxt = rng.choice(["init", "init --force", "doctor"])
    tmps = [n for env in ("prod", "dev") for n in os.listdir(os.path.join(m.root, "data", env))
            if n.startswith(".tmp-init-")]
    state = init_force_check(m, before, old_prod_max, old_dev, "after the cut", False,
                             os.path.exists(moves))
    if op_done and state == "old":
        raise Failure("init --force returned before the cut; the old production is live after it")
    # no development file is ever marked production: not the live one
    # (checked above), nor a temporary that reads whole
    for n in os.listdir(os.path.join(m.root, "data/dev")):
        if n.startswith(".tmp-init-") and not n.endswith(("-wal", "-shm", "-journal")):
            st = db_state(os.path.join(m.root, "data/dev", n))
            if st and st[3] == "ok" and st[0] == "production":
                raise Failure("after the cut: data/dev/%s is marked production" % n)
    dev_state = db_state(os.path.join(m.root, "data/dev/app.db"))
    dev_state = "missing" if dev_state is None else "old" if old_dev in dev_state[4] else "new"
    key = "prod %s, dev %s%s%s" % (state, dev_state, ", moves" if os.path.exists(moves) else "",
                                   ", temporaries" if tmps else "")
    if m.a.verbose:
        print("# init-force: after the cut %s; next: %s" % (key, nxt))
    stats["init_states"][key] = stats["init_states"].get(key, 0) + 1
    # the old production as the archiver had published it is restorable
    out = os.path.join(m.tmp, "check-%d.db" % i)
    r = m.sq("restore", "--time", timestr(alive[0]), "--output", out)
    if r.returncode:
        raise Failure("restore at the alive time %s after the cut: %s" % (
            timestr(alive[0]), r.stderr))
    check_rows(out, old_prod_max, "the archive after the cut (alive time %s)" % timestr(alive[0]))
    remove_db(out)
    stats["durable_checked"] += len(acked)
    stats["durable_points"] += 1
    stats["init_next"][nxt] = stats["init_next"].get(nxt, 0) + 1
    if nxt == "doctor":
        r = m.sq("doctor")
        text = r.stdout + r.stderr
        with open(os.path.join(m.logs, "doctor-%s.out" % tag), "w") as f:
            f.write(text)
        advice = None
        if os.path.exists(moves):
            said = " ".join(text.split())
            if "init --force was cut short" not in said or "run `sqlenvfs init`" not in said:
                raise Failure("doctor does not say init --force was cut short:\n" + text)
            advice = "init"
        elif tmps:
            if ".tmp-init-" not in text:
                raise Failure("doctor does not name the temporaries %s:\n%s" % (tmps, text))
            advice = "init"
        prod_there = os.path.exists(os.path.join(m.root, "data/prod/app.db"))
        for env, name in (("prod", "production"), ("dev", "development")):
            # (with no production, doctor says so; `init` makes both)
            if not os.path.exists(os.path.join(m.root, "data", env, "app.db")) and \
                    (env == "prod" or prod_there):
                said = " ".join(text.split())
                if "data/%s/app.db" % env not in said and "no %s database" % name not in said \
                        and "the %s database is missing" % name not in said:
                    raise Failure("doctor does not say data/%s/app.db is missing:\n%s" % (
                        env, text))
        nxt = advice
        if nxt is None and not all(os.path.exists(os.path.join(m.root, "data", e, "app.db"))
                                   for e in ("prod", "dev")):
            nxt = "init"
    if nxt:
        r = m.sq(*nxt.split())
        with open(os.path.join(m.logs, "next-%s.err" % tag), "w") as f:
            f.write(r.stdout + r.stderr)
        if r.returncode and not (nxt == "init" and "already exists" in r.stderr and
                                 all(os.path.exists(os.path.join(m.root, "data", e, "app.db"))
                                     for e in ("prod", "dev"))):
            raise Failure("%s after the cut: %s" % (nxt, r.stderr))
    state = init_force_check(m, before, old_prod_max, old_dev, "after `%s`" % nxt, True)
    if state == "new":
        m.acked = {}
    stats["passed"] += 1
    m.ctl("cut")
    m.halt()


# --------------------------------------------------------------------------
# One cycle

def cycle(m, i, seed, stats, op):
    if op == "init-force":
        return cycle_init_force(m, i, seed, stats)
    rng = random.Random(seed)
    # idle, archiver-kill: every unsynced write goes (the cut their promise
    # is about)
    mode = rng.choice(["all", "random", "subset"]) if op not in ("idle", "archiver-kill") \
        else "all"
    tag = "%d" % i
    m.boot()
    start = m.prod_max() + 1
    # archiver-kill: the archiver to be killed syncs slowly, so that it is
    # mostly killed between writing records and syncing them
    # (under ASan, whose runtime would otherwise insist on coming first)
    slow = {"LD_PRELOAD": m.slow_sync(), "SLOW_SYNC_MS": "20",
            "ASAN_OPTIONS": ":".join(x for x in (os.environ.get("ASAN_OPTIONS", ""),
                                                 "verify_asan_link_order=0") if x)} \
        if op == "archiver-kill" else None
    arch = m.start_archiver(tag, slow) if op != "startup" else None
    wlog = os.path.join(m.logs, "writer-%s.log" % tag)
    writer_p = m.spawn([sys.executable, os.path.abspath(__file__), "writer", "--db",
                        os.path.join(m.root, "data/prod/app.db"), "--log", wlog,
                        "--start", str(start),
                        "--count", "20" if op in ("idle", "archiver-kill") else "0",
                        "--row-bytes", str(ROW_BYTES)],
                       "writer-" + tag)
    expect = {}
    outdir = os.path.join(m.root, "restored")
    if not os.path.isdir(outdir):
        # the user's own directory: made durable by the user
        os.makedirs(outdir)
        fd = os.open(m.root, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    pitr_time = None
    # let some commits happen first, so that every operation has work
    wait_for(lambda: len(m.read_acked(wlog)) >= 5, "the writer's first commits")
    if op == "idle":
        # the writer stops; the archiver's alive time moves past its last
        # commit while nothing is committed: the cut must not move it back
        wait_for(lambda: writer_p.poll() is not None, "the writer to finish")
        last = max(m.read_acked(wlog).values())
        wait_for(lambda: (m.read_alive() or (0, 0))[0] > last * 1e6 + 300000,
                 "the alive time to pass the last commit")
        # the alive file is visible when written, durable a moment later:
        # the value seen is surely synced once the archiver wrote the next
        published = m.read_alive()
        wait_for(lambda: (m.read_alive() or (0, 0))[0] > published[0],
                 "the alive time to move once more")
        # then one more commit that the archiver does not see (it is
        # stopped, as a machine about to lose power may be): after the
        # reboot it finds it in the WAL, an outage from its last alive time
        os.kill(arch.pid, signal.SIGSTOP)
        db = sqlite3.connect(os.path.join(m.root, "data/prod/app.db"), isolation_level=None)
        db.execute("PRAGMA synchronous=FULL")
        k = max(m.read_acked(wlog)) + 1
        db.execute("INSERT INTO t(id, v) VALUES(?, ?)", (k, value(k)))
        with open(wlog, "a") as f:
            f.write("%d %.6f\n" % (k, time.time()))
        db.close()
    if op == "startup":
        # the cut falls while the archiver starts: its continuity decision,
        # the commits it archives from the WAL, a snapshot after a gap
        if m.a.hard_startup and i % 4 == 0:
            # the WAL emptied while no archiver runs: a gap at this start
            db = sqlite3.connect(os.path.join(m.root, "data/prod/app.db"), isolation_level=None,
                                 timeout=30)
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            db.close()
            n = len(m.read_acked(wlog))
            wait_for(lambda: len(m.read_acked(wlog)) >= n + 5, "commits in the emptied WAL")
        alive_before = m.read_alive()
        m.spawn([m.a.sqlenvfs, "archive", "--root", m.root], "archive-" + tag)
    if op in ("pitr", "restore"):
        alive = m.read_alive()
        if alive:
            pitr_time = timestr(alive[0])
    if op in ("prune", "prune-replica"):
        r = m.sq("backup")
        if r.returncode:
            raise Failure("backup before prune: " + r.stderr)
    if op == "prune-replica":
        # prune with a replica: what it removes locally it queues for
        # removal from the replica; a cut must not lose that. Two daily
        # backups at least (a fresh root, --only), so that one goes.
        if len([c for c in copies(m.root) if c[0] == "daily"]) < 2:
            time.sleep(0.01)
            r = m.sq("backup")
            if r.returncode:
                raise Failure("backup before prune: " + r.stderr)
        shipped_keys = replica_setup(m)
        before_prune = (copies(m.root), archive_files(m.root))
    argv = None
    if op in ("backup", "snapshot", "refresh-dev", "prune"):
        argv = [m.a.sqlenvfs, op, "--root", m.root]
    elif op == "prune-replica":
        argv = [m.a.sqlenvfs, "prune", "--root", m.root]
    elif op == "restore":
        out = os.path.join(outdir, "r%d.db" % i)
        argv = [m.a.sqlenvfs, "restore", "--root", m.root, "--time", pitr_time or "latest",
                "--output", out]
        expect["restore_out"] = out
    elif op == "pitr" and pitr_time:
        m.spawn([m.a.sqlenvfs, "mount", m.root, m.mnt2, "-f", "-o", "noarchiver"], "mount-" + tag)
        wait_for(lambda: is_mounted(m.mnt2), "the sqlenvfs mount")
        argv = ["sh", "-c", "cat '%s/pitr/%s/app.db' > /dev/null" % (m.mnt2, pitr_time)]
    acked_before_op = max(m.read_acked(wlog))
    proc = m.spawn(argv, "op-" + tag) if argv else None
    # the moment of the cut: random on purpose (with --hard-startup, a start
    # is cut right after it publishes an alive time, when its promise is
    # newest)
    if op == "startup" and m.a.hard_startup:
        end = time.monotonic() + 5
        while time.monotonic() < end and m.read_alive() == alive_before:
            time.sleep(0.0005)
        time.sleep(rng.choice([0, 0, 0.001, 0.005, 0.02]))
    elif op == "archiver-kill":
        # the archiver dies (kill -9) while it captures, a new one starts
        # and publishes alive times; the power is cut a moment later, well
        # before the kernel wrote back what the dead one left unsynced
        # killed right after it next writes records (its sync then sleeps),
        # or a moment later
        end = time.monotonic() + 20
        while time.monotonic() < end and len(m.read_acked(wlog)) < 20:
            time.sleep(0.0005)
        d = os.path.join(m.root, "backups/prod/wal_archives/app")

        def last_seg():
            f = [n for n in archive_files(m.root) if n.endswith(".seg")][-1]
            return f, os.path.getsize(os.path.join(d, f))
        s0 = last_seg()
        end = time.monotonic() + 0.2
        while time.monotonic() < end and last_seg() == s0:
            time.sleep(0.0005)
        time.sleep(rng.choice([0, 0, 0.002, 0.01, 0.03]))
        os.killpg(arch.pid, signal.SIGKILL)
        arch.wait()
        t_kill = time.time()
        m.start_archiver(tag + "k")
        wait_for(lambda: (m.read_alive() or (0, 0))[0] > t_kill * 1e6 + 50000,
                 "the new archiver's alive time")
        time.sleep(rng.uniform(0.0, 0.3))
    elif op == "seal":
        # right after the archiver began sealing a segment or writing its
        # summary and last versions (a new name in the archive), or a
        # moment later
        d = os.path.join(m.root, "backups/prod/wal_archives/app")
        names0 = set(os.listdir(d))
        end = time.monotonic() + 8
        while time.monotonic() < end and set(os.listdir(d)) <= names0:
            time.sleep(0.0002)
        time.sleep(rng.choice([0, 0, 0, 0.0005, 0.002, 0.01]))
        if m.a.verbose:
            print("# seal: cut after %s appeared" % sorted(set(os.listdir(d)) - names0))
    elif op == "prune-replica":
        # right after the first copy left its name, when the local removal
        # is durable and the replica's may not be yet, or later (up to
        # after prune returned)
        end = time.monotonic() + 5
        while time.monotonic() < end and set(copies(m.root)) >= set(before_prune[0]):
            time.sleep(0.0005)
        time.sleep(rng.choice([0, 0, 0, 0.001, 0.003, 0.01, 0.05, 0.2, 0.5]))
    elif op != "idle":
        time.sleep(rng.uniform(0.0, 0.5 if op == "startup" else 0.9))
    alive = m.read_alive() if op != "idle" else published
    acked = m.read_acked(wlog)
    op_done = proc is not None and proc.poll() == 0
    op_out = open(os.path.join(m.logs, "op-%s.out" % tag)).read() if proc else ""
    cut = "cut" if mode == "all" else "cut %s %d" % (mode, seed)
    m.ctl(cut)
    m.halt()
    m.acked.update(acked)
    stats["cuts"][op] = stats["cuts"].get(op, 0) + 1
    stats["modes"][mode] = stats["modes"].get(mode, 0) + 1

    # ---- reboot and check --------------------------------------------
    m.boot()
    after = m.read_alive()
    if alive and (after is None or after[0] < alive[0]):
        raise Failure("the alive time published before the cut, %s, is %s after it" % (
            timestr(alive[0]), timestr(after[0]) if after else "gone"))
    need = max(m.acked) if m.acked else 0
    n = check_rows(os.path.join(m.root, "data/prod/app.db"), need, "production")
    if op == "prune-replica":
        # before an archiver (whose shipper would take the queue) starts:
        # what the cut left, then what the next prune makes of it
        replica_check(m, shipped_keys, before_prune, "after the cut", True)
        stats["replica_pending"] += 1 if replica_pending(m) else 0
        r = m.sq("prune")
        if r.returncode:
            raise Failure("prune after the cut: " + r.stderr)
        stats["replica_checked"] += replica_check(m, shipped_keys, before_prune,
                                                  "after the next prune", False)
        replica_teardown(m)
    stats["acked_checked"] += len(acked)
    dev = os.path.join(m.root, "data/dev/app.db")
    if os.path.exists(dev):
        db = sqlite3.connect("file:%s?mode=ro" % dev, uri=True)
        try:
            if db.execute("PRAGMA integrity_check").fetchall() != [("ok",)]:
                raise Failure("development fails integrity_check")
            env = db.execute("SELECT * FROM _environment").fetchall()
            if len(env) != 1 or "development" not in env[0]:
                raise Failure("development is marked %r" % (env,))
            dev_max = db.execute("SELECT coalesce(max(id), 0) FROM t").fetchone()[0]
            if op == "refresh-dev" and op_done and dev_max < acked_before_op:
                raise Failure("refresh-dev finished before the cut, but development holds "
                              "rows up to %d only (production had %d)" % (dev_max, acked_before_op))
        finally:
            db.close()
    if op_done and op in ("backup", "snapshot"):
        name = op_out.split()[1] if op_out.startswith(op) else None
        if not name or not os.path.isdir(name.replace(m.root, m.root)):
            raise Failure("%s reported %s before the cut, it is gone after it" % (op, name))
    # the archive as the cut left it is whole: its unsynced tail, whatever
    # the cut made of it, is not damage
    r = m.sq("verify")
    if r.returncode:
        raise Failure("verify right after the cut:\n" + r.stdout + r.stderr)
    # what the archiver had published as durable (its alive time): every
    # commit that returned before it must be in the surviving archive, as it
    # is after the cut, before the archiver runs again and re-reads the WAL
    if alive:
        t_alive = alive[0]
        durable = [k for k, t in m.acked.items() if t * 1e6 < t_alive]
        need_a = max(durable) if durable else 0
        out = os.path.join(m.tmp, "check-%d.db" % i)
        r = m.sq("restore", "--time", "latest", "--output", out)
        if r.returncode and "latest archived state" in r.stderr and "--time" in r.stderr:
            # a cut after a chain's start was recorded, before its snapshot
            # was: `latest` is refused (it lies past every window); the
            # alive time was published in a chain before, and is restorable
            stats["latest_refused"] += 1
            r = m.sq("restore", "--time", timestr(t_alive), "--output", out)
        if r.returncode:
            raise Failure("restore latest after the cut failed: %s" % r.stderr)
        got = check_rows(out, need_a, "the archive after the cut (alive time %s)" % timestr(t_alive))
        if got > n:
            raise Failure("the archive holds row %d, production only %d" % (got, n))
        stats["durable_checked"] += len([k for k in durable if k in acked])
        stats["durable_points"] += 1
        remove_db(out)
    m.start_archiver(tag + "r")
    text = open(os.path.join(m.logs, "archive-%sr.err" % tag)).read()
    if "a new chain" in text:
        stats["gaps"] += 1
    # the archiver's start removed the temporaries the cut left (an index
    # or a summary being written), and every sealed segment has a summary
    d = os.path.join(m.root, "backups/prod/wal_archives/app")
    left = sorted(n for n in os.listdir(d) if n.startswith(".tmp-"))
    if left:
        raise Failure("temporaries left in the archive after the archiver started: %s" % left)
    segs = [f for f in archive_files(m.root) if f.endswith(".seg")]
    for f in segs[:-1]:
        if not os.path.exists(os.path.join(d, f[:16] + ".sum")):
            raise Failure("sealed segment %s has no summary after the archiver started" % f)
    stats["segments_max"] = max(stats["segments_max"], len(segs))
    r = m.sq("verify")
    if r.returncode:
        raise Failure("verify after the cut:\n" + r.stdout + r.stderr)
    for kind, name in copies(m.root):
        if (kind, name) in m.checked:
            continue    # whole after an earlier cut: a copy never changes
        p = os.path.join(m.root, "backups/prod", kind, name, "app.db")
        check_rows(p, 0, "%s/%s" % (kind, name))
        m.checked.add((kind, name))
        stats["copies_checked"] += 1
    if alive:
        # the recoverable window never moves back past the alive time, and
        # a restore at the alive time works when a window holds it (one
        # published while a chain starts precedes its first base); in the
        # idle cycle (no chain starts) it must
        r = m.sq("list", "--json")
        if r.returncode:
            raise Failure("list after the cut: " + r.stderr)
        wins = [(iso_us(w["from"]), iso_us(w["to"])) for w in json.loads(r.stdout)["windows"]
                if w["database"] == "app"]
        if not wins or max(b for _, b in wins) < t_alive:
            raise Failure("the recoverable window ends before the alive time %s: %r" % (
                timestr(t_alive), wins))
        inside = any(a <= t_alive <= b for a, b in wins)
    if alive and (inside or op == "idle"):
        out = os.path.join(m.tmp, "check-%d.db" % i)
        r = m.sq("restore", "--time", timestr(t_alive), "--output", out)
        if r.returncode:
            raise Failure("restore at the alive time %s failed: %s" % (timestr(t_alive), r.stderr))
        check_rows(out, 0, "restore at the alive time %s" % timestr(t_alive))
        remove_db(out)
    if op == "restore":
        out = expect["restore_out"]
        if os.path.exists(out):
            check_rows(out, 0, "restore output %s" % out)
        elif op_done:
            raise Failure("restore to %s finished before the cut; the file is gone" % out)
    if op == "pitr" and pitr_time:
        ref = os.path.join(m.tmp, "ref-%d.db" % i)
        r = m.sq("restore", "--time", pitr_time, "--output", ref)
        if r.returncode:
            raise Failure("restore at %s: %s" % (pitr_time, r.stderr))
        m.spawn([m.a.sqlenvfs, "mount", m.root, m.mnt2, "-f", "-o", "noarchiver"], "mount-%sr" % tag)
        wait_for(lambda: is_mounted(m.mnt2), "the sqlenvfs mount after the reboot")
        served = os.path.join(m.mnt2, "pitr", pitr_time, "app.db")
        got = os.path.join(m.tmp, "served-%d.db" % i)
        subprocess.run(["cp", served, got], check=True)
        a, b = sha(got), sha(ref)
        if a != b:
            raise Failure("pitr %s after the reboot differs from restore" % pitr_time)
        remove_db(got)
        remove_db(ref)
    # stop cleanly between cycles: the next one cuts again
    m.ctl("cut")
    m.halt()
    stats["passed"] += 1


def run(a):
    stats = {"cuts": {}, "modes": {}, "acked_checked": 0, "durable_checked": 0,
             "durable_points": 0, "latest_refused": 0, "copies_checked": 0, "gaps": 0,
             "replica_checked": 0, "replica_pending": 0, "segments_max": 0, "passed": 0,
             "init_states": {}, "init_next": {}}
    a.sqlenvfs = os.path.abspath(a.sqlenvfs)
    a.crashfs = os.path.abspath(a.crashfs)
    m = Machine(a)
    t0 = time.monotonic()
    try:
        try:
            m.boot()
            m.init()
            m.ctl("cut")   # init returned: what it made must survive whole
            m.halt()
            m.boot()
            check_rows(os.path.join(m.root, "data/prod/app.db"), 0, "production after init")
            check_rows(os.path.join(m.root, "data/dev/app.db"), 0, "development after init")
            m.ctl("cut")
            m.halt()
        except Failure as e:
            print("FAIL init: %s" % e, file=sys.stderr)
            return 1
        if a.only is not None:
            plan = [(a.only, a.only, a.op or OPS[a.only % len(OPS)])]
        else:
            # the cycles of OPS, then --extra-cuts rounds of one cycle of
            # each of EXTRA_OPS (or of --op), each operation with seeds of
            # its own: a seed gives every cycle the operation and the cut it
            # gave it before an operation was added to EXTRA_OPS
            plan = [(i, a.seed * 100003 + i, a.op or OPS[i % len(OPS)]) for i in range(a.cuts)]
            extra = [op for op in EXTRA_OPS if a.op in (None, op)]
            for j in range(a.extra_cuts):
                for op in extra:
                    k = EXTRA_OPS.index(op)
                    plan.append((len(plan), a.seed * 100003 + 1000000 * (k + 1) + j, op))
        for i, (idx, seed, op) in enumerate(plan):
            try:
                cycle(m, idx, seed, stats, op)
            except Failure as e:
                print("FAIL cycle %d (op %s, seed %d): %s" % (i, op, seed, e), file=sys.stderr)
                print("  logs in %s" % m.logs, file=sys.stderr)
                m.diagnose(idx)
                m.shutdown()
                return 1
            if a.verbose:
                print("# cycle %d ok (%.0f s)" % (i, time.monotonic() - t0), flush=True)
    finally:
        m.shutdown()
    stats["seconds"] = round(time.monotonic() - t0, 1)
    for op in OPS + EXTRA_OPS:
        if op in OPS or op in stats["cuts"]:
            print("# cuts during %-13s %d" % (op, stats["cuts"].get(op, 0)))
    if "prune-replica" in stats["cuts"]:
        print("# pruned copies and segments checked queued for the replica: %d (a prune's "
              "pending removals queued by the next: %d)" % (stats["replica_checked"],
                                                            stats["replica_pending"]))
    if "init-force" in stats["cuts"]:
        for k in sorted(stats["init_states"]):
            print("# init --force cut, leaving %s: %d" % (k, stats["init_states"][k]))
        print("# then: %s" % ", ".join("%s %d" % kv for kv in sorted(stats["init_next"].items())))
    print("# acknowledged commits checked in production: %d" % stats["acked_checked"])
    print("# commits published durable (before the alive time) checked in the archive: %d (at %d cuts)" % (
        stats["durable_checked"], stats["durable_points"]))
    print("# restores to latest refused (a chain started, its snapshot cut): %d" % (
        stats["latest_refused"]))
    print("# backups and snapshots checked whole (each once): %d; gaps recorded: %d" % (
        stats["copies_checked"], stats["gaps"]))
    print(json.dumps(stats))
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--sqlenvfs", required=True)
    r.add_argument("--crashfs", required=True)
    r.add_argument("--tmp", required=True)
    r.add_argument("--cuts", type=int, default=30)
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--only", type=int, help="replay one cycle with this seed")
    r.add_argument("--op", choices=OPS + EXTRA_OPS,
                   help="the operation of every cycle (with --only: of that cycle)")
    r.add_argument("--segment-records", type=int, default=0,
                   help="[archive] segment-max-records of the root (0: the default): "
                        "small segments, sealed every few hundred commits")
    r.add_argument("--extra-cuts", type=int, default=0,
                   help="after the --cuts cycles, this many more during each of the "
                        "operations run only when asked for (%s)" % ", ".join(EXTRA_OPS))
    r.add_argument("--verbose", action="store_true")
    r.add_argument("--hard-startup", action="store_true",
                   help="cut a start right after it publishes an alive time, empty the WAL "
                        "before every fourth, and use rows large enough that segments roll "
                        "during starts")
    w = sub.add_parser("writer")
    w.add_argument("--db", required=True)
    w.add_argument("--log", required=True)
    w.add_argument("--start", type=int, required=True)
    w.add_argument("--count", type=int, default=0, help="stop after this many commits")
    w.add_argument("--row-bytes", type=int, default=0)
    a = ap.parse_args()
    global ROW_BYTES
    if a.cmd == "run" and a.hard_startup:
        ROW_BYTES = 1800
    if a.cmd == "writer":
        ROW_BYTES = a.row_bytes
        writer(a)
        return 0
    return run(a)


if __name__ == "__main__":
    sys.exit(main())
