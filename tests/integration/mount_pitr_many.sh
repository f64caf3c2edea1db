#!/usr/bin/env bash
# Many distinct pitr states open at once (what any user of an allow_other
# mount can do): each holds descriptors of its base, archive segments and
# file, so the mount reads at most 64 at once and refuses one more with
# EBUSY (the log says why) rather than run out of descriptors, which the
# archiver needs; one more opened while one of them is being closed waits
# for it and gets in. The states served meanwhile are each their own, and
# the archiver keeps capturing.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root M=$T/mnt
make_root "$R" <(printf 'CREATE TABLE seq (n INTEGER PRIMARY KEY, t REAL NOT NULL);\n')
mount_root "$R" "$M"
wait_archiving "$M"

# 80 transactions, one row each, a few milliseconds apart: 80 states.
python3 - "$R/data/prod/app.db" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
for n in range(1, 81):
    db.execute("INSERT INTO seq (n, t) VALUES (?, ?)", (n, time.time()))
    time.sleep(0.02)
PY
# The capture time of each, from the archive, once the window is past the last.
for i in $(seq 1 100); do
  [ "$(sqlite3 "file:$M/pitr/latest/app.db?mode=ro" 'SELECT max(n) FROM seq' 2>/dev/null)" = 80 ] && break
  sleep 0.1
done
# (Exact microseconds from the index; commits captured together share one.)
python3 - "$R/backups/prod/wal_archives/app" > "$T/times" <<'PY'
import glob, os, struct, sys
times = []
for idx in sorted(glob.glob(os.path.join(sys.argv[1], "*.idx"))):
    data = open(idx, "rb").read()
    for off in range(32, len(data) - 111, 112):
        (magic, typ, flags, length, seq, t) = struct.unpack_from("<IHHQQq", data, off)
        if typ == 1 and t not in times:
            times.append(t)
for t in times[-70:]:
    print(t)
PY
[ "$(wc -l < "$T/times")" -ge 66 ] || fail "expected 66 archived states or more: $(cat "$T/times")"

python3 - "$M" "$T/times" <<'PY' || fail "many states open at once"
import errno, os, sqlite3, sys, threading
m, times = sys.argv[1], [int(x) for x in open(sys.argv[2])]
def name(t):
    return "@%d.%06d" % (t // 1000000, t % 1000000)
def max_n(t):
    db = sqlite3.connect(f"file:{m}/pitr/{name(t)}/app.db?mode=ro", uri=True)
    try:
        return db.execute("SELECT max(n) FROM seq").fetchone()[0]
    finally:
        db.close()
fds = []
for t in times[:64]:
    fd = os.open(f"{m}/pitr/{name(t)}/app.db", os.O_RDONLY)
    assert len(os.pread(fd, 100, 0)) == 100
    fds.append(fd)
try:
    os.open(f"{m}/pitr/{name(times[64])}/app.db", os.O_RDONLY)
except OSError as e:
    assert e.errno == errno.EBUSY, e
else:
    sys.exit("a 65th state was opened while 64 were being read")
# The ones open are served, each its own state, in the order of their times.
seen = [max_n(t) for t in times[:64:7]]
assert seen == sorted(seen) and len(set(seen)) == len(seen), seen
# One more, opened while one of the 64 is closed (0.3 s later, from
# another thread), waits for that slot rather than failing.
closer = threading.Timer(0.3, os.close, [fds.pop()])
closer.start()
fds.append(os.open(f"{m}/pitr/{name(times[64])}/app.db", os.O_RDONLY))
closer.join()
assert max_n(times[64]) > seen[-1]
for fd in fds:
    os.close(fd)
PY
grep -q 'states are being read at once' "$R/.sqlenvfs/mount.log" \
  || fail "the log does not say why: $(tail -3 "$R/.sqlenvfs/mount.log")"
pass "64 states are read at once; one more is EBUSY, or waits for one being closed"

# The archiver kept capturing: a commit now reaches pitr/latest.
sqlite3 "$R/data/prod/app.db" "INSERT INTO seq (n, t) VALUES (81, 0);"
for i in $(seq 1 100); do
  [ "$(sqlite3 "file:$M/pitr/latest/app.db?mode=ro" 'SELECT max(n) FROM seq' 2>/dev/null)" = 81 ] && break
  sleep 0.1
done
assert_eq "$(sqlite3 "file:$M/pitr/latest/app.db?mode=ro" 'SELECT max(n) FROM seq')" "81" \
  "the newest commit under pitr/latest"
pass "the archiver keeps capturing"

unmount_root "$M"

# Idle states keep their images only within a memory budget (the most
# recent one always): with a budget smaller than one small state's, states
# read one after the other leave one behind, and each is still its own.
rm -rf "$R/.cache"
SQLENVFS_TEST_PITR_IDLE_MEMORY=1 mount_root "$R" "$M"
python3 - "$M" "$T/times" <<'PY' || fail "states read one after the other"
import sqlite3, sys
m, times = sys.argv[1], [int(x) for x in open(sys.argv[2])]
seen = []
for t in times[:40:8]:
    db = sqlite3.connect(f"file:{m}/pitr/@{t // 1000000}.{t % 1000000:06d}/app.db?mode=ro", uri=True)
    seen.append(db.execute("SELECT max(n) FROM seq").fetchone()[0])
    db.close()
assert seen == sorted(seen) and len(set(seen)) == len(seen), seen
PY
entries=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['pitr_cache']['entries'])" "$M/status")
assert_eq "$entries" "1" "idle pitr states kept after five were read, within the memory budget"
pass "idle states beyond the memory budget are dropped, the most recent one kept"

unmount_root "$M"
