#!/usr/bin/env bash
# A full disk under the WAL archive loses nothing: the archiver reports the
# error, keeps its read transaction so that the WAL cannot be reset, and
# archives everything once there is room again — no gap (the time the disk
# was full is an outage: not recoverable, as the commits archived late cannot
# be placed in it), every restore in the windows exact. While it archives
# them (held here with SIGSTOP once the archive has grown by a batch with
# room again, as a slow disk or a busy CPU would hold it), a time inside
# the outage must be refused by restore and absent from pitr/ (not answered
# with the state before the disk filled, which lacks the commits made
# before that time), and `latest` must be a state that the same time still
# names once everything is archived.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root M=$T/mnt
pitr_make_root "$R"
pitr_archive_tmpfs "$R" 3m
pitr_start_archiver "$R" "$T/a"

# Transactions until the 3 MB archive is full: a second of writing at a
# time (the archive compresses well, and a slow build writes less), each
# second continuing the keys of the one before.
python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log" --duration 3 --no-vacuum >/dev/null
for i in $(seq 1 30); do
  for _ in $(seq 1 10); do grep -q 'No space left on device' "$T/a.err" && break 2; sleep 0.1; done
  python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log" --duration 1 --no-vacuum \
    --k0 "$(awk '$1=="T"{k=$2} END{print k}' "$T/log")" >/dev/null
done
grep -q 'No space left on device.*the commits stay in the WAL' "$T/a.err" \
  || fail "the full disk was not reported: $(cat "$T/a.err")"
pass "the full disk is reported; the commits wait in the WAL"

# Three more seconds of commits while the disk is full: a time in the middle
# of them lies inside the outage, with commits that returned a second and
# more before it.
t_full=$(date +%s.%N)
python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log" --duration 3 --no-vacuum \
  --k0 "$(awk '$1=="T"{k=$2} END{print k}' "$T/log")" >/dev/null
t_mid=$(python3 -c "print('%.6f' % ($t_full + 2.0))")
lo=$(awk -v t="$t_mid" '$1 == "T" && $4 < t - 1.0 {k = $2} END {print k + 0}' "$T/log")
mount_root "$R" "$M" -o noarchiver
again() { grep -c 'archiving again; nothing was lost' "$T/a.err" || true; }
n_again=$(again)

# Room again; the archiver is stopped as soon as the archive has grown by
# more than a batch of records (the backlog is many batches).
pitr_watch_growth "$A" "$(cat "$T/a.pid")" 16384
mount -o remount,size=300m "$A"
wait $watch || fail "the archive did not grow with room again"
note "the archiver is held after the archive grew with room again"
[ "$(again)" -gt "$n_again" ] \
  && fail "the hold came after the backlog was archived, which leaves nothing to check:" \
    "$(tail -3 "$T/a.err")"
pitr_check_hold "$R" "$M" "$t_mid" "$lo" "the disk was full" "while the archiver catches up"
pass "while the archiver catches up after the full disk, the time it was full is refused"

kill -CONT "$(cat "$T/a.pid")"
for i in $(seq 1 100); do [ "$(again)" -gt "$n_again" ] && break; sleep 0.1; done
[ "$(again)" -gt "$n_again" ] || fail "the archiver did not recover: $(tail -3 "$T/a.err")"
python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log" --duration 1 --no-vacuum \
  --k0 "$(awk '$1=="T"{k=$2} END{print k}' "$T/log")" >/dev/null
pitr_stop_archiver "$T/a"
grep -q 'GAP' "$T/a.err" && fail "a gap after the disk was full"
pass "with room again, everything is archived: no gap"
pitr_check_held "$R" "$t_mid" "once everything is archived"
unmount_root "$M"
pass "latest while the archiver caught up is what its time names after it"

# The commits archived late carry the time they were archived: the time the
# disk was full is an outage (not recoverable), not a gap (nothing lost).
"$SQLENVFS" list --root "$R" --json > "$T/list.json"
python3 - "$T/list.json" <<'PY' || fail "windows: $(cat "$T/list.json")"
import json, sys
w = json.load(open(sys.argv[1]))["windows"]
assert len(w) == 2, w
assert w[0]["note"] == "archiving started", w
assert w[1]["note"].startswith("capture was interrupted from"), w
PY
python3 "$ORACLE" check --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --random 10 --around 6 --expect-latest
"$SQLENVFS" verify --root "$R" > /dev/null || fail "verify after the disk was full"
pass "restores exact across the time the disk was full; the archive verifies"
