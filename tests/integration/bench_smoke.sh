#!/usr/bin/env bash
# The benchmark script in smoke mode (seconds, a tiny database): every
# section must run and print its rows, so that the script cannot rot. Its
# ratios mean little at this size and are not judged here.
source "$SRCDIR/tests/integration/lib.sh"

pt="$T/passthrough_ro"
cc -O2 -Wall "$SRCDIR/scripts/bench/passthrough_ro.c" $(pkg-config --cflags --libs fuse3) -o "$pt"
python3 "$SRCDIR/scripts/bench.py" --sqlenvfs "$SQLENVFS" --passthrough "$pt" --smoke \
  --dir "$T/bench" > "$T/out.txt" 2>&1 || { cat "$T/out.txt"; fail "bench.py --smoke failed"; }
cat "$T/out.txt"
for section in 1-read 2-prod 3-backup 4-pitr 6-latency 7-memory 5-writer 9-verify 8-scale; do
  grep -q "^$section " "$T/out.txt" || fail "the benchmark printed no $section rows"
done
grep -Eq "^# [0-9]+ targets met, [0-9]+ missed" "$T/out.txt" || fail "no summary line"
mountpoint -q "$T/bench/mnt" && fail "the benchmark left its mount behind"
pass "every benchmark section runs"
