/* test_hf_families.c: tiny random-weight Hugging Face folders of each
 * supported family (tests/models/data/hf_tiny, written with transformers'
 * own config classes by tools/hf_tiny_models.py) must give transformers'
 * outputs, which that script recorded in reference.json (float32, eager
 * attention). Per family and prompt of token ids, through the public API:
 * the logits of the last prompt position within 1e-3 (max abs) of the
 * reference, and the 16 greedy ids equal, with their top-5 logits within
 * 1e-3, up to and including the first step where the reference's two best
 * logits are closer than the tolerance (after it the sequences may part
 * legitimately). Encoders: the mean-pooled, normalised embedding within
 * 1e-4 per element.
 * A family the engine refuses with VKI_ERR_UNSUPPORTED at load is reported
 * and skipped; with --strict it fails. --skip NAME leaves a family out
 * (said in the output). Neither torch nor transformers is needed here.
 * Usage: test_hf_families --data DIR [--backend cpu|vulkan] [--strict] [-f NAME] [--skip NAME]... */
#include <stdlib.h>
#include <string.h>

#include "model_test_util.h"
#include "util.h"
#include "vkinfer.h"

#define LOGIT_TOL 1e-3
#define EMBED_TOL 1e-4
#define MAX_STEPS 64

static vki_backend_kind backend;
static bool strict;
static int n_passed, n_failed, n_unsupported, n_skipped;
static const char *skip[16];
static int n_skip;

typedef struct steps {
    int32_t n, ids[MAX_STEPS];
    float   top[MAX_STEPS][5];
} steps;

static bool on_token(const vki_token_event *ev, void *user)
{
    steps *r = user;
    if (r->n < MAX_STEPS) {
        r->ids[r->n] = ev->id;
        memcpy(r->top[r->n], ev->top_logits, sizeof r->top[0]);
        r->n++;
    }
    return true;
}

static double jnum(const cJSON *o, const char *key)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(j) ? j->valuedouble : 0;
}

/* One decoder prompt; returns false on a mismatch (already reported). */
static bool check_decoder(const char *name, vki_model *m, const cJSON *p, int k)
{
    int32_t n_ids;
    int32_t *ids = mt_int_array(cJSON_GetObjectItemCaseSensitive(p, "ids"), &n_ids);
    const cJSON *ref_logits = cJSON_GetObjectItemCaseSensitive(p, "last_logits");
    const cJSON *greedy = cJSON_GetObjectItemCaseSensitive(p, "greedy");
    const int32_t nv = vki_model_n_vocab(m), n_steps = cJSON_GetArraySize(greedy);
    bool ok = true;
    CHECKF(cJSON_GetArraySize(ref_logits) == nv, "%s: %d reference logits for a vocabulary of %d", name,
           cJSON_GetArraySize(ref_logits), nv);
    if (cJSON_GetArraySize(ref_logits) != nv || n_steps > MAX_STEPS) {
        free(ids);
        return false;
    }

    /* every logit of the last prompt position (the model under the API) */
    float *logits = malloc(sizeof *logits * (size_t)nv);
    mdl_model *mm = api_model_mdl(m);
    mdl_kv_seq_clear(mm, 0);
    mdl_span sp = {.seq = 0, .n_tokens = n_ids, .tokens = ids};
    vki_status s = llama_decode(mm, &sp, 1, logits);
    CHECKF(s == VKI_OK, "%s: prompt %d: decode: %s: %s", name, k, vki_status_str(s), vki_last_error());
    double worst = 0;
    int32_t at = 0;
    for (int32_t i = 0; s == VKI_OK && i < nv; i++) {
        const double d = fabs(logits[i] - cJSON_GetArrayItem(ref_logits, i)->valuedouble);
        if (d > worst) {
            worst = d;
            at = i;
        }
    }
    mdl_kv_seq_clear(mm, 0);
    free(logits);
    if (s != VKI_OK) {
        free(ids);
        return false;
    }
    if (worst > LOGIT_TOL) {
        ok = false;
        fprintf(stderr, "%s: prompt %d (%d tokens): last-position logits differ by %.3g at id %d (tolerance %g)\n",
                name, k, n_ids, worst, at, LOGIT_TOL);
    }

    /* greedy continuation through the public API */
    steps r = {0};
    vki_generate_params gp = vki_generate_default_params();
    gp.n_predict = n_steps;
    gp.temperature = 0;
    gp.ignore_eos = true;
    gp.add_special = false;
    s = vki_generate_ids(m, ids, n_ids, &gp, on_token, &r, NULL);
    CHECKF(s == VKI_OK, "%s: prompt %d: generate: %s: %s", name, k, vki_status_str(s), vki_last_error());
    int32_t compared = 0, matched = 0;
    double worst_top = 0;
    for (int32_t t = 0; s == VKI_OK && t < n_steps; t++) {
        const cJSON *st = cJSON_GetArrayItem(greedy, t);
        const int32_t want = (int32_t)jnum(st, "id");
        const double margin = jnum(st, "margin");
        compared++;
        if (t >= r.n) {
            ok = false;
            fprintf(stderr, "%s: prompt %d: only %d tokens generated, %d expected\n", name, k, r.n, n_steps);
            break;
        }
        if (r.ids[t] != want && margin > LOGIT_TOL) {
            ok = false;
            fprintf(stderr, "%s: prompt %d: greedy step %d: id %d, transformers %d (its margin %.4g)\n", name, k, t,
                    r.ids[t], want, margin);
            break;
        }
        if (r.ids[t] == want) matched++;
        const cJSON *tl = cJSON_GetObjectItemCaseSensitive(st, "top_logits");
        for (int j = 0; j < 5; j++) worst_top = fmax(worst_top, fabs(r.top[t][j] - cJSON_GetArrayItem(tl, j)->valuedouble));
        if (margin <= LOGIT_TOL) break; /* a near tie: later steps may differ */
    }
    if (worst_top > LOGIT_TOL) {
        ok = false;
        fprintf(stderr, "%s: prompt %d: greedy top-5 logits differ by up to %.3g\n", name, k, worst_top);
    }
    printf("%-16s %-6s prompt %d (%2d tokens, n_ctx %3d): logits max diff %.2e; greedy %d/%d ids matched "
           "(%d compared), top-5 max diff %.2e\n", name, backend == VKI_BACKEND_VULKAN ? "vulkan" : "cpu", k, n_ids,
           vki_model_n_ctx(m), worst, matched, n_steps, compared, worst_top);
    free(ids);
    return ok && s == VKI_OK;
}

static bool check_encoder(const char *name, vki_model *m, const cJSON *p, int k)
{
    int32_t n_ids;
    int32_t *ids = mt_int_array(cJSON_GetObjectItemCaseSensitive(p, "ids"), &n_ids);
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(p, "embedding");
    const int32_t ne = vki_model_n_embd(m);
    bool ok = cJSON_GetArraySize(ref) == ne;
    CHECKF(ok, "%s: %d reference values for an embedding of %d", name, cJSON_GetArraySize(ref), ne);
    float *e = malloc(sizeof *e * (size_t)ne);
    const int32_t *seqs[1] = {ids};
    vki_status s = ok ? mdl_embed(api_model_mdl(m), seqs, &n_ids, 1, BK_POOL_MEAN, true, e) : VKI_ERR_BAD_FILE;
    if (ok) CHECKF(s == VKI_OK, "%s: prompt %d: embed: %s: %s", name, k, vki_status_str(s), vki_last_error());
    double worst = 0;
    for (int32_t i = 0; s == VKI_OK && i < ne; i++)
        worst = fmax(worst, fabs(e[i] - cJSON_GetArrayItem(ref, i)->valuedouble));
    if (s == VKI_OK) {
        printf("%-16s %-6s prompt %d (%2d tokens): embedding max diff %.2e\n", name,
               backend == VKI_BACKEND_VULKAN ? "vulkan" : "cpu", k, n_ids, worst);
        if (worst > EMBED_TOL) {
            ok = false;
            fprintf(stderr, "%s: prompt %d: embedding differs by %.3g (tolerance %g)\n", name, k, worst, EMBED_TOL);
        }
    }
    free(e);
    free(ids);
    return ok && s == VKI_OK;
}

static void run_family(vki_engine *eng, const char *dir, const cJSON *fam)
{
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fam, "name"));
    const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fam, "kind"));
    const cJSON *prompts = cJSON_GetObjectItemCaseSensitive(fam, "prompts");
    if (!name || !kind || !cJSON_IsArray(prompts)) {
        CHECKF(false, "reference.json: a family without name, kind or prompts");
        return;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    bool ok = true;
    for (int k = 0; k < cJSON_GetArraySize(prompts); k++) {
        const cJSON *p = cJSON_GetArrayItem(prompts, k);
        vki_model_params mp = vki_model_default_params();
        mp.backend = backend;
        mp.n_ctx = (uint32_t)jnum(p, "n_ctx");
        vki_model *m = NULL;
        vki_status s = vki_model_load(eng, path, &mp, &m);
        if (s == VKI_ERR_UNSUPPORTED) {
            printf("%-16s %-6s not supported: %s\n", name, backend == VKI_BACKEND_VULKAN ? "vulkan" : "cpu",
                   vki_last_error());
            if (strict) CHECKF(false, "%s: not supported (--strict)", name);
            n_unsupported++;
            return;
        }
        CHECKF(s == VKI_OK, "%s: load: %s: %s", name, vki_status_str(s), vki_last_error());
        if (s != VKI_OK) {
            n_failed++;
            return;
        }
        const bool enc = !strcmp(kind, "encoder");
        CHECKF(vki_model_is_embedding(m) == enc, "%s: loaded as %s", name, enc ? "a decoder" : "an encoder");
        if (!(enc ? check_encoder(name, m, p, k) : check_decoder(name, m, p, k))) ok = false;
        mt_check_validation(api_model_backend(m), name);
        vki_model_destroy(m);
    }
    CHECKF(ok, "%s: outputs differ from transformers' (see above)", name);
    if (ok) n_passed++;
    else n_failed++;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "-f") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--strict")) strict = true;
        else if (!strcmp(argv[i], "--skip") && i + 1 < argc && n_skip < (int)VKI_COUNT(skip)) skip[n_skip++] = argv[++i];
    }
    if (!dir) {
        fprintf(stderr, "usage: test_hf_families --data DIR [--backend cpu|vulkan] [--strict] [-f NAME] [--skip NAME]...\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* the lines before a crash stay in ctest's log */
    backend = mt_backend_arg(argc, argv);
    char path[1024];
    snprintf(path, sizeof path, "%s/reference.json", dir);
    char *text = test_read_file(path, NULL);
    cJSON *ref = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!ref) {
        fprintf(stderr, "%s: missing or not JSON\n", path);
        return 1;
    }
    vki_engine_params ep = mt_engine_params();
    vki_engine *eng = NULL;
    CHECKF(vki_engine_create(&ep, &eng) == VKI_OK, "engine: %s", vki_last_error());
    const cJSON *fam;
    cJSON_ArrayForEach(fam, cJSON_GetObjectItemCaseSensitive(ref, "families")) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fam, "name"));
        bool skipped = false;
        for (int i = 0; i < n_skip; i++) skipped |= name && !strcmp(name, skip[i]);
        if (skipped) {
            printf("%-16s skipped (--skip)\n", name);
            n_skipped++;
        } else if (eng && (!only || (name && !strcmp(name, only)))) {
            run_family(eng, dir, fam);
        }
    }
    vki_engine_destroy(eng);
    cJSON_Delete(ref);
    printf("families: %d matched transformers, %d differ, %d not supported%s, %d skipped by --skip\n", n_passed,
           n_failed, n_unsupported, n_unsupported && !strict ? " (--strict fails them)" : "", n_skipped);
    return test_finish("test_hf_families");
}
