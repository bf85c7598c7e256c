#!/usr/bin/env python3
"""test_embed_cache: the embedding result cache through `vkinfer serve`.

A BERT model generated here with vkinfer-gen, served with
`scheduler: {embedding_cache: 1MiB}` and, for reference, without it: the
JSON of a hit is byte-identical to the miss that stored it and to the
answer with the cache off (float and base64, one text and a batch that
mixes cached and new texts); /metrics counts hits and misses per model and
the entries and bytes held; a bad size in the config is refused with
file:line:column; --embedding-cache sets it from the command line.
"""
import argparse, json, os, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server import Server, check  # noqa: E402
import test_server  # noqa: E402

TEXTS = ["the cache keeps vectors", "a second text", "and a third one"]


def metrics(s):
    st, _, text, _ = s.request("GET", "/metrics")
    check(st == 200, "/metrics answers")
    out = {}
    for line in text.splitlines():
        if line.startswith("vkinfer_embedding_cache_"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def embed(s, inp, fmt="float"):
    st, js, raw, r = s.request("POST", "/v1/embeddings", {"model": "embed", "input": inp, "encoding_format": fmt})
    check(st == 200 and js and len(js["data"]) == (len(inp) if isinstance(inp, list) else 1),
          "embeddings answered (%s %s)" % (st, raw[:200]))
    check(r.getheader("X-Queue-ETA") is not None, "an embedding answer carries X-Queue-ETA")
    return raw


def write_config(tmp, name, model, cache):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        if cache is not None:
            f.write("scheduler:\n  embedding_cache: %s\n" % cache)
        f.write("models:\n  - id: embed\n    path: %s\n    kind: embedding\n" % model)
    return path


def answers(s):
    """Every answer the checks compare, in order (the cache's state differs by server)."""
    out = []
    for fmt in ("float", "base64"):
        out.append(embed(s, TEXTS[0], fmt))
        out.append(embed(s, TEXTS[0], fmt))
    out.append(embed(s, TEXTS))  # TEXTS[0] cached, the rest new
    out.append(embed(s, TEXTS))  # all cached
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vkinfer", required=True)
    ap.add_argument("--gen", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "bert.gguf")
        subprocess.run([a.gen, "--preset", "bert-mini", "-o", model], check=True, capture_output=True)

        off = Server(a.vkinfer, ["--config", write_config(tmp, "off.yaml", model, None)])
        off.wait_ready()
        ref = answers(off)
        m = metrics(off)
        check(m.get("vkinfer_embedding_cache_budget_bytes") == 0 and m.get("vkinfer_embedding_cache_entries") == 0,
              "cache off: no budget, no entries (%s)" % m)
        check(m.get('vkinfer_embedding_cache_hits_total{model="embed"}') == 0, "cache off: no hits")
        off.stop()

        on = Server(a.vkinfer, ["--config", write_config(tmp, "on.yaml", model, "1MiB")])
        on.wait_ready()
        got = answers(on)
        # One text per request: one text per batch on both servers, so the same bytes.
        for k in range(4):
            check(ref[k] == got[k], "answer %d is byte-identical with the cache on and off" % k)
        check(got[0] == got[1] and got[2] == got[3], "a hit's JSON is byte-identical to the miss's")
        check(got[4] == got[5], "a batch of hits is byte-identical to the batch that stored them")
        # The batches ran other compositions (3 texts off; 2 new ones on): within float rounding.
        va = [d["embedding"] for d in json.loads(ref[4])["data"]]
        vb = [d["embedding"] for d in json.loads(got[4])["data"]]
        worst = max(abs(x - y) for ra, rb in zip(va, vb) for x, y in zip(ra, rb))
        check(worst < 1e-4, "a partial hit merges in place (worst difference %g)" % worst)
        m = metrics(on)
        # float: miss, hit; base64: hit, hit; batch: 1 hit 2 misses; batch: 3 hits
        check(m.get('vkinfer_embedding_cache_hits_total{model="embed"}') == 7 and
              m.get('vkinfer_embedding_cache_misses_total{model="embed"}') == 3,
              "hits and misses counted per text (%s)" % m)
        check(m.get("vkinfer_embedding_cache_entries") == 3 and 0 < m.get("vkinfer_embedding_cache_bytes", 0) <= 1 << 20
              and m.get("vkinfer_embedding_cache_budget_bytes") == 1 << 20 and
              m.get("vkinfer_embedding_cache_evictions_total") == 0, "entries, bytes and budget (%s)" % m)
        on.stop()

        # The command line sets it too (and wins over the file).
        cli = Server(a.vkinfer, ["--config", write_config(tmp, "off2.yaml", model, None), "--embedding-cache", "64KiB"])
        cli.wait_ready()
        embed(cli, TEXTS[1])
        embed(cli, TEXTS[1])
        m = metrics(cli)
        check(m.get("vkinfer_embedding_cache_budget_bytes") == 65536 and
              m.get('vkinfer_embedding_cache_hits_total{model="embed"}') == 1, "--embedding-cache 64KiB (%s)" % m)
        cli.stop()

        bad = write_config(tmp, "bad.yaml", model, "lots")
        p = subprocess.run([a.vkinfer, "serve", "--config", bad], capture_output=True, text=True, timeout=30)
        check(p.returncode == 1 and "bad.yaml:2:" in p.stderr and "scheduler.embedding_cache" in p.stderr,
              "a bad size is refused with its place (%d %r)" % (p.returncode, p.stderr))
        p = subprocess.run([a.vkinfer, "serve", "-m", model, "--embedding-cache", "-1"], capture_output=True,
                           text=True, timeout=30)
        check(p.returncode != 0 and "--embedding-cache" in p.stderr, "a bad --embedding-cache is refused (%r)" % p.stderr)
    failures = test_server.failures
    print("test_embed_cache: %s" % ("FAILED (%d checks)" % failures if failures else "ok"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
