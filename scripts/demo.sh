#!/usr/bin/env bash
# The demo: install what is missing, build, create a demo root in ./demo with
# the synthetic vessel data set, take a backup and a snapshot, and show what
# there is. Run it again to start over (the old demo root is moved aside).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh

if [ ! -d build ]; then
  meson setup build -Dwerror=true > /dev/null
fi
ninja -C build > /dev/null
SQLENVFS=$PWD/build/src/sqlenvfs
ROOT=$PWD/demo

if [ -e "$ROOT" ]; then
  old="$ROOT.old-$(date -u +%Y%m%dT%H%M%SZ)"
  echo "== moving the previous demo root aside to $old"
  mv "$ROOT" "$old"
fi
mkdir -p "$ROOT"
cp schema.sql "$ROOT/schema.sql"

echo "== sqlenvfs init --demo"
time "$SQLENVFS" init --root "$ROOT" --demo
echo
echo "== sqlenvfs backup"
"$SQLENVFS" backup --root "$ROOT"
echo
echo "== sqlenvfs snapshot"
"$SQLENVFS" snapshot --root "$ROOT"
echo
echo "== sqlenvfs info"
"$SQLENVFS" info --root "$ROOT"
echo
echo "== sqlenvfs list"
"$SQLENVFS" list --root "$ROOT"
echo
echo "The demo root is $ROOT; try: $SQLENVFS verify --root $ROOT"
