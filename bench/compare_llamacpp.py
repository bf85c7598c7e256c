#!/usr/bin/env python3
"""Same-run comparison of vkinfer-bench with llama.cpp's llama-bench.

Runs both on the same GGUF files, alternating (vkinfer then llama.cpp, then
the other way round in the next round, so neither always runs on a warmer or
busier machine), and prints one markdown table of medians over all rounds with
the ratio vkinfer / llama.cpp for prompt processing (pp) and generation (tg).

llama.cpp is not built by this project: give the folder that holds a
llama-bench binary you built from its public source with --llama-cpp-bin or
LLAMA_CPP_BIN. Without it, only vkinfer's figures are printed. Serving
(completions and embeddings through one load client, against llama-server)
is bench/compare_serving.py.

Example:
  python3 bench/compare_llamacpp.py --vkinfer-bench build/bench/vkinfer-bench \\
      --llama-cpp-bin /path/to/llama.cpp/build/bin -m model-q4_0.gguf -m model-q8_0.gguf \\
      -p 512 -n 128 --threads 2 --rounds 2 -r 3
"""
import argparse
import json
import os
import statistics
import subprocess
import sys


def depth_args(d):
    return ["-d", str(d)] if d > 0 else []


def run_vkinfer(exe, model, p, n, threads, reps, membw, d=0):
    """Returns {'pp': [t/s], 'tg': [t/s], 'bound': [t/s]} from one vkinfer-bench
    call; 'bound' (with membw) is the tg bound of the triad measured in it."""
    cmd = [exe, "-m", model, "-p", str(p), "-n", str(n), "-r", str(reps), "--threads", str(threads), "-o", "json"]
    cmd += depth_args(d)
    if membw:
        cmd.append("--membw")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    res = {"pp": [], "tg": [], "bound": []}
    for r in json.loads(out)["results"]:
        kind = "pp" if r["test"].startswith("pp") else "tg" if r["test"].startswith("tg") else None
        if kind:
            res[kind].append(r["ts_median"])
        if kind == "tg" and r.get("bw_bound_ts"):
            res["bound"].append(r["bw_bound_ts"])
    return res


def run_llamacpp(bindir, model, p, n, threads, reps, d=0):
    exe = os.path.join(bindir, "llama-bench")
    cmd = [exe, "-m", model, "-p", str(p), "-n", str(n), "-r", str(reps), "-t", str(threads), "-o", "json"]
    cmd += depth_args(d)  # llama-bench has -d (--n-depth) since mid-2025; older builds refuse it
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    res = {"pp": [], "tg": []}
    commit = ""
    for r in json.loads(out):
        commit = r.get("build_commit", commit)
        samples = r.get("samples_ts") or [r["avg_ts"]]
        kind = "pp" if r["n_prompt"] > 0 and r["n_gen"] == 0 else "tg" if r["n_gen"] > 0 else None
        if kind:
            res[kind].append(statistics.median(samples))
    return res, commit


def fmt(v):
    return "–" if v is None else ("%.1f" % v if v < 1000 else "%.0f" % v)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", action="append", required=True, help="GGUF file (repeatable)")
    ap.add_argument("--vkinfer-bench", default="build/bench/vkinfer-bench")
    ap.add_argument("--llama-cpp-bin", default=os.environ.get("LLAMA_CPP_BIN", ""))
    ap.add_argument("-p", type=int, default=512, help="prompt tokens (pp)")
    ap.add_argument("-n", type=int, default=128, help="generated tokens (tg)")
    ap.add_argument("-d", "--depth", type=int, default=0,
                    help="tokens already in the cache before each test (both engines; llama-bench's -d)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    ap.add_argument("-r", "--reps", type=int, default=3, help="repeats per run")
    ap.add_argument("--membw", action="store_true",
                    help="vkinfer-bench measures memory bandwidth (STREAM triad) in each of its runs: the table "
                         "adds both engines' tg as a share of the bound it gives (triad / weight bytes per token)")
    a = ap.parse_args()
    peer = a.llama_cpp_bin and os.path.exists(os.path.join(a.llama_cpp_bin, "llama-bench"))
    if a.llama_cpp_bin and not peer:
        sys.exit("compare_llamacpp: no llama-bench in %s" % a.llama_cpp_bin)

    ours = {m: {"pp": [], "tg": [], "bound": []} for m in a.model}
    theirs = {m: {"pp": [], "tg": []} for m in a.model}
    commit = ""
    for rnd in range(a.rounds):
        for m in a.model:
            order = ["vkinfer", "llama.cpp"] if rnd % 2 == 0 else ["llama.cpp", "vkinfer"]
            for who in order:
                try:
                    if who == "vkinfer":
                        r = run_vkinfer(a.vkinfer_bench, m, a.p, a.n, a.threads, a.reps, a.membw, a.depth)
                        dst = ours[m]
                    elif peer:
                        r, commit = run_llamacpp(a.llama_cpp_bin, m, a.p, a.n, a.threads, a.reps, a.depth)
                        dst = theirs[m]
                    else:
                        continue
                except subprocess.CalledProcessError as e:
                    # e.g. an architecture that llama.cpp build does not know: the row shows "–"
                    last = (e.stderr or "").strip().splitlines()[-1:] or ["(no message)"]
                    print("round %d %s %s failed: %s" % (rnd + 1, who, os.path.basename(m), last[0]), file=sys.stderr)
                    continue
                for k in r:
                    dst[k] += r[k]
                print("round %d %s %s: %s" % (rnd + 1, who, os.path.basename(m),
                                              {k: [round(x, 1) for x in r[k]] for k in r}), file=sys.stderr)

    def med(xs):
        return statistics.median(xs) if xs else None

    kinds = [k for k, size in (("tg", a.n), ("pp", a.p)) if size > 0]  # -n 0 / -p 0 skip a test
    dtag = " @ d%d" % a.depth if a.depth > 0 else ""
    name = {"tg": "tg%d%s" % (a.n, dtag), "pp": "pp%d%s" % (a.p, dtag)}
    if peer:
        head = "| model |" + "".join(" vkinfer %s | llama.cpp %s | ratio |" % (name[k], name[k]) for k in kinds)
    else:  # our figures alone
        head = "| model |" + "".join(" vkinfer %s |" % name[k] for k in kinds)
    if a.membw and a.n > 0:
        head += " tg bound | vkinfer / bound |" + (" llama.cpp / bound |" if peer else "")
    print(head)
    print("|---" + "|---:" * (head.count("|") - 2) + "|")
    for m in a.model:
        row = [os.path.basename(m)]
        for k in kinds:
            o, t = med(ours[m][k]), med(theirs[m][k])
            row += [fmt(o), fmt(t), "%.2f" % (o / t) if o and t else "–"] if peer else [fmt(o)]
        if a.membw and a.n > 0:
            b, o, t = med(ours[m]["bound"]), med(ours[m]["tg"]), med(theirs[m]["tg"])
            row += [fmt(b), "%.0f%%" % (100 * o / b) if b and o else "–"]
            if peer:
                row.append("%.0f%%" % (100 * t / b) if b and t else "–")
        print("| " + " | ".join(row) + " |")
    print("\ntokens/s, medians over %d %s x %d repeats, %d threads; llama.cpp %s"
          % (a.rounds, "alternating rounds" if peer else "rounds", a.reps, a.threads,
             commit or "(not given: our figures alone)"))
    if a.membw and a.n > 0:
        spans = ", ".join("%s %s–%s" % (os.path.basename(m), fmt(min(ours[m]["bound"])), fmt(max(ours[m]["bound"])))
                          for m in a.model if ours[m]["bound"])
        print("tg bound: STREAM triad measured in each vkinfer-bench run / weight bytes read per token, median "
              "over the runs (the memory's pace moves: per-run range %s)" % spans)

if __name__ == "__main__":
    main()
