#!/usr/bin/env bash
# A backup is its MANIFEST's entry, not whatever directory holds it. A
# directory renamed to another time, two swapped, an entry that is a
# symbolic link to another, and a copy whose database file is a symbolic
# link were each taken as a copy of the time its name says: verify said ok,
# list showed that time, and the mount served backups/<early>/app.db
# holding rows written later. Each is DAMAGED now: verify names both names,
# list and status show it, the mount leaves it out, a restore never uses
# it, and prune never removes it.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root
make_root "$R" <(echo "CREATE TABLE t(x);")
DAILY=$R/backups/prod/daily
db=$R/data/prod/app.db
take() { # ROWS: a backup holding rows 1..ROWS, its name on stdout
  sqlite3 "$db" "INSERT INTO t VALUES ($1)"
  "$SQLENVFS" backup --root "$R" > /dev/null
  ls "$DAILY" | tail -1
  sleep 0.01
}
b1=$(take 1); b2=$(take 2); b3=$(take 3); b4=$(take 4); b5=$(take 5)
sqlite3 "$db" "INSERT INTO t VALUES (6)"

# b1 and b2 swapped; b3 renamed years earlier; b4 replaced by a link to b5;
# b5's app.db replaced by a link to b3's (which holds fewer rows).
mv "$DAILY/$b1" "$DAILY/x" && mv "$DAILY/$b2" "$DAILY/$b1" && mv "$DAILY/x" "$DAILY/$b2"
early=20200101T000000.000Z
mv "$DAILY/$b3" "$DAILY/$early"
mv "$DAILY/$b4" "$T/b4" && ln -s "$b5" "$DAILY/$b4"
cp -a "$DAILY/$b5" "$T/b5" && rm "$DAILY/$b5/app.db" && ln -s "../$early/app.db" "$DAILY/$b5/app.db"

rc=0
"$SQLENVFS" verify --root "$R" > "$T/verify.out" 2>&1 || rc=$?
assert_eq "$rc" "1" "verify's exit status"
grep -q '^ok' "$T/verify.out" && fail "verify finds a misnamed copy good: $(cat "$T/verify.out")"
grep -Eq "^BAD .* $b1 .*MANIFEST: it was written for the backup named $b2, not $b1" \
  "$T/verify.out" || fail "verify does not name both names of a swapped copy: $(< "$T/verify.out")"
grep -Eq "^BAD .* $early .*written for the backup named $b3, not $early" "$T/verify.out" ||
  fail "verify does not name both names of a renamed copy: $(cat "$T/verify.out")"
grep -Eq "^BAD .* $b4 .*$b4 is a symbolic link \(to [^)]*\), not a backup.*move it back" "$T/verify.out" ||
  fail "verify does not say the entry is a link: $(cat "$T/verify.out")"
grep -Eq "^BAD .* $b5 .*$b5/app.db is a symbolic link, not a copy" "$T/verify.out" ||
  fail "verify does not say the database file is a link: $(cat "$T/verify.out")"
pass "verify reports each misnamed or linked copy BAD, naming both names"

"$SQLENVFS" list --root "$R" > "$T/list.out"
grep -q "^backups .*: 0, and 5 DAMAGED" "$T/list.out" || fail "list: $(cat "$T/list.out")"
grep -Eq "^  $b5 +DAMAGED: $DAILY/$b5/app.db: is a symbolic link" "$T/list.out" ||
  fail "list does not name the linked database file: $(cat "$T/list.out")"
"$SQLENVFS" list --root "$R" --json > "$T/list.json"
python3 - "$T/list.json" "$b1" "$b2" "$early" "$b4" "$b5" <<'PY' || fail "list --json (above)"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["backups"] == [], j["backups"]
assert sorted(d["name"] for d in j["damaged"]) == sorted(sys.argv[2:]), j["damaged"]
assert all(not d["unreadable"] for d in j["damaged"]), j["damaged"]
PY
pass "list and list --json show them DAMAGED"

out=$("$SQLENVFS" prune --root "$R")
assert_eq "$(grep -c '^keep .*left for inspection' <<<"$out")" "5" "copies prune leaves: $out"
[ -L "$DAILY/$b4" ] && [ -d "$DAILY/$b5" ] && [ -d "$DAILY/$early" ] || fail "prune removed: $out"
rc=0
"$SQLENVFS" restore --root "$R" --db app --time "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --output "$T/restored.db" > "$T/restore.out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] && [ ! -e "$T/restored.db" ] || fail "restore: $(cat "$T/restore.out")"
grep -q "not used as a base: backup $early: .*written for the backup named $b3" \
  "$T/restore.out" || fail "restore does not say why it left a copy out: $(cat "$T/restore.out")"
pass "prune leaves them, a restore uses none"

mount_root "$R" "$T/mnt" -o noarchiver
assert_eq "$(ls "$T/mnt/backups" | wc -l)" "0" "copies the mount lists: $(ls "$T/mnt/backups")"
[ -e "$T/mnt/backups/$early/app.db" ] && fail "the mount serves a renamed copy"
python3 - "$T/mnt/status" "$b1" "$b2" "$early" "$b4" "$b5" <<'PY' || fail "status (above)"
import json, sys
names = sorted(d["name"] for d in json.load(open(sys.argv[1]))["damaged_copies"])
assert names == sorted(sys.argv[2:]), (names, sys.argv[2:])
PY
unmount_root "$T/mnt"
pass "the mount leaves them out; its status lists them as damaged"

# Put back under their own names, they are good copies again.
mv "$DAILY/$b1" "$DAILY/x" && mv "$DAILY/$b2" "$DAILY/$b1" && mv "$DAILY/x" "$DAILY/$b2"
mv "$DAILY/$early" "$DAILY/$b3"
rm "$DAILY/$b4" && mv "$T/b4" "$DAILY/$b4"
rm -r "$DAILY/$b5" && mv "$T/b5" "$DAILY/$b5"
"$SQLENVFS" verify --root "$R" > "$T/verify2.out" 2>&1 || fail "verify: $(cat "$T/verify2.out")"
assert_eq "$(sqlite3 "file:$DAILY/$b1/app.db?immutable=1" 'SELECT max(x) FROM t')" "1" \
  "rows of the first backup"
pass "renamed back, they are good copies"
