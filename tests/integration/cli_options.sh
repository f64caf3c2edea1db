#!/usr/bin/env bash
# The command line refuses what it cannot take as meant, with a usage error
# (exit status 2, one line saying what is wrong) and before doing anything:
# an empty value where the default would do far more than asked, a value
# out of range, an option given twice, a value that cannot be parsed.
source "$SRCDIR/tests/integration/lib.sh"

# expect_usage PATTERN cmd args...: fails with exit status 2 and one line
# matching PATTERN.
expect_usage() {
  local pattern=$1; shift
  local rc=0
  expect_fail "$pattern" "$@"
  "$@" >/dev/null 2>&1 || rc=$?
  assert_eq "$rc" 2 "exit status of '$*'"
}

R=$T/root
make_root "$R" <(echo "CREATE TABLE t (x);")

# --- migrate-pg --tables "" (an unset variable) is not "every table"; it is
# refused before PostgreSQL is connected to (nothing listens on the port:
# a connection tried would fail with another error).
dead_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DSN="host=127.0.0.1 port=$dead_port user=postgres dbname=src"
for mode in "" "--mode=replace"; do
  expect_usage '--tables is empty \(nothing was done' \
    "$SQLENVFS" migrate-pg --root "$R" --dsn "$DSN" --tables "" $mode
  expect_usage '--tables is empty' "$SQLENVFS" migrate-pg --root "$R" --dsn "$DSN" --tables= $mode
done
expect_usage 'empty table name' "$SQLENVFS" migrate-pg --root "$R" --dsn "$DSN" --tables ,
pass "an empty --tables is refused"

# --- help CMD and --help CMD are CMD --help; --version takes nothing.
for h in help --help -h; do
  "$SQLENVFS" $h restore > "$T/help.out" || fail "$h restore failed"
  cmp -s "$T/help.out" <("$SQLENVFS" restore --help) || fail "$h restore: $(head -3 "$T/help.out")"
done
expect_usage "unknown command 'nope'" "$SQLENVFS" help nope
expect_usage "help takes one command at most" "$SQLENVFS" help restore list
expect_usage "--version takes no argument, not 'x'" "$SQLENVFS" --version x
pass "help CMD shows the command's help; --version with an argument is a usage error"

# --- a number out of range is refused, the value the default stands for
# inside (0 events, -1 rows or seconds) too.
for n in 0 -1; do
  expect_usage '--demo-events needs --demo and a positive number' \
    "$SQLENVFS" init --root "$T/demo" --demo --demo-events "$n"
done
[ ! -e "$T/demo" ] || fail "init --demo-events 0 made a root"
for a in --batch-rows=-1 --batch-rows=0 "--batch-rows 1000001"; do
  expect_usage "--batch-rows must be between 1 and 1000000, not" \
    "$SQLENVFS" migrate-pg --root "$R" --dsn "$DSN" $a
done
for a in --stall-seconds=-1 "--stall-seconds -2" --stall-seconds=86401; do
  expect_usage "--stall-seconds must be between 0 and 86400, not" \
    "$SQLENVFS" migrate-pg --root "$R" --dsn "$DSN" $a
done
pass "numbers out of range are refused"

# --- an option given twice is refused, in every form it may take, not the
# last one taken (restore --time latest ... --time earliest restored the
# earliest); the mount's -o takes a list and may be repeated.
ts=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for args in "--time latest --output $T/a.db --time earliest" "-tlatest --output $T/a.db -t earliest" \
            "--time=latest --output=$T/a.db -t=earliest" "--time latest --output $T/a.db --output $T/b.db" \
            "--time latest --output $T/a.db -o$T/b.db" "--time latest --output $T/a.db --root $R"; do
  expect_usage "--(time|output|root) given twice: give it once" \
    "$SQLENVFS" restore --root "$R" $args
done
[ ! -e "$T/a.db" ] && [ ! -e "$T/b.db" ] || fail "a restore given an option twice wrote a file"
expect_usage "--time given twice" "$SQLENVFS" refresh-dev --root "$R" --time "$ts" --time "$ts"
expect_usage "--mode given twice" \
  "$SQLENVFS" migrate-pg --root "$R" --dsn "$DSN" --mode replace --mode append
expect_usage "--db given twice" "$SQLENVFS" checkpoint --root "$R" --db app --db=app
# A value that looks like an option is the value, not the option again.
expect_fail "prod/--db.db does not exist" "$SQLENVFS" checkpoint --root "$R" --db --db
"$SQLENVFS" info --root "$R" --json --json > /dev/null || fail "a flag given twice is refused"
"$SQLENVFS" mount --root "$R" -o ro -o ro 2>&1 | grep -q "given twice" && fail "mount's -o refused twice"
pass "an option given twice is refused"

# --- a value that cannot be parsed is a usage error (2), whichever option
# it is given to; a time that parses but that the archive does not hold is
# the command's failure (1).
for t in bogus '' -5; do
  expect_usage "not a time: '$t'" "$SQLENVFS" restore --root "$R" --time "$t" --output "$T/a.db"
  expect_usage "not a time: '$t'" "$SQLENVFS" refresh-dev --root "$R" --time "$t"
  expect_usage "not a time: '$t'" "$SQLENVFS" diff --root "$R" --from "$t"
  expect_usage "not a time: '$t'" "$SQLENVFS" diff --root "$R" --from earliest --to "$t"
  expect_usage "not a time: '$t'" "$SQLENVFS" bisect --root "$R" --sql 'SELECT 1' --from "$t"
done
rc=0; "$SQLENVFS" restore --root "$R" --time 2020-01-01T00:00:00Z --output "$T/a.db" 2>/dev/null || rc=$?
assert_eq "$rc" 1 "exit status of a restore to a time not held"
for d in 'x/y' $'a\nb' .hidden '[x]' .db; do
  expect_usage "database name '.*' is not supported" \
    "$SQLENVFS" restore --root "$R" --db "$d" --time latest --output "$T/a.db"
  expect_usage "database name '.*' is not supported" "$SQLENVFS" checkpoint --root "$R" --db "$d"
  expect_usage "database name '.*' is not supported" "$SQLENVFS" init --root "$T/new" --db "$d"
done
expect_usage "of --db is not text in this locale's encoding" \
  "$SQLENVFS" checkpoint --root "$R" --db $'bad\xff'
expect_usage "the database name is empty: name a database \(this root has app\)" \
  "$SQLENVFS" backup --root "$R" --db ''
# Other empty values (a script's unset variable) are usage errors too, and
# their advice is not to give what was given.
expect_usage "recover: DB is empty \(nothing was done; give the path of a database file, or the name" \
  "$SQLENVFS" recover --root "$R" "" --output "$T/a.db"
expect_usage "recover: --sqlite3 is empty \(nothing was done" \
  "$SQLENVFS" recover --root "$R" app --output "$T/a.db" --sqlite3 ''
expect_usage "init: --schema is empty \(nothing was done" "$SQLENVFS" init --root "$T/new" --schema ''
expect_usage "bisect: --sql is empty" "$SQLENVFS" bisect --root "$R" --sql ''
expect_usage "bisect: --sql is empty" "$SQLENVFS" bisect --root "$R" --sql ' ;'
[ ! -e "$T/a.db" ] || fail "a recover with an empty value wrote its output"
expect_usage "not a time: '2026-02-30T00:00:00Z': day 30 is out of range \(01 to 28 in February" \
  "$SQLENVFS" restore --root "$R" --time 2026-02-30T00:00:00Z --output "$T/a.db"
[ ! -e "$T/new" ] || fail "init with a bad --db made a root"
for u in ftp://h s3:// s3://b; do
  expect_usage "replica URL '$u'" "$SQLENVFS" list --root "$R" --remote "$u"
  expect_usage "replica URL '$u'" "$SQLENVFS" verify --root "$R" --remote "$u"
  expect_usage "replica URL '$u'" \
    "$SQLENVFS" restore --root "$R" --remote "$u" --time latest --output "$T/a.db"
done
pass "a value that cannot be parsed is a usage error"

# --- a [replica] value that is not valid is refused, naming its line, as
# any other setting's is; so is a bug acknowledged that the doctor does not
# know, and a line that is not UTF-8. A prune, which needs every section,
# refuses; the commands that need no section with an error go on, and say
# why in a warning.
conf_case() { # CONF PATTERN [whole]: "whole" for an error of every section, [cache] too,
               # which a backup needs (the room it leaves)
  local cmds="list backup info verify checkpoint"
  printf '%b' "$1" > "$R/sqlenvfs.conf"
  expect_fail "$2" "$SQLENVFS" prune --root "$R"
  if [ "${3:-}" = whole ]; then
    cmds="list info verify checkpoint"
    ! "$SQLENVFS" backup --root "$R" > /dev/null 2> "$T/conf.err" ||
      fail "backup went on with an error of every section"
  fi
  for cmd in $cmds; do
    "$SQLENVFS" $cmd --root "$R" > /dev/null 2> "$T/conf.err" ||
      fail "$cmd refused a settings file whose error it does not need: $(cat "$T/conf.err")"
    grep -Eq -- "warning: .*$2.*what needs (it|one) refuses, the rest goes on" \
      "$T/conf.err" || fail "$cmd: no warning matching /$2/: $(cat "$T/conf.err")"
  done
}
conf_case '[replica]\nurl = s3://bkt/p\nsync-interval = abc\n' \
  "line 3: \[replica\] sync-interval=abc is not a whole number from 1 to 3600"
for v in 0 99999; do
  conf_case "[replica]\nsync-interval=$v\n" "line 2: \[replica\] sync-interval=$v is not"
done
conf_case '[replica]\nmax-retries=21\n' "max-retries=21 is not a whole number from 0 to 20"
conf_case '[replica]\nlease-seconds=5\n' "lease-seconds=5 is not a whole number from 10 to 3600"
conf_case '[replica]\nverify-tls=maybe\n' "line 2: \[replica\] verify-tls=maybe is not true or false"
conf_case '[replica]\nendpoint=ftp://h\n' "endpoint=ftp://h is not http\(s\)://host\[:port\]"
conf_case '[doctor]\nacknowledged-bugs=wal_reset\n' \
  "line 2: \[doctor\] acknowledged-bugs names 'wal_reset'.*the known ones: wal-reset"
conf_case '[doctor]\n\xff\xfe[x]\n' 'line 2 is not UTF-8 text: "\\377\\376\[x\]"' whole
printf '[replica]\nurl = s3://bkt/p\nendpoint = https://h:9000/\nverify-tls = false\n' \
  > "$R/sqlenvfs.conf"
"$SQLENVFS" info --root "$R" > /dev/null || fail "info refused valid [replica] settings"
rm "$R/sqlenvfs.conf"
pass "a settings file with a value that is not valid: prune refuses, the rest warns"

# --- --root may come before the command, in each of its forms; given there
# and after the command too, it is given twice.
for args in "--root $R" "--root=$R" "-r $R" "-r$R"; do
  "$SQLENVFS" $args info > "$T/info.out" 2>&1 || fail "sqlenvfs $args info: $(cat "$T/info.out")"
  grep -q "$R/data/prod/app.db" "$T/info.out" || fail "sqlenvfs $args info: $(cat "$T/info.out")"
done
expect_usage "--root given twice" "$SQLENVFS" --root "$R" info --root "$R"
expect_usage "^sqlenvfs: --root given twice" "$SQLENVFS" --root "$R" --root "$R" info
expect_usage "^sqlenvfs: --root given twice" "$SQLENVFS" --root="$R" -r"$R" info
expect_usage "^sqlenvfs: --root needs a value" "$SQLENVFS" --root
expect_usage "^sqlenvfs: no command after --root" "$SQLENVFS" --root "$R"
expect_usage "--root is empty" "$SQLENVFS" --root "" info
pass "--root before the command"
