#!/bin/bash
# test_inspect_features.sh: `vkinfer inspect` names the features a load of
# each architecture file in ../shared/models will use: the window and its
# bounded cache, experts, the RoPE factors in use (llama-3 rope_freqs,
# LongRoPE short/long), softcaps, q/k norms, fused tensors, pooling.
set -u
S=${VKI_SHARED_DIR:-../shared}
[ -d "$S/models" ] || { echo "SKIPPED: $S/models is absent"; exit 77; }
fail=0
expect() { # FILE PATTERN...
  local f="$S/models/$1"; shift
  [ -f "$f" ] || { echo "SKIPPED one: $f is absent"; return; }
  local out; out=$("$VKINFER" inspect "$f" 2>&1) || { echo "FAIL: inspect $f: $out"; fail=1; return; }
  for p in "$@"; do
    grep -qF -- "$p" <<<"$out" || { echo "FAIL: inspect $(basename "$f") does not say '$p'"; fail=1; }
  done
}
expect synthetic-llama-ropefreqs-f32.gguf "family:        llama" "per-pair factors from rope_freqs" "adjacent pairs"
expect synthetic-qwen3-dense-q8_0.gguf "family:        qwen3" "q/k RMSNorm per head" "head dim 64"
expect synthetic-qwen3-embed-f32.gguf "last token pooling"
expect synthetic-qwen3moe-e8a2-f32.gguf "experts:       8, 2 used per token" "weights renormalised" "ffn 128 each"
expect synthetic-gemma2-softcap-f32.gguf "sliding window 8 on 2 of 4 layers" "attention softcap 4" "final logit softcap 6" \
       "gated GELU (tanh)" "post-attention and post-FFN norms" "embeddings x 11.31"
expect synthetic-gemma3-swa-f32.gguf "sliding window 8 on 2 of 4 layers (local rope base 10000; their KV cache 528 rows)"
expect synthetic-phi3-longrope-f32.gguf "per-pair factors from rope_factors_short" "attn factor 1.19" "fused qkv" "fused gate|up"
expect synthetic-nomic-bert-mean-f32.gguf "family:        nomic-bert (encoder)" "mean pooling" "NeoX pairs"
expect synthetic-bert-mini-cls-f16.gguf "CLS pooling" "GELU (erf)"
expect stories260K.gguf "load needs:"
[ $fail = 0 ] && echo "test_inspect_features: passed"
exit $fail
