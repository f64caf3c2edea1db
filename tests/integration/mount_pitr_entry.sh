#!/usr/bin/env bash
# pitr/ is a name that is always there: the kernel keeps it for a second
# (each path under pitr/ does not look it up again: `ls -l pitr/T/` looked
# it up seven times), while its attributes are not kept: a change of the
# archive directory's mode shows at once.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
M=$T/mnt
pitr_make_root "$R"
mkdir -p "$M"
# -d: in the foreground, a trace of every FUSE request on stderr.
"$SQLENVFS" mount -d -o noarchiver "$R" "$M" 2> "$T/trace" &
track_pid $!
_mounts+=("$M")
wait_mounted "$M"

# lookups_of_pitr: LOOKUP requests of a 4-character name in the mount's
# root (nodeid 1, a 40-byte header and "pitr\0"); nothing else is looked
# up there below.
lookups_of_pitr() { grep -c 'opcode: LOOKUP (1), nodeid: 1, insize: 45,' "$T/trace" || true; }

before=$(lookups_of_pitr)
# Four path walks through pitr/ in one process, well within a second.
stat "$M/pitr" "$M/pitr/" "$M/pitr/." "$M/pitr" > /dev/null
n=$(( $(lookups_of_pitr) - before ))
[ "$n" -eq 1 ] || fail "pitr/ was looked up $n times by four path walks within a second, expected once"
pass "pitr/ is looked up once by path walks within a second"

wal=$R/backups/prod/wal_archives
# (Group and other bits are cut by $T, which is 0700: the owner's are shown.)
assert_eq "$(stat -c %a "$M/pitr")" "500" "the mode of pitr/ with the archive directory at 0755"
chmod 0100 "$wal"
assert_eq "$(stat -c %a "$M/pitr")" "0" "the mode of pitr/ right after the archive directory became 0100"
chmod 0755 "$wal"
assert_eq "$(stat -c %a "$M/pitr")" "500" "the mode of pitr/ right after the archive directory became 0755"
pass "the mode of pitr/ follows the archive directory at once"
unmount_root "$M"
