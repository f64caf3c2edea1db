#!/usr/bin/env bash
# prune with a replica: copies not yet shipped (the server is down) are
# never removed, and prune says so; once shipped, prune removes them locally
# and the shipper removes the same keys from the replica. prune needs no
# credentials to decide.
source "$(dirname "$0")/lib.sh"
source "$SRCDIR/tests/integration/ship_lib.sh"

# radosgw is killed or stopped here: a server of the test's own.
ship_start_server own
R=$T/root
ship_make_root "$R" pr
DAILY=$R/backups/prod/daily
ship_write "$R/data/prod/app.db" 20 100

# The server is down: nothing can be shipped. Three backups dated back to
# 2020 (past the 7 days kept).
"$SRCDIR/scripts/s3server.sh" kill-rgw "$SRV"
ship_start "$R" "$T/a"
for d in 1 2 3; do
  "$SQLENVFS" backup --root "$R" >/dev/null
  newest=$(ls "$DAILY" | grep -v '^2020' | head -1)
  redate_copy "$DAILY/$newest" "2020010${d}T000000Z"
done
before=$(ls "$DAILY")
rc=0
out=$(env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$SQLENVFS" prune --root "$R" 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "prune removed copies not yet shipped: $out"
grep -q "not yet shipped to s3://$S3_BUCKET/pr: .*/daily/2020010[1-3]T000000Z" <<<"$out" ||
  fail "prune does not say what is not shipped: $out"
assert_eq "$(ls "$DAILY")" "$before" "backups after a refused prune"
pass "prune refuses to remove copies not yet shipped, and says so"

"$SRCDIR/scripts/s3server.sh" start-rgw "$SRV" >/dev/null
ship_wait_caught_up "$R" pr 60
out=$("$SQLENVFS" prune --root "$R") || fail "prune failed: $out"
grep -q '^removed *backup *2020010[1-3]T000000Z' <<<"$out" || fail "prune removed nothing: $out"
local_left=$(ls "$DAILY")
for _ in $(seq 1 100); do
  left=$(s3cmd_ ls "s3://$S3_BUCKET/pr/daily/" | awk '{print $NF}' | sed 's|.*/daily/||; s|/$||')
  [ "$left" = "$local_left" ] && break
  sleep 0.2
done
assert_eq "$left" "$local_left" "backups in the replica after prune"
ship_caught_up "$R" pr >/dev/null || fail "replica after prune: $(ship_caught_up "$R" pr 2>&1)"
ship_stop "$T/a"
pass "prune removes from the replica what it removed locally"
