/*
 * kv_cache.c: the decoder's key/value cache. One K and one V buffer per
 * layer, laid out {head_dim, n_head_kv, n_ctx, n_seq} so that the rows of a
 * sequence are contiguous and a view of positions [0, n) is what BK_OP_ATTN
 * reads. Layers with a sliding window W keep at most 2W + n_batch rows per
 * sequence: a query at p sees p - W < j <= p, so once a pass would run past
 * the rows, only the last W - 1 positions are needed and move to the front
 * (with 2W + n_batch rows the source and destination never overlap).
 * f32 by default: the F32 reference runs have top-1/top-2 logit
 * margins down to 2e-4, which f16 keys (relative error ~5e-4) can flip.
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model.h"
#include "util.h"

vki_status mdl_kv_create(bk_backend *be, const mdl_hparams *hp, vki_type type, int32_t n_ctx, int32_t n_seq,
                         int32_t n_batch, mdl_kv_cache *kv)
{
    memset(kv, 0, sizeof *kv);
    kv->type = type;
    kv->n_layer = hp->n_layer;
    kv->n_ctx = n_ctx;
    kv->n_seq = n_seq;
    kv->bufs = calloc((size_t)hp->n_layer * 2, sizeof *kv->bufs);
    kv->k = calloc((size_t)hp->n_layer, sizeof *kv->k);
    kv->v = calloc((size_t)hp->n_layer, sizeof *kv->v);
    kv->len = calloc((size_t)n_seq, sizeof *kv->len);
    kv->base = calloc((size_t)n_seq, sizeof *kv->base);
    kv->window = hp->swa_window;
    kv->n_ctx_swa = hp->swa_window > 0 ? (int32_t)VKI_MIN((int64_t)n_ctx, 2 * (int64_t)hp->swa_window + n_batch) : n_ctx;
    if (!kv->bufs || !kv->k || !kv->v || !kv->len || !kv->base) {
        mdl_kv_destroy(be, kv);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "kv cache: out of memory for %d layers", hp->n_layer);
    }
    for (int32_t l = 0; l < hp->n_layer; l++) {
        const int64_t ne[4] = {hp->head_dim, hp->n_head_kv, mdl_layer_is_swa(hp, l) ? kv->n_ctx_swa : n_ctx, n_seq};
        for (int kvi = 0; kvi < 2; kvi++) {
            bk_tensor t = bk_tensor_make(type, 4, ne, NULL, 0);
            bk_buffer **b = &kv->bufs[2 * l + kvi];
            vki_status s = be->iface->buffer_create(be, bk_nbytes(&t), BK_BUFFER_COMPUTE, b);
            if (s != VKI_OK) {
                mdl_kv_destroy(be, kv);
                return vki_fail_prefix(s, "kv cache: layer %d (%d positions x %d sequences)", (int)l, n_ctx, n_seq);
            }
            t.buf = *b;
            t.name = kvi ? "cache_v" : "cache_k";
            (kvi ? kv->v : kv->k)[l] = t;
        }
    }
    return VKI_OK;
}

void mdl_kv_destroy(bk_backend *be, mdl_kv_cache *kv)
{
    if (kv->bufs)
        for (int32_t i = 2 * kv->n_layer - 1; i >= 0; i--)
            if (kv->bufs[i]) be->iface->buffer_destroy(be, kv->bufs[i]);
    free(kv->bufs);
    free(kv->k);
    free(kv->v);
    free(kv->len);
    free(kv->base);
    memset(kv, 0, sizeof *kv);
}

bk_tensor mdl_kv_view(const bk_tensor *t, int32_t s, int32_t p0, int32_t n)
{
    bk_tensor v = bk_tensor_rows(t, 3, s, 1);
    return bk_tensor_rows(&v, 2, p0, n);
}

int32_t mdl_kv_seq_len(const mdl_model *m, int32_t seq)
{
    return m->kv.len && seq >= 0 && seq < m->kv.n_seq ? m->kv.len[seq] : 0;
}

void mdl_kv_seq_clear(mdl_model *m, int32_t seq)
{
    if (m->kv.len && seq >= 0 && seq < m->kv.n_seq) m->kv.len[seq] = m->kv.base[seq] = 0;
}

int32_t mdl_kv_seq_truncate(mdl_model *m, int32_t seq, int32_t n)
{
    mdl_kv_cache *kv = &m->kv;
    if (!kv->len || seq < 0 || seq >= kv->n_seq) return 0;
    if (n >= 0 && n < kv->len[seq]) {
        /* the next token at n needs local positions n - W + 1 .. n - 1 */
        if (kv->window > 0 && n > 0 && n - kv->window + 1 < kv->base[seq]) n = 0;
        kv->len[seq] = n;
        if (n == 0) kv->base[seq] = 0;
    }
    return kv->len[seq];
}

int32_t mdl_kv_plan_base(const mdl_kv_cache *kv, int32_t seq, int32_t n)
{
    const int32_t len = kv->len[seq], base = kv->base[seq];
    if (kv->window <= 0 || len + n - base <= kv->n_ctx_swa) return base;
    return len - kv->window + 1;
}

vki_status mdl_kv_seq_copy(mdl_model *m, int32_t src, int32_t dst)
{
    mdl_kv_cache *kv = &m->kv;
    if (!kv->len || src < 0 || src >= kv->n_seq || dst < 0 || dst >= kv->n_seq || src == dst)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "kv cache: copy from sequence %d to %d of %d", src, dst, kv->n_seq);
    const int32_t len = kv->len[src], base = kv->base[src];
    kv->len[dst] = kv->base[dst] = 0;
    if (len == 0) return VKI_OK;
    vki_status s = bk_begin(m->be);
    if (s != VKI_OK) return s;
    for (int32_t l = 0; l < kv->n_layer && s == VKI_OK; l++) {
        /* local layers hold positions [base, len) at rows [0, len - base) */
        const int32_t rows = mdl_layer_is_swa(&m->hp, l) ? len - base : len;
        for (int kvi = 0; kvi < 2 && s == VKI_OK; kvi++) {
            const bk_tensor *t = kvi ? &kv->v[l] : &kv->k[l];
            bk_tensor from = mdl_kv_view(t, src, 0, rows), to = mdl_kv_view(t, dst, 0, rows);
            s = bk_cpy(m->be, &to, &from);
        }
    }
    vki_status e = bk_end(m->be);
    if (s == VKI_OK) s = e;
    if (s != VKI_OK) return s;
    kv->len[dst] = len;
    kv->base[dst] = base;
    return VKI_OK;
}
