#!/usr/bin/env bash
# Power cuts: a short seeded run of crash_power.py (tests/crashfs holds the
# filesystem that forgets what was not fsync'd). Every cut is checked: no
# acknowledged commit lost in production, no commit the archiver published
# as durable missing from a restore, no torn backup, snapshot, restore or
# pitr file taken as whole; then a few cuts during a prune with a replica
# (no removal from the replica lost), while segments are sealed, after the
# archiver was killed, and during init --force (the old databases whole in
# one place, the next command leaves the new pair and no temporaries). The
# fixed seed replays the same cuts each run;
# scripts/crash.sh runs the long one. CRASH_TMP=DIR keeps the run's root
# and logs there (they are removed with $T otherwise).
source "$SRCDIR/tests/integration/lib.sh"
: "${CRASHFS:?CRASHFS must point at the built crashfs binary}"

python3 "$SRCDIR/tests/integration/crash_power.py" run --sqlenvfs "$SQLENVFS" \
  --crashfs "$CRASHFS" --tmp "${CRASH_TMP:-$T/crash}" --cuts "${CRASH_CUTS:-36}" --seed "${CRASH_SEED:-1}" \
  || fail "a power cut broke a durability promise (see above)"
pass "power cuts survived"

# The operations run only when asked for, on a young root of their own
# (cheaper than after the cycles above, whose root has grown).
python3 "$SRCDIR/tests/integration/crash_power.py" run --sqlenvfs "$SQLENVFS" \
  --crashfs "$CRASHFS" --tmp "${CRASH_TMP:-$T/crash}-extra" --cuts 0 \
  --extra-cuts "${CRASH_EXTRA_CUTS:-3}" --segment-records 150 --seed "${CRASH_SEED:-1}" \
  || fail "a power cut broke a durability promise (see above)"
pass "power cuts during a prune with a replica, a seal, after a killed archiver, during init --force survived"
