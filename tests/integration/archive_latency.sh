#!/usr/bin/env bash
# A commit is archived as soon as it is visible, not at the archiver's next
# 100 ms tick, also when the application syncs its WAL before publishing the
# commit (synchronous=FULL, SQLite's default): the WAL write wakes the
# archiver before the commit is in the wal-index, so it must look again.
# The bound is loose (a quarter of the tick on the median of 30 commits,
# each made 10 ms after the previous one was archived, which put every one
# of them just after a tick when the archiver did not look again).
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
pitr_make_root "$R"
pitr_start_archiver "$R" "$T/a"

for sync in FULL NORMAL; do
  median=$(python3 - "$R/data/prod/app.db" "$R/backups/prod/wal_archives/app" "$sync" <<'PY'
import glob, os, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA synchronous=" + sys.argv[3])
db.execute("CREATE TABLE IF NOT EXISTS lat(id INTEGER PRIMARY KEY, v TEXT)")
def archived():
    return sum(os.path.getsize(f) for f in glob.glob(sys.argv[2] + "/*.seg"))
time.sleep(0.5)
lat = []
for i in range(30):
    before = archived()
    db.execute("INSERT INTO lat(v) VALUES ('x')")
    t = time.monotonic()
    while archived() == before and time.monotonic() - t < 5:
        time.sleep(0.0002)
    lat.append(time.monotonic() - t)
    time.sleep(0.01)
lat.sort()
print(int(lat[len(lat) // 2] * 1000))
PY
)
  [ -n "$median" ] || fail "the latency probe failed"
  [ "$median" -lt 25 ] || fail "synchronous=$sync: commits were archived after $median ms (median); expected well within the 100 ms tick"
  pass "synchronous=$sync: commit to archived in $median ms (median of 30)"
done
pitr_stop_archiver "$T/a"
