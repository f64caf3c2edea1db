#!/usr/bin/env bash
# The mount reads the archive again (its timeline is refreshed) while a
# prune removes the first segments one after the other: the refresh finds
# the first one gone and reads the archive anew, and the prune removes the
# next ones under it. A pitr/ file read after that is the exact state at its
# time, never one that the partly read archive would make of it.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

cc -O2 -Wall -shared -fPIC "$SRCDIR/tests/integration/hook_open.c" -o "$T/hook_open.so" -ldl
# An AddressSanitizer build wants its runtime first among the preloaded.
PRELOAD="$(ldd "$SQLENVFS" | awk '/libasan/ {print $3}') $T/hook_open.so"

R=$T/root M=$T/mnt
A=$R/backups/prod/wal_archives/app
pitr_grow_segments "$R" "$T/a" "$T/log" 6
m=$PITR_NSEGS
"$SQLENVFS" backup --root "$R" > /dev/null
pitr_write "$R" "$T/log" 1 "$(pitr_last_k "$T/log")"
T1=$(pitr_last_time "$T/log")
pitr_write "$R" "$T/log" 1 "$(pitr_last_k "$T/log")"
pitr_stop_archiver "$T/a"
T2=$(pitr_last_time "$T/log")
note "$m segments before the backup"

# The daemon runs with the hook: once armed, its first open of segment 3's
# summary moves segments 2 to m-1 aside first (the prune going on).
aside1=$T/aside1 aside2=$T/aside2
mkdir -p "$aside1" "$aside2"
HOOK_OPEN_NAME="$(printf %016d 3).sum" HOOK_OPEN_ARMED=$T/armed \
  HOOK_OPEN_CMD="for n in \$(seq 2 $((m - 1))); do mv $A/\$(printf %016d \$n).* $aside2/; done" \
  LD_PRELOAD="$PRELOAD" mount_root "$R" "$M" -o noarchiver
ls "$M/pitr/@$T1/" > /dev/null || fail "pitr/@$T1 is not there"
[ -z "$(ls "$aside2")" ] || fail "the hook ran before it was armed"
# The prune's first step: segment 1 goes; the timeline is stale now.
mv "$A/$(printf %016d 1)".* "$aside1/"
touch "$T/armed"
sleep 1.2 # past the mount's one-second entry cache

check() { pitr_check_state "$1" "$T/log" "$2" "$3"; } # db time label
cp "$M/pitr/@$T2/app.db" "$T/t2.db" 2> "$T/cp.err" ||
  fail "pitr/@$T2/app.db could not be read while segments went: $(cat "$T/cp.err")"
[ -n "$(ls "$aside2")" ] || fail "the hook did not run (no open of segment 3's summary)"
check "$T/t2.db" "$T2" "pitr/@$T2 read while the prune went on" ||
  fail "pitr/@$T2 read while the prune went on is not the state at that time"
pass "a pitr file read while a prune removes segments under the mount's refresh is exact"
cp "$M/pitr/@$T1/app.db" "$T/t1.db" || fail "pitr/@$T1/app.db could not be read"
check "$T/t1.db" "$T1" "pitr/@$T1" || fail "pitr/@$T1 is not the state at that time"
pass "and so is a time read before the prune"

# The archive cannot be read again at all: the newest segment is not a
# file any more. The refresh fails, and the timeline, holding the segments
# before it only, makes no plan: a new time in that segment is an error,
# never the older state those segments end with. Once the file is back, it
# is the exact state.
pitr_start_archiver "$R" "$T/a"
pitr_write "$R" "$T/log" 0.5 "$(pitr_last_k "$T/log")"
pitr_stop_archiver "$T/a"
T3=$(pitr_last_time "$T/log")
last=$(ls "$A" | grep '\.seg$' | tail -1)
mv "$A/$last" "$T/$last"
mkdir "$A/$last"
sleep 1.2
if cp "$M/pitr/@$T3/app.db" "$T/t3.db" 2> "$T/cp3.err"; then
  check "$T/t3.db" "$T3" "pitr/@$T3 with the newest segment unreadable" ||
    fail "pitr/@$T3, read while the newest segment could not be read, is not the state then"
fi
# status says that its windows are as last read, and why.
recoverable_error() {
  python3 -c 'import json, sys
d = [x for x in json.load(open(sys.argv[1]))["databases"] if x["name"] == "app"][0]
print(d["recoverable"]["error"])' "$M/status"
}
err=$(recoverable_error)
case "$err" in
*"could not be read again"*"pitr/ serves no time until a read succeeds"*) ;;
*) fail "status did not say that the archive could not be read again: $err" ;;
esac
rmdir "$A/$last"
mv "$T/$last" "$A/$last"
sleep 1.2
cp "$M/pitr/@$T3/app.db" "$T/t3.db" 2> "$T/cp3.err" ||
  fail "pitr/@$T3/app.db could not be read once the segment was back: $(cat "$T/cp3.err")"
check "$T/t3.db" "$T3" "pitr/@$T3" || fail "pitr/@$T3 is not the state at that time"
assert_eq "$(recoverable_error)" "None" "status's recoverable error once the archive is read"
pass "an archive that cannot be read again gives an error, never an older state, until it can"
