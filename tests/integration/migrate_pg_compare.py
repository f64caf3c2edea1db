#!/usr/bin/env python3
"""Compare a migrated SQLite table with its PostgreSQL source, row by row.

usage: migrate_pg_compare.py PG_CONNINFO SQLITE_DB TABLE

The expected SQLite value of every column is computed inside PostgreSQL with
its own functions (to_char, extract, to_json, encode; helpers in schema chk of
the fixture), not with migrate-pg's conversion code, exported with COPY, and
compared with what Python's sqlite3 reads back: storage class and value.
Prints "compared N rows" or the first mismatches, and exits non-zero on any.
"""
import json
import sqlite3
import subprocess
import sys


def tstz(col, frac):
    return (f"CASE WHEN isfinite({col}) THEN chk.ts({col} AT TIME ZONE 'UTC', '{frac}') || 'Z' "
            f"ELSE {col}::text END")


ARRAY_TSTZ = ("CASE WHEN ats IS NULL THEN NULL ELSE COALESCE((SELECT json_agg("
              + tstz("e", ".US") + " ORDER BY n) FROM unnest(ats) WITH ORDINALITY AS u(e, n)), "
              "'[]')::text END")

# table -> [(sqlite column, kind, expected value as a PostgreSQL text expression)]
TABLES = {
    "everything": ("everything", "everything", [
        ("id", "int", "id::text"),
        ("i2", "int", "i2::text"),
        ("i4", "int", "i4::text"),
        ("i8", "int", "i8::text"),
        ("num", "text", "num::text"),
        ("numf", "text", "numf::text"),
        ("f4", "real", "f4::text"),
        ("f8", "real", "f8::text"),
        ("b", "int", "b::int::text"),
        ("t", "text", "t"),
        ("vc", "text", "vc::text"),
        ("ch", "text", "CASE WHEN ch IS NULL THEN NULL ELSE concat(ch) END"),
        ("nm", "text", "nm::text"),
        ("by", "blob", "encode(by, 'hex')"),
        ("ts", "text", "chk.ts(ts, '.US')"),
        ("ts0", "text", "chk.ts(ts0, '')"),
        ("tstz", "text", tstz("tstz", ".US")),
        ("tstz3", "text", tstz("tstz3", ".MS")),
        ("d", "text", "chk.d(d)"),
        ("tm", "text", "to_char(tm::interval, 'HH24:MI:SS.US')"),
        ("tmtz", "text", "to_char(tmtz::time::interval, 'HH24:MI:SS.US') || "
                         "chk.off(extract(timezone FROM tmtz)::int)"),
        ("iv", "text", "iv::text"),
        ("u", "text", "u::text"),
        ("j", "text", "j::text"),
        ("jb", "text", "jb::text"),
        ("e", "text", "e::text"),
        ("dom", "int", "dom::text"),
        ("ai", "json", "to_json(ai)::text"),
        ("a2", "json", "to_json(a2)::text"),
        ("at", "json", "to_json(at)::text"),
        ("af", "json", "to_json(af)::text"),
        ("an", "json", "to_json(an)::text"),
        ("ab", "json", "to_json(ab)::text"),
        ("ats", "json", ARRAY_TSTZ),
        ("aj", "json", "to_json(aj)::text"),
        ("aby", "json", "to_json(aby)::text"),
        ("au", "json", "to_json(au)::text"),
    ]),
    "orders": ("orders", "orders", [
        ("id", "int", "id::text"),
        ("customer", "text", '"Customer"'),
        ("AMOUNT", "text", "amount::text"),
        ("placed", "text", tstz("placed", ".US")),
    ]),
    "numbers-real": ("bad.numbers", "numbers", [
        ("id", "int", "id::text"),
        ("n", "real", "n::text"),
    ]),
}

ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def copy_field(raw):
    """One field of COPY's text format."""
    if raw == "\\N":
        return None
    if "\\" not in raw:
        return raw
    out, i = [], 0
    while i < len(raw):
        c = raw[i]
        if c == "\\" and i + 1 < len(raw):
            n = raw[i + 1]
            if n in ESCAPES:
                out.append(ESCAPES[n])
                i += 2
                continue
            if n.isdigit():
                j = i + 1
                while j < len(raw) and j < i + 4 and raw[j] in "01234567":
                    j += 1
                out.append(chr(int(raw[i + 1:j], 8)))
                i = j
                continue
            out.append(n)
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def jload(s):
    return json.loads(s, parse_float=str, parse_int=str)


def matches(kind, got, want):
    if want is None:
        return got is None
    if kind == "int":
        return type(got) is int and got == int(want)
    if kind == "real":
        if want == "NaN":
            return got is None
        return type(got) is float and got == float(want)
    if kind == "text":
        return type(got) is str and got == want
    if kind == "blob":
        return type(got) is bytes and got == bytes.fromhex(want)
    if kind == "json":
        return type(got) is str and jload(got) == jload(want)
    raise ValueError(kind)


def main():
    conninfo, db_path, spec_name = sys.argv[1:4]
    pg_table, sq_table, cols = TABLES[spec_name]
    query = "COPY (SELECT {} FROM {} AS src ORDER BY src.id) TO STDOUT".format(
        ", ".join(expr for _, _, expr in cols), pg_table)
    env_opts = "-c extra_float_digits=3 -c IntervalStyle=iso_8601 -c TimeZone=UTC -c DateStyle=ISO"
    out = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", conninfo, "-c", query],
                         check=True, stdout=subprocess.PIPE,
                         env={"PGOPTIONS": env_opts, "PATH": "/usr/bin:/bin"}).stdout
    expected = [[copy_field(f) for f in line.split("\t")]
                for line in out.decode("utf-8").split("\n") if line != ""]

    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    names = ", ".join('"{}"'.format(c.replace('"', '""')) for c, _, _ in cols)
    got = con.execute(f'SELECT {names} FROM "{sq_table}" ORDER BY 1').fetchall()

    bad = 0
    if len(got) != len(expected):
        print(f"row count: sqlite {len(got)}, postgresql {len(expected)}")
        bad += 1
    for want_row, got_row in zip(expected, got):
        for (name, kind, _), want, value in zip(cols, want_row, got_row):
            if not matches(kind, value, want):
                bad += 1
                if bad <= 10:
                    print(f"row id={want_row[0]} column {name}: sqlite {value!r}, expected {want!r}")
    if bad:
        print(f"{bad} mismatches in {spec_name}")
        sys.exit(1)
    print(f"compared {len(got)} rows x {len(cols)} columns of {spec_name}: identical")


if __name__ == "__main__":
    main()
