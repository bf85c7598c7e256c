/* test_arch.c: one architecture family against ../shared/reference/<family>.json
 * (llama.cpp 3f545becc, F32 KV cache, cross-checked with float64 passes).
 * Generation models, per case:
 *   - first-step logits (after the prompt, one batch) within the tolerance of
 *     llama.cpp's, and for gemma within 1e-4 of the exact-GELU float64 logits;
 *   - teacher-forced along the reference ids: every step's top-5 logits within
 *     the tolerance, and the argmax equal wherever the reference margin
 *     exceeds twice the tolerance;
 *   - free-running greedy: ids equal up to the first step whose reference
 *     margin is below twice the tolerance (F32: normally all 32).
 * Tolerances: F32 1e-3 (observed error is printed: the backend's measured
 * logit error); gemma 3e-3 (llama.cpp's fp16 GELU table carries ~1.7e-3);
 * Q8_0: llama.cpp quantizes activations to Q8_0 as our CPU backend does
 * (first-step logits agree to ~1e-6), but later steps differ by up to ~0.03
 * (gemma ~0.06): 0.04 (gemma 0.08). The Vulkan kernels keep activations in
 * f32: ~0.09 off (0.1), and on the MoE the router's choices flip, ~1.9 off
 * (2.0). Only the ids are asserted for Q8_0, wherever the reference margin
 * exceeds twice that; the error is printed. Embedding models: cosine >= 0.9999 with the reference ids.
 * Usage: test_arch --family NAME [--backend cpu|vulkan]. */
#include "engine/models/model.h"
#include "model_test_util.h"

typedef struct stats {
    double first, first_exact, top5;
    int    steps, ties, free_ids, n_cases;
} stats;

static void check_case(const char *name, mdl_model *m, const cJSON *c, double tol, bool quant, stats *st)
{
    const int32_t nv = mdl_get_hparams(m)->n_vocab;
    float *lg = malloc(sizeof *lg * (size_t)nv);
    int32_t n_p;
    int32_t *pids = mt_int_array(cJSON_GetObjectItem(c, "prompt_ids"), &n_p);
    const cJSON *steps = cJSON_GetObjectItem(c, "steps");
    const int32_t n_steps = cJSON_GetArraySize(steps);
    const char *prompt = cJSON_GetStringValue(cJSON_GetObjectItem(c, "prompt"));
    st->n_cases++;

    for (int pass = 0; pass < 2; pass++) { /* 0: teacher-forced, 1: free-running greedy */
        mdl_kv_seq_clear(m, 0);
        mdl_span sp = {.seq = 0, .n_tokens = n_p, .tokens = pids};
        if (llama_decode(m, &sp, 1, lg) != VKI_OK) {
            CHECKF(0, "%s: '%s': decode: %s", name, prompt, vki_last_error());
            break;
        }
        if (pass == 0) {
            const cJSON *fl = cJSON_GetObjectItem(c, "first_logits");
            CHECKF(cJSON_GetArraySize(fl) == nv, "%s: first_logits has %d values", name, cJSON_GetArraySize(fl));
            double d = 0, dx = 0;
            for (int32_t i = 0; i < nv && i < cJSON_GetArraySize(fl); i++)
                d = fmax(d, fabs(lg[i] - cJSON_GetArrayItem(fl, i)->valuedouble));
            const cJSON *fx = cJSON_GetObjectItem(c, "first_logits_f64_exact_gelu");
            for (int32_t i = 0; fx && i < nv && i < cJSON_GetArraySize(fx); i++)
                dx = fmax(dx, fabs(lg[i] - cJSON_GetArrayItem(fx, i)->valuedouble));
            st->first = fmax(st->first, d);
            st->first_exact = fmax(st->first_exact, dx);
            if (!quant) {
                CHECKF(d <= tol, "%s: '%s': first-step logits differ by %.3g (tolerance %.3g)", name, prompt, d, tol);
                CHECKF(!fx || dx <= 1e-4, "%s: '%s': first-step logits differ from exact GELU by %.3g (1e-4)", name,
                       prompt, dx);
            }
        }
        for (int32_t i = 0; i < n_steps; i++) {
            const cJSON *step = cJSON_GetArrayItem(steps, i);
            const int32_t ref = (int32_t)cJSON_GetObjectItem(step, "id")->valuedouble;
            const double margin = cJSON_GetObjectItem(step, "margin")->valuedouble;
            const int32_t got = mt_argmax(lg, nv);
            if (pass == 0) {
                const cJSON *t5;
                cJSON_ArrayForEach(t5, cJSON_GetObjectItem(step, "top5")) {
                    int32_t id = (int32_t)cJSON_GetArrayItem(t5, 0)->valuedouble;
                    double e = fabs(lg[id] - cJSON_GetArrayItem(t5, 1)->valuedouble);
                    st->top5 = fmax(st->top5, e);
                    if (!quant)
                        CHECKF(e <= tol, "%s: '%s' step %d: logit of %d differs by %.3g (tolerance %.3g)", name,
                               prompt, i, id, e, tol);
                }
                if (margin > 2 * tol) {
                    st->steps++;
                    CHECKF(got == ref, "%s: '%s' step %d: argmax %d, reference %d (margin %.3g)", name, prompt,
                               i, got, ref, margin);
                } else {
                    st->ties++;
                }
            } else {
                if (margin <= 2 * tol) break; /* a tie at our error: later ids may differ */
                CHECKF(got == ref, "%s: '%s' greedy step %d: %d, reference %d (margin %.3g)", name, prompt, i, got,
                       ref, margin);
                if (got != ref) break;
                st->free_ids++;
            }
            const int32_t next = pass == 0 ? ref : got;
            if (i + 1 == n_steps) break;
            mdl_span s1 = {.seq = 0, .n_tokens = 1, .tokens = &next};
            if (llama_decode(m, &s1, 1, lg) != VKI_OK) {
                CHECKF(0, "%s: step %d: %s", name, i, vki_last_error());
                break;
            }
        }
    }
    free(pids);
    free(lg);
}

static void test_generation(const char *name, const cJSON *model, bk_backend *be)
{
    const bool quant = !strstr(name, "f32");
    const bool gemma = strstr(name, "gemma") != NULL, moe = strstr(name, "moe") != NULL;
    const bool vk = be->kind == VKI_BACKEND_VULKAN || bk_check_inner(be)->kind == VKI_BACKEND_VULKAN;
    const double tol = !quant ? (gemma ? 3e-3 : 1e-3) : !vk ? (gemma ? 0.08 : 0.04) : moe ? 2.0 : 0.1;
    /* the third run: passes of 4 tokens, so a sliding-window cache (2W + 4
     * rows) moves its window to the front many times within the cases */
    const char *sets[3][2] = {{"cases", "n_ctx"}, {"cases_long_ctx", "n_ctx_long"}, {"cases", "n_ctx"}};
    for (int k = 0; k < 3; k++) {
        if (k == 2 && !gemma) break;
        const cJSON *cases = cJSON_GetObjectItem(model, sets[k][0]);
        if (!cases) continue;
        vki_model_file *f;
        mdl_model *m;
        mdl_load_params lp = {.n_ctx = (uint32_t)cJSON_GetObjectItem(model, sets[k][1])->valuedouble, .n_seq_max = 1,
                              .n_batch = k == 2 ? 4 : 0};
        if (!mt_open_model(name, be, &lp, &f, &m)) return;
        stats st = {0};
        const cJSON *c;
        cJSON_ArrayForEach(c, cases) check_case(name, m, c, tol, quant, &st);
        if (k == 2)
            CHECKF(m->kv.n_ctx_swa < m->n_ctx, "%s: local layers hold %d rows, n_ctx %d", name, m->kv.n_ctx_swa,
                   m->n_ctx);
        printf("%s (n_ctx %u, n_batch %d, local KV rows %d, %s): %d cases; max |dlogit| first step %.2e%s top-5 %.2e (tolerance %.0e%s); "
               "argmax checked on %d steps (%d near-ties skipped); greedy ids matched %d\n",
               name, lp.n_ctx, m->n_batch, m->kv.n_ctx_swa, bk_name(be), st.n_cases, st.first, cJSON_GetObjectItem(cases->child, "first_logits_f64_exact_gelu") ? "" : ",",
               st.top5, tol, quant ? ", logits not asserted" : "", st.steps, st.ties, st.free_ids);
        if (cJSON_GetObjectItem(cases->child, "first_logits_f64_exact_gelu"))
            printf("  %s: first-step logits vs exact-GELU float64: %.2e\n", name, st.first_exact);
        mt_check_validation(be, name);
        mdl_destroy(m);
        vki_file_close(f);
    }
}

static void test_embedding(const char *name, const cJSON *model, bk_backend *be)
{
    vki_model_file *f;
    mdl_model *m;
    mdl_load_params lp = {.n_ctx = 256, .n_seq_max = 1};
    if (!mt_open_model(name, be, &lp, &f, &m)) return;
    CHECKF(mdl_is_embedding(m), "%s: not recognised as an embedding model", name);
    const char *pool = cJSON_GetStringValue(cJSON_GetObjectItem(model, "pooling"));
    const int want = !strcmp(pool, "last") ? BK_POOL_LAST : !strcmp(pool, "cls") ? BK_POOL_CLS : BK_POOL_MEAN;
    CHECKF(mdl_get_hparams(m)->pooling == want, "%s: pooling %d from the file, reference says %s", name,
           mdl_get_hparams(m)->pooling, pool);
    const cJSON *cases = cJSON_GetObjectItem(model, "cases");
    const int32_t n = cJSON_GetArraySize(cases), E = mdl_get_hparams(m)->n_embd;
    int32_t **ids = calloc((size_t)n, sizeof *ids), *n_ids = calloc((size_t)n, sizeof *n_ids);
    for (int32_t i = 0; i < n; i++) ids[i] = mt_int_array(cJSON_GetObjectItem(cJSON_GetArrayItem(cases, i), "ids"), &n_ids[i]);
    float *got = malloc(sizeof *got * (size_t)n * (size_t)E);
    double *ref = malloc(sizeof *ref * (size_t)E), worst = 1.0;
    /* all texts in one packed pass, then each alone: the same vectors */
    for (int pass = 0; pass < 2; pass++) {
        vki_status s = VKI_OK;
        if (pass == 0) s = mdl_embed(m, (const int32_t *const *)ids, n_ids, n, want, true, got);
        for (int32_t i = 0; pass == 1 && i < n && s == VKI_OK; i++)
            s = mdl_embed(m, (const int32_t *const *)&ids[i], &n_ids[i], 1, want, true, got + (size_t)i * E);
        CHECKF(s == VKI_OK, "%s: embed: %s", name, vki_last_error());
        for (int32_t i = 0; i < n && s == VKI_OK; i++) {
            const cJSON *e = cJSON_GetObjectItem(cJSON_GetArrayItem(cases, i), "embedding");
            for (int32_t j = 0; j < E; j++) ref[j] = cJSON_GetArrayItem(e, j)->valuedouble;
            double cs = mt_cosine(got + (size_t)i * E, ref, E);
            worst = fmin(worst, cs);
            CHECKF(cs >= 0.9999, "%s: text %d (%s): cosine %.6f", name, i, pass ? "alone" : "packed", cs);
        }
    }
    printf("%s (%s): %d texts, pooling %s, min cosine %.8f\n", name, bk_name(be), n, pool, worst);
    mt_check_validation(be, name);
    for (int32_t i = 0; i < n; i++) free(ids[i]);
    free(ids);
    free(n_ids);
    free(got);
    free(ref);
    mdl_destroy(m);
    vki_file_close(f);
}

int main(int argc, char **argv)
{
    const char *family = NULL;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--family")) family = argv[i + 1];
    if (!family) {
        fprintf(stderr, "usage: test_arch --family NAME [--backend cpu|vulkan]\n");
        return 2;
    }
    vki_backend_kind k = mt_backend_arg(argc, argv);
    char rel[128];
    snprintf(rel, sizeof rel, "reference/%s.json", family);
    cJSON *j = mt_load_json(rel);
    bk_backend *be = mt_backend_create(k);
    const cJSON *model;
    cJSON_ArrayForEach(model, cJSON_GetObjectItem(j, "models")) {
        const char *kind = cJSON_GetStringValue(cJSON_GetObjectItem(model, "kind"));
        if (kind && !strcmp(kind, "embedding")) test_embedding(model->string, model, be);
        else test_generation(model->string, model, be);
    }
    bk_destroy(be);
    cJSON_Delete(j);
    return test_finish(family);
}
