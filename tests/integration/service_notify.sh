#!/usr/bin/env bash
# Under a service manager that asks ($NOTIFY_SOCKET, as systemd's
# Type=notify does), `sqlenvfs archive` and `sqlenvfs mount -f` say READY=1
# only once every production database is captured (the mount without an
# archiver: once it is mounted), so that a unit ordered after theirs (the
# application) starts after the archiver. Without the variable nothing is
# sent, and a path that is no socket changes nothing.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root M=$T/mnt
make_root "$R" <(echo "CREATE TABLE t(x);")
sqlite3 "$R/data/prod/app.db" "INSERT INTO t VALUES (1)"

# ready CMD...: run CMD with NOTIFY_SOCKET set to a socket of ours; print
# the first datagram and, at the time it came, whether CMD's stderr said
# "capturing"; then stop CMD with SIGTERM.
ready() {
  python3 - "$T/notify.sock" "$T/cmd.err" "$@" <<'PY'
import os, signal, socket, subprocess, sys, time
path, err = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
if os.path.exists(path):
    os.unlink(path)
s.bind(path)
s.settimeout(30)
env = dict(os.environ, NOTIFY_SOCKET=path)
p = subprocess.Popen(sys.argv[3:], env=env, stdout=subprocess.DEVNULL, stderr=open(err, "w"))
msg = s.recv(4096).decode()
said = "capturing" in open(err).read()
print(msg.replace("\n", " "), "| capturing said before:", said)
p.send_signal(signal.SIGTERM)
p.wait(timeout=30)
PY
}

out=$(ready "$SQLENVFS" archive --root "$R")
grep -q "^READY=1 STATUS=archiving | capturing said before: True$" <<<"$out" ||
  fail "archive: $out ($(cat "$T/cmd.err"))"
pass "archive says READY=1 once it captures"

mkdir -p "$M"
out=$(ready "$SQLENVFS" mount "$R" "$M" -f)
grep -q "^READY=1 STATUS=archiving | capturing said before: True$" <<<"$out" ||
  fail "mount -f: $out ($(cat "$T/cmd.err"))"
for i in $(seq 1 100); do mountpoint -q "$M" || break; sleep 0.1; done
out=$(ready "$SQLENVFS" mount "$R" "$M" -f -o noarchiver)
grep -q "^READY=1 STATUS=serving" <<<"$out" || fail "mount -f -o noarchiver: $out"
for i in $(seq 1 100); do mountpoint -q "$M" || break; sleep 0.1; done
pass "mount -f says READY=1 once its archiver captures (without one: once mounted)"

# A NOTIFY_SOCKET that is no socket: the archiver runs as ever.
NOTIFY_SOCKET=$T/nothing "$SQLENVFS" archive --root "$R" > /dev/null 2> "$T/a.err" &
apid=$!
track_pid "$apid"
wait_log "$T/a.err" "capturing"
kill -TERM "$apid"
wait "$apid" || fail "the archiver with a NOTIFY_SOCKET that is no socket: $(cat "$T/a.err")"
pass "a NOTIFY_SOCKET that is no socket changes nothing"
