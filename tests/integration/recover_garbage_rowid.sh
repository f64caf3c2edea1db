#!/usr/bin/env bash
# sqlenvfs recover: a leaf page of a big table whose cell-pointer array is
# overwritten, so that every cell it points at reads as rowid 1000000 (a
# rowid the table never had). A search that lands on that page gives the
# garbage rowid; the salvage must not believe it and resume past it (which
# skipped every row after the page), but resume after the page: it gets
# back at least the rows plain SQL reads in windows of 500 rowids, names no
# rowid past the table's largest as missing, and warns on stderr that rows
# were lost.
source "$SRCDIR/tests/integration/lib.sh"

BTREE="$SRCDIR/tests/integration/btree.py"
cd "$T"

python3 - orig.db <<'PY'
import random, sqlite3, sys
random.seed(1)
con = sqlite3.connect(sys.argv[1])
con.execute("CREATE TABLE rows(id INTEGER PRIMARY KEY, v INT, payload BLOB)")
con.executemany("INSERT INTO rows(v, payload) VALUES (?, ?)",
                [(i, random.randbytes(random.randint(10, 200))) for i in range(20000)])
con.commit()
PY
read -r lpage lrows < <(python3 "$BTREE" leaf orig.db rows 10000)
n_page=$(wc -w <<<"$lrows")
first=${lrows%% *}

# damage OUT HEADER-SIZE: every cell pointer of the leaf points at one forged
# cell: rowid 1000000, a 5-byte record whose header says HEADER-SIZE bytes
# (4: it reads, as (NULL, 7, NULL); 100: more than the record, so reading
# its columns fails while its rowid still reads).
damage() {
  cp orig.db "$1"
  python3 - "$1" "$lpage" "$n_page" "$2" <<'PY'
import struct, sys
path, page, n, hsize = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
cell = bytes([5, 0x80 | 0x3D, 0x84, 0x40, hsize, 0, 1, 0, 7])  # 1000000 = 0x3D 0x04 0x40 (7 bits)
assert (0x3D << 14 | 0x04 << 7 | 0x40) == 1000000
off = 8 + 2 * n
with open(path, "r+b") as f:
    f.seek((page - 1) * 4096 + 8)
    f.write(struct.pack(">H", off) * n + cell)
PY
}

# Rows plain SQL reads back in windows of 500 rowids (a window that fails
# counts none), and the rowid a search from the page's first rowid finds.
windowed() { # db
  python3 - "$1" "$first" <<'PY'
import sqlite3, sys
con = sqlite3.connect("file:%s?immutable=1" % sys.argv[1], uri=True)
ok = 0
for lo in range(0, 20500, 500):
    try:
        ok += con.execute("SELECT count(payload) FROM rows WHERE id > ? AND id <= ?",
                          (lo, lo + 500)).fetchone()[0]
    except sqlite3.DatabaseError:
        pass
try:
    probe = con.execute("SELECT id FROM rows WHERE id >= ? ORDER BY id LIMIT 1",
                        (int(sys.argv[2]),)).fetchone()[0]
except sqlite3.DatabaseError:
    probe = "error"
print(ok, probe)
PY
}

for hsize in 4 100; do
  db=leaf$hsize.db
  damage "$db" "$hsize"
  read -r n_window probe < <(windowed "$db")
  assert_eq "$probe" 1000000 "a search from rowid $first on the damaged page (header $hsize)"
  [ "$n_window" -ge $((20000 - 1000)) ] || fail "plain SQL reads only $n_window rows: a poor test"
  "$SQLENVFS" recover "$db" --output "rec$hsize.db" --json >"report$hsize.json" 2>"err$hsize.txt"
  assert_eq "$(sqlite3 "rec$hsize.db" 'PRAGMA integrity_check')" ok "integrity_check of rec$hsize.db"
  got=$(sqlite3 "rec$hsize.db" 'SELECT count(*) FROM rows')
  [ "$got" -ge "$n_window" ] ||
    fail "recover (header $hsize) got $got rows back, plain SQL in windows $n_window"
  assert_eq "$(sqlite3 "rec$hsize.db" 'SELECT count(*) FROM rows WHERE id > 20000')" 0 \
    "rows past the table's largest rowid recovered (header $hsize)"
  python3 - "report$hsize.json" "$got" <<'PY' || fail "report of rec$hsize.db: $(cat "report$hsize.json")"
import json, sys
t = [x for x in json.load(open(sys.argv[1]))["tables"] if x["name"] == "rows"][0]
assert t["rows_recovered"] == int(sys.argv[2]), t
assert "1000000" not in (t.get("missing_rowids") or ""), t
PY
  grep -q "^sqlenvfs recover: warning: at least $((20000 - got)) rows of .* could not be recovered" \
    "err$hsize.txt" || fail "no warning of the lost rows on stderr: $(cat "err$hsize.txt")"
  note "header $hsize: $got rows recovered, $n_window read in windows, $n_page on page $lpage"
done
pass "a leaf whose cells read as a garbage rowid: the salvage resumes after it, not past the garbage"

# A sound database: nothing lost, no warning.
"$SQLENVFS" recover orig.db --output rec-orig.db >/dev/null 2>err-orig.txt
assert_eq "$(cat err-orig.txt)" "" "stderr of a recover that lost nothing"
pass "no warning when no row was lost"
