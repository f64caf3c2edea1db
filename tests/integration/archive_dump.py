#!/usr/bin/env python3
"""Print the records of a WAL archive directory from its index files
(docs/ARCHIVE.md), one line each: segment, offset, seq, type, time, aux time,
pages. Used by the tests to find records; not a tool for users."""
import glob
import os
import struct
import sys

TYPES = {1: "COMMIT", 2: "GAP", 3: "OUTAGE", 4: "SEAL"}


def records(d):
    for idx in sorted(glob.glob(os.path.join(d, "*.idx"))):
        data = open(idx, "rb").read()
        seg = idx[:-4] + ".seg"
        for off in range(32, len(data) - 111, 112):
            e = data[off:off + 112]
            (magic, typ, flags, length, seq, t, aux, ps, dbp, n) = struct.unpack_from(
                "<IHHQQqqIII", e, 0)
            (rec_off,) = struct.unpack_from("<Q", e, 96)
            yield dict(segment=seg, offset=rec_off, length=length, seq=seq, type=TYPES.get(typ, typ),
                       time=t / 1e6, aux=aux / 1e6, page_size=ps, db_pages=dbp, n_pages=n)


if __name__ == "__main__":
    for r in records(sys.argv[1]):
        print("%s %d %d %s %.6f %.6f %d" % (os.path.basename(r["segment"]), r["offset"], r["seq"],
                                           r["type"], r["time"], r["aux"], r["n_pages"]))
