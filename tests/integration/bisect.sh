#!/usr/bin/env bash
# `sqlenvfs bisect` against a known history: a real client commits a few
# thousand transactions while `sqlenvfs archive` runs, one of which deletes
# row 7. Bisect must name exactly the archived commit after which the row
# is gone (checked with two restores: the state after the COMMIT record
# before it still has the row, the state after it does not; its time is the
# record's time), in at most ceil(log2(n)) + 2 states, also when it is the
# first commit after --from; a query whose result never changes says so
# with exit status 3, and one that changes back and forth is said to be
# neither unchanged nor changed first at the commit found; a statement that
# is not a query is refused; where the query fails (its table dropped),
# its error is its result, and bisect names the commit that dropped it; a
# comment after the query is accepted, and an empty query is called empty.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
mkdir -p "$R"
echo "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);" > "$R/schema.sql"
cat > "$R/sqlenvfs.conf" <<CONF
[archive]
segment-max-bytes=1048576
CONF
"$SQLENVFS" init --root "$R" >/dev/null
pitr_start_archiver "$R" "$T/archive"

N=${BISECT_COMMITS:-2500}
DEL=${BISECT_DELETE_AT:-1733}
python3 - "$R/data/prod/app.db" "$N" "$DEL" > "$T/writer.log" <<'PY'
import sqlite3, sys, time
db, n, at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = sqlite3.connect(db, isolation_level=None)
c.execute("PRAGMA synchronous=NORMAL")
for k in range(1, n + 1):
    if k == at:
        t0 = time.time()
        c.execute("DELETE FROM t WHERE id=7")
        print("D %.6f %.6f" % (t0, time.time()))
    else:
        c.execute("INSERT INTO t(id, v) VALUES(?, ?)", (k, "row %d" % k))
c.close()
PY
pitr_stop_archiver "$T/archive"
pass "writer committed $N transactions"

python3 "$SRCDIR/tests/integration/archive_dump.py" "$R/backups/prod/wal_archives/app" \
  | awk '$4=="COMMIT" {print $3, $5}' > "$T/commits"
n_commits=$(wc -l < "$T/commits")
[ "$n_commits" -ge "$N" ] || fail "the archive holds $n_commits commits, expected at least $N"

rc=0
# From the 200th archived commit on (row 7, inserted by the 7th, is there).
from=$(awk 'NR==200 {print $2}' "$T/commits")
"$SQLENVFS" restore --root "$R" --time "@$from" -o "$T/from.db" >/dev/null
assert_eq "$(sqlite3 "$T/from.db" 'SELECT count(*) FROM t WHERE id=7')" 1 "row 7 at --from"
"$SQLENVFS" bisect --root "$R" --from "@$from" --sql "SELECT id, v FROM t WHERE id = 7" > "$T/bisect.out" \
  2> "$T/bisect.err" || rc=$?
cat "$T/bisect.out" | sed 's/^/# /'
[ "$rc" -eq 0 ] || { cat "$T/bisect.err"; fail "bisect exited $rc"; }
seq=$(sed -n 's/.*result changes at seq \([0-9]*\), captured \(.*\)$/\1/p' "$T/bisect.out")
when=$(sed -n 's/.*result changes at seq \([0-9]*\), captured \(.*\)$/\2/p' "$T/bisect.out")
[ -n "$seq" ] || fail "bisect printed no commit"
grep -A1 '^  before' "$T/bisect.out" | grep -q '7|row 7' || fail "the result before is not row 7"
grep -A1 '^  after' "$T/bisect.out" | grep -q '(no rows)' || fail "the result after is not empty"

# The record and the COMMIT record before it, from the archive's index
# (bisect names one commit exactly: the state before it is the previous
# commit's, which a restore by time reaches when their times differ).
rec_time=$(awk -v s="$seq" '$1==s {print $2}' "$T/commits")
prev_time=$(awk -v s="$seq" '$1==s {print p} {p=$2}' "$T/commits")
[ -n "$rec_time" ] || fail "seq $seq is not a COMMIT record of the archive"
[ -n "$prev_time" ] && [ "$prev_time" != "$rec_time" ] ||
  fail "the commit before seq $seq has no time of its own ($prev_time)"
iso=$(python3 -c 'import sys, datetime; t = float(sys.argv[1]); d = datetime.datetime.fromtimestamp(t, datetime.timezone.utc); s = d.strftime("%Y-%m-%dT%H:%M:%S"); f = ("%06d" % d.microsecond).rstrip("0"); print(s + ("." + f if f else "") + "Z")' "$rec_time")
assert_eq "$when" "$iso" "the time bisect prints for seq $seq"
"$SQLENVFS" restore --root "$R" --time "@$rec_time" -o "$T/after.db" >/dev/null
"$SQLENVFS" restore --root "$R" --time "@$prev_time" -o "$T/before.db" >/dev/null
assert_eq "$(sqlite3 "$T/after.db" 'SELECT count(*) FROM t WHERE id=7')" 0 "row 7 after seq $seq"
assert_eq "$(sqlite3 "$T/before.db" 'SELECT count(*) FROM t WHERE id=7')" 1 "row 7 before seq $seq"
pass "bisect names seq $seq ($when), the commit that deleted row 7"

# From the state just before it: the first commit searched is the answer.
rc=0
"$SQLENVFS" bisect --root "$R" --from "@$prev_time" --sql "SELECT id, v FROM t WHERE id = 7" \
  > "$T/first.out" 2> "$T/first.err" || rc=$?
[ "$rc" -eq 0 ] || { cat "$T/first.err"; fail "bisect from the commit before exited $rc"; }
first=$(sed -n 's/.*result changes at seq \([0-9]*\), captured.*/\1/p' "$T/first.out")
assert_eq "$first" "$seq" "the commit bisect names when it is the first after --from"
pass "bisect from the state before seq $seq names it (the first commit searched)"

probes=$(sed -n 's/.*examined \([0-9]*\) states of \([0-9]*\) commits.*/\1/p' "$T/bisect.out")
searched=$(sed -n 's/.*examined \([0-9]*\) states of \([0-9]*\) commits.*/\2/p' "$T/bisect.out")
bound=$(python3 -c "import math; print(math.ceil(math.log2($searched)) + 2)")
[ "$searched" -ge "$((N / 2))" ] || fail "bisect searched $searched commits, expected about $N"
[ "$probes" -le "$bound" ] || fail "bisect examined $probes states, more than $bound"
pass "bisect examined $probes states of $searched commits (bound $bound)"

rc=0
"$SQLENVFS" bisect --root "$R" --sql "SELECT count(*) FROM t WHERE id < 0" > "$T/same.out" || rc=$?
assert_eq "$rc" 3 "exit status of a bisect whose result never changes"
grep -q 'is the result at' "$T/same.out" || fail "bisect did not say the result is T1's"
pass "a result that never changes is reported as such (exit 3)"

# A result that changes at every commit (the parity of the row count) and
# is back at T2: exit 3, without saying it did not change; found between
# an odd number of commits: not said to be the first change.
# (four commits from the 300th on with times of their own: a time names one)
read -r a b c < <(awk 'NR >= 300 { t[NR] = $2 }
  NR >= 303 && t[NR-3] < t[NR-2] && t[NR-2] < t[NR-1] && t[NR-1] < t[NR] {
    print t[NR-3], t[NR-1], t[NR]; exit }' "$T/commits")
[ -n "$c" ] || fail "no four commits with times of their own from the 300th on"
rc=0
"$SQLENVFS" bisect --root "$R" --from "@$a" --to "@$b" --sql "SELECT count(*) % 2 FROM t" \
  > "$T/flip.out" || rc=$?
assert_eq "$rc" 3 "exit status of a bisect whose result is back at T2"
grep -q 'the result at .* is the result at' "$T/flip.out" \
  || fail "exit 3 output: $(cat "$T/flip.out")"
grep -q 'a change undone in between is not seen' "$T/flip.out" \
  || fail "bisect does not say a change undone in between is not seen: $(cat "$T/flip.out")"
! grep -qi 'not change' "$T/flip.out" \
  || fail "bisect says the result did not change: $(cat "$T/flip.out")"
rc=0
"$SQLENVFS" bisect --root "$R" --from "@$a" --to "@$c" --sql "SELECT count(*) % 2 FROM t" \
  > "$T/flip.out" || rc=$?
assert_eq "$rc" 0 "exit status of a bisect over a result that changes three times"
! grep -q 'first change' "$T/flip.out" \
  || fail "bisect calls a change the first: $(cat "$T/flip.out")"
grep -q 'others may exist: bisect again with --to before .*, or --from [0-9T:.-]*Z,' "$T/flip.out" \
  || fail "bisect does not say other changes may exist, before and after: $(cat "$T/flip.out")"
pass "a result that changes back and forth: bisect claims neither no change nor the first one"

expect_fail 'must be a query' "$SQLENVFS" bisect --root "$R" --sql "DELETE FROM t"
expect_fail 'not a query SQLite accepts on app.db after seq [0-9]+ \([^)]*\), the state --from names: no such table: nosuch .*give a --from' "$SQLENVFS" bisect --root "$R" --sql "SELECT * FROM nosuch"
assert_eq "$(sqlite3 "$R/data/prod/app.db" 'SELECT count(*) FROM t')" "$((N - 2))" "rows in production"
pass "bisect refuses statements that are not queries, and production is untouched"

# ---- a query that fails at some states ------------------------------------------
# Table flag holds 1, is dropped, then created again holding 2: from a state
# with flag, the query fails at the states in between, and that failure is
# a result like any other (compared by its message), so bisect names the
# commit that dropped the table, also with --to where the query fails.
pitr_start_archiver "$R" "$T/archive2"
python3 - "$R/data/prod/app.db" > "$T/flag.times" <<'PY'
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
def some(n):
    for _ in range(n):
        c.execute("INSERT INTO t(v) VALUES('filler')")
c.execute("CREATE TABLE flag(v)"); c.execute("INSERT INTO flag VALUES(1)")
some(20); time.sleep(0.5); print("%.6f" % time.time())
some(20); c.execute("DROP TABLE flag"); some(20); time.sleep(0.5); print("%.6f" % time.time())
some(20); c.execute("CREATE TABLE flag(v)"); c.execute("INSERT INTO flag VALUES(2)"); some(20)
PY
pitr_stop_archiver "$T/archive2"
FA=$(sed -n 1p "$T/flag.times"); FB=$(sed -n 2p "$T/flag.times")
for to in latest "@$FB"; do
  rc=0
  "$SQLENVFS" bisect --root "$R" --from "@$FA" --to "$to" --sql "SELECT v FROM flag" \
    > "$T/flag.out" 2> "$T/flag.err" || rc=$?
  [ "$rc" -eq 0 ] || fail "bisect over a dropped table (--to $to) exited $rc: $(cat "$T/flag.err")"
  grep -A1 '^  before' "$T/flag.out" | grep -q '^    1$' || fail "before: $(cat "$T/flag.out")"
  grep -A1 '^  after' "$T/flag.out" | grep -q '(the query fails: no such table: flag)' \
    || fail "after (--to $to): $(cat "$T/flag.out")"
  seq=$(sed -n 's/.*result changes at seq \([0-9]*\), captured.*/\1/p' "$T/flag.out")
  # The commit named dropped flag: restored, the state after it has no
  # flag, the state after the COMMIT record before it has flag = 1.
  python3 "$SRCDIR/tests/integration/archive_dump.py" "$R/backups/prod/wal_archives/app" \
    | awk '$4=="COMMIT" {print $3, $5}' > "$T/commits2"
  rec_time=$(awk -v s="$seq" '$1==s {print $2}' "$T/commits2")
  prev_time=$(awk -v s="$seq" '$1==s {print p} {p=$2}' "$T/commits2")
  [ -n "$rec_time" ] && [ -n "$prev_time" ] && [ "$prev_time" != "$rec_time" ] \
    || fail "seq $seq: no COMMIT record with a time of its own, after one ($prev_time $rec_time)"
  rm -f "$T/fa.db" "$T/fb.db"
  "$SQLENVFS" restore --root "$R" --time "@$rec_time" -o "$T/fa.db" > /dev/null
  "$SQLENVFS" restore --root "$R" --time "@$prev_time" -o "$T/fb.db" > /dev/null
  assert_eq "$(sqlite3 "$T/fa.db" "SELECT count(*) FROM sqlite_schema WHERE name = 'flag'")" 0 \
    "table flag after seq $seq"
  assert_eq "$(sqlite3 "$T/fb.db" 'SELECT v FROM flag')" 1 "flag before seq $seq"
done
pass "a query that fails at some states: the failure is a result, bisect names the DROP"

rc=0
"$SQLENVFS" bisect --root "$R" --from "@$FA" --sql "SELECT 1 ; -- a comment" > "$T/c.out" \
  2> "$T/c.err" || rc=$?
assert_eq "$rc" 3 "exit status of a query followed by a comment ($(cat "$T/c.err"))"
expect_fail 'more than one statement' "$SQLENVFS" bisect --root "$R" --sql "SELECT 1; SELECT 2"
expect_fail '--sql is empty' "$SQLENVFS" bisect --root "$R" --sql ""
expect_fail '--sql is empty' "$SQLENVFS" bisect --root "$R" --sql " ; -- nothing"
expect_fail 'gives another result each time it runs on the same state' \
  "$SQLENVFS" bisect --root "$R" --sql "SELECT count(*) + random() FROM t"
expect_fail 'gives another result each time .*PRAGMA database_list, whose file names differ' \
  "$SQLENVFS" bisect --root "$R" --sql "PRAGMA database_list"
pass "a comment after the query is accepted; an empty --sql is called empty"

# The clock stands still: a query that reads it (to the millisecond, which
# two runs never share) asks the same of every state, and none changes it.
rc=0
"$SQLENVFS" bisect --root "$R" --from "@$FA" --sql "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now'),
  count(*) >= 0 FROM t" > "$T/clk.out" 2> "$T/clk.err" || rc=$?
assert_eq "$rc" 3 "exit status of a query that reads the clock ($(cat "$T/clk.err"))"
pass "a query that reads the clock sees it stand still in every state"

# Results that print alike: 0.0 and -0.0, the text 'NULL' and NULL. The
# rows show -0.0 with its sign, and a note says when the two results print
# the same although they differ.
pitr_start_archiver "$R" "$T/archive2"
sqlite3 "$R/data/prod/app.db" "CREATE TABLE r(id INTEGER PRIMARY KEY, x); INSERT INTO r VALUES (1, 0.0), (3, NULL)"
sleep 0.3
RA=$(date -u +%s.%N)
sleep 0.3
sqlite3 "$R/data/prod/app.db" "UPDATE r SET x = -0.0 WHERE id = 1; UPDATE r SET x = 'NULL' WHERE id = 3"
sleep 0.5
pitr_stop_archiver "$T/archive2"
rc=0
"$SQLENVFS" bisect --root "$R" --from "@$RA" --sql "SELECT x FROM r WHERE id = 1" > "$T/z.out" \
  2> "$T/z.err" || rc=$?
assert_eq "$rc" 0 "exit status over 0.0 -> -0.0 ($(cat "$T/z.out" "$T/z.err"))"
grep -A1 '^  before' "$T/z.out" | grep -qx '    0.0' || fail "0.0 before: $(cat "$T/z.out")"
grep -A1 '^  after' "$T/z.out" | grep -qx '    -0.0' || fail "-0.0 after: $(cat "$T/z.out")"
rc=0
"$SQLENVFS" bisect --root "$R" --from "@$RA" --sql "SELECT x FROM r WHERE id = 3" > "$T/n.out" \
  2> "$T/n.err" || rc=$?
assert_eq "$rc" 0 "exit status over NULL -> 'NULL' ($(cat "$T/n.out" "$T/n.err"))"
grep -q "the two results differ in what the rows above do not show" "$T/n.out" ||
  fail "no note for results that print alike: $(cat "$T/n.out")"
pass "results that print alike: -0.0 keeps its sign; NULL and 'NULL' are said to differ"

# A change committed while no archiver ran, archived when one came back
# (an outage, nothing lost): its capture time is not when it was committed,
# so bisect says when it was committed after, and its hint's --to is a time
# that can be restored.
R3=$T/root3
mkdir -p "$R3"
echo "CREATE TABLE s(id INTEGER PRIMARY KEY, v);" > "$R3/schema.sql"
"$SQLENVFS" init --root "$R3" > /dev/null
pitr_start_archiver "$R3" "$T/archive3"
python3 - "$R3/data/prod/app.db" "$T/w3" <<'PY' &
import os, sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)  # holds the WAL across the outage
i = 0
while not os.path.exists(sys.argv[2] + ".stop"):
    if os.path.exists(sys.argv[2] + ".pause"):
        time.sleep(0.01)
        continue
    c.execute("INSERT INTO s(v) VALUES(?)", (i,))
    i += 1
    time.sleep(0.02)
PY
W3=$!
track_pid "$W3"
sleep 1
FROM3=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
sleep 0.3
# Paused while the archiver stops: a commit made during its last capture
# would be archived then, after the time capture was last complete, and so
# be neither before the outage nor archived late.
touch "$T/w3.pause"
sleep 0.2
pitr_stop_archiver "$T/archive3"
rm "$T/w3.pause"
sleep 1.5
pitr_start_archiver "$R3" "$T/archive3b"
sleep 1
touch "$T/w3.stop"
wait "$W3"
sleep 1
# The first row written in the outage: count(*) passes N there.
N3=$("$SQLENVFS" restore --root "$R3" --time "$(grep -o 'capture was interrupted from [^ ]*' \
  <("$SQLENVFS" list --root "$R3") | head -1 | awk '{print $5}')" --output "$T/at_outage.db" \
  > /dev/null && sqlite3 "$T/at_outage.db" "SELECT count(*) FROM s")
"$SQLENVFS" bisect --root "$R3" --from "$FROM3" --sql "SELECT count(*) > $N3 FROM s" \
  > "$T/b3.out" 2> "$T/b3.err" || fail "bisect across an outage: $(cat "$T/b3.out" "$T/b3.err")"
grep -q "archived late, when capture resumed after an outage: it was committed after" "$T/b3.out" ||
  fail "bisect does not say the commit was archived late: $(cat "$T/b3.out")"
TO3=$(sed -n 's/.*bisect again with --to before \([^ ,]*\),.*/\1/p' "$T/b3.out")
[ -n "$TO3" ] || fail "no --to in the hint: $(cat "$T/b3.out")"
rc=0
"$SQLENVFS" bisect --root "$R3" --from "$FROM3" --to "$TO3" --sql "SELECT count(*) FROM s" \
  > /dev/null 2> "$T/b3b.err" || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || fail "the hint's --to $TO3 is refused: $(cat "$T/b3b.err")"
pitr_stop_archiver "$T/archive3b"
pass "a change archived late after an outage: bisect says when it was committed after; the hint's --to restores"
