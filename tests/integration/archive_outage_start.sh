#!/usr/bin/env bash
# An archiver killed at once on its first start (its snapshot perhaps not
# taken), a commit left in the WAL, then a restart that goes on with the
# chain and archives that commit late, killed a moment later: the outage
# recorded then covers the start of the chain's only window, which the
# timeline takes away. list, restore, verify and doctor then answer (a
# window, or NOT RECOVERABLE until a snapshot), never abort; they used to
# free the window's note twice.
source "$SRCDIR/tests/integration/lib.sh"

for pause in 0.02 0.05 0.1 0.2; do
  R=$T/root-$pause
  mkdir -p "$R"
  echo "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);" > "$R/schema.sql"
  "$SQLENVFS" init --root "$R" > /dev/null || fail "init"
  "$SQLENVFS" archive --root "$R" 2> "$R.1.err" > /dev/null &
  p=$!
  track_pid "$p"
  for _ in $(seq 1 500); do grep -q capturing "$R.1.err" && break; sleep 0.01; done
  kill -9 "$p"; wait "$p" 2>/dev/null || true
  python3 -c "import sqlite3, os, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute(\"INSERT INTO t(v) VALUES ('v1')\")
os._exit(0)" "$R/data/prod/app.db"
  "$SQLENVFS" archive --root "$R" 2> "$R.2.err" > /dev/null &
  p=$!
  track_pid "$p"
  for _ in $(seq 1 500); do grep -q capturing "$R.2.err" && break; sleep 0.01; done
  sleep "$pause"
  kill -9 "$p"; wait "$p" 2>/dev/null || true
  for cmd in "list" "verify" "doctor" "restore --time latest --output $T/l-$pause.db"; do
    rc=0
    # shellcheck disable=SC2086
    "$SQLENVFS" $cmd --root "$R" > "$T/out" 2> "$T/err" || rc=$?
    [ "$rc" -le 2 ] || fail "$cmd after a restart killed ${pause}s in: exit $rc: $(cat "$T/err")"
    ! grep -qi "free()\|AddressSanitizer\|Aborted" "$T/err" ||
      fail "$cmd after a restart killed ${pause}s in: $(cat "$T/err")"
  done
done
pass "a restart killed after archiving late commits: list, verify, doctor and restore answer"
