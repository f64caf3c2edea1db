#!/usr/bin/env bash
# The S3 client, the replica settings and the lease against a real S3 server
# (Ceph radosgw, tests/integration/s3_lib.sh), directly and through a
# fault-injecting proxy (tests/s3proxy.py): round trips checked byte for
# byte (also with s3cmd, an independent client), ranged GETs, LIST with
# continuation, conditional PUTs, the lease, clear errors without retry
# loops, and retries with backoff through 500, 503 SlowDown, cut
# connections and stalls.
source "$(dirname "$0")/lib.sh"
: "${S3CHECK:?S3CHECK must point at the built tests/s3check}"

source "$SRCDIR/tests/integration/s3_lib.sh"
_s3_exit() {
  local rc=$?
  set +e
  s3_server_end
  (exit $rc)
  _cleanup
}
trap _s3_exit EXIT

t_start=$(date +%s%N)
s3_server_start "$T/s3server" || fail "the test S3 server did not start"
note "radosgw up at $S3_ENDPOINT in $(( ($(date +%s%N) - t_start) / 1000000 )) ms"
URL=s3://$S3_BUCKET/it
s3() { "$S3CHECK" --url "$URL" "$@"; }
s3cmd_() { s3cmd -c "$S3CMD_CONFIG" "$@" >/dev/null; }

# Wait for a condition, polling, with a deadline.
wait_until() { # seconds what cmd...
  local secs=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "$what: not within $secs s"
    sleep 0.1
  done
}

# ---- round trips ----------------------------------------------------------
head -c 1000 /dev/urandom >"$T/small"
etag=$(s3 put small "$T/small")
assert_eq "$etag" "$(md5sum <"$T/small" | cut -c1-32)" "ETag of a small PUT"
s3 get small "$T/small.out"
cmp "$T/small" "$T/small.out" || fail "small object read back differs"
s3cmd_ get "s3://$S3_BUCKET/it/small" "$T/small.s3cmd"
cmp "$T/small" "$T/small.s3cmd" || fail "small object read by s3cmd differs"
assert_eq "$(s3 head small)" "1000 $etag" "HEAD of the small object"
: >"$T/empty"
s3 put empty "$T/empty" >/dev/null
s3 get empty "$T/empty.out"
[ -f "$T/empty.out" ] && [ ! -s "$T/empty.out" ] || fail "empty object read back is not empty"
pass "small and empty objects round-trip (also read by s3cmd)"

head -c $((11 * 1024 * 1024 + 123)) /dev/urandom >"$T/big"
size=$(stat -c %s "$T/big")
etag=$(s3 put-large big "$T/big" 5242880)
[[ $etag == *-3 ]] || fail "a 3-part upload has ETag $etag"
s3 get big "$T/big.out"
cmp "$T/big" "$T/big.out" || fail "multipart object read back differs"
s3cmd_ get "s3://$S3_BUCKET/it/big" "$T/big.s3cmd"
cmp "$T/big" "$T/big.s3cmd" || fail "multipart object read by s3cmd differs"
assert_eq "$(s3 head big | cut -d' ' -f1)" "$size" "size of the multipart object"
pass "multipart object of $size bytes round-trips in 3 parts (also read by s3cmd)"

s3 get big "$T/r1" 5242870 20
cmp "$T/r1" <(tail -c +5242871 "$T/big" | head -c 20) || fail "range across a part boundary"
s3 get big "$T/r2" $((size - 5)) 100
cmp "$T/r2" <(tail -c 5 "$T/big") || fail "range through the end"
s3 get big "$T/r3" $((size + 10)) 10
[ ! -s "$T/r3" ] || fail "a range past the end is not empty"
s3 get big "$T/r4" 7000000
cmp "$T/r4" <(tail -c +7000001 "$T/big") || fail "open range to the end"
pass "ranged GETs: across a part boundary, through the end, past the end, open-ended"

s3 abort-multipart aborted "$T/big" 5242880
expect_fail "HTTP 404 NoSuchKey" s3 get aborted "$T/x"
[ -z "$(s3cmd -c "$S3CMD_CONFIG" multipart "s3://$S3_BUCKET" | grep it/aborted || true)" ] ||
  fail "an aborted multipart upload is still listed"
s3 delete small
expect_fail "get s3://$S3_BUCKET/it/small: HTTP 404 NoSuchKey" s3 get small "$T/x"
s3 delete small
pass "abort leaves no object and no upload; delete removes, and deleting twice succeeds"

# ---- the multipart uploads left open, by prefix, with markers ----------------
head -c 1000 /dev/urandom >"$T/tiny"
u1=$(s3 open-multipart open/a "$T/tiny" 1048576)
u2=$(s3 open-multipart open/a "$T/tiny" 1048576)
u3=$(s3 open-multipart open/b "$T/tiny" 1048576)
u4=$("$S3CHECK" --url "s3://$S3_BUCKET/it2" open-multipart open/c "$T/tiny" 1048576)
s3 uploads >"$T/up.out" 2>"$T/up.err"
assert_eq "$(sort "$T/up.out")" "$(printf 'open/a %s\nopen/a %s\nopen/b %s\n' "$u1" "$u2" "$u3" |
  sort)" "the uploads open under s3://$S3_BUCKET/it"
assert_eq "$(cat "$T/up.err")" "pages 1" "pages of the uploads' list"
s3 uploads 1 >"$T/up1.out" 2>"$T/up1.err"
cmp "$T/up.out" "$T/up1.out" || fail "the uploads listed one a page differ"
[ "$(sed 's/pages //' "$T/up1.err")" -ge 3 ] || fail "one upload a page: $(cat "$T/up1.err")"
s3cmd_ abortmp "s3://$S3_BUCKET/it/open/a" "$u1"
s3cmd_ abortmp "s3://$S3_BUCKET/it/open/a" "$u2"
s3cmd_ abortmp "s3://$S3_BUCKET/it/open/b" "$u3"
s3cmd_ abortmp "s3://$S3_BUCKET/it2/open/c" "$u4"
[ -z "$(s3 uploads 2>/dev/null)" ] || fail "uploads left open: $(s3 uploads)"
pass "the multipart uploads open under the prefix are listed (one a page too), no other"

# ---- LIST with continuation -------------------------------------------------
s3 put-many list/k 1005
s3 list list/ >"$T/list.out" 2>"$T/list.err"
assert_eq "$(wc -l <"$T/list.out")" 1005 "keys listed"
assert_eq "$(cat "$T/list.err")" "pages 2" "pages of a default LIST of 1005 keys"
cmp <(cut -d' ' -f1 "$T/list.out") <(for i in $(seq 0 1004); do printf 'list/k%05d\n' "$i"; done) ||
  fail "listed keys are not the keys written, in order"
s3 list list/ 100 >"$T/list100.out" 2>"$T/list100.err"
assert_eq "$(cat "$T/list100.err")" "pages 11" "pages with max-keys 100"
cmp "$T/list.out" "$T/list100.out" || fail "paged listing differs"
assert_eq "$(s3 list nothing/ 2>/dev/null | wc -l)" 0 "an empty prefix lists nothing"
pass "LIST v2 follows continuation tokens (1005 keys: 2 pages of 1000, 11 of 100)"

# ---- conditional PUT ----------------------------------------------------------
echo one >"$T/c1"; echo two >"$T/c2"; echo three >"$T/c3"
e1=$(s3 put cond "$T/c1" --if-absent)
expect_fail "put s3://$S3_BUCKET/it/cond: HTTP 412 PreconditionFailed" s3 put cond "$T/c2" --if-absent
e2=$(s3 put cond "$T/c2" --if-match "$e1")
expect_fail "HTTP 412 PreconditionFailed" s3 put cond "$T/c3" --if-match "$e1"
s3 get cond "$T/c.out"
cmp "$T/c2" "$T/c.out" || fail "conditional PUTs left the wrong content"
[ "$e1" != "$e2" ] || fail "a replaced object kept its ETag"
pass "If-None-Match: * creates once; If-Match replaces only the version read"

# ---- the lease ------------------------------------------------------------------
L="$S3CHECK --url $URL/leased"
$L lease-hold /roots/a 3 300 "$T/a.state" 2>"$T/a.err" &
a_pid=$!
track_pid "$a_pid"
wait_until 20 "holder A takes the lease" grep -qx held "$T/a.state"
expect_fail "take lease s3://$S3_BUCKET/it/leased/lease: held by host .*, root /roots/a, pid $a_pid until" \
  $L lease-take /roots/b 3
kill -STOP "$a_pid"
wait_until 30 "B takes the lease over once A's expired" $L lease-take /roots/b 3
kill -CONT "$a_pid"
a_gone() { grep -q '^lost' "$T/a.state"; }
wait_until 30 "A notices it lost the lease" a_gone
a_rc=0
wait "$a_pid" || a_rc=$?
assert_eq "$a_rc" 3 "exit status of the holder that lost its lease"
grep -q "^lost: renew lease s3://$S3_BUCKET/it/leased/lease: lost, now held by host .*, root /roots/b" \
  "$T/a.state" || fail "A does not say it lost the lease to B: $(cat "$T/a.state")"
# C tries until B's lease has expired (each try that finds it held exits 1).
c_started() {
  rm -f "$T/c.state"
  $L lease-hold /roots/c 30 200 "$T/c.state" 2>"$T/c.err" &
  c_pid=$!
  track_pid "$c_pid"
  while kill -0 "$c_pid" 2>/dev/null && [ ! -s "$T/c.state" ]; do sleep 0.05; done
  grep -qx held "$T/c.state" 2>/dev/null
}
wait_until 30 "C takes the lease once B's expired" c_started
expect_fail "held by host .*, root /roots/c, pid $c_pid" $L lease-take /roots/d 30
kill -TERM "$c_pid"
wait "$c_pid" || fail "holder C did not release cleanly: $(cat "$T/c.err")"
assert_eq "$(cat "$T/c.state")" released "C's state after SIGTERM"
$L lease-take /roots/d 30 >/dev/null || fail "a released lease cannot be taken at once"
pass "lease: a second holder is refused naming the first, an expired lease is taken over, the loser says so, a released one is free at once"

# ---- clear errors, no retry loop (requests counted by the proxy) ---------------
rgw_port=${S3_ENDPOINT##*:}
python3 "$SRCDIR/tests/s3proxy.py" "$rgw_port" "$T/proxy.port" 300 &
track_pid $!
wait_until 20 "the fault proxy listens" test -s "$T/proxy.port"
PX=http://127.0.0.1:$(cat "$T/proxy.port")
fault() {
  python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' \
    "$PX/__fault/$1"
}
proxy_requests() { fault stats | python3 -c 'import json, sys; print(json.load(sys.stdin)["requests"])'; }
fault reset >/dev/null
# Through the proxy with no fault armed, the client works as before.
AWS_ENDPOINT_URL=$PX s3 get big "$T/big.px"
cmp "$T/big" "$T/big.px" || fail "object read through the idle proxy differs"
assert_eq "$(proxy_requests)" 1 "requests for one GET through the proxy"

fault reset >/dev/null
AWS_ENDPOINT_URL=$PX AWS_SECRET_ACCESS_KEY=wrong-secret \
  expect_fail "get s3://$S3_BUCKET/it/big: HTTP 403 SignatureDoesNotMatch.*check the access key" \
  s3 get big "$T/x"
assert_eq "$(proxy_requests)" 1 "requests made with a wrong secret"
fault reset >/dev/null
AWS_ENDPOINT_URL=$PX AWS_ACCESS_KEY_ID=nobody \
  expect_fail "HTTP 403 InvalidAccessKeyId" s3 put k "$T/c1"
assert_eq "$(proxy_requests)" 1 "requests made with an unknown access key"
fault reset >/dev/null
AWS_ENDPOINT_URL=$PX expect_fail "put s3://no-such-bucket-here/p/k: HTTP 404 NoSuchBucket.*create the bucket" \
  "$S3CHECK" --url s3://no-such-bucket-here/p put k "$T/c1"
AWS_ENDPOINT_URL=$PX expect_fail "list s3://no-such-bucket-here: HTTP 404 NoSuchBucket" \
  "$S3CHECK" --url s3://no-such-bucket-here/p list ""
assert_eq "$(proxy_requests)" 2 "requests made to a missing bucket (one PUT, one LIST)"
pass "wrong secret, unknown key, missing bucket: one clear error after one request each"

# ---- faults: retries with backoff, no corruption ---------------------------------
cat >"$T/fast.conf" <<EOF
[replica]
connect-timeout = 2
low-speed-time = 1
max-retries = 4
backoff-base-ms = 50
backoff-max-ms = 400
EOF
F() { AWS_ENDPOINT_URL=$PX "$S3CHECK" --conf "$T/fast.conf" --url "$URL" --stats "$@"; }
stat_of() { grep -o "$1=[0-9]*" "$T/stats" | cut -d= -f2; }
head -c $((1024 * 1024)) /dev/urandom >"$T/mid"

fault reset >/dev/null
fault "arm?kind=status&arg=500&count=2&method=PUT" >/dev/null
F put mid "$T/mid" >/dev/null 2>"$T/stats"
assert_eq "$(stat_of retries)" 2 "retries of a PUT answered 500 twice"
assert_eq "$(proxy_requests)" 3 "requests of a PUT answered 500 twice"
s3cmd_ get --force "s3://$S3_BUCKET/it/mid" "$T/mid.s3cmd"
cmp "$T/mid" "$T/mid.s3cmd" || fail "object put through 500s differs"
pass "PUT through two 500s: 3 requests, $(stat_of backoff_ms) ms of backoff, content intact"

fault reset >/dev/null
fault "arm?kind=slowdown&count=3&method=GET" >/dev/null
F get mid "$T/mid.1" 2>"$T/stats"
cmp "$T/mid" "$T/mid.1" || fail "GET through SlowDown differs"
assert_eq "$(proxy_requests)" 4 "requests of a GET answered 503 SlowDown three times"
pass "GET through three 503 SlowDown: 4 requests, $(stat_of backoff_ms) ms of backoff, content intact"

fault reset >/dev/null
fault "arm?kind=cut_reply&arg=100000&count=2&method=GET" >/dev/null
F get mid "$T/mid.2" 2>"$T/stats"
cmp "$T/mid" "$T/mid.2" || fail "GET through cut replies differs"
assert_eq "$(stat_of retries)" 2 "retries of a GET whose reply was cut twice"
fault reset >/dev/null
fault "arm?kind=cut_reply&arg=10&count=1&method=GET" >/dev/null
F get mid "$T/mid.3" 500000 1000 2>"$T/stats"
cmp "$T/mid.3" <(tail -c +500001 "$T/mid" | head -c 1000) || fail "ranged GET through a cut reply"
assert_eq "$(stat_of retries)" 1 "retries of a ranged GET whose reply was cut"
pass "GETs whose replies are cut after N bytes are retried, never returned short"

fault reset >/dev/null
head -c $((1024 * 1024)) /dev/urandom >"$T/mid2"
fault "arm?kind=cut_request&arg=20000&count=2&method=PUT" >/dev/null
F put mid2 "$T/mid2" >/dev/null 2>"$T/stats"
assert_eq "$(stat_of retries)" 2 "retries of a PUT whose upload was cut twice"
s3cmd_ get --force "s3://$S3_BUCKET/it/mid2" "$T/mid2.s3cmd"
cmp "$T/mid2" "$T/mid2.s3cmd" || fail "object put through cut uploads differs"
pass "PUT whose upload is cut after N bytes is retried; the object is whole"

fault reset >/dev/null
fault "arm?kind=status&arg=500&count=1&method=POST" >/dev/null
fault "arm?kind=cut_request&arg=100000&count=1&method=PUT" >/dev/null
etag=$(F put-large big2 "$T/big" 5242880 2>"$T/stats")
[[ $etag == *-3 ]] || fail "multipart through faults has ETag $etag"
assert_eq "$(stat_of retries)" 2 "retries of a multipart upload with a failed start and a cut part"
s3 get big2 "$T/big2.out"
cmp "$T/big" "$T/big2.out" || fail "multipart object put through faults differs"
pass "multipart upload through a 500 on its start and a cut part: content intact"

# A multipart upload whose part is refused for good is aborted: no object,
# no upload left behind.
fault reset >/dev/null
fault "arm?kind=status&arg=400&count=1&method=PUT" >/dev/null
rc=0
F put-large big3 "$T/big" 5242880 >/dev/null 2>"$T/stats" || rc=$?
[ "$rc" -eq 1 ] || fail "a multipart upload with a refused part exits $rc"
grep -q "upload part 1 of s3://$S3_BUCKET/it/big3: HTTP 400 InvalidArgument" "$T/stats" ||
  fail "error of the refused part: $(cat "$T/stats")"
expect_fail "HTTP 404 NoSuchKey" s3 get big3 "$T/x"
[ -z "$(s3cmd -c "$S3CMD_CONFIG" multipart "s3://$S3_BUCKET" | grep it/big3 || true)" ] ||
  fail "a failed multipart upload was not aborted"
pass "a multipart upload that fails is aborted: no object and no upload left"

# A lease create whose answer is lost: the retry meets our own lease (412)
# and recognises it by its token.
fault reset >/dev/null
fault "arm?kind=drop_reply&count=1&method=PUT" >/dev/null
AWS_ENDPOINT_URL=$PX "$S3CHECK" --conf "$T/fast.conf" --url "$URL/leased2" --stats \
  lease-take /roots/e 30 >"$T/e.out" 2>"$T/stats" || fail "lease take with a lost answer: $(cat "$T/stats")"
grep -q "^held by pid" "$T/e.out" || fail "lease take with a lost answer: $(cat "$T/e.out")"
assert_eq "$(stat_of retries)" 1 "retries of a lease take whose answer was lost"
pass "a lease taken by a create whose answer was lost is recognised as ours"

fault reset >/dev/null
fault "arm?kind=delay&arg=4000&count=1&method=GET" >/dev/null
F get mid "$T/mid.4" 2>"$T/stats"
cmp "$T/mid" "$T/mid.4" || fail "GET after a stall differs"
assert_eq "$(stat_of retries)" 1 "retries of a GET that stalled past low-speed-time"
fault reset >/dev/null
fault "arm?kind=delay&arg=300&count=5" >/dev/null
F get mid "$T/mid.5" 2>"$T/stats"
cmp "$T/mid" "$T/mid.5" || fail "GET with added latency differs"
assert_eq "$(stat_of retries)" 0 "retries of a GET 300 ms slow"
pass "a stalled answer times out (low-speed-time) and is retried; added latency alone is not"

fault reset >/dev/null
fault "arm?kind=status&arg=500&count=1000&method=GET" >/dev/null
rc=0
F get mid "$T/x" 2>"$T/stats" || rc=$?
[ "$rc" -eq 1 ] || fail "a GET that always gets 500 exits $rc"
grep -q "get s3://$S3_BUCKET/it/mid: HTTP 500 InternalError: injected by s3proxy, after 5 attempts" \
  "$T/stats" || fail "error after the retries: $(cat "$T/stats")"
assert_eq "$(proxy_requests)" 5 "requests of a GET that always gets 500 (max-retries 4)"
backoff=$(stat_of backoff_ms)
[ "$backoff" -le 750 ] || fail "backoff of $backoff ms exceeds its bound (50+100+200+400)"
pass "a server that keeps failing: 5 requests, $backoff ms of backoff, then one clear error"
fault clear >/dev/null

# Every answer arrives with a byte damaged: retried, then an error that
# says the object is damaged, not that the server may be down.
fault reset >/dev/null
fault "arm?kind=flip&arg=100&count=1000&method=GET" >/dev/null
rc=0
F get mid "$T/x" 2>"$T/stats" || rc=$?
[ "$rc" -eq 1 ] || fail "a GET whose answers are always damaged exits $rc"
grep -q "get s3://$S3_BUCKET/it/mid: the bytes received have MD5 .*, after 5 attempts (the \
object is damaged in the store" "$T/stats" || fail "error after damaged answers: $(cat "$T/stats")"
! grep -q "is up and reachable" "$T/stats" || fail "damaged answers blamed on the network: $(cat "$T/stats")"
pass "answers that arrive damaged every time: retried, then called damage"
fault clear >/dev/null

# ---- credentials from a private file ---------------------------------------------
cat >"$T/creds" <<EOF
[default]
aws_access_key_id = $AWS_ACCESS_KEY_ID
aws_secret_access_key = $AWS_SECRET_ACCESS_KEY
EOF
chmod 600 "$T/creds"
cat >"$T/creds.conf" <<EOF
[replica]
url = $URL
credentials-file = $T/creds
EOF
env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$S3CHECK" --conf "$T/creds.conf" get big "$T/big.c"
cmp "$T/big" "$T/big.c" || fail "GET with credentials from a file differs"
chmod 644 "$T/creds"
expect_fail "read credentials $T/creds: the file is readable or writable by group or others.*chmod 600" \
  env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$S3CHECK" --conf "$T/creds.conf" get big "$T/x"
pass "credentials from a private file work; a file readable by others is refused"

note "whole test: $(( ($(date +%s%N) - t_start) / 1000000 )) ms"
