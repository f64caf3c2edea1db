#!/usr/bin/env bash
# Does migrate-pg's memory stay flat as tables grow? Migrates the same wide
# table (every mapped type; tests/integration/migrate_pg.sql) at two sizes
# from a throwaway PostgreSQL cluster on a loopback port, and prints the
# peak RSS of each run (GNU time -v), the time taken, and the ratios.
#
#   scripts/bench-migrate.sh            100,000 and 1,000,000 rows
#   scripts/bench-migrate.sh --quick    10,000 and 100,000 rows (a smoke run)
#
# Flat memory means an RSS ratio near 1 while the rows grow tenfold.
set -euo pipefail
cd "$(dirname "$0")/.."

small=100000
large=1000000
if [ "${1:-}" = "--quick" ]; then
  small=10000
  large=100000
elif [ -n "${1:-}" ]; then
  echo "usage: $0 [--quick]" >&2
  exit 2
fi

scripts/deps.sh
if [ ! -x /usr/bin/time ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi

BUILD=${BUILD:-build-bench}
if [ ! -x "$BUILD/src/sqlenvfs" ]; then
  meson setup "$BUILD" -Dbuildtype=release -Dtests=false >/dev/null
fi
ninja -C "$BUILD" >/dev/null
SQLENVFS=$PWD/$BUILD/src/sqlenvfs

source scripts/pgcluster.sh
W=$(mktemp -d "${TMPDIR:-/tmp}/sqlenvfs-bench-XXXXXX")
trap 'pgc_stop; rm -rf "$W"' EXIT
pgc_start

run() { # rows -> prints "rss_kib seconds"
  local rows=$1 root="$W/root-$1"
  pgc_psql postgres -c "CREATE DATABASE src$rows" >/dev/null
  pgc_psql "src$rows" -v rows="$rows" -f tests/integration/migrate_pg.sql >/dev/null
  mkdir -p "$root/data/prod"
  sqlite3 "$root/data/prod/app.db" "PRAGMA journal_mode = WAL" >/dev/null
  /usr/bin/time -v -o "$W/time-$rows" "$SQLENVFS" migrate-pg --root "$root" \
    --dsn "host=127.0.0.1 port=$PGC_PORT user=postgres dbname=src$rows" \
    --tables everything --create-tables >"$W/out-$rows"
  local rss secs
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$W/time-$rows")
  secs=$(sed -n 's/^public.everything -> everything: [0-9]* rows in \([0-9.]*\) s.*/\1/p' "$W/out-$rows")
  echo "$rss $secs"
  rm -rf "$root"
  pgc_psql postgres -c "DROP DATABASE src$rows" >/dev/null
}

res=$(run "$small")
read -r rss_s secs_s <<<"$res"
res=$(run "$large")
read -r rss_l secs_l <<<"$res"

printf '%-10s %12s %12s\n' rows "peak RSS" "load time"
printf '%-10s %9s KiB %10s s\n' "$small" "$rss_s" "$secs_s"
printf '%-10s %9s KiB %10s s\n' "$large" "$rss_l" "$secs_l"
python3 - "$small" "$large" "$rss_s" "$rss_l" "$secs_s" "$secs_l" <<'PY'
import sys
s, l, rs, rl, ts, tl = map(float, sys.argv[1:])
print(f"rows x{l / s:.0f}: peak RSS x{rl / rs:.2f}, load time x{tl / ts:.2f}")
PY
