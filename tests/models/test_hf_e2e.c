/* test_hf_e2e.c: a model written by vkinfer-gen as a GGUF file and as a
 * Hugging Face folder (config.json, safetensors, tokenizer.json) from the
 * same seed and shape must run the same through the public API: the same
 * tokens for every test text, the same greedy continuation, and logits equal
 * to 1e-5 of the largest logit (both sides hold bit-identical weights, so
 * only the loader's reordering of llama q/k rows and biases can differ);
 * BERT embeddings with cosine >= 0.99999. Cases: llama GQA (F32, with
 * attention biases, F16 sharded, BF16), qwen2 (NeoX RoPE, q/k/v biases, tied
 * embeddings) and BERT (F32, F16); with --shared-vocab instead, a llama
 * with stories260K's trained SPM vocabulary (skipped without ../shared).
 * Usage: test_hf_e2e --gen PATH/vkinfer-gen [--backend cpu|vulkan] [--shared-vocab]. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_test_util.h"
#include "util.h"
#include "vkinfer.h"

#define N_PREDICT 12
#define MAX_IDS 256

typedef struct hf_case {
    const char *name;
    const char *args;  /* vkinfer-gen options for both outputs        */
    const char *shard; /* extra options for the HF output, or NULL    */
    bool        bert;
} hf_case;

static const hf_case cases[] = {
    {"llama-gqa-f32", "--preset tiny --seed 3", NULL, false},
    {"llama-bias-f32", "--preset tiny --qkv-bias --seed 4", NULL, false},
    {"qwen2-tied-f32", "--preset tiny --arch qwen2 --n-head 4 --n-head-kv 2 --tied --seed 5", NULL, false},
    {"llama-f16-sharded", "--preset tiny --type F16 --n-embd 128 --n-ff 256 --n-vocab 2048 --seed 6",
     "--shard-mb 1", false},
    {"llama-bf16", "--preset tiny --type BF16 --seed 7", NULL, false},
    {"bert-f32", "--preset bert-mini --n-layer 2 --n-vocab 1024 --n-ctx 128 --seed 8", NULL, true},
    {"bert-f16", "--preset bert-mini --n-layer 2 --n-vocab 1024 --n-ctx 128 --type F16 --seed 9", NULL, true},
};

static const char *const texts[] = {
    "Once upon a time there was a little dog",
    "the cat saw the big ball in the park, and they had fun!",
    "h\xc3\xa9llo w\xc3\xb6rld 12345 \xe2\x82\xac tabs\tand\nnewlines",
    "  leading spaces and UPPER case",
};

static const char *gen_path;
static vki_backend_kind backend;
static char work[256];

static bool run_gen(const hf_case *c, bool hf, const char *out)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' %s %s %s -o '%s' 2>&1", gen_path, c->args, hf ? "--format hf" : "",
             hf && c->shard ? c->shard : "", out);
    int rc = system(cmd);
    CHECKF(rc == 0, "%s: '%s' exited with %d", c->name, cmd, rc);
    return rc == 0;
}

static vki_model *load(vki_engine *eng, const char *path)
{
    vki_model_params mp = vki_model_default_params();
    mp.backend = backend;
    mp.n_ctx = 128;
    vki_model *m = NULL;
    vki_status s = vki_model_load(eng, path, &mp, &m);
    CHECKF(s == VKI_OK, "load %s: %s: %s", path, vki_status_str(s), vki_last_error());
    return s == VKI_OK ? m : NULL;
}

static void check_tokens(const char *name, vki_model *a, vki_model *b)
{
    for (int k = 0; k < (int)VKI_COUNT(texts); k++) {
        int32_t ia[MAX_IDS], ib[MAX_IDS];
        int32_t na = vki_tokenize(a, texts[k], strlen(texts[k]), ia, MAX_IDS, true, false);
        int32_t nb = vki_tokenize(b, texts[k], strlen(texts[k]), ib, MAX_IDS, true, false);
        CHECKF(na > 0 && na == nb, "%s: text %d: %d tokens from the GGUF, %d from the HF folder", name, k, na, nb);
        if (na > 0 && na == nb)
            CHECKF(!memcmp(ia, ib, (size_t)na * sizeof *ia), "%s: text %d: token ids differ", name, k);
    }
}

typedef struct run { int32_t n, ids[N_PREDICT]; float top[N_PREDICT][5]; } run;

static bool on_token(const vki_token_event *ev, void *user)
{
    run *r = user;
    if (r->n < N_PREDICT) {
        r->ids[r->n] = ev->id;
        memcpy(r->top[r->n], ev->top_logits, sizeof r->top[0]);
        r->n++;
    }
    return true;
}

/* |a - b| <= 1e-5 * max |b| over the row. */
static double rel_err(const float *a, const float *b, int32_t n)
{
    double scale = 0, worst = 0;
    for (int32_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (int32_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)a[i] - b[i]));
    return worst / (scale > 0 ? scale : 1);
}

static void check_decoder(const char *name, vki_model *a, vki_model *b)
{
    const int32_t nv = vki_model_n_vocab(a);
    /* greedy continuation of each text */
    for (int k = 0; k < 2; k++) {
        run ra = {0}, rb = {0};
        vki_generate_params gp = vki_generate_default_params();
        gp.n_predict = N_PREDICT;
        gp.temperature = 0;
        gp.ignore_eos = true;
        vki_status sa = vki_generate(a, texts[k], &gp, on_token, &ra, NULL);
        vki_status sb = vki_generate(b, texts[k], &gp, on_token, &rb, NULL);
        CHECKF(sa == VKI_OK && sb == VKI_OK, "%s: generate: %s", name, vki_last_error());
        CHECKF(ra.n == N_PREDICT && rb.n == N_PREDICT, "%s: %d and %d tokens generated", name, ra.n, rb.n);
        CHECKF(!memcmp(ra.ids, rb.ids, sizeof ra.ids), "%s: text %d: greedy ids differ", name, k);
        if (memcmp(ra.ids, rb.ids, sizeof ra.ids))
            for (int32_t t = 0; t < N_PREDICT; t++) printf("  step %d: GGUF %d, HF %d\n", t, ra.ids[t], rb.ids[t]);
        double worst = 0;
        for (int32_t t = 0; t < ra.n && t < rb.n; t++) worst = fmax(worst, rel_err(rb.top[t], ra.top[t], 5));
        CHECKF(worst <= 1e-5, "%s: text %d: top-5 logits differ by %.3g relative", name, k, worst);
    }
    /* every logit of a prompt, through the model under the API */
    int32_t ids[MAX_IDS];
    int32_t n = vki_tokenize(a, texts[1], strlen(texts[1]), ids, MAX_IDS, true, false);
    float *la = malloc((size_t)nv * sizeof *la), *lb = malloc((size_t)nv * sizeof *lb);
    mdl_model *ma = api_model_mdl(a), *mb = api_model_mdl(b);
    mdl_kv_seq_clear(ma, 0);
    mdl_kv_seq_clear(mb, 0);
    mdl_span sp = {.seq = 0, .n_tokens = n, .tokens = ids};
    vki_status sa = llama_decode(ma, &sp, 1, la);
    vki_status sb = llama_decode(mb, &sp, 1, lb);
    CHECKF(sa == VKI_OK && sb == VKI_OK, "%s: decode: %s", name, vki_last_error());
    if (sa == VKI_OK && sb == VKI_OK) {
        double e = rel_err(lb, la, nv);
        CHECKF(e <= 1e-5, "%s: prompt logits differ by %.3g relative to the largest", name, e);
        printf("%s: %d prompt tokens, logits max diff %.3g relative\n", name, n, e);
    }
    free(la);
    free(lb);
}

static void check_encoder(const char *name, vki_model *a, vki_model *b)
{
    const int32_t ne = vki_model_n_embd(a), nt = (int32_t)VKI_COUNT(texts);
    float *ea = malloc(sizeof *ea * (size_t)(ne * nt)), *eb = malloc(sizeof *eb * (size_t)(ne * nt));
    vki_status sa = vki_embed(a, texts, nt, NULL, ea);
    vki_status sb = vki_embed(b, texts, nt, NULL, eb);
    CHECKF(sa == VKI_OK && sb == VKI_OK, "%s: embed: %s", name, vki_last_error());
    for (int32_t k = 0; k < nt && sa == VKI_OK && sb == VKI_OK; k++) {
        double ref[1024];
        for (int32_t i = 0; i < ne && i < 1024; i++) ref[i] = ea[k * ne + i];
        double cs = mt_cosine(eb + k * ne, ref, ne);
        CHECKF(cs >= 0.99999, "%s: text %d: embedding cosine %.7f < 0.99999", name, k, cs);
        printf("%s: text %d: cosine %.9f\n", name, k, cs);
    }
    free(ea);
    free(eb);
}

static void run_case(vki_engine *eng, const hf_case *c)
{
    char gguf[512], hf[512], path[600];
    snprintf(gguf, sizeof gguf, "%s/%s.gguf", work, c->name);
    snprintf(hf, sizeof hf, "%s/%s-hf", work, c->name);
    if (!run_gen(c, false, gguf) || !run_gen(c, true, hf)) return;
    struct stat st;
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", hf);
    const bool sharded = stat(path, &st) == 0;
    CHECKF(sharded == (c->shard != NULL), "%s: index.json %s", c->name, sharded ? "present" : "missing");
    if (sharded) {
        /* the index must spread the tensors over more than one shard file */
        char *text = test_read_file(path, NULL);
        cJSON *j = text ? cJSON_Parse(text) : NULL;
        const cJSON *e, *wm = cJSON_GetObjectItem(j, "weight_map");
        const char *first = NULL;
        bool several = false;
        cJSON_ArrayForEach(e, wm) {
            if (!cJSON_IsString(e)) continue;
            if (!first) first = e->valuestring;
            else if (strcmp(first, e->valuestring)) several = true;
        }
        CHECKF(several, "%s: the index names a single shard file", c->name);
        cJSON_Delete(j);
        free(text);
    }
    vki_model *a = load(eng, gguf), *b = load(eng, hf);
    if (a && b) {
        CHECKF(!strcmp(vki_model_arch(a), vki_model_arch(b)), "%s: arch %s vs %s", c->name, vki_model_arch(a),
               vki_model_arch(b));
        CHECKF(vki_model_n_vocab(a) == vki_model_n_vocab(b) && vki_model_n_embd(a) == vki_model_n_embd(b),
               "%s: vocab/width %d/%d vs %d/%d", c->name, vki_model_n_vocab(a), vki_model_n_embd(a),
               vki_model_n_vocab(b), vki_model_n_embd(b));
        CHECKF(vki_model_is_embedding(a) == c->bert && vki_model_is_embedding(b) == c->bert, "%s: model kind",
               c->name);
        printf("%s: %s on %s\n", c->name, vki_model_arch(b), vki_model_backend_name(b));
        check_tokens(c->name, a, b);
        if (c->bert) check_encoder(c->name, a, b);
        else check_decoder(c->name, a, b);
        mt_check_validation(api_model_backend(a), c->name);
        mt_check_validation(api_model_backend(b), c->name);
    }
    vki_model_destroy(a);
    vki_model_destroy(b);
}

int main(int argc, char **argv)
{
    bool shared_vocab = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--gen") && i + 1 < argc) gen_path = argv[i + 1];
        if (!strcmp(argv[i], "--shared-vocab")) shared_vocab = true;
    }
    if (!gen_path) {
        fprintf(stderr, "usage: test_hf_e2e --gen PATH/vkinfer-gen [--backend cpu|vulkan] [--shared-vocab]\n");
        return 2;
    }
    backend = mt_backend_arg(argc, argv);
    const char *vocab_path = shared_vocab ? test_shared_path("models/stories260K.gguf") : NULL;
    snprintf(work, sizeof work, "%s/vki_hf_e2e_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(work)) {
        fprintf(stderr, "mkdtemp %s failed\n", work);
        return 1;
    }
    vki_engine_params ep = mt_engine_params();
    vki_engine *eng = NULL;
    CHECKF(vki_engine_create(&ep, &eng) == VKI_OK, "engine: %s", vki_last_error());
    if (shared_vocab) {
        /* a trained SPM vocabulary (real scores) through tokenizer.json merges */
        static char args[1200];
        snprintf(args, sizeof args, "--preset tiny --seed 10 --vocab-from '%s'", vocab_path);
        const hf_case c = {"llama-stories260k-vocab", args, NULL, false};
        if (eng) run_case(eng, &c);
    } else {
        for (int i = 0; eng && i < (int)VKI_COUNT(cases); i++) run_case(eng, &cases[i]);
    }
    vki_engine_destroy(eng);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", work);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", work);
    return test_finish("test_hf_e2e");
}
