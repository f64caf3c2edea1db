#!/usr/bin/env bash
# The alive file of another archive put over this one's (a replica's
# objects mixed, a directory copied back): it names a record number far
# behind this archive's last, with a later time. It must not extend the
# recoverable window: a restore at a time past this archive's last record,
# when production went on with no archiver, is refused, never given the
# last archived state as if nothing had been committed since.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

A=backups/prod/wal_archives/app
R=$T/root O=$T/other
pitr_make_root "$R"
pitr_make_root "$O"
window_end() { # ROOT: the end of its last recoverable window, in seconds
  "$SQLENVFS" list --root "$1" --json | python3 -c '
import datetime, json, sys
t = json.load(sys.stdin)["windows"][-1]["to"].replace("Z", "+00:00")
print("%.6f" % datetime.datetime.fromisoformat(t).timestamp())'
}
later() { python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)' "$1" "$2"; }

pitr_start_archiver "$R" "$T/a1"
pitr_write "$R" "$T/log" 2
pitr_stop_archiver "$T/a1"
end=$(window_end "$R")
# Production goes on with no archiver: commits no archive has.
pitr_write "$R" "$T/log" 1 "$(pitr_last_k "$T/log")"
after=$(pitr_last_time "$T/log")
# Another root archives a few commits, later.
pitr_start_archiver "$O" "$T/a2"
pitr_write "$O" "$T/olog" 0.3
sleep 1
pitr_stop_archiver "$T/a2"
later "$(window_end "$O")" "$end" || fail "the other root's window does not end later"

"$SQLENVFS" restore --root "$R" --time "@$after" --output "$T/before.db" > /dev/null 2>&1 &&
  fail "a time past the archive's last record restored before anything was copied"
cp "$R/$A/alive" "$T/alive.own"
cp "$O/$A/alive" "$R/$A/alive"
! later "$(window_end "$R")" "$end" ||
  fail "another archive's alive file moved the window's end to $(window_end "$R") (was $end)"
expect_fail "is after the latest archived time" \
  "$SQLENVFS" restore --root "$R" --time "@$after" --output "$T/after.db"
[ ! -e "$T/after.db" ] || fail "a restore past the archive's last record wrote a file"
cp "$T/alive.own" "$R/$A/alive"
assert_eq "$(window_end "$R")" "$end" "the window's end with its own alive file back"
pass "another archive's alive file does not extend the window; a time past the last record is refused"
