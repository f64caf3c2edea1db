#!/usr/bin/env bash
# A root moved (`mv`) or removed while its archiver runs: the archiver says
# so and exits with a failure within seconds (its databases are out of reach
# by their paths; it used to wait on in silence, holding the lock, so that
# doctor at the new place said it ran while nothing was archived). Started
# again at the new place, it archives on, and latest there is production.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

# archiver_fails PID WHAT: the archiver PID exits within 10 s after WHAT,
# with a failure.
archiver_fails() {
  local pid=$1 rc=0
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && fail "the archiver still runs 10 s after $2"
  wait "$pid" || rc=$?
  [ "$rc" -ne 0 ] || fail "the archiver exited with 0 after $2"
}

R=$T/root
pitr_make_root "$R"
pitr_start_archiver "$R" "$T/a"
sqlite3 "$R/data/prod/app.db" "CREATE TABLE t(x); INSERT INTO t VALUES (1)"
mv "$R" "$T/moved"
archiver_fails "$(cat "$T/a.pid")" "its root was moved"
grep -q 'is no longer the root this archiver locked: it was moved, replaced or removed' \
  "$T/a.err" || fail "the archiver did not say why it stopped: $(cat "$T/a.err")"
pass "an archiver whose root was moved says so and exits with a failure"

R=$T/moved
"$SQLENVFS" doctor --root "$R" > "$T/doctor.out" 2>&1 || true
grep -q 'no archiver is running' "$T/doctor.out" ||
  fail "doctor at the new place does not say no archiver runs: $(cat "$T/doctor.out")"
pitr_start_archiver "$R" "$T/b"
sqlite3 "$R/data/prod/app.db" "INSERT INTO t VALUES (2)"
for _ in $(seq 1 100); do
  "$SQLENVFS" restore --root "$R" --time latest --output "$T/latest.db" --force >/dev/null 2>&1 &&
    [ "$(sqlite3 "$T/latest.db" 'SELECT group_concat(x) FROM t')" = "1,2" ] && break
  sleep 0.1
done
assert_eq "$(sqlite3 "$T/latest.db" 'SELECT group_concat(x) FROM t')" "1,2" "latest at the new place"
pitr_stop_archiver "$T/b"
pass "started again at the new place, the archiver archives on"

# Another root moved to the path of one being archived (mv old away, mv new
# in: a deploy, or a link switched): the archiver stops without writing a
# thing into the other root, which it never locked. It used to reopen the
# database there, record a gap and a chain in the other root's archive and
# take a snapshot there, leaving that archive unreadable.
A=$T/rootA B=$T/rootB
pitr_make_root "$A"
pitr_make_root "$B"
sqlite3 "$B/data/prod/app.db" "CREATE TABLE b(x); INSERT INTO b VALUES (1)"
pitr_start_archiver "$A" "$T/sa"
sqlite3 "$A/data/prod/app.db" "CREATE TABLE a(x); INSERT INTO a VALUES (1)"
before=$(cd "$B" && find . -path ./data -prune -o -print | sort | sha256sum)
mv "$A" "$T/rootA.old" && mv "$B" "$A"
sqlite3 "$A/data/prod/app.db" "INSERT INTO b VALUES (2)"
archiver_fails "$(cat "$T/sa.pid")" "another root took its path"
after=$(cd "$A" && find . -path ./data -prune -o -print | sort | sha256sum)
assert_eq "$after" "$before" "the other root's files after the archiver stopped: $(cat "$T/sa.err")"
grep -q "GAP\|snapshot .* taken" <(sed -n '/rootA.old\|moved away\|another file/,$p' "$T/sa.err" | tail -n +2) &&
  fail "the archiver acted in the other root: $(cat "$T/sa.err")"
pass "another root moved to the path: the archiver stops, writing nothing there"
