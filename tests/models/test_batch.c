/* test_batch.c: several sequences in one batch. The five stories260K
 * reference prompts go through llama_decode together, in passes of 7 tokens
 * (so prompts are split across passes and passes mix sequences), then all
 * five continue greedily in one batch per step. Each must reproduce its
 * reference: all 512 first-step logits within 1e-3 relative, 24 greedy ids
 * exact. Usage: test_batch [--backend cpu|vulkan]. */
#include "engine/models/model.h"
#include "model_test_util.h"

#define N_SEQ 5
#define N_STEPS 24

int main(int argc, char **argv)
{
    vki_backend_kind kind = mt_backend_arg(argc, argv);
    cJSON *ref = mt_load_json("reference/stories260K.greedy.json");
    const cJSON *cases = cJSON_GetObjectItem(ref, "cases");
    CHECK(cJSON_GetArraySize(cases) == N_SEQ);
    bk_backend *be = mt_backend_create(kind);
    vki_model_file *f = NULL;
    mdl_model *m = NULL;
    vki_status s = vki_file_open(test_shared_path("models/stories260K.gguf"), &f);
    if (s == VKI_OK) {
        mdl_load_params lp = {.n_ctx = 128, .n_seq_max = N_SEQ, .n_batch = 7};
        s = mdl_load(f, be, &lp, &m);
    }
    if (s != VKI_OK) {
        fprintf(stderr, "load: %s\n", vki_last_error());
        return 1;
    }
    const int32_t nv = mdl_get_hparams(m)->n_vocab;
    float *logits = malloc(sizeof *logits * (size_t)nv * N_SEQ);
    int32_t *prompt[N_SEQ], *greedy[N_SEQ], n_prompt[N_SEQ], n_greedy[N_SEQ], next[N_SEQ];
    mdl_span spans[N_SEQ];
    for (int i = 0; i < N_SEQ; i++) {
        const cJSON *c = cJSON_GetArrayItem(cases, i);
        prompt[i] = mt_int_array(cJSON_GetObjectItem(c, "prompt_ids_with_bos"), &n_prompt[i]);
        greedy[i] = mt_int_array(cJSON_GetObjectItem(c, "greedy_ids"), &n_greedy[i]);
        /* reversed slot order, so that span order and slot order differ */
        spans[i] = (mdl_span){.seq = N_SEQ - 1 - i, .n_tokens = n_prompt[i], .tokens = prompt[i]};
    }
    s = llama_decode(m, spans, N_SEQ, logits);
    CHECKF(s == VKI_OK, "decode: %s", vki_last_error());
    double worst = 0;
    for (int i = 0; s == VKI_OK && i < N_SEQ; i++) {
        const cJSON *fl = cJSON_GetObjectItem(cJSON_GetArrayItem(cases, i), "first_step_logits");
        CHECK(cJSON_GetArraySize(fl) == nv);
        for (int32_t j = 0; j < nv && j < cJSON_GetArraySize(fl); j++) {
            double r = cJSON_GetArrayItem(fl, j)->valuedouble;
            double e = fabs(logits[(size_t)i * nv + j] - r) / fmax(1.0, fabs(r));
            if (e > worst) worst = e;
        }
        CHECK(mdl_kv_seq_len(m, N_SEQ - 1 - i) == n_prompt[i]);
    }
    CHECKF(worst <= 1e-3, "first-step logits: worst relative error %.3g", worst);
    for (int t = 0; s == VKI_OK && t < N_STEPS; t++) {
        for (int i = 0; i < N_SEQ; i++) {
            next[i] = mt_argmax(logits + (size_t)i * nv, nv);
            CHECKF(next[i] == greedy[i][t], "sequence %d step %d: %d, reference %d", i, t, next[i], greedy[i][t]);
            spans[i] = (mdl_span){.seq = N_SEQ - 1 - i, .n_tokens = 1, .tokens = &next[i]};
        }
        s = llama_decode(m, spans, N_SEQ, logits);
        CHECKF(s == VKI_OK, "decode step %d: %s", t, vki_last_error());
    }
    /* Truncating a sequence and re-feeding its tokens gives the same logits. */
    if (s == VKI_OK) {
        float *again = malloc(sizeof *again * (size_t)nv);
        mdl_kv_seq_truncate(m, 0, n_prompt[N_SEQ - 1] - 1);
        mdl_span sp = {.seq = 0, .n_tokens = 1, .tokens = &prompt[N_SEQ - 1][n_prompt[N_SEQ - 1] - 1]};
        s = llama_decode(m, &sp, 1, again);
        CHECK(s == VKI_OK && mt_argmax(again, nv) == greedy[N_SEQ - 1][0]);
        free(again);
    }
    /* Bad input is refused, not crashed on. */
    int32_t bad = nv;
    mdl_span sp = {.seq = 0, .n_tokens = 1, .tokens = &bad};
    CHECK(llama_decode(m, &sp, 1, logits) == VKI_ERR_INVALID_ARGUMENT);
    sp = (mdl_span){.seq = N_SEQ, .n_tokens = 1, .tokens = next};
    CHECK(llama_decode(m, &sp, 1, logits) == VKI_ERR_INVALID_ARGUMENT);
    printf("5 sequences batched: first-step logits worst relative error %.2e, %d greedy steps\n", worst, N_STEPS);
    for (int i = 0; i < N_SEQ; i++) {
        free(prompt[i]);
        free(greedy[i]);
    }
    free(logits);
    mdl_destroy(m);
    vki_file_close(f);
    mt_check_validation(be, "test_batch");
    bk_destroy(be);
    cJSON_Delete(ref);
    return test_finish("test_batch");
}
