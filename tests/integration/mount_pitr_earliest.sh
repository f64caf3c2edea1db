#!/usr/bin/env bash
# pitr/earliest in a root whose databases' histories start at different
# times (a database added while the mount runs): pitr/earliest/<db>.db
# exists for every database being archived, as pitr/latest/<db>.db does, at
# a time inside that database's own window, and holds the state a restore
# to that time gives.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root M=$T/mnt
make_root "$R" <(printf 'CREATE TABLE seq (n INTEGER PRIMARY KEY);\n') --db app
mount_root "$R" "$M"
wait_archiving "$M"
sqlite3 "$R/data/prod/app.db" "INSERT INTO seq VALUES (1);"

# Wait until app's window has begun, then add a second database: its
# history starts later than app's.
for i in $(seq 1 100); do [ -L "$M/pitr/earliest" ] && break; sleep 0.1; done
[ -L "$M/pitr/earliest" ] || fail "no pitr/earliest within 10 s"
sleep 0.5 # the second database's window must start measurably later
"$SQLENVFS" init --root "$R" --db billing > /dev/null
wait_archiving "$M"
sqlite3 "$R/data/prod/billing.db" "INSERT INTO seq VALUES (7);"
for i in $(seq 1 100); do
  [ "$(ls "$M/pitr/latest/" 2>/dev/null | wc -l)" -eq 2 ] && break
  sleep 0.1
done
assert_eq "$(ls "$M/pitr/latest/" | tr '\n' ' ')" "app.db billing.db " "ls pitr/latest/"

"$SQLENVFS" list --root "$R" --json > "$T/list.json"
target=$(readlink "$M/pitr/earliest")
python3 - "$T/list.json" "$target" <<'PY' || fail "pitr/earliest -> $target: $(cat "$T/list.json")"
import datetime, json, sys
def us(s):
    d = datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return int(d.timestamp()) * 1000000 + d.microsecond
w = json.load(open(sys.argv[1]))["windows"]
t = us(sys.argv[2])
first = {}
for x in w:
    first.setdefault(x["database"], us(x["from"]))
assert set(first) == {"app", "billing"}, w
assert first["billing"] > first["app"], ("billing's window does not start later", w)
for db in first:
    assert any(x["database"] == db and us(x["from"]) <= t <= us(x["to"]) for x in w), \
        (db, "pitr/earliest is outside its window", w)
# The earliest such time: billing's first one.
assert t == first["billing"], (t, first)
PY
pass "pitr/earliest is inside the window of every database (the one added later included)"

assert_eq "$(ls "$M/pitr/earliest/" | tr '\n' ' ')" "app.db billing.db " "ls pitr/earliest/"
for db in app billing; do
  rm -f "$T/restored.db"
  "$SQLENVFS" restore --root "$R" --db "$db" --time "$target" --output "$T/restored.db" \
    > /dev/null 2>&1 || fail "sqlenvfs restore --db $db --time $target failed"
  want=$(sqlite3 "$T/restored.db" 'SELECT count(*), coalesce(max(n), 0) FROM seq')
  got=$(sqlite3 "file:$M/pitr/earliest/$db.db?mode=ro" 'SELECT count(*), coalesce(max(n), 0) FROM seq') \
    || fail "sqlite3 on pitr/earliest/$db.db failed"
  assert_eq "$got" "$want" "pitr/earliest/$db.db against the restore to $target"
done
pass "pitr/earliest/<db>.db is each database's state at that time"

unmount_root "$M"
