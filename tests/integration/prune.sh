#!/usr/bin/env bash
# prune applies keep-days and keep-count from sqlenvfs.conf, never removes
# the newest valid copy, and with --dry-run removes nothing; it checks the
# base a point-in-time window starts from before relying on it.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
make_root "$R" <(echo "CREATE TABLE t (x);")
sqlite3 "$R/data/prod/app.db" "INSERT INTO t VALUES (1)"
DAILY=$R/backups/prod/daily

# Four backups, then dated back to January 2020: all past the 7-day default.
for d in 1 2 3 4; do
  "$SQLENVFS" backup --root "$R" > /dev/null
  newest=$(ls "$DAILY" | grep -v '^2020' | head -1)
  redate_copy "$DAILY/$newest" "2020010${d}T000000Z"
done
before=$(ls -R "$DAILY" | sha256sum)

out=$("$SQLENVFS" prune --root "$R" --dry-run)
assert_eq "$(ls -R "$DAILY" | sha256sum)" "$before" "backups after prune --dry-run"
assert_eq "$(grep -c '^would remove .*backup' <<<"$out")" "3" "copies a dry run would remove"
grep -Eq '^keep +backup +20200104T000000Z +kept: the newest valid backup of app' <<<"$out" \
  || fail "dry run does not keep the newest valid copy: $out"
grep -q "dry run: nothing was removed" <<<"$out" || fail "dry run does not say so: $out"
pass "prune --dry-run lists what would go and removes nothing"

# The newest copy is damaged: the newest *valid* one is kept instead.
printf '\xff\xff\xff\xff' | dd of="$DAILY/20200104T000000Z/app.db" bs=1 seek=100 conv=notrunc status=none
out=$("$SQLENVFS" prune --root "$R")
assert_eq "$(ls "$DAILY")" "20200103T000000Z" "backups left by prune"
grep -Eq '^removed +backup +20200104T000000Z +older than 7 days' <<<"$out" || fail "prune output: $out"
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
grep -q '^2020' <<<"$left" && fail "the oldest backup survived keep-count: $left"
pass "daily-keep-count keeps the newest N"

# Copies whose names date them later than they are: one taken while the
# clock was a year ahead (libfaketime), one copied by hand under a later
# name. Counted as the newest, they made prune remove the real newest
# backup. Now neither counts: the real one stays, both are left for
# inspection, saying why (the copy's MANIFEST was written for another
# name: it is not read as a copy at all), and doctor warns of them.
FT=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
[ -e "$FT" ] || fail "libfaketime is not installed (scripts/deps.sh installs faketime)"
printf '[retention]\ndaily-keep-days=0\ndaily-keep-count=2\n' > "$R/sqlenvfs.conf"
FAKETIME=+365d LD_PRELOAD=$FT ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
  "$SQLENVFS" backup --root "$R" > /dev/null
ahead=$(ls "$DAILY" | tail -1)
sqlite3 "$R/data/prod/app.db" "INSERT INTO t VALUES (2)"
"$SQLENVFS" backup --root "$R" > /dev/null
real=$(ls "$DAILY" | grep -v "^$ahead\$" | tail -1)
cp -a "$DAILY/$(ls "$DAILY" | head -1)" "$DAILY/20991231T000000Z"
out=$("$SQLENVFS" prune --root "$R")
[ -d "$DAILY/$real" ] || fail "prune removed the real newest backup: $out"
assert_eq "$(sqlite3 "file:$DAILY/$real/app.db?immutable=1" 'SELECT max(x) FROM t')" "2" \
  "content of the real newest backup"
grep -Eq "^keep +backup +$ahead +left for inspection: its name is in the future" <<<"$out" ||
  fail "prune does not say the copy from the future is left: $out"
grep -Eq '^keep +backup +20991231T000000Z +left for inspection: read .*: it was written for' \
  <<<"$out" || fail "prune does not say the renamed copy is left: $out"
rc=0
"$SQLENVFS" doctor --root "$R" > "$T/doctor.out" 2>&1 || rc=$?
grep -q "the newest valid backup is .* old ($real)" "$T/doctor.out" ||
  fail "doctor does not take the real newest backup's age: $(cat "$T/doctor.out")"
grep -q "backup $ahead is not counted as the newest" "$T/doctor.out" ||
  fail "doctor does not warn of the copy from the future: $(cat "$T/doctor.out")"
rm -rf "$DAILY/$ahead" "$DAILY/20991231T000000Z"
pass "a copy named later than it was made never counts as the newest; prune leaves it, doctor warns"

printf '[retention]\ndaily-keep-count=many\n' > "$R/sqlenvfs.conf"
expect_fail "daily-keep-count=many is not a whole number" "$SQLENVFS" prune --root "$R"
assert_eq "$(ls "$DAILY" | wc -l)" "2" "backups after a bad setting"
pass "a bad retention setting is refused and nothing is removed"

# The base the point-in-time window starts from is damaged, and nothing has
# read it since: prune checks it before relying on it, and keeps the good
# backup that restores really start from instead.
R2=$T/root2
pitr_make_root "$R2"
pitr_start_archiver "$R2" "$T/a2" # its first snapshot starts the window
w() { python3 "$ORACLE" writer --db "$R2/data/prod/app.db" --log "$T/log2" --duration "$1" \
        --no-vacuum ${2:+--k0 "$2"} >/dev/null; }
klast() { awk '$1=="T"{k=$2} END{print k}' "$T/log2"; }
w 1
for i in 1 2 3; do
  "$SQLENVFS" backup --root "$R2" >/dev/null
  w 1 "$(klast)"
  # TM: between the second backup and the third, with commits on both sides
  [ "$i" = 2 ] && TM=$(python3 -c 'import time; print("%.6f" % time.time())') && w 0.5 "$(klast)"
done
pitr_stop_archiver "$T/a2"
S0=$(ls -d "$R2"/backups/prod/snapshots/*/ | head -1)
printf '\x5a' | dd of="${S0}app.db" bs=1 seek=5096 conv=notrunc status=none
cat >> "$R2/sqlenvfs.conf" <<CONF
[retention]
daily-keep-days=0
daily-keep-count=1
snapshot-keep-days=0
snapshot-keep-count=0
pitr-keep-days=0
CONF
"$SQLENVFS" prune --root "$R2" > "$T/prune2.out" 2> "$T/prune2.err" \
  || fail "prune: $(cat "$T/prune2.err")"
grep -q "prune: snapshot $(basename "$S0"): .*starts from the next good base" "$T/prune2.err" \
  || fail "prune did not say the window's first base is damaged: $(cat "$T/prune2.err")"
B1=$(sed -n 's/^keep *backup *\([^ ]*\) *kept: base of the point-in-time window.*/\1/p' "$T/prune2.out")
[ -n "$B1" ] || fail "no backup kept as the window's base: $(cat "$T/prune2.out")"
python3 "$ORACLE" probe --sqlenvfs "$SQLENVFS" --root "$R2" --log "$T/log2" --tmp "$T" \
  --time "@$TM" --expect ok > /dev/null
pass "a damaged first base is found by prune, which keeps the backup restores start from"

# That base's file gone (its MANIFEST still there): prune cannot check what
# it would rely on, so it stops and removes nothing.
"$SQLENVFS" backup --root "$R2" >/dev/null
before=$(ls -R "$R2/backups" | sha256sum)
mv "$R2/backups/prod/daily/$B1/app.db" "$T/b1.db"
expect_fail "the backup $B1, which the point-in-time window of app starts from, cannot be opened" \
  "$SQLENVFS" prune --root "$R2"
mv "$T/b1.db" "$R2/backups/prod/daily/$B1/app.db"
assert_eq "$(ls -R "$R2/backups" | sha256sum)" "$before" "copies after a prune that stopped"
pass "a window's base that cannot be read stops prune, which removes nothing"

# An archive none of whose states any copy reaches (every copy gone: the
# archiver was down for longer than pitr-keep-days, and prune removed the
# windows' bases with their archive): `verify` and `doctor` say that the
# newest archived state cannot be restored, as `restore` refuses it, not
# that all is good.
R3=$T/root3
pitr_make_root "$R3"
printf '[doctor]\narchive-lag-warn-seconds=1\n' >> "$R3/sqlenvfs.conf"
pitr_start_archiver "$R3" "$T/a3"
python3 "$ORACLE" writer --db "$R3/data/prod/app.db" --log "$T/log3" --duration 1 --no-vacuum \
  > /dev/null
pitr_stop_archiver "$T/a3"
"$SQLENVFS" verify --root "$R3" > /dev/null || fail "verify fails before the copies went"
rm -rf "$R3"/backups/prod/snapshots/* "$R3"/backups/prod/daily/*
expect_fail "nothing is recoverable yet" "$SQLENVFS" restore --root "$R3" --time latest \
  --output "$T/r3.db"
sleep 1.1 # past archive-lag-warn-seconds since the archive began
rc=0
"$SQLENVFS" verify --root "$R3" > "$T/verify3.out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "verify passed an archive no copy reaches: $(cat "$T/verify3.out")"
grep -q "^BAD .*newest state .*the newest archived state cannot be restored.*no usable backup" \
  "$T/verify3.out" || fail "verify does not say so: $(cat "$T/verify3.out")"
"$SQLENVFS" doctor --root "$R3" > "$T/doctor3.out" 2>&1 || true
grep -q "WARN archive .*the newest archived state cannot be restored" "$T/doctor3.out" \
  || fail "doctor does not say so: $(cat "$T/doctor3.out")"
pass "verify and doctor report an archive that no copy reaches"

# An archive whose newest state is older than pitr-keep-days (its archiver
# stopped that long ago, or the clock jumped): prune removed every segment
# but the last, the newest backup's state with them, so that nothing was
# recoverable any more. It keeps the newest state recoverable, says why,
# and everything it restores is what was committed.
R4=$T/root4
pitr_backup_between "$R4" "$T/a4" 40 80 '[archive]\nsegment-max-records=16\n[retention]\npitr-keep-days=7\n'
FAKETIME=+8d LD_PRELOAD=$FT ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
  "$SQLENVFS" prune --root "$R4" > "$T/prune4.out" 2>&1 || fail "prune: $(cat "$T/prune4.out")"
"$SQLENVFS" restore --root "$R4" --time latest --output "$T/r4.db" > /dev/null 2>&1 ||
  fail "latest does not restore after the prune: $("$SQLENVFS" list --root "$R4" 2>&1)"
assert_eq "$(sqlite3 "$T/r4.db" 'SELECT count(*), sum(id) FROM t')" "80|3240" \
  "the newest state after a prune past the archive's end"
grep -q "the newest recoverable time of app, .*, is older than the retention" "$T/prune4.out" ||
  fail "prune does not say the archive is older than the retention: $(cat "$T/prune4.out")"
"$SQLENVFS" verify --root "$R4" > "$T/verify4.out" 2>&1 ||
  fail "verify after the prune: $(cat "$T/verify4.out")"
pass "a prune past the archive's newest state keeps that state recoverable"
