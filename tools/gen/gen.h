/*
 * gen.h: what vkinfer-gen's generator (gen.c: configuration, vocabularies,
 * deterministic weights, GGUF output) shares with its Hugging Face folder
 * writer (gen_hf.c). Development tool only; nothing here is used at run time.
 */
#ifndef VKI_GEN_H
#define VKI_GEN_H

#include <stdbool.h>
#include <stdint.h>

#include "loader/types.h"
#include "vkinfer.h"

typedef struct gen_cfg {
    const char *arch, *out, *vocab_from;
    int n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
    vki_type type;       /* GGUF matrices; HF: the checkpoint dtype (F32/F16/BF16)  */
    vki_type type_more;  /* _M mixes: the type of the tensors given more bits (Q6_K);
                            VKI_TYPE_COUNT: none                                    */
    uint64_t seed;
    bool hf;             /* --format hf: write an HF folder instead of a GGUF file  */
    bool qkv_bias;       /* llama: attention_bias (q/k/v/o biases); qwen2 always has q/k/v */
    bool tied;           /* decoders: no output matrix (tie_word_embeddings)        */
    uint64_t shard_bytes; /* HF: largest shard (0 = one model.safetensors)          */
    int n_expert, n_expert_used, n_ff_exp; /* qwen3moe                              */
    int sliding_window;   /* gemma2/gemma3: 0 = the family's own (4096, 1024)      */
} gen_cfg;

/* A vocabulary in id order; texts are unique. Scores: SPM merge priority
 * (higher merges first); types: GGUF token types (1 normal, 2 unknown,
 * 3 control, 6 byte). */
typedef struct gen_vocab {
    char    **text;
    float    *score;
    int32_t  *type;
    int       n, cap;
    uint64_t  map_cap; /* text -> id hash (open addressing, -1 = empty) */
    int32_t  *map;
    int32_t   unk, bos, eos; /* SPM special ids */
} gen_vocab;

int32_t gen_vocab_find(const gen_vocab *v, const char *text); /* -1 when absent */

/* One checkpoint tensor, already in HF layout: torch shape (slowest first),
 * the checkpoint dtype, and llama q/k rows in rotate-half order. */
typedef struct hf_tensor {
    char    *name;
    int      n_dims;
    int64_t  shape[2];
    vki_type type;
    uint8_t *data;
    uint64_t bytes;
} hf_tensor;

/* Writes DIR/config.json, model.safetensors (or model-0000i-of-0000n.safetensors
 * shards + model.safetensors.index.json when c->shard_bytes is set and the
 * weights exceed it), tokenizer.json, tokenizer_config.json and, for BERT,
 * vocab.txt, modules.json and 1_Pooling/config.json. */
vki_status hf_write_folder(const gen_cfg *c, const hf_tensor *t, int n_tensors, const gen_vocab *v);

#endif
