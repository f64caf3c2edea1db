#!/usr/bin/env bash
# The demo: install what is missing, build, create a demo root in ./demo with
# the synthetic vessel data set, take a backup and a snapshot, show what there
# is, and leave the root mounted at ./demo/mnt. Run it again to start over
# (the old demo root is unmounted and moved aside).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh

if [ ! -d build ]; then
  meson setup build -Dwerror=true > /dev/null
fi
ninja -C build > /dev/null
SQLENVFS=$PWD/build/src/sqlenvfs
ROOT=$PWD/demo

MNT=$ROOT/mnt

if mountpoint -q "$MNT" 2>/dev/null; then
  echo "== unmounting the previous demo mount $MNT"
  fusermount3 -u "$MNT" || fusermount3 -u -z "$MNT"
fi
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
echo "== sqlenvfs mount $ROOT $MNT"
mkdir -p "$MNT"
"$SQLENVFS" mount "$ROOT" "$MNT"
ls -l "$MNT" "$MNT/prod"
echo
# The archiver opens the recoverable window once it has taken over the
# database's WAL and taken its first snapshot, a moment after the mount
# (longer on a slow or busy disk): wait for it before pointing at pitr/ (a
# time before the window is, rightly, not there).
for i in $(seq 1200); do
  [ -e "$MNT/pitr/latest/app.db" ] && break
  [ "$i" -eq 20 ] && echo "== waiting for the archiver's first snapshot, where the recoverable window starts"
  sleep 0.1
done
[ -e "$MNT/pitr/latest/app.db" ] ||
  echo "== no recoverable window yet after 2 minutes: see $ROOT/.sqlenvfs/mount.log"
echo "== the recoverable window (ls $MNT/pitr/)"
ls "$MNT/pitr"
"$SQLENVFS" list --root "$ROOT" | sed -n '/^recoverable windows/,/^restore drills/p' | sed '$d'
echo
cat <<EOF
The demo root $ROOT is mounted at $MNT (daemon log: $ROOT/.sqlenvfs/mount.log).
Try:
  sqlite3 $MNT/prod/app.db 'SELECT count(*) FROM raw_vessel_events'
  ls -l $MNT/snapshots/*/
  echo 1 > $MNT/ctl/backup && cat $MNT/ctl/backup && ls $MNT/backups
  python3 -m json.tool $MNT/status
  sqlite3 "$MNT/pitr/\$(date -u +%Y-%m-%dT%H:%M:%SZ)/app.db" 'SELECT count(*) FROM raw_vessel_events'
  echo 1 > $MNT/ctl/refresh-dev && sqlite3 $MNT/dev/app.db 'SELECT * FROM _environment'
  $SQLENVFS verify --root $ROOT
  fusermount3 -u $MNT
EOF
