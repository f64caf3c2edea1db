# The S3 server of a test (sourced, bash; needs only $SRCDIR): the one the
# whole suite shares, or one of the test's own (scripts/s3server.sh, Ceph
# radosgw on loopback).
#
# scripts/test.sh starts one server per build before the tests and exports
# its directory in SQLENVFS_TEST_S3_SHARED. A test on that server works in a
# bucket of its own, made for it by s3_server_wait (named after the script,
# its pid and a random number, and checked empty) and removed with all its
# objects by s3_server_end, so that tests running side by side never see
# each other's objects or leases. A test that kills, stops or restarts
# radosgw asks for a server of its own ("own"), and so does every test when
# SQLENVFS_TEST_S3_SHARED is unset (a test run alone): a server under DIR
# with its bucket, stopped by s3_server_end.
#
#   s3_server_begin DIR [own]  start the test's own server in DIR in the
#                              background (it takes ~20 s: build something
#                              meanwhile); on the shared server, nothing
#   s3_server_wait             wait for it, then set and export S3_ENDPOINT,
#                              S3_BUCKET, AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
#                              AWS_SECRET_ACCESS_KEY, AWS_REGION, S3CMD_CONFIG
#                              (as scripts/s3server.sh start prints them) and
#                              S3_SERVER_DIR, the server's directory (for
#                              scripts/s3server.sh kill-rgw and start-rgw,
#                              which only an "own" server may get)
#   s3_server_start DIR [own]  both
#   s3_server_end              for the exit trap: stop the test's own server,
#                              or remove its bucket from the shared one
#
# s3_server_wait and s3_server_start return 1 with the reason on stderr.

: "${SRCDIR:?SRCDIR must point at the source tree}"
_s3_dir='' _s3_own='' _s3_pid='' _s3_bucket='' _s3_cfg=''

s3_server_begin() {
  local dir=$1 mode=${2:-}
  _s3_dir=$dir
  if [ "$mode" != own ] && [ -n "${SQLENVFS_TEST_S3_SHARED:-}" ]; then
    _s3_own=0
    return 0
  fi
  _s3_own=1
  "$SRCDIR/scripts/s3server.sh" start "$dir" >"$dir.env" 2>"$dir.err" &
  _s3_pid=$!
}

s3_server_wait() {
  if [ "$_s3_own" = 1 ]; then
    if ! wait "$_s3_pid"; then
      _s3_pid=
      cat "$_s3_dir.err" >&2
      echo "the test S3 server in $_s3_dir did not start (its logs: $_s3_dir/log)" >&2
      return 1
    fi
    _s3_pid=
    eval "$(cat "$_s3_dir.env")"
    S3_SERVER_DIR=$_s3_dir
  else
    local shared=$SQLENVFS_TEST_S3_SHARED name out
    if ! "$SRCDIR/scripts/s3server.sh" status "$shared"; then
      echo "the shared S3 server in $shared (SQLENVFS_TEST_S3_SHARED) does not answer:" \
        "start it with scripts/s3server.sh start, or unset the variable for a server of the test's own" >&2
      return 1
    fi
    eval "$("$SRCDIR/scripts/s3server.sh" env "$shared")"
    name=$(basename "$0" .sh | tr 'A-Z_' 'a-z-' | tr -cd 'a-z0-9-' | cut -c 1-40)
    S3_BUCKET=${name:-test}-$$-$RANDOM
    out=$(s3cmd -c "$S3CMD_CONFIG" mb "s3://$S3_BUCKET" 2>&1) ||
      { echo "making the bucket s3://$S3_BUCKET on the shared S3 server in $shared: $out" >&2; return 1; }
    _s3_bucket=$S3_BUCKET
    _s3_cfg=$S3CMD_CONFIG
    out=$(s3cmd -c "$S3CMD_CONFIG" ls -r "s3://$S3_BUCKET" 2>&1) ||
      { echo "listing the new bucket s3://$S3_BUCKET: $out" >&2; return 1; }
    [ -z "$out" ] ||
      { echo "the new bucket s3://$S3_BUCKET on the shared S3 server is not empty: $out" >&2; return 1; }
    S3_SERVER_DIR=$shared
  fi
  export S3_BUCKET S3_SERVER_DIR
}

s3_server_start() {
  s3_server_begin "$@"
  s3_server_wait
}

s3_server_end() {
  if [ "$_s3_own" = 1 ]; then
    # A start still under way has not written every pid `stop` reads yet.
    [ -z "$_s3_pid" ] || wait "$_s3_pid" 2>/dev/null || true
    "$SRCDIR/scripts/s3server.sh" stop "$_s3_dir" || true
  elif [ -n "$_s3_bucket" ]; then
    s3cmd -c "$_s3_cfg" rb --recursive --force "s3://$_s3_bucket" >/dev/null 2>&1 ||
      echo "# the bucket s3://$_s3_bucket is left on the shared S3 server" >&2
  fi
  return 0
}
