#!/usr/bin/env bash
# backups/<ts>/<db>.db and snapshots/<ts>/<db>.db of the mount serve a copy
# only while it is what its MANIFEST says:
# - a copy as it was written is served, byte for byte (but for the two
#   header bytes every image gets);
# - a byte flipped inside a copy's rows (a change `PRAGMA quick_check` does
#   not see), or a copy cut short, fails the open with EIO, and the log
#   says which copy and why;
# - a copy whose file changed but whose bytes did not (touch) is checked at
#   its open and served.
# And with -o noarchiver, status says whether another process archives the
# root (its pid) or that none does.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root M=$T/mnt
make_root "$R" <(echo "CREATE TABLE t (x);")
sqlite3 "$R/data/prod/app.db" \
  "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
   INSERT INTO t SELECT printf('row %06d %s', i, hex(randomblob(40))) FROM n"
for i in 1 2 3; do "$SQLENVFS" backup --root "$R" > /dev/null; done
"$SQLENVFS" snapshot --root "$R" > /dev/null
mapfile -t B < <(ls "$R/backups/prod/daily")
S=$(ls "$R/backups/prod/snapshots")
mount_root "$R" "$M" -o noarchiver

# same_bytes MOUNTED STORED: equal past the header's bytes 19 and 20.
same_bytes() { cmp -s <(tail -c +21 "$1") <(tail -c +21 "$2") && cmp -s -n 18 "$1" "$2"; }
for c in "backups/${B[0]}" "backups/${B[1]}" "backups/${B[2]}"; do
  same_bytes "$M/$c/app.db" "$R/backups/prod/daily/${c#backups/}/app.db" ||
    fail "$c/app.db as served differs from the stored file"
done
same_bytes "$M/snapshots/$S/app.db" "$R/backups/prod/snapshots/$S/app.db" ||
  fail "the snapshot as served differs from the stored file"
pass "copies as written are served as stored"

# A byte of a row changed: the file still passes quick_check.
f=$R/backups/prod/daily/${B[0]}/app.db
printf 'Z' | dd of="$f" bs=1 seek=$(( $(stat -c %s "$f") - 3000 )) conv=notrunc status=none
[ "$(sqlite3 "file:$f?immutable=1" 'PRAGMA quick_check')" = ok ] ||
  fail "the flipped byte was not inside a row"
err=$(cat "$M/backups/${B[0]}/app.db" 2>&1 >/dev/null) && fail "a damaged backup was served"
grep -q 'Input/output error' <<<"$err" || fail "reading a damaged backup: $err"
grep -q "backup ${B[0]} of app is damaged (.*crc32.*); it is not served" "$R/.sqlenvfs/mount.log" ||
  fail "the log does not name the damaged backup: $(tail -3 "$R/.sqlenvfs/mount.log")"
# Cut short.
truncate -s -4096 "$R/backups/prod/snapshots/$S/app.db"
cat "$M/snapshots/$S/app.db" > /dev/null 2>&1 && fail "a snapshot cut short was served"
pass "a copy whose bytes changed, or that was cut short, fails its open with EIO"

touch "$R/backups/prod/daily/${B[1]}/app.db"
same_bytes "$M/backups/${B[1]}/app.db" "$R/backups/prod/daily/${B[1]}/app.db" ||
  fail "a touched but unchanged backup was not served"
same_bytes "$M/backups/${B[2]}/app.db" "$R/backups/prod/daily/${B[2]}/app.db" ||
  fail "the last backup after the others were checked"
pass "a copy touched but unchanged is checked at its open and served"

# Mounted with -o noarchiver: status says whether another process archives.
arch_status() {
  python3 - "$M/status" <<'PY'
import json, sys
d = [d for d in json.load(open(sys.argv[1]))["databases"] if d["name"] == "app"][0]["archiver"]
print(d["state"], d.get("archived_by_pid", "-"), d.get("message", "-"))
PY
}
s=$(arch_status)
case $s in
  "not-in-this-mount - no process archives this root: commits are not archived"*) ;;
  *) fail "status with -o noarchiver and no archiver: $s" ;;
esac
"$SQLENVFS" archive --root "$R" > /dev/null 2> "$T/arch.err" &
ARCH=$!
track_pid "$ARCH"
for _ in $(seq 100); do
  s=$(arch_status)
  [ "$s" = "not-in-this-mount $ARCH -" ] && break
  sleep 0.1
done
assert_eq "$s" "not-in-this-mount $ARCH -" "status with -o noarchiver and an archiver running"
kill -TERM "$ARCH"; wait "$ARCH" || true
pass "status says whether anything archives a root mounted with -o noarchiver"
