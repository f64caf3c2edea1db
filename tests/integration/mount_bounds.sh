#!/usr/bin/env bash
# What the mount deletes and how much it writes:
# - a .cache that is a symlink is refused at start (nothing where it points is
#   deleted); a real .cache loses only the files the mount makes (cached pitr
#   files, temporaries of dead processes), not anything else put there;
# - a flood of failed pitr lookups (any user can make them with allow_other)
#   is logged a bounded number of times, and the log is rotated to mount.log.1
#   at [mount] log-max-bytes;
# - a pitr rebuild that would leave less than [cache] min-free-bytes free
#   fails with ENOSPC before writing anything, and the log says why.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root M=$T/mnt
mkdir -p "$R"
cp "$SRCDIR/schema.sql" "$R/schema.sql"
printf '[mount]\nlog-max-bytes=8192\n' > "$R/sqlenvfs.conf"
"$SQLENVFS" init --root "$R" --demo --demo-events 2000 > /dev/null

# --- .cache -----------------------------------------------------------------
mkdir -p "$T/victim"
echo precious > "$T/victim/precious"
echo cached > "$T/victim/app@1.db"
rmdir "$R/.cache"
ln -s "$T/victim" "$R/.cache"
mkdir -p "$M"
_mounts+=("$M") # unmounted on exit should it mount after all
expect_fail '\.cache is a symbolic link' "$SQLENVFS" mount "$R" "$M"
mountpoint -q "$M" && fail "mounted on a symlinked .cache"
assert_eq "$(ls "$T/victim" | sort | tr '\n' ' ')" "app@1.db precious " "files where the symlinked .cache points"
pass "a symlinked .cache is refused and nothing where it points is deleted"

rm "$R/.cache"
mkdir "$R/.cache"
echo mine > "$R/.cache/notes.txt"
echo old > "$R/.cache/app@3.db"
echo dead > "$R/.cache/.tmp-app@4.db-999999999"
sleep 600 &
alive=$!
track_pid "$alive"
echo alive > "$R/.cache/.tmp-app@5.db-$alive"
mount_root "$R" "$M"
assert_eq "$(ls -A "$R/.cache" | LC_ALL=C sort | tr '\n' ' ')" ".tmp-app@5.db-$alive notes.txt " \
  ".cache after the mount started"
pass "the mount empties .cache of its own files only"

# --- the log ----------------------------------------------------------------
wait_archiving "$M"
start=$(date +%s)
for i in $(seq 1 2000); do stat "$M/pitr/no-such-time-$i" > /dev/null 2>&1 || true; done
took=$(( $(date +%s) - start ))
n=$(cat "$R/.sqlenvfs/mount.log"* | grep -c 'not a time' || true)
# At most 10 lines each 10 s: the periods the loop overlapped (a slow
# build on a loaded machine takes longer than one).
max=$(( 10 * (took / 10 + 2) ))
[ "$n" -le "$max" ] || fail "2000 failed lookups in $took s made $n log lines (at most $max)"
[ "$n" -ge 1 ] || fail "failed lookups are not logged at all"
pass "2000 failed lookups: $n log lines"

for i in $(seq 1 300); do echo "nonsense-$i" > "$M/ctl/checkpoint" 2>/dev/null || true; done
[ -e "$R/.sqlenvfs/mount.log.1" ] || fail "the log was not rotated: $(ls -l "$R/.sqlenvfs")"
for f in "$R/.sqlenvfs/mount.log" "$R/.sqlenvfs/mount.log.1"; do
  size=$(stat -c %s "$f")
  [ "$size" -le 8704 ] || fail "$f is $size bytes, past log-max-bytes=8192"
  assert_eq "$(stat -c %a "$f")" "600" "mode of $f"
done
grep -q 'nonsense-300' "$R/.sqlenvfs/mount.log" || fail "the last line is not in mount.log"
# Every line starts with its time in milliseconds, always three digits, so
# that the lines sort in time order (of the hundred or so here, some fall on
# a whole ten milliseconds).
bad=$(cat "$R/.sqlenvfs/mount.log.1" "$R/.sqlenvfs/mount.log" |
  grep -Evc '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z ' || true)
assert_eq "$bad" "0" "log lines without a fixed-width time"
pass "the log is rotated to mount.log.1 at log-max-bytes; its times sort"

# --- the cache's free space ---------------------------------------------------
sqlite3 "$R/data/prod/app.db" "UPDATE vessel_characteristics SET vessel_name = vessel_name || '!'"
# The window reaches the commit once the archiver has it (poll, deadline 10 s).
for i in $(seq 1 100); do t=$(readlink "$M/pitr/latest" 2>/dev/null) && break; sleep 0.1; done
[ -n "$t" ] || fail "pitr/latest did not appear"
unmount_root "$M"
printf '[mount]\nlog-max-bytes=8192\n[cache]\nmin-free-bytes=9000000000000000000\n' > "$R/sqlenvfs.conf"
mount_root "$R" "$M"
err=$(cat "$M/pitr/$t/app.db" 2>&1 > /dev/null) && fail "a rebuild ran with no room left for production"
grep -q 'No space left on device' <<<"$err" || fail "pitr read failed with '$err', not ENOSPC"
grep -q 'min-free-bytes' "$R/.sqlenvfs/mount.log" || fail "the log does not say why: $(tail -3 "$R/.sqlenvfs/mount.log")"
[ -z "$(ls -A "$R/.cache" | grep -v -e notes.txt -e "\.tmp-app@5\.db-$alive")" ] || fail "the refused rebuild left files: $(ls -A "$R/.cache")"
unmount_root "$M"
pass "a rebuild that would eat production's free space fails with ENOSPC"
