#!/usr/bin/env bash
# Reading a replica from another machine, side by side in one run
# (docs/BENCHMARKS.md, section 10-remote):
#   - restore --remote at a time T deep in a window (a base plus most of the
#     archive after it) against `s3cmd get` of just the objects that restore
#     fetches (target <= 1.5x), and against a local restore at the same T;
#   - requests and bytes fetched against the replica's size;
#   - a point query through mount --remote on pitr/T from a cold cache,
#     --runs times, each with a new cache (median time and the slowest,
#     and the bytes fetched, of the base and of the archive, against 1% of
#     the database's size); the archive's sealed segments are read on
#     demand, so their cache files are sparse and counted by allocated blocks,
#     and so are the summaries' (their heads at the start, the parts a state
#     reads on demand).
# A real S3 server (Ceph radosgw, scripts/s3server.sh) on loopback.
#
#   scripts/bench/remote.sh SQLENVFS [--size-mib N] [--seconds S] [--runs N] [--dir DIR]
#
# Defaults: a 64 MiB database, 12 s of updates while archived, 3 runs;
# about 2 minutes with the server's start.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(realpath "$1"); shift
size=64 secs=12 runs=3 dir=
while [ $# -gt 0 ]; do
  case $1 in
    --size-mib) size=$2; shift 2 ;;
    --seconds) secs=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    *) echo "remote.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$dir" ] || dir=$(mktemp -d "${TMPDIR:-/tmp}/sqlenvfs-bench-remote-XXXXXX")
mkdir -p "$dir"
srv=$dir/s3
apid=
cleanup() {
  set +e
  mountpoint -q "$dir/mnt" 2>/dev/null && fusermount3 -u "$dir/mnt"
  [ -n "$apid" ] && kill -TERM "$apid" 2>/dev/null && wait "$apid" 2>/dev/null
  "$src/scripts/s3server.sh" stop "$srv" >/dev/null 2>&1
  rm -rf "$dir"
}
trap cleanup EXIT

# The server keeps its objects in memory: room for the replica, twice.
mem=$(( size * 3 * 1048576 + 536870912 ))
[ "$mem" -ge 1073741824 ] || mem=1073741824
S3SERVER_MEMSTORE_BYTES=$mem "$src/scripts/s3server.sh" start "$srv" > "$dir/s3.env" \
  2> "$dir/s3.err" &
spid=$!

R=$dir/root
mkdir -p "$R"
echo "CREATE TABLE bench(id INTEGER PRIMARY KEY, payload BLOB);" > "$R/schema.sql"
printf '[archive]\nsegment-max-bytes=4194304\n' > "$R/sqlenvfs.conf"
"$bin" init --root "$R" >/dev/null
rows=$(( size * 1024 * 1024 / 4100 ))
python3 - "$R/data/prod/app.db" "$rows" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ?) "
           "INSERT INTO bench SELECT i, randomblob(4000) FROM c", (int(sys.argv[2]),))
db.commit()
PY
"$bin" archive --root "$R" > "$dir/archive.out" 2> "$dir/archive.err" &
apid=$!
for i in $(seq 1 100); do grep -q 'capturing' "$dir/archive.err" && break; sleep 0.1; done
"$bin" backup --root "$R" >/dev/null
python3 - "$R/data/prod/app.db" "$rows" "$secs" > "$dir/times" <<'PY'
import random, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
rows, end = int(sys.argv[2]), time.time() + float(sys.argv[3])
r = random.Random(1)
while time.time() < end:
    db.execute("BEGIN")
    for _ in range(20):
        db.execute("UPDATE bench SET payload = randomblob(4000) WHERE id = ?", (r.randint(1, rows),))
    db.execute("COMMIT")
    print("%.6f" % time.time())
PY
sleep 1
kill -TERM "$apid"; wait "$apid"; apid=
wait "$spid" || { cat "$dir/s3.err" >&2; exit 1; }
eval "$(cat "$dir/s3.env")"
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION AWS_ENDPOINT_URL
URL=s3://$S3_BUCKET/bench
python3 "$src/tests/integration/replica_push.py" "$R" "$URL" "$S3CMD_CONFIG" "$dir/stage" >/dev/null
replica_bytes=$(du -sb "$R/backups/prod" | cut -f1)
# T: 90% of the way through the updates, a deep point of the backup's window
T=$(awk '{t[NR]=$1} END {print t[int(NR*0.9)]}' "$dir/times")
mkdir -p "$dir/w" "$dir/get"
cd "$dir/w"

# The objects a restore to T fetches (its debug log names them).
G_MESSAGES_DEBUG=sqlenvfs "$bin" restore --remote "$URL" --time "@$T" --output first.db \
  > first.out 2> first.err
keys=$(sed -n 's/.*fetch \(.*\) ([0-9]* bytes)$/\1/p' first.out)
nobj=$(echo "$keys" | wc -l)
fetched=$(sed -n 's/.*fetched  \(.*\)/\1/p' first.out)

now() { date +%s.%N; }
t_remote=() t_s3cmd=() t_local=()
for i in $(seq 1 "$runs"); do
  rm -f r.db l.db "$dir"/get/*
  a=$(now); "$bin" restore --remote "$URL" --time "@$T" --output r.db >/dev/null; b=$(now)
  t_remote+=("$(echo "$b - $a" | bc)")
  urls=$(echo "$keys" | sed "s|^|$URL/|")
  a=$(now); s3cmd -c "$S3CMD_CONFIG" -q --no-progress get $urls "$dir/get/" >/dev/null; b=$(now)
  t_s3cmd+=("$(echo "$b - $a" | bc)")
  a=$(now); "$bin" restore --root "$R" --time "@$T" --output l.db >/dev/null; b=$(now)
  t_local+=("$(echo "$b - $a" | bc)")
  cmp r.db l.db || { echo "remote.sh: remote and local restores differ" >&2; exit 1; }
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
mr=$(median "${t_remote[@]}") ms=$(median "${t_s3cmd[@]}") ml=$(median "${t_local[@]}")
ratio=$(echo "scale=3; $mr / $ms" | bc)
verdict=$(echo "$ratio <= 1.5" | bc)
[ "$verdict" = 1 ] && verdict=PASS || verdict=MISS
db_bytes=$(stat -c %s l.db)
printf '10-remote  database %d MiB, replica %d MiB, T deep in the window; %s\n' "$size" \
  $(( replica_bytes / 1048576 )) "$fetched"
printf '10-remote  restore --remote at T: time                                %8.2f s\n' "$mr"
printf '10-remote  s3cmd get of the same %d objects: time                      %8.2f s\n' "$nobj" "$ms"
printf '10-remote  restore --remote time / s3cmd get time                      %8.2f x      <= 1.5x   %s\n' "$ratio" "$verdict"
printf '10-remote  local restore at T: time (information)                      %8.2f s\n' "$ml"
printf '10-remote  restored database: %d bytes, equal to the local restore\n' "$db_bytes"
# A point query through mount --remote on pitr/T from a cold cache: the
# mount's start (LIST, MANIFESTs and archive synced), then one row read;
# as many times as the restores above (each with a new, empty cache), the
# median and the slowest printed. The bytes are those of the last run.
mkdir -p "$dir/mnt"
# The sealed segments are sparse files filled on demand: what they hold
# is what their allocated blocks hold (du without --apparent-size; the
# small objects, indexes and summaries, are counted with them).
archive_du() { du -sB1 "$dir/cache/backups/prod/wal_archives" | cut -f1; }
# The summaries are sparse files too (their heads at the start, the parts
# a state reads on demand): allocated bytes, and their whole size.
sum_du() {
  find "$dir/cache/backups/prod/wal_archives" -name '*.sum' -printf "$1\n" |
    awk -v m="$2" '{s+=$1*m} END {print s+0}'
}
q_start=() q_query=() q_total=()
for i in $(seq 1 "$runs"); do
  rm -rf "$dir/cache"
  a=$(now)
  "$bin" mount --remote "$URL" "$dir/mnt" -o "cache=$dir/cache" >/dev/null
  for j in $(seq 1 100); do mountpoint -q "$dir/mnt" && break; sleep 0.1; done
  b=$(now)
  archive_start=$(archive_du)
  sum_start=$(sum_du %b 512)
  python3 - "$dir/mnt/pitr/@$T/app.db" > "$dir/q.out" <<'PY'
import sqlite3, sys, time
t0 = time.time()
c = sqlite3.connect("file:%s?mode=ro&immutable=1" % sys.argv[1], uri=True)
n = len(c.execute("SELECT payload FROM bench WHERE id = 1000").fetchone()[0])
print("%.3f %d" % (time.time() - t0, n))
PY
  fusermount3 -u "$dir/mnt"
  # The daemon's own count of what it fetched, logged as it exits.
  for j in $(seq 1 100); do
    grep -q 'this session fetched' "$dir/cache/.sqlenvfs/mount.log" 2>/dev/null && break
    sleep 0.1
  done
  fetched_bytes=$(sed -n 's/.*this session fetched \([0-9]*\) bytes.*/\1/p' \
    "$dir/cache/.sqlenvfs/mount.log" | tail -1)
  [ -n "$fetched_bytes" ] || { echo "remote.sh: the mount did not log what it fetched" >&2; exit 1; }
  fetched_line=$(sed -n 's/.*this session fetched //p' "$dir/cache/.sqlenvfs/mount.log" | tail -1)
  qt=$(cut -d' ' -f1 "$dir/q.out")
  q_start+=("$(echo "$b - $a" | bc)")
  q_query+=("$qt")
  q_total+=("$(echo "$b - $a + $qt" | bc)")
done
archive_bytes=$(archive_du)
sum_bytes=$(sum_du %b 512) sum_all=$(sum_du %s 1)
n_sums=$(find "$dir/cache/backups/prod/wal_archives" -name '*.sum' | wc -l)
# What the cold cache holds (nothing is evicted within the default bound):
# the base (blocks, or whole copies) and the archive with the small
# objects, counted by allocated blocks, which round each piece up to
# 4 KiB and count the SEAL records made from the indexes; the verdict is
# on the bytes the mount counted as it fetched them (its log).
base_bytes=$(find "$dir/cache/blocks" "$dir/cache/backups/prod/daily" \
  "$dir/cache/backups/prod/snapshots" -type f \( -name '*.db' -o -path '*/blocks/*' \) \
  -printf '%s\n' 2>/dev/null | awk '{s+=$1} END {print s+0}')
small_bytes=$(find "$dir/cache/backups/prod/daily" "$dir/cache/backups/prod/snapshots" \
  -type f -name MANIFEST -printf '%s\n' | awk '{s+=$1} END {print s+0}')
budget=$(( db_bytes / 100 ))
total_bytes=$(( base_bytes + archive_bytes + small_bytes ))
verdict=MISS
[ "$fetched_bytes" -le "$budget" ] && verdict=PASS
mt=$(median "${q_total[@]}")
slowest=$(printf '%s\n' "${q_total[@]}" | sort -g | tail -1)
qverdict=MISS
[ "$(echo "$mt <= 2" | bc)" = 1 ] && qverdict=PASS
printf '10-remote  mount --remote, cold cache: start (LIST + MANIFESTs + archive %d KiB)  %8.2f s\n' \
  $(( archive_start / 1024 )) "$(median "${q_start[@]}")"
printf '10-remote  point query on pitr/T/app.db, cold: time                   %8.2f s\n' \
  "$(median "${q_query[@]}")"
printf '10-remote  point query, cold: mount start + query (median of %d; slowest %.2f s)  %8.2f s      <= 2 s    %s\n' \
  "$runs" "$slowest" "$mt" "$qverdict"
printf '10-remote  point query: base bytes fetched (blocks on demand)          %12d  (%.4f%% of the database)\n' \
  "$base_bytes" "$(echo "scale=6; 100 * $base_bytes / $db_bytes" | bc)"
printf '10-remote  point query: archive bytes fetched at the mount start       %12d  (%.4f%% of the database)\n' \
  "$archive_start" "$(echo "scale=6; 100 * $archive_start / $db_bytes" | bc)"
printf '10-remote  point query: archive bytes fetched, start + query          %12d  (%.4f%% of the database)\n' \
  "$archive_bytes" "$(echo "scale=6; 100 * $archive_bytes / $db_bytes" | bc)"
printf '10-remote  point query: of which summaries (%d), start / start + query / whole   %d / %d / %d\n' \
  "$n_sums" "$sum_start" "$sum_bytes" "$sum_all"
printf '10-remote  point query: what the cache holds (allocated blocks)        %12d  (%.4f%% of the database)\n' \
  "$total_bytes" "$(echo "scale=6; 100 * $total_bytes / $db_bytes" | bc)"
printf '10-remote  point query: the mount fetched %s\n' "$fetched_line"
printf '10-remote  point query: all bytes fetched / 1%% of the database          %12d / %d   %s\n' \
  "$fetched_bytes" "$budget" "$verdict"
