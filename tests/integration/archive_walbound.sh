#!/usr/bin/env bash
# [archive] max-wal-bytes bounds what a failing archive costs production: while
# the archive cannot be written the archiver holds the WAL (nothing is lost),
# but once the WAL passes the limit it lets go, so that the application's
# checkpoints reset the WAL and it stops growing. When the archive can be
# written again, the lost stretch is a gap, a fresh snapshot starts a new
# window, and every restore in the windows is exact.
# BOUND=room (archive_walroom.sh): the same with no max-wal-bytes, production
# on a filesystem of its own, and [cache] min-free-bytes as the bound: the
# WAL is let go before it takes the room production keeps for its commits.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

BOUND=${BOUND:-max}
LIMIT=$((4 * 1024 * 1024))
MIN=$((16 * 1024 * 1024))
R=$T/root
pitr_make_root "$R"
if [ "$BOUND" = max ]; then
  echo "max-wal-bytes=$LIMIT" >> "$R/sqlenvfs.conf" # pitr_make_root ends with [archive]
  # This bound alone, whatever is free here.
  printf '[cache]\nmin-free-bytes=0\n' >> "$R/sqlenvfs.conf"
  BOUND_NAME="past [archive] max-wal-bytes (4.0 MiB)"
else
  printf '[cache]\nmin-free-bytes=%s\n' "$MIN" >> "$R/sqlenvfs.conf"
  BOUND_NAME="less than [cache] min-free-bytes (16.0 MiB)"
  P=$R/data/prod
  mv "$P" "$T/prod0"
  mkdir "$P"
  mount -t tmpfs -o size=64m sqlenvfs-test "$P" || fail "cannot mount a tmpfs (the tests run as root)"
  _mounts+=("$P")
  cp -a "$T/prod0/." "$P/"
  prod_avail() { df -B1 --output=avail "$P" | tail -1; }
  # 8 MiB above the minimum: the WAL held reaches it within seconds.
  fallocate -l $(( $(prod_avail) - MIN - 8 * 1024 * 1024 )) "$P/filler"
fi
BOUND_SAID=$(printf '%s' "$BOUND_NAME" | sed 's/[][]/\\&/g') # as a grep pattern
A=$R/backups/prod/wal_archives/app
mkdir -p "$A"
mount -t tmpfs -o size=3m sqlenvfs-test "$A" || fail "cannot mount a tmpfs (the tests run as root)"
_mounts+=("$A")
pitr_start_archiver "$R" "$T/a"
WAL=$R/data/prod/app.db-wal
k_last() { awk '$1=="T"{k=$2} END{print k}' "$T/log"; }
write_for() { # seconds
  python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log" --duration "$1" \
    --no-vacuum ${2:+--k0 "$2"} >/dev/null
}

# Write until the archive is full, then on until the WAL passes the limit.
write_for 2
for i in $(seq 1 60); do
  grep -q 'letting go of the WAL' "$T/a.err" && break
  write_for 1 "$(k_last)"
done
grep -q 'No space left on device' "$T/a.err" || fail "the full disk was not reported: $(cat "$T/a.err")"
grep -q 'the commits stay in the WAL' "$T/a.err" \
  || fail "the archiver did not hold the WAL first: $(cat "$T/a.err")"
grep -q "production's WAL grew to .*, .*$BOUND_SAID: letting go of the WAL" \
  "$T/a.err" || fail "the archiver did not let go of the WAL: $(tail -5 "$T/a.err")"
pass "the WAL is held while the archive is full, and let go $BOUND_NAME"

# Let go, it stops growing: the application's checkpoints reset it. One
# writer, sampled while it commits 800 more transactions: some 20 MB of
# pages (every 40th commit rewrites the 900 KB big table), which a WAL still
# held would have to hold.
n1=$(pitr_commits "$T/log")
python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log" --duration 120 --no-vacuum \
  --k0 "$(k_last)" --stop-file "$T/stop" >/dev/null &
wpid=$!
track_pid "$wpid"
smax=0
low=$( [ "$BOUND" = room ] && prod_avail || echo 0)
for i in $(seq 1 1200); do
  s=$(stat -c %s "$WAL" 2>/dev/null || echo 0)
  [ "$s" -gt "$smax" ] && smax=$s
  if [ "$BOUND" = room ]; then
    a=$(prod_avail)
    [ "$a" -lt "$low" ] && low=$a
  fi
  [ "$(pitr_commits "$T/log")" -ge $((n1 + 800)) ] && break
  sleep 0.05
done
touch "$T/stop"
wait "$wpid" || fail "the writer failed"
rm -f "$T/stop"
[ "$(pitr_commits "$T/log")" -ge $((n1 + 800)) ] || fail "the writer did not commit 800 transactions"
if [ "$BOUND" = max ]; then
  [ "$smax" -le $((2 * LIMIT)) ] \
    || fail "the WAL went on growing after it was let go: $smax bytes at most, over 800 commits"
  pass "the WAL stays within $smax bytes over 800 more commits"
else
  [ "$low" -ge $((MIN - 6 * 1024 * 1024)) ] \
    || fail "the WAL went on growing into production's room: $low bytes free at the lowest"
  pass "production's filesystem keeps at least $low bytes free over 800 more commits"
fi
# Retried every 2 s, a failure is logged once (the release, perhaps one
# line more when the retry fails at another file): after a retry, the log
# does not grow while the archive stays full.
sleep 2.5
n_before=$(wc -l < "$T/a.err")
sleep 4.5
n_after=$(wc -l < "$T/a.err")
[ "$n_after" -eq "$n_before" ] ||
  fail "the retries fill the log: $(tail -n +$((n_before + 1)) "$T/a.err")"
n_retry=$(grep -c 'retrying every 2 s' "$T/a.err" || true)
[ "$n_retry" -ge 1 ] || fail "no retry logged: $(tail -3 "$T/a.err")"
[ "$n_retry" -le 2 ] || fail "the retries fill the log: $n_retry lines"

# With room again: a gap (the WAL restarted meanwhile) whose record says why,
# a fresh snapshot, and capture as before.
n_snap=$(ls "$R/backups/prod/snapshots" | wc -l)
mount -o remount,size=300m "$A"
for i in $(seq 1 150); do
  grep -q 'capturing (a new chain after a gap' "$T/a.err" \
    && [ "$(ls "$R/backups/prod/snapshots" | wc -l)" -gt "$n_snap" ] && break
  sleep 0.1
done
grep -q "GAP: .*the archiver let go of the WAL at .*$BOUND_SAID" "$T/a.err" \
  || fail "no gap naming the release: $(tail -5 "$T/a.err")"
[ "$(ls "$R/backups/prod/snapshots" | wc -l)" -gt "$n_snap" ] \
  || fail "no snapshot after the gap: $(tail -5 "$T/a.err")"
write_for 1 "$(k_last)"
pitr_stop_archiver "$T/a"
pass "with room again: a gap naming the release, a fresh snapshot"

"$SQLENVFS" list --root "$R" --json > "$T/list.json"
python3 - "$T/list.json" <<'PY' || fail "windows: $(cat "$T/list.json")"
import json, sys
w = json.load(open(sys.argv[1]))["windows"]
assert len(w) >= 2, w
assert any("let go of the WAL" in x["note"] for x in w[1:]), w
PY
python3 "$ORACLE" check --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --random 10 --around 6 --expect-latest
"$SQLENVFS" verify --root "$R" > /dev/null || fail "verify after the release"
pass "restores exact in the windows on both sides of the gap; the archive verifies"
