/*
 * hf_json.c: Hugging Face side files mapped onto the GGUF description, so an
 * HF folder and its GGUF conversion look the same to the engine.
 * Owns the mapping; must not copy tensor data (only names, flags and the
 * parts of stacked tensors), except the few small vectors a GGUF conversion
 * derives (Gemma norms + 1, LongRoPE factors), which it makes in the arena.
 *
 * config.json -> general.architecture (model_type llama and mistral ->
 *   "llama", qwen2, qwen3, qwen3_moe -> "qwen3moe", gemma2, gemma3_text ->
 *   "gemma3", phi3, bert, nomic_bert -> "nomic-bert") and <arch>.block_count
 *   (num_hidden_layers), .context_length (max_position_embeddings),
 *   .embedding_length (hidden_size), .feed_forward_length
 *   (intermediate_size), .attention.head_count (num_attention_heads),
 *   .attention.head_count_kv (num_key_value_heads, default head_count;
 *   decoders), .attention.key_length/.value_length (head_dim),
 *   .attention.layer_norm_rms_epsilon (rms_norm_eps) or
 *   .attention.layer_norm_epsilon (layer_norm_eps, encoders), .rope.freq_base
 *   (rope_theta), .rope.dimension_count (llama, phi3, or a partial rotary
 *   factor: head_dim * partial_rotary_factor), the RoPE scaling (linear,
 *   llama3, yarn, phi3's longrope: see map_rope_scaling; others refused),
 *   experts (qwen3moe: expert_count, expert_used_count,
 *   expert_feed_forward_length, expert_weights_norm), Gemma's sliding window
 *   and pattern, softcaps, attention.scale (query_pre_attn_scalar^-1/2) and
 *   rope.freq_base_swa, phi3's sliding window, attention.causal = false for
 *   encoders. Both spellings of RoPE settings are read: transformers 5's
 *   "rope_parameters" and the older "rope_theta"/"rope_scaling" (and
 *   nomic-embed's own n_embd, rotary_emb_base, ...). Settings the engine does
 *   not implement (an activation, Qwen's sliding window, dense layers in a
 *   MoE, ...) are refused with UNSUPPORTED, never ignored.
 * 1_Pooling/config.json (sentence-transformers) -> <bert|nomic-bert>.pooling_type
 *   (1 mean, 2 cls, 3 last token).
 * tokenizer.json (+ tokenizer_config.json) -> tokenizer.ggml.model: "llama"
 *   for SPM-style BPE (byte_fallback), "t5" for Unigram (charsmap and
 *   whitespace keys: see map_unigram), "gpt2" for byte-level BPE, "bert"
 *   for WordPiece; .tokens (by id, holes filled with
 *   "[PAD<id>]"), .scores (Unigram scores; for SPM-style BPE -(merge rank + 1)
 *   for merge results and -1e9 for the rest, so that bigram-by-score merging
 *   reproduces BPE order), .token_type (1 normal, 2 unknown, 3 control for
 *   special added tokens, 4 user-defined for other added tokens, 6 byte
 *   "<0xNN>"), .merges ("left right" strings, gpt2 only), .bos/.eos/
 *   .unknown/.padding/.cls/.seperator/.mask _token_id (from the named tokens
 *   in tokenizer_config.json; bert gets cls/sep/unk/pad/mask only),
 *   .add_bos_token/.add_eos_token (tokenizer_config.json, else the
 *   TemplateProcessing post-processor), .add_space_prefix (llama: a Prepend
 *   "▁" normalizer or Metaspace prepend), .lowercase (bert normalizer),
 *   tokenizer.chat_template (an HF folder's chat_template.jinja, read in
 *   safetensors.c, replaces it), tokenizer.hf.pre_regex (the pre-tokenizer's
 *   Split regexes, Digits and ByteLevel-with-regex as patterns, in order),
 *   tokenizer.hf.ignore_merges (model.ignore_merges), tokenizer.ggml.pre =
 *   "gpt-2" for a bare ByteLevel pre-tokenizer, and tokenizer.hf.normalizer
 *   (the normalizer's steps; format in engine/tokenizer/normalize.c; SPM's
 *   Prepend '▁' and Replace ' ' -> '▁' are the tokenizer's own behaviour and
 *   are not listed). Normalizer, pre-tokenizer and decoder types that are not
 *   mapped are refused with UNSUPPORTED, never skipped.
 * Tensor names: see hf_tensor_name(); llama q/k weights and biases get
 * rope_permute_heads (the NeoX-RoPE families' do not); Gemma's norm weights
 * get + 1 (as convert_hf_to_gguf.py writes them); a MoE's per-expert
 * matrices become one stacked tensor per layer (vki_tensor_info.parts).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "loader/file_impl.h"
#include "util.h"

#define HF_MAX_VOCAB (1 << 24)
/* Unnamed ids allowed beyond as many as are named (see the vocabulary size). */
#define HF_MAX_HOLES 1024

/* ===== kv helpers ======================================================== */

static vki_status put(vki_model_file *f, const char *key, vki_kv kv)
{
    char *k = ld_strdup(&f->arena, key, strlen(key));
    if (!k) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", f->path);
    kv.key = (vki_str){k, strlen(k)};
    return ld_set_kv(f, &kv);
}

static vki_status put_u32(vki_model_file *f, const char *key, uint32_t v)
{
    return put(f, key, (vki_kv){.type = VKI_KV_U32, .v.u = v});
}

static vki_status put_f32(vki_model_file *f, const char *key, float v)
{
    return put(f, key, (vki_kv){.type = VKI_KV_F32, .v.f = v});
}

static vki_status put_bool(vki_model_file *f, const char *key, bool v)
{
    return put(f, key, (vki_kv){.type = VKI_KV_BOOL, .v.u = v});
}

static vki_status put_str(vki_model_file *f, const char *key, const char *s, size_t n)
{
    char *v = ld_strdup(&f->arena, s, n);
    if (!v) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", f->path);
    return put(f, key, (vki_kv){.type = VKI_KV_STRING, .v.s = {v, n}});
}

vki_status hf_map_chat_template(vki_model_file *f, const char *src, const char *text, size_t len)
{
    if (!ld_utf8_valid(text, len)) return vki_fail(VKI_ERR_BAD_FILE, "%s: not valid UTF-8", src);
    if (memchr(text, 0, len)) return vki_fail(VKI_ERR_BAD_FILE, "%s: holds a NUL byte", src);
    return put_str(f, "tokenizer.chat_template", text, len);
}

static vki_kv *new_array(vki_model_file *f, vki_kv_type elem, uint64_t n, vki_kv *kv)
{
    *kv = (vki_kv){.type = VKI_KV_ARRAY};
    kv->v.arr.elem = elem;
    kv->v.arr.n = n;
    kv->v.arr.items = n ? ld_alloc(&f->arena, n * sizeof(vki_kv)) : NULL;
    if (n && kv->v.arr.items)
        for (uint64_t i = 0; i < n; i++) kv->v.arr.items[i].type = elem;
    return n && !kv->v.arr.items ? NULL : kv;
}

static char *arch_key(char *buf, size_t cap, const char *arch, const char *suffix)
{
    snprintf(buf, cap, "%s.%s", arch, suffix);
    return buf;
}

/* A JSON number as an integer in [lo, hi]. */
static bool jint(const cJSON *j, double lo, double hi, int64_t *out)
{
    if (!cJSON_IsNumber(j) || floor(j->valuedouble) != j->valuedouble || j->valuedouble < lo || j->valuedouble > hi)
        return false;
    *out = (int64_t)j->valuedouble;
    return true;
}

/* ===== config.json ======================================================= */

/* The architectures an HF model_type maps onto (GGUF names as llama.cpp's
 * convert_hf_to_gguf.py writes them). */
static const struct { const char *model_type, *arch; } hf_archs[] = {
    {"llama", "llama"},        {"mistral", "llama"},       {"qwen2", "qwen2"},   {"qwen3", "qwen3"},
    {"qwen3_moe", "qwen3moe"}, {"gemma2", "gemma2"},       {"gemma3_text", "gemma3"}, {"phi3", "phi3"},
    {"bert", "bert"},          {"nomic_bert", "nomic-bert"},
};

typedef struct cfg {
    vki_model_file *f;
    const char     *src;  /* config.json's path, for messages */
    const cJSON    *root;
    const char     *arch;
} cfg;

/* root[a], else root[b] (older or custom-code spellings of the same key). */
static const cJSON *jget(const cJSON *o, const char *a, const char *b)
{
    const cJSON *j = cJSON_IsObject(o) && a ? cJSON_GetObjectItemCaseSensitive(o, a) : NULL;
    if ((!j || cJSON_IsNull(j)) && b && cJSON_IsObject(o)) j = cJSON_GetObjectItemCaseSensitive(o, b);
    return j && !cJSON_IsNull(j) ? j : NULL;
}

static double jnum(const cJSON *o, const char *a, const char *b, double dflt)
{
    const cJSON *j = jget(o, a, b);
    return cJSON_IsNumber(j) ? j->valuedouble : dflt;
}

static vki_status cfg_u32(const cfg *c, const char *suffix, const char *hf, const char *alt, bool required)
{
    const cJSON *j = jget(c->root, hf, alt);
    int64_t v;
    if (!j) {
        if (required) return vki_fail(VKI_ERR_BAD_FILE, "%s: \"%s\" is missing", c->src, hf);
        return VKI_OK;
    }
    if (!jint(j, 0, 4294967295.0, &v))
        return vki_fail(VKI_ERR_BAD_FILE, "%s: \"%s\" is not an integer in [0, 2^32)", c->src, j->string);
    char key[128];
    return put_u32(c->f, arch_key(key, sizeof key, c->arch, suffix), (uint32_t)v);
}

static vki_status cfg_f32(const cfg *c, const char *suffix, const char *hf, const char *alt)
{
    const cJSON *j = jget(c->root, hf, alt);
    if (!j) return VKI_OK;
    if (!cJSON_IsNumber(j)) return vki_fail(VKI_ERR_BAD_FILE, "%s: \"%s\" is not a number", c->src, j->string);
    char key[128];
    return put_f32(c->f, arch_key(key, sizeof key, c->arch, suffix), (float)j->valuedouble);
}

static vki_status arch_u32(const cfg *c, const char *suffix, uint32_t v)
{
    char key[128];
    return put_u32(c->f, arch_key(key, sizeof key, c->arch, suffix), v);
}

static vki_status arch_f32(const cfg *c, const char *suffix, double v)
{
    char key[128];
    return put_f32(c->f, arch_key(key, sizeof key, c->arch, suffix), (float)v);
}

static vki_status arch_str(const cfg *c, const char *suffix, const char *v)
{
    char key[128];
    return put_str(c->f, arch_key(key, sizeof key, c->arch, suffix), v, strlen(v));
}

/* A string setting that must have one of the values the engine implements
 * (absent = dflt): anything else would run with wrong numbers. */
static vki_status need_str(const cfg *c, const char *a, const char *b, const char *dflt, const char *ok1, const char *ok2)
{
    const cJSON *j = jget(c->root, a, b);
    const char *v = cJSON_IsString(j) ? j->valuestring : j ? "(not a string)" : dflt;
    if (!strcmp(v, ok1) || (ok2 && !strcmp(v, ok2))) return VKI_OK;
    return vki_fail(VKI_ERR_UNSUPPORTED, "%s: \"%s\" is '%.40s'; %s supports only '%s'%s%s", c->src, j ? j->string : a,
                    v, c->arch, ok1, ok2 ? " or " : "", ok2 ? ok2 : "");
}

/* A setting the engine does not implement must be absent, null, false, 0 or
 * an empty list (or equal `ok` when it is a number). */
static vki_status need_off(const cfg *c, const char *key, double ok)
{
    const cJSON *j = jget(c->root, key, NULL);
    if (!j || cJSON_IsFalse(j) || (cJSON_IsArray(j) && cJSON_GetArraySize(j) == 0) ||
        (cJSON_IsNumber(j) && j->valuedouble == ok))
        return VKI_OK;
    return vki_fail(VKI_ERR_UNSUPPORTED, "%s: \"%s\" = %s is not supported for %s", c->src, key,
                    cJSON_IsNumber(j) ? "a number other than the default" : cJSON_IsTrue(j) ? "true" : "a value",
                    c->arch);
}

/* ----- RoPE ---------------------------------------------------------------
 * transformers 5 writes "rope_parameters" ({rope_type, rope_theta, factor,
 * ...}, or one such object per layer type: "full_attention",
 * "sliding_attention"); older configs have "rope_theta" and "rope_scaling"
 * (its type under "type" or "rope_type") at the top level. */

typedef struct rope_cfg {
    const cJSON *p;     /* the parameter object, or NULL (no scaling)        */
    const char  *type;  /* "default", "linear", "llama3", "yarn", ...        */
    double       theta; /* 0 = not given                                      */
} rope_cfg;

static rope_cfg rope_of(const cJSON *root, const char *layer_type)
{
    rope_cfg r = {NULL, "default", 0};
    const cJSON *rp = jget(root, "rope_parameters", NULL);
    if (cJSON_IsObject(rp)) {
        const cJSON *nested = jget(rp, layer_type ? layer_type : "full_attention", NULL);
        if (cJSON_IsObject(nested)) rp = nested;
        else if (jget(rp, "full_attention", "sliding_attention")) rp = NULL; /* that layer type has none */
        r.p = rp;
    } else if (layer_type && !strcmp(layer_type, "sliding_attention")) {
        /* Gemma 3's local layers: rope_scaling is for the global ones */
        r.theta = jnum(root, "rope_local_base_freq", NULL, 0);
        return r;
    } else {
        r.p = jget(root, "rope_scaling", NULL);
        if (!cJSON_IsObject(r.p)) r.p = NULL;
    }
    const cJSON *t = jget(r.p, "rope_type", "type");
    if (cJSON_IsString(t)) r.type = t->valuestring;
    r.theta = jnum(r.p, "rope_theta", NULL, jnum(root, "rope_theta", NULL, 0));
    return r;
}

/* The scaling of the (global) RoPE as GGUF keys: <arch>.rope.scaling.type
 * plus its parameters, as convert_hf_to_gguf.py writes them for "linear" and
 * "yarn"; "llama3" as the keys the engine turns into rope_freqs (GGUF files
 * carry rope_freqs.weight instead); Phi-3's "longrope" as llama.cpp's
 * rope_factors_long/short.weight tensors, rope.scaling.attn_factor and
 * original_context_length. Every other type is refused. */
static vki_status map_rope_scaling(const cfg *c, const rope_cfg *r, uint32_t rope_dims)
{
    const char *ty = r->type;
    const cJSON *p = r->p;
    const double ctx = jnum(c->root, "max_position_embeddings", NULL, 0);
    /* the pretraining context: inside the parameters, or at the top level (Phi-3) */
    const double orig = jnum(c->root, "original_max_position_embeddings", NULL,
                             jnum(p, "original_max_position_embeddings", NULL, 0));
    if (!strcmp(ty, "default")) return VKI_OK;
    if (!strcmp(ty, "linear")) {
        const cJSON *fa = jget(p, "factor", NULL);
        if (!cJSON_IsNumber(fa) || !(fa->valuedouble > 0))
            return vki_fail(VKI_ERR_BAD_FILE, "%s: linear RoPE scaling without a positive \"factor\"", c->src);
        VKI_TRY(arch_str(c, "rope.scaling.type", "linear"));
        return arch_f32(c, "rope.scaling.factor", fa->valuedouble);
    }
    if (!strcmp(ty, "llama3")) {
        const double fa = jnum(p, "factor", NULL, 0), lo = jnum(p, "low_freq_factor", NULL, 0),
                     hi = jnum(p, "high_freq_factor", NULL, 0);
        const double o = jnum(p, "original_max_position_embeddings", NULL, 0);
        if (!(fa > 0) || !(lo > 0) || !(hi > lo) || !(o > 0))
            return vki_fail(VKI_ERR_BAD_FILE, "%s: llama3 RoPE scaling needs factor > 0, 0 < low_freq_factor < "
                            "high_freq_factor and original_max_position_embeddings", c->src);
        VKI_TRY(arch_str(c, "rope.scaling.type", "llama3"));
        VKI_TRY(arch_f32(c, "rope.scaling.factor", fa));
        VKI_TRY(arch_f32(c, "rope.scaling.low_freq_factor", lo));
        VKI_TRY(arch_f32(c, "rope.scaling.high_freq_factor", hi));
        return arch_u32(c, "rope.scaling.original_context_length", (uint32_t)o);
    }
    if (!strcmp(ty, "yarn")) {
        const double o = jnum(p, "original_max_position_embeddings", NULL, orig);
        const double fa = jnum(p, "factor", NULL, o > 0 ? ctx / o : 0);
        if (!(fa > 0) || !(o > 0))
            return vki_fail(VKI_ERR_BAD_FILE, "%s: yarn RoPE scaling needs \"factor\" and "
                            "\"original_max_position_embeddings\"", c->src);
        /* DeepSeek's mscale pair, a given attention factor and untruncated
         * correction ranges are computed differently from llama.cpp's YaRN */
        if ((jnum(p, "mscale", NULL, 0) != 0 && jnum(p, "mscale_all_dim", NULL, 0) != 0) ||
            jget(p, "attention_factor", NULL) || cJSON_IsFalse(jget(p, "truncate", NULL)))
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: yarn RoPE scaling with mscale and mscale_all_dim, an explicit "
                            "attention_factor or truncate = false is not supported", c->src);
        VKI_TRY(arch_str(c, "rope.scaling.type", "yarn"));
        VKI_TRY(arch_f32(c, "rope.scaling.factor", fa));
        VKI_TRY(arch_u32(c, "rope.scaling.original_context_length", (uint32_t)o));
        if (jget(p, "beta_fast", NULL)) VKI_TRY(arch_f32(c, "rope.scaling.yarn_beta_fast", jnum(p, "beta_fast", NULL, 32)));
        if (jget(p, "beta_slow", NULL)) VKI_TRY(arch_f32(c, "rope.scaling.yarn_beta_slow", jnum(p, "beta_slow", NULL, 1)));
        return VKI_OK;
    }
    if ((!strcmp(ty, "longrope") || !strcmp(ty, "su")) && !strcmp(c->arch, "phi3")) {
        const cJSON *lf = jget(p, "long_factor", NULL), *sf = jget(p, "short_factor", NULL);
        const int n = cJSON_GetArraySize(lf);
        if (!cJSON_IsArray(lf) || !cJSON_IsArray(sf) || n != cJSON_GetArraySize(sf) || (uint32_t)n != rope_dims / 2 ||
            !(orig > 0) || !(ctx > 0))
            return vki_fail(VKI_ERR_BAD_FILE, "%s: longrope needs long_factor and short_factor of %u values each "
                            "(rotary dimensions / 2) and original_max_position_embeddings", c->src, rope_dims / 2);
        /* transformers' default attention factor (convert_hf_to_gguf's too) */
        const double scale = ctx / orig;
        const double attn = jnum(p, "attention_factor", NULL,
                                 scale > 1.0 ? sqrt(1.0 + log(scale) / log(orig)) : 1.0);
        const cJSON *lists[2] = {lf, sf};
        const char *names[2] = {"rope_factors_long.weight", "rope_factors_short.weight"};
        for (int k = 0; k < 2; k++) {
            float *v = ld_alloc(&c->f->arena, (uint64_t)n * sizeof *v);
            char *name = ld_strdup(&c->f->arena, names[k], strlen(names[k]));
            if (!v || !name) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", c->src);
            int i = 0;
            const cJSON *e;
            cJSON_ArrayForEach(e, lists[k]) {
                if (!cJSON_IsNumber(e) || !(e->valuedouble > 0))
                    return vki_fail(VKI_ERR_BAD_FILE, "%s: %s[%d] is not a positive number", c->src,
                                    k ? "short_factor" : "long_factor", i);
                v[i++] = (float)e->valuedouble;
            }
            vki_tensor_info t = {.name = name, .type = VKI_TYPE_F32, .n_dims = 1, .ne = {n, 1, 1, 1},
                                 .bytes = (uint64_t)n * sizeof *v, .data = v};
            VKI_TRY(ld_add_tensor(c->f, &t));
        }
        VKI_TRY(arch_u32(c, "rope.scaling.original_context_length", (uint32_t)orig));
        return arch_f32(c, "rope.scaling.attn_factor", attn);
    }
    return vki_fail(VKI_ERR_UNSUPPORTED, "%s: RoPE scaling type '%.32s' is not supported for %s (linear, llama3, "
                    "yarn%s are)", c->src, ty, c->arch, !strcmp(c->arch, "phi3") ? ", longrope" : "");
}

/* ----- per-family settings ------------------------------------------------ */

/* Gemma's local/global layer pattern as llama.cpp's n_swa_pattern: layer i
 * uses the sliding window when i % n < n - 1. From "layer_types" when given
 * (the configured n if it reproduces them, else the smallest n that does),
 * else "sliding_window_pattern". */
static bool pattern_fits(const cJSON *lt, uint32_t n)
{
    uint32_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, lt) {
        if (!strcmp(e->valuestring, "sliding_attention") != (i % n < n - 1)) return false;
        i++;
    }
    return true;
}

static vki_status gemma_pattern(const cfg *c, uint32_t n_layer, uint32_t dflt, uint32_t *out)
{
    const cJSON *lt = jget(c->root, "layer_types", NULL);
    *out = (uint32_t)jnum(c->root, "sliding_window_pattern", "_sliding_window_pattern", dflt);
    if (!cJSON_IsArray(lt)) return VKI_OK;
    if ((uint32_t)cJSON_GetArraySize(lt) != n_layer)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: \"layer_types\" has %d entries for %u layers", c->src,
                        cJSON_GetArraySize(lt), n_layer);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, lt) {
        if (!cJSON_IsString(e) || (strcmp(e->valuestring, "sliding_attention") && strcmp(e->valuestring, "full_attention")))
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: layer_types[%d] is not sliding_attention or full_attention",
                            c->src, i);
        i++;
    }
    if (*out > 0 && pattern_fits(lt, *out)) return VKI_OK;
    for (uint32_t n = 1; n <= n_layer + 1; n++) {
        if (pattern_fits(lt, n)) {
            *out = n;
            return VKI_OK;
        }
    }
    return vki_fail(VKI_ERR_UNSUPPORTED, "%s: \"layer_types\" is not a repeating pattern of sliding layers followed by "
                    "one full-attention layer", c->src);
}

static vki_status map_gemma(const cfg *c, uint32_t n_layer)
{
    const bool g3 = !strcmp(c->arch, "gemma3");
    VKI_TRY(need_str(c, "hidden_activation", "hidden_act", "gelu_pytorch_tanh", "gelu_pytorch_tanh", NULL));
    VKI_TRY(need_off(c, "use_bidirectional_attention", 0));
    VKI_TRY(need_off(c, "attention_bias", 0));
    VKI_TRY(cfg_u32(c, "attention.sliding_window", "sliding_window", NULL, true));
    uint32_t pattern;
    VKI_TRY(gemma_pattern(c, n_layer, g3 ? 6 : 2, &pattern));
    VKI_TRY(arch_u32(c, "attention.sliding_window_pattern", pattern));
    VKI_TRY(cfg_f32(c, "attn_logit_softcapping", "attn_logit_softcapping", NULL));
    VKI_TRY(cfg_f32(c, "final_logit_softcapping", "final_logit_softcapping", NULL));
    /* queries are scaled by query_pre_attn_scalar^-1/2, not head_dim^-1/2 */
    const double qs = jnum(c->root, "query_pre_attn_scalar", NULL, 0);
    if (qs > 0) VKI_TRY(arch_f32(c, "attention.scale", 1.0 / sqrt(qs)));
    if (g3) {
        /* local layers: their own base and no scaling */
        rope_cfg local = rope_of(c->root, "sliding_attention");
        const double base = local.theta ? local.theta : 10000.0;
        if (strcmp(local.type, "default"))
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: RoPE scaling '%.32s' on the sliding-window layers is not "
                            "supported", c->src, local.type);
        VKI_TRY(arch_f32(c, "rope.freq_base_swa", base));
    }
    return VKI_OK;
}

static vki_status map_moe(const cfg *c)
{
    VKI_TRY(cfg_u32(c, "expert_count", "num_experts", "num_local_experts", true));
    VKI_TRY(cfg_u32(c, "expert_used_count", "num_experts_per_tok", NULL, true));
    VKI_TRY(cfg_u32(c, "expert_feed_forward_length", "moe_intermediate_size", NULL, true));
    /* every layer sparse: llama.cpp's qwen3moe has no dense layers */
    VKI_TRY(need_off(c, "mlp_only_layers", 0));
    VKI_TRY(need_off(c, "decoder_sparse_step", 1));
    VKI_TRY(need_off(c, "shared_expert_intermediate_size", 0));
    /* renormalise the chosen experts' weights; transformers' default is false */
    char key[128];
    return put_bool(c->f, arch_key(key, sizeof key, c->arch, "expert_weights_norm"),
                    cJSON_IsTrue(jget(c->root, "norm_topk_prob", NULL)));
}

/* nomic-embed's own config (n_embd, rotary_emb_base, ...) or transformers'
 * NomicBertConfig, under the restrictions convert_hf_to_gguf.py asserts. */
static vki_status map_nomic(const cfg *c)
{
    VKI_TRY(need_off(c, "prenorm", 0));
    VKI_TRY(need_off(c, "causal", 0));
    VKI_TRY(need_off(c, "qkv_proj_bias", 0));
    VKI_TRY(need_off(c, "mlp_fc1_bias", 0));
    VKI_TRY(need_off(c, "mlp_fc2_bias", 0));
    VKI_TRY(need_off(c, "rotary_emb_interleaved", 0));
    VKI_TRY(need_off(c, "rotary_emb_scale_base", 0));
    VKI_TRY(need_off(c, "rotary_scaling_factor", 0));
    VKI_TRY(need_off(c, "moe_every_n_layers", 0));
    VKI_TRY(need_off(c, "rotary_emb_fraction", 1));
    VKI_TRY(need_str(c, "activation_function", NULL, "swiglu", "swiglu", NULL));
    VKI_TRY(need_str(c, "hidden_act", NULL, "silu", "silu", NULL));
    /* the HF config claims n_positions 8192 but trained 2048 (llama.cpp's note) */
    const cJSON *ctx = jget(c->root, "max_trained_positions", NULL) ? jget(c->root, "max_trained_positions", NULL)
                                                                    : jget(c->root, "max_position_embeddings", "n_positions");
    int64_t v;
    if (ctx && jint(ctx, 1, 1 << 24, &v)) VKI_TRY(arch_u32(c, "context_length", (uint32_t)v));
    VKI_TRY(cfg_f32(c, "attention.layer_norm_epsilon", "layer_norm_eps", "layer_norm_epsilon"));
    rope_cfg r = rope_of(c->root, NULL);
    if (strcmp(r.type, "default"))
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: RoPE scaling '%.32s' is not supported for nomic-bert", c->src, r.type);
    return arch_f32(c, "rope.freq_base", r.theta ? r.theta : jnum(c->root, "rotary_emb_base", NULL, 1000.0));
}

vki_status hf_map_config(vki_model_file *f, const char *src, const char *text, size_t len)
{
    cJSON *root = cJSON_ParseWithLength(text, len);
    vki_status s = VKI_OK;
    if (!cJSON_IsObject(root)) {
        s = vki_fail(VKI_ERR_BAD_FILE, "%s: not a JSON object", src);
        goto done;
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!cJSON_IsString(mt)) {
        s = vki_fail(VKI_ERR_BAD_FILE, "%s: \"model_type\" is missing", src);
        goto done;
    }
    cfg c = {f, src, root, NULL};
    for (size_t i = 0; i < VKI_COUNT(hf_archs); i++)
        if (!strcmp(mt->valuestring, hf_archs[i].model_type)) c.arch = hf_archs[i].arch;
    if (!c.arch) {
        s = vki_fail(VKI_ERR_UNSUPPORTED, "%s: model_type '%.64s' is not supported (expected llama, mistral, qwen2, "
                     "qwen3, qwen3_moe, gemma2, gemma3_text, phi3, bert or nomic_bert)", src, mt->valuestring);
        goto done;
    }
    const char *arch = c.arch;
    const bool bert = !strcmp(arch, "bert"), nomic = !strcmp(arch, "nomic-bert"), encoder = bert || nomic;
    const bool gemma = !strncmp(arch, "gemma", 5), phi3 = !strcmp(arch, "phi3");
#define TRY(x) do { if ((s = (x)) != VKI_OK) goto done; } while (0)
    TRY(put_str(f, "general.architecture", arch, strlen(arch)));
    TRY(cfg_u32(&c, "block_count", "num_hidden_layers", "n_layer", true));
    TRY(cfg_u32(&c, "context_length", "max_position_embeddings", "n_positions", false));
    TRY(cfg_u32(&c, "embedding_length", "hidden_size", "n_embd", true));
    TRY(cfg_u32(&c, "feed_forward_length", "intermediate_size", "n_inner", true));
    TRY(cfg_u32(&c, "attention.head_count", "num_attention_heads", "n_head", true));
    uint32_t n_embd = 0, n_head = 0, n_layer = 0;
    vki_file_get_u32(f, arch_key((char[128]){0}, 128, arch, "embedding_length"), &n_embd);
    vki_file_get_u32(f, arch_key((char[128]){0}, 128, arch, "attention.head_count"), &n_head);
    vki_file_get_u32(f, arch_key((char[128]){0}, 128, arch, "block_count"), &n_layer);
    if (bert) {
        TRY(cfg_f32(&c, "attention.layer_norm_epsilon", "layer_norm_eps", NULL));
    } else if (nomic) {
        TRY(map_nomic(&c));
    } else {
        const cJSON *kvh = jget(root, "num_key_value_heads", NULL);
        TRY(cfg_u32(&c, "attention.head_count_kv", kvh ? "num_key_value_heads" : "num_attention_heads", NULL, true));
        TRY(cfg_f32(&c, "attention.layer_norm_rms_epsilon", "rms_norm_eps", NULL));
        if (!gemma) TRY(need_str(&c, "hidden_act", NULL, "silu", "silu", NULL));
    }
    if (encoder) {
        char key[128];
        TRY(put_bool(f, arch_key(key, sizeof key, arch, "attention.causal"), false));
        goto done;
    }
    /* head_dim: the attention width when it is not hidden_size / heads */
    int64_t hd = n_head ? n_embd / n_head : 0;
    const cJSON *hdj = jget(root, "head_dim", NULL);
    if (hdj && !jint(hdj, 2, 65536, &hd)) {
        s = vki_fail(VKI_ERR_BAD_FILE, "%s: \"head_dim\" is not an integer in [2, 65536]", src);
        goto done;
    }
    if (hdj) {
        TRY(arch_u32(&c, "attention.key_length", (uint32_t)hd));
        TRY(arch_u32(&c, "attention.value_length", (uint32_t)hd));
    }
    rope_cfg rope = rope_of(root, gemma ? "full_attention" : NULL);
    if (rope.theta) TRY(arch_f32(&c, "rope.freq_base", rope.theta));
    /* the rotary width: all of head_dim unless partial_rotary_factor (Phi-3,
     * Phi-4-mini); convert_hf_to_gguf writes it for llama and phi3 */
    const double prf = jnum(rope.p, "partial_rotary_factor", NULL, jnum(root, "partial_rotary_factor", NULL, 1.0));
    if (!(prf > 0 && prf <= 1)) {
        s = vki_fail(VKI_ERR_BAD_FILE, "%s: partial_rotary_factor %g is not in (0, 1]", src, prf);
        goto done;
    }
    const uint32_t rope_dims = (uint32_t)((double)hd * prf);
    if (!strcmp(arch, "llama") || phi3 || prf != 1.0) TRY(arch_u32(&c, "rope.dimension_count", rope_dims));
    TRY(map_rope_scaling(&c, &rope, rope_dims));
    if (gemma) TRY(map_gemma(&c, n_layer));
    if (!strcmp(arch, "qwen3moe")) TRY(map_moe(&c));
    if (!strncmp(arch, "qwen", 4)) {
        /* Qwen's optional sliding window (use_sliding_window) is not implemented */
        TRY(need_off(&c, "use_sliding_window", 0));
    }
    if (phi3) TRY(cfg_u32(&c, "attention.sliding_window", "sliding_window", NULL, false));
#undef TRY
done:
    cJSON_Delete(root);
    return s;
}

vki_status hf_map_pooling(vki_model_file *f, const char *src, const char *text, size_t len)
{
    cJSON *root = cJSON_ParseWithLength(text, len);
    vki_status s = VKI_OK;
    if (!cJSON_IsObject(root)) {
        s = vki_fail(VKI_ERR_BAD_FILE, "%s: not a JSON object", src);
        goto done;
    }
    uint32_t type = 0;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "pooling_mode_mean_tokens"))) type = 1;
    else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "pooling_mode_cls_token"))) type = 2;
    else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "pooling_mode_lasttoken"))) type = 3;
    vki_str a;
    if (type && vki_file_get_str(f, "general.architecture", &a) &&
        ((a.n == 4 && !memcmp(a.p, "bert", 4)) || (a.n == 10 && !memcmp(a.p, "nomic-bert", 10))))
        s = put_u32(f, a.n == 4 ? "bert.pooling_type" : "nomic-bert.pooling_type", type);
done:
    cJSON_Delete(root);
    return s;
}

/* ===== tokenizer.json ==================================================== */

/* String -> id hash over the vocabulary: merges and special tokens look ids
 * up by text, and a linear cJSON lookup would make that quadratic. */
typedef struct tok_map { uint64_t cap; int32_t *slot; const char **text; } tok_map;

static uint64_t fnv(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static int32_t tok_find(const tok_map *m, const char *s)
{
    if (!m->cap || !s) return -1;
    for (uint64_t h = fnv(s) & (m->cap - 1);; h = (h + 1) & (m->cap - 1)) {
        int32_t v = m->slot[h];
        if (v < 0) return -1;
        if (!strcmp(m->text[v], s)) return v;
    }
}

static void tok_put(tok_map *m, const char *s, int32_t id)
{
    uint64_t h = fnv(s) & (m->cap - 1);
    while (m->slot[h] >= 0) h = (h + 1) & (m->cap - 1);
    m->slot[h] = id;
}

/* The text of a special token named in tokenizer_config.json: a string or
 * an object {"content": ...}. */
static const char *special_text(const cJSON *cfg, const char *name)
{
    const cJSON *j = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, name) : NULL;
    if (cJSON_IsString(j)) return j->valuestring;
    if (cJSON_IsObject(j)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "content");
        if (cJSON_IsString(c)) return c->valuestring;
    }
    return NULL;
}

/* ----- normalizer, pre-tokenizer, decoder: mapped or refused -------------
 * Every component type is either mapped onto metadata the tokenizer applies
 * or refused with UNSUPPORTED: a tokenizer that silently skipped a step would
 * give different ids than the model was trained with. */

typedef struct pipe_map {
    const char *src;
    bool        spm, wordpiece, gpt2;  /* the family (tokenizer.ggml.model)   */
    bool        escaped;               /* SPM: the ' ' -> '▁' step was seen   */
    int         lowercase;             /* BertNormalizer lowercase, -1 = none */
    bool        bert_pre;              /* a BertPreTokenizer was seen         */
    bool        bytelevel_regex;       /* a ByteLevel with use_regex           */
    int         n_rx;
    const char *rx[16];                /* Split regexes in order (gpt2)       */
    char        steps[64][256];        /* tokenizer.hf.normalizer entries     */
    int         n_steps;
} pipe_map;

/* GPT-2's split pattern, as HF's ByteLevel pre-tokenizer runs it */
static const char rx_bytelevel[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static const char *jtype(const cJSON *j)
{
    const cJSON *t = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "type") : NULL;
    return cJSON_IsString(t) ? t->valuestring : NULL;
}

static const char *jstr(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static vki_status add_step(pipe_map *m, const char *a, const char *b, const char *c)
{
    if (m->n_steps == 64)
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: more than 64 normalizer steps", m->src);
    if (strchr(b ? b : "", 0x1f) || strchr(c ? c : "", 0x1f))
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: a %s normalizer argument holds U+001F, which the mapping reserves",
                        m->src, a);
    int n = snprintf(m->steps[m->n_steps], sizeof m->steps[0], "%s%s%s%s%s", a, b ? "\x1f" : "", b ? b : "",
                     c ? "\x1f" : "", c ? c : "");
    if (n < 0 || (size_t)n >= sizeof m->steps[0])
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: %s normalizer arguments longer than %zu bytes", m->src, a,
                        sizeof m->steps[0] - 16);
    m->n_steps++;
    return VKI_OK;
}

static vki_status map_normalizer(pipe_map *m, const cJSON *j)
{
    if (!j || cJSON_IsNull(j)) return VKI_OK;
    const char *type = jtype(j);
    if (!type) return vki_fail(VKI_ERR_BAD_FILE, "%s: normalizer without a \"type\"", m->src);
    if (!strcmp(type, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "normalizers")) VKI_TRY(map_normalizer(m, e));
        return VKI_OK;
    }
    /* the forms, lowercase and accent stripping commute with SPM's
     * ' ' -> '▁' escape (none of them touches either character) */
    if (!strcmp(type, "NFC") || !strcmp(type, "NFD") || !strcmp(type, "NFKC") || !strcmp(type, "NFKD") ||
        !strcmp(type, "Lowercase") || !strcmp(type, "StripAccents"))
        return add_step(m, type, NULL, NULL);
    if (!strcmp(type, "BertNormalizer")) {
        /* wordpiece.c runs BERT's normalizer with clean_text and
         * handle_chinese_chars on and accents stripped iff lowercase */
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(j, "clean_text");
        const cJSON *hc = cJSON_GetObjectItemCaseSensitive(j, "handle_chinese_chars");
        const cJSON *sa = cJSON_GetObjectItemCaseSensitive(j, "strip_accents");
        const cJSON *lc = cJSON_GetObjectItemCaseSensitive(j, "lowercase");
        const bool lower = !cJSON_IsFalse(lc);
        if (!m->wordpiece || cJSON_IsFalse(ct) || cJSON_IsFalse(hc) || (cJSON_IsBool(sa) && cJSON_IsTrue(sa) != lower))
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: BertNormalizer is supported for WordPiece with clean_text, "
                            "handle_chinese_chars and strip_accents null or equal to lowercase", m->src);
        m->lowercase = lower;
        return VKI_OK;
    }
    if (!strcmp(type, "Strip")) {
        if (m->escaped)
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: a Strip normalizer after the ' ' -> '\xe2\x96\x81' escape", m->src);
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(j, "strip_left");
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "strip_right");
        return add_step(m, "Strip", cJSON_IsTrue(l) ? "1" : "0", cJSON_IsTrue(r) ? "1" : "0");
    }
    if (!strcmp(type, "Replace")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(j, "pattern");
        const char *lit = jstr(pat, "String"), *content = jstr(j, "content");
        if (!lit || !content || !lit[0])
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: Replace normalizer with a %s pattern; only a non-empty literal "
                            "{\"String\": ...} is supported", m->src, jstr(pat, "Regex") ? "Regex" : "missing");
        if (m->spm && !strcmp(lit, " ") && !strcmp(content, "\xe2\x96\x81")) {
            m->escaped = true; /* spm.c escapes spaces itself */
            return VKI_OK;
        }
        if (m->escaped)
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: a Replace normalizer after the ' ' -> '\xe2\x96\x81' escape", m->src);
        return add_step(m, "Replace", lit, content);
    }
    if (!strcmp(type, "Prepend")) {
        const char *pre = jstr(j, "prepend");
        if (!pre) return vki_fail(VKI_ERR_BAD_FILE, "%s: Prepend normalizer without \"prepend\"", m->src);
        /* SPM's dummy prefix: tokenizer.ggml.add_space_prefix */
        if (m->spm && !strcmp(pre, "\xe2\x96\x81")) return VKI_OK;
        if (m->escaped)
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: a Prepend normalizer after the ' ' -> '\xe2\x96\x81' escape", m->src);
        return add_step(m, "Prepend", pre, NULL);
    }
    return vki_fail(VKI_ERR_UNSUPPORTED, "%s: normalizer type '%.40s' is not supported (Sequence, NFC, NFD, NFKC, NFKD, "
                    "Lowercase, StripAccents, Strip, Replace with a literal, Prepend, BertNormalizer are)", m->src, type);
}

static vki_status map_pretok(pipe_map *m, const cJSON *j)
{
    if (!j || cJSON_IsNull(j)) return VKI_OK;
    const char *type = jtype(j);
    if (!type) return vki_fail(VKI_ERR_BAD_FILE, "%s: pre_tokenizer without a \"type\"", m->src);
    if (!strcmp(type, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "pretokenizers")) VKI_TRY(map_pretok(m, e));
        return VKI_OK;
    }
    const char *rx = NULL;
    if (m->gpt2 && !strcmp(type, "Split")) {
        const char *beh = jstr(j, "behavior");
        rx = jstr(cJSON_GetObjectItemCaseSensitive(j, "pattern"), "Regex");
        if (!rx || (beh && strcmp(beh, "Isolated")) || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "invert")))
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: Split pre-tokenizer with %s, behavior '%.20s'%s; only a Regex "
                            "pattern, Isolated, not inverted is supported", m->src, rx ? "a Regex" : "a String pattern",
                            beh ? beh : "?", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "invert")) ? ", inverted" : "");
    } else if (m->gpt2 && !strcmp(type, "Digits")) {
        rx = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "individual_digits")) ? "\\p{N}" : "\\p{N}+";
    } else if (m->gpt2 && !strcmp(type, "ByteLevel")) {
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "add_prefix_space")))
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: ByteLevel pre-tokenizer with add_prefix_space is not supported",
                            m->src);
        const cJSON *ur = cJSON_GetObjectItemCaseSensitive(j, "use_regex");
        if (ur && !cJSON_IsTrue(ur)) return VKI_OK;
        m->bytelevel_regex = true;
        rx = rx_bytelevel;
    } else if (m->spm && !strcmp(type, "Metaspace")) {
        /* llama's SPM treats '▁' runs like any text; a Metaspace that
         * splits words at '▁' (its default) would change the ids */
        const char *rep = jstr(j, "replacement");
        if ((rep && strcmp(rep, "\xe2\x96\x81")) || !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "split")))
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: Metaspace pre-tokenizer that splits at '\xe2\x96\x81' (split "
                            "absent or true) or replaces with another character is not supported", m->src);
        m->escaped = true;
        return VKI_OK;
    } else if (m->wordpiece && !strcmp(type, "BertPreTokenizer")) {
        m->bert_pre = true;
        return VKI_OK;
    } else {
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: pre-tokenizer type '%.40s' is not supported for a %s vocabulary "
                        "(byte-level BPE: Split, Digits, ByteLevel; SPM: Metaspace; WordPiece: BertPreTokenizer)",
                        m->src, type, m->spm ? "SPM" : m->wordpiece ? "WordPiece" : "byte-level BPE");
    }
    if (m->n_rx == (int)VKI_COUNT(m->rx))
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: more than %d pre-tokenizer patterns", m->src, (int)VKI_COUNT(m->rx));
    m->rx[m->n_rx++] = rx;
    return VKI_OK;
}

static vki_status check_decoder(pipe_map *m, const cJSON *j)
{
    if (!j || cJSON_IsNull(j)) return VKI_OK;
    const char *type = jtype(j);
    if (!type) return vki_fail(VKI_ERR_BAD_FILE, "%s: decoder without a \"type\"", m->src);
    if (!strcmp(type, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "decoders")) VKI_TRY(check_decoder(m, e));
        return VKI_OK;
    }
    if (m->gpt2 && !strcmp(type, "ByteLevel")) return VKI_OK;
    if (m->wordpiece && !strcmp(type, "WordPiece")) {
        const char *pre = jstr(j, "prefix");
        if (!pre || !strcmp(pre, "##")) return VKI_OK;
    }
    if (m->spm) {
        if (!strcmp(type, "Metaspace") || !strcmp(type, "ByteFallback") || !strcmp(type, "Fuse")) return VKI_OK;
        const char *lit = jstr(cJSON_GetObjectItemCaseSensitive(j, "pattern"), "String");
        if (!strcmp(type, "Replace") && lit && !strcmp(lit, "\xe2\x96\x81") && jstr(j, "content") &&
            !strcmp(jstr(j, "content"), " "))
            return VKI_OK;
        /* the leading space of the dummy prefix: tokenizer.c strips it */
        const cJSON *start = cJSON_GetObjectItemCaseSensitive(j, "start");
        const cJSON *stop = cJSON_GetObjectItemCaseSensitive(j, "stop");
        if (!strcmp(type, "Strip") && jstr(j, "content") && !strcmp(jstr(j, "content"), " ") && cJSON_IsNumber(start) &&
            start->valuedouble <= 1 && cJSON_IsNumber(stop) && stop->valuedouble == 0)
            return VKI_OK;
    }
    return vki_fail(VKI_ERR_UNSUPPORTED, "%s: decoder '%.40s' (with these settings) is not supported for a %s vocabulary",
                    m->src, type, m->spm ? "SPM" : m->wordpiece ? "WordPiece" : "byte-level BPE");
}

/* True when a normalizer or pre-tokenizer prepends "▁" (SPM's space prefix). */
static bool prepends_space(const cJSON *j)
{
    if (!j) return false;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
    if (cJSON_IsString(type)) {
        if (!strcmp(type->valuestring, "Prepend")) return true;
        if (!strcmp(type->valuestring, "Metaspace")) {
            const cJSON *ps = cJSON_GetObjectItemCaseSensitive(j, "prepend_scheme");
            const cJSON *ap = cJSON_GetObjectItemCaseSensitive(j, "add_prefix_space");
            return cJSON_IsTrue(ap) || (cJSON_IsString(ps) && strcmp(ps->valuestring, "never"));
        }
    }
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "normalizers");
    if (!list) list = cJSON_GetObjectItemCaseSensitive(j, "pretokenizers");
    const cJSON *e;
    cJSON_ArrayForEach(e, list) if (prepends_space(e)) return true;
    return false;
}

/* add_bos/add_eos from a TemplateProcessing post-processor's "single". */
static void template_adds(const cJSON *pp, const char *bos, const char *eos, int *add_bos, int *add_eos)
{
    const cJSON *type = pp ? cJSON_GetObjectItemCaseSensitive(pp, "type") : NULL;
    if (!cJSON_IsString(type)) return;
    if (!strcmp(type->valuestring, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(pp, "processors")) template_adds(e, bos, eos, add_bos, add_eos);
        return;
    }
    if (strcmp(type->valuestring, "TemplateProcessing")) return;
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
    const int n = cJSON_GetArraySize(single);
    if (n == 0) return;
    const cJSON *first = cJSON_GetArrayItem(single, 0), *last = cJSON_GetArrayItem(single, n - 1);
    const cJSON *fs = cJSON_GetObjectItemCaseSensitive(first, "SpecialToken");
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(last, "SpecialToken");
    const cJSON *fid = fs ? cJSON_GetObjectItemCaseSensitive(fs, "id") : NULL;
    const cJSON *lid = ls ? cJSON_GetObjectItemCaseSensitive(ls, "id") : NULL;
    *add_bos = cJSON_IsString(fid) && bos && !strcmp(fid->valuestring, bos);
    *add_eos = cJSON_IsString(lid) && eos && !strcmp(lid->valuestring, eos);
}

/* ----- Unigram: the charsmap and HF's whitespace rules ------------------
 * A Unigram tokenizer.json becomes tokenizer.ggml.model = "t5" (ugm.c).
 * The normalizer is [Precompiled] [steps normalize.c runs] [Replace(Regex
 * " {2,}" -> " " or "▁")]; the pre-tokenizer is Metaspace, optionally after
 * WhitespaceSplit. Written as tokenizer.ggml.precompiled_charsmap and
 * tokenizer.hf.ugm_prepend/_whitespace_split/_collapse_spaces/
 * _metaspace_split; anything else is refused. */

static int b64_val(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

static vki_status put_charsmap(vki_model_file *f, const char *src, const char *b64)
{
    size_t n = strlen(b64);
    while (n && b64[n - 1] == '=') n--;
    vki_kv kv;
    if (!new_array(f, VKI_KV_U8, n * 3 / 4, &kv) && n * 3 / 4)
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory for the charsmap", src);
    uint32_t acc = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val(b64[i]);
        if (v < 0)
            return vki_fail(VKI_ERR_BAD_FILE, "%s: Precompiled precompiled_charsmap: byte %zu ('%c') is not base64", src,
                            i, b64[i]);
        acc = acc << 6 | (uint32_t)v;
        if (i % 4 == 3 || i + 1 == n) {
            /* a group of 4 characters is 3 bytes; a tail of 2 or 3 is 1 or 2 */
            int chars = (int)(i % 4) + 1, bytes = chars == 4 ? 3 : chars - 1;
            acc <<= 6 * (4 - chars);
            for (int b = 0; b < bytes && k < kv.v.arr.n; b++) kv.v.arr.items[k++].v.u = (acc >> (16 - 8 * b)) & 0xff;
            acc = 0;
        }
    }
    kv.v.arr.n = k;
    return put(f, "tokenizer.ggml.precompiled_charsmap", kv);
}

typedef struct ugm_map {
    const cJSON *charsmap;     /* the Precompiled step (first), or NULL */
    const cJSON *steps[64];    /* steps between it and the collapse      */
    int          n_steps;
    bool         collapse;     /* a trailing Replace(" {2,}")            */
} ugm_map;

static vki_status ugm_flatten(ugm_map *u, const char *src, const cJSON *j)
{
    if (!j || cJSON_IsNull(j)) return VKI_OK;
    const char *type = jtype(j);
    if (!type) return vki_fail(VKI_ERR_BAD_FILE, "%s: normalizer without a \"type\"", src);
    if (!strcmp(type, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "normalizers")) VKI_TRY(ugm_flatten(u, src, e));
        return VKI_OK;
    }
    if (u->collapse)
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: Unigram normalizer '%.40s' after the Replace(\" {2,}\") collapse; "
                        "only Precompiled, then other steps, then the collapse are supported", src, type);
    if (!strcmp(type, "Precompiled")) {
        if (u->charsmap || u->n_steps)
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: a Precompiled normalizer that is not the first step", src);
        u->charsmap = j;
        return VKI_OK;
    }
    const char *rx = jstr(cJSON_GetObjectItemCaseSensitive(j, "pattern"), "Regex"), *content = jstr(j, "content");
    if (!strcmp(type, "Replace") && rx && !strcmp(rx, " {2,}") && content &&
        (!strcmp(content, " ") || !strcmp(content, "\xe2\x96\x81"))) {
        /* runs of spaces become one; as ' ' or as '▁' alike, since
         * Metaspace escapes ' ' before it looks at the first character */
        u->collapse = true;
        return VKI_OK;
    }
    if (u->n_steps == (int)VKI_COUNT(u->steps))
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: more than %d normalizer steps", src, (int)VKI_COUNT(u->steps));
    u->steps[u->n_steps++] = j;
    return VKI_OK;
}

/* Metaspace's settings: replacement '▁', prepend_scheme (or the older
 * add_prefix_space), split (default true). */
static vki_status ugm_metaspace(vki_model_file *f, const char *src, const cJSON *j, bool *prefix)
{
    const char *rep = jstr(j, "replacement"), *ps = jstr(j, "prepend_scheme");
    const cJSON *ap = cJSON_GetObjectItemCaseSensitive(j, "add_prefix_space");
    const cJSON *split = cJSON_GetObjectItemCaseSensitive(j, "split");
    if (rep && strcmp(rep, "\xe2\x96\x81"))
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: Metaspace replacement '%.16s' (only '\xe2\x96\x81' is supported)",
                        src, rep);
    const char *scheme = ps ? ps : (!ap || cJSON_IsTrue(ap)) ? "always" : "never";
    if (strcmp(scheme, "always") && strcmp(scheme, "first") && strcmp(scheme, "never"))
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: Metaspace prepend_scheme '%.16s' (always, first, never are "
                        "supported)", src, scheme);
    *prefix = strcmp(scheme, "never") != 0;
    VKI_TRY(put_str(f, "tokenizer.hf.ugm_prepend", scheme, strlen(scheme)));
    return put_bool(f, "tokenizer.hf.ugm_metaspace_split", !cJSON_IsFalse(split));
}

static vki_status map_unigram(vki_model_file *f, pipe_map *pm, const cJSON *root)
{
    const char *src = pm->src;
    ugm_map *u = calloc(1, sizeof *u);
    if (!u) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", src);
    vki_status s = ugm_flatten(u, src, cJSON_GetObjectItemCaseSensitive(root, "normalizer"));
    if (s == VKI_OK && u->charsmap) {
        const char *b64 = jstr(u->charsmap, "precompiled_charsmap");
        if (!b64) s = vki_fail(VKI_ERR_BAD_FILE, "%s: Precompiled normalizer without precompiled_charsmap", src);
        else if (b64[0]) s = put_charsmap(f, src, b64);
    }
    /* the steps between run as normalize.c steps (mapped as for any model) */
    for (int i = 0; s == VKI_OK && i < u->n_steps; i++) s = map_normalizer(pm, u->steps[i]);
    if (s == VKI_OK && pm->escaped)
        s = vki_fail(VKI_ERR_UNSUPPORTED, "%s: a Unigram normalizer that replaces ' ' with '\xe2\x96\x81' before the "
                     "Metaspace pre-tokenizer", src);
    if (s == VKI_OK) s = put_bool(f, "tokenizer.hf.ugm_collapse_spaces", u->collapse);
    free(u);
    if (s != VKI_OK) return s;

    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), *meta = pre;
    bool ws_split = false, prefix = false;
    const char *type = jtype(pre);
    if (type && !strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
        const int n = cJSON_GetArraySize(list);
        const char *t0 = jtype(cJSON_GetArrayItem(list, 0));
        ws_split = n == 2 && t0 && !strcmp(t0, "WhitespaceSplit");
        meta = n == 1 ? cJSON_GetArrayItem(list, 0) : n == 2 && ws_split ? cJSON_GetArrayItem(list, 1) : NULL;
    }
    type = jtype(meta);
    if (!type || strcmp(type, "Metaspace"))
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: a Unigram pre-tokenizer other than Metaspace or [WhitespaceSplit, "
                        "Metaspace] ('%.40s') is not supported", src, jtype(pre) ? jtype(pre) : "none");
    VKI_TRY(ugm_metaspace(f, src, meta, &prefix));
    VKI_TRY(put_bool(f, "tokenizer.hf.ugm_whitespace_split", ws_split));
    /* decoders: Metaspace, or Replace/ByteFallback/Fuse/Strip (SPM's set) */
    VKI_TRY(check_decoder(pm, cJSON_GetObjectItemCaseSensitive(root, "decoder")));
    return put_bool(f, "tokenizer.ggml.add_space_prefix", prefix);
}

typedef struct tok_build {
    vki_model_file *f;
    const char     *src;
    int32_t         n;       /* vocabulary size (max id + 1)            */
    const char    **text;    /* [n] token text (cJSON-owned or arena)   */
    int32_t        *type;    /* [n] GGUF token types                    */
    float          *score;   /* [n]                                     */
    tok_map         map;
} tok_build;

static vki_status set_token(tok_build *b, int64_t id, const char *text)
{
    if (id < 0 || id >= b->n)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: token '%.64s' has id %lld outside 0..%d", b->src, text, (long long)id,
                        b->n - 1);
    if (b->text[id] && strcmp(b->text[id], text))
        return vki_fail(VKI_ERR_BAD_FILE, "%s: id %lld names both '%.64s' and '%.64s'", b->src, (long long)id,
                        b->text[id], text);
    b->text[id] = text;
    return VKI_OK;
}

static vki_status write_tokens(tok_build *b, const char *model)
{
    vki_model_file *f = b->f;
    vki_kv toks, types, scores;
    if (!new_array(f, VKI_KV_STRING, (uint64_t)b->n, &toks) || !new_array(f, VKI_KV_I32, (uint64_t)b->n, &types) ||
        !new_array(f, VKI_KV_F32, (uint64_t)b->n, &scores))
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory for %d tokens", b->src, b->n);
    for (int32_t i = 0; i < b->n; i++) {
        char pad[32];
        const char *t = b->text[i];
        if (!t) {
            snprintf(pad, sizeof pad, "[PAD%d]", i);
            t = pad;
        }
        size_t n = strlen(t);
        char *c = ld_strdup(&f->arena, t, n);
        if (!c) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", b->src);
        toks.v.arr.items[i].v.s = (vki_str){c, n};
        types.v.arr.items[i].v.i = b->text[i] ? b->type[i] : 5; /* holes: unused */
        scores.v.arr.items[i].v.f = b->score[i];
    }
    VKI_TRY(put_str(f, "tokenizer.ggml.model", model, strlen(model)));
    VKI_TRY(put(f, "tokenizer.ggml.tokens", toks));
    VKI_TRY(put(f, "tokenizer.ggml.token_type", types));
    if (!strcmp(model, "llama") || !strcmp(model, "t5")) VKI_TRY(put(f, "tokenizer.ggml.scores", scores));
    return VKI_OK;
}

vki_status hf_map_tokenizer(vki_model_file *f, const char *src, const char *text, size_t len,
                            const char *config_text, size_t config_len)
{
    cJSON *root = cJSON_ParseWithLength(text, len);
    cJSON *cfg = config_text ? cJSON_ParseWithLength(config_text, config_len) : NULL;
    tok_build b = {.f = f, .src = src};
    char **merge_buf = NULL;
    uint64_t n_merge_buf = 0;
    pipe_map *pm = NULL;
    vki_status s = VKI_OK;
    const cJSON *model = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "model") : NULL;
    const cJSON *mtype = model ? cJSON_GetObjectItemCaseSensitive(model, "type") : NULL;
    const cJSON *vocab = model ? cJSON_GetObjectItemCaseSensitive(model, "vocab") : NULL;
    if (!cJSON_IsString(mtype) || !vocab) {
        s = vki_fail(VKI_ERR_BAD_FILE, "%s: no model.type and model.vocab", src);
        goto done;
    }
    const bool unigram = !strcmp(mtype->valuestring, "Unigram");
    const bool wordpiece = !strcmp(mtype->valuestring, "WordPiece");
    const bool bpe = !strcmp(mtype->valuestring, "BPE");
    if (!unigram && !wordpiece && !bpe) {
        s = vki_fail(VKI_ERR_UNSUPPORTED, "%s: tokenizer model type '%.32s' is not supported", src, mtype->valuestring);
        goto done;
    }
    if (unigram ? !cJSON_IsArray(vocab) : !cJSON_IsObject(vocab)) {
        s = vki_fail(VKI_ERR_BAD_FILE, "%s: model.vocab has the wrong JSON type for %s", src, mtype->valuestring);
        goto done;
    }
    /* vocabulary size: the largest id over vocab and added_tokens, + 1 */
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    int64_t max_id = -1, id;
    const cJSON *e;
    int64_t count = 0;
    cJSON_ArrayForEach(e, vocab) {
        count++;
        if (unigram) max_id = count - 1;
        else if (!jint(e, 0, HF_MAX_VOCAB - 1, &id)) {
            s = vki_fail(VKI_ERR_BAD_FILE, "%s: token '%.64s' has no valid id", src, e->string ? e->string : "");
            goto done;
        } else if (id > max_id) max_id = id;
    }
    cJSON_ArrayForEach(e, added) {
        count++;
        if (jint(cJSON_GetObjectItemCaseSensitive(e, "id"), 0, HF_MAX_VOCAB - 1, &id) && id > max_id) max_id = id;
    }
    if (max_id < 0 || max_id >= HF_MAX_VOCAB) {
        s = vki_fail(VKI_ERR_BAD_FILE, "%s: empty vocabulary", src);
        goto done;
    }
    /* Holes (ids no token names) are filled, but a few bytes naming id
     * 16777215 must not cost gigabytes (fuzz_hf_json spent its time there):
     * real vocabularies are dense, so at least half the ids must be named. */
    if (max_id + 1 > 2 * count + HF_MAX_HOLES) {
        s = vki_fail(VKI_ERR_BAD_FILE, "%s: ids up to %lld for %lld tokens: a vocabulary that is mostly holes",
                     src, (long long)max_id, (long long)count);
        goto done;
    }
    b.n = (int32_t)max_id + 1;
    b.text = calloc((size_t)b.n, sizeof *b.text);
    b.type = calloc((size_t)b.n, sizeof *b.type);
    b.score = calloc((size_t)b.n, sizeof *b.score);
    b.map.cap = 64;
    while (b.map.cap < (uint64_t)b.n * 2) b.map.cap *= 2;
    b.map.slot = malloc(b.map.cap * sizeof *b.map.slot);
    if (!b.text || !b.type || !b.score || !b.map.slot) {
        s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory for %d tokens", src, b.n);
        goto done;
    }
    memset(b.map.slot, 0xff, b.map.cap * sizeof *b.map.slot);
    b.map.text = b.text;
    int64_t i = 0;
    cJSON_ArrayForEach(e, vocab) {
        const char *t;
        float sc = 0.0f;
        if (unigram) {
            const cJSON *p = cJSON_GetArrayItem(e, 0), *q = cJSON_GetArrayItem(e, 1);
            if (!cJSON_IsString(p) || !cJSON_IsNumber(q)) {
                s = vki_fail(VKI_ERR_BAD_FILE, "%s: Unigram vocab entry %lld is not [piece, score]", src, (long long)i);
                goto done;
            }
            t = p->valuestring;
            sc = (float)q->valuedouble;
            id = i;
        } else {
            t = e->string;
            id = (int64_t)e->valuedouble;
        }
        if ((s = set_token(&b, id, t)) != VKI_OK) goto done;
        b.type[id] = 1;
        b.score[id] = sc;
        i++;
    }
    cJSON_ArrayForEach(e, added) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!cJSON_IsString(c) || !jint(cJSON_GetObjectItemCaseSensitive(e, "id"), 0, HF_MAX_VOCAB - 1, &id)) {
            s = vki_fail(VKI_ERR_BAD_FILE, "%s: added_tokens entry without content or id", src);
            goto done;
        }
        if ((s = set_token(&b, id, c->valuestring)) != VKI_OK) goto done;
        b.type[id] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special")) ? 3 : 4;
    }
    for (int32_t k = 0; k < b.n; k++)
        if (b.text[k] && tok_find(&b.map, b.text[k]) < 0) tok_put(&b.map, b.text[k], k);

    const cJSON *bf = cJSON_GetObjectItemCaseSensitive(model, "byte_fallback");
    const bool spm = unigram || (bpe && cJSON_IsTrue(bf));
    const char *gmodel = wordpiece ? "bert" : unigram ? "t5" : spm ? "llama" : "gpt2";

    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (cJSON_IsString(unk) && (id = tok_find(&b.map, unk->valuestring)) >= 0) b.type[id] = 2;
    if (unigram && jint(cJSON_GetObjectItemCaseSensitive(model, "unk_id"), 0, b.n - 1, &id)) b.type[id] = 2;
    if (spm) {
        for (int32_t k = 0; k < b.n; k++) {
            const char *t = b.text[k];
            if (t && strlen(t) == 6 && !strncmp(t, "<0x", 3) && t[5] == '>') b.type[k] = 6;
        }
    }

    /* merges: "a b" strings or ["a", "b"] pairs */
    const cJSON *merges = bpe ? cJSON_GetObjectItemCaseSensitive(model, "merges") : NULL;
    const int n_merges = cJSON_GetArraySize(merges);
    if (bpe) {
        if (spm) {
            for (int32_t k = 0; k < b.n; k++) b.score[k] = -1e9f;
        } else {
            merge_buf = calloc((size_t)VKI_MAX(n_merges, 1), sizeof *merge_buf);
            if (!merge_buf) {
                s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory for merges", src);
                goto done;
            }
        }
        int r = 0;
        char *joined = NULL;
        cJSON_ArrayForEach(e, merges) {
            const char *l, *rt;
            char *sp = NULL;
            if (cJSON_IsString(e)) {
                sp = strchr(e->valuestring + (e->valuestring[0] ? 1 : 0), ' ');
                if (!sp) {
                    s = vki_fail(VKI_ERR_BAD_FILE, "%s: merge %d ('%.64s') has no space", src, r, e->valuestring);
                    break;
                }
                l = e->valuestring;
                rt = sp + 1;
            } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                       cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
                l = cJSON_GetArrayItem(e, 0)->valuestring;
                rt = cJSON_GetArrayItem(e, 1)->valuestring;
            } else {
                s = vki_fail(VKI_ERR_BAD_FILE, "%s: merge %d is neither \"a b\" nor [a, b]", src, r);
                break;
            }
            const size_t nl = sp ? (size_t)(sp - l) : strlen(l), nr = strlen(rt);
            joined = malloc(nl + nr + 2);
            if (!joined) {
                s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory for merges", src);
                break;
            }
            if (spm) {
                memcpy(joined, l, nl);
                memcpy(joined + nl, rt, nr + 1);
                int32_t t = tok_find(&b.map, joined);
                if (t >= 0 && b.score[t] == -1e9f) b.score[t] = -(float)(r + 1);
                free(joined);
            } else {
                memcpy(joined, l, nl);
                joined[nl] = ' ';
                memcpy(joined + nl + 1, rt, nr + 1);
                merge_buf[n_merge_buf++] = joined;
            }
            joined = NULL;
            r++;
        }
        if (s != VKI_OK) goto done;
        if (!spm) {
            vki_kv mk;
            if (!new_array(f, VKI_KV_STRING, n_merge_buf, &mk) && n_merge_buf) {
                s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory for merges", src);
                goto done;
            }
            for (uint64_t k = 0; k < n_merge_buf; k++) {
                size_t n = strlen(merge_buf[k]);
                char *c = ld_strdup(&f->arena, merge_buf[k], n);
                if (!c) {
                    s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", src);
                    goto done;
                }
                mk.v.arr.items[k].v.s = (vki_str){c, n};
            }
            if ((s = put(f, "tokenizer.ggml.merges", mk)) != VKI_OK) goto done;
        }
        const cJSON *im = cJSON_GetObjectItemCaseSensitive(model, "ignore_merges");
        if (cJSON_IsBool(im) && (s = put_bool(f, "tokenizer.hf.ignore_merges", cJSON_IsTrue(im))) != VKI_OK) goto done;
    }
    if ((s = write_tokens(&b, gmodel)) != VKI_OK) goto done;

    /* special tokens */
    static const struct { const char *cfg, *key; bool bert; bool other; } specials[] = {
        {"bos_token", "tokenizer.ggml.bos_token_id", false, true},
        {"eos_token", "tokenizer.ggml.eos_token_id", false, true},
        {"unk_token", "tokenizer.ggml.unknown_token_id", true, true},
        {"pad_token", "tokenizer.ggml.padding_token_id", true, true},
        {"cls_token", "tokenizer.ggml.cls_token_id", true, false},
        {"sep_token", "tokenizer.ggml.seperator_token_id", true, false},
        {"mask_token", "tokenizer.ggml.mask_token_id", true, false},
    };
    for (size_t k = 0; k < VKI_COUNT(specials); k++) {
        if (wordpiece ? !specials[k].bert : !specials[k].other) continue;
        const char *t = special_text(cfg, specials[k].cfg);
        if (!t && !strcmp(specials[k].cfg, "unk_token") && cJSON_IsString(unk)) t = unk->valuestring;
        int32_t tid = tok_find(&b.map, t);
        if (tid >= 0 && (s = put_u32(f, specials[k].key, (uint32_t)tid)) != VKI_OK) goto done;
    }
    /* HF adds exactly what the post-processor says: nothing unless told */
    int add_bos = 0, add_eos = 0;
    template_adds(cJSON_GetObjectItemCaseSensitive(root, "post_processor"), special_text(cfg, "bos_token"),
                  special_text(cfg, "eos_token"), &add_bos, &add_eos);
    const cJSON *ab = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token") : NULL;
    const cJSON *ae = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token") : NULL;
    if (cJSON_IsBool(ab)) add_bos = cJSON_IsTrue(ab);
    if (cJSON_IsBool(ae)) add_eos = cJSON_IsTrue(ae);
    if (!wordpiece) {
        if (add_bos >= 0 && (s = put_bool(f, "tokenizer.ggml.add_bos_token", add_bos)) != VKI_OK) goto done;
        if (add_eos >= 0 && (s = put_bool(f, "tokenizer.ggml.add_eos_token", add_eos)) != VKI_OK) goto done;
    }
    if (spm && !unigram) {
        bool prefix = prepends_space(cJSON_GetObjectItemCaseSensitive(root, "normalizer")) ||
                      prepends_space(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"));
        if ((s = put_bool(f, "tokenizer.ggml.add_space_prefix", prefix)) != VKI_OK) goto done;
    }
    /* chat template: a string, or a list of {name, template} (take "default") */
    const cJSON *ct = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "chat_template") : NULL;
    if (cJSON_IsArray(ct)) {
        const cJSON *pick = NULL;
        cJSON_ArrayForEach(e, ct) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
            if (cJSON_IsString(nm) && !strcmp(nm->valuestring, "default")) pick = e;
        }
        ct = pick ? cJSON_GetObjectItemCaseSensitive(pick, "template") : NULL;
    }
    if (cJSON_IsString(ct) && (s = put_str(f, "tokenizer.chat_template", ct->valuestring, strlen(ct->valuestring))) != VKI_OK)
        goto done;
    /* normalizer, pre-tokenizer, decoder */
    pm = calloc(1, sizeof *pm);
    if (!pm) {
        s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", src);
        goto done;
    }
    *pm = (pipe_map){.src = src, .spm = spm, .wordpiece = wordpiece, .gpt2 = bpe && !spm, .lowercase = -1};
    if (unigram) {
        if ((s = map_unigram(f, pm, root)) != VKI_OK) goto done;
    } else if ((s = map_normalizer(pm, cJSON_GetObjectItemCaseSensitive(root, "normalizer"))) != VKI_OK ||
        (s = map_pretok(pm, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"))) != VKI_OK ||
        (s = check_decoder(pm, cJSON_GetObjectItemCaseSensitive(root, "decoder"))) != VKI_OK)
        goto done;
    if (spm && !unigram && !pm->escaped) {
        s = vki_fail(VKI_ERR_UNSUPPORTED, "%s: an SPM-style vocabulary whose normalizer and pre-tokenizer never map "
                     "' ' to '\xe2\x96\x81' is not supported", src);
        goto done;
    }
    if (wordpiece && !pm->bert_pre) {
        s = vki_fail(VKI_ERR_UNSUPPORTED, "%s: a WordPiece tokenizer without BertPreTokenizer is not supported", src);
        goto done;
    }
    if (pm->lowercase >= 0 && (s = put_bool(f, "tokenizer.ggml.lowercase", pm->lowercase)) != VKI_OK) goto done;
    if (pm->n_steps > 0) {
        vki_kv a;
        if (!new_array(f, VKI_KV_STRING, (uint64_t)pm->n_steps, &a)) {
            s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", src);
            goto done;
        }
        for (int k = 0; k < pm->n_steps; k++) {
            size_t n = strlen(pm->steps[k]);
            char *c = ld_strdup(&f->arena, pm->steps[k], n);
            if (!c) {
                s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", src);
                goto done;
            }
            a.v.arr.items[k].v.s = (vki_str){c, n};
        }
        if ((s = put(f, "tokenizer.hf.normalizer", a)) != VKI_OK) goto done;
    }
    /* a bare ByteLevel is GPT-2's family; anything else runs its patterns */
    if (pm->gpt2 && pm->n_rx == 1 && pm->bytelevel_regex) {
        if ((s = put_str(f, "tokenizer.ggml.pre", "gpt-2", 5)) != VKI_OK) goto done;
    } else if (pm->gpt2 && pm->n_rx > 0) {
        vki_kv a;
        if (!new_array(f, VKI_KV_STRING, (uint64_t)pm->n_rx, &a)) {
            s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", src);
            goto done;
        }
        for (int k = 0; k < pm->n_rx; k++) {
            char *c = ld_strdup(&f->arena, pm->rx[k], strlen(pm->rx[k]));
            if (!c) {
                s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", src);
                goto done;
            }
            a.v.arr.items[k].v.s = (vki_str){c, strlen(c)};
        }
        if ((s = put(f, "tokenizer.hf.pre_regex", a)) != VKI_OK) goto done;
    }
done:
    free(pm);
    for (uint64_t k = 0; k < n_merge_buf; k++) free(merge_buf[k]);
    free(merge_buf);
    free(b.text);
    free(b.type);
    free(b.score);
    free(b.map.slot);
    cJSON_Delete(cfg);
    cJSON_Delete(root);
    return s;
}

/* ===== Tensor names ====================================================== */

typedef struct name_rule { const char *hf, *gguf; } name_rule;

/* Per-layer suffixes (after "model.layers.N." / "encoder.layer.N."). */
static const name_rule llama_layer[] = {
    {"self_attn.q_proj", "attn_q"},      {"self_attn.k_proj", "attn_k"},     {"self_attn.v_proj", "attn_v"},
    {"self_attn.o_proj", "attn_output"}, {"mlp.gate_proj", "ffn_gate"},      {"mlp.up_proj", "ffn_up"},
    {"mlp.down_proj", "ffn_down"},       {"input_layernorm", "attn_norm"},   {"post_attention_layernorm", "ffn_norm"},
    {"self_attn.q_norm", "attn_q_norm"}, {"self_attn.k_norm", "attn_k_norm"}, /* qwen3 */
    {"mlp.gate", "ffn_gate_inp"},                                             /* qwen3_moe's router */
    {"self_attn.qkv_proj", "attn_qkv"},  {"mlp.gate_up_proj", "ffn_up"},      /* phi3: fused, Q|K|V and gate|up rows */
};
/* Gemma norms around both blocks; searched before llama_layer. */
static const name_rule gemma_layer[] = {
    {"post_attention_layernorm", "post_attention_norm"}, {"pre_feedforward_layernorm", "ffn_norm"},
    {"post_feedforward_layernorm", "post_ffw_norm"},
};
static const name_rule llama_top[] = {
    {"model.embed_tokens", "token_embd"}, {"model.norm", "output_norm"}, {"lm_head", "output"},
};
static const name_rule bert_layer[] = {
    {"attention.self.query", "attn_q"},        {"attention.self.key", "attn_k"},
    {"attention.self.value", "attn_v"},        {"attention.output.dense", "attn_output"},
    {"attention.output.LayerNorm", "attn_output_norm"}, {"intermediate.dense", "ffn_up"},
    {"output.dense", "ffn_down"},              {"output.LayerNorm", "layer_output_norm"},
};
static const name_rule bert_top[] = {
    {"embeddings.word_embeddings", "token_embd"},      {"embeddings.position_embeddings", "position_embd"},
    {"embeddings.token_type_embeddings", "token_types"}, {"embeddings.LayerNorm", "token_embd_norm"},
};
/* nomic-embed's checkpoint names ("encoder.layers.N."; SwiGLU: fc11 up, fc12 gate). */
static const name_rule nomic_layer[] = {
    {"attn.Wqkv", "attn_qkv"}, {"attn.out_proj", "attn_output"}, {"mlp.fc11", "ffn_up"}, {"mlp.fc12", "ffn_gate"},
    {"mlp.fc2", "ffn_down"},   {"norm1", "attn_output_norm"},    {"norm2", "layer_output_norm"},
};
static const name_rule nomic_top[] = {
    {"embeddings.word_embeddings", "token_embd"}, {"embeddings.token_type_embeddings", "token_types"},
    {"emb_ln", "token_embd_norm"},
};

/* ".weight"/".bias" (LayerNorm's old "gamma"/"beta" too) -> GGUF suffix. */
static const char *param_suffix(const char *p)
{
    if (!strcmp(p, "weight") || !strcmp(p, "gamma")) return "weight";
    if (!strcmp(p, "bias") || !strcmp(p, "beta")) return "bias";
    return NULL;
}

/* 1 matched and written, 0 no rule, -1 matched but unusable. */
static int match_rule(const name_rule *rules, size_t n, const char *s, const char *blk, char *out, size_t cap)
{
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(rules[i].hf);
        if (strncmp(s, rules[i].hf, l) || s[l] != '.') continue;
        const char *suf = param_suffix(s + l + 1);
        if (!suf) return -1;
        int w = blk ? snprintf(out, cap, "blk.%s.%s.%s", blk, rules[i].gguf, suf)
                    : snprintf(out, cap, "%s.%s", rules[i].gguf, suf);
        return w > 0 && (size_t)w < cap ? 1 : -1;
    }
    return 0;
}

bool hf_tensor_name(const char *arch, const char *hf, char *out, size_t cap)
{
    const bool bert = !strcmp(arch, "bert"), nomic = !strcmp(arch, "nomic-bert");
    const char *layer_prefix = bert ? "encoder.layer." : nomic ? "encoder.layers." : "model.layers.";
    if (bert && !strncmp(hf, "bert.", 5)) hf += 5;
    const size_t lp = strlen(layer_prefix);
    if (!strncmp(hf, layer_prefix, lp)) {
        const char *p = hf + lp;
        char blk[16];
        size_t k = 0;
        while (p[k] >= '0' && p[k] <= '9' && k < 8) k++;
        if (k == 0 || p[k] != '.') return false;
        memcpy(blk, p, k);
        blk[k] = '\0';
        p += k + 1;
        if (bert) return match_rule(bert_layer, VKI_COUNT(bert_layer), p, blk, out, cap) > 0;
        if (nomic) return match_rule(nomic_layer, VKI_COUNT(nomic_layer), p, blk, out, cap) > 0;
        int m = !strncmp(arch, "gemma", 5) ? match_rule(gemma_layer, VKI_COUNT(gemma_layer), p, blk, out, cap) : 0;
        if (m == 0) m = match_rule(llama_layer, VKI_COUNT(llama_layer), p, blk, out, cap);
        return m > 0;
    }
    if (bert) return match_rule(bert_top, VKI_COUNT(bert_top), hf, NULL, out, cap) > 0;
    if (nomic) return match_rule(nomic_top, VKI_COUNT(nomic_top), hf, NULL, out, cap) > 0;
    return match_rule(llama_top, VKI_COUNT(llama_top), hf, NULL, out, cap) > 0;
}

/* Tensors a GGUF conversion leaves out (derived buffers, unused heads). */
static bool dropped(const char *arch, const char *hf)
{
    if (strstr(hf, "rotary_emb.inv_freq") || strstr(hf, "position_ids")) return true;
    if (!strcmp(arch, "bert") && (!strncmp(hf, "pooler.", 7) || !strncmp(hf, "bert.pooler.", 12) ||
                                  !strncmp(hf, "cls.", 4)))
        return true;
    if (!strcmp(arch, "nomic-bert") && (!strncmp(hf, "pooler.", 7) || !strncmp(hf, "cls.", 4))) return true;
    return false;
}

static bool ends_with(const char *s, const char *suffix)
{
    const size_t n = strlen(s), k = strlen(suffix);
    return n > k && !strcmp(s + n - k, suffix);
}

/* ----- MoE experts ----------------------------------------------------------
 * HF stores one matrix per expert, "model.layers.L.mlp.experts.E.gate_proj.weight"
 * [n_ff_exp, n_embd]; GGUF has one blk.L.ffn_gate_exps.weight {n_embd,
 * n_ff_exp, n_expert} per layer. The loader describes it as a tensor of
 * n_expert parts (vki_tensor_info.parts), each part one expert's mapping. */

static const char *const exp_proj[3] = {"gate_proj", "up_proj", "down_proj"};
static const char *const exp_gguf[3] = {"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"};

static bool parse_uint(const char **p, uint32_t *out)
{
    uint64_t v = 0;
    const char *s = *p;
    while (*s >= '0' && *s <= '9' && v < (1u << 24)) v = v * 10 + (uint64_t)(*s++ - '0');
    if (s == *p || (*s >= '0' && *s <= '9')) return false;
    *p = s;
    *out = (uint32_t)v;
    return true;
}

/* 1: an expert matrix (layer, expert, projection 0..2); 0: not an expert;
 * -1: under "mlp.experts." but not one matrix per expert (transformers 5's
 * in-memory fused layout, which save_pretrained does not write). */
static int expert_name(const char *hf, uint32_t *layer, uint32_t *expert, int *proj)
{
    const char *p = hf;
    if (strncmp(p, "model.layers.", 13)) return 0;
    p += 13;
    if (!parse_uint(&p, layer) || strncmp(p, ".mlp.experts.", 13)) return 0;
    p += 13;
    if (!parse_uint(&p, expert) || *p++ != '.') return -1;
    for (int k = 0; k < 3; k++) {
        const size_t l = strlen(exp_proj[k]);
        if (!strncmp(p, exp_proj[k], l) && !strcmp(p + l, ".weight")) {
            *proj = k;
            return 1;
        }
    }
    return -1;
}

/* Appends blk.L.ffn_*_exps.weight for every layer from ex[L][proj][E]. */
static vki_status stack_experts(vki_model_file *f, const vki_tensor_info *ex, uint32_t n_layer, uint32_t n_expert)
{
    for (uint32_t l = 0; l < n_layer; l++) {
        for (int k = 0; k < 3; k++) {
            const vki_tensor_info *e = &ex[((size_t)l * 3 + (size_t)k) * n_expert];
            if (!e[0].name) continue; /* a layer without experts: the engine says what is missing */
            const void **parts = ld_alloc(&f->arena, (uint64_t)n_expert * sizeof *parts);
            if (!parts) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", f->path);
            uint64_t bytes = 0;
            for (uint32_t i = 0; i < n_expert; i++) {
                if (!e[i].name)
                    return vki_fail(VKI_ERR_BAD_FILE, "%s: model.layers.%u.mlp.experts.%u.%s.weight is missing "
                                    "(%u experts)", f->path, l, i, exp_proj[k], n_expert);
                if (e[i].n_dims != 2 || e[i].type != e[0].type || e[i].ne[0] != e[0].ne[0] || e[i].ne[1] != e[0].ne[1])
                    return vki_fail(VKI_ERR_BAD_FILE, "%s: expert %u of layer %u's %s has shape [%lld, %lld] %s, "
                                    "expert 0's is [%lld, %lld] %s", f->path, i, l, exp_proj[k],
                                    (long long)e[i].ne[1], (long long)e[i].ne[0], vki_type_name(e[i].type),
                                    (long long)e[0].ne[1], (long long)e[0].ne[0], vki_type_name(e[0].type));
                parts[i] = e[i].data;
                bytes += e[i].bytes;
            }
            char name[96];
            snprintf(name, sizeof name, "blk.%u.%s.weight", l, exp_gguf[k]);
            vki_tensor_info t = {.type = e[0].type, .n_dims = 3, .ne = {e[0].ne[0], e[0].ne[1], n_expert, 1},
                                 .offset = e[0].offset, .bytes = bytes, .file_idx = e[0].file_idx,
                                 .n_parts = (int32_t)n_expert, .parts = (const void *const *)parts};
            if (!(t.name = ld_strdup(&f->arena, name, strlen(name))))
                return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", f->path);
            VKI_TRY(ld_add_tensor(f, &t));
        }
    }
    return VKI_OK;
}

/* convert_hf_to_gguf adds 1 to Gemma's RMSNorm weights (HF computes
 * x * (1 + w)); the engine reads GGUF's w + 1. Norms are small, so the
 * sum is made here, as f32, in the loader's memory. */
static vki_status plus_one(vki_model_file *f, vki_tensor_info *t)
{
    const int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    float *v = ld_alloc(&f->arena, (uint64_t)n * sizeof *v);
    if (!v) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", f->path);
    for (int64_t r = 0; r < n / t->ne[0]; r++)
        VKI_TRY(vki_tensor_dequant_row(t, r, v + r * t->ne[0]));
    for (int64_t i = 0; i < n; i++) v[i] += 1.0f;
    t->type = VKI_TYPE_F32;
    t->data = v;
    t->bytes = (uint64_t)n * sizeof *v;
    return VKI_OK;
}

vki_status hf_map_tensors(vki_model_file *f)
{
    vki_str a;
    if (!vki_file_get_str(f, "general.architecture", &a)) return VKI_OK;
    char arch[32];
    snprintf(arch, sizeof arch, "%.*s", (int)VKI_MIN(a.n, 31), a.p);
    uint32_t n_head = 0, n_head_kv = 0, n_layer = 0, n_expert = 0;
    char key[128];
    vki_file_get_u32(f, arch_key(key, sizeof key, arch, "attention.head_count"), &n_head);
    vki_file_get_u32(f, arch_key(key, sizeof key, arch, "attention.head_count_kv"), &n_head_kv);
    vki_file_get_u32(f, arch_key(key, sizeof key, arch, "block_count"), &n_layer);
    vki_file_get_u32(f, arch_key(key, sizeof key, arch, "expert_count"), &n_expert);
    const bool gemma = !strncmp(arch, "gemma", 5);

    vki_tensor_info *old = f->tensors, *ex = NULL;
    const int64_t n_old = f->n_tensors;
    f->tensors = NULL;
    f->n_tensors = f->cap_tensors = 0;
    f->weight_bytes = 0;
    free(f->tensor_index.slot);
    f->tensor_index = (ld_index){0, NULL};
    vki_status s = VKI_OK;
    if (n_expert > 0 && n_layer > 0 && !(ex = calloc((size_t)n_layer * 3 * n_expert, sizeof *ex)))
        s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", f->path);
    for (int64_t i = 0; i < n_old && s == VKI_OK; i++) {
        vki_tensor_info t = old[i];
        if (dropped(arch, t.name)) continue;
        uint32_t layer, expert;
        int proj, e = expert_name(t.name, &layer, &expert, &proj);
        if (e != 0 && !ex) {
            s = vki_fail(VKI_ERR_BAD_FILE, "%s: expert tensor '%s' in a model without \"num_experts\"", f->path, t.name);
            break;
        }
        if (e < 0) {
            s = vki_fail(VKI_ERR_UNSUPPORTED, "%s: tensor '%s': experts are read one matrix per expert "
                         "(mlp.experts.E.gate_proj.weight, ...)", f->path, t.name);
            break;
        }
        if (e > 0) {
            if (layer >= n_layer || expert >= n_expert) {
                s = vki_fail(VKI_ERR_BAD_FILE, "%s: tensor '%s' is past %u layers of %u experts", f->path, t.name,
                             n_layer, n_expert);
                break;
            }
            ex[((size_t)layer * 3 + (size_t)proj) * n_expert + expert] = t;
            continue;
        }
        char name[256];
        if (hf_tensor_name(arch, t.name, name, sizeof name)) {
            if (!(t.name = ld_strdup(&f->arena, name, strlen(name)))) {
                s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", f->path);
                break;
            }
            /* GGUF's llama conversion interleaves the rotary halves of q/k
             * rows, and of their bias elements (convert_hf_to_gguf permutes
             * "q_proj.weight" and "q_proj.bias" alike); the engine reads
             * GGUF order. The NeoX-RoPE families are converted unpermuted. */
            if (!strcmp(arch, "llama") && t.n_dims <= 2) {
                if (ends_with(name, ".attn_q.weight") || ends_with(name, ".attn_q.bias"))
                    t.rope_permute_heads = (int32_t)n_head;
                if (ends_with(name, ".attn_k.weight") || ends_with(name, ".attn_k.bias"))
                    t.rope_permute_heads = (int32_t)n_head_kv;
            }
            if (gemma && ends_with(name, "norm.weight") && (s = plus_one(f, &t)) != VKI_OK) break;
        }
        s = ld_add_tensor(f, &t);
    }
    if (s == VKI_OK && ex) s = stack_experts(f, ex, n_layer, n_expert);
    free(ex);
    free(old);
    return s;
}
