#!/usr/bin/env bash
# The script `sqlenvfs diff` prints applies as it is, in a shell whose
# foreign keys are on (a .sqliterc with PRAGMA foreign_keys=ON): it turns
# them off itself and is one transaction, as SQLite's .dump writes. The
# change: users that swap e-mail addresses under a unique index on
# lower(email) (a cycle, broken by deleting one row and inserting it
# again) while orders reference them with ON DELETE CASCADE, so a row
# deleted with foreign keys on would take its orders with it. Two states
# alike give an empty script.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root M=$T/mnt DB=$T/root/data/prod/app.db
make_root "$R" <(cat <<'SQL'
CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, name TEXT);
CREATE UNIQUE INDEX users_email ON users (lower(email));
CREATE TABLE orders (id INTEGER PRIMARY KEY,
                     user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                     item TEXT);
SQL
)
mount_root "$R" "$M"
wait_archiving "$M"

# at_latest N: wait until pitr/latest holds N orders.
at_latest() {
  local i
  for i in $(seq 1 100); do
    [ "$(sqlite3 "$M/pitr/latest/app.db" 'SELECT count(*) FROM orders' 2>/dev/null)" = "$1" ] &&
      return 0
    sleep 0.1
  done
  fail "pitr/latest never held $1 orders"
}

sqlite3 "$DB" "INSERT INTO users VALUES (1, 'Ann@example.org', 'Ann'), (2, 'bob@example.org', 'Bob'),
                 (3, 'cy@example.org', 'Cy');
               INSERT INTO orders VALUES (1, 1, 'tea'), (2, 2, 'rope'), (3, 3, 'map');"
at_latest 3
t1=$(date -u +%FT%T.%NZ)
sleep 0.2
sqlite3 "$DB" "PRAGMA foreign_keys=ON;
               UPDATE users SET email = 'x' || id;
               UPDATE users SET email = 'BOB@example.org', name = 'Ann B.' WHERE id = 1;
               UPDATE users SET email = 'cy@example.org' WHERE id = 2;
               UPDATE users SET email = 'ann@example.org' WHERE id = 3;
               INSERT INTO orders VALUES (4, 2, 'lamp');"
at_latest 4

"$SQLENVFS" diff --root "$R" --from "$t1" > "$T/change.sql" 2> "$T/diff.err" ||
  fail "diff: $(cat "$T/diff.err")"
assert_eq "$(head -n 2 "$T/change.sql" | tr '\n' ' ')" "PRAGMA foreign_keys=OFF; BEGIN TRANSACTION; " \
  "the script's first lines"
assert_eq "$(tail -n 1 "$T/change.sql")" "COMMIT;" "the script's last line"
grep -q '^DELETE FROM users WHERE id=.*parked' "$T/change.sql" ||
  fail "no row parked by a DELETE: $(cat "$T/change.sql")"
cmp "$T/change.sql" <(cat "$M/diff/$t1/latest/app.sql") ||
  fail "the mount's diff/<t1>/latest/app.sql differs from the command's"

"$SQLENVFS" restore --root "$R" --time "$t1" -o "$T/copy.db" > /dev/null
"$SQLENVFS" restore --root "$R" --time latest -o "$T/want.db" > /dev/null
sqlite3 -bail -cmd "PRAGMA foreign_keys=ON" "$T/copy.db" < "$T/change.sql" 2> "$T/apply.err" ||
  fail "the script does not apply with foreign keys on: $(cat "$T/apply.err")"
assert_eq "$(sqldiff "$T/copy.db" "$T/want.db")" "" "the T1 copy with the script applied against T2"
assert_eq "$(sqlite3 "$T/copy.db" 'SELECT count(*) FROM orders')" "4" "orders kept"
pass "the script applies with foreign keys on and gives the later state"

# A script cut short (as by an error before its COMMIT) commits nothing.
"$SQLENVFS" restore --root "$R" --time "$t1" -o "$T/cut.db" > /dev/null
before=$(sqlite3 "$T/cut.db" .dump)
head -n -1 "$T/change.sql" | sqlite3 "$T/cut.db" 2> /dev/null || true
assert_eq "$(sqlite3 "$T/cut.db" .dump)" "$before" "a copy given the script without its COMMIT"
pass "a script without its COMMIT changes nothing"

"$SQLENVFS" diff --root "$R" --from latest > "$T/same.sql" 2> "$T/diff.err" ||
  fail "diff --from latest: $(cat "$T/diff.err")"
[ -s "$T/same.sql" ] && fail "two states alike gave a script: $(cat "$T/same.sql")"
pass "two states alike give an empty script"
