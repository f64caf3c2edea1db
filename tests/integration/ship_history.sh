#!/usr/bin/env bash
# One history per replica. A copy of a root (cp -a keeps its id) that
# shipped while the original was stopped: the original, started again, is
# refused, ships nothing and lets go of the lease; a reader given parts of
# both histories (as shipping on would have left them) uses neither past
# the point where they part: latest is refused naming the parts, a time
# before it restores. Objects deleted from the replica behind the
# root's back are shipped again when it starts.
source "$(dirname "$0")/lib.sh"
source "$SRCDIR/tests/integration/ship_lib.sh"

ship_start_server
URL=s3://$S3_BUCKET/hist
count() { sqlite3 "$1" 'SELECT count(*) FROM t'; }
listing() { s3cmd_ ls -r "$URL/" | awk '{print $3, $4}' | grep -v ' s3://.*/lease$' | sort; }

C=$T/c_root
D=$T/d_root
ship_make_root "$C" hist
ship_start "$C" "$T/c"
ship_write "$C/data/prod/app.db" 20 500
ship_wait_caught_up "$C" hist 30
ship_stop "$T/c"
cp -a "$C" "$D"
ship_start "$D" "$T/d"
ship_write "$D/data/prod/app.db" 5 500
ship_wait_caught_up "$D" hist 30
ship_stop "$T/d"
listing >"$T/h0"

# --- the original started again: refused, nothing shipped, no lease kept
ship_start "$C" "$T/c2"
ship_write "$C/data/prod/app.db" 30 500
for _ in $(seq 1 100); do
  grep -q "which this root did not ship" "$T/c2.err" &&
    grep -q '^state=error' "$C/.sqlenvfs/replica-status" && break
  sleep 0.1
done
grep -q "replica at $URL holds wal_archives/app/0*1\.seg\.part-.*which this root did not ship: \
another root with this root's id" "$T/c2.err" ||
  fail "the original root was not refused: $(cat "$T/c2.err")"
grep -q '^state=error' "$C/.sqlenvfs/replica-status" ||
  fail "its status: $(cat "$C/.sqlenvfs/replica-status")"
"$SQLENVFS" list --root "$C" | grep -q 'app .*error, .*did not ship' ||
  fail "its list does not say why it ships nothing: $("$SQLENVFS" list --root "$C")"
sleep 2
listing >"$T/h1"
cmp -s "$T/h0" "$T/h1" || fail "the refused root changed the replica: $(diff "$T/h0" "$T/h1")"
"$SQLENVFS" doctor --root "$C" >"$T/doctor.c" 2>&1 && fail "doctor passes a root that ships nothing"
tr -s ' \n' ' ' <"$T/doctor.c" |
  grep -q "FAIL replica nothing is shipped to the replica (error): .*this root did not ship" ||
  fail "doctor does not say the replica gets nothing: $(cat "$T/doctor.c")"
if s3cmd_ get --force "$URL/lease" "$T/lease.c" >/dev/null 2>&1; then
  exp=$(sed -n 's/^expires=//p' "$T/lease.c")
  grep -q "pid=$(cat "$T/c2.pid")$" "$T/lease.c" && [ "${exp:-0}" -gt "$(date +%s%6N)" ] &&
    fail "the refused root still holds the lease: $(cat "$T/lease.c")"
fi
ship_stop "$T/c2"
"$SQLENVFS" restore --remote "$URL" --time latest --output "$T/r1.db" >"$T/r1.out" 2>&1 ||
  fail "restore --remote: $(cat "$T/r1.out")"
[ "$(count "$T/r1.db")" = 25 ] ||
  fail "the replica's history is not the copy's alone: $(count "$T/r1.db") rows, 25 expected"
pass "a root whose copy shipped to its replica is refused there, ships nothing, keeps no lease"

# --- a reader given both histories: the original's records uploaded as a
# --- part that overlaps the copy's (what shipping on would have done)
seg=$C/backups/prod/wal_archives/app/0000000000000001.seg
dpart=$(comm -13 <(sed -n 's/^[0-9]* \(wal_archives\/app\/.*part-.*\)/\1/p' \
  "$C/.sqlenvfs/replica-shipped" | sort) <(sed -n 's|.* s3://[^/]*/hist/||p' "$T/h0" |
  grep 'part-' | sort) | head -1)
[ -n "$dpart" ] || fail "no part of the copy's own in the replica: $(cat "$T/h0")"
a=$(echo "$dpart" | sed 's/.*part-0*\([0-9][0-9]*\)-.*/\1/')
b=$(stat -c %s "$seg")
[ "$b" -gt "$a" ] || fail "the original's segment ($b bytes) does not go past $a"
tail -c +$((a + 1)) "$seg" >"$T/cpart"
s3cmd_ put "$T/cpart" \
  "$URL/wal_archives/app/0000000000000001.seg.part-$(printf %016d "$a")-$(printf %016d "$b")" \
  >/dev/null
"$SQLENVFS" restore --remote "$URL" --time latest --output "$T/r2.db" >"$T/r2.out" 2>&1 &&
  fail "restore --remote latest of both histories gave a state: $(count "$T/r2.db") rows"
[ ! -e "$T/r2.db" ] || fail "a refused restore left its output"
grep -q "latest is not recoverable from the replica: .*part-.* overlaps .*two histories" \
  "$T/r2.out" || fail "latest of both histories is not refused naming the parts: $(cat "$T/r2.out")"
# The end of the last window the replica gives: the last record before the
# parts that overlap.
"$SQLENVFS" list --remote "$URL" --json >"$T/l2.json" 2>"$T/l2.err" ||
  fail "list --remote of both histories: $(cat "$T/l2.err")"
t_fork=$(python3 -c 'import json, sys
print([w for w in json.load(open(sys.argv[1]))["windows"] if w["database"] == "app"][-1]["to"])' \
  "$T/l2.json") || fail "no window in list --remote: $(cat "$T/l2.json")"
"$SQLENVFS" restore --remote "$URL" --time "$t_fork" --output "$T/r3.db" >"$T/r3.out" 2>&1 ||
  fail "restore --remote of both histories, before they part: $(cat "$T/r3.out")"
[ "$(count "$T/r3.db")" = 20 ] ||
  fail "a restore of both histories before they part gave $(count "$T/r3.db") rows, 20 expected"
pass "a reader refuses latest where two histories part, names the parts, restores before"

# --- objects deleted behind the root's back are shipped again
E=$T/e_root
ship_make_root "$E" lost
ship_start "$E" "$T/e"
ship_write "$E/data/prod/app.db" 2500 500  # more than one segment of 1 MiB
"$SQLENVFS" backup --root "$E" >/dev/null
ship_write "$E/data/prod/app.db" 20 500
ship_wait_caught_up "$E" lost 60
"$SQLENVFS" doctor --root "$E" >"$T/doctor.e" 2>&1 || true
tr -s ' \n' ' ' <"$T/doctor.e" | grep -q "ok replica shipping: .* not yet shipped (lag " ||
  fail "doctor does not say the replica keeps up: $(cat "$T/doctor.e")"
ship_stop "$T/e"
keys=$(s3cmd_ ls -r "s3://$S3_BUCKET/lost/" | awk '{print $4}')
echo "$keys" | grep -q '/0000000000000001\.seg$' || fail "no sealed segment shipped: $keys"
part=$(echo "$keys" | grep '\.seg\.part-0000000000000000-' | head -1)
[ -n "$part" ] || fail "no first part of the segment being written: $keys"
for k in "s3://$S3_BUCKET/lost/FORMAT" "s3://$S3_BUCKET/lost/wal_archives/app/0000000000000001.seg" \
  "$part" $(echo "$keys" | grep '/daily/.*/app\.db$'); do
  s3cmd_ del "$k" >/dev/null || fail "deleting $k"
done
ship_start "$E" "$T/e2"
ship_wait_caught_up "$E" lost 60
grep -q "object(s) this root shipped are gone from s3://$S3_BUCKET/lost .*shipping them again" \
  "$T/e2.err" || fail "the root did not say what it ships again: $(cat "$T/e2.err")"
ship_stop "$T/e2"
"$SQLENVFS" restore --remote "s3://$S3_BUCKET/lost" --time latest --output "$T/e.db" \
  >"$T/e.out" 2>&1 || fail "restore --remote after the objects were shipped again: $(cat "$T/e.out")"
[ "$(count "$T/e.db")" = "$(count "$E/data/prod/app.db")" ] ||
  fail "restore --remote gave $(count "$T/e.db") rows, production has $(count "$E/data/prod/app.db")"
pass "objects deleted from the replica are shipped again at the next start, and restore"

# --- and while the archiver runs, every check-interval (here 2 s): a
# --- sealed segment deleted from the replica comes back, where the running
# --- archiver counted it as shipped until its next start
echo "check-interval = 2" >>"$E/sqlenvfs.conf"
ship_start "$E" "$T/e3"
ship_wait_caught_up "$E" lost 30
s3cmd_ del "s3://$S3_BUCKET/lost/wal_archives/app/0000000000000001.seg" >/dev/null ||
  fail "deleting the first segment"
ship_wait_caught_up "$E" lost 30
grep -q "object(s) this root shipped are gone from s3://$S3_BUCKET/lost .*shipping them again" \
  "$T/e3.err" || fail "the running root did not say what it ships again: $(cat "$T/e3.err")"
ship_stop "$T/e3"
pass "an object deleted from the replica while the archiver runs is shipped again within check-interval"

# --- a sealed segment cut short in the replica (its first bytes this
# --- root's): damage, shipped again, not taken for another root's history
SEG=s3://$S3_BUCKET/lost/wal_archives/app/0000000000000001.seg
s3cmd_ get --force "$SEG" "$T/seg.whole" >/dev/null || fail "get $SEG"
head -c 500000 "$T/seg.whole" > "$T/seg.cut"
s3cmd_ put "$T/seg.cut" "$SEG" >/dev/null || fail "put the cut segment"
ship_start "$E" "$T/e4"
ship_wait_caught_up "$E" lost 30
grep -q "0000000000000001.seg holds 500000 of the .* bytes this root shipped, the first ones: cut short there; shipping it again" \
  "$T/e4.err" || fail "the root did not say it ships the cut segment again: $(cat "$T/e4.err")"
! grep -q "which this root did not ship" "$T/e4.err" || fail "taken for another history: $(cat "$T/e4.err")"
ship_stop "$T/e4"
s3cmd_ get --force "$SEG" "$T/seg.again" >/dev/null || fail "get $SEG again"
cmp -s "$T/seg.again" "$E/backups/prod/wal_archives/app/0000000000000001.seg" ||
  fail "the segment shipped again differs from the root's"
pass "a segment cut short in the replica is shipped again, not taken for another history"

# --- the shipping state lost, and the LIST that adopts the replica failing:
# --- nothing is shipped until it succeeds (a part from 0 would overlap the
# --- root's own), and the root's next start is not taken for another root
ship_proxy
F=$T/f_root
ship_make_root "$F" adopt "$PX"
ship_start "$F" "$T/f"
ship_write "$F/data/prod/app.db" 30 500
ship_wait_caught_up "$F" adopt 30
ship_stop "$T/f"
rm "$F/.sqlenvfs/replica-shipped"
s3cmd_ ls -r "s3://$S3_BUCKET/adopt/" | awk '{print $3, $4}' | grep -v '/lease$' | sort >"$T/a0"
ship_write "$F/data/prod/app.db" 30 500
fault "arm?kind=status&count=100000&method=GET&match=list-type&arg=500" >/dev/null
ship_start "$F" "$T/f2"
sleep 4
s3cmd_ ls -r "s3://$S3_BUCKET/adopt/" | awk '{print $3, $4}' | grep -v '/lease$' | sort >"$T/a1"
cmp -s "$T/a0" "$T/a1" || fail "the root shipped before it could adopt its replica: $(diff "$T/a0" "$T/a1")"
fault clear >/dev/null
ship_wait_caught_up "$F" adopt 60
grep -q 'no shipping state; .* adopted' "$T/f2.err" || fail "F did not adopt its replica: $(cat "$T/f2.err")"
ship_stop "$T/f2"
ship_write "$F/data/prod/app.db" 10 500
ship_start "$F" "$T/f3"
ship_wait_caught_up "$F" adopt 30
grep -q 'did not ship' "$T/f3.err" && fail "the root was refused its own replica: $(cat "$T/f3.err")"
ship_stop "$T/f3"
pass "a failed adoption ships nothing until it succeeds; the next start goes on"
