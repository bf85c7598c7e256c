/*
 * llama.c: the decoder families (llama, mistral, qwen2/3, qwen3moe, gemma2/3,
 * phi3) as one forward pass over a packed batch of tokens from one or more
 * sequences, configured by the hyperparameters' feature flags: RMSNorm,
 * Q/K/V projections (+ biases), per-head q/k RMSNorm, RoPE (adjacent or
 * NeoX, frequency divisors, per-layer base), grouped-query attention over
 * each sequence's KV cache (sliding window, logit softcap), post-norms, a
 * gated FFN (SiLU or GELU-tanh) or a mixture of experts, and the output head
 * (softcapped) for the last token of each sequence; or, for decoder
 * embedding models, the pooled final hidden states. Written only against
 * engine/backend.h.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model.h"
#include "util.h"

static bk_tensor view3(const bk_tensor *t2, int64_t ne0, int64_t ne1, int64_t n_tok)
{
    return bk_tensor_make(t2->type, 3, (int64_t[]){ne0, ne1, n_tok}, t2->buf, t2->offs);
}

static bk_tensor rows2(const bk_tensor *t, int64_t r0, int64_t n) { return bk_tensor_rows(t, 1, r0, n); }

#define OP(x) do { if ((s = (x)) != VKI_OK) goto end; } while (0)

/* The mixture-of-experts FFN: c = sum over the chosen experts of
 * weight * down(act(gate x) * up x), x = a. Only chosen experts are read. */
static vki_status moe_ffn(mdl_model *m, const mdl_layer *L, const bk_tensor *a, const bk_tensor *c, int32_t n_tok)
{
    bk_backend *be = m->be;
    const mdl_hparams *hp = &m->hp;
    mdl_scratch *sc = &m->sc;
    const int64_t E = hp->n_embd, X = hp->n_expert, U = hp->n_expert_used, FX = hp->n_ff_exp;
    bk_tensor rl = rows2(&sc->rl, 0, n_tok), rp = rows2(&sc->rp, 0, n_tok);
    bk_tensor ids = rows2(&sc->eids, 0, n_tok), w = rows2(&sc->ew, 0, n_tok);
    bk_tensor x3 = view3(a, E, 1, n_tok);
    bk_tensor g = view3(&sc->eg, FX, U, n_tok), up = view3(&sc->eu, FX, U, n_tok);
    bk_tensor h = view3(&sc->eh, FX, U, n_tok), d = view3(&sc->ed, E, U, n_tok);
    vki_status s;
    (void)X;
    VKI_TRY(bk_matmul(be, &rl, &L->ffn_gate_inp, a, NULL));
    VKI_TRY(bk_softmax(be, &rp, &rl, 1.0f));
    VKI_TRY(bk_top_k(be, &ids, &rp));
    VKI_TRY(bk_gather_cols(be, &w, &rp, &ids, hp->expert_norm));
    VKI_TRY(bk_matmul_id(be, &g, &L->ffn_gate_exps, &x3, &ids));
    VKI_TRY(bk_matmul_id(be, &up, &L->ffn_up_exps, &x3, &ids));
    VKI_TRY(bk_glu(be, &h, &g, &up, hp->act));
    VKI_TRY(bk_matmul_id(be, &d, &L->ffn_down_exps, &h, &ids));
    s = bk_moe_sum(be, c, &d, &w);
    return s;
}

/* The forward pass for n_tok tokens (ids/positions already uploaded).
 * Generation (pooling < 0): appends each segment's K/V to its sequence's
 * cache, attends over the cache, and leaves logits [n_out][n_vocab] (rows
 * out_ids) in the scratch. Embedding (pooling >= 0): each segment attends
 * over itself only, and the pooled rows [n_segs][n_embd] are left in *res. */
vki_status llama_forward(mdl_model *m, int32_t n_tok, const mdl_seg *segs, int32_t n_segs, int32_t n_out, int pooling,
                         bool normalize, bk_tensor *res)
{
    bk_backend *be = m->be;
    const mdl_hparams *hp = &m->hp;
    mdl_scratch *sc = &m->sc;
    const int64_t hd = hp->head_dim, nh = hp->n_head, nkv = hp->n_head_kv;
    const bool gen = pooling < 0;

    bk_tensor ids = bk_tensor_make(VKI_TYPE_I32, 1, (int64_t[]){n_tok}, sc->ids.buf, sc->ids.offs);
    bk_tensor pos = bk_tensor_make(VKI_TYPE_I32, 1, (int64_t[]){n_tok}, sc->pos.buf, sc->pos.offs);
    bk_tensor a = rows2(&sc->x, 0, n_tok), b = rows2(&sc->h, 0, n_tok), c = rows2(&sc->o, 0, n_tok);
    bk_tensor q = rows2(&sc->q, 0, n_tok), k = rows2(&sc->k, 0, n_tok), v = rows2(&sc->v, 0, n_tok);
    bk_tensor att = rows2(&sc->att, 0, n_tok);
    bk_tensor q3 = view3(&q, hd, nh, n_tok), k3 = view3(&k, hd, nkv, n_tok), v3 = view3(&v, hd, nkv, n_tok);
    bk_tensor att3 = view3(&att, hd, nh, n_tok), attk3 = view3(&att, hd, nkv, n_tok);
    bk_tensor fa = rows2(&sc->fa, 0, n_tok), fb = rows2(&sc->fb, 0, n_tok), fc = rows2(&sc->fc, 0, n_tok);
    const bk_tensor *div = mdl_opt(&m->rope_div);

    vki_status s = bk_begin(be);
    if (s != VKI_OK) return s;

    OP(bk_get_rows(be, &a, &m->tok_embd, &ids));
    if (hp->embd_scale != 0.0f) OP(bk_scale(be, &a, &a, hp->embd_scale));
    for (int32_t l = 0; l < hp->n_layer; l++) {
        const mdl_layer *L = &m->layers[l];
        const bool swa = mdl_layer_is_swa(hp, l);
        const int32_t window = swa ? hp->swa_window : 0;
        const float base = swa ? hp->rope_base_swa : hp->rope_base, fscale = swa ? 1.0f : hp->rope_scale;
        /* attention block: b = a + [post-norm] Wo·attn(rmsnorm(a)) */
        OP(bk_rms_norm(be, &b, &a, &L->attn_norm, hp->norm_eps));
        OP(bk_matmul(be, &q, &L->wq, &b, mdl_opt(&L->bq)));
        OP(bk_matmul(be, &k, &L->wk, &b, mdl_opt(&L->bk)));
        OP(bk_matmul(be, &v, &L->wv, &b, mdl_opt(&L->bv)));
        if (hp->qk_norm) {
            /* per-head RMSNorm into the free att buffer, then RoPE back */
            OP(bk_rms_norm(be, &att3, &q3, &L->q_norm, hp->norm_eps));
            OP(bk_rope_ext(be, &q3, &att3, &pos, div, hp->n_rot, hp->rope_mode, base, fscale, hp->rope_mscale));
            OP(bk_rms_norm(be, &attk3, &k3, &L->k_norm, hp->norm_eps));
            OP(bk_rope_ext(be, &k3, &attk3, &pos, div, hp->n_rot, hp->rope_mode, base, fscale, hp->rope_mscale));
        } else {
            OP(bk_rope_ext(be, &q3, &q3, &pos, div, hp->n_rot, hp->rope_mode, base, fscale, hp->rope_mscale));
            OP(bk_rope_ext(be, &k3, &k3, &pos, div, hp->n_rot, hp->rope_mode, base, fscale, hp->rope_mscale));
        }
        if (gen) {
            for (int32_t i = 0; i < n_segs; i++) {
                const mdl_seg *g = &segs[i];
                const int32_t base = swa ? g->base : 0;
                if (swa && g->base != g->old_base && g->pos0 > g->base) {
                    /* the window's last positions move to the front rows */
                    const int32_t keep = g->pos0 - g->base, from = g->base - g->old_base;
                    for (int kvi = 0; kvi < 2; kvi++) {
                        const bk_tensor *t = kvi ? &m->kv.v[l] : &m->kv.k[l];
                        bk_tensor src = mdl_kv_view(t, g->seq, from, keep), dst = mdl_kv_view(t, g->seq, 0, keep);
                        OP(bk_cpy(be, &dst, &src));
                    }
                }
                bk_tensor kd = mdl_kv_view(&m->kv.k[l], g->seq, g->pos0 - base, g->n);
                bk_tensor vd = mdl_kv_view(&m->kv.v[l], g->seq, g->pos0 - base, g->n);
                bk_tensor ks = bk_tensor_rows(&k3, 2, g->t0, g->n), vs = bk_tensor_rows(&v3, 2, g->t0, g->n);
                OP(bk_cpy(be, &kd, &ks));
                OP(bk_cpy(be, &vd, &vs));
            }
        }
        for (int32_t i = 0; i < n_segs; i++) {
            const mdl_seg *g = &segs[i];
            bk_tensor qs = bk_tensor_rows(&q3, 2, g->t0, g->n), os = bk_tensor_rows(&att3, 2, g->t0, g->n);
            if (gen) {
                const int32_t base = swa ? g->base : 0;
                bk_tensor kc = mdl_kv_view(&m->kv.k[l], g->seq, 0, g->pos0 + g->n - base);
                bk_tensor vc = mdl_kv_view(&m->kv.v[l], g->seq, 0, g->pos0 + g->n - base);
                OP(bk_attn_ext(be, &os, &qs, &kc, &vc, hp->kq_scale, true, g->pos0 - base, window,
                               hp->attn_softcap));
            } else {
                bk_tensor ks = bk_tensor_rows(&k3, 2, g->t0, g->n), vs = bk_tensor_rows(&v3, 2, g->t0, g->n);
                OP(bk_attn_ext(be, &os, &qs, &ks, &vs, hp->kq_scale, true, 0, window, hp->attn_softcap));
            }
        }
        OP(bk_matmul(be, &c, &L->wo, &att, mdl_opt(&L->bo)));
        if (hp->post_norms) {
            OP(bk_rms_norm(be, &b, &c, &L->post_attn_norm, hp->norm_eps));
            OP(bk_add(be, &b, &a, &b));
        } else {
            OP(bk_add(be, &b, &a, &c));
        }
        /* feed-forward block: a = b + [post-norm] FFN(rmsnorm(b)), FFN =
         * Wdown·(act(Wgate·n) * Wup·n) or the experts' weighted sum */
        OP(bk_rms_norm(be, &a, &b, &L->ffn_norm, hp->norm_eps));
        if (hp->n_expert > 0) {
            OP(moe_ffn(m, L, &a, &c, n_tok));
        } else {
            OP(bk_matmul(be, &fa, &L->ffn_gate, &a, NULL));
            OP(bk_matmul(be, &fb, &L->ffn_up, &a, NULL));
            OP(bk_glu(be, &fc, &fa, &fb, hp->act));
            OP(bk_matmul(be, &c, &L->ffn_down, &fc, NULL));
        }
        if (hp->post_norms) {
            OP(bk_rms_norm(be, &a, &c, &L->post_ffn_norm, hp->norm_eps));
            OP(bk_add(be, &a, &b, &a));
        } else {
            OP(bk_add(be, &a, &b, &c));
        }
    }
    if (!gen) {
        bk_tensor pooled = rows2(&sc->pooled, 0, n_segs);
        OP(bk_rms_norm(be, &b, &a, &m->out_norm, hp->norm_eps));
        for (int32_t i = 0; i < n_segs; i++) {
            bk_tensor dst = rows2(&pooled, i, 1), src = rows2(&b, segs[i].t0, segs[i].n);
            OP(bk_pool(be, &dst, &src, pooling));
        }
        *res = pooled;
        if (normalize) {
            bk_tensor nrm = rows2(&sc->h, 0, n_segs);
            OP(bk_l2_norm(be, &nrm, &pooled));
            *res = nrm;
        }
    } else if (n_out > 0) {
        /* Only the rows whose logits are wanted go through the output head. */
        bk_tensor oid = bk_tensor_make(VKI_TYPE_I32, 1, (int64_t[]){n_out}, sc->out_ids.buf, sc->out_ids.offs);
        bk_tensor xo = rows2(&sc->xo, 0, n_out), ho = rows2(&sc->ho, 0, n_out);
        bk_tensor lg = rows2(&sc->logits, 0, n_out);
        OP(bk_get_rows(be, &xo, &a, &oid));
        OP(bk_rms_norm(be, &ho, &xo, &m->out_norm, hp->norm_eps));
        OP(bk_matmul(be, &lg, &m->output, &ho, NULL));
        if (hp->final_softcap > 0.0f) OP(bk_softcap(be, &lg, &lg, hp->final_softcap));
    }
end:;
    vki_status e = bk_end(be);
    return s != VKI_OK ? s : e;
}

vki_status llama_decode(mdl_model *m, const mdl_span *spans, int32_t n_spans, float *logits)
{
    if (m->hp.encoder)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "decode: this is an encoder (%s); use embeddings",
                        m->arch == MDL_ARCH_BERT ? "bert" : "nomic-bert");
    if (n_spans < 1 || n_spans > m->n_seq_max)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "decode: %d sequences in one call, expected 1..%d", n_spans,
                        m->n_seq_max);
    const int32_t n_vocab = m->hp.n_vocab;
    for (int32_t i = 0; i < n_spans; i++) {
        const mdl_span *sp = &spans[i];
        if (sp->seq < 0 || sp->seq >= m->n_seq_max)
            return vki_fail(VKI_ERR_INVALID_ARGUMENT, "decode: sequence %d is outside 0..%d", sp->seq, m->n_seq_max - 1);
        for (int32_t j = 0; j < i; j++)
            if (spans[j].seq == sp->seq)
                return vki_fail(VKI_ERR_INVALID_ARGUMENT, "decode: sequence %d appears twice in one call", sp->seq);
        if (sp->n_tokens < 1 || !sp->tokens)
            return vki_fail(VKI_ERR_INVALID_ARGUMENT, "decode: sequence %d has no tokens", sp->seq);
        if (sp->n_tokens > m->n_ctx - m->kv.len[sp->seq])
            return vki_fail(VKI_ERR_INVALID_ARGUMENT,
                            "decode: sequence %d holds %d positions; %d more exceed the context of %d",
                            sp->seq, m->kv.len[sp->seq], sp->n_tokens, m->n_ctx);
        for (int32_t t = 0; t < sp->n_tokens; t++)
            if (sp->tokens[t] < 0 || sp->tokens[t] >= n_vocab)
                return vki_fail(VKI_ERR_INVALID_ARGUMENT, "decode: token id %d at position %d is outside 0..%d",
                                sp->tokens[t], t, n_vocab - 1);
    }

    const int32_t nb = m->n_batch;
    int32_t *ids = malloc(sizeof *ids * (size_t)nb * 2);
    mdl_seg *segs = malloc(sizeof *segs * (size_t)n_spans);
    int32_t *out_ids = malloc(sizeof *out_ids * (size_t)n_spans * 2);
    vki_status s = VKI_OK;
    if (!ids || !segs || !out_ids) {
        s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "decode: out of memory");
        goto done;
    }
    int32_t *pos = ids + nb, *out_span = out_ids + n_spans;
    bk_backend *be = m->be;

    /* Pack spans into passes of at most n_batch tokens; a long span is split
     * and only its final piece produces logits. */
    int32_t si = 0, off = 0;
    while (si < n_spans) {
        int32_t n_tok = 0, n_segs = 0, n_out = 0;
        while (si < n_spans && n_tok < nb) {
            const mdl_span *sp = &spans[si];
            int32_t n = VKI_MIN(sp->n_tokens - off, nb - n_tok);
            mdl_seg *g = &segs[n_segs++];
            g->seq = sp->seq;
            g->t0 = n_tok;
            g->n = n;
            g->pos0 = m->kv.len[sp->seq];
            g->old_base = m->kv.base[sp->seq];
            g->base = mdl_kv_plan_base(&m->kv, sp->seq, n);
            for (int32_t t = 0; t < n; t++) {
                ids[n_tok + t] = sp->tokens[off + t];
                pos[n_tok + t] = g->pos0 + t;
            }
            n_tok += n;
            off += n;
            if (off == sp->n_tokens) {
                out_ids[n_out] = n_tok - 1;
                out_span[n_out++] = si;
                si++;
                off = 0;
            }
        }
        if ((s = be->iface->tensor_set(be, &m->sc.ids, ids, 0, (uint64_t)n_tok * 4u)) != VKI_OK) goto done;
        if ((s = be->iface->tensor_set(be, &m->sc.pos, pos, 0, (uint64_t)n_tok * 4u)) != VKI_OK) goto done;
        if (n_out && (s = be->iface->tensor_set(be, &m->sc.out_ids, out_ids, 0, (uint64_t)n_out * 4u)) != VKI_OK)
            goto done;
        if ((s = llama_forward(m, n_tok, segs, n_segs, n_out, -1, false, NULL)) != VKI_OK) goto done;
        for (int32_t i = 0; i < n_segs; i++) {
            m->kv.len[segs[i].seq] += segs[i].n;
            m->kv.base[segs[i].seq] = segs[i].base;
        }
        const uint64_t row = (uint64_t)n_vocab * 4u;
        for (int32_t r = 0; r < n_out; r++)
            if ((s = be->iface->tensor_get(be, &m->sc.logits, logits + (size_t)out_span[r] * (size_t)n_vocab,
                                           (uint64_t)r * row, row)) != VKI_OK)
                goto done;
    }
done:
    free(ids);
    free(segs);
    free(out_ids);
    return s;
}
