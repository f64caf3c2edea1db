#!/usr/bin/env bash
# `sqlenvfs restore --time` through the command line: every accepted form of
# time (timefmt.h) names the same instant and gives the same database (byte for
# byte), exact against the commit log; `latest` and `earliest` work; every rejected form
# fails with one line naming the accepted forms and writes nothing; an
# existing output is not overwritten without --force; a bad database name,
# a missing option and an unknown option are refused clearly.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
pitr_history "$R"

# A whole second S inside the window, and S + 0.25, in every form.
python3 - "$SQLENVFS" "$R" > "$T/forms" <<'PY'
import datetime, json, subprocess, sys
out = subprocess.run([sys.argv[1], "list", "--json", "--root", sys.argv[2]], check=True,
                     capture_output=True, text=True).stdout
w = json.loads(out)["windows"][0]
ts = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
a, b = ts(w["from"]), ts(w["to"])
S = int((a + b) / 2)
assert a < S and S + 1 < b, (a, b, S)
utc = lambda t: datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
plus1 = lambda t: datetime.datetime.fromtimestamp(t, datetime.timezone(datetime.timedelta(hours=1)))
minus530 = lambda t: datetime.datetime.fromtimestamp(t, datetime.timezone(-datetime.timedelta(hours=5, minutes=30)))
print("S", utc(S).strftime("%Y%m%dT%H%M%SZ"))
print("S", utc(S).strftime("%Y-%m-%dT%H:%M:%SZ"))
print("S", plus1(S).strftime("%Y-%m-%dT%H:%M:%S+01:00"))
print("S", minus530(S).strftime("%Y-%m-%dT%H:%M:%S-05:30"))
print("S", "@%d" % S)
print("F", utc(S).strftime("%Y%m%dT%H%M%S.250Z"))
print("F", utc(S).strftime("%Y-%m-%dT%H:%M:%S.25Z"))
print("F", plus1(S).strftime("%Y-%m-%dT%H:%M:%S.25+01:00"))
print("F", "@%d.25" % S)
print("F", "@%d.250000" % S)
print("F", utc(S).strftime("%Y-%m-%dT%H:%M:%S.250000000Z"))
print("S", plus1(S).strftime("%Y-%m-%d %H:%M:%S +01:00"))
print("F", minus530(S).strftime("%Y-%m-%d %H:%M:%S.25 -05:30"))
print("F", utc(S).strftime("%Y%m%dT%H%M%S.250000999Z"))
print("F", plus1(S).strftime("%Y-%m-%dT%H:%M:%S.2500009+01:00"))
print("F", "@%d.250000999" % S)
PY

for group in S F; do
  first=""
  while read -r g form; do
    [ "$g" = "$group" ] || continue
    out=$T/r-$group.db
    rm -f "$out"
    "$SQLENVFS" restore --root "$R" --time "$form" --output "$out" >/dev/null ||
      fail "restore --time $form failed"
    sum=$(sha256sum < "$out")
    if [ -z "$first" ]; then
      first=$sum
      at=$(awk -v g="$group" '$1==g && $2 ~ /^@/ {print $2; exit}' "$T/forms")
      python3 "$ORACLE" probe --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
        --time "$at" --expect ok >/dev/null
    fi
    assert_eq "$sum" "$first" "restore --time $form (same instant as the other forms)"
  done < "$T/forms"
done
pass "every accepted form restores the same state, exactly"

"$SQLENVFS" restore --root "$R" --time latest --output "$T/latest.db" >/dev/null
pass "restore --time latest"

# earliest: the start of the first recoverable window, as `list` gives it;
# diff and bisect take it too.
FROM=$("$SQLENVFS" list --json --root "$R" |
       python3 -c 'import json, sys; print(json.load(sys.stdin)["windows"][0]["from"])')
"$SQLENVFS" restore --root "$R" --time earliest --output "$T/earliest.db" >/dev/null ||
  fail "restore --time earliest failed"
"$SQLENVFS" restore --root "$R" --time "$FROM" --output "$T/from.db" >/dev/null
assert_eq "$(sha256sum < "$T/earliest.db")" "$(sha256sum < "$T/from.db")" \
  "restore --time earliest (the window's start, $FROM)"
python3 "$ORACLE" probe --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --time "$FROM" --expect ok >/dev/null
"$SQLENVFS" diff --root "$R" --from earliest --to latest > "$T/d1.sql" || fail "diff --from earliest"
"$SQLENVFS" diff --root "$R" --from "$FROM" --to latest > "$T/d2.sql"
[ -s "$T/d1.sql" ] || fail "diff --from earliest printed nothing"
cmp -s "$T/d1.sql" "$T/d2.sql" || fail "diff --from earliest differs from diff --from $FROM"
"$SQLENVFS" bisect --root "$R" --from earliest --sql 'SELECT count(*) FROM tx' > "$T/b.out" 2>&1 ||
  fail "bisect --from earliest: $(cat "$T/b.out")"
pass "restore, diff and bisect take earliest, the window's start"

# The window as `list` prints it (to the second, in local time): both ends
# restore as printed, in two time zones.
for tz in UTC Asia/Kolkata; do
  line=$(TZ=$tz "$SQLENVFS" list --root "$R" | sed -n '/^recoverable windows/{n;p}')
  from=$(echo "$line" | sed -n 's/^  app *\(.*\) \.\. \(.*\)$/\1/p')
  to=$(echo "$line" | sed -n 's/^  app *\(.*\) \.\. \(.*\)$/\2/p' | sed 's/  .*//')
  [ -n "$from" ] && [ -n "$to" ] || fail "no window in list's output: $line"
  for t in "$from" "$to"; do
    "$SQLENVFS" restore --root "$R" --time "$t" --output "$T/list.db" --force >/dev/null \
      2>"$T/list.err" || fail "the time '$t' that list prints (TZ=$tz) is refused: $(cat "$T/list.err")"
  done
done
pass "the ends of a window, as list prints them, restore"

for bad in "" now yesterday 2026-11-28 "2026-11-28 16:14:00Z" "2026-11-28 16:14:00+00:00" \
           20261128T1614Z \
           2026-11-28T16:14:00.1234567890Z 2026-11-28T16:14:00+0100 @ @-5 @1. @12a LATEST \
           "latest " EARLIEST "earliest " 2026-11-28t16:14:00z; do
  expect_fail 'accepted forms: 20261128T161400Z, 20261128T161400.250Z, 2026-11-28T16:14:00Z' \
    "$SQLENVFS" restore --root "$R" --time "$bad" --output "$T/bad.db"
  [ ! -e "$T/bad.db" ] || fail "a rejected time ('$bad') left a file"
done
pass "rejected forms fail with one line naming the accepted forms"
# A time of the right form with a field out of range: the field is named.
expect_fail "not a time: '2026-13-28T16:14:00Z': month 13 is out of range" \
  "$SQLENVFS" restore --root "$R" --time 2026-13-28T16:14:00Z --output "$T/bad.db"
expect_fail "not a time: '2026-02-30T16:14:00Z': day 30 is out of range" \
  "$SQLENVFS" restore --root "$R" --time 2026-02-30T16:14:00Z --output "$T/bad.db"
[ ! -e "$T/bad.db" ] || fail "a time out of range left a file"
pass "a field out of range is named"
# A time that lacks only its zone: the message says so, with it in UTC.
for bad in 2026-11-28T16:14:00 "2026-11-28 16:14:00" 20261128T161400; do
  expect_fail "not a time: '$bad' has no time zone \(for UTC: '$bad( \+00:00|Z)'" \
    "$SQLENVFS" restore --root "$R" --time "$bad" --output "$T/bad.db"
  [ ! -e "$T/bad.db" ] || fail "a rejected time ('$bad') left a file"
done
pass "a time without a zone fails saying so, not read as local time"

expect_fail 'exists.*--force' "$SQLENVFS" restore --root "$R" --time latest --output "$T/latest.db"
"$SQLENVFS" restore --root "$R" --time latest --output "$T/latest.db" --force >/dev/null
expect_fail 'is required' "$SQLENVFS" restore --root "$R" --output "$T/x.db"
expect_fail 'is required' "$SQLENVFS" restore --root "$R" --time latest
(cd "$T" && expect_fail '--output is required' "$SQLENVFS" restore --root "$R" --time latest --output '')
[ -z "$(ls -A "$T" | grep '^\.tmp-')" ] || fail "restore --output '' left a temporary in the current directory"
expect_fail '[Uu]nknown option' "$SQLENVFS" restore --root "$R" --time latest --output "$T/x.db" --bogus
expect_fail 'no production database nosuch' "$SQLENVFS" restore --root "$R" --db nosuch --time latest --output "$T/x.db"
expect_fail 'before the earliest recoverable time' "$SQLENVFS" restore --root "$R" --time @1000000000 --output "$T/x.db"
cp "$R/sqlenvfs.conf" "$T/conf.saved"
printf '[sqlenvfs]\ndefault-db=nope\n' >> "$R/sqlenvfs.conf"
expect_fail 'no production database nope \(the default database, named by \[sqlenvfs\] default-db in sqlenvfs.conf\)' \
  "$SQLENVFS" restore --root "$R" --time latest --output "$T/x.db"
cp "$T/conf.saved" "$R/sqlenvfs.conf"
[ ! -e "$T/x.db" ] || fail "a refused restore left a file"
pass "existing output, missing options, unknown database and early times refused"

# latest without an archiver: a note that production may hold later commits,
# but not in a root that holds the backups only (recovery elsewhere), where
# there is no production and no archiver to start.
"$SQLENVFS" restore --root "$R" --time latest --output "$T/n1.db" > /dev/null 2> "$T/n1.err" ||
  fail "restore latest: $(cat "$T/n1.err")"
grep -q "note: no archiver is running" "$T/n1.err" || fail "no note without an archiver: $(cat "$T/n1.err")"
mkdir -p "$T/dr/data/prod"
cp -a "$R/backups" "$T/dr/"
"$SQLENVFS" restore --root "$T/dr" --db app --time latest --output "$T/n2.db" > /dev/null 2> "$T/n2.err" ||
  fail "restore latest from the backups alone: $(cat "$T/n2.err")"
! grep -q "start \`sqlenvfs archive\`" "$T/n2.err" ||
  fail "a root with the backups only is told to start an archiver: $(cat "$T/n2.err")"
cmp "$T/n1.db" "$T/n2.db" || fail "latest from the backups alone differs"
pass "latest from a root with the backups only: the same state, no advice to start an archiver"
