#!/usr/bin/env bash
# Replica benchmark rows (docs/BENCHMARKS.md, section 9-replica), against a
# real radosgw on loopback (scripts/s3server.sh), side by side on one machine:
#
#   replication lag p99 under a writer      target <= sync-interval + 1 s
#   backup upload throughput / s3cmd put     target >= 0.8x (same file, same server)
#   requests in an idle period, per hour     target <= 60
#   archiver peak RSS with shipping on       target <= 64 MiB
#
#   scripts/bench/replica.sh SQLENVFS [--smoke] [--dir DIR]
#
# --smoke: a few seconds per phase and a small file (bench_smoke); the
# default run takes under 3 minutes. Prints rows in bench.py's format.
set -euo pipefail
SQLENVFS=$(realpath "$1"); shift
src=$(cd "$(dirname "$0")/../.." && pwd)
# The server: tests/integration/s3_lib.sh (the test suite's shared one, with
# a bucket of the run's own, when SQLENVFS_TEST_S3_SHARED names it).
SRCDIR=$src
source "$src/tests/integration/s3_lib.sh"
smoke=0 dir=
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1 ;;
    --dir) dir=$2; shift ;;
  esac
  shift
done
if [ "$smoke" = 1 ]; then writer_s=4 idle_s=5 size_mib=12; else writer_s=30 idle_s=80 size_mib=100; fi
W=$(mktemp -d "${dir:-${TMPDIR:-/tmp}}/sqlenvfs-bench-replica-XXXXXX")
SRV=$W/s3
apid= ppid_=
finish() {
  set +e
  [ -n "$apid" ] && kill "$apid" 2>/dev/null && wait "$apid" 2>/dev/null
  [ -n "$ppid_" ] && kill "$ppid_" 2>/dev/null
  s3_server_end
  rm -rf "$W"
}
trap finish EXIT
row() { # name value unit target verdict
  printf '%-10s %-58s %10s %-6s %-18s %-22s %s\n' 9-replica "$1" "$2" "$3" "" "$4" "$5"
}
verdict() { python3 -c "import sys; print('PASS' if eval(sys.argv[1]) else 'MISS')" "$1"; }

s3_server_start "$SRV" || exit 1
R=$W/root
mkdir -p "$R"
echo "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);" >"$R/schema.sql"
cat >"$R/sqlenvfs.conf" <<CONF
[replica]
url = s3://$S3_BUCKET/bench
endpoint = $S3_ENDPOINT
sync-interval = 1
CONF
"$SQLENVFS" init --root "$R" >/dev/null
# A database of size_mib before the archiver starts: its first-start
# snapshot is the file whose upload is timed.
python3 - "$R/data/prod/app.db" "$size_mib" <<'PY'
import os, sqlite3, sys
c = sqlite3.connect(sys.argv[1])
for _ in range(int(sys.argv[2]) * 256):
    c.execute("INSERT INTO t(v) VALUES (?)", (os.urandom(4000),))
c.commit()
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
PY
start_archiver() {
  "$SQLENVFS" archive --root "$R" -v >"$W/a.err" 2>&1 &
  apid=$!
}
start_archiver
for _ in $(seq 1 600); do
  grep -q "shipped snapshots/.*/app.db" "$W/a.err" && break
  sleep 0.1
done
grep -q "shipped snapshots/.*/app.db" "$W/a.err" ||
  { tail -5 "$W/a.err" >&2; echo "replica bench: the first snapshot was not shipped" >&2; exit 1; }
# Backups of the same database, each shipped, then the same file put with
# s3cmd to the same server, interleaved; medians.
ours=() theirs=()
for i in 1 2 3; do
  "$SQLENVFS" backup --root "$R" >/dev/null
  name=$(ls "$R/backups/prod/daily" | tail -1)
  for _ in $(seq 1 1200); do
    grep -q "shipped daily/$name/app.db" "$W/a.err" && break
    sleep 0.05
  done
  line=$(grep "shipped daily/$name/app.db" "$W/a.err") ||
    { echo "replica bench: backup $name was not shipped" >&2; exit 1; }
  bytes=$(sed -n 's|.*, \([0-9]*\) bytes in .*|\1|p' <<<"$line")
  ours+=("$(sed -n 's|.* bytes in \([0-9.]*\) s.*|\1|p' <<<"$line")")
  t0=$(date +%s%N)
  s3cmd -c "$S3CMD_CONFIG" put "$R/backups/prod/daily/$name/app.db" "s3://$S3_BUCKET/bench-s3cmd/$i.db" >/dev/null
  theirs+=("$(python3 -c "print(($(date +%s%N) - $t0) / 1e9)")")
done
read -r ratio lo hi mbs <<<"$(python3 - "$bytes" "${ours[*]}" "${theirs[*]}" <<'PY'
import statistics, sys
b = int(sys.argv[1]); o = [float(x) for x in sys.argv[2].split()]; t = [float(x) for x in sys.argv[3].split()]
print("%.3g %.3g %.3g %.3g" % (statistics.median(t) / statistics.median(o), min(t) / max(o), max(t) / min(o),
                               b / 1048576 / statistics.median(o)))
PY
)"
row "upload of a $(( bytes / 1048576 )) MiB backup: throughput" "$mbs" "MB/s" "" ""
printf '%-10s %-58s %10s %-6s %-18s %-22s %s\n' 9-replica \
  "s3cmd put time / shipper upload time (throughput ratio)" "$ratio" x "[$lo-$hi]" ">= 0.8x" \
  "$(verdict "$ratio >= 0.8")"

# Replication lag under a writer: every 0.1 s, how many bytes the local
# archive holds; the replica listed in a loop; lag = when the replica first
# held those bytes - when they were local.
lag=$(python3 - "$R" "$S3CMD_CONFIG" "s3://$S3_BUCKET/bench" "$writer_s" <<'PY'
import glob, os, re, sqlite3, subprocess, sys, threading, time
root, cfg, url, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
wal = os.path.join(root, "backups/prod/wal_archives/app")
stop = False
local, remote = [], []
def writer():
    c = sqlite3.connect(os.path.join(root, "data/prod/app.db"))
    while not stop:
        c.execute("INSERT INTO t(v) VALUES (?)", (os.urandom(1000),))
        c.commit()
        time.sleep(0.02)
def sampler():
    while not stop:
        segs = sorted(glob.glob(wal + "/*.seg"))
        if segs:
            local.append((time.time(), os.path.basename(segs[-1]), os.path.getsize(segs[-1])))
        time.sleep(0.1)
ts = [threading.Thread(target=writer), threading.Thread(target=sampler)]
for t in ts:
    t.start()
t_end = time.time() + secs
def lister(until):
    while time.time() < until:
        out = subprocess.run(["s3cmd", "-c", cfg, "ls", url + "/wal_archives/app/"],
                             capture_output=True, text=True).stdout
        whole, ends = set(), {}
        for line in out.splitlines():
            name = line.rsplit("/", 1)[-1]
            m = re.match(r"(\d{16}\.seg)\.part-(\d{16})-(\d{16})$", name)
            if m:
                ends[m.group(1)] = max(ends.get(m.group(1), 0), int(m.group(3)))
            elif name.endswith(".seg"):
                whole.add(name)
        remote.append((time.time(), whole, ends))
lister(t_end)
stop = True
for t in ts:
    t.join()
lister(time.time() + 3)
lags = []
for t, seg, size in local:
    for rt, whole, ends in remote:
        if rt < t:
            continue
        if seg in whole or ends.get(seg, 0) >= size or any(s > seg for s in list(whole) + list(ends)):
            lags.append(rt - t)
            break
    else:
        lags.append(float("inf"))
lags.sort()
print("%.3g %.3g %d" % (lags[len(lags) // 2], lags[min(len(lags) - 1, int(len(lags) * 0.99))], len(lags)))
PY
)
read -r p50 p99 n <<<"$lag"
row "replication lag p50 under a writer ($n samples)" "$p50" "s" "" ""
row "replication lag p99 under a writer" "$p99" "s" "<= 2 s" "$(verdict "$p99 <= 2")"

# Idle: the archiver through the counting proxy, nothing written.
kill "$apid"; wait "$apid" || true; apid=
python3 "$src/tests/s3proxy.py" "${S3_ENDPOINT##*:}" "$W/proxy.port" 600 &
ppid_=$!
for _ in $(seq 1 100); do [ -s "$W/proxy.port" ] && break; sleep 0.1; done
PX=http://127.0.0.1:$(cat "$W/proxy.port")
sed -i "s|^endpoint = .*|endpoint = $PX|" "$R/sqlenvfs.conf"
start_archiver
sleep 3
python3 -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1]).read()' "$PX/__fault/reset"
sleep "$idle_s"
n=$(python3 -c 'import json,sys,urllib.request; print(json.load(urllib.request.urlopen(sys.argv[1]))["requests"])' "$PX/__fault/stats")
per_hour=$(python3 -c "print('%.3g' % ($n * 3600 / $idle_s))")
row "requests of an idle root, per hour ($n in $idle_s s)" "$per_hour" "/h" "<= 60" "$(verdict "$per_hour <= 60")"
rss=$(awk '/VmHWM/ {printf "%.3g", $2 / 1024}' "/proc/$apid/status")
row "archiver peak RSS, shipping on (db $size_mib MiB)" "$rss" "MiB" "<= 64 MiB" "$(verdict "$rss <= 64")"
