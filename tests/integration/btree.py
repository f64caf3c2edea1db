#!/usr/bin/env python3
"""Read a table's b-tree straight from an SQLite file (SQLite file format,
section 1.6 "B-tree Pages"), independently of SQLite, so that tests can know
which rows live under which page before they damage it.

  btree.py interior DB TABLE        an interior page of TABLE that is a child
                                    of the root (prints: pgno)
  btree.py rowids DB TABLE [--skip-page P]... [--max-page N]
                                    the rowids reachable from the root without
                                    entering page P or any page above N
                                    (one per line, sorted)
  btree.py leaf DB TABLE ROWID      the leaf page holding ROWID and the rowids
                                    on it (prints: pgno rowid rowid ...)
  btree.py freelist DB              the freelist trunk pages and leaf pages
                                    (prints: trunk|leaf pgno, one per line)
  btree.py interior-for DB TABLE ROWID
                                    the interior page under the root whose
                                    keys bound ROWID (prints: pgno)
  btree.py freed-rowids DB          the rowids on freelist leaf pages that
                                    still read as table leaves (one per line)
"""
import sqlite3
import struct
import sys


def varint(buf, i):
    v = 0
    for k in range(8):
        b = buf[i + k]
        v = (v << 7) | (b & 0x7F)
        if b < 0x80:
            return v, i + k + 1
    return (v << 8) | buf[i + 8], i + 9


class File:
    def __init__(self, path, root_from=None):
        with open(path, "rb") as f:
            self.data = f.read()
        ps = struct.unpack(">H", self.data[16:18])[0]
        self.ps = 65536 if ps == 1 else ps
        self.n_pages = len(self.data) // self.ps

    def page(self, pgno):
        return self.data[(pgno - 1) * self.ps: pgno * self.ps]

    def children(self, pgno):
        """(kind, list): ('interior', child pgnos) or ('leaf', rowids)."""
        pg = self.page(pgno)
        off = 100 if pgno == 1 else 0
        kind = pg[off]
        ncell = struct.unpack(">H", pg[off + 3: off + 5])[0]
        if kind == 0x05:
            ptrs = off + 12
            kids = []
            for c in range(ncell):
                cp = struct.unpack(">H", pg[ptrs + 2 * c: ptrs + 2 * c + 2])[0]
                kids.append(struct.unpack(">I", pg[cp: cp + 4])[0])
            kids.append(struct.unpack(">I", pg[off + 8: off + 12])[0])
            return "interior", kids
        if kind == 0x0D:
            ptrs = off + 8
            rowids = []
            for c in range(ncell):
                cp = struct.unpack(">H", pg[ptrs + 2 * c: ptrs + 2 * c + 2])[0]
                _, i = varint(pg, cp)
                rowid, _ = varint(pg, i)
                if rowid >= 1 << 63:
                    rowid -= 1 << 64
                rowids.append(rowid)
            return "leaf", rowids
        raise ValueError("page %d is not a table b-tree page (type %d)" % (pgno, kind))

    def rowids(self, root, skip=(), max_page=None):
        out = []
        stack = [root]
        while stack:
            p = stack.pop()
            if p in skip or (max_page is not None and p > max_page):
                continue
            kind, items = self.children(p)
            if kind == "interior":
                stack.extend(items)
            else:
                out.extend(items)
        return sorted(out)

    def keys(self, pgno):
        """The keys of the cells of table interior page pgno."""
        pg = self.page(pgno)
        off = 100 if pgno == 1 else 0
        ncell = struct.unpack(">H", pg[off + 3: off + 5])[0]
        out = []
        for c in range(ncell):
            cp = struct.unpack(">H", pg[off + 12 + 2 * c: off + 14 + 2 * c])[0]
            out.append(varint(pg, cp + 4)[0])
        return out

    def freelist(self):
        trunk = struct.unpack(">I", self.data[32:36])[0]
        trunks, leaves = [], []
        while trunk:
            trunks.append(trunk)
            pg = self.page(trunk)
            n = struct.unpack(">I", pg[4:8])[0]
            leaves.extend(struct.unpack(">I", pg[8 + 4 * k: 12 + 4 * k])[0] for k in range(n))
            trunk = struct.unpack(">I", pg[0:4])[0]
        return trunks, leaves


def root_of(path, table):
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return con.execute("SELECT rootpage FROM sqlite_schema WHERE name = ?", (table,)).fetchone()[0]
    finally:
        con.close()


def main(argv):
    cmd = argv[1]
    if cmd == "interior":
        path, table = argv[2], argv[3]
        f = File(path)
        kind, kids = f.children(root_of(path, table))
        for k in kids[1:] + kids[:1]:  # prefer one that is not the first
            if f.children(k)[0] == "interior":
                print(k)
                return 0
        print("no interior page under the root of %s" % table, file=sys.stderr)
        return 1
    if cmd == "rowids":
        path, table = argv[2], argv[3]
        skip, max_page = set(), None
        rest = argv[4:]
        while rest:
            if rest[0] == "--skip-page":
                skip.add(int(rest[1]))
            elif rest[0] == "--max-page":
                max_page = int(rest[1])
            rest = rest[2:]
        f = File(path)
        for r in f.rowids(root_of(path, table), skip, max_page):
            print(r)
        return 0
    if cmd == "leaf":
        path, table, want = argv[2], argv[3], int(argv[4])
        f = File(path)
        stack = [root_of(path, table)]
        while stack:
            p = stack.pop()
            kind, items = f.children(p)
            if kind == "interior":
                stack.extend(items)
            elif want in items:
                print(p, *items)
                return 0
        print("no leaf of %s holds rowid %d" % (table, want), file=sys.stderr)
        return 1
    if cmd == "freelist":
        trunks, leaves = File(argv[2]).freelist()
        for t in trunks:
            print("trunk", t)
        for p in leaves:
            print("leaf", p)
        return 0
    if cmd == "interior-for":
        path, table, want = argv[2], argv[3], int(argv[4])
        f = File(path)
        root = root_of(path, table)
        kind, kids = f.children(root)
        keys = f.keys(root)
        i = next((k for k, key in enumerate(keys) if want <= key), len(keys))
        if f.children(kids[i])[0] != "interior":
            print("the child of the root bounding %d is a leaf" % want, file=sys.stderr)
            return 1
        print(kids[i])
        return 0
    if cmd == "freed-rowids":
        f = File(argv[2])
        out = []
        for p in f.freelist()[1]:
            if f.page(p)[0] == 0x0D:
                out.extend(f.children(p)[1])
        for r in sorted(out):
            print(r)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
