# Helpers of the remote_* tests (sourced after lib.sh and pitr_lib.sh): a
# real S3 server (tests/integration/s3_lib.sh: the suite's shared one, or one
# of the test's own started in the background),
# the counting proxy (tests/s3proxy.py) in front of it, and a replica
# populated from a local root by s3cmd (tests/integration/replica_push.py).

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
