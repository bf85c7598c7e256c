#!/usr/bin/env python3
"""Same-run serving comparison: `vkinfer serve` against llama.cpp's llama-server.

Both servers are started on the same GGUF files with the same threads,
parallel sequences and context per sequence, and driven by the same load
client (this file), alternating the order each round so neither always runs
on a warmer or busier machine:

  gen    C clients, each sending /v1/completions requests one after another
         (distinct prompts, temperature 0, max_tokens N, ignore_eos so both
         generate exactly N tokens): generated tokens/s over the wall time,
         and the median request latency.
  embed  C clients, each sending /v1/embeddings requests of B distinct texts:
         texts/s over the wall time.

Prints one markdown table of medians over the rounds with the ratio
vkinfer / llama.cpp. llama.cpp is not built by this project: give the folder
holding a llama-server you built from its public source with
--llama-cpp-bin or LLAMA_CPP_BIN; without it only vkinfer's figures are
printed. A figure from another day or machine is not a comparison: quote
only what one run of this script printed.

Example:
  python3 bench/compare_serving.py --vkinfer build/cli/vkinfer \\
      --llama-cpp-bin /path/to/llama.cpp/build/bin \\
      --chat-model tl1b-q4_0.gguf --embed-model bge-small-f16.gguf \\
      --threads 2 --parallel 8 --clients 8 --seconds 30 --rounds 2
"""
import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

WORDS = ("river stone light market garden winter letter engine forest signal harbor village silver "
         "morning paper window candle bridge shadow meadow thunder lantern orchard valley").split()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def text(rng, n_words):
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


class Server:
    """One server process on a free loopback port; stopped on exit."""

    def __init__(self, name, cmd, port, log_dir):
        self.name, self.port = name, port
        self.log = open(os.path.join(log_dir, "%s-%d.log" % (name, port)), "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout_s):
        end = time.time() + timeout_s
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %d before it was ready (log: %s)"
                                   % (self.name, self.proc.returncode, self.log.name))
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/health")
                r = c.getresponse()
                body = r.read()
                if r.status == 200 and b"loading" not in body:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("%s not ready after %.0f s (log: %s)" % (self.name, timeout_s, self.log.name))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def post(port, path, body, timeout_s=600):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    if r.status != 200:
        raise RuntimeError("POST %s: HTTP %d: %s" % (path, r.status, data[:300]))
    return json.loads(data)


def run_load(worker, clients, seconds):
    """Runs worker(client_index, deadline) -> (units, [latencies]) on each client; returns units/s."""
    results, errors = [None] * clients, []
    deadline = time.time() + seconds
    t0 = time.time()

    def one(i):
        try:
            results[i] = worker(i, deadline)
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(str(e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - t0
    if errors:
        raise RuntimeError("load client failed: %s" % errors[0])
    units = sum(r[0] for r in results)
    lat = [x for r in results for x in r[1]]
    return units / wall, (statistics.median(lat) if lat else float("nan"))


def gen_load(port, model, clients, seconds, max_tokens, prompt_words, seed):
    def worker(i, deadline):
        rng = random.Random(seed * 1000 + i)
        tokens, lat = 0, []
        while time.time() < deadline:
            t = time.time()
            body = {"model": model, "prompt": text(rng, prompt_words), "max_tokens": max_tokens,
                    "temperature": 0, "ignore_eos": True}
            j = post(port, "/v1/completions", body)
            tokens += j["usage"]["completion_tokens"]
            lat.append(time.time() - t)
        return tokens, lat
    return run_load(worker, clients, seconds)


def embed_load(port, model, clients, seconds, batch, text_words, seed):
    def worker(i, deadline):
        rng = random.Random(seed * 1000 + 500 + i)
        texts, lat = 0, []
        while time.time() < deadline:
            t = time.time()
            j = post(port, "/v1/embeddings", {"model": model, "input": [text(rng, text_words) for _ in range(batch)]})
            if len(j["data"]) != batch:
                raise RuntimeError("embeddings: %d vectors for %d texts" % (len(j["data"]), batch))
            texts += batch
            lat.append(time.time() - t)
        return texts, lat
    return run_load(worker, clients, seconds)


def start_vkinfer(a, model, kind, log_dir):
    port = free_port()
    cmd = [a.vkinfer, "serve", "-m", model, "--id", kind, "--port", str(port), "--backend", a.backend,
           "--threads", str(a.threads), "--parallel", str(a.parallel), "-c", str(a.ctx), "--no-warmup",
           "--state-dir", ""]
    return Server("vkinfer-" + kind, cmd, port, log_dir)


def start_llamacpp(a, model, kind, log_dir):
    port = free_port()
    exe = os.path.join(a.llama_cpp_bin, "llama-server")
    # llama-server's -c is shared by its -np slots: give each slot a.ctx.
    cmd = [exe, "-m", model, "--host", "127.0.0.1", "--port", str(port), "-t", str(a.threads),
           "-tb", str(a.threads), "-np", str(a.parallel), "-c", str(a.ctx * a.parallel), "--no-webui"]
    if a.backend == "cpu":
        cmd += ["-ngl", "0"]
    if kind == "embed":
        cmd += ["--embedding"]
    return Server("llama.cpp-" + kind, cmd, port, log_dir)


def measure(a, who, kind, model, seed, log_dir):
    srv = (start_vkinfer if who == "vkinfer" else start_llamacpp)(a, model, kind, log_dir)
    try:
        srv.wait_ready(a.ready_timeout)
        name = kind if who == "vkinfer" else model
        if kind == "gen":
            gen_load(srv.port, name, a.clients, min(5, a.seconds), a.max_tokens, a.prompt_words, seed + 99)  # warm-up
            return gen_load(srv.port, name, a.clients, a.seconds, a.max_tokens, a.prompt_words, seed)
        embed_load(srv.port, name, a.clients, min(5, a.seconds), a.embed_batch, a.text_words, seed + 99)
        return embed_load(srv.port, name, a.clients, a.seconds, a.embed_batch, a.text_words, seed)
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vkinfer", default="build/cli/vkinfer")
    ap.add_argument("--llama-cpp-bin", default=os.environ.get("LLAMA_CPP_BIN", ""))
    ap.add_argument("--chat-model", help="GGUF for the generation load")
    ap.add_argument("--embed-model", help="GGUF embedding model for the embeddings load")
    ap.add_argument("--backend", default="cpu", choices=["cpu", "vulkan", "auto"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=8, help="sequences decoded together (both servers)")
    ap.add_argument("--ctx", type=int, default=512, help="context per sequence")
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients")
    ap.add_argument("--seconds", type=float, default=30, help="measured load per server and round")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--prompt-words", type=int, default=32)
    ap.add_argument("--embed-batch", type=int, default=8, help="texts per /v1/embeddings request")
    ap.add_argument("--text-words", type=int, default=24)
    ap.add_argument("--ready-timeout", type=float, default=300)
    ap.add_argument("--json", help="write the raw figures here too")
    a = ap.parse_args()
    if not a.chat_model and not a.embed_model:
        ap.error("give --chat-model and/or --embed-model")
    for m in (a.chat_model, a.embed_model):
        if m and not os.path.isfile(m):
            ap.error("no such file: %s" % m)
    peers = ["vkinfer"]
    if a.llama_cpp_bin:
        if not os.access(os.path.join(a.llama_cpp_bin, "llama-server"), os.X_OK):
            ap.error("no llama-server in %s" % a.llama_cpp_bin)
        peers.append("llama.cpp")
    else:
        print("no --llama-cpp-bin / LLAMA_CPP_BIN: vkinfer's figures only", file=sys.stderr)
    loads = [(k, m) for k, m in (("gen", a.chat_model), ("embed", a.embed_model)) if m]
    raw = {(w, k): [] for w in peers for k, _ in loads}
    log_dir = tempfile.mkdtemp(prefix="vki-serving-")
    for rnd in range(a.rounds):
        order = peers if rnd % 2 == 0 else peers[::-1]
        for kind, model in loads:
            for who in order:
                rate, lat = measure(a, who, kind, model, rnd, log_dir)
                raw[(who, kind)].append((rate, lat))
                print("round %d %-9s %-5s %8.2f %s/s  median latency %.3f s" %
                      (rnd + 1, who, kind, rate, "tok" if kind == "gen" else "texts", lat), file=sys.stderr)
    # The ratio of the medians, and the spread of the rounds' own ratios
    # (each vkinfer round against the llama.cpp round run beside it): the
    # peer's rate can move 20% between rounds of one run.
    print("\n| load | model | vkinfer | llama.cpp | ratio | round ratios |")
    print("|---|---|---:|---:|---:|---:|")
    for kind, model in loads:
        unit = "tok/s" if kind == "gen" else "texts/s"
        v = statistics.median(r for r, _ in raw[("vkinfer", kind)])
        l_cell, ratio, spread = "-", "-", "-"
        if "llama.cpp" in peers:
            l = statistics.median(r for r, _ in raw[("llama.cpp", kind)])
            l_cell, ratio = "%.2f %s" % (l, unit), ("%.2f" % (v / l) if l > 0 else "-")
            rr = [vr / lr for (vr, _), (lr, _) in zip(raw[("vkinfer", kind)], raw[("llama.cpp", kind)]) if lr > 0]
            if rr:
                spread = "%.2f-%.2f" % (min(rr), max(rr))
        label = "%s, %d clients" % ("completions" if kind == "gen" else "embeddings x%d" % a.embed_batch, a.clients)
        print("| %s | %s | %.2f %s | %s | %s | %s |" % (label, os.path.basename(model), v, unit, l_cell, ratio, spread))
    print("\n(medians of %d rounds x %.0f s, %d threads, %d parallel, backend %s; server logs in %s)"
          % (a.rounds, a.seconds, a.threads, a.parallel, a.backend, log_dir))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"%s/%s" % k: v for k, v in raw.items()}, f, indent=1)


if __name__ == "__main__":
    main()
