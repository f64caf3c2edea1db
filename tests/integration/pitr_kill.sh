#!/usr/bin/env bash
# The archiver killed with SIGKILL in the middle of a run and restarted,
# twice, while the writer goes on:
#   1. while only small transactions are committed (the WAL cannot restart):
#      the restart resumes without a gap; the downtime is reported as an
#      outage (times inside it refused) unless nothing was committed;
#   2. while the application truncates the WAL: frames may be lost, so the
#      restart reports a gap and takes a fresh snapshot.
# Restores inside the reported windows must be exact, restores outside them
# refused. A second archiver on the same root is refused while one runs.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
pitr_make_root "$R"
# No checkpoints of the archiver's own: after a complete one the next
# commit restarts the WAL, and a kill before that restart is captured is a
# true gap (nothing tells what the old WAL held past the last archived
# frame), which would make phase 1 below report one.
sed -i 's/^checkpoint-pages=.*/checkpoint-pages=1000000/' "$R/sqlenvfs.conf"
pitr_start_archiver "$R" "$T/a1"

# archived_past T: the archive's alive time (capture known complete up to
# it, in microseconds) is past T (seconds).
archived_past() {
  python3 - "$R/backups/prod/wal_archives/app/alive" "$1" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
sys.exit(0 if data[:8] == b"SQEFSALV" and struct.unpack_from("<q", data, 8)[0] > float(sys.argv[2]) * 1e6 else 1)
PY
}

expect_fail 'already held by process' "$SQLENVFS" archive --root "$R"
pass "a second archiver on the same root is refused"

# The writer runs until told to stop; each phase waits for the commits it
# needs, counted in the writer's log.
python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log" --duration 600 \
  --stop-file "$T/stop" --quiet-file "$T/quiet" --truncate-file "$T/truncate" --no-vacuum &
WPID=$!
track_pid $WPID

# 1: a quiet phase (the second commit after the file appears is small, as
# are all after it); kill -9 inside it, and commits while it is down.
pitr_wait_commits "$T/log" 60
touch "$T/quiet"
pitr_wait_commits "$T/log" $(( $(pitr_commits "$T/log") + 2 ))
# Killed once everything before (a checkpoint of the application's, and
# the WAL restart after it) is archived: from here on only small commits
# are made and nothing checkpoints, so the WAL cannot restart.
t_quiet=$(awk '/^T /{t=$4} END{print t}' "$T/log")
for _ in $(seq 1 300); do archived_past "$t_quiet" && break; sleep 0.1; done
archived_past "$t_quiet" || fail "the archiver did not archive the quiet phase's start within 30 s"
kill -9 "$(cat "$T/a1.pid")"
wait "$(cat "$T/a1.pid")" 2>/dev/null || true
pitr_wait_commits "$T/log" $(( $(pitr_commits "$T/log") + 10 ))
pitr_start_archiver "$R" "$T/a2"
rm -f "$T/quiet"
grep -q 'GAP' "$T/a2.err" && { cat "$T/a2.err"; fail "a restart after a quiet outage reported a gap"; }
grep -q 'capture was interrupted' "$T/a2.err" || fail "the outage was not reported: $(cat "$T/a2.err")"
pass "restart 1: resumed without a gap, outage reported"

# 2: kill -9 during heavy writes (past at least one big transaction, every
# 40th), truncate the WAL while it is down, and commit after the truncation.
pitr_wait_commits "$T/log" $(( $(pitr_commits "$T/log") + 60 ))
kill -9 "$(cat "$T/a2.pid")"
wait "$(cat "$T/a2.pid")" 2>/dev/null || true
touch "$T/truncate"
for i in $(seq 1 100); do [ -e "$T/truncate" ] || break; sleep 0.05; done
[ ! -e "$T/truncate" ] || fail "the writer did not truncate the WAL"
pitr_wait_commits "$T/log" $(( $(pitr_commits "$T/log") + 10 ))
pitr_start_archiver "$R" "$T/a3"
grep -q 'GAP' "$T/a3.err" || fail "a restart after a WAL truncation reported no gap: $(cat "$T/a3.err")"
pass "restart 2: the gap is reported and a snapshot taken"

pitr_wait_commits "$T/log" $(( $(pitr_commits "$T/log") + 20 ))
touch "$T/stop"
wait $WPID
pitr_stop_archiver "$T/a3"

"$SQLENVFS" list --root "$R" | sed -n '/recoverable/,$p' | sed 's/^/# /'
n=$("$SQLENVFS" list --root "$R" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["windows"]))')
[ "$n" -ge 3 ] || fail "expected at least 3 windows (outage and gap), got $n"
python3 "$ORACLE" check --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --random 14 --around 6 --expect-latest
pass "restores inside the windows exact, outside refused"

"$SQLENVFS" verify --root "$R" > "$T/verify.out" || { cat "$T/verify.out"; fail "verify"; }
pass "verify: the archive is good after two kills"
