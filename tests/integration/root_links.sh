#!/usr/bin/env bash
# A hard link to production planted under a name the product writes in
# the root (a lock file in .sqlenvfs, the archive's alive file, the index
# of its next segment): every command refuses to write into it, naming it,
# and production keeps every row (a lock once had its pid written over
# production, an index truncated it).
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root
make_root "$R" <(echo "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);")
printf '[archive]\nsegment-max-bytes=1048576\n' > "$R/sqlenvfs.conf"
P=$R/data/prod/app.db
sqlite3 "$P" "INSERT INTO t(v) VALUES ('precious')"
sum=$(md5sum < "$P")

for op in "backup:store" "refresh-dev:refresh-dev" "snapshot:store"; do
  cmd=${op%%:*} lock=$R/.sqlenvfs/${op##*:}.lock
  rm -f "$lock"
  ln "$P" "$lock"
  expect_fail "$lock is a hard link" "$SQLENVFS" "$cmd" --root "$R"
  assert_eq "$(md5sum < "$P")" "$sum" "production after $cmd with its lock linked to it"
  rm "$lock"
done
pass "no command writes its lock file into production"

# The archiver: its lock, then its alive file, then its next index.
rm -f "$R/.sqlenvfs/archiver.lock"
ln "$P" "$R/.sqlenvfs/archiver.lock"
expect_fail "archiver.lock is a hard link" "$SQLENVFS" archive --root "$R"
assert_eq "$(md5sum < "$P")" "$sum" "production after archive with its lock linked to it"
rm "$R/.sqlenvfs/archiver.lock"
pass "the archiver does not write its lock into production"

A=$R/backups/prod/wal_archives/app
"$SQLENVFS" archive --root "$R" > "$T/a1.out" 2> "$T/a1.err" &
apid=$!
track_pid $apid
for _ in $(seq 100); do [ -e "$A/alive" ] && break; sleep 0.1; done
[ -e "$A/alive" ] || fail "the archiver wrote no alive file: $(cat "$T/a1.err")"
kill -INT $apid
wait $apid || fail "the archiver's first run"
rm "$A/alive"
ln "$P" "$A/alive"
# archiver_refuses N NAME ROWS COMMITS: an archiver runs while the
# application commits COMMITS rows of 3000 random bytes; it refuses NAME as
# a hard link, and production stays whole with ROWS rows.
archiver_refuses() {
  "$SQLENVFS" archive --root "$R" > "$T/a$1.out" 2> "$T/a$1.err" &
  apid=$!
  track_pid $apid
  python3 - "$P" "$4" <<'PY' || fail "the application's commits"
import os, sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
for _ in range(int(sys.argv[2])):
    con.execute("INSERT INTO t(v) VALUES (?)", (os.urandom(3000),))
PY
  # Within a minute: an archiver starting on a machine busy with fsyncs
  # (other tests, under a sanitizer) may take seconds to reach its file.
  for _ in $(seq 600); do grep -q "$2 is a hard link" "$T/a$1.err" && break; sleep 0.1; done
  grep -q "$2 is a hard link" "$T/a$1.err" ||
    fail "the archiver did not refuse $2: $(cat "$T/a$1.err")"
  kill -INT $apid
  wait $apid || true
  assert_eq "$(sqlite3 "$P" 'PRAGMA integrity_check')" ok "production's integrity_check"
  assert_eq "$(sqlite3 "$P" 'SELECT count(*), min(v) FROM t')" "$3|precious" "production's rows"
}
# The alive file alone: 100 rows stay within the first segment, so the
# alive file is the first file the archiver writes that is linked (with
# the next index linked too, an archiver behind the writer could reach the
# new segment first and refuse its index instead).
archiver_refuses 2 alive 101 100
rm "$A/alive"
# The next index: 600 rows go past the segment's bound, so that a second
# segment and its index start.
ln "$P" "$A/0000000000000002.idx"
archiver_refuses 3 0002.idx 701 600
pass "the archiver writes neither its alive file nor a new index into production"

# The segment the archiver continues: as a symbolic link to a file outside
# the root it is refused and the file keeps its bytes and mode; with another
# name (a hard link, as `cp -al` of the archive leaves) the archiver goes on
# in a copy of its own, and the other name keeps what it held.
R2=$T/root2
make_root "$R2" <(echo "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);")
P2=$R2/data/prod/app.db
A2=$R2/backups/prod/wal_archives/app
run_archiver_with() { # LOG SQL: an archiver runs while SQL is committed
  "$SQLENVFS" archive --root "$R2" > "$T/$1.out" 2> "$T/$1.err" &
  apid=$!
  track_pid $apid
  for _ in $(seq 100); do [ -e "$A2/alive" ] && break; sleep 0.1; done
  sqlite3 "$P2" "$2"
  sleep 1.5
  kill -INT $apid
  wait $apid || true
}
run_archiver_with b1 "INSERT INTO t(v) VALUES ('one')"
seg=$A2/0000000000000001.seg
[ -f "$seg" ] || fail "the first run wrote no segment: $(ls "$A2")"
mkdir "$T/outside"
cp "$seg" "$T/outside/decoy"
chmod 644 "$T/outside/decoy"
before=$(md5sum < "$T/outside/decoy")
mv "$seg" "$T/seg.real"
ln -s "$T/outside/decoy" "$seg"
run_archiver_with b2 "INSERT INTO t(v) VALUES ('two')"
grep -q "0001.seg is a symbolic link" "$T/b2.err" ||
  fail "the archiver did not refuse the linked segment: $(cat "$T/b2.err")"
assert_eq "$(md5sum < "$T/outside/decoy")" "$before" "the link's target after the archiver"
assert_eq "$(stat -c %a "$T/outside/decoy")" 644 "the mode of the link's target"
[ -L "$seg" ] || fail "the link was removed"
pass "the archiver neither writes nor removes a segment that is a symbolic link"

rm "$seg"
mv "$T/seg.real" "$seg"
ln "$seg" "$T/rotation.seg"
before=$(md5sum < "$T/rotation.seg")
run_archiver_with b3 "INSERT INTO t(v) VALUES ('three')"
assert_eq "$(md5sum < "$T/rotation.seg")" "$before" "the segment's other name after the archiver"
assert_eq "$(stat -c %h "$seg")" 1 "the segment's links after the archiver"
grep -q "other names (hard links)" "$T/b3.err" || fail "nothing said of the copy: $(cat "$T/b3.err")"
"$SQLENVFS" restore --root "$R2" --time latest --output "$T/latest.db" > /dev/null 2>&1 ||
  fail "restore latest after the copy: $("$SQLENVFS" restore --root "$R2" --time latest \
    --output "$T/latest2.db" 2>&1)"
assert_eq "$(sqlite3 "$T/latest.db" 'SELECT group_concat(v) FROM t')" "one,two,three" \
  "the state restored after the copy"
pass "a segment with another name is continued in a copy of its own"
