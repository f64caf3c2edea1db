#!/usr/bin/env bash
# A second archiver on a root is refused with a message naming the process
# that holds the archiver lock, and that process is the live archiver: the
# mount's daemon (not the parent that forked it and exited), or the
# `sqlenvfs archive` process.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
M=$T/mnt
pitr_make_root "$R"

# holder_in_message: the pid in "already held by process N" of a refused archive.
holder_in_message() {
  local err rc=0
  err=$("$SQLENVFS" archive --root "$R" 2>&1 >/dev/null) || rc=$?
  [ "$rc" -ne 0 ] || fail "a second archiver was not refused"
  sed -n 's/.*already held by process \([0-9][0-9]*\).*/\1/p' <<< "$err" | head -1 | grep . ||
    fail "the refusal does not name a process: $err"
}

# holds_lock PID: PID is alive and has .sqlenvfs/archiver.lock open.
holds_lock() {
  local pid=$1 fd
  kill -0 "$pid" 2>/dev/null || return 1
  for fd in /proc/"$pid"/fd/*; do
    [ "$(readlink "$fd" 2>/dev/null)" = "$R/.sqlenvfs/archiver.lock" ] && return 0
  done
  return 1
}

# --- the mount's daemon
mount_root "$R" "$M"
wait_archiving "$M"
pid=$(holder_in_message)
holds_lock "$pid" || fail "the refusal names process $pid, which is not alive or does not hold the archiver lock (ps: $(ps -o pid,args -p "$pid" | tail -n +2))"
tr '\0' ' ' < /proc/"$pid"/cmdline | grep -q ' mount ' ||
  fail "process $pid named by the refusal is not the mount daemon: $(tr '\0' ' ' < /proc/"$pid"/cmdline)"
unmount_root "$M"
# The daemon finishes its work and releases the lock after the unmount.
for _ in $(seq 1 100); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$pid" 2>/dev/null && fail "the mount daemon $pid did not exit within 10 s of the unmount"
pass "a second archiver beside a mount names the live mount daemon ($pid)"

# --- `sqlenvfs archive` in the foreground
pitr_start_archiver "$R" "$T/a"
pid=$(holder_in_message)
assert_eq "$pid" "$(cat "$T/a.pid")" "the process named by the refusal"
holds_lock "$pid" || fail "the archiver $pid does not hold the archiver lock"
pitr_stop_archiver "$T/a"
pass "a second archiver beside \`sqlenvfs archive\` names it"
