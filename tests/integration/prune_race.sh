#!/usr/bin/env bash
# A restore reads the archive while a prune removes its first segments
# (each removed from the first on): a segment it listed is gone when it
# opens it, or one it read is gone when it checks its records. Neither may
# fail a restore to a time the prune keeps, nor fill its output with
# warnings: it reads the archive again, and gives the exact state.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

cc -O2 -Wall -shared -fPIC "$SRCDIR/tests/integration/hook_open.c" -o "$T/hook_open.so" -ldl
# An AddressSanitizer build wants its runtime first among the preloaded.
PRELOAD="$(ldd "$SQLENVFS" | awk '/libasan/ {print $3}') $T/hook_open.so"

R=$T/root
A=$R/backups/prod/wal_archives/app
pitr_grow_segments "$R" "$T/a" "$T/log" 6
# The segments before the backup's, which a prune keeping it may remove.
m=$PITR_NSEGS
"$SQLENVFS" backup --root "$R" > /dev/null
pitr_write "$R" "$T/log" 1 "$(pitr_last_k "$T/log")"
pitr_stop_archiver "$T/a"
# Just after the last commit returned.
TIME=$(pitr_last_time "$T/log")
note "$m segments before the backup; removing the first $((m - 1)) while a restore reads them"

# What the prune does, at the moment the restore opens the file @1.
restore_while_pruned() { # file-name label
  local aside=$T/aside-$2 rc=0
  mkdir -p "$aside"
  rm -f "$R/.sqlenvfs/checked-app"
  HOOK_OPEN_NAME=$1 \
    HOOK_OPEN_CMD="for n in \$(seq 1 $((m - 1))); do mv $A/\$(printf %016d \$n).* $aside/; done" \
    LD_PRELOAD="$PRELOAD" \
    "$SQLENVFS" restore --root "$R" --time "@$TIME" --output "$T/r-$2.db" \
    > "$T/r-$2.out" 2> "$T/r-$2.err" || rc=$?
  [ -z "$(ls "$aside")" ] && fail "$2: the hook did not run (no open of $1)"
  [ "$rc" -eq 0 ] || fail "$2: restore to @$TIME failed while segments went: $(cat "$T/r-$2.err")"
  [ ! -s "$T/r-$2.err" ] || fail "$2: restore said: $(head -c 600 "$T/r-$2.err")"
  pitr_check_state "$T/r-$2.db" "$T/log" "$TIME" "$2: the restore to @$TIME"
  mv "$aside"/* "$A"/
}

# Gone when the archive is opened: the second segment's summary.
restore_while_pruned "$(printf %016d 2).sum" open
pass "a restore whose archive loses its first segments while it opens it is exact"
# Gone when its records are checked: the first segment read, after all of
# them were listed and their summaries read.
restore_while_pruned "$(printf %016d 2).idx" check
pass "a restore whose archive loses its first segments while it checks them is exact"

# A base removed (as a prune keeping an older base removes a newer one) just
# after the restore opened it: the restore reads on through what it opened,
# and is exact. It used to fail with "changed while it was checked" or "went
# away while it was read", blaming something that writes to the store.
pitr_start_archiver "$R" "$T/a"
"$SQLENVFS" snapshot --root "$R" > /dev/null
pitr_write "$R" "$T/log" 1 "$(pitr_last_k "$T/log")"
pitr_stop_archiver "$T/a"
TIME=$(pitr_last_time "$T/log")
snap=$(ls -d "$R"/backups/prod/snapshots/*/ | tail -1)
# The restore opens the base three times: planning (removed there, another
# base is taken: not this case), to read it, and to see that it did not
# change meanwhile. Removed right after the second or the third.
for how in 1 2; do
  cp -a "$snap" "$T/snap-keep"
  rc=0
  HOOK_OPEN_NAME="$(basename "$snap")/app.db" HOOK_OPEN_AFTER=1 HOOK_OPEN_SKIP=$how HOOK_OPEN_CMD="rm -rf $snap" LD_PRELOAD="$PRELOAD" \
    "$SQLENVFS" restore --root "$R" --time "@$TIME" --output "$T/r-base-$how.db" \
    > "$T/r-base-$how.out" 2> "$T/r-base-$how.err" || rc=$?
  [ ! -e "$snap" ] || fail "base removed while read ($how): the hook did not run"
  [ "$rc" -eq 0 ] || fail "a restore whose base was removed as it read it failed: $(cat "$T/r-base-$how.err")"
  # Read on from the base it opened: not called bad, nor another one taken.
  [ ! -s "$T/r-base-$how.err" ] || fail "the restore whose base was removed said: $(cat "$T/r-base-$how.err")"
  grep -q "base     snapshot $(basename "$snap") " "$T/r-base-$how.out" ||
    fail "the restore did not read on from its base: $(cat "$T/r-base-$how.out")"
  pitr_check_state "$T/r-base-$how.db" "$T/log" "$TIME" "the restore whose base was removed"
  mv "$T/snap-keep" "$snap"
done
pass "a restore whose base is removed just after it opened it reads on, and is exact"
