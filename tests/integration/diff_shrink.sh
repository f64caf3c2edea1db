#!/usr/bin/env bash
# `sqlenvfs diff` across commits that shrink the database: with
# auto_vacuum=FULL every commit that frees pages cuts the file short, and
# SQLite does not write the pages past the new end to the WAL (nor does an
# incremental vacuum), so the rows that were on them are on no page the
# archive says was written. For every pair of states around such commits,
# the script diff prints turns the restored older state into the restored
# newer one, and --summary counts the rows deleted.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
DB=$R/data/prod/app.db
pitr_shrink_root "$R" FULL
"$SQLENVFS" init --root "$R" >/dev/null
assert_eq "$(sqlite3 "$DB" "PRAGMA auto_vacuum")" "1" "auto_vacuum of the database"

# commit SQL: run it, then wait (up to 30 s) until the archiver has
# captured it, so that each commit is captured in a cycle of its own, at a
# time of its own, even on a busy machine.
archived() {
  python3 "$SRCDIR/tests/integration/archive_dump.py" "$R/backups/prod/wal_archives/app" \
    2>/dev/null | awk '$4 == "COMMIT"' | wc -l
}
commit() {
  local before i
  before=$(archived)
  sqlite3 "$DB" "$1"
  for i in $(seq 1 300); do
    [ "$(archived)" -gt "$before" ] && return 0
    sleep 0.1
  done
  fail "the archiver did not capture: $1"
}
pitr_start_archiver "$R" "$T/a"
commit "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
        INSERT INTO bulk(v) SELECT printf('%0400d', i) FROM n;"
commit "DELETE FROM bulk WHERE id > 50;"
commit "UPDATE t SET v = 'x' WHERE id = 1;"
commit "DELETE FROM bulk;"
pitr_stop_archiver "$T/a"

# The four commits' capture times (a millisecond after each: the next one
# was captured in a later cycle).
python3 "$SRCDIR/tests/integration/archive_dump.py" "$R/backups/prod/wal_archives/app" |
  awk '$4 == "COMMIT" { print $5 }' | tail -4 > "$T/times"
[ "$(wc -l < "$T/times")" -eq 4 ] || fail "expected 4 commits: $(cat "$T/times")"
mapfile -t when < <(awk '{ printf "@%.6f\n", $1 + 0.001 }' "$T/times")
mapfile -t next < <(tail -n +2 "$T/times")
for k in 0 1 2; do
  python3 -c "import sys; sys.exit(0 if float(sys.argv[1][1:]) < float(sys.argv[2]) else 1)" \
    "${when[$k]}" "${next[$k]}" || fail "commit $((k + 2)) was captured within 1 ms of the last"
done

ROWS="SELECT id, v FROM bulk ORDER BY id; SELECT id, v FROM t ORDER BY id"
for k in 0 1 2 3; do
  "$SQLENVFS" restore --root "$R" --time "${when[$k]}" --output "$T/s$k.db" >/dev/null
done
assert_eq "$(sqlite3 "$T/s0.db" "SELECT count(*) FROM bulk")" "100" "rows after the insert"
assert_eq "$(sqlite3 "$T/s1.db" "SELECT count(*) FROM bulk")" "50" "rows after the first delete"
assert_eq "$(sqlite3 "$T/s3.db" "SELECT count(*) FROM bulk")" "0" "rows after the second delete"
p0=$(sqlite3 "$T/s0.db" "PRAGMA page_count")
p1=$(sqlite3 "$T/s1.db" "PRAGMA page_count")
[ "$p1" -lt "$p0" ] || fail "the first delete did not shrink the database ($p0 -> $p1 pages)"

for pair in "0 1" "0 2" "0 3" "1 3" "2 3"; do
  set -- $pair
  "$SQLENVFS" diff --root "$R" --from "${when[$1]}" --to "${when[$2]}" > "$T/d.sql" ||
    fail "diff ${when[$1]} -> ${when[$2]}"
  cp "$T/s$1.db" "$T/x.db"
  sqlite3 "$T/x.db" < "$T/d.sql"
  [ "$(sqlite3 "$T/x.db" "$ROWS")" = "$(sqlite3 "$T/s$2.db" "$ROWS")" ] ||
    fail "the script of diff $1 -> $2 does not give state $2 ($(wc -l < "$T/d.sql") lines)"
  deleted=$(( $(sqlite3 "$T/s$1.db" "SELECT count(*) FROM bulk") -
              $(sqlite3 "$T/s$2.db" "SELECT count(*) FROM bulk") ))
  "$SQLENVFS" diff --root "$R" --from "${when[$1]}" --to "${when[$2]}" --summary |
    grep -q "^bulk: 0 changes, 0 inserts, $deleted deletes" ||
    fail "diff --summary $1 -> $2: $("$SQLENVFS" diff --root "$R" --from "${when[$1]}" \
      --to "${when[$2]}" --summary | grep '^bulk')"
done
pass "diff across shrinking commits: every script gives the newer state"
