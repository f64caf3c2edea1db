#!/usr/bin/env bash
# `sqlenvfs diff` against the states themselves: a real client commits a
# mixed workload (inserts, updates, deletes, rows with overflow pages and
# updates of only their overflow part, a WITHOUT ROWID table, triggers that
# write another table, a trigger and a view replaced, ALTER TABLE
# ADD COLUMN, CREATE TABLE and INDEX, a VACUUM, users rotating e-mail
# addresses and codes under unique indexes on lower(email) and code)
# while `sqlenvfs archive` runs; then for random pairs of times T1 < T2
# the script diff prints turns
# the restored T1 into the restored T2 (every table's rows and rowids, the
# schema), and `diff --summary` prints what `sqldiff --summary` prints for
# the two restored files (diff_random.py check). The same through the
# mount's diff/ files for one pair.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

HELPER="$SRCDIR/tests/integration/diff_random.py"
command -v sqldiff >/dev/null || fail "sqldiff is not installed (Debian: sqlite3-tools; scripts/deps.sh)"

R=$T/root
mkdir -p "$R"
python3 "$HELPER" schema > "$R/schema.sql"
cat > "$R/sqlenvfs.conf" <<CONF
[archive]
segment-max-bytes=1048576
checkpoint-pages=200
CONF
"$SQLENVFS" init --root "$R" >/dev/null
pitr_start_archiver "$R" "$T/archive"

python3 "$HELPER" writer --db "$R/data/prod/app.db" --log "$T/log" --commits 300 >/dev/null
pass "writer committed $(grep -c '^T ' "$T/log") transactions"
# Capture is complete up to the last commit before the archiver stops.
pitr_stop_archiver "$T/archive"

python3 "$HELPER" check --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --archive "$R/backups/prod/wal_archives/app" \
  --pairs "${DIFF_PAIRS:-6}"
pass "diff scripts turn T1 into T2; summaries match sqldiff"

# Across the writer's last commits (small rows added to one table), only the
# rows on changed pages are compared: no table in full, and fewer pages
# walked than the database has.
python3 "$SRCDIR/tests/integration/archive_dump.py" "$R/backups/prod/wal_archives/app" \
  | awk '$4=="COMMIT" {print $5}' > "$T/times"
b=$(tail -n 1 "$T/times")
a=$(tail -n 4 "$T/times" | head -n 1)
"$SQLENVFS" diff --root "$R" --stats --from "@$a" --to "@$b" 2> "$T/stats" > /dev/null
sed 's/^/# /' "$T/stats"
grep -q ', 0 in full,' "$T/stats" || fail "a diff across 3 commits compared a table in full"
walked=$(sed -n 's/.* \([0-9]*\) pages\? walked.*/\1/p' "$T/stats")
"$SQLENVFS" restore --root "$R" --time "@$b" -o "$T/b.db" > /dev/null
pages=$(sqlite3 "$T/b.db" 'PRAGMA page_count')
[ "$walked" -lt "$pages" ] || fail "a diff across 3 commits walked $walked pages of $pages"
pass "a diff across 3 commits walks $walked of $pages pages and compares no table in full"

# Refusals: the older time after the newer one, a time outside the window.
t1=$(awk '$1=="T" {print $3; exit}' "$T/log")
t2=$(awk '$1=="T" {t=$3} END {print t}' "$T/log")
expect_fail 'first time .* is after the second' \
  "$SQLENVFS" diff --root "$R" --from "@$t2" --to "@$t1"
expect_fail 'recoverable|window' "$SQLENVFS" diff --root "$R" --from @1000000000
pass "diff refuses reversed and unrecoverable times"

# The mount serves the same script and summary as diff/<t1>/<t2>/app.sql
# and app.summary (made at open, read-only).
a=$(sed -n '20p' "$T/times")
b=$(sed -n '60p' "$T/times")
"$SQLENVFS" diff --root "$R" --from "@$a" --to "@$b" > "$T/cli.sql" 2>/dev/null
"$SQLENVFS" diff --root "$R" --summary --from "@$a" --to "@$b" > "$T/cli.summary" 2>/dev/null
[ -s "$T/cli.sql" ] || fail "the diff between records 20 and 60 is empty"
M=$T/mnt
mount_root "$R" "$M"
ls "$M/diff/@$a/@$b" > "$T/ls"
grep -qx 'app.sql' "$T/ls" && grep -qx 'app.summary' "$T/ls" || fail "diff/<t1>/<t2>/ lists $(cat "$T/ls")"
cmp "$T/cli.sql" <(cat "$M/diff/@$a/@$b/app.sql") || fail "diff/.../app.sql differs from sqlenvfs diff"
cmp "$T/cli.summary" <(cat "$M/diff/@$a/@$b/app.summary") || fail "diff/.../app.summary differs"
! (echo x > "$M/diff/@$a/@$b/app.sql") 2>/dev/null || fail "diff/.../app.sql is writable"
[ ! -e "$M/diff/@$a/@$b/nosuch.sql" ] || fail "diff/.../nosuch.sql exists"
[ ! -e "$M/diff/@1000000000/@$b/app.sql" ] || fail "a diff from outside the window exists"
unmount_root "$M"
pass "the mount's diff/ files are the command's output, read-only"
