/*
 * bench_grammar.c: what constrained decoding costs per token, next to the
 * decode step it rides on. Each run is one request: a fresh matcher (cold
 * mask cache), the prompt, then up to -n tokens sampled (temperature 1) from
 * the model's own logits under the schema. Timed apart, per token: the
 * decode step (llama_decode), and mask + advance (gram_matcher_mask, the
 * -inf pass over the logits, gram_matcher_accept_token, must_end). Sampling
 * itself is not counted: it runs with or without a grammar.
 * Usage: bench_grammar -m MODEL [--schema FILE] [-n 128] [-r 5] [--backend cpu|vulkan|auto]
 *                      [--threads N] [--n-ctx N]
 * Results to stdout (markdown), progress to stderr.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/api_internal.h"
#include "engine/grammar/gram_vocab.h"
#include "engine/grammar/grammar.h"
#include "engine/models/sampler.h"
#include "error.h"
#include "util.h"

/* A form-filling schema of the kind structured output is used for. */
static const char default_schema[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"name\":{\"type\":\"string\",\"maxLength\":24},"
    "\"age\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":150},"
    "\"email\":{\"type\":[\"string\",\"null\"],\"maxLength\":40},"
    "\"role\":{\"enum\":[\"admin\",\"editor\",\"viewer\"]},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":12},\"maxItems\":4},"
    "\"address\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\",\"maxLength\":20},"
    "\"zip\":{\"type\":\"string\",\"maxLength\":10}},\"required\":[\"city\"],\"additionalProperties\":false},"
    "\"score\":{\"type\":\"number\"},\"active\":{\"type\":\"boolean\"}},"
    "\"required\":[\"name\",\"age\",\"role\",\"tags\",\"address\",\"active\"],\"additionalProperties\":false}";

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *model = NULL, *schema_path = NULL;
    int n_tok = 128, reps = 5, threads = 0, n_ctx = 512;
    vki_backend_kind be = VKI_BACKEND_CPU;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-m") && v) model = argv[++i];
        else if (!strcmp(a, "--schema") && v) schema_path = argv[++i];
        else if (!strcmp(a, "-n") && v) n_tok = atoi(argv[++i]);
        else if (!strcmp(a, "-r") && v) reps = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && v) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--n-ctx") && v) n_ctx = atoi(argv[++i]);
        else if (!strcmp(a, "--backend") && v) {
            v = argv[++i];
            be = !strcmp(v, "vulkan") ? VKI_BACKEND_VULKAN : !strcmp(v, "auto") ? VKI_BACKEND_AUTO : VKI_BACKEND_CPU;
        } else {
            fprintf(stderr, "usage: bench_grammar -m MODEL [--schema FILE] [-n 128] [-r 5] "
                            "[--backend cpu|vulkan|auto] [--threads N] [--n-ctx N]\n");
            return 2;
        }
    }
    if (!model || n_tok < 1 || reps < 1) {
        fprintf(stderr, "bench_grammar: -m MODEL is required (and -n, -r >= 1)\n");
        return 2;
    }
    char *schema = NULL;
    if (schema_path) {
        FILE *f = fopen(schema_path, "rb");
        long len = -1;
        if (f && !fseek(f, 0, SEEK_END) && (len = ftell(f)) >= 0 && !fseek(f, 0, SEEK_SET) &&
            (schema = calloc(1, (size_t)len + 1)) && fread(schema, 1, (size_t)len, f) == (size_t)len) {
        } else {
            fprintf(stderr, "bench_grammar: cannot read %s\n", schema_path);
            return 1;
        }
        fclose(f);
    }
    vki_engine_params ep = vki_engine_default_params();
    ep.n_threads = threads;
    vki_model_params mp = vki_model_default_params();
    mp.backend = be;
    mp.n_ctx = (uint32_t)n_ctx;
    vki_engine *eng = NULL;
    vki_model *md = NULL;
    gram_grammar *gram = NULL;
    vki_generate_params gp = vki_generate_default_params();
    gp.json_schema = schema ? schema : default_schema;
    if (vki_engine_create(&ep, &eng) != VKI_OK || vki_model_load(eng, model, &mp, &md) != VKI_OK ||
        gram_from_params(&gp, &gram) != VKI_OK) {
        fprintf(stderr, "bench_grammar: %s\n", vki_last_error());
        return 1;
    }
    mdl_model *m = api_model_mdl(md);
    float *logits = api_model_logits(md);
    const vki_tokenizer *tok = api_model_tokenizer(md);
    const int32_t nv = vki_model_n_vocab(md);
    double tv0 = vki_time_ms();
    const gram_vocab *gv = NULL;
    if (api_model_gram_vocab(md, &gv) != VKI_OK) {
        fprintf(stderr, "bench_grammar: %s\n", vki_last_error());
        return 1;
    }
    double vocab_ms = vki_time_ms() - tv0;

    int32_t *prompt = NULL, n_prompt = 0;
    const char *ptext = "Fill in the form as JSON:";
    if (vki_tokenizer_encode(tok, ptext, strlen(ptext), true, false, &prompt, &n_prompt) != VKI_OK) {
        fprintf(stderr, "bench_grammar: %s\n", vki_last_error());
        return 1;
    }
    size_t cap = (size_t)n_tok * (size_t)reps;
    double *dec = malloc(sizeof *dec * cap), *gr = malloc(sizeof *gr * cap);
    uint64_t hits = 0, walks = 0;
    size_t n = 0;
    int n_complete = 0;
    for (int rep = -1; rep < reps; rep++) { /* rep -1: warmup, not counted */
        gram_matcher *gm = NULL;
        smp_sampler *smp = NULL;
        vki_generate_params sp = vki_generate_default_params();
        sp.temperature = 1.0f;
        sp.top_k = 0;
        sp.top_p = 1.0f;
        sp.min_p = 0.0f;
        sp.seed = (uint64_t)rep + 100;
        if (gram_matcher_create(gram, gv, &gm) != VKI_OK || smp_create(&sp, nv, &smp) != VKI_OK) {
            fprintf(stderr, "bench_grammar: %s\n", vki_last_error());
            return 1;
        }
        mdl_kv_seq_clear(m, 0);
        mdl_span span = {.seq = 0, .n_tokens = n_prompt, .tokens = prompt};
        int32_t id = -1;
        for (int t = 0; t < n_tok; t++) {
            double t0 = vki_time_ms();
            if (llama_decode(m, &span, 1, logits) != VKI_OK) {
                fprintf(stderr, "bench_grammar: %s\n", vki_last_error());
                return 1;
            }
            double t1 = vki_time_ms();
            const uint32_t *mask;
            if (gram_matcher_mask(gm, &mask) != VKI_OK) {
                fprintf(stderr, "bench_grammar: %s\n", vki_last_error());
                return 1;
            }
            for (int32_t i = 0; i < nv; i++)
                if (!((mask[i >> 5] >> (i & 31)) & 1u)) logits[i] = -INFINITY;
            double t2 = vki_time_ms();
            id = smp_sample(smp, logits);
            double t3 = vki_time_ms();
            bool end = vki_tokenizer_is_eog(tok, id);
            if (gram_matcher_accept_token(gm, id) != VKI_OK) {
                fprintf(stderr, "bench_grammar: %s\n", vki_last_error());
                return 1;
            }
            end |= gram_matcher_must_end(gm);
            double t4 = vki_time_ms();
            if (rep >= 0 && t > 0) { /* step 0 decodes the prompt */
                dec[n] = t1 - t0;
                gr[n] = (t2 - t1) + (t4 - t3);
                n++;
            }
            if (end) {
                n_complete += rep >= 0;
                break;
            }
            span = (mdl_span){.seq = 0, .n_tokens = 1, .tokens = &id};
        }
        uint64_t h, w;
        gram_matcher_counts(gm, &h, &w);
        if (rep >= 0) {
            hits += h;
            walks += w;
        }
        gram_matcher_destroy(gm);
        smp_destroy(smp);
        fprintf(stderr, ".");
    }
    fprintf(stderr, "\n");
    if (!n) {
        fprintf(stderr, "bench_grammar: no decode steps measured (the answers ended at once)\n");
        return 1;
    }
    double sd = 0, sg = 0, gmax = 0;
    for (size_t i = 0; i < n; i++) {
        sd += dec[i];
        sg += gr[i];
        if (gr[i] > gmax) gmax = gr[i];
    }
    qsort(dec, n, sizeof *dec, cmp_double);
    qsort(gr, n, sizeof *gr, cmp_double);
    printf("| model | backend | n_vocab | trie nodes | vocab trie ms | tokens | complete | decode ms/tok (mean / median) "
           "| mask+advance ms/tok (mean / median / max) | cache hits | mask+advance / decode |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
    printf("| %s | %s | %d | %d | %.1f | %zu | %d/%d | %.2f / %.2f | %.3f / %.3f / %.2f | %.0f%% | %.2f%% |\n",
           model, vki_model_backend_name(md), nv, gv->n_node, vocab_ms, n, n_complete, reps, sd / (double)n,
           dec[n / 2], sg / (double)n, gr[n / 2], gmax, 100.0 * (double)hits / (double)VKI_MAX(hits + walks, 1),
           100.0 * sg / sd);
    printf("\nschema: %s\nexcluded: sampling (runs with or without a grammar), the prompt step, detokenization\n",
           schema_path ? schema_path : "built-in form (bench/bench_grammar.c)");
    free(dec);
    free(gr);
    free(prompt);
    free(schema);
    gram_destroy(gram);
    vki_model_destroy(md);
    vki_engine_destroy(eng);
    return 0;
}
