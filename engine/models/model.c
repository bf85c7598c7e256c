/*
 * model.c: from an opened model file to a model on a backend: the
 * hyperparameters (hparams.c) and RoPE divisors (rope.c), every weight found by its
 * GGUF name and shape-checked, uploaded with a progress callback (or, on the
 * CPU, borrowed from the mapping without a copy), then the KV cache and the
 * scratch activations. Must not: run a forward pass (llama.c, bert.c).
 */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "util.h"

/* ===== Weight upload ===================================================== */

typedef struct upload {
    const vki_model_file *f;
    mdl_model            *m;
    uint64_t              done, total;
    vki_progress_cb       cb;
    void                 *user;
    void                 *stage;   /* host staging for converted/permuted rows */
    uint64_t              stage_size;
    bk_buffer            *probe;   /* f32 [max(n_embd, n_ff, n_vocab, q)] for supports_op */
    int64_t               slice_r0, slice_n; /* rows [r0, r0+n) of a fused 2-D tensor (n 0: all) */
} upload;

#define STAGE_BYTES (8u << 20)

static vki_status report(upload *u, uint64_t bytes)
{
    u->done += bytes;
    if (u->cb && !u->cb(u->total ? (float)((double)VKI_MIN(u->done, u->total) / (double)u->total) : 1.0f, u->user))
        return vki_fail(VKI_ERR_CANCELLED, "%s: load cancelled by the progress callback", vki_file_path(u->f));
    return VKI_OK;
}

static vki_status keep_buffer(mdl_model *m, bk_buffer *b)
{
    if (m->n_wbufs == m->cap_wbufs) {
        int32_t cap = m->cap_wbufs ? 2 * m->cap_wbufs : 64;
        bk_buffer **nb = realloc(m->wbufs, sizeof *nb * (size_t)cap);
        if (!nb) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "model: out of memory for the buffer table");
        m->wbufs = nb;
        m->cap_wbufs = cap;
    }
    m->wbufs[m->n_wbufs++] = b;
    return VKI_OK;
}

/* Whether the backend multiplies / gathers with weight w (which has its
 * buffer): asked with small real activation tensors in u->probe, because a
 * backend may check every tensor it is shown. */
enum { T_REQUIRED = 1, T_F32 = 2, T_GATHER = 4, T_MATMUL = 8, T_MATMUL_ID = 16 };

static bool weight_type_ok(upload *u, const bk_tensor *w, int use)
{
    bk_backend *be = u->m->be;
    const bool gather = use == T_GATHER;
    int64_t ne_x[2] = {w->ne[0], 1}, ne_d[2] = {gather ? w->ne[0] : w->ne[1], 1}, one[2] = {1, 1};
    bk_tensor x = bk_tensor_make(VKI_TYPE_F32, 2, ne_x, u->probe, 0);
    bk_tensor d = bk_tensor_make(VKI_TYPE_F32, 2, ne_d, u->probe, 0);
    bk_tensor ids = bk_tensor_make(VKI_TYPE_I32, use == T_MATMUL_ID ? 2 : 1, one, u->probe, 0);
    if (use == T_MATMUL_ID) {
        x = bk_tensor_make(VKI_TYPE_F32, 3, (int64_t[]){w->ne[0], 1, 1}, u->probe, 0);
        d = bk_tensor_make(VKI_TYPE_F32, 3, (int64_t[]){w->ne[1], 1, 1}, u->probe, 0);
    }
    bk_op op = {.kind = gather ? BK_OP_GET_ROWS : use == T_MATMUL ? BK_OP_MATMUL : BK_OP_MATMUL_ID, .dst = &d,
                .src = {w, gather ? &ids : &x, use == T_MATMUL_ID ? &ids : NULL}};
    return be->iface->supports_op(be, &op);
}

/* Every use the flags name (a tied embedding is both gathered and multiplied). */
static bool uses_ok(upload *u, const bk_tensor *t, int flags)
{
    return (!(flags & T_GATHER) || weight_type_ok(u, t, T_GATHER)) &&
           (!(flags & T_MATMUL) || weight_type_ok(u, t, T_MATMUL)) &&
           (!(flags & T_MATMUL_ID) || weight_type_ok(u, t, T_MATMUL_ID));
}

/* Finds `name`, checks its shape against ne[0..n_dims), uploads it into its
 * own buffer and describes it in *out. Absent optional tensors leave *out
 * zeroed. T_F32: converted to f32 (norms and biases: the ops want f32).
 * T_GATHER / T_MATMUL: converted to f32 when the backend lacks the type. */
static vki_status load_tensor(upload *u, const char *name, int n_dims, const int64_t *ne, int flags, bk_tensor *out);

/* The backend lacks the stored type for this use: drop the buffer just made
 * (the last one kept) and load the tensor again as f32. */
static vki_status retry_as_f32(upload *u, const char *name, int n_dims, const int64_t *ne, int flags,
                               bk_tensor *out)
{
    bk_backend *be = u->m->be;
    be->iface->buffer_destroy(be, u->m->wbufs[--u->m->n_wbufs]);
    return load_tensor(u, name, n_dims, ne, (flags & T_REQUIRED) | T_F32, out);
}

static vki_status load_tensor(upload *u, const char *name, int n_dims, const int64_t *ne, int flags, bk_tensor *out)
{
    const vki_model_file *f = u->f;
    bk_backend *be = u->m->be;
    memset(out, 0, sizeof *out);
    const vki_tensor_info *ti = vki_file_find_tensor(f, name);
    if (!ti) {
        if (flags & T_REQUIRED)
            return vki_fail(VKI_ERR_NOT_FOUND, "%s: tensor '%s' is missing (architecture %s)", vki_file_path(f), name,
                            vki_file_arch(f));
        return VKI_OK;
    }
    for (int i = 0; i < 4; i++) {
        int64_t want = i < n_dims ? ne[i] : 1;
        if (ti->ne[i] != want)
            return vki_fail(VKI_ERR_BAD_FILE,
                            "%s: tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld] from the metadata",
                            vki_file_path(f), name, (long long)ti->ne[0], (long long)ti->ne[1], (long long)ti->ne[2],
                            (long long)ti->ne[3], (long long)ne[0], (long long)(n_dims > 1 ? ne[1] : 1));
    }
    const vki_type_traits *tr = vki_type_get(ti->type);
    if (!tr || !tr->supported)
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: tensor '%s' has type %s, which vkinfer cannot read",
                        vki_file_path(f), name, vki_type_name(ti->type));

    /* A slice of a fused tensor (phi3's Q|K|V, gate|up) becomes a weight of
     * its own: every backend then sees ordinary contiguous matrices. */
    const int64_t *ne_in = ne;
    int64_t ne_s[4] = {ne[0], n_dims > 1 ? ne[1] : 1, n_dims > 2 ? ne[2] : 1, 1};
    const int64_t row0 = u->slice_n > 0 ? u->slice_r0 : 0;
    if (u->slice_n > 0) {
        VKI_ASSERT(n_dims == 2 && row0 + u->slice_n <= ne[1]);
        ne_s[1] = u->slice_n;
        ne = ne_s;
    }
    bk_tensor t = bk_tensor_make(ti->type, n_dims, ne, NULL, 0);
    t.name = ti->name;
    /* DIRECT: the stored bytes are the tensor; ROWS: rows are gathered
     * (HF rope permutation, experts stacked from per-expert matrices);
     * DEQUANT: element by element (a permuted HF q/k bias) */
    const vki_tensor_read mode = vki_tensor_read_mode(ti);
    const bool permute = mode != VKI_TENSOR_READ_DIRECT;
    bool convert = ((flags & T_F32) && ti->type != VKI_TYPE_F32) || mode == VKI_TENSOR_READ_DEQUANT;
    if (convert) {
        t = bk_tensor_make(VKI_TYPE_F32, n_dims, ne, NULL, 0);
        t.name = ti->name;
    }
    const uint64_t bytes = bk_nbytes(&t);
    const int64_t n_rows = bk_nelements(&t) / t.ne[0];
    const uint64_t src_row = vki_row_bytes(ti->type, ti->ne[0]);
    const uint8_t *src = ti->data ? (const uint8_t *)ti->data + (uint64_t)row0 * src_row : NULL;

    bk_buffer *b = NULL;
    vki_status s;
    if (!convert && !permute && be->kind == VKI_BACKEND_CPU && be->iface->buffer_from_host &&
        ((uintptr_t)src % 32) == 0) {
        /* The CPU reads weights straight from the mapping: no copy, and the
         * page cache shares them between processes. */
        s = be->iface->buffer_from_host(be, (void *)src, bytes, &b);
        if (s != VKI_OK) return vki_fail_prefix(s, "%s: tensor '%s'", vki_file_path(f), name);
        if ((s = keep_buffer(u->m, b)) != VKI_OK) {
            be->iface->buffer_destroy(be, b);
            return s;
        }
        t.buf = b;
        if (!uses_ok(u, &t, flags))
            return retry_as_f32(u, name, n_dims, ne_in, flags, out);
        u->m->borrowed_bytes += bytes;
        VKI_TRY(report(u, bytes));
    } else {
        s = be->iface->buffer_create(be, bytes, BK_BUFFER_WEIGHTS, &b);
        if (s != VKI_OK)
            return vki_fail_prefix(s, "%s: tensor '%s' (%llu bytes)", vki_file_path(f), name, (unsigned long long)bytes);
        if ((s = keep_buffer(u->m, b)) != VKI_OK) {
            be->iface->buffer_destroy(be, b);
            return s;
        }
        t.buf = b;
        if (!convert && !uses_ok(u, &t, flags))
            return retry_as_f32(u, name, n_dims, ne_in, flags, out);
        const uint64_t dst_row = bytes / (uint64_t)n_rows;
        if (!convert && !permute) {
            for (uint64_t off = 0; off < bytes; off += STAGE_BYTES) {
                uint64_t n = VKI_MIN((uint64_t)STAGE_BYTES, bytes - off);
                VKI_TRY(be->iface->tensor_set(be, &t, src + off, off, n));
                VKI_TRY(report(u, n));
            }
        } else {
            if (!u->stage) {
                u->stage_size = VKI_MAX((uint64_t)STAGE_BYTES, dst_row);
                if (!(u->stage = malloc(u->stage_size)))
                    return vki_fail(VKI_ERR_OUT_OF_MEMORY, "model: out of memory for an upload staging buffer");
            } else if (u->stage_size < dst_row) {
                void *ns = realloc(u->stage, dst_row);
                if (!ns) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "model: out of memory for an upload staging buffer");
                u->stage = ns;
                u->stage_size = dst_row;
            }
            const int64_t rows_per = (int64_t)(u->stage_size / dst_row);
            for (int64_t r0 = 0; r0 < n_rows; r0 += rows_per) {
                int64_t nr = VKI_MIN(rows_per, n_rows - r0);
                for (int64_t r = 0; r < nr; r++) {
                    uint8_t *dst = (uint8_t *)u->stage + (uint64_t)r * dst_row;
                    if (convert) {
                        s = vki_tensor_dequant_row(ti, row0 + r0 + r, (float *)dst);
                        if (s != VKI_OK) return vki_fail_prefix(s, "%s: tensor '%s'", vki_file_path(f), name);
                    } else {
                        memcpy(dst, vki_tensor_row_data(ti, row0 + r0 + r), dst_row);
                    }
                }
                VKI_TRY(be->iface->tensor_set(be, &t, u->stage, (uint64_t)r0 * dst_row, (uint64_t)nr * dst_row));
                VKI_TRY(report(u, (uint64_t)nr * src_row));
            }
        }
    }
    if (!convert && be->iface->weight_prepare && (flags & (T_MATMUL | T_MATMUL_ID))) {
        /* The backend may re-lay a mat-mul weight out for its kernels (the
         * CPU's repacked Q4_0/Q8_0): the mapping is then no longer read. */
        unsigned uses = ((flags & T_MATMUL) ? BK_WEIGHT_MATMUL : 0u) | ((flags & T_GATHER) ? BK_WEIGHT_GATHER : 0u) |
                        ((flags & T_MATMUL_ID) ? BK_WEIGHT_MATMUL_ID : 0u);
        bool released = false;
        s = be->iface->weight_prepare(be, &t, uses, &released);
        if (s != VKI_OK) return vki_fail_prefix(s, "%s: tensor '%s'", vki_file_path(f), name);
        if (released) {
            u->m->borrowed_bytes -= bytes;
            vki_file_release(f, src, bytes);
        }
    }
    u->m->weight_bytes += bytes;
    u->m->n_params += (uint64_t)bk_nelements(&t);
    *out = t;
    return VKI_OK;
}

/* ===== RoPE divisors ==================================================== */

/* The divisors rope.c computes, uploaded as a small weight tensor. */
static vki_status rope_setup(upload *u)
{
    mdl_model *m = u->m;
    const int32_t half = m->hp.n_rot / 2;
    float *div = calloc((size_t)VKI_MAX(half, 1), sizeof *div);
    if (!div) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "model: out of memory");
    bool have = false;
    uint64_t stored = 0;
    vki_status s = mdl_rope_divisors(u->f, m->arch, &m->hp, m->n_ctx, div, &have, &stored);
    u->done += stored;
    if (s == VKI_OK && have) {
        bk_backend *be = m->be;
        bk_buffer *b;
        if ((s = be->iface->buffer_create(be, (uint64_t)half * 4u, BK_BUFFER_WEIGHTS, &b)) != VKI_OK) goto done;
        if ((s = keep_buffer(m, b)) != VKI_OK) {
            be->iface->buffer_destroy(be, b);
            goto done;
        }
        m->rope_div = bk_tensor_make(VKI_TYPE_F32, 1, (int64_t[]){half}, b, 0);
        m->rope_div.name = "rope_divisors";
        s = be->iface->tensor_set(be, &m->rope_div, div, 0, (uint64_t)half * 4u);
    }
done:
    free(div);
    return s;
}

/* ===== Weights =========================================================== */

/* Rows [r0, r0 + n) of a fused 2-D tensor as their own weight. */
static vki_status load_slice(upload *u, const char *name, const int64_t *ne, int flags, int64_t r0, int64_t n,
                             bk_tensor *out)
{
    u->slice_r0 = r0;
    u->slice_n = n;
    vki_status s = load_tensor(u, name, 2, ne, flags, out);
    u->slice_r0 = u->slice_n = 0;
    return s;
}

static vki_status load_weights(upload *u)
{
    mdl_model *m = u->m;
    const mdl_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, V = hp->n_vocab, F = hp->n_ff, X = hp->n_expert, FX = hp->n_ff_exp;
    const int64_t Q = (int64_t)hp->n_head * hp->head_dim, KV = (int64_t)hp->n_head_kv * hp->head_dim;
    const bool enc = hp->encoder, bert = m->arch == MDL_ARCH_BERT;
    char name[96];
    const int R = T_REQUIRED;

    const int64_t widest = VKI_MAX(VKI_MAX(VKI_MAX(E, F), VKI_MAX(V, Q)), VKI_MAX(X, FX));
    VKI_TRY(m->be->iface->buffer_create(m->be, (uint64_t)widest * 4u, BK_BUFFER_COMPUTE, &u->probe));
    if (!enc) VKI_TRY(rope_setup(u));
    else if (m->arch == MDL_ARCH_NOMIC_BERT) VKI_TRY(rope_setup(u));
    bool tied = !enc && !vki_file_find_tensor(u->f, "output.weight");
    VKI_TRY(load_tensor(u, "token_embd.weight", 2, (int64_t[]){E, V}, R | T_GATHER | (tied ? T_MATMUL : 0),
                        &m->tok_embd));
    if (enc) {
        if (bert)
            VKI_TRY(load_tensor(u, "position_embd.weight", 2, (int64_t[]){E, hp->n_ctx_train}, R | T_GATHER,
                                &m->pos_embd));
        VKI_TRY(load_tensor(u, "token_types.weight", 2, (int64_t[]){E, hp->n_token_types}, R | T_GATHER, &m->type_embd));
        VKI_TRY(load_tensor(u, "token_embd_norm.weight", 1, &E, R | T_F32, &m->tok_norm));
        VKI_TRY(load_tensor(u, "token_embd_norm.bias", 1, &E, R | T_F32, &m->tok_norm_b));
    } else {
        VKI_TRY(load_tensor(u, "output_norm.weight", 1, &E, R | T_F32, &m->out_norm));
        if (tied) m->output = m->tok_embd;
        else VKI_TRY(load_tensor(u, "output.weight", 2, (int64_t[]){E, V}, R | T_MATMUL, &m->output));
    }
    const int bias = bert ? R | T_F32 : T_F32; /* qwen2 has q/k/v biases, llama none */
    for (int32_t l = 0; l < hp->n_layer; l++) {
        mdl_layer *L = &m->layers[l];
#define NAME(suffix) (snprintf(name, sizeof name, "blk.%d.%s", (int)l, suffix), name)
#define W(field, suffix, nd, flags, ...) \
        VKI_TRY(load_tensor(u, NAME(suffix), nd, (int64_t[]){__VA_ARGS__}, flags, &L->field))
        if (hp->fused_qkv) {
            const int64_t ne[2] = {E, Q + 2 * KV};
            VKI_TRY(load_slice(u, NAME("attn_qkv.weight"), ne, R | T_MATMUL, 0, Q, &L->wq));
            VKI_TRY(load_slice(u, NAME("attn_qkv.weight"), ne, R | T_MATMUL, Q, KV, &L->wk));
            VKI_TRY(load_slice(u, NAME("attn_qkv.weight"), ne, R | T_MATMUL, Q + KV, KV, &L->wv));
        } else {
            W(wq, "attn_q.weight", 2, R | T_MATMUL, E, Q);
            W(wk, "attn_k.weight", 2, R | T_MATMUL, E, KV);
            W(wv, "attn_v.weight", 2, R | T_MATMUL, E, KV);
        }
        W(wo, "attn_output.weight", 2, R | T_MATMUL, Q, E);
        W(bq, "attn_q.bias", 1, bias, Q);
        W(bk, "attn_k.bias", 1, bias, KV);
        W(bv, "attn_v.bias", 1, bias, KV);
        W(bo, "attn_output.bias", 1, bert ? bias : T_F32, E);
        if (hp->qk_norm) {
            W(q_norm, "attn_q_norm.weight", 1, R | T_F32, hp->head_dim);
            W(k_norm, "attn_k_norm.weight", 1, R | T_F32, hp->head_dim);
        }
        if (hp->post_norms) {
            W(post_attn_norm, "post_attention_norm.weight", 1, R | T_F32, E);
            W(post_ffn_norm, "post_ffw_norm.weight", 1, R | T_F32, E);
        }
        if (X > 0) {
            W(ffn_gate_inp, "ffn_gate_inp.weight", 2, R | T_MATMUL, E, X);
            W(ffn_gate_exps, "ffn_gate_exps.weight", 3, R | T_MATMUL_ID, E, FX, X);
            W(ffn_up_exps, "ffn_up_exps.weight", 3, R | T_MATMUL_ID, E, FX, X);
            W(ffn_down_exps, "ffn_down_exps.weight", 3, R | T_MATMUL_ID, FX, E, X);
        } else if (hp->fused_up) {
            const int64_t ne[2] = {E, 2 * F};
            VKI_TRY(load_slice(u, NAME("ffn_up.weight"), ne, R | T_MATMUL, 0, F, &L->ffn_gate));
            VKI_TRY(load_slice(u, NAME("ffn_up.weight"), ne, R | T_MATMUL, F, F, &L->ffn_up));
        } else {
            W(ffn_up, "ffn_up.weight", 2, R | T_MATMUL, E, F);
        }
        if (X == 0) W(ffn_down, "ffn_down.weight", 2, R | T_MATMUL, F, E);
        if (enc) {
            W(attn_norm, "attn_output_norm.weight", 1, R | T_F32, E);
            W(attn_norm_b, "attn_output_norm.bias", 1, bias, E);
            W(ffn_norm, "layer_output_norm.weight", 1, R | T_F32, E);
            W(ffn_norm_b, "layer_output_norm.bias", 1, bias, E);
            W(ffn_up_b, "ffn_up.bias", 1, bias, F);
            W(ffn_down_b, "ffn_down.bias", 1, bias, E);
            if (!bert) W(ffn_gate, "ffn_gate.weight", 2, R | T_MATMUL, E, F);
        } else {
            W(attn_norm, "attn_norm.weight", 1, R | T_F32, E);
            W(ffn_norm, "ffn_norm.weight", 1, R | T_F32, E);
            if (X == 0 && !hp->fused_up) W(ffn_gate, "ffn_gate.weight", 2, R | T_MATMUL, E, F);
        }
#undef W
#undef NAME
    }
    return VKI_OK;
}

/* ===== Scratch =========================================================== */

/* Lays the scratch tensors out in one buffer (buf may be NULL: sizes only)
 * and returns its bytes in *total. */
static vki_status scratch_layout(mdl_model *m, bk_buffer *buf, uint64_t *total_out)
{
    const mdl_hparams *hp = &m->hp;
    const int64_t nb = m->n_batch, no = m->n_out;
    const int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim, KV = (int64_t)hp->n_head_kv * hp->head_dim;
    const bool enc = hp->encoder, emb = hp->pooling >= 0;
    /* MoE rows: every token routed to n_used experts; 1x1 when dense. */
    const int64_t X = VKI_MAX(hp->n_expert, 1), U = VKI_MAX(hp->n_expert_used, 1);
    const int64_t nx = hp->n_expert ? nb : 1, FX = hp->n_expert ? hp->n_ff_exp : 1, EX = hp->n_expert ? E : 1;
    mdl_scratch *sc = &m->sc;
    struct { bk_tensor *t; vki_type type; int64_t ne0, ne1; } plan[] = {
        {&sc->ids, VKI_TYPE_I32, nb, 1},       {&sc->pos, VKI_TYPE_I32, nb, 1},
        {&sc->types, VKI_TYPE_I32, enc ? nb : 1, 1}, {&sc->out_ids, VKI_TYPE_I32, enc ? 1 : no, 1},
        {&sc->x, VKI_TYPE_F32, E, nb},         {&sc->h, VKI_TYPE_F32, E, nb},
        {&sc->o, VKI_TYPE_F32, E, nb},         {&sc->q, VKI_TYPE_F32, Q, nb},
        {&sc->att, VKI_TYPE_F32, Q, nb},       {&sc->k, VKI_TYPE_F32, KV, nb},
        {&sc->v, VKI_TYPE_F32, KV, nb},        {&sc->fa, VKI_TYPE_F32, hp->n_ff, nb},
        {&sc->fb, VKI_TYPE_F32, hp->n_ff, nb}, {&sc->fc, VKI_TYPE_F32, hp->n_ff, nb},
        {&sc->xo, VKI_TYPE_F32, E, enc ? 1 : no}, {&sc->ho, VKI_TYPE_F32, E, enc ? 1 : no},
        {&sc->logits, VKI_TYPE_F32, enc ? 1 : hp->n_vocab, enc ? 1 : no},
        {&sc->pooled, VKI_TYPE_F32, emb ? E : 1, emb ? nb : 1},
        {&sc->rl, VKI_TYPE_F32, X, nx},        {&sc->rp, VKI_TYPE_F32, X, nx},
        {&sc->eids, VKI_TYPE_I32, U, nx},      {&sc->ew, VKI_TYPE_F32, U, nx},
        {&sc->eg, VKI_TYPE_F32, FX, nx * U},   {&sc->eu, VKI_TYPE_F32, FX, nx * U},
        {&sc->eh, VKI_TYPE_F32, FX, nx * U},   {&sc->ed, VKI_TYPE_F32, EX, nx * U},
    };
    /* 256: the largest minStorageBufferOffsetAlignment Vulkan allows. */
    uint64_t offs[VKI_COUNT(plan)], total = 0;
    for (size_t i = 0; i < VKI_COUNT(plan); i++) {
        offs[i] = total;
        uint64_t n;
        if (!vki_mul_ok((uint64_t)plan[i].ne0, (uint64_t)plan[i].ne1 * 4u, &n) || !vki_add_ok(total, n, &total))
            return vki_fail(VKI_ERR_INVALID_ARGUMENT, "model: scratch size overflows (n_batch %d)", m->n_batch);
        total = vki_align_up(total, 256);
    }
    for (size_t i = 0; i < VKI_COUNT(plan); i++) {
        int64_t ne[2] = {plan[i].ne0, plan[i].ne1};
        *plan[i].t = bk_tensor_make(plan[i].type, 2, ne, buf, offs[i]);
    }
    *total_out = total;
    return VKI_OK;
}

static vki_status scratch_create(mdl_model *m)
{
    uint64_t total;
    VKI_TRY(scratch_layout(m, NULL, &total));
    VKI_TRY(m->be->iface->buffer_create(m->be, total, BK_BUFFER_COMPUTE, &m->sc.buf));
    VKI_TRY(scratch_layout(m, m->sc.buf, &total));
    const int64_t nb = m->n_batch;
    mdl_scratch *sc = &m->sc;
    if (m->hp.encoder) {
        /* Token type 0 for every token: written once here. */
        int32_t *zeros = calloc((size_t)nb, sizeof *zeros);
        if (!zeros) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "model: out of memory");
        vki_status s = m->be->iface->tensor_set(m->be, &sc->types, zeros, 0, (uint64_t)nb * 4u);
        free(zeros);
        VKI_TRY(s);
    }
    return VKI_OK;
}

/* ===== Load / destroy ==================================================== */

/* Hyperparameters, context, batch and outputs: what a load of f with p
 * will allocate for (m->be is not used). */
static vki_status plan_sizes(const vki_model_file *f, const mdl_load_params *p, mdl_model *m)
{
    VKI_TRY(mdl_read_hparams(f, &m->arch, &m->hp));
    const vki_tensor_info *te = vki_file_find_tensor(f, "token_embd.weight");
    if (!te) return vki_fail(VKI_ERR_NOT_FOUND, "%s: tensor 'token_embd.weight' is missing", vki_file_path(f));
    m->hp.n_vocab = (int32_t)te->ne[1];
    if (m->hp.encoder) {
        const vki_tensor_info *tt = vki_file_find_tensor(f, "token_types.weight");
        m->hp.n_token_types = tt ? (int32_t)tt->ne[1] : 2;
    }
    uint32_t n_ctx = p->n_ctx ? p->n_ctx : VKI_MIN((uint32_t)m->hp.n_ctx_train, 4096u);
    if (m->hp.encoder && n_ctx > (uint32_t)m->hp.n_ctx_train) n_ctx = (uint32_t)m->hp.n_ctx_train;
    if (n_ctx > (1u << 20)) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "model: n_ctx %u is larger than 2^20", n_ctx);
    m->n_ctx = (int32_t)n_ctx;
    m->n_seq_max = p->n_seq_max ? (int32_t)p->n_seq_max : 1;
    m->n_batch = (int32_t)VKI_MIN(p->n_batch ? p->n_batch : 512u, n_ctx);
    if (m->hp.encoder) m->n_batch = (int32_t)VKI_MAX((uint32_t)m->n_batch, VKI_MIN(2048u, 4 * n_ctx));
    m->n_out = m->n_seq_max;
    return VKI_OK;
}

vki_status mdl_estimate(const vki_model_file *f, const mdl_load_params *p, mdl_estimate_t *out)
{
    mdl_load_params dp = {0};
    mdl_model m = {0};
    memset(out, 0, sizeof *out);
    VKI_TRY(plan_sizes(f, p ? p : &dp, &m));
    const mdl_hparams *hp = &m.hp;
    out->n_ctx = m.n_ctx;
    out->n_batch = m.n_batch;
    out->n_vocab = hp->n_vocab;
    out->n_embd = hp->n_embd;
    out->weights = vki_file_weight_bytes(f);
    out->arch = m.arch;
    out->hp = m.hp;
    out->n_ctx_swa = hp->swa_window > 0 ? (int32_t)VKI_MIN((int64_t)m.n_ctx, 2 * (int64_t)hp->swa_window + m.n_batch)
                                        : m.n_ctx;
    if (vki_file_find_tensor(f, "rope_freqs.weight")) out->rope_factors = "rope_freqs";
    if (m.arch == MDL_ARCH_PHI3 && vki_file_find_tensor(f, "rope_factors_long.weight")) {
        uint32_t orig = (uint32_t)mdl_key_u32(f, "rope.scaling.original_context_length", hp->n_ctx_train);
        out->rope_factors = (uint32_t)m.n_ctx > orig ? "rope_factors_long" : "rope_factors_short";
    }
    if (!hp->encoder) {
        const uint64_t el = (p && p->kv_type == VKI_TYPE_F16) ? 2u : 4u;
        const int64_t n_swa = hp->swa_window > 0 ? VKI_MIN((int64_t)m.n_ctx, 2 * (int64_t)hp->swa_window + m.n_batch)
                                                 : m.n_ctx;
        for (int32_t l = 0; l < hp->n_layer; l++)
            out->kv += 2u * (uint64_t)(mdl_layer_is_swa(hp, l) ? n_swa : m.n_ctx) * (uint64_t)m.n_seq_max *
                       (uint64_t)hp->n_head_kv * (uint64_t)hp->head_dim * el;
    }
    return scratch_layout(&m, NULL, &out->scratch);
}

vki_status mdl_load(const vki_model_file *f, bk_backend *be, const mdl_load_params *p, mdl_model **out)
{
    *out = NULL;
    mdl_load_params dp = {0};
    if (!p) p = &dp;
    upload u = {.f = f, .cb = p->progress, .user = p->progress_user, .total = vki_file_weight_bytes(f)};
    vki_status s;
    mdl_model *m = calloc(1, sizeof *m);
    if (!m) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "model: out of memory");
    m->be = be;
    u.m = m;
    if ((s = plan_sizes(f, p, m)) != VKI_OK) goto fail;

    m->layers = calloc((size_t)m->hp.n_layer, sizeof *m->layers);
    if (!m->layers) {
        s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "model: out of memory");
        goto fail;
    }
    if (u.cb && !u.cb(0.0f, u.user)) {
        s = vki_fail(VKI_ERR_CANCELLED, "%s: load cancelled by the progress callback", vki_file_path(f));
        goto fail;
    }
    if ((s = load_weights(&u)) != VKI_OK) goto fail;
    if (!m->hp.encoder) {
        vki_type kt = p->kv_type == VKI_TYPE_F16 ? VKI_TYPE_F16 : VKI_TYPE_F32;
        if ((s = mdl_kv_create(be, &m->hp, kt, m->n_ctx, m->n_seq_max, m->n_batch, &m->kv)) != VKI_OK) goto fail;
    }
    if ((s = scratch_create(m)) != VKI_OK) goto fail;
    if (u.cb && !u.cb(1.0f, u.user)) {
        s = vki_fail(VKI_ERR_CANCELLED, "%s: load cancelled by the progress callback", vki_file_path(f));
        goto fail;
    }
    free(u.stage);
    be->iface->buffer_destroy(be, u.probe);
    *out = m;
    return VKI_OK;
fail:
    free(u.stage);
    if (u.probe) be->iface->buffer_destroy(be, u.probe);
    mdl_destroy(m);
    return s;
}

void mdl_destroy(mdl_model *m)
{
    if (!m) return;
    bk_backend *be = m->be;
    if (m->sc.buf) be->iface->buffer_destroy(be, m->sc.buf);
    mdl_kv_destroy(be, &m->kv);
    for (int32_t i = m->n_wbufs - 1; i >= 0; i--) be->iface->buffer_destroy(be, m->wbufs[i]);
    free(m->wbufs);
    free(m->layers);
    free(m);
}

mdl_arch           mdl_get_arch(const mdl_model *m) { return m->arch; }
const mdl_hparams *mdl_get_hparams(const mdl_model *m) { return &m->hp; }
bk_backend        *mdl_backend(const mdl_model *m) { return m->be; }
int32_t            mdl_n_ctx(const mdl_model *m) { return m->n_ctx; }
int32_t            mdl_n_seq_max(const mdl_model *m) { return m->n_seq_max; }
int32_t            mdl_n_batch(const mdl_model *m) { return m->n_batch; }
uint64_t           mdl_n_params(const mdl_model *m) { return m->n_params; }
uint64_t           mdl_weight_bytes(const mdl_model *m) { return m->weight_bytes; }
uint64_t           mdl_borrowed_bytes(const mdl_model *m) { return m->borrowed_bytes; }
