#!/usr/bin/env bash
# A real S3 server for tests: Ceph radosgw with one monitor and one in-memory
# OSD, everything on 127.0.0.1 and every file under one directory.
#
#   scripts/s3server.sh start DIR    build the cluster in DIR (which must be
#                                    empty or missing), start it, create a
#                                    test user and bucket, print the endpoint
#                                    and credentials as shell assignments
#   scripts/s3server.sh env DIR      print them again for a running server
#   scripts/s3server.sh status DIR   exit 0 when radosgw answers, else 1
#   scripts/s3server.sh stop DIR     kill the processes that `start` began
#                                    (their pids are in DIR/pids), nothing else
#   scripts/s3server.sh kill-rgw DIR [SIGNAL]
#                                    send SIGNAL (default KILL) to radosgw only
#                                    (STOP and CONT freeze and thaw it); the
#                                    monitor and the OSD, which hold the data,
#                                    go on
#   scripts/s3server.sh start-rgw DIR  start radosgw again after kill-rgw, on
#                                    the same port, and wait until it answers
#
# Usage in a test:   eval "$(scripts/s3server.sh start "$dir")"
# sets S3_ENDPOINT, S3_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
# AWS_REGION, AWS_ENDPOINT_URL and S3CMD_CONFIG (an s3cmd -c file). The packages come from scripts/deps.sh.
# Bounded: `start` fails, saying which daemon and where its log is, when the
# cluster is not serving within S3SERVER_TIMEOUT seconds (120).
# The OSD keeps its objects in memory, at most S3SERVER_MEMSTORE_BYTES
# (1 GiB).
set -euo pipefail

cmd=${1:-}
dir=${2:-}
timeout=${S3SERVER_TIMEOUT:-120}
access_key=sqlenvfstestaccesskey
secret_key=sqlenvfs/test/secret/key/0123456789
bucket=sqlenvfs-test
region=us-east-1

die() { echo "s3server: $*" >&2; exit 1; }
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: $0 start|stop|status|env|kill-rgw|start-rgw DIR"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

print_env() {
  local port
  port=$(cat "$dir/rgw.port")
  cat <<EOF
S3_ENDPOINT=http://127.0.0.1:$port
AWS_ENDPOINT_URL=http://127.0.0.1:$port
AWS_ACCESS_KEY_ID=$access_key
AWS_SECRET_ACCESS_KEY=$secret_key
AWS_REGION=$region
S3_BUCKET=$bucket
S3CMD_CONFIG=$dir/s3cfg
export S3CMD_CONFIG S3_ENDPOINT AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION S3_BUCKET
EOF
}

is_up() {
  [ -f "$dir/rgw.port" ] || return 1
  python3 - "$(cat "$dir/rgw.port")" <<'EOF'
import sys, urllib.request
try:
    urllib.request.urlopen("http://127.0.0.1:%s/" % sys.argv[1], timeout=2).read()
except urllib.error.HTTPError:
    pass
except Exception:
    sys.exit(1)
EOF
}

# A process that exists and has not exited (a zombie, not yet reaped by
# whoever adopted it, has).
is_running() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

stop() {
  [ -f "$dir/pids" ] || return 0
  local pids p
  pids=$(cat "$dir/pids")
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 20); do
    local alive=0
    for p in $pids; do is_running "$p" && alive=1; done
    [ "$alive" -eq 0 ] && break
    sleep 0.1
  done
  for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
  rm -f "$dir/pids"
}

# Start a daemon in the foreground mode (-f) in the background, and remember
# its pid so that `stop` ends it and nothing else.
spawn() { # name log cmd...
  local name=$1 log=$2; shift 2
  "$@" >"$log" 2>&1 </dev/null &
  echo "$!" >>"$dir/pids"
  echo "$!" >"$dir/$name.pid"
}

# Wait until a command succeeds; 1 (saying what and where its log is) when
# the attempt's deadline passes.
wait_for() { # what log cmd...
  local what=$1 log=$2; shift 2
  while ! "$@" >/dev/null 2>&1; do
    # An OSD that a monitor refused ("wrong fsid", seen now and then when a
    # cluster starts right after another stopped) never comes up: start over.
    if [ "$(date +%s)" -ge "$attempt_deadline" ] ||
       grep -qs "unable to update_crush_device_class" "$log"; then
      tail -n 15 "$log" >&2 2>/dev/null || true
      echo "s3server: $what is not up after $(( $(date +%s) - attempt_start ))s (see $log)" >&2
      return 1
    fi
    sleep 0.2
  done
}

start() {
  for b in monmaptool ceph-mon ceph-osd radosgw radosgw-admin ceph python3 s3cmd; do
    command -v "$b" >/dev/null || die "$b is missing: run scripts/deps.sh (radosgw ceph-mon ceph-osd)"
  done
  if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
    die "$dir is not empty (stop the server there and remove it, or choose another directory)"
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  deadline=$(( $(date +%s) + timeout ))
  # An attempt that does not come up is torn down and made again (fresh
  # ports and cluster id, after a pause that grows: 2 to 4 s, then 4 to 6,
  # ...), up to six attempts within the same overall deadline; the last
  # one's logs are kept. A refused OSD ("wrong fsid", below) fails its
  # attempt at once, and has been seen three times in a row within 14 s
  # under a loaded test run: the pauses let what causes it pass.
  local started attempt
  started=$(date +%s)
  for attempt in 1 2 3 4 5 6; do
    attempt_start=$(date +%s)
    attempt_deadline=$(( attempt < 6 ? attempt_start + timeout / 3 : deadline ))
    [ "$attempt_deadline" -le "$deadline" ] || attempt_deadline=$deadline
    if bring_up; then
      print_env
      return 0
    fi
    stop
    [ "$attempt" -eq 6 ] || [ "$(date +%s)" -ge "$deadline" ] && break
    find "$dir" -mindepth 1 -delete
    sleep $(( 2 * attempt + RANDOM % 3 ))
  done
  die "the server did not come up in $attempt attempts ($(( $(date +%s) - started ))s; the last one's logs are in $dir/log)"
}

# Make the cluster in the empty $dir and start it; 1 when a step fails.
bring_up() {
  local fsid mon_port rgw_port conf osd_uuid
  fsid=$(python3 -c 'import uuid; print(uuid.uuid4())')
  osd_uuid=$(python3 -c 'import uuid; print(uuid.uuid4())')
  mon_port=$(free_port)
  rgw_port=$(free_port)
  echo "$rgw_port" >"$dir/rgw.port"
  conf=$dir/ceph.conf
  mkdir -p "$dir/mon" "$dir/osd" "$dir/run" "$dir/log"
  # Loopback only, no authentication (the radosgw user's keys still are
  # checked on every S3 request), one OSD, memory only, small pools.
  cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$mon_port
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr2 = false
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
run dir = $dir/run
admin socket = $dir/run/\$name.asok
pid file = $dir/run/\$name.pid
log file = $dir/log/\$name.log
crash dir = $dir/crash
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon allow pool delete = true
osd crush chooseleaf type = 0
osd pool default pg num = 8
osd pool default pgp num = 8
mon data avail warn = 2
mon data avail crit = 1
mon max pg per osd = 1000
[mon.a]
mon data = $dir/mon
[osd.0]
osd data = $dir/osd
osd objectstore = memstore
memstore device bytes = ${S3SERVER_MEMSTORE_BYTES:-1073741824}
osd journal size = 0
[client.rgw.test]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw data = $dir/rgw
rgw dns name = 127.0.0.1
ms mon client mode = crc
EOF
  : >"$dir/pids"
  monmaptool --create --fsid "$fsid" --addv a "[v1:127.0.0.1:$mon_port]" "$dir/monmap" \
    >"$dir/log/monmaptool.out" 2>&1 || die "monmaptool failed: $(cat "$dir/log/monmaptool.out")"
  ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" >"$dir/log/mon-mkfs.out" 2>&1 ||
    die "ceph-mon --mkfs failed: $(cat "$dir/log/mon-mkfs.out")"
  spawn mon "$dir/log/mon.out" ceph-mon -c "$conf" -f -i a
  local C=(ceph -c "$conf" --connect-timeout 5)
  wait_for "the monitor" "$dir/log/mon.a.log" "${C[@]}" mon stat || return 1
  "${C[@]}" osd new "$osd_uuid" 0 >"$dir/log/osd-new.out" 2>&1 ||
    { cat "$dir/log/osd-new.out" >&2; return 1; }
  mkdir -p "$dir/osd"
  ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >"$dir/log/osd-mkfs.out" 2>&1 ||
    { cat "$dir/log/osd-mkfs.out" >&2; return 1; }
  spawn osd "$dir/log/osd.out" ceph-osd -c "$conf" -f -i 0
  osd_up() { "${C[@]}" osd stat 2>/dev/null | grep -q '1 up'; }
  wait_for "the OSD" "$dir/log/osd.0.log" osd_up || return 1
  spawn rgw "$dir/log/rgw.out" radosgw -c "$conf" -f -n client.rgw.test
  wait_for "radosgw" "$dir/log/client.rgw.test.log" is_up || return 1
  radosgw-admin -c "$conf" user create --uid=sqlenvfs-test --display-name=sqlenvfs-test \
    --access-key="$access_key" --secret-key="$secret_key" >"$dir/log/user.out" 2>&1 ||
    { cat "$dir/log/user.out" >&2; return 1; }
  # An s3cmd configuration for this server (tests use s3cmd as an
  # independent client), and the bucket, made with it.
  cat >"$dir/s3cfg" <<EOF
[default]
access_key = $access_key
secret_key = $secret_key
host_base = 127.0.0.1:$rgw_port
host_bucket = 127.0.0.1:$rgw_port
bucket_location = $region
use_https = False
signature_v2 = False
EOF
  chmod 600 "$dir/s3cfg"
  s3cmd -c "$dir/s3cfg" mb "s3://$bucket" >"$dir/log/bucket.out" 2>&1 ||
    { cat "$dir/log/bucket.out" >&2; return 1; }
}

kill_rgw() {
  local sig=${1:-KILL} pid
  pid=$(cat "$dir/rgw.pid")
  kill -"$sig" "$pid"
  if [ "$sig" = KILL ] || [ "$sig" = 9 ]; then
    while is_running "$pid"; do sleep 0.05; done
    # Its pid may be reused by another process: `stop` must not kill that.
    grep -vx "$pid" "$dir/pids" >"$dir/pids.new" || true
    mv "$dir/pids.new" "$dir/pids"
  fi
}

start_rgw() {
  attempt_start=$(date +%s)
  attempt_deadline=$(( attempt_start + timeout ))
  spawn rgw "$dir/log/rgw.out" radosgw -c "$dir/ceph.conf" -f -n client.rgw.test
  wait_for "radosgw" "$dir/log/client.rgw.test.log" is_up
}

case "$cmd" in
  start) start ;;
  kill-rgw) kill_rgw "${3:-KILL}" ;;
  start-rgw) start_rgw ;;
  stop) stop ;;
  status) is_up ;;
  env) print_env ;;
  *) die "usage: $0 start|stop|status|env|kill-rgw|start-rgw DIR" ;;
esac
