#!/usr/bin/env bash
# An archiver started again (after kill -9, a crash, a reboot) while the
# archive's disk is still full cannot finish its start (it writes the last
# segment's index again), and retries. It once let go of the WAL between
# retries: the application's checkpoints then restarted it, and what was
# committed meanwhile was lost to the archive (a gap). Now it keeps the read
# transaction of its failed start, as a running archiver keeps its own: with
# room again everything is archived, no gap, every restore exact.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
pitr_make_root "$R"
pitr_archive_tmpfs "$R" 3m
pitr_start_archiver "$R" "$T/a"
k0() { awk '$1=="T"{k=$2} END{print k+0}' "$T/log"; }
python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log" --duration 2 --no-vacuum >/dev/null
for i in $(seq 1 30); do
  grep -q 'No space left on device' "$T/a.err" && break
  python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log" --duration 1 --no-vacuum \
    --k0 "$(k0)" >/dev/null
done
grep -q 'No space left on device' "$T/a.err" || fail "the disk did not fill: $(cat "$T/a.err")"
kill -9 "$(cat "$T/a.pid")"
wait "$(cat "$T/a.pid")" 2>/dev/null || true

# Started again on the full disk: its start fails, and is retried.
"$SQLENVFS" archive --root "$R" > "$T/b.out" 2> "$T/b.err" &
echo $! > "$T/b.pid"
track_pid "$(cat "$T/b.pid")"
wait_log "$T/b.err" 'No space left on device'
# Commits meanwhile, many more than SQLite's automatic checkpoint of 1000
# pages: without the read transaction kept, they restart the WAL.
python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log" --duration 3 --no-vacuum \
  --k0 "$(k0)" >/dev/null
grep -q 'capturing' "$T/b.err" && fail "the archiver started on a full disk: $(cat "$T/b.err")"
mount -o remount,size=300m "$A"
for _ in $(seq 1 150); do grep -q 'archiver app: capturing' "$T/b.err" && break; sleep 0.1; done
grep -q 'archiver app: capturing (resumed without a gap' "$T/b.err" ||
  fail "the archiver did not resume without a gap: $(cat "$T/b.err")"
python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log" --duration 1 --no-vacuum \
  --k0 "$(k0)" >/dev/null
pitr_stop_archiver "$T/b"
grep -q 'GAP' "$T/b.err" && fail "a gap after the start on a full disk: $(grep GAP "$T/b.err")"
pass "an archiver started on a full disk keeps the WAL until there is room: no gap"
python3 "$ORACLE" check --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --random 10 --around 6 --expect-latest
"$SQLENVFS" verify --root "$R" > /dev/null || fail "verify after the start on a full disk"
pass "restores exact across the start on a full disk; the archive verifies"
