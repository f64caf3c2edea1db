#!/usr/bin/env bash
# Archive bytes per commit and writer throughput with and without the
# archiver, for one-row commits of realistic text (text_rows.py), with one
# or more sqlenvfs binaries side by side (e.g. before and after a format
# change).
#
#   archive_bytes.sh [-n COMMITS] [-r RUNS] NAME=SQLENVFS_BINARY...
#
# For each binary and run: a fresh root, `sqlenvfs init`, then the writer
# alone (commits/s), then a fresh root with `sqlenvfs archive` running and
# the same writer (commits/s), the archiver's CPU time (user + system, from
# /proc, so less at the mercy of a busy machine than the rates) per commit,
# then the archive's size (segments and indexes) divided by the commits.
set -euo pipefail

n=20000
runs=3
while getopts "n:r:" o; do
  case $o in
    n) n=$OPTARG ;;
    r) runs=$OPTARG ;;
    *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
arch_pid=
cleanup() {
  [ -n "$arch_pid" ] && kill "$arch_pid" 2>/dev/null && wait "$arch_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

fresh_root() {
  rm -rf "$work/root"
  mkdir -p "$work/root"
  cp "$repo/schema.sql" "$work/root/"
  "$1" init -r "$work/root" >/dev/null
}

# Wait (at most 30 s) until the archiver has written its first segment.
wait_segment() {
  for _ in $(seq 300); do
    compgen -G "$work/root/backups/prod/wal_archives/app/*.seg" >/dev/null && return 0
    sleep 0.1
  done
  echo "the archiver wrote no segment" >&2
  return 1
}

printf "%-10s %4s %12s %13s %6s %16s %18s\n" binary run "alone c/s" "archived c/s" ratio \
  "archive B/commit" "archiver CPU us/c"
for spec in "$@"; do
  name=${spec%%=*}
  bin=${spec#*=}
  for run in $(seq "$runs"); do
    fresh_root "$bin"
    alone=$(python3 "$here/text_rows.py" "$work/root/data/prod/app.db" "$n" |
            sed -n 's/.*commits_per_s=\([0-9]*\).*/\1/p')
    fresh_root "$bin"
    "$bin" archive -r "$work/root" 2>"$work/archive.log" &
    arch_pid=$!
    wait_segment
    with=$(python3 "$here/text_rows.py" "$work/root/data/prod/app.db" "$n" |
           sed -n 's/.*commits_per_s=\([0-9]*\).*/\1/p')
    # utime + stime (fields 14 and 15 of /proc/PID/stat, in clock ticks).
    ticks=$(awk '{print $14 + $15}' "/proc/$arch_pid/stat")
    kill -INT "$arch_pid"
    wait "$arch_pid" || true
    arch_pid=
    bytes=$(cat "$work"/root/backups/prod/wal_archives/app/*.seg \
                "$work"/root/backups/prod/wal_archives/app/*.idx | wc -c)
    printf "%-10s %4s %12s %13s %6.2f %16.0f %18.1f\n" "$name" "$run" "$alone" "$with" \
      "$(echo "$with / $alone" | bc -l)" "$(echo "$bytes / $n" | bc -l)" \
      "$(echo "$ticks * 1000000 / $(getconf CLK_TCK) / $n" | bc -l)"
  done
done
