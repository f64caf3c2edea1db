#!/usr/bin/env bash
# The order in which the archiver makes a sealed segment durable. A sealed
# segment's index is checked by `verify` as a finished one, so the index
# must reach the disk before the seal can: were the seal synced first, a
# power cut between the two syncs would leave a sealed segment beside an
# empty index, and `verify` would call a sound archive BAD until the
# archiver's next start. Watched with strace: for every sealed segment, its
# index is synced before the segment's last sync (the seal's).
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"
command -v strace >/dev/null || fail "strace is not installed (scripts/deps.sh installs it)"

R=$T/root
A=$R/backups/prod/wal_archives/app
pitr_make_root "$R"
echo "segment-max-records=100" >> "$R/sqlenvfs.conf"

# (LeakSanitizer cannot run under ptrace.)
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
  strace -f -qq -y -e trace=fsync,fdatasync -o "$T/trace" \
  "$SQLENVFS" archive --root "$R" > "$T/a.out" 2> "$T/a.err" &
spid=$!
track_pid "$spid"
for i in $(seq 1 100); do
  grep -q 'archiver app: capturing' "$T/a.err" && break
  kill -0 "$spid" 2>/dev/null || { cat "$T/a.err" >&2; fail "the archiver exited"; }
  sleep 0.1
done
grep -q 'archiver app: capturing' "$T/a.err" || fail "the archiver did not start: $(cat "$T/a.err")"
pitr_write "$R" "$T/log" 1
for i in $(seq 1 60); do
  [ "$(ls "$A" | grep -c '\.seg$')" -ge 4 ] && break
  pitr_write "$R" "$T/log" 0.5 "$(pitr_last_k "$T/log")"
done
apid=$(pgrep -P "$spid" -x sqlenvfs) || fail "no archiver under strace"
kill -TERM "$apid"
wait "$spid" || true

python3 - "$T/trace" "$A" <<'PY' || fail "a sealed segment's seal reached the disk before its index"
import os, re, sys
trace, adir = sys.argv[1], sys.argv[2]
syncs = []  # (file name) in the order the calls were made
for line in open(trace):
    m = re.search(r'f(?:data)?sync\(\d+<([^>]*)>\) = 0', line)
    if m and os.path.dirname(m.group(1)) == adir:
        syncs.append(os.path.basename(m.group(1)))
segs = sorted(f for f in os.listdir(adir) if f.endswith(".seg"))
sealed = segs[:-1]
assert len(sealed) >= 3, "only %d sealed segments" % len(sealed)
for s in sealed:
    idx = s[:-4] + ".idx"
    last_seg = max(i for i, f in enumerate(syncs) if f == s)
    before = [i for i, f in enumerate(syncs[:last_seg]) if f == idx]
    assert before, "%s: its index is first synced after the seal (%s)" % (s, [
        f for f in syncs if f in (s, idx)])
print("# %d sealed segments: each index synced before its seal" % len(sealed))
PY
"$SQLENVFS" verify --root "$R" > "$T/verify.out" || fail "verify: $(cat "$T/verify.out")"
pass "every sealed segment's index is durable before its seal"
