#!/usr/bin/env bash
# mount --remote: a read-only view of a replica (written by s3cmd following
# the layout) from a directory with no root and no sqlenvfs.conf, only the
# AWS_* variables: snapshots/, backups/ and pitr/ and nothing else; a
# pitr/<T>/app.db copied out equals the local restore at T, and copies equal
# their originals (bytes 18-19 of the header read 1, as every image the
# mount serves); objects are fetched on first open, and the copies kept in
# the cache stay within -o cache-max-bytes (least recently used evicted). A
# cache is emptied and refilled from the replica: a root, a directory with
# other files or one inside a root is refused before anything is written,
# and the cache made here is taken again.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"
source "$SRCDIR/tests/integration/remote_lib.sh"

remote_begin
remote_history --duration 5 -- 1.5 backup 1.5 snapshot
remote_replica m --parts 2

# same bytes, but for the header's version bytes 18-19 (1 when served)
same_db() { # served original
  [ "$(od -An -tu1 -j18 -N2 "$1" | tr -s ' ')" = " 1 1" ] || fail "$1: bytes 18-19 are not 1 1"
  cmp -s <(head -c 18 "$1"; tail -c +21 "$1") <(head -c 18 "$2"; tail -c +21 "$2")
}

mkdir -p "$T/w" "$T/mnt"
cd "$T/w"
B=$(ls "$R/backups/prod/daily")
S=($(ls "$R/backups/prod/snapshots"))
bsize=$(stat -c %s "$R/backups/prod/daily/$B/app.db")
ssize=$(stat -c %s "$R/backups/prod/snapshots/${S[1]}/app.db")
bound=$(( (bsize > ssize ? bsize : ssize) + 4096 ))
# (an empty directory anyone may read: made 0700, as a cache it makes)
mkdir -m 777 "$T/cache"
"$SQLENVFS" mount --remote "$URL" "$T/mnt" -o "cache=$T/cache,cache-max-bytes=$bound" \
  || fail "mount --remote"
_mounts+=("$T/mnt")
wait_mounted "$T/mnt"
assert_eq "$(stat -c %a "$T/cache")" "700" "mode of a cache given as a directory of mode 0777"
assert_eq "$(ls "$T/mnt" | tr '\n' ' ')" "backups pitr snapshots " "top-level entries"
for hidden in prod dev ctl status; do
  [ ! -e "$T/mnt/$hidden" ] || fail "$hidden is shown in a mount of a replica"
done
assert_eq "$(ls "$T/mnt/backups")" "$B" "backups listed"
assert_eq "$(ls "$T/mnt/snapshots" | tr '\n' ' ')" "$(echo "${S[@]}") " "snapshots listed"
[ -z "$(find "$T/cache/backups/prod/daily" "$T/cache/backups/prod/snapshots" -name '*.db')" ] \
  || fail "copies were fetched before they were read"
assert_eq "$(stat -c %s "$T/mnt/backups/$B/app.db")" "$bsize" "size of a copy not fetched yet"
pass "only snapshots/, backups/ and pitr/; listed from the MANIFESTs, nothing fetched yet"

# pitr/<T>/app.db equals the local restore at T
t=$(awk '$1=="T" {t[NR]=$4} END {printf "%.6f", t[int(NR*0.8)]}' "$T/log")
"$SQLENVFS" restore --root "$R" --time "@$t" --output "$T/local.db" >/dev/null || fail "local restore"
cp "$T/mnt/pitr/@$t/app.db" "$T/pitr.db" || fail "cp from pitr/@$t"
same_db "$T/pitr.db" "$T/local.db" || fail "pitr/@$t/app.db differs from the local restore"
pass "pitr/@$t/app.db equals the local restore"

# copies: equal to the originals; the cache stays within its bound
cp "$T/mnt/backups/$B/app.db" "$T/b.db"
same_db "$T/b.db" "$R/backups/prod/daily/$B/app.db" || fail "backup differs"
cp "$T/mnt/snapshots/${S[1]}/app.db" "$T/s.db"
same_db "$T/s.db" "$R/backups/prod/snapshots/${S[1]}/app.db" || fail "snapshot differs"
cp "$T/mnt/snapshots/${S[0]}/app.db" "$T/s0.db"
same_db "$T/s0.db" "$R/backups/prod/snapshots/${S[0]}/app.db" || fail "first snapshot differs"
read_bytes=$(( bsize + ssize ))
kept=$(find "$T/cache/backups/prod/daily" "$T/cache/backups/prod/snapshots" -name '*.db' \
  -printf '%s\n' | awk '{s+=$1} END {print s+0}')
[ "$read_bytes" -gt "$bound" ] || fail "the test read less than the bound"
[ "$kept" -le "$bound" ] || fail "the cache keeps $kept bytes of copies, more than $bound"
[ -z "$(find "$T/cache" -name '.tmp-*')" ] || fail "temporaries left in the cache"
pass "copies equal their originals; the cache keeps $kept bytes of copies (bound $bound, read $read_bytes)"

# A copy damaged in the replica (same size, a byte changed): an I/O error,
# and not kept in the cache, so that once the replica is repaired the next
# open serves it, in the same mount.
key=${URL#s3://}/snapshots/${S[1]}/app.db
s3cmd_ get --force "s3://$key" "$T/good.db" >/dev/null || fail "s3cmd get $key"
cp "$T/good.db" "$T/bad.db"
printf '\xff' | dd of="$T/bad.db" bs=1 seek=$(( ssize / 2 )) conv=notrunc 2>/dev/null
s3cmd_ put "$T/bad.db" "s3://$key" >/dev/null || fail "s3cmd put $key"
rm -f "$T/cache/backups/prod/snapshots/${S[1]}/app.db"
if cp "$T/mnt/snapshots/${S[1]}/app.db" "$T/s1.db" 2>"$T/cp.err"; then
  fail "a damaged snapshot was served"
fi
grep -q "Input/output error" "$T/cp.err" || fail "not an I/O error: $(cat "$T/cp.err")"
[ ! -e "$T/cache/backups/prod/snapshots/${S[1]}/app.db" ] ||
  fail "the damaged snapshot was kept in the cache"
s3cmd_ put "$T/good.db" "s3://$key" >/dev/null || fail "s3cmd put $key"
cp "$T/mnt/snapshots/${S[1]}/app.db" "$T/s1.db" 2>"$T/cp.err" ||
  fail "the repaired snapshot is not served: $(cat "$T/cp.err")"
same_db "$T/s1.db" "$R/backups/prod/snapshots/${S[1]}/app.db" || fail "repaired snapshot differs"
pass "a damaged copy fails with EIO, is not cached, and is served once repaired"

# read-only
touch "$T/mnt/backups/x" 2>/dev/null && fail "a file was created in the mount"
unmount_root "$T/mnt"
pass "read-only; unmounted"

# The same cache again, named relatively with a trailing slash, and the
# replica's URL with one (the same bucket and prefix): taken, and the copies
# kept in it served.
# The copy kept there damaged in the cache meanwhile (the replica's is
# whole): fetched again at its first open, and served.
[ "$(pwd)" = "$T/w" ] || fail "not in $T/w"
cached=$T/cache/backups/prod/snapshots/${S[1]}/app.db
[ -s "$cached" ] || fail "the snapshot read is not kept in the cache"
printf '\x00' | dd of="$cached" bs=1 seek=$(( ssize / 2 )) conv=notrunc 2>/dev/null
"$SQLENVFS" mount --remote "$URL/" "$T/mnt" -o "cache=../cache/" || fail "mount on its own cache"
_mounts+=("$T/mnt")
wait_mounted "$T/mnt"
cp "$T/mnt/snapshots/${S[1]}/app.db" "$T/s2.db" 2> "$T/cp2.err" ||
  fail "a copy damaged in the cache is not fetched again: $(cat "$T/cp2.err")"
same_db "$T/s2.db" "$R/backups/prod/snapshots/${S[1]}/app.db" || fail "the copy fetched again differs"
unmount_root "$T/mnt"

# Another root's replica put at the same URL (its OWNER another): objects of
# the same names and sizes are not the same, so the cache is refused, not
# served from.
printf 'sqlenvfs-root 0123456789abcdef\n' > "$T/OWNER"
s3cmd_ put -q "$T/OWNER" "$URL/OWNER"
if "$SQLENVFS" mount --remote "$URL" "$T/mnt" -o "cache=$T/cache" 2> "$T/err"; then
  _mounts+=("$T/mnt")
  fail "mount --remote served a cache made for the replica before"
fi
grep -q "cache .*: it holds the files of the replica that was at .* before: its OWNER object is another now" \
  "$T/err" || fail "no reason for the refused cache: $(cat "$T/err")"
s3cmd_ del -q "$URL/OWNER"
pass "a cache made for another replica at the same URL is refused"

# Not a cache: refused, and nothing in it changed.
tree() { find "$1" -printf '%p %y %s %T@\n' | sort | md5sum; }
mkdir -p "$T/mine/backups/prod/daily/keep"
echo precious > "$T/mine/backups/prod/daily/keep/x.txt"
# The root reached through a symbolic link and "..", which a path collapsed
# by name would take for a new directory beside the link.
mkdir -p "$T/elsewhere" "$T/q/p"
ln -s "$T/elsewhere" "$T/q/p/lk"
via_link="$T/q/p/lk/../$(basename "$R")"
[ "$(realpath "$(dirname "$R")")" = "$(realpath "$T")" ] || fail "the root is not in $T"
for dir in "$R" "$T/mine" "$R/backups/new" "$R/data/cache" "$via_link"; do
  before=$(tree "$R"; tree "$T/mine")
  if "$SQLENVFS" mount --remote "$URL" "$T/mnt" -o "cache=$dir" 2>"$T/err"; then
    _mounts+=("$T/mnt")
    fail "mount --remote took $dir as its cache"
  fi
  grep -q "cache .*: .*nothing was written" "$T/err" || fail "no reason for $dir: $(cat "$T/err")"
  assert_eq "$(tree "$R"; tree "$T/mine")" "$before" "the files after -o cache=$dir"
  [ ! -e "$R/backups/new" ] && [ ! -e "$R/data/cache" ] || fail "$dir was made"
done
(cd "$T/mine" && expect_fail "-o cache= is empty: give the cache's directory" \
  "$SQLENVFS" mount --remote "$URL" "$T/mnt" -o cache=)
pass "a root, a directory of other files and one inside a root are refused as caches, untouched"

# A root that looks like a cache (the plan directory an earlier version
# made in a root given as its cache, or a marker naming this replica) is
# still a root: refused, untouched.
mkdir -p "$R/.sqlenvfs/remote"
printf 'sqlenvfs replica cache\nurl=%s\n' "$URL" > "$R/.sqlenvfs/replica-cache"
before=$(tree "$R")
if "$SQLENVFS" mount --remote "$URL" "$T/mnt" -o "cache=$R" 2>"$T/err"; then
  _mounts+=("$T/mnt")
  fail "mount --remote took a root with a cache's marker as its cache"
fi
grep -q "that is a root" "$T/err" || fail "no reason: $(cat "$T/err")"
assert_eq "$(tree "$R")" "$before" "the root marked as a cache, after the refusal"
pass "a root marked as a cache is still refused, untouched"
