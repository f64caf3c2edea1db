#!/usr/bin/env bash
# Where restore and refresh-dev write:
# - restore never writes a database of the root (data/prod/*.db, data/dev/*.db,
#   by name or through a symlinked directory), an output with a -wal/-shm
#   beside it, a file another process has open, or a symlink, even with
#   --force; it replaces a plain file nobody uses;
# - refresh-dev and restore killed mid-copy leave one ".tmp-<name>-<pid>"
#   (never ".tmp-.tmp-"), no more readable than production; doctor names the
#   leftover and the next run removes it;
# - restore, backup, snapshot and refresh-dev interrupted (SIGINT, SIGTERM,
#   SIGHUP) remove their temporaries and die of the signal;
# - refresh-dev refuses to write development through a symlink.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"
umask 022

R=$T/root
make_root "$R" "$SRCDIR/schema.sql" --demo --demo-events 300000
P=$R/data/prod/app.db D=$R/data/dev/app.db
chmod 600 "$P"
pitr_start_archiver "$R" "$T/arch"
sqlite3 "$P" "UPDATE vessel_characteristics SET vessel_name = 'after' WHERE mmsi = (SELECT min(mmsi) FROM vessel_characteristics)"
pitr_stop_archiver "$T/arch"
prod_sum=$(md5sum < "$P")
dev_sum=$(md5sum < "$D")

# --- restore: outputs it must refuse ---------------------------------------
expect_fail 'that is the production database .*/data/prod/app.db of the root.*OPERATIONS.md' \
  "$SQLENVFS" restore --root "$R" --time latest --output "$P" --force
# Without --force: the same refusal, not a hint to pass --force.
out=$("$SQLENVFS" restore --root "$R" --time latest --output "$P" 2>&1) &&
  fail "a restore onto production without --force succeeded"
case $out in
  *"that is the production database "*) ;;
  *) fail "a restore onto production without --force said: $out" ;;
esac
case $out in *"pass --force"*) fail "a restore onto production suggested --force: $out" ;; esac
expect_fail 'that is the production database .*/data/prod/new.db of the root' \
  "$SQLENVFS" restore --root "$R" --time latest --output "$R/data/prod/new.db" --force
[ ! -e "$R/data/prod/new.db" ] || fail "a restore created a new production database"
expect_fail 'that is the development database .*/data/dev/app.db of the root' \
  "$SQLENVFS" restore --root "$R" --time latest --output "$D" --force
ln -s "$R/data/prod" "$T/prodlink"
expect_fail 'that is the production database .*/data/prod/app.db of the root' \
  "$SQLENVFS" restore --root "$R" --time latest --output "$T/prodlink/app.db" --force
ln "$P" "$T/hardlink.db"
expect_fail 'is the production database .*data/prod/app.db of the root' \
  "$SQLENVFS" restore --root "$R" --time latest --output "$T/hardlink.db" --force
rm "$T/hardlink.db"
assert_eq "$(md5sum < "$P")" "$prod_sum" "production after the refused restores"
assert_eq "$(md5sum < "$D")" "$dev_sum" "development after the refused restores"
pass "restore refuses the root's production and development databases, even with --force"

# The store: a snapshot (the base of the window), a segment, the state, the
# cache; refused even with --force, and the window is still there after.
base_dir=$(ls -d "$R"/backups/prod/snapshots/*/ | tail -1)
base_sum=$(md5sum < "${base_dir}app.db")
seg=$(ls "$R"/backups/prod/wal_archives/app/*.seg | head -1)
seg_sum=$(md5sum < "$seg")
for out in "${base_dir}app.db" "$seg" "$R/.sqlenvfs/new.db" "$R/.cache/new.db" \
           "$R/backups/new.db"; do
  expect_fail "that is inside .*, where a root keeps its backups.*never writes there" \
    "$SQLENVFS" restore --root "$R" --time latest --output "$out" --force
  # From another directory, with no --root: the store is known by its place.
  (cd "$T" && expect_fail "that is inside .*, where a root keeps its backups" \
    "$SQLENVFS" recover "$P" --output "$out" --force)
done
assert_eq "$(md5sum < "${base_dir}app.db")" "$base_sum" "the base after the refused restores"
assert_eq "$(md5sum < "$seg")" "$seg_sum" "the segment after the refused restores"
[ ! -e "$R/.cache/new.db" ] && [ ! -e "$R/backups/new.db" ] || fail "a refused restore wrote"
# A file with another name (here the base's): never replaced, and the base
# is not mistaken for one changed by someone else.
ln "${base_dir}app.db" "$T/base_link.db"
expect_fail 'the file has 2 names \(hard links\).*--force replaces only a file with one name' \
  "$SQLENVFS" restore --root "$R" --time latest --output "$T/base_link.db" --force
assert_eq "$(md5sum < "$T/base_link.db")" "$base_sum" "the hard link after the refused restore"
rm "$T/base_link.db"
"$SQLENVFS" list --root "$R" | grep -q 'recoverable windows: 1' ||
  fail "the window is gone after the refused restores: $("$SQLENVFS" list --root "$R")"
# The store reached another way (a bind mount of backups/, as a second
# disk is often mounted there): refused by the directory's identity.
mkdir -p "$T/bk"
mount --bind "$R/backups" "$T/bk"
_mounts+=("$T/bk")
bk_base="$T/bk/prod/snapshots/$(basename "$base_dir")/app.db"
expect_fail "that is inside .*/backups, where a root keeps its backups.*never writes there" \
  "$SQLENVFS" restore --root "$R" --time latest --output "$bk_base" --force
umount "$T/bk"
assert_eq "$(md5sum < "${base_dir}app.db")" "$base_sum" "the base after a restore refused through a bind mount"
pass "restore and recover refuse the root's store and a file with other names, even with --force"

# A database in use elsewhere: its -wal beside it, held open by a process.
cat > "$T/holder.py" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE IF NOT EXISTS t(x)")
db.execute("INSERT INTO t VALUES (1)")
open(sys.argv[2], "w").close()
time.sleep(600)
PY
python3 "$T/holder.py" "$T/live.db" "$T/live.ready" &
holder=$!
track_pid "$holder"
for i in $(seq 1 100); do [ -e "$T/live.ready" ] && break; sleep 0.05; done
[ -e "$T/live.db-wal" ] || fail "the holder's database has no -wal"
live_sum=$(md5sum < "$T/live.db")
expect_fail 'live.db-wal exists beside it' \
  "$SQLENVFS" restore --root "$R" --time latest --output "$T/live.db" --force
assert_eq "$(md5sum < "$T/live.db")" "$live_sum" "the database in use after a refused restore"
kill "$holder"; wait "$holder" 2>/dev/null || true
# Beside no file: a -wal with frames would be applied to the restored file.
sqlite3 "$T/stale.db" "PRAGMA journal_mode=WAL; CREATE TABLE s(x);" > /dev/null
python3 - "$T/stale.db" <<'PY'
import shutil, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA wal_autocheckpoint=0")
db.execute("INSERT INTO s VALUES (1)")
shutil.copy(sys.argv[1] + "-wal", sys.argv[1] + "-wal.keep")
PY
rm -f "$T/stale.db" "$T/stale.db-shm"
mv "$T/stale.db-wal.keep" "$T/stale.db-wal"
[ -s "$T/stale.db-wal" ] || fail "no stale WAL to test with"
expect_fail 'stale.db-wal is left beside it with content' \
  "$SQLENVFS" restore --root "$R" --time latest --output "$T/stale.db"
[ ! -e "$T/stale.db" ] || fail "a restore wrote beside a stale WAL"
: > "$T/stale.db-wal"  # what a read-only reader leaves: empty, harmless
"$SQLENVFS" restore --root "$R" --time latest --output "$T/stale.db" > /dev/null
assert_eq "$(sqlite3 "$T/stale.db" 'PRAGMA integrity_check')" "ok" "restore beside an empty -wal"
pass "restore refuses an output with a -wal beside it, or a stale -wal with content"

# --- a long name: one that a file may have is written through a temporary
# whose name is not too long (its start and a hash of it), whose leftover
# the next run removes; a name too long for a file is refused before
# anything is written.
long=$(printf 'y%.0s' $(seq 245)).db
dead=$(sh -c 'echo $$')
left=.tmp-$(printf 'y%.0s' $(seq 100))~$(printf %s "$long" | sha256sum | cut -c1-16)-$dead
mkdir "$T/long" && touch "$T/long/$left"
(cd "$T/long" && "$SQLENVFS" restore --root "$R" --time latest --output "$long") \
  > /dev/null 2> "$T/long.err" || fail "restore to a name of 248 bytes: $(cat "$T/long.err")"
assert_eq "$(sqlite3 "$T/long/$long" 'PRAGMA integrity_check')" ok "the restore to a long name"
[ ! -e "$T/long/$left" ] || fail "the leftover of a restore to a long name was not removed"
grep -q "removed .*$left, left by an interrupted run" "$T/long.err" ||
  fail "the removal of the leftover of a long name was not said: $(cat "$T/long.err")"
long=$(printf 'y%.0s' $(seq 300)).db
expect_fail "the file name is 303 bytes long, more than the 255 a file name can have there" \
  "$SQLENVFS" restore --root "$R" --time latest --output "$T/long/$long"
expect_fail "the file name is 303 bytes long" \
  "$SQLENVFS" recover "$P" --output "$T/long/$long"
assert_eq "$(ls -A "$T/long" | wc -l)" 1 "files beside a restore refused a too long name"
pass "restore writes a long name that a file may have, and refuses one it may not"

printf 'plain\n' > "$T/held.db"
sleep 600 < "$T/held.db" &
sleeper=$!
track_pid "$sleeper"
for i in $(seq 1 100); do [ "$(readlink /proc/$sleeper/fd/0 2>/dev/null)" = "$T/held.db" ] && break; sleep 0.05; done
expect_fail "pid $sleeper \(sleep\) has it open" \
  "$SQLENVFS" restore --root "$R" --time latest --output "$T/held.db" --force
assert_eq "$(cat "$T/held.db")" "plain" "a file held open after a refused restore"
kill "$sleeper"; wait "$sleeper" 2>/dev/null || true
pass "restore refuses a file another process has open"

printf 'target\n' > "$T/target.db"
ln -s "$T/target.db" "$T/sym.db"
expect_fail 'it is a symbolic link \(to [^)]+\), not a plain file' \
  "$SQLENVFS" restore --root "$R" --time latest --output "$T/sym.db" --force
[ -L "$T/sym.db" ] || fail "the symlink was replaced"
assert_eq "$(cat "$T/target.db")" "target" "the symlink's target after a refused restore"
pass "restore refuses a symlink as output"

# An output in a directory that is a symbolic link: refused before anything
# is written, naming the link and the path to give instead (it was refused
# while cleaning up temporaries, advising to replace the link).
mkdir "$T/realdir"
ln -s "$T/realdir" "$T/linkdir"
expect_fail "restore to $T/linkdir/x.db: $T/linkdir is a symbolic link \(to $T/realdir\).*name \
the directory it points to: --output $T/realdir/x.db" \
  "$SQLENVFS" restore --root "$R" --time latest --output "$T/linkdir/x.db"
expect_fail "recover to $T/linkdir/y.db: $T/linkdir is a symbolic link" \
  "$SQLENVFS" recover --root "$R" app --output "$T/linkdir/y.db"
(cd "$T" && ln -s linkdir link2 &&
  expect_fail "link2 is a symbolic link \\(to linkdir\\).*--output $T/realdir/z.db\\)" \
    env G_DEBUG=fatal-warnings "$SQLENVFS" restore --root "$R" --time latest --output link2/z.db)
assert_eq "$(ls -A "$T/realdir")" "" "the directory the link points to"
pass "an output in a directory that is a link is refused, naming the real directory"

# Outputs a restore cannot write: each error says what is wrong with the
# output itself, never suggests --force where --force would not help, and
# never speaks of a leftover that is not there.
mkdir -p "$T/adir"
expect_fail 'adir: it is a directory, not a plain file.*choose another --output' \
  "$SQLENVFS" restore --root "$R" --time latest --output "$T/adir"
expect_fail 'the directory [^ ]*/nodir does not exist \(nothing was written; create it' \
  "$SQLENVFS" restore --root "$R" --time latest --output "$T/nodir/x.db"
mkdir -p "$T/ro"
mount -t tmpfs -o size=1m,ro tmpfs "$T/ro"
_mounts+=("$T/ro")
err=$("$SQLENVFS" restore --root "$R" --time latest --output "$T/ro/x.db" 2>&1 >/dev/null) &&
  fail "a restore into a read-only directory succeeded"
grep -q 'leftover' <<<"$err" && fail "a restore into a read-only directory speaks of a leftover: $err"
grep -q "create $T/ro/.tmp-x.db-[0-9]*: Read-only file system" <<<"$err" ||
  fail "a restore into a read-only directory: $err"
pass "restore says what is wrong with a directory, a missing directory or a read-only one as output"

"$SQLENVFS" restore --root "$R" --time latest --output "$T/held.db" --force > /dev/null
assert_eq "$(sqlite3 "$T/held.db" "SELECT vessel_name FROM vessel_characteristics ORDER BY mmsi LIMIT 1")" \
  "after" "the restored file"
assert_eq "$(stat -c %a "$T/held.db")" "600" "mode of the restored file (production is 0600)"
pass "--force replaces a plain file nobody uses, no more readable than production"

# latest with no archiver running is the newest archived state: production
# may be ahead of it, and restore says so (on stderr; the exit status is 0)
sqlite3 "$P" "UPDATE vessel_characteristics SET vessel_name = 'not archived' WHERE mmsi = (SELECT min(mmsi) FROM vessel_characteristics)"
"$SQLENVFS" restore --root "$R" --time latest --output "$T/unarchived.db" > /dev/null 2> "$T/note" ||
  fail "restore --time latest without an archiver: $(cat "$T/note")"
grep -q "note: no archiver is running, so latest is the newest archived state" "$T/note" ||
  fail "restore --time latest without an archiver says nothing: $(cat "$T/note")"
# So do the other commands that take latest, and their default to it.
for cmd in "refresh-dev --time latest --force" "diff --from earliest" \
           "bisect --from earliest --sql 'SELECT count(*) FROM vessel_characteristics'"; do
  eval "\"\$SQLENVFS\" $cmd --root \"\$R\"" > /dev/null 2> "$T/note" || [ $? -eq 3 ] ||
    fail "$cmd without an archiver: $(cat "$T/note")"
  grep -q "sqlenvfs ${cmd%% *}: note: no archiver is running, so latest is the newest" \
    "$T/note" || fail "$cmd without an archiver says nothing: $(cat "$T/note")"
done
pass "restore, refresh-dev, diff and bisect at latest say when no archiver runs"

# --- a killed refresh-dev ---------------------------------------------------
# Run (with SIGINT as a terminal's foreground job has it: a background job
# of a script ignores it), wait for its temporary to appear, send SIG; $rc
# is its exit status. KILL leaves the temporary as a crash would.
signal_when_tmp() { # SIG DIR PATTERN cmd...
  local sig=$1 dir=$2 pat=$3 pid i; shift 3
  (trap - INT; exec "$@") > /dev/null 2>&1 &
  pid=$!
  track_pid "$pid"
  for i in $(seq 1 4000); do
    compgen -G "$dir/$pat" > /dev/null && break
    kill -0 "$pid" 2>/dev/null || fail "$* finished before its temporary was seen"
    sleep 0.005
  done
  compgen -G "$dir/$pat" > /dev/null || fail "no temporary $pat appeared in $dir"
  kill -"$sig" "$pid"
  rc=0; wait "$pid" 2>/dev/null || rc=$?
}

signal_when_tmp KILL "$R/data/dev" '.tmp-*' "$SQLENVFS" refresh-dev --root "$R"
left=$(cd "$R/data/dev" && ls -A | grep '^\.tmp-' | grep -v -- '-journal$' || true)
[ "$(wc -l <<<"$left")" -eq 1 ] || fail "expected one leftover in data/dev, got: $left"
[[ $left =~ ^\.tmp-refresh-app-[0-9]+$ ]] || fail "leftover name '$left' is not .tmp-refresh-app-<pid>"
for f in "$R/data/dev"/.tmp-*; do
  assert_eq "$(stat -c %a "$f")" "600" "mode of the leftover $f (production is 0600)"
done
pass "a killed refresh-dev leaves .tmp-refresh-app-<pid>, mode 0600"

rc=0; "$SQLENVFS" doctor --root "$R" --json > "$T/doctor.json" || rc=$?
python3 - "$T/doctor.json" "$left" <<'PY' || fail "doctor does not name the leftover: $(cat "$T/doctor.json")"
import json, sys
r = json.load(open(sys.argv[1]))
hits = [f for f in r["findings"] if f["check"] == "leftovers" and f["severity"] == "warning"
        and sys.argv[2] in f["found"] and "refresh-dev" in f["action"]]
sys.exit(0 if hits else 1)
PY
pass "doctor names the leftover and what removes it"

"$SQLENVFS" refresh-dev --root "$R" > /dev/null
[ -z "$(cd "$R/data/dev" && ls -A | grep '^\.tmp-' || true)" ] || fail "leftovers after the next refresh-dev: $(ls -A "$R/data/dev")"
assert_eq "$(sqlite3 "$D" 'SELECT name FROM _environment')" "development" "development marker"
assert_eq "$(stat -c %a "$D")" "600" "mode of development after a refresh from a 0600 production"
pass "the next refresh-dev removes the leftover and narrows development to production's mode"

# --- a killed restore -------------------------------------------------------
mkdir -p "$T/out"
signal_when_tmp KILL "$T/out" '.tmp-r.db-*' "$SQLENVFS" restore --root "$R" --time latest --output "$T/out/r.db"
left=$(cd "$T/out" && ls -A)
[[ $left =~ ^\.tmp-r\.db-[0-9]+$ ]] || fail "leftover of a killed restore is '$left'"
"$SQLENVFS" restore --root "$R" --time latest --output "$T/out/r.db" > /dev/null
assert_eq "$(cd "$T/out" && ls -A)" "r.db" "the output directory after the next restore"
pass "the next restore to the same output removes the leftover of a killed one"

# Ctrl-C (or SIGTERM, SIGHUP) is not kill -9: the restore removes its
# temporary, a copy of production in a directory nothing may ever clean.
mkdir -p "$T/intr"
for sig in INT TERM; do
  signal_when_tmp "$sig" "$T/intr" '.tmp-r.db-*' \
    "$SQLENVFS" restore --root "$R" --time latest --output "$T/intr/r.db"
  if [ "$rc" -eq 0 ]; then # it finished first (a slow machine): nothing to check
    note "the restore finished before SIG$sig"; rm -f "$T/intr/r.db"; continue
  fi
  assert_eq "$(cd "$T/intr" && ls -A)" "" "the output directory after SIG$sig to restore"
done
pass "an interrupted restore (SIGINT, SIGTERM) leaves nothing beside its output"

# backup, snapshot and refresh-dev too: each removes its temporaries (copies
# of production) and dies of the signal; production is only read.
# interrupted SIG DIR PATTERN cmd...: SIG once PATTERN appears in DIR.
interrupted() {
  local sig=$1 dir=$2 pat=$3 before left; shift 3
  before=$(md5sum < "$P")
  signal_when_tmp "$sig" "$dir" "$pat" "$@"
  [ "$rc" -eq $((128 + $(kill -l "$sig"))) ] ||
    fail "$2 exited with $rc after SIG$sig, not as killed by it"
  for d in "$dir" "$R/data/dev" "$R/.cache" "$R/backups/prod/daily" "$R/backups/prod/snapshots"; do
    [ -d "$d" ] || continue
    left=$(cd "$d" && ls -A | grep '^\.tmp-' || true)
    [ -z "$left" ] || fail "$2 left in $d after SIG$sig: $left"
  done
  assert_eq "$(md5sum < "$P")" "$before" "production after SIG$sig to $2"
}
n_daily=$(ls "$R/backups/prod/daily" 2>/dev/null | wc -l)
n_snap=$(ls "$R/backups/prod/snapshots" 2>/dev/null | wc -l)
SQLENVFS_TEST_STORE_DELAY_MS=50 interrupted INT "$R/backups/prod/daily" '.tmp-*' \
  "$SQLENVFS" backup --root "$R"
SQLENVFS_TEST_STORE_DELAY_MS=50 interrupted TERM "$R/backups/prod/snapshots" '.tmp-*' \
  "$SQLENVFS" snapshot --root "$R"
assert_eq "$(ls "$R/backups/prod/daily" | wc -l)" "$n_daily" "backups after SIGINT"
assert_eq "$(ls "$R/backups/prod/snapshots" | wc -l)" "$n_snap" "snapshots after SIGTERM"
dev_before=$(md5sum < "$D")
# A signal ignored on entry stays ignored in the command, as it should:
# under nohup (SIGHUP ignored, bit 0 of SigIgn) SIGTERM stands in for it.
hup=HUP
if (( 16#$(awk '/^SigIgn:/ {print $2}' /proc/$$/status) & 1 )); then
  note "SIGHUP is ignored here (nohup?): refresh-dev is interrupted by SIGTERM instead"
  hup=TERM
fi
interrupted "$hup" "$R/data/dev" '.tmp-refresh-app-*' "$SQLENVFS" refresh-dev --root "$R"
interrupted INT "$R/.cache" '.tmp-refresh-pitr-app-*' \
  "$SQLENVFS" refresh-dev --root "$R" --time latest
assert_eq "$(sqlite3 "$D" 'PRAGMA integrity_check')" "ok" "development after interrupted refreshes"
assert_eq "$(sqlite3 "$D" 'SELECT name FROM _environment')" "development" "development's marker"
pass "backup, snapshot and refresh-dev interrupted (SIGINT, SIGTERM, SIGHUP) leave no temporary"

# --- refresh-dev into a read-only data/dev: one line, the create that failed
mount --bind "$R/data/dev" "$R/data/dev"
_mounts+=("$R/data/dev")
mount -o remount,bind,ro "$R/data/dev"
expect_fail "create $R/data/dev/\.tmp-refresh-app-[0-9]+: Read-only file system" \
  "$SQLENVFS" refresh-dev --root "$R"
umount "$R/data/dev"
pass "refresh-dev into a read-only data/dev says so in one line"

# --- refresh-dev through a symlink -----------------------------------------
mv "$D" "$T/elsewhere.db"
ln -s "$T/elsewhere.db" "$D"
else_sum=$(md5sum < "$T/elsewhere.db")
expect_fail '^sqlenvfs refresh-dev: write development: [^ ]*data/dev/app.db is a symbolic link' \
  "$SQLENVFS" refresh-dev --root "$R"
assert_eq "$(md5sum < "$T/elsewhere.db")" "$else_sum" "the symlink's target after refresh-dev"
[ -L "$D" ] || fail "the symlink was replaced"
pass "refresh-dev refuses to write development through a symlink"

# --- another root's databases: refused as outputs, as this root's are ------
R9=$T/other-root
make_root "$R9" "$SRCDIR/schema.sql"
sqlite3 "$R9/data/prod/app.db" "PRAGMA wal_checkpoint(TRUNCATE)" > /dev/null
other_sum=$(md5sum < "$R9/data/prod/app.db")
expect_fail "that is in .*other-root/data/prod, where a root keeps the databases applications open" \
  "$SQLENVFS" restore --root "$R" --time latest --output "$R9/data/prod/app.db" --force
expect_fail "that is in .*other-root/data/dev, where a root keeps the databases" \
  "$SQLENVFS" recover "$R/data/prod/app.db" --output "$R9/data/dev/new.db"
assert_eq "$(md5sum < "$R9/data/prod/app.db")" "$other_sum" "the other root's production"
[ ! -e "$R9/data/dev/new.db" ] || fail "recover wrote into the other root's data/dev"
pass "restore and recover refuse another root's production and development as outputs"
