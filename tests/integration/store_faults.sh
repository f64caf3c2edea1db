#!/usr/bin/env bash
# Faults and bad input around backups: kill -9 in the middle of a backup
# (during the copy, and after the MANIFEST but before the rename) leaves
# nothing that looks like a backup, and the next run cleans up; a production
# database not in WAL mode, a missing root, an unwritable backup directory,
# unknown options, corrupted and truncated copies: each gets one clear line
# and a non-zero exit, and nothing is lost.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root
make_root "$R" "$SRCDIR/schema.sql" --demo --demo-events 100000
P=$R/data/prod/app.db
DAILY=$R/backups/prod/daily
prod_hash=$(sqlite3 "$P" .dump | sha256sum)

no_backup_visible() {
  local what=$1
  [ -z "$(ls "$DAILY" 2>/dev/null)" ] || fail "$what: a backup-like entry is visible: $(ls "$DAILY")"
  "$SQLENVFS" list --root "$R" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["backups"] == [], d' \
    || fail "$what: list shows a backup"
  "$SQLENVFS" verify --root "$R" | grep -q "nothing to verify" || fail "$what: verify sees something"
}

# --- kill -9 during the copy (slowed down by the test hook)
SQLENVFS_TEST_STORE_DELAY_MS=400 "$SQLENVFS" backup --root "$R" > /dev/null 2>&1 &
pid=$!
track_pid "$pid"
for i in $(seq 1 200); do
  ls -A "$DAILY" 2>/dev/null | grep -q '^\.tmp-' && [ -n "$(find "$DAILY" -name '.tmp-app.db-*' -size +1k)" ] && break
  sleep 0.05
done
[ -n "$(find "$DAILY" -name '.tmp-app.db-*' -size +1k)" ] || fail "the backup never started copying"
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
ls -A "$DAILY" | grep -q '^\.tmp-' || fail "expected the killed run's temporary to be left"
no_backup_visible "killed during the copy"
pass "kill -9 during the copy leaves nothing that looks like a backup"

# --- kill -9 after the MANIFEST is written, before the rename
SQLENVFS_TEST_STORE_DELAY_MS=1000 "$SQLENVFS" backup --root "$R" > /dev/null 2>&1 &
pid=$!
track_pid "$pid"
# (the first run's leftover is removed by this run as it starts)
for i in $(seq 1 600); do
  [ -n "$(find "$DAILY" -path "*/.tmp-*-$pid/MANIFEST")" ] && break
  sleep 0.05
done
[ -n "$(find "$DAILY" -path "*/.tmp-*-$pid/MANIFEST")" ] || fail "the backup never wrote its MANIFEST"
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
[ "$(ls -A "$DAILY" | grep -c '^\.tmp-')" -eq 1 ] || fail "the next run did not remove the first leftover: $(ls -A "$DAILY")"
no_backup_visible "killed before the rename"
pass "kill -9 after the MANIFEST, before the rename, leaves nothing that looks like a backup"

# --- the doctor names the leftover with the size of what it holds
left=$(find "$DAILY" -maxdepth 1 -name '.tmp-*')
"$SQLENVFS" doctor --root "$R" --json > "$T/doctor.json" || true
python3 - "$T/doctor.json" "$left" <<'PY' || fail "doctor on the leftover: $(cat "$T/doctor.json")"
import json, os, sys
doc = json.load(open(sys.argv[1]))
left = sys.argv[2]
held = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(left) for f in fs)
hits = [f for f in doc["findings"] if f["check"] == "leftovers" and left in f["found"]]
assert len(hits) == 1, doc["findings"]
mib = held / (1 << 20)
assert held > 1 << 20 and f"({mib:.1f} MiB)" in hits[0]["found"], (held, hits[0]["found"])
PY
pass "doctor names the leftover with the size of the files it holds"

# --- the next run cleans up and succeeds
"$SQLENVFS" backup --root "$R" > /dev/null 2>&1
[ -z "$(ls -A "$DAILY" | grep '^\.tmp-')" ] || fail "leftovers after the next run: $(ls -A "$DAILY")"
[ "$(ls "$DAILY" | wc -l)" -eq 1 ] || fail "expected one backup: $(ls "$DAILY")"
"$SQLENVFS" verify --root "$R" > /dev/null || fail "the new backup does not verify"
pass "the next run removes the leftovers and makes a good backup"

# --- bad input, one line each, non-zero
expect_fail "open root $T/missing.*no such directory" "$SQLENVFS" backup --root "$T/missing"
expect_fail "no such directory" "$SQLENVFS" snapshot --root "$T/missing"
expect_fail "no such directory" "$SQLENVFS" verify --root "$T/missing"
expect_fail "no such directory" "$SQLENVFS" prune --root "$T/missing"
expect_fail "no such directory" "$SQLENVFS" list --root "$T/missing"
expect_fail "no such directory" "$SQLENVFS" refresh-dev --root "$T/missing"
for cmd in backup snapshot verify prune list refresh-dev; do
  expect_fail "nknown option --frobnicate" "$SQLENVFS" "$cmd" --root "$R" --frobnicate
done
expect_fail "unexpected argument 'extra'" "$SQLENVFS" backup --root "$R" extra
expect_fail "production database .*nope.db does not exist" "$SQLENVFS" backup --root "$R" --db nope
pass "missing root, unknown options, stray arguments and unknown databases: one line each"

# --- production not in WAL mode
sqlite3 "$P" "PRAGMA journal_mode=DELETE" > /dev/null
expect_fail "$P is in journal mode 'delete', not WAL.*PRAGMA journal_mode=WAL" "$SQLENVFS" backup --root "$R"
expect_fail "not WAL.*PRAGMA journal_mode=WAL" "$SQLENVFS" snapshot --root "$R"
[ "$(ls "$DAILY" | wc -l)" -eq 1 ] || fail "a refused backup created something: $(ls "$DAILY")"
assert_eq "$(sqlite3 "$P" 'PRAGMA journal_mode')" "delete" "journal mode left as it was"
sqlite3 "$P" "PRAGMA journal_mode=WAL" > /dev/null
pass "a production database not in WAL mode is refused with how to switch it"

# --- one of several databases not in WAL mode: the others are copied and kept,
# --- that one is reported, the exit status is non-zero
L=$R/data/prod/legacy.db made=()
sqlite3 "$L" "CREATE TABLE t (x); INSERT INTO t VALUES (1)"
for cmd in backup snapshot; do
  dir=$DAILY; [ "$cmd" = snapshot ] && dir=$R/backups/prod/snapshots
  n_before=$(ls "$dir" 2>/dev/null | wc -l)
  rc=0
  out=$("$SQLENVFS" "$cmd" --root "$R" 2> "$T/err") || rc=$?
  [ "$rc" -ne 0 ] || fail "$cmd with a database not in WAL mode exited 0"
  [ "$(wc -l < "$T/err")" -eq 1 ] || fail "$cmd: expected one error line, got: $(cat "$T/err")"
  grep -q "1 of 2 databases not copied (the other copies are kept in $dir/.*$L is in journal mode 'delete', not WAL.*PRAGMA journal_mode=WAL" "$T/err" \
    || fail "$cmd error: $(cat "$T/err")"
  grep -Eq '^  app +[0-9.]+ [KMG]iB +crc32 0x[0-9a-f]{8} +integrity ok$' <<<"$out" || fail "$cmd output: $out"
  assert_eq "$(ls "$dir" | wc -l)" "$((n_before + 1))" "entries after a $cmd with one database skipped"
  newest=$(ls "$dir" | tail -1)
  assert_eq "$(ls "$dir/$newest" | tr '\n' ' ')" "MANIFEST app.db " "files of the $cmd kept"
  assert_eq "$(sqlite3 "file:$dir/$newest/app.db?immutable=1" 'PRAGMA integrity_check')" "ok" "the kept $cmd copy"
  made+=("$dir/$newest")
done
"$SQLENVFS" verify --root "$R" > /dev/null || fail "verify after partial copies"
assert_eq "$(sqlite3 "$L" 'PRAGMA journal_mode')" "delete" "journal mode of the skipped database"
rm -f "$L"
rm -rf "${made[@]}" # the checks below count the entries made before
pass "one database not in WAL mode: the others are backed up and kept, it is reported, exit non-zero"

# --- unwritable backup directory: a file where the directory should be
mv "$DAILY" "$T/daily.saved"
echo "not a directory" > "$DAILY"
expect_fail "backup directory $DAILY is not a directory" "$SQLENVFS" backup --root "$R"
rm "$DAILY"; mv "$T/daily.saved" "$DAILY"
# ... and a read-only filesystem (a read-only bind mount)
if mount --bind "$DAILY" "$DAILY" 2>/dev/null; then
  _mounts+=("$DAILY")
  if mount -o remount,ro,bind "$DAILY" 2>/dev/null; then
    expect_fail "create backup directory $DAILY/\.tmp-.*Read-only file system" "$SQLENVFS" backup --root "$R"
    pass "a read-only backup directory is refused with one line"
  else
    note "skipped the read-only bind mount case (remount refused)"
  fi
  umount "$DAILY"
else
  note "skipped the read-only bind mount case (bind mount refused)"
fi
[ "$(ls "$DAILY" | wc -l)" -eq 1 ] || fail "the backup store changed: $(ls "$DAILY")"
pass "an unwritable backup directory is refused and nothing is lost"

# --- corrupted and truncated copies: verify names them, non-zero
"$SQLENVFS" snapshot --root "$R" > /dev/null
"$SQLENVFS" snapshot --root "$R" > /dev/null
good=$(ls -d "$DAILY"/*)
bad1=$(ls -d "$R"/backups/prod/snapshots/* | head -1)
bad2=$(ls -d "$R"/backups/prod/snapshots/* | tail -1)
printf '\xde\xad\xbe\xef' | dd of="$bad1/app.db" bs=1 seek=40000 conv=notrunc status=none
truncate -s -4096 "$bad2/app.db"
rc=0; "$SQLENVFS" verify --root "$R" > "$T/verify.out" 2> "$T/verify.err" || rc=$?
[ "$rc" -ne 0 ] || fail "verify exited 0 with corrupt copies"
[ "$(wc -l < "$T/verify.err")" -eq 1 ] || fail "verify: expected one error line: $(cat "$T/verify.err")"
grep -Eq "^ok .*backup.*$(basename "$good") *app( \(verified .*, unchanged since\))?$" "$T/verify.out" || fail "the good backup is not reported ok: $(cat "$T/verify.out")"
grep -q "^BAD .*$(basename "$bad1").*crc32" "$T/verify.out" || fail "the corrupted copy is not named: $(cat "$T/verify.out")"
grep -q "^BAD .*$(basename "$bad2").*bytes, the MANIFEST says" "$T/verify.out" || fail "the truncated copy is not named: $(cat "$T/verify.out")"
pass "verify names corrupted and truncated copies and exits non-zero"

# A production directory this process may not write (a read-only mount):
# SQLite gives the copy a private wal-index, and the error says so.
mount --bind "$R/data/prod" "$R/data/prod"
_mounts+=("$R/data/prod")
mount -o remount,bind,ro "$R/data/prod"
expect_fail "app.db-shm\) cannot be shared with the applications: the directory is read-only" \
  "$SQLENVFS" backup --root "$R"
umount "$R/data/prod"
pass "a backup of a production in a read-only directory says why it cannot copy"

assert_eq "$(sqlite3 "$P" .dump | sha256sum)" "$prod_hash" "production after all of the above"
pass "production unchanged throughout"

# A backup on production's own filesystem that would leave it less than
# [cache] min-free-bytes is refused before anything is written: filling that
# disk would make the application's commits fail while the copy is written.
# Past the check (a lower minimum), the same backup is taken. Backups on a
# filesystem of their own are not held to it (doctor.sh, archive_diskfull.sh).
F=$T/fullroot
tmpfs_root "$F" 28m 4M 13500
note "production $(stat -c %s "$F/data/prod/app.db") bytes, $(df -B1 --output=avail "$F" | tail -1) free"
app_start "$F/data/prod/app.db" "INSERT INTO b(v) VALUES (?)"
expect_fail "^sqlenvfs backup: backup copies \(.*\) would leave less than \[cache\] min-free-bytes \
\(4.0 MiB\) .* free on the filesystem of production .*nothing was written" \
  env SQLENVFS_TEST_STORE_DELAY_MS=200 "$SQLENVFS" backup --root "$F"
app_stop
assert_eq "$app_failed" "0" \
  "the application's failed commits while the backup was refused ($app_ok went in)"
[ -z "$(ls -A "$F/backups/prod/daily")" ] || fail "a refused backup left $(ls -A "$F/backups/prod/daily")"
printf '[cache]\nmin-free-bytes=1M\n' > "$F/sqlenvfs.conf"
"$SQLENVFS" backup --root "$F" > /dev/null || fail "the backup with a lower min-free-bytes failed"
pass "a backup that would leave production's filesystem less than min-free-bytes is refused"

# refresh-dev writes a copy aside in data/dev, then as much again into
# development: held to the same minimum, while the application commits.
dev_before=$(sqlite3 "$F/data/dev/app.db" .dump | sha256sum)
app_start "$F/data/prod/app.db" "INSERT INTO b(v) VALUES (?)"
expect_fail "^sqlenvfs refresh-dev: the new development database and its copy aside \(.*\) would \
leave less than \[cache\] min-free-bytes \(1.0 MiB\) .*nothing was written" \
  "$SQLENVFS" refresh-dev --root "$F"
app_stop
assert_eq "$app_failed" "0" \
  "the application's failed commits while refresh-dev was refused ($app_ok went in)"
assert_eq "$(sqlite3 "$F/data/dev/app.db" .dump | sha256sum)" "$dev_before" \
  "development after a refused refresh-dev"
[ -z "$(ls -A "$F/data/dev" | grep '^\.tmp-' || true)" ] ||
  fail "refresh-dev left $(ls -A "$F/data/dev")"
pass "a refresh-dev that would leave production's filesystem less than min-free-bytes is refused"

# recover copies its source and writes a new database beside its output:
# held to the same minimum on production's filesystem.
expect_fail "^sqlenvfs recover: the copy of the source and the recovered database \(.*\) would \
leave less than \[cache\] min-free-bytes \(1.0 MiB\) .*nothing was written" \
  "$SQLENVFS" recover --root "$F" app --output "$F/rescued.db"
[ ! -e "$F/rescued.db" ] || fail "a refused recover wrote its output"
[ -z "$(ls -A "$F" | grep '^\.tmp-recover' || true)" ] || fail "recover left $(ls -A "$F")"
pass "a recover that would leave production's filesystem less than min-free-bytes is refused"

# restore writes the state beside its output: held to the same minimum when
# that is on production's filesystem; anywhere else it is not.
G=$T/restroot
tmpfs_root "$G" 40m 1M 9000
"$SQLENVFS" archive --root "$G" > "$T/garch.out" 2>&1 & garch=$!
track_pid "$garch"
for _ in $(seq 100); do grep -q "snapshot .* taken" "$T/garch.out" && break; sleep 0.1; done
grep -q "snapshot .* taken" "$T/garch.out" || fail "no first snapshot: $(cat "$T/garch.out")"
sleep 1.5
kill "$garch"
wait "$garch" || true
printf '[cache]\nmin-free-bytes=%s\n' "$(( $(df -B1 --output=avail "$G" | tail -1) - 4 * 1024 * 1024 ))" \
  > "$G/sqlenvfs.conf"
expect_fail "^sqlenvfs restore: .*the restored database \(.*\) would leave less than \[cache\] \
min-free-bytes .*nothing was written" \
  "$SQLENVFS" restore --root "$G" --time latest --output "$G/restored.db"
[ ! -e "$G/restored.db" ] || fail "a refused restore wrote its output"
"$SQLENVFS" restore --root "$G" --time latest --output "$T/restored.db" > /dev/null ||
  fail "a restore to another filesystem was refused"
assert_eq "$(sqlite3 "$T/restored.db" 'SELECT count(*) FROM b')" "9000" "rows restored elsewhere"
pass "a restore that would leave production's filesystem less than min-free-bytes is refused"

# refresh-dev --time composes the state in .cache, then writes a copy aside
# and the new development database: the same minimum, development as it was.
dev_before=$(sqlite3 "$G/data/dev/app.db" .dump | sha256sum)
expect_fail "^sqlenvfs refresh-dev: the state, its copy aside and the new development database \
\(.*\) would leave less than \[cache\] min-free-bytes .*nothing was written" \
  "$SQLENVFS" refresh-dev --root "$G" --time latest
assert_eq "$(sqlite3 "$G/data/dev/app.db" .dump | sha256sum)" "$dev_before" \
  "development after a refused refresh-dev --time"
[ -z "$(ls -A "$G/.cache" "$G/data/dev" | grep '^\.tmp-' || true)" ] ||
  fail "refresh-dev --time left $(ls -A "$G/.cache" "$G/data/dev")"
pass "a refresh-dev --time that would leave production's filesystem less than min-free-bytes is refused"
