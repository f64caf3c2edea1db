#!/usr/bin/env bash
# A request to archive "up to now" (a write of a time just past to
# ctl/refresh-dev, a lookup of pitr/@<now>) under a writer that commits
# without pause: the forced cycle's routine checkpoint archives more commits
# without a sync, and the alive time was published over them, which the
# archive writer refused (a GLib critical in the log, the alive time not
# moved, the request answered as done). Each request now publishes its
# alive time only over durable records; no critical, and every time just
# past that a request said was archived is one the timeline holds.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root M=$T/mnt
make_root "$R" <(echo "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB);")
printf '[archive]\ncheckpoint-pages=200\n' > "$R/sqlenvfs.conf"
mount_root "$R" "$M"
wait_archiving "$M"

python3 - "$R/data/prod/app.db" "$T/stop" <<'PY' & app=$!
import os, sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
while not os.path.exists(sys.argv[2]):
    con.execute("BEGIN IMMEDIATE")
    for _ in range(20):
        con.execute("INSERT INTO t(v) VALUES (?)", (os.urandom(3000),))
    con.execute("COMMIT")
PY
track_pid "$app"

n=0 end=$(( $(date +%s) + 12 ))
while [ "$(date +%s)" -lt "$end" ]; do
  t=$(date +%s.%N | cut -c1-17)
  stat "$M/pitr/@$t/app.db" > /dev/null 2>&1 & looker=$!
  echo "@$t" > "$M/ctl/refresh-dev" || fail "refresh-dev to @$t, just past: $(cat "$M/ctl/refresh-dev")"
  wait "$looker" || true
  n=$((n + 1))
done
touch "$T/stop"
wait "$app"
unmount_root "$M"
log=$R/.sqlenvfs/mount.log
if grep -q "critical" "$log"; then
  fail "the mount's log has criticals: $(grep -m3 critical "$log")"
fi
[ "$n" -gt 10 ] || fail "only $n requests made"
pass "$n requests to archive up to now under a busy writer: no critical in the log"
