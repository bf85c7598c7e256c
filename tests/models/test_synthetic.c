/* test_synthetic.c: every model in ../shared/reference/synthetic.json (float64
 * torch forward passes on the dequantized stored weights).
 * Decoders: teacher-forced along the reference tokens, every step's top-5
 * logits must be within the type's tolerance and the argmax must equal the
 * reference wherever the reference top-1/top-2 margin exceeds twice that
 * tolerance; then a free-running greedy run must match the reference ids up
 * to the first step whose margin is below it (F32: all steps).
 * Tolerances (absolute, on logits of magnitude ~5): the weights are the
 * reference's own, so the only error is arithmetic: F32 sums (1e-3, observed
 * ~1e-5); F16 weights: a backend may round activations to f16 for the dot
 * products (2^-11 relative per element, ~1e-3 on the logits after 4 layers;
 * allowed 1e-2); Q8_0/Q4_0: backends quantize each matmul's activations to
 * Q8_0 blocks as llama.cpp does (max/254 per element, ~0.5% relative per dot
 * product); through 4 layers x 7 matmuls of random, untrained weights this
 * reaches ~0.2 on logits of ~5 at worst (RMS ~0.05 on the CPU), so 0.25.
 * Encoders: cosine >= 0.9999 to the reference embedding, with the
 * reference's ids and through vki_embed on the texts.
 * Usage: test_synthetic [--backend cpu|vulkan]. */
#include "engine/models/model.h"
#include "model_test_util.h"

static double tolerance_for(const char *name)
{
    if (strstr(name, "f32")) return 1e-3;
    if (strstr(name, "f16")) return 1e-2;
    return 0.25; /* q8_0, q4_0 */
}

static void test_decoder(const char *name, const cJSON *cases, bk_backend *be)
{
    vki_model_file *f;
    mdl_model *m;
    mdl_load_params lp = {.n_ctx = 128, .n_seq_max = 1};
    if (!mt_open_model(name, be, &lp, &f, &m)) return;
    const double tol = tolerance_for(name);
    const bool exact = tol <= 1e-3;
    const int32_t nv = mdl_get_hparams(m)->n_vocab;
    float *logits = malloc(sizeof *logits * (size_t)nv);
    double worst = 0, sq = 0;
    int compared = 0, n_err = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        int32_t n_p;
        int32_t *pids = mt_int_array(cJSON_GetObjectItem(c, "prompt_ids"), &n_p);
        const cJSON *steps = cJSON_GetObjectItem(c, "steps");
        const int32_t n_steps = cJSON_GetArraySize(steps);
        for (int pass = 0; pass < 2; pass++) { /* 0: teacher-forced, 1: free-running */
            mdl_kv_seq_clear(m, 0);
            mdl_span sp = {.seq = 0, .n_tokens = n_p, .tokens = pids};
            vki_status s = llama_decode(m, &sp, 1, logits);
            CHECKF(s == VKI_OK, "%s: decode: %s", name, vki_last_error());
            if (s != VKI_OK) break;
            bool diverged = false;
            for (int32_t t = 0; t < n_steps && !diverged; t++) {
                const cJSON *st = cJSON_GetArrayItem(steps, t), *top5 = cJSON_GetObjectItem(st, "top5");
                int32_t ref_id = (int32_t)cJSON_GetObjectItem(st, "id")->valuedouble;
                double r1 = cJSON_GetArrayItem(cJSON_GetArrayItem(top5, 0), 1)->valuedouble;
                double r2 = cJSON_GetArrayItem(cJSON_GetArrayItem(top5, 1), 1)->valuedouble;
                bool decisive = exact || r1 - r2 > 2 * tol;
                int32_t mine = mt_argmax(logits, nv);
                if (pass == 0) {
                    for (int k = 0; k < 5; k++) {
                        const cJSON *pr = cJSON_GetArrayItem(top5, k);
                        int32_t id = (int32_t)cJSON_GetArrayItem(pr, 0)->valuedouble;
                        double err = fabs(logits[id] - cJSON_GetArrayItem(pr, 1)->valuedouble);
                        if (err > worst) worst = err;
                        sq += err * err;
                        n_err++;
                        CHECKF(err <= tol, "%s prompt %d step %d: logit of %d off by %.3g > %.3g", name, n_p, t, id,
                               err, tol);
                    }
                    if (decisive)
                        CHECKF(mine == ref_id, "%s prompt %d step %d: argmax %d, reference %d (margin %.4f)", name,
                               n_p, t, mine, ref_id, r1 - r2);
                    compared++;
                } else {
                    if (!decisive) break; /* beyond here the type's error may flip the choice */
                    CHECKF(mine == ref_id, "%s prompt %d: free-running greedy differs at step %d: %d vs %d", name,
                           n_p, t, mine, ref_id);
                    diverged = mine != ref_id;
                }
                sp = (mdl_span){.seq = 0, .n_tokens = 1, .tokens = &ref_id};
                if (t + 1 < n_steps && (s = llama_decode(m, &sp, 1, logits)) != VKI_OK) {
                    CHECKF(0, "%s: decode: %s", name, vki_last_error());
                    break;
                }
            }
        }
        free(pids);
    }
    printf("%-34s %d steps, top-5 logit error worst %.2e, rms %.2e (tolerance %.2g)\n", name, compared, worst,
           sqrt(sq / (n_err ? n_err : 1)), tol);
    free(logits);
    mdl_destroy(m);
    vki_file_close(f);
}

static void test_encoder(const char *name, const cJSON *spec, bk_backend *be, vki_engine *eng, vki_backend_kind kind)
{
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s", name);
    const char *path = test_shared_path(rel);
    const cJSON *cases = cJSON_GetObjectItem(spec, "cases");
    const int pooling = !strcmp(cJSON_GetObjectItem(spec, "pooling")->valuestring, "cls") ? BK_POOL_CLS : BK_POOL_MEAN;
    const int32_t n = cJSON_GetArraySize(cases);
    vki_model_file *f = NULL;
    mdl_model *m = NULL;
    if (vki_file_open(path, &f) != VKI_OK || mdl_load(f, be, NULL, &m) != VKI_OK) {
        CHECKF(0, "%s: %s", name, vki_last_error());
        vki_file_close(f);
        return;
    }
    CHECK(mdl_get_hparams(m)->pooling == pooling);
    const int32_t E = mdl_get_hparams(m)->n_embd;
    int32_t **ids = calloc((size_t)n, sizeof *ids), *n_ids = calloc((size_t)n, sizeof *n_ids);
    const char **texts = calloc((size_t)n, sizeof *texts);
    double *want = calloc((size_t)n * (size_t)E, sizeof *want);
    float *got = calloc((size_t)n * (size_t)E, sizeof *got), *one = calloc((size_t)E, sizeof *one);
    for (int32_t i = 0; i < n; i++) {
        const cJSON *c = cJSON_GetArrayItem(cases, i), *emb = cJSON_GetObjectItem(c, "embedding");
        ids[i] = mt_int_array(cJSON_GetObjectItem(c, "ids"), &n_ids[i]);
        texts[i] = cJSON_GetObjectItem(c, "text")->valuestring;
        CHECK(cJSON_GetArraySize(emb) == E);
        for (int32_t j = 0; j < E; j++) want[(size_t)i * E + j] = cJSON_GetArrayItem(emb, j)->valuedouble;
    }
    double worst = 1;
    /* all texts packed in one pass */
    vki_status s = mdl_embed(m, (const int32_t *const *)ids, n_ids, n, pooling, true, got);
    CHECKF(s == VKI_OK, "%s: embed: %s", name, vki_last_error());
    for (int32_t i = 0; s == VKI_OK && i < n; i++) {
        double cs = mt_cosine(got + (size_t)i * E, want + (size_t)i * E, E);
        if (cs < worst) worst = cs;
        CHECKF(cs >= 0.9999, "%s text %d: cosine %.6f < 0.9999", name, i, cs);
        /* alone, the same text gives the same vector */
        s = mdl_embed(m, (const int32_t *const *)&ids[i], &n_ids[i], 1, pooling, true, one);
        double self = 0;
        for (int32_t j = 0; j < E; j++) self += (double)one[j] * got[(size_t)i * E + j];
        CHECKF(s == VKI_OK && self > 0.999999, "%s text %d: batched vs alone cosine %.7f", name, i, self);
    }
    mdl_destroy(m);
    vki_file_close(f);

    /* the public API from text */
    vki_model_params mp = vki_model_default_params();
    mp.backend = kind;
    vki_model *pm = NULL;
    s = vki_model_load(eng, path, &mp, &pm);
    CHECKF(s == VKI_OK, "%s: %s", name, vki_last_error());
    if (s == VKI_OK) {
        CHECK(vki_model_is_embedding(pm) && vki_model_n_embd(pm) == E);
        for (int32_t i = 0; i < n; i++) {
            int32_t t[512];
            int32_t k = vki_tokenize(pm, texts[i], strlen(texts[i]), t, 512, true, false);
            CHECKF(k == n_ids[i] && !memcmp(t, ids[i], sizeof *t * (size_t)k), "%s: '%s' tokenizes to %d ids, reference %d",
                   name, texts[i], k, n_ids[i]);
        }
        s = vki_embed(pm, texts, n, NULL, got);
        CHECKF(s == VKI_OK, "%s: vki_embed: %s", name, vki_last_error());
        for (int32_t i = 0; s == VKI_OK && i < n; i++) {
            double cs = mt_cosine(got + (size_t)i * E, want + (size_t)i * E, E);
            CHECKF(cs >= 0.9999, "%s text %d via vki_embed: cosine %.6f", name, i, cs);
        }
        mt_check_validation(api_model_backend(pm), name);
        vki_model_destroy(pm);
    }
    printf("%-34s %d texts, worst cosine %.7f\n", name, n, worst);
    for (int32_t i = 0; i < n; i++) free(ids[i]);
    free(ids);
    free(n_ids);
    free(texts);
    free(want);
    free(got);
    free(one);
}

int main(int argc, char **argv)
{
    vki_backend_kind kind = mt_backend_arg(argc, argv);
    cJSON *ref = mt_load_json("reference/synthetic.json");
    bk_backend *be = mt_backend_create(kind);
    vki_engine_params ep = mt_engine_params();
    vki_engine *eng = NULL;
    CHECK(vki_engine_create(&ep, &eng) == VKI_OK);
    const cJSON *models = cJSON_GetObjectItem(ref, "models"), *mj;
    int n_models = 0;
    cJSON_ArrayForEach(mj, models) {
        const char *kind_s = cJSON_GetObjectItem(mj, "kind")->valuestring;
        if (!strcmp(kind_s, "generation")) test_decoder(mj->string, cJSON_GetObjectItem(mj, "cases"), be);
        else test_encoder(mj->string, mj, be, eng, kind);
        n_models++;
    }
    CHECK(n_models >= 7);
    vki_engine_destroy(eng);
    mt_check_validation(be, "test_synthetic");
    bk_destroy(be);
    cJSON_Delete(ref);
    return test_finish("test_synthetic");
}
