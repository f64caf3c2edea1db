#!/usr/bin/env bash
# A damaged replica read from another machine: a truncated sealed segment,
# an unsealed segment whose parts have a hole, a damaged base object, wrong
# credentials. Each gives a clear one-line error (naming the object where
# one is to blame) or a shorter window, and never a wrong database: every
# restore that succeeds is checked against the commit log.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"
source "$SRCDIR/tests/integration/remote_lib.sh"
CHECK="$SRCDIR/tests/integration/remote_check.py"

remote_begin
remote_history --quiet-tail --duration 5 -- 2 backup
W=$R/backups/prod/wal_archives/app
segs=($(ls "$W" | grep '\.seg$'))
[ "${#segs[@]}" -ge 4 ] || fail "only ${#segs[@]} segments"
remote_replica f --parts 3
mkdir -p "$T/w"
cd "$T/w"

# The time of the last record of segment file $1 (from its index).
seg_last_time() {
  python3 - "$W/${1%.seg}.idx" <<'PY'
import struct, sys
d = open(sys.argv[1], "rb").read()
print("%.6f" % (struct.unpack_from("<q", d, len(d) - 112 + 24)[0] / 1e6))
PY
}
# ok_or_clear T OUT WHAT: a restore to T either fails with one line, or
# gives exactly the committed rows.
ok_or_clear() {
  local t=$1 out=$2 what=$3 msg rc=0
  rm -f "$out"
  msg=$(rremote "@$t" "$out") || rc=$?
  if [ "$rc" -eq 0 ]; then
    python3 "$CHECK" check-file "$T/log" "$out" "$t" >/dev/null || fail "$what: a wrong database"
    echo ok
  else
    [ "$(printf '%s\n' "$msg" | wc -l)" -eq 1 ] || fail "$what: more than one line: $msg"
    [ ! -e "$out" ] || fail "$what: a failed restore left $out"
    echo "$msg"
  fi
}

# 1. A damaged base object (same size, one byte changed): the restore
#    falls back to another base, with the same bytes as a local restore.
last_seg=${segs[${#segs[@]}-1]}
bk=$(ls "$R/backups/prod/daily")
# T: the end of a sealed segment from the middle on that ends after the
# backup's pin (on a loaded machine the writer can reach the middle
# segments before it). The copy damaged is the base a local restore to T
# reads: the backup, or the snapshot when the backup holds the same state
# (taken before the writer's first checkpoint, as on a loaded machine);
# either way the other copy holds a state before T to fall back to.
pin=$(sed -n 's/^pinned-at-us=//p' "$R/backups/prod/daily/$bk/MANIFEST")
[ -n "$pin" ] || fail "the backup's MANIFEST has no pinned-at-us"
t_mid=
for (( i = ${#segs[@]} / 2; i < ${#segs[@]} - 1; i++ )); do
  t=$(seg_last_time "${segs[$i]}")
  if python3 -c 'import sys; sys.exit(float(sys.argv[1]) * 1e6 <= int(sys.argv[2]))' "$t" "$pin"; then
    t_mid=$t
    break
  fi
done
[ -n "$t_mid" ] || fail "no sealed segment ends after the backup"
"$SQLENVFS" restore --root "$R" --time "@$t_mid" --output "$T/local.db" >"$T/local.out" \
  || fail "local restore"
kind=$(sed -n 's/^  base  *\(backup\|snapshot\) .*/\1/p' "$T/local.out")
base=$(sed -n 's/^  base  *\(backup\|snapshot\) \([^ ]*\) .*/\2/p' "$T/local.out")
case ${kind:-} in
  backup) top=daily ;;
  snapshot) top=snapshots ;;
  *) fail "the local restore names no base: $(cat "$T/local.out")" ;;
esac
note "the base damaged: $kind $base"
cp "$R/backups/prod/$top/$base/app.db" "$T/bad.db"
printf '\x55' | dd of="$T/bad.db" bs=1 seek=5000 conv=notrunc status=none
s3cmd_ -q put "$T/bad.db" "$URL/$top/$base/app.db" >/dev/null
# A relative --output (cwd is $T/w), so that the temporary directory is
# given as "./.tmp-remote-<pid>": the note of the base left out names its
# object in the replica all the same, never the temporary path (rremote).
rremote "@$t_mid" r1.db > "$T/r1.err" || fail "restore with a damaged base: $(cat "$T/r1.err")"
cmp "$T/local.db" "$T/w/r1.db" || fail "restore with a damaged base differs from the local one"
grep "$kind $base" "$T/notes" | grep -q "is bad: .*s3://$S3_BUCKET/f/$top/$base/app.db" ||
  fail "the damaged base is not named by its key: $(cat "$T/r1.err" "$T/notes")"
s3cmd_ -q put "$R/backups/prod/$top/$base/app.db" "$URL/$top/$base/app.db" >/dev/null
pass "a damaged base object ($kind): named, another base used, bytes as the local restore"

# 1b. The same base damaged on the way, in one answer of those that fetch it
#     in ranges (the proxy inverts a byte; no base fetched whole is, as the
#     client checks its MD5 and fetches it again): fetched again, it checks,
#     and it is the base used.
: > "$T/notes"
curl -fsS "$PX/__fault/reset" >/dev/null
curl -fsS "$PX/__fault/arm?kind=flip&count=1&method=GET&match=/$top/$base/app.db&arg=5000" \
  >/dev/null || fail "arming the proxy"
SQLENVFS_TEST_REMOTE_RANGE_BYTES=65536 rremote "@$t_mid" r1b.db > "$T/r1b.err" ||
  fail "restore with a base damaged on the way: $(cat "$T/r1b.err")"
nf=$(curl -fsS "$PX/__fault/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["faults"])')
[ "$nf" = 1 ] || fail "the proxy damaged $nf answers, not 1"
cmp "$T/local.db" "$T/w/r1b.db" || fail "restore with a base damaged on the way differs from the local one"
grep -q "$top/$base/app.db: its bytes have MD5 .*fetching it again" "$T/notes" ||
  fail "the base damaged on the way is not said to be fetched again: $(cat "$T/notes")"
! grep -q "not using\|is bad" "$T/notes" || fail "a base damaged on the way was left out: $(cat "$T/notes")"
pass "a base damaged on the way: fetched again and used, bytes as the local restore"

# 2. A truncated sealed segment: the window is cut there or the restore
#    refuses naming it; never a wrong database.
cut=${segs[1]}
head -c 300000 "$W/$cut" > "$T/trunc.seg"
s3cmd_ -q put "$T/trunc.seg" "$URL/wal_archives/app/$cut" >/dev/null
t_after=$(seg_last_time "${segs[2]}")
res=$(ok_or_clear "$t_after" "$T/w/r2.db" "a truncated segment")
note "just after the truncated segment: $res"
[ "$res" = ok ] || [[ $res == *"recoverable"* || $res == *gap* ]] || fail "unclear: $res"
res=$(ok_or_clear "$t_mid" "$T/w/r3.db" "after a truncated segment")
note "later: $res"
[ "$res" = ok ] || [[ $res == *"recoverable"* || $res == *gap* ]] || fail "unclear: $res"
rc=0
"$SQLENVFS" verify --remote "$URL" > "$T/verify.out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || { cat "$T/verify.out"; fail "verify --remote found nothing wrong"; }
grep -q "^BAD .*s3://$S3_BUCKET/f/wal_archives/app/$cut" "$T/verify.out" \
  || { cat "$T/verify.out"; fail "verify --remote does not name the truncated segment"; }
"$SQLENVFS" list --remote "$URL" >/dev/null 2>"$T/list.err" ||
  fail "list --remote: $(cat "$T/list.err")"
grep -q "s3://$S3_BUCKET/f/wal_archives/app/$cut" "$T/list.err" ||
  fail "list --remote does not warn of the truncated segment by its key: $(cat "$T/list.err")"
! grep -q "\.tmp-remote" "$T/verify.out" "$T/list.err" ||
  fail "a message names the temporary directory: $(cat "$T/verify.out" "$T/list.err")"
s3cmd_ -q put "$W/$cut" "$URL/wal_archives/app/$cut" >/dev/null
pass "a truncated segment object: restores refused or exact, verify and list --remote name it"

# 3. A hole in the parts of the unsealed segment: a gap there, as after
#    damage on a root; with no base after it, latest and the times after
#    it are refused naming the missing part's key.
parts=($(s3cmd_ ls "$URL/wal_archives/app/" | grep -o '[^/]*\.seg\.part-[0-9-]*' | sort))
[ "${#parts[@]}" -ge 3 ] || fail "only ${#parts[@]} parts"
s3cmd_ -q del "$URL/wal_archives/app/${parts[1]}" >/dev/null
rm -f "$T/w/r4.db"
msg=$(rremote latest "$T/w/r4.db") && fail "latest with a hole in the parts and no base after it"
[ ! -e "$T/w/r4.db" ] || fail "a failed restore left r4.db"
[[ $msg == *"wal_archives/app/${parts[1]} is missing"*"verify --remote"* ]] ||
  fail "latest with a hole: $msg"
t_end=$(awk '$1=="T" {t=$4} END {print t}' "$T/log")
res=$(ok_or_clear "$t_end" "$T/w/r5.db" "a time after the hole")
[[ $res == *"wal_archives/app/${parts[1]} is missing"* ]] || fail "after the hole: $res"
pass "a hole in the parts: latest and the times after it refused, naming the part"

# 4. Wrong credentials: one clear line, quickly (no retries).
start=$(date +%s)
msg=$(AWS_ACCESS_KEY_ID=nobody rremote latest "$T/w/r6.db") && fail "wrong key accepted"
[ "$(printf '%s\n' "$msg" | wc -l)" -eq 1 ] || fail "more than one line: $msg"
[[ $msg == *"HTTP 403"*"AWS_ACCESS_KEY_ID"* ]] || fail "unclear: $msg"
[ $(( $(date +%s) - start )) -le 5 ] || fail "wrong credentials took more than 5 s"
leftover=$(ls -A "$T/w" | grep '^\.tmp-' || true)
[ -z "$leftover" ] || fail "temporary directories left: $leftover"
pass "wrong credentials: one clear line; no temporary directory left"

# 5. Answers cut short on every attempt: the client retries, then one clear
#    line naming the object; nothing left behind.
fault() {
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10).read()' \
    "$PX/__fault/$1"
}
fault "arm?kind=cut_reply&count=100&method=GET&arg=10"
msg=$(rremote latest "$T/w/r7.db") && fail "a restore through cut answers succeeded"
fault clear
[ "$(printf '%s\n' "$msg" | wc -l)" -eq 1 ] || fail "more than one line: $msg"
[[ $msg == *"s3://$S3_BUCKET/"*"after 6 attempts"* ]] || fail "unclear: $msg"
[ ! -e "$T/w/r7.db" ] || fail "a failed restore left its output"
leftover=$(ls -A "$T/w" | grep '^\.tmp-' || true)
[ -z "$leftover" ] || fail "temporary directories left: $leftover"
pass "answers cut short: retried, then one clear line ($(echo "$msg" | cut -c1-90)...)"
