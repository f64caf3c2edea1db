#!/usr/bin/env bash
# A directory of the root that is a symbolic link, or one with a link above
# it inside the root, is refused by every command that would write or delete
# there, and nothing is changed behind the link:
# - backup and snapshot (backups/prod/daily, backups/prod/snapshots, backups);
# - prune, also with --dry-run (the copies behind the link all stay);
# - archive and mount (backups/prod/wal_archives; the mount lays out the root);
# - refresh-dev (data/dev, and data above it);
# - a command that takes a lock in .sqlenvfs.
# Each refusal is one line naming the link, its target and what was refused.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root
make_root "$R" <(echo "CREATE TABLE t (x);")
sqlite3 "$R/data/prod/app.db" "INSERT INTO t VALUES (1)"
"$SQLENVFS" backup --root "$R" > /dev/null
sqlite3 "$R/data/prod/app.db" "INSERT INTO t VALUES (2)"
"$SQLENVFS" backup --root "$R" > /dev/null
"$SQLENVFS" snapshot --root "$R" > /dev/null

# link DIR: move DIR (inside the root) aside and put a link to it in its place.
link() { mv "$R/$1" "$R/$1.real"; ln -s "$(basename "$1").real" "$R/$1"; }
unlink_back() { rm "$R/$1"; mv "$R/$1.real" "$R/$1"; }
# The listing of everything under a directory, with sizes and times.
tree_of() { find "$1" -printf '%P %s %T@\n' | sort; }
refused() { # WHAT LINK CMD...: fails naming LINK as a link, once, about WHAT
  local what=$1 link=$2; shift 2
  expect_fail "^sqlenvfs [a-z-]+: $what: $R/$link is a symbolic link \\(to [^)]+\\); .*nothing was changed" "$@"
}

link backups/prod/daily
before=$(tree_of "$R/backups/prod/daily.real")
refused 'write a backup' backups/prod/daily "$SQLENVFS" backup --root "$R"
printf '[retention]\ndaily-keep-count=1\ndaily-keep-days=0\n' > "$R/sqlenvfs.conf"
refused 'remove old backups' backups/prod/daily "$SQLENVFS" prune --root "$R"
refused 'remove old backups' backups/prod/daily "$SQLENVFS" prune --root "$R" --dry-run
assert_eq "$(tree_of "$R/backups/prod/daily.real")" "$before" "the backups behind the link"
unlink_back backups/prod/daily
pass "backup and prune refuse a linked backups/prod/daily and change nothing behind it"

link backups/prod/snapshots
before=$(tree_of "$R/backups/prod/snapshots.real")
refused 'write a snapshot' backups/prod/snapshots "$SQLENVFS" snapshot --root "$R"
refused 'archive \(its snapshots\)' backups/prod/snapshots timeout 20 "$SQLENVFS" archive --root "$R"
assert_eq "$(tree_of "$R/backups/prod/snapshots.real")" "$before" "the snapshots behind the link"
unlink_back backups/prod/snapshots

# A link above the directory written (backups itself).
link backups
before=$(tree_of "$R/backups.real")
refused 'write a backup' backups "$SQLENVFS" backup --root "$R"
refused 'archive' backups timeout 20 "$SQLENVFS" archive --root "$R"
mkdir -p "$T/mnt"
refused 'lay out the root' backups "$SQLENVFS" mount "$R" "$T/mnt"
mountpoint -q "$T/mnt" && fail "the root was mounted with backups/ a link"
assert_eq "$(tree_of "$R/backups.real")" "$before" "the tree behind backups/"
unlink_back backups
pass "snapshot, archive and mount refuse a link at or above the directory they write"

"$SQLENVFS" refresh-dev --root "$R" > /dev/null
link data
before=$(tree_of "$R/data.real/dev")
refused 'write development' data "$SQLENVFS" refresh-dev --root "$R"
assert_eq "$(tree_of "$R/data.real/dev")" "$before" "data/dev behind the link"
unlink_back data

link .sqlenvfs
before=$(tree_of "$R/.sqlenvfs.real")
refused 'take a lock' .sqlenvfs "$SQLENVFS" backup --root "$R"
assert_eq "$(tree_of "$R/.sqlenvfs.real")" "$before" ".sqlenvfs behind the link"
unlink_back .sqlenvfs
pass "refresh-dev and a command's lock refuse a link above data/dev or at .sqlenvfs"

# Without links, the same commands work.
"$SQLENVFS" backup --root "$R" > /dev/null
out=$("$SQLENVFS" prune --root "$R")
grep -q '^removed 2 of 4$' <<<"$out" || fail "prune without the links: $out"
pass "with the links gone, backup and prune run"
