#!/usr/bin/env bash
# A segment whose parts were shipped, then replaced here (moved aside as
# damaged, and its number written again by an older sqlenvfs that reused
# numbers): the shipper refuses to ship on, and says that the local
# segment was replaced after shipping and what to do, not that another
# root shipped to the replica.
source "$(dirname "$0")/lib.sh"
source "$SRCDIR/tests/integration/ship_lib.sh"

ship_start_server
URL=s3://$S3_BUCKET/repl
R=$T/root
ship_make_root "$R" repl
ship_start "$R" "$T/a"
ship_write "$R/data/prod/app.db" 20 500
ship_wait_caught_up "$R" repl 30
ship_stop "$T/a"
W=$R/backups/prod/wal_archives/app
seg=$W/0000000000000001.seg
grep -q 'wal_archives/app/0000000000000001\.seg\.part-' "$R/.sqlenvfs/replica-shipped" ||
  fail "no part of segment 1 shipped: $(cat "$R/.sqlenvfs/replica-shipped")"

# The segment moved aside, and another file of its number put in its
# place: the same bytes, one of them changed past the header.
mv "$seg" "$seg.damaged-1764346440000000"
mv "$W/0000000000000001.idx" "$W/0000000000000001.idx.damaged-1764346440000000"
cp "$seg.damaged-1764346440000000" "$seg"
printf '\xff' | dd of="$seg" bs=1 seek=200 conv=notrunc status=none

ship_start "$R" "$T/b"
for _ in $(seq 1 100); do
  grep -q '^state=error' "$R/.sqlenvfs/replica-status" 2>/dev/null && break
  sleep 0.1
done
ship_stop "$T/b"
grep -q "another root" "$T/b.err" &&
  fail "a segment replaced here is blamed on another root: $(cat "$T/b.err")"
grep -q "holds wal_archives/app/0*1\.seg\.part-.* as this root shipped it, but the local segment \
$seg no longer holds those bytes: it was moved aside as damaged \
(0000000000000001\.seg\.damaged-1764346440000000) .*after it was shipped.*delete the replica's \
objects wal_archives/app/0000000000000001\.seg\.part-\*" "$T/b.err" ||
  fail "the shipper does not say the segment was replaced after shipping: $(cat "$T/b.err")"
pass "a segment replaced after shipping is named as such, with what to do"
