#!/usr/bin/env bash
# The memory a restore needs does not grow with the history kept: the peak
# RSS (VmHWM) of `restore --time T` over an archive of 100 thousand commits
# stays within 8 MiB of the same restore over 10 thousand commits (T at 90%
# of the history in both, so the longer restore rolls forward over ten times
# as many records). The archives are built by gen_archive (real one-row
# commits, archived through the archive writer; the base a real backup),
# and each restore is checked: exactly rows 1..K, integrity_check ok.
# A reader that loads every index entry into memory (at open, or to check
# the records) fails it. The archives roll segments at 1 MiB, so that the
# history is in sealed segments (10000 commits: 3, 100000: 31): the
# segment being written keeps its entries in memory (about 112 bytes a
# record, bounded by segment-max-bytes, not by the history), and at the
# default 64 MiB all 100000 one-row commits would still be in it.
# HISTORY_RSS_SMALL / HISTORY_RSS_LARGE change the counts (10000 / 100000).
source "$SRCDIR/tests/integration/lib.sh"

: "${GEN_ARCHIVE:?GEN_ARCHIVE must point at the built gen_archive}"
small=${HISTORY_RSS_SMALL:-10000}
large=${HISTORY_RSS_LARGE:-100000}
slack_mib=8

# restore_rss N: build a root of N commits, restore to commit 0.9 N, check
# the rows and print the restore's peak RSS in KiB.
restore_rss() {
  local n=$1 k=$(( $1 - $1 / 10 )) out us rss
  # The generator is a benchmark's fixture builder, not the product: what it
  # leaves allocated at exit is not checked (the restore measured below is).
  out=$(ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    "$GEN_ARCHIVE" --sqlenvfs "$SQLENVFS" --root "$T/root-$n" --commits "$n" --mark "$k" \
    --segment-max-bytes 1048576) ||
    fail "gen_archive --commits $n failed"
  grep -q "drives the archive writer directly" <<<"$out" || fail "gen_archive did not say how it writes"
  us=$(sed -n "s/^mark $k us=\([0-9]*\) .*/\1/p" <<<"$out")
  [ -n "$us" ] || fail "gen_archive printed no mark for commit $k: $out"
  rss=$(python3 - "$SQLENVFS" "$T/root-$n" "@${us:0:-6}.${us: -6}" "$T/out-$n.db" <<'PY'
import os, subprocess, sys
bin_, root, t, out = sys.argv[1:]
# Under AddressSanitizer, freed memory waits in a quarantine (256 MiB) that
# fills with whatever a long run frees: without it the peak is what the
# restore holds, plus the shadow of it.
env = dict(os.environ)
env["ASAN_OPTIONS"] = ":".join(x for x in (env.get("ASAN_OPTIONS", ""), "quarantine_size_mb=0",
                                           "thread_local_quarantine_size_kb=0") if x)
p = subprocess.Popen([bin_, "restore", "--root", root, "--time", t, "--output", out],
                     stdout=subprocess.DEVNULL, env=env)
_, status, ru = os.wait4(p.pid, 0)
if os.waitstatus_to_exitcode(status) != 0:
    sys.exit(f"restore --time {t} failed")
print(ru.ru_maxrss)
PY
  ) || fail "restore of the $n-commit archive failed"
  assert_eq "$(sqlite3 "$T/out-$n.db" 'PRAGMA integrity_check')" ok "integrity of the restore ($n commits)"
  assert_eq "$(sqlite3 "$T/out-$n.db" 'SELECT count(*), max(id) FROM log')" "$k|$k" \
    "rows of the restore to commit $k of $n"
  rm -rf "$T/root-$n" "$T/out-$n.db"
  echo "$rss"
}

rss_small=$(restore_rss "$small")
note "restore over $small commits: peak RSS $(( rss_small / 1024 )) MiB"
rss_large=$(restore_rss "$large")
note "restore over $large commits: peak RSS $(( rss_large / 1024 )) MiB"
[ "$rss_large" -le $(( rss_small + slack_mib * 1024 )) ] ||
  fail "a restore over $large commits peaks at $(( rss_large / 1024 )) MiB, over $small at $(( rss_small / 1024 )) MiB: its memory grows with the history (bound: +$slack_mib MiB)"
pass "a restore's peak RSS does not grow with the history ($(( rss_small / 1024 )) MiB at $small commits, $(( rss_large / 1024 )) MiB at $large)"
