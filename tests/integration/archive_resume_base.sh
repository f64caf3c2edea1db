#!/usr/bin/env bash
# An archiver stopped while the application keeps its connection (and so
# the WAL) open, one commit made meanwhile, then the archiver started again:
# the chain resumes after an outage, its base still serves the newest
# state, so the restart takes no fresh snapshot and warns of nothing; the
# newest state, with the commit made while it was stopped and those after,
# restores exactly.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
pitr_make_root "$R"
pitr_start_archiver "$R" "$T/a1"
n0=$(ls "$R/backups/prod/snapshots" | wc -l)

python3 - "$R/data/prod/app.db" "$T" <<'PY' || fail "the application's steps failed"
import os, signal, sqlite3, subprocess, sys, time
db, t = sys.argv[1], sys.argv[2]
env = dict(os.environ)
c = sqlite3.connect(db, isolation_level=None)
def commit(kind):
    c.execute("INSERT INTO tx(kind, payload, crc) VALUES (?, x'00', 0)", (kind,))
for i in range(3):
    commit("before %d" % i)
    time.sleep(0.3)
pid = int(open(t + "/a1.pid").read())
os.kill(pid, signal.SIGTERM)
while os.path.exists("/proc/%d" % pid) and open("/proc/%d/stat" % pid).read().split()[2] != "Z":
    time.sleep(0.05)
commit("while stopped")
a2 = subprocess.Popen([env["SQLENVFS"], "archive", "--root", os.path.dirname(os.path.dirname(
    os.path.dirname(db)))], stdout=open(t + "/a2.out", "w"), stderr=open(t + "/a2.err", "w"))
open(t + "/a2.pid", "w").write(str(a2.pid))
for _ in range(200):
    if "archiver app: capturing" in open(t + "/a2.err").read():
        break
    time.sleep(0.05)
for i in range(3):
    commit("after %d" % i)
    time.sleep(0.3)
time.sleep(1.5)
PY
track_pid "$(cat "$T/a2.pid")"
grep -q 'archiver app: capturing (resumed without a gap' "$T/a2.err" ||
  fail "the restart did not resume the chain: $(cat "$T/a2.err")"
if grep -q 'newest archived state cannot be restored' "$T/a2.err"; then
  fail "the restart said the newest state cannot be restored: $(cat "$T/a2.err")"
fi
assert_eq "$(ls "$R/backups/prod/snapshots" | wc -l)" "$n0" "snapshots after the restart"
# (started by the application's script: not this shell's child to wait for)
kill -TERM "$(cat "$T/a2.pid")"
for _ in $(seq 1 100); do kill -0 "$(cat "$T/a2.pid")" 2>/dev/null || break; sleep 0.1; done
kill -0 "$(cat "$T/a2.pid")" 2>/dev/null && fail "the restarted archiver did not stop on SIGTERM"
"$SQLENVFS" restore --root "$R" --time latest --output "$T/latest.db" >/dev/null 2>"$T/r.err" ||
  fail "restore --time latest: $(cat "$T/r.err")"
assert_eq "$(sqlite3 "$T/latest.db" "SELECT group_concat(kind, ',') FROM (SELECT kind FROM tx
  WHERE kind LIKE 'before %' OR kind LIKE 'after %' OR kind = 'while stopped' ORDER BY rowid)")" \
  "before 0,before 1,before 2,while stopped,after 0,after 1,after 2" "the newest state"
pass "a restart after an outage resumes on its base: no fresh snapshot, no warning, exact"
