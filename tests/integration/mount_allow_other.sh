#!/usr/bin/env bash
# With -o allow_other, another local user reads through the mount only what
# they could read in the root: a snapshot under a backups/ directory of mode
# 0700 is refused even though the file itself is 0644 (and so are listing
# snapshots/ and reading pitr/ files, which come from that archive); what
# the root lets them read, they read. The other user is an unprivileged uid
# run with setpriv.
source "$SRCDIR/tests/integration/lib.sh"
umask 022
[ "$(id -u)" -eq 0 ] || { echo "1..0 # SKIP needs root (to mount with allow_other and switch users)"; exit 0; }

OTHER=54321
as_other() { setpriv --reuid=$OTHER --regid=$OTHER --clear-groups "$@"; }

chmod 755 "$T"
R=$T/root M=$T/mnt
make_root "$R" "$SRCDIR/schema.sql" --demo --demo-events 2000
chmod 644 "$R/data/prod/app.db"
mkdir -p "$M"
chmod 755 "$M"
mount_root "$R" "$M" -o allow_other
wait_archiving "$M"
echo 1 > "$M/ctl/snapshot"
snap=$(ls "$M/snapshots" | tail -1)
sqlite3 "$R/data/prod/app.db" "UPDATE vessel_characteristics SET vessel_name = vessel_name || '!'"
# The window reaches the commit once the archiver has it (poll, deadline 10 s).
for i in $(seq 1 100); do t=$(readlink "$M/pitr/latest" 2>/dev/null) && break; sleep 0.1; done
[ -n "$t" ] || fail "pitr/latest did not appear"
chmod -R go+rX "$R/backups"

# Everything open in the root: the other user reads it (the test can tell).
as_other cat "$M/snapshots/$snap/app.db" > "$T/other-snap.db" ||
  fail "the other user cannot read a snapshot the root lets them read"
cmp "$T/other-snap.db" "$M/snapshots/$snap/app.db" || fail "the other user read other bytes than the owner"
as_other cat "$M/prod/app.db" > /dev/null || fail "the other user cannot read production (0644)"
as_other cat "$M/pitr/$t/app.db" > /dev/null || fail "the other user cannot read a pitr file"
pass "another user reads what the root lets them read"

# backups/ 0700: the files below it are 0644, but nobody else can reach them.
chmod 700 "$R/backups"
assert_eq "$(stat -c %a "$R/backups/prod/snapshots/$snap/app.db")" "644" "mode of the snapshot in the root"
as_other cat "$R/backups/prod/snapshots/$snap/app.db" > /dev/null 2>&1 &&
  fail "the other user reads the snapshot in the root itself: the test is wrong"
err=$(as_other cat "$M/snapshots/$snap/app.db" 2>&1 > /dev/null) &&
  fail "the other user read a snapshot under a 0700 backups/ through the mount"
grep -q 'Permission denied' <<<"$err" || fail "reading the snapshot failed with '$err'"
as_other ls "$M/snapshots" > /dev/null 2>&1 && fail "the other user lists snapshots/ under a 0700 backups/"
as_other cat "$M/pitr/$t/app.db" > /dev/null 2>&1 &&
  fail "the other user read a pitr file built from a 0700 backups/"
# A copy the kernel has not seen yet shows what the root allows (the
# attributes of one it has seen are cached for a few seconds).
ls "$M/snapshots" > "$T/snaps-before"
echo 1 > "$M/ctl/snapshot"
snap2=$(ls "$M/snapshots" | grep -vxF -f "$T/snaps-before" || true)
[ -n "$snap2" ] || fail "no new snapshot"
mode=$(stat -c %a "$M/snapshots/$snap2/app.db")
[ $((8#$mode & 8#044)) -eq 0 ] || fail "a snapshot under a 0700 backups/ is shown with mode $mode"
as_other cat "$M/prod/app.db" > /dev/null || fail "production (0644 under 0755 directories) became unreadable"
pass "nothing under a 0700 backups/ is readable by another user through the mount"

# Production 0600: the other user reads neither it nor its past.
chmod 755 "$R/backups"
chmod 600 "$R/data/prod/app.db"
as_other cat "$M/prod/app.db" > /dev/null 2>&1 && fail "the other user read a 0600 production"
as_other cat "$M/pitr/$t/app.db" > /dev/null 2>&1 && fail "the other user read the past of a 0600 production"
pass "a 0600 production and its past are not readable by another user"

# status and ctl/ results tell what data/prod holds: for who can list it;
# the modes ls -l shows say so.
as_other cat "$M/status" > /dev/null || fail "the other user cannot read status"
assert_eq "$(stat -c %a "$M/status") $(stat -c %a "$M/ctl/snapshot")" "444 644" \
  "modes of status and ctl/snapshot with data/prod 0755"
chmod 700 "$R/data/prod"
as_other cat "$M/status" > /dev/null 2>&1 && fail "the other user read status with data/prod 0700"
as_other cat "$M/ctl/snapshot" > /dev/null 2>&1 && fail "the other user read ctl/snapshot with data/prod 0700"
assert_eq "$(stat -c %a "$M/status") $(stat -c %a "$M/ctl/snapshot") $(stat -c %a "$M/metrics")" \
  "400 600 400" "modes of status, ctl/snapshot and metrics with data/prod 0700"
chmod 755 "$R/data/prod"
pass "status and ctl/ results are for who can list data/prod, and show it"

# A production of another group, 0640: its group shown is the file's, so
# that a member of it reads what ls -l says it may, and nobody else.
chgrp 4242 "$R/data/prod/app.db"
chmod 640 "$R/data/prod/app.db"
assert_eq "$(stat -c '%a %g' "$M/prod/app.db")" "440 4242" "mode and group of a 0640 production"
setpriv --reuid=$OTHER --regid=4242 --clear-groups cat "$M/prod/app.db" > /dev/null ||
  fail "a member of production's group cannot read it"
as_other cat "$M/prod/app.db" > /dev/null 2>&1 && fail "another user read a 0640 production"
chgrp 0 "$R/data/prod/app.db"
pass "the group shown is that of the file whose permissions decide"
unmount_root "$M"
