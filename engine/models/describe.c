/*
 * describe.c: what a load of a file will run, in words, for `vkinfer
 * inspect` and logs: the family, the RoPE variant and its scaling, the
 * per-family features (q/k norms, post-norms, fused tensors, the gate's
 * activation, sliding window, softcaps, experts), pooling, and the memory
 * the load will take. Everything comes from mdl_estimate, the same rules the
 * load follows, so a file the load would refuse is described by its reason.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "model.h"
#include "util.h"

typedef struct out {
    char  *p;
    size_t n, used;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...)
{
    if (o->used >= o->n) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(o->p + o->used, o->n - o->used, fmt, ap);
    va_end(ap);
    if (k > 0) o->used = VKI_MIN(o->n, o->used + (size_t)k);
}

static const char *act_name(int32_t a)
{
    return a == BK_ACT_GELU_TANH ? "GELU (tanh)" : a == BK_ACT_GELU ? "GELU (erf)" : "SiLU";
}

static const char *pool_name(int32_t p)
{
    return p == BK_POOL_CLS ? "CLS" : p == BK_POOL_LAST ? "last token" : "mean";
}

static void mib(out *o, const char *what, uint64_t b) { put(o, "%s %.2f MiB", what, (double)b / 1048576.0); }

vki_status mdl_describe(const vki_model_file *f, const mdl_load_params *p, char *buf, size_t size)
{
    out o = {buf, size, 0};
    if (size) buf[0] = 0;
    mdl_estimate_t e;
    vki_status s = mdl_estimate(f, p, &e);
    if (s != VKI_OK) {
        put(&o, "cannot load: %s\n", vki_last_error());
        return s;
    }
    const mdl_hparams *hp = &e.hp;
    put(&o, "family:        %s (%s)\n", vki_file_arch(f), hp->encoder ? "encoder" : "decoder");
    put(&o, "attention:     %d heads, %d KV heads, head dim %d, scale %.4g%s%s\n", hp->n_head, hp->n_head_kv,
        hp->head_dim, hp->kq_scale, hp->qk_norm ? ", q/k RMSNorm per head" : "",
        hp->fused_qkv ? ", fused qkv" : "");
    if (!hp->encoder || hp->rope_mode == BK_ROPE_NEOX) {
        put(&o, "rope:          %s pairs, %d of %d dims, base %g", hp->rope_mode == BK_ROPE_NEOX ? "NeoX" : "adjacent",
            hp->n_rot, hp->head_dim, hp->rope_base);
        if (e.rope_factors) put(&o, ", per-pair factors from %s", e.rope_factors);
        if (hp->rope_scaling != MDL_ROPE_SCALING_NONE) put(&o, ", scaling %s", mdl_rope_scaling_name[hp->rope_scaling]);
        float af;
        if (vki_file_get_arch_f32(f, "rope.scaling.attn_factor", &af) && af != 1.0f) put(&o, ", attn factor %g", af);
        put(&o, "\n");
    }
    if (hp->swa_window > 0) {
        int32_t n_local = 0;
        for (int32_t l = 0; l < hp->n_layer; l++) n_local += mdl_layer_is_swa(hp, l);
        put(&o, "window:        sliding window %d on %d of %d layers (local rope base %g; their KV cache %d rows)\n",
            hp->swa_window, n_local, hp->n_layer, hp->rope_base_swa, e.n_ctx_swa);
    }
    if (hp->n_expert > 0)
        put(&o, "experts:       %d, %d used per token (softmax router, top-%d%s), ffn %d each\n", hp->n_expert,
            hp->n_expert_used, hp->n_expert_used, hp->expert_norm ? ", weights renormalised" : "", hp->n_ff_exp);
    else
        put(&o, "ffn:           %d, %s%s%s\n", hp->n_ff, hp->encoder && hp->act == BK_ACT_GELU ? "" : "gated ",
            act_name(hp->act), hp->fused_up ? ", fused gate|up" : "");
    if (hp->post_norms || hp->embd_scale != 0.0f || hp->attn_softcap > 0.0f || hp->final_softcap > 0.0f) {
        put(&o, "extras:       ");
        if (hp->embd_scale != 0.0f) put(&o, " embeddings x %.4g;", hp->embd_scale);
        if (hp->post_norms) put(&o, " post-attention and post-FFN norms;");
        if (hp->attn_softcap > 0.0f) put(&o, " attention softcap %g;", hp->attn_softcap);
        if (hp->final_softcap > 0.0f) put(&o, " final logit softcap %g;", hp->final_softcap);
        put(&o, "\n");
    }
    if (hp->pooling >= 0) put(&o, "embeddings:    %s pooling\n", pool_name(hp->pooling));
    put(&o, "load needs:    %.2f MiB at n_ctx %d, %d-token passes (", (double)(e.weights + e.kv + e.scratch) / 1048576.0,
        e.n_ctx, e.n_batch);
    mib(&o, "weights", e.weights);
    mib(&o, ", KV cache (f32)", e.kv);
    mib(&o, ", scratch", e.scratch);
    put(&o, ")\n");
    return VKI_OK;
}
