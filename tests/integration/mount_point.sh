#!/usr/bin/env bash
# The mount point: a stale mount left by a killed daemon is named as such
# with the command that clears it, a directory that already is a mount is
# refused (saying what is mounted there) instead of being stacked on, a
# missing directory or a file is refused with what to do, and so is one that
# would hide the root's own directories.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root R2=$T/root2 M=$T/mnt M2=$T/mnt2
for r in "$R" "$R2"; do
  make_root "$r" "$SRCDIR/schema.sql"
done

# --- missing, or not a directory
expect_fail "mount point does not exist \\(create it with mkdir\\)" "$SQLENVFS" mount "$R" "$T/nowhere"
touch "$T/afile"
expect_fail "mount point is not a directory" "$SQLENVFS" mount "$R" "$T/afile"
mkdir -p "$T/m-opt"
expect_fail "unknown option.*bogusopt.*the -o options sqlenvfs takes are in .sqlenvfs mount --help." \
  "$SQLENVFS" mount -o bogusopt "$R" "$T/m-opt"
mountpoint -q "$T/m-opt" && fail "mount -o bogusopt mounted"
rc=0
"$SQLENVFS" mount -o bogusopt "$R" "$T/m-opt" 2>/dev/null || rc=$?
assert_eq "$rc" 2 "exit status of a mount with an option FUSE does not take (a usage error)"
# A bad option is said before the archiver's lock, held by another process.
"$SQLENVFS" archive --root "$R2" > /dev/null 2> "$T/arch.err" &
ap=$!
track_pid "$ap"
wait_log "$T/arch.err" capturing
rc=0
err=$("$SQLENVFS" mount -o bogusopt "$R2" "$T/m-opt" 2>&1 >/dev/null) || rc=$?
assert_eq "$rc" 2 "exit status of a mount with a bad option while another process archives"
grep -q "unknown option.*bogusopt.*nothing was mounted" <<<"$err" ||
  fail "a bad option under another process's archiver: $err"
kill "$ap" 2>/dev/null; wait "$ap" 2>/dev/null || true
pass "a missing mount point and a file are refused with what to do"

# --- the root's own directories, the root, and what holds it: refused (the
# mount would hide production from the applications, and the daemon would
# wait on itself); a directory of one's own in the root is fine
mkdir -p "$R/backups/prod/wal_archives/app"
for m in "$R/data/prod" "$R/data" "$R" "$T" "$R/backups/prod/wal_archives/app" "$R/.sqlenvfs"; do
  expect_fail "which the mount reads and writes.*Choose a directory outside those" \
    "$SQLENVFS" mount "$R" "$m"
  grep -q " $m " /proc/self/mountinfo && fail "$m was mounted"
done
assert_eq "$(ls "$R/data/prod")" "app.db" "production after the refusals"
mkdir "$R/mnt"
mount_root "$R" "$R/mnt"
assert_eq "$(ls "$R/mnt/prod")" "app.db" "a mount on ROOT/mnt"
unmount_root "$R/mnt"
pass "a mount point in or over the root's own directories is refused; ROOT/mnt is fine"

# --- a directory that already is a mount: refused, nothing stacked
mount_root "$R2" "$M2"
before=$(grep -c " $M2 " /proc/self/mountinfo)
expect_fail "fuse.sqlenvfs $R2 is already mounted there .*fusermount3 -u $M2" "$SQLENVFS" mount "$R" "$M2"
assert_eq "$(grep -c " $M2 " /proc/self/mountinfo)" "$before" "mounts on $M2 after the refusal"
assert_eq "$(ls "$M2/prod")" "app.db" "the existing mount still serves its root"
pass "mounting on a mount point that is already a mount is refused and names what is there"

# --- a stale mount after kill -9: one of this root is detached and mounted
# over (a service manager's restart mounts again); one of another root is
# named, with the command that clears it
kill_daemon() { # ROOT
  local pid i
  pid=$(tr -d '\n' < "$1/.sqlenvfs/mount.lock")
  kill -9 "$pid"
  for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -0 "$pid" 2>/dev/null && fail "the daemon survived kill -9"
  return 0
}
unmount_root "$M2" # (its daemon's command line holds "$M" too)
mount_root "$R" "$M"
kill_daemon "$R"
stat "$M" > /dev/null 2>&1 && fail "the mount point is not stale after kill -9"
"$SQLENVFS" mount "$R" "$M" 2> "$T/stale.err" || fail "mount over this root's stale mount"
wait_mounted "$M"
assert_eq "$(ls "$M/prod")" "app.db" "prod/ after mounting over this root's stale mount"
assert_eq "$(grep -c " $M " /proc/self/mountinfo)" "1" "mounts on $M"
grep -q "detached the stale mount of this root" "$T/stale.err" ||
  fail "the stale mount's detach is not said: $(cat "$T/stale.err")"
unmount_root "$M"
mount_root "$R2" "$M"
kill_daemon "$R2"
expect_fail "mount point is a stale mount .*clear it with \`fusermount3 -u $M\`" "$SQLENVFS" mount "$R" "$M"
fusermount3 -u "$M"
mount_root "$R" "$M"
assert_eq "$(ls "$M/prod")" "app.db" "prod/ after clearing the stale mount"
pass "a stale mount of this root is mounted over; one of another root is named with fusermount3 -u"
