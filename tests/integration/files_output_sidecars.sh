#!/usr/bin/env bash
# restore and recover never write the files SQLite keeps beside a database
# of the root, even with --force: production's -wal holds commits that its
# database file does not, and a restored image put in its place (by name,
# or through a hard link elsewhere) made SQLite drop them, and with them
# committed transactions. Nor its -shm or -journal (by name).
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
pitr_make_root "$R"
P=$R/data/prod/app.db
pitr_start_archiver "$R" "$T/arch"
python3 "$ORACLE" writer --db "$P" --log "$T/log" --duration 1 --no-vacuum > /dev/null
pitr_stop_archiver "$T/arch"
# Commits in production's -wal, as an application that was stopped leaves it.
python3 - "$P" <<'PY'
import os, sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("PRAGMA wal_autocheckpoint=0")
for k in range(1000001, 1000011):
    con.execute("INSERT INTO tx(k, kind, payload, crc) VALUES (?, 'late', x'00', 0)", (k,))
os._exit(0)  # no checkpoint at close: the commits stay in the -wal
PY
[ -s "$P-wal" ] || fail "no -wal with commits beside production"
rows=$(sqlite3 "file:$P?mode=ro" 'SELECT count(*) FROM tx')
sums=$(cat "$P" "$P-wal" | md5sum)

for side in -wal -shm -journal; do
  expect_fail "that is .*app.db$side, a file SQLite keeps beside a production database of the root" \
    "$SQLENVFS" restore --root "$R" --time latest --output "$P$side" --force
done
expect_fail "that is .*dev/app.db-wal, a file SQLite keeps beside a development database of the root" \
  "$SQLENVFS" restore --root "$R" --time latest --output "$R/data/dev/app.db-wal" --force
[ ! -e "$R/data/dev/app.db-wal" ] || fail "a restore created development's -wal"
ln "$P-wal" "$T/hardlink.db"
expect_fail 'that is .*data/prod/app.db-wal, a file SQLite keeps beside a production database' \
  "$SQLENVFS" restore --root "$R" --time latest --output "$T/hardlink.db" --force
rm "$T/hardlink.db"
backup=$(ls -d "$R"/backups/prod/snapshots/*/ | head -1)app.db
expect_fail 'that is .*data/prod/app.db-wal, a file SQLite keeps beside a production database of the root.*even with --force' \
  "$SQLENVFS" recover "$backup" --root "$R" --output "$P-wal" --force
[ ! -e "$P-journal" ] || fail "a refused restore left $P-journal"
assert_eq "$(cat "$P" "$P-wal" | md5sum)" "$sums" "production and its -wal after the refusals"
assert_eq "$(sqlite3 "$P" 'SELECT count(*) FROM tx')" "$rows" "production's rows"
pass "restore and recover never write production's -wal, -shm or -journal, even with --force"
