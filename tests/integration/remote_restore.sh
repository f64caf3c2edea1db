#!/usr/bin/env bash
# Reading a replica from another machine: a root with a real writer under
# `sqlenvfs archive`, a backup and snapshots, copied to a real S3 server
# (radosgw) by s3cmd following the replica layout (the last segment as
# parts); then, from an empty directory with no sqlenvfs.conf and only the
# AWS_* variables, `restore --remote` at many times T must give the local
# restore's bytes (and the commit log's rows), or its refusal word for
# word, with at most one LIST request each; `list --remote` the local
# windows; `verify --remote` good; never into a database of the local root;
# and wrong credentials one clear error.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"
source "$SRCDIR/tests/integration/remote_lib.sh"

remote_begin
# with a quiet tail: the unsealed segment is shipped as several parts
remote_history --quiet-tail --duration 8 --truncate-every 150 -- 2.5 backup 2 snapshot
nseg=$(ls "$R/backups/prod/wal_archives/app/" | grep -c '\.seg$')
[ "$nseg" -ge 3 ] || fail "only $nseg segments: the test needs several"
pass "writer committed $(pitr_commits "$T/log") transactions into $nseg segments"

remote_replica replica --parts 3
nparts=$(s3cmd_ ls -r "$URL/" | grep -c '\.seg\.part-')
[ "$nparts" -ge 2 ] || fail "the unsealed segment should be in parts ($nparts)"
pass "replica populated with s3cmd ($nparts parts of the unsealed segment)"

# small ranges: every object above 64 KiB is fetched in parts on several
# connections and checked against its MD5
SQLENVFS_TEST_REMOTE_RANGE_BYTES=65536 \
  python3 "$SRCDIR/tests/integration/remote_check.py" --sqlenvfs "$SQLENVFS" --root "$R" \
  --url "$URL" --log "$T/log" --tmp "$T" --proxy "$PX" --random 3 --around 2 \
  || fail "remote restores"
pass "remote restores equal local ones and the commit log, one LIST each"

# verify --remote: every object fetched and checked
(cd "$T/elsewhere" && "$SQLENVFS" verify --remote "$URL") > "$T/verify.out" \
  || { cat "$T/verify.out"; fail "verify --remote"; }
grep -q 'wal-archive' "$T/verify.out" || fail "verify --remote does not check the archive"
grep -q '^ok   backup' "$T/verify.out" || fail "verify --remote does not check the backup"
pass "verify --remote: $(tail -1 "$T/verify.out")"

# list --remote: the windows as shipped; it checks no base, and says so
# once, with the command that does (not a local one)
(cd "$T/elsewhere" && "$SQLENVFS" list --remote "$URL") > "$T/list.out" 2>&1 ||
  fail "list --remote: $(cat "$T/list.out")"
grep -q '^recoverable windows: [1-9]' "$T/list.out" || fail "no window: $(cat "$T/list.out")"
grep -q '(run sqlenvfs verify)' "$T/list.out" &&
  fail "list --remote advises a local verify: $(cat "$T/list.out")"
grep -q "list --remote checks no base: run sqlenvfs verify --remote $URL" "$T/list.out" ||
  fail "list --remote does not say how to check its bases: $(cat "$T/list.out")"
pass "list --remote: windows, and how to check their bases"

# Never a database of the root it runs in (or is given with --root), even
# with --force, as a local restore: here production has no -wal beside it
# (its application closed it cleanly), so nothing else refuses it.
P=$R/data/prod/app.db
sqlite3 "$P" 'PRAGMA journal_mode=DELETE' >/dev/null
sqlite3 "$P" 'PRAGMA journal_mode=WAL' >/dev/null
[ ! -e "$P-wal" ] && [ ! -e "$P-shm" ] || fail "production still has a -wal or -shm"
prod_sum=$(md5sum < "$P")
(cd "$R" && expect_fail 'that is the production database .*/data/prod/app.db of the root.*even with --force' \
  "$SQLENVFS" restore --remote "$URL" --time latest --output data/prod/app.db --force)
(cd "$T/elsewhere" && expect_fail 'that is the production database .*/data/prod/app.db of the root' \
  "$SQLENVFS" restore --root "$R" --remote "$URL" --time latest --output "$P" --force)
assert_eq "$(md5sum < "$P")" "$prod_sum" "production after the refused remote restores"
pass "restore --remote never replaces a database of the root, even with --force"

# Ctrl-C while it fetches (each segment's GET slowed by the proxy): what
# it fetched beside the output (.tmp-remote-<pid>, a tree) is removed, no
# output appears, and it dies of the signal.
mkdir -p "$T/intr"
curl -fsS "$PX/__fault/arm?kind=delay&count=1000&match=.seg&arg=400" >/dev/null || fail "arm"
(cd "$T/intr" && exec "$SQLENVFS" restore --remote "$URL" --time latest --output i.db) \
  > /dev/null 2>&1 &
ipid=$!
# A segment being fetched is written under a temporary name beside its
# own (.tmp-fetch-<name>-<pid>), and every one is put in place once all
# are fetched and checked.
fetching() {
  compgen -G "$T/intr/.tmp-remote-*/root/backups/prod/wal_archives/app/.tmp-fetch-*.seg-*" \
    >/dev/null
}
for _ in $(seq 200); do
  fetching && break
  sleep 0.05
done
fetching || fail "restore --remote fetched no segment into its temporary tree"
kill -INT "$ipid"
st=0
wait "$ipid" || st=$?
curl -fsS "$PX/__fault/clear" >/dev/null || fail "clear"
assert_eq "$st" 130 "the exit status of restore --remote after SIGINT"
[ -z "$(ls -A "$T/intr")" ] || fail "Ctrl-C left: $(ls -A "$T/intr")"
pass "Ctrl-C on restore --remote removes what it fetched"

# Wrong credentials: one clear error, no retry loop.
out=$(cd "$T/elsewhere" && AWS_SECRET_ACCESS_KEY=wrong "$SQLENVFS" restore --remote "$URL" \
  --time latest --output x.db 2>&1) && fail "restore with a wrong secret succeeded"
[ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || fail "more than one line: $out"
[[ $out == *"HTTP 403"*"AWS_SECRET_ACCESS_KEY"* ]] || fail "unclear: $out"
# A missing bucket, and a prefix that is not a replica.
out=$(cd "$T/elsewhere" && "$SQLENVFS" list --remote "s3://no-such-bucket-x/r" 2>&1) \
  && fail "list of a missing bucket succeeded"
[[ $out == *"NoSuchBucket"*"replica URL"* ]] || fail "unclear: $out"
out=$(cd "$T/elsewhere" && "$SQLENVFS" restore --remote "$URL" --db nope --time latest \
  --output z.db 2>&1) && fail "a restore of an unknown database succeeded"
[[ $out == *"has no archive or copy of database nope (it holds: app"* ]] || fail "unclear: $out"
out=$(cd "$T/elsewhere" && "$SQLENVFS" list --remote "s3://$S3_BUCKET/nothing-here" 2>&1) \
  && fail "list of an empty prefix succeeded"
[[ $out == *"no FORMAT object"* ]] || fail "unclear: $out"
printf 'sqlenvfs-replica 9\n' > "$T/FORMAT9"
s3cmd_ -q put "$T/FORMAT9" "$URL/FORMAT" >/dev/null
out=$(cd "$T/elsewhere" && "$SQLENVFS" restore --remote "$URL" --time latest --output y.db 2>&1) \
  && fail "a replica of another FORMAT was read"
[[ $out == *"its FORMAT says"*"sqlenvfs-replica 9"* ]] || fail "unclear: $out"
[ -z "$(ls -A "$T/elsewhere" | grep -v '^remote.db')" ] || fail "left behind: $(ls -A "$T/elsewhere")"
pass "wrong credentials, a missing bucket, an unknown database, no FORMAT, another FORMAT: one clear line each"

# This machine's clock 20 minutes off the server's (libfaketime): the error
# says it is the clock, not the credentials.
FT=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
[ -e "$FT" ] || fail "libfaketime is not installed (scripts/deps.sh installs faketime)"
(cd "$T/elsewhere" && expect_fail "RequestTimeTooSkewed.*clock and the server's differ by more than the 15 minutes S3 allows: set this machine's clock right" \
  env FAKETIME=+20m LD_PRELOAD="$FT" \
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
  "$SQLENVFS" list --remote "$URL")
pass "a clock off the server's is named as such"
