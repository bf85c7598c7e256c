#!/usr/bin/env python3
"""device_report.py --work DIR --out FILE: the markdown report of
scripts/device-check.sh from the logs it left in DIR (steps.tsv, devices,
op suite, copy bandwidth, and per generated model its `vkinfer inspect
--json` and the VKI_VK_PROFILE tables of its pp and tg benches).

Achieved figures per kernel family, from dispatch counts and the model's
shapes (a llama decoder: 7 matrices per layer, plus the output matrix):
- mat-vec (decode, memory-bound): every dispatch reads one weight matrix,
  on average (layer matrices + output) / (7 L + 1) bytes -> GB/s.
- mat-mat (prompt, compute-bound): 2 x parameters x tokens over the layer
  matrices (plus the output matrix when the pass computes all its rows'
  logits) -> TFLOP/s, against the f16 matrix peak for the coop-matrix
  kernel and the f32 vector peak for the tiled one.
Peaks come from the table below (public spec sheets, dense figures) by
device name, else the measured copy bandwidth and no compute peak.
"""
import argparse
import datetime
import json
import os
import re
import subprocess

# name substring: (GB/s, f16 matrix TFLOP/s dense, f32 vector TFLOP/s)
PEAKS = [
    ("7900 XTX", (960, 123, 61)),
    ("7900 XT", (800, 103, 52)),
    ("7900 GRE", (576, 92, 46)),
    ("H200", (4800, 989, 67)),
    ("H100", (3350, 989, 67)),  # SXM; PCIe: 2000 GB/s, 756
    ("A100", (2039, 312, 19.5)),
    ("RTX 4090", (1008, 165, 83)),
    ("L40S", (864, 362, 92)),
]


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return None


def steps(work):
    rows = []
    for line in (read(os.path.join(work, "steps.tsv")) or "").splitlines():
        parts = line.split("\t")
        if len(parts) >= 4:
            rows.append(parts[:4])
    return rows


def device_name(devices_log):
    """The name of the device vkinfer picks (marked '<- auto')."""
    for line in (devices_log or "").splitlines():
        m = re.match(r"\d+: (.*?) \((\w+)\)\s+<- auto", line)
        if m:
            return m.group(1), m.group(2)
    return None, None


def profile(log):
    """{variant: (dispatches, total ms, share %)} from a VKI_VK_PROFILE table."""
    out = {}
    for line in (log or "").splitlines():
        m = re.match(r"\s+(\S+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)%", line)
        if m:
            out[m.group(1)] = (int(m.group(2)), float(m.group(3)), float(m.group(5)))
    return out


def bench_json(log):
    for line in (log or "").splitlines():
        if line.startswith('{"build_commit"'):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def shapes(inspect_log):
    """Layer count and bytes/parameters of the layer and output matrices."""
    try:
        d = json.loads(inspect_log or "")
    except ValueError:
        return None
    md = d.get("metadata", {})
    arch = d.get("architecture", "llama")
    n_layer = md.get(arch + ".block_count")
    s = {"L": n_layer, "Wl": 0, "Pl": 0, "Wo": 0, "Po": 0}
    for t in d.get("tensors", []):
        if len(t["shape"]) < 2:
            continue
        p = 1
        for n in t["shape"]:
            p *= n
        if t["name"].startswith("blk."):
            s["Wl"] += t["bytes"]
            s["Pl"] += p
        elif t["name"] == "output.weight":
            s["Wo"] += t["bytes"]
            s["Po"] += p
    if not s["Wo"]:  # tied: logits from the token embeddings
        for t in d.get("tensors", []):
            if t["name"] == "token_embd.weight":
                s["Wo"], s["Po"] = t["bytes"], t["shape"][0] * t["shape"][1]
    return s if n_layer else None


def kernel_table(prof, s, tokens, peak, kind):
    """Markdown rows: each variant's share and, for the mat-vec and mat-mat
    families, achieved GB/s or TFLOP/s and the share of the peak."""
    rows = []
    per_pass = 7 * s["L"] + 1
    n_mm = sum(v[0] for k, v in prof.items() if k.startswith("matmul_") and "_id_" not in k)
    mm_out = n_mm and n_mm % (7 * s["L"]) != 0  # the output matrix ran as a mat-mat too
    mm_flop = 2.0 * tokens * (s["Pl"] + (s["Po"] if mm_out else 0))
    for var, (n, ms, share) in sorted(prof.items(), key=lambda kv: -kv[1][1]):
        ach = pk = ""
        if var.startswith("matvec_") and "_id_" not in var and ms > 0:
            gbs = n * (s["Wl"] + s["Wo"]) / per_pass / (ms * 1e-3) / 1e9
            ach = "%.3g GB/s" % gbs
            if peak and peak[0]:
                pk = "%.3g%% of %.3g GB/s" % (100 * gbs / peak[0], peak[0])
        elif var.startswith("matmul_") and "_id_" not in var and ms > 0 and n_mm and kind == "pp":
            tf = mm_flop * n / n_mm / (ms * 1e-3) / 1e12
            ach = "%.3g TFLOP/s" % tf
            roof = None
            if peak:
                roof = (peak[1], "f16 matrix") if var.startswith("matmul_cm_") else (peak[2], "f32 vector")
            if roof and roof[0]:
                pk = "%.3g%% of %.3g (%s)" % (100 * tf / roof[0], roof[0], roof[1])
        rows.append("| %s | %d | %.2f | %.1f%% | %s | %s |" % (var, n, ms, share, ach, pk))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--pp", type=int, default=512, help="prompt tokens of the pp bench")
    ap.add_argument("--reps", type=int, default=3, help="its repeats (after one warmup)")
    a = ap.parse_args()
    w = a.work
    st = steps(w)
    devlog = read(os.path.join(w, "devices.log"))
    name, dtype = device_name(devlog)
    peak, peak_src = None, ""
    for sub, p in PEAKS:
        if name and sub.lower() in name.lower():
            peak, peak_src = p, "table entry '%s'" % sub
            break
    copy = None
    m = re.search(r"perf CPY.*?: ([\d.]+) us/run, ([\d.]+) GB/s", read(os.path.join(w, "copy-bandwidth.log")) or "")
    if m:
        copy = float(m.group(2))
    if not peak and copy:
        peak, peak_src = (copy, 0, 0), "measured copy bandwidth (device not in the table; no compute peak)"
    # a bundle built elsewhere names its commit (the copy there has no .git)
    commit = os.environ.get("VKI_BUILD_COMMIT", "")
    if not commit:
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        except OSError:
            commit = "?"

    L = ["# vkinfer device check", ""]
    L.append("- date: %s UTC, commit %s" % (datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"), commit or "?"))
    L.append("- device: %s (%s)" % (name or "none found", dtype or "-"))
    if dtype == "cpu":
        L.append("- **this is a CPU Vulkan driver (lavapipe), not a GPU**: the figures below exercise the script and"
                 " kernels only; they say nothing about GPU performance")
    if peak:
        L.append("- peak: %.3g GB/s, %s TFLOP/s f16 matrix, %s TFLOP/s f32 (%s)" % (
            peak[0], peak[1] or "unknown", peak[2] or "unknown", peak_src))
    if copy:
        L.append("- measured copy bandwidth (test_ops --perf CPY, 64 MiB each way): %.3g GB/s" % copy)
    L += ["", "## Steps", "", "| step | status | s | note |", "|---|---|---:|---|"]
    for r in st:
        L.append("| %s | %s | %s | %s |" % (r[0], r[1], r[2], r[3].replace("|", "/")))
    not_run = [r for r in st if r[1] not in ("passed",)]
    if not_run:
        L += ["", "Not run, skipped or failed: " + "; ".join("%s (%s)" % (r[0], r[1]) for r in not_run)]
    if devlog:
        L += ["", "## Devices", "", "```", devlog.strip(), "```"]
    for log in ("op-suite", "op-suite-coopemu"):
        t = read(os.path.join(w, log + ".log"))
        if t:
            summ = [ln for ln in t.splitlines() if re.match(r"vulkan \(", ln) or "FAIL" in ln][:20]
            L += ["", "## %s" % log, "", "```"] + summ + ["```"]
    for f in sorted(os.listdir(w)):
        m = re.match(r"inspect-(\w+)\.log$", f)
        if not m:
            continue
        mdl = m.group(1)
        s = shapes(read(os.path.join(w, f)))
        if not s:
            continue
        L += ["", "## Model %s: %d layers, %.3g GB of layer matrices, %.3g GB output matrix" % (
            mdl, s["L"], s["Wl"] / 1e9, s["Wo"] / 1e9)]
        for kind in ("pp", "tg"):
            log = read(os.path.join(w, "bench-%s-%s.log" % (mdl, kind)))
            if log is None:
                L += ["", "%s: not run" % kind]
                continue
            bj = bench_json(log)
            if bj:
                L += ["", "| test | tokens/s (median) | min | max |", "|---|---:|---:|---:|"]
                for r in bj.get("results", []):
                    L.append("| %s | %.2f | %.2f | %.2f |" % (r.get("test"), r.get("ts_median", 0),
                                                            r.get("ts_min", 0), r.get("ts_max", 0)))
            prof = profile(log)
            if not prof:
                L += ["", "%s: no VKI_VK_PROFILE table (no timestamps, or the bench failed)" % kind]
                continue
            tokens = a.pp * (a.reps + 1) if kind == "pp" else 0  # the bench's warmup run included
            L += ["", "### %s kernels (VKI_VK_PROFILE)" % kind, "",
                  "| kernel | dispatches | total ms | share | achieved | of peak |", "|---|---:|---:|---:|---|---|"]
            L += kernel_table(prof, s, tokens, peak, kind)
    with open(a.out, "w") as fo:
        fo.write("\n".join(L) + "\n")
    print("\n".join(L))


if __name__ == "__main__":
    main()
