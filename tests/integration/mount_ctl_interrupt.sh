#!/usr/bin/env bash
# A ctl write interrupted while its operation waits its turn (Ctrl-C on an
# `echo 1 > ctl/refresh-dev` queued behind a long backup): the write fails
# with EINTR at once and the operation never runs; reading the file and the
# log say so. (It used to go on waiting, not even SIGKILL could end the
# writer, and its operation ran when the backup was done.)
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root M=$T/mnt
make_root "$R" <(echo "CREATE TABLE t (x);")
P=$R/data/prod/app.db D=$R/data/dev/app.db
sqlite3 "$P" "INSERT INTO t VALUES ('only in production')"
# Each copy takes 10 s more: the backup below is running long after the
# writer behind it was interrupted.
export SQLENVFS_TEST_STORE_DELAY_MS=10000
mount_root "$R" "$M"
unset SQLENVFS_TEST_STORE_DELAY_MS
wait_archiving "$M"

( echo 1 > "$M/ctl/backup" ) & backup=$!
track_pid "$backup"
for i in $(seq 1 100); do
  ls -a "$R/backups/prod/daily" 2>/dev/null | grep -q '^\.tmp-' && break
  sleep 0.05
done
ls -a "$R/backups/prod/daily" | grep -q '^\.tmp-' || fail "the backup did not start"

# The writer says when its write is about to start; a background process
# ignores SIGINT unless it sets a handler again, as a shell in a terminal
# has one.
python3 - "$M/ctl/refresh-dev" "$T/writing" "$T/writer.out" <<'PY' & writer=$!
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
path, writing, out = sys.argv[1:4]
fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
open(writing, "w").close()
try:
    os.write(fd, b"1\n")
    result = "written"
except KeyboardInterrupt:
    result = "interrupted"
open(out, "w").write(result + "\n")
PY
track_pid "$writer"
for i in $(seq 1 100); do [ -e "$T/writing" ] && break; sleep 0.05; done
[ -e "$T/writing" ] || fail "the writer did not start"
sleep 2 # its write reaches the mount and waits behind the backup (a SIGINT before
        # the daemon has read the request ends it in the kernel, unseen by the daemon)
kill -INT "$writer"
for i in $(seq 1 40); do kill -0 "$writer" 2>/dev/null || break; sleep 0.1; done
kill -0 "$writer" 2>/dev/null && fail "the writer still waits 4 s after SIGINT"
wait "$writer" || true
assert_eq "$(cat "$T/writer.out")" "interrupted" "the interrupted write"
kill -0 "$backup" 2>/dev/null || fail "the backup was over before the writer was interrupted"
wait "$backup" || fail "the backup ahead of the interrupted write failed"
grep -q "^ok .* backup: " "$M/ctl/backup" || fail "ctl/backup: $(cat "$M/ctl/backup")"

# The operation never ran: development does not hold production's row.
sleep 0.5
assert_eq "$(sqlite3 "$D" "SELECT count(*) FROM t")" "0" "rows in development"
line=$(cat "$M/ctl/refresh-dev")
echo "$line" \
  | grep -q "^never run since the mount started .*; last write refused .* (EINTR): .*interrupted" \
  || fail "ctl/refresh-dev after the interrupted write: $line"
grep -q "ctl/refresh-dev: not run: its writer was interrupted" "$R/.sqlenvfs/mount.log" \
  || fail "the log does not say why: $(tail -5 "$R/.sqlenvfs/mount.log")"
pass "a ctl write interrupted while it waits its turn fails with EINTR and runs nothing"

# A write not interrupted still runs.
echo 1 > "$M/ctl/refresh-dev"
assert_eq "$(sqlite3 "$D" "SELECT count(*) FROM t")" "1" "rows in development after refresh-dev"
pass "the next write runs the operation"

unmount_root "$M"
