#!/usr/bin/env bash
# restore --remote run on the machine of a root whose production is on the
# filesystem of the output: what it fetches (the base, the archive) and
# what it writes are held to production's [cache] min-free-bytes, as a
# local restore is. Here a replica's base of ~16 MiB is restored onto a
# 48 MiB disk holding production (min-free-bytes 20 MiB): it is refused
# before anything is fetched, and an application committing meanwhile
# loses nothing.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"
source "$SRCDIR/tests/integration/remote_lib.sh"

remote_begin
remote_fill_pts 30000
remote_history --duration 2 -- 1 backup
remote_replica room
pass "replica of a $(stat -c %s "$R/data/prod/app.db")-byte database"

S=$T/small
tmpfs_root "$S" 48M 20M 2000
free0=$(df -B1 --output=avail "$S" | tail -1)
app_start "$S/data/prod/app.db" 'INSERT INTO b(v) VALUES (?)'
(cd "$S" && expect_fail 'min-free-bytes' \
  "$SQLENVFS" restore --remote "$URL" --time latest --output "$S/out.db")
app_stop
[ ! -e "$S/out.db" ] || fail "the refused restore left its output"
[ -z "$(ls -A "$S" | grep tmp-remote)" ] || fail "the refused restore left $(ls -A "$S")"
assert_eq "$app_failed" 0 "commits that failed during the refused restore"
free1=$(df -B1 --output=avail "$S" | tail -1)
[ "$free1" -ge $((20 * 1024 * 1024)) ] || fail "only $free1 bytes free on production's disk"
pass "restore --remote onto production's filesystem keeps min-free-bytes ($app_ok commits)"

# Elsewhere (a filesystem of its own) the same restore goes through.
mkdir -p "$T/elsewhere"
(cd "$T/elsewhere" && "$SQLENVFS" restore --remote "$URL" --time latest --output r.db) \
  > /dev/null || fail "restore --remote onto a filesystem of its own"
assert_eq "$(sqlite3 "$T/elsewhere/r.db" 'SELECT count(*) FROM pts')" 30000 "rows restored"
pass "the same restore elsewhere has every row"
