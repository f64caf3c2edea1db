#!/usr/bin/env bash
# prune removes the backup that an open pitr/<T>/app.db is composed from
# while SQLite reads it through the mount: the reader goes on reading the
# state's exact bytes from the base it has open, as from any open file that
# was removed, and never gets an error or another page. Once nobody has the
# state open the daemon lets go of the removed base (its space goes), and
# the next open of that time is built from a base that is there, with the
# same bytes as `sqlenvfs restore --time`.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root M=$T/mnt
mkdir -p "$R"
echo "CREATE TABLE t (id INTEGER PRIMARY KEY, gen INTEGER NOT NULL, v BLOB NOT NULL);" \
  > "$R/schema.sql"
"$SQLENVFS" init --root "$R" > /dev/null
P=$R/data/prod/app.db
sqlite3 "$P" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
  INSERT INTO t SELECT i, 0, randomblob(3000) FROM n;" > /dev/null
# The newest backup only: a prune removes the older one, which no window
# starts from (the archiver's first snapshot does).
cat > "$R/sqlenvfs.conf" <<CONF
[retention]
daily-keep-days=0
daily-keep-count=1
pitr-keep-days=0
CONF

mount_root "$R" "$M"
wait_archiving "$M"
daemon=$(pgrep -f "sqlenvfs mount .*$M" | head -1)
[ -n "$daemon" ] || fail "no daemon for $M"
LOG=$R/.sqlenvfs/mount.log

commits() {
  python3 -c "import json; s = json.load(open('$M/status'))
print([d for d in s['databases'] if d['name'] == 'app'][0]['archiver']['commits'])"
}
# One generation of updates, returned once the archiver has captured it.
gen() {
  local c0 i
  c0=$(commits)
  sqlite3 "$P" "PRAGMA busy_timeout=10000;
    UPDATE t SET gen = $1, v = randomblob(3000) WHERE id % 7 = $1 % 7;" > /dev/null
  for i in $(seq 1 100); do [ "$(commits)" -gt "$c0" ] && return 0; sleep 0.1; done
  fail "generation $1 was not captured within 10 s"
}
now() { date -u +%Y-%m-%dT%H:%M:%S.%6NZ; }

gen 1
"$SQLENVFS" backup --root "$R" > /dev/null
B1=$(ls "$R/backups/prod/daily")
gen 2
T1=$(now)
gen 3
T2=$(now)
gen 4
"$SQLENVFS" backup --root "$R" > /dev/null
gen 5
for t in "$T1" "$T2"; do
  for i in $(seq 1 100); do
    ls "$M/pitr/$t/" 2>/dev/null | grep -q '^app.db$' && break
    sleep 0.1
  done
  "$SQLENVFS" restore --root "$R" --time "$t" --output "$T/want-$t.db" > /dev/null 2>&1 \
    || fail "sqlenvfs restore --time $t failed"
done

# Every byte of a file read through the mount but the header's version
# bytes 18 and 19 (cmp numbers from 1), which the mount serves as 1 and 1.
same_as_restore() { # file time
  local diffs
  assert_eq "$(stat -c %s "$1")" "$(stat -c %s "$T/want-$2.db")" "size of pitr/$2/app.db"
  diffs=$( (cmp -l "$1" "$T/want-$2.db" || true) | awk '$1 != 19 && $1 != 20' | head -5)
  [ -z "$diffs" ] || fail "pitr/$2/app.db differs from sqlenvfs restore --time $2: $diffs"
}

# T2 read once and closed: its state stays, idle, with the base open.
cat "$M/pitr/$T2/app.db" > "$T/t2-before.db"
same_as_restore "$T/t2-before.db" "$T2"

# A reader of T1 (the state's first opener: every read reaches the daemon)
# scans the table again and again while prune runs, then once more after.
python3 - "$M/pitr/$T1/app.db" "$T/want-$T1.db" "$T" > "$T/reader.out" 2>&1 <<'PY' &
import hashlib, os, sqlite3, sys
path, want, tmp = sys.argv[1:4]

def digest(c):
    h = hashlib.sha256()
    for row in c.execute("SELECT id, gen, v FROM t ORDER BY id"):
        h.update(repr(row).encode())
    return h.hexdigest()

expected = digest(sqlite3.connect("file:%s?mode=ro" % want, uri=True))
c = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
c.execute("PRAGMA cache_size=1")  # every scan reads the pages again
passes = after = 0
while True:
    stop = os.path.exists(os.path.join(tmp, "stop"))
    got = digest(c)
    if got != expected:
        sys.exit("scan %d of pitr/<T1>/app.db gave other rows" % passes)
    passes += 1
    if passes == 1:
        open(os.path.join(tmp, "started"), "w").close()
    if stop:
        after += 1
        if after == 3:
            break
# The whole file through a second descriptor, read from the daemon.
fd = os.open(path, os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
with open(os.path.join(tmp, "t1-during.db"), "wb") as out:
    off = 0
    while True:
        b = os.pread(fd, 1 << 20, off)
        if not b:
            break
        out.write(b)
        off += len(b)
os.close(fd)
c.close()
print("passes", passes)
PY
reader=$!
track_pid "$reader"
for i in $(seq 1 300); do [ -e "$T/started" ] && break; sleep 0.1; done
[ -e "$T/started" ] || fail "the reader did not finish a scan within 30 s: $(cat "$T/reader.out")"
grep -q "pitr: serving app as of .* from backup $B1 " "$LOG" \
  || fail "pitr/$T1/app.db is not served from the backup $B1: $(grep 'pitr:' "$LOG")"

out=$("$SQLENVFS" prune --root "$R") || fail "prune failed: $out"
grep -Eq "^removed +backup +$B1 " <<<"$out" || fail "prune did not remove $B1: $out"
[ ! -e "$R/backups/prod/daily/$B1" ] || fail "$B1 is still there after prune"
touch "$T/stop"
rc=0
wait "$reader" || rc=$?
[ "$rc" -eq 0 ] || fail "the reader of pitr/$T1/app.db failed across the prune: $(cat "$T/reader.out")"
same_as_restore "$T/t1-during.db" "$T1"
grep -q "the base .*/app.db was removed while the state of .* was read (a prune)" "$LOG" \
  || fail "the log does not say that the base was removed under a reader: $(tail -5 "$LOG")"
pass "pitr/<T>/app.db open across a prune of its base: $(cat "$T/reader.out"), every scan exact"

# Nobody has a state of the removed base open now: the daemon holds no
# descriptor of it any more (the kernel tells the daemon of a close after
# close() has returned).
held() { ls -l "/proc/$daemon/fd" 2>/dev/null | grep -c 'backups/prod/.*(deleted)' || true; }
for i in $(seq 1 50); do [ "$(held)" -eq 0 ] && break; sleep 0.1; done
[ "$(held)" -eq 0 ] || fail "the daemon still holds the removed base: $(ls -l "/proc/$daemon/fd")"
pass "once its readers have closed it, the daemon lets go of the removed base"

# Both times open again: built from a base that is there, same bytes.
for t in "$T1" "$T2"; do
  cat "$M/pitr/$t/app.db" > "$T/after.db" || fail "pitr/$t/app.db cannot be read after the prune"
  same_as_restore "$T/after.db" "$t"
  assert_eq "$(sqlite3 "file:$M/pitr/$t/app.db?mode=ro" 'PRAGMA integrity_check')" "ok" \
    "integrity of pitr/$t/app.db after the prune"
done
"$SQLENVFS" restore --root "$R" --time "$T1" --output "$T/again.db" > /dev/null 2>&1 \
  || fail "sqlenvfs restore --time $T1 failed after the prune"
cmp -s "$T/again.db" "$T/want-$T1.db" || fail "the restore of $T1 changed with the prune"
pass "after the prune, pitr/<T>/app.db is built from a base that is there, the same bytes"
