#!/usr/bin/env bash
# mount --remote reads a pitr/ state's base block by block: a point query on
# pitr/<T>/app.db gives the local answer while fetching a small part of the
# base (bytes counted by the proxy), and the whole state equals the local
# restore; a block damaged in the replica fails the read with EIO and a log
# line naming it, never with other bytes; a block list that does not
# combine to the MANIFEST's crc32 is refused (the whole file is fetched
# instead, and its MANIFEST check refuses it); a replica without block
# lists (an older shipper) is read as before, the base fetched whole.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"
source "$SRCDIR/tests/integration/remote_lib.sh"

remote_begin
# A table (pts) of ~12 MiB the writer never touches, checkpointed into the
# database file before the archiver starts: its pages are only in the
# first snapshot (the only base: no backup is taken), not in the archive.
remote_fill_pts 24000
remote_history --duration 3 --no-vacuum
S=$(ls "$R/backups/prod/snapshots")
[ "$(echo "$S" | wc -l)" -eq 1 ] || fail "expected one snapshot, got: $S"
base=$R/backups/prod/snapshots/$S/app.db
bsize=$(stat -c %s "$base")
[ "$bsize" -gt $((8 << 20)) ] || fail "the base is only $bsize bytes"
remote_replica a --parts 2
A=$URL
remote_replica b --parts 2 --no-blocks
B=$URL
s3cmd_ ls "$A/snapshots/$S/" | grep -q 'app\.db\.blocks$' || fail "no block list pushed"

t=$(awk '$1=="T" {t[NR]=$4} END {printf "%.6f", t[int(NR*0.8)]}' "$T/log")
"$SQLENVFS" restore --root "$R" --time "@$t" --output "$T/local.db" >/dev/null || fail "local restore"
Q="SELECT v FROM pts WHERE id = 15013;"
want=$(sqlite3 "$T/local.db" "$Q")
[ -n "$want" ] || fail "the local restore has no row 15013"

# px_base_bytes PREFIX: bytes answered to GETs of the base (app.db) under PREFIX
px_base_bytes() { px_bytes "$1/snapshots" /app.db; }
mnt_down() {
  fusermount3 -u "$T/$1" || fail "unmount $1"
  wait "$(cat "$T/$1.pid")" || true
}
# point_query NAME URL PREFIX: mount URL on $T/NAME (mnt_up), run the point
# query on pitr/@$t there and check it gives the local answer; fetched: the
# bytes of the base under PREFIX it fetched.
point_query() {
  mnt_up "$1" "$2"
  px_reset
  got=$(sqlite3 "file:$T/$1/pitr/@$t/app.db?immutable=1" "$Q") \
    || fail "point query through the mount of $2"
  assert_eq "$got" "$want" "point query on pitr/@$t of $2"
  fetched=$(px_base_bytes "$3")
}

# 1. A point query fetches a small part of the base, and gives the local answer.
mkdir -p "$T/w"
cd "$T/w"
point_query m1 "$A" a
[ "$fetched" -gt 0 ] || fail "nothing of the base was fetched (the test does not see the reads)"
[ "$fetched" -le $((bsize / 10)) ] || fail "the point query fetched $fetched bytes of a $bsize-byte base"
grep -q "fetching the whole base" "$T/m1.log" && fail "the whole base was fetched: $(cat "$T/m1.log")"
pass "point query: the local answer, $fetched of $bsize bytes of the base fetched"
cp "$T/m1/pitr/@$t/app.db" "$T/pitr.db" || fail "cp from pitr/@$t"
cmp -s <(head -c 18 "$T/pitr.db"; tail -c +21 "$T/pitr.db") \
       <(head -c 18 "$T/local.db"; tail -c +21 "$T/local.db") \
  || fail "pitr/@$t/app.db read block by block differs from the local restore"
full=$(px_base_bytes a)
[ "$full" -ge $((bsize / 2)) ] || fail "reading the whole state fetched only $full bytes of the base"
[ -z "$(find "$T/m1.cache" -name '.tmp-*')" ] || fail "temporaries left in the cache"
[ -z "$(find "$T/m1.cache/backups/prod/snapshots" -name '*.db')" ] || fail "the base was fetched whole"
mnt_down m1
pass "the whole state read block by block ($full bytes) equals the local restore; no temporaries"

# 1b. A block damaged on the way (the proxy inverts a byte of one answer):
#     fetched again, it checks, and the whole state is the local restore's.
mnt_up m1b "$A"
curl -fsS "$PX/__fault/reset" >/dev/null
curl -fsS "$PX/__fault/arm?kind=flip&count=1&method=GET&match=/a/snapshots/$S/app.db\$&arg=100" \
  >/dev/null || fail "arming the proxy"
# And one answer of the records read from a sealed segment.
curl -fsS "$PX/__fault/arm?kind=flip&count=1&method=GET&match=.seg\$&arg=200" \
  >/dev/null || fail "arming the proxy"
got=$(sqlite3 "file:$T/m1b/pitr/@$t/app.db?immutable=1" "$Q") ||
  fail "point query through m1b: $(cat "$T/m1b.log")"
assert_eq "$got" "$want" "point query on pitr/@$t of m1b"
cp "$T/m1b/pitr/@$t/app.db" "$T/pitr-b.db" ||
  fail "a block damaged on the way failed the read: $(cat "$T/m1b.log")"
nf=$(curl -fsS "$PX/__fault/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["faults"])')
[ "$nf" = 2 ] || fail "the proxy damaged $nf answers, not 2"
cmp -s <(head -c 18 "$T/pitr-b.db"; tail -c +21 "$T/pitr-b.db") \
       <(head -c 18 "$T/local.db"; tail -c +21 "$T/local.db") \
  || fail "pitr/@$t/app.db with a block damaged on the way differs from the local restore"
grep -q "snapshots/$S/app.db: block [0-9]* came with another crc32; fetching it again" "$T/m1b.log" \
  || fail "the block damaged on the way is not said to be fetched again: $(cat "$T/m1b.log")"
grep -q "\.seg is damaged: .*; fetching it again" "$T/m1b.log" \
  || fail "the records damaged on the way are not said to be fetched again: $(cat "$T/m1b.log")"
mnt_down m1b
pass "a block and records damaged on the way are fetched again; the state equals the local restore"

# 2. A damaged block: EIO and a log line naming it, never other bytes.
off=$((bsize / 2))
cp "$base" "$T/bad.db"
printf 'XXXXXXXXXXXXXXXX' | dd of="$T/bad.db" bs=1 seek=$off conv=notrunc status=none
s3cmd_ -q put "$T/bad.db" "$A/snapshots/$S/app.db" || fail "s3cmd put of the damaged base"
mnt_up m2 "$A"
err=$(cp "$T/m2/pitr/@$t/app.db" "$T/bad-out.db" 2>&1) \
  && fail "a damaged block was served: $(cat "$T/m2.log"; curl -fsS "$PX/__fault/stats" | head -c 3000)"
grep -q "Input/output error" <<<"$err" || fail "reading a damaged block: $err (expected EIO)"
grep -q "snapshots/$S/app.db is damaged: block $((off / 65536)) " "$T/m2.log" \
  || fail "no log line names the damaged block: $(cat "$T/m2.log")"
grep -qF "(run \`sqlenvfs verify --remote $A\`; ship a new copy)" "$T/m2.log" \
  || fail "the advice does not give the command to run, URL included: $(cat "$T/m2.log")"
mnt_down m2
pass "a damaged block fails the read with EIO and is named in the log, with the command to run"

# 3. A forged list (made from the damaged file, so it does not combine to
# the MANIFEST's crc32) is refused; the whole file is then refused too.
python3 - "$T/bad.db" "$T/forged.blocks" "$SRCDIR/tests/integration" <<'PY'
import sys
sys.path.insert(0, sys.argv[3])
from replica_push import block_list
open(sys.argv[2], "wb").write(block_list(open(sys.argv[1], "rb").read()))
PY
s3cmd_ -q put "$T/forged.blocks" "$A/snapshots/$S/app.db.blocks" || fail "s3cmd put of the forged list"
mnt_up m3 "$A"
err=$(cp "$T/m3/pitr/@$t/app.db" "$T/forged-out.db" 2>&1) && fail "a base with a forged block list was served"
grep -q "app.db.blocks does not match its MANIFEST" "$T/m3.log" \
  || fail "the forged list was not refused: $(cat "$T/m3.log")"
grep -q "fetching the whole base" "$T/m3.log" || fail "no fall back to the whole file"
grep -q "app.db has crc32 0x[0-9a-f]*, the MANIFEST says" "$T/m3.log" \
  || fail "the whole file's MANIFEST check did not refuse it: $(cat "$T/m3.log")"
mnt_down m3
pass "a forged block list is refused; the whole file fails its MANIFEST check"

# 4. A replica without block lists: the base fetched whole, the same answer.
point_query m4 "$B" b
[ "$fetched" -ge "$bsize" ] || fail "without lists, $fetched bytes of the $bsize-byte base fetched"
mnt_down m4
pass "a replica without block lists: the whole base fetched ($fetched bytes), the same answer"
