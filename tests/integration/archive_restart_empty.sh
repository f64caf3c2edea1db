#!/usr/bin/env bash
# An archiver killed (SIGKILL) before anything was archived, then restarted:
# production untouched, the restart goes on with the same chain and its
# base (a database never written keeps one window and one snapshot across
# restarts, not one more of each per restart); production written and
# checkpointed while no archiver ran, with no commit in the archive to be
# continuous with, the restart is a first start again (a clean chain and
# its base snapshot), not a gap; the starts take their base snapshots
# without a failure message; the archive then restores what comes next.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
pitr_make_root "$R"
nsnap() { ls "$R/backups/prod/snapshots" | wc -l; }

pitr_start_archiver "$R" "$T/a1"
grep -q 'archiver app: capturing (first start' "$T/a1.err" || fail "no first start: $(cat "$T/a1.err")"
# Killed once its window is recoverable (the snapshot taken, and the
# archive alive past it); killed before, a restart takes its base again.
nwin() {
  "$SQLENVFS" list --root "$R" --json 2>/dev/null |
    python3 -c 'import json,sys; print(sum(1 for w in json.load(sys.stdin)["windows"] if w["database"] == "app"))'
}
for i in $(seq 1 100); do [ "$(nwin)" = 1 ] && break; sleep 0.1; done
assert_eq "$(nwin)" 1 "windows after the first start"
kill -9 "$(cat "$T/a1.pid")"
wait "$(cat "$T/a1.pid")" 2>/dev/null || true
assert_eq "$(nsnap)" 1 "snapshots after the first start"

for n in 2 3; do
  pitr_start_archiver "$R" "$T/a$n"
  if grep -q 'GAP' "$T/a$n.err"; then cat "$T/a$n.err" >&2; fail "a restart with nothing archived reported a gap"; fi
  grep -q 'archiver app: capturing (resumed without a gap' "$T/a$n.err" ||
    fail "restart $n of a database never written does not go on: $(cat "$T/a$n.err")"
  pitr_stop_archiver "$T/a$n"
done
assert_eq "$(nsnap)" 1 "snapshots after two restarts of a database never written"
assert_eq "$(nwin)" 1 "windows after two restarts of a database never written"
pass "production never written: each restart goes on with the one chain and its snapshot"

# Written and checkpointed while no archiver ran: nothing archived to be
# continuous with, so a first start again.
sqlite3 "$R/data/prod/app.db" "INSERT INTO tx(kind, payload, crc) VALUES ('unarchived', x'00', 0);
  PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
pitr_start_archiver "$R" "$T/a4"
if grep -q 'GAP' "$T/a4.err"; then cat "$T/a4.err" >&2; fail "a restart with nothing archived reported a gap"; fi
grep -q 'archiver app: capturing (first start' "$T/a4.err" ||
  fail "the restart after a write is not a first start: $(cat "$T/a4.err")"
assert_eq "$(nsnap)" 2 "snapshots after the restart that follows a write"
pass "written while stopped, before anything was archived: the restart is a first start, not a gap"

sqlite3 "$R/data/prod/app.db" "INSERT INTO tx(kind, payload, crc) VALUES ('after the restart', x'00', 0)"
pitr_stop_archiver "$T/a4"
grep -Eq '^app: .*, 0 gaps' "$T/a4.out" || fail "the summary counts a gap: $(cat "$T/a4.out")"
notes=$("$SQLENVFS" list --root "$R" --json | python3 -c 'import json,sys; print("\n".join(w.get("note") or "" for w in json.load(sys.stdin)["windows"] if w["database"] == "app"))')
if grep -q 'gap' <<< "$notes"; then fail "a window says gap: $notes"; fi
"$SQLENVFS" restore --root "$R" --db app --time latest --output "$T/app.db" >/dev/null
assert_eq "$(sqlite3 "$T/app.db" "SELECT count(*) FROM tx WHERE kind = 'after the restart'")" 1 \
  "the commit after the restart, restored"
pass "no gap in the summary nor in the windows; the commit after the restart restores"

for f in "$T"/a[1-4].err; do
  if grep -q 'snapshot.*failed' "$f"; then cat "$f" >&2; fail "a first start's snapshot failed ($f)"; fi
done
pass "each first start took its base snapshot without a failure"

# A first start whose snapshot cannot be taken (its directory is a file)
# says so as what it is, not as a gap.
R2=$T/root2
pitr_make_root "$R2"
rm -rf "$R2/backups/prod/snapshots"
touch "$R2/backups/prod/snapshots"
"$SQLENVFS" archive --root "$R2" > "$T/b.out" 2> "$T/b.err" &
echo $! > "$T/b.pid"
track_pid "$(cat "$T/b.pid")"
for i in $(seq 1 100); do grep -q 'snapshot.*failed' "$T/b.err" && break; sleep 0.1; done
line=$(grep 'snapshot.*failed' "$T/b.err") || fail "no report of the failed snapshot: $(cat "$T/b.err")"
grep -q 'archiver app: the snapshot that starts its recoverable window (archiving started) failed: .*snapshots is not a directory' <<< "$line" ||
  fail "the failed first snapshot is not reported as such: $line"
if grep -qi 'gap' <<< "$line"; then fail "a first start's failed snapshot is called a gap: $line"; fi
pass "a first start's failed snapshot is reported as the first one, not as after a gap"

# While it waits to try again (30 s), the directory is put right and
# production replaced: the new chain's snapshot is taken at once, and once.
rm "$R2/backups/prod/snapshots"
mkdir -m 0755 "$R2/backups/prod/snapshots"
"$SQLENVFS" init --root "$R2" --force >/dev/null 2>&1 || fail "init --force"
for i in $(seq 1 100); do
  [ "$(ls "$R2/backups/prod/snapshots" | wc -l)" -ge 1 ] && break
  sleep 0.1
done
assert_eq "$(ls "$R2/backups/prod/snapshots" | wc -l)" 1 \
  "snapshots 10 s after the new chain (the retry was 30 s away)"
sleep 2
assert_eq "$(ls "$R2/backups/prod/snapshots" | wc -l)" 1 "snapshots 2 s after that"
pitr_stop_archiver "$T/b"
pass "a new chain's snapshot during the retry wait is taken at once, and once"
