#!/usr/bin/env bash
# Archive segments that disappear without a prune are damage: with segments
# 1-13 of 14 deleted by hand (as pruning would look), `verify` fails and
# names them; what prune removes is recorded (PRUNED), so a pruned archive
# still verifies.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
pitr_make_root "$R"
A=$R/backups/prod/wal_archives/app
pitr_start_archiver "$R" "$T/a"
python3 - "$R/data/prod/app.db" "$A" <<'PY'
import glob, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("CREATE TABLE IF NOT EXISTS blobs (k INTEGER PRIMARY KEY, v BLOB)")
k = 0
deadline = time.time() + 60
while len(glob.glob(sys.argv[2] + "/*.seg")) < 15:
    assert time.time() < deadline, "the archive did not grow to 15 segments in 60 s"
    k += 1
    db.execute("INSERT INTO blobs VALUES (?, randomblob(60000))", (k,))
PY
pitr_stop_archiver "$T/a"
"$SQLENVFS" verify --root "$R" > "$T/verify0.out" || fail "verify fails before any damage: $(cat "$T/verify0.out")"
[ ! -e "$A/PRUNED" ] || fail "a prune log exists though nothing was pruned"

mapfile -t segs < <(ls "$A" | grep '\.seg$' | sort)
n=${#segs[@]}
note "$n segments; deleting all but the last 1"
for s in "${segs[@]:0:$((n - 1))}"; do
  rm "$A/$s" "$A/${s%.seg}.idx"
done
rc=0
"$SQLENVFS" verify --root "$R" > "$T/verify.out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "verify passed an archive whose first $((n - 1)) segments were deleted"
grep -q "^BAD .*0000000000000001\.seg.*no prune removed them" "$T/verify.out" \
  || fail "verify did not name the deleted segments: $(cat "$T/verify.out")"
pass "verify names segments deleted without a prune"
