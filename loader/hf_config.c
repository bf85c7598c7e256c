/*
 * hf_config.c: an HF folder's config.json (and sentence-transformers'
 * 1_Pooling/config.json) mapped onto the GGUF keys its conversion would
 * carry, so an HF folder and its GGUF conversion look the same to the engine.
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
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "loader/file_impl.h"
#include "loader/hf_kv.h"
#include "util.h"

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
    if (!hf_jint(j, 0, 4294967295.0, &v))
        return vki_fail(VKI_ERR_BAD_FILE, "%s: \"%s\" is not an integer in [0, 2^32)", c->src, j->string);
    char key[128];
    return hf_put_u32(c->f, hf_arch_key(key, sizeof key, c->arch, suffix), (uint32_t)v);
}

static vki_status cfg_f32(const cfg *c, const char *suffix, const char *hf, const char *alt)
{
    const cJSON *j = jget(c->root, hf, alt);
    if (!j) return VKI_OK;
    if (!cJSON_IsNumber(j)) return vki_fail(VKI_ERR_BAD_FILE, "%s: \"%s\" is not a number", c->src, j->string);
    char key[128];
    return hf_put_f32(c->f, hf_arch_key(key, sizeof key, c->arch, suffix), (float)j->valuedouble);
}

static vki_status arch_u32(const cfg *c, const char *suffix, uint32_t v)
{
    char key[128];
    return hf_put_u32(c->f, hf_arch_key(key, sizeof key, c->arch, suffix), v);
}

static vki_status arch_f32(const cfg *c, const char *suffix, double v)
{
    char key[128];
    return hf_put_f32(c->f, hf_arch_key(key, sizeof key, c->arch, suffix), (float)v);
}

static vki_status arch_str(const cfg *c, const char *suffix, const char *v)
{
    char key[128];
    return hf_put_str(c->f, hf_arch_key(key, sizeof key, c->arch, suffix), v, strlen(v));
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
    return hf_put_bool(c->f, hf_arch_key(key, sizeof key, c->arch, "expert_weights_norm"),
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
    if (ctx && hf_jint(ctx, 1, 1 << 24, &v)) VKI_TRY(arch_u32(c, "context_length", (uint32_t)v));
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
    TRY(hf_put_str(f, "general.architecture", arch, strlen(arch)));
    TRY(cfg_u32(&c, "block_count", "num_hidden_layers", "n_layer", true));
    TRY(cfg_u32(&c, "context_length", "max_position_embeddings", "n_positions", false));
    TRY(cfg_u32(&c, "embedding_length", "hidden_size", "n_embd", true));
    TRY(cfg_u32(&c, "feed_forward_length", "intermediate_size", "n_inner", true));
    TRY(cfg_u32(&c, "attention.head_count", "num_attention_heads", "n_head", true));
    uint32_t n_embd = 0, n_head = 0, n_layer = 0;
    vki_file_get_u32(f, hf_arch_key((char[128]){0}, 128, arch, "embedding_length"), &n_embd);
    vki_file_get_u32(f, hf_arch_key((char[128]){0}, 128, arch, "attention.head_count"), &n_head);
    vki_file_get_u32(f, hf_arch_key((char[128]){0}, 128, arch, "block_count"), &n_layer);
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
        TRY(hf_put_bool(f, hf_arch_key(key, sizeof key, arch, "attention.causal"), false));
        goto done;
    }
    /* head_dim: the attention width when it is not hidden_size / heads */
    int64_t hd = n_head ? n_embd / n_head : 0;
    const cJSON *hdj = jget(root, "head_dim", NULL);
    if (hdj && !hf_jint(hdj, 2, 65536, &hd)) {
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
        s = hf_put_u32(f, a.n == 4 ? "bert.pooling_type" : "nomic-bert.pooling_type", type);
done:
    cJSON_Delete(root);
    return s;
}
