#!/usr/bin/env bash
# Bases whose bytes or MANIFEST changed are never used. With one byte of a
# row's payload flipped in the newest snapshot, `verify` names it; `restore`
# (latest and earlier times) and the mount's pitr/<T>/ give exactly what was
# committed, built from an older good base; with every base damaged, restore
# and the mount refuse, naming the bad copy, and leave nothing behind. A
# MANIFEST whose WAL position was zeroed is refused by its checksum, named
# by verify, and never used. A backup taken with an empty WAL in a copy of
# the root that went on by itself, put into the root's backups, is of
# another history: placed by its time and record numbers alone it gave a
# mix of both roots; its MANIFEST names the last record archived before it,
# which the root's archive does not have, so restores and pitr/ pass it
# over, and list, verify and doctor name its MANIFEST.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

# notes_root ROOT: a new root whose production database has the table
# notes; sets P to that database.
notes_root() {
  pitr_make_root "$1"
  P=$1/data/prod/app.db
  sqlite3 "$P" "CREATE TABLE notes (k INTEGER PRIMARY KEY, body TEXT NOT NULL)"
}

R=$T/root M=$T/mnt
notes_root "$R"
SNAPS=$R/backups/prod/snapshots
pitr_start_archiver "$R" "$T/a"

# dump FILE: the content of notes, one row a line (live: production).
dump() { sqlite3 "file:$1?immutable=1" "SELECT k || '|' || body FROM notes ORDER BY k"; }
live() { sqlite3 -cmd ".timeout 10000" "$1" "SELECT k || '|' || body FROM notes ORDER BY k"; }
# commit FROM TO TAG: one transaction per row, a recognisable payload each.
commit() {
  local k
  for k in $(seq "$1" "$2"); do
    sqlite3 -cmd ".timeout 10000" "$P" "INSERT OR REPLACE INTO notes VALUES ($k, printf('%s-row-%04d-%s', '$3', $k, hex(zeroblob(200))))"
  done
}
now() { date -u +%s.%N; }
# snapshots ROOT: snapshot names, oldest first (a plain name is the start of
# its second, so it sorts as .000 would; the names themselves are kept,
# a .000Z one included).
snapshots() {
  ls "$1/backups/prod/snapshots" |
    sed -E 's/^(([0-9]{8}T[0-9]{6})Z)$/\2.000Z\t\1/; t; s/^(.*)$/\1\t\1/' | sort | cut -f2
}
# settle ROOT: wait until everything committed so far is archived; print a
# time (Unix seconds) whose state is the one committed last.
settle() {
  python3 - "$SQLENVFS" "$1" "$(now)" <<'PY'
import datetime, json, subprocess, sys, time
sq, root, tc = sys.argv[1], sys.argv[2], float(sys.argv[3])
deadline = time.time() + 15
while time.time() < deadline:
    j = json.loads(subprocess.check_output([sq, "list", "--root", root, "--json"]))
    ws = [w for w in j["windows"] if w["database"] == "app"]
    if ws:
        to = datetime.datetime.fromisoformat(ws[-1]["to"].replace("Z", "+00:00")).timestamp()
        if to >= tc:
            print("%.6f" % to)
            sys.exit(0)
    time.sleep(0.1)
sys.exit("the recoverable window did not reach %.6f within 15 s" % tc)
PY
}

commit 1 20 first
live "$P" > "$T/at1"; T1=$(settle "$R")
"$SQLENVFS" snapshot --root "$R" >/dev/null
commit 21 30 second
live "$P" > "$T/atm"; TM=$(settle "$R")
commit 31 40 second
live "$P" > "$T/at2"; T2=$(settle "$R")
"$SQLENVFS" snapshot --root "$R" >/dev/null
commit 35 60 third
live "$P" > "$T/at3"
pitr_stop_archiver "$T/a"
mapfile -t snaps < <(snapshots "$R")
[ "${#snaps[@]}" -eq 3 ] || fail "expected 3 snapshots, got: ${snaps[*]}"
NEWEST=${snaps[2]}
"$SQLENVFS" verify --root "$R" >/dev/null || fail "verify fails before any damage"

# restore_eq TIME EXPECTED: restore to TIME and compare with what was committed.
restore_eq() {
  local out=$T/r-$RANDOM.db
  "$SQLENVFS" restore --root "$R" --time "$1" --output "$out" > "$T/restore.out" 2> "$T/restore.err" \
    || fail "restore --time $1 failed: $(cat "$T/restore.err")"
  dump "$out" > "$T/got"
  cmp -s "$T/got" "$2" || fail "restore --time $1 is not what was committed: $(diff "$T/got" "$2" | head -5)"
  rm -f "$out"
}

# --- one byte of row 22's payload in the newest snapshot
python3 - "$SNAPS/$NEWEST/app.db" <<'PY'
import sys
path = sys.argv[1]
data = open(path, "rb").read()
tag = b"second-row-0022-"
offs = [i for i in range(len(data)) if data.startswith(tag, i)]
assert offs, "row 22 not found"
with open(path, "r+b") as f:
    for off in offs:  # the live cell, and any stale copy in free space
        off += len(tag) + 10
        f.seek(off)
        f.write(bytes([data[off] ^ 0x01]))
PY
note "flipped one byte of row 22's payload in snapshot $NEWEST"

rc=0
"$SQLENVFS" verify --root "$R" > "$T/verify.out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "verify passed a changed snapshot"
grep -q "^BAD .*$NEWEST/app.db.*crc32" "$T/verify.out" || fail "verify did not name $NEWEST: $(cat "$T/verify.out")"
pass "verify fails and names the changed snapshot"

restore_eq latest "$T/at3"
grep -q "snapshot ${snaps[1]}" "$T/restore.out" || fail "latest was not restored from ${snaps[1]}: $(cat "$T/restore.out")"
grep -q "$NEWEST/app.db" "$T/restore.err" || fail "the log does not say why $NEWEST was passed over: $(cat "$T/restore.err")"
restore_eq "@$T2" "$T/at2"
restore_eq "@$T1" "$T/at1"
pass "restores give exactly what was committed, from an older good base"

# --- the mount serves the same, never the changed base
mount_root "$R" "$M"
for pair in "latest:$T/at3" "@$T2:$T/at2"; do
  when=${pair%%:*} want=${pair#*:}
  [ "$when" = latest ] && when=$(readlink "$M/pitr/latest")
  cp "$M/pitr/$when/app.db" "$T/m.db" || fail "cp pitr/$when/app.db failed"
  dump "$T/m.db" > "$T/got"
  cmp -s "$T/got" "$want" || fail "pitr/$when/app.db is not what was committed: $(diff "$T/got" "$want" | head -5)"
done
pass "pitr/<T>/ serves what was committed"

# --- every base damaged: refused, named, nothing left; the mount gives EIO
for s in "${snaps[@]}"; do
  f=$SNAPS/$s/app.db
  python3 - "$f" <<'PY'
import os, sys
with open(sys.argv[1], "r+b") as f:
    off = os.path.getsize(sys.argv[1]) // 2
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0x01]))
PY
done
# `list` reads no copy: the changed bases are marked as not checked ...
"$SQLENVFS" list --root "$R" > "$T/list.out" || fail "list failed"
grep -q "base not checked since it changed (run sqlenvfs verify)" "$T/list.out" \
  || fail "list does not mark the changed bases: $(cat "$T/list.out")"
"$SQLENVFS" list --root "$R" --json | grep -q '"base_checked": *false' \
  || fail "list --json does not mark the changed bases"
rc=0
"$SQLENVFS" restore --root "$R" --time "@$TM" --output "$T/none.db" 2> "$T/err" >/dev/null || rc=$?
[ "$rc" -ne 0 ] || fail "restore with every base damaged succeeded"
grep -q "no good base" "$T/err" || fail "the refusal does not say why: $(cat "$T/err")"
grep -q "snapshots/${snaps[0]}/app.db" "$T/err" || fail "the refusal does not name the bad copy: $(cat "$T/err")"
if grep -q "\.tmp-" "$T/err"; then fail "the refusal names a temporary file: $(cat "$T/err")"; fi
[ ! -e "$T/none.db" ] || fail "a refused restore left $T/none.db"
pass "with every base damaged, restore refuses naming the bad copy"
# ... and once verify found them bad, `list` agrees with restore: no window left.
"$SQLENVFS" verify --root "$R" > /dev/null 2>&1 && fail "verify passed damaged snapshots"
"$SQLENVFS" list --root "$R" > "$T/list.out" || fail "list failed"
grep -q "^recoverable windows: 0" "$T/list.out" || fail "list still shows a window from bad bases: $(cat "$T/list.out")"
pass "list marks changed bases as not checked, then leaves out their windows once verified bad"

rc=0
cat "$M/pitr/@$TM/app.db" > "$T/m2.db" 2> "$T/cat.err" || rc=$?
[ "$rc" -ne 0 ] || fail "the mount served a state built from damaged bases"
# The refused restore above remembered both bases as bad (ROOT/.sqlenvfs/verified),
# so the mount, like `list`, no longer offers a window from them.
grep -q "No such file or directory" "$T/cat.err" || fail "the mount still offers a window from bad bases: $(cat "$T/cat.err")"
if ls -a "$R/.cache" | grep -q "app@"; then
  # only the states served before may be cached, never one from a bad base
  n=$(ls "$R/.cache" | grep -c "app@")
  [ "$n" -le 2 ] || fail "the cache holds more than the two good states: $(ls -a "$R/.cache")"
fi
pass "the mount refuses a time served only by damaged bases and caches nothing from them"
unmount_root "$M"

# --- a MANIFEST that lies: zeroed WAL position (checksum no longer matches)
R2=$T/root2
notes_root "$R2"
pitr_start_archiver "$R2" "$T/b"
commit 1 10 first
"$SQLENVFS" snapshot --root "$R2" >/dev/null
commit 11 20 second
live "$P" > "$T/b3"
pitr_stop_archiver "$T/b"
R=$R2
mapfile -t snaps < <(snapshots "$R2")
NEWEST=${snaps[-1]}
MF=$R2/backups/prod/snapshots/$NEWEST/MANIFEST
grep -q '^wal-frame=[1-9]' "$MF" || fail "the snapshot was not pinned inside the WAL: $(cat "$MF")"
sed -i -e 's/^wal-salt1=.*/wal-salt1=0/' -e 's/^wal-salt2=.*/wal-salt2=0/' \
  -e 's/^wal-frame=.*/wal-frame=0/' -e 's/^wal-cksum1=.*/wal-cksum1=0/' \
  -e 's/^wal-cksum2=.*/wal-cksum2=0/' "$MF"
rc=0
"$SQLENVFS" verify --root "$R2" > "$T/verify2.out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "verify passed a MANIFEST with a zeroed WAL position"
grep -q "^BAD .*$NEWEST/MANIFEST.*checksum" "$T/verify2.out" || fail "verify did not name $MF: $(cat "$T/verify2.out")"
restore_eq latest "$T/b3"
grep -q "snapshot ${snaps[0]}" "$T/restore.out" || fail "the lying MANIFEST's copy was used: $(cat "$T/restore.out")"
pass "a MANIFEST with a zeroed WAL position is named by verify and never used"

# --- the same lie in a MANIFEST of format 1 (no checksum): read, reported
# unprotected, and still never mapped to a state its copy does not have
sed -i -e '/^checksum=/d' -e 's/^format=2$/format=1/' "$MF"
rc=0
"$SQLENVFS" verify --root "$R2" > "$T/verify3.out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "verify passed an unprotected MANIFEST"
grep -q "^BAD .*$NEWEST.*unprotected" "$T/verify3.out" || fail "verify did not call $MF unprotected: $(cat "$T/verify3.out")"
grep -q "^ok .*$NEWEST.*app" "$T/verify3.out" || fail "the copy under the unprotected MANIFEST is not checked on its own: $(cat "$T/verify3.out")"
restore_eq latest "$T/b3"
grep -q "snapshot ${snaps[0]}" "$T/restore.out" || fail "a copy was mapped to a state it does not hold: $(cat "$T/restore.out")"
pass "an unprotected MANIFEST is reported, and its lie does not map its copy to another state"

# --- the same lie where the size tells nothing: after the snapshot, rows are
# only rewritten (same page count), so only the copy's pages can show that it
# does not hold the state the zeroed position maps it to
R3=$T/root3
notes_root "$R3"
pitr_start_archiver "$R3" "$T/c"
commit 1 10 first
"$SQLENVFS" snapshot --root "$R3" >/dev/null
commit 1 10 other
live "$P" > "$T/c3"
pitr_stop_archiver "$T/c"
R=$R3
mapfile -t snaps < <(snapshots "$R3")
NEWEST=${snaps[-1]}
MF=$R3/backups/prod/snapshots/$NEWEST/MANIFEST
grep -q '^wal-frame=[1-9]' "$MF" || fail "the snapshot was not pinned inside the WAL: $(cat "$MF")"
pages=$(sed -n 's/^page-count=//p' "$MF")
[ "$(sqlite3 "file:$P?immutable=1" 'PRAGMA page_count')" = "$pages" ] ||
  note "the page count changed after the snapshot; the case below is then also caught by size"
sed -i -e 's/^wal-salt1=.*/wal-salt1=0/' -e 's/^wal-salt2=.*/wal-salt2=0/' \
  -e 's/^wal-frame=.*/wal-frame=0/' -e 's/^wal-cksum1=.*/wal-cksum1=0/' \
  -e 's/^wal-cksum2=.*/wal-cksum2=0/' -e '/^checksum=/d' -e 's/^format=2$/format=1/' "$MF"
rc=0
"$SQLENVFS" verify --root "$R3" > "$T/verify4.out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "verify passed a copy that does not hold the state its MANIFEST names"
grep -q "^BAD .*$NEWEST .*app.db does not hold the state" "$T/verify4.out" ||
  fail "verify does not name the copy that does not hold its state: $(cat "$T/verify4.out")"
restore_eq latest "$T/c3"
grep -q "snapshot ${snaps[0]}" "$T/restore.out" || fail "a copy was mapped to a state it does not hold: $(cat "$T/restore.out")"
grep -q "$NEWEST/app.db does not hold the state" "$T/restore.err" ||
  fail "the restore does not say why $NEWEST was passed over: $(cat "$T/restore.err")"
mount_root "$R3" "$M"
cp "$M/pitr/$(readlink "$M/pitr/latest")/app.db" "$T/m3.db" || fail "cp pitr/latest/app.db failed"
dump "$T/m3.db" > "$T/got"
cmp -s "$T/got" "$T/c3" || fail "pitr/latest/app.db is not what was committed: $(diff "$T/got" "$T/c3" | head -5)"
unmount_root "$M"
pass "a copy whose MANIFEST lies about its WAL position is never used, even at the same size"

# After a gap, the chain's only snapshot damaged: the archive goes on past
# the last window, so `latest` is refused (naming the copy and the newest
# time that can be restored) rather than answered with the state before the
# gap; `list` shows the part that cannot be restored; the time the refusal
# names restores; a new snapshot makes the newest state recoverable again.
R4=$T/root4
notes_root "$R4"
printf '[doctor]\narchive-lag-warn-seconds=1\n' >> "$R4/sqlenvfs.conf" # verify's grace
pitr_start_archiver "$R4" "$T/d"
commit 1 10 first
live "$P" > "$T/d1"
pitr_stop_archiver "$T/d"
commit 11 15 unarchived
sqlite3 "$P" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
pitr_start_archiver "$R4" "$T/d2"
commit 16 20 after
live "$P" > "$T/d2.rows"
pitr_stop_archiver "$T/d2"
grep -q "GAP" "$T/d2.err" || fail "the checkpoint while the archiver was down made no gap: $(cat "$T/d2.err")"
R=$R4
mapfile -t snaps < <(snapshots "$R4")
NEWEST=${snaps[-1]}
restore_eq latest "$T/d2.rows"
python3 - "$R4/backups/prod/snapshots/$NEWEST/app.db" <<'PY'
import os, sys
with open(sys.argv[1], "r+b") as f:
    off = os.path.getsize(sys.argv[1]) // 2
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0x01]))
PY
sleep 1.1 # past archive-lag-warn-seconds since the gap
"$SQLENVFS" verify --root "$R4" > "$T/verify5.out" 2>&1 && fail "verify passed the damaged snapshot"
grep -q "^BAD  wal-archive newest state .*app: the newest archived state cannot be restored" \
  "$T/verify5.out" || fail "verify does not say the newest state cannot be restored: $(cat "$T/verify5.out")"
# The same with that snapshot gone (no copy found bad by this run).
mv "$R4/backups/prod/snapshots/$NEWEST" "$T/newest-snapshot"
"$SQLENVFS" verify --root "$R4" > "$T/verify5b.out" 2>&1 && fail "verify passed with no base after the gap"
grep -q "^BAD  wal-archive newest state" "$T/verify5b.out" && ! grep -q "^BAD  snapshot" "$T/verify5b.out" ||
  fail "verify without the snapshot: $(cat "$T/verify5b.out")"
mv "$T/newest-snapshot" "$R4/backups/prod/snapshots/$NEWEST"
# (that run forgot the verdict of the snapshot it did not see: found again)
"$SQLENVFS" verify --root "$R4" > /dev/null 2>&1 && fail "verify passed the damaged snapshot"
rc=0
"$SQLENVFS" restore --root "$R4" --time latest --output "$T/d.db" > /dev/null 2> "$T/d.err" || rc=$?
[ "$rc" -ne 0 ] || fail "restore --time latest gave the state before the gap: $(dump "$T/d.db" | tail -1)"
[ ! -e "$T/d.db" ] || fail "a refused restore left $T/d.db"
grep -q "latest archived state .* cannot be restored" "$T/d.err" || fail "the refusal does not say why: $(cat "$T/d.err")"
grep -q "snapshots/$NEWEST/app.db" "$T/d.err" || fail "the refusal does not name the bad copy: $(cat "$T/d.err")"
WHEN=$(sed -n 's/.*restore it with `--time \([^`]*\)`.*/\1/p' "$T/d.err")
[ -n "$WHEN" ] || fail "the refusal names no time to restore instead: $(cat "$T/d.err")"
"$SQLENVFS" list --root "$R4" > "$T/list4.out" || fail "list failed"
grep -q "NOT RECOVERABLE: gap: .*snapshots/$NEWEST/app.db" "$T/list4.out" ||
  fail "list does not show what cannot be restored: $(cat "$T/list4.out")"
grep -Eq "^recoverable windows: [0-9]+, and 1 period that is not$" "$T/list4.out" ||
  fail "list's count leaves out the period that is not recoverable: $(cat "$T/list4.out")"
"$SQLENVFS" list --root "$R4" --json | python3 -c '
import json, sys
u = json.load(sys.stdin)["unrecoverable"]
assert len(u) == 1 and u[0]["database"] == "app" and u[0]["from"] < u[0]["to"], u' ||
  fail "list --json does not give the part that cannot be restored"
restore_eq "$WHEN" "$T/d1"
"$SQLENVFS" doctor --root "$R4" > "$T/doctor4.out" 2>&1 || true
grep -q "newest archived state cannot be restored" "$T/doctor4.out" ||
  fail "doctor does not say the newest state cannot be restored: $(cat "$T/doctor4.out")"
mount_root "$R4" "$M" -o noarchiver
python3 - "$M/status" <<'PY' || fail "the mount's status does not give the part that cannot be restored"
import json, sys
db = [d for d in json.load(open(sys.argv[1]))["databases"] if d["name"] == "app"][0]
u = db["recoverable"]["unrecoverable"]
assert u and u["from"] < u["to"] and u["note"].startswith("gap: "), db["recoverable"]
PY
[ ! -e "$M/pitr/latest/app.db" ] ||
  fail "pitr/latest/app.db is offered: the state before the gap, $(readlink "$M/pitr/latest")"
[ -e "$M/pitr/$WHEN/app.db" ] || fail "pitr/$WHEN/app.db, the newest state that can be restored, is missing"
unmount_root "$M"
pass "after a gap whose only snapshot is bad, latest is refused, naming it; list, status, doctor and verify show it; the named time restores"
"$SQLENVFS" snapshot --root "$R4" > /dev/null || fail "snapshot failed"
restore_eq latest "$T/d2.rows"
"$SQLENVFS" verify --root "$R4" > "$T/verify6.out" 2>&1 || true # the damaged snapshot stays
grep -q "newest state" "$T/verify6.out" && fail "verify still reports the newest state: $(cat "$T/verify6.out")"
"$SQLENVFS" list --root "$R4" --json | python3 -c '
import json, sys
assert json.load(sys.stdin)["unrecoverable"] == []' || fail "list still shows a part that cannot be restored"
"$SQLENVFS" doctor --root "$R4" > "$T/doctor5.out" 2>&1 || true
if grep -q "newest archived state cannot be restored" "$T/doctor5.out"; then
  fail "doctor still says the newest state cannot be restored: $(cat "$T/doctor5.out")"
fi
pass "a new snapshot makes latest recoverable again"

# An archive no backup or snapshot reaches at all (what is left when only
# wal_archives/ survived): list shows it as NOT RECOVERABLE, in --json too,
# where it showed "recoverable windows: 0" and nothing else.
R5=$T/root5
pitr_make_root "$R5"
pitr_start_archiver "$R5" "$T/a5"
pitr_write "$R5" "$T/log5" 1
pitr_stop_archiver "$T/a5"
rm -rf "$R5"/backups/prod/snapshots/* "$R5"/backups/prod/daily/*
"$SQLENVFS" list --root "$R5" > "$T/list5.out"
grep -q "app .*NOT RECOVERABLE: no usable backup or snapshot lies inside the archived period" \
  "$T/list5.out" || fail "list does not show the archive no copy reaches: $(cat "$T/list5.out")"
"$SQLENVFS" list --root "$R5" --json | python3 -c '
import json, sys
u = json.load(sys.stdin)["unrecoverable"]
assert len(u) == 1 and u[0]["database"] == "app", u' || fail "list --json does not show it"
# The mount's status says it as list does (no archiver: it would take a
# new snapshot, a base).
mount_root "$R5" "$T/mnt5" -o noarchiver
python3 - "$T/mnt5/status" <<'PY' || fail "status does not show it: $(cat "$T/mnt5/status")"
import json, sys
s = json.load(open(sys.argv[1]))
rec = {d["name"]: d for d in s["databases"]}["app"]["recoverable"]
u = rec["unrecoverable"]
assert u is not None and "no usable backup or snapshot" in u["note"], rec
PY
unmount_root "$T/mnt5"
pass "an archive no copy reaches is listed as NOT RECOVERABLE, and so is it in the mount's status"

# A window whose first base changed since it was checked, while a later base
# of its chain is good: the times up to that later base rest on the changed
# one alone, so the window is marked as not checked (it was called checked,
# and its listed start did not restore).
R5=$T/first_changed
pitr_backup_between "$R5" "$T/a5" 20 40
"$SQLENVFS" verify --root "$R5" > /dev/null || fail "verify before the change"
"$SQLENVFS" list --root "$R5" --json | grep -q '"base_checked": *false' &&
  fail "a window is marked not checked before any base changed"
snap=$(ls -d "$R5"/backups/prod/snapshots/*/ | head -1)
python3 - "${snap}app.db" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(8000); b = f.read(1); f.seek(8000); f.write(bytes([b[0] ^ 0x01]))
PY
"$SQLENVFS" list --root "$R5" --json > "$T/list5.json"
grep -q '"base_checked": *false' "$T/list5.json" ||
  fail "the window whose first base changed is called checked: $(cat "$T/list5.json")"
pass "a window whose first base changed is marked not checked, though a later base is good"

# A backup of a copy of the root, pinned while its WAL was empty, among the
# root's backups. Both roots commit after the copy; the copy's commit writes
# page 3 (table b) as the root's last one before its pin does, so the pages
# of the record the time puts it at are the same in both.
F=$T/fork F2=$T/fork2
make_root "$F" <(printf 'CREATE TABLE a(id INTEGER PRIMARY KEY, v TEXT);\n'
                 printf 'CREATE TABLE b(id INTEGER PRIMARY KEY, v TEXT);\n')
pitr_start_archiver "$F" "$T/f1"
for i in 1 2 3; do
  sqlite3 "$F/data/prod/app.db" "INSERT INTO a VALUES($i,'shared'); INSERT INTO b VALUES($i,'shared')"
done
# Stopped once its idle checkpoint emptied the WAL: the copy's archiver
# then starts its own chain with a gap (another file), and its records are
# numbered one after the root's.
for i in $(seq 1 100); do
  [ "$(stat -c %s "$F/data/prod/app.db-wal" 2>/dev/null || echo 0)" -eq 0 ] && break
  sleep 0.1
done
pitr_stop_archiver "$T/f1"
cp -a "$F" "$F2"
pitr_start_archiver "$F" "$T/f2"
pitr_start_archiver "$F2" "$T/f3"
sqlite3 "$F/data/prod/app.db" "INSERT INTO a VALUES(4,'only-in-root')"
sqlite3 "$F/data/prod/app.db" "UPDATE b SET v='same' WHERE id=2"
sqlite3 "$F2/data/prod/app.db" \
  "BEGIN; INSERT INTO a VALUES(4,'only-in-copy'); UPDATE b SET v='same' WHERE id=2; COMMIT"
# The archivers checkpoint and truncate the idle WALs (every commit is
# archived then): the backup is pinned with an empty one (placed by time
# and record numbers), after the root's commits were archived.
sleep 3
"$SQLENVFS" backup --root "$F2" > /dev/null
fb=$(ls "$F2/backups/prod/daily" | tail -1)
grep -q '^wal-frame=0$' "$F2/backups/prod/daily/$fb/MANIFEST" ||
  fail "the copy's backup was not pinned with an empty WAL: $(cat "$F2/backups/prod/daily/$fb/MANIFEST")"
grep -q '^archive-before-crc=0x' "$F2/backups/prod/daily/$fb/MANIFEST" ||
  fail "the MANIFEST does not name the record archived before the pin"
sleep 1.5
sqlite3 "$F/data/prod/app.db" "INSERT INTO b VALUES(6,'root-after')"
sleep 1
pitr_stop_archiver "$T/f2"
pitr_stop_archiver "$T/f3"
cp -a "$F2/backups/prod/daily/." "$F/backups/prod/daily/"
fm=$F/backups/prod/daily/$fb/MANIFEST
rc=0
"$SQLENVFS" restore --root "$F" --time latest --output "$T/fork.db" > "$T/fork.out" \
  2> "$T/fork.err" || rc=$?
if [ "$rc" -eq 0 ]; then
  assert_eq "$(sqlite3 "$T/fork.db" "SELECT v FROM a WHERE id=4")" only-in-root \
    "restore --time latest with the copy's backup among the root's"
  assert_eq "$(sqlite3 "$T/fork.db" "SELECT v FROM b WHERE id=6")" root-after \
    "restore --time latest: the root's last commit"
fi
grep -q "not used as a base: backup $fb: its MANIFEST $fm .*another history" "$T/fork.err" ||
  fail "restore does not say why the copy's backup is not used: $(cat "$T/fork.err")"
rc=0
"$SQLENVFS" verify --root "$F" > "$T/fork.v" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "verify passes with the copy's backup among the root's"
grep -q "$fm.*another history" "$T/fork.v" ||
  fail "verify does not name the copy's MANIFEST: $(cat "$T/fork.v")"
"$SQLENVFS" list --root "$F" > "$T/fork.l"
grep -q "$fb *OTHER HISTORY: $fm" "$T/fork.l" ||
  fail "list does not show the copy's backup as of another history: $(cat "$T/fork.l")"
rc=0
"$SQLENVFS" doctor --root "$F" > "$T/fork.d" 2>&1 || rc=$?
grep -A3 "FAIL backup" "$T/fork.d" | grep -q "backup $fb: its MANIFEST" ||
  fail "doctor does not name the copy's backup: $(cat "$T/fork.d")"
mount_root "$F" "$T/fmnt" -o noarchiver
got=$(sqlite3 "file:$T/fmnt/pitr/latest/app.db?immutable=1" "SELECT v FROM a WHERE id=4" \
  2>/dev/null || echo refused)
[ "$got" = only-in-root ] || [ "$got" = refused ] ||
  fail "pitr/latest with the copy's backup among the root's gives '$got'"
unmount_root "$T/fmnt"
pass "a backup of a copy of the root is of another history: never a base, and named"
