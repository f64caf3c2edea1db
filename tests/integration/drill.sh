#!/usr/bin/env bash
# The restore drill, with a real writer (Python sqlite3) committing all the
# while: `verify --drill` passes on a healthy root; with bytes flipped in a
# backup's .db it fails naming that backup; with a record of an archive
# segment damaged it fails naming the segment; status, doctor and list show
# the last result; `echo drill > ctl/verify` drills through a real mount; a drill
# right after `init --force` waits for the archiver's new chain.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
W=$R/backups/prod/wal_archives/app
pitr_make_root "$R"

drill() { # sets $rc, output in $T/drill.out and $T/drill.err
  rc=0
  "$SQLENVFS" verify --drill --root "$R" "$@" > "$T/drill.out" 2> "$T/drill.err" || rc=$?
}

# ---- the archiver starts after the drill pinned production -----------------------
# Its first capture comes after the pin, so the archive holds no state from
# before it: the drill pins again and passes, rather than failing a healthy
# root that was drilled just as archiving began.
( drill --db app; echo "$rc" > "$T/early.rc" ) &
EARLY=$!
sleep 1
pitr_start_archiver "$R" "$T/a"
wait "$EARLY"
[ "$(cat "$T/early.rc")" = 0 ] \
  || fail "a drill begun before the archiver started failed: $(cat "$T/drill.out" "$T/drill.err")"
pass "a drill that pinned production before the archiver started pins again and passes"

# ---- idle: `init` closed production, so its WAL holds no commit --------------------
drill --db app
[ "$rc" -eq 0 ] || fail "drill of an idle database failed: $(cat "$T/drill.out" "$T/drill.err")"
grep -Eq '^ok +app: equal, .*WAL frame 0\) rebuilt from snapshot ' "$T/drill.out" \
  || fail "idle drill output: $(cat "$T/drill.out")"
pass "an idle database with an empty WAL: the drill passes against the last archived state"

python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log" --duration 120 --no-vacuum \
  --stop-file "$T/stop" > /dev/null 2>&1 &
WRITER=$!
track_pid "$WRITER"
stop_writer() { touch "$T/stop"; wait "$WRITER" 2>/dev/null || true; rm -f "$T/stop"; }
pitr_wait_commits "$T/log" 20
"$SQLENVFS" backup --root "$R" > /dev/null
BACKUP=$(ls -d "$R"/backups/prod/daily/* | tail -1)/app.db
# The last record archived once the backup exists: every record after it is
# applied on top of the backup by a restore of the newest state.
AFTER_BACKUP=$(python3 -c "
import sys; sys.path.insert(0, '$SRCDIR/tests/integration'); import archive_dump
print(max(r['seq'] for r in archive_dump.records('$W')))")
pitr_wait_commits "$T/log" $(( $(pitr_commits "$T/log") + 30 ))

json_get() { # FILE PYTHON-EXPRESSION-ON-d
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"
}

# ---- healthy ---------------------------------------------------------------
drill
[ "$rc" -eq 0 ] || fail "drill on a healthy root failed: $(cat "$T/drill.out" "$T/drill.err")"
grep -Eq '^ok +app: equal, [0-9]+ pages compared \([0-9.]+ [KM]iB read\) in [0-9.]+ s: the state of archived record [0-9]+ .* rebuilt from backup ' "$T/drill.out" \
  || fail "drill output: $(cat "$T/drill.out")"
kill -0 "$WRITER" || fail "the writer stopped before the drill ended"
pass "a healthy root: the drill passes while the writer commits, rebuilding from the backup"

"$SQLENVFS" list --root "$R" > "$T/list.out"
grep -Eq '^  app +last drill passed at [0-9T:.-]+Z$' "$T/list.out" || fail "list: $(cat "$T/list.out")"
"$SQLENVFS" list --root "$R" --json > "$T/list.json"
assert_eq "$(json_get "$T/list.json" '[x["passed"] for x in d["drills"] if x["database"] == "app"]')" \
  "[True]" "list --json drills"
rc=0
"$SQLENVFS" doctor --root "$R" --json > "$T/doc.json" || rc=$?
json_get "$T/doc.json" '[f["severity"] + " " + f["found"] for f in d["findings"] if f["check"] == "drill"]' \
  > "$T/doc.drill"
grep -q "'ok last drill passed at" "$T/doc.drill" || fail "doctor: $(cat "$T/doc.drill")"
[ "$(stat -c %a "$R/.sqlenvfs/drilled")" = 600 ] || fail "the drill memo is not 0600"
pass "list, list --json and doctor show the passed drill; the memo is 0600"

# ---- a damaged base ----------------------------------------------------------
flip() { # FILE OFFSET: xor one byte with 0x5a (twice restores it)
  python3 - "$1" "$2" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    off = int(sys.argv[2]); f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0x5a]))
PY
}
BOFF=$(( $(stat -c %s "$BACKUP") / 2 + 100 ))
flip "$BACKUP" "$BOFF"
drill
[ "$rc" -eq 1 ] || fail "a drill over a damaged backup exited $rc: $(cat "$T/drill.out")"
grep -q "^FAILED app: the base $BACKUP (backup .*) is bad: .*crc32" "$T/drill.out" \
  || fail "the failure does not name the damaged backup: $(cat "$T/drill.out")"
grep -q "drills failed" "$T/drill.err" || fail "stderr: $(cat "$T/drill.err")"
"$SQLENVFS" list --root "$R" | grep -q "^  app  *last drill FAILED at .*Z: the base $BACKUP" \
  || fail "list does not show the failed drill: $("$SQLENVFS" list --root "$R")"
# (the doctor also fails the damaged backup itself; the drill is a warning)
"$SQLENVFS" doctor --root "$R" --json > "$T/doc.json" || true
json_get "$T/doc.json" '[f["severity"] + " " + f["found"] for f in d["findings"] if f["check"] == "drill"]' \
  | grep -q "'warning last drill FAILED at .*$BACKUP" || fail "doctor: $(cat "$T/doc.json")"
# Known bad now (the memo of base verdicts): restores leave it out and plan
# from an older base, yet it is still the base a restore of the drilled
# state should start from, so every later drill fails naming it too.
for n in 2 3; do
  drill
  [ "$rc" -eq 1 ] || fail "drill $n over a damaged backup already known bad exited $rc: $(cat "$T/drill.out")"
  grep -q "^FAILED app: the base $BACKUP (backup .*) is bad: .*crc32.* (as found before" \
    "$T/drill.out" || fail "drill $n does not name the known-bad backup: $(cat "$T/drill.out")"
done
"$SQLENVFS" list --root "$R" | grep -q "^  app  *last drill FAILED at .*Z: the base $BACKUP" \
  || fail "list after the repeated drills: $("$SQLENVFS" list --root "$R")"
flip "$BACKUP" "$BOFF"
drill
[ "$rc" -eq 0 ] || fail "the drill fails with the backup's bytes put back: $(cat "$T/drill.out")"
pass "a backup with flipped bytes fails every drill naming it, also once known bad (list, doctor warn); put back, it passes"

# A MANIFEST that cannot be read: which state the backup holds cannot be
# told, so a restore starts from an older base; the drill fails naming it.
BDIR=$(dirname "$BACKUP")
for damage in garbage empty removed; do
  cp "$BDIR/MANIFEST" "$T/MANIFEST.saved"
  case $damage in
    garbage) echo garbage >> "$BDIR/MANIFEST" ;;
    empty) : > "$BDIR/MANIFEST" ;;
    removed) rm "$BDIR/MANIFEST" ;;
  esac
  drill
  [ "$rc" -eq 1 ] || fail "a drill over a backup whose MANIFEST is $damage exited $rc: $(cat "$T/drill.out")"
  grep -q "^FAILED app: the base $BDIR (backup .*) is bad: .*MANIFEST" "$T/drill.out" ||
    fail "the drill does not name the backup whose MANIFEST is $damage: $(cat "$T/drill.out")"
  cp "$T/MANIFEST.saved" "$BDIR/MANIFEST"
done
drill
[ "$rc" -eq 0 ] || fail "the drill fails with the MANIFEST put back: $(cat "$T/drill.out")"
pass "a backup whose MANIFEST cannot be read fails the drill naming it"

# ---- a damaged archive record --------------------------------------------------
# A COMMIT record archived after the backup (not one of the newest): a
# restore of the newest state reads it.
victim=""
for _ in $(seq 300); do
  victim=$(python3 - "$W" "$SRCDIR/tests/integration" "$AFTER_BACKUP" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
import archive_dump
recs = list(archive_dump.records(sys.argv[1]))
c = [r for r in recs if r["type"] == "COMMIT" and r["seq"] > int(sys.argv[3])]
if len(c) >= 10:
    v = c[len(c) // 2]
    print(v["segment"], v["offset"] + v["length"] // 2, v["seq"])
PY
)
  [ -n "$victim" ] && break
  sleep 0.1
done
[ -n "$victim" ] || fail "fewer than 10 commits archived after the backup within 30 s"
read -r SEG SOFF SSEQ <<< "$victim"
flip "$SEG" "$SOFF"
note "flipped a byte of record $SSEQ in $(basename "$SEG")"
drill
[ "$rc" -eq 1 ] || fail "a drill over a damaged record exited $rc: $(cat "$T/drill.out")"
grep -q "^FAILED app: .*$(basename "$SEG")" "$T/drill.out" \
  || fail "the failure does not name the damaged segment: $(cat "$T/drill.out")"
"$SQLENVFS" list --root "$R" --json > "$T/list.json"
json_get "$T/list.json" '[x["why"] for x in d["drills"] if x["database"] == "app" and x["passed"] is False]' \
  | grep -q "$(basename "$SEG")" || fail "list --json does not carry why: $(cat "$T/list.json")"
pass "a damaged archive record fails the drill naming its segment"
flip "$SEG" "$SOFF"

stop_writer
pitr_stop_archiver "$T/a"

# ---- production is only read -------------------------------------------------------
# No other connection is open now: a drill whose connection checkpointed on
# close would copy the WAL into the database file and delete the WAL. The
# archiver archived every commit before it stopped, so the drill needs none.
P=$R/data/prod/app.db
[ -s "$P-wal" ] || fail "production has no WAL to keep"
before=$(sha256sum "$P" "$P-wal" | awk '{print $1}' | tr '\n' ' ')
drill
[ "$rc" -eq 0 ] || fail "drill with the archiver stopped after archiving everything: $(cat "$T/drill.out")"
after=$(sha256sum "$P" "$P-wal" 2>/dev/null | awk '{print $1}' | tr '\n' ' ')
assert_eq "$after" "$before" "production and its WAL after a drill"
pass "the drill leaves production and its WAL byte for byte as they were (no checkpoint on close)"

# ---- a page that differs --------------------------------------------------------------
# Bit rot in production's file itself, on a page no WAL frame holds (so the
# pinned state reads it from the file): every copy and record is intact, so
# only the comparison can see it, and it names the page and where the
# rebuild took it from. The flipped byte is put back afterwards.
PG=$(python3 - "$P" <<'PY'
import os, struct, sys
db = sys.argv[1]
ps = struct.unpack(">H", open(db, "rb").read(18)[16:18])[0]
ps = 65536 if ps == 1 else ps
in_wal = set()
with open(db + "-wal", "rb") as f:
    f.seek(32)
    while True:
        h = f.read(24)
        if len(h) < 24:
            break
        in_wal.add(struct.unpack(">I", h[:4])[0])
        f.seek(ps, 1)
n = os.path.getsize(db) // ps
print(max(p for p in range(2, n + 1) if p not in in_wal), ps)
PY
)
read -r PGNO PS <<< "$PG"
POFF=$(( (PGNO - 1) * PS + PS / 2 ))
flip "$P" "$POFF"
drill
flip "$P" "$POFF"
[ "$rc" -eq 1 ] || fail "a drill over a production page changed on disk exited $rc: $(cat "$T/drill.out")"
grep -Eq "^FAILED app: page $PGNO differs between production .* the rebuild takes that page from (the base $R/backups/prod/[a-z]+/[0-9TZ.]+/app.db|record [0-9]+ of archive segment $W/[0-9]+.seg)" "$T/drill.out" \
  || fail "the failure does not name page $PGNO and its source: $(cat "$T/drill.out")"
note "$(cat "$T/drill.out")"
drill
[ "$rc" -eq 0 ] || fail "the drill fails with production's byte put back: $(cat "$T/drill.out")"
pass "a page of production changed on disk: the drill names page $PGNO and where the rebuild took it from"

# ---- through a mount ------------------------------------------------------------
M=$T/mnt
mount_root "$R" "$M"
wait_archiving "$M"
python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log2" --duration 60 --no-vacuum \
  --k0 1000000 --seed 5 --stop-file "$T/stop" > /dev/null 2>&1 &
WRITER=$!
track_pid "$WRITER"
pitr_wait_commits "$T/log2" 10
echo drill > "$M/ctl/verify" || fail "echo drill > ctl/verify failed: $(cat "$M/ctl/verify")"
grep -Eq "^ok [0-9T:Z.-]+ verify: drill: app equal \([0-9]+ pages" "$M/ctl/verify" \
  || fail "ctl/verify says: $(cat "$M/ctl/verify")"
json_get "$M/status" '[(x["drill"]["passed"], x["drill"]["summary"][:22]) for x in d["databases"] if x["name"] == "app"]' \
  > "$T/st"
assert_eq "$(cat "$T/st")" "[(True, 'last drill passed at 2')]" "status JSON drill"
echo "drill app" > "$M/ctl/verify" || fail "echo 'drill app' > ctl/verify failed: $(cat "$M/ctl/verify")"
grep -Eq "^ok [0-9T:Z.-]+ verify: drill: app equal" "$M/ctl/verify" \
  || fail "ctl/verify after 'drill app' says: $(cat "$M/ctl/verify")"
rc=0
echo "drill nope" > "$M/ctl/verify" 2>/dev/null || rc=$?
[ "$rc" -ne 0 ] || fail "ctl/verify accepted drill of a database that does not exist"
pass "echo drill > ctl/verify drills through the mount; status shows the result"
stop_writer
unmount_root "$M"

# ---- no archiver at all ---------------------------------------------------------------
# A commit no archiver will capture: the drill says that no archiver runs,
# within seconds, not after waiting the whole 30 s for one.
sqlite3 "$R/data/prod/app.db" "PRAGMA wal_autocheckpoint=0; CREATE TABLE unarchived (x); DROP TABLE unarchived" > /dev/null
start=$(date +%s)
drill --db app
[ "$rc" -ne 0 ] || fail "a drill with no archiver running passed: $(cat "$T/drill.out")"
grep -q "no archiver is running (nothing holds .*archiver.lock)" "$T/drill.out" \
  || fail "a drill with no archiver running says: $(cat "$T/drill.out")"
[ $(( $(date +%s) - start )) -lt 20 ] || fail "a drill with no archiver running took $(( $(date +%s) - start )) s"
pass "with no archiver running, the drill says so within seconds"


# ---- production recreated by init --force while the archiver runs -------------------
# Until the archiver sees the new file and starts a new chain for it, the
# archive's newest state is the old database's: a drill made right away
# waits for the new chain (pinning again) and passes, instead of comparing
# the new database with the old one's state and reporting a damaged page.
pitr_start_archiver "$R" "$T/a2"
"$SQLENVFS" init --root "$R" --db app --force > /dev/null 2>&1 || fail "init --force failed"
drill --db app
[ "$rc" -eq 0 ] || fail "a drill right after init --force failed: $(cat "$T/drill.out")"
grep -Eq '^ok +app: equal, .*WAL frame 0\) rebuilt from snapshot [0-9TZ.]+ \+ 0 commits$' \
  "$T/drill.out" || fail "the drill right after init --force says: $(cat "$T/drill.out")"
pitr_stop_archiver "$T/a2"
pass "a drill right after init --force waits for the archiver's new chain and passes"
