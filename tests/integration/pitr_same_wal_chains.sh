#!/usr/bin/env bash
# Two chains that archive the same WAL generation: a gap that leaves the
# WAL as it was (here production's mtime set by hand, which the archiver
# takes for a write by another program) starts a new chain, whose first
# records are the same WAL commits again. The snapshot each chain starts
# from is found by its WAL position; it must be mapped to its own chain's
# record, not to the same commit archived again by a later chain, or the
# chain before gets no recoverable window at all (its times refused though
# its snapshot holds them).
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root
DB=$R/data/prod/app.db
make_root "$R" <(echo 'CREATE TABLE t(a);')

"$SQLENVFS" archive --root "$R" > "$T/a.out" 2> "$T/a.err" &
apid=$!
track_pid "$apid"
wait_log "$T/a.err" 'a new recoverable window starts' 1
# An application stays connected throughout, as SQLite leaves the WAL to it:
# the archiver's checkpoint of a WAL quiet for a second (IDLE_CKPT_US) never
# comes, so it cannot backfill the WAL just after a touch and take the
# touch for its own write (the test failed so, now and then, under load).
python3 - "$DB" "$T/holder.stop" "$T/holder.in" <<'PY' &
import os, sqlite3, sys, time
c = sqlite3.connect(sys.argv[1])
c.execute("SELECT count(*) FROM t").fetchall()
open(sys.argv[3], "w").close()
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
PY
holder=$!
track_pid "$holder"
for _ in $(seq 1 300); do [ -e "$T/holder.in" ] && break; sleep 0.1; done
[ -e "$T/holder.in" ] || fail "the connected application did not start"
sqlite3 "$DB" "INSERT INTO t VALUES (1)"
sleep 1
touch "$DB"
wait_log "$T/a.err" 'a new recoverable window starts' 2
sleep 1.5
t_mid=$(date -u +%FT%T.%6NZ)
sleep 1
touch "$DB"
wait_log "$T/a.err" 'a new recoverable window starts' 3
sqlite3 "$DB" "INSERT INTO t VALUES (2)"
sleep 1.2
kill -TERM "$apid"
wait "$apid" || fail "the archiver exited with $? on SIGTERM"
touch "$T/holder.stop"
wait "$holder"
grep -q 'written by something other than SQLite' "$T/a.err" ||
  fail "the touch was not taken for a write: $(cat "$T/a.err")"

"$SQLENVFS" list --root "$R" --json > "$T/list.json"
python3 - "$T/list.json" "$t_mid" <<'PY' || fail "no window holds $t_mid: $(cat "$T/list.json")"
import datetime, json, sys
t = datetime.datetime.fromisoformat(sys.argv[2].replace("Z", "+00:00"))
ws = [w for w in json.load(open(sys.argv[1]))["windows"] if w["database"] == "app"]
p = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
assert len(ws) >= 3, ws
assert any(p(w["from"]) <= t <= p(w["to"]) for w in ws), ws
PY
"$SQLENVFS" restore --root "$R" --time "$t_mid" --output "$T/r.db" > "$T/r.out" 2>&1 ||
  fail "restore at $t_mid, inside the second chain: $(cat "$T/r.out")"
assert_eq "$(sqlite3 "$T/r.db" 'SELECT group_concat(a) FROM t')" "1" "rows at $t_mid"
pass "each chain's snapshot is its own chain's state: the quiet chain between two keeps its window"
