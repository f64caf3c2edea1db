#!/usr/bin/env bash
# A replica whose copies have damaged MANIFEST objects (a checksum that does
# not match, truncated, garbage, empty): `list --remote` lists each one as
# DAMAGED naming its MANIFEST's s3:// key, why and what to do (--json:
# "damaged"), never a temporary path; `verify --remote` reports each one BAD
# by its key and exits non-zero; `restore --remote` never uses one.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"
source "$SRCDIR/tests/integration/remote_lib.sh"

remote_begin
db=$R/data/prod/app.db
DAILY=$R/backups/prod/daily SNAPS=$R/backups/prod/snapshots
commit() { pitr_commit_tx "$R" "$1"; }
take() { pitr_take "$R" "$1"; }
pitr_start_archiver "$R" "$T/a"
b1=$(take backup)
b2=$(take backup)
s1=$(take snapshot)
b3=$(take backup)
b4=$(take backup)
commit last
pitr_stop_archiver "$T/a"
for n in "$b1" "$b2" "$s1" "$b3" "$b4"; do
  [ -n "$n" ] || fail "a copy was not taken: b1=$b1 b2=$b2 s1=$s1 b3=$b3 b4=$b4"
done
remote_replica dmg

# b2 truncated, s1 garbage, b3 a value changed (its checksum no longer
# matches), b4 empty; b1 and the archiver's first snapshot stay good.
head -c "$(( $(stat -c %s "$DAILY/$b2/MANIFEST") / 2 ))" "$DAILY/$b2/MANIFEST" > "$T/m.b2"
head -c 700 /dev/urandom > "$T/m.s1"
sed 's/^wal-frame=.*/wal-frame=7/' "$DAILY/$b3/MANIFEST" > "$T/m.b3"
: > "$T/m.b4"
for p in daily/$b2:m.b2 snapshots/$s1:m.s1 daily/$b3:m.b3 daily/$b4:m.b4; do
  s3cmd_ -q put "$T/${p#*:}" "$URL/${p%%:*}/MANIFEST" >/dev/null || fail "put ${p%%:*}/MANIFEST"
done
mkdir -p "$T/elsewhere"
cd "$T/elsewhere"

"$SQLENVFS" list --remote "$URL" > "$T/list.out" 2>&1 || fail "list --remote: $(cat "$T/list.out")"
sed 's/^/# /' "$T/list.out"
grep -q '\.tmp-remote' "$T/list.out" && fail "list --remote names a temporary path: $(cat "$T/list.out")"
grep -q '^backups (daily/): 1, and 3 DAMAGED$' "$T/list.out" ||
  fail "the backups' count does not say 3 damaged: $(cat "$T/list.out")"
grep -q '^snapshots (snapshots/): 1, and 1 DAMAGED$' "$T/list.out" ||
  fail "the snapshots' count does not say 1 damaged: $(cat "$T/list.out")"
# damaged KEY-DIR NAME PATTERN: its line names its MANIFEST's key and why
damaged() {
  grep -F "  $2" "$T/list.out" | grep -Eq -- "^  $2 +DAMAGED: $URL/$1/$2/MANIFEST: $3" ||
    fail "$2 is not DAMAGED with its key and /$3/: $(cat "$T/list.out")"
}
damaged daily "$b2" '.+'
damaged snapshots "$s1" '.+'
damaged daily "$b3" 'its checksum is 0x[0-9a-f]{8} but its contents give'
damaged daily "$b4" '.+'
grep -F "  $b1" "$T/list.out" | grep -q DAMAGED && fail "the good copy $b1 is listed as DAMAGED"
grep -qF "  (a DAMAGED copy is never used by a restore: run sqlenvfs verify --remote $URL," \
  "$T/list.out" || fail "list --remote does not say what to do: $(cat "$T/list.out")"
pass "list --remote shows each damaged copy as DAMAGED with its MANIFEST's key, why and what to do"

"$SQLENVFS" list --remote "$URL" --json > "$T/list.json" || fail "list --remote --json"
grep -q '\.tmp-remote' "$T/list.json" && fail "list --remote --json names a temporary path"
python3 - "$T/list.json" "$URL" "$b1" "$b2 $b3 $b4 $s1" <<'PY' || fail "list --remote --json"
import json, sys
j, url, good, bad = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], sys.argv[4].split()
assert [c["name"] for c in j["backups"]] == [good], j["backups"]
assert len(j["snapshots"]) == 1, j["snapshots"]
got = {d["name"]: d for d in j["damaged"]}
assert sorted(got) == sorted(bad), j["damaged"]
for n, d in got.items():
    top = "daily" if d["kind"] == "backup" else "snapshots"
    assert d["dir"] == "%s/%s/%s" % (url, top, n), d
    assert d["manifest"] == "%s/%s/%s/MANIFEST" % (url, top, n), d
    assert d["reason"], d
    assert "sqlenvfs verify --remote " + url in d["action"], d
PY
pass "list --remote --json: \"damaged\" names each by its keys, with reason and action"

rc=0
"$SQLENVFS" verify --remote "$URL" > "$T/verify.out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "verify --remote passed damaged MANIFESTs: $(cat "$T/verify.out")"
for p in "daily/$b2" "snapshots/$s1" "daily/$b3" "daily/$b4"; do
  grep -Eq "^BAD +(backup|snapshot) +${p#*/}: .*$URL/$p/MANIFEST" "$T/verify.out" ||
    fail "verify --remote does not report $p BAD by its key: $(cat "$T/verify.out")"
done
pass "verify --remote reports each damaged copy BAD by its MANIFEST's key, and exits $rc"

"$SQLENVFS" restore --remote "$URL" --time latest --output "$T/latest.db" > "$T/restore.out" 2>&1 ||
  fail "restore --remote --time latest: $(cat "$T/restore.out")"
grep -Eq "^  base +backup $b1 " "$T/restore.out" ||
  fail "the restore did not start from $b1, the newest good copy: $(cat "$T/restore.out")"
assert_eq "$(sqlite3 "$T/latest.db" "SELECT kind FROM tx ORDER BY rowid DESC LIMIT 1")" last \
  "the last row restored"
pass "restore --remote --time latest starts from the newest good copy, never a damaged one"
