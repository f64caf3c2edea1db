#!/usr/bin/env bash
# The restore drill on a large database against reading the database twice,
# side by side in one run (docs/BENCHMARKS.md, target: at most 2x).
#
#   drill.sh [-m MIB] [-r RUNS] SQLENVFS_BINARY
#
# A fresh root with one production database of MIB MiB (default 512) of
# incompressible rows, an archiver running (its first-start snapshot is the
# base), a few hundred commits archived on top. Then, RUNS times (default
# 3), alternating: `cat db db > /dev/null` (the yardstick: the database file
# read twice) and `sqlenvfs verify --drill`, both with the page cache warm
# (each has read everything once before). Prints the medians and their
# ratio. The drill reads production once and its base twice (restore_image
# checks the base's crc32 against its MANIFEST in every new process before
# using it, then the comparison reads the rebuilt image), so it reads three
# times the database's size where the yardstick reads two. The default run
# takes well under 2 minutes.
set -euo pipefail

mib=512
runs=3
while getopts "m:r:" o; do
  case $o in
    m) mib=$OPTARG ;;
    r) runs=$OPTARG ;;
    *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || { echo "usage: $0 [-m MIB] [-r RUNS] SQLENVFS_BINARY" >&2; exit 2; }
bin=$(realpath "$1")
work=$(mktemp -d)
arch_pid=
cleanup() {
  if [ -n "$arch_pid" ]; then kill "$arch_pid" 2>/dev/null || true; wait "$arch_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

R=$work/root
mkdir -p "$R"
printf 'CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB);\n' > "$R/schema.sql"
"$bin" init --root "$R" >/dev/null
DB=$R/data/prod/app.db
python3 - "$DB" "$mib" <<'PY'
import os, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
n = int(sys.argv[2]) * 1024 * 1024 // 4000
with db:
    db.executemany("INSERT INTO blobs (b) VALUES (?)", ((os.urandom(4000),) for _ in range(n)))
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
db.close()
PY

"$bin" archive --root "$R" > "$work/archive.log" 2>&1 &
arch_pid=$!
for _ in $(seq 600); do
  [ -n "$(ls "$R/backups/prod/snapshots" 2>/dev/null)" ] && grep -q 'capturing' "$work/archive.log" && break
  kill -0 "$arch_pid" 2>/dev/null || { cat "$work/archive.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$(ls "$R/backups/prod/snapshots" 2>/dev/null)" ] || { echo "no snapshot within 60 s" >&2; exit 1; }
# Commits on top of the base: the rebuild applies them from the archive.
python3 - "$DB" <<'PY'
import os, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for i in range(300):
    with db:
        db.execute("UPDATE blobs SET b = ? WHERE id = ?", (os.urandom(3000), 1 + i * 97))
db.close()
PY

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
now() { date +%s.%N; }
cat "$DB" "$DB" > /dev/null
"$bin" verify --drill --root "$R" > "$work/drill.out" 2>&1 || { cat "$work/drill.out" >&2; exit 1; }
: > "$work/cat.t"
: > "$work/drill.t"
for _ in $(seq "$runs"); do
  t0=$(now); cat "$DB" "$DB" > /dev/null; t1=$(now)
  echo "$t1 - $t0" | bc -l >> "$work/cat.t"
  t0=$(now)
  "$bin" verify --drill --root "$R" > "$work/drill.out" 2>&1 || { cat "$work/drill.out" >&2; exit 1; }
  t1=$(now)
  echo "$t1 - $t0" | bc -l >> "$work/drill.t"
done
cat_s=$(median < "$work/cat.t")
drill_s=$(median < "$work/drill.t")
size=$(stat -c %s "$DB")
printf 'drill: database %d MiB, %d runs, page cache warm\n' $((size / 1048576)) "$runs"
printf '  cat db db > /dev/null   %8.3f s (median)\n' "$cat_s"
printf '  sqlenvfs verify --drill %8.3f s (median)\n' "$drill_s"
printf '  ratio drill / read twice %6.2f (target <= 2)\n' "$(echo "$drill_s / $cat_s" | bc -l)"
sed "s/^/  # /" "$work/drill.out"
