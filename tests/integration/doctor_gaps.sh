#!/usr/bin/env bash
# `sqlenvfs doctor` reports the gaps in production's recoverable history
# that `list` shows: a WAL reset while no archiver ran leaves a gap between
# two windows; doctor reports it (as ok: a gap in capture is a fact of
# the history, not a fault now), per database, with how many, the
# newest one's times and reason, and what to do, in text and in --json.
# A history without a gap gets no such finding.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
pitr_make_root "$R"
cat >>"$R/sqlenvfs.conf" <<'CONF'
[doctor]
acknowledged-bugs=wal-reset
CONF
db=$R/data/prod/app.db
commit() { sqlite3 "$db" "INSERT INTO tx(kind, payload, crc) VALUES ('$1', x'00', 0)"; }
gaps_finding() { # JSON file: the "gaps" findings of prod/app, one per line
  python3 - "$1" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
for f in doc["findings"]:
    if f["check"] == "gaps" and f["subject"] == "prod/app":
        print(f["severity"], "|", f["found"], "|", f["action"])
PY
}

pitr_start_archiver "$R" "$T/a1"
commit one
commit two
pitr_stop_archiver "$T/a1"
"$SQLENVFS" doctor --root "$R" --json >"$T/d0.json" || true
[ -z "$(gaps_finding "$T/d0.json")" ] ||
  fail "doctor reports gaps in a history without one: $(gaps_finding "$T/d0.json")"

# The archiver stops; another process commits and resets the WAL; the
# restarted archiver records the gap and starts a new window.
commit lost
sqlite3 "$db" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
commit after-reset
pitr_start_archiver "$R" "$T/a2"
grep -q 'GAP' "$T/a2.err" || fail "the restart after a WAL reset reported no gap: $(cat "$T/a2.err")"
commit three
pitr_stop_archiver "$T/a2"
"$SQLENVFS" list --root "$R" >"$T/list"
[ "$(grep -c '^  app ' "$T/list")" -ge 2 ] || fail "list shows no two windows: $(cat "$T/list")"

rc=0
"$SQLENVFS" doctor --root "$R" --json >"$T/d1.json" || rc=$?
[ "$rc" = 1 ] || fail "doctor exits $rc with the archiver stopped (1, its warning, expected)"
f=$(gaps_finding "$T/d1.json")
echo "$f" | grep -q "^ok | the recoverable history has 1 gap in the last 7 days \
(\[retention\] pitr-keep-days); the newest, from .* to .*, cannot be restored: a gap in capture" ||
  fail "doctor --json does not report the gap: $f"
echo "$f" | grep -q "| keep the archiver running .*take a backup" ||
  fail "the gap finding does not say what to do: $f"
rc=0
"$SQLENVFS" doctor --root "$R" >"$T/d1.txt" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "doctor exits $rc with the archiver stopped"
tr -s ' \n' ' ' <"$T/d1.txt" | grep -q "ok gaps the recoverable history has 1 gap in the last 7 days" ||
  fail "doctor's text does not report the gap: $(cat "$T/d1.txt")"
pass "doctor reports a gap in capture in the history (ok: a fact, not a fault), with its times, reason and remedy"

# The clock stepped back after commits were archived: the newest archived
# time lies ahead of the clock. doctor, run with its clock two minutes
# behind (libfaketime), warns and says what that means; with its own clock
# it says nothing of the kind.
FT=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
[ -e "$FT" ] || fail "libfaketime is not installed (scripts/deps.sh installs faketime)"
clock_finding() { # JSON file: the archive finding about the clock, if any
  python3 - "$1" <<'PY'
import json, sys
for f in json.load(open(sys.argv[1]))["findings"]:
    if f["check"] == "archive" and "ahead of this machine's clock" in f["found"]:
        print(f["severity"], "|", f["found"], "|", f["action"])
PY
}
[ -z "$(clock_finding "$T/d1.json")" ] || fail "a clock ahead without cause: $(clock_finding "$T/d1.json")"
rc=0
# (A sanitizer build must be told that its runtime is not the first library.)
FAKETIME=-120s LD_PRELOAD=$FT ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
  "$SQLENVFS" doctor --root "$R" --json >"$T/d2.json" || rc=$?
f=$(clock_finding "$T/d2.json")
echo "$f" | grep -Eq "^warning \| the newest archived time, .*, is 1?[0-9]{2}(\.[0-9])? s ahead|^warning \| the newest archived time, .*, is [12] min" ||
  fail "doctor behind the archive's times does not warn: $f"
echo "$f" | grep -q "| keep the clock slewed, not stepped" || fail "the clock finding says nothing to do: $f"
pass "an archive whose newest time is ahead of the clock: warned, with what it means"
