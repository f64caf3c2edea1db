#!/usr/bin/env bash
# The mount's diff/<t1>/<t2>/ takes the times pitr/ takes, and `latest` and
# `earliest`, the targets of pitr/'s links: diff/<t1>/latest/app.sql is what
# `sqlenvfs diff --from t1` prints (its --to defaults to latest).
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root M=$T/mnt
make_root "$R" <(printf 'CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);\n')
mount_root "$R" "$M"
wait_archiving "$M"
sqlite3 "$R/data/prod/app.db" "INSERT INTO t VALUES (1, 'before')"
sleep 0.2
t1=$(date -u +%FT%T.%NZ)
sleep 0.2
sqlite3 "$R/data/prod/app.db" "INSERT INTO t VALUES (2, 'after'); UPDATE t SET v = 'changed' WHERE id = 1"
for i in $(seq 1 50); do
  [ "$(sqlite3 "$M/pitr/latest/app.db" 'SELECT count(*) FROM t' 2>/dev/null)" = 2 ] && break
  sleep 0.1
done

"$SQLENVFS" diff --root "$R" --from "$t1" > "$T/cli.sql" 2>/dev/null
grep -q "VALUES(2,'after')" "$T/cli.sql" || fail "sqlenvfs diff --from t1: $(cat "$T/cli.sql")"
ls "$M/diff/$t1/latest" > "$T/ls" 2>&1 || fail "ls diff/<t1>/latest: $(cat "$T/ls")"
grep -qx 'app.sql' "$T/ls" || fail "diff/<t1>/latest/ lists $(cat "$T/ls")"
# The two times the wrong way round: nothing is listed that would not open.
ls "$M/diff/latest/$t1" > "$T/ls2" 2>&1 || fail "ls diff/latest/<t1>: $(cat "$T/ls2")"
[ ! -s "$T/ls2" ] || fail "diff/latest/<t1>/ (times reversed) lists files: $(cat "$T/ls2")"
cmp "$T/cli.sql" <(cat "$M/diff/$t1/latest/app.sql") ||
  fail "diff/<t1>/latest/app.sql differs from sqlenvfs diff --from t1"
"$SQLENVFS" diff --root "$R" --from "$(readlink "$M/pitr/earliest")" --summary > "$T/cli.summary"
cmp "$T/cli.summary" <(cat "$M/diff/earliest/latest/app.summary") ||
  fail "diff/earliest/latest/app.summary differs from sqlenvfs diff --summary"
if grep -q 'pitr/latest: not a time' "$R/.sqlenvfs/mount.log"; then
  fail "the log calls latest not a time: $(grep 'not a time' "$R/.sqlenvfs/mount.log" | head -1)"
fi
pass "diff/<t1>/latest/ and diff/earliest/latest/ are what sqlenvfs diff prints"

# A stat shows each file's real size, so tar and cp -a copy all of it.
t2=$(readlink "$M/pitr/latest")
for f in app.sql app.summary; do
  size=$(stat -c %s "$M/diff/$t1/$t2/$f")
  assert_eq "$size" "$(cat "$M/diff/$t1/$t2/$f" | wc -c)" "the size stat shows of diff/<t1>/<t2>/$f"
  [ "$size" -gt 0 ] || fail "diff/<t1>/<t2>/$f is empty"
done
tar -C "$M/diff/$t1" -cf "$T/d.tar" "$t2"
mkdir "$T/untar" && tar -C "$T/untar" -xf "$T/d.tar"
cmp "$T/untar/$t2/app.sql" "$T/cli.sql" || fail "tar of diff/<t1>/<t2>/ lost bytes of app.sql"
[ "$(stat -c %s "$T/untar/$t2/app.summary")" -gt 0 ] || fail "tar of diff/<t1>/<t2>/ lost app.summary"
pass "diff files show their real size: tar copies them whole"

ls "$M/diff/bogus/latest" > /dev/null 2>&1 && fail "diff/bogus/ was listed"
grep -q 'diff/bogus: not a time (use ' "$R/.sqlenvfs/mount.log" ||
  fail "the log does not name diff/bogus: $(grep bogus "$R/.sqlenvfs/mount.log")"
pass "a name of diff/ that is not a time is logged as diff/'s"

# With the mount's archiver running, restore --time latest has nothing to add.
"$SQLENVFS" restore --root "$R" --time latest --output "$T/latest.db" > /dev/null 2> "$T/err"
[ ! -s "$T/err" ] || fail "restore --time latest with an archiver running: $(cat "$T/err")"
pass "restore --time latest is quiet while an archiver runs"

# A document larger than the mount makes in memory (made small here) is
# refused with EPERM, the log giving the command that writes it; the
# refusal is remembered, and a smaller document of the same pair is served.
unmount_root "$M"
SQLENVFS_TEST_DIFF_DOC_MAX=$(( $(wc -c < "$T/cli.sql") - 1 )) mount_root "$R" "$M"
wait_archiving "$M"
for i in 1 2; do
  if stat "$M/diff/$t1/$t2/app.sql" > /dev/null 2> "$T/stat.err"; then
    fail "diff/<t1>/<t2>/app.sql larger than the limit was served"
  fi
  grep -q "Operation not permitted" "$T/stat.err" || fail "stat of a too large diff: $(cat "$T/stat.err")"
done
grep -q "more than the mount makes in memory: write it with \`sqlenvfs diff --db app --from " \
  "$R/.sqlenvfs/mount.log" || fail "the log does not say what to run: $(tail -3 "$R/.sqlenvfs/mount.log")"
cmp "$T/cli.summary" <(cat "$M/diff/earliest/latest/app.summary") ||
  fail "diff/earliest/latest/app.summary after a refused script"
pass "a diff document larger than the mount makes is refused (EPERM) with the command to run"
