#!/bin/bash
# test_hf_inspect.sh: `vkinfer inspect --json` on HF folders written by
# vkinfer-gen (one file and sharded) against the GGUF written from the same
# seed: same architecture, hyperparameters, tokenizer sizes and special ids,
# and the same tensors (GGUF names, shapes fastest first, types).
# Usage: test_hf_inspect.sh PATH/vkinfer-gen   (VKINFER from ctest)
set -u
GEN=$1
command -v python3 >/dev/null || { echo "SKIPPED: python3 is absent"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
run() { "$@" >"$T/out" 2>&1 || { echo "failed: $*"; cat "$T/out"; exit 1; }; }

run "$GEN" --preset tiny --seed 11 -o "$T/llama.gguf"
run "$GEN" --preset tiny --seed 11 --format hf -o "$T/llama-hf"
run "$GEN" --preset tiny --seed 11 --n-vocab 4096 -o "$T/big.gguf"
run "$GEN" --preset tiny --seed 11 --n-vocab 4096 --format hf --shard-mb 1 -o "$T/big-hf"
run "$GEN" --preset bert-mini --n-layer 1 --seed 12 -o "$T/bert.gguf"
run "$GEN" --preset bert-mini --n-layer 1 --seed 12 --format hf -o "$T/bert-hf"
[ -f "$T/big-hf/model.safetensors.index.json" ] || { echo "no shards written"; ls "$T/big-hf"; exit 1; }
for m in llama big bert; do
    run "$VKINFER" inspect --json "$T/$m.gguf"; cp "$T/out" "$T/$m.gguf.json"
    run "$VKINFER" inspect --json "$T/$m-hf"; cp "$T/out" "$T/$m-hf.json"
done
# a model.safetensors.index.json is a model too
run "$VKINFER" inspect --json "$T/big-hf/model.safetensors.index.json"; cp "$T/out" "$T/big-index.json"

python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
def load(n): return json.load(open(f"{t}/{n}"))
fail = 0
for m in ("llama", "big", "bert"):
    g, h = load(f"{m}.gguf.json"), load(f"{m}-hf.json")
    assert g["format"] == "gguf" and h["format"] == "safetensors", (g["format"], h["format"])
    assert g["architecture"] == h["architecture"], (m, g["architecture"], h["architecture"])
    gm, hm = g["metadata"], h["metadata"]
    a = g["architecture"]
    keys = [k for k in gm if k.startswith(a + ".") and k != a + ".pooling_type"] + [
        "tokenizer.ggml.model", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id", "tokenizer.ggml.cls_token_id",
        "tokenizer.ggml.seperator_token_id", "tokenizer.ggml.mask_token_id", "tokenizer.ggml.add_bos_token",
        "tokenizer.ggml.add_space_prefix", "tokenizer.ggml.lowercase"]
    for k in keys:
        if gm.get(k) != hm.get(k):
            print(f"{m}: {k}: GGUF {gm.get(k)!r}, HF {hm.get(k)!r}"); fail = 1
    for k in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type"):
        if gm[k]["length"] != hm[k]["length"]:
            print(f"{m}: {k}: {gm[k]['length']} vs {hm[k]['length']} entries"); fail = 1
    gt = {x["name"]: (x["type"], x["shape"], x["bytes"]) for x in g["tensors"]}
    ht = {x["name"]: (x["type"], x["shape"], x["bytes"]) for x in h["tensors"]}
    if gt != ht:
        print(f"{m}: tensor tables differ: only GGUF {sorted(set(gt) - set(ht))}, only HF {sorted(set(ht) - set(gt))}, "
              f"changed {[n for n in gt if n in ht and gt[n] != ht[n]]}"); fail = 1
    if g["weight_bytes"] != h["weight_bytes"]:
        print(f"{m}: weight_bytes {g['weight_bytes']} vs {h['weight_bytes']}"); fail = 1
    print(f"{m}: {len(gt)} tensors, {len(keys)} keys compared")
if load("big-index.json")["tensors"] != load("big-hf.json")["tensors"]:
    print("inspect on the index file differs from inspect on the folder"); fail = 1
sys.exit(fail)
PY
