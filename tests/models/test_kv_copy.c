/* test_kv_copy.c: mdl_kv_seq_copy, which lets n choices share one prompt
 * pass. A prompt is decoded in sequence 0 (passes of 4 tokens) and copied
 * to sequences 1 and 2; the copies must hold the same length, base and K/V
 * bytes, and 12 greedy steps of the three together must give bit-identical
 * logits. stories260K (global layers) and the gemma3 synthetic model (a
 * window of 8 on local layers, and a prompt long enough that those layers
 * have already dropped positions: base > 0). Bad sequences are refused.
 * Usage: test_kv_copy [--backend cpu|vulkan]. */
#include "engine/models/model.h"
#include "model_test_util.h"

#define N_PROMPT 29
#define N_STEPS 12

/* Sequences a and b hold the same K/V bytes in every layer. */
static bool same_rows(mdl_model *m, int32_t a, int32_t b, const char *what)
{
    const mdl_kv_cache *kv = &m->kv;
    bool ok = true;
    for (int32_t l = 0; l < kv->n_layer && ok; l++) {
        const int32_t rows = mdl_layer_is_swa(&m->hp, l) ? kv->len[a] - kv->base[a] : kv->len[a];
        for (int kvi = 0; kvi < 2 && ok; kvi++) {
            const bk_tensor *t = kvi ? &kv->v[l] : &kv->k[l];
            bk_tensor va = mdl_kv_view(t, a, 0, rows), vb = mdl_kv_view(t, b, 0, rows);
            uint64_t n = bk_nbytes(&va);
            char *pa = malloc(n), *pb = malloc(n);
            ok = pa && pb && m->be->iface->tensor_get(m->be, &va, pa, 0, n) == VKI_OK &&
                 m->be->iface->tensor_get(m->be, &vb, pb, 0, n) == VKI_OK && !memcmp(pa, pb, n);
            CHECKF(ok, "%s: layer %d %s rows of sequences %d and %d differ", what, l, kvi ? "V" : "K", a, b);
            free(pa);
            free(pb);
        }
    }
    return ok;
}

static void run(const char *name, bk_backend *be)
{
    vki_model_file *f = NULL;
    mdl_model *m = NULL;
    mdl_load_params lp = {.n_ctx = 64, .n_seq_max = 3, .n_batch = 4};
    if (!mt_open_model(name, be, &lp, &f, &m)) return;
    const int32_t nv = mdl_get_hparams(m)->n_vocab;
    float *logits = malloc(sizeof *logits * (size_t)nv * 3);
    int32_t prompt[N_PROMPT], next[3];
    for (int32_t i = 0; i < N_PROMPT; i++) prompt[i] = 1 + (i * 37) % (nv - 1);
    mdl_span sp = {.seq = 0, .n_tokens = N_PROMPT, .tokens = prompt};
    vki_status s = llama_decode(m, &sp, 1, logits);
    CHECKF(s == VKI_OK, "%s: prompt: %s", name, vki_last_error());
    if (mdl_get_hparams(m)->swa_window > 0)
        CHECKF(m->kv.base[0] > 0, "%s: the prompt should move the window (base %d)", name, m->kv.base[0]);
    for (int32_t d = 1; d < 3 && s == VKI_OK; d++) {
        s = mdl_kv_seq_copy(m, 0, d);
        CHECKF(s == VKI_OK, "%s: copy 0 -> %d: %s", name, d, vki_last_error());
        CHECK(m->kv.len[d] == m->kv.len[0] && m->kv.base[d] == m->kv.base[0]);
        if (s == VKI_OK) same_rows(m, 0, d, name);
    }
    int32_t tok = mt_argmax(logits, nv);
    for (int t = 0; t < N_STEPS && s == VKI_OK; t++) {
        mdl_span spans[3];
        for (int32_t q = 0; q < 3; q++) {
            next[q] = tok;
            spans[q] = (mdl_span){.seq = q, .n_tokens = 1, .tokens = &next[q]};
        }
        s = llama_decode(m, spans, 3, logits);
        CHECKF(s == VKI_OK, "%s: step %d: %s", name, t, vki_last_error());
        for (int32_t q = 1; q < 3 && s == VKI_OK; q++)
            CHECKF(!memcmp(logits, logits + (size_t)q * nv, sizeof *logits * (size_t)nv),
                   "%s: step %d: sequence %d's logits differ from sequence 0's", name, t, q);
        tok = mt_argmax(logits, nv);
    }
    /* An empty source empties the destination; bad sequences are refused. */
    mdl_kv_seq_clear(m, 2);
    CHECK(mdl_kv_seq_copy(m, 2, 1) == VKI_OK && mdl_kv_seq_len(m, 1) == 0);
    CHECK(mdl_kv_seq_copy(m, 0, 0) == VKI_ERR_INVALID_ARGUMENT);
    CHECK(mdl_kv_seq_copy(m, 0, 3) == VKI_ERR_INVALID_ARGUMENT);
    CHECK(mdl_kv_seq_copy(m, -1, 1) == VKI_ERR_INVALID_ARGUMENT);
    printf("%s: prompt of %d copied to 2 sequences (len %d, base %d), %d identical steps\n", name, N_PROMPT,
           m->kv.len[0], m->kv.base[0], N_STEPS);
    free(logits);
    mdl_destroy(m);
    vki_file_close(f);
}

int main(int argc, char **argv)
{
    vki_backend_kind kind = mt_backend_arg(argc, argv);
    /* Skip (exit 77) before a device exists: exiting with a live lavapipe
     * device made LeakSanitizer fail the skip in sanitizer builds. */
    test_shared_path("models/stories260K.gguf");
    test_shared_path("models/synthetic-gemma3-swa-f32.gguf");
    bk_backend *be = mt_backend_create(kind);
    run("stories260K.gguf", be);
    run("synthetic-gemma3-swa-f32.gguf", be);
    mt_check_validation(be, "test_kv_copy");
    bk_destroy(be);
    return test_finish("test_kv_copy");
}
