#!/usr/bin/env bash
# migrate-pg against a real PostgreSQL server (a throwaway cluster on a
# loopback port): every mapped type, NULLs, unicode and >= 100,000 rows come
# through identical to what PostgreSQL holds (checked column by column against
# values PostgreSQL computes itself); bad DSNs, an unreachable server, missing
# tables and columns, an unmappable type, a constraint violation halfway and
# a kill halfway all fail clearly and leave production byte-for-byte as it was.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/scripts/pgcluster.sh"

# Stop the cluster, then lib.sh's cleanup with the test's exit status (set +e:
# under -e the `(exit 1)` that passes a failure on would end the trap early).
trap '_rc=$?; set +e; pgc_stop; (exit $_rc); _cleanup' EXIT

ROWS=${MIGRATE_PG_ROWS:-100000}

pgc_start || fail "could not start a PostgreSQL cluster"
pgc_psql postgres -c "CREATE DATABASE src"
pgc_psql src -v rows="$ROWS" -f "$SRCDIR/tests/integration/migrate_pg.sql"
DSN="host=127.0.0.1 port=$PGC_PORT user=postgres dbname=src"
note "PostgreSQL on 127.0.0.1:$PGC_PORT with $ROWS rows in public.everything"

# A root with a production database made by `sqlenvfs init` (WAL mode,
# marked production) from a schema with some of the tables to load.
R=$T/root
DB=$R/data/prod/app.db
mkdir -p "$R"
cat > "$R/schema.sql" <<'SQL'
CREATE TABLE orders (note TEXT DEFAULT 'migrated', placed TEXT, AMOUNT TEXT,
                     customer TEXT NOT NULL, id INTEGER PRIMARY KEY);
CREATE TABLE events (kind TEXT, at TEXT);
CREATE TABLE dupes (id INTEGER PRIMARY KEY);
CREATE TABLE extra (id INTEGER);
CREATE TABLE geo (id INTEGER, pos TEXT);
CREATE TABLE numbers (id INTEGER PRIMARY KEY, n REAL);
CREATE TABLE needy (id INTEGER, must TEXT NOT NULL);
CREATE TABLE decimals (id INTEGER PRIMARY KEY, amount DECIMAL(12,2));
CREATE TABLE wide (id INTEGER PRIMARY KEY, big REAL, label INT);
CREATE TABLE labels (id INTEGER PRIMARY KEY, big REAL, label INT);
SQL
"$SQLENVFS" init --root "$R" >/dev/null
sqlite3 "$DB" "INSERT INTO dupes VALUES (1), (2), (3)"
assert_eq "$(sqlite3 "$DB" 'PRAGMA journal_mode')" wal "journal mode of production"

mig() { "$SQLENVFS" migrate-pg --root "$R" "$@"; }
state() { sqlite3 "$DB" .dump | sha256sum | cut -d' ' -f1; }
q() { sqlite3 "$DB" "$1"; }
compare() { python3 "$SRCDIR/tests/integration/migrate_pg_compare.py" "$DSN" "$DB" "$1"; }

mig --help | grep -q -- "--create-tables" || fail "--help does not describe the options"

# --- refused before anything is written ------------------------------------
# (an SQLite index whose name a PostgreSQL table has; a materialized view
# never populated: both were found only after production's snapshot)
q "CREATE INDEX small ON dupes(id)"
pgc_psql src -c "CREATE TABLE bad.small (id int4); CREATE MATERIALIZED VIEW bad.unfilled AS
  SELECT 1 AS one WITH NO DATA;" >/dev/null
before=$(state)
expect_fail 'small in .*app\.db is an index, not a table' mig --dsn "$DSN" --tables bad.small \
  --create-tables
expect_fail 'materialized view bad\.unfilled has not been populated \(run `REFRESH' \
  mig --dsn "$DSN" --tables bad.unfilled --create-tables
expect_fail '--dsn is required' mig --dsn ''
expect_fail 'invalid --dsn: .*bogus' mig --dsn "host=127.0.0.1 bogus=1"
expect_fail 'invalid --dsn' mig --dsn "postgresql://[oops"
# A DSN is never repeated, not even the part libpq could not parse: here
# the password, whose '%' is not followed by two hex digits.
expect_fail "invalid --dsn: a '%' in the URI is not followed by two hexadecimal digits.*%25" \
  mig --dsn 'postgresql://u:s3cr%zzt@127.0.0.1/db'
! mig --dsn 'postgresql://u:s3cr%zzt@127.0.0.1/db' 2>&1 | grep -q s3cr ||
  fail "the password of a malformed DSN was echoed"
# A password with '@' or '/' not percent-encoded: libpq would take a part
# of it for the host, the port or the database, which its errors show.
for d in 'postgresql://u:p@ssw0rd@127.0.0.1/db' 'postgresql://u:pa/ssXYZ@127.0.0.1/db'; do
  expect_fail "invalid --dsn: the URI has an '@' after its user name and password.*%40" mig --dsn "$d"
  ! mig --dsn "$d" 2>&1 | grep -q "ssw0rd\|ssXYZ" || fail "a part of the password of $d was echoed"
done
dead_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
expect_fail "connect to PostgreSQL .*127.0.0.1:$dead_port.*(refused|could not connect)" \
  mig --dsn "host=127.0.0.1 port=$dead_port user=postgres dbname=src"
expect_fail 'database "nosuchdb" does not exist' mig --dsn "$DSN dbname=nosuchdb"
expect_fail 'table nosuch does not exist in PostgreSQL' mig --dsn "$DSN" --tables orders,nosuch
expect_fail 'column bad\.geo\.pos has PostgreSQL type point, which migrate-pg cannot map' \
  mig --dsn "$DSN" --tables bad.geo
# int2vector and oidvector look like arrays in the catalog but print as
# "1 2 3": refused here, not halfway through the load.
pgc_psql src -c "CREATE TABLE bad.vec (id int, v int2vector); INSERT INTO bad.vec VALUES (1, '1 2');
  CREATE TABLE bad.ovec (id int, o oidvector); INSERT INTO bad.ovec VALUES (1, '4 5');" >/dev/null
expect_fail 'column bad\.vec\.v has PostgreSQL type int2vector, which migrate-pg cannot map' \
  mig --dsn "$DSN" --tables bad.vec --create-tables
expect_fail 'column bad\.ovec\.o has PostgreSQL type oidvector, which migrate-pg cannot map' \
  mig --dsn "$DSN" --tables bad.ovec --create-tables
expect_fail 'column bad\.extra\.newcol cannot be loaded: table extra in .*app\.db has no such column' \
  mig --dsn "$DSN" --tables bad.extra
expect_fail 'table nowhere does not exist in .*app\.db .*--create-tables' \
  mig --dsn "$DSN" --tables bad.nowhere
expect_fail 'column must of table needy in .*app\.db is NOT NULL without a default, and bad\.needy has no column' \
  mig --dsn "$DSN" --tables bad.needy
expect_fail 'table dupes in .*app\.db already has rows; refusing' mig --dsn "$DSN" --tables bad.dupes
expect_fail 'production database .*nope\.db does not exist' mig --dsn "$DSN" --db nope
expect_fail '--mode must be append or replace' mig --dsn "$DSN" --mode merge
expect_fail '--batch-rows must be between' mig --dsn "$DSN" --batch-rows 0
expect_fail '--dsn is required' mig
assert_eq "$(state)" "$before" "production after refused migrations"
[ -z "$(ls "$R/backups/prod/snapshots" 2>/dev/null)" ] || fail "a refused migration took a snapshot"
pass "bad DSN, unreachable server, missing tables and columns, unmappable type: refused, production untouched"

# --- a constraint violation halfway: everything rolls back ------------------
before=$(state)
expect_fail 'insert row 15001 of bad\.dupes into table dupes of .*UNIQUE constraint failed: dupes\.id; rolled back, .*app\.db is unchanged' \
  mig --dsn "$DSN" --tables bad.dupes --mode replace --batch-rows 1000
assert_eq "$(state)" "$before" "production after a unique violation at row 15001"
assert_eq "$(q 'SELECT group_concat(id) FROM dupes')" "1,2,3" "dupes rows after the rollback"
pass "constraint violation halfway (after 15 committed-looking batches, and a replace): production exactly as before"

# --- a SQLite column whose affinity would change a value ----------------------
before=$(state)
expect_fail "column bad\.decimals\.amount, row 1: SQLite would store '10\.00' as INTEGER 10: \
column amount of table decimals in .*app\.db is declared 'DECIMAL\(12,2\)', and its NUMERIC \
affinity converts the value \(declare the column TEXT .*--numeric-as-real.*; rolled back" \
  mig --dsn "$DSN" --tables bad.decimals
expect_fail "column bad\.wide\.big, row 2: SQLite would store '9007199254740993' as REAL .* \
is declared 'REAL', and its REAL affinity converts the value \(declare the column INTEGER" \
  mig --dsn "$DSN" --tables bad.wide
expect_fail "column bad\.labels\.label, row 2: SQLite would store '007' as INTEGER 7: .*'INT'" \
  mig --dsn "$DSN" --tables bad.labels
assert_eq "$(state)" "$before" "production after values an affinity would change"
pgc_psql src -c "UPDATE bad.labels SET label = '7' WHERE id = 2"
mig --dsn "$DSN" --tables bad.labels >/dev/null
assert_eq "$(q "SELECT group_concat(quote(big) || ' ' || quote(label), ', ') FROM labels")" \
  "-5.0 42, 6.0 7" "values an affinity keeps exactly"
pass "a value a SQLite column's affinity would change is refused, one it keeps is loaded"

# --- the migration ------------------------------------------------------------
before_dump=$(sqlite3 "$DB" .dump)
out=$(mig --dsn "$DSN" --create-tables) || fail "migrate-pg failed: $out"
echo "$out"
grep -q "^public.everything -> everything: $ROWS rows in .* (table created)" <<<"$out" ||
  fail "no report line for everything"
nan_expected=$(( (ROWS / 10 + (ROWS % 10 >= 1 ? 1 : 0)) * 2 ))
grep -q "($nan_expected NaN stored as NULL)" <<<"$out" || fail "NaN count not reported ($nan_expected)"
grep -q '^public.orders -> orders: 5000 rows' <<<"$out" || fail "no report line for orders"
grep -q '^public.events -> events: 300 rows' <<<"$out" || fail "no report line for events"
grep -q "^migrated $((ROWS + 5300)) rows in 3 tables from PostgreSQL database src" <<<"$out" ||
  fail "no summary line"
compare everything
compare orders
assert_eq "$(q "SELECT count(*) FROM orders WHERE note = 'migrated'")" 5000 "default of the SQLite-only column"
assert_eq "$(q 'SELECT count(*) FROM events')" 300 "events rows"
assert_eq "$(q "SELECT type || ',' || pk || ',' || \"notnull\" FROM pragma_table_info('everything') WHERE name IN ('id', 'i4', 'by', 'f8', 'num') ORDER BY cid" | tr '\n' ' ')" \
  "INTEGER,1,1 INTEGER,0,1 TEXT,0,0 REAL,0,0 BLOB,0,0 " "declared types of the created table"
assert_eq "$(q 'SELECT count(*) FROM everything WHERE id = rowid')" "$ROWS" "id is the rowid"
assert_eq "$(q 'PRAGMA integrity_check')" ok "integrity after the migration"
pass "$ROWS rows of every type, NULLs and unicode migrated identical to PostgreSQL's"

# The snapshot taken first holds the database as it was before.
snap_name=$(echo "$out" | sed -n 's/^snapshot \([^ ]*\) taken first: .*/\1/p')
snap_db=$(echo "$out" | sed -n 's/^snapshot [^ ]* taken first: //p')
[ -n "$snap_name" ] && [ -f "$snap_db" ] || fail "no snapshot file reported: $out"
[ "$snap_db" = "$R/backups/prod/snapshots/$snap_name/app.db" ] || fail "snapshot not in the store: $snap_db"
assert_eq "$(sqlite3 "$snap_db" .dump)" "$before_dump" "snapshot content"
pass "snapshot $snap_name holds production as it was before the migration"

# --- re-running is safe --------------------------------------------------------
before=$(state)
expect_fail 'table events in .*already has rows; refusing to add to them \(pass --mode append' \
  mig --dsn "$DSN" --tables events
assert_eq "$(state)" "$before" "production after a refused re-run"
mig --dsn "$DSN" --tables events --mode append >/dev/null
assert_eq "$(q 'SELECT count(*) FROM events')" 600 "events after --mode append"
q "UPDATE orders SET customer = 'changed' WHERE id <= 10"
out=$(mig --dsn "$DSN" --tables orders --mode replace)
grep -q 'public.orders -> orders: 5000 rows .*(replaced 5000 rows)' <<<"$out" || fail "replace not reported: $out"
compare orders
pass "re-run refused without --mode; append adds, replace replaces"

# --- applications using production during a migration -----------------------
# A reader sees the table before or after the load, never in between; a
# writer's transactions wait for the load's commit and are all kept.
cat > "$T/app.py" <<'PY'
import os, sqlite3, sys, time
db, mode, stop = sys.argv[1], sys.argv[2], sys.argv[3]
con = sqlite3.connect(db, timeout=120, isolation_level=None)
seen, n = set(), 0
while not os.path.exists(stop):
    if mode == "read":
        seen.add(con.execute("SELECT count(*), sum(id) FROM everything").fetchone())
    else:
        con.execute("INSERT INTO events VALUES ('app', ?)", (str(n),))
    n += 1
    time.sleep(0.01)
print(n, sorted(seen))
PY
before_sum=$(q 'SELECT count(*) || ", " || sum(id) FROM everything')
python3 "$T/app.py" "$DB" read "$T/stop" > "$T/reader.out" & reader=$!
python3 "$T/app.py" "$DB" write "$T/stop" > "$T/writer.out" & writer=$!
track_pid "$reader"; track_pid "$writer"
sleep 0.5
events_before=$(q 'SELECT count(*) FROM events')
mig --dsn "$DSN" --tables everything --mode replace --batch-rows 2000 >/dev/null
sleep 0.5
touch "$T/stop"
wait "$reader" || fail "the reader failed: $(cat "$T/reader.out")"
wait "$writer" || fail "the writer failed: $(cat "$T/writer.out")"
note "reader: $(cat "$T/reader.out")"
assert_eq "$(cut -d' ' -f2- "$T/reader.out")" "[($before_sum)]" "what a reader saw during the migration"
n_written=$(cut -d' ' -f1 "$T/writer.out")
assert_eq "$(q "SELECT count(*) FROM events WHERE kind = 'app'")" "$n_written" "rows the application wrote"
[ "$(q 'SELECT count(*) FROM events')" -gt "$events_before" ] || fail "the writer wrote nothing meanwhile"
compare everything
pass "a reader saw only the state before or after; a concurrent writer lost nothing"

# --- numeric as REAL ------------------------------------------------------------
mig --dsn "$DSN" --tables bad.numbers --numeric-as-real >/dev/null
compare numbers-real
assert_eq "$(q "SELECT group_concat(typeof(n)) FROM (SELECT n FROM numbers ORDER BY id)")" \
  "real,null,real,null" "storage of numeric as real (NaN -> NULL)"
pass "--numeric-as-real stores REAL, NaN as NULL"

# --- inheritance: every table of a schema, each with its own rows ----------------
out=$("$SQLENVFS" migrate-pg --root "$R" --dsn "$DSN options='-c search_path=inh'" \
  --create-tables) || fail "migrate-pg of schema inh failed: $out"
assert_eq "$(q 'SELECT group_concat(id) FROM parent')" 1 "rows of a parent of INHERITS"
assert_eq "$(q 'SELECT group_concat(id || extra) FROM child')" 29 "rows of its child"
pass "a table with inheritance children keeps only its own rows, as pg_dump does"

# --- partitions of a table in another schema ---------------------------------------
# A partition whose partitioned table is in another schema was left out of
# a run without --tables, rows and all, without a word; one whose
# partitioned table (or that one's) is in the schema comes through it.
pgc_psql src -c "CREATE SCHEMA parts; CREATE SCHEMA parts_other;
  CREATE TABLE parts_other.ev (id int, at date) PARTITION BY RANGE (at);
  CREATE TABLE parts.ev_2024 PARTITION OF parts_other.ev
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
  INSERT INTO parts_other.ev VALUES (1, '2024-05-01'), (2, '2024-06-01');
  CREATE TABLE parts.top (id int) PARTITION BY RANGE (id);
  CREATE TABLE parts_other.mid PARTITION OF parts.top FOR VALUES FROM (0) TO (100)
    PARTITION BY RANGE (id);
  CREATE TABLE parts.leaf PARTITION OF parts_other.mid FOR VALUES FROM (0) TO (100);
  INSERT INTO parts.top VALUES (7);" >/dev/null
out=$("$SQLENVFS" migrate-pg --root "$R" --dsn "$DSN options='-c search_path=parts'" \
  --create-tables) || fail "migrate-pg of schema parts failed: $out"
grep -q '^parts.ev_2024 -> ev_2024: 2 rows' <<<"$out" || fail "partition ev_2024 not migrated: $out"
grep -q '^parts.top -> top: 1 rows' <<<"$out" || fail "partitioned table top not migrated: $out"
grep -q '^migrated 3 rows in 2 tables' <<<"$out" || fail "a partition read twice: $out"
assert_eq "$(q 'SELECT group_concat(id) FROM ev_2024')" "1,2" "rows of the partition ev_2024"
pass "a partition of a table in another schema is migrated; one read through its parent is not"

# --- row-level security: every row or none -------------------------------------
# A role that policies let see half the rows: the load fails naming it, and
# production is as before (it once loaded the 5 rows it could see, exit 0).
pgc_psql src -c "CREATE ROLE limited LOGIN;
  CREATE SCHEMA rls; GRANT USAGE ON SCHEMA rls TO limited;
  CREATE TABLE rls.owned (id int PRIMARY KEY, owner text);
  INSERT INTO rls.owned SELECT g, CASE WHEN g % 2 = 0 THEN 'limited' ELSE 'other' END
    FROM generate_series(1, 10) g;
  ALTER TABLE rls.owned ENABLE ROW LEVEL SECURITY;
  CREATE POLICY mine ON rls.owned USING (owner = current_user);
  GRANT SELECT ON rls.owned TO limited;" >/dev/null
before=$(state)
expect_fail 'rls\.owned.*row-level security.*BYPASSRLS' \
  mig --dsn "host=127.0.0.1 port=$PGC_PORT user=limited dbname=src" --tables rls.owned \
  --create-tables
assert_eq "$(state)" "$before" "production after a read row-level security would cut short"
mig --dsn "$DSN" --tables rls.owned --create-tables >/dev/null
assert_eq "$(q 'SELECT count(*) FROM owned')" 10 "rows of rls.owned read by its owner"
pass "row-level security: a role that would see only some rows fails; the owner copies all"

# --- values SQLite would read back otherwise, and tables it cannot create -----
# Text that spells an integer, into a REAL column, is stored as a REAL
# ('12' reads back as 12.0); a float's Infinity, into a TEXT column, as
# 'Inf', which nothing reads as a number; a NaN in a NOT NULL column
# (stored as NULL) is named as such; a table --create-tables cannot create
# is refused while planning, before any snapshot.
pgc_psql src -c "CREATE SCHEMA odd;
  CREATE TABLE odd.spelled (id int, t text); INSERT INTO odd.spelled VALUES (1, '12');
  CREATE TABLE odd.inf (id int PRIMARY KEY, f float8); INSERT INTO odd.inf VALUES (1, 'Infinity');
  CREATE TABLE odd.nn (id int PRIMARY KEY, f float8 NOT NULL);
  INSERT INTO odd.nn VALUES (1, 1.5), (2, 'NaN');
  CREATE TABLE odd.casecol (\"A\" int, \"a\" int); INSERT INTO odd.casecol VALUES (1, 2);
  CREATE TABLE odd.nocols (); INSERT INTO odd.nocols DEFAULT VALUES;" >/dev/null
q "CREATE TABLE spelled (id INTEGER, t REAL); CREATE TABLE inf (id INTEGER PRIMARY KEY, f TEXT)"
before=$(state)
snaps=$(ls "$R/backups/prod/snapshots" | wc -l)
expect_fail "column odd\.spelled\.t, row 1: SQLite would store '12' as REAL 12\.0: .*'REAL'" \
  mig --dsn "$DSN" --tables odd.spelled
expect_fail "column odd\.inf\.f, row 1: SQLite would store 'Infinity' as TEXT Inf: .*'TEXT'" \
  mig --dsn "$DSN" --tables odd.inf
expect_fail "column odd\.nn\.f, row 2 is NaN, which is stored as NULL .*NOT NULL.*rolled back" \
  mig --dsn "$DSN" --tables odd.nn --create-tables
assert_eq "$(state)" "$before" "production after values SQLite would read back otherwise"
snaps=$(ls "$R/backups/prod/snapshots" | wc -l)
expect_fail "--create-tables cannot create table casecol .*duplicate column name" \
  mig --dsn "$DSN" --tables odd.casecol --create-tables
expect_fail "--create-tables cannot create table nocols .*at least one column" \
  mig --dsn "$DSN" --tables odd.nocols --create-tables
assert_eq "$(ls "$R/backups/prod/snapshots" | wc -l)" "$snaps" "snapshots after refused plans"
assert_eq "$(state)" "$before" "production after tables --create-tables cannot create"
q "DROP TABLE spelled; DROP TABLE inf"
pass "values SQLite would read back otherwise are refused; uncreatable tables refused while planning"

# --- rows the target would make up: a NULL for its rowid ------------------------
# SQLite stores a new key for a NULL bound to an INTEGER PRIMARY KEY (the
# rowid): rows 1|a and 2|b were loaded that PostgreSQL never had, exit 0.
pgc_psql src -c "CREATE SCHEMA rules;
  CREATE TABLE rules.nullid (id int, v text);
  INSERT INTO rules.nullid VALUES (5, 'c'), (NULL, 'a'), (NULL, 'b');" >/dev/null
q "CREATE TABLE nullid (id INTEGER PRIMARY KEY, v TEXT)"
before=$(state)
expect_fail "column rules\.nullid\.id, row 2 is NULL, and column id of table nullid in .*app\.db \
is its INTEGER PRIMARY KEY \(the rowid\), where SQLite would store a new key.*; rolled back" \
  mig --dsn "$DSN" --tables rules.nullid
assert_eq "$(state)" "$before" "production after a NULL for an INTEGER PRIMARY KEY"
q "DROP TABLE nullid"
pass "a NULL for the target's INTEGER PRIMARY KEY is refused, not given a made-up key"

# --- rows the target's own rules would drop or replace -----------------------------
# A table's ON CONFLICT clauses and a trigger's RAISE(IGNORE) dropped rows
# (or production's rows) while the run counted them migrated, exit 0. ON
# CONFLICT REPLACE is refused while planning (a replaced row changes no
# count); a row dropped by ON CONFLICT IGNORE or RAISE(IGNORE) stops the
# load. The conflict clauses of the INSERTs a trigger makes still hold (an
# INSERT OR IGNORE into a tag table loads).
pgc_psql src -c "CREATE TABLE rules.dup (id int PRIMARY KEY, v text);
  INSERT INTO rules.dup VALUES (1, 'pg1'), (2, 'pg2'), (3, 'pg3');
  CREATE TABLE rules.rep (id int PRIMARY KEY, v text);
  INSERT INTO rules.rep VALUES (3, 'pg3'), (1, 'pg1');
  CREATE TABLE rules.nn (id int, v text); INSERT INTO rules.nn VALUES (1, 'x'), (2, NULL);
  CREATE TABLE rules.skipped (id int); INSERT INTO rules.skipped VALUES (1), (2), (3);
  CREATE TABLE rules.posts (id int PRIMARY KEY, tag text);
  INSERT INTO rules.posts VALUES (1, 'news'), (2, 'news'), (3, 'sport');
  CREATE TABLE rules.quoted (id int, v text); INSERT INTO rules.quoted VALUES (1, 'q');" \
  >/dev/null
q "CREATE TABLE dup (id INTEGER PRIMARY KEY ON CONFLICT IGNORE, v TEXT);
   INSERT INTO dup VALUES (1, 'prod1'), (2, 'prod2');
   CREATE TABLE rep (id INTEGER, v TEXT, PRIMARY KEY (id) ON CONFLICT REPLACE);
   INSERT INTO rep VALUES (1, 'prod1');
   CREATE TABLE nn (id INTEGER, v TEXT NOT NULL ON CONFLICT REPLACE DEFAULT 'made up');
   CREATE TABLE skipped (id INTEGER);
   CREATE TRIGGER skip BEFORE INSERT ON skipped WHEN NEW.id = 2 BEGIN SELECT RAISE(IGNORE); END;
   CREATE TABLE posts (id INTEGER PRIMARY KEY, tag TEXT);
   CREATE TABLE tags (name TEXT PRIMARY KEY, n INTEGER DEFAULT 0);
   CREATE TRIGGER posts_tag AFTER INSERT ON posts BEGIN
     INSERT OR IGNORE INTO tags(name) VALUES (NEW.tag);
     UPDATE tags SET n = n + 1 WHERE name = NEW.tag; END;
   CREATE TABLE quoted (id INTEGER, v TEXT DEFAULT 'on conflict replace')"
before=$(state)
expect_fail "insert row 1 of rules\.dup into table dup of .*: SQLite stored no row \(the table's \
ON CONFLICT IGNORE dropped it as a duplicate.*; rolled back" \
  mig --dsn "$DSN" --tables rules.dup --mode append
for m in append replace; do
  expect_fail "table rep in .* declares ON CONFLICT REPLACE: a row of rules\.rep that conflicts" \
    mig --dsn "$DSN" --tables rules.rep --mode "$m"
done
expect_fail "table nn in .* declares ON CONFLICT REPLACE" mig --dsn "$DSN" --tables rules.nn
expect_fail "insert row 2 of rules\.skipped into table skipped of .*: SQLite stored no row \
.*RAISE\(IGNORE\).*; rolled back" \
  mig --dsn "$DSN" --tables rules.skipped
assert_eq "$(state)" "$before" "production after rows the target's rules would drop"
mig --dsn "$DSN" --tables rules.posts >/dev/null || fail "a table whose trigger inserts OR IGNORE"
assert_eq "$(q "SELECT group_concat(name || n, ',') FROM (SELECT * FROM tags ORDER BY name)")" \
  "news2,sport1" "the tags a trigger made with INSERT OR IGNORE"
mig --dsn "$DSN" --tables rules.quoted >/dev/null ||
  fail "a table with 'on conflict replace' in a string was refused"
q "DROP TABLE dup; DROP TABLE rep; DROP TABLE nn; DROP TABLE skipped; DROP TABLE posts;
   DROP TABLE tags; DROP TABLE quoted"
pass "ON CONFLICT REPLACE refused, rows dropped stop the load; a trigger's own clauses hold"

# --- replace mode and DELETE triggers ----------------------------------------
# Emptying a table with DELETE runs its DELETE triggers: a cascade by hand
# emptied a table the migration did not name, exit 0. Such a target is
# refused while planning; a table whose triggers run on INSERT only is not.
pgc_psql src -c "CREATE TABLE rules.par (id int PRIMARY KEY);
  INSERT INTO rules.par VALUES (1), (2);" >/dev/null
q "CREATE TABLE par (id INTEGER PRIMARY KEY);
   CREATE TABLE kid (id INTEGER PRIMARY KEY, pid INTEGER);
   INSERT INTO par VALUES (1), (2); INSERT INTO kid VALUES (10, 1), (11, 2);
   CREATE TRIGGER par_del AFTER DELETE ON par BEGIN DELETE FROM kid WHERE pid = OLD.id; END;"
before=$(state)
expect_fail "table par in .* has triggers that run on DELETE \(its triggers: par_del\): --mode \
replace empties it" mig --dsn "$DSN" --tables rules.par --mode replace
assert_eq "$(state)" "$before" "production after a replace refused for its DELETE trigger"
q "DROP TRIGGER par_del;
   CREATE TRIGGER par_ins AFTER INSERT ON par BEGIN UPDATE kid SET pid = pid WHERE 0; END;"
mig --dsn "$DSN" --tables rules.par --mode replace >/dev/null ||
  fail "a replace of a table whose trigger runs on INSERT only was refused"
assert_eq "$(q 'SELECT count(*) FROM kid')" 2 "rows of a table the replace did not name"
q "DROP TABLE par; DROP TABLE kid"
pass "replace refuses a table whose DELETE triggers would run; INSERT triggers do not stop it"

# --- foreign keys: the load adds no row that refers to nothing --------------------
# Migrating a child table alone loaded rows whose parents SQLite does not
# have, and replacing a parent orphaned production's children, exit 0.
# Violations production already had do not block a load that adds none.
pgc_psql src -c "CREATE TABLE rules.fkp (id int PRIMARY KEY);
  CREATE TABLE rules.fkc (id int PRIMARY KEY, pid int REFERENCES rules.fkp);
  INSERT INTO rules.fkp VALUES (1), (2); INSERT INTO rules.fkc VALUES (10, 1), (11, 2);" \
  >/dev/null
q "CREATE TABLE fkp (id INTEGER PRIMARY KEY);
   CREATE TABLE fkc (id INTEGER PRIMARY KEY, pid INTEGER REFERENCES fkp(id))"
before=$(state)
expect_fail "foreign keys: after the load, 2 rows of table fkc in .*app\.db refer to rows that \
do not exist, which did not before it \(the first: rowid 10, column pid referring to table fkp\)\
.*rolled back" \
  mig --dsn "$DSN" --tables rules.fkc
assert_eq "$(state)" "$before" "production after a load of children without their parents"
mig --dsn "$DSN" --tables rules.fkc,rules.fkp >/dev/null
assert_eq "$(q 'SELECT count(*) FROM pragma_foreign_key_check')" 0 "violations after both tables"
q "INSERT INTO fkp VALUES (3); INSERT INTO fkc VALUES (12, 3)"
before=$(state)
expect_fail "after the load, 1 row of table fkc .*, which did not before it \(the first: rowid 12, \
column pid referring to table fkp\)" mig --dsn "$DSN" --tables rules.fkp --mode replace
assert_eq "$(state)" "$before" "production after a replace that would orphan its rows"
q "DELETE FROM fkc WHERE id = 12; INSERT INTO fkc VALUES (13, 99)"
mig --dsn "$DSN" --tables rules.fkp --mode replace >/dev/null ||
  fail "a violation production already had blocks a load that adds none"
assert_eq "$(q 'SELECT group_concat(id) FROM fkp')" "1,2" "parents after the replace"
# A replace that mends the violation production had (13 -> 99) and makes
# another (11 -> 2): as many violations as before, one of them new.
pgc_psql src -c "CREATE SCHEMA alt; CREATE TABLE alt.fkp (id int PRIMARY KEY);
  INSERT INTO alt.fkp VALUES (1), (99);" >/dev/null
before=$(state)
expect_fail "after the load, 1 row of table fkc .*, which did not before it \(the first: rowid 11, \
column pid referring to table fkp\)" mig --dsn "$DSN" --tables alt.fkp --mode replace
assert_eq "$(state)" "$before" "production after a replace that trades one violation for another"
q "DROP TABLE fkc; DROP TABLE fkp"
# A WITHOUT ROWID child names no row in its violations: one it already has
# (c -> 3) could hide one the load makes (b -> 2, with 3 mended). Such a
# table with a violation is refused; without one, any after the load is new.
q "CREATE TABLE wp (id INTEGER PRIMARY KEY); INSERT INTO wp VALUES (1), (2);
   CREATE TABLE wk (k TEXT PRIMARY KEY, pid INTEGER REFERENCES wp(id)) WITHOUT ROWID;
   INSERT INTO wk VALUES ('a', 1), ('b', 2), ('c', 3)"
pgc_psql src -c "CREATE TABLE alt.wp (id int PRIMARY KEY); INSERT INTO alt.wp VALUES (1), (3);" \
  >/dev/null
before=$(state)
expect_fail "table wk in .* \(WITHOUT ROWID\) already has rows that refer to rows that do not \
exist \(column pid referring to table wp\)" mig --dsn "$DSN" --tables alt.wp --mode replace
assert_eq "$(state)" "$before" "production after a replace over a WITHOUT ROWID child's violation"
q "DELETE FROM wk WHERE k = 'c'"
before=$(state)
expect_fail "after the load, 1 row of table wk .*, which did not before it" \
  mig --dsn "$DSN" --tables alt.wp --mode replace
assert_eq "$(state)" "$before" "production after a replace that would orphan a WITHOUT ROWID row"
q "DELETE FROM wk WHERE k = 'b'"
mig --dsn "$DSN" --tables alt.wp --mode replace >/dev/null ||
  fail "a replace that orphans no WITHOUT ROWID row was refused"
q "DROP TABLE wk; DROP TABLE wp"
pass "rows that would refer to nothing stop the load; violations production had do not"

# --- SQLite's own tables are never a target ---------------------------------------
# A PostgreSQL table named sqlite_sequence was loaded into SQLite's table
# of AUTOINCREMENT counters.
pgc_psql src -c "CREATE TABLE rules.sqlite_sequence (name text, seq int);
  INSERT INTO rules.sqlite_sequence VALUES ('counted', 1000);" >/dev/null
q "CREATE TABLE counted (id INTEGER PRIMARY KEY AUTOINCREMENT); INSERT INTO counted DEFAULT VALUES"
before=$(state)
expect_fail "refusing to migrate rules\.sqlite_sequence: a table whose name begins with sqlite_ \
is one of SQLite's own in .*app\.db" mig --dsn "$DSN" --tables rules.sqlite_sequence --mode append
assert_eq "$(state)" "$before" "production after a load into sqlite_sequence"
q "DROP TABLE counted"
pass "a table named sqlite_* is refused, not loaded into SQLite's own table"

# --- the server's time limits do not end the load --------------------------------
# The transaction waits, idle, while production is copied into its
# snapshot: a server that ends idle transactions after 1 ms would end it.
pgc_psql src -c "ALTER DATABASE src SET idle_in_transaction_session_timeout = '1ms'" >/dev/null
out=$(mig --dsn "$DSN" --tables rls.owned --mode replace 2>&1) ||
  fail "migrate-pg under idle_in_transaction_session_timeout: $out"
pgc_psql src -c "ALTER DATABASE src RESET idle_in_transaction_session_timeout" >/dev/null
assert_eq "$(q 'SELECT count(*) FROM owned')" 10 "rows after a load under the server's time limit"
pass "a server's idle_in_transaction_session_timeout does not end the load"

# --- a server that goes silent is given up on within minutes ----------------------
# While the load waits for the server it holds production's write lock;
# TCP keepalives ran on the system's default (a first probe after 2 hours
# of silence). Now the first probe is due within a minute, unless the DSN
# says otherwise. The load is held up on a lock so that its socket can be
# looked at while it waits.
keepalive_secs() { # DSN -> seconds to the first keepalive probe of the waiting load
  local dsn=$1 pid secs=""
  pgc_psql src -c "BEGIN; LOCK TABLE rules.locked; SELECT pg_sleep(3); COMMIT" >/dev/null &
  local locker=$!
  sleep 0.5
  "$SQLENVFS" migrate-pg --root "$R" --dsn "$dsn" --tables rules.locked --mode replace \
    --create-tables >/dev/null 2>&1 &
  pid=$!
  track_pid "$pid"
  # The socket's keepalive timer, in /proc/net/tcp (what `ss -o` shows):
  # timer kind 2 is keepalive, the time left is in clock ticks.
  for _ in $(seq 40); do
    secs=$(python3 - "$pid" <<'PY'
import os, sys
pid = sys.argv[1]
inodes = set()
for fd in os.listdir(f"/proc/{pid}/fd"):
    try:
        link = os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        continue
    if link.startswith("socket:["):
        inodes.add(link[8:-1])
for line in open("/proc/net/tcp").readlines()[1:]:
    f = line.split()
    kind, left = f[5].split(":")
    if f[9] in inodes and kind == "02":
        print(int(left, 16) // os.sysconf("SC_CLK_TCK"))
PY
    ) 2>/dev/null || true
    [ -n "$secs" ] && break
    sleep 0.05
  done
  wait "$pid" || fail "the load that waited for a lock failed"
  wait "$locker"
  echo "$secs"
}
pgc_psql src -c "CREATE TABLE rules.locked (id int); INSERT INTO rules.locked VALUES (1)" >/dev/null
secs=$(keepalive_secs "$DSN")
[ -n "$secs" ] && [ "$secs" -le 60 ] ||
  fail "the first keepalive probe of a waiting load is not due within 60 s: '$secs'"
secs=$(keepalive_secs "$DSN keepalives_idle=20")
[ -n "$secs" ] && [ "$secs" -le 20 ] ||
  fail "keepalives_idle=20 in the DSN is not kept: '$secs'"
# A service file's settings are the service's: ours do not override them.
printf '[svc]\nhost=127.0.0.1\nport=%s\nuser=postgres\ndbname=src\nkeepalives_idle=900\n' \
  "$PGC_PORT" > "$T/pg_service.conf"
secs=$(PGSERVICEFILE=$T/pg_service.conf keepalive_secs "service=svc")
[ -n "$secs" ] && [ "$secs" -gt 600 ] ||
  fail "keepalives_idle=900 of a service file is not kept: '$secs'"
pass "a waiting load probes a silent server within a minute (the DSN or its service may say otherwise)"

# --- an unmappable column cast in a view ---------------------------------------
mig --dsn "$DSN" --tables migrate.geo >/dev/null
assert_eq "$(q 'SELECT id, pos FROM geo')" "1|(1,2)" "a point cast to text in a view"
pass "a view in another schema loads into the table of its name"

# --- two tables, the second fails halfway: the first rolls back too ----------
before=$(state)
expect_fail 'UNIQUE constraint failed: dupes\.id; rolled back' \
  mig --dsn "$DSN" --tables orders,bad.dupes --mode replace --batch-rows 1000
assert_eq "$(state)" "$before" "production after a failure in the second table"
pass "a failure in the second table leaves the first one untouched too"

# --- wide rows: memory bounded by bytes, not only by rows ----------------------
# A batch was --batch-rows rows (10,000) whatever their size: 2,000 rows of
# 200 KB (400 KB of hex each as PostgreSQL sends them) were held at once,
# 812 MiB. A batch is now about 16 MiB; the peak stays far below the
# table's size and does not grow with it.
# (UNLOGGED: filled three times faster, read the same.)
pgc_psql src -c "CREATE UNLOGGED TABLE rules.widerows (id int PRIMARY KEY, b bytea);
  INSERT INTO rules.widerows
  SELECT g, convert_to(repeat(chr(65 + g % 26), 200000), 'UTF8') FROM generate_series(1, 2000) g" \
  >/dev/null
W=$T/wide
make_root "$W" <(echo "CREATE TABLE unrelated (id INTEGER);")
rss=$(python3 - "$SQLENVFS" "$W" "$DSN" <<'PY'
import os, subprocess, sys
bin_, root, dsn = sys.argv[1:]
# Under AddressSanitizer freed memory waits in a quarantine (256 MiB): without
# it the peak is what the load holds, plus the shadow of it.
env = dict(os.environ)
env["ASAN_OPTIONS"] = ":".join(x for x in (env.get("ASAN_OPTIONS", ""), "quarantine_size_mb=0",
                                           "thread_local_quarantine_size_kb=0") if x)
p = subprocess.Popen([bin_, "migrate-pg", "--root", root, "--dsn", dsn, "--tables",
                      "rules.widerows", "--create-tables"], stdout=subprocess.DEVNULL, env=env)
_, status, ru = os.wait4(p.pid, 0)
if os.waitstatus_to_exitcode(status) != 0:
    sys.exit("migrate-pg of rules.widerows failed")
print(ru.ru_maxrss)
PY
) || fail "migrate-pg of 2,000 rows of 200 KB failed"
assert_eq "$(sqlite3 "$W/data/prod/app.db" 'SELECT count(*), sum(length(b)) FROM widerows')" \
  "2000|400000000" "rows and bytes of the wide table"
note "2,000 rows of 200 KB (400 MB): peak RSS $(( rss / 1024 )) MiB"
[ "$rss" -lt $(( 150 * 1024 )) ] ||
  fail "migrating 400 MB of wide rows peaked at $(( rss / 1024 )) MiB (bound: 150 MiB)"
rm -rf "$W"
pass "wide rows are fetched in batches bounded in bytes: peak RSS $(( rss / 1024 )) MiB for 400 MB"

# --- a server that stops answering: given up on, production released --------
# The backend serving the load is stopped (SIGSTOP) in the middle of its
# FETCHes: it still answers TCP keepalives, so only --stall-seconds ends the
# wait. The load fails naming the silence, rolls back, and the application,
# whose writes waited on the load, can commit again.
S=$T/stall
make_root "$S" <(echo "CREATE TABLE unrelated (id INTEGER);")
sdb=$S/data/prod/app.db
sstate() { sqlite3 "$sdb" .dump | sha256sum | cut -d' ' -f1; }
before=$(sstate)
"$SQLENVFS" migrate-pg --root "$S" --dsn "$DSN" --tables everything --create-tables \
  --batch-rows 50 --stall-seconds 3 >/dev/null 2>"$T/stall.err" &
pid=$!
track_pid "$pid"
bpid=
for _ in $(seq 1 200); do
  bpid=$(pgc_psql src -Atc "SELECT pid FROM pg_stat_activity WHERE query LIKE 'FETCH%' AND
                            application_name LIKE '%migrate-pg%' LIMIT 1" 2>/dev/null || true)
  [ -n "$bpid" ] && break
  sleep 0.05
done
[ -n "$bpid" ] || fail "the load's FETCH was not seen: $(cat "$T/stall.err")"
kill -STOP "$bpid"
start=$(date +%s)
rc=0
for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && { kill -CONT "$bpid"; fail "the load still waits 30 s after its server stopped"; }
wait "$pid" || rc=$?
kill -CONT "$bpid"
[ "$rc" -ne 0 ] || fail "the load succeeded with its server stopped"
grep -q "fetch rows on .*: the server sent nothing for 3 s" "$T/stall.err" ||
  fail "the stalled load did not say why it stopped: $(cat "$T/stall.err")"
assert_eq "$(sstate)" "$before" "production after a load whose server stopped"
sqlite3 "$sdb" "CREATE TABLE after_stall(x); INSERT INTO after_stall VALUES (1)" ||
  fail "the application cannot commit after the stalled load"
rm -rf "$S"
pass "a server stopped in the middle of the load: given up after --stall-seconds, rolled back"

# --- another session rewrites a table to read while the load runs -----------
# Off a terminal (no row counts first), a migration reads `everything` in
# small batches; meanwhile another session reloads `reloaded` (TRUNCATE and
# the same 1000 rows, in one transaction) and widens a column of `widened`
# (ALTER TABLE ... TYPE rewrites the table). Neither is ever without its
# 1000 rows in a committed state, so both arrive with 1000 rows: the tables
# are locked before the snapshot is taken (a TRUNCATE or a rewrite after the
# snapshot would show the transaction an empty table). Then a lock another
# session holds on a table to read is waited for --stall-seconds only, before
# anything is locked in production: the run fails saying so.
pgc_psql src -c "CREATE TABLE reloaded (id int PRIMARY KEY, v text);
  INSERT INTO reloaded SELECT i, 'r' || i FROM generate_series(1, 1000) i;
  CREATE TABLE widened (id int PRIMARY KEY, v int);
  INSERT INTO widened SELECT i, i FROM generate_series(1, 1000) i;"
C=$T/concurrent
make_root "$C" <(echo "CREATE TABLE unrelated (id INTEGER);")
cdb=$C/data/prod/app.db
"$SQLENVFS" migrate-pg --root "$C" --dsn "$DSN" --tables everything,reloaded,widened \
  --create-tables --batch-rows 50 > "$T/conc.out" 2> "$T/conc.err" < /dev/null &
pid=$!
track_pid "$pid"
seen=
for _ in $(seq 1 200); do
  seen=$(pgc_psql src -Atc "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'FETCH%' AND
                            application_name LIKE '%migrate-pg%' LIMIT 1" 2>/dev/null || true)
  [ -n "$seen" ] && break
  sleep 0.05
done
[ -n "$seen" ] || fail "the load's FETCH was not seen: $(cat "$T/conc.err")"
pgc_psql src -c "BEGIN; TRUNCATE reloaded;
  INSERT INTO reloaded SELECT i, 'r' || i FROM generate_series(1, 1000) i; COMMIT;" &
p1=$!
pgc_psql src -c "ALTER TABLE widened ALTER COLUMN v TYPE bigint" &
p2=$!
wait "$pid" || fail "the load with concurrent rewrites failed: $(cat "$T/conc.err")"
wait "$p1" || fail "the reload of the other session failed"
wait "$p2" || fail "the ALTER TABLE of the other session failed"
assert_eq "$(sqlite3 "$cdb" 'SELECT count(*), sum(id) FROM reloaded')" "1000|500500" \
  "rows of a table reloaded by another session during the load"
assert_eq "$(sqlite3 "$cdb" 'SELECT count(*), sum(v) FROM widened')" "1000|500500" \
  "rows of a table rewritten by another session during the load"
pass "tables reloaded or rewritten by another session during the load arrive whole"

before=$(sqlite3 "$cdb" .dump | sha256sum)
pgc_psql src -c "BEGIN; LOCK TABLE reloaded IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(20);
  COMMIT;" > /dev/null &
p1=$!
for _ in $(seq 1 100); do
  [ -n "$(pgc_psql src -Atc "SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
          WHERE c.relname = 'reloaded' AND l.mode = 'AccessExclusiveLock' AND l.granted")" ] &&
    break
  sleep 0.05
done
start=$(date +%s)
rc=0
"$SQLENVFS" migrate-pg --root "$C" --dsn "$DSN" --tables reloaded --mode replace \
  --stall-seconds 2 > /dev/null 2> "$T/lock.err" < /dev/null || rc=$?
took=$(( $(date +%s) - start ))
pgc_psql src -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity
  WHERE query LIKE '%pg_sleep(20)%' AND pid <> pg_backend_pid()" > /dev/null
wait "$p1" || true
[ "$rc" -ne 0 ] || fail "the load of a table another session holds locked succeeded"
grep -q "another session has held a lock on one of them for 2 s" "$T/lock.err" ||
  fail "the lock wait did not say why it stopped: $(cat "$T/lock.err")"
[ "$took" -lt 15 ] || fail "the lock was waited for $took s with --stall-seconds 2"
assert_eq "$(sqlite3 "$cdb" .dump | sha256sum)" "$before" "production after a lock wait given up"
rm -rf "$C"
pass "a lock another session holds on a table to read is waited for --stall-seconds, then named"

# --- names with '.', ',' or '"' in --tables, in double quotes -----------------
# A table named "dot.ted" could not be given at all (the name was split at
# its first '.'), nor one with a ','.
pgc_psql src -c 'CREATE TABLE "dot.ted" (id int PRIMARY KEY); INSERT INTO "dot.ted" VALUES (1), (2);
  CREATE SCHEMA "odd schema"; CREATE TABLE "odd schema"."a,b" (id int, "q""uote" text);
  INSERT INTO "odd schema"."a,b" VALUES (7, $$x$$);' >/dev/null
Q=$T/quoted
make_root "$Q" <(echo "CREATE TABLE unrelated (id INTEGER);")
"$SQLENVFS" migrate-pg --root "$Q" --dsn "$DSN" --create-tables \
  --tables '"dot.ted","odd schema"."a,b"' > /dev/null 2> "$T/quoted.err" ||
  fail "quoted names in --tables: $(cat "$T/quoted.err")"
assert_eq "$(sqlite3 "$Q/data/prod/app.db" 'SELECT sum(id) FROM "dot.ted"')" 3 "rows of \"dot.ted\""
assert_eq "$(sqlite3 "$Q/data/prod/app.db" 'SELECT id, "q""uote" FROM "a,b"')" "7|x" \
  "rows of \"odd schema\".\"a,b\""
expect_fail "invalid table name 'a\.\"b' in --tables" \
  "$SQLENVFS" migrate-pg --root "$Q" --dsn "$DSN" --tables 'a."b'
rm -rf "$Q"
pass "tables whose names hold '.', ',' or '\"' are named in double quotes"

# --- production's room: the load's WAL leaves min-free-bytes free ------------
# A root on a 96 MiB tmpfs that keeps 64 MiB free: the load of everything
# (more WAL than the room left) stops before it takes that room (the free
# space, watched while it runs, stays above the minimum, less what one batch
# may write beyond the estimate), rolls back, and the application can still
# commit.
F=$T/room
tmpfs_root "$F" 96M 64M 100
fdb=$F/data/prod/app.db
fstate() { sqlite3 "$fdb" .dump | sha256sum | cut -d' ' -f1; }
before=$(fstate)
"$SQLENVFS" migrate-pg --root "$F" --dsn "$DSN" --tables everything --create-tables \
  >/dev/null 2>"$T/room.err" &
pid=$!
track_pid "$pid"
least=$(df -B1 --output=avail "$F" | tail -1)
while kill -0 "$pid" 2>/dev/null; do
  free=$(df -B1 --output=avail "$F" | tail -1)
  [ "$free" -lt "$least" ] && least=$free
  sleep 0.02
done
rc=0
wait "$pid" || rc=$?
[ "$rc" -ne 0 ] || fail "a load larger than the room left was not stopped"
grep -Eq "load table everything after [0-9]+ rows: the next rows in production's WAL .* would \
leave less than \[cache\] min-free-bytes .*: the load stops .*; rolled back, .*app\.db is unchanged" \
  "$T/room.err" || fail "the load stopped for room without saying so clearly: $(cat "$T/room.err")"
[ "$least" -ge $((60 << 20)) ] || fail "the load left $least bytes free, less than min-free-bytes"
assert_eq "$(fstate)" "$before" "production after a load stopped for its room"
sqlite3 "$fdb" "INSERT INTO b(v) VALUES (randomblob(1000))" || fail "the application cannot commit"
pass "a load that would take production's room stops and rolls back; at least $least bytes stayed free"

# --- killed halfway ------------------------------------------------------------
before=$(state)
# The binary itself in the background (not through a function, whose $!
# would be a subshell), so that kill -9 hits the process writing.
"$SQLENVFS" migrate-pg --root "$R" --dsn "$DSN" --tables everything --mode replace \
  --batch-rows 200 >/dev/null 2>&1 &
pid=$!
track_pid "$pid"

deadline=$((SECONDS + 120))
# Wait for uncommitted frames to spill into the WAL (the load is under way).
while [ "$(stat -c %s "$DB-wal" 2>/dev/null || echo 0)" -lt $((8 << 20)) ]; do
  kill -0 "$pid" 2>/dev/null || fail "the migration ended before it could be killed"
  [ $SECONDS -lt $deadline ] || fail "the migration did not start loading within 120 s"
  sleep 0.05
done
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
! pgrep -f "migrate-pg --root $R" >/dev/null || fail "the migration survived kill -9"
assert_eq "$(state)" "$before" "production after kill -9 halfway"
assert_eq "$(q 'PRAGMA integrity_check')" ok "integrity after kill -9 halfway"
pass "kill -9 halfway through a load: production exactly as before"
