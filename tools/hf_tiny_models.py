#!/usr/bin/env python3
"""hf_tiny_models.py: writes the tiny random-weight Hugging Face folders in
tests/models/data/hf_tiny/ and the outputs transformers computes for them
(reference.json), which tests/models/test_hf_families.c compares vkinfer
against. Development tool: the tests read its output and never run it.

Each family is built with transformers' own config class, given random
weights of a useful size (not transformers' 0.02 init, whose logits are all
but equal), saved with save_pretrained (config.json + model.safetensors; some
configs then rewritten in the older "rope_theta"/"rope_scaling" spelling
that published checkpoints use), and loaded back from the folder, so the
reference is what transformers makes of the files on disk. A byte-level BPE
tokenizer.json of the 256 byte tokens is added because vkinfer needs one to
load a model; the tests feed token ids.

Reference, per prompt of token ids, in float32 with eager attention:
decoders: all logits at the last prompt position, then 16 greedy steps (id,
top-5 ids and logits, margin between the best two logits); encoders: the
mean-pooled, L2-normalised last hidden state.

Usage (needs torch and transformers; CPU is enough):
    python3 tools/hf_tiny_models.py [--out tests/models/data/hf_tiny]
"""
import argparse
import json
import math
import os
import shutil

import torch
import transformers as T

VOCAB = 256
N_GREEDY = 16
SEED = 1234

# Two prompts per family: a short one, and one longer than every sliding
# window below (8) and than phi3-longrope's original context (32).
PROMPT_SHORT = [17, 200, 3, 99, 45, 128, 7]
PROMPT_LONG = [(i * 37 + 11) % VOCAB for i in range(40)]


def byte_tokenizer():
    """GPT-2's byte-to-unicode table as a BPE vocabulary without merges."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    vocab = {chr(c): b for b, c in sorted(zip(bs, cs))}
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": []},
    }


def common(**kw):
    base = dict(vocab_size=VOCAB, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                intermediate_size=96, max_position_embeddings=256, bos_token_id=1, eos_token_id=2,
                pad_token_id=0, tie_word_embeddings=False)
    base.update(kw)
    return base


def legacy_rope(cfg, extra_top=None):
    """Rewrites a transformers-5 "rope_parameters" into the older top-level
    rope_theta + rope_scaling spelling of published checkpoints."""
    rp = cfg.pop("rope_parameters")
    cfg["rope_theta"] = rp.pop("rope_theta")
    if "partial_rotary_factor" in rp:
        cfg["partial_rotary_factor"] = rp.pop("partial_rotary_factor")
    if rp.get("rope_type", "default") != "default":
        cfg["rope_scaling"] = rp
    cfg.update(extra_top or {})
    return cfg


def legacy_gemma3(cfg):
    rp = cfg.pop("rope_parameters")
    cfg["rope_theta"] = rp["full_attention"].pop("rope_theta")
    cfg["rope_local_base_freq"] = rp["sliding_attention"]["rope_theta"]
    if rp["full_attention"].get("rope_type", "default") != "default":
        cfg["rope_scaling"] = rp["full_attention"]
    cfg.pop("_sliding_window_pattern", None)
    return cfg


# name: (config class, kwargs, model kind, config.json rewrite, n_ctx per prompt)
FAMILIES = {
    "llama3": (T.LlamaConfig, common(num_hidden_layers=2, rope_parameters={
        "rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 64}), "causal", legacy_rope, None),
    "qwen3": (T.Qwen3Config, common(num_hidden_layers=2, head_dim=32, rope_parameters={
        "rope_type": "default", "rope_theta": 1000000.0}), "causal", None, None),
    "qwen3-yarn": (T.Qwen3Config, common(num_hidden_layers=2, head_dim=16, max_position_embeddings=128,
                                         rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                                          "original_max_position_embeddings": 32}),
                   "causal", None, None),
    "qwen3moe": (T.Qwen3MoeConfig, common(num_hidden_layers=2, head_dim=16, moe_intermediate_size=32, num_experts=4,
                                          num_experts_per_tok=2, norm_topk_prob=True,
                                          rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
                 "causal", None, None),
    "qwen3moe-nonorm": (T.Qwen3MoeConfig, common(num_hidden_layers=1, head_dim=16, moe_intermediate_size=32,
                                                 num_experts=4, num_experts_per_tok=2, norm_topk_prob=False,
                                                 rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
                        "causal", None, None),
    "gemma2": (T.Gemma2Config, common(num_hidden_layers=3, head_dim=16, query_pre_attn_scalar=24, sliding_window=8,
                                      attn_logit_softcapping=2.0, final_logit_softcapping=3.0,
                                      tie_word_embeddings=True, hidden_activation="gelu_pytorch_tanh"),
               "causal", None, None),
    "gemma3": (T.Gemma3TextConfig, common(num_hidden_layers=3, head_dim=16, query_pre_attn_scalar=24,
                                          sliding_window=8, tie_word_embeddings=True,
                                          layer_types=["sliding_attention", "sliding_attention", "full_attention"],
                                          rope_parameters={"full_attention": {"rope_type": "linear", "factor": 4.0,
                                                                              "rope_theta": 1000000.0},
                                                           "sliding_attention": {"rope_type": "default",
                                                                                 "rope_theta": 10000.0}}),
               "causal", legacy_gemma3, None),
    "phi3": (T.Phi3Config, common(num_hidden_layers=2, original_max_position_embeddings=256), "causal", None, None),
    "phi3-longrope": (T.Phi3Config, common(num_hidden_layers=2, max_position_embeddings=128,
                                           original_max_position_embeddings=32, rope_parameters={
                                               "rope_type": "longrope", "rope_theta": 10000.0,
                                               "partial_rotary_factor": 0.5,
                                               "long_factor": [1.0, 1.5, 3.0, 6.0],
                                               "short_factor": [1.0, 1.1, 1.25, 1.5]}),
                      "causal", legacy_rope, [32, 128]),
    "nomic-bert": (T.NomicBertConfig, dict(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2,
                                           num_attention_heads=4, intermediate_size=96,
                                           max_position_embeddings=128, layer_norm_eps=1e-12),
                   "encoder", None, None),
}


def init_weights(model, gemma, gen):
    """Weights large enough that logits differ clearly: matrices N(0, 1/fan_in),
    embeddings N(0, 1) (gemma's are scaled by sqrt(n_embd) in the model, so
    N(0, 1/n_embd) there), norms around 1 (gemma stores w of 1 + w)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            shape = p.shape
            if "norm" in name or "LayerNorm" in name or "layernorm" in name:
                if name.endswith("bias"):
                    p.copy_(0.05 * torch.randn(shape, generator=gen))
                elif gemma:
                    p.copy_(0.1 * torch.randn(shape, generator=gen))
                else:
                    p.copy_(1.0 + 0.1 * torch.randn(shape, generator=gen))
            elif "embed" in name:
                p.copy_(torch.randn(shape, generator=gen) / (math.sqrt(shape[-1]) if gemma else 1.0))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn(shape, generator=gen))
            else:
                p.copy_(torch.randn(shape, generator=gen) / math.sqrt(shape[-1]))


def top5(logits):
    v, i = torch.topk(logits, 6)
    return [int(x) for x in i[:5]], [float(x) for x in v[:5]], float(v[0] - v[1])


def decoder_reference(model, ids):
    with torch.no_grad():
        out = model(torch.tensor([ids]), use_cache=True)
        last = out.logits[0, -1].float()
        past = out.past_key_values
        steps = []
        logits = last
        for _ in range(N_GREEDY):
            tid, tl, margin = top5(logits)
            steps.append({"id": tid[0], "top_ids": tid, "top_logits": tl, "margin": margin})
            out = model(torch.tensor([[tid[0]]]), past_key_values=past, use_cache=True)
            past = out.past_key_values
            logits = out.logits[0, -1].float()
    return {"last_logits": [float(x) for x in last], "greedy": steps}


def encoder_reference(model, ids):
    with torch.no_grad():
        h = model(torch.tensor([ids])).last_hidden_state[0].float()
    e = h.mean(dim=0)
    e = e / e.norm()
    return {"embedding": [float(x) for x in e]}


def rounded(x):
    if isinstance(x, float):
        return float("%.8g" % x)
    if isinstance(x, list):
        return [rounded(v) for v in x]
    if isinstance(x, dict):
        return {k: rounded(v) for k, v in x.items()}
    return x


def build(name, out_dir):
    cls, kw, kind, rewrite, n_ctx = FAMILIES[name]
    gen = torch.Generator().manual_seed(SEED + sum(map(ord, name)))
    cfg = cls(**kw)
    cfg._attn_implementation = "eager"
    if kind == "encoder":
        model = T.NomicBertModel(cfg)
    else:
        model = T.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=torch.float32)
    model.eval()
    init_weights(model, name.startswith("gemma"), gen)
    folder = os.path.join(out_dir, name)
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder)
    cpath = os.path.join(folder, "config.json")
    if rewrite:
        with open(cpath) as f:
            c = json.load(f)
        with open(cpath, "w") as f:
            json.dump(rewrite(c), f, indent=2, sort_keys=True)
            f.write("\n")
    with open(os.path.join(folder, "tokenizer.json"), "w") as f:
        json.dump(byte_tokenizer(), f, ensure_ascii=False)
    if kind == "encoder":
        os.makedirs(os.path.join(folder, "1_Pooling"), exist_ok=True)
        with open(os.path.join(folder, "1_Pooling", "config.json"), "w") as f:
            json.dump({"word_embedding_dimension": cfg.hidden_size, "pooling_mode_mean_tokens": True}, f, indent=2)
    for junk in ("generation_config.json",):
        if os.path.exists(os.path.join(folder, junk)):
            os.remove(os.path.join(folder, junk))

    # the reference comes from the files as written (and must agree with the
    # model in memory: a rewritten config has to mean the same)
    if kind == "encoder":
        loaded = T.NomicBertModel.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32)
    else:
        loaded = T.AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32)
    loaded.eval()
    prompts = []
    for k, ids in enumerate([PROMPT_SHORT, PROMPT_LONG]):
        ref = (encoder_reference if kind == "encoder" else decoder_reference)(loaded, ids)
        mem = (encoder_reference if kind == "encoder" else decoder_reference)(model, ids)
        key = "embedding" if kind == "encoder" else "last_logits"
        diff = max(abs(a - b) for a, b in zip(ref[key], mem[key]))
        assert diff < 1e-5, f"{name}: the saved folder gives other outputs than the model in memory ({diff})"
        entry = {"ids": ids, "n_ctx": n_ctx[k] if n_ctx else 128}
        entry.update(ref)
        prompts.append(entry)
    return {"name": name, "kind": kind, "model_type": cfg.model_type, "prompts": rounded(prompts)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "models", "data", "hf_tiny"))
    ap.add_argument("families", nargs="*", help="default: all")
    args = ap.parse_args()
    torch.manual_seed(SEED)
    os.makedirs(args.out, exist_ok=True)
    names = args.families or list(FAMILIES)
    refs = [build(n, args.out) for n in names]
    meta = {"generator": "tools/hf_tiny_models.py", "transformers": T.__version__, "torch": torch.__version__,
            "n_greedy": N_GREEDY, "families": refs}
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    for r in refs:
        ms = [min(s["margin"] for s in p["greedy"]) for p in r["prompts"] if "greedy" in p]
        print(f"{r['name']:16s} {r['model_type']:12s} smallest greedy margin {min(ms) if ms else float('nan'):.4g}")


if __name__ == "__main__":
    main()
