#!/usr/bin/env python3
"""Compare a replica downloaded into a directory (by s3cmd, an independent
client) with the root's backups/prod/ it was shipped from, following the
layout of docs/REPLICA.md. Used by the ship_* tests; not a tool for users.

  ship_check.py LOCAL REMOTE [--complete] [--state FILE] [--parts-left]

Checks: FORMAT; every segment but the last is in the replica whole and
byte-equal with its index, and has no parts left; the last one is there
whole, or as parts contiguous from 0, each ending on a record boundary of
the local archive, whose bytes are the local segment's prefix (with
--complete: all of it); every backup and snapshot is there, byte-equal,
with its MANIFEST, and each database file with its block checksum list
(<db>.db.blocks, equal to one computed here); the replica holds no copy without a MANIFEST and no
part that overlaps another; with --state, every object the shipping state
FILE counts as shipped is in the replica with that size. With --parts-left,
parts beside a segment shipped whole are allowed (a key that may not
delete). Prints what it checked; exits 1 on the first difference, naming
it."""
import glob
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import archive_dump  # noqa: E402
import replica_push  # noqa: E402

PART = re.compile(r"^(\d{16}\.seg)\.part-(\d{16})-(\d{16})$")


def fail(msg):
    print("ship_check: " + msg, file=sys.stderr)
    sys.exit(1)


def read(p):
    with open(p, "rb") as f:
        return f.read()


def main():
    local, remote = sys.argv[1], sys.argv[2]
    complete = "--complete" in sys.argv[3:]
    n_sealed = n_parts = n_copies = 0
    if read(os.path.join(remote, "FORMAT")) != b"sqlenvfs-replica 1\n":
        fail("FORMAT is missing or wrong")
    for ldir in sorted(glob.glob(os.path.join(local, "wal_archives", "*"))):
        db = os.path.basename(ldir)
        rdir = os.path.join(remote, "wal_archives", db)
        segs = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ldir, "*.seg")))
        if not segs:
            continue
        rnames = os.listdir(rdir) if os.path.isdir(rdir) else []
        parts = {}
        for n in rnames:
            m = PART.match(n)
            if m:
                parts.setdefault(m.group(1), []).append((int(m.group(2)), int(m.group(3)), n))
        ends = {}
        for r in archive_dump.records(ldir):
            ends.setdefault(os.path.basename(r["segment"]), set()).add(r["offset"] + r["length"])
        for i, seg in enumerate(segs):
            lbytes = read(os.path.join(ldir, seg))
            last = i == len(segs) - 1
            if seg in rnames:
                if read(os.path.join(rdir, seg)) != lbytes:
                    fail("%s/%s differs from the local segment" % (db, seg))
                idx = seg[:-4] + ".idx"
                if idx not in rnames or read(os.path.join(rdir, idx)) != read(os.path.join(ldir, idx)):
                    fail("%s/%s is missing or differs" % (db, idx))
                if seg in parts and "--parts-left" not in sys.argv[3:]:
                    fail("%s/%s is shipped whole but its parts are still there: %s"
                         % (db, seg, [p[2] for p in parts[seg]]))
                n_sealed += 1
                continue
            if not last:
                fail("%s/%s (sealed locally) is not in the replica" % (db, seg))
            got = sorted(parts.get(seg, []))
            at = 0
            for a, b, name in got:
                if a != at:
                    fail("%s/%s: part %s does not start where the one before ends (%d)"
                         % (db, seg, name, at))
                if b not in ends.get(seg, set()):
                    fail("%s/%s: part %s does not end on a record boundary" % (db, seg, name))
                data = read(os.path.join(rdir, name))
                if len(data) != b - a or data != lbytes[a:b]:
                    fail("%s/%s: part %s differs from the local bytes [%d, %d)" % (db, seg, name, a, b))
                at = b
                n_parts += 1
            if complete and at != len(lbytes):
                fail("%s/%s: the replica's parts end at %d, the local segment at %d"
                     % (db, seg, at, len(lbytes)))
    for kind in ("daily", "snapshots"):
        for cdir in sorted(glob.glob(os.path.join(local, kind, "*"))):
            name = os.path.basename(cdir)
            if name.startswith("."):
                continue
            rc = os.path.join(remote, kind, name)
            for f in sorted(os.listdir(cdir)):
                rp = os.path.join(rc, f)
                if not os.path.isfile(rp) or read(rp) != read(os.path.join(cdir, f)):
                    fail("%s/%s/%s is missing from the replica or differs" % (kind, name, f))
                if f.endswith(".db"):
                    want = replica_push.block_list(read(os.path.join(cdir, f)))
                    if not os.path.isfile(rp + ".blocks") or read(rp + ".blocks") != want:
                        fail("%s/%s/%s.blocks is missing from the replica or differs from the "
                             "block list of the local file" % (kind, name, f))
            n_copies += 1
        for rc in sorted(glob.glob(os.path.join(remote, kind, "*"))):
            if not os.path.isfile(os.path.join(rc, "MANIFEST")):
                fail("%s in the replica has no MANIFEST" % rc)
    n_state = 0
    if "--state" in sys.argv:
        lines = read(sys.argv[sys.argv.index("--state") + 1]).decode().splitlines()
        for line in lines[2:-1]:
            if line.startswith("intent "):
                continue
            size, key = line.split(" ", 1)
            rp = os.path.join(remote, key)
            if key in ("alive",) or key.endswith("/alive"):
                continue
            if not os.path.isfile(rp) or os.path.getsize(rp) != int(size):
                fail("the shipping state counts %s (%s bytes) as shipped, but the replica %s"
                     % (key, size, "has %d bytes" % os.path.getsize(rp) if os.path.isfile(rp)
                                   else "does not have it"))
            n_state += 1
    print("sealed=%d parts=%d copies=%d state=%d" % (n_sealed, n_parts, n_copies, n_state))


main()
