#!/usr/bin/env bash
# mount --remote reads the archive's sealed segments on demand: the mount's
# start fetches the small objects and each sealed segment's header and
# SEAL record, and a read fetches only the records it needs (bytes counted
# by the proxy). A point query on pitr/<T>/app.db from a cold cache fetches
# a small part of the archive and gives the local answer; the whole state
# at T, and at the last commit (in the unsealed segment, assembled from its
# parts), equal a local restore byte for byte; records damaged in the
# replica fail the read with EIO and a log line naming the record, never
# with other bytes; a second mount on the same cache is refused.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"
source "$SRCDIR/tests/integration/remote_lib.sh"

remote_begin
# A table (pts) the writer never touches, in the base only (the first
# snapshot; no backup is taken): a point query on it reads the archive
# only for the pages the writer changed (page 1, the schema).
remote_fill_pts 4000
remote_history --quiet-tail --duration 4 --no-vacuum
W=$R/backups/prod/wal_archives/app
sealed=$(ls "$W"/*.seg | head -n -1)
n_sealed=$(echo "$sealed" | wc -l)
[ "$n_sealed" -ge 4 ] || fail "expected several sealed segments, got $n_sealed"
sealed_bytes=$(stat -c %s $sealed | awk '{s+=$1} END {print s}')
remote_replica a --parts 3
A=$URL
nparts=$(s3cmd_ ls -r "$A/" | grep -c "\.seg\.part-")
[ "$nparts" -ge 2 ] || fail "the unsealed segment should be in parts ($nparts)"

t=$(awk '$1=="T" {t[NR]=$4} END {printf "%.6f", t[int(NR*0.8)]}' "$T/log")
t2=$(awk '$1=="T" {t=$4} END {printf "%.6f", t}' "$T/log")
"$SQLENVFS" restore --root "$R" --time "@$t" --output "$T/local.db" >/dev/null || fail "local restore"
"$SQLENVFS" restore --root "$R" --time "@$t2" --output "$T/local2.db" >/dev/null \
  || fail "local restore at the last commit"
Q="SELECT v FROM pts WHERE id = 3013;"
want=$(sqlite3 "$T/local.db" "$Q")
[ -n "$want" ] || fail "the local restore has no row 3013"

mnt_down() {
  fusermount3 -u "$T/$1" || fail "unmount $1"
  wait "$(cat "$T/$1.pid")" || true
}
same_db() { # served local
  cmp -s <(head -c 18 "$1"; tail -c +21 "$1") <(head -c 18 "$2"; tail -c +21 "$2")
}

mkdir -p "$T/w"
cd "$T/w"

# 1. A point query from a cold cache: the local answer, a small part of the
# sealed segments fetched (mount start included).
px_reset
mnt_up m1 "$A"
start=$(px_bytes a .seg)
got=$(sqlite3 "file:$T/m1/pitr/@$t/app.db?immutable=1" "$Q") || fail "point query through the mount"
assert_eq "$got" "$want" "point query on pitr/@$t"
fetched=$(px_bytes a .seg)
[ "$fetched" -gt "$start" ] || fail "the point query fetched no record (the test does not see the reads)"
[ "$fetched" -le $((sealed_bytes / 4)) ] \
  || fail "a point query fetched $fetched bytes of $sealed_bytes of sealed segments"
pass "point query: the local answer; $fetched of $sealed_bytes bytes of the sealed segments fetched ($start at the start)"

# 2. The whole state at T, and at the last commit (the unsealed segment),
# equal the local restores.
cp "$T/m1/pitr/@$t/app.db" "$T/pitr.db" || fail "cp from pitr/@$t: $(tail -5 "$T/m1.log")"
same_db "$T/pitr.db" "$T/local.db" || fail "pitr/@$t/app.db differs from the local restore"
cp "$T/m1/pitr/@$t2/app.db" "$T/pitr2.db" || fail "cp from pitr/@$t2: $(tail -5 "$T/m1.log")"
same_db "$T/pitr2.db" "$T/local2.db" || fail "pitr/@$t2/app.db differs from the local restore"
all=$(px_bytes a .seg)
[ "$all" -gt "$fetched" ] || fail "reading whole states fetched nothing more"
[ -z "$(find "$T/m1.cache" -name '.tmp-*')" ] || fail "temporaries left in the cache"
pass "pitr/@$t and pitr/@$t2 equal the local restores ($all bytes of segments fetched)"

# 3. One session per cache.
mkdir -p "$T/m1b"
err=$("$SQLENVFS" mount -f --remote "$A" "$T/m1b" -o "cache=$T/m1.cache" 2>&1) \
  && { _mounts+=("$T/m1b"); fail "a second mount on the same cache was let in"; }
grep -q "in use" <<<"$err" || fail "second mount on the same cache: $err"
mnt_down m1
pass "a second mount on the same cache is refused: $err"

# 4. Records damaged in the replica (one byte in each 4 KiB of every sealed
# segment but its header and SEAL): reading the state fails with EIO and a
# log line naming a record; no other bytes are served.
mkdir -p "$T/bad"
for f in $sealed; do
  python3 - "$f" "$T/bad/$(basename "$f")" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
for off in range(64 + 2000, len(b) - 200, 4096):
    b[off] ^= 0x5a
open(sys.argv[2], "wb").write(bytes(b))
PY
  s3cmd_ -q put "$T/bad/$(basename "$f")" "$A/wal_archives/app/$(basename "$f")" \
    || fail "s3cmd put of a damaged segment"
done
mnt_up m2 "$A"
err=$(cp "$T/m2/pitr/@$t/app.db" "$T/bad-out.db" 2>&1) \
  && fail "a state built from damaged records was served: $(cat "$T/m2.log")"
grep -q "Input/output error" <<<"$err" || fail "reading damaged records: $err (expected EIO)"
# (the flipped byte may fall in a record's header or in its body)
grep -Eq "wal_archives/app/[0-9]*\.seg is damaged: the record of seq [0-9]* at byte [0-9]* (fails its checksum|has a header that does not match its index entry)" \
  "$T/m2.log" || fail "no log line names the damaged record: $(cat "$T/m2.log")"
mnt_down m2
pass "damaged records fail the read with EIO and are named in the log"
