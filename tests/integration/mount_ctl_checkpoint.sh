#!/usr/bin/env bash
# ctl/checkpoint against an application that checkpoints on its own: a write
# to ctl/checkpoint while the application runs `PRAGMA wal_checkpoint
# (TRUNCATE)` in a loop completes in bounded time (it used to wait 30 s for
# the write lock, holding up the archiver and the application's own
# checkpoints meanwhile, then fail with EBUSY); a checkpoint that a reader
# keeps from completing fails within seconds with EBUSY, and its result and
# the log say what was in the way and what to do, naming a file open under
# the mount's own prod/ and its opener when that is the reader.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root M=$T/mnt
make_root "$R" <(echo "CREATE TABLE t (x);")
P=$R/data/prod/app.db
mount_root "$R" "$M"
wait_archiving "$M"

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# --- an application that commits and runs TRUNCATE checkpoints in a loop,
# --- while a shell writes to ctl/checkpoint again and again
python3 - "$P" "$T/stop" "$T/app.out" <<'PY' & app=$!
import os, sqlite3, sys, time
db, stop, out = sys.argv[1:4]
con = sqlite3.connect(db, isolation_level=None, timeout=5)
rounds = busy = 0
longest = 0.0
while not os.path.exists(stop):
    for i in range(3):
        con.execute("INSERT INTO t VALUES (?)", ("x" * 200,))
    t0 = time.monotonic()
    r = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    longest = max(longest, time.monotonic() - t0)
    rounds += 1
    busy += r[0] != 0
open(out, "w").write("%d %d %.3f\n" % (rounds, busy, longest))
PY
track_pid "$app"

n=0 worst=0 start=$(now_ms)
while [ "$n" -lt 40 ] && [ $(( $(now_ms) - start )) -lt 20000 ]; do
  t0=$(now_ms)
  err=$(bash -c "echo 1 > '$M/ctl/checkpoint'" 2>&1) \
    || fail "write $n to ctl/checkpoint failed after $(( $(now_ms) - t0 )) ms: $err;" \
            "$(cat "$M/ctl/checkpoint")"
  dt=$(( $(now_ms) - t0 ))
  [ "$dt" -gt "$worst" ] && worst=$dt
  [ "$dt" -lt 10000 ] || fail "write $n to ctl/checkpoint took $dt ms"
  n=$((n + 1))
done
touch "$T/stop"
wait "$app" || fail "the application failed"
read -r rounds busy longest < "$T/app.out"
note "$n ctl/checkpoint writes, the longest $worst ms; the application: $rounds rounds," \
     "$busy TRUNCATE checkpoints busy, the longest took $longest s"
[ "$rounds" -gt 0 ] || fail "the application did not run"
grep -q "^ok .* checkpoint: " "$M/ctl/checkpoint" \
  || fail "ctl/checkpoint: $(cat "$M/ctl/checkpoint")"
# Its busy timeout is 5 s: a TRUNCATE checkpoint that waited that long
# waited for the archiver, which moves its read mark every 0.1 s.
python3 -c "import sys; sys.exit(float(sys.argv[1]) >= 4.5)" "$longest" \
  || fail "an application's TRUNCATE checkpoint waited $longest s"
assert_eq "$(sqlite3 "$P" 'PRAGMA integrity_check')" "ok" "production's integrity"
pass "ctl/checkpoint completes while the application runs TRUNCATE checkpoints"

# --- a reader keeps the checkpoint from completing: EBUSY within seconds,
# --- saying what is in the way and what to do
python3 - "$P" "$T/ready" "$T/stop2" <<'PY' & holder=$!
import os, sqlite3, sys, time
db, ready, stop = sys.argv[1:4]
w = sqlite3.connect(db, isolation_level=None)
w.execute("PRAGMA wal_autocheckpoint=0")
for i in range(20):
    w.execute("INSERT INTO t VALUES (?)", (i,))
r = sqlite3.connect(db, isolation_level=None)
r.execute("BEGIN")
r.execute("SELECT count(*) FROM t").fetchone()
for i in range(20):
    w.execute("INSERT INTO t VALUES (?)", (i,))
w.execute("BEGIN IMMEDIATE")
open(ready, "w").close()
deadline = time.monotonic() + 120
while not os.path.exists(stop) and time.monotonic() < deadline:
    time.sleep(0.05)
w.execute("ROLLBACK")
r.execute("ROLLBACK")
PY
track_pid "$holder"
for i in $(seq 1 100); do [ -e "$T/ready" ] && break; sleep 0.1; done
[ -e "$T/ready" ] || fail "the reader did not start"
sleep 0.5 # the archiver looks at the new commits
t0=$(now_ms)
err=$(bash -c "echo 1 > '$M/ctl/checkpoint'" 2>&1) && fail "ctl/checkpoint succeeded under a reader"
dt=$(( $(now_ms) - t0 ))
note "refused after $dt ms: $err"
[ "$dt" -lt 10000 ] || fail "the refused write took $dt ms"
grep -q "Device or resource busy" <<<"$err" || fail "ctl/checkpoint under a reader: $err"
line=$(cat "$M/ctl/checkpoint")
grep -q "^failed .* checkpoint: checkpoint $P: another .*try again once" <<<"$line" \
  || fail "ctl/checkpoint after the refusal: $line"
grep -q "warning: checkpoint failed: checkpoint $P: another .*try again once" \
  "$R/.sqlenvfs/mount.log" \
  || fail "the log does not say why: $(tail -5 "$R/.sqlenvfs/mount.log")"
python3 - "$M/status" <<'PY' || fail "status after the refusal: $(cat "$M/status")"
import json, sys
c = json.load(open(sys.argv[1]))["operations"]["checkpoint"]["last"]
assert c["ok"] is False and c["errno"] == "EBUSY", c
PY
touch "$T/stop2"
wait "$holder" || fail "the reader failed"
echo 1 > "$M/ctl/checkpoint" || fail "ctl/checkpoint once the reader is gone"
grep -q "^ok .* checkpoint: " "$M/ctl/checkpoint" \
  || fail "ctl/checkpoint: $(cat "$M/ctl/checkpoint")"
pass "a checkpoint a reader is in the way of fails with EBUSY within seconds, saying why"

# --- the reader in the way is a file open under the mount's own prod/: the
# --- failure names it and its opener
sleep 300 < "$M/prod/app.db" & opener=$!
track_pid "$opener"
sleep 0.3
for i in $(seq 1 20); do sqlite3 "$P" "INSERT INTO t VALUES ($i)"; done
sleep 0.5
err=$(bash -c "echo 1 > '$M/ctl/checkpoint'" 2>&1) &&
  fail "ctl/checkpoint succeeded under a file open in prod/"
grep -q "Device or resource busy" <<<"$err" || fail "ctl/checkpoint under an open file: $err"
line=$(cat "$M/ctl/checkpoint")
grep -q "through this mount, prod/app.db (opened by pid $opener, sleep) is open: .*close it"   <<<"$line" || fail "the open file and its opener are not named: $line"
kill "$opener"; wait "$opener" 2>/dev/null || true
echo 1 > "$M/ctl/checkpoint" || fail "ctl/checkpoint once the file is closed"
pass "a checkpoint a file open under prod/ is in the way of names the file and its opener"

unmount_root "$M"
