#!/usr/bin/env bash
# pitr files read on demand never take the cache's filesystem below [cache]
# min-free-bytes, the room production needs to keep committing: the files
# being filled are sparse, so the free space does not show what they will
# still write. States opened together count what the others still need (the
# one that does not fit is refused at open, ENOSPC), and a read stops with
# ENOSPC rather than fill pages once production (here: another file) has
# taken the room meanwhile. After either, the state reads whole and right;
# and once its cached file is removed from .cache, it is read again (one
# being filled: its reader reads on, with no error).
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root M=$T/mnt
make_root "$R" "$SRCDIR/schema.sql"
P=$R/data/prod/app.db
# About 8 MB: 2000 rows of 4000 bytes.
sqlite3 "$P" "CREATE TABLE t (id INTEGER PRIMARY KEY, gen INTEGER NOT NULL, v BLOB NOT NULL);
  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
  INSERT INTO t SELECT i, 0, randomblob(4000) FROM n;" > /dev/null
size=$(stat -c %s "$P")
mb=$((1024 * 1024))
[ "$size" -gt $((7 * mb)) ] && [ "$size" -lt $((9 * mb)) ] || fail "the database has $size bytes"
# The cache on a filesystem of its own: room for two states and the
# minimum, not three.
cat > "$R/sqlenvfs.conf" <<CONF
[cache]
min-free-bytes=$((8 * mb))
CONF
mkdir -p "$R/.cache"
mount -t tmpfs -o size=28m,mode=0700 sqlenvfs-test "$R/.cache" \
  || fail "cannot mount a tmpfs (the tests run as root)"
mount_root "$R" "$M"
_mounts+=("$R/.cache") # unmounted after the mount
wait_archiving "$M"

# Four states, one generation of updates apart: each time taken once the
# archiver has captured its generation, which rewrites every row, so that
# each state differs from the base in nearly every page (a state's cache
# file holds the pages that differ from its base). (The fourth is read only
# at the end, so that nothing of it is cached.)
commits() { # COMMIT records in the archive's index files
  python3 - "$R/backups/prod/wal_archives/app" <<'PY'
import glob, os, struct, sys
n = 0
for idx in glob.glob(os.path.join(sys.argv[1], "*.idx")):
    data = open(idx, "rb").read()
    n += sum(1 for off in range(32, len(data) - 111, 112)
             if struct.unpack_from("<IH", data, off)[1] == 1)
print(n)
PY
}
times=()
for g in 1 2 3 4; do
  c0=$(commits)
  sqlite3 "$P" "PRAGMA busy_timeout=10000; UPDATE t SET gen = $g, v = randomblob(4000);" > /dev/null
  for i in $(seq 1 100); do [ "$(commits)" -gt "$c0" ] && break; sleep 0.1; done
  [ "$(commits)" -gt "$c0" ] || fail "generation $g was not captured within 10 s"
  t=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
  for i in $(seq 1 100); do
    ls "$M/pitr/$t/" 2>/dev/null | grep -q '^app.db$' && break
    sleep 0.1
  done
  ls "$M/pitr/$t/" | grep -q '^app.db$' || fail "pitr/$t/app.db did not appear within 10 s"
  times+=("$t")
done

free_now() { df -B1 --output=avail "$R/.cache" | tail -1 | tr -d ' '; }

# --- opened together: the third does not fit beside what the first two will write
python3 - "$M" "$R/.cache" $((8 * mb)) "${times[@]}" <<'PY' || fail "three states opened together"
import errno, os, sys
m, cache, min_free, times = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
def free():
    st = os.statvfs(cache)
    return st.f_bavail * st.f_frsize
fds = [os.open(f"{m}/pitr/{t}/app.db", os.O_RDONLY) for t in times[:2]]
try:
    os.open(f"{m}/pitr/{times[2]}/app.db", os.O_RDONLY)
except OSError as e:
    assert e.errno == errno.ENOSPC, e
else:
    sys.exit("a third state was opened, though the first two will fill the room")
for fd in fds:
    off = 0
    while True:
        b = os.pread(fd, 1 << 20, off)
        if not b:
            break
        off += len(b)
    assert free() >= min_free, f"{free()} bytes free after filling a state, below the minimum"
    os.close(fd)
PY
pass "states opened together count what the others will still write; the one that does not fit is ENOSPC"

# --- production takes the room while a state is being filled: the read stops
python3 - "$M" "$R/.cache" $((8 * mb)) "${times[2]}" <<'PY' || fail "a state filled while the room went"
import errno, os, sys
m, cache, min_free, t = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def free():
    st = os.statvfs(cache)
    return st.f_bavail * st.f_frsize
fd = os.open(f"{m}/pitr/{t}/app.db", os.O_RDONLY)
assert len(os.pread(fd, 4096, 0)) == 4096
# What production would write: all but 4 MB above the minimum.
with open(os.path.join(cache, "filler"), "wb") as f:
    f.write(b"\0" * (free() - min_free - 4 * 1024 * 1024))
off, err = 0, None
try:
    while True:
        b = os.pread(fd, 1 << 20, off)
        if not b:
            break
        off += len(b)
except OSError as e:
    err = e
assert err is not None and err.errno == errno.ENOSPC, (off, err)
assert free() >= min_free, f"{free()} bytes free, below the minimum"
os.unlink(os.path.join(cache, "filler"))
# With room again the same open reads on, from where it stopped.
while True:
    b = os.pread(fd, 1 << 20, off)
    if not b:
        break
    off += len(b)
os.close(fd)
PY
pass "a read that would go below min-free-bytes is ENOSPC, and reads on once there is room"

"$SQLENVFS" restore --root "$R" --time "${times[2]}" --output "$T/restored.db" > /dev/null 2>&1 \
  || fail "sqlenvfs restore --time ${times[2]} failed"
cmp -s <(tail -c +21 "$M/pitr/${times[2]}/app.db") <(tail -c +21 "$T/restored.db") \
  || fail "pitr/<T>/app.db differs from the restore after the disk was full"
assert_eq "$(sqlite3 "file:$M/pitr/${times[2]}/app.db?mode=ro" 'PRAGMA integrity_check')" "ok" \
  "integrity of pitr/<T>/app.db"
pass "after either, the state read whole is the restore's"

# --- the cache is disposable: files an operator removes are read again
ls "$R/.cache" | grep -q '^app@[0-9]*\.db$' || fail "no cached state in .cache: $(ls -A "$R/.cache")"
rm -f "$R/.cache"/app@*.db
cmp -s <(tail -c +21 "$M/pitr/${times[2]}/app.db") <(tail -c +21 "$T/restored.db") \
  || fail "pitr/<T>/app.db after its cached file was removed from .cache"
grep -q 'was removed from .*; the state is read from its sources again' "$R/.sqlenvfs/mount.log" \
  || fail "the log does not say the cached file went: $(tail -3 "$R/.sqlenvfs/mount.log")"
pass "a cached file removed from .cache is read again from the sources"

# ... and so are those being filled: the reader reads on, the next opener afresh.
python3 - "$M/pitr/${times[3]}/app.db" "$R/.cache" <<'PY' \
  || fail "a file being filled removed from .cache"
import glob, os, sys
path, cache = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDONLY)
assert len(os.pread(fd, 4096, 0)) == 4096
tmps = glob.glob(os.path.join(cache, ".tmp-app@*"))
assert tmps, os.listdir(cache)
for t in tmps:  # this state's, and those kept for the next opener
    os.unlink(t)
data, off = bytearray(), 0
while True:
    b = os.pread(fd, 1 << 20, off)
    if not b:
        break
    data += b
    off += len(b)
os.close(fd)
with open(path, "rb") as f:
    again = f.read()
assert bytes(data) == again, "the next opener got other bytes"
PY
"$SQLENVFS" restore --root "$R" --time "${times[3]}" --output "$T/restored3.db" > /dev/null 2>&1 \
  || fail "sqlenvfs restore --time ${times[3]} failed"
cmp -s <(tail -c +21 "$M/pitr/${times[3]}/app.db") <(tail -c +21 "$T/restored3.db") \
  || fail "pitr/<T3>/app.db after its file being filled was removed"
grep -q 'rename into place' "$R/.sqlenvfs/mount.log" \
  && fail "a read failed as its file was completed: $(grep 'rename into place' "$R/.sqlenvfs/mount.log")"
grep -q 'was removed from .* while it was filled' "$R/.sqlenvfs/mount.log" \
  || fail "the log does not say the file being filled went: $(tail -3 "$R/.sqlenvfs/mount.log")"
pass "a file being filled removed from .cache: its reader reads on, the next opener afresh"

unmount_root "$M"
