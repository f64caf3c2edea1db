# Helpers of the ship_* tests (sourced after lib.sh): a real S3 server
# (tests/integration/s3_lib.sh, released under the trap), a root whose
# [replica] points at it, the archiver running in the background, and
# checks of the replica with s3cmd, an independent client.

source "$SRCDIR/tests/integration/s3_lib.sh"
_ship_exit() {
  local rc=$?
  set +e
  s3_server_end
  (exit $rc)
  _cleanup
}
trap _ship_exit EXIT

# ship_start_server [own]: the suite's shared server, with a bucket of the
# test's own, or (with "own", for a test that kills, stops or restarts
# radosgw through scripts/s3server.sh kill-rgw "$SRV") a server of its own;
# tests/integration/s3_lib.sh says which. SRV: the server's directory.
ship_start_server() {
  local t0
  t0=$(date +%s%N)
  s3_server_start "$T/s3server" "${1:-}" || fail "the test S3 server did not start"
  SRV=$S3_SERVER_DIR
  note "radosgw up at $S3_ENDPOINT, bucket $S3_BUCKET, in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
}

s3cmd_() { s3cmd -c "$S3CMD_CONFIG" "$@"; }

# ship_make_root ROOT PREFIX [ENDPOINT]: a root with one database "app"
# (table t), 1 MiB segments, shipping to s3://$S3_BUCKET/PREFIX every second.
ship_make_root() {
  local root=$1 prefix=$2 endpoint=${3:-$S3_ENDPOINT}
  mkdir -p "$root"
  echo "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);" >"$root/schema.sql"
  cat >"$root/sqlenvfs.conf" <<CONF
[archive]
segment-max-bytes=1048576
[replica]
url = s3://$S3_BUCKET/$prefix
endpoint = $endpoint
sync-interval = 1
max-retries = 3
backoff-base-ms = 50
backoff-max-ms = 500
connect-timeout = 2
low-speed-time = 3
CONF
  "$SQLENVFS" init --root "$root" >/dev/null
}

# ship_start ROOT PREFIX: `sqlenvfs archive` in the background (stderr in
# PREFIX.err, pid in PREFIX.pid), waiting until it captures and ships.
ship_start() {
  local root=$1 prefix=$2 i
  "$SQLENVFS" archive --root "$root" >"$prefix.out" 2>"$prefix.err" &
  echo $! >"$prefix.pid"
  track_pid "$(cat "$prefix.pid")"
  for i in $(seq 1 200); do
    grep -q 'archiver app: capturing' "$prefix.err" && return 0
    kill -0 "$(cat "$prefix.pid")" 2>/dev/null || fail "the archiver exited: $(cat "$prefix.err")"
    sleep 0.1
  done
  fail "the archiver did not start capturing within 20 s: $(cat "$prefix.err")"
}

ship_stop() {
  local prefix=$1 pid rc=0
  pid=$(cat "$prefix.pid")
  kill -TERM "$pid"
  wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || { cat "$prefix.err" >&2; fail "the archiver exited with $rc on SIGTERM"; }
}

# ship_write DB N [BYTES]: N committed transactions of one random row each.
ship_write() {
  python3 - "$1" "$2" "${3:-1000}" <<'PY'
import os, sqlite3, sys
c = sqlite3.connect(sys.argv[1])
for _ in range(int(sys.argv[2])):
    c.execute("INSERT INTO t(v) VALUES (?)", (os.urandom(int(sys.argv[3])),))
    c.commit()
c.close()
PY
}

# ship_download PREFIX DIR: the replica's objects, with s3cmd.
ship_download() {
  rm -rf "$2"
  mkdir -p "$2"
  s3cmd_ get -r --force "s3://$S3_BUCKET/$1/" "$2/" >/dev/null
}

# ship_caught_up ROOT PREFIX: the replica holds everything local (checked
# with ship_check.py --complete on a fresh download).
ship_caught_up() {
  ship_download "$2" "$T/dl" && python3 "$SRCDIR/tests/integration/ship_check.py" \
    "$1/backups/prod" "$T/dl" --complete
}

# ship_wait_caught_up ROOT PREFIX SECONDS
ship_wait_caught_up() {
  local deadline=$(( $(date +%s) + $3 ))
  until ship_caught_up "$1" "$2" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] ||
      { ship_caught_up "$1" "$2" || true; fail "the replica $2 did not catch up within $3 s"; }
    sleep 0.5
  done
}

# ship_proxy: start tests/s3proxy.py in front of radosgw; sets PX (its URL).
ship_proxy() {
  python3 "$SRCDIR/tests/s3proxy.py" "${S3_ENDPOINT##*:}" "$T/proxy.port" 300 &
  track_pid $!
  for _ in $(seq 1 100); do [ -s "$T/proxy.port" ] && break; sleep 0.1; done
  [ -s "$T/proxy.port" ] || fail "the fault proxy did not start"
  PX=http://127.0.0.1:$(cat "$T/proxy.port")
}
fault() {
  python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' \
    "$PX/__fault/$1"
}
proxy_requests() { fault stats | python3 -c 'import json, sys; print(json.load(sys.stdin)["requests"])'; }

# ship_status_get ROOT KEY: a value of [replica] in the root's replica-status.
ship_status_get() { sed -n "s/^$2=//p" "$1/.sqlenvfs/replica-status" | head -1; }
ship_backlog() { sed -n 's/^backlog=//p' "$1/.sqlenvfs/replica-status" | head -1; }

# ship_backlog_over ROOT N WHAT: wait (10 s at most) until ROOT's status counts
# more than N bytes not yet shipped, then check that `list` says so too
# (never "0 bytes not yet shipped" while nothing is shipped); prints the
# count.
ship_backlog_over() {
  local n=0
  for _ in $(seq 1 100); do
    n=$(ship_backlog "$1")
    [ "${n:-0}" -gt "$2" ] && break
    sleep 0.1
  done
  [ "${n:-0}" -gt "$2" ] || fail "$3: its status counts ${n:-no} bytes not yet shipped (more than" \
    "$2 expected) while it ships nothing: $(cat "$1/.sqlenvfs/replica-status")"
  "$SQLENVFS" list --root "$1" |
    grep -Eq '^  app .*, [1-9][0-9.]* (bytes|KiB|MiB|GiB) not yet shipped' ||
    fail "$3: its list does not count what is not yet shipped: $("$SQLENVFS" list --root "$1")"
  echo "$n"
}
