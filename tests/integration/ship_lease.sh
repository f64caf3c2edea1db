#!/usr/bin/env bash
# One writer per replica: a second root pointed at the same prefix is
# refused with a clear error, keeps capturing locally and ships nothing; a
# writer whose lease is taken over (the lease object rewritten with s3cmd)
# stops shipping and says so in its log and status.
source "$(dirname "$0")/lib.sh"
source "$SRCDIR/tests/integration/ship_lib.sh"

ship_start_server
# refused ROOT LOG PATTERN WHAT: wait (10 s at most) until LOG says PATTERN
# and ROOT's replica status is error (the status file is rewritten just after
# the log line), then check that both hold.
refused() {
  for _ in $(seq 1 100); do
    grep -q "$3" "$2" && grep -q '^state=error' "$1/.sqlenvfs/replica-status" 2>/dev/null &&
      break
    sleep 0.1
  done
  grep -q "$3" "$2" || fail "$4 was not refused clearly: $(cat "$2")"
  grep -q '^state=error' "$1/.sqlenvfs/replica-status" ||
    fail "$4's status: $(cat "$1/.sqlenvfs/replica-status")"
}
A=$T/a_root
B=$T/b_root
ship_make_root "$A" shared
ship_make_root "$B" shared
echo "lease-seconds = 12" >>"$A/sqlenvfs.conf"   # renewed every 3 s
echo "lease-seconds = 12" >>"$B/sqlenvfs.conf"
ship_start "$A" "$T/a"
ship_write "$A/data/prod/app.db" 50 500
ship_wait_caught_up "$A" shared 20

# --- a second root on the same prefix
ship_start "$B" "$T/b"
refused "$B" "$T/b.err" "OWNER names another root .*its lease names host .*, root $A, pid [0-9]* until .* (renewed while that archiver runs" \
  "the second root"
# Refused before the lease is taken: B never holds A's lease, even briefly.
s3cmd_ get --force "s3://$S3_BUCKET/shared/lease" "$T/lease.b" >/dev/null
grep -q "root=$A\$" "$T/lease.b" || fail "the lease is not A's while B runs: $(cat "$T/lease.b")"
grep -q "lease taken" "$T/b.err" && fail "the refused root took the lease: $(cat "$T/b.err")"
"$SQLENVFS" list --root "$B" | grep -q 'app .*error, .*its lease names host' ||
  fail "list of the second root does not say why it does not ship: $("$SQLENVFS" list --root "$B")"
# Nothing of B is in the replica: its backlog is its archive and snapshot.
b0=$(ship_backlog_over "$B" 0 "the refused root")
size0=$(du -sb "$B/backups/prod/wal_archives/app" | cut -f1)
ship_write "$B/data/prod/app.db" 50 500
for _ in $(seq 1 50); do
  size1=$(du -sb "$B/backups/prod/wal_archives/app" | cut -f1)
  [ "$size1" -gt "$size0" ] && break
  sleep 0.1
done
[ "$size1" -gt "$size0" ] || fail "the refused root stopped capturing locally ($size0 -> $size1)"
b1=$(ship_backlog_over "$B" "$b0" "the refused root, after more commits")
note "the refused root's backlog: $b0 bytes, then $b1 after more commits"
sleep 2
ship_caught_up "$A" shared >/dev/null || fail "the replica is no longer A's alone: $(ship_caught_up "$A" shared 2>&1)"
for s in "$B"/backups/prod/snapshots/*; do
  s3cmd_ ls "s3://$S3_BUCKET/shared/snapshots/$(basename "$s")/" | grep -q . &&
    fail "the refused root shipped its snapshot $(basename "$s")"
done
ship_stop "$T/b"

pass "a second root on the same prefix is refused, captures locally, ships nothing and counts it"

# --- the lease taken over behind A's back
now=$(date +%s%6N)
cat >"$T/lease" <<L
[lease]
host=intruder
root=/elsewhere
pid=1
token=00000000-0000-4000-8000-000000000000
acquired=$now
expires=$(( now + 3600000000 ))
L
s3cmd_ put "$T/lease" "s3://$S3_BUCKET/shared/lease" >/dev/null
for _ in $(seq 1 150); do
  grep -q 'lost, shipping stopped' "$T/a.err" && break
  sleep 0.1
done
grep -q "lease of s3://$S3_BUCKET/shared lost, shipping stopped: .*intruder" "$T/a.err" ||
  fail "A did not say it lost the lease: $(cat "$T/a.err")"
for _ in $(seq 1 20); do
  grep -q '^state=lease lost' "$A/.sqlenvfs/replica-status" && break
  sleep 0.1
done
grep -q '^state=lease lost' "$A/.sqlenvfs/replica-status" ||
  fail "A's status: $(cat "$A/.sqlenvfs/replica-status")"
s3cmd_ ls -r "s3://$S3_BUCKET/shared/" | sort >"$T/l0"
ship_write "$A/data/prod/app.db" 100 500
a1=$(ship_backlog_over "$A" 0 "the writer that lost its lease")
sleep 3
s3cmd_ ls -r "s3://$S3_BUCKET/shared/" | sort >"$T/l1"
cmp -s "$T/l0" "$T/l1" || fail "A wrote to the replica after losing its lease: $(diff "$T/l0" "$T/l1")"
s3cmd_ get --force "s3://$S3_BUCKET/shared/lease" "$T/lease.now" >/dev/null
grep -q intruder "$T/lease.now" || fail "the new holder's lease was overwritten: $(cat "$T/lease.now")"
ship_stop "$T/a"
pass "a writer whose lease is taken over stops shipping, says so and counts what waits ($a1 bytes)"

# --- a new root on a prefix another root shipped to and left (its lease
# --- released): refused by the replica's OWNER, whose objects stay as they
# --- are; the first root itself, even with its shipping state lost, goes on
C=$T/c_root
D=$T/d_root
ship_make_root "$C" handover
ship_make_root "$D" handover
ship_start "$C" "$T/c"
ship_write "$C/data/prod/app.db" 50 500
ship_wait_caught_up "$C" handover 30
ship_stop "$T/c"
s3cmd_ ls -r "s3://$S3_BUCKET/handover/" | grep -v ' s3://.*/lease$' | sort >"$T/h0"
ship_start "$D" "$T/d"
ship_write "$D/data/prod/app.db" 80 500
refused "$D" "$T/d.err" "OWNER names another root .*nothing was shipped (give this root its own prefix" \
  "the new root"
d0=$(ship_backlog_over "$D" 0 "the root refused by OWNER")
sleep 2
s3cmd_ ls -r "s3://$S3_BUCKET/handover/" | grep -v ' s3://.*/lease$' | sort >"$T/h1"
cmp -s "$T/h0" "$T/h1" || fail "the new root changed the replica: $(diff "$T/h0" "$T/h1")"
ship_caught_up "$C" handover >/dev/null || fail "the replica is no longer C's: $(ship_caught_up "$C" handover 2>&1)"
ship_stop "$T/d"
pass "a new root on another root's replica is refused by OWNER, changes nothing, counts $d0 bytes"

rm -f "$C/.sqlenvfs/replica-shipped"
ship_start "$C" "$T/c2"
ship_write "$C/data/prod/app.db" 50 500
ship_wait_caught_up "$C" handover 30
grep -q 'no shipping state; .* adopted' "$T/c2.err" || fail "C did not adopt its replica: $(cat "$T/c2.err")"
ship_stop "$T/c2"
pass "the replica's own root, its shipping state lost, adopts it and goes on"

# --- the archiver killed (its lease neither released nor expired, with the
# --- default lease-seconds of 300): the next archiver of the same root
# --- takes the lease over at once and ships what was left
ship_start "$C" "$T/c3"
ship_write "$C/data/prod/app.db" 30 500
ship_wait_caught_up "$C" handover 30
kill -9 "$(cat "$T/c3.pid")"
wait "$(cat "$T/c3.pid")" 2>/dev/null || true
ship_write "$C/data/prod/app.db" 40 500
ship_start "$C" "$T/c4"
ship_wait_caught_up "$C" handover 30
grep -q "lease .*taken over from host .*root $C, pid $(cat "$T/c3.pid") (that process is gone)" \
  "$T/c4.err" || fail "the lease of the killed archiver was not taken over: $(cat "$T/c4.err")"
ship_stop "$T/c4"
pass "after kill -9, the root's next archiver takes its lease over at once"

# --- the same, with the killed archiver left a zombie (its parent has not
# --- reaped it, so its pid still answers): taken over at once all the same
python3 - "$SQLENVFS" "$C" "$T/c5" <<'PY' &
import subprocess, sys, time
p = subprocess.Popen([sys.argv[1], "archive", "--root", sys.argv[2]],
                     stdout=open(sys.argv[3] + ".out", "w"), stderr=open(sys.argv[3] + ".err", "w"))
open(sys.argv[3] + ".pid", "w").write(str(p.pid))
time.sleep(300)  # never reaps it
PY
PARENT=$!
track_pid "$PARENT"
for i in $(seq 1 200); do
  grep -q 'archiver app: capturing' "$T/c5.err" 2>/dev/null && break
  sleep 0.1
done
ship_write "$C/data/prod/app.db" 30 500
ship_wait_caught_up "$C" handover 30
kill -9 "$(cat "$T/c5.pid")"
for i in $(seq 1 50); do
  [ "$(awk '{print $3}' "/proc/$(cat "$T/c5.pid")/stat" 2>/dev/null)" = Z ] && break
  sleep 0.1
done
[ "$(awk '{print $3}' "/proc/$(cat "$T/c5.pid")/stat")" = Z ] || fail "the killed archiver is not a zombie"
ship_write "$C/data/prod/app.db" 40 500
ship_start "$C" "$T/c6"
ship_wait_caught_up "$C" handover 30
grep -q "lease .*taken over from host .*root $C, pid $(cat "$T/c5.pid") (that process is gone)" \
  "$T/c6.err" || fail "the lease of the zombie archiver was not taken over: $(cat "$T/c6.err")"
ship_stop "$T/c6"
kill "$PARENT"
pass "a killed archiver left a zombie: the next archiver takes its lease over at once"

# --- a lease object that is garbage: said so, never its bytes, and the
# --- release that follows said once
s3cmd_ get --force "s3://$S3_BUCKET/handover/lease" "$T/lease.kept" >/dev/null
python3 -c 'import random, sys; random.seed(7); sys.stdout.buffer.write(bytes(random.randrange(256) for _ in range(300)))' > "$T/lease.bad"
s3cmd_ put "$T/lease.bad" "s3://$S3_BUCKET/handover/lease" >/dev/null
"$SQLENVFS" archive --root "$C" > "$T/c7.out" 2> "$T/c7.err" &
echo $! > "$T/c7.pid"
track_pid "$(cat "$T/c7.pid")"
for _ in $(seq 1 150); do
  grep -q 'not a lease' "$T/c7.err" && break
  sleep 0.1
done
grep -q "read lease s3://$S3_BUCKET/handover/lease: not a lease (not the key file a lease is); if no writer" \
  "$T/c7.err" || fail "a garbage lease is not said so: $(cat "$T/c7.err")"
! LC_ALL=C grep -q "[^[:print:][:space:]]" "$T/c7.err" "$C/.sqlenvfs/replica-status" ||
  fail "the garbage lease's bytes are shown: $(cat -v "$T/c7.err" | grep lease)"
kill "$(cat "$T/c7.pid")"
wait "$(cat "$T/c7.pid")" 2>/dev/null || true
! grep -q "release lease: release lease" "$T/c7.err" || fail "said twice: $(grep lease "$T/c7.err")"
s3cmd_ put "$T/lease.kept" "s3://$S3_BUCKET/handover/lease" >/dev/null
pass "a garbage lease object is named, its bytes never shown"

# --- a root whose prefix lies inside a replica (where its archive goes):
# refused, naming that replica. It used to be accepted, and the replica's
# root's next start then stopped shipping for good, taking the other's
# objects for a copy of itself.
N=$T/n_root
ship_make_root "$N" shared/wal_archives/other
ship_start "$N" "$T/n"
refused "$N" "$T/n.err" "lies inside another replica (s3://$S3_BUCKET/shared/OWNER is there)" \
  "a root inside another's replica"
s3cmd_ ls -r "s3://$S3_BUCKET/shared/wal_archives/other/" | grep -q . &&
  fail "the root inside A's replica shipped: $(s3cmd_ ls -r "s3://$S3_BUCKET/shared/wal_archives/other/")"
ship_stop "$T/n"
pass "a root whose prefix lies inside another's replica is refused, and ships nothing"

# --- an upload that its shipping state does not record (the archiver
# --- killed between the PUT and the state's save): the key is there with
# --- this root's very bytes, which counts as shipped, without a rewrite.
W=$T/w_root
W2=$T/w2_root
ship_make_root "$W" split
ship_start "$W" "$T/w"
ship_write "$W/data/prod/app.db" 700 2000
ship_wait_caught_up "$W" split 45
ship_stop "$T/w"
seg=$(ls "$W/backups/prod/wal_archives/app/" | grep '\.seg$' | sort | head -1)
[ "$(ls "$W/backups/prod/wal_archives/app/" | grep -c '\.seg$')" -gt 1 ] ||
  fail "no segment sealed: $(ls "$W/backups/prod/wal_archives/app/")"
s3cmd_ info "s3://$S3_BUCKET/split/wal_archives/app/$seg" | grep -i 'last mod' >"$T/mod0"
python3 - "$W/.sqlenvfs/replica-shipped" "wal_archives/app/$seg" <<'PY'
import sys, zlib
path, key = sys.argv[1], sys.argv[2]
lines = [l for l in open(path).read().splitlines()
         if not l.startswith("end ") and not l.endswith(" " + key)]
body = "".join(l + "\n" for l in lines)
open(path, "w").write(body + "end %08x\n" % zlib.crc32(body.encode()))
PY
grep -q " wal_archives/app/$seg\$" "$W/.sqlenvfs/replica-shipped" && fail "$seg still recorded"
sleep 1.1
ship_start "$W" "$T/w"
for _ in $(seq 1 200); do
  grep -q " wal_archives/app/$seg\$" "$W/.sqlenvfs/replica-shipped" && break
  sleep 0.1
done
grep -q " wal_archives/app/$seg\$" "$W/.sqlenvfs/replica-shipped" ||
  fail "$seg, there with this root's bytes, is not counted as shipped: $(cat "$T/w.err")"
for _ in $(seq 1 50); do [ "$(ship_status_get "$W" state)" = shipping ] && break; sleep 0.1; done
assert_eq "$(ship_status_get "$W" state)" shipping "the state with the root's own upload there"
grep -q 'other bytes' "$T/w.err" && fail "its own upload taken for another writer's: $(cat "$T/w.err")"
s3cmd_ info "s3://$S3_BUCKET/split/wal_archives/app/$seg" | grep -i 'last mod' >"$T/mod1"
cmp -s "$T/mod0" "$T/mod1" || fail "$seg was uploaded again: $(cat "$T/mod0" "$T/mod1")"
pass "an upload not recorded is found there with the same bytes and counted, not rewritten"

# --- two writers of one replica: a copy of the running root (cp -a, a VM
# --- image) that takes the lease once it is gone (removed, or run out on a
# --- clock ahead). Both ship from the same state; the copy's segment
# --- sealed after the first one's has the same key and other bytes. A
# --- write-once object is never overwritten: the copy stops and says so.
ship_wait_caught_up "$W" split 30
cp -a "$W" "$W2"
s3cmd_ rm "s3://$S3_BUCKET/split/lease" >/dev/null
ship_start "$W2" "$T/w2"
for _ in $(seq 1 100); do grep -q 'lease taken' "$T/w2.err" && break; sleep 0.1; done
grep -q 'lease taken' "$T/w2.err" || fail "the copy did not take the removed lease: $(cat "$T/w2.err")"
# The first root seals a segment (1 MiB ones) and ships it whole.
n0=$(ls "$W/backups/prod/wal_archives/app/" | grep -c '\.seg$')
ship_write "$W/data/prod/app.db" 700 2000
n1=$(ls "$W/backups/prod/wal_archives/app/" | grep -c '\.seg$')
[ "$n1" -gt "$n0" ] || fail "the first root sealed no segment ($n0 -> $n1)"
# (Not ship_wait_caught_up: the copy may have shipped a part of its own.)
ls "$W/backups/prod/wal_archives/app/" | grep '\.seg$' | sort | head -n -1 >"$T/segs0"
for _ in $(seq 1 450); do
  s3cmd_ ls "s3://$S3_BUCKET/split/wal_archives/app/" | { grep -o '[0-9]*\.seg$' || true; } |
    sort >"$T/segs1"
  cmp -s "$T/segs0" "$T/segs1" && break
  sleep 0.1
done
cmp -s "$T/segs0" "$T/segs1" ||
  fail "the first root did not ship its sealed segments ($(cat "$T/segs0")): $(cat "$T/segs1")"
# The copy writes other rows, seals the same segment and ships it.
ship_write "$W2/data/prod/app.db" 700 2000
for _ in $(seq 1 300); do
  [ "$(ship_status_get "$W2" state)" = "lease lost" ] && break
  sleep 0.1
done
assert_eq "$(ship_status_get "$W2" state)" "lease lost" "the copy's state once its key collides"
grep -q "is already there with other bytes .*: another writer ships to this replica" \
  "$W2/.sqlenvfs/replica-status" || fail "the copy's status: $(cat "$W2/.sqlenvfs/replica-status")"
grep -q "another writer ships to this replica .*it is not overwritten" "$T/w2.err" ||
  fail "the copy's log does not say so: $(cat "$T/w2.err")"
"$SQLENVFS" list --root "$W2" | grep -q 'app .*lease lost, .*another writer' ||
  fail "the copy's list: $("$SQLENVFS" list --root "$W2")"
# Every whole segment in the replica is still the first root's.
rm -rf "$T/segdl"
mkdir -p "$T/segdl"
for f in $(cat "$T/segs0"); do
  s3cmd_ get --force "s3://$S3_BUCKET/split/wal_archives/app/$f" "$T/segdl/$f" >/dev/null
  cmp -s "$T/segdl/$f" "$W/backups/prod/wal_archives/app/$f" ||
    fail "the replica's $f is no longer the first root's: the copy overwrote it"
done
ship_stop "$T/w2"
ship_stop "$T/w"
pass "a copy writing the same replica stops at its first colliding key, overwriting nothing"
