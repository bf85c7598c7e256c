#!/usr/bin/env python3
"""test_embed_kinds.py: every embedding architecture of ../shared/models is
served as an embedding model when the config does not say its kind: the
encoders (bert, nomic-bert) and a decoder with a pooling type
(Qwen3-Embedding). The scheduler and the config read the kind from the file
header with one test (mdl_file_is_embedding); before that, nomic-bert failed
to load ("a generation model") and Qwen3-Embedding was taken for a chat
model. Each model's /v1/embeddings vector must equal what `vkinfer embed`
prints for the same text (same backend, same pooling), and a chat model
from the same folder stays a chat model.
Usage: test_embed_kinds.py --vkinfer PATH --models DIR (../shared/models)"""
import argparse, math, os, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_server import Server, check  # noqa: E402
import test_server  # noqa: E402

EMBED = {"bert": "synthetic-bert-mini-f32.gguf", "nomic": "synthetic-nomic-bert-mean-f32.gguf",
         "qwen3emb": "synthetic-qwen3-embed-f32.gguf"}
CHAT = {"qwen3": "synthetic-qwen3-dense-f32.gguf"}
TEXT = "the lantern by the river"


def cli_embedding(exe, path):
    out = subprocess.run([exe, "embed", "-m", path, "--backend", "cpu", "--threads", "2", TEXT],
                         capture_output=True, text=True, timeout=120)
    check(out.returncode == 0, "vkinfer embed %s: %s" % (os.path.basename(path), out.stderr[-300:]))
    return [float(x) for x in out.stdout.split()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vkinfer", required=True)
    ap.add_argument("--models", required=True)
    a = ap.parse_args()
    files = dict(EMBED, **CHAT)
    missing = [f for f in files.values() if not os.path.isfile(os.path.join(a.models, f))]
    if missing:
        print("SKIP: %s not in %s (../shared/models absent?)" % (", ".join(missing), a.models))
        return 77
    args = []
    for mid, f in files.items():
        args += ["-m", os.path.join(a.models, f), "--id", mid]
    s = Server(a.vkinfer, args + ["--no-warmup", "--state-dir", ""])
    try:
        s.wait_ready()
        st, js, _, _ = s.request("GET", "/v1/models")
        kinds = {m["id"]: m.get("kind") for m in js["data"]} if st == 200 else {}
        for mid in EMBED:
            check(kinds.get(mid) == "embedding", "%s is listed as an embedding model: %s" % (mid, kinds.get(mid)))
        for mid in CHAT:
            check(kinds.get(mid) == "chat", "%s is listed as a chat model: %s" % (mid, kinds.get(mid)))
        for mid, f in EMBED.items():
            st, js, text, _ = s.request("POST", "/v1/embeddings", {"model": mid, "input": TEXT})
            if not check(st == 200, "%s: /v1/embeddings answers 200: %s %s" % (mid, st, text[:300])):
                continue
            got = js["data"][0]["embedding"]
            want = cli_embedding(a.vkinfer, os.path.join(a.models, f))
            check(len(got) == len(want) and len(got) > 0, "%s: width %d, vkinfer embed gives %d" %
                  (mid, len(got), len(want)))
            err = max((abs(x - y) for x, y in zip(got, want)), default=math.inf)
            check(err < 1e-5, "%s: the served vector equals vkinfer embed's (max |diff| %.3g)" % (mid, err))
            print("ok   %-8s width %d, max |diff| against vkinfer embed %.2g" % (mid, len(got), err))
        st, js, _, _ = s.request("POST", "/v1/completions", {"model": "qwen3", "prompt": "hi", "max_tokens": 2})
        check(st == 200, "the chat model still completes: %s" % st)
    finally:
        s.stop()
    if test_server.failures:
        print("test_embed_kinds: %d failures" % test_server.failures)
        return 1
    print("test_embed_kinds: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
