#!/usr/bin/env bash
# The mount's daemon killed with SIGKILL while an application commits to
# production and pitr/ files are being read, then unmounted and mounted
# again: production holds exactly the commits the application saw return;
# the new daemon starts with an empty .cache (nothing the killed one wrote
# there, complete or not, is served again); every time read through
# pitr/<T>/ after the restart is byte for byte `sqlenvfs restore --time T`
# (or refused by both); the archive and copies verify; and the doctor finds
# no leftovers.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root M=$T/mnt
pitr_make_root "$R"
P=$R/data/prod/app.db
mount_root "$R" "$M"
wait_archiving "$M"
python3 "$ORACLE" writer --db "$P" --log "$T/log" --duration 600 --stop-file "$T/stop" \
  --no-vacuum > /dev/null 2>&1 &
WPID=$!
track_pid "$WPID"
pitr_wait_commits "$T/log" 80
t_read=$(awk '/^T /{t=$4} END{print t}' "$T/log")

# Readers of pitr/: one time again and again, and times just past.
python3 - "$M" "$T" "$t_read" > "$T/readers.out" 2>&1 <<'PY' &
import os, random, sys, threading, time
mnt, tmp, t_read = sys.argv[1:4]
def loop(pick):
    while not os.path.exists(tmp + "/stop-readers"):
        try:
            with open("%s/pitr/%s/app.db" % (mnt, pick()), "rb") as f:
                while f.read(1 << 16):
                    pass
            open(tmp + "/read-once", "w").close()
        except OSError as e:
            print(e, flush=True)
            time.sleep(0.1)
readers = [threading.Thread(target=loop, args=(lambda: "@" + t_read,)),
           threading.Thread(target=loop,
                            args=(lambda: "@%.3f" % (time.time() - random.uniform(1, 3)),))]
for r in readers:
    r.start()
for r in readers:
    r.join()
PY
RPID=$!
track_pid "$RPID"
for i in $(seq 1 100); do [ -e "$T/read-once" ] && break; sleep 0.1; done
[ -e "$T/read-once" ] || fail "no pitr/ file was read within 10 s: $(cat "$T/readers.out")"
sleep 1

daemon=$(pgrep -f "sqlenvfs mount .*$M" | head -1)
[ -n "$daemon" ] || fail "no daemon for $M"
kill -9 "$daemon"
for i in $(seq 1 100); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
kill -0 "$daemon" 2>/dev/null && fail "the daemon $daemon did not go away within 10 s of SIGKILL"
touch "$T/stop-readers"
wait "$RPID" || true
fusermount3 -u -z "$M"
pass "mount daemon killed with SIGKILL while pitr/ files were read"

pitr_wait_commits "$T/log" $(( $(pitr_commits "$T/log") + 20 ))
mount_root "$R" "$M"
wait_archiving "$M"
assert_eq "$(ls -A "$R/.cache")" "" "what .cache holds after the restart, before any pitr/ read"
grep -Eq "archiver app: (capture was interrupted|GAP)" "$R/.sqlenvfs/mount.log" \
  || fail "the restart does not say what the downtime was: $(tail -5 "$R/.sqlenvfs/mount.log")"
pitr_wait_commits "$T/log" $(( $(pitr_commits "$T/log") + 40 ))
touch "$T/stop"
wait "$WPID" || true

python3 - "$P" "$T/log" <<'PY' || fail "production does not hold exactly the commits that returned"
import sqlite3, sys
acked = [int(l.split()[1]) for l in open(sys.argv[2]) if l.startswith("T ")]
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
rows = [r[0] for r in db.execute("SELECT k FROM tx ORDER BY k")]
assert rows == acked, (len(rows), len(acked))
assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
PY
pass "production holds exactly the $(pitr_commits "$T/log") commits that returned"

# Times before, around and after the kill: pitr/ after the restart and a
# restore agree, byte for byte (the header's version bytes 18 and 19 aside,
# which the mount serves as 1 and 1), or both refuse.
python3 - "$T/log" > "$T/times" <<'PY'
import random, sys
ts = [float(l.split()[3]) for l in open(sys.argv[1]) if l.startswith("T ")]
rnd = random.Random(11)
for _ in range(10):
    print("@%.6f" % rnd.uniform(ts[0], ts[-1]))
PY
n_ok=0 n_refused=0
for t in $(cat "$T/times"); do
  if "$SQLENVFS" restore --root "$R" --time "$t" --output "$T/want.db" > /dev/null 2>&1; then
    cat "$M/pitr/$t/app.db" > "$T/got.db" || fail "pitr/$t/app.db cannot be read, a restore can"
    diffs=$( (cmp -l "$T/got.db" "$T/want.db" || true) | awk '$1 != 19 && $1 != 20' | head -3)
    [ -z "$diffs" ] && [ "$(stat -c %s "$T/got.db")" = "$(stat -c %s "$T/want.db")" ] \
      || fail "pitr/$t/app.db differs from sqlenvfs restore --time $t: $diffs"
    rm -f "$T/want.db"
    n_ok=$((n_ok + 1))
  else
    [ ! -e "$M/pitr/$t/app.db" ] || fail "pitr/$t/app.db exists, a restore refuses the time"
    n_refused=$((n_refused + 1))
  fi
done
[ "$n_ok" -gt 0 ] || fail "no time could be restored"
pass "after the restart pitr/<T> equals sqlenvfs restore --time T ($n_ok times, $n_refused refused by both)"

unmount_root "$M"
python3 "$ORACLE" check --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --random 10 --around 6 > /dev/null
"$SQLENVFS" verify --root "$R" > "$T/verify.out" || fail "verify: $(cat "$T/verify.out")"
rc=0
"$SQLENVFS" doctor --root "$R" > "$T/doctor.out" || rc=$?
[ "$rc" -le 1 ] || fail "doctor found a failure: $(cat "$T/doctor.out")"
grep -q 'WARN leftovers' "$T/doctor.out" && fail "doctor found leftovers: $(cat "$T/doctor.out")"
pass "restores exact in every window, verify good, doctor finds no leftovers"
