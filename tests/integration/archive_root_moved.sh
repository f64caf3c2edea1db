#!/usr/bin/env bash
# A root moved (`mv`) or removed while its archiver runs: the archiver says
# so and exits with a failure within seconds (its databases are out of reach
# by their paths; it used to wait on in silence, holding the lock, so that
# doctor at the new place said it ran while nothing was archived). Started
# again at the new place, it archives on, and latest there is production.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
pitr_make_root "$R"
pitr_start_archiver "$R" "$T/a"
sqlite3 "$R/data/prod/app.db" "CREATE TABLE t(x); INSERT INTO t VALUES (1)"
mv "$R" "$T/moved"
pid=$(cat "$T/a.pid")
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "the archiver still runs 10 s after its root was moved"
rc=0
wait "$pid" || rc=$?
[ "$rc" -ne 0 ] || fail "the archiver exited with 0 after its root was moved"
grep -q 'is no longer the directory archived since the start: the root was moved or removed' \
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
