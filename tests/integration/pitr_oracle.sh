#!/usr/bin/env bash
# Point-in-time recovery against an oracle: a separate Python process commits
# numbered transactions (small rows, overflow blobs, large updates past the
# checkpoint thresholds, application TRUNCATE checkpoints, a VACUUM) while
# `sqlenvfs archive` runs and snapshots are taken; then many times T are
# restored and each result is checked against the commit log
# (pitr_oracle.py check). The archiver's capture latency is printed.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
pitr_make_root "$R"
pitr_start_archiver "$R" "$T/archive"

python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log" --duration 14 \
  --truncate-every 150 &
WPID=$!
track_pid $WPID
for i in 1 2 3; do
  sleep 3.5
  "$SQLENVFS" snapshot --root "$R" >/dev/null
done
wait $WPID
pass "writer committed $(awk '$1=="T"' "$T/log" | wc -l) transactions"

pitr_stop_archiver "$T/archive"
grep -E '^app: ' "$T/archive.out" | sed 's/^/# /'
grep -q 'capture latency' "$T/archive.out" || fail "the archiver printed no latency summary"
# A run without faults logs no warning (an operator's monitoring alerts on them).
if grep -i 'warning' "$T/archive.err"; then fail "the archiver warned during a run without faults"; fi

python3 "$ORACLE" check --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --random 14 --around 8 --expect-latest
pass "restores match the commit log"

"$SQLENVFS" verify --root "$R" > "$T/verify.out" || { cat "$T/verify.out"; fail "verify"; }
n_seg=$(find "$R/backups/prod/wal_archives/app" -name '*.seg' | wc -l)
[ "$n_seg" -eq 1 ] && segs="1 segment" || segs="$n_seg segments"
grep -q "^ok   wal-archive $segs  *app\$" "$T/verify.out" ||
  fail "verify does not say it checked the WAL archive's $segs: $(cat "$T/verify.out")"
pass "verify: archive chain and copies good"
