#!/usr/bin/env bash
# The mount as a user meets it: the tree, read-only data (EROFS), the status
# document, ctl files that refuse what they cannot parse, the sqlite3 CLI
# and Python reading images in place, options from mount(8), one mount per
# root, and a clean unmount that leaves the root ready for the next mount.
source "$SRCDIR/tests/integration/lib.sh"
umask 022
chmod 755 "$T" # the mount shows what the root's directories let through: let all through

R=$T/root M=$T/mnt
make_root "$R" "$SRCDIR/schema.sql" --demo --demo-events 5000

# --- bad mounts: one clear line, nothing mounted, nothing locked
mkdir -p "$M"
expect_fail "mount point does not exist \(create it with mkdir\)" "$SQLENVFS" mount "$R" "$T/missing"
expect_fail "open root [^ ]*nowhere \(from the mount's ROOT argument\): no such directory" "$SQLENVFS" mount "$T/nowhere" "$M"
expect_fail "open root [^ ]*nowhere \(from --root\): no such directory" "$SQLENVFS" mount --root "$T/nowhere" "$M"
expect_fail "unknown option.*bogus" "$SQLENVFS" mount "$R" "$M" -o bogus
mountpoint -q "$M" && fail "a refused mount left something mounted"
pass "bad mounts are refused with one line"

# --- a root that another process archives: the mount is refused, saying how
# to serve it; the refused mount leaves the root unlocked (the mount below
# takes it once the archiver has stopped)
"$SQLENVFS" archive --root "$R" > "$T/arch.out" 2> "$T/arch.err" &
ARCH=$!
track_pid "$ARCH"
for _ in $(seq 100); do
  grep -q 'archiver app: capturing' "$T/arch.err" && break
  kill -0 "$ARCH" 2>/dev/null || fail "the archiver exited: $(cat "$T/arch.err")"
  sleep 0.1
done
grep -q 'archiver app: capturing' "$T/arch.err" || fail "the archiver did not start: $(cat "$T/arch.err")"
expect_fail "already held by process $ARCH.*mount with -o noarchiver" "$SQLENVFS" mount "$R" "$M"
mountpoint -q "$M" && fail "a mount refused for the archiver left something mounted"
kill -TERM "$ARCH"
wait "$ARCH" || fail "the archiver did not stop cleanly: $(cat "$T/arch.err")"
pass "a root another process archives is refused, naming -o noarchiver"

mount_root "$R" "$M"

# --- the tree
assert_eq "$(ls "$M" | tr '\n' ' ')" "backups ctl dev diff metrics pitr prod snapshots status " "top level"
assert_eq "$(ls "$M/ctl" | tr '\n' ' ')" "backup checkpoint prune refresh-dev snapshot verify " "ctl files"
assert_eq "$(ls "$M/prod")" "app.db" "prod/"
assert_eq "$(ls "$M/dev")" "app.db" "dev/"
[ "$(stat -c %s "$M/prod/app.db")" -eq "$(( $(sqlite3 "$R/data/prod/app.db" 'PRAGMA page_count') * 4096 ))" ] \
  || fail "prod/app.db size $(stat -c %s "$M/prod/app.db") is not the database's"
assert_eq "$(stat -c %A "$M/prod/app.db")" "-r--r--r--" "mode of prod/app.db"
# metrics: the Prometheus text format, one sample per database, its size
# the length a read gives.
metrics=$(cat "$M/metrics")
grep -q '^# TYPE sqlenvfs_archive_bytes gauge$' <<<"$metrics" || fail "metrics: $metrics"
grep -Eq '^sqlenvfs_archive_bytes\{db="app"\} [0-9]+$' <<<"$metrics" || fail "metrics: $metrics"
grep -q 'sqlenvfs_replica_' <<<"$metrics" && fail "replica metrics without a replica: $metrics"
pass "the tree lists environments, copies, pitr, ctl, metrics and status"

# metrics has its real size too while commits change it: a stat and the
# open after it show one document (tar and rsync copy st_size bytes).
python3 - "$M/metrics" "$R/data/prod/app.db" <<'PY' || fail "metrics: stat's size and the length read differ"
import os, sqlite3, sys, threading
stop = False
def writer():
    c = sqlite3.connect(sys.argv[2], isolation_level=None)
    c.execute("CREATE TABLE IF NOT EXISTS metrics_churn(x)")
    while not stop:
        c.execute("INSERT INTO metrics_churn VALUES (randomblob(3000))")
t = threading.Thread(target=writer)
t.start()
bad = 0
try:
    for _ in range(200):
        size = os.stat(sys.argv[1]).st_size
        bad += size != len(open(sys.argv[1], "rb").read())
finally:
    stop = True
    t.join()
print("metrics: %d of 200 reads differed from stat's size" % bad)
sys.exit(1 if bad else 0)
PY
pass "metrics: stat's size is the length an open right after reads, while commits change it"

# --- a second mount of the same root is refused, naming the holder
pid=$(tr -d '\n' < "$R/.sqlenvfs/mount.lock")
kill -0 "$pid" || fail "the lock file names pid $pid, which is not running"
mkdir -p "$T/mnt2"
expect_fail "already held by process $pid" "$SQLENVFS" mount "$R" "$T/mnt2"
mountpoint -q "$T/mnt2" && fail "the second mount was made"
pass "a second mount of the root is refused"

# --- data files are read-only: every kind of write fails with EROFS
erofs() { # description, command...
  local d=$1 err; shift
  err=$("$@" 2>&1) && fail "$d succeeded"
  grep -q "Read-only file system" <<<"$err" || fail "$d: expected EROFS, got: $err"
}
erofs "writing prod/app.db" bash -c "echo x > '$M/prod/app.db'"
erofs "appending to dev/app.db" bash -c "echo x >> '$M/dev/app.db'"
erofs "opening prod/app.db read-write" python3 -c "open('$M/prod/app.db', 'r+b')"
erofs "creating a file" touch "$M/prod/new.db"
erofs "copying into dev/" cp /etc/hostname "$M/dev/"
erofs "removing prod/app.db" rm -f "$M/prod/app.db"
erofs "renaming prod/app.db" mv "$M/prod/app.db" "$M/prod/b.db"
erofs "making a directory" mkdir "$M/snapshots/x"
erofs "truncating status" truncate -s 0 "$M/status"
erofs "chmod of prod/app.db" chmod 666 "$M/prod/app.db"
assert_eq "$(sqlite3 "$R/data/prod/app.db" 'PRAGMA integrity_check')" "ok" "production after the writes"
pass "every write to a data file fails with EROFS"

# --- images open in place: the sqlite3 CLI and Python's sqlite3 with mode=ro
assert_eq "$(sqlite3 "$M/prod/app.db" 'SELECT count(*) FROM raw_vessel_events')" "5000" "sqlite3 on prod/"
assert_eq "$(sqlite3 "$M/dev/app.db" 'SELECT name FROM _environment')" "development" "sqlite3 on dev/"
assert_eq "$(sqlite3 "$M/prod/app.db" 'PRAGMA integrity_check')" "ok" "integrity of prod/ in place"
assert_eq "$(python3 -c "
import sqlite3
c = sqlite3.connect('file:$M/prod/app.db?mode=ro', uri=True)
print(c.execute('SELECT count(*) FROM raw_vessel_events').fetchone()[0])")" "5000" "Python on prod/"
[ ! -e "$M/prod/app.db-wal" ] && [ ! -e "$M/prod/app.db-journal" ] || fail "side files appeared"
cp "$M/prod/app.db" "$T/copy.db"
assert_eq "$(od -A n -t u1 -j 18 -N 2 "$T/copy.db" | tr -s ' ')" " 1 1" "header bytes 18-19 (rollback journal)"
assert_eq "$(sqlite3 "$T/copy.db" .dump | sha256sum)" "$(sqlite3 "$R/data/prod/app.db" .dump | sha256sum)" \
  "dump of a copy of prod/app.db"
pass "prod/ and dev/ images open in place and copy whole"

# --- status is valid JSON with the fields README.md ("The mount") lists
python3 -m json.tool "$M/status" > /dev/null || fail "status is not valid JSON: $(cat "$M/status")"
python3 - "$M/status" <<'PY' || fail "status fields"
import json, sys
s = json.load(open(sys.argv[1]))
db = {d["name"]: d for d in s["databases"]}["app"]
p = db["production"]
assert p["environment"] == "production", p
assert p["journal_mode"] == "wal", p
assert p["size"] > 0, p
assert db["development"]["environment"] == "development", db
assert db["archiver"]["state"] in ("starting", "capturing"), db["archiver"]
assert "lag_ms" in db["archiver"] or db["archiver"]["state"] == "starting", db["archiver"]
rec = db["recoverable"]
assert "earliest" in rec and "latest" in rec and isinstance(rec["windows"], list), rec
assert rec["unrecoverable"] is None, rec
ops = s["operations"]
assert sorted(ops) == sorted(["backup", "snapshot", "refresh-dev", "verify", "prune", "checkpoint"]), ops
assert all(o["last"] is None and o["running"] is False for o in ops.values()), ops
PY
pass "status is JSON with environments, sizes, journal modes, archiver, window and operations"

# --- status has its real size: tools that copy st_size bytes get the document
[ "$(stat -c %s "$M/status")" -gt 100 ] || fail "status has size $(stat -c %s "$M/status") in stat"
mkdir -p "$T/untar"
for i in $(seq 1 10); do
  tar -C "$M" -cf "$T/status.tar" status 2> "$T/tar.err" || fail "tar of status failed: $(cat "$T/tar.err")"
  [ ! -s "$T/tar.err" ] || fail "tar of status warned: $(cat "$T/tar.err")"
  tar -C "$T/untar" -xf "$T/status.tar"
  python3 -m json.tool "$T/untar/status" > /dev/null || fail "status from tar is not JSON: $(head -c 300 "$T/untar/status")"
done
if command -v rsync > /dev/null; then
  rsync -a "$M/status" "$T/status.rsync"
  python3 -m json.tool "$T/status.rsync" > /dev/null || fail "status from rsync -a is not JSON"
fi
# stat, open, read, fstat: one document, whose length is the size shown,
# also when the stat came at the end of the document's life (tar compares
# its stat with an fstat after reading).
python3 - "$M/status" <<'PY' || fail "the size and mtime of status in stat, in fstat and the length read differ"
import os, sys, time
p = sys.argv[1]
for attempt in range(5):
    t0 = time.monotonic()
    st1 = os.stat(p)
    while time.monotonic() - t0 < 0.95:
        time.sleep(0.05)
        st1 = os.stat(p)
    if time.monotonic() - t0 > 1.2:
        continue  # too slow to keep one document alive: try again
    time.sleep(0.1)  # the open comes after the document's second has passed
    fd = os.open(p, os.O_RDONLY)
    st2 = os.fstat(fd)
    data = b""
    while True:
        b = os.read(fd, 65536)
        if not b:
            break
        data += b
    st3 = os.fstat(fd)
    os.close(fd)
    assert (st1.st_size, st1.st_mtime_ns) == (st2.st_size, st2.st_mtime_ns) == \
        (st3.st_size, st3.st_mtime_ns) == (len(data), st3.st_mtime_ns), (st1, st2, st3, len(data))
PY
pass "status shows its size in stat; tar (and rsync -a) copy the whole document"

# --- ctl files: content that cannot be parsed is EINVAL; nothing runs
err=$(bash -c "echo 'app 1 2' > '$M/ctl/backup'" 2>&1) && fail "an unparsable ctl write succeeded"
grep -q "Invalid argument" <<<"$err" || fail "unparsable ctl write: $err"
err=$(bash -c "echo 'no/such' > '$M/ctl/prune'" 2>&1) && fail "an unparsable prune succeeded"
grep -q "Invalid argument" <<<"$err" || fail "unparsable prune: $err"
err=$(bash -c "echo nosuch > '$M/ctl/snapshot'" 2>&1) && fail "a ctl write naming no database succeeded"
grep -q "Invalid argument" <<<"$err" || fail "ctl write naming no database: $err"
# Nothing ran, but reading the file shows the refused write, when and why.
grep -Eq "^never run since the mount started .*; last write refused [0-9-]{10}T[0-9:]{8}Z \(EINVAL\): .*app 1 2" "$M/ctl/backup" \
  || fail "ctl/backup after a refused write: $(cat "$M/ctl/backup")"
grep -Eq "; last write refused .* \(EINVAL\): .*nosuch.*no production database has that name \(the one there is: app\)" "$M/ctl/snapshot" \
  || fail "ctl/snapshot after a refused write: $(cat "$M/ctl/snapshot")"
grep -q "never run since the mount started (write 1 to run verify)$" "$M/ctl/verify" \
  || fail "ctl/verify, never written: $(cat "$M/ctl/verify")"
[ "$(wc -l < "$M/ctl/backup")" -eq 1 ] || fail "ctl/backup is not one line"
python3 - "$M/status" <<'PY' || fail "status after refused writes: $(cat "$M/status")"
import json, sys
ops = json.load(open(sys.argv[1]))["operations"]
r = ops["prune"]["refused"]
assert ops["prune"]["last"] is None and r["errno"] == "EINVAL" and "no/such" in r["reason"], ops["prune"]
assert r["at"].endswith("Z"), r
assert ops["verify"]["refused"] is None, ops["verify"]
PY
grep -q 'ctl/snapshot: cannot parse "nosuch": no production database has that name (the one there is: app); write 1' "$R/.sqlenvfs/mount.log" \
  || fail "the log does not say why: $(cat "$R/.sqlenvfs/mount.log")"
# A large write is refused quoting only its start and its length.
python3 - "$M/ctl/backup" <<'PY' || fail "a 1 MiB write to ctl/backup was not refused with EINVAL"
import errno, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
try:
    os.write(fd, b"b" * (1 << 20) + b"\n")
    sys.exit(1)
except OSError as e:
    sys.exit(0 if e.errno == errno.EINVAL else 1)
PY
grep -q "cannot parse \"b\{80\}\"\.\.\. ([0-9]* bytes): write" "$M/ctl/backup" \
  || fail "ctl/backup after a 1 MiB write: $(head -c 300 "$M/ctl/backup")"
[ "$(wc -c < "$M/ctl/backup")" -lt 2000 ] || fail "ctl/backup echoes the 1 MiB write"
[ "$(wc -c < "$R/.sqlenvfs/mount.log")" -lt 500000 ] || fail "the log echoes the 1 MiB write"
pass "ctl writes that name nothing fail with EINVAL, say why in the log, and show in ctl/<op> and status"

# --- unmount, and the next mount starts clean
unmount_root "$M"
for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "the daemon $pid is still running after the unmount"
grep -q "unmounted $R from $M" "$R/.sqlenvfs/mount.log" || fail "no unmount line in the log"
mount_root "$R" "$M"
assert_eq "$(sqlite3 "$M/prod/app.db" 'SELECT count(*) FROM raw_vessel_events')" "5000" "after a remount"
unmount_root "$M"
pass "unmount ends the daemon and frees the root for the next mount"

# --- as mount(8) runs it (mount.fuse3 -> `sqlenvfs ROOT MNT -o OPTS`), with
# --- the options /etc/fstab passes
if [ "$(id -u)" -eq 0 ] && command -v mount.fuse3 > /dev/null; then
  mount -t fuse "$SQLENVFS#$R" "$M" -o noatime,nodev,nosuid,noauto,_netdev,nofail,x-systemd.automount
  _mounts+=("$M")
  wait_mounted "$M"
  mount | grep -q "^$R on $M type fuse.sqlenvfs" || fail "mount(8) form: $(mount | grep "$M")"
  assert_eq "$(ls "$M/prod")" "app.db" "prod/ through mount(8)"
  umount "$M"
  pass "mount -t fuse with fstab options works"
else
  note "skipped mount(8): needs root and mount.fuse3"
fi

# --- the foreground form: -f stays, logs to stderr, ends on SIGTERM
"$SQLENVFS" mount "$R" "$M" -f 2> "$T/fg.log" &
fg=$!
track_pid "$fg"
wait_mounted "$M"
_mounts+=("$M")
kill -TERM "$fg"
wait "$fg" || fail "the foreground daemon exited non-zero on SIGTERM"
mountpoint -q "$M" && fail "SIGTERM left the mount"
grep -q "mounted $R on $M" "$T/fg.log" || fail "foreground log: $(cat "$T/fg.log")"
pass "-f stays in the foreground and SIGTERM unmounts"
