#!/usr/bin/env bash
# refresh-dev --time T: development becomes production as it was at T
# (the same transactions as `restore --time T`), marked development, with
# production not touched; a state at T not marked production is refused
# unless --force; a time outside the window is refused and development is
# left as it was.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
PROD=$R/data/prod/app.db
DEV=$R/data/dev/app.db
pitr_make_root "$R"
pitr_start_archiver "$R" "$T/a"
python3 "$ORACLE" writer --db "$PROD" --log "$T/log" --duration 3 --no-vacuum >/dev/null
sleep 0.3
T1=$(python3 -c 'import time; print("%.6f" % time.time())')
sleep 0.3
# Production is re-marked (a mistake an operator might make): later states
# are not marked production any more.
python3 - "$PROD" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("UPDATE _environment SET name = 'staging'")
c.close()
PY
sleep 0.5
T2=$(python3 -c 'import time; print("%.6f" % time.time())')
pitr_stop_archiver "$T/a"

q() { sqlite3 "file:$1?mode=ro" "$2"; }
prod_sum=$(sha256sum < "$PROD")

"$SQLENVFS" restore --root "$R" --time "@$T1" --output "$T/at-t1.db" >/dev/null
"$SQLENVFS" refresh-dev --root "$R" --time "@$T1" > "$T/out" || fail "refresh-dev --time failed"
grep -q 'as of' "$T/out" || fail "refresh-dev --time did not say which time: $(cat "$T/out")"
assert_eq "$(q "$DEV" 'SELECT count(*), max(k) FROM tx')" \
  "$(q "$T/at-t1.db" 'SELECT count(*), max(k) FROM tx')" "development after refresh-dev --time"
assert_eq "$(q "$DEV" 'SELECT name FROM _environment')" development "marker of development"
assert_eq "$(q "$DEV" 'SELECT count(*) FROM _environment')" 1 "marker rows in development"
assert_eq "$(q "$DEV" 'PRAGMA integrity_check')" ok "integrity of development"
assert_eq "$(sha256sum < "$PROD")" "$prod_sum" "production after refresh-dev --time"
pass "refresh-dev --time: development holds production as of T, marked development"

before=$(sha256sum < "$DEV")
expect_fail "marked 'staging', not production" "$SQLENVFS" refresh-dev --root "$R" --time "@$T2"
assert_eq "$(sha256sum < "$DEV")" "$before" "development after a refused refresh"
"$SQLENVFS" refresh-dev --root "$R" --time "@$T2" --force >/dev/null
assert_eq "$(q "$DEV" 'SELECT name FROM _environment')" development "marker after a forced refresh"
pass "a state not marked production is refused unless --force"

before=$(sha256sum < "$DEV")
expect_fail 'before the earliest recoverable time' "$SQLENVFS" refresh-dev --root "$R" --time @1000000000
expect_fail 'accepted forms' "$SQLENVFS" refresh-dev --root "$R" --time yesterday
assert_eq "$(sha256sum < "$DEV")" "$before" "development after refused times"
[ -z "$(ls -A "$R/.cache" 2>/dev/null | grep tmp)" ] || fail "temporary files left in .cache"
pass "times outside the window and bad times are refused; nothing left behind"

# Development that is production's file by another name (a hard link) is
# refused, with or without --time: refreshing it would write production.
# The same for a link to a backup's file, and for a -wal linked.
"$SQLENVFS" backup --root "$R" >/dev/null
B=$(ls -d "$R"/backups/prod/daily/*/ | tail -1)app.db
backup_sum=$(sha256sum < "$B")
prod_sum=$(sha256sum < "$PROD")
rm -f "$DEV" "$DEV-wal" "$DEV-shm"
ln "$PROD" "$DEV"
expect_fail "refresh-dev: $DEV is the same file as production's $PROD: .*rm $DEV" \
  "$SQLENVFS" refresh-dev --root "$R" --time "@$T1"
expect_fail "the same file as production's" "$SQLENVFS" refresh-dev --root "$R" --force
assert_eq "$(sha256sum < "$PROD")" "$prod_sum" "production after refused refreshes into its own file"
assert_eq "$(q "$PROD" 'SELECT name FROM _environment')" staging "production's marker"
rm -f "$DEV"
ln "$B" "$DEV"
expect_fail "$DEV is a hard link, one of 2 names of a file that may be production's" \
  "$SQLENVFS" refresh-dev --root "$R" --force
assert_eq "$(sha256sum < "$B")" "$backup_sum" "the backup after a refused refresh"
rm -f "$DEV"
"$SQLENVFS" refresh-dev --root "$R" --time "@$T1" >/dev/null
ln "$DEV" "$T/dev-link.db"
expect_fail "$DEV is a hard link" "$SQLENVFS" refresh-dev --root "$R" --time "@$T1"
rm -f "$T/dev-link.db"
"$SQLENVFS" verify --root "$R" >/dev/null || fail "verify after the refused refreshes"
pass "a development file linked to production, a backup or anything else is refused"
