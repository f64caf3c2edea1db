#!/usr/bin/env python3
"""Build-time helper: write a C file defining `const char NAME[]` holding the
bytes of a text file, so the binary carries it (used for the demo schema)."""
import sys

src, out, name = sys.argv[1], sys.argv[2], sys.argv[3]
data = open(src, "rb").read()
with open(out, "w") as f:
    f.write(f"/* Generated from {src.rsplit('/', 1)[-1]} at build time; do not edit. */\n")
    f.write(f"const char {name}[] =\n")
    for i in range(0, len(data), 60):
        chunk = data[i:i + 60]
        f.write('  "' + "".join(f"\\x{b:02x}" for b in chunk) + '"\n')
    f.write(";\n")
