# Helpers of the remote_* tests (sourced after lib.sh and pitr_lib.sh): a
# real S3 server (tests/integration/s3_lib.sh: the suite's shared one, or one
# of the test's own started in the background),
# the counting proxy (tests/s3proxy.py) in front of it, a local root with a
# real writer's history, and a replica populated from it by s3cmd
# (tests/integration/replica_push.py). A test's set-up reads:
#   remote_begin; remote_history --duration 5 -- 2 backup; remote_replica NAME

source "$SRCDIR/tests/integration/s3_lib.sh"
_remote_exit() {
  local rc=$?
  set +e
  s3_server_end >/dev/null
  (exit $rc)
  _cleanup
}
trap _remote_exit EXIT

# remote_server_start: start radosgw in the background (it takes ~20 s;
# the caller builds its root meanwhile), or use the suite's shared server
# (tests/integration/s3_lib.sh).
remote_server_start() { s3_server_begin "$T/s3server"; }

# remote_server_wait: wait for it, load its variables, start the proxy
# (PX: its URL) and point AWS_ENDPOINT_URL at the proxy.
remote_server_wait() {
  s3_server_wait || fail "the test S3 server did not start"
  local port=${S3_ENDPOINT##*:}
  python3 "$SRCDIR/tests/s3proxy.py" "$port" "$T/proxy.port" 600 &
  track_pid $!
  local i
  for i in $(seq 1 100); do [ -s "$T/proxy.port" ] && break; sleep 0.1; done
  [ -s "$T/proxy.port" ] || fail "the proxy did not start"
  PX=http://127.0.0.1:$(cat "$T/proxy.port")
  export AWS_ENDPOINT_URL=$PX
  export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION
}

# remote_push ROOT URL [--parts N]: copy ROOT's backups/prod to the replica URL.
remote_push() {
  local root=$1 url=$2; shift 2
  python3 "$SRCDIR/tests/integration/replica_push.py" "$root" "$url" "$S3CMD_CONFIG" \
    "$T/stage" "$@" || fail "populating the replica $url"
}

s3cmd_() { s3cmd -c "$S3CMD_CONFIG" "$@"; }

# remote_begin: start the S3 server in the background and, meanwhile, make
# the root R=$T/root (the oracle's schema, 1 MiB segments).
remote_begin() {
  remote_server_start
  R=$T/root
  pitr_make_root "$R" 1048576
}

# remote_fill_pts ROWS: a table pts of ROWS rows (~500 bytes each) that the
# oracle's writer never touches, checkpointed into R's production database
# before the archiver starts: its pages are in the first snapshot (the only
# base when no backup is taken), not in the archive.
remote_fill_pts() {
  sqlite3 "$R/data/prod/app.db" "PRAGMA journal_mode=WAL;
    CREATE TABLE pts(id INTEGER PRIMARY KEY, v TEXT);
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)
    INSERT INTO pts SELECT i, printf('%08d', i) || hex(randomblob(240)) FROM n;
    PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null \
    || fail "filling the table pts"
}

# The fault proxy's counters (PX, set by remote_server_wait): px_reset
# zeroes them; px_bytes PREFIX SUFFIX prints the bytes answered to GETs of
# the keys under PREFIX/ of the bucket that end in SUFFIX.
px_reset() { curl -fsS "$PX/__fault/reset" >/dev/null || fail "proxy reset"; }
px_bytes() {
  curl -fsS "$PX/__fault/stats" | python3 -c '
import json, sys
b = json.load(sys.stdin)["bytes"]
print(sum(n for k, n in b.items() if k.startswith(sys.argv[1]) and k.endswith(sys.argv[2])))
' "/$S3_BUCKET/$1/" "$2"
}

# mnt_up NAME URL: mount --remote URL on $T/NAME with the cache $T/NAME.cache, log in $T/NAME.log
mnt_up() {
  mkdir -p "$T/$1"
  "$SQLENVFS" mount -f --remote "$2" "$T/$1" -o "cache=$T/$1.cache" 2> "$T/$1.log" &
  track_pid $!
  echo $! > "$T/$1.pid"
  _mounts+=("$T/$1")
  local i
  for i in $(seq 1 100); do
    mountpoint -q "$T/$1" && return 0
    kill -0 "$(cat "$T/$1.pid")" 2>/dev/null || break
    sleep 0.1
  done
  fail "mount $1 did not come up: $(cat "$T/$1.log")"
}

# remote_history [--quiet-tail] WRITER_OPTION... [-- SECONDS COMMAND...]:
# R's history under `sqlenvfs archive` (its output in $T/archive.*): the
# oracle's writer with the WRITER_OPTIONs (--duration ...), logging to
# $T/log; while it writes, for each pair, wait SECONDS then run
# `sqlenvfs COMMAND --root $R` (backup, snapshot). With --quiet-tail, then a
# quiet tail of small, spaced transactions (the unsealed segment gets
# several records, to be shipped as several parts). The archiver is stopped
# (everything committed archived) before it returns.
remote_history() {
  local quiet=0 wargs=() wpid
  if [ "${1:-}" = --quiet-tail ]; then quiet=1; shift; fi
  while [ $# -gt 0 ] && [ "$1" != -- ]; do wargs+=("$1"); shift; done
  [ $# -eq 0 ] || shift
  pitr_start_archiver "$R" "$T/archive"
  python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log" "${wargs[@]}" &
  wpid=$!
  track_pid $wpid
  while [ $# -ge 2 ]; do
    sleep "$1"
    "$SQLENVFS" "$2" --root "$R" >/dev/null || fail "$2"
    shift 2
  done
  [ $# -eq 0 ] || fail "remote_history: '$1' has no command after it"
  wait $wpid || fail "the writer"
  if [ $quiet -eq 1 ]; then
    touch "$T/quiet"
    python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log" --duration 1.5 \
      --k0 "$(pitr_commits "$T/log")" --quiet-file "$T/quiet" --max-sleep 0.08 >/dev/null \
      || fail "the quiet writer"
  fi
  pitr_stop_archiver "$T/archive"
}

# remote_replica NAME [remote_push options]: once the server is up (waited
# for on the first call), copy R's backups/prod to URL=s3://$S3_BUCKET/NAME.
remote_replica() {
  local name=$1; shift
  [ "${_remote_up:-}" = 1 ] || { remote_server_wait; _remote_up=1; }
  URL=s3://$S3_BUCKET/$name
  remote_push "$R" "$URL" "$@"
}

# rremote T OUT: restore --remote "$URL" to OUT at T; prints its error
# line and returns restore's exit status. The engine's notes ("sqlenvfs:
# ..." lines, also printed by a local restore) go to $T/notes. Fails the
# test when a message names the temporary directory.
rremote() {
  local rc=0
  "$SQLENVFS" restore --remote "$URL" --time "$1" --output "$2" 2>"$T/rr.err" >/dev/null || rc=$?
  grep -v '^sqlenvfs: ' "$T/rr.err" || true
  grep '^sqlenvfs: ' "$T/rr.err" >> "$T/notes" || true
  ! grep -q "\.tmp-remote" "$T/rr.err" ||
    fail "a message names the temporary directory: $(cat "$T/rr.err")"
  return $rc
}
