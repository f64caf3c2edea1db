#!/usr/bin/env bash
# A commit is archived as soon as it is visible, not at the archiver's next
# 100 ms tick, also when the application syncs its WAL before publishing the
# commit (synchronous=FULL, SQLite's default): the WAL write wakes the
# archiver before the commit is in the wal-index, so it must look again.
# The bound is loose (a quarter of the tick on the median of 30 commits,
# each made 5-23 ms after the previous one was archived, which put every one
# of them just after a tick when the archiver did not look again). The probe
# is the benchmark's (scripts/bench/latency_probe.py).
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
pitr_make_root "$R"
pitr_start_archiver "$R" "$T/a"

sleep 0.5
for sync in FULL NORMAL; do
  lat=$(python3 "$SRCDIR/scripts/bench/latency_probe.py" "$R/data/prod/app.db" \
          "$R/backups/prod/wal_archives/app" "$sync" 30) || fail "the latency probe failed"
  median=$(tr ' ' '\n' <<< "$lat" | sort -n | awk '{ v[NR] = $1 } END { printf "%d", v[int(NR / 2) + 1] }')
  [ -n "$median" ] || fail "the latency probe printed nothing"
  [ "$median" -lt 25 ] || fail "synchronous=$sync: commits were archived after $median ms (median); expected well within the 100 ms tick"
  pass "synchronous=$sync: commit to archived in $median ms (median of 30)"
done
pitr_stop_archiver "$T/a"
