/*
 * hparams.c: from a file's metadata to mdl_hparams: the architecture table
 * (one row of feature flags per family) and the keys that add to it
 * (window, softcaps, experts, pooling, attention scale). Refuses what the
 * forward passes do not implement, naming the key, before any load.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "model.h"
#include "util.h"

static vki_status need_u32(const vki_model_file *f, const char *suffix, int32_t *out)
{
    uint32_t v;
    if (!vki_file_get_arch_u32(f, suffix, &v))
        return vki_fail(VKI_ERR_BAD_FILE, "%s: metadata key '%s.%s' is missing or not an integer",
                        vki_file_path(f), vki_file_arch(f), suffix);
    if (v == 0 || v > (1u << 24))
        return vki_fail(VKI_ERR_BAD_FILE, "%s: '%s.%s' is %u, expected 1..%u", vki_file_path(f),
                        vki_file_arch(f), suffix, v, 1u << 24);
    *out = (int32_t)v;
    return VKI_OK;
}

int32_t mdl_key_u32(const vki_model_file *f, const char *suffix, int32_t dflt)
{
    uint32_t v;
    return vki_file_get_arch_u32(f, suffix, &v) && v > 0 && v <= (1u << 24) ? (int32_t)v : dflt;
}

float mdl_key_f32(const vki_model_file *f, const char *suffix, float dflt)
{
    float v;
    return vki_file_get_arch_f32(f, suffix, &v) ? v : dflt;
}

/* The families: each one a row of flags over the shared decoder/encoder.
 * Keys in the file can add to these (a sliding window, softcaps, experts). */
typedef struct arch_desc {
    const char *name;
    mdl_arch    arch;
    bool        encoder, qk_norm, post_norms, fused_qkv, fused_up, embd_scale;
    int32_t     rope_mode, act;
} arch_desc;

const char *const mdl_rope_scaling_name[MDL_ROPE_SCALING_COUNT] = {"none", "linear", "llama3", "yarn", "longrope"};

static const arch_desc archs[] = {
    {"llama",      MDL_ARCH_LLAMA,      .rope_mode = BK_ROPE_NORMAL},
    {"mistral",    MDL_ARCH_LLAMA,      .rope_mode = BK_ROPE_NORMAL},
    {"qwen2",      MDL_ARCH_QWEN2,      .rope_mode = BK_ROPE_NEOX},
    {"qwen3",      MDL_ARCH_QWEN3,      .qk_norm = true, .rope_mode = BK_ROPE_NEOX},
    {"qwen3moe",   MDL_ARCH_QWEN3MOE,   .qk_norm = true, .rope_mode = BK_ROPE_NEOX},
    {"gemma2",     MDL_ARCH_GEMMA2,     .post_norms = true, .embd_scale = true, .rope_mode = BK_ROPE_NEOX,
                                        .act = BK_ACT_GELU_TANH},
    {"gemma3",     MDL_ARCH_GEMMA3,     .qk_norm = true, .post_norms = true, .embd_scale = true,
                                        .rope_mode = BK_ROPE_NEOX, .act = BK_ACT_GELU_TANH},
    {"phi3",       MDL_ARCH_PHI3,       .fused_qkv = true, .fused_up = true, .rope_mode = BK_ROPE_NEOX},
    {"bert",       MDL_ARCH_BERT,       .encoder = true, .act = BK_ACT_GELU},
    {"nomic-bert", MDL_ARCH_NOMIC_BERT, .encoder = true, .fused_qkv = true, .rope_mode = BK_ROPE_NEOX},
};

/* GGUF pooling_type: 0 none, 1 mean, 2 CLS, 3 last, 4 rank. */
static vki_status pooling_from_file(const vki_model_file *f, bool encoder, int32_t *out)
{
    uint32_t pt;
    if (!vki_file_get_arch_u32(f, "pooling_type", &pt)) pt = encoder ? 1 : 0;
    switch (pt) {
    case 0: *out = encoder ? BK_POOL_MEAN : -1; return VKI_OK;
    case 1: *out = BK_POOL_MEAN; return VKI_OK;
    case 2: *out = BK_POOL_CLS; return VKI_OK;
    case 3: *out = BK_POOL_LAST; return VKI_OK;
    default:
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: %s.pooling_type %u is not supported (1 mean, 2 CLS, 3 last)",
                        vki_file_path(f), vki_file_arch(f), pt);
    }
}

bool mdl_file_is_embedding(const vki_model_file *f)
{
    const char *a = vki_file_arch(f);
    for (size_t i = 0; i < VKI_COUNT(archs); i++)
        if (!strcmp(a, archs[i].name)) {
            uint32_t pt = 0;
            return archs[i].encoder || (vki_file_get_arch_u32(f, "pooling_type", &pt) && pt != 0);
        }
    return false;
}

vki_status mdl_read_hparams(const vki_model_file *f, mdl_arch *arch, mdl_hparams *hp)
{
    const char *a = vki_file_arch(f), *path = vki_file_path(f);
    const arch_desc *d = NULL;
    for (size_t i = 0; i < VKI_COUNT(archs); i++)
        if (!strcmp(a, archs[i].name)) d = &archs[i];
    if (!d)
        return vki_fail(VKI_ERR_UNSUPPORTED,
                        "%s: architecture '%s' is not supported (llama, mistral, qwen2, qwen3, qwen3moe, gemma2, "
                        "gemma3, phi3, bert, nomic-bert)",
                        path, a[0] ? a : "(general.architecture missing)");
    *arch = d->arch;

    memset(hp, 0, sizeof *hp);
    hp->encoder = d->encoder;
    hp->qk_norm = d->qk_norm;
    hp->post_norms = d->post_norms;
    hp->fused_qkv = d->fused_qkv;
    hp->fused_up = d->fused_up;
    hp->act = d->act;
    hp->rope_mode = d->rope_mode;
    VKI_TRY(need_u32(f, "embedding_length", &hp->n_embd));
    VKI_TRY(need_u32(f, "block_count", &hp->n_layer));
    VKI_TRY(need_u32(f, "feed_forward_length", &hp->n_ff));
    VKI_TRY(need_u32(f, "attention.head_count", &hp->n_head));
    hp->n_head_kv = mdl_key_u32(f, "attention.head_count_kv", hp->n_head);
    hp->head_dim = mdl_key_u32(f, "attention.key_length", hp->n_embd / hp->n_head);
    hp->n_ctx_train = mdl_key_u32(f, "context_length", 2048);
    if (hp->n_head % hp->n_head_kv != 0)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: head_count %d is not a multiple of head_count_kv %d", path,
                        hp->n_head, hp->n_head_kv);
    if (hp->head_dim <= 0 || hp->head_dim % 2 != 0)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: head dimension %d (embedding_length %d / head_count %d) is not even",
                        path, hp->head_dim, hp->n_embd, hp->n_head);
    int32_t v_dim = mdl_key_u32(f, "attention.value_length", hp->head_dim);
    if (v_dim != hp->head_dim)
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: attention.value_length %d differs from key_length %d", path, v_dim,
                        hp->head_dim);
    VKI_TRY(pooling_from_file(f, hp->encoder, &hp->pooling));
    hp->kq_scale = 1.0f / sqrtf((float)hp->head_dim);
    hp->rope_mscale = 1.0f;
    hp->rope_scale = 1.0f;
    hp->n_rot = mdl_key_u32(f, "rope.dimension_count", hp->head_dim);
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: rope.dimension_count %d must be even and <= head dimension %d",
                        path, hp->n_rot, hp->head_dim);
    hp->rope_base = mdl_key_f32(f, "rope.freq_base", 10000.0f);
    {
        /* refused here, before any load: the positions would be wrong */
        char key[128];
        vki_str st = {0};
        snprintf(key, sizeof key, "%s.rope.scaling.type", a);
        bool ok = !vki_file_get_str(f, key, &st);
        for (int32_t i = 0; !ok && i < MDL_ROPE_SCALING_COUNT; i++)
            if (st.n == strlen(mdl_rope_scaling_name[i]) && !memcmp(st.p, mdl_rope_scaling_name[i], st.n)) {
                hp->rope_scaling = i;
                ok = true;
            }
        if (!ok)
            return vki_fail(VKI_ERR_UNSUPPORTED,
                            "%s: %s = '%.*s' is not supported (none, linear, llama3, yarn, longrope): refusing to run "
                            "it with the wrong positions",
                            path, key, (int)VKI_MIN(st.n, 64), st.p);
    }

    if (hp->encoder) {
        hp->norm_eps = mdl_key_f32(f, "attention.layer_norm_epsilon", 1e-12f);
        return VKI_OK;
    }
    if (!vki_file_get_arch_f32(f, "attention.layer_norm_rms_epsilon", &hp->norm_eps))
        hp->norm_eps = 1e-5f;

    /* Mixture of experts. */
    hp->n_expert = mdl_key_u32(f, "expert_count", 0);
    if (hp->n_expert > 0) {
        hp->n_expert_used = mdl_key_u32(f, "expert_used_count", 0);
        hp->n_ff_exp = mdl_key_u32(f, "expert_feed_forward_length", hp->n_ff);
        if (hp->n_expert_used < 1 || hp->n_expert_used > hp->n_expert)
            return vki_fail(VKI_ERR_BAD_FILE, "%s: expert_used_count %d must be in 1..expert_count %d", path,
                            hp->n_expert_used, hp->n_expert);
        uint32_t shared = 0;
        if (vki_file_get_arch_u32(f, "expert_shared_count", &shared) && shared > 0)
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: %u shared experts (expert_shared_count) are not supported", path,
                            shared);
        char key[128];
        snprintf(key, sizeof key, "%s.expert_weights_norm", a);
        bool norm = true; /* qwen3moe: norm_topk_prob */
        vki_file_get_bool(f, key, &norm);
        hp->expert_norm = norm;
        uint32_t gating;
        if (vki_file_get_arch_u32(f, "expert_gating_func", &gating) && gating != 1)
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: expert_gating_func %u is not supported (1 softmax)", path, gating);
    } else if (*arch == MDL_ARCH_QWEN3MOE) {
        return vki_fail(VKI_ERR_BAD_FILE, "%s: qwen3moe without %s.expert_count", path, a);
    }

    /* Sliding window, softcaps, embedding scale: the gemma families. Other
     * files may name a window (mistral v0.1, phi3) that llama.cpp does not
     * apply either; we follow it so the numbers agree. */
    if (*arch == MDL_ARCH_GEMMA2 || *arch == MDL_ARCH_GEMMA3) {
        hp->swa_window = mdl_key_u32(f, "attention.sliding_window", 0);
        hp->swa_pattern = *arch == MDL_ARCH_GEMMA2 ? 2 : mdl_key_u32(f, "attention.sliding_window_pattern", 6);
    }
    hp->rope_base_swa = mdl_key_f32(f, "rope.freq_base_swa", *arch == MDL_ARCH_GEMMA3 ? 10000.0f : hp->rope_base);
    hp->attn_softcap = mdl_key_f32(f, "attn_logit_softcapping", 0.0f);
    hp->final_softcap = mdl_key_f32(f, "final_logit_softcapping", 0.0f);
    if (hp->attn_softcap < 0.0f || hp->final_softcap < 0.0f)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: negative logit softcapping", path);
    if (d->embd_scale) hp->embd_scale = sqrtf((float)hp->n_embd);
    float scale;
    if (vki_file_get_arch_f32(f, "attention.scale", &scale) && scale > 0.0f) hp->kq_scale = scale;
    else if ((*arch == MDL_ARCH_GEMMA2 && hp->n_layer == 46) || (*arch == MDL_ARCH_GEMMA3 && hp->n_layer == 62))
        /* the 27B models scale queries by their query_pre_attn_scalar,
         * n_embd / n_head, which the GGUF does not carry (as llama.cpp) */
        hp->kq_scale = 1.0f / sqrtf((float)hp->n_embd / (float)hp->n_head);
    return VKI_OK;
}

