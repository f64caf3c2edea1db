#!/usr/bin/env bash
# Shipping through server failures (radosgw, behind tests/s3proxy.py):
# kill -9 of radosgw in the middle of a multipart upload of a backup and
# while a writer's commits are being shipped, then a restart: shipping
# resumes, nothing partial counts as shipped, no record is lost (the
# replica equals the local history at the end). SIGSTOP: ship_stall.sh.
source "$(dirname "$0")/lib.sh"
source "$SRCDIR/tests/integration/ship_lib.sh"

# radosgw is killed or stopped here: a server of the test's own.
ship_start_server own
ship_proxy
R=$T/root
ship_make_root "$R" faults "$PX"
ship_start "$R" "$T/a"
DB=$R/data/prod/app.db
check_all() {
  ship_download faults "$T/dl"
  python3 "$SRCDIR/tests/integration/ship_check.py" "$R/backups/prod" "$T/dl" --complete \
    --state "$R/.sqlenvfs/replica-shipped"
}

# --- kill -9 in the middle of a multipart upload (a backup of 10 MiB)
ship_write "$DB" 80 131072
ship_wait_caught_up "$R" faults 30
fault reset >/dev/null
# Each part is held 8 s before it goes on: part 1 ends before part 2 starts,
# and the server is killed while part 2 is held, before the upload can be
# completed, even on a loaded machine. (Any PUT held instead, a record
# shipped meanwhile, would let the parts through at once, and the upload
# could end before the kill.)
fault "arm?kind=delay&count=2&method=PUT&match=partNumber%3D&arg=8000" >/dev/null
"$SQLENVFS" backup --root "$R" >/dev/null
for _ in $(seq 1 400); do
  n=$(fault stats | python3 -c 'import json,sys; print(sum("partNumber=" in e[1] for e in json.load(sys.stdin)["log"]))')
  [ "$n" -ge 2 ] && break
  sleep 0.05
done
[ "$n" -ge 2 ] || fail "no multipart upload of the backup was seen: $(fault stats)"
"$SRCDIR/scripts/s3server.sh" kill-rgw "$SRV"
note "radosgw killed during part 2 of the backup's upload"
ship_write "$DB" 30 1000   # commits go on while the server is gone
sleep 2
name=$(ls "$R/backups/prod/daily")
grep -q "daily/$name/MANIFEST" "$R/.sqlenvfs/replica-shipped" &&
  fail "the backup counts as shipped although its upload was cut"
"$SRCDIR/scripts/s3server.sh" start-rgw "$SRV" >/dev/null
ship_wait_caught_up "$R" faults 40
res=$(check_all) || fail "after the restart: $res"
pass "kill -9 during a multipart upload: resumed, the backup shipped whole ($res)"

# --- kill -9 while a writer's commits are being shipped
ship_write "$DB" 3000 300 &
wpid=$!
track_pid $wpid
sleep 1.5
"$SRCDIR/scripts/s3server.sh" kill-rgw "$SRV"
sleep 1
"$SRCDIR/scripts/s3server.sh" start-rgw "$SRV" >/dev/null
wait $wpid || fail "the writer failed"
ship_wait_caught_up "$R" faults 40
res=$(check_all) || fail "after the restart: $res"
pass "kill -9 under a writer: no record lost, nothing partial counted ($res)"

ship_stop "$T/a"
