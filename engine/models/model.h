/*
 * model.h: a model file mapped onto a backend: hyperparameters, weight
 * tensors by GGUF name, the KV cache and scratch, and the forward passes
 * (llama.c: decoder, bert.c: encoder + pooling). The public API (engine/api.c)
 * and the scheduler (engine/sched/) drive models through this header.
 * Must not: tokenize, sample, or call CPU/Vulkan code other than through
 * engine/backend.h.
 */
#ifndef VKI_MODEL_H
#define VKI_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/backend.h"
#include "loader/model_file.h"

/* The families, each a row of model.c's architecture table: a decoder
 * (llama.c) or an encoder (bert.c) configured by the feature flags below. */
typedef enum mdl_arch {
    MDL_ARCH_LLAMA = 0,  /* llama, mistral: adjacent-pair RoPE (+ rope_freqs)  */
    MDL_ARCH_QWEN2,      /* NeoX RoPE, QKV biases                              */
    MDL_ARCH_BERT,       /* encoder: absolute positions, post-LN, GELU        */
    MDL_ARCH_QWEN3,      /* q/k RMSNorm per head                               */
    MDL_ARCH_QWEN3MOE,   /* qwen3 + mixture of experts                         */
    MDL_ARCH_GEMMA2,     /* post-norms, GeGLU, softcaps, sliding window        */
    MDL_ARCH_GEMMA3,     /* gemma2 - softcaps + q/k norms, local rope base     */
    MDL_ARCH_PHI3,       /* fused qkv and gate|up, LongRoPE                    */
    MDL_ARCH_NOMIC_BERT, /* encoder: NeoX RoPE, fused qkv, SwiGLU              */
} mdl_arch;

typedef struct mdl_hparams {
    int32_t n_vocab, n_embd, n_layer, n_ff;
    int32_t n_head, n_head_kv, head_dim;
    int32_t n_rot;         /* RoPE dims (rope.dimension_count, else head_dim)  */
    int32_t rope_mode;     /* BK_ROPE_NORMAL or BK_ROPE_NEOX                    */
    float   rope_base, rope_scale; /* theta = pos * rope_scale * base^(-2i/n_rot) */
    float   rope_mscale;   /* cos/sin multiplier (LongRoPE attn_factor, YaRN)   */
    int32_t rope_scaling;  /* MDL_ROPE_SCALING_*                                */
    float   norm_eps;      /* RMSNorm or LayerNorm epsilon                      */
    int32_t n_ctx_train;
    int32_t n_token_types; /* BERT                                              */
    int32_t pooling;       /* BK_POOL_*, or -1: a generation model              */
    /* feature flags (from the architecture table and the file's keys)     */
    bool    encoder;       /* non-causal, post-LN, pooled (bert.c)              */
    bool    qk_norm;       /* RMSNorm of each q/k head before RoPE              */
    bool    post_norms;    /* RMSNorm of the attention and FFN outputs          */
    bool    fused_qkv;     /* attn_qkv: rows Q | K | V                          */
    bool    fused_up;      /* ffn_up: rows gate | up                            */
    int32_t act;           /* FFN gate activation, BK_ACT_*                      */
    float   embd_scale;    /* token embeddings multiplied by it (0 = none)      */
    float   kq_scale;      /* attention scale (1/sqrt(head_dim) by default)     */
    float   attn_softcap, final_softcap; /* 0 = none                           */
    int32_t swa_window;    /* sliding window of local layers (0 = none)         */
    int32_t swa_pattern;   /* layer l is local when l % p < p - 1 (0: all)      */
    float   rope_base_swa; /* local layers' RoPE base; their scale is 1         */
    int32_t n_expert, n_expert_used, n_ff_exp; /* MoE (n_expert 0 = dense)    */
    bool    expert_norm;   /* chosen experts' weights renormalised to sum 1     */
} mdl_hparams;

/* <arch>.rope.scaling.type, read once with the hyperparameters (names in
 * mdl_rope_scaling_name). */
enum { MDL_ROPE_SCALING_NONE = 0, MDL_ROPE_SCALING_LINEAR, MDL_ROPE_SCALING_LLAMA3, MDL_ROPE_SCALING_YARN,
       MDL_ROPE_SCALING_LONGROPE, MDL_ROPE_SCALING_COUNT };
extern const char *const mdl_rope_scaling_name[MDL_ROPE_SCALING_COUNT];

/* Whether layer l attends through the sliding window. */
static inline bool mdl_layer_is_swa(const mdl_hparams *hp, int32_t l)
{
    return hp->swa_window > 0 && (hp->swa_pattern == 0 || l % hp->swa_pattern < hp->swa_pattern - 1);
}

/* A weight tensor; buf == NULL when the file has no such (optional) tensor. */
typedef struct mdl_layer {
    bk_tensor attn_norm, attn_norm_b;     /* [n_embd] f32 (llama: RMS; bert: attn_output_norm) */
    bk_tensor q_norm, k_norm;             /* [head_dim] f32 (qwen3, gemma3)                    */
    bk_tensor post_attn_norm, post_ffn_norm; /* [n_embd] f32 (gemma)                           */
    bk_tensor ffn_gate_inp;               /* [n_expert][n_embd] router (MoE)                   */
    bk_tensor ffn_gate_exps, ffn_up_exps; /* {n_embd, n_ff_exp, n_expert}                      */
    bk_tensor ffn_down_exps;              /* {n_ff_exp, n_embd, n_expert}                      */
    bk_tensor wq, wk, wv, wo;             /* [out][n_embd] any weight type                     */
    bk_tensor bq, bk, bv, bo;             /* [out] f32 (qwen2, bert)                           */
    bk_tensor ffn_norm, ffn_norm_b;       /* [n_embd] f32 (bert: layer_output_norm)            */
    bk_tensor ffn_gate, ffn_up, ffn_down; /* [n_ff][n_embd], [n_embd][n_ff]                    */
    bk_tensor ffn_up_b, ffn_down_b;       /* bert                                              */
} mdl_layer;

typedef struct mdl_load_params {
    uint32_t        n_ctx;     /* per sequence; 0 = from the file, capped at 4096 */
    uint32_t        n_seq_max; /* KV cache slots; 0 = 1                           */
    uint32_t        n_batch;   /* tokens per forward pass (ubatch); 0 = 512       */
    vki_type        kv_type;   /* VKI_TYPE_F32 (default) or VKI_TYPE_F16          */
    vki_progress_cb progress;
    void           *progress_user;
} mdl_load_params;

typedef struct mdl_model mdl_model;

/* Maps the file's tensors and uploads them to `be` (borrowed; it must outlive
 * the model), then allocates the KV cache and scratch. The file must stay
 * open while the model lives (the CPU backend may borrow its mapping).
 * NOT_FOUND (missing tensor), BAD_FILE (wrong shape), UNSUPPORTED (arch or
 * type), OUT_OF_(DEVICE_)MEMORY, CANCELLED (progress returned false). */
vki_status mdl_load(const vki_model_file *f, bk_backend *be, const mdl_load_params *p, mdl_model **out);
void       mdl_destroy(mdl_model *m);

/* What mdl_load(f, p) will allocate, from the metadata alone (the same
 * size rules and scratch plan): weights as stored in the file, the KV
 * cache, the scratch activations. BAD_FILE / UNSUPPORTED as mdl_load. */
typedef struct mdl_estimate_t {
    uint64_t    weights, kv, scratch;
    int32_t     n_ctx, n_batch, n_vocab, n_embd;
    int32_t     n_ctx_swa;   /* rows of sliding-window layers' KV cache */
    mdl_arch    arch;
    mdl_hparams hp;          /* as the load will use them               */
    const char *rope_factors; /* stored divisors the load uses, or NULL  */
} mdl_estimate_t;
vki_status mdl_estimate(const vki_model_file *f, const mdl_load_params *p, mdl_estimate_t *out);

/* One line per feature the load of f with p will use (architecture, RoPE
 * variant and scaling, q/k norms, window, softcaps, experts, pooling),
 * written into buf (describe.c); the reason when the file cannot load. */
vki_status mdl_describe(const vki_model_file *f, const mdl_load_params *p, char *buf, size_t size);

mdl_arch           mdl_get_arch(const mdl_model *m);
const mdl_hparams *mdl_get_hparams(const mdl_model *m);
bk_backend        *mdl_backend(const mdl_model *m);
int32_t            mdl_n_ctx(const mdl_model *m);
int32_t            mdl_n_seq_max(const mdl_model *m);
int32_t            mdl_n_batch(const mdl_model *m);
uint64_t           mdl_n_params(const mdl_model *m);
uint64_t           mdl_weight_bytes(const mdl_model *m); /* as stored on the backend */
/* Bytes of weights the backend reads in place from the file mapping (no
 * backend buffer holds them, so memory_used leaves them out). */
uint64_t           mdl_borrowed_bytes(const mdl_model *m);

/* ----- decoder (llama.c) ----- */

/* Tokens to append to one sequence's KV cache. */
typedef struct mdl_span {
    int32_t        seq;      /* KV slot, < n_seq_max; each at most once per call */
    int32_t        n_tokens; /* >= 1                                             */
    const int32_t *tokens;   /* [n_tokens]                                       */
} mdl_span;

/* Evaluates all spans in batched passes of at most n_batch tokens (a prompt
 * is one pass when it fits), appending to each sequence's cache, and writes
 * the logits of each span's last token to logits [n_spans][n_vocab].
 * INVALID_ARGUMENT (bad seq/token id, context full), backend errors. */
vki_status llama_decode(mdl_model *m, const mdl_span *spans, int32_t n_spans, float *logits);

/* Number of positions sequence `seq` holds; clearing forgets them. */
int32_t mdl_kv_seq_len(const mdl_model *m, int32_t seq);
void    mdl_kv_seq_clear(mdl_model *m, int32_t seq);
/* Keeps positions [0, n) of seq (for reusing a shared prompt prefix) and
 * returns how many are kept: 0 when sliding-window layers have already
 * dropped positions the next token would need (the sequence is cleared). */
int32_t mdl_kv_seq_truncate(mdl_model *m, int32_t seq, int32_t n);
/* Makes sequence dst hold what src holds (its positions and, for sliding-
 * window layers, its base) by copying the K/V rows on the backend: n
 * choices sampled from one prompt evaluate the prompt once. dst's old
 * content is dropped. INVALID_ARGUMENT (bad or equal sequences), backend
 * errors (dst is cleared then). */
vki_status mdl_kv_seq_copy(mdl_model *m, int32_t src, int32_t dst);

/* ----- embeddings (embed.c; the passes in bert.c and llama.c) ----- */

/* Whether the model produces embeddings: an encoder, or a decoder whose
 * file names a pooling type (Qwen3-Embedding and the like). */
bool mdl_is_embedding(const mdl_model *m);

/* Embeds n_seq token sequences (with whatever special tokens the tokenizer
 * added) into out [n_seq][n_embd], pooled with `pooling` (BK_POOL_*) and,
 * when normalize, L2-normalised. Sequences are packed into passes of at
 * most n_batch tokens; each must fit n_ctx and n_batch. Decoders embed the
 * final normed hidden states with causal attention and leave the KV cache
 * alone. */
vki_status mdl_embed(mdl_model *m, const int32_t *const *ids, const int32_t *n_ids, int32_t n_seq,
                     int pooling, bool normalize, float *out);

/* ===== Internal to engine/models/ ======================================== */

/* One sequence's run of tokens inside a pass. */
typedef struct mdl_seg {
    int32_t seq, t0, n, pos0; /* KV slot, first row in the pass, rows, first position */
    int32_t base, old_base;   /* first position sliding-window layers hold after / before the pass */
} mdl_seg;

/* The forward passes over n_tok packed tokens (ids and positions already
 * uploaded to the scratch). Decoders (llama.c): pooling < 0 generates
 * (appends to the KV cache, leaves logits of the n_out out_ids rows);
 * pooling >= 0 embeds (each segment attends to itself). Encoders (bert.c)
 * always embed. Embeddings: the pooled (normalised) rows [n_segs][n_embd]
 * are left in *res. */
vki_status llama_forward(mdl_model *m, int32_t n_tok, const mdl_seg *segs, int32_t n_segs, int32_t n_out,
                         int pooling, bool normalize, bk_tensor *res);
vki_status bert_forward(mdl_model *m, int32_t n_tok, const mdl_seg *segs, int32_t n_segs, int pooling,
                        bool normalize, bk_tensor *res);

/* hparams.c: the architecture table and the metadata keys -> hparams
 * (n_vocab, n_token_types are set by the caller from the tensors). */
vki_status mdl_read_hparams(const vki_model_file *f, mdl_arch *arch, mdl_hparams *hp);
/* What a load of f would give, from its header alone: an encoder (bert,
 * nomic-bert) or a decoder with a pooling type (Qwen3-Embedding) is an
 * embedding model. The one test the scheduler and the config share. */
bool       mdl_file_is_embedding(const vki_model_file *f);
/* "<arch>.<suffix>" as an integer in 1..2^24 / a float, else dflt. */
int32_t    mdl_key_u32(const vki_model_file *f, const char *suffix, int32_t dflt);
float      mdl_key_f32(const vki_model_file *f, const char *suffix, float dflt);

/* rope.c: div [n_rot/2] gets the per-pair frequency divisors the file asks
 * for at context n_ctx (*have false: none), hp->rope_scale and rope_mscale
 * their values; *stored_bytes the bytes of a stored factor tensor read. */
vki_status mdl_rope_divisors(const vki_model_file *f, mdl_arch arch, mdl_hparams *hp, int32_t n_ctx, float *div,
                             bool *have, uint64_t *stored_bytes);

/* KV cache (kv_cache.c): per layer one K and one V tensor
 * {head_dim, n_head_kv, rows, n_seq} of kv_type. Global layers hold n_ctx
 * rows, positions [0, len). Sliding-window layers hold n_ctx_swa rows
 * (bounded by the window), positions [base, len) at rows [0, len - base):
 * when a pass would overflow, the last window - 1 positions move to the
 * front (mdl_kv_plan_shift / the forward pass) and base advances. */
typedef struct mdl_kv_cache {
    vki_type   type;
    int32_t    n_layer, n_ctx, n_seq;
    int32_t    n_ctx_swa, window; /* rows of local layers; their window (0: none) */
    bk_buffer **bufs;   /* [2 * n_layer]                      */
    bk_tensor  *k, *v;  /* [n_layer]                          */
    int32_t    *len;    /* [n_seq] positions held per sequence */
    int32_t    *base;   /* [n_seq] first position local layers hold */
} mdl_kv_cache;

vki_status mdl_kv_create(bk_backend *be, const mdl_hparams *hp, vki_type type, int32_t n_ctx,
                         int32_t n_seq, int32_t n_batch, mdl_kv_cache *kv);
/* For n new positions of seq starting at its len: the base the local
 * layers will have after the pass (== kv->base[seq] when no shift). */
int32_t    mdl_kv_plan_base(const mdl_kv_cache *kv, int32_t seq, int32_t n);
void       mdl_kv_destroy(bk_backend *be, mdl_kv_cache *kv);
/* Views of layer l, sequence s, positions [p0, p0+n): {head_dim, n_head_kv, n, 1}. */
bk_tensor  mdl_kv_view(const bk_tensor *t, int32_t s, int32_t p0, int32_t n);

/* Scratch activations for one pass of up to n_batch tokens and n_out outputs. */
typedef struct mdl_scratch {
    bk_buffer *buf;
    bk_tensor  ids, pos, types, out_ids;        /* i32 [n_batch] ([n_out] for out_ids) */
    bk_tensor  x, h, o;                         /* f32 [n_batch][n_embd]               */
    bk_tensor  q, att;                          /* f32 [n_batch][n_head * head_dim]    */
    bk_tensor  k, v;                            /* f32 [n_batch][n_head_kv * head_dim] */
    bk_tensor  fa, fb, fc;                      /* f32 [n_batch][n_ff]                 */
    bk_tensor  xo, ho;                          /* f32 [n_out][n_embd]                 */
    bk_tensor  logits;                          /* f32 [n_out][n_vocab] (decoders)     */
    bk_tensor  pooled;                          /* f32 [n_batch][n_embd] (embeddings)  */
    /* MoE: router logits and probabilities [n_batch][n_expert], the chosen
     * experts [n_batch][n_used] (i32) and their weights, the experts' gate,
     * up and product rows [n_batch * n_used][n_ff_exp] and outputs
     * [n_batch * n_used][n_embd]. */
    bk_tensor  rl, rp, eids, ew, eg, eu, eh, ed;
} mdl_scratch;

struct mdl_model {
    mdl_arch     arch;
    mdl_hparams  hp;
    bk_backend  *be;
    int32_t      n_ctx, n_seq_max, n_batch, n_out;
    /* weights */
    bk_tensor    tok_embd;           /* [n_vocab][n_embd]                         */
    bk_tensor    pos_embd, type_embd; /* bert: [n_ctx_train][n_embd], [types][n_embd] */
    bk_tensor    tok_norm, tok_norm_b; /* bert embeddings LayerNorm               */
    bk_tensor    out_norm;           /* [n_embd] f32                              */
    bk_tensor    rope_div;           /* [n_rot/2] f32 frequency divisors, or none */
    bk_tensor    output;             /* [n_vocab][n_embd]; = tok_embd when tied   */
    mdl_layer   *layers;             /* [n_layer]                                 */
    bk_buffer  **wbufs;              /* one buffer per uploaded tensor            */
    int32_t      n_wbufs, cap_wbufs;
    uint64_t     weight_bytes, n_params;
    uint64_t     borrowed_bytes;     /* weights read in place from the file mapping
                                        (CPU): in weight_bytes, not in memory_used */
    mdl_kv_cache kv;
    mdl_scratch  sc;
};

/* The tensor if present, else NULL (for optional bias arguments). */
static inline const bk_tensor *mdl_opt(const bk_tensor *t) { return t->buf ? t : NULL; }

#endif
