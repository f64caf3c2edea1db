#!/usr/bin/env bash
# Shipping through a fault-injecting proxy (tests/s3proxy.py): 500s, 503
# SlowDown, connections cut in a request or an answer, answers dropped after
# the request took effect, delays: retried, and the replica is exact. An
# idle root makes no request. Wrong credentials, a missing bucket and a
# credentials file readable by others: one clear error in the log and the
# status, and few requests (no tight loop).
source "$(dirname "$0")/lib.sh"
source "$SRCDIR/tests/integration/ship_lib.sh"

ship_start_server
ship_proxy
R=$T/root
ship_make_root "$R" px "$PX"
ship_start "$R" "$T/a"
DB=$R/data/prod/app.db
ship_wait_caught_up "$R" px 20

# --- faults while a writer commits
fault reset >/dev/null
ship_write "$DB" 2000 400 &
wpid=$!
track_pid $wpid
for spec in "status&count=2&method=PUT&arg=500" "slowdown&count=2&method=PUT" \
            "cut_reply&count=1&method=PUT&arg=10" "drop_reply&count=2&method=PUT" \
            "cut_request&count=1&method=PUT&arg=1000" "delay&count=3&method=PUT&arg=700"; do
  fault "arm?kind=$spec" >/dev/null
  sleep 0.7
done
"$SQLENVFS" backup --root "$R" >/dev/null
wait $wpid || fail "the writer failed"
ship_wait_caught_up "$R" px 40
ship_download px "$T/dl"
res=$(python3 "$SRCDIR/tests/integration/ship_check.py" "$R/backups/prod" "$T/dl" --complete \
  --state "$R/.sqlenvfs/replica-shipped") || fail "after the faults: $res"
nf=$(fault stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["faults"])')
[ "$nf" -ge 8 ] || fail "only $nf faults were injected"
pass "$nf injected faults retried, the replica is exact ($res)"

# --- the deletes of a sealed segment's parts fail: the segment is shipped
# whole, and its parts are deleted by a later round, not left behind
fault reset >/dev/null
fault "arm?kind=status&count=1000&method=DELETE&match=.seg.part-&arg=500" >/dev/null
ship_write "$DB" 2500 400
for _ in $(seq 1 100); do
  [ "$(fault stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["faults"])')" -ge 3 ] && break
  sleep 0.2
done
nf=$(fault stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["faults"])')
[ "$nf" -ge 3 ] || fail "no delete of a part was refused: $(fault stats)"
fault clear >/dev/null
ship_wait_caught_up "$R" px 40
pass "the deletes of a sealed segment's parts failed $nf times; a later round deleted them"

# --- a key that may not delete (403 to every DELETE of a part): shipping
# goes on past the first sealed segment, and the refusal is said once
# (shipping used to stop there for good, every round failing on it)
fault reset >/dev/null
fault "arm?kind=status&count=100000&method=DELETE&match=.seg.part-&arg=403" >/dev/null
segs0=$(ls "$R/backups/prod/wal_archives/app/" | grep -c '\.seg$')
ship_write "$DB" 5000 400
segs1=$(ls "$R/backups/prod/wal_archives/app/" | grep -c '\.seg$')
[ "$segs1" -ge $((segs0 + 2)) ] || fail "the writer did not seal two segments ($segs0 -> $segs1)"
for _ in $(seq 1 80); do
  ship_download px "$T/dl" && python3 "$SRCDIR/tests/integration/ship_check.py" \
    "$R/backups/prod" "$T/dl" --complete --parts-left > "$T/check.out" 2>&1 && break
  sleep 0.5
done
python3 "$SRCDIR/tests/integration/ship_check.py" "$R/backups/prod" "$T/dl" --complete \
  --parts-left > "$T/check.out" 2>&1 || fail "the replica did not catch up: $(cat "$T/check.out")"
nf=$(fault stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["faults"])')
[ "$nf" -ge 1 ] || fail "no delete was refused: $(fault stats)"
n=$(grep -c "let the key delete objects" "$T/a.err" || true)
assert_eq "$n" "1" "times the refused deletes were said"
fault clear >/dev/null
# Readers take the whole segments over the parts left beside them.
"$SQLENVFS" verify --remote "s3://$S3_BUCKET/px" > "$T/vr.out" 2>&1 ||
  fail "verify --remote with parts left beside whole segments: $(cat "$T/vr.out")"
"$SQLENVFS" restore --remote "s3://$S3_BUCKET/px" --time latest --output "$T/left.db" \
  > "$T/left.out" 2>&1 || fail "restore --remote with parts left: $(cat "$T/left.out")"
"$SQLENVFS" restore --root "$R" --time latest --output "$T/left-local.db" > /dev/null 2>&1
cmp <(sqlite3 "$T/left.db" "SELECT count(*), sum(length(v)) FROM t") \
  <(sqlite3 "$T/left-local.db" "SELECT count(*), sum(length(v)) FROM t") > /dev/null ||
  fail "restore --remote with parts left differs from the local one"
pass "with deletes refused, shipping goes on ($((segs1 - segs0)) segments sealed), said once; readers take the whole segments"

# --- idle: no request (the lease is renewed every 75 s)
sleep 2
fault reset >/dev/null
sleep 8
n=$(proxy_requests)
[ "$n" -le 1 ] || fail "an idle root made $n requests in 8 s: $(fault stats)"
pass "an idle root made $n request(s) in 8 s"
ship_stop "$T/a"

# --- wrong credentials: one clear error, no tight loop
fault reset >/dev/null
cat >"$T/creds" <<C
[default]
aws_access_key_id = $AWS_ACCESS_KEY_ID
aws_secret_access_key = wrong-secret
C
chmod 600 "$T/creds"
echo "credentials-file = $T/creds" >>"$R/sqlenvfs.conf"
ship_start "$R" "$T/b"
for _ in $(seq 1 50); do grep -q 'shipping is off' "$T/b.err" && break; sleep 0.1; done
sleep 3
grep -q "shipping is off: .*403 SignatureDoesNotMatch" "$T/b.err" ||
  fail "no clear error for a wrong secret: $(cat "$T/b.err")"
assert_eq "$(grep -c 'shipping is off' "$T/b.err")" 1 "errors logged for a wrong secret"
grep -q '^state=error' "$R/.sqlenvfs/replica-status" || fail "status: $(cat "$R/.sqlenvfs/replica-status")"
"$SQLENVFS" list --root "$R" | grep -q 'app .*error, .*SignatureDoesNotMatch' ||
  fail "list does not show the error: $("$SQLENVFS" list --root "$R")"
n=$(proxy_requests)
[ "$n" -le 2 ] || fail "$n requests with a wrong secret: $(fault stats)"
ship_stop "$T/b"
pass "wrong credentials: one clear error in the log and status, $n request(s)"

# --- a missing bucket
fault reset >/dev/null
sed -i "s|^credentials-file = .*||; s|^url = .*|url = s3://no-such-bucket-here/p|" "$R/sqlenvfs.conf"
ship_start "$R" "$T/c"
for _ in $(seq 1 50); do grep -q 'shipping is off' "$T/c.err" && break; sleep 0.1; done
sleep 3
grep -q "shipping is off: .*404 NoSuchBucket" "$T/c.err" || fail "no clear error for a missing bucket: $(cat "$T/c.err")"
assert_eq "$(grep -c 'shipping is off' "$T/c.err")" 1 "errors logged for a missing bucket"
n=$(proxy_requests)
[ "$n" -le 2 ] || fail "$n requests to a missing bucket: $(fault stats)"
ship_stop "$T/c"
pass "a missing bucket: one clear error, $n request(s)"

# --- a credentials file readable by others: refused, shipping off, capture on
fault reset >/dev/null
sed -i "s|^url = .*|url = s3://$S3_BUCKET/px|" "$R/sqlenvfs.conf"
echo "credentials-file = $T/creds" >>"$R/sqlenvfs.conf"
chmod 644 "$T/creds"
ship_start "$R" "$T/d"
grep -q "shipping is off: .*$T/creds.*readable .*by group or others.*chmod 600" "$T/d.err" ||
  fail "a credentials file readable by others was not refused clearly: $(cat "$T/d.err")"
grep -q '^state=error' "$R/.sqlenvfs/replica-status" || fail "status: $(cat "$R/.sqlenvfs/replica-status")"
# Nothing is shipped then: the status written at the start names each
# database, or `list` would show no replica at all.
"$SQLENVFS" list --root "$R" | grep -q 'app .*error, .*by group or others' ||
  fail "list does not show why shipping is off: $("$SQLENVFS" list --root "$R")"
# What is captured meanwhile waits, and the status counts it.
b0=$(ship_backlog "$R")
ship_write "$R/data/prod/app.db" 50 500
b1=$(ship_backlog_over "$R" "${b0:-0}" "the root with refused credentials")
assert_eq "$(proxy_requests)" 0 "requests made with refused credentials"
ship_stop "$T/d"
pass "a credentials file readable by others is refused; shipping is off (list says why, and" \
  "counts $b1 bytes waiting), nothing is sent"
