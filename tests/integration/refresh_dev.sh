#!/usr/bin/env bash
# refresh-dev: production's content is unchanged (dump hashed before and
# after); development ends marked development with one marker row; a reader
# holding development open in one connection (Python's sqlite3, looping on
# SELECTs) never sees the production marker, a malformed database, or a
# state between the old and the new; a source not marked production is
# refused and development left as it was, unless --force.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root
make_root "$R" "$SRCDIR/schema.sql" --demo --demo-events 60000
P=$R/data/prod/app.db D=$R/data/dev/app.db

# Development drifts from production, so each refresh changes what it holds.
sqlite3 "$D" "DELETE FROM raw_vessel_events WHERE event_id % 3 = 0"
dev_before=$(sqlite3 "$D" "SELECT count(*) FROM raw_vessel_events")
prod_events=$(sqlite3 "$P" "SELECT count(*) FROM raw_vessel_events")
prod_hash=$(sqlite3 "$P" .dump | sha256sum)

cat > "$T/reader.py" <<'PY'
import os, sqlite3, sys
path, stop, ready, allowed = sys.argv[1], sys.argv[2], sys.argv[3], set(map(int, sys.argv[4].split(",")))
db = sqlite3.connect(path, isolation_level=None, timeout=60)
loops = 0
seen = set()
while not os.path.exists(stop):
    try:
        # The marker on every loop (fast); the content and a page check less often.
        rows = db.execute("SELECT name FROM _environment").fetchall()
        n = db.execute("SELECT count(*) FROM raw_vessel_events").fetchone()[0] if loops % 16 == 0 else None
        if loops % 500 == 0:
            ok = db.execute("PRAGMA quick_check").fetchone()[0]
            if ok != "ok":
                sys.exit("malformed: %s" % ok)
    except sqlite3.DatabaseError as e:
        sys.exit("reader error: %s" % e)
    if rows != [("development",)]:
        sys.exit("reader saw marker rows %r" % rows)
    if n is not None:
        if n not in allowed:
            sys.exit("reader saw %d events, neither the old nor the new state" % n)
        seen.add(n)
    loops += 1
    if loops == 5:
        open(ready, "w").close()
print(loops, sorted(seen))
PY
python3 "$T/reader.py" "$D" "$T/stop" "$T/ready" "$dev_before,$prod_events" > "$T/reader.out" 2>&1 &
reader=$!
track_pid "$reader"
for i in $(seq 1 200); do [ -e "$T/ready" ] && break; sleep 0.05; done
[ -e "$T/ready" ] || fail "the reader did not start"

for i in 1 2 3; do
  "$SQLENVFS" refresh-dev --root "$R" > "$T/refresh.out" || fail "refresh-dev failed: $(cat "$T/refresh.out")"
  # Let development drift again between refreshes (a writer on dev, as a developer would).
  [ "$i" -lt 3 ] && sqlite3 "$D" "DELETE FROM raw_vessel_events WHERE event_id % 3 = 0"
done
sleep 0.3
touch "$T/stop"
wait "$reader" || fail "the reader saw something it must not: $(cat "$T/reader.out")"
note "reader loops and states seen: $(cat "$T/reader.out")"
grep -q "\[$prod_events\]\|, $prod_events\]" "$T/reader.out" || fail "the reader never saw the refreshed state: $(cat "$T/reader.out")"
pass "a reader holding development open saw only old or new, always marked development"

assert_eq "$(sqlite3 "$P" .dump | sha256sum)" "$prod_hash" "production dump after refresh-dev"
assert_eq "$(sqlite3 "$D" 'SELECT count(*), name FROM _environment')" "1|development" "development marker"
assert_eq "$(sqlite3 "$D" 'SELECT count(*) FROM raw_vessel_events')" "$prod_events" "events in development"
assert_eq "$(sqlite3 "$D" 'PRAGMA integrity_check')" "ok" "development integrity"
assert_eq "$(sqlite3 "$P" 'SELECT count(*), name FROM _environment')" "1|production" "production marker"
[ -z "$(ls -A "$R/data/dev" | grep '^\.tmp-')" ] || fail "refresh-dev left temporaries: $(ls -A "$R/data/dev")"
pass "production unchanged; development is a marked copy of it"

# A source not marked production is refused and nothing changes.
sqlite3 "$D" "DELETE FROM raw_vessel_events WHERE event_id < 100"
dev_hash=$(sqlite3 "$D" .dump | sha256sum)
sqlite3 "$P" "UPDATE _environment SET name = 'staging'"
expect_fail "refresh-dev: the source $P is marked 'staging', not production.*--force" \
  "$SQLENVFS" refresh-dev --root "$R"
assert_eq "$(sqlite3 "$D" .dump | sha256sum)" "$dev_hash" "development after a refused refresh"
sqlite3 "$P" "DROP TABLE _environment"
expect_fail "is not marked, not production" "$SQLENVFS" refresh-dev --root "$R"
assert_eq "$(sqlite3 "$D" .dump | sha256sum)" "$dev_hash" "development after a refused refresh"
rc=0; "$SQLENVFS" refresh-dev --root "$R" 2> "$T/err" > /dev/null || rc=$?
assert_eq "$rc" "1" "exit status of a refused refresh"
pass "a source not marked production is refused and development kept"

"$SQLENVFS" refresh-dev --root "$R" --force > /dev/null
assert_eq "$(sqlite3 "$D" 'SELECT count(*), name FROM _environment')" "1|development" "development marker after --force"
assert_eq "$(sqlite3 "$P" "SELECT count(*) FROM sqlite_master WHERE name = '_environment'")" "0" "production untouched by --force"
pass "--force copies an unmarked source and marks the copy development"

# Missing development database: created.
rm -f "$D" "$D-wal" "$D-shm"
sqlite3 "$P" "CREATE TABLE _environment (id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL, marked_at TEXT NOT NULL); INSERT INTO _environment VALUES (1, 'production', '2026-01-01T00:00:00Z')"
"$SQLENVFS" refresh-dev --root "$R" > /dev/null
assert_eq "$(sqlite3 "$D" 'PRAGMA journal_mode')" "wal" "journal mode of a new development database"
assert_eq "$(sqlite3 "$D" 'SELECT name FROM _environment')" "development" "new development marker"
pass "refresh-dev creates a missing development database"

# A development database in WAL mode whose page size differs from
# production's cannot take its pages (SQLite cannot change a WAL database's
# page size): refused saying so, development kept.
rm -f "$D" "$D-wal" "$D-shm"
sqlite3 "$D" "PRAGMA page_size=1024; PRAGMA journal_mode=WAL; CREATE TABLE mine(x); INSERT INTO mine VALUES (42);" >/dev/null
expect_fail "it is in WAL mode with pages of 1024 bytes, production's are 4096.*remove $D" \
  "$SQLENVFS" refresh-dev --root "$R"
assert_eq "$(sqlite3 "$D" 'SELECT x FROM mine')" "42" "development after a refused refresh"
rm -f "$D" "$D-wal" "$D-shm"
"$SQLENVFS" refresh-dev --root "$R" > /dev/null
assert_eq "$(sqlite3 "$D" 'PRAGMA page_size')" "4096" "page size after removing development"
pass "a WAL development database of another page size is refused, saying why"

# A production database in rollback-journal mode: a consistent copy of it is
# a shared lock held for the whole copy, under which the application cannot
# commit. Refused, as backup refuses it: development kept, and the
# application's commits (busy timeout 0, as the sqlite3 shell's) go through.
sqlite3 "$P" "PRAGMA journal_mode=DELETE" > /dev/null
dev_hash=$(sqlite3 "$D" .dump | sha256sum)
sqlite3 "$P" "CREATE TABLE IF NOT EXISTS app_rows(x)"
app_start "$P" "INSERT INTO app_rows VALUES (1)" 0
expect_fail "$P is in journal mode 'delete', not WAL: .*keeps the application's commits out.*\
PRAGMA journal_mode=WAL" "$SQLENVFS" refresh-dev --root "$R"
app_stop
assert_eq "$app_failed" "0" \
  "the application's failed commits during a refused refresh ($app_ok went in)"
assert_eq "$(sqlite3 "$D" .dump | sha256sum)" "$dev_hash" "development after a refused refresh"
assert_eq "$(sqlite3 "$P" 'PRAGMA journal_mode')" "delete" "journal mode of production"
sqlite3 "$P" "PRAGMA journal_mode=WAL" > /dev/null
"$SQLENVFS" refresh-dev --root "$R" > /dev/null || fail "refresh-dev once production is in WAL mode"
pass "a production database not in WAL mode is refused, and its commits go through"

# A developer's write transaction on development: refresh-dev waits for it,
# but lets go of production once its copy aside is written, so that
# production's WAL can be checkpointed whole meanwhile (it could not while
# the refresh held its pinned state).
python3 - "$D" > "$T/holder.out" 2>&1 <<'PY' &
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
db.execute("CREATE TABLE IF NOT EXISTS mine(x)")
print("holding", flush=True)
time.sleep(6)
db.execute("ROLLBACK")
PY
holder=$!
track_pid "$holder"
for i in $(seq 1 50); do grep -q holding "$T/holder.out" && break; sleep 0.1; done
"$SQLENVFS" refresh-dev --root "$R" > "$T/refresh.out" 2>&1 &
refresher=$!
track_pid "$refresher"
sleep 2.5
kill -0 "$refresher" 2>/dev/null || fail "refresh-dev did not wait for development's lock: $(cat "$T/refresh.out")"
ck=$(python3 - "$P" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=2)
for i in range(50):
    db.execute("INSERT INTO app_rows VALUES (?)", (i,))
print(db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())
PY
)
assert_eq "$ck" "(0, 0, 0)" "production's checkpoint while refresh-dev waits on development"
wait "$refresher" || fail "refresh-dev after the developer's transaction: $(cat "$T/refresh.out")"
wait "$holder" || true
assert_eq "$(sqlite3 "$D" 'SELECT name FROM _environment')" "development" "development after the wait"
pass "refresh-dev waiting on development's lock does not keep production pinned"

# A FIFO where development's journal would be: refused naming it, instead of
# an open() that never returns.
sqlite3 "$D" "PRAGMA journal_mode=DELETE" > /dev/null
mkfifo "$D-journal"
expect_fail "$D-journal is not a regular file: .*rm $D-journal" timeout 20 "$SQLENVFS" refresh-dev --root "$R"
rm "$D-journal"
"$SQLENVFS" refresh-dev --root "$R" > /dev/null || fail "refresh-dev once the FIFO is gone"
pass "a FIFO beside development is refused, not waited on"

# A source whose _environment is a view (not a marker): refused without
# --force; with it, the copy's view is replaced by development's marker
# (it once failed with SQLite's "use DROP VIEW", naming the temporary).
sqlite3 "$P" "ALTER TABLE _environment RENAME TO _environment_saved;
  CREATE VIEW _environment AS SELECT 1 AS id, 'production' AS name, '' AS marked_at;"
expect_fail "is not marked, not production .*--force" "$SQLENVFS" refresh-dev --root "$R"
"$SQLENVFS" refresh-dev --root "$R" --force > "$T/force.out" 2>&1 ||
  fail "refresh-dev --force of a source whose marker is a view: $(cat "$T/force.out")"
assert_eq "$(sqlite3 "$D" "SELECT type || ' ' || name FROM sqlite_schema WHERE name = '_environment'")" \
  "table _environment" "development's marker after a source whose marker is a view"
assert_eq "$(sqlite3 "$D" 'SELECT name FROM _environment')" "development" "development's marker"
sqlite3 "$P" "DROP VIEW _environment; ALTER TABLE _environment_saved RENAME TO _environment;"
pass "a source whose marker is a view: refused, and with --force marked development"

# Run by a user who may not write development (another user's file): refused
# naming the owner, and nothing left beside it (SQLite made an empty -wal and
# -shm before it found the file read-only).
R2=$T/other
make_root "$R2" <(echo "CREATE TABLE t (x);")
sqlite3 "$R2/data/prod/app.db" "INSERT INTO t VALUES (1)"
"$SQLENVFS" refresh-dev --root "$R2" > /dev/null
chmod o+x "$T"
chown -R 65534:65534 "$R2"
chown 0:0 "$R2/data/dev/app.db"
rc=0
setpriv --reuid=65534 --regid=65534 --clear-groups env \
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
  "$SQLENVFS" refresh-dev --root "$R2" > "$T/other.out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "refresh-dev into another user's development succeeded"
grep -q "app.db: Permission denied (it belongs to uid 0 and this runs as uid 65534" \
  "$T/other.out" || fail "refresh-dev as another user: $(cat "$T/other.out")"
left=$(ls -A "$R2/data/dev")
assert_eq "$left" "app.db" "what is beside development after the refusal"
pass "a development database the user may not write: refused naming its owner, nothing left"
