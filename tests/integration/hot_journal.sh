#!/usr/bin/env bash
# Production in rollback-journal mode with a hot journal: an application
# died in the middle of a transaction whose changes had already spilled
# into the file. The -journal is what makes the file whole again, and the
# first read-write open plays it back: a write. Every command that reads
# production refuses such a database, or reads it read-only, and leaves the
# file and its journal byte for byte as they were, saying why; the doctor
# says to let the application open it, not to restore it. Afterwards the
# application's own open rolls the transaction back and every committed row
# is there.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root M=$T/mnt
make_root "$R" "$SRCDIR/schema.sql"
P=$R/data/prod/app.db

files_sum() { cat "$P" "$P-journal" | md5sum; }
leave_hot_journal "$P"
before=$(files_sum)

# check WHAT PATTERN CMD...: CMD fails, says PATTERN, and leaves production
# as it was.
check() {
  local what=$1 pattern=$2 rc=0
  shift 2
  "$@" > "$T/out" 2>&1 || rc=$?
  [ "$rc" -ne 0 ] || fail "$what succeeded on a database with a hot journal: $(cat "$T/out")"
  # (the doctor wraps its lines)
  tr -s ' \n' '  ' < "$T/out" | grep -Eq "$pattern" || fail "$what does not say why: $(cat "$T/out")"
  assert_eq "$(files_sum)" "$before" "production and its -journal after $what"
}
not_wal="journal mode '?delete'?,? not WAL"
check backup "$not_wal" "$SQLENVFS" backup --root "$R"
check snapshot "$not_wal" "$SQLENVFS" snapshot --root "$R"
check refresh-dev "$not_wal" "$SQLENVFS" refresh-dev --root "$R"
check checkpoint "rollback-journal mode, not WAL.*not opened" "$SQLENVFS" checkpoint --root "$R"
check info "hot journal \(.*app.db-journal\).*left as it is" "$SQLENVFS" info --root "$R"
check "verify --drill" "journal mode delete, not WAL" "$SQLENVFS" verify --drill --root "$R"
check doctor "WARN open cannot read .*hot journal" "$SQLENVFS" doctor --root "$R"
tr -s ' \n' '  ' < "$T/out" | grep -q "let its application open it" || fail "doctor's advice: $(cat "$T/out")"
if grep -q "restore it from a backup" "$T/out"; then
  fail "the doctor tells to restore a database that is whole with its journal: $(cat "$T/out")"
fi
check "doctor --full" "hot journal" "$SQLENVFS" doctor --full --root "$R"

# The archiver: refuses it and keeps running.
"$SQLENVFS" archive --root "$R" > "$T/archive.out" 2>&1 &
track_pid $!
archiver=$!
for _ in $(seq 100); do grep -q "not in WAL mode" "$T/archive.out" && break; sleep 0.1; done
kill "$archiver"
wait "$archiver" || true
grep -q "app.db is not in WAL mode (journal_mode=delete)" "$T/archive.out" \
  || fail "the archiver does not say why: $(cat "$T/archive.out")"
assert_eq "$(files_sum)" "$before" "production and its -journal after the archiver"

# The mount: prod/app.db listed, its open refused.
mount_root "$R" "$M"
[ -e "$M/prod/app.db" ] || fail "prod/app.db is not listed"
if cat "$M/prod/app.db" > /dev/null 2>&1; then fail "prod/app.db was served"; fi
unmount_root "$M"
grep -q "app.db is not in WAL mode (journal_mode=delete)" "$R/.sqlenvfs/mount.log" \
  || fail "the mount's log does not say why prod/app.db is not served"
assert_eq "$(files_sum)" "$before" "production and its -journal after the mount"
pass "every command leaves a production database with a hot journal as it is, and says why"

# The application's own open rolls the transaction back: nothing lost.
assert_eq "$(sqlite3 "$P" "SELECT count(*), count(DISTINCT v LIKE 'committed%') FROM hot; PRAGMA integrity_check")" \
  "$(printf '2000|1\nok')" "production after its application opened it"
[ ! -s "$P-journal" ] || fail "the journal was not played back"
pass "its application's next open rolls the cut transaction back: every committed row is there"
