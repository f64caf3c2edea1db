#!/usr/bin/env bash
# init and info through the command line, with the sqlite3 CLI and Python
# checking what they made: WAL production, one-row markers, refusals that
# change nothing, --force that loses nothing, info in text and JSON.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root

# --- bad input: one clear line, non-zero, nothing created
expect_fail "no such directory" "$SQLENVFS" info --root "$T/missing"
touch "$T/afile"
expect_fail "open root $T/afile \\(from --root\\): it is a file, not a directory" "$SQLENVFS" info --root "$T/afile"
mkdir "$T/zero"
expect_fail "read schema /dev/zero: it holds a NUL byte: it is not a schema" \
  timeout 60 "$SQLENVFS" init --root "$T/zero" --schema /dev/zero
[ ! -e "$T/zero/data" ] || fail "init --schema /dev/zero created $T/zero/data"
expect_fail "^sqlenvfs init: unknown option --bogus \(see 'sqlenvfs init --help'\)$" "$SQLENVFS" init --root "$R" --bogus
expect_fail "^sqlenvfs backup: unknown option -x \(see 'sqlenvfs backup --help'\)$" "$SQLENVFS" backup -x
mkdir "$T/envname"
expect_fail "it defines _environment, the name of the table that marks a database" \
  "$SQLENVFS" init --root "$T/envname" --schema <(echo 'CREATE TABLE t(a); CREATE TABLE _environment(x);')
[ -z "$(ls -A "$T/envname/data/prod" 2>/dev/null)" ] || fail "init made a database from a schema defining _environment"
expect_fail "^sqlenvfs prune: --dry-run takes no value" "$SQLENVFS" prune --root "$R" --dry-run=no
expect_fail "^sqlenvfs list: --json takes no value" "$SQLENVFS" list --root "$R" --json=false
expect_fail "^sqlenvfs restore: the value \"\\\\377\" of --time is not text in this locale's encoding" \
  "$SQLENVFS" restore --root "$R" --time "$(printf '\377')" --output "$T/x.db"
expect_fail "^sqlenvfs restore: missing argument for --time \(see 'sqlenvfs restore --help'\)$" "$SQLENVFS" restore --time
expect_fail "^sqlenvfs restore: unexpected argument 'extra' \(see" "$SQLENVFS" restore extra
expect_fail "^sqlenvfs: unknown command 'bogus' \(see 'sqlenvfs --help'\)$" "$SQLENVFS" bogus
expect_fail "schema.*no such file.*--schema" "$SQLENVFS" init --root "$R"
[ ! -e "$R/data/prod/app.db" ] || fail "init without a schema created a database"
expect_fail "schema $T/nope.sql: no such file" "$SQLENVFS" init --root "$R" --schema "$T/nope.sql"
printf 'CREATE TABLE ok (x);\nCREATE TABEL broken (y);\n' > "$T/bad.sql"
expect_fail "load schema $T/bad.sql: .*syntax error" "$SQLENVFS" init --root "$R" --schema "$T/bad.sql"
[ -z "$(ls -A "$R/data/prod")" ] || fail "a failed init left files: $(ls -A "$R/data/prod")"
pass "bad input is refused with one line and leaves nothing"

# --- init with a small demo data set
cp "$SRCDIR/schema.sql" "$R/schema.sql"
"$SQLENVFS" init --root "$R" --demo --demo-events 20000 > "$T/init.out"
grep -q "production .*data/prod/app.db" "$T/init.out" || fail "init output: $(cat "$T/init.out")"
P=$R/data/prod/app.db D=$R/data/dev/app.db
assert_eq "$(sqlite3 "$P" 'PRAGMA journal_mode')" "wal" "production journal mode"
assert_eq "$(sqlite3 "$P" 'SELECT count(*), name FROM _environment')" "1|production" "production marker"
assert_eq "$(sqlite3 "$D" 'SELECT count(*), name FROM _environment')" "1|development" "development marker"
assert_eq "$(sqlite3 "$P" 'SELECT count(*) FROM raw_vessel_events')" "20000" "demo events in production"
assert_eq "$(sqlite3 "$D" 'SELECT count(*) FROM raw_vessel_events')" "20000" "demo events in development"
assert_eq "$(sqlite3 "$P" 'PRAGMA integrity_check')" "ok" "production integrity"
pass "init makes a WAL production and a development copy, one marker row each"

# --- a second init is refused and changes nothing
sqlite3 "$P" "INSERT INTO vessel_characteristics (mmsi, vessel_name, vessel_type) VALUES (999999999, 'KEEP ME', 'Tug')"
before=$(sqlite3 "$P" .dump | sha256sum)
expect_fail "already exists.*--force" "$SQLENVFS" init --root "$R"
assert_eq "$(sqlite3 "$P" .dump | sha256sum)" "$before" "production after a refused init"
pass "a second init is refused without --force"

# --- a refused init still removes the temporaries of an init that died
# (an init --force cut short while it built the new pair leaves them; they
# may hold a full copy of production): doctor says `sqlenvfs init` removes
# them, and it does, even when it refuses to replace production.
sh -c 'exit 0' & dead=$!
wait "$dead"
for d in prod dev; do
  cp "$P" "$R/data/$d/.tmp-init-app-$dead"
  : > "$R/data/$d/.tmp-init-app-$dead-journal"
done
"$SQLENVFS" doctor --root "$R" > "$T/left.doctor" 2>&1 || true
tr -s ' \n' '  ' < "$T/left.doctor" | grep -q "data/prod/.tmp-init-app-$dead.*-> \`sqlenvfs init\` removes them" \
  || fail "doctor does not name the temporaries: $(cat "$T/left.doctor")"
rc=0; "$SQLENVFS" init --root "$R" > /dev/null 2> "$T/left.err" || rc=$?
[ "$rc" -ne 0 ] && tail -1 "$T/left.err" | grep -q "already exists.*--force" ||
  fail "init over production was not refused: $(cat "$T/left.err")"
grep -q "removed .*data/dev/.tmp-init-app-$dead, left by an interrupted run" "$T/left.err" ||
  fail "init does not say what it removed: $(cat "$T/left.err")"
left=$(ls -A "$R/data/prod" "$R/data/dev" | grep -F .tmp-init- || true)
[ -z "$left" ] || fail "a refused init left the temporaries of an init that died: $left"
assert_eq "$(sqlite3 "$P" .dump | sha256sum)" "$before" "production after a refused init that cleaned up"
pass "a refused init removes the temporaries of an init that died, and nothing else"

# --- an empty --root (`--root "$ROOT"` with ROOT unset) is refused, never
# taken to mean the current directory, even when that is a root
mkdir -p "$T/mnt-empty"
_mounts+=("$T/mnt-empty")
(cd "$R" && expect_fail "^sqlenvfs list: --root is empty \(nothing was done" "$SQLENVFS" list --root "")
(cd "$R" && expect_fail "^sqlenvfs init: --root is empty" "$SQLENVFS" init --root "" --force)
(cd "$R" && expect_fail "^sqlenvfs mount: ROOT is empty" "$SQLENVFS" mount "" "$T/mnt-empty")
(cd "$R" && expect_fail "^sqlenvfs mount: --root /nonexistent-a and ROOT . name two roots" "$SQLENVFS" mount --root /nonexistent-a . "$T/mnt-two")
mountpoint -q "$T/mnt-empty" && fail "mount with an empty ROOT mounted something"
# An empty MOUNTPOINT is no current directory to mount over either.
mkdir -p "$T/cwd"
_mounts+=("$T/cwd")
for args in "$R|" "--remote|s3://bucket/prefix|"; do
  IFS='|' read -r -a a <<<"$args"
  rc=0; err=$(cd "$T/cwd" && "$SQLENVFS" mount "${a[@]}" "" 2>&1 >/dev/null) || rc=$?
  assert_eq "$rc" 2 "exit status of mount ${a[*]} ''"
  grep -q "^sqlenvfs mount: MOUNTPOINT is empty (nothing was mounted" <<<"$err" ||
    fail "mount ${a[*]} '': $err"
  mountpoint -q "$T/cwd" && fail "mount ${a[*]} '' mounted over the current directory"
done
assert_eq "$(sqlite3 "$P" .dump | sha256sum)" "$before" "production after init --root ''"
pass "an empty --root, ROOT or MOUNTPOINT is refused"

# --- --force moves the old files aside, readable, nothing lost; the new
# ones are no more readable than those they replace (narrowed on purpose)
chmod 600 "$P" "$R/data/dev/app.db"
"$SQLENVFS" init --root "$R" --force > "$T/force.out"
assert_eq "$(stat -c %a "$P") $(stat -c %a "$R/data/dev/app.db")" "600 600" \
  "modes of the new production and development after init --force over 0600 ones"
old=$(ls "$R"/data/prod/app.db.replaced-* | grep -v -- '-wal$\|-shm$' | head -1)
[ -n "$old" ] || fail "no moved-aside production file: $(ls "$R/data/prod")"
grep -q "moved aside .*$old" "$T/force.out" || fail "init --force does not say where: $(cat "$T/force.out")"
assert_eq "$(sqlite3 "$old" "SELECT vessel_name FROM vessel_characteristics WHERE mmsi = 999999999")" "KEEP ME" "row in the moved-aside database"
assert_eq "$(sqlite3 "$P" 'SELECT count(*) FROM raw_vessel_events')" "0" "events in the new production"
ls "$R"/data/dev/app.db.replaced-* > /dev/null || fail "no moved-aside development file"
pass "init --force moves the old files aside and keeps them"

# --- --force refuses while an application has production or development
# open: its connection would go on writing into the moved file, and open
# the -wal by name, so that its next commit would land in the new
# database's WAL. Both are checked in one walk of /proc.
refused_while_open() { # env (prod or dev), its name in the message
  local env=$1 what=$2 holder before
  rm -f "$T/ready"
  python3 - "$R/data/$env/app.db" "$T/ready" <<'PY' &
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1])
con.execute("SELECT count(*) FROM vessel_characteristics").fetchall()
open(sys.argv[2], "w").close()
time.sleep(30)
PY
  holder=$!
  track_pid "$holder"
  for i in $(seq 1 100); do [ -e "$T/ready" ] && break; sleep 0.1; done
  [ -e "$T/ready" ] || fail "the application did not open $what"
  before=$(ls "$R/data/prod" "$R/data/dev" | tr '\n' ' ')
  expect_fail "init --force: pid $holder \(python3\) has .*data/$env/app.db(-wal|-shm)? open.*nothing was changed" \
    "$SQLENVFS" init --root "$R" --force
  assert_eq "$(ls "$R/data/prod" "$R/data/dev" | tr '\n' ' ')" "$before" "data/ after a refused init --force"
  kill "$holder"; wait "$holder" 2>/dev/null || true
  pass "init --force is refused while an application has $what open"
}
refused_while_open prod production
refused_while_open dev development

# --- a hot journal goes aside with its database. Development in rollback
# mode, a transaction cut short after its changes spilled into the file:
# the -journal is what makes the old file whole again. Left behind, SQLite
# would play it back into the new database at that name, and the file moved
# aside would stay damaged.
R2=$T/hot
make_root "$R2" "$SRCDIR/schema.sql"
leave_hot_journal "$R2/data/dev/app.db"
expect_fail "already exists.*--force" "$SQLENVFS" init --root "$R2"
# Only the journal: the databases themselves away for a moment.
mkdir -p "$T/away/prod" "$T/away/dev"
mv "$R2/data/prod"/app.db* "$T/away/prod/" && mv "$R2/data/dev/app.db" "$T/away/dev/"
expect_fail "data/dev/app.db-journal already exists.*--force" "$SQLENVFS" init --root "$R2"
[ -z "$(ls -A "$R2/data/prod")" ] || fail "a refused init left files: $(ls -A "$R2/data/prod")"
mv "$T/away/prod"/app.db* "$R2/data/prod/" && mv "$T/away/dev/app.db" "$R2/data/dev/"
"$SQLENVFS" init --root "$R2" --force > "$T/hot.out"
[ ! -e "$R2/data/dev/app.db-journal" ] || fail "init --force left the old -journal beside the new database"
grep -q "moved aside .*data/dev/app.db.replaced-.*-journal" "$T/hot.out" \
  || fail "init --force did not move the journal aside: $(cat "$T/hot.out")"
assert_eq "$(sqlite3 "$R2/data/dev/app.db" "SELECT name FROM _environment; SELECT count(*) FROM sqlite_schema WHERE name = 'hot'; PRAGMA integrity_check")" \
  "$(printf 'development\n0\nok')" "the new development database"
old=$(ls "$R2/data/dev/" | grep -E '^app\.db\.replaced-[^-]*$')
assert_eq "$(sqlite3 "$R2/data/dev/$old" "PRAGMA integrity_check; SELECT count(*), min(v) FROM hot")" \
  "$(printf 'ok\n2000|committed 0 committed 0 committed 0 committed 0 committed 0 committed 0 committed 0 committed 0 ')" \
  "the old development database, rolled back from its journal under its new name"
pass "init refuses a -journal left without its database; --force moves it aside with it, the old file whole"

# cut_init ROOT DIR OUT: init --force on ROOT, slowed after each move, killed
# with -9 once it has moved app.db of data/DIR aside (its pid in $cut).
cut_init() {
  SQLENVFS_TEST_INIT_DELAY_MS=1500 "$SQLENVFS" init --root "$1" --force > "$3" 2>&1 &
  cut=$!
  track_pid "$cut"
  for _ in $(seq 200); do ls "$1/data/$2" | grep -q '^app\.db\.replaced-' && break; sleep 0.05; done
  kill -9 "$cut"
  wait "$cut" || true
}

# --- init --force cut short between two moves: killed while it waits after
# moving development's database, before its -journal (a power cut there
# leaves the same files). The next init finishes the moves it had written
# down first, so the journal joins its database under the new name.
R3=$T/cut
make_root "$R3" "$SRCDIR/schema.sql"
leave_hot_journal "$R3/data/dev/app.db"
cut_init "$R3" dev "$T/cut1.out"
[ -s "$R3/data/dev/app.db-journal" ] && [ ! -e "$R3/data/dev/app.db" ] ||
  fail "the kill did not fall between the two moves: $(ls "$R3/data/dev")"
"$SQLENVFS" doctor --root "$R3" > "$T/cut.doctor" 2>&1 || true
tr -s ' \n' '  ' < "$T/cut.doctor" | grep -q "WARN leftovers an init --force was cut short .*-> run \
\`sqlenvfs init\` (no --force needed): it finishes that init first" \
  || fail "doctor does not say the moves were cut short: $(cat "$T/cut.doctor")"
"$SQLENVFS" init --root "$R3" > "$T/cut2.out" 2> "$T/cut2.err" || fail "init after the cut: $(cat "$T/cut2.err")"
grep -q "moved aside .*data/dev/app.db.replaced-.*-journal, which an init --force cut short" \
  "$T/cut2.err" || fail "init does not say it finished the moves: $(cat "$T/cut2.err")"
[ ! -e "$R3/.sqlenvfs/init-moves" ] || fail "the moves stayed written down"
old=$(ls "$R3/data/dev/" | grep -E '^app\.db\.replaced-[^-]*$' | head -1)
[ -s "$R3/data/dev/$old-journal" ] || fail "the journal is not with its database: $(ls "$R3/data/dev")"
assert_eq "$(sqlite3 "$R3/data/dev/$old" "PRAGMA integrity_check; SELECT count(*) FROM hot WHERE v LIKE 'committed%'")" \
  "$(printf 'ok\n2000')" "the old development database after the interrupted move was finished"
assert_eq "$(sqlite3 "$R3/data/dev/app.db" "SELECT name FROM _environment")" "development" \
  "the new development database"
# A moves file that names anything else is refused, and nothing is moved.
printf '[move 0]\nfrom=%s\nto=%s\n' "$R3/schema.sql" "$R3/schema.sql.replaced-x" \
  > "$R3/.sqlenvfs/init-moves"
expect_fail "init-moves, the moves of an init --force that was cut short, holds \[move 0\], which \
is not one \(nothing was moved" "$SQLENVFS" init --root "$R3" --force
[ -e "$R3/schema.sql" ] && [ ! -e "$R3/schema.sql.replaced-x" ] || fail "a refused moves file moved a file"
rm "$R3/.sqlenvfs/init-moves"
pass "an init --force cut between two moves is finished by the next init: the journal joins its database"

# --- init --force cut between its two last renames: the new production in
# place, the new development not yet (killed after its last move aside, the
# first rename then made by hand: the files a power cut leaves there). The
# next init puts development in place, as the moves list says, and stops:
# that init is done.
R4=$T/cut-install
make_root "$R4" "$SRCDIR/schema.sql"
sqlite3 "$R4/data/prod/app.db" "CREATE TABLE keep (x); INSERT INTO keep VALUES ('old production')"
sqlite3 "$R4/data/dev/app.db" "CREATE TABLE keep (x); INSERT INTO keep VALUES ('old development')"
cut_init "$R4" dev "$T/cut3.out"
mv "$R4/data/prod/.tmp-init-app-$cut" "$R4/data/prod/app.db"
[ ! -e "$R4/data/dev/app.db" ] && [ -s "$R4/data/dev/.tmp-init-app-$cut" ] ||
  fail "the kill did not fall after the last move: $(ls -A "$R4/data/dev")"
ino=$(stat -c %i "$R4/data/prod/app.db")
"$SQLENVFS" doctor --root "$R4" > "$T/cut4.doctor" 2>&1 || true
tr -s ' \n' '  ' < "$T/cut4.doctor" | grep -q "an init --force was cut short .*production or development \
may be missing until then -> run \`sqlenvfs init\`" \
  || fail "doctor does not say the init was cut short: $(cat "$T/cut4.doctor")"
"$SQLENVFS" init --root "$R4" > "$T/cut4.out" 2> "$T/cut4.err" || fail "init after the cut: $(cat "$T/cut4.err")"
grep -q "put in place .*data/dev/app.db, which an init cut short had made" "$T/cut4.err" ||
  fail "init does not say it finished the cut-short init: $(cat "$T/cut4.err")"
assert_eq "$(stat -c %i "$R4/data/prod/app.db")" "$ino" "production after the cut-short init was finished"
assert_eq "$(sqlite3 "$R4/data/prod/app.db" "SELECT name FROM _environment; PRAGMA integrity_check")" \
  "$(printf 'production\nok')" "the new production"
assert_eq "$(sqlite3 "$R4/data/dev/app.db" "SELECT name FROM _environment; PRAGMA integrity_check")" \
  "$(printf 'development\nok')" "the new development"
for env in prod dev; do
  old=$(ls "$R4/data/$env/" | grep -E '^app\.db\.replaced-[^-]*$')
  want=$([ $env = prod ] && echo production || echo development)
  assert_eq "$(sqlite3 "$R4/data/$env/$old" "SELECT x FROM keep")" "old $want" "the old $want"
done
left=$(ls -A "$R4/data/prod" "$R4/data/dev" "$R4/.sqlenvfs" | grep -E '^\.tmp-init-|^init-moves$' || true)
[ -z "$left" ] || fail "left after the cut-short init was finished: $left"
pass "an init --force cut between its two last renames is finished by the next init: development in place"

# The next init of another database finishes that init too, and then does
# what it was asked: here it refuses, that database exists.
R6=$T/cut-other
make_root "$R6" "$SRCDIR/schema.sql"
"$SQLENVFS" init --root "$R6" --db other > /dev/null
cut_init "$R6" dev "$T/cut6.out"
rc=0; "$SQLENVFS" init --root "$R6" --db other > /dev/null 2> "$T/cut6.err" || rc=$?
[ "$rc" -ne 0 ] && tail -1 "$T/cut6.err" | grep -q "data/prod/other.db already exists" ||
  fail "init --db other after app's init was cut short: $(cat "$T/cut6.err")"
[ -e "$R6/data/prod/app.db" ] && [ -e "$R6/data/dev/app.db" ] && [ ! -e "$R6/.sqlenvfs/init-moves" ] ||
  fail "the cut-short init of app was not finished: $(ls -A "$R6/data/prod" "$R6/data/dev")"
pass "the next init of another database finishes the cut-short one, then does what it was asked"

# --- init --force cut short after production's move, before development's:
# an application then commits to development (still in place) and dies,
# leaving a -wal the moves list does not name. The next init moves it aside
# with its database; while the application runs it refuses to move anything.
R5=$T/cut-late-wal
make_root "$R5" "$SRCDIR/schema.sql"
sqlite3 "$R5/data/dev/app.db" "CREATE TABLE keep (x); INSERT INTO keep VALUES ('before')"
cut_init "$R5" prod "$T/cut5.out"
[ -e "$R5/data/dev/app.db" ] && [ ! -e "$R5/data/dev/app.db-wal" ] && [ ! -e "$R5/data/prod/app.db" ] ||
  fail "the kill did not fall between the two moves: $(ls -A "$R5/data/prod" "$R5/data/dev")"
python3 - "$R5/data/dev/app.db" "$T/app5.ready" <<'PY' &
import os, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA synchronous=FULL")
db.execute("INSERT INTO keep VALUES ('committed after the cut')")
open(sys.argv[2], "w").close()
time.sleep(600)
PY
app=$!
track_pid "$app"
for _ in $(seq 400); do [ -e "$T/app5.ready" ] && break; sleep 0.05; done
[ -e "$T/app5.ready" ] || fail "the application did not commit"
expect_fail "init: an init --force cut short must move .*data/dev/app.db(-wal|-shm)? aside, and pid $app \(python3\) \
has it open \(nothing was moved" "$SQLENVFS" init --root "$R5"
[ -e "$R5/data/dev/app.db" ] && [ -e "$R5/.sqlenvfs/init-moves" ] || fail "a refused init moved something"
kill -9 "$app"
wait "$app" || true
[ -s "$R5/data/dev/app.db-wal" ] || fail "the application left no -wal"
"$SQLENVFS" init --root "$R5" > "$T/cut5b.out" 2> "$T/cut5b.err" || fail "init after the cut: $(cat "$T/cut5b.err")"
old=$(ls "$R5/data/dev/" | grep -E '^app\.db\.replaced-[^-]*$')
[ -s "$R5/data/dev/$old-wal" ] || fail "the -wal is not with its database: $(ls -A "$R5/data/dev")"
assert_eq "$(sqlite3 "$R5/data/dev/$old" "PRAGMA integrity_check; SELECT x FROM keep ORDER BY rowid")" \
  "$(printf 'ok\nbefore\ncommitted after the cut')" "the old development, with the commit made after the cut"
assert_eq "$(sqlite3 "$R5/data/dev/app.db" "SELECT name FROM _environment; PRAGMA integrity_check")" \
  "$(printf 'development\nok')" "the new development"
pass "an init --force cut short moves a -wal made after the cut with its database, never while it is open"

# --- info, text and JSON
"$SQLENVFS" info --root "$R" > "$T/info.txt"
grep -Eq "environment +production" "$T/info.txt" || fail "info text: $(cat "$T/info.txt")"
grep -Eq "environment +development" "$T/info.txt" || fail "info text: $(cat "$T/info.txt")"
grep -Eq "journal mode +wal" "$T/info.txt" || fail "info text: no journal mode"
grep -Eq "tables +2: raw_vessel_events, vessel_characteristics" "$T/info.txt" || fail "info text: tables"
grep -Eq "modified +[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8} [+-][0-9]{2}:[0-9]{2}" "$T/info.txt" || fail "info text: modified time needs an offset"
"$SQLENVFS" info --root "$R" --json > "$T/info.json"
python3 - "$T/info.json" "$P" <<'PY'
import json, sys, os
doc = json.load(open(sys.argv[1]))
db = doc["databases"][0]
assert db["name"] == "app", db
p, d = db["production"], db["development"]
assert p["path"] == sys.argv[2], p
assert p["environment"] == "production" and d["environment"] == "development"
assert p["journal_mode"] == "wal"
assert p["tables"] == ["raw_vessel_events", "vessel_characteristics"] and p["table_count"] == 2
assert p["size_bytes"] == os.path.getsize(sys.argv[2])
assert p["page_size"] * p["page_count"] == p["db_size_bytes"]
assert p["modified"].endswith("Z") and "T" in p["modified"], p["modified"]
assert p["error"] is None
PY
pass "info reports both environments in text and JSON"

# --- a corrupt database: info says which, non-zero
head -c 8192 /dev/urandom > "$R/data/prod/broken.db"
rc=0; "$SQLENVFS" info --root "$R" > "$T/info2.txt" 2> "$T/info2.err" || rc=$?
[ "$rc" -ne 0 ] || fail "info with a corrupt database exited 0"
[ "$(wc -l < "$T/info2.err")" -eq 1 ] || fail "expected one error line: $(cat "$T/info2.err")"
grep -q "broken.db" "$T/info2.err" || fail "the error does not name the file: $(cat "$T/info2.err")"
grep -Eq "environment +production" "$T/info2.txt" || fail "info stopped at the corrupt database"
pass "info names a corrupt database and exits non-zero"

# --- init --demo in an empty directory uses (and leaves) the built-in schema
E="$T/empty-root"
"$SQLENVFS" init --root "$E" --demo --demo-events 500 > /dev/null
cmp -s "$E/schema.sql" "$SRCDIR/schema.sql" || fail "init --demo did not leave the vessel schema in the root"
assert_eq "$(sqlite3 "$E/data/prod/app.db" 'SELECT count(*) FROM raw_vessel_events')" "500" "demo events without a schema file"
expect_fail "schema.sql: no such file" "$SQLENVFS" init --root "$T/plain-root"
pass "init --demo works in an empty directory; plain init still asks for a schema"

# A dangling link where the demo schema would go is not replaced.
mkdir "$T/dangling-root"
ln -s "$T/nowhere.sql" "$T/dangling-root/schema.sql"
expect_fail "write the demo schema: .*schema.sql is a symbolic link \(to $T/nowhere.sql\)" \
  "$SQLENVFS" init --root "$T/dangling-root" --demo --demo-events 10
[ -L "$T/dangling-root/schema.sql" ] || fail "the link was replaced"
pass "init --demo does not replace a dangling schema.sql link"
