# Helpers shared by the pitr_* integration tests (sourced after lib.sh).
ORACLE="$SRCDIR/tests/integration/pitr_oracle.py"

# pitr_make_root DIR [segment-max-bytes]: a root with the oracle's schema,
# small segments and frequent archiver checkpoints.
pitr_make_root() {
  local root=$1 seg=${2:-1048576}
  mkdir -p "$root"
  python3 "$ORACLE" schema > "$root/schema.sql"
  cat > "$root/sqlenvfs.conf" <<CONF
[archive]
segment-max-bytes=$seg
checkpoint-pages=200
CONF
  "$SQLENVFS" init --root "$root" >/dev/null
}

# pitr_history ROOT: a new root at ROOT whose archive holds 4 s of the
# oracle writer's commits (its log in $T/log), the archiver stopped (its
# output in $T/a.out/.err).
pitr_history() {
  pitr_make_root "$1"
  pitr_start_archiver "$1" "$T/a"
  python3 "$ORACLE" writer --db "$1/data/prod/app.db" --log "$T/log" --duration 4 \
    --no-vacuum >/dev/null
  pitr_stop_archiver "$T/a"
}

# pitr_start_archiver ROOT PREFIX: run `sqlenvfs archive` in the background
# (output in PREFIX.out/.err, pid in PREFIX.pid) and wait until it captures.
pitr_start_archiver() {
  local root=$1 prefix=$2 i n0
  n0=$(ls "$root/backups/prod/snapshots" 2>/dev/null | wc -l)
  "$SQLENVFS" archive --root "$root" > "$prefix.out" 2> "$prefix.err" &
  echo $! > "$prefix.pid"
  track_pid "$(cat "$prefix.pid")"
  for i in $(seq 1 100); do
    if grep -q 'archiver app: capturing' "$prefix.err"; then
      # a first start or a gap takes a snapshot: wait for it too
      if grep -q 'capturing (first start\|capturing (a new chain' "$prefix.err"; then
        [ "$(ls "$root/backups/prod/snapshots" 2>/dev/null | wc -l)" -gt "$n0" ] && return 0
      else
        return 0
      fi
    fi
    kill -0 "$(cat "$prefix.pid")" 2>/dev/null || { cat "$prefix.err" >&2; fail "the archiver exited"; }
    sleep 0.1
  done
  cat "$prefix.err" >&2
  fail "the archiver did not start capturing within 10 s"
}

# pitr_stop_archiver PREFIX: SIGTERM it (it archives everything committed
# before it stops and records that capture was complete up to then), check
# it stopped cleanly.
pitr_stop_archiver() {
  local prefix=$1 pid rc=0
  pid=$(cat "$prefix.pid")
  kill -TERM "$pid"
  wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || { cat "$prefix.err" >&2; fail "the archiver exited with $rc on SIGTERM"; }
}

# pitr_commits LOG: how many transactions the oracle's writer has logged.
pitr_commits() { if [ -e "$1" ]; then grep -c '^T ' "$1" || true; else echo 0; fi; }

# pitr_wait_commits LOG N: wait (up to 60 s) until the writer has logged at
# least N transactions.
pitr_wait_commits() {
  local log=$1 n=$2 i
  for i in $(seq 1 600); do
    [ "$(pitr_commits "$log")" -ge "$n" ] && return 0
    sleep 0.1
  done
  fail "the writer logged $(pitr_commits "$log") transactions within 60 s, expected $n"
}

# pitr_watch_growth DIR PID BYTES: in the background, stop PID with SIGSTOP
# as soon as the segments in DIR have grown by more than BYTES (a tight loop
# reading only their sizes), as a slow disk or a busy CPU could hold a writer
# there; returns once it has read the sizes to grow from. Its pid is in
# $watch: it exits non-zero when nothing grew within 60 s.
pitr_watch_growth() {
  local ready
  ready=$(mktemp -u "$T/watching-XXXXXX")
  python3 - "$1" "$2" "$3" "$ready" <<'PY' &
import glob, os, signal, sys, time
d, pid, grow, ready = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def size():
    n = 0
    for f in glob.glob(os.path.join(d, "*.seg")):
        try:
            n += os.stat(f).st_size
        except FileNotFoundError:
            pass
    return n
size0 = size()
open(ready, "w").close()
deadline = time.time() + 60
while time.time() < deadline:
    if size() > size0 + grow:
        os.kill(pid, signal.SIGSTOP)
        sys.exit(0)
sys.exit(1)
PY
  watch=$!
  track_pid $watch
  for _ in $(seq 1 100); do [ -e "$ready" ] && return 0; sleep 0.05; done
  fail "the watch of $1 did not start"
}

# While late commits are being archived (the archiver held by
# pitr_watch_growth): a restore at @T_MID (inside the interruption, WHAT
# names it) is refused and pitr/@T_MID is absent from mount MNT; `latest`
# is restored and its capture time and row count left in $held and
# $k_held, for pitr_check_held once the archiver is done. LO: the commits
# that had returned a second before T_MID.
#   pitr_check_hold ROOT MNT T_MID LO WHAT WHILE
pitr_check_hold() {
  local r=$1 m=$2 t_mid=$3 lo=$4 what=$5 while=$6 rc=0 k
  "$SQLENVFS" restore --root "$r" --time "@$t_mid" --output "$T/mid.db" > /dev/null \
    2> "$T/mid.err" || rc=$?
  if [ "$rc" -eq 0 ]; then
    k=$(sqlite3 "$T/mid.db" 'SELECT coalesce(max(k), 0) FROM tx')
    fail "restore --time @$t_mid ($what) gave rows 1..$k $while; commits up to $lo had" \
      "returned a second before"
  fi
  [ -e "$m/pitr/@$t_mid/app.db" ] && fail "pitr/@$t_mid ($what) exists $while"
  "$SQLENVFS" restore --root "$r" --time latest --output "$T/latest.db" > "$T/latest.out" 2>&1 \
    || fail "restore --time latest $while: $(cat "$T/latest.out")"
  held=$(sed -n 's/.*captured \([^ ,]*\).*/\1/p' "$T/latest.out")
  [ -n "$held" ] || fail "no capture time in: $(cat "$T/latest.out")"
  k_held=$(sqlite3 "$T/latest.db" 'SELECT count(*) FROM tx')
}

# Once every late commit is archived: @T_MID is still refused, and the state
# at $held (latest during the hold) has the rows it had then.
#   pitr_check_held ROOT T_MID WHEN
pitr_check_held() {
  expect_fail 'falls in a gap' "$SQLENVFS" restore --root "$1" --time "@$2" --output "$T/mid2.db"
  "$SQLENVFS" restore --root "$1" --time "$held" --output "$T/held.db" > /dev/null \
    || fail "restore --time $held $3"
  assert_eq "$(sqlite3 "$T/held.db" 'SELECT count(*) FROM tx')" "$k_held" \
    "rows at $held (latest during the hold) $3"
}

# A root for commits that shrink the database: auto_vacuum=MODE (FULL or
# INCREMENTAL), table t of 200 rows and an empty table bulk.
#   pitr_shrink_root ROOT MODE
pitr_shrink_root() {
  mkdir -p "$1"
  cat > "$1/schema.sql" <<SQL
PRAGMA auto_vacuum=$2;
CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
  INSERT INTO t SELECT i, 'init' FROM n;
CREATE TABLE bulk(id INTEGER PRIMARY KEY, v TEXT);
SQL
}

# pitr_write ROOT LOG SECONDS [K0]: the oracle's writer on ROOT's
# production for SECONDS, logging to LOG (from transaction K0 + 1 on).
pitr_write() {
  python3 "$ORACLE" writer --db "$1/data/prod/app.db" --log "$2" --duration "$3" \
    --no-vacuum ${4:+--k0 "$4"} >/dev/null
}

# pitr_last_k LOG: the last transaction the writer logged.
pitr_last_k() { awk '$1=="T"{k=$2} END{print k}' "$1"; }

# pitr_last_time LOG: a time (seconds, as after '@') just after the last
# transaction the writer logged returned.
pitr_last_time() { awk '$1=="T"{t=$4} END{printf "%.6f", t + 0.001}' "$1"; }

# pitr_check_state DB LOG TIME LABEL: DB holds exactly the writer's
# transactions 1..k, with k between what LOG says had surely and what may
# have committed by TIME (seconds); fails naming LABEL when not.
pitr_check_state() {
  python3 - "$1" "$2" "$3" "$ORACLE" "$4" <<'PY'
import sys
sys.path.insert(0, sys.argv[4].rsplit("/", 1)[0])
import pitr_oracle as O
txns, _ = O.parse_log(sys.argv[2])
T = float(sys.argv[3])
k = O.check_db(sys.argv[1], txns, T, quick=False)
lo, hi = O.bounds(txns, T)
assert lo <= k <= hi, "%s: transactions 1..%d, expected %d to %d" % (sys.argv[5], k, lo, hi)
PY
}

# pitr_grow_segments ROOT PREFIX LOG N: a root (pitr_make_root) whose
# segments hold 100 records each, archived by an archiver left running
# (pitr_start_archiver ROOT PREFIX) while the writer logs to LOG, until it
# holds at least N segments; PITR_NSEGS says how many.
pitr_grow_segments() {
  local root=$1 prefix=$2 log=$3 n=$4 i
  local a=$root/backups/prod/wal_archives/app
  pitr_make_root "$root"
  echo "segment-max-records=100" >> "$root/sqlenvfs.conf"
  pitr_start_archiver "$root" "$prefix"
  pitr_write "$root" "$log" 1
  for i in $(seq 1 600); do
    [ "$(ls "$a" | grep -c '\.seg$')" -ge "$n" ] && break
    pitr_write "$root" "$log" 0.5 "$(pitr_last_k "$log")"
  done
  PITR_NSEGS=$(ls "$a" | grep -c '\.seg$')
  [ "$PITR_NSEGS" -ge "$n" ] || fail "the archive did not grow to $n segments: $PITR_NSEGS"
}

# pitr_commit_tx ROOT KIND: one commit into ROOT's production tx table.
pitr_commit_tx() {
  sqlite3 -cmd ".timeout 10000" "$1/data/prod/app.db" \
    "INSERT INTO tx(kind, payload, crc) VALUES ('$2', x'00', 0)"
}

# pitr_take ROOT KIND: a commit, then a backup or a snapshot (KIND) of
# ROOT's production; prints the new copy's name.
pitr_take() {
  local dir=$1/backups/prod/daily before
  [ "$2" = snapshot ] && dir=$1/backups/prod/snapshots
  before=$(ls "$dir" 2>/dev/null | sort)
  pitr_commit_tx "$1" "$2"
  "$SQLENVFS" "$2" --root "$1" >/dev/null || fail "$2"
  comm -13 <(echo "$before") <(ls "$dir" | sort)
}

# pitr_archive_tmpfs ROOT SIZE: the archive of app under ROOT on a tmpfs of
# SIZE of its own (a disk that fills), unmounted at the end; $A names it.
pitr_archive_tmpfs() {
  A=$1/backups/prod/wal_archives/app
  mkdir -p "$A"
  mount -t tmpfs -o "size=$2" sqlenvfs-test "$A" || fail "cannot mount a tmpfs (the tests run as root)"
  _mounts+=("$A")
}

# pitr_backup_between ROOT PREFIX N M [CONF]: a new root at ROOT with table
# t (CONF, printf's escapes allowed, added to its settings) whose archiver
# (PREFIX.out/.err) captures rows 1..N ('a'), a backup, rows N+1..M ('b'),
# then stops.
pitr_backup_between() {
  local root=$1 prefix=$2 n=$3 m=$4 i
  make_root "$root" <(echo "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);")
  [ -z "${5:-}" ] || printf "$5" >> "$root/sqlenvfs.conf"
  pitr_start_archiver "$root" "$prefix"
  for i in $(seq 1 "$n"); do sqlite3 "$root/data/prod/app.db" "INSERT INTO t VALUES ($i, 'a')"; done
  "$SQLENVFS" backup --root "$root" > /dev/null
  for i in $(seq $((n + 1)) "$m"); do
    sqlite3 "$root/data/prod/app.db" "INSERT INTO t VALUES ($i, 'b')"
  done
  sleep 1.2
  pitr_stop_archiver "$prefix"
}
