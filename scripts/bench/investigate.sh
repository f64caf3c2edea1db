#!/usr/bin/env bash
# Benchmark of the history commands (docs/BENCHMARKS.md, "Investigating the
# history"), measured side by side in one run:
#   - diff across 10 commits of a large database (target <= 100 ms);
#   - diff across many commits vs sqldiff of the two states already
#     materialized (target <= 1.5x);
#   - bisect over many commits: states examined and time.
#   - with INVESTIGATE_LONG=1, bisect over a million commits of a 1 GiB
#     database (targets <= 25 states, <= 2 s): a root built by
#     gen_archive (INVESTIGATE_GEN, default scripts/bench/gen_archive of
#     SQLENVFS's build, -Dbench=true) with INVESTIGATE_LONG_COMMITS
#     (default 1000000) one-row commits on a database prefilled to
#     INVESTIGATE_LONG_BYTES (default 1G); it takes a few minutes and
#     about 3 GiB of disk.
# Usage: scripts/bench/investigate.sh [SQLENVFS] ; INVESTIGATE_MIB (default
# 256) sizes the database, INVESTIGATE_COMMITS (default 2000) the long run,
# INVESTIGATE_RUNS (default 9) the timed runs of each 10-commit row,
# INVESTIGATE_DIR where it works (default a temporary directory, removed).
set -euo pipefail
cd "$(dirname "$0")/../.."
S=$(realpath "${1:-build/src/sqlenvfs}")
MIB=${INVESTIGATE_MIB:-256}
COMMITS=${INVESTIGATE_COMMITS:-2000}
RUNS=${INVESTIGATE_RUNS:-9}
command -v sqldiff >/dev/null || { echo "investigate: sqldiff is missing (sqlite3-tools; scripts/deps.sh)" >&2; exit 1; }
W=${INVESTIGATE_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/sqlenvfs-investigate-XXXXXX")}
apid=""
M=""
cleanup() {
  [ -n "$apid" ] && kill "$apid" 2>/dev/null && wait "$apid" 2>/dev/null
  [ -n "$M" ] && fusermount3 -u "$M" 2>/dev/null
  [ -n "${INVESTIGATE_DIR:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
R=$W/root
mkdir -p "$R"
cat > "$R/schema.sql" <<'SQL'
CREATE TABLE events(id INTEGER PRIMARY KEY, vessel INTEGER, kind TEXT, payload TEXT);
CREATE INDEX events_vessel ON events(vessel);
SQL
"$S" init --root "$R" >/dev/null

# A large database before capture starts (the archiver's first snapshot is
# the base every state is rebuilt from).
python3 - "$R/data/prod/app.db" "$MIB" <<'PY'
import sqlite3, sys, random
db, mib = sys.argv[1], int(sys.argv[2])
rnd = random.Random(7)
c = sqlite3.connect(db, isolation_level=None)
c.execute("BEGIN")
n = mib * 1024 * 1024 // 460
pad = "".join(rnd.choice("abcdefghijklmnop") for _ in range(4000))
for i in range(1, n + 1):
    o = rnd.randrange(3600)
    c.execute("INSERT INTO events VALUES(?,?,?,?)", (i, rnd.randrange(5000), "pos", pad[o:o + 400]))
c.execute("COMMIT")
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")

PY
size=$(stat -c %s "$R/data/prod/app.db")

"$S" archive --root "$R" > "$W/archive.out" 2> "$W/archive.err" &
apid=$!
for i in $(seq 1 600); do
  grep -qs 'capturing' "$W/archive.err" && [ -n "$(ls "$R/backups/prod/snapshots")" ] && break
  sleep 0.1
done

# 10 commits, then a long run with one row deleted at a known commit.
python3 - "$R/data/prod/app.db" "$COMMITS" > "$W/writer.log" <<'PY'
import sqlite3, sys, random, time
db, commits = sys.argv[1], int(sys.argv[2])
rnd = random.Random(11)
c = sqlite3.connect(db, isolation_level=None)
n = c.execute("SELECT max(id) FROM events").fetchone()[0]
def commit():
    global n
    c.execute("BEGIN IMMEDIATE")
    for _ in range(3):
        r = rnd.random()
        if r < 0.5:
            c.execute("UPDATE events SET kind=? WHERE id=?", ("upd%d" % rnd.randrange(99), rnd.randrange(1, n)))
        elif r < 0.8:
            n += 1
            c.execute("INSERT INTO events VALUES(?,?,?,?)", (n, rnd.randrange(5000), "new", "x" * 300))
        else:
            c.execute("DELETE FROM events WHERE id=?", (rnd.randrange(100, n),))
    c.execute("COMMIT")
for k in range(10):
    commit()
print("A", time.time())
time.sleep(0.2)
for k in range(commits):
    if k == commits * 2 // 3:
        c.execute("DELETE FROM events WHERE id=42")
    else:
        commit()
c.close()
PY
sleep 0.5
kill "$apid"; wait "$apid" || true; apid=""

python3 tests/integration/archive_dump.py "$R/backups/prod/wal_archives/app" \
  | awk '$4=="COMMIT" {print $3, $5}' > "$W/commits"
# the 10 commits are the first 10 COMMIT records after capture began
t0=$(awk 'NR==1 {print $2}' "$W/commits")
t10=$(awk 'NR==11 {print $2}' "$W/commits")
tend=$(awk 'END {print $2}' "$W/commits")
n_long=$(awk 'NR>11' "$W/commits" | wc -l)

ms() { python3 -c 'import sys; print("%.1f" % (float(sys.argv[2]) - float(sys.argv[1])) )' "$@"; }
now() { date +%s%3N; }
median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
# The median of any number of values, and "min-max".
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
spread() { printf '%s\n' "$@" | sort -n | awk 'NR == 1 {a = $1} {b = $1} END {print a "-" b}'; }
# Wall and CPU (user + system) milliseconds of a command, its output to $OUT.
wall_cpu() {
  OUT=$1 python3 -c 'import os, resource, subprocess, sys, time
def cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime
c = cpu()  # what ran before (a launcher that exec()ed python) left out
t = time.monotonic()
with open(os.environ["OUT"], "w") as f:
    subprocess.run(sys.argv[1:], stdout=f, stderr=subprocess.DEVNULL)
print(int((time.monotonic() - t) * 1000), int((cpu() - c) * 1000))' "${@:2}"
}
# CPU ticks (user + system) a process has used.
ticks() { awk '{print $14 + $15}' "/proc/${1:-0}/stat" 2>/dev/null || echo 0; }

# Warm: base checks remembered, page cache as after one run.
"$S" diff --root "$R" --from "@$t0" --to "@$t10" > /dev/null 2>&1
runs=(); cpus=()
for i in $(seq 1 "$RUNS"); do
  read -r wall cpu < <(wall_cpu "$W/d10.sql" "$S" diff --root "$R" --from "@$t0" --to "@$t10")
  runs+=("$wall"); cpus+=("$cpu")
done
d10=$(median "${runs[@]}")
d10_spread=$(spread "${runs[@]}")
d10_cpu=$(median "${cpus[@]}")
"$S" diff --root "$R" --from "@$t0" --to "@$t10" --stats 2> "$W/d10.stats" > /dev/null

# The same through the mount, whose daemon checks the base file once (a
# command checks it in every run: it reads the whole base, restore.h).
M=$W/mnt
mkdir -p "$M"
"$S" mount "$R" "$M"
for i in $(seq 1 100); do mountpoint -q "$M" && break; sleep 0.1; done
cat "$M/diff/@$t0/@$t10/app.sql" > /dev/null
mpid=$(pgrep -f " mount $R $M" | head -n 1 || true)
t_a=$(ticks "$mpid")
runs=()
for i in $(seq 1 "$RUNS"); do
  a=$(now); cat "$M/diff/@$t0/@$t10/app.sql" > "$W/m10.sql"; b=$(now)
  runs+=($((b - a)))
done
t_b=$(ticks "$mpid")
m10=$(median "${runs[@]}")
m10_spread=$(spread "${runs[@]}")
m10_cpu=$(python3 -c "import os; print(int(($t_b - $t_a) * 1000 / os.sysconf('SC_CLK_TCK') / $RUNS))")
cmp -s "$W/m10.sql" "$W/d10.sql" || echo "investigate: WARNING: the mount's diff differs from the command's" >&2
fusermount3 -u "$M"
for i in $(seq 1 100); do pgrep -f " mount $R $W/mnt" >/dev/null || break; sleep 0.1; done
M=""

"$S" restore --root "$R" --time "@$t10" -o "$W/a.db" > /dev/null
"$S" restore --root "$R" --time "@$tend" -o "$W/b.db" > /dev/null
runs=(); sruns=(); cpus=(); scpus=()
for i in 1 2 3; do
  read -r wall cpu < <(wall_cpu "$W/dlong.sql" "$S" diff --root "$R" --from "@$t10" --to "@$tend")
  runs+=("$wall"); cpus+=("$cpu")
  read -r wall cpu < <(wall_cpu "$W/sqldiff.sql" sqldiff "$W/a.db" "$W/b.db")
  sruns+=("$wall"); scpus+=("$cpu")
done
dlong=$(median3 "${runs[@]}")
slong=$(median3 "${sruns[@]}")
dlong_cpu=$(median3 "${cpus[@]}")
slong_cpu=$(median3 "${scpus[@]}")
"$S" diff --root "$R" --from "@$t10" --to "@$tend" --stats 2> "$W/dlong.stats" > /dev/null
# diff's script is one transaction with foreign keys off (three lines
# sqldiff does not print); the rest is statement for statement.
n_diff=$(grep ';$' "$W/dlong.sql" |
  grep -c -v -x -e 'PRAGMA foreign_keys=OFF;' -e 'BEGIN TRANSACTION;' -e 'COMMIT;' || true)
[ "$n_diff" -eq "$(grep -c ';$' "$W/sqldiff.sql")" ] ||
  echo "investigate: WARNING: diff printed $n_diff statements, sqldiff $(grep -c ';$' "$W/sqldiff.sql")" >&2

a=$(now)
"$S" bisect --root "$R" --from "@$t10" --sql "SELECT id, kind FROM events WHERE id = 42" > "$W/bisect.out" 2>/dev/null || true
b=$(now)
bis=$((b - a))
probes=$(sed -n 's/.*examined \([0-9]*\) states of \([0-9]*\) commits.*/\1 \2/p' "$W/bisect.out")

printf 'investigate: database %s MiB (%s bytes), %s commits in the long run\n' "$MIB" "$size" "$n_long"
printf '%-48s %10s %10s %8s\n' "row" "sqlenvfs" "yardstick" "ratio"
printf '%-48s %8s ms %10s %8s\n' "diff across 10 commits, command (<= 100 ms)" "$d10" "100 ms" \
  "$(python3 -c "print('%.2f' % ($d10 / 100))")"
printf '%-48s %8s ms %10s %8s\n' "diff across 10 commits, mount diff/ (<= 100 ms)" "$m10" "100 ms" \
  "$(python3 -c "print('%.2f' % ($m10 / 100))")"
printf '%-48s %8s ms %7s ms %8s\n' "diff across $n_long commits vs sqldiff (<= 1.5x)" "$dlong" "$slong" \
  "$(python3 -c "print('%.2f' % ($dlong / max($slong, 1)))")"
printf '%-48s %8s ms %10s %8s\n' "bisect over $n_long commits" "$bis" "-" "-"
printf '  10 commits, %s runs: command %s ms (%s), CPU %s ms; mount %s ms (%s), daemon CPU %s ms a run\n' \
  "$RUNS" "$d10" "$d10_spread" "$d10_cpu" "$m10" "$m10_spread" "$m10_cpu"
printf '  %s commits: CPU diff %s ms, sqldiff %s ms (ratio %s)\n' "$n_long" "$dlong_cpu" "$slong_cpu" \
  "$(python3 -c "print('%.2f' % ($dlong_cpu / max($slong_cpu, 1)))")"
printf '  bisect examined %s\n' "$(echo "$probes" | awk '{print $1 " states of " $2 " commits (bound " int(log($2)/log(2)+0.999999)+2 ")"}')"
sed 's/^/  10 commits: /' "$W/d10.stats"
sed 's/^/  long run:   /' "$W/dlong.stats"

[ "${INVESTIGATE_LONG:-0}" = 1 ] || exit 0

# Bisect over a million commits: the commit that inserted row K of
# gen_archive's log table (its capture time printed by --mark).
GEN=$(realpath "${INVESTIGATE_GEN:-$(dirname "$S")/../scripts/bench/gen_archive}")
LC=${INVESTIGATE_LONG_COMMITS:-1000000}
LB=${INVESTIGATE_LONG_BYTES:-1G}
K=$((LC * 7 / 10))
"$GEN" --sqlenvfs "$S" --root "$W/long" --commits "$LC" --mark "$K" --prefill-bytes "$LB" \
  > "$W/gen.out" 2> "$W/gen.err" || { cat "$W/gen.err" >&2; exit 1; }
mark_us=$(sed -n "s/^mark $K us=\([0-9]*\) .*/\1/p" "$W/gen.out")
lsize=$(stat -c %s "$W/long/data/prod/app.db")
"$S" bisect --root "$W/long" --sql "SELECT count(*) FROM log WHERE id = $K" > /dev/null 2>&1 || true
runs=(); cpus=()
for i in 1 2 3; do
  read -r wall cpu < <(wall_cpu "$W/lbisect.out" "$S" bisect --root "$W/long" \
    --sql "SELECT count(*) FROM log WHERE id = $K")
  runs+=("$wall"); cpus+=("$cpu")
done
lbis=$(median3 "${runs[@]}")
lcpu=$(median3 "${cpus[@]}")
lprobes=$(sed -n 's/.*examined \([0-9]*\) states of \([0-9]*\) commits.*/\1 \2/p' "$W/lbisect.out")
lwhen=$(sed -n 's/.*result changes at seq [0-9]*, captured \(.*\)$/\1/p' "$W/lbisect.out")
lok=$(python3 -c 'import sys, datetime
w = sys.argv[1]
if not w: print("NO ANSWER"); sys.exit()
d = datetime.datetime.fromisoformat(w.replace("Z", "+00:00"))
us = int(d.timestamp()) * 1000000 + d.microsecond
print("right commit" if us == int(sys.argv[2]) else "WRONG commit (%d, expected %s)" % (us, sys.argv[2]))' "$lwhen" "$mark_us")
printf 'investigate: long bisect on %s bytes, %s commits\n' "$lsize" "$LC"
printf '%-48s %8s ms %7s ms %8s\n' "bisect over $LC commits (<= 2 s)" "$lbis" 2000 \
  "$(python3 -c "print('%.2f' % ($lbis / 2000))")"
printf '  bisect examined %s; %s; CPU (user + system) %s ms\n' \
  "$(echo "$lprobes" | awk '{print $1 " states of " $2 " commits (<= 25)"}')" "$lok" "$lcpu"
