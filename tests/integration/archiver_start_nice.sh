#!/usr/bin/env bash
# The archiver's start-up pass (bringing each production database up: the
# WAL's recovery, the archive's end, continuity, the chain's base) runs in a
# thread of its own ("archiver-start"), 10 steps nicer than the mount, so
# that on a busy machine the mount's first lookups come first. The loop that
# captures afterwards and the snapshot thread keep the mount's priority.
#
# A writer holds production's write lock while the mount starts, so that the
# start-up pass waits for it (it takes the write lock to decide continuity)
# and can be looked at in /proc; then the lock is released and the archiver
# must capture.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
M=$T/mnt
pitr_make_root "$R"
DB=$R/data/prod/app.db

# nice_of PID TID: the nice value of one thread (field 19 of its stat; the
# name in parentheses may hold spaces, so count after the last ')').
nice_of() {
  local s
  s=$(cat /proc/"$1"/task/"$2"/stat 2>/dev/null) || return 1
  s=${s##*) }
  awk '{print $17}' <<< "$s"
}

# tid_named PID NAME: the thread of PID whose name is NAME (nothing if none).
tid_named() {
  local t
  for t in /proc/"$1"/task/*; do
    [ "$(cat "$t/comm" 2>/dev/null)" = "$2" ] && { basename "$t"; return 0; }
  done
  return 0
}

python3 - "$DB" "$T/held" "$T/release" <<'PY' &
import os, sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
c.execute("BEGIN IMMEDIATE")
open(sys.argv[2], "w").close()
deadline = time.monotonic() + 50
while not os.path.exists(sys.argv[3]) and time.monotonic() < deadline:
    time.sleep(0.01)
c.execute("ROLLBACK")
c.close()
PY
holder=$!
track_pid "$holder"
for _ in $(seq 1 200); do [ -e "$T/held" ] && break; sleep 0.05; done
[ -e "$T/held" ] || fail "the writer did not take production's write lock within 10 s"

mount_root "$R" "$M"
pid=$(cat "$R/.sqlenvfs/mount.lock")
kill -0 "$pid" || fail "no mount daemon with the pid in the mount lock ($pid)"
base=$(nice_of "$pid" "$pid")

# The start-up pass waits for the write lock (up to 5 s): find it meanwhile.
start=
for _ in $(seq 1 500); do
  start=$(tid_named "$pid" archiver-start)
  [ -n "$start" ] && break
  sleep 0.02
done
[ -n "$start" ] || fail "no thread archiver-start in the mount daemon while its archiver starts"
start_nice=$(nice_of "$pid" "$start") || fail "the start-up thread went away before it was looked at"
expected=$(( base + 10 > 19 ? 19 : base + 10 ))
assert_eq "$start_nice" "$expected" "the nice value of the archiver's start-up thread (the mount's is $base)"
loop=$(tid_named "$pid" archiver)
[ -n "$loop" ] || fail "no archiver thread in the mount daemon (threads: $(cat /proc/"$pid"/task/*/comm | tr "\n" " "))"
assert_eq "$(nice_of "$pid" "$loop")" "$base" "the nice value of the archiver's own thread"
snap=$(tid_named "$pid" snapshot)
[ -n "$snap" ] || fail "the snapshot thread was not started before the start-up pass"
assert_eq "$(nice_of "$pid" "$snap")" "$base" "the nice value of the snapshot thread"
pass "the archiver's start-up pass runs at nice $start_nice, the mount and its archiver loop at $base"

touch "$T/release"
wait "$holder" || fail "the writer failed"
wait_archiving "$M"
[ -z "$(tid_named "$pid" archiver-start)" ] || fail "the start-up thread is still there once capturing"
assert_eq "$(nice_of "$pid" "$loop")" "$base" "the nice value of the archiver's thread once capturing"
grep -q "capturing (first start" "$R/.sqlenvfs/mount.log" ||
  fail "the mount log does not say the archiver started capturing: $(cat "$R/.sqlenvfs/mount.log")"
unmount_root "$M"
pass "once the write lock is free the archiver captures, at the mount's priority"
