#!/usr/bin/env python3
"""Populate a replica from a local root with s3cmd, an independent client,
following the replica layout (docs/REPLICA.md):

    replica_push.py ROOT s3://bucket/prefix S3CMD_CONFIG STAGE_DIR [--parts N]
                    [--no-blocks]

FORMAT; every backup's and snapshot's database files with their block
checksum lists (<db>.db.blocks; not with --no-blocks, as an older shipper
wrote them), then its MANIFEST (last); every sealed segment whole with its .idx (and .sum); the last
segment when it is not sealed as N parts (.seg.part-<A>-<B>, 16-digit
offsets, contiguous from 0, each ending on a record boundary); alive and
PRUNED. STAGE_DIR is a scratch directory (emptied first).
"""
import os
import shutil
import struct
import subprocess
import sys
import zlib

SEG_HEADER = 64
REC_HEADER = 96


def records(data):
    """Offsets of the record boundaries (after the header, each whole record)."""
    pos, out = SEG_HEADER, [SEG_HEADER]
    last_type = None
    while pos + REC_HEADER <= len(data):
        (magic, rtype, _flags, length) = struct.unpack_from("<IHHQ", data, pos)
        if magic != 0x52415153 or length < REC_HEADER + 8 or pos + length > len(data):
            break
        pos += length
        last_type = rtype
        out.append(pos)
    return out, last_type


def block_list(data, block_size=64 * 1024):
    """The block checksum list of a database file (docs/REPLICA.md)."""
    crcs = [zlib.crc32(data[i:i + block_size]) for i in range(0, len(data), block_size)]
    out = struct.pack("<16sIIQI", b"sqlenvfs-blocks\n", 1, block_size, len(data), len(crcs))
    out += struct.pack("<%dI" % len(crcs), *crcs)
    return out + struct.pack("<I", zlib.crc32(out))


def main():
    root, url, cfg, stage = sys.argv[1:5]
    nparts = int(sys.argv[sys.argv.index("--parts") + 1]) if "--parts" in sys.argv else 3
    src = os.path.join(root, "backups", "prod")
    shutil.rmtree(stage, ignore_errors=True)
    first = os.path.join(stage, "first")
    last = os.path.join(stage, "last")
    os.makedirs(first)
    os.makedirs(last)
    with open(os.path.join(first, "FORMAT"), "w") as f:
        f.write("sqlenvfs-replica 1\n")

    def put(base, rel, data=None, path=None):
        dst = os.path.join(base, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if data is not None:
            with open(dst, "wb") as f:
                f.write(data)
        else:
            shutil.copyfile(path, dst)

    for kind in ("daily", "snapshots"):
        d = os.path.join(src, kind)
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            if name.startswith("."):
                continue
            for fn in sorted(os.listdir(os.path.join(d, name))):
                p = os.path.join(d, name, fn)
                put(last if fn == "MANIFEST" else first, "%s/%s/%s" % (kind, name, fn), path=p)
                if fn.endswith(".db") and "--no-blocks" not in sys.argv:
                    put(first, "%s/%s/%s.blocks" % (kind, name, fn),
                        data=block_list(open(p, "rb").read()))
    wd = os.path.join(src, "wal_archives")
    for db in sorted(os.listdir(wd)) if os.path.isdir(wd) else []:
        segs = sorted(f for f in os.listdir(os.path.join(wd, db)) if f.endswith(".seg"))
        for fn in os.listdir(os.path.join(wd, db)):
            if fn in ("alive", "PRUNED"):
                put(first, "wal_archives/%s/%s" % (db, fn), path=os.path.join(wd, db, fn))
        for i, seg in enumerate(segs):
            p = os.path.join(wd, db, seg)
            data = open(p, "rb").read()
            bounds, last_type = records(data)
            num = seg[:-4]
            if last_type == 4 or i < len(segs) - 1:
                put(first, "wal_archives/%s/%s" % (db, seg), data=data)
                for ext in (".idx", ".sum"):
                    q = os.path.join(wd, db, num + ext)
                    if os.path.exists(q):
                        put(last, "wal_archives/%s/%s%s" % (db, num, ext), path=q)
                continue
            # Unsealed: parts ending on record boundaries, contiguous from 0.
            end = bounds[-1]
            cuts = [0]
            n = len(bounds) - 1  # records
            for k in range(1, nparts):
                c = bounds[1 + (n - 1) * k // nparts] if n > 1 else end
                if cuts[-1] < c < end:
                    cuts.append(c)
            cuts.append(end)
            for a, b in zip(cuts, cuts[1:]):
                put(first, "wal_archives/%s/%s.seg.part-%016d-%016d" % (db, num, a, b),
                    data=data[a:b])
    for base in (first, last):
        if os.listdir(base):
            subprocess.run(["s3cmd", "-c", cfg, "--no-progress", "-q", "put", "--recursive",
                            base + "/", url.rstrip("/") + "/"], check=True)


if __name__ == "__main__":
    main()
