#!/usr/bin/env bash
# A full disk under the WAL archive loses nothing: the archiver reports the
# error, keeps its read transaction so that the WAL cannot be reset, and
# archives everything once there is room again — no gap (the time the disk
# was full is an outage: not recoverable, as the commits archived late cannot
# be placed in it), every restore in the windows exact.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
pitr_make_root "$R"
A=$R/backups/prod/wal_archives/app
mkdir -p "$A"
mount -t tmpfs -o size=3m sqlenvfs-test "$A" || fail "cannot mount a tmpfs (the tests run as root)"
_mounts+=("$A")
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

mount -o remount,size=300m "$A"
for i in $(seq 1 100); do grep -q 'archiving again; nothing was lost' "$T/a.err" && break; sleep 0.1; done
grep -q 'archiving again; nothing was lost' "$T/a.err" || fail "the archiver did not recover: $(tail -3 "$T/a.err")"
python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log" --duration 1 --no-vacuum \
  --k0 "$(awk '$1=="T"{k=$2} END{print k}' "$T/log")" >/dev/null
pitr_stop_archiver "$T/a"
grep -q 'GAP' "$T/a.err" && fail "a gap after the disk was full"
pass "with room again, everything is archived: no gap"

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
