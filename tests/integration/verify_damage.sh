#!/usr/bin/env bash
# What `verify` says of damage to the files of a sealed archive segment: a
# file of last versions changed, gone or appeared since the last run is
# checked again by the run that skips its unchanged segment; an index cut
# short is damage; one damaged record is told once; a segment of another
# root copied in is found by its times.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

# mkroot ROOT CHAR: 250 one-row commits of CHAR*100, 100 records a segment:
# segments 1 and 2 sealed (with their summaries and files of last
# versions), 3 being written.
mkroot() {
  local r=$1 c=$2
  mkdir -p "$r"
  echo 'CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT);' > "$r/schema.sql"
  printf '[archive]\nsegment-max-records=100\n' > "$r/sqlenvfs.conf"
  "$SQLENVFS" init --root "$r" > /dev/null
  pitr_start_archiver "$r" "$T/a-$c"
  python3 - "$r/data/prod/app.db" "$c" <<'PY'
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
for k in range(1, 251):
    c.execute("INSERT INTO t VALUES (?, ?)", (k, sys.argv[2] * 100))
    time.sleep(0.01)
PY
  pitr_stop_archiver "$T/a-$c"
}

mkroot "$T/x" x
S1=0000000000000001 S2=0000000000000002
for f in $S1.seg $S1.idx $S1.sum $S1.last $S2.seg $S2.last; do
  [ -f "$T/x/backups/prod/wal_archives/app/$f" ] || fail "the archive has no $f"
done
cp -a "$T/x" "$T/pristine"
R=$T/root
A=$R/backups/prod/wal_archives/app

# fresh: R is the pristine root again, with a memo of a run that found it
# good (its files older than the run by the racy margin).
fresh() {
  rm -rf "$R"
  cp -a "$T/pristine" "$R"
  sleep 2
  "$SQLENVFS" verify --root "$R" > "$T/v0" || { cat "$T/v0"; fail "verify of a good root"; }
  grep -q '2 segments .*verified before, skipped\|^checked 3 segments' "$T/v0" ||
    fail "the first run: $(cat "$T/v0")"
}
# bad WHAT FILE PATTERN [--full]: verify exits 1 naming FILE (PATTERN).
bad() {
  local what=$1 file=$2 pattern=$3 rc=0
  shift 3
  "$SQLENVFS" verify --root "$R" "$@" > "$T/v" 2> "$T/v.err" || rc=$?
  [ "$rc" -eq 1 ] || { cat "$T/v" "$T/v.err"; fail "$what: verify $* exited $rc"; }
  grep -q "^BAD  wal-archive $file .*app: $pattern" "$T/v" ||
    fail "$what: $file is not reported ($pattern): $(cat "$T/v")"
  pass "$what: $(grep "^BAD  wal-archive $file" "$T/v" | head -1)"
}

# --- Files of last versions changed after the run that found them good.
fresh
"$SQLENVFS" verify --root "$R" > "$T/v1" || { cat "$T/v1"; fail "verify"; }
grep -q '^checked 1 segment, 0 copies; 2 segments and 1 copy verified before, skipped' "$T/v1" ||
  fail "the second run did not skip the sealed segments: $(cat "$T/v1")"
: > "$A/$S1.last"
bad "an emptied file of last versions" $S1.last "file of last versions"

fresh
python3 - "$A/$S1.last" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x20
open(p, "wb").write(bytes(b))
PY
bad "a flipped byte in a file of last versions" $S1.last "file of last versions"

fresh
cp "$A/$S2.last" "$A/$S1.last"
bad "another segment's file of last versions copied over" $S1.last "file of last versions"

# One where none was: the run after its removal remembers that there is
# none; one that then appears is checked.
fresh
rm "$A/$S1.last"
"$SQLENVFS" verify --root "$R" > "$T/v1" || { cat "$T/v1"; fail "verify without $S1.last"; }
cp "$A/$S2.last" "$A/$S1.last"
bad "a file of last versions where none was" $S1.last "file of last versions"

# --- A sealed segment's index cut short: every record before the seal is
# indexed before the seal is written (only the seal's own entry may be
# missing after a power cut).
n1=$(( ($(stat -c %s "$T/pristine/backups/prod/wal_archives/app/$S1.idx") - 32) / 112 ))
[ "$n1" -ge 3 ] || fail "the index of $S1 lists $n1 records"
fresh
truncate -s 32 "$A/$S1.idx"
bad "an index cut to its header" $S1.idx "index of a sealed segment is cut short: it lists 0 of its $n1 records" --full
fresh
truncate -s $((32 + 112 * (n1 / 2))) "$A/$S1.idx"
bad "an index cut at an entry" $S1.idx "index of a sealed segment is cut short: it lists $((n1 / 2)) of its $n1 records" --full
fresh
truncate -s $((32 + 112 * (n1 - 1))) "$A/$S1.idx"
"$SQLENVFS" verify --full --root "$R" > "$T/v" || { cat "$T/v"; fail "an index without the seal's entry"; }
pass "an index without only the seal's own entry is good"

# --- One damaged record is reported once: not as an unsealed segment, an
# index that does not match, and a next segment that does not chain.
# rec FILE N: the offset, length and seq of the N-th record (from 1) of FILE.
rec() {
  python3 - "$1" "$2" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
off = 64
for i in range(int(sys.argv[2]) - 1):
    off += struct.unpack_from("<Q", b, off + 8)[0]
print(off, struct.unpack_from("<Q", b, off + 8)[0], struct.unpack_from("<Q", b, off + 16)[0])
PY
}
flip() { # flip FILE OFFSET
  local b
  b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  printf "\\x$(printf %02x $((b ^ 0x20)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# only FILE PATTERN [FILE PATTERN]...: the BAD lines of the last run are
# exactly these.
only() {
  local want=$(($# / 2))
  while [ $# -gt 0 ]; do
    grep -q "^BAD  wal-archive $1 .*app: $2" "$T/v" || fail "no BAD line $1 /$2/: $(cat "$T/v")"
    shift 2
  done
  [ "$(grep -c '^BAD' "$T/v")" -eq "$want" ] || fail "more than $want BAD lines: $(cat "$T/v")"
}
read -r off len seq50 <<< "$(rec "$T/pristine/backups/prod/wal_archives/app/$S1.seg" 50)"

fresh
flip "$A/$S1.seg" $((off + len - 12))
bad "a record's data damaged" $S1.seg "record $seq50 at offset $off is corrupt (checksum mismatch)" --full
only $S1.seg "record $seq50 at offset $off is corrupt"

fresh
flip "$A/$S1.seg" $((off + 17))
bad "a record's header damaged" $S1.seg "record $seq50 at offset $off is corrupt (checksum mismatch)" --full
only $S1.seg "record $seq50 at offset $off is corrupt"

# Its seal damaged too: two records, and the segment is not sealed as that.
fresh
size1=$(stat -c %s "$A/$S1.seg")
flip "$A/$S1.seg" $((off + len - 12))
flip "$A/$S1.seg" $((size1 - 10))
bad "a record and the seal damaged" $S1.seg "record $seq50 at offset $off is corrupt" --full
only $S1.seg "record $seq50 at offset $off is corrupt" $S1.seg "record [0-9]* at offset $((size1 - 104)) is corrupt"

# A header damaged where the index does not reach (cut short before it):
# the records after it cannot be read, but the seal at the end is intact,
# so the segment is sealed and the next one chains; the index cut short is
# damage of its own.
fresh
flip "$A/$S1.seg" $((off + 17))
truncate -s $((32 + 112 * 10)) "$A/$S1.idx"
bad "a header damaged past the index" $S1.seg "record $seq50 at offset $off is corrupt" --full
only $S1.seg "record $seq50 at offset $off is corrupt" $S1.idx "index of a sealed segment is cut short"

# Cut in the middle of a record: the seal went with it, and no more is said.
fresh
truncate -s $((off + len / 2)) "$A/$S1.seg"
bad "a sealed segment cut mid-record" $S1.seg "record $seq50 at offset $off is corrupt (cut short)" --full
only $S1.seg "record $seq50 at offset $off is corrupt (cut short)"

# The seal (104 bytes) cut short, or cut off whole: that is what is said.
fresh
truncate -s -20 "$A/$S1.seg"
bad "a sealed segment with its seal cut short" $S1.seg "record [0-9]* at offset $((size1 - 104)) is corrupt (cut short)" --full
only $S1.seg "record [0-9]* at offset $((size1 - 104)) is corrupt (cut short)"
fresh
truncate -s -104 "$A/$S1.seg"
bad "a sealed segment without its seal" $S1.seg "segment is not sealed but a later one exists" --full
only $S1.seg "segment is not sealed but a later one exists (it ends after record [0-9]*, at offset $((size1 - 104)): cut short, its seal lost; or the last segment of a copy"

# --- A segment of another root with the same layout copied in: its chain
# checksum matches (it covers the records' lengths), but its times go back
# across the boundary with the segment before it (invariant 6).
mkroot "$T/y" y
AY=$T/y/backups/prod/wal_archives/app
if [ "$(stat -c %s "$AY/$S1.seg" "$AY/$S2.seg")" != \
     "$(stat -c %s "$T/pristine/backups/prod/wal_archives/app/$S1.seg" \
                  "$T/pristine/backups/prod/wal_archives/app/$S2.seg")" ]; then
  note "the two roots were batched differently: the copied segment does not chain anyway"
fi
# x was written first: its segment 2 put into y starts before y's segment 1
# ends.
rm -rf "$R"
cp -a "$T/y" "$R"
for f in seg idx sum last; do
  [ -f "$T/pristine/backups/prod/wal_archives/app/$S2.$f" ] &&
    cp "$T/pristine/backups/prod/wal_archives/app/$S2.$f" "$A/$S2.$f"
done
bad "a segment of another root copied in" $S2.seg "its first record (.*) is earlier than the last record of $S1.seg" --full
