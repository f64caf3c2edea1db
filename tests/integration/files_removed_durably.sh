#!/usr/bin/env bash
# What a command removes stays removed after a power cut: the copies prune
# removes (renamed to a temporary, then deleted), and the copy of
# production that refresh-dev (and refresh-dev --time) writes aside. Each
# deletion is followed by a sync of its directory before the command
# returns, as strace shows; otherwise the entry could come back after a
# power cut, a full copy of production under a temporary name.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"
command -v strace >/dev/null || fail "strace is not installed (scripts/deps.sh installs it)"

# traced NAME CMD...: run CMD under strace (removals and syncs, with paths)
traced() {
  local name=$1
  shift
  # (LeakSanitizer cannot run under ptrace: the sanitizer build's leak
  # check is left to the other tests.)
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    strace -f -qq -y -e trace=unlink,unlinkat,rmdir,fsync,fdatasync -o "$T/$name.trace" "$@" \
    > "$T/$name.out" 2>&1 || fail "$name: $(cat "$T/$name.out")"
}
# removed_then_synced TRACE PATTERN DIR: every successful removal of a
# path matching PATTERN is followed by an fsync of directory DIR
removed_then_synced() {
  python3 - "$@" <<'PY'
import re, sys
trace, pattern, d = sys.argv[1], re.compile(sys.argv[2]), sys.argv[3]
calls = [l for l in open(trace) if "= 0" in l]
last = None
for i, l in enumerate(calls):
    m = re.search(r'(?:unlink|unlinkat|rmdir)\((?:[^,]*<[^>]*>, )?"([^"]*)"', l)
    if m and pattern.search(m.group(1)):
        last = i
assert last is not None, "no removal matching %s" % pattern.pattern
after = [l for l in calls[last + 1:] if re.search(r'fsync\(\d+<%s>\)' % re.escape(d), l)]
assert after, "the last removal matching %s is not followed by an fsync of %s" % (
    pattern.pattern, d)
PY
}

R=$T/root
pitr_make_root "$R"
DAILY=$R/backups/prod/daily
for d in 1 2 3; do
  "$SQLENVFS" backup --root "$R" > /dev/null
  newest=$(ls "$DAILY" | grep -v '^2020' | head -1)
  redate_copy "$DAILY/$newest" "2020010${d}T000000Z"
done
traced prune "$SQLENVFS" prune --root "$R"
assert_eq "$(ls "$DAILY")" "20200103T000000Z" "backups left by prune"
removed_then_synced "$T/prune.trace" '/\.tmp-del-[^/]*$' "$DAILY" ||
  fail "a copy prune removed can come back after a power cut"
pass "prune: each copy's removal is synced before it returns"

traced refresh "$SQLENVFS" refresh-dev --root "$R"
removed_then_synced "$T/refresh.trace" '/\.tmp-refresh-app-[0-9]+$' "$R/data/dev" ||
  fail "refresh-dev's copy aside can come back after a power cut"
pass "refresh-dev: the copy aside's removal is synced"

pitr_start_archiver "$R" "$T/a"
pitr_commit_tx "$R" one
sleep 1.2
traced refresh_t "$SQLENVFS" refresh-dev --root "$R" --time latest
pitr_stop_archiver "$T/a"
removed_then_synced "$T/refresh_t.trace" '/\.tmp-refresh-pitr-app-[0-9]+$' "$R/.cache" ||
  fail "refresh-dev --time's state in .cache can come back after a power cut"
pass "refresh-dev --time: the state written to .cache is removed durably"
