#!/usr/bin/env bash
# Database names with spaces and non-ASCII letters are databases like any
# other: init, info, backup, verify, the archiver, restore, doctor, and the
# mount (prod/, snapshots/, pitr/, ctl/). A name that cannot be supported
# (here '[' and ']', which a MANIFEST group cannot hold) is said to be
# skipped by each of them, never silently ignored.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root M=$T/mnt
SP="sales 2026" NA="café" ODD="odd#1?x%20"
mkdir -p "$R"
printf 'CREATE TABLE seq (n INTEGER PRIMARY KEY);\n' > "$R/schema.sql"
for db in app "$SP" "$NA" "$ODD"; do
  "$SQLENVFS" init --root "$R" --db "$db" > /dev/null
  sqlite3 "$R/data/prod/$db.db" "INSERT INTO seq VALUES (1)"
done
BAD=$R/data/prod/bad[1].db
sqlite3 "$BAD" "PRAGMA journal_mode=WAL; CREATE TABLE t (x)" > /dev/null

# --- the command line
"$SQLENVFS" info --root "$R" --json > "$T/info.json" 2> "$T/err" || fail "info: $(cat "$T/err")"
python3 - "$T/info.json" "$SP" "$NA" <<'PY' || fail "info --json: $(cat "$T/info.json")"
import json, sys
doc = json.load(open(sys.argv.pop(1)))
names = [d["name"] for d in doc["databases"]] if isinstance(doc, dict) else [d["name"] for d in doc]
assert sys.argv[1] in names and sys.argv[2] in names and "app" in names, names
PY
grep -q "bad\[1\].db: the name contains '\['.*skipped" "$T/err" || fail "info does not say it skips bad[1].db: $(cat "$T/err")"

out=$("$SQLENVFS" backup --root "$R" 2> "$T/err") || fail "backup failed: $(cat "$T/err")"
grep -q "bad\[1\].db: .*skipped" "$T/err" || fail "backup does not say it skips bad[1].db: $(cat "$T/err")"
b=$(ls "$R/backups/prod/daily" | tail -1)
assert_eq "$(ls "$R/backups/prod/daily/$b" | LC_ALL=C sort | tr '\n' '|')" "MANIFEST|app.db|café.db|odd#1?x%20.db|sales 2026.db|" "backup entry"
grep -q "^  $ODD .*integrity ok" <<<"$out" || fail "backup of '$ODD' (a name that is no URI): $out"
# Columns line up in characters, whatever letters the names hold.
python3 -c 'import sys; cols = {l.index("crc32") for l in sys.stdin.read().splitlines() if "crc32" in l}; sys.exit(len(cols) != 1)' <<<"$out" ||
  fail "backup's columns do not line up: $out"
"$SQLENVFS" verify --root "$R" > "$T/verify" 2>&1 || fail "verify: $(cat "$T/verify")"
grep -q "^ok .*$SP" "$T/verify" || fail "verify does not check '$SP': $(cat "$T/verify")"
grep -q "^ok .*$NA" "$T/verify" || fail "verify does not check '$NA': $(cat "$T/verify")"
rc=0
"$SQLENVFS" doctor --root "$R" --json > "$T/doc.json" 2>/dev/null || rc=$?
python3 - "$T/doc.json" "$SP" "$NA" <<'PY' || fail "doctor: $(head -c 2000 "$T/doc.json")"
import json, sys
doc = json.load(open(sys.argv[1]))
subjects = {f["subject"] for f in doc["findings"]}
assert "prod/" + sys.argv[2] in subjects and "prod/" + sys.argv[3] in subjects, subjects
assert any(f["check"] == "databases" and "bad[1].db" in f["found"] and f["severity"] == "warning"
           for f in doc["findings"]), [f for f in doc["findings"] if f["subject"] == "root"]
PY
for c in "prune --dry-run" prune; do
  $SQLENVFS $c --root "$R" > /dev/null 2> "$T/err" || fail "$c: $(cat "$T/err")"
  grep -q "bad\[1\].db: the name contains '\['.*skipped" "$T/err" ||
    fail "$c does not say it skips bad[1].db: $(cat "$T/err")"
done
pass "info, backup, verify, doctor and prune handle '$SP' and '$NA', and say they skip bad[1].db"

# --- the mount: archiver, images, ctl, pitr
mount_root "$R" "$M"
wait_archiving "$M"
assert_eq "$(ls "$M/prod" | LC_ALL=C sort | tr '\n' '|')" "app.db|café.db|odd#1?x%20.db|sales 2026.db|" "ls prod/"
assert_eq "$(sqlite3 "file:$M/prod/$SP.db?mode=ro" 'SELECT count(*) FROM seq' 2>&1)" "1" "query prod/$SP.db"
python3 - "$M/status" "$SP" "$NA" <<'PY' || fail "status: $(cat "$M/status")"
import json, sys
s = json.load(open(sys.argv[1]))
names = [d["name"] for d in s["databases"]]
assert sys.argv[2] in names and sys.argv[3] in names, names
assert any("bad[1].db" in u for u in s["unsupported_databases"]), s["unsupported_databases"]
for d in s["databases"]:
    if d["name"] in sys.argv[2:]:
        assert d["archiver"]["state"] == "capturing", d
PY
grep -q "bad\[1\].db: .*skipped" "$R/.sqlenvfs/mount.log" || fail "the mount's log does not say it skips bad[1].db"
echo "$SP" > "$M/ctl/snapshot" || fail "echo '$SP' > ctl/snapshot failed"
grep -q "^ok .* snapshot: .* $SP (" "$M/ctl/snapshot" || fail "ctl/snapshot: $(cat "$M/ctl/snapshot")"
s=$(ls "$M/snapshots" | tail -1)
cp "$M/snapshots/$s/$SP.db" "$T/snap.db"
assert_eq "$(sqlite3 "$T/snap.db" 'SELECT count(*) FROM seq')" "1" "snapshots/$s/$SP.db"
for db in "$SP" "$NA"; do
  sqlite3 "$R/data/prod/$db.db" "INSERT INTO seq VALUES (2)"
done
for db in "$SP" "$NA"; do
  got=
  for i in $(seq 1 100); do
    got=$(sqlite3 "$M/pitr/latest/$db.db" 'SELECT count(*) FROM seq' 2>/dev/null) || got=
    [ "$got" = 2 ] && break
    sleep 0.1
  done
  assert_eq "$got" "2" "rows of pitr/latest/$db.db"
done
[ ! -e "$M/prod/bad[1].db" ] || fail "bad[1].db is served"
unmount_root "$M"
"$SQLENVFS" restore --root "$R" --db "$NA" --time latest --output "$T/restored.db" > /dev/null \
  || fail "restore --db $NA"
assert_eq "$(sqlite3 "$T/restored.db" 'SELECT count(*) FROM seq')" "2" "restored $NA"
[ ! -e "$R/backups/prod/wal_archives/bad[1]" ] || fail "bad[1].db was archived"
"$SQLENVFS" list --root "$R" 2>/dev/null | sed -n '/^recoverable windows/,$p' | grep ' \.\. ' > "$T/windows"
grep -q "^  $NA " "$T/windows" || fail "list shows no window of $NA: $(cat "$T/windows")"
python3 -c 'import sys; cols = {l.index(" .. ") for l in open(sys.argv[1])}; sys.exit(len(cols) != 1)' "$T/windows" ||
  fail "list's windows do not line up: $(cat "$T/windows")"
pass "the mount archives and serves '$SP' and '$NA' (prod/, ctl/, snapshots/, pitr/), restore reads them back"

# --- the commands the doctor and the errors give can be pasted into a shell
# as they are: each name is one word, quoted where a shell would split it
"$SQLENVFS" doctor --root "$R" --json > "$T/doc.json" 2>/dev/null || true
python3 - "$T/doc.json" "$R" "$SP" "$NA" "$ODD" <<'PY' || fail "doctor's drill advice: $(grep -o '"action": "run `sqlenvfs verify --drill[^`]*`' "$T/doc.json")"
import json, re, shlex, sys
doc = json.load(open(sys.argv[1]))
root, names = sys.argv[2], sys.argv[3:]
cmds = {}
for f in doc["findings"]:
    m = re.search(r"`(sqlenvfs verify --drill [^`]*)`", f["action"])
    if m:
        cmds[f["subject"]] = shlex.split(m.group(1))
for db in names:
    assert cmds["prod/" + db] == ["sqlenvfs", "verify", "--drill", "--root", root, "--db", db], \
        cmds.get("prod/" + db)
PY
# A development database missing: info's advice names its database.
mv "$R/data/dev/$SP.db" "$T/dev-aside.db"
"$SQLENVFS" info --root "$R" 2>/dev/null | grep -qF "create it with \`sqlenvfs refresh-dev --db '$SP'\`" ||
  fail "info on a missing development database: $("$SQLENVFS" info --root "$R" 2>&1 | grep -A1 "dev/$SP")"
mv "$T/dev-aside.db" "$R/data/dev/$SP.db"
# A database that does not exist: the error names the ones there are, each
# one shell word, and gives no advice to create the one mistyped.
err=$("$SQLENVFS" backup --root "$R" --db "no $NA" 2>&1 >/dev/null) && fail "backup of a missing database"
python3 - "$err" "$SP" "$NA" "$ODD" <<'PY' || fail "the databases a missing one's error names: $err"
import re, shlex, sys
err, names = sys.argv[1], sys.argv[2:]
m = re.search(r"this root has (.*): name one of them instead", err)
assert m and "init" not in err, err
said = [w.rstrip(",") for w in shlex.split(m.group(1)) if w != "and"]
assert sorted(said) == sorted(["app"] + names), said
PY
# An empty name (a script's unset variable) is no choice of the default:
# refused, naming the databases there are.
err=$("$SQLENVFS" backup --root "$R" --db '' 2>&1 >/dev/null) && fail "backup of an empty name"
grep -q "the database name is empty: name a database (this root has .*'$SP'" <<<"$err" ||
  fail "an empty name's error does not name the databases: $err"
E=$T/empty
mkdir -p "$E/data/prod"
err=$("$SQLENVFS" backup --root "$E" --db "$SP" 2>&1 >/dev/null) && fail "backup in a root without databases"
cmd=$(grep -o '`sqlenvfs init [^`]*`' <<<"$err" | tr -d '`')
python3 -c 'import shlex, sys; a = shlex.split(sys.argv[1]); sys.exit(a[2:] != ["--root", sys.argv[2], "--db", sys.argv[3]])' \
  "$cmd" "$E" "$SP" || fail "init advice in a root without databases: $err"
pass "the doctor's and the errors' commands name '$SP' and '$ODD' as one word each"

# --- a name ending in ".db": the database y.db (file y.db.db) beside y
Y=$T/ydb
mkdir -p "$Y"
printf 'CREATE TABLE t (v TEXT);\n' > "$Y/schema.sql"
"$SQLENVFS" init --root "$Y" --db y > /dev/null || fail "init y"
"$SQLENVFS" init --root "$Y" --db y.db > /dev/null || fail "init y.db"
[ -f "$Y/data/prod/y.db.db" ] || fail "init --db y.db did not make data/prod/y.db.db: $(ls "$Y/data/prod")"
sqlite3 "$Y/data/prod/y.db" "INSERT INTO t VALUES ('I am y')"
sqlite3 "$Y/data/prod/y.db.db" "INSERT INTO t VALUES ('I am y.db')"
assert_eq "$("$SQLENVFS" info --root "$Y" --json 2>/dev/null |
  python3 -c 'import json, sys; print(sorted(d["name"] for d in json.load(sys.stdin)["databases"]))')" \
  "['y', 'y.db']" "info of y and y.db"
# --db takes the name as list prints it; one more ".db" is the file's.
for n in y.db y.db.db; do
  "$SQLENVFS" refresh-dev --root "$Y" --db "$n" > "$T/out" 2>&1 || fail "refresh-dev --db $n: $(cat "$T/out")"
  assert_eq "$(sqlite3 "$Y/data/dev/y.db.db" 'SELECT v FROM t')" "I am y.db" "refresh-dev --db $n"
  [ -z "$(sqlite3 "$Y/data/dev/y.db" 'SELECT v FROM t')" ] || fail "refresh-dev --db $n refreshed y"
done
err=$("$SQLENVFS" backup --root "$Y" --db y.db.db.db 2>&1 >/dev/null) &&
  fail "backup --db y.db.db.db took a database"
grep -q "y.db.db.db.db does not exist; this root has y and y.db" <<<"$err" ||
  fail "backup --db y.db.db.db: $err"
# info's advice acts on that database; init --force on it never moves y.
rm "$Y/data/dev/y.db.db"
"$SQLENVFS" info --root "$Y" 2>/dev/null | grep -qF "create it with \`sqlenvfs refresh-dev --db y.db\`" ||
  fail "info's advice for y.db: $("$SQLENVFS" info --root "$Y" 2>&1)"
"$SQLENVFS" refresh-dev --root "$Y" --db y.db > /dev/null 2>&1 || fail "info's advice for y.db fails"
[ -f "$Y/data/dev/y.db.db" ] || fail "info's advice for y.db did not create data/dev/y.db.db"
"$SQLENVFS" init --root "$Y" --db y.db --force > "$T/out" 2>&1 || fail "init --db y.db --force: $(cat "$T/out")"
assert_eq "$(sqlite3 "$Y/data/prod/y.db" 'SELECT v FROM t')" "I am y" "y after init --db y.db --force"
grep -q "moved aside .*/y\.db\.db\.replaced-" "$T/out" || fail "init --db y.db --force: $(cat "$T/out")"
# With y alone, init --db y.db creates y.db (file y.db.db), and y is kept.
rm "$Y/data/prod/y.db.db"* "$Y/data/dev/y.db.db"*
"$SQLENVFS" init --root "$Y" --db y.db --force > /dev/null 2>&1 || fail "init --db y.db with y alone"
assert_eq "$(sqlite3 "$Y/data/prod/y.db" 'SELECT v FROM t')" "I am y" "y after init --db y.db, y alone"
[ -f "$Y/data/prod/y.db.db" ] || fail "init --db y.db with y alone did not create y.db.db"
# With y.db alone, --db y.db is that database.
mv "$Y/data/prod/y.db" "$T/y-aside"
"$SQLENVFS" backup --root "$Y" --db y.db > "$T/out" 2>&1 || fail "backup --db y.db, y.db alone: $(cat "$T/out")"
pass "a database named y.db is taken as --db y.db (or y.db.db), never as y"
