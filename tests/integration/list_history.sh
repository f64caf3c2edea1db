#!/usr/bin/env bash
# `sqlenvfs list` on a terminal draws each database's history as a bar as
# wide as the terminal (TIOCGWINSZ, else $COLUMNS), with the gap that a
# WAL reset while no archiver ran leaves; piped, its output is the plain
# list only, the same text that precedes the bar on the terminal.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
pitr_make_root "$R"
db=$R/data/prod/app.db
commit() { sqlite3 "$db" "INSERT INTO tx(kind, payload, crc) VALUES ('$1', x'00', 0)"; }

# A window, then the archiver stops; another process commits and resets the
# WAL (TRUNCATE checkpoint) and commits again; the restarted archiver finds
# frames it never saw gone: a gap, and a new window from a fresh snapshot.
pitr_start_archiver "$R" "$T/a1"
commit one
commit two
pitr_stop_archiver "$T/a1"
commit lost
sqlite3 "$db" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
commit after-reset
pitr_start_archiver "$R" "$T/a2"
grep -q 'GAP' "$T/a2.err" || fail "the restart after a WAL reset reported no gap: $(cat "$T/a2.err")"
commit three
pitr_stop_archiver "$T/a2"

# Run `sqlenvfs list` on a pseudo-terminal of COLS columns (0: the terminal
# reports no size) with $COLUMNS set to ENVCOLS; print what it wrote, CR LF
# turned back into LF.
on_tty() { # COLS ENVCOLS
  python3 - "$1" "$2" "$SQLENVFS" "$R" <<'PY'
import fcntl, os, pty, struct, sys, termios
cols, envcols, exe, root = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
    os.environ["COLUMNS"] = envcols
    os.execv(exe, [exe, "list", "--root", root])
out = b""
while True:
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode().replace("\r\n", "\n"))
sys.exit(os.waitstatus_to_exitcode(status))
PY
}

"$SQLENVFS" list --root "$R" > "$T/plain"
on_tty 100 7 > "$T/tty" || fail "list on a terminal failed: $(cat "$T/tty")"
sed 's/^/# /' "$T/tty"
grep -q '^history' "$T/plain" && fail "piped output has the history bar: $(cat "$T/plain")"
n=$(wc -l < "$T/plain")
assert_eq "$(head -n "$n" "$T/tty")" "$(cat "$T/plain")" "the terminal output's plain part"
assert_eq "$(sed -n "$((n + 1))p" "$T/tty")" "" "the blank line before the history"
pass "piped, list prints the plain list only; on a terminal the same text comes first"

bar=$(grep -E '^  app  [.=x~]+$' "$T/tty") || fail "no bar for app: $(cat "$T/tty")"
grep -Eq '^  app  \.*=+x+=+\.*$' <<< "$bar" || fail "the bar does not show window, gap, window: '$bar'"
assert_eq "${#bar}" 100 "the bar row's width on a 100-column terminal"
grep -q '^ *S' <(grep -B1 -E '^  app  [.=x~]+$' "$T/tty" | head -1) || fail "no snapshot mark above the bar"
grep -q '^legend:  = recoverable  x gap' "$T/tty" || fail "no legend: $(cat "$T/tty")"
sed -n '/^history/,$p' "$T/tty" | awk 'length > 100 { exit 1 }' || fail "a row is wider than the terminal"
pass "on a 100-column terminal: window, gap, window, snapshot marks and a legend, no row of the history wider"

# No size from the terminal: $COLUMNS.
on_tty 0 60 > "$T/tty60" || fail "list on a terminal failed: $(cat "$T/tty60")"
bar=$(grep -E '^  app  [.=x~]+$' "$T/tty60") || fail "no bar for app: $(cat "$T/tty60")"
assert_eq "${#bar}" 60 "the bar row's width with COLUMNS=60"
sed -n '/^history/,$p' "$T/tty60" | awk 'length > 60 { exit 1 }' || fail "a row is wider than COLUMNS"
pass "a terminal that reports no size: \$COLUMNS sets the width"

"$SQLENVFS" list --root "$R" --json | python3 -c 'import json,sys; json.load(sys.stdin)' ||
  fail "--json is not JSON"
pass "--json unchanged"
