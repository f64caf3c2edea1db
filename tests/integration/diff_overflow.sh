#!/usr/bin/env bash
# `sqlenvfs diff` on rows whose payload spans several overflow pages: blobs
# and texts of 3 to 5 overflow pages changed in the middle or at the end of
# their chain (SQLite then writes those overflow pages alone, no leaf), and
# a WITHOUT ROWID table whose keys are told apart only on their third
# overflow page. A real client commits three states while `sqlenvfs
# archive` runs; for each pair the script diff prints turns the restored
# older state into the newer one exactly, and `diff --summary` prints what
# `sqldiff --summary` prints, and a changed overflow page is searched for
# only when no row collected from a changed leaf has it in its chain
# (diff_overflow.py says what each state changes).
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

HELPER="$SRCDIR/tests/integration/diff_overflow.py"
command -v sqldiff >/dev/null || fail "sqldiff is not installed (Debian: sqlite3-tools; scripts/deps.sh)"

R=$T/root
mkdir -p "$R"
python3 "$HELPER" schema > "$R/schema.sql"
"$SQLENVFS" init --root "$R" >/dev/null
pitr_start_archiver "$R" "$T/archive"

python3 "$HELPER" writer --db "$R/data/prod/app.db" --archive "$R/backups/prod/wal_archives/app" \
  --out "$T/states"
pitr_stop_archiver "$T/archive"
pass "three states committed and archived"

python3 "$HELPER" check --sqlenvfs "$SQLENVFS" --root "$R" --states "$T/states" --tmp "$T"
