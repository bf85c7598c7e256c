/*
 * embed.c: embeddings for encoders and decoder embedding models alike: the
 * texts are checked, packed into passes of at most n_batch tokens (each text
 * its own segment, positions from 0), run through the model's forward pass
 * (bert_forward or llama_forward), and the pooled rows read back.
 */
#include <stdlib.h>

#include "error.h"
#include "model.h"
#include "util.h"

bool mdl_is_embedding(const mdl_model *m) { return m->hp.pooling >= 0; }

vki_status mdl_embed(mdl_model *m, const int32_t *const *ids, const int32_t *n_ids, int32_t n_seq, int pooling,
                     bool normalize, float *out)
{
    if (!mdl_is_embedding(m))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "embed: this is a generation model (no pooling type in the file)");
    if (pooling != BK_POOL_MEAN && pooling != BK_POOL_CLS && pooling != BK_POOL_LAST)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "embed: pooling %d is not mean, CLS or last", pooling);
    const int32_t max_len = VKI_MIN(m->n_ctx, m->n_batch), n_vocab = m->hp.n_vocab;
    for (int32_t i = 0; i < n_seq; i++) {
        if (n_ids[i] < 1 || n_ids[i] > max_len)
            return vki_fail(VKI_ERR_INVALID_ARGUMENT, "embed: text %d has %d tokens, expected 1..%d", i, n_ids[i],
                            max_len);
        for (int32_t t = 0; t < n_ids[i]; t++)
            if (ids[i][t] < 0 || ids[i][t] >= n_vocab)
                return vki_fail(VKI_ERR_INVALID_ARGUMENT, "embed: text %d: token id %d is outside 0..%d", i,
                                ids[i][t], n_vocab - 1);
    }
    const int32_t nb = m->n_batch, E = m->hp.n_embd;
    int32_t *tok = malloc(sizeof *tok * (size_t)nb * 2);
    mdl_seg *segs = malloc(sizeof *segs * (size_t)nb);
    vki_status s = VKI_OK;
    if (!tok || !segs) {
        s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "embed: out of memory");
        goto done;
    }
    int32_t *pos = tok + nb;
    bk_backend *be = m->be;
    for (int32_t first = 0; first < n_seq;) {
        int32_t n_tok = 0, n_segs = 0;
        while (first + n_segs < n_seq && n_tok + n_ids[first + n_segs] <= nb) {
            int32_t i = first + n_segs, n = n_ids[i];
            segs[n_segs++] = (mdl_seg){.t0 = n_tok, .n = n};
            for (int32_t t = 0; t < n; t++) {
                tok[n_tok + t] = ids[i][t];
                pos[n_tok + t] = t;
            }
            n_tok += n;
        }
        bk_tensor res;
        if ((s = be->iface->tensor_set(be, &m->sc.ids, tok, 0, (uint64_t)n_tok * 4u)) != VKI_OK) goto done;
        if ((s = be->iface->tensor_set(be, &m->sc.pos, pos, 0, (uint64_t)n_tok * 4u)) != VKI_OK) goto done;
        s = m->hp.encoder ? bert_forward(m, n_tok, segs, n_segs, pooling, normalize, &res)
                          : llama_forward(m, n_tok, segs, n_segs, 0, pooling, normalize, &res);
        if (s != VKI_OK) goto done;
        if ((s = be->iface->tensor_get(be, &res, out + (size_t)first * (size_t)E, 0,
                                       (uint64_t)n_segs * (uint64_t)E * 4u)) != VKI_OK)
            goto done;
        first += n_segs;
    }
done:
    free(tok);
    free(segs);
    return s;
}
