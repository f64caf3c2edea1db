#!/usr/bin/env bash
# An archiver restarted after kill -9 archives the commits made while it was
# down, all stamped with its restart time, one batch after another, after
# the OUTAGE that says the downtime is an outage. While it writes them (held
# here with SIGSTOP once the archive has grown by more than the OUTAGE and a
# first commit, as a slow disk or a busy CPU would hold it), a time inside
# the downtime must be refused by restore and absent from pitr/ (not
# answered with the state at the kill, which lacks the commits made before
# that time), and `latest` must be a state that the same time still names
# once the restart has finished.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root M=$T/mnt A=$T/root/backups/prod/wal_archives/app
pitr_make_root "$R" 67108864
sed -i 's/^checkpoint-pages=.*/checkpoint-pages=1000000/' "$R/sqlenvfs.conf"
pitr_start_archiver "$R" "$T/a1"
mount_root "$R" "$M" -o noarchiver

# The application: numbered rows of 60 KB, no checkpoint of its own (so
# that the WAL cannot restart while the archiver is down: an outage).
python3 - "$R/data/prod/app.db" "$T/stop" "$T/log" <<'PY' &
import os, sqlite3, sys, time, zlib
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
c.execute("PRAGMA wal_autocheckpoint=0").fetchall()
log = open(sys.argv[3], "w", buffering=1)
k = 0
while not os.path.exists(sys.argv[2]):
    k += 1
    p = os.urandom(60000)
    t0 = time.time()
    c.execute("INSERT INTO tx(k, kind, payload, crc) VALUES (?, 'r', ?, ?)", (k, p, zlib.crc32(p)))
    log.write("T %d %.6f %.6f\n" % (k, t0, time.time()))
    time.sleep(0.002)
PY
track_pid $!
# Killed once the archive holds commits: the restart then resumes its chain.
pitr_wait_commits "$T/log" 20
t20=$(awk '$2 == 20 {print $4}' "$T/log")
for _ in $(seq 1 300); do
  python3 - "$A/alive" "$t20" <<'PY' && break
import struct, sys
d = open(sys.argv[1], "rb").read()
sys.exit(0 if d[:8] == b"SQEFSALV" and struct.unpack_from("<q", d, 8)[0] > float(sys.argv[2]) * 1e6
         else 1)
PY
  sleep 0.1
done
kill -9 "$(cat "$T/a1.pid")"
wait "$(cat "$T/a1.pid")" 2>/dev/null || true
t_kill=$(date +%s.%N)
sleep 4
t_mid=$(python3 -c "print('%.6f' % ($t_kill + 2.0))")
# commits that returned a second or more before t_mid
lo=$(awk -v t="$t_mid" '$4 < t - 1.0 {k = $2} END {print k + 0}' "$T/log")

# The restart begins stopped, so that the watch knows its pid before it
# writes anything.
( kill -STOP $BASHPID; exec "$SQLENVFS" archive --root "$R" > /dev/null 2> "$T/a2.err" ) &
A2=$!
track_pid $A2
for _ in $(seq 1 500); do [[ "$(ps -o stat= -p $A2)" == T* ]] && break; sleep 0.01; done
[[ "$(ps -o stat= -p $A2)" == T* ]] || fail "the restarted archiver did not wait to be let go"
pitr_watch_growth "$A" "$A2" 16384
kill -CONT $A2
wait $watch || fail "the archive did not grow once the archiver restarted"
note "the restarted archiver is held after the archive grew by a first commit"

pitr_check_hold "$R" "$M" "$t_mid" "$lo" "in the downtime" "while the restart writes"
pass "while the restart archives the commits made in the downtime, the downtime is refused"

kill -CONT $A2
for _ in $(seq 1 300); do grep -q 'archiver app: capturing' "$T/a2.err" && break; sleep 0.1; done
grep -q 'capture was interrupted' "$T/a2.err" || fail "no outage recorded: $(cat "$T/a2.err")"
pitr_check_held "$R" "$t_mid" "once the restart has finished"
pass "latest while the restart wrote is what its time names after it"

touch "$T/stop"
unmount_root "$M"
kill -TERM $A2
wait $A2 || fail "the archiver exited with $? on SIGTERM"
