#!/usr/bin/env bash
# mount --remote reads the archive's sealed segments on demand: the mount's
# start fetches the small objects and no byte of a sealed segment (its
# SEAL record is made from its index, its header fetched where it is first
# read), and a read fetches only the records it needs (bytes counted by the
# proxy). A point query on pitr/<T>/app.db from a cold cache fetches
# a small part of the archive and gives the local answer; the whole state
# at T, and at the last commit (in the unsealed segment, assembled from its
# parts), equal a local restore byte for byte; records damaged in the
# replica fail the read with EIO and a log line naming the record, never
# with other bytes; a second mount on the same cache is refused. The
# summaries are read part by part too: the start fetches each one's first
# 4 KiB, a point query the parts it reads (fewer bytes than they hold in
# all), and a damaged part is named in the log and the records read
# instead, giving the local state.
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

# The summaries of the sealed segments: their bytes, and how many are big
# (more than what the mount's start fetches of each, 4 KiB).
sums=$(for f in $sealed; do echo "${f%.seg}.sum"; done)
sum_total=$(stat -c %s $sums | awk '{s+=$1} END {print s}')
n_big=$(stat -c %s $sums | awk '$1 > 3 * 4096 {n++} END {print n+0}')
[ "$n_big" -ge 3 ] || fail "expected several summaries over 12 KiB ($(stat -c %s $sums | tr '\n' ' '))"

# 1. A point query from a cold cache: the local answer, a small part of the
# sealed segments fetched (none at the mount's start); of the summaries,
# the start fetches the first 4 KiB of each, the query the parts it reads.
px_reset
mnt_up m1 "$A"
start=$(px_bytes a .seg)
[ "$start" -eq 0 ] || fail "the mount's start fetched $start bytes of sealed segments (none expected)"
sum_start=$(px_bytes a .sum)
[ "$sum_start" -le $((n_sealed * 4096)) ] \
  || fail "the mount's start fetched $sum_start bytes of summaries ($sum_total in all, $n_sealed summaries)"
got=$(sqlite3 "file:$T/m1/pitr/@$t/app.db?immutable=1" "$Q") || fail "point query through the mount"
assert_eq "$got" "$want" "point query on pitr/@$t"
fetched=$(px_bytes a .seg)
[ "$fetched" -gt "$start" ] || fail "the point query fetched no record (the test does not see the reads)"
[ "$fetched" -le $((sealed_bytes / 4)) ] \
  || fail "a point query fetched $fetched bytes of $sealed_bytes of sealed segments"
pass "point query: the local answer; $fetched of $sealed_bytes bytes of the sealed segments fetched ($start at the start)"
sum_query=$(px_bytes a .sum)
[ "$sum_query" -gt "$sum_start" ] || fail "the point query read no summary part (the test does not see the reads)"
[ "$sum_query" -le $((sum_total * 3 / 4)) ] \
  || fail "a point query fetched $sum_query of $sum_total bytes of summaries"
pass "point query: $sum_query of $sum_total bytes of summaries fetched ($sum_start at the start)"

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

# 3b. What a session fetched, as its log says when it ends, is what the
# server sent it (the proxy's count of the bodies of its GETs).
px_reset
mnt_up m5 "$A"
got=$(sqlite3 "file:$T/m5/pitr/@$t/app.db?immutable=1" "$Q") || fail "point query through m5"
assert_eq "$got" "$want" "point query on pitr/@$t (m5)"
mnt_down m5
logged=$(sed -n 's/.*this session fetched \([0-9]*\) bytes.*/\1/p' "$T/m5.log")
sent=$(px_bytes a "")
[ -n "$logged" ] || fail "no log line says what the session fetched: $(tail -5 "$T/m5.log")"
assert_eq "$logged" "$sent" "bytes the session logged as fetched, against the bytes the server sent"
pass "the session logs what it fetched: $logged bytes, as the server sent"

# 4. Summaries damaged in the replica: one's page table, another's head.
# The state at T is still the local one (the segments' records are read
# instead), and the log names each damaged object.
sum2=$(echo "$sums" | sed -n 2p) sum3=$(echo "$sums" | sed -n 3p)
mkdir -p "$T/badsum"
python3 - "$sum2" "$T/badsum/$(basename "$sum2")" "$sum3" "$T/badsum/$(basename "$sum3")" <<'PY'
import struct, sys
def flip(src, dst, where):
    b = bytearray(open(src, "rb").read())
    assert b[:8] == b"SQEFSSUM" and struct.unpack_from("<I", b, 8)[0] == 2
    assert struct.unpack_from("<I", b, 100)[0] > 0  # a generation to flip (head)
    m, g = struct.unpack_from("<II", b, 96)
    z = struct.unpack_from("<I", b, 124)[0]
    pages_off = 160 + 112 * m + 40 * g + 16 * z
    off = pages_off + 8 if where == "pages" else 160 + 112 * m + 4
    b[off] ^= 0x01
    open(dst, "wb").write(bytes(b))
flip(sys.argv[1], sys.argv[2], "pages")
flip(sys.argv[3], sys.argv[4], "head")
PY
for f in "$sum2" "$sum3"; do
  s3cmd_ -q put "$T/badsum/$(basename "$f")" "$A/wal_archives/app/$(basename "$f")" \
    || fail "s3cmd put of a damaged summary"
done
mnt_up m3 "$A"
cp "$T/m3/pitr/@$t/app.db" "$T/pitr3.db" || fail "cp from pitr/@$t with damaged summaries: $(tail -5 "$T/m3.log")"
same_db "$T/pitr3.db" "$T/local.db" || fail "with damaged summaries, pitr/@$t/app.db differs from the local restore"
grep -q "wal_archives/app/$(basename "$sum2") is damaged: its page table (bytes [0-9]*-[0-9]*) fail their checksum" \
  "$T/m3.log" || fail "no log line names the damaged page table: $(cat "$T/m3.log")"
grep -q "wal_archives/app/$(basename "$sum3") is damaged: its head fails its checksum" \
  "$T/m3.log" || fail "no log line names the damaged head: $(cat "$T/m3.log")"
mnt_down m3
pass "damaged summary parts are named in the log; the state read from the records instead is the local one"

# damage_segments DIR CODE: each sealed segment, changed by the Python
# statements CODE (on its bytes, bytearray b), put in the replica in its
# place (a copy in $T/DIR).
damage_segments() {
  mkdir -p "$T/$1"
  local f
  for f in $sealed; do
    python3 - "$f" "$T/$1/$(basename "$f")" "$2" <<'PY' || fail "damage $f"
import sys
b = bytearray(open(sys.argv[1], "rb").read())
exec(sys.argv[3])
open(sys.argv[2], "wb").write(bytes(b))
PY
    s3cmd_ -q put "$T/$1/$(basename "$f")" "$A/wal_archives/app/$(basename "$f")" \
      || fail "s3cmd put of a damaged segment"
  done
}
# read_fails NAME PATTERN: reading pitr/@$t through a new mount NAME fails
# with EIO, and the mount's log has a line matching PATTERN.
read_fails() {
  local err
  mnt_up "$1" "$A"
  err=$(cp "$T/$1/pitr/@$t/app.db" "$T/$1-out.db" 2>&1) \
    && fail "a state was served from damaged segments: $(cat "$T/$1.log")"
  grep -q "Input/output error" <<<"$err" || fail "reading damaged segments: $err (expected EIO)"
  grep -Eq "$2" "$T/$1.log" || fail "no log line names the damage: $(cat "$T/$1.log")"
  mnt_down "$1"
}

# 5. Records damaged in the replica (one byte in each 4 KiB of every sealed
# segment but its header and SEAL): reading the state fails with EIO and a
# log line naming a record; no other bytes are served.
damage_segments bad $'for off in range(64 + 2000, len(b) - 200, 4096):\n    b[off] ^= 0x5a'
# (the flipped byte may fall in a record's header or in its body)
read_fails m2 "wal_archives/app/[0-9]*\.seg is damaged: the record of seq [0-9]* at byte [0-9]* (fails its checksum|has a header that does not match its index entry)"
pass "damaged records fail the read with EIO and are named in the log"

# 6. Sealed segments whose header alone is damaged in the replica (records
# intact): the start does not see it; the first read of such a segment
# fetches its header, finds it damaged, and the read fails with EIO and a
# log line naming the segment, never serving its records.
# (byte 30: the first record's seq, so the header's crc32 no longer holds)
damage_segments badhead $'assert b[:8] == b"SQEFSSEG"\nb[30] ^= 0x01'
read_fails m4 "wal_archives/app/[0-9]*\.seg is damaged: its segment header does not check"
pass "a damaged segment header fails the read with EIO and is named in the log"
