#!/usr/bin/env bash
# kill -9 of the archiver in the middle of a multipart upload (a backup of
# 10 MiB, shipped in 8 MiB parts held by tests/s3proxy.py): the upload stays
# open in the bucket, its first part stored. The next archiver, once it
# holds the lease and OWNER names its root, aborts it and says so once;
# an open upload outside the replica's prefix (under a prefix that begins
# with the same letters) is left alone. The replica is then complete, and a
# restore from it equals the local one.
source "$(dirname "$0")/lib.sh"
source "$SRCDIR/tests/integration/ship_lib.sh"

ship_start_server
ship_proxy
R=$T/root
ship_make_root "$R" orph "$PX"
DB=$R/data/prod/app.db
# uploads URL: "KEY UPLOAD_ID" of the multipart uploads open under URL
# (tests/s3check, this client); s3cmd_uploads: those of the whole bucket,
# as s3cmd (an independent client) lists them.
uploads() { "$S3CHECK" --url "$1" uploads 2>/dev/null; }
s3cmd_uploads() { s3cmd_ multipart "s3://$S3_BUCKET" | awk 'NR > 2 {print $2, $3}'; }

ship_start "$R" "$T/a"
ship_write "$DB" 80 131072
ship_wait_caught_up "$R" orph 30
# An upload of another prefix, left open: not this replica's.
head -c 100000 /dev/urandom >"$T/other"
other_id=$("$S3CHECK" --url "s3://$S3_BUCKET/orph-other" open-multipart k "$T/other" 1048576) ||
  fail "could not open an upload under s3://$S3_BUCKET/orph-other"

# --- kill -9 while part 2 of the backup's upload is held (part 1 stored)
fault reset >/dev/null
fault "arm?kind=delay&count=2&method=PUT&match=partNumber%3D&arg=3000" >/dev/null
"$SQLENVFS" backup --root "$R" >/dev/null
name=$(ls "$R/backups/prod/daily")
parts_seen() {
  fault stats | python3 -c '
import json, sys
print(sum("partNumber=" in e[1] for e in json.load(sys.stdin)["log"]))'
}
for _ in $(seq 1 100); do
  n=$(parts_seen)
  [ "$n" -ge 2 ] && break
  sleep 0.05
done
[ "$n" -ge 2 ] || fail "no multipart upload of the backup was seen: $(fault stats)"
kill -9 "$(cat "$T/a.pid")"
wait "$(cat "$T/a.pid")" 2>/dev/null || true
key=orph/daily/$name/app.db
s3cmd_uploads >"$T/open"
grep -q "^s3://$S3_BUCKET/$key " "$T/open" ||
  fail "the killed archiver left no upload of $key open: $(cat "$T/open")"
grep -q "^s3://$S3_BUCKET/orph-other/k $other_id$" "$T/open" ||
  fail "the other prefix's upload is not open: $(cat "$T/open")"
id=$(awk -v k="s3://$S3_BUCKET/$key" '$1 == k {print $2}' "$T/open")
note "the killed archiver left upload $id of $key open"

# --- the next archiver aborts it, and only it
fault reset >/dev/null
ship_start "$R" "$T/b"
ship_wait_caught_up "$R" orph 40
grep -q "aborted the unfinished multipart upload of s3://$S3_BUCKET/$key .*(upload id $id)" \
  "$T/b.err" || fail "the upload left open was not aborted, or not said so: $(cat "$T/b.err")"
assert_eq "$(grep -c 'aborted the unfinished multipart upload' "$T/b.err")" 1 \
  "uploads said to be aborted"
[ -z "$(uploads "s3://$S3_BUCKET/orph")" ] ||
  fail "uploads are left open under the prefix: $(uploads "s3://$S3_BUCKET/orph")"
s3cmd_uploads >"$T/open"
assert_eq "$(cat "$T/open")" "s3://$S3_BUCKET/orph-other/k $other_id" \
  "the uploads open in the bucket (s3cmd)"
pass "kill -9 during a multipart upload: the next archiver aborts the upload left open," \
  "and no other"

# --- the replica is complete and gives the local restore
ship_download orph "$T/dl"
res=$(python3 "$SRCDIR/tests/integration/ship_check.py" "$R/backups/prod" "$T/dl" --complete \
  --state "$R/.sqlenvfs/replica-shipped") || fail "the replica: $res"
grep -q "daily/$name/MANIFEST" "$R/.sqlenvfs/replica-shipped" || fail "the backup is not shipped"
ship_stop "$T/b"
ship_wait_caught_up "$R" orph 10
"$SQLENVFS" restore --root "$R" --time latest --output "$T/local.db" >/dev/null ||
  fail "the local restore failed"
"$SQLENVFS" restore --remote "s3://$S3_BUCKET/orph" --time latest --output "$T/remote.db" \
  >"$T/remote.out" 2>&1 || fail "restore --remote: $(cat "$T/remote.out")"
cmp -s "$T/local.db" "$T/remote.db" ||
  fail "the restore from the replica differs from the local one"
s3cmd_ abortmp "s3://$S3_BUCKET/orph-other/k" "$other_id" >/dev/null
pass "the replica is complete ($res); a restore from it equals the local one"
