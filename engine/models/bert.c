/*
 * bert.c: the BERT-family encoders (bert, bge, MiniLM shapes; nomic-bert):
 * token (+ absolute position) + token-type embeddings, embeddings
 * LayerNorm, post-LN blocks with non-causal attention (nomic: NeoX RoPE on
 * q/k) and an exact-GELU or gated (SwiGLU) FFN, then mean, CLS or last
 * pooling and optional L2 normalisation, for a batch of texts packed into
 * one pass. Written only against engine/backend.h.
 */
#include <math.h>
#include <stdlib.h>

#include "error.h"
#include "model.h"
#include "util.h"

static bk_tensor rows2(const bk_tensor *t, int64_t r0, int64_t n) { return bk_tensor_rows(t, 1, r0, n); }

static bk_tensor view3(const bk_tensor *t2, int64_t ne0, int64_t ne1, int64_t n_tok)
{
    return bk_tensor_make(t2->type, 3, (int64_t[]){ne0, ne1, n_tok}, t2->buf, t2->offs);
}

#define OP(x) do { if ((s = (x)) != VKI_OK) goto end; } while (0)

/* One pass over n_tok packed tokens of n_segs texts; leaves the pooled (and
 * normalised) embeddings in *res ([n_segs][n_embd] rows of the scratch). */
vki_status bert_forward(mdl_model *m, int32_t n_tok, const mdl_seg *segs, int32_t n_segs, int pooling, bool normalize,
                        bk_tensor *res)
{
    bk_backend *be = m->be;
    const mdl_hparams *hp = &m->hp;
    mdl_scratch *sc = &m->sc;
    const int64_t hd = hp->head_dim, nh = hp->n_head, nkv = hp->n_head_kv;
    const float kq_scale = hp->kq_scale;
    const float eps = hp->norm_eps;

    bk_tensor ids = bk_tensor_make(VKI_TYPE_I32, 1, (int64_t[]){n_tok}, sc->ids.buf, sc->ids.offs);
    bk_tensor pos = bk_tensor_make(VKI_TYPE_I32, 1, (int64_t[]){n_tok}, sc->pos.buf, sc->pos.offs);
    bk_tensor typ = bk_tensor_make(VKI_TYPE_I32, 1, (int64_t[]){n_tok}, sc->types.buf, sc->types.offs);
    bk_tensor a = rows2(&sc->x, 0, n_tok), b = rows2(&sc->h, 0, n_tok), c = rows2(&sc->o, 0, n_tok);
    bk_tensor q = rows2(&sc->q, 0, n_tok), k = rows2(&sc->k, 0, n_tok), v = rows2(&sc->v, 0, n_tok);
    bk_tensor att = rows2(&sc->att, 0, n_tok);
    bk_tensor q3 = view3(&q, hd, nh, n_tok), k3 = view3(&k, hd, nkv, n_tok), v3 = view3(&v, hd, nkv, n_tok);
    bk_tensor att3 = view3(&att, hd, nh, n_tok);
    bk_tensor fa = rows2(&sc->fa, 0, n_tok), fb = rows2(&sc->fb, 0, n_tok), fc = rows2(&sc->fc, 0, n_tok);
    bk_tensor pooled = rows2(&sc->pooled, 0, n_segs);

    vki_status s = bk_begin(be);
    if (s != VKI_OK) return s;

    OP(bk_get_rows(be, &c, &m->tok_embd, &ids));
    if (m->pos_embd.buf) {
        OP(bk_get_rows(be, &b, &m->pos_embd, &pos));
        OP(bk_add(be, &c, &c, &b));
    }
    OP(bk_get_rows(be, &a, &m->type_embd, &typ));
    OP(bk_add(be, &b, &c, &a));
    OP(bk_layer_norm(be, &a, &b, &m->tok_norm, &m->tok_norm_b, eps));
    for (int32_t l = 0; l < hp->n_layer; l++) {
        const mdl_layer *L = &m->layers[l];
        /* b = a + Wo·attn(a); a = LN(b) */
        OP(bk_matmul(be, &q, &L->wq, &a, mdl_opt(&L->bq)));
        OP(bk_matmul(be, &k, &L->wk, &a, mdl_opt(&L->bk)));
        OP(bk_matmul(be, &v, &L->wv, &a, mdl_opt(&L->bv)));
        if (hp->rope_mode == BK_ROPE_NEOX) { /* nomic-bert */
            OP(bk_rope_ext(be, &q3, &q3, &pos, mdl_opt(&m->rope_div), hp->n_rot, hp->rope_mode, hp->rope_base,
                           hp->rope_scale, hp->rope_mscale));
            OP(bk_rope_ext(be, &k3, &k3, &pos, mdl_opt(&m->rope_div), hp->n_rot, hp->rope_mode, hp->rope_base,
                           hp->rope_scale, hp->rope_mscale));
        }
        for (int32_t i = 0; i < n_segs; i++) {
            bk_tensor qs = bk_tensor_rows(&q3, 2, segs[i].t0, segs[i].n);
            bk_tensor ks = bk_tensor_rows(&k3, 2, segs[i].t0, segs[i].n);
            bk_tensor vs = bk_tensor_rows(&v3, 2, segs[i].t0, segs[i].n);
            bk_tensor os = bk_tensor_rows(&att3, 2, segs[i].t0, segs[i].n);
            OP(bk_attn(be, &os, &qs, &ks, &vs, kq_scale, false, 0));
        }
        OP(bk_matmul(be, &c, &L->wo, &att, mdl_opt(&L->bo)));
        OP(bk_add(be, &b, &a, &c));
        OP(bk_layer_norm(be, &a, &b, &L->attn_norm, mdl_opt(&L->attn_norm_b), eps));
        /* b = a + Wdown·gelu(Wup·a) (gated: Wdown·(act(Wgate·a) * Wup·a)); a = LN(b) */
        if (L->ffn_gate.buf) {
            OP(bk_matmul(be, &fa, &L->ffn_up, &a, mdl_opt(&L->ffn_up_b)));
            OP(bk_matmul(be, &fb, &L->ffn_gate, &a, NULL));
            OP(bk_glu(be, &fc, &fb, &fa, hp->act));
            OP(bk_matmul(be, &c, &L->ffn_down, &fc, mdl_opt(&L->ffn_down_b)));
        } else {
            OP(bk_matmul_act(be, &fb, &L->ffn_up, &a, mdl_opt(&L->ffn_up_b), BK_ACT_GELU));
            OP(bk_matmul(be, &c, &L->ffn_down, &fb, mdl_opt(&L->ffn_down_b)));
        }
        OP(bk_add(be, &b, &a, &c));
        OP(bk_layer_norm(be, &a, &b, &L->ffn_norm, mdl_opt(&L->ffn_norm_b), eps));
    }
    for (int32_t i = 0; i < n_segs; i++) {
        bk_tensor dst = rows2(&pooled, i, 1), src = rows2(&a, segs[i].t0, segs[i].n);
        OP(bk_pool(be, &dst, &src, pooling));
    }
    *res = pooled;
    if (normalize) {
        bk_tensor nrm = rows2(&sc->h, 0, n_segs);
        OP(bk_l2_norm(be, &nrm, &pooled));
        *res = nrm;
    }
end:;
    vki_status e = bk_end(be);
    return s != VKI_OK ? s : e;
}
