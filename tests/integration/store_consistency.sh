#!/usr/bin/env bash
# Backups and snapshots taken while a real client (Python's sqlite3) commits
# numbered rows without pause are consistent: integrity_check ok, and the
# rows in each copy are exactly a prefix 1..k of the writer's commits.
# Several runs fall inside one second: their names are distinct and sort in
# time order. verify and list see every copy.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root
mkdir -p "$R"
cat > "$R/schema.sql" <<'SQL'
CREATE TABLE seq (n INTEGER PRIMARY KEY, pad BLOB NOT NULL);
CREATE TABLE filler (id INTEGER PRIMARY KEY, data BLOB NOT NULL);
SQL
"$SQLENVFS" init --root "$R" > /dev/null
P=$R/data/prod/app.db
# Some bulk, so that each copy takes a while and spans many commits.
sqlite3 "$P" "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 6000)
              INSERT INTO filler SELECT i, randomblob(1000) FROM c;"

cat > "$T/writer.py" <<'PY'
import os, sqlite3, sys
path, stop, progress = sys.argv[1:4]
db = sqlite3.connect(path, isolation_level=None, timeout=60)
n = 0
while not os.path.exists(stop):
    n += 1
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO seq (n, pad) VALUES (?, randomblob(300))", (n,))
    db.execute("COMMIT")
    if n % 50 == 0:
        with open(progress + ".tmp", "w") as f:
            f.write(str(n))
        os.replace(progress + ".tmp", progress)
with open(progress, "w") as f:
    f.write(str(n))
db.close()
PY

python3 "$T/writer.py" "$P" "$T/stop" "$T/progress" &
writer=$!
track_pid "$writer"
for i in $(seq 1 100); do [ -s "$T/progress" ] && break; sleep 0.05; done
[ -s "$T/progress" ] || fail "the writer did not start"

for round in 1 2 3; do
  "$SQLENVFS" backup --root "$R" > /dev/null
  "$SQLENVFS" snapshot --root "$R" > /dev/null
done
# Quick successive runs: some fall in the same second.
for i in 1 2 3 4; do "$SQLENVFS" snapshot --root "$R" > /dev/null; done
touch "$T/stop"
wait "$writer"
total=$(cat "$T/progress")
note "writer committed $total rows"

cat > "$T/check.py" <<'PY'
import sqlite3, sys
total = int(sys.argv[1])
seen = []
for path in sys.argv[2:]:
    db = sqlite3.connect("file:%s?immutable=1" % path, uri=True)
    ok = db.execute("PRAGMA integrity_check").fetchone()[0]
    assert ok == "ok", (path, ok)
    cnt, lo, hi = db.execute("SELECT count(*), min(n), max(n) FROM seq").fetchone()
    if cnt:
        assert lo == 1 and hi == cnt, "%s: rows %s..%s, %s of them: not a prefix" % (path, lo, hi, cnt)
    assert cnt <= total, (path, cnt, total)
    assert db.execute("SELECT count(*) FROM filler").fetchone()[0] == 6000
    seen.append(cnt)
    db.close()
print(" ".join(map(str, seen)))
assert max(seen) > 0, "no copy saw any commit"
assert min(seen) < total, "every copy was taken after the writer stopped"
PY
copies=$(ls -d "$R"/backups/prod/daily/*/app.db "$R"/backups/prod/snapshots/*/app.db)
[ "$(echo "$copies" | wc -l)" -eq 10 ] || fail "expected 10 copies, found: $copies"
prefixes=$(python3 "$T/check.py" "$total" $copies) || fail "a copy is not a consistent prefix"
note "rows per copy: $prefixes"
pass "10 copies taken under a writer are consistent prefixes of its commits"

# Each MANIFEST names the copied state's WAL position and matches the file.
for d in "$R"/backups/prod/daily/* "$R"/backups/prod/snapshots/*; do
  grep -q '^wal-salt1=' "$d/MANIFEST" || fail "no WAL position in $d/MANIFEST"
  size=$(sed -n 's/^size=//p' "$d/MANIFEST")
  assert_eq "$size" "$(stat -c %s "$d/app.db")" "size in $d/MANIFEST"
done
pass "every MANIFEST records size and WAL position"

# Names: unique, those of one second carry a fraction, list sorts by time.
names=$(ls "$R/backups/prod/snapshots")
[ "$(echo "$names" | sort -u | wc -l)" -eq 7 ] || fail "snapshot names not unique: $names"
grep -Eq '^[0-9]{8}T[0-9]{6}\.[0-9]{3}Z$' <<<"$names" || fail "no run within one second got a fraction: $names"
listed=$("$SQLENVFS" list --root "$R" --json | python3 -c '
import json, sys
doc = json.load(sys.stdin)
snaps = [s["time"] for s in doc["snapshots"]]
assert snaps == sorted(snaps, key=lambda t: t.replace("Z", "")), snaps
assert len(doc["backups"]) == 3 and len(snaps) == 7
print(len(snaps))')
assert_eq "$listed" "7" "snapshots in list --json"
# Plain `ls` (byte order) is time order, fractions included: the names in
# the order of `ls` are the names in the order `list` gives (by time), and
# `ls | tail -1` is the newest.
by_time=$("$SQLENVFS" list --root "$R" --json | python3 -c '
import json, sys
for s in json.load(sys.stdin)["snapshots"]: print(s["name"])')
assert_eq "$(LC_ALL=C ls "$R/backups/prod/snapshots")" "$by_time" "ls order of snapshot names"
assert_eq "$(LC_ALL=C ls "$R/backups/prod/snapshots" | tail -1)" "$(echo "$by_time" | tail -1)" "ls | tail -1"
"$SQLENVFS" list --root "$R" | grep -Eq '^  [0-9T.]+Z +[0-9-]+ [0-9:]+ [+-][0-9]{2}:[0-9]{2} +app ' || fail "list text lacks local time with offset"
pass "names within one second are distinct and list sorts them by time"

out=$("$SQLENVFS" verify --root "$R") || fail "verify failed on good copies: $out"
assert_eq "$(grep -c '^ok ' <<<"$out")" "10" "good lines from verify"
pass "verify finds all 10 copies good"
