#!/usr/bin/env bash
# The archiver and bad situations: a production database not in WAL mode is
# reported clearly and left alone while the others are archived; a database
# that appears while it runs is picked up; production replaced under it
# (init --force) is a gap with a fresh snapshot, never a silent continuation;
# SIGTERM stops it cleanly.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
pitr_make_root "$R"
sqlite3 "$R/data/prod/legacy.db" "PRAGMA journal_mode=DELETE; CREATE TABLE x(a); INSERT INTO x VALUES (1);" >/dev/null
legacy_sum=$(sha256sum < "$R/data/prod/legacy.db")
pitr_start_archiver "$R" "$T/a"

for i in $(seq 1 50); do grep -q 'legacy.db is not in WAL mode' "$T/a.err" && break; sleep 0.1; done
grep -q 'legacy.db is not in WAL mode (journal_mode=delete)' "$T/a.err" \
  || fail "no clear report of the database not in WAL mode: $(cat "$T/a.err")"
assert_eq "$(grep -c 'not in WAL mode' "$T/a.err")" 1 "reports of the same problem"
assert_eq "$(sha256sum < "$R/data/prod/legacy.db")" "$legacy_sum" "the database not in WAL mode"
assert_eq "$(sqlite3 "$R/data/prod/legacy.db" 'PRAGMA journal_mode')" delete "its journal mode"
pass "a database not in WAL mode is reported once and left untouched"

# A new production database appears.
sqlite3 "$R/data/prod/fresh.db" "PRAGMA journal_mode=WAL; CREATE TABLE y(b);" >/dev/null
for i in $(seq 1 50); do grep -q 'archiver fresh: capturing' "$T/a.err" && break; sleep 0.1; done
grep -q 'archiver fresh: capturing' "$T/a.err" || fail "the new database was not picked up"
for i in $(seq 1 100); do [ -n "$(ls "$R/backups/prod/snapshots/"*/fresh.db 2>/dev/null)" ] && break; sleep 0.1; done
sqlite3 "$R/data/prod/fresh.db" "INSERT INTO y VALUES ('after the snapshot')"
pass "a database created while the archiver runs is picked up"

# Production replaced under the archiver.
python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log" --duration 1 --no-vacuum >/dev/null
"$SQLENVFS" init --root "$R" --force >/dev/null
for i in $(seq 1 100); do grep -q 'archiver app: capturing (a new chain' "$T/a.err" && break; sleep 0.1; done
grep -q 'GAP: the database file was replaced' "$T/a.err" || fail "replacing production was not a gap: $(cat "$T/a.err")"
# One clear message: the reason once, then what was seen.
gapline=$(grep 'GAP: the database file was replaced' "$T/a.err")
assert_eq "$(grep -o 'database file was replaced' <<< "$gapline" | wc -l)" 1 "the reason in: $gapline"
grep -Eq "GAP: the database file was replaced \($R/data/prod/app.db (is now another file \(inode|was moved away or removed)" <<< "$gapline" ||
  fail "the gap does not say what was seen: $gapline"
sleep 0.5
pitr_stop_archiver "$T/a"
grep -q '^app: ' "$T/a.out" || fail "no summary for app"
grep -q '^legacy: .*not in WAL mode' "$T/a.out" || fail "the summary does not say why legacy is not archived"
pass "production replaced under the archiver: a gap and a fresh snapshot; clean stop"

n=$("$SQLENVFS" list --root "$R" --json | python3 -c 'import json,sys; print(len([w for w in json.load(sys.stdin)["windows"] if w["database"] == "app"]))')
assert_eq "$n" 2 "windows of app (before and after it was replaced)"
note=$("$SQLENVFS" list --root "$R" --json | python3 -c 'import json,sys; print([w for w in json.load(sys.stdin)["windows"] if w["database"] == "app"][-1]["note"])')
assert_eq "$(grep -o 'database file was replaced' <<< "$note" | wc -l)" 1 "the reason in the window's note: $note"
grep -Eq "^gap: the database file was replaced \(.*(is now another file|was moved away or removed)" <<< "$note" ||
  fail "the window's note does not say what was seen: $note"
"$SQLENVFS" restore --root "$R" --db app --time latest --output "$T/app.db" >/dev/null
assert_eq "$(sqlite3 "$T/app.db" 'SELECT count(*) FROM tx')" 0 "rows in the replaced production"
"$SQLENVFS" restore --root "$R" --db fresh --time latest --output "$T/fresh.db" >/dev/null
assert_eq "$(sqlite3 "$T/fresh.db" 'SELECT b FROM y')" "after the snapshot" "the new database restored"
expect_fail 'nothing is recoverable: .*is itself the database as of its time: copy its file' \
  "$SQLENVFS" restore --root "$R" --db legacy --time latest --output "$T/legacy.db"
pass "each database restores on its own; the one never archived says why"
