#!/usr/bin/env python3
"""gguf_ref.py: an independent GGUF header reader (stdlib only: struct + json)
that prints the object `vkinfer inspect --json` prints, so a test can compare
the C loader against a second implementation written from the format spec.
Usage: gguf_ref.py FILE.gguf  (JSON on stdout)
"""
import json
import struct
import sys

TYPES = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22),
         7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 36), 10: ("Q2_K", 256, 84),
         11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210),
         15: ("Q8_K", 256, 292), 24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4), 27: ("I64", 1, 8),
         28: ("F64", 1, 8), 30: ("BF16", 1, 2)}
SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
KV_NAMES = {0: "u8", 1: "i8", 2: "u16", 3: "i16", 4: "u32", 5: "i32", 6: "f32", 7: "bool", 8: "string",
            9: "array", 10: "u64", 11: "i64", 12: "f64"}


class Reader:
    def __init__(self, data):
        self.d, self.p = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.d, self.p)[0]
        self.p += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.take("<Q")
        s = self.d[self.p:self.p + n]
        self.p += n
        return s.decode("utf-8", errors="replace")

    def value(self, t):
        if t in SCALAR:
            return self.take(SCALAR[t])
        if t == 8:
            return self.string()
        if t == 9:
            et, n = self.take("<I"), self.take("<Q")
            return {"array_of": KV_NAMES[et], "items": [self.value(et) for _ in range(n)]}
        raise ValueError("bad kv type %d" % t)


def summarize(v):
    """Arrays longer than 16 become {"array_of": type, "length": n}."""
    if isinstance(v, dict):
        items = v["items"]
        if len(items) > 16:
            return {"array_of": v["array_of"], "length": len(items)}
        return [summarize(x) for x in items]
    return v


def main():
    data = open(sys.argv[1], "rb").read()
    r = Reader(data)
    assert data[:4] == b"GGUF"
    r.p = 4
    version = r.take("<I")
    n_tensors, n_kv = r.take("<Q"), r.take("<Q")
    meta = {}
    for _ in range(n_kv):
        k = r.string()
        meta[k] = r.value(r.take("<I"))
    align = meta.get("general.alignment", 32)
    tensors = []
    for _ in range(n_tensors):
        name = r.string()
        nd = r.take("<I")
        ne = [r.take("<Q") for _ in range(nd)]
        t = r.take("<I")
        off = r.take("<Q")
        tname, bs, ts = TYPES[t]
        n = 1
        for x in ne:
            n *= x
        tensors.append({"name": name, "type": tname, "shape": ne, "offset": off, "bytes": n // bs * ts})
    out = {"format": "gguf", "version": version, "architecture": meta.get("general.architecture", ""),
           "metadata": {k: summarize(v) for k, v in meta.items()}, "tensors": tensors,
           "weight_bytes": sum(t["bytes"] for t in tensors)}
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
