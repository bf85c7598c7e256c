#!/usr/bin/env python3
"""compare_inspect.py VKINFER FILE...: runs `vkinfer inspect --json` and the
independent reader gguf_ref.py on each GGUF file and compares format,
version, architecture, every metadata value and the whole tensor table.
Exit 0 when all agree, 1 with the differences listed otherwise."""
import json
import math
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def same(a, b, path, errs):
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
            errs.append("%s: %r vs %r" % (path, a, b))
        elif not (a == b or math.isclose(a, b, rel_tol=1e-7, abs_tol=1e-30)):
            errs.append("%s: %r vs %r" % (path, a, b))
    elif isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            errs.append("%s: keys differ: %s" % (path, sorted(set(a) ^ set(b))[:10]))
        for k in set(a) & set(b):
            same(a[k], b[k], path + "." + k, errs)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            errs.append("%s: length %d vs %d" % (path, len(a), len(b)))
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, "%s[%d]" % (path, i), errs)
    elif type(a) != type(b) or a != b:
        errs.append("%s: %r vs %r" % (path, a, b))


def main():
    vkinfer, files = sys.argv[1], sys.argv[2:]
    bad = 0
    for f in files:
        got = subprocess.run([vkinfer, "inspect", f, "--json"], capture_output=True, text=True)
        if got.returncode != 0:
            print("FAIL %s: vkinfer exited %d: %s" % (f, got.returncode, got.stderr.strip()))
            bad += 1
            continue
        mine = json.loads(got.stdout)
        ref = json.loads(subprocess.run([sys.executable, os.path.join(HERE, "gguf_ref.py"), f],
                                        capture_output=True, text=True, check=True).stdout)
        errs = []
        same(mine, ref, "$", errs)
        if not ref["tensors"]:
            errs.append("reference reads no tensors: the comparison would prove nothing")
        if errs:
            bad += 1
            print("FAIL %s:\n  %s" % (f, "\n  ".join(errs[:20])))
        else:
            print("ok   %s: %d tensors, %d keys" % (f, len(ref["tensors"]), len(ref["metadata"])))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
