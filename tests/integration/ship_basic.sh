#!/usr/bin/env bash
# Shipping: a real writer (Python sqlite3) commits while `sqlenvfs archive`
# ships to a real S3 server (radosgw); the replica, read back with s3cmd,
# holds the agreed layout: sealed segments byte-equal with their index, the
# unsealed segment as contiguous parts on record boundaries equal to the
# local prefix, backups and snapshots with their MANIFEST; a commit reaches
# the replica within sync-interval + 1 s; a restart resumes without
# uploading again; an idle root makes no request.
source "$(dirname "$0")/lib.sh"
source "$SRCDIR/tests/integration/ship_lib.sh"

ship_start_server
R=$T/root
ship_make_root "$R" basic
ship_start "$R" "$T/a"
DB=$R/data/prod/app.db

# A writer, and a backup taken while it writes.
ship_write "$DB" 1500 1000 &
wpid=$!
track_pid $wpid
sleep 1
"$SQLENVFS" backup --root "$R" >/dev/null || fail "backup failed"
wait $wpid || fail "the writer failed"
ship_wait_caught_up "$R" basic 30
res=$(ship_caught_up "$R" basic)
note "replica: $res"
[[ $res == *sealed=[1-9]* ]] || fail "no sealed segment in the replica: $res"
[[ $res == *copies=2* ]] || fail "expected a snapshot and a backup in the replica: $res"
pass "the replica holds the layout, byte-equal with the local archive and copies ($res)"

# Replication lag: from a commit to its bytes in the replica.
lag_max=$(python3 - "$R" "$S3CMD_CONFIG" "s3://$S3_BUCKET/basic" <<'PY'
import glob, os, re, sqlite3, subprocess, sys, time
root, cfg, url = sys.argv[1:4]
wal = os.path.join(root, "backups/prod/wal_archives/app")
def local_end():
    segs = sorted(glob.glob(wal + "/*.seg"))
    return os.path.basename(segs[-1]), os.path.getsize(segs[-1])
def remote_end(seg):
    out = subprocess.run(["s3cmd", "-c", cfg, "ls", url + "/wal_archives/app/"],
                         capture_output=True, text=True, check=True).stdout
    end = 0
    for line in out.splitlines():
        name = line.rsplit("/", 1)[-1]
        if name == seg:
            return 1 << 62
        m = re.match(re.escape(seg) + r"\.part-(\d{16})-(\d{16})$", name)
        if m:
            end = max(end, int(m.group(2)))
    return end
worst = 0.0
c = sqlite3.connect(os.path.join(root, "data/prod/app.db"))
for _ in range(4):
    before = local_end()
    c.execute("INSERT INTO t(v) VALUES (?)", (os.urandom(200),))
    c.commit()
    t0 = time.time()
    while local_end() == before:
        time.sleep(0.005)
    seg, size = local_end()
    # The time each listing was asked for, not when s3cmd (a Python
    # program, slow to start on a loaded machine) returned it: the probe's
    # own cost is not the replica's lag.
    while True:
        asked = time.time()
        if remote_end(seg) >= size:
            break
        if asked - t0 > 20:
            sys.exit("not shipped within 20 s")
    worst = max(worst, asked - t0)
    time.sleep(0.3)
print("%.2f" % worst)
PY
) || fail "lag measurement: $lag_max"
python3 -c "import sys; sys.exit(0 if float('$lag_max') <= 2.0 else 1)" ||
  fail "replication lag $lag_max s is above sync-interval + 1 s"
pass "replication lag at most $lag_max s (sync-interval 1 s)"

# The status file says shipping, nothing waiting.
grep -q '^state=shipping' "$R/.sqlenvfs/replica-status" ||
  fail "status: $(cat "$R/.sqlenvfs/replica-status")"

# A restart resumes from the shipped state: no object is uploaded again
# (radosgw's usage is not needed: the mtime of every object stays).
ship_stop "$T/a"
s3cmd_ ls -r "s3://$S3_BUCKET/basic/" | grep -v '/lease$\|/alive$' | sort >"$T/before"
ship_start "$R" "$T/b"
ship_write "$DB" 20 100
ship_wait_caught_up "$R" basic 20
s3cmd_ ls -r "s3://$S3_BUCKET/basic/" | grep -v '/lease$\|/alive$' | sort >"$T/after"
gone=$(comm -23 "$T/before" "$T/after" | grep -v '\.part-' || true)
[ -z "$gone" ] || fail "objects uploaded again (or removed) after a restart: $gone"
pass "a restart resumes without uploading what was shipped"

# Idle: no request but the lease's (the client's counters are not visible
# from here: count the objects' changes and the shipper's lease renewals).
s3cmd_ ls -r "s3://$S3_BUCKET/basic/" | sort >"$T/idle0"
sleep 4
s3cmd_ ls -r "s3://$S3_BUCKET/basic/" | sort >"$T/idle1"
cmp -s "$T/idle0" "$T/idle1" || fail "an idle root changed the replica: $(diff "$T/idle0" "$T/idle1")"
pass "an idle root writes nothing to the replica"
ship_stop "$T/b"

# The mount ships too, and shows it in its status file and metrics.
M=$T/mnt
mount_root "$R" "$M"
# Commits the mount's archiver captures as they come (not those it finds
# when it opens the database, which carry no capture latency): write until
# the metrics have one.
for _ in $(seq 1 20); do
  ship_write "$DB" 20 100
  grep -qF 'sqlenvfs_capture_latency_seconds{db="app",quantile="0.99"} ' "$M/metrics" && break
  sleep 0.5
done
ship_wait_caught_up "$R" basic 20
for _ in $(seq 1 50); do
  python3 - "$M/status" <<'PY' && break
import json, sys
d = [x for x in json.load(open(sys.argv[1]))["databases"] if x["name"] == "app"][0]
r = d.get("replica") or {}
sys.exit(0 if r.get("state") == "shipping" and r.get("backlog_bytes") == 0 and r.get("last_shipped") else 1)
PY
  sleep 0.2
done
python3 -c 'import json,sys; print(json.dumps([d.get("replica") for d in json.load(open(sys.argv[1]))["databases"]]))' "$M/status" >"$T/rs"
grep -q '"state": *"shipping"' "$T/rs" && grep -q '"backlog_bytes": *0' "$T/rs" && grep -q '"lag_seconds"' "$T/rs" ||
  fail "the status file's replica: $(cat "$T/rs")"
metrics=$(cat "$M/metrics")
for m in 'sqlenvfs_replica_lag_seconds{db="app"} 0' 'sqlenvfs_replica_backlog_bytes{db="app"} 0'          'sqlenvfs_replica_up{db="app",state="shipping"} 1' 'sqlenvfs_archive_bytes{db="app"} '          'sqlenvfs_capture_latency_seconds{db="app",quantile="0.99"} '          'sqlenvfs_last_backup_age_seconds{db="app"} '; do
  grep -qF "$m" <<<"$metrics" || fail "metrics lack '$m': $metrics"
done
# Under a writer that never pauses the backlog is never 0: the lag is how
# long the oldest unshipped byte has waited, not the time since the backlog
# was last empty (which grew a second each second, on a replica a second
# behind).
lags=$(python3 - "$DB" "$M/status" <<'PY'
import json, os, sqlite3, sys, time
c = sqlite3.connect(sys.argv[1])
lags, start = [], time.time()
while time.time() - start < 9:
    for _ in range(25):
        c.execute("INSERT INTO t(v) VALUES (?)", (os.urandom(200),))
        c.commit()
        time.sleep(0.02)
    if time.time() - start > 5:
        d = [x for x in json.load(open(sys.argv[2]))["databases"] if x["name"] == "app"][0]
        lags.append(d["replica"]["lag_seconds"])
print(" ".join("%.1f" % x for x in lags))
PY
)
note "replica lag under a steady writer, from its 5th second: $lags"
python3 -c "import sys; sys.exit(0 if sys.argv[1:] and max(map(float, sys.argv[1:])) < 4 else 1)" $lags ||
  fail "the replica lag grows under a steady writer: $lags (sync-interval 1 s)"
unmount_root "$M"
pass "the mount ships, and its status and metrics show the replica; the lag stays bounded"

