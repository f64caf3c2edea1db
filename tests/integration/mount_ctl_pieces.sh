#!/usr/bin/env bash
# A line written to a ctl file in pieces, as a program writing to an
# unbuffered file does (Go's os.File: fmt.Fprint(f, "dry-run") then
# fmt.Fprintln(f)): the blanks and line ending that follow a write on the
# same open file end that line; they are not a second line, which, empty,
# would run the operation on every database (a real prune after a dry run).
# Every write is still its own request: a second line on the same open
# file runs again, and a write of an empty line on an open file of its own
# runs the operation as before.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root M=$T/mnt
make_root "$R" <(echo "CREATE TABLE t (x);")
mount_root "$R" "$M"
wait_archiving "$M"

writes() { # file, then each write's text (Python escapes)
  python3 - "$@" <<'PY'
import ast, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
for text in sys.argv[2:]:
    os.write(fd, ast.literal_eval('"' + text + '"').encode())
os.close(fd)
PY
}
count() { grep -c "message: $1: " "$R/.sqlenvfs/mount.log" || true; }

# --- "dry-run", then its line ending: one dry run, no prune
writes "$M/ctl/prune" 'dry-run' '\n' || fail "prune written in two pieces"
grep -q "^ok .* prune: dry run, would remove:" "$M/ctl/prune" \
  || fail "a line ending after dry-run ran a real prune: $(cat "$M/ctl/prune")"
assert_eq "$(count prune)" "1" "prunes run for one line in two pieces"

# --- "1" and a long run of blanks in pieces: one backup
writes "$M/ctl/backup" '1' '      ' '\t' ' \r\n' || fail "backup written in pieces"
assert_eq "$(ls "$M/backups" | wc -l)" "1" "backups after one line in four pieces"
assert_eq "$(count backup)" "1" "backups run for one line in four pieces"
pass "blanks and a line ending after a write on the same open file end its line"

# --- every other write is a request of its own, as before
writes "$M/ctl/checkpoint" '1\n' '1\n' || fail "two lines on one open file"
assert_eq "$(count checkpoint)" "2" "checkpoints run for two lines on one open file"
echo > "$M/ctl/snapshot" || fail "an empty line to ctl/snapshot"
n=$(count snapshot)
[ "$n" -ge 1 ] || fail "an empty line did not run a snapshot"
writes "$M/ctl/snapshot" 'nosuch' '\n' 2> "$T/err" && fail "a piece naming no database succeeded"
grep -q "Invalid argument" "$T/err" || fail "a piece naming no database: $(cat "$T/err")"
assert_eq "$(count snapshot)" "$n" "snapshots after a refused piece"
pass "other writes are requests of their own"

unmount_root "$M"
