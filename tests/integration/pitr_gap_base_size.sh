#!/usr/bin/env bash
# A new chain's first state as the base, of another size than the chain
# before it ended with: the archiver is stopped, the application grows the
# database and checkpoints its WAL away (a GAP when the archiver starts
# again, and a fresh snapshot holding the GAP's state, the grown database),
# then shrinks it back to the size it had before, in the first commit after
# the GAP. The GAP and that commit are in a segment that is then sealed (its
# summary's size changes follow its COMMITs, and that commit did not change
# the size from the COMMIT before the GAP). A restore and pitr/ at a time
# after the shrink give the shrunk database, exactly; they must not fail
# nor keep the base's pages past the end.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
DB=$R/data/prod/app.db
pitr_shrink_root "$R" INCREMENTAL
cat > "$R/sqlenvfs.conf" <<'CONF'
[archive]
segment-max-records=16
CONF
"$SQLENVFS" init --root "$R" >/dev/null

pitr_start_archiver "$R" "$T/a1"
for i in 1 2 3 4 5; do
  sqlite3 "$DB" "UPDATE t SET v = 'a$i' WHERE id = $i"
done
pitr_stop_archiver "$T/a1"
before=$(sqlite3 "$DB" "PRAGMA page_count")

# While nobody archives: the database grows, its WAL is checkpointed away.
python3 - "$DB" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.executemany("INSERT INTO bulk(v) VALUES (?)", [("x" * 400,) for _ in range(100)])
c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
PY
grown=$(sqlite3 "$DB" "PRAGMA page_count")
[ "$grown" -gt "$before" ] || fail "the database did not grow ($before -> $grown pages)"

pitr_start_archiver "$R" "$T/a2"
grep -q 'GAP' "$T/a2.err" || fail "no GAP when archiving started again: $(cat "$T/a2.err")"
# The first commit after the GAP: back to the size before it.
sqlite3 "$DB" "BEGIN; DELETE FROM bulk; PRAGMA incremental_vacuum; COMMIT;" >/dev/null
assert_eq "$(sqlite3 "$DB" "PRAGMA page_count")" "$before" "pages after the shrink"
ROWS="SELECT group_concat(id || v, ',') FROM t; SELECT count(*) FROM bulk"
want=$(sqlite3 "$DB" "$ROWS")
# The shrink archived before the next commit is made, so that the two are
# captured apart (on a loaded machine one capture can take both, at one
# time, and no time would then name the shrink alone).
for i in $(seq 1 100); do
  python3 "$SRCDIR/tests/integration/archive_dump.py" "$R/backups/prod/wal_archives/app" \
    2>/dev/null | awk '$4 == "GAP" { n++; next } n == 2 && $4 == "COMMIT" { c++ } END { exit !c }' &&
    break
  sleep 0.1
done
for i in $(seq 6 30); do
  sqlite3 "$DB" "UPDATE t SET v = 'b$i' WHERE id = $i"
done
pitr_stop_archiver "$T/a2"

# The GAP and the shrink are in a sealed segment with a summary; the time:
# a millisecond after the shrink's capture (the next commit, a new sqlite3
# process, was captured later).
python3 "$SRCDIR/tests/integration/archive_dump.py" "$R/backups/prod/wal_archives/app" \
  > "$T/records"
seg=$(awk '$4 == "GAP" { n++; if (n == 2) print $1 }' "$T/records")
when=$(awk '$4 == "GAP" { n++; next }
            n == 2 && $4 == "COMMIT" { printf "@%.6f\n", $5 + 0.001; exit }' "$T/records")
next=$(awk '$4 == "GAP" { n++; next } n == 2 && $4 == "COMMIT" { c++ } c == 2 { print $5; exit }' \
       "$T/records")
[ -n "$seg" ] && [ -n "$when" ] && [ -n "$next" ] ||
  fail "no second GAP, or no commits after it: $(cat "$T/records")"
python3 -c "import sys; sys.exit(0 if float(sys.argv[1][1:]) < float(sys.argv[2]) else 1)" "$when" \
  "$next" || fail "the commit after the shrink was captured within a millisecond of it"
[ -e "$R/backups/prod/wal_archives/app/${seg%.seg}.sum" ] ||
  fail "the segment holding the GAP, $seg, has no summary (not sealed?)"
pass "GAP and shrink in the sealed $seg; $before -> $grown -> $before pages"

"$SQLENVFS" restore --root "$R" --time "$when" --output "$T/r.db" > "$T/restore.out" 2>&1 ||
  fail "restore to $when: $(cat "$T/restore.out")"
assert_eq "$(sqlite3 "$T/r.db" "PRAGMA page_count")" "$before" "pages of the restored state"
assert_eq "$(sqlite3 "$T/r.db" "PRAGMA integrity_check")" "ok" "integrity of the restored state"
assert_eq "$(sqlite3 "$T/r.db" "$ROWS")" "$want" "rows of the restored state"
pass "restore after the shrink: the shrunk database"

mount_root "$R" "$T/mnt" -o noarchiver
ts=$(python3 -c "import datetime,sys; print(datetime.datetime.fromtimestamp(float(sys.argv[1][1:]),
  datetime.timezone.utc).strftime('%Y%m%dT%H%M%S.%fZ'))" "$when")
cp "$T/mnt/pitr/$ts/app.db" "$T/m.db" || fail "pitr/$ts/app.db cannot be read"
# The restored file is the same but for its header's journal mode bytes.
assert_eq "$(stat -c %s "$T/m.db")" "$(stat -c %s "$T/r.db")" "size of pitr/$ts/app.db"
assert_eq "$(cmp -l "$T/m.db" "$T/r.db" | awk '$1 != 19 && $1 != 20' | wc -l)" "0" \
  "bytes in which pitr/$ts/app.db differs from the restored database"
pass "pitr/ after the shrink: the same database"
