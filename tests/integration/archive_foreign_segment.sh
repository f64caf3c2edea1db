#!/usr/bin/env bash
# A segment of another history copied in: a root is copied (the copy goes on
# by itself, earlier in time), and the copy's segment that holds where the
# two parted is put in the original's archive. Its records have the same
# numbers and layout, and times that still increase, so only the digest the
# next segment's header names tells them apart: restores of the times it
# holds are refused rather than given the copy's rows, times before it are
# still exact, and verify names the segment that does not follow. With the
# root's own segment back, the same time is exact again.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

A=backups/prod/wal_archives/app
R=$T/root C=$T/copy
pitr_make_root "$R"
echo "segment-max-records=50" >> "$R/sqlenvfs.conf"
pitr_start_archiver "$R" "$T/a1"
pitr_write "$R" "$T/log" 1
pitr_stop_archiver "$T/a1"
fork_k=$(pitr_last_k "$T/log")
fork_seg=$(ls "$R/$A" | grep '\.seg$' | tail -1)
early=$(awk -v k=$((fork_k / 2)) '$1=="T" && $2==k {printf "%.6f", $4}' "$T/log")
cp -a "$R" "$C"
cp "$T/log" "$T/copy.log"

# The copy goes on first (its records are the earlier), then the root.
pitr_start_archiver "$C" "$T/a2"
pitr_write "$C" "$T/copy.log" 1 "$fork_k"
pitr_stop_archiver "$T/a2"
pitr_start_archiver "$R" "$T/a3"
pitr_write "$R" "$T/log" 1 "$fork_k"
pitr_stop_archiver "$T/a3"
n=$(ls "$R/$A" | grep -c '\.seg$')
last=$(ls "$R/$A" | grep '\.seg$' | tail -1)
next_seg=$(printf '%016d.seg' $((10#${fork_seg%.seg} + 1)))
[ "$last" != "$fork_seg" ] || fail "the root's archive did not go past $fork_seg ($n segments)"
"$SQLENVFS" verify --full --root "$R" > "$T/v0.out" 2>&1 ||
  fail "verify of the root before anything was copied in: $(cat "$T/v0.out")"

# A time inside the segment where the two parted, after the fork: the
# copy's commits there are older than the root's, so they are in its
# range of times too.
mid=$(python3 - "$R/$A" "$fork_seg" "$T/log" "$fork_k" <<'PY'
import os, subprocess, sys
d, seg, log, k0 = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
dump = os.path.join(os.environ["SRCDIR"], "tests/integration/archive_dump.py")
recs = [l.split() for l in subprocess.check_output([sys.executable, dump, d], text=True).splitlines()]
last_in_seg = max(float(r[4]) for r in recs if r[0] == seg and r[3] == "COMMIT")
ts = [float(l.split()[3]) for l in open(log) if l.startswith("T ") and int(l.split()[1]) > k0]
inside = [t for t in ts if t < last_in_seg]
assert len(inside) >= 3, "too few of the root's commits after the fork in its segment"
print("%.6f" % inside[len(inside) // 2])
PY
)
python3 "$ORACLE" probe --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --time "@$mid" --expect ok
cp -a "$R/$A" "$T/own"
for ext in seg idx sum last; do
  f=${fork_seg%.seg}.$ext
  [ -e "$C/$A/$f" ] && cp "$C/$A/$f" "$R/$A/$f"
done
cmp -s "$C/$A/$fork_seg" "$T/own/$fork_seg" && fail "the copy's $fork_seg is the root's"

python3 "$ORACLE" probe --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --time "@$mid" --expect refused --match "was not written after the records $fork_seg holds"
python3 "$ORACLE" probe --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --time "@$early" --expect ok
pass "a time the copied-in segment holds is refused, an earlier one exact"

"$SQLENVFS" verify --root "$R" > "$T/v1.out" 2>&1 && fail "verify passes: $(cat "$T/v1.out")"
grep -q "BAD .*$next_seg .*was not written after the records $fork_seg holds" "$T/v1.out" ||
  fail "verify does not name the break: $(cat "$T/v1.out")"
pass "verify names the segment that does not follow"

for ext in seg idx sum last; do
  f=${fork_seg%.seg}.$ext
  [ -e "$T/own/$f" ] && cp "$T/own/$f" "$R/$A/$f"
done
python3 "$ORACLE" probe --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --time "@$mid" --expect ok
"$SQLENVFS" verify --root "$R" > "$T/v2.out" 2>&1 ||
  fail "verify with the root's own segment back: $(cat "$T/v2.out")"
pass "with the root's own segment back the time is exact and verify passes"
