#!/usr/bin/env bash
# A UTF-16 database whose text is not valid UTF-16 (a lone surrogate, text
# cut in the middle of a pair, U+FFFF), or holds control characters (a blob
# joined to text there reads as UTF-16): the script `diff` prints applies to
# give those bytes exactly (a conversion to UTF-8 would replace them), and
# `bisect` tells apart two texts that convert to the same UTF-8. And a
# table whose columns are named rowid, oid and _rowid_ (its rowid is
# reachable by no name): compared in full, and the note says why.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root D=$T/root/data/prod/app.db
mkdir -p "$R"
printf "PRAGMA encoding='UTF-16le';\nCREATE TABLE u(id INTEGER PRIMARY KEY, v TEXT);\n" > "$R/schema.sql"
"$SQLENVFS" init --root "$R" > /dev/null || fail "init"
assert_eq "$(sqlite3 "$D" 'PRAGMA encoding')" "UTF-16le" "production's encoding"
pitr_start_archiver "$R" "$T/a"

# wait_archived: until a restore of latest holds what production holds.
wait_archived() {
  local want got i
  want=$(sqlite3 "$D" "SELECT group_concat(id || ':' || hex(v), ',') FROM u")
  for i in $(seq 1 100); do
    rm -f "$T/l.db"
    "$SQLENVFS" restore --root "$R" --time latest --output "$T/l.db" > /dev/null 2>&1 &&
      got=$(sqlite3 "$T/l.db" "SELECT group_concat(id || ':' || hex(v), ',') FROM u") &&
      [ "$got" = "$want" ] && return 0
    sleep 0.1
  done
  fail "the archive does not reach production: $got, not $want"
}

sqlite3 "$D" "INSERT INTO u VALUES (9, 'plain')"
wait_archived
T1=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
sleep 0.05
sqlite3 "$D" "INSERT INTO u VALUES (1, CAST(x'00d8' AS TEXT)), (2, CAST(x'ffff' AS TEXT)),
  (3, CAST(x'3dd8740061006900' AS TEXT)), (4, 'caf' || CAST(x'e900' AS TEXT)),
  (5, 'a' || char(13, 10) || 'b'), (6, 'tab' || char(9) || 'x' || char(10)),
  (7, char(7) || 'it''s')"
wait_archived
"$SQLENVFS" restore --root "$R" --time "$T1" --output "$T/t1.db" > /dev/null || fail "restore T1"
"$SQLENVFS" diff --root "$R" --from "$T1" > "$T/d.sql" || fail "diff"
sqlite3 -bail "$T/t1.db" < "$T/d.sql" || fail "the script does not apply: $(cat "$T/d.sql")"
assert_eq "$(sqlite3 "$T/t1.db" "SELECT group_concat(id || ':' || hex(v), ',') FROM u")" \
  "$(sqlite3 "$D" "SELECT group_concat(id || ':' || hex(v), ',') FROM u")" \
  "the state the script gives, byte for byte"
pass "diff of a UTF-16 database with text that is not valid UTF-16 applies byte for byte"

sleep 0.05
T2=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
sleep 0.05
# The same UTF-8 once converted (U+FFFD for the lone surrogate), other bytes.
sqlite3 "$D" "UPDATE u SET v = CAST(x'3dd874dc61006900' AS TEXT) WHERE id = 3"
wait_archived
rc=0
"$SQLENVFS" bisect --root "$R" --from "$T2" --sql "SELECT v FROM u WHERE id = 3" > "$T/b.out" \
  2> "$T/b.err" || rc=$?
assert_eq "$rc" 0 "bisect's exit status over the change of id 3 ($(cat "$T/b.out" "$T/b.err"))"
pass "bisect sees a change between two UTF-16 texts that convert to the same UTF-8"

sqlite3 "$D" 'CREATE TABLE h("rowid", "oid", "_rowid_", x); INSERT INTO h VALUES (1, 2, 3, 4)'
wait_archived
T3=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
"$SQLENVFS" diff --root "$R" --from "$T3" > /dev/null 2> "$T/h.err" || fail "diff: $(cat "$T/h.err")"
grep -q "table h: compared in full: it has no key to match rows by" "$T/h.err" ||
  fail "the note on a table whose rowid has no name: $(cat "$T/h.err")"
pass "a table whose columns hide its rowid: the note says why it is compared in full"
pitr_stop_archiver "$T/a"
