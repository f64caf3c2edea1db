#!/usr/bin/env bash
# The writer closes all its connections now and then. The last connection
# to close would checkpoint and delete the WAL; while the archiver runs its
# own connection keeps the database open, so nothing is lost and there is no
# gap. While the archiver is down the WAL really is checkpointed and deleted:
# on its next start the archiver reports a gap, takes a snapshot, and the
# times before and after stay exactly restorable.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
DB=$R/data/prod/app.db
pitr_make_root "$R"
pitr_start_archiver "$R" "$T/a1"

k=$(python3 "$ORACLE" writer --db "$DB" --log "$T/log" --duration 5 --close-every 60 --no-vacuum)
[ -e "$DB-wal" ] || fail "the WAL was deleted although the archiver holds the database open"
n_close=$(grep -c '^X' "$T/log")
[ "$n_close" -ge 2 ] || fail "the writer closed its connections only $n_close times"
pass "writer closed all its connections $n_close times while the archiver ran; the WAL stayed"

pitr_stop_archiver "$T/a1"
grep -q 'GAP' "$T/a1.err" && fail "a gap while the archiver ran: $(cat "$T/a1.err")"

k=$(python3 "$ORACLE" writer --db "$DB" --log "$T/log" --duration 2 --close-every 60 --no-vacuum --k0 "$k")
[ ! -e "$DB-wal" ] || fail "with no archiver the last close should have deleted the WAL"
pass "with the archiver down, the last close checkpointed and deleted the WAL"

pitr_start_archiver "$R" "$T/a2"
grep -q 'GAP' "$T/a2.err" || fail "no gap reported after the WAL was deleted: $(cat "$T/a2.err")"
pass "the next start reports the gap and takes a snapshot"

python3 "$ORACLE" writer --db "$DB" --log "$T/log" --duration 3 --close-every 60 --no-vacuum --k0 "$k" >/dev/null
pitr_stop_archiver "$T/a2"

n=$("$SQLENVFS" list --root "$R" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["windows"]))')
[ "$n" -eq 2 ] || fail "expected 2 windows (before and after the gap), got $n"
python3 "$ORACLE" check --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --random 10 --around 6 --expect-latest
pass "restores exact in both windows, refused in the gap"
