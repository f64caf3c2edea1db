#!/usr/bin/env bash
# prune applies keep-days and keep-count from sqlenvfs.conf, never removes
# the newest valid copy, and with --dry-run removes nothing.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root
mkdir -p "$R"
echo "CREATE TABLE t (x);" > "$R/schema.sql"
"$SQLENVFS" init --root "$R" > /dev/null
sqlite3 "$R/data/prod/app.db" "INSERT INTO t VALUES (1)"
DAILY=$R/backups/prod/daily

# Four backups, then dated back to January 2020: all past the 7-day default.
for d in 1 2 3 4; do
  "$SQLENVFS" backup --root "$R" > /dev/null
  newest=$(ls "$DAILY" | grep -v '^2020' | head -1)
  mv "$DAILY/$newest" "$DAILY/2020010${d}T000000Z"
done
before=$(ls -R "$DAILY" | sha256sum)

out=$("$SQLENVFS" prune --root "$R" --dry-run)
assert_eq "$(ls -R "$DAILY" | sha256sum)" "$before" "backups after prune --dry-run"
assert_eq "$(echo "$out" | grep -c '^would remove .*backup')" "3" "copies a dry run would remove"
echo "$out" | grep -Eq '^keep +backup +20200104T000000Z +kept: the newest valid backup of app' \
  || fail "dry run does not keep the newest valid copy: $out"
echo "$out" | grep -q "dry run: nothing was removed" || fail "dry run does not say so: $out"
pass "prune --dry-run lists what would go and removes nothing"

# The newest copy is damaged: the newest *valid* one is kept instead.
printf '\xff\xff\xff\xff' | dd of="$DAILY/20200104T000000Z/app.db" bs=1 seek=100 conv=notrunc status=none
out=$("$SQLENVFS" prune --root "$R")
assert_eq "$(ls "$DAILY")" "20200103T000000Z" "backups left by prune"
echo "$out" | grep -Eq '^removed +backup +20200104T000000Z +older than 7 days' || fail "prune output: $out"
assert_eq "$(sqlite3 "file:$DAILY/20200103T000000Z/app.db?immutable=1" 'SELECT x FROM t')" "1" "content of the kept copy"
"$SQLENVFS" verify --root "$R" > /dev/null || fail "the kept copy does not verify"
pass "prune never removes the newest valid copy"

# Again: nothing more goes, the last one is still the newest valid.
"$SQLENVFS" prune --root "$R" > /dev/null
assert_eq "$(ls "$DAILY")" "20200103T000000Z" "backups after a second prune"
pass "the last valid copy survives repeated prunes"

# keep-count, no age limit.
printf '[retention]\ndaily-keep-days=0\ndaily-keep-count=2\n' > "$R/sqlenvfs.conf"
for i in 1 2 3; do "$SQLENVFS" backup --root "$R" > /dev/null; done
"$SQLENVFS" prune --root "$R" > /dev/null
left=$(ls "$DAILY")
assert_eq "$(echo "$left" | wc -l)" "2" "backups left with daily-keep-count=2"
echo "$left" | grep -q '^2020' && fail "the oldest backup survived keep-count: $left"
pass "daily-keep-count keeps the newest N"

printf '[retention]\ndaily-keep-count=many\n' > "$R/sqlenvfs.conf"
expect_fail "daily-keep-count=many is not a whole number" "$SQLENVFS" prune --root "$R"
assert_eq "$(ls "$DAILY" | wc -l)" "2" "backups after a bad setting"
pass "a bad retention setting is refused and nothing is removed"
