#!/usr/bin/env bash
# sqlenvfs recover: databases damaged in controlled ways (a zeroed interior
# b-tree page, a truncated file, garbage in the freelist) are salvaged into a
# new file that passes integrity_check and holds exactly the rows that could
# still be read — computed independently by reading the b-tree pages
# (btree.py) before the damage — and the source stays byte-for-byte the same.
source "$SRCDIR/tests/integration/lib.sh"

BTREE="$SRCDIR/tests/integration/btree.py"
cd "$T"

# A database with 1 KiB pages: t (3000 rows, ~3 per leaf page, so its b-tree
# has interior pages under the root) with an index on name, u (no index), a
# WITHOUT ROWID table, a view, a trigger, AUTOINCREMENT.
make_db() {
  python3 - "$1" <<'PY'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("PRAGMA page_size=1024")
con.executescript("""
CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, payload BLOB, note TEXT);
CREATE INDEX t_name ON t(name);
CREATE TABLE u(a TEXT, b INTEGER);
CREATE TABLE w(k TEXT PRIMARY KEY, v INTEGER) WITHOUT ROWID;
CREATE VIEW t_names AS SELECT id, name FROM t;
CREATE TABLE audit(n INTEGER);
CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN INSERT INTO audit VALUES (new.id); END;
""")
for i in range(1, 3001):
    con.execute("INSERT INTO t(id, name, payload, note) VALUES (?, ?, ?, ?)",
                (i, "name-%05d" % i, bytes([i % 251]) * 200, "line1\nline2 'quoted' %d" % i))
con.executemany("INSERT INTO u VALUES (?, ?)", [("a%d" % i, i) for i in range(200)])
con.executemany("INSERT INTO w VALUES (?, ?)", [("k%04d" % i, i) for i in range(300)])
con.commit()
con.close()
PY
}

# Rows of TABLE as "rowid|columns..." lines, sorted by rowid.
dump_rows() { # db table
  python3 - "$1" "$2" <<'PY'
import sqlite3, sys
con = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
for row in con.execute('SELECT rowid, * FROM "%s" ORDER BY rowid' % sys.argv[2]):
    print("|".join(repr(v) for v in row))
PY
}

# Keep only the rows of a dump whose rowid is listed in a file.
select_rows() { # dump-file rowids-file
  python3 - "$1" "$2" <<'PY'
import sys
keep = set(int(l) for l in open(sys.argv[2]) if l.strip())
for line in open(sys.argv[1]):
    if int(line.split("|", 1)[0]) in keep:
        sys.stdout.write(line)
PY
}

check_integrity() { # db
  assert_eq "$(sqlite3 "$1" 'PRAGMA integrity_check')" "ok" "integrity_check of $1"
}

make_db orig.db
dump_rows orig.db t >orig-t.txt
dump_rows orig.db u >orig-u.txt
sqlite3 orig.db 'SELECT * FROM w ORDER BY k' >orig-w.txt
note "orig.db: $(stat -c %s orig.db) bytes"

# ---- 1. A zeroed interior page of t ----------------------------------------
cp orig.db zeroed.db
page=$(python3 "$BTREE" interior orig.db t)
python3 "$BTREE" rowids orig.db t --skip-page "$page" >expect-zeroed.txt
n_expect=$(wc -l <expect-zeroed.txt)
[ "$n_expect" -gt 0 ] && [ "$n_expect" -lt 3000 ] || fail "page $page is a poor choice ($n_expect rows survive)"
python3 -c "
import sys
f = open('zeroed.db', 'r+b'); f.seek(($page - 1) * 1024); f.write(b'\0' * 1024)"
[ "$(sqlite3 zeroed.db 'PRAGMA integrity_check' | head -1)" != ok ] || fail "zeroing page $page did not damage the file"
before=$(sha256sum zeroed.db)

"$SQLENVFS" recover zeroed.db --output rec-zeroed.db >report-zeroed.txt
cat report-zeroed.txt
assert_eq "$(sha256sum zeroed.db)" "$before" "source after recover"
check_integrity rec-zeroed.db
# SQL cannot reach the rows below the zeroed page, but the leaves below it
# are intact: every row of t comes back, byte for byte.
dump_rows rec-zeroed.db t >got.txt
cmp -s got.txt orig-t.txt || fail "zeroed page: recovered rows of t differ from the original ($(wc -l <got.txt) vs 3000): $(diff got.txt orig-t.txt | head -3)"
dump_rows rec-zeroed.db u | cmp -s - orig-u.txt || fail "zeroed page: u was not recovered whole"
sqlite3 rec-zeroed.db 'SELECT * FROM w ORDER BY k' | cmp -s - orig-w.txt || fail "zeroed page: w was not recovered whole"
# The index still knew every row: the report counts them all, and names
# the rows taken from pages no table reaches.
lost=$((3000 - n_expect))
grep -Eq "^  t +3000 rows recovered of 3000 \(counted from the index t_name\)\$" report-zeroed.txt \
  || fail "report does not give t's rows as all recovered"
first_lost=$(comm -13 <(sort expect-zeroed.txt) <(seq 1 3000 | sort) | sort -n | head -1)
last_lost=$(comm -13 <(sort expect-zeroed.txt) <(seq 1 3000 | sort) | sort -n | tail -1)
grep -q "recovered from pages no table reaches, check them: rowids $first_lost-$last_lost\$" report-zeroed.txt \
  || fail "report does not name the rowids $first_lost-$last_lost taken from pages no table reaches"
grep -q "missing rowids" report-zeroed.txt && fail "report names missing rowids although none is missing"
grep -q "^method: salvage\|^method: shell" report-zeroed.txt || fail "report does not name the method"
grep -q "^rows that still read from damaged pages are copied as they read: their values may be damaged too" \
  report-zeroed.txt || fail "report does not say that rows read from damaged pages may be damaged"
# Schema objects came back, and the trigger did not fire on the copied rows.
assert_eq "$(sqlite3 rec-zeroed.db "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_schema WHERE type IN ('index','view','trigger') ORDER BY name)")" \
  "t_ins,t_name,t_names" "schema objects in the recovered db"
assert_eq "$(sqlite3 rec-zeroed.db 'SELECT count(*) FROM audit')" "$(sqlite3 orig.db 'SELECT count(*) FROM audit')" "audit rows (trigger must not fire)"
assert_eq "$(sqlite3 rec-zeroed.db "SELECT seq FROM sqlite_sequence WHERE name = 't'")" "3000" "AUTOINCREMENT counter"
assert_eq "$(sqlite3 rec-zeroed.db 'PRAGMA page_size')" "1024" "page size kept"
pass "zeroed interior page $page: the $n_expect readable rows of t and the $lost on the leaves below it recovered byte for byte, those named; source unchanged"

# ---- 1e. A rowid on two pages no table reaches --------------------------------
# Below the zeroed page, one leaf's bytes are copied over another's: which
# of the two holds a row's bytes cannot be told, so neither is taken, and
# the rows of the overwritten leaf are lost.
cp zeroed.db twice.db
read -r apage arows < <(python3 "$BTREE" leaf orig.db t $((first_lost + 10)))
read -r bpage brows < <(python3 "$BTREE" leaf orig.db t $((last_lost - 10)))
[ "$apage" != "$bpage" ] || fail "rowids $((first_lost + 10)) and $((last_lost - 10)) share a leaf"
python3 -c "
f = open('twice.db', 'r+b'); f.seek(($apage - 1) * 1024); a = f.read(1024)
f.seek(($bpage - 1) * 1024); f.write(a)"
"$SQLENVFS" recover twice.db --output rec-twice.db --json >report-twice.json
check_integrity rec-twice.db
printf '%s\n' $arows $brows | sort -n >gone.txt
dump_rows rec-twice.db t >got.txt
comm -23 <(cut -d'|' -f1 orig-t.txt | sort) <(sort gone.txt) | sort -n >keep.txt
select_rows orig-t.txt keep.txt | cmp -s - got.txt \
  || fail "two leaves with the same rowids: t is not every other row: $(diff <(select_rows orig-t.txt keep.txt) got.txt | head -3)"
python3 - report-twice.json "$arows" <<'PY' || fail "the rowids found twice are not named in the report"
import json, sys
r = json.load(open(sys.argv[1]))
a = [int(x) for x in sys.argv[2].split()]
want = "rows of t found on two pages no table reaches were taken from neither"
hits = [p for p in r["problems"] if p.startswith(want)]
assert hits and hits[0].endswith("rowids %d-%d" % (a[0], a[-1])), r["problems"]
PY
pass "a rowid on two pages no table reaches is taken from neither, and said so"

# ---- 1b. Bytes overwritten inside a leaf page of t ---------------------------
# The rows there may still read, with bytes that are not theirs: the report
# names the rowids recovered from under that page (and at most its two
# neighbours, which integrity_check's messages about the key between them
# cannot tell apart), and no other.
cp orig.db leaf.db
read -r lpage lrows < <(python3 "$BTREE" leaf orig.db t 1500)
first=${lrows%% *} last=${lrows##* }
read -r _ before < <(python3 "$BTREE" leaf orig.db t $((first - 1)))
read -r _ after < <(python3 "$BTREE" leaf orig.db t $((last + 1)))
python3 -c "
f = open('leaf.db', 'r+b'); f.seek(($lpage - 1) * 1024 + 600); f.write(b'\x13' * 400)"
[ "$(sqlite3 leaf.db 'PRAGMA integrity_check' | head -1)" != ok ] || fail "overwriting page $lpage did not damage the file"
"$SQLENVFS" recover leaf.db --output rec-leaf.db --json >report-leaf.json
check_integrity rec-leaf.db
dump_rows rec-leaf.db t >got.txt
python3 - report-leaf.json orig-t.txt got.txt "$lrows" "$before $after" <<'PY' || fail "rows from under the damaged page $lpage (rowids $lrows) not reported as they should be"
import json, sys
report = json.load(open(sys.argv[1]))
t = [x for x in report["tables"] if x["name"] == "t"][0]
def rowids(text):
    out = set()
    for part in (text or "").split(", "):
        if part and "whose rowid" not in part:
            a, _, b = part.partition("-")
            out.update(range(int(a), int(b or a) + 1))
    return out
named = rowids(t["suspect_rowids"])
missing = rowids(t["missing_rowids"])
orig = {int(l.split("|", 1)[0]): l for l in open(sys.argv[2])}
got = {int(l.split("|", 1)[0]): l for l in open(sys.argv[3])}
on_page = set(int(x) for x in sys.argv[4].split())
beside = set(int(x) for x in sys.argv[5].split())
wrong = {k for k, l in got.items() if orig.get(k) != l}
print("named %s; recovered with other values %s; on the page %s" % (sorted(named), sorted(wrong), sorted(on_page)))
assert wrong, "the damage changed no row's values: a poor test"
assert wrong <= named, "a row recovered with other values is not named"
assert on_page & set(got) <= named, "a row recovered from the page is not named"
assert named <= on_page | beside, "rows away from the page are named"
assert not missing & set(got), "recovered rows are named missing: %s" % t["missing_rowids"]
assert len(missing) + ("whose rowid" in (t["missing_rowids"] or "")) > 0, "no row named missing"
PY
pass "bytes overwritten in leaf page $lpage: the rows recovered from under it are named as suspect, none away from it"

# ---- 1c. Rows on overflow chains, and records older than a column ------------
# Every 97th row of t is larger than a page (its payload goes on overflow
# pages); the rows written before ALTER TABLE ADD COLUMN have one field
# fewer, and must get the column's DEFAULT. Below a zeroed interior page
# they all come back whole.
python3 - big.db <<'PY'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("PRAGMA page_size=1024")
con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, payload BLOB)")
con.execute("CREATE INDEX t_name ON t(name)")
for i in range(1, 3001):
    n = 3000 if i % 97 == 0 else 200
    con.execute("INSERT INTO t VALUES (?, ?, ?)",
                (i, "name-%05d" % i, bytes((i * k + k // 7) % 251 for k in range(n))))
con.execute("ALTER TABLE t ADD COLUMN extra TEXT DEFAULT 'the default'")
con.execute("UPDATE t SET extra = 'set ' || id WHERE id % 10 = 0")
con.commit()
PY
dump_rows big.db t >orig-big.txt
page=$(python3 "$BTREE" interior big.db t)
python3 "$BTREE" rowids big.db t --skip-page "$page" >expect-big.txt
comm -13 <(sort expect-big.txt) <(seq 1 3000 | sort) | sort -n >lost-big.txt
big_lost=$(awk '$1 % 97 == 0' lost-big.txt | wc -l)
[ "$big_lost" -gt 0 ] || fail "no row with an overflow chain below page $page"
[ "$(awk '$1 % 10 != 0' lost-big.txt | wc -l)" -gt 0 ] && [ "$(awk '$1 % 10 == 0' lost-big.txt | wc -l)" -gt 0 ] \
  || fail "below page $page, rows both older and newer than the added column are wanted"
python3 -c "
f = open('big.db', 'r+b'); f.seek(($page - 1) * 1024); f.write(b'\0' * 1024)"
"$SQLENVFS" recover big.db --output rec-big.db --json >report-big.json
check_integrity rec-big.db
dump_rows rec-big.db t >got.txt
cmp -s got.txt orig-big.txt || fail "overflow rows: t differs from the original: $(diff got.txt orig-big.txt | head -3)"
python3 - report-big.json lost-big.txt <<'PY' || fail "the rows from pages no table reaches are not named in the JSON report"
import json, sys
t = [x for x in json.load(open(sys.argv[1]))["tables"] if x["name"] == "t"][0]
lost = [int(l) for l in open(sys.argv[2])]
want = "%d-%d" % (lost[0], lost[-1])
assert t["orphan_rowids"] == want, (t["orphan_rowids"], want)
assert t["missing_rowids"] is None, t["missing_rowids"]
assert t["rows_recovered"] == 3000 and t["rows_lost"] == 0, t
PY
pass "zeroed interior page $page: $(wc -l <lost-big.txt) rows below it recovered whole, $big_lost of them from overflow chains, older records with the added column's DEFAULT"

# ---- 1d. Old rows on freed pages stay deleted ---------------------------------
# Rows deleted from t leave their leaf pages on the freelist with the old
# rows still on them (secure_delete off); an interior page above where they
# were is then zeroed. The freed pages are no table's: their rows must not
# come back, while the live rows below the zeroed page do.
cp orig.db freed.db
python3 - freed.db <<'PY'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("PRAGMA secure_delete=OFF")
con.execute("DELETE FROM t WHERE id BETWEEN 1700 AND 1790")
con.commit()
PY
dump_rows freed.db t >freed-t.txt
page=$(python3 "$BTREE" interior-for freed.db t 1745)
python3 "$BTREE" rowids freed.db t --skip-page "$page" >expect-freed.txt
comm -13 <(sort expect-freed.txt) <(cut -d'|' -f1 freed-t.txt | sort) | sort -n >lost-freed.txt
[ "$(head -1 lost-freed.txt)" -lt 1700 ] && [ "$(tail -1 lost-freed.txt)" -gt 1790 ] \
  || fail "page $page does not bound the deleted rows 1700-1790 on both sides"
python3 "$BTREE" freed-rowids freed.db | awk '$1 >= 1700 && $1 <= 1790' >stale.txt
[ -s stale.txt ] || fail "no deleted row of t is left on a freelist page: a poor test"
python3 -c "
f = open('freed.db', 'r+b'); f.seek(($page - 1) * 1024); f.write(b'\0' * 1024)"
"$SQLENVFS" recover freed.db --output rec-freed.db >report-freed.txt
check_integrity rec-freed.db
dump_rows rec-freed.db t >got.txt
back=$(sqlite3 rec-freed.db 'SELECT group_concat(id) FROM t WHERE id BETWEEN 1700 AND 1790')
[ -z "$back" ] || fail "deleted rows came back from freed pages: $back"
cmp -s got.txt freed-t.txt || fail "freed pages: t differs from the rows it held: $(diff got.txt freed-t.txt | head -3)"
pass "zeroed interior page $page: $(wc -l <lost-freed.txt) live rows below it recovered, none of the $(wc -l <stale.txt) deleted ones left on freed pages"

# ---- 1f. Bits flipped in interior pages: the salvage ends -------------------
# A damaged interior page can lead SQLite's search back to rowids already
# read, or below the one asked for: the salvage must still end, with a
# sound database of what it read, and say what it skipped.
flipped() { # seed out
  python3 - "$1" "$2" <<'PY'
import random, sqlite3, struct, sys
rnd = random.Random(int(sys.argv[1]))
out = sys.argv[2]
con = sqlite3.connect(out)
con.execute("PRAGMA page_size=1024")
con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, payload BLOB)")
for i in range(1, 2001):
    con.execute("INSERT INTO t VALUES(?,?,?)", (i, "n%05d" % i, bytes([i % 251]) * 200))
con.execute("DELETE FROM t WHERE id % 7 = 0")
con.commit()
con.close()
data = bytearray(open(out, "rb").read())
def kids(p):
    off = (p - 1) * 1024 + (100 if p == 1 else 0)
    if data[off] != 5:
        return []
    n = struct.unpack(">H", data[off + 3:off + 5])[0]
    base = (p - 1) * 1024
    cps = [struct.unpack(">H", data[off + 12 + 2 * c:off + 14 + 2 * c])[0] for c in range(n)]
    return [struct.unpack(">I", data[base + cp:base + cp + 4])[0] for cp in cps] + \
        [struct.unpack(">I", data[off + 8:off + 12])[0]]
inner = [k for k in kids(2) if kids(k)]
for p in rnd.sample(inner, min(2, len(inner))):
    for _ in range(30):
        data[(p - 1) * 1024 + rnd.randrange(1024)] ^= 1 << rnd.randrange(8)
open(out, "wb").write(data)
PY
}
for seed in 3 7 13; do
  flipped "$seed" "flip$seed.db"
  rc=0
  timeout 120 "$SQLENVFS" recover "flip$seed.db" --output "rec-flip$seed.db" >"report-flip$seed.txt" 2>&1 || rc=$?
  [ "$rc" -ne 124 ] || fail "recover of interior pages with flipped bits (seed $seed) did not end in 120 s"
  [ "$rc" -eq 0 ] || fail "recover (seed $seed) failed: $(tail -3 "report-flip$seed.txt")"
  check_integrity "rec-flip$seed.db"
  n=$(sqlite3 "rec-flip$seed.db" 'SELECT count(*) FROM t')
  [ "$n" -gt 0 ] && [ "$n" -le 2000 ] || fail "seed $seed: $n rows of t recovered"
done
pass "bits flipped in interior pages (3 seeds): the salvage ends with a sound database"

# ---- 2. A truncated file -----------------------------------------------------
n_pages=$(( $(stat -c %s orig.db) / 1024 ))
keep_pages=$(( n_pages * 2 / 3 ))
head -c $(( keep_pages * 1024 )) orig.db >trunc.db
python3 "$BTREE" rowids orig.db t --max-page "$keep_pages" >expect-trunc.txt
python3 "$BTREE" rowids orig.db u --max-page "$keep_pages" >expect-trunc-u.txt
before=$(sha256sum trunc.db)
"$SQLENVFS" recover trunc.db --output rec-trunc.db >report-trunc.txt
cat report-trunc.txt
assert_eq "$(sha256sum trunc.db)" "$before" "truncated source after recover"
check_integrity rec-trunc.db
dump_rows rec-trunc.db t >got.txt
select_rows orig-t.txt expect-trunc.txt >want.txt
cmp -s got.txt want.txt || fail "truncated: recovered rows of t differ from the rows on the pages kept ($(wc -l <got.txt) vs $(wc -l <want.txt))"
dump_rows rec-trunc.db u >got.txt
select_rows orig-u.txt expect-trunc-u.txt >want.txt
cmp -s got.txt want.txt || fail "truncated: recovered rows of u differ"
pass "truncated to $keep_pages of $n_pages pages: exactly the $(wc -l <expect-trunc.txt) rows of t on the remaining pages recovered"

# ---- 3. Garbage in the freelist ---------------------------------------------
cp orig.db free.db
sqlite3 free.db 'DELETE FROM t WHERE id % 3 = 0 OR id > 2500; DELETE FROM u WHERE b > 100'
dump_rows free.db t >free-t.txt
dump_rows free.db u >free-u.txt
mapfile -t fl < <(python3 "$BTREE" freelist free.db)
[ "${#fl[@]}" -gt 2 ] || fail "no freelist to damage"
python3 - free.db "${fl[@]}" <<'PY'
import os, random, sys
random.seed(7)
path, entries = sys.argv[1], sys.argv[2:]
pages = [int(e.split()[1]) for e in entries]
with open(path, "r+b") as f:
    for p in pages[:40]:
        f.seek((p - 1) * 1024)
        f.write(bytes(random.getrandbits(8) for _ in range(1024)))
PY
sqlite3 free.db 'PRAGMA integrity_check' | grep -qv '^ok$' || fail "garbage in the freelist was not noticed by integrity_check"
before=$(sha256sum free.db)
"$SQLENVFS" recover free.db --output rec-free.db >report-free.txt
cat report-free.txt
assert_eq "$(sha256sum free.db)" "$before" "freelist source after recover"
check_integrity rec-free.db
dump_rows rec-free.db t | cmp -s - free-t.txt || fail "freelist garbage: t not recovered whole"
dump_rows rec-free.db u | cmp -s - free-u.txt || fail "freelist garbage: u not recovered whole"
pass "garbage in ${#fl[@]} freelist pages: every row recovered"

# ---- 4. An intact database in WAL mode with commits still in the -wal -------
python3 - wal.db <<'PY' &
import sqlite3, sys, time, os
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("PRAGMA journal_mode=WAL")
con.execute("PRAGMA wal_autocheckpoint=0")
con.execute("CREATE TABLE x(id INTEGER PRIMARY KEY, v TEXT)")
for i in range(500):
    con.execute("INSERT INTO x(v) VALUES (?)", ("v%d" % i,))
open(sys.argv[1] + ".ready", "w").close()
time.sleep(60)
PY
track_pid $!
for _ in $(seq 100); do [ -e wal.db.ready ] && break; sleep 0.1; done
[ -e wal.db.ready ] || fail "writer did not start"
cp wal.db crash.db
cp wal.db-wal crash.db-wal
[ "$(stat -c %s crash.db-wal)" -gt 100000 ] || fail "expected commits in the WAL"
before=$(sha256sum crash.db crash.db-wal)
"$SQLENVFS" recover crash.db --output rec-crash.db >report-crash.txt
assert_eq "$(sha256sum crash.db crash.db-wal)" "$before" "WAL source after recover"
[ ! -e crash.db-shm ] || fail "recover created crash.db-shm next to the source"
assert_eq "$(sqlite3 rec-crash.db 'SELECT count(*), max(id) FROM x')" "500|500" "rows committed in the WAL"
grep -q "passed integrity_check: nothing looked damaged" report-crash.txt || fail "intact source reported as damaged"
grep -q "their values may be damaged too" report-crash.txt && fail "intact source: rows said to be possibly damaged"
pass "commits still in the -wal are recovered; source and its -wal unchanged, no -shm made"

# The same -wal with bytes overwritten in frame 300: the commits before that
# frame are recovered, and the report says the later ones are not.
cp wal.db bad-wal.db
cp crash.db-wal bad-wal.db-wal
pgsz=$(sqlite3 crash.db 'PRAGMA page_size')
dd if=/dev/zero of=bad-wal.db-wal bs=1 seek=$(( 32 + 299 * (24 + pgsz) + 100 )) count=8 \
  conv=notrunc status=none
"$SQLENVFS" recover bad-wal.db --output rec-bad-wal.db > report-bad-wal.txt
n=$(sqlite3 rec-bad-wal.db 'SELECT count(*) FROM x')
[ "$n" -lt 500 ] || fail "a damaged -wal: all $n rows recovered (the damage was not where meant)"
grep -Eq "^damage found in the source's -wal: its -wal holds [0-9]+ frames from frame 300 on that fail their checksums, and frame [0-9]+ ends a committed transaction" \
  report-bad-wal.txt || fail "a damaged -wal is not reported: $(cat report-bad-wal.txt)"
grep -q "nothing looked damaged" report-bad-wal.txt && fail "a damaged -wal: nothing said damaged"
"$SQLENVFS" recover bad-wal.db --output rec-bad-wal.json.db --json |
  python3 -c 'import json, sys; d = json.load(sys.stdin); assert "frame 300" in d["wal_damage"], d' ||
  fail "recover --json: no wal_damage for a damaged -wal"
"$SQLENVFS" recover crash.db --output rec-crash.json.db --json |
  python3 -c 'import json, sys; d = json.load(sys.stdin); assert d["wal_damage"] is None, d' ||
  fail "recover --json: wal_damage for an intact -wal"
pass "a -wal whose checksums break before a commit: what is lost is said"

# ---- 5. The shell method's plumbing -------------------------------------------
# Debian 12's sqlite3 shell cannot run .recover (its library lacks
# sqlite_dbpage); where it can, the real one is tested. Everywhere, a shell
# that answers .recover with the real shell's .dump drives the same path:
# spawn, stream, split statements (multi-line strings), execute, commit.
if sqlite3 :memory: 'SELECT 1 FROM sqlite_dbpage' >/dev/null 2>&1; then
  "$SQLENVFS" recover zeroed.db --output rec-shell.db --method shell >report-shell.txt
  check_integrity rec-shell.db
  grep -q "^method: shell" report-shell.txt || fail "method shell not used"
  pass "the sqlite3 shell's .recover works here and was used"
else
  expect_fail "sqlite_dbpage" "$SQLENVFS" recover zeroed.db --output rec-shell.db --method shell
  [ ! -e rec-shell.db ] || fail "failed recover left an output"
  pass "--method shell fails clearly where .recover cannot work"
fi
cat >dumpshell.sh <<'SH'
#!/bin/sh
# args: -batch -init /dev/null DB .recover
exec sqlite3 -batch -init /dev/null "$4" .dump
SH
chmod +x dumpshell.sh
"$SQLENVFS" recover orig.db --output rec-dump.db --method shell --sqlite3 "$T/dumpshell.sh" >report-dump.txt
grep -q "^method: shell" report-dump.txt || fail "shell method not reported"
check_integrity rec-dump.db
dump_rows rec-dump.db t | cmp -s - orig-t.txt || fail "shell plumbing: t differs"
grep -Eq "^  t +3000 rows recovered of 3000" report-dump.txt || fail "shell plumbing: counts not reported"
pass "shell method: SQL streamed from a child process rebuilds every row, multi-line strings included"

"$SQLENVFS" recover zeroed.db --output rec-nosh.db --sqlite3 no-such-sqlite3 >report-nosh.txt
grep -q "^method: salvage: .*no-such-sqlite3) is not installed$" report-nosh.txt || fail "missing shell not explained"
expect_fail "did not finish \(its output stopped early\) \(use --method salvage\)$" \
  "$SQLENVFS" recover zeroed.db --output rec-false.db --method shell --sqlite3 /bin/false
cmp -s <(dump_rows rec-nosh.db t) <(dump_rows rec-zeroed.db t) || fail "fallback salvage differs"
pass "without a shell, the salvage is used and the report says why"

# ---- 6. A database named by its name in a root ---------------------------------
cp "$SRCDIR/schema.sql" schema.sql
"$SQLENVFS" init --root "$T/root" --schema schema.sql --demo --demo-events 500 >/dev/null
"$SQLENVFS" recover app --root "$T/root" --output by-name.db --json >report-name.json
python3 - report-name.json "$T/root/data/prod/app.db" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["source"] == sys.argv[2], r["source"]
t = {x["name"]: x for x in r["tables"]}
assert t["raw_vessel_events"]["rows_recovered"] == 500, t
assert t["raw_vessel_events"]["rows_expected"] == 500, t
assert r["damage"] == [], r["damage"]
PY
assert_eq "$(sqlite3 by-name.db 'SELECT count(*) FROM raw_vessel_events')" "500" "rows recovered by name"
expect_fail "^sqlenvfs recover: nope: no such file here, and no production database of that name in [^ ]*root \(it has app; give the path" "$SQLENVFS" recover nope --root "$T/root" --output n.db
pass "a production database named in a root; --json report"

# ---- 6b. Never into a database in use, even with --force ------------------------
# Production in WAL mode with commits still in its -wal, as an application
# leaves it: recovering a copy "in place" must not delete that -wal nor
# replace the file under the application, nor put production's marker into
# development.
P=$T/root/data/prod/app.db D=$T/root/data/dev/app.db
python3 - "$P" <<'PY'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("PRAGMA wal_autocheckpoint=0")
con.execute("INSERT INTO vessel_characteristics (mmsi, vessel_name, vessel_type) VALUES (123456789, 'in the wal', 'Tug')")
con.commit()
import os; os._exit(0)   # leave the -wal as a running application would
PY
[ -s "$P-wal" ] || fail "no -wal with commits beside production"
prod_sum=$(cat "$P" "$P-wal" | md5sum) dev_sum=$(md5sum < "$D")
expect_fail "that is the production database .*/data/prod/app.db of the root.*even with --force" \
  "$SQLENVFS" recover by-name.db --root "$T/root" --output "$P" --force
expect_fail "that is the development database .*/data/dev/app.db of the root.*even with --force" \
  "$SQLENVFS" recover app --root "$T/root" --output "$D" --force
# With no root given, a database of whichever root holds it is refused.
expect_fail "that is in .*/data/prod, where a root keeps the databases applications open" \
  "$SQLENVFS" recover by-name.db --output "$P" --force
# Nor any file with a -wal beside it, in a root or not.
cp "$P" "$T/elsewhere-app.db" && : > "$T/elsewhere-app.db-wal"
expect_fail "elsewhere-app.db-wal exists beside it, so it is a database in use.*--force never removes" \
  "$SQLENVFS" recover by-name.db --output "$T/elsewhere-app.db" --force
rm -f "$T/elsewhere-app.db" "$T/elsewhere-app.db-wal"
assert_eq "$(cat "$P" "$P-wal" | md5sum)" "$prod_sum" "production and its -wal after refused recovers"
assert_eq "$(md5sum < "$D")" "$dev_sum" "development after a refused recover"
assert_eq "$(sqlite3 "$D" 'SELECT name FROM _environment')" "development" "development's marker"
pass "recover --force never replaces a database of the root or one with a -wal beside it"

# ---- 7. Bad input --------------------------------------------------------------
echo precious >exists.db
expect_fail "already exists.*--force" "$SQLENVFS" recover zeroed.db --output exists.db
assert_eq "$(cat exists.db)" "precious" "existing output untouched"
"$SQLENVFS" recover zeroed.db --output exists.db --force >/dev/null
check_integrity exists.db
# --force replaces a plain file, not a symlink (nor what it points to).
echo target >target.db
ln -s target.db sym.db
expect_fail "sym.db: it is a symbolic link \(to target.db\), not a plain file" \
  "$SQLENVFS" recover zeroed.db --output sym.db --force
[ -L sym.db ] || fail "the symlink was replaced"
assert_eq "$(cat target.db)" "target" "the symlink's target after a refused recover"
# One "sqlenvfs recover:" in front of each message, never "recover: recover:".
expect_fail "^sqlenvfs recover: the output .*zeroed.db is the source's own file" \
  "$SQLENVFS" recover zeroed.db --output zeroed.db --force
mkdir -p adir
expect_fail "^sqlenvfs recover: [^ ]*/adir is not a regular file" \
  "$SQLENVFS" recover adir --output adir.db
expect_fail "^sqlenvfs recover: recover to [^ ]*/exists.db: the file already exists" \
  "$SQLENVFS" recover zeroed.db --output exists.db
expect_fail "no-such.db.*No such file" "$SQLENVFS" recover no-such.db --output x.db
[ ! -e x.db ] || fail "output created for a missing source"
expect_fail "--output PATH is required" "$SQLENVFS" recover zeroed.db
expect_fail "not one of auto, shell, salvage" "$SQLENVFS" recover zeroed.db --output y.db --method magic
head -c 4096 /dev/urandom >noise.db
expect_fail "noise.db" "$SQLENVFS" recover noise.db --output z.db
[ ! -e z.db ] || fail "output created from noise"
[ -z "$(ls -A . | grep '^\.tmp-recover' || true)" ] || fail "work directories left behind"
pass "bad input: one clear line, nothing overwritten, nothing left behind"

# A run that was killed leaves its work directory (a full copy of the source)
# named after its pid: the next run beside it removes it once that process
# is gone, and leaves alone the one of a run still going.
sh -c 'exit 0' & dead=$!
wait "$dead"
sleep 30 & alive=$!
mkdir -m 700 ".tmp-recover-$dead" ".tmp-recover-$alive"
cp zeroed.db ".tmp-recover-$dead/source.db"
cp zeroed.db ".tmp-recover-$alive/source.db"
"$SQLENVFS" recover zeroed.db --output killed.db > /dev/null 2> "$T/killed.err"
check_integrity killed.db
[ ! -e ".tmp-recover-$dead" ] || fail "the work directory of a killed run was left: $(ls -A)"
grep -q "removed .*\.tmp-recover-$dead" "$T/killed.err" || fail "the removal is not reported: $(cat "$T/killed.err")"
[ -e ".tmp-recover-$alive/source.db" ] || fail "the work directory of a running process was removed"
kill "$alive"
wait "$alive" 2>/dev/null || true
rm -rf ".tmp-recover-$alive"
pass "a killed run's work directory is removed by the next run, a running one's is kept"

# A source written while it is copied. The writer checkpoints (every page
# into the database file), restarts the WAL and commits again between the
# copy of the database file and that of its -wal (the test hook holds the
# copy there): the old file with the new WAL is a database SQLite opens
# without complaint, which lacks the checkpointed commits. So the copy is
# taken again until the source's files held still through a whole copy, and
# a source that never does is refused, with nothing written.
python3 - live.db <<'PY'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("PRAGMA journal_mode=WAL")
con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
con.executemany("INSERT INTO t(v) VALUES (?)", [("first %06d" % i * 4,) for i in range(2000)])
con.commit()
con.close()
PY
cat > writer.py <<'PY'
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
mode, n = sys.argv[2], int(sys.argv[3])
def commit(k):
    for _ in range(k):
        con.execute("INSERT INTO t(v) VALUES (?)", ("later " * 20,))
if mode == "restart":
    # No fsync per commit: the restart must fit in recover's pause on a
    # loaded machine.
    con.execute("PRAGMA synchronous=OFF")
    commit(n)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    commit(50)
    open(sys.argv[4], "w").close()
    time.sleep(8)  # the connection keeps the new WAL in place
else:
    end = time.time() + n
    while time.time() < end:
        commit(1)
        if len(sys.argv) > 4:
            open(sys.argv.pop(4), "w").close()
        time.sleep(0.002)
PY
SQLENVFS_TEST_RECOVER_DELAY_MS=3000 "$SQLENVFS" recover live.db --output live-rec.db \
  > live.out 2> live.err & rec=$!
sleep 0.5
python3 writer.py live.db restart 500 written & wr=$!
track_pid "$wr"
wait "$rec" || fail "recover of a source written during the copy failed: $(cat live.err)"
[ -e written ] || fail "the writer did not finish before the copy of the -wal"
check_integrity live-rec.db
assert_eq "$(sqlite3 live-rec.db 'SELECT count(*), min(id), max(id) FROM t')" "2550|1|2550" \
  "rows recovered from a source checkpointed and restarted during the copy"
kill "$wr" 2>/dev/null || true
wait "$wr" 2>/dev/null || true
pass "a source checkpointed and restarted during the copy: copied again, every commit kept"

python3 writer.py live.db steady 15 writing & wr=$!
track_pid "$wr"
for _ in $(seq 100); do [ -e writing ] && break; sleep 0.1; done
[ -e writing ] || fail "the writer did not start"
expect_fail "live.db \(or its -wal or -journal\) changed while it was copied, 5 times" \
  env SQLENVFS_TEST_RECOVER_DELAY_MS=300 "$SQLENVFS" recover live.db --output live-busy.db
[ ! -e live-busy.db ] || fail "an output was written from a source that never held still"
[ -z "$(ls -A . | grep '^\.tmp-recover' || true)" ] || fail "work directories left behind"
kill "$wr" 2>/dev/null || true
wait "$wr" 2>/dev/null || true
pass "a source written without pause is refused, nothing written"

# Virtual tables: an FTS5 and an R*Tree table keep their rowids (an FTS
# table's are the keys of the rows it indexes); their shadow tables are
# rebuilt by them, but an ordinary table whose name only begins like one
# (docs_meta beside docs) is copied as any other.
python3 - vt.db <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.executescript("""
CREATE VIRTUAL TABLE docs USING fts5(body);
CREATE TABLE docs_meta(id INTEGER PRIMARY KEY, note TEXT);
CREATE VIRTUAL TABLE rt USING rtree(id, a, b);
CREATE TABLE rt_extra(k);
""")
c.executemany("INSERT INTO docs(rowid, body) VALUES (?, ?)", [(i * 10, "word %d" % i) for i in range(1, 6)])
c.executemany("INSERT INTO docs_meta VALUES (?, ?)", [(i, "meta %d" % i) for i in range(1, 101)])
c.executemany("INSERT INTO rt VALUES (?, ?, ?)", [(i * 3, i, i + 1) for i in range(1, 6)])
c.execute("INSERT INTO rt_extra VALUES (1)")
c.commit()
PY
"$SQLENVFS" recover vt.db --output vt-rec.db > vt.out || fail "recover of virtual tables: $(cat vt.out)"
for q in "SELECT rowid, body FROM docs ORDER BY rowid" "SELECT rowid FROM docs WHERE docs MATCH 'word'" \
         "SELECT * FROM docs_meta" "SELECT rowid, * FROM rt" "SELECT * FROM rt_extra"; do
  assert_eq "$(sqlite3 vt-rec.db "$q" | sha256sum)" "$(sqlite3 vt.db "$q" | sha256sum)" "recovered: $q"
done
grep -q "docs_meta .*100 rows recovered of 100" vt.out || fail "the report does not list docs_meta: $(cat vt.out)"
pass "virtual tables keep their rowids; a table named like a shadow table is copied"

# Damaged header fields, mended in the private copy where one reading fits:
# a page size that does not fit the file (4096 read as 8192 made each
# table's rows another's, all counted as complete), and a database size
# smaller than the file (the pages past it went unread). Each is named in
# the report; every row comes back, each in its own table; the source is
# left as it was.
python3 - hdr.db <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("PRAGMA page_size=4096")
for t in "abcd":
    c.execute("CREATE TABLE %s(id INTEGER PRIMARY KEY, v TEXT)" % t)
    c.executemany("INSERT INTO %s VALUES (?, ?)" % t, [(i, "%s-%d" % (t, i)) for i in range(1, 2001)])
c.commit()
PY
for t in a b c d; do sqlite3 hdr.db "SELECT * FROM $t" | sha256sum; done > hdr.want
cp hdr.db hdr-size.db
printf '\x20\x00' | dd of=hdr.db bs=1 seek=16 conv=notrunc status=none
printf '\x00\x00\x00\x05' | dd of=hdr-size.db bs=1 seek=28 conv=notrunc status=none
for f in hdr hdr-size; do
  before=$(sha256sum < $f.db)
  "$SQLENVFS" recover $f.db --output $f-rec.db > $f.out || fail "recover $f.db: $(cat $f.out)"
  assert_eq "$(sha256sum < $f.db)" "$before" "$f.db after recover"
  for t in a b c d; do sqlite3 $f-rec.db "SELECT * FROM $t" | sha256sum; done > $f.got
  cmp -s hdr.want $f.got || fail "$f.db: the tables recovered differ: $(cat $f.out)"
done
grep -q "the header's page size (8192) does not fit the file: .* read with pages of 4096 bytes" hdr.out ||
  fail "the page size is not named: $(cat hdr.out)"
grep -q "the header counts 5 pages, but the file holds [0-9]*: the copy was read to the end" hdr-size.out ||
  fail "the database size is not named: $(cat hdr-size.out)"
pass "a header's page size or database size that does not fit the file: mended in the copy, named, every row back"

# A CREATE statement damaged in the schema: SQLite, reading with
# writable_schema on (as the salvage must), passes over the entry without
# a word; the report names the damaged schema and the table, and never
# says the source passed integrity_check.
python3 - schema.db <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.executescript("CREATE TABLE keep(id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE log(n INTEGER);")
c.executemany("INSERT INTO log VALUES (?)", [(i,) for i in range(100)])
c.execute("INSERT INTO keep VALUES (1, 'x')")
c.commit()
c.close()
f = bytearray(open(sys.argv[1], "rb").read())
i = f.find(b"CREATE TABLE log")
f[i + 3] = ord("X")
open(sys.argv[1], "wb").write(f)
PY
"$SQLENVFS" recover schema.db --output schema-rec.db > schema.out || fail "recover: $(cat schema.out)"
grep -q "the schema is damaged: malformed database schema (log)" schema.out ||
  fail "the damaged schema entry is not named: $(cat schema.out)"
! grep -q "passed integrity_check: nothing looked damaged" schema.out ||
  fail "a damaged schema is said to have passed integrity_check"
assert_eq "$(sqlite3 schema-rec.db 'SELECT v FROM keep')" "x" "the table beside the damaged entry"
# Its rows are intact on its pages: read by hand into lost_and_found.
assert_eq "$(sqlite3 schema-rec.db 'SELECT count(*), min(id), max(id), sum(c0), max(nfield) FROM lost_and_found')" \
  "100|1|100|4950|1" "the rows of the table whose CREATE is damaged, in lost_and_found"
grep -q "100 rows read from its pages by hand are in lost_and_found" schema.out ||
  fail "the report does not say where its rows went: $(cat schema.out)"
pass "a damaged CREATE statement in the schema is named as damage; its rows go to lost_and_found"

# A WITHOUT ROWID table with one leaf damaged: SQL cannot step its key past
# the page (a rowid table's can), so its b-tree is read page by page: every
# row on the pages that parse comes back (overflowing ones too), each with
# its own values, and the report says how many were read that way.
python3 - wr.db wr-orig.db <<'PY'
import shutil, sqlite3, struct, sys
c = sqlite3.connect(sys.argv[1])
c.execute("CREATE TABLE wr(k TEXT PRIMARY KEY, v TEXT, big BLOB) WITHOUT ROWID")
c.executemany("INSERT INTO wr VALUES (?, ?, ?)",
              [("k%06d" % i, "x%d" % i * 5, b"B" * 5000 if i % 97 == 0 else None)
               for i in range(5000)])
c.commit()
root = c.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'wr'").fetchone()[0]
ps = c.execute("PRAGMA page_size").fetchone()[0]
c.close()
shutil.copy(sys.argv[1], sys.argv[2])
f = bytearray(open(sys.argv[1], "rb").read())
p = root
while True:  # the leftmost interior page above the leaves, then its second leaf
    o = (p - 1) * ps
    cp = struct.unpack(">H", f[o + 12:o + 14])[0]
    ch = struct.unpack(">I", f[o + cp:o + cp + 4])[0]
    if f[(ch - 1) * ps] == 10:
        cp = struct.unpack(">H", f[o + 14:o + 16])[0]
        leaf = struct.unpack(">I", f[o + cp:o + cp + 4])[0]
        break
    p = ch
f[(leaf - 1) * ps] = 0xFF
open(sys.argv[1], "wb").write(f)
PY
"$SQLENVFS" recover wr.db --output wr-rec.db > wr.out || fail "recover wr.db: $(cat wr.out)"
python3 - wr-orig.db wr-rec.db <<'PY' || fail "the WITHOUT ROWID rows recovered: $(cat wr.out)"
import sqlite3, sys
orig = dict((r[0], r) for r in sqlite3.connect(sys.argv[1]).execute("SELECT * FROM wr"))
got = list(sqlite3.connect(sys.argv[2]).execute("SELECT * FROM wr"))
assert all(orig[r[0]] == r for r in got), "a row recovered with values not its own"
keys = set(r[0] for r in got)
assert "k004999" in keys and len(got) >= len(orig) - 200, (len(got), len(orig))
assert sum(1 for r in got if r[2] is not None) >= 50, "overflowing rows missing"
print("# %d of %d rows recovered" % (len(got), len(orig)))
PY
grep -q "its b-tree was then read page by page, .* [0-9]* more rows were recovered" wr.out ||
  fail "the report does not say the rows were read by hand: $(cat wr.out)"
pass "a WITHOUT ROWID table past a damaged leaf: read page by page, each row its own"

# A leaf cell whose rowid was overwritten with its neighbour's: the table's
# own listing of rowids cannot say which row is lost (one rowid read twice),
# but an index that counted as many rows still names it.
python3 - mr.db <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("PRAGMA page_size=1024")
c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT)")
c.execute("CREATE INDEX t_name ON t(name)")
c.executemany("INSERT INTO t VALUES (?, ?)", [(i, "name-%06d-abcdefgh" % i) for i in range(1, 3001)])
c.commit()
c.close()
f = bytearray(open(sys.argv[1], "rb").read())
# the record of row 1500: header (3 bytes: NULL for the rowid alias, a
# 20-byte text), after its rowid's varint 0x8b 0x5c (1500); made 1499's
i = f.find(b"\x03\x00\x35name-001500-abcdefgh")
assert i > 2 and f[i - 2:i] == bytes([0x8B, 0x5C])
f[i - 1] = 0x5B
open(sys.argv[1], "wb").write(f)
PY
"$SQLENVFS" recover mr.db --output mr-rec.db > mr.out || fail "recover mr.db: $(cat mr.out)"
grep -A1 "^  t .*2999 rows recovered of 3000" mr.out | grep -q "missing rowids: 1500$" ||
  fail "the lost row is not named by its rowid: $(cat mr.out)"
pass "a rowid overwritten with its neighbour's: the index names the row lost"

# A full disk under the output: said as such, and nothing left behind.
mkdir -p full
mount -t tmpfs -o size=12m sqlenvfs-test full || fail "cannot mount a tmpfs (the tests run as root)"
_mounts+=("$T/full")
sqlite3 big.db "PRAGMA journal_mode=WAL; CREATE TABLE pad(x BLOB);
  INSERT INTO pad SELECT randomblob(100000) FROM generate_series(1, 100);" > /dev/null
expect_fail "write the new database in $T/full: SQLite rolled it back after a write failed \(the filesystem is full" \
  "$SQLENVFS" recover big.db --output full/rec.db
[ -z "$(ls -A full)" ] || fail "left in the full filesystem: $(ls -A full)"
pass "recover onto a full disk says the disk is full; nothing is left"
