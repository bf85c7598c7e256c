#!/usr/bin/env python3
"""Regenerates tests/models/data/rope_scaling.json: the RoPE scaling factors
Hugging Face transformers computes for a YaRN and a llama3 configuration, as
per-pair divisors of the plain frequency. Needs transformers and torch (not
part of the test command); the test reads the recorded numbers."""
import json, sys
import torch
from transformers import LlamaConfig, Qwen3Config
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
import transformers

def divisors(inv, base, dim):
    plain = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    return (plain / inv.double()).tolist()

out = {}
cfg = Qwen3Config(hidden_size=1024, num_attention_heads=8, head_dim=128, rope_theta=1e6, max_position_embeddings=131072,
                  rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768})
inv, att = ROPE_INIT_FUNCTIONS["yarn"](cfg, "cpu")
out["yarn"] = {"head_dim": 128, "base": 1e6, "factor": 4.0, "orig": 32768, "divisors": divisors(inv, 1e6, 128),
               "attn_factor": float(att)}
cfg = LlamaConfig(hidden_size=2048, num_attention_heads=32, rope_theta=500000.0, max_position_embeddings=131072,
                  rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 8192})
inv, att = ROPE_INIT_FUNCTIONS["llama3"](cfg, "cpu")
out["llama3"] = {"head_dim": 64, "base": 500000.0, "factor": 8.0, "low": 1.0, "high": 4.0, "orig": 8192,
                 "divisors": divisors(inv, 500000.0, 64), "attn_factor": float(att)}
out["how"] = (f"transformers {transformers.__version__} ROPE_INIT_FUNCTIONS['yarn'/'llama3'] on Qwen3Config/LlamaConfig "
              "with these parameters: divisors = plain inverse frequency / transformers' inverse frequency (float32), "
              "attn_factor = its attention factor. Regenerate with tests/models/gen_rope_scaling.py (needs transformers "
              "+ torch; not run by the tests).")
json.dump(out, open(sys.argv[1] if len(sys.argv) > 1 else "rope_scaling.json", "w"), indent=1)
