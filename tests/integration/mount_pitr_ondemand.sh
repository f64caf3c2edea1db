#!/usr/bin/env bash
# pitr/<T>/<db>.db is read on demand: a point query with sqlite3 on a
# database of tens of MB with archived history reads a small fraction of it
# from the base and the archive (the daemon's own counter in status, and
# what /proc says the daemon read), and gives the row as it was at T; the
# whole file read through the mount is byte for byte `sqlenvfs restore
# --time T` (the header's version bytes aside, which the mount serves as a
# rollback-journal database's so that SQLite opens it read-only).
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root M=$T/mnt
make_root "$R" "$SRCDIR/schema.sql"
P=$R/data/prod/app.db
# About 24 MB: 6000 rows of 4000 bytes, each row on its own pages.
sqlite3 "$P" "PRAGMA journal_mode=WAL;
  CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, gen INTEGER NOT NULL, v BLOB NOT NULL);
  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6000)
  INSERT INTO t SELECT i, 0, randomblob(4000) FROM n;" > /dev/null
size=$(stat -c %s "$P")
[ "$size" -gt $((20 * 1024 * 1024)) ] || fail "the database is only $size bytes"

mount_root "$R" "$M"
wait_archiving "$M"
daemon=$(pgrep -f "sqlenvfs mount .*$M" | head -1)
[ -n "$daemon" ] || fail "no daemon for $M"

status() { python3 -c "import json,sys; s=json.load(open('$M/status')); print(eval(sys.argv[1]))" "$1"; }
rchar() { awk '$1 == "rchar:" {print $2}' "/proc/$daemon/io"; }

# History: generations of updates to rows, one transaction each; T between
# generations 1 and 2.
update_gen() {
  sqlite3 "$P" "PRAGMA busy_timeout=10000;
    UPDATE t SET gen = $1, v = randomblob(4000) WHERE id % 50 = $1 % 50 OR id = 1234;" > /dev/null
}
commits() { status "[d for d in s['databases'] if d['name'] == 'app'][0]['archiver']['commits']"; }
c0=$(commits)
update_gen 1
# T once the archiver has captured generation 1.
for i in $(seq 1 100); do [ "$(commits)" -gt "$c0" ] && break; sleep 0.1; done
[ "$(commits)" -gt "$c0" ] || fail "generation 1 was not captured within 10 s"
when=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
c1=$(commits)
update_gen 2
# T2 once generation 2 is captured.
for i in $(seq 1 100); do [ "$(commits)" -gt "$c1" ] && break; sleep 0.1; done
[ "$(commits)" -gt "$c1" ] || fail "generation 2 was not captured within 10 s"
when2=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
update_gen 3
# Wait until the window reaches past T.
for i in $(seq 1 100); do
  ls "$M/pitr/$when/" 2>/dev/null | grep -q '^app.db$' && break
  sleep 0.1
done
assert_eq "$(ls "$M/pitr/$when/")" "app.db" "ls pitr/<T>/"

"$SQLENVFS" restore --root "$R" --time "$when" --output "$T/restored.db" > /dev/null 2>&1 \
  || fail "sqlenvfs restore --time $when failed"
want=$(sqlite3 "$T/restored.db" "SELECT gen, hex(substr(v, 1, 16)) FROM t WHERE id = 1234")
assert_eq "${want%%|*}" "1" "row 1234 at T in the restored file"

# --- a point query reads a handful of pages
before_src=$(status "s['pitr_cache']['bytes_read_from_sources']")
before_rchar=$(rchar)
got=$(sqlite3 "file:$M/pitr/$when/app.db?mode=ro" "SELECT gen, hex(substr(v, 1, 16)) FROM t WHERE id = 1234")
after_rchar=$(rchar)
# The status document is shared by reads less than 250 ms apart, for up to
# a second: read it until it is one rendered after the query.
for i in $(seq 1 20); do
  sleep 0.3
  after_src=$(status "s['pitr_cache']['bytes_read_from_sources']")
  [ "$after_src" != "$before_src" ] && break
done
assert_eq "$got" "$want" "row 1234 through pitr/<T>/app.db"
src=$((after_src - before_src))
rd=$((after_rchar - before_rchar))
note "point query: $src bytes of pages from sources, the daemon read $rd bytes; the database has $size"
[ "$src" -gt 0 ] || fail "the point query read nothing from the sources (counter $before_src -> $after_src)"
[ "$src" -le $((size / 50)) ] || fail "the point query read $src bytes of pages, more than 2% of $size"
[ "$rd" -le $((size / 10)) ] || fail "the daemon read $rd bytes for a point query on $size"
pass "a point query on pitr/<T>/app.db reads a small fraction of the database"
# The file can be memory-mapped, shared as well as private, as SQLite
# does with mmap_size set.
assert_eq "$(sqlite3 "file:$M/pitr/$when/app.db?mode=ro" "PRAGMA mmap_size=268435456;
  SELECT gen, hex(substr(v, 1, 16)) FROM t WHERE id = 1234" | tail -1)" "$want" "row 1234 with mmap_size set"
python3 - "$M/pitr/$when/app.db" <<'PY' || fail "pitr/<T>/app.db cannot be memory-mapped"
import mmap, sys
with open(sys.argv[1], "rb") as f:
    data = f.read(4096)
    for flags in (mmap.MAP_SHARED, mmap.MAP_PRIVATE):
        m = mmap.mmap(f.fileno(), 4096, flags=flags, prot=mmap.PROT_READ)
        assert m[:4096] == data, flags
        m.close()
PY

# --- the whole file is the restore's bytes
cat "$M/pitr/$when/app.db" > "$T/pitr.db"
assert_eq "$(stat -c %s "$T/pitr.db")" "$(stat -c %s "$T/restored.db")" "size of pitr/<T>/app.db"
# Every byte equal but the header's version bytes 18 and 19 (offsets from
# 0; cmp numbers from 1), which the mount serves as 1 and 1.
diffs=$( (cmp -l "$T/pitr.db" "$T/restored.db" || true) | awk '$1 != 19 && $1 != 20' | head -5)
[ -z "$diffs" ] || fail "pitr/<T>/app.db differs from the restore: $diffs"
assert_eq "$(od -An -tu1 -j18 -N2 "$T/pitr.db" | tr -s ' ')" " 1 1" "header version bytes served"
cmp -s <(tail -c +21 "$T/pitr.db") <(tail -c +21 "$T/restored.db") || fail "bytes past the header differ"
assert_eq "$(sqlite3 "$T/pitr.db" 'PRAGMA integrity_check')" "ok" "integrity of the whole pitr file"
# The pages composed from the archive stay in .cache for the next reader,
# and a second reader gets the same bytes. The pages the state shares with
# its base are read from the base, never copied: the cache file holds the
# pages that differ from the base (a few hundred here), not the database.
ls -A "$R/.cache/" | grep -q 'app@' || fail "nothing of the state in .cache: $(ls -A "$R/.cache")"
cached=$(find "$R/.cache" -type f -name '*app@*' -printf '%s %b\n' | awk '{s += $1; b += $2 * 512} END {print (s > b ? s : b) + 0}')
changed=$(python3 - "$T/pitr.db" "$R/backups/prod/snapshots" <<'PY'
import glob, sys
state = open(sys.argv[1], "rb").read()
base = open(sorted(glob.glob(sys.argv[2] + "/*/app.db"))[0], "rb").read()
print(sum(1 for i in range(0, len(state), 4096) if state[i:i + 4096] != base[i:i + 4096]))
PY
)
note "the cache holds $cached bytes for a state of $size bytes, $changed pages of which differ from the base"
[ "$cached" -gt 0 ] || fail "the cache file is empty"
[ "$cached" -le $(( (changed + 16) * 4096 )) ] \
  || fail "the cache holds $cached bytes, more than the $changed pages that differ from the base"
cmp -s "$M/pitr/$when/app.db" "$T/pitr.db" || fail "a second read differs"
pass "pitr/<T>/app.db read whole is the restore's bytes; the cache keeps only the pages that differ from the base"

# --- a base that changes while a state is read from it: EIO, never its bytes
ls "$M/pitr/$when2/" > /dev/null
python3 - "$M/pitr/$when2/app.db" "$R/backups/prod/snapshots" <<'PY' || fail "a changed base was served"
import errno, glob, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
assert len(os.pread(fd, 4096, 0)) == 4096
for base in glob.glob(os.path.join(sys.argv[2], "*", "app.db")):
    os.utime(base)  # a new modification time: no longer the file checked
try:
    os.pread(fd, 4096, 8 * 1024 * 1024)
except OSError as e:
    assert e.errno == errno.EIO, e
else:
    sys.exit("read from a base that changed since it was checked")
os.close(fd)
PY
# The next opener starts afresh: the base is checked again (it is good).
"$SQLENVFS" restore --root "$R" --time "$when2" --output "$T/restored2.db" > /dev/null 2>&1 \
  || fail "sqlenvfs restore --time $when2 failed"
cmp -s <(tail -c +21 "$M/pitr/$when2/app.db") <(tail -c +21 "$T/restored2.db") \
  || fail "pitr/<T2>/app.db differs from the restore after the base was checked again"
pass "a base that changed while a state was read is EIO, and the next open checks it again"

# --- a base written in place, its modification time put back: EIO, never its bytes
python3 - "$M/pitr/$when2/app.db" "$R/backups/prod/snapshots" <<'PY' || fail "a base written in place was served"
import errno, glob, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
good = os.pread(fd, 4096, 8 * 1024 * 1024)
assert len(good) == 4096
base = sorted(glob.glob(os.path.join(sys.argv[2], "*", "app.db")))[0]
st = os.stat(base)
b = os.open(base, os.O_RDWR)
saved = os.pread(b, 4096, 8 * 1024 * 1024)
assert saved == good, "page 2049 of the state is not the base's"
os.pwrite(b, b"\xee" * 4096, 8 * 1024 * 1024)
os.utime(base, ns=(st.st_atime_ns, st.st_mtime_ns))  # only the change time tells now
# What the kernel keeps of the state's file was read before the change and
# is right; drop it so that the read asks the mount.
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
try:
    got = os.pread(fd, 4096, 8 * 1024 * 1024)
except OSError as e:
    assert e.errno == errno.EIO, e
else:
    sys.exit("read %r from a base written in place" % got[:8])
os.pwrite(b, saved, 8 * 1024 * 1024)
os.utime(base, ns=(st.st_atime_ns, st.st_mtime_ns))
os.close(b)
os.close(fd)
PY
cmp -s <(tail -c +21 "$M/pitr/$when2/app.db") <(tail -c +21 "$T/restored2.db") \
  || fail "pitr/<T2>/app.db differs from the restore once the base was put back"
pass "a base written in place with its modification time put back is EIO, and good again once put back"

# --- the open that makes a state reads it with direct_io: nothing of a
# first read is kept by the kernel, and such a file can still be memory-
# mapped, shared or private; later opens go through the page cache like a
# snapshot's, and a re-read of a state read whole does not reach the daemon.
c3=$(commits)
update_gen 4
for i in $(seq 1 100); do [ "$(commits)" -gt "$c3" ] && break; sleep 0.1; done
[ "$(commits)" -gt "$c3" ] || fail "generation 4 was not captured within 10 s"
when3=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
for i in $(seq 1 100); do
  ls "$M/pitr/$when3/" 2>/dev/null | grep -q '^app.db$' && break
  sleep 0.1
done
assert_eq "$(ls "$M/pitr/$when3/")" "app.db" "ls pitr/<T3>/"
"$SQLENVFS" restore --root "$R" --time "$when3" --output "$T/restored3.db" > /dev/null 2>&1 \
  || fail "sqlenvfs restore --time $when3 failed"
F3=$M/pitr/$when3/app.db
python3 - "$F3" "$T/first3.db" <<'PY' || fail "the first open of pitr/<T3>/app.db"
import mmap, os, sys
with open(sys.argv[1], "rb", buffering=0) as f:
    head = f.read(8192)
    for flags in (mmap.MAP_SHARED, mmap.MAP_PRIVATE):
        m = mmap.mmap(f.fileno(), 8192, flags=flags, prot=mmap.PROT_READ)
        assert m[:8192] == head, flags
        m.close()
    with open(sys.argv[2], "wb") as out:
        out.write(head)
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            out.write(b)
PY
cmp -s <(tail -c +21 "$T/first3.db") <(tail -c +21 "$T/restored3.db") \
  || fail "the first read of pitr/<T3>/app.db differs from the restore"
resident=$(fincore --bytes --noheadings --output RES "$F3" | tr -d ' ')
note "after the first read of a $size byte state the kernel keeps $resident bytes of it"
direct=$(status "s['pitr_cache']['first_open_direct']")
if [ "$direct" = True ]; then
  [ "$resident" -le $((size / 20)) ] \
    || fail "the kernel keeps $resident bytes of a state read once (its first open is not direct_io)"
else
  # A kernel older than 6.6 cannot map a direct_io file: every open is
  # served through the page cache.
  note "this kernel ($(uname -r)) does not allow memory maps of direct_io files: first opens are cached"
  uname -r | awk -F. '{ exit !($1 < 6 || ($1 == 6 && $2 < 6)) }' \
    || fail "status says first opens are not direct_io on kernel $(uname -r)"
fi
served() { status "s['pitr_cache']['bytes_served']"; }
# A document rendered after everything before it: poll until it shows at
# least @1 bytes served.
served_at_least() {
  local v
  for i in $(seq 1 30); do
    v=$(served)
    [ "$v" -ge "$1" ] && { echo "$v"; return; }
    sleep 0.3
  done
  fail "status never showed $1 bytes served (last $v)"
}
s0=$(served)
cmp -s <(tail -c +21 "$F3") <(tail -c +21 "$T/restored3.db") \
  || fail "the second read of pitr/<T3>/app.db differs from the restore"
# The second open read it through the page cache, from the daemon (the
# kernel had nothing of it) where the first open was direct_io.
if [ "$direct" = True ]; then
  s1=$(served_at_least $((s0 + size / 2)))
else
  s1=$(served)
fi
# A re-read comes from the page cache: what the daemon serves for it is
# what the kernel did not keep. It does not always keep every page of a
# file read whole (3 to 7 pages of 6,023 short were seen, more with other
# tests beside this one), and memory pressure can take the whole file
# (seen with the page cache dropped in a loop beside this test); so the
# re-read is tried up to three times, each after a read that fills the
# cache. An open that threw the cache away would have all of it served
# every time.
reread_ok=
for attempt in 1 2 3; do
  resident2=$(fincore --bytes --noheadings --output RES "$F3" | tr -d ' ')
  cmp -s <(tail -c +21 "$F3") <(tail -c +21 "$T/restored3.db") \
    || fail "the third read of pitr/<T3>/app.db differs from the restore"
  # One more open, which reads the header (100 bytes) at open, after the
  # read: a document that shows it was rendered after that read.
  python3 -c 'import sys; open(sys.argv[1], "rb").close()' "$F3"
  s2=$(served_at_least $((s1 + 200)))
  note "bytes served by the daemon: read $attempt after it was read whole, with one more open: $((s2 - s1)); the kernel kept $resident2 bytes before it"
  last=$((s2 - s1))
  if [ "$last" -lt $((size / 10)) ]; then reread_ok=1; break; fi
  s1=$s2
done
[ -n "$reread_ok" ] \
  || fail "a re-read of a state read whole reached the daemon, three times ($last bytes served the last time)"
pass "a state's first open is not cached by the kernel and can be memory-mapped; a re-read comes from the page cache"

# --- a byte of a cached state changed on disk (a cache file written to, or
# a disk returning other bytes) is never served: the page's crc32 differs,
# it is composed again from the archive, and the mount log says so.
n_cached=0
for cf in $(ls -A "$R/.cache" | grep '^app@'); do
  python3 - "$R/.cache/$cf" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
off = os.fstat(fd).st_size // 2 + 123
b = os.pread(fd, 1, off)
os.pwrite(fd, bytes([b[0] ^ 0xff]), off)
os.close(fd)
PY
  n_cached=$((n_cached + 1))
done
[ "$n_cached" -gt 0 ] || fail "no cached state to change: $(ls -A "$R/.cache")"
python3 - "$F3" "$T/restored3.db" <<'PY' || fail "pitr/<T3>/app.db served a changed cache file's bytes"
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # make the reads ask the mount
got = bytearray()
while True:
    b = os.read(fd, 1 << 20)
    if not b:
        break
    got += b
os.close(fd)
want = open(sys.argv[2], "rb").read()
assert len(got) == len(want) and got[20:] == want[20:], "differs from the restore"
PY
grep -q "pitr cache: page .* is not what was written to its cache file" "$R/.sqlenvfs/mount.log" ||
  fail "the mount log does not say a cached page changed: $(tail -5 "$R/.sqlenvfs/mount.log")"
pass "a cached page changed on disk is composed again, never served as read, and logged"

unmount_root "$M"
