#!/usr/bin/env bash
# Objects missing from or damaged in a replica, read from another machine:
# a part of the unsealed segment deleted or damaged (the first and the last
# included), one shorter than its name says, parts that overlap, a sealed
# segment deleted, a backup's MANIFEST damaged. What such an object held is a gap:
# a later base whose chain is complete starts a window of its own (as a
# local reader's would after a gap), restores inside the gap are refused
# with one line naming the object's key, the times it held and what to do,
# list --remote shows the damaged backup with its key and reason, and
# verify --remote fails naming each. Every restore that succeeds is checked
# against the commit log.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"
source "$SRCDIR/tests/integration/remote_lib.sh"
CHECK="$SRCDIR/tests/integration/remote_check.py"

# The history: a writer with a backup after 1.5 s, then a quiet tail of
# small transactions (the unsealed segment is shipped in parts) with a
# backup in it, and one more once it ended, whose state is the last commit,
# in the unsealed segment, parts after its start.
remote_begin
pitr_start_archiver "$R" "$T/archive"
python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log" --duration 5 &
wpid=$!
track_pid $wpid
sleep 1.5
"$SQLENVFS" backup --root "$R" >/dev/null || fail "backup"
wait $wpid || fail "the writer"
touch "$T/quiet"
python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log" --duration 3 \
  --k0 "$(pitr_commits "$T/log")" --quiet-file "$T/quiet" --max-sleep 0.08 >/dev/null &
wpid=$!
track_pid $wpid
sleep 1.5
"$SQLENVFS" backup --root "$R" >/dev/null || fail "the backup in the quiet tail"
wait $wpid || fail "the quiet writer"
sleep 0.3
"$SQLENVFS" backup --root "$R" >/dev/null || fail "the backup after the quiet tail"
pitr_stop_archiver "$T/archive"
W=$R/backups/prod/wal_archives/app
segs=($(ls "$W" | grep '\.seg$'))
[ "${#segs[@]}" -ge 3 ] || fail "only ${#segs[@]} segments"
bks=($(ls "$R/backups/prod/daily"))
[ "${#bks[@]}" -eq 3 ] || fail "${#bks[@]} backups"
pin2=$(sed -n 's/^pinned-at-us=//p' "$R/backups/prod/daily/${bks[2]}/MANIFEST")
remote_replica g --parts 8
mkdir -p "$T/w"
cd "$T/w"

# ok_exact T OUT WHAT: the restore to T succeeds with exactly the commits up to T
ok_exact() {
  local msg
  rm -f "$2"
  msg=$(rremote "@$1" "$2") || fail "$3: $msg"
  python3 "$CHECK" check-file "$T/log" "$2" "$1" >/dev/null || fail "$3: a wrong database"
}
# refused T OUT WHAT KEY WHY: the restore to T fails with one line naming KEY and WHY
refused() {
  local msg rc=0
  rm -f "$2"
  msg=$(rremote "@$1" "$2") || rc=$?
  [ "$rc" -ne 0 ] || fail "$3: restored a time in the gap"
  [ ! -e "$2" ] || fail "$3: a failed restore left $2"
  [ "$(printf '%s\n' "$msg" | wc -l)" -eq 1 ] || fail "$3: more than one line: $msg"
  [[ $msg == *"s3://$S3_BUCKET/$4 $5"* ]] || fail "$3: does not name $4 ($5): $msg"
  [[ $msg == *"verify --remote s3://$S3_BUCKET/"* ]] || fail "$3: says nothing to do: $msg"
  [[ $msg == *"held the records archived after "*" and before "* ]] ||
    fail "$3: does not give the times of the gap: $msg"
  ! [[ $msg == *".tmp-remote"* ]] || fail "$3: names the temporary directory: $msg"
  echo "$msg"
}
# The unsealed segment's parts (in order) and the times of their first and
# last records, from the local segment: "KEY FIRST LAST" per line.
part_times() {
  local seg=$1
  s3cmd_ ls "$URL/wal_archives/app/" | grep -o "$seg\.part-[0-9-]*" | sort |
  python3 -c '
import struct, sys
data = open(sys.argv[1], "rb").read()
for key in sys.stdin.read().split():
    a, b = (int(x) for x in key.rsplit(".part-", 1)[1].split("-"))
    pos, times = max(a, 64), []
    while pos < b:
        length, = struct.unpack_from("<Q", data, pos + 8)
        t, = struct.unpack_from("<q", data, pos + 24)
        times.append(t)
        pos += length
    print(key, "%.6f" % (times[0] / 1e6), "%.6f" % (times[-1] / 1e6))
' "$W/$seg"
}
t_end=$(awk '$1=="T" {t=$4} END {printf "%.6f", t + 0.05}' "$T/log")
last_seg=${segs[${#segs[@]}-1]}
part_times "$last_seg" > "$T/parts"
# The part to lose: the last but one (not the first, which holds the
# segment header), before the last backup's pin.
n_parts=$(wc -l < "$T/parts")
[ "$n_parts" -ge 3 ] || fail "only $n_parts parts"
lose=$(awk -v pin="$pin2" -v n="$n_parts" 'NR == n - 1 && $3 * 1e6 < pin {print $1, $2, $3}' \
  "$T/parts")
read -r lose_key lose_t1 lose_t2 <<< "$lose"
[ -n "$lose_key" ] || fail "no part between the segment's start and the quiet backup"
note "the part lost: $lose_key ($lose_t1 .. $lose_t2); the last backup pinned at $pin2"
t_in=$(python3 -c "import sys; print('%.6f' % ((float(sys.argv[1]) + float(sys.argv[2])) / 2))" \
  "$lose_t1" "$lose_t2")
PK=g/wal_archives/app/$lose_key
t_part=$t_in

# 1. A part deleted: a window starts at the quiet backup; times after it
#    restore exactly; a time in the gap is refused naming the part.
s3cmd_ -q get "$URL/wal_archives/app/$lose_key" "$T/part" >/dev/null
s3cmd_ -q del "$URL/wal_archives/app/$lose_key" >/dev/null
ok_exact "$t_end" "$T/w/r1.db" "the last commit, after a deleted part"
refused "$t_in" "$T/w/r2.db" "a time in the deleted part" "$PK" "is missing" | sed 's/^/# /'
"$SQLENVFS" list --remote "$URL" --json > "$T/list1.json" 2>"$T/list1.err" ||
  fail "list --remote: $(cat "$T/list1.err")"
python3 - "$T/list1.json" "$pin2" "$t_end" <<'PY' || fail "list --remote: $(cat "$T/list1.json")"
import datetime, json, sys
j = json.load(open(sys.argv[1]))
pin, end = int(sys.argv[2]) / 1e6, float(sys.argv[3])
def t(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
w = [x for x in j["windows"] if x["database"] == "app"]
assert len(w) >= 2, w
assert any(t(x["from"]) <= pin + 1 and t(x["to"]) >= end - 0.001 and t(x["from"]) > t(w[0]["to"])
           for x in w[1:]), w
PY
rc=0
"$SQLENVFS" verify --remote "$URL" > "$T/verify1.out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || { cat "$T/verify1.out"; fail "verify --remote passes a deleted part"; }
grep -q "^BAD .*s3://$S3_BUCKET/$PK: is missing" "$T/verify1.out" ||
  { cat "$T/verify1.out"; fail "verify --remote does not name the deleted part"; }
pass "a part deleted: a gap there, a window from the next base, the part named"

# 2. The same part damaged (one byte changed, uploaded again: its ETag
#    matches): the same gap, named as damaged by the part's key.
python3 - "$T/part" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[len(b) // 2] ^= 0x55
open(sys.argv[1], "wb").write(b)
PY
s3cmd_ -q put "$T/part" "$URL/wal_archives/app/$lose_key" >/dev/null
ok_exact "$t_end" "$T/w/r3.db" "the last commit, after a damaged part"
refused "$t_in" "$T/w/r4.db" "a time in the damaged part" "$PK" "is damaged" | sed 's/^/# /'
rc=0
"$SQLENVFS" verify --remote "$URL" > "$T/verify2.out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || { cat "$T/verify2.out"; fail "verify --remote passes a damaged part"; }
grep -q "^BAD .*s3://$S3_BUCKET/$PK: is damaged" "$T/verify2.out" ||
  { cat "$T/verify2.out"; fail "verify --remote does not name the damaged part"; }
pass "a part damaged: named by its own key, not the segment's"

# 3. A sealed segment deleted: a time in it is refused naming it (not the
#    segment after it), with its times and verify --remote.
remote_replica s --parts 3
k=$(( ${#segs[@]} - 2 ))
gone=${segs[$k]}
s3cmd_ -q del "$URL/wal_archives/app/$gone" >/dev/null
# The time of the last record of segment file $1 (from its index).
seg_last_time() {
  python3 - "$W/${1%.seg}.idx" <<'PY'
import struct, sys
d = open(sys.argv[1], "rb").read()
print("%.6f" % (struct.unpack_from("<q", d, len(d) - 112 + 24)[0] / 1e6))
PY
}
g1=$(seg_last_time "${segs[$((k - 1))]}")
g2=$(seg_last_time "$gone")
t_in=$(python3 -c "import sys; print('%.6f' % ((float(sys.argv[1]) + float(sys.argv[2])) / 2))" \
  "$g1" "$g2")
refused "$t_in" "$T/w/r5.db" "a time in a deleted sealed segment" "s/wal_archives/app/$gone" \
  "is missing" | sed 's/^/# /'
ok_exact "$t_end" "$T/w/r6.db" "the last commit, after a deleted sealed segment"
s3cmd_ -q put "$W/$gone" "$URL/wal_archives/app/$gone" >/dev/null
pass "a sealed segment deleted: a time in it refused naming it"

# 4. A time after a lost object's records, before the window that starts
#    after it (no base in between): refused, but not blamed on that object
#    (its records end before the time); the engine's own reason stays.
#    The object: a sealed segment well after the first backup, followed by
#    another sealed one before the quiet backup.
pin0=$(sed -n 's/^pinned-at-us=//p' "$R/backups/prod/daily/${bks[0]}/MANIFEST")
pin1=$(sed -n 's/^pinned-at-us=//p' "$R/backups/prod/daily/${bks[1]}/MANIFEST")
read -r m t_after < <(python3 - "$W" "$pin0" "$pin1" "${segs[@]}" <<'PY'
import struct, sys
w, pin0, pin1, segs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
def first(seg):  # the time of the segment's first record
    return struct.unpack_from("<q", open("%s/%s" % (w, seg), "rb").read(96), 64 + 24)[0]
for m in range(1, len(segs) - 2):
    if first(segs[m - 1]) > pin0 + 500000 and first(segs[m + 1]) + 2000 < pin1 - 50000:
        print(m, "%.6f" % ((first(segs[m + 1]) + 2000) / 1e6))
        break
PY
)
if [ -z "$m" ]; then
  note "no sealed segment between two backups with room after it: case skipped"
else
  s3cmd_ -q del "$URL/wal_archives/app/${segs[$m]}" >/dev/null
  rm -f "$T/w/r7.db"
  msg=$(rremote "@$t_after" "$T/w/r7.db") && fail "restored $t_after, before any base after a gap"
  [ ! -e "$T/w/r7.db" ] || fail "a failed restore left r7.db"
  ! [[ $msg == *"${segs[$m]} is missing"* ]] ||
    fail "a time after the deleted segment's records is blamed on it: $msg"
  [[ $msg == *"missing or unreadable"* ]] || fail "a time after the gap: $msg"
  # The engine's advice, given as a replica's reader takes it.
  [[ $msg == *"run \`sqlenvfs verify --remote $URL\`"* ]] ||
    fail "a time after the gap: the advice is not verify --remote: $msg"
  echo "$msg" | sed 's/^/# /'
  pass "a time after a lost object's records: not blamed on that object"
fi

# damage_part KEY OFFSET: flip a byte of part KEY (of the replica at $URL) at
# OFFSET (negative: from its end) and upload it again (its ETag matches)
damage_part() {
  s3cmd_ -q get --force "$URL/wal_archives/app/$1" "$T/dpart" >/dev/null
  python3 - "$T/dpart" "$2" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[int(sys.argv[2])] ^= 0x55
open(sys.argv[1], "wb").write(b)
PY
  s3cmd_ -q put "$T/dpart" "$URL/wal_archives/app/$1" >/dev/null
}
read -r first_key first_t1 first_t2 < <(head -1 "$T/parts")
read -r last_key last_t1 last_t2 < <(tail -1 "$T/parts")
t_first_in=$(python3 -c "import sys; print('%.6f' % (sum(map(float, sys.argv[1:])) / 2))" \
  "$first_t1" "$first_t2")

# Cases 5 to 11 share one replica: each changes it, and puts the part it
# changed back from the local segment when it is done.
# put_object FILE KEY: upload FILE as KEY of the replica at $URL
put_object() { s3cmd_ -q put "$1" "$URL/wal_archives/app/$2" >/dev/null; }
# put_back KEY: part KEY of the unsealed segment uploaded again, whole
put_back() {
  local a b
  read -r a b < <(echo "$1" | sed 's/.*part-0*\([0-9][0-9]*\)-0*\([0-9][0-9]*\)$/\1 \2/')
  dd if="$W/$last_seg" of="$T/back" iflag=skip_bytes,count_bytes skip="$a" count=$((b - a)) \
    status=none
  put_object "$T/back" "$1"
}
remote_replica p --parts 8
# latest_refused KEY WHY WHAT: latest is refused naming KEY (of the replica
# at $URL) with WHY, never answered with an older state
latest_refused() {
  local msg
  rm -f "$T/w/rl.db"
  msg=$(rremote latest "$T/w/rl.db") && fail "$3: latest gave an older state"
  [ ! -e "$T/w/rl.db" ] || fail "$3: a failed restore left rl.db"
  [[ $msg == *"$URL/wal_archives/app/$1 $2"*"(recoverable: "*"verify --remote"* ]] ||
    fail "$3: latest: $msg"
  echo "$msg" | sed 's/^/# /'
}

# 5. The first part of the unsealed segment damaged in a record (its
#    segment header checks): a gap from byte 0; the later parts are used
#    and a later base starts a window there.
damage_part "$first_key" -40
ok_exact "$t_end" "$T/w/r8.db" "the last commit, after a damaged first part"
refused "$t_first_in" "$T/w/r9.db" "a time in the damaged first part" \
  "p/wal_archives/app/$first_key" "is damaged" | sed 's/^/# /'
put_back "$first_key"
pass "the first part damaged in a record: stepped over, a window after it"

# 6. The same with its segment header damaged: still a gap from byte 0,
#    the records after it used.
damage_part "$first_key" 20
ok_exact "$t_end" "$T/w/r10.db" "the last commit, after a damaged segment header"
refused "$t_first_in" "$T/w/r11.db" "a time in the part with the damaged header" \
  "p/wal_archives/app/$first_key" "is damaged" | sed 's/^/# /'
put_back "$first_key"
pass "the segment header damaged: the records after its part are used"

# 7. The last part damaged: latest and the times after the last good
#    record are refused naming the part, never answered with an older
#    state; a time before the part restores exactly.
damage_part "$last_key" -40
latest_refused "$last_key" "is damaged" "the last part damaged"
refused_any() {  # T OUT WHAT KEY: refused, naming KEY as damaged
  local msg rc=0
  rm -f "$2"
  msg=$(rremote "@$1" "$2") || rc=$?
  [ "$rc" -ne 0 ] || fail "$3: restored a time after the damaged last part"
  [ ! -e "$2" ] || fail "$3: a failed restore left $2"
  [[ $msg == *"s3://$S3_BUCKET/$4 is damaged"* ]] || fail "$3: does not name $4: $msg"
}
refused_any "$t_end" "$T/w/r13.db" "the last commit, in the damaged last part" \
  "p/wal_archives/app/$last_key"
t_before=$(awk -v n="$n_parts" 'NR == n - 1 {print $3}' "$T/parts")
ok_exact "$t_before" "$T/w/r14.db" "the last record before the damaged last part"
put_back "$last_key"
pass "the last part damaged: latest and the times in it refused naming it"

# 8. A holes file in a root's own archive (a copied temporary tree): not
#    used, said so; the root's restores are as they were (also scanning the
#    segment, its index put aside).
idx=$W/${last_seg%.seg}.idx
[ ! -e "$idx" ] || mv "$idx" "$T/idx.aside"
echo "$(echo "$lose_key" | sed 's/.*part-0*\([0-9][0-9]*\)-0*\([0-9][0-9]*\)$/\1 \2/')" \
  > "$W/${last_seg%.seg}.holes"
rm -f "$T/w/r15.db"
"$SQLENVFS" restore --root "$R" --time "@$t_part" --output "$T/w/r15.db" \
  >/dev/null 2>"$T/r15.err" ||
  fail "a holes file in the root's own archive refused a restore: $(cat "$T/r15.err")"
python3 "$CHECK" check-file "$T/log" "$T/w/r15.db" "$t_part" >/dev/null ||
  fail "a holes file in the root's own archive: a wrong database"
grep -q "holes is not used" "$T/r15.err" ||
  fail "a holes file in the root's own archive is ignored silently: $(cat "$T/r15.err")"
rm -f "$W/${last_seg%.seg}.holes"
[ ! -e "$T/idx.aside" ] || mv "$T/idx.aside" "$idx"
pass "a holes file in a root's own archive: not used, and said so"

# 9. The first part of the unsealed segment deleted: its segment header
#    is gone with it; a gap from byte 0, the later parts used, a later base
#    starts a window there; a time in the part is refused naming it.
s3cmd_ -q del "$URL/wal_archives/app/$first_key" >/dev/null
ok_exact "$t_end" "$T/w/r16.db" "the last commit, after a deleted first part"
refused "$t_first_in" "$T/w/r17.db" "a time in the deleted first part" \
  "p/wal_archives/app/$first_key" "is missing" | sed 's/^/# /'
put_back "$first_key"
pass "the first part deleted: a gap from byte 0, the records after it used"

# 10. The last part replaced by an object shorter than its name says (a
#     listing that does not agree with the name): its bytes are a gap;
#     latest is refused naming it, a time before it restores exactly.
s3cmd_ -q get --force "$URL/wal_archives/app/$last_key" "$T/lpart" >/dev/null
truncate -s -7 "$T/lpart"
put_object "$T/lpart" "$last_key"
latest_refused "$last_key" "is damaged: it holds" "a last part shorter than its name"
ok_exact "$t_before" "$T/w/r18.db" "the last record before a part shorter than its name"
put_back "$last_key"
pass "a part shorter than its name: a gap, latest refused naming it"

# 11. A part overlapping the last one (two histories shipped to one
#     replica): what follows the start of the last part is not used;
#     latest is refused naming it, a time before it restores exactly.
read -r la lb < <(echo "$last_key" | sed 's/.*part-0*\([0-9][0-9]*\)-0*\([0-9][0-9]*\)$/\1 \2/')
over=$(printf '%s.part-%016d-%016d' "$last_seg" $((la + 8)) $((lb + 8)))
head -c $((lb - la)) /dev/urandom > "$T/opart"
put_object "$T/opart" "$over"
latest_refused "$last_key" "overlaps $URL/wal_archives/app/$over" "parts that overlap"
ok_exact "$t_before" "$T/w/r19.db" "the last record before parts that overlap"
pass "parts that overlap: latest refused naming them, never a mixed state"
