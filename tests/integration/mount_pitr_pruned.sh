#!/usr/bin/env bash
# A time the mount has looked up, and so planned, that a prune then leaves
# out of the window: looked up again (by another spelling, which the kernel
# has not cached), it is refused as outside the window, as a restore to it
# is. The plan kept from before used to answer that it was there, while
# reading it failed.
source "$SRCDIR/tests/integration/lib.sh"

FT=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
[ -e "$FT" ] || fail "libfaketime is not installed (scripts/deps.sh installs faketime)"
R=$T/root M=$T/mnt
make_root "$R" <(echo "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB);")
cat > "$R/sqlenvfs.conf" <<CONF
[archive]
segment-max-bytes=1048576
[retention]
pitr-keep-days=1
snapshot-keep-days=1
daily-keep-days=1
CONF
P=$R/data/prod/app.db
mount_root "$R" "$M"
wait_archiving "$M"
write() { sqlite3 "$P" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) INSERT INTO t(v) SELECT randomblob(8000) FROM n"; }
write 200
sleep 1.2
T1=$(date +%s.%N)
sleep 1.2
write 200
echo 1 > "$M/ctl/snapshot"
write 200
sleep 2.5 # the snapshot then lies before the prune's cutoff (a second ago)
stat "$M/pitr/@$T1/app.db" > /dev/null || fail "pitr/@$T1/app.db is not there before the prune"
# A day later (less a second), to prune: the window now starts at the
# snapshot, after T1.
FAKETIME=+86399s LD_PRELOAD=$FT ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
  "$SQLENVFS" prune --root "$R" > "$T/prune.out" || fail "prune: $(cat "$T/prune.out")"
grep -q "archive segment" "$T/prune.out" || fail "prune removed no segment: $(cat "$T/prune.out")"
expect_fail "before the earliest recoverable time" \
  "$SQLENVFS" restore --root "$R" --time "@$T1" --output "$T/r.db"
# The same microsecond as @$T1 (what the mount planned), spelt otherwise.
iso=$(python3 -c "
import datetime, sys
s, f = sys.argv[1].split('.')
t = datetime.datetime.fromtimestamp(int(s), datetime.timezone.utc)
print(t.strftime('%Y%m%dT%H%M%S.') + f[:6] + 'Z')" "$T1")
# The mount reads the archive's state again at most every 250 ms: then,
# a name the kernel has not cached is looked up afresh.
sleep 1
[ -e "$M/pitr/$iso/app.db" ] && fail "pitr/$iso/app.db, left out of the window by the prune, is still there"
unmount_root "$M"
pass "a time a prune left out of the window is refused by the mount, planned before or not"
