# Shared helpers for the integration tests (sourced, bash).
#
# Every test gets: $SQLENVFS (the built binary), $SRCDIR (the source tree),
# $T (a private temporary directory, removed on exit together with any mount
# made with mount_root), and these functions.
set -euo pipefail

: "${SQLENVFS:?SQLENVFS must point at the built sqlenvfs binary}"
: "${SRCDIR:?SRCDIR must point at the source tree}"

T=$(mktemp -d "${TMPDIR:-/tmp}/sqlenvfs-it-XXXXXX")
_mounts=()
_pids=()

_cleanup() {
  local rc=$?
  local daemons i
  # The mounts' daemons go on after fusermount3 -u until they have finished
  # (an archiver's snapshot being written): wait for them before removing
  # what they write to.
  daemons=$(pgrep -f "sqlenvfs mount .*$T" || true)
  for m in "${_mounts[@]}"; do
    fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  for p in "${_pids[@]}"; do
    kill -9 "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  for p in $daemons; do
    for i in $(seq 1 100); do
      kill -0 "$p" 2>/dev/null || break
      sleep 0.1
    done
  done
  rm -rf "$T"
  exit $rc
}
trap _cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok - $*"; }
note() { echo "# $*"; }

assert_eq() { # actual expected message
  [ "$1" = "$2" ] || fail "$3: got '$1', expected '$2'"
}

# Run a command expected to fail; check its exit status is non-zero and that
# stderr has exactly one line matching a pattern. Usage:
#   expect_fail PATTERN cmd args...
expect_fail() {
  local pattern=$1; shift
  local err rc=0
  err=$("$@" 2>&1 >/dev/null) || rc=$?
  [ "$rc" -ne 0 ] || fail "expected failure of: $*"
  grep -Eq -- "$pattern" <<<"$err" || fail "error of '$*' does not match /$pattern/: $err"
  [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] || fail "expected one error line from '$*', got: $err"
}

# make_root ROOT SCHEMA [INIT-ARGS...]: a new root ROOT whose schema.sql is
# the file SCHEMA ("$SRCDIR/schema.sql", or <(echo "CREATE TABLE ...")),
# made by `sqlenvfs init` with INIT-ARGS (its output dropped).
make_root() {
  local root=$1 schema=$2; shift 2
  mkdir -p "$root"
  cat "$schema" > "$root/schema.sql"
  "$SQLENVFS" init --root "$root" "$@" > /dev/null
}

# redate_copy ENTRY NAME: the backup or snapshot directory ENTRY moved to
# NAME beside it (a time, 20200101T000000Z), as if it had been taken then:
# its MANIFEST's name and creation time rewritten and sealed again
# (docs/STORE.md, "MANIFEST checksum"). A directory only renamed is not a
# copy of that time, and is never read as one.
redate_copy() {
  local entry=$1 name=$2 dest
  dest=$(dirname "$entry")/$name
  python3 - "$entry/MANIFEST" "$name" <<'PY'
import datetime, sys, zlib
path, name = sys.argv[1], sys.argv[2]
base, _, frac = name.rstrip("Z").partition(".")
t = datetime.datetime.strptime(base, "%Y%m%dT%H%M%S").replace(tzinfo=datetime.timezone.utc)
us = int(t.timestamp()) * 1000000 + int((frac or "0").ljust(3, "0")) * 1000
iso = t.strftime("%Y-%m-%dT%H:%M:%S.") + "%06dZ" % (us % 1000000)
new = {"name": name, "created": iso, "created-us": str(us)}
lines, group, text = open(path).read().split("\n"), None, ""
for i, line in enumerate(lines):
    if line.startswith("["):
        group = line[1:line.index("]")]
    elif "=" in line and not line.startswith("#"):
        key, value = line.split("=", 1)
        if group == "sqlenvfs-copy" and key in new:
            lines[i] = key + "=" + new[key]
for line in lines:
    if line.startswith("["):
        group = line[1:line.index("]")]
        text += "[%s]\n" % group
    elif "=" in line and not line.startswith("#"):
        key, value = line.split("=", 1)
        if not (group == "sqlenvfs-copy" and key == "checksum"):
            text += "%s=%s\n" % (key, value)
lines = [l if not l.startswith("checksum=") else
         "checksum=0x%08x" % zlib.crc32(text.encode()) for l in lines]
open(path, "w").write("\n".join(lines))
PY
  mv "$entry" "$dest"
}

# Remember a background process so that it is killed on exit.
track_pid() { _pids+=("$1"); }

# wait_log FILE TEXT [N]: until FILE holds a line with TEXT (a grep
# pattern) N times (default 1), 10 s at most; fails saying so otherwise.
wait_log() {
  local i
  for i in $(seq 1 100); do
    [ "$(grep -c -- "$2" "$1" 2>/dev/null)" -ge "${3:-1}" ] && return 0
    sleep 0.1
  done
  fail "no '$2' (${3:-1} times) in $1: $(cat "$1")"
}

# app_start DB SQL [BUSY_TIMEOUT] [PAUSE]: an application committing SQL
# (one statement, "?" bound to 200 random bytes) into DB every PAUSE
# seconds (default 0.003), in the background, each failed commit counted,
# until app_stop.
# app_stop: stops it; $app_ok and $app_failed say how many commits went in
# and how many failed.
app_start() {
  rm -f "$T/app.stop"
  python3 - "$1" "$2" "${3:-5}" "$T/app.stop" "${4:-0.003}" > "$T/app.out" <<'PY' &
import os, sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=float(sys.argv[3]))
ok = failed = 0
while not os.path.exists(sys.argv[4]):
    try:
        con.execute(sys.argv[2], (os.urandom(200),) if "?" in sys.argv[2] else ())
        ok += 1
    except sqlite3.Error:
        failed += 1
    time.sleep(float(sys.argv[5]))
print(ok, failed)
PY
  _app=$!
  track_pid "$_app"
  sleep 0.5
}
app_stop() {
  touch "$T/app.stop"
  wait "$_app"
  read -r app_ok app_failed < "$T/app.out"
}

# tmpfs_root DIR SIZE MIN-FREE ROWS: a root on a tmpfs of SIZE of its own,
# [cache] min-free-bytes MIN-FREE, production holding ROWS rows of 1000
# random bytes in table b.
tmpfs_root() {
  mkdir -p "$1"
  mount -t tmpfs -o "size=$2" sqlenvfs-test "$1" || fail "cannot mount a tmpfs (the tests run as root)"
  _mounts+=("$1")
  cp "$SRCDIR/schema.sql" "$1/schema.sql"
  printf '[cache]\nmin-free-bytes=%s\n' "$3" > "$1/sqlenvfs.conf"
  "$SQLENVFS" init --root "$1" > /dev/null
  python3 - "$1/data/prod/app.db" "$4" <<'PY'
import os, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("CREATE TABLE b(i INTEGER PRIMARY KEY, v BLOB)")
con.executemany("INSERT INTO b(v) VALUES (?)", ((os.urandom(1000),) for _ in range(int(sys.argv[2]))))
con.commit()
con.close()
PY
}
# leave_hot_journal DB: DB in rollback-journal mode, table hot of 2000
# committed rows ("committed ..."), then a transaction cut short after its
# changes spilled into the file: the process dies, its -journal is hot, and
# it is what makes the file whole again.
leave_hot_journal() {
  python3 - "$1" <<'PY'
import os, sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("PRAGMA journal_mode=DELETE")
c.execute("CREATE TABLE hot(id INTEGER PRIMARY KEY, v TEXT)")
c.execute("BEGIN")
for i in range(2000):
    c.execute("INSERT INTO hot(v) VALUES (?)", ("committed %d " % i * 8,))
c.execute("COMMIT")
c.execute("PRAGMA cache_size=1")
c.execute("BEGIN")
c.execute("UPDATE hot SET v = 'never committed'")
c.execute("DELETE FROM hot WHERE id > 10")
os._exit(0)  # the process dies mid-transaction
PY
  [ -s "$1-journal" ] || fail "the test did not leave a hot journal in $1"
}

# Mount ROOT on MNT (extra args are passed on) and wait for it, with a
# deadline; it is unmounted on exit.
mount_root() {
  local root=$1 mnt=$2; shift 2
  mkdir -p "$mnt"
  "$SQLENVFS" mount "$root" "$mnt" "$@"
  _mounts+=("$mnt")
  wait_mounted "$mnt"
}

wait_mounted() {
  local mnt=$1 i
  for i in $(seq 1 100); do
    if mountpoint -q "$mnt"; then return 0; fi
    sleep 0.1
  done
  fail "mount $mnt did not appear within 10 s"
}

unmount_root() {
  local mnt=$1 i pid daemons
  # The daemon holds the root's locks until it has finished: wait for it to
  # exit too, so that the next mount or archiver of the root is not refused.
  daemons=$(pgrep -f "sqlenvfs mount .*$mnt" || true)
  fusermount3 -u "$mnt"
  for i in $(seq 1 100); do
    mountpoint -q "$mnt" || break
    sleep 0.1
  done
  mountpoint -q "$mnt" && fail "mount $mnt did not go away within 10 s"
  for pid in $daemons; do
    for i in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && fail "the daemon $pid of $mnt did not exit within 10 s of the unmount"
  done
  return 0
}

# Wait until the mount's archiver captures every production database and has
# taken the snapshot a new recoverable window starts from (status JSON).
wait_archiving() {
  local mnt=$1 i
  for i in $(seq 1 150); do
    if python3 - "$mnt/status" <<'PY' 2>/dev/null; then return 0; fi
import json, sys
s = json.load(open(sys.argv[1]))
ok = all(d.get("archiver", {}).get("state") == "capturing"
         and not d["archiver"].get("snapshot_pending") for d in s["databases"]
         if d.get("production"))
sys.exit(0 if ok and s["databases"] else 1)
PY
    sleep 0.1
  done
  fail "the archiver of $mnt did not start capturing within 15 s: $(cat "$mnt/status")"
}
