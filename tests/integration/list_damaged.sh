#!/usr/bin/env bash
# A backup or snapshot whose MANIFEST is damaged (a checksum that does not
# match, truncated, garbage, missing, unreadable) is listed by `list` as
# DAMAGED, in time order among the good copies, naming its MANIFEST, why and
# what to do (--json: "damaged", the other keys as before); `verify`
# reports each one BAD naming its MANIFEST and exits non-zero; `doctor`
# reports each one as a failure; the mount's metrics count them and its
# status lists them; a restore never uses one.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
pitr_make_root "$R"
db=$R/data/prod/app.db
DAILY=$R/backups/prod/daily SNAPS=$R/backups/prod/snapshots
commit() { pitr_commit_tx "$R" "$1"; }
take() { pitr_take "$R" "$1"; }

pitr_start_archiver "$R" "$T/a"
s0=$(ls "$SNAPS")
b1=$(take backup)
b2=$(take backup)
b3=$(take backup)
s1=$(take snapshot)
b4=$(take backup)
b5=$(take backup)
commit last
pitr_stop_archiver "$T/a"
for n in "$s0" "$b1" "$b2" "$b3" "$s1" "$b4" "$b5"; do
  [ -n "$n" ] || fail "a copy was not taken: s0=$s0 b1=$b1 b2=$b2 b3=$b3 s1=$s1 b4=$b4 b5=$b5"
done
"$SQLENVFS" list --root "$R" --json > "$T/before.json" || fail "list --json"

# b2 truncated, b3 garbage, s1 missing, b4 a value changed (its checksum no
# longer matches), b5 a directory (reading it fails); b1 and s0 stay good.
MF=MANIFEST
head -c "$(( $(stat -c %s "$DAILY/$b2/$MF") / 2 ))" "$DAILY/$b2/$MF" > "$T/half"
cat "$T/half" > "$DAILY/$b2/$MF"
# garbage: a group, then a line of control characters (C0, DEL, C1 as
# UTF-8: U+009B) and bytes that are not UTF-8, longer than a message quotes
python3 -c '
import sys
line = bytes(range(1, 10)) + bytes(range(11, 32)) + b"\x7f\xc2\x9b" + bytes(range(0x80, 0x100))
sys.stdout.buffer.write(b"[sqlenvfs-copy]\n" + line * 3 + b"\n")' > "$DAILY/$b3/$MF"
rm "$SNAPS/$s1/$MF"
sed -i 's/^wal-frame=.*/wal-frame=7/' "$DAILY/$b4/$MF"
rm "$DAILY/$b5/$MF" && mkdir "$DAILY/$b5/$MF"

"$SQLENVFS" list --root "$R" > "$T/list.out" 2> "$T/list.err" ||
  fail "list failed: $(cat "$T/list.out" "$T/list.err")"
sed 's/^/# /' "$T/list.out"
grep -q "^backups ($DAILY): 1, and 4 DAMAGED$" "$T/list.out" ||
  fail "the backups' count does not say 4 damaged: $(cat "$T/list.out")"
grep -q "^snapshots ($SNAPS): 1, and 1 DAMAGED$" "$T/list.out" ||
  fail "the snapshots' count does not say 1 damaged: $(cat "$T/list.out")"
# damaged KIND-DIR NAME PATTERN: its line names its MANIFEST and why
damaged() {
  grep -qF "  $2" "$T/list.out" || fail "$2 is not listed: $(cat "$T/list.out")"
  grep -F "  $2" "$T/list.out" | grep -Eq -- "^  $2 +DAMAGED: $1/$2/MANIFEST: $3" ||
    fail "$2 is not DAMAGED with its MANIFEST and /$3/: $(grep -F "$2" "$T/list.out")"
}
damaged "$DAILY" "$b2" '.+'
damaged "$DAILY" "$b3" 'it does not parse as a MANIFEST '
damaged "$SNAPS" "$s1" 'no such file'
damaged "$DAILY" "$b4" 'its checksum is 0x[0-9a-f]{8} but its contents give'
damaged "$DAILY" "$b5" '.+'
# printable FILE: the garbage MANIFEST (b3) is quoted on one short line of
# FILE, UTF-8 without control characters
printable() {
  python3 - "$1" "$b3" <<'PY' || fail "$1 does not quote the garbage MANIFEST on one short printable line"
import sys
text = open(sys.argv[1], "rb").read().decode("utf-8")
assert not any(ord(c) < 0x20 and c != "\n" or 0x7f <= ord(c) < 0xa0 for c in text), repr(text)
line = [l for l in text.splitlines() if sys.argv[2] in l][0]
assert len(line) < 300, line
PY
}
printable "$T/list.out"
for n in "$b1" "$s0"; do
  grep -F "  $n" "$T/list.out" | grep -q DAMAGED && fail "the good copy $n is listed as DAMAGED"
done
order=$(sed -n '/^backups/,/^snapshots/p' "$T/list.out" | grep -o '^  [0-9T.]*Z' | tr -d ' ' | tr '\n' ' ')
assert_eq "$order" "$b1 $b2 $b3 $b4 $b5 " "the backups' order"
grep -q '^  (a DAMAGED copy is never used by a restore: run sqlenvfs verify, take a new backup or snapshot' \
  "$T/list.out" || fail "list does not say what to do: $(cat "$T/list.out")"
pass "list shows each damaged copy as DAMAGED, in time order, with its MANIFEST, why and what to do"

"$SQLENVFS" list --root "$R" --json > "$T/after.json" || fail "list --json"
python3 - "$T/before.json" "$T/after.json" "$R" "$b1 $s0" "$b2 $b3 $b4 $b5 $s1" <<'PY' || fail "list --json"
import json, os, sys
before, after = (json.load(open(p)) for p in sys.argv[1:3])
root, good, bad = sys.argv[3], sys.argv[4].split(), sys.argv[5].split()
assert set(before) <= set(after), ("keys lost", set(before) - set(after))
assert before["damaged"] == [], before["damaged"]
names = [c["name"] for k in ("backups", "snapshots") for c in after[k]]
assert sorted(names) == sorted(good), names
for k in ("backups", "snapshots"):
    for c in after[k]:
        old = [o for o in before[k] if o["name"] == c["name"]][0]
        assert c == old, (c, old)
got = {d["name"]: d for d in after["damaged"]}
assert sorted(got) == sorted(bad), sorted(got)
assert [d["kind"] for d in after["damaged"]] == ["backup"] * 4 + ["snapshot"], after["damaged"]
for n, d in got.items():
    top = "daily" if d["kind"] == "backup" else "snapshots"
    assert d["dir"] == os.path.join(root, "backups/prod", top, n), d
    assert d["manifest"] == os.path.join(d["dir"], "MANIFEST"), d
    assert d["reason"] and d["manifest"] not in d["reason"], d
    assert "sqlenvfs verify" in d["action"] and "take a new " + d["kind"] in d["action"], d
    assert d["time"].endswith("Z"), d
assert "checksum" in got[sys.argv[5].split()[2]]["reason"]
PY
pass "list --json: \"damaged\" names each with kind, time, MANIFEST, reason and action; the other keys as before"

rc=0
"$SQLENVFS" verify --root "$R" > "$T/verify.out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "verify passed damaged MANIFESTs: $(cat "$T/verify.out")"
for n in "$b2" "$b3" "$b4" "$b5" "$s1"; do
  grep -Eq "^BAD +(backup|snapshot) +$n .*$n/MANIFEST" "$T/verify.out" ||
    fail "verify does not report $n BAD naming its MANIFEST: $(cat "$T/verify.out")"
done
printable "$T/verify.out"
pass "verify reports each damaged copy BAD, naming its MANIFEST, and exits $rc"

"$SQLENVFS" restore --root "$R" --time latest --output "$T/latest.db" > "$T/restore.out" 2>&1 ||
  fail "restore --time latest: $(cat "$T/restore.out")"
grep -Eq "^  base +backup $b1 " "$T/restore.out" ||
  fail "the restore did not start from $b1, the newest good copy: $(cat "$T/restore.out")"
assert_eq "$(sqlite3 "$T/latest.db" "SELECT kind FROM tx ORDER BY rowid DESC LIMIT 1")" last \
  "the last row restored"
pass "restore --time latest starts from the newest good copy, never a damaged one"

rc=0
"$SQLENVFS" doctor --root "$R" --json > "$T/doctor.json" 2>"$T/doctor.err" || rc=$?
[ "$rc" -eq 2 ] || fail "doctor exits $rc with damaged MANIFESTs: $(cat "$T/doctor.json" "$T/doctor.err")"
python3 - "$T/doctor.json" "$b2 $b3 $b4 $b5 $s1" <<'PY' || fail "doctor: $(cat "$T/doctor.json")"
import json, sys
j = json.load(open(sys.argv[1]))
bad = sys.argv[2].split()
found = [f for f in j["findings"] if f["severity"] == "failure" and "no restore uses it" in f["found"]]
for n in bad:
    f = [f for f in found if n in f["found"] and f["path"].endswith(n + "/MANIFEST")]
    assert len(f) == 1, (n, found)
    assert "take a new " in f[0]["action"], f[0]
assert len(found) == len(bad), found
PY
pass "doctor reports each damaged copy as a failure, naming its MANIFEST"

mount_root "$R" "$T/mnt" -o noarchiver
metrics=$(cat "$T/mnt/metrics")
grep -q '^# TYPE sqlenvfs_damaged_copies gauge$' <<<"$metrics" || fail "metrics: $metrics"
grep -qx 'sqlenvfs_damaged_copies{kind="backup"} 4' <<<"$metrics" ||
  fail "metrics do not count 4 damaged backups: $metrics"
grep -qx 'sqlenvfs_damaged_copies{kind="snapshot"} 1' <<<"$metrics" ||
  fail "metrics do not count 1 damaged snapshot: $metrics"
cp "$T/mnt/status" "$T/status.json"
"$SQLENVFS" list --root "$R" --json > "$T/list2.json"
python3 - "$T/status.json" "$T/list2.json" "$b2 $b3 $b4 $b5 $s1" <<'PY' ||
import json, sys
status = json.load(open(sys.argv[1]))
listed = json.load(open(sys.argv[2]))
bad = sys.argv[3].split()
got = status["damaged_copies"]
assert sorted(d["name"] for d in got) == sorted(bad), got
assert got == listed["damaged"], (got, listed["damaged"])
PY
  fail "status: $(cat "$T/status.json")"
unmount_root "$T/mnt"
pass "the mount's metrics count the damaged copies of each kind; status lists them as list --json does"

# A copy whose MANIFEST reads but whose database file a check found bad
# (b1: a byte flipped, then `verify`): listed as DAMAGED too, naming the
# file and what to do, in --json and in the mount's status. It was listed as
# an ordinary copy, for someone to take by hand.
python3 -c "
import sys
f = open(sys.argv[1], 'r+b'); f.seek(5000); b = f.read(1); f.seek(5000); f.write(bytes([b[0] ^ 0xff]))" \
  "$DAILY/$b1/app.db"
"$SQLENVFS" verify --root "$R" > "$T/verify2.out" 2>&1 && fail "verify passed a flipped byte"
"$SQLENVFS" list --root "$R" > "$T/list3.out"
grep -q "^backups ($DAILY): 0, and 5 DAMAGED$" "$T/list3.out" ||
  fail "list does not count the copy found bad: $(cat "$T/list3.out")"
grep -F "  $b1" "$T/list3.out" | grep -Eq -- "^  $b1 +DAMAGED: $DAILY/$b1/app.db: found bad by a check: " ||
  fail "$b1 is not DAMAGED with its file: $(grep -F "$b1" "$T/list3.out")"
"$SQLENVFS" list --root "$R" --json > "$T/list3.json"
python3 - "$T/list3.json" "$b1" <<'PY' || fail "list --json: $(cat "$T/list3.json")"
import json, sys
j = json.load(open(sys.argv[1]))
assert all(c["name"] != sys.argv[2] for c in j["backups"]), j["backups"]
d = [d for d in j["damaged"] if d["name"] == sys.argv[2]]
assert len(d) == 1 and d[0]["file"].endswith("/app.db") and "remove" in d[0]["action"], d
PY
# A copy whose database file is gone: DAMAGED too (no verdict can name a
# file that is not there), as verify and doctor say.
b1_db=$(mktemp "$T/b1db.XXXX") && mv "$DAILY/$b1/app.db" "$b1_db"
"$SQLENVFS" list --root "$R" > "$T/list4.out"
grep -F "  $b1" "$T/list4.out" | grep -Eq -- "^  $b1 +DAMAGED: $DAILY/$b1/app.db: the database file is missing" ||
  fail "a copy whose file is missing is not DAMAGED: $(grep -F "$b1" "$T/list4.out")"
mv "$b1_db" "$DAILY/$b1/app.db"
pass "a copy a check found bad is listed as DAMAGED, naming its file; so is one whose file is gone"

# A MANIFEST that is a symbolic link: DAMAGED as a link, and what its target
# holds is never quoted (list and the mount's status are read by others).
mv "$DAILY/$b1/MANIFEST" "$T/b1.manifest"
printf 'secret-first-line\n' > "$T/decoy"
ln -s "$T/decoy" "$DAILY/$b1/MANIFEST"
"$SQLENVFS" list --root "$R" > "$T/list5.out"
grep -F "  $b1" "$T/list5.out" | grep -q "DAMAGED: $DAILY/$b1/MANIFEST: .*symbolic link" ||
  fail "a MANIFEST that is a link is not DAMAGED as one: $(grep -F "$b1" "$T/list5.out")"
grep -q secret "$T/list5.out" && fail "list quoted the link's target: $(cat "$T/list5.out")"
rm "$DAILY/$b1/MANIFEST"
mv "$T/b1.manifest" "$DAILY/$b1/MANIFEST"
pass "a MANIFEST that is a symbolic link is DAMAGED, its target never quoted"
