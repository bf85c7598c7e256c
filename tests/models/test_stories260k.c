/* test_stories260k.c: the public API on a real trained llama (stories260K)
 * against ../shared/reference/stories260K.greedy.json (a float64 reference):
 * prompt ids exact, 64 greedy ids exact, top-5 logits within 1e-3
 * relative, streamed text equal to the reference text; then stop strings
 * and seeded sampling. Usage: test_stories260k [--backend cpu|vulkan]. */
#include "model_test_util.h"

typedef struct collected {
    int32_t n;
    int32_t ids[256];
    int32_t top_ids[256][5];
    float   top_logits[256][5];
    char    text[8192];
    size_t  text_len;
} collected;

/* Keeps the last event (its text pointer is not used afterwards). */
static bool on_token_copy(const vki_token_event *ev, void *user)
{
    *(vki_token_event *)user = *ev;
    return true;
}

static bool on_token(const vki_token_event *ev, void *user)
{
    collected *c = user;
    if (c->n < 256) {
        c->ids[c->n] = ev->id;
        memcpy(c->top_ids[c->n], ev->top_ids, sizeof ev->top_ids);
        memcpy(c->top_logits[c->n], ev->top_logits, sizeof ev->top_logits);
        c->n++;
    }
    size_t l = strlen(ev->text);
    if (c->text_len + l < sizeof c->text) {
        memcpy(c->text + c->text_len, ev->text, l + 1);
        c->text_len += l;
    }
    return true;
}

int main(int argc, char **argv)
{
    vki_backend_kind kind = mt_backend_arg(argc, argv);
    const char *model_path = test_shared_path("models/stories260K.gguf");
    cJSON *ref = mt_load_json("reference/stories260K.greedy.json");

    vki_engine_params ep = mt_engine_params();
    vki_engine *eng = NULL;
    vki_model *model = NULL;
    CHECK(vki_engine_create(&ep, &eng) == VKI_OK);
    vki_model_params mp = vki_model_default_params();
    mp.backend = kind;
    vki_status s = vki_model_load(eng, model_path, &mp, &model);
    if (s != VKI_OK) {
        fprintf(stderr, "load: %s\n", vki_last_error());
        return 1;
    }
    printf("backend: %s, memory %llu bytes\n", vki_model_backend_name(model),
           (unsigned long long)vki_model_memory_bytes(model));
    CHECK(!strcmp(vki_model_arch(model), "llama"));
    CHECK(vki_model_n_vocab(model) == 512 && vki_model_n_embd(model) == 64);
    CHECK(vki_model_memory_bytes(model) > 0);

    const cJSON *cases = cJSON_GetObjectItem(ref, "cases"), *c;
    collected *got = calloc(1, sizeof *got);
    cJSON_ArrayForEach(c, cases) {
        const char *prompt = cJSON_GetObjectItem(c, "prompt")->valuestring;
        int32_t n_pid, n_gid;
        int32_t *pid = mt_int_array(cJSON_GetObjectItem(c, "prompt_ids_with_bos"), &n_pid);
        int32_t *gid = mt_int_array(cJSON_GetObjectItem(c, "greedy_ids"), &n_gid);
        const cJSON *top5 = cJSON_GetObjectItem(c, "top5_per_step");

        int32_t ids[256];
        int32_t n = vki_tokenize(model, prompt, strlen(prompt), ids, 256, true, false);
        CHECKF(n == n_pid && !memcmp(ids, pid, sizeof *ids * (size_t)(n > 0 ? n : 0)),
               "prompt '%s': %d ids, reference %d", prompt, n, n_pid);

        vki_generate_params gp = vki_generate_default_params();
        gp.temperature = 0.0f;
        gp.n_predict = n_gid;
        gp.ignore_eos = true;
        memset(got, 0, sizeof *got);
        vki_generate_stats st;
        s = vki_generate_ids(model, pid, n_pid, &gp, on_token, got, &st);
        CHECKF(s == VKI_OK, "generate: %s", vki_last_error());
        CHECK(st.n_prompt == n_pid && st.n_generated == n_gid);
        int32_t first_bad = -1;
        double worst = 0;
        for (int32_t t = 0; t < n_gid && t < got->n; t++) {
            if (got->ids[t] != gid[t] && first_bad < 0) first_bad = t;
            const cJSON *row = cJSON_GetArrayItem(top5, t);
            for (int k = 0; k < 5; k++) {
                const cJSON *pair = cJSON_GetArrayItem(row, k);
                double rv = cJSON_GetArrayItem(pair, 1)->valuedouble;
                double err = fabs(got->top_logits[t][k] - rv) / fmax(1.0, fabs(rv));
                if (err > worst) worst = err;
            }
        }
        CHECKF(got->n == n_gid && first_bad < 0, "prompt '%s': greedy ids differ from step %d (of %d)", prompt,
               first_bad, got->n);
        CHECKF(worst <= 1e-3, "prompt '%s': top-5 logit relative error %.3g > 1e-3", prompt, worst);
        const char *want_text = cJSON_GetObjectItem(c, "greedy_text")->valuestring;
        CHECKF(!strcmp(got->text, want_text), "prompt '%s': text\n  got  '%s'\n  want '%s'", prompt, got->text,
               want_text);
        printf("prompt '%s': %d ids ok, worst top-5 relative error %.2e, pp %.0f tok/s, tg %.0f tok/s\n", prompt,
               got->n, worst, st.n_prompt * 1000.0 / (st.prompt_ms + 1e-9), st.n_generated * 1000.0 / (st.gen_ms + 1e-9));
        free(pid);
        free(gid);
    }

    /* Stop strings: the text stops right before the first occurrence, which
     * is never delivered, even when it spans tokens. */
    {
        const char *stops[] = {"little girl", NULL};
        vki_generate_params gp = vki_generate_default_params();
        gp.temperature = 0.0f;
        gp.n_predict = 64;
        gp.stop = stops;
        memset(got, 0, sizeof *got);
        vki_generate_stats st;
        s = vki_generate(model, "", &gp, on_token, got, &st);
        CHECKF(s == VKI_OK, "generate with stop: %s", vki_last_error());
        CHECKF(st.stopped_by_string && !strcmp(got->text, "Once upon a time, there was a "), "stop text '%s'",
               got->text);
    }
    /* Seeded sampling: same seed same tokens; the callback can stop early. */
    {
        vki_generate_params gp = vki_generate_default_params();
        gp.temperature = 1.0f;
        gp.seed = 1234;
        gp.n_predict = 24;
        gp.ignore_eos = true;
        collected *a = calloc(1, sizeof *a);
        CHECK(vki_generate(model, "Once upon a time", &gp, on_token, a, NULL) == VKI_OK);
        memset(got, 0, sizeof *got);
        CHECK(vki_generate(model, "Once upon a time", &gp, on_token, got, NULL) == VKI_OK);
        CHECK(a->n == 24 && got->n == 24 && !memcmp(a->ids, got->ids, sizeof a->ids));
        free(a);
    }
    /* Logprobs: log-softmax of the raw logits, checked against the float64
     * reference's first-step logits; the same whatever the sampling. */
    {
        const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(ref, "cases"), 0);
        int32_t nl = 0;
        double *want = NULL, mx = -1e300, sum = 0;
        const cJSON *fl = cJSON_GetObjectItem(c0, "first_step_logits");
        nl = cJSON_GetArraySize(fl);
        want = malloc(sizeof *want * (size_t)nl);
        for (int32_t i = 0; i < nl; i++) mx = fmax(mx, cJSON_GetArrayItem(fl, i)->valuedouble);
        for (int32_t i = 0; i < nl; i++) sum += exp(cJSON_GetArrayItem(fl, i)->valuedouble - mx);
        for (int32_t i = 0; i < nl; i++) want[i] = cJSON_GetArrayItem(fl, i)->valuedouble - mx - log(sum);
        double worst = 0;
        for (int pass = 0; pass < 2; pass++) {
            vki_generate_params gp = vki_generate_default_params();
            gp.temperature = pass ? 1.5f : 0.0f; /* the logprobs must not change with it */
            gp.presence_penalty = pass ? 1.0f : 0.0f;
            gp.n_predict = 1;
            gp.logprobs = true;
            gp.n_top_logprobs = VKI_MAX_TOP_LOGPROBS;
            vki_token_event ev = {0};
            CHECK(vki_generate(model, "", &gp, on_token_copy, &ev, NULL) == VKI_OK);
            CHECK(ev.n_top_logprobs == VKI_MAX_TOP_LOGPROBS);
            double p = 0;
            for (int32_t k = 0; k < ev.n_top_logprobs; k++) {
                CHECK(ev.top_logprob_ids[k] >= 0 && ev.top_logprob_ids[k] < nl && ev.top_logprobs[k] <= 0);
                if (k) CHECK(ev.top_logprobs[k] <= ev.top_logprobs[k - 1]);
                worst = fmax(worst, fabs(ev.top_logprobs[k] - want[ev.top_logprob_ids[k]]));
                p += exp(ev.top_logprobs[k]);
            }
            worst = fmax(worst, fabs(ev.logprob - want[ev.id]));
            CHECKF(p <= 1.0 + 1e-5, "top-20 probabilities sum to %g", p);
            if (!pass) CHECK(ev.id == ev.top_logprob_ids[0] && ev.logprob == ev.top_logprobs[0]);
        }
        CHECKF(worst < 1e-3, "logprobs vs the float64 reference: %.3g", worst);
        vki_generate_params gp = vki_generate_default_params();
        gp.n_predict = 1;
        vki_token_event ev = {.logprob = 1, .n_top_logprobs = 1};
        CHECK(vki_generate(model, "", &gp, on_token_copy, &ev, NULL) == VKI_OK);
        CHECK(ev.logprob == 0 && ev.n_top_logprobs == 0); /* not asked: not computed */
        printf("logprobs: worst difference to the float64 log-softmax %.2e\n", worst);
        free(want);
    }
    /* Errors: an embedding call on a decoder fails cleanly. */
    {
        float e[64];
        const char *texts[] = {"x"};
        CHECK(vki_embed(model, texts, 1, NULL, e) == VKI_ERR_INVALID_ARGUMENT && strstr(vki_last_error(), "generation"));
    }
    free(got);
    mt_check_validation(api_model_backend(model), "stories260K");
    vki_model_destroy(model);
    vki_engine_destroy(eng);
    cJSON_Delete(ref);
    return test_finish("test_stories260k");
}
