#!/usr/bin/env bash
# pitr/ through the mount, while an application writes to production:
# cp MNT/pitr/<T>/app.db gives the same database as `sqlenvfs restore --time
# T` for several T in several spellings; ls -l of a time is right-sized and
# rebuilds nothing; two readers of a new time share one rebuild and get the
# same complete bytes; earliest/latest links; names outside the window are
# ENOENT with a log line; the cache stays within max-bytes; and
# `echo <T> > ctl/refresh-dev` loads production as of T into development.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root M=$T/mnt
make_root "$R" "$SRCDIR/schema.sql" --demo --demo-events 5000
P=$R/data/prod/app.db
sqlite3 "$P" "CREATE TABLE seq (n INTEGER PRIMARY KEY, t TEXT NOT NULL)"
# A cached state holds only the pages that differ from its base, here a
# few per state: room for one page, so that states evict each other.
printf '[cache]\nmax-bytes=%d\n' 4096 > "$R/sqlenvfs.conf"
# Each rebuild takes at least this long, so that concurrent readers overlap it.
SQLENVFS_TEST_PITR_DELAY_MS=400 mount_root "$R" "$M"
wait_archiving "$M"

status() { python3 -c "import json,sys; s=json.load(open('$M/status')); print(eval(sys.argv[1]))" "$1"; }

# The application: numbered rows, one per transaction; it logs the wall
# time before it began and after it committed each one.
python3 - "$P" "$T/stop" "$T/commits.log" <<'PY' &
import os, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
log = open(sys.argv[3], "w", buffering=1)
n = 0
while not os.path.exists(sys.argv[2]):
    n += 1
    began = time.time()
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO seq (n, t) VALUES (?, ?)", (n, repr(began)))
    db.execute("COMMIT")
    log.write("%d %.6f %.6f\n" % (n, began, time.time()))
    time.sleep(0.01)
PY
writer=$!
track_pid "$writer"
# Two and a half seconds of commits from its first one (Python starts
# slowly on a loaded machine).
for i in $(seq 1 300); do [ -s "$T/commits.log" ] && break; sleep 0.1; done
[ -s "$T/commits.log" ] || fail "the writer committed nothing within 30 s"
sleep 2.5

# Times inside what has been written so far, in several spellings.
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%S.%6NZ; }
basic() { date -u -d "@$1" +%Y%m%dT%H%M%S.%3NZ; }
offset() { TZ=Etc/GMT-2 date -d "@$1" +%Y-%m-%dT%H:%M:%S.%3N+02:00; }
t0=$(awk 'NR==1 {print $3}' "$T/commits.log")
names=()
for frac in 0.2 0.5 0.8; do
  t=$(python3 -c "print('%.3f' % ($t0 + 2.0 * $frac))")
  case $frac in
    0.2) names+=("$(iso "$t")") ;;
    0.5) names+=("$(basic "$t")") ;;
    0.8) names+=("$(offset "$t")") ;;
  esac
done
names+=("@$(python3 -c "print('%.2f' % ($t0 + 1.1))")")

# --- cp of pitr/<T>/app.db == sqlenvfs restore --time T, while the writer writes
i=0
for name in "${names[@]}"; do
  i=$((i + 1))
  cp "$M/pitr/$name/app.db" "$T/pitr$i.db"
  "$SQLENVFS" restore --root "$R" --time "$name" --output "$T/restore$i.db" > /dev/null 2>&1 \
    || fail "sqlenvfs restore --time $name failed"
  assert_eq "$(sqlite3 "$T/pitr$i.db" 'PRAGMA integrity_check')" "ok" "integrity of pitr/$name"
  assert_eq "$(sqlite3 "$T/pitr$i.db" .dump | sha256sum)" "$(sqlite3 "$T/restore$i.db" .dump | sha256sum)" \
    "pitr/$name/app.db against sqlenvfs restore"
  read -r cnt hi < <(sqlite3 -separator ' ' "$T/pitr$i.db" 'SELECT count(*), coalesce(max(n),0) FROM seq')
  [ "$cnt" -eq "$hi" ] || fail "pitr/$name holds $cnt rows up to $hi: not a prefix"
  # Rows whose commit returned a second before T are in; rows begun after T are not.
  tu=$(python3 -c "
import datetime, sys
n = sys.argv[1]
if n.startswith('@'): print(float(n[1:]))
else:
    import re
    if re.match(r'^\d{8}T', n): n = n[:4]+'-'+n[4:6]+'-'+n[6:11]+':'+n[11:13]+':'+n[13:]
    print(datetime.datetime.fromisoformat(n.replace('Z', '+00:00')).timestamp())" "$name")
  lo=$(awk -v t="$tu" '$3 <= t - 1.0 {c = $1} END {print c + 0}' "$T/commits.log")
  up=$(awk -v t="$tu" '$2 <= t {c = $1} END {print c + 0}' "$T/commits.log")
  [ "$cnt" -ge "$lo" ] && [ "$cnt" -le "$up" ] \
    || fail "pitr/$name holds $cnt rows; committed a second before: $lo, begun before: $up"
  note "pitr/$name: $cnt rows"
done
pass "cp of pitr/<T>/app.db equals sqlenvfs restore --time T for ${#names[@]} times, while writing"

# --- ls -l of a new time: right size, no rebuild
t=$(python3 -c "print('%.3f' % ($t0 + 1.7))")
name=$(iso "$t")
rebuilds=$(status "s['pitr_cache']['rebuilds']")
out=$(ls -l "$M/pitr/$name/")
grep -q " app.db$" <<<"$out" || fail "ls -l pitr/$name: $out"
shown=$(stat -c %s "$M/pitr/$name/app.db")
assert_eq "$(status "s['pitr_cache']['rebuilds']")" "$rebuilds" "rebuilds after ls -l of a new time"
"$SQLENVFS" restore --root "$R" --time "$name" --output "$T/sized.db" > /dev/null 2>&1
assert_eq "$shown" "$(stat -c %s "$T/sized.db")" "size shown for pitr/$name"
pass "ls -l pitr/<T>/ shows the right size and rebuilds nothing"

# --- two readers of one new time at once: one rebuild, the same whole bytes
t=$(python3 -c "print('%.3f' % ($t0 + 0.6))")
name=$(iso "$t")
rebuilds=$(status "s['pitr_cache']['rebuilds']")
cat "$M/pitr/$name/app.db" > "$T/a.db" & ra=$!
cat "$M/pitr/$name/app.db" > "$T/b.db" & rb=$!
wait $ra && wait $rb || fail "a concurrent reader of pitr/$name failed"
cmp -s "$T/a.db" "$T/b.db" || fail "two concurrent readers got different bytes"
"$SQLENVFS" restore --root "$R" --time "$name" --output "$T/ab.db" > /dev/null 2>&1
assert_eq "$(sqlite3 "$T/a.db" .dump | sha256sum)" "$(sqlite3 "$T/ab.db" .dump | sha256sum)" "concurrent read"
assert_eq "$(status "s['pitr_cache']['rebuilds']")" "$((rebuilds + 1))" "rebuilds for two concurrent readers"
pass "two readers of a new time share one rebuild and get the same bytes"

touch "$T/stop"
wait "$writer"

# --- a time just past (now, right after the last commit was captured, which
# --- takes well under 200 ms) is there at once
sleep 0.2
now=$(date -u +%FT%T.%NZ) # as the README shows it: nine fraction digits
total=$(tail -1 "$T/commits.log" | cut -d' ' -f1)
assert_eq "$(ls "$M/pitr/$now/")" "app.db" "ls pitr/<now>/ right after the last commit"
assert_eq "$(sqlite3 "$M/pitr/$now/app.db" 'SELECT count(*) FROM seq')" "$total" "rows at pitr/<now>"
pass "pitr/<now> right after a commit holds that commit"

# --- the window: earliest/latest links, names outside it
assert_eq "$(ls "$M/pitr" | tr '\n' ' ')" "earliest latest " "ls pitr/"
latest=$(readlink "$M/pitr/latest")
[ -n "$(readlink "$M/pitr/earliest")" ] || fail "pitr/earliest is no link"
assert_eq "$(ls "$M/pitr/latest/")" "app.db" "ls pitr/latest/"
# The window reaches past the last commit once the archiver has recorded
# that it is alive past it (at most once a second), seen within a second or two.
for i in $(seq 1 50); do
  got=$(sqlite3 "$M/pitr/$(readlink "$M/pitr/latest")/app.db" 'SELECT count(*) FROM seq')
  [ "$got" = "$total" ] && break
  sleep 0.2
done
assert_eq "$got" "$total" "rows at pitr/latest after the writer stopped"
for bad in yesterday 2000-01-01T00:00:00Z 2099-01-01T00:00:00Z 20261301T000000Z; do
  ls "$M/pitr/$bad" > /dev/null 2>&1 && fail "pitr/$bad exists"
  [ "$(ls "$M/pitr/$bad" 2>&1 | grep -c 'No such file or directory')" -eq 1 ] || fail "pitr/$bad is not ENOENT"
done
grep -q "pitr/yesterday: not a time" "$R/.sqlenvfs/mount.log" || fail "no log line for pitr/yesterday"
grep -q "pitr/2000-01-01T00:00:00Z: outside the recoverable window" "$R/.sqlenvfs/mount.log" \
  || fail "no log line for a time before the window"
grep -q "pitr/2099-01-01T00:00:00Z: that time is in the future" "$R/.sqlenvfs/mount.log" \
  || fail "no log line for a time in the future"
note "latest is $latest"
pass "pitr/ lists earliest and latest; names outside the window are ENOENT and logged"

# --- a pitr/ name that never resolves (not a time, before the window) is
# remembered as absent by the kernel for a while: three lookups in a row
# reach the daemon once; a time in the future, which may resolve later,
# reaches it each time. The daemon counts failed lookups in status (its log
# says only the first few of a burst).
failed_lookups() { # the count in a status rendered after now
  local after
  after=$(date -u +%FT%T.%6NZ)
  for _ in $(seq 100); do
    python3 - "$M/status" "$after" <<'PY' && return 0
import json, sys
s = json.load(open(sys.argv[1]))
if s["now"].rstrip("Z").ljust(26, "0") <= sys.argv[2].rstrip("Z"):
    sys.exit(1)
print(s["pitr_cache"]["failed_lookups"])
PY
    sleep 0.05
  done
  fail "status was not rendered again"
}
lookups_of() { # name: how many of three lookups reached the daemon, and in how many ms
  local before began elapsed_ms
  before=$(failed_lookups)
  began=$(date +%s%N)
  for i in 1 2 3; do
    stat "$M/pitr/$1" > /dev/null 2>&1 && fail "pitr/$1 exists"
  done
  elapsed_ms=$(( ($(date +%s%N) - began) / 1000000 ))
  echo "$(( $(failed_lookups) - before )) $elapsed_ms"
}
read -r n _ <<< "$(lookups_of 2098-01-01T00:00:00Z)"
assert_eq "$n" "3" "lookups of a future time that reached the daemon"
for name in not-a-time-x 2000-01-02T00:00:00Z; do
  read -r n elapsed_ms <<< "$(lookups_of "$name")"
  if [ "$elapsed_ms" -lt 1500 ]; then
    assert_eq "$n" "1" "lookups of pitr/$name that reached the daemon"
  else
    note "the lookups of pitr/$name took $elapsed_ms ms, longer than the kernel remembers an absent name: not counted"
  fi
done
pass "names that never resolve are remembered as absent; a future time is asked again"

# --- the cache stays within max-bytes
max=$(status "s['pitr_cache']['max_bytes']")
[ "$(status "s['pitr_cache']['evicted']")" -ge 1 ] || fail "nothing was evicted: $(status "s['pitr_cache']")"
[ "$(status "s['pitr_cache']['bytes']")" -le "$max" ] || fail "cache over max-bytes: $(status "s['pitr_cache']")"
used=$(find "$R/.cache" -type f -name '*.db' -printf '%s\n' | awk '{s += $1} END {print s + 0}')
[ "$used" -le "$max" ] || fail ".cache holds $used bytes, more than $max"
pass "rebuilt files stay within [cache] max-bytes, least recently used evicted"

# --- refresh-dev as of a time
name=${names[1]}
echo "$name" > "$M/ctl/refresh-dev"
grep -q "^ok .* refresh-dev: .* as of " "$M/ctl/refresh-dev" || fail "ctl/refresh-dev: $(cat "$M/ctl/refresh-dev")"
dump_data() { sqlite3 "$1" "SELECT count(*), coalesce(max(n), 0) FROM seq; SELECT count(*) FROM raw_vessel_events"; }
assert_eq "$(dump_data "$R/data/dev/app.db")" "$(dump_data "$T/restore2.db")" "development as of $name"
assert_eq "$(sqlite3 "$R/data/dev/app.db" 'SELECT count(*), name FROM _environment')" "1|development" \
  "development marker after refresh-dev as of a time"
pass "echo <time> > ctl/refresh-dev loads production as of that time"

# --- ... and refuses (EPERM) a time whose state is not marked production
sqlite3 "$P" "UPDATE _environment SET name = 'staging'"
sleep 0.2
when=$(python3 -c 'import time; print("@%.6f" % time.time())')
before=$(sqlite3 "$R/data/dev/app.db" .dump | sha256sum)
if echo "$when" > "$M/ctl/refresh-dev" 2> "$T/ctl.err"; then
  fail "ctl/refresh-dev as of a state marked staging succeeded"
fi
grep -q "Operation not permitted" "$T/ctl.err" || fail "ctl/refresh-dev: not EPERM: $(cat "$T/ctl.err")"
grep -q "^failed .* refresh-dev: .*staging" "$M/ctl/refresh-dev" \
  || fail "ctl/refresh-dev after the refusal: $(cat "$M/ctl/refresh-dev")"
assert_eq "$(sqlite3 "$R/data/dev/app.db" .dump | sha256sum)" "$before" "development after a refusal"
sqlite3 "$P" "UPDATE _environment SET name = 'production'"
pass "ctl/refresh-dev as of a time whose state is not marked production: EPERM, nothing changed"

unmount_root "$M"
