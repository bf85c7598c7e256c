/*
 * api.c: the implementation of include/vkinfer.h: engines, model loading
 * onto a backend (Vulkan with CPU fallback), tokenization, the generation
 * loop (sampling, streaming detokenization, stop strings) and embeddings.
 * Owns: the public handles. Must not: contain forward-pass code
 * (engine/models/) or backend code.
 */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine/api_internal.h"
#include "engine/backend.h"
#include "engine/gen_seq.h"
#include "engine/models/model.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/vulkan/backend_vk.h"
#include "error.h"
#include "util.h"

struct vki_engine {
    vki_engine_params p;
};

struct vki_model {
    vki_engine     *eng;
    vki_model_file *file;   /* kept open: the CPU backend may borrow its mapping */
    vki_tokenizer  *tok;
    bk_backend     *be;     /* one per model, so memory_used is this model's     */
    mdl_model      *m;
    float          *logits; /* [n_seq_max][n_vocab]                              */
    gram_vocab     *gvocab; /* token trie for grammars, built on first use       */
    pthread_mutex_t gv_mu;
};

/* ===== Defaults ========================================================== */

vki_engine_params vki_engine_default_params(void)
{
    return (vki_engine_params){.n_threads = 0, .vk_device = -1, .vram_budget = 0, .vk_validation = false};
}

vki_model_params vki_model_default_params(void)
{
    return (vki_model_params){.backend = VKI_BACKEND_AUTO, .n_ctx = 0, .n_seq_max = 1};
}

vki_generate_params vki_generate_default_params(void)
{
    return (vki_generate_params){
        .n_predict = 128, .temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
        .repeat_penalty = 1.0f, .frequency_penalty = 0.0f, .presence_penalty = 0.0f, .penalty_last_n = 64,
        .seed = 0, .stop = NULL, .ignore_eos = false, .add_special = true, .parse_special = false,
        .logprobs = false, .n_top_logprobs = 0,
    };
}

vki_embed_params vki_embed_default_params(void)
{
    return (vki_embed_params){.pooling = VKI_POOLING_FROM_MODEL, .normalize = true};
}

/* ===== Engine ============================================================ */

vki_status vki_engine_create(const vki_engine_params *params, vki_engine **out)
{
    if (!out) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_engine_create: out is NULL");
    *out = NULL;
    vki_engine_params p = params ? *params : vki_engine_default_params();
    if (p.n_threads < 0 || p.n_threads > 1024)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_engine_create: n_threads %d is outside 0..1024", p.n_threads);
    vki_engine *e = calloc(1, sizeof *e);
    if (!e) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "vki_engine_create: out of memory");
    e->p = p;
    *out = e;
    return VKI_OK;
}

void vki_engine_destroy(vki_engine *eng) { free(eng); }

/* ===== Models ============================================================ */

static bool has_gpu(void)
{
    bk_vk_device_info *devs = NULL;
    int n = 0;
    bool gpu = false;
    if (bk_vk_list_devices(&devs, &n) == VKI_OK)
        for (int i = 0; i < n; i++) gpu |= strcmp(devs[i].type, "cpu") != 0;
    free(devs);
    vki_clear_error();
    return gpu;
}

static vki_status create_backend_kind(const vki_engine *eng, vki_backend_kind kind, bk_backend **out)
{
    bk_vk_params vp = {.device = eng->p.vk_device, .vram_budget = eng->p.vram_budget,
                       .validation = eng->p.vk_validation};
    switch (kind) {
    case VKI_BACKEND_CPU:
        return bk_cpu_create(eng->p.n_threads, out);
    case VKI_BACKEND_VULKAN:
        return bk_vk_create(&vp, out);
    case VKI_BACKEND_AUTO:
        /* A Vulkan driver that runs on the CPU (lavapipe, SwiftShader) is far
         * slower than our own CPU backend: auto takes Vulkan only for a real
         * GPU, or for the device the caller named. */
        if (eng->p.vk_device >= 0 || has_gpu()) {
            if (bk_vk_create(&vp, out) == VKI_OK) return VKI_OK;
        }
        return bk_cpu_create(eng->p.n_threads, out);
    }
    return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_model_load: backend %d is not auto, cpu or vulkan", (int)kind);
}

/* VKI_CHECK_RESULTS=1 wraps the backend so every op is compared with the
 * scalar reference (engine/backend_check.c): a debugging mode for kernels. */
static vki_status create_backend(const vki_engine *eng, vki_backend_kind kind, bk_backend **out)
{
    VKI_TRY(create_backend_kind(eng, kind, out));
    const char *chk = getenv("VKI_CHECK_RESULTS");
    if (!chk || !*chk || strcmp(chk, "0") == 0) return VKI_OK;
    bk_backend *inner = *out;
    *out = NULL;
    return bk_check_create(inner, out);
}

vki_status vki_model_load(vki_engine *eng, const char *path, const vki_model_params *params, vki_model **out)
{
    if (!out) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_model_load: out is NULL");
    *out = NULL;
    if (!eng || !path) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_model_load: engine or path is NULL");
    vki_model_params p = params ? *params : vki_model_default_params();
    vki_status s;
    vki_model *md = calloc(1, sizeof *md);
    if (!md) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "vki_model_load: out of memory");
    pthread_mutex_init(&md->gv_mu, NULL);
    md->eng = eng;
    if ((s = vki_file_open(path, &md->file)) != VKI_OK) goto fail;
    if ((s = vki_tokenizer_create(md->file, &md->tok)) != VKI_OK) {
        vki_fail_prefix(s, "%s", path);
        goto fail;
    }
    if ((s = create_backend(eng, p.backend, &md->be)) != VKI_OK) goto fail;
    mdl_load_params lp = {.n_ctx = p.n_ctx, .n_seq_max = p.n_seq_max, .kv_type = VKI_TYPE_F32,
                          .progress = p.progress, .progress_user = p.progress_user};
    if ((s = mdl_load(md->file, md->be, &lp, &md->m)) != VKI_OK) goto fail;
    const mdl_hparams *hp = mdl_get_hparams(md->m);
    if (vki_tokenizer_n_vocab(md->tok) > hp->n_vocab) {
        s = vki_fail(VKI_ERR_BAD_FILE, "%s: the tokenizer has %d tokens but token_embd.weight has %d rows", path,
                     vki_tokenizer_n_vocab(md->tok), hp->n_vocab);
        goto fail;
    }
    md->logits = malloc(sizeof *md->logits * (size_t)hp->n_vocab * (size_t)mdl_n_seq_max(md->m));
    if (!md->logits) {
        s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "vki_model_load: out of memory for logits");
        goto fail;
    }
    *out = md;
    return VKI_OK;
fail:
    vki_model_destroy(md);
    return s;
}

void vki_model_destroy(vki_model *md)
{
    if (!md) return;
    gram_vocab_destroy(md->gvocab);
    pthread_mutex_destroy(&md->gv_mu);
    mdl_destroy(md->m);
    bk_destroy(md->be);
    vki_tokenizer_destroy(md->tok);
    vki_file_close(md->file);
    free(md->logits);
    free(md);
}

const char *vki_model_arch(const vki_model *md) { return md ? vki_file_arch(md->file) : ""; }
const char *vki_model_backend_name(const vki_model *md) { return md ? bk_name(md->be) : ""; }
int32_t     vki_model_n_vocab(const vki_model *md) { return md ? mdl_get_hparams(md->m)->n_vocab : 0; }
int32_t     vki_model_n_embd(const vki_model *md) { return md ? mdl_get_hparams(md->m)->n_embd : 0; }
int32_t     vki_model_n_ctx(const vki_model *md) { return md ? mdl_n_ctx(md->m) : 0; }
bool        vki_model_is_embedding(const vki_model *md) { return md && mdl_is_embedding(md->m); }
/* Backend buffers (weights copied in, KV cache, scratch) plus the weights
 * the CPU reads in place from the mapping: they occupy memory too. */
uint64_t vki_model_memory_bytes(const vki_model *md)
{
    return md ? md->be->iface->memory_used(md->be) + mdl_borrowed_bytes(md->m) : 0;
}

bk_backend           *api_model_backend(const vki_model *md) { return md ? md->be : NULL; }
mdl_model            *api_model_mdl(const vki_model *md) { return md ? md->m : NULL; }
const vki_tokenizer  *api_model_tokenizer(const vki_model *md) { return md ? md->tok : NULL; }
const vki_model_file *api_model_file(const vki_model *md) { return md ? md->file : NULL; }
float                *api_model_logits(vki_model *md) { return md ? md->logits : NULL; }

vki_status api_model_gram_vocab(vki_model *md, const gram_vocab **out)
{
    pthread_mutex_lock(&md->gv_mu);
    vki_status s = md->gvocab ? VKI_OK : gram_vocab_create(md->tok, &md->gvocab);
    pthread_mutex_unlock(&md->gv_mu);
    *out = md->gvocab;
    return s;
}

/* ===== Tokens ============================================================ */

int32_t vki_tokenize(const vki_model *md, const char *text, size_t len, int32_t *ids, int32_t n_max,
                     bool add_special, bool parse_special)
{
    if (!md || (!text && len)) {
        vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_tokenize: model or text is NULL");
        return INT32_MIN;
    }
    int32_t *tmp = NULL, n = 0;
    if (vki_tokenizer_encode(md->tok, text ? text : "", len, add_special, parse_special, &tmp, &n) != VKI_OK)
        return INT32_MIN;
    if (n > n_max) {
        free(tmp);
        return -n;
    }
    if (n) memcpy(ids, tmp, sizeof *ids * (size_t)n);
    free(tmp);
    return n;
}

int32_t vki_token_to_piece(const vki_model *md, int32_t id, char *buf, int32_t size)
{
    return md ? vki_tokenizer_piece(md->tok, id, buf, size, false) : 0;
}

int32_t vki_token_bos(const vki_model *md) { return md ? vki_tokenizer_bos(md->tok) : -1; }
int32_t vki_token_eos(const vki_model *md) { return md ? vki_tokenizer_eos(md->tok) : -1; }

/* ===== Generation ======================================================== */

vki_status vki_generate_ids(vki_model *md, const int32_t *ids, int32_t n_ids, const vki_generate_params *params,
                            vki_token_cb cb, void *user, vki_generate_stats *stats)
{
    if (!md) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_generate: model is NULL");
    vki_generate_params gp = params ? *params : vki_generate_default_params();
    if (stats) memset(stats, 0, sizeof *stats);
    if (vki_model_is_embedding(md))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_generate: %s is an embedding model; use vki_embed",
                        vki_file_path(md->file));
    gram_grammar *gram = NULL;
    const gram_vocab *gv = NULL;
    VKI_TRY(gram_from_params(&gp, &gram));
    gen_seq g;
    vki_status s = gen_seq_init(&g, md->tok, &gp, ids, n_ids, mdl_get_hparams(md->m)->n_vocab, mdl_n_ctx(md->m));
    if (s != VKI_OK) {
        gram_destroy(gram);
        return s;
    }
    if (gram && ((s = api_model_gram_vocab(md, &gv)) != VKI_OK || (s = gen_seq_set_grammar(&g, gram, gv)) != VKI_OK))
        goto done;

    mdl_kv_seq_clear(md->m, 0);
    double t0 = vki_time_ms();
    mdl_span span = {.seq = 0, .n_tokens = n_ids, .tokens = ids};
    if ((s = llama_decode(md->m, &span, 1, md->logits)) != VKI_OK) goto done;
    double t1 = vki_time_ms();
    g.st.prompt_ms = t1 - t0;
    for (;;) {
        vki_token_event ev;
        bool last;
        if ((s = gen_seq_step(&g, md->logits, mdl_kv_seq_len(md->m, 0), &ev, &last)) != VKI_OK) goto done;
        bool go_on = cb ? cb(&ev, user) : true;
        if (!go_on || last) break;
        int32_t id = ev.id;
        span = (mdl_span){.seq = 0, .n_tokens = 1, .tokens = &id};
        if ((s = llama_decode(md->m, &span, 1, md->logits)) != VKI_OK) goto done;
    }
    g.st.gen_ms = vki_time_ms() - t1;
done:
    if (stats) *stats = g.st;
    gen_seq_deinit(&g);
    gram_destroy(gram);
    return s;
}

vki_status vki_generate(vki_model *md, const char *prompt, const vki_generate_params *params, vki_token_cb cb,
                        void *user, vki_generate_stats *stats)
{
    if (stats) memset(stats, 0, sizeof *stats);
    if (!md || !prompt) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_generate: model or prompt is NULL");
    vki_generate_params gp = params ? *params : vki_generate_default_params();
    int32_t *ids = NULL, n = 0;
    vki_status s = vki_tokenizer_encode(md->tok, prompt, strlen(prompt), gp.add_special, gp.parse_special, &ids, &n);
    if (s != VKI_OK) return s;
    s = vki_generate_ids(md, ids, n, &gp, cb, user, stats);
    free(ids);
    return s;
}

/* ===== Embeddings ======================================================== */

vki_status vki_embed(vki_model *md, const char *const *texts, int32_t n_texts, const vki_embed_params *params,
                     float *out)
{
    if (!md || (n_texts > 0 && (!texts || !out)) || n_texts < 0)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_embed: model, texts or out is NULL");
    if (!vki_model_is_embedding(md))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_embed: %s is a generation model (%s), not an embedding model",
                        vki_file_path(md->file), vki_file_arch(md->file));
    vki_embed_params ep = params ? *params : vki_embed_default_params();
    int pooling;
    switch (ep.pooling) {
    case VKI_POOLING_FROM_MODEL: pooling = mdl_get_hparams(md->m)->pooling; break;
    case VKI_POOLING_MEAN: pooling = BK_POOL_MEAN; break;
    case VKI_POOLING_CLS: pooling = BK_POOL_CLS; break;
    case VKI_POOLING_LAST: pooling = BK_POOL_LAST; break;
    default:
        return vki_fail(VKI_ERR_UNSUPPORTED, "vki_embed: pooling %d is not supported (from model, mean, cls, last)",
                        (int)ep.pooling);
    }
    if (n_texts == 0) return VKI_OK;
    int32_t **ids = calloc((size_t)n_texts, sizeof *ids);
    int32_t *n_ids = calloc((size_t)n_texts, sizeof *n_ids);
    vki_status s = VKI_OK;
    if (!ids || !n_ids) {
        s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "vki_embed: out of memory");
        goto done;
    }
    for (int32_t i = 0; i < n_texts; i++) {
        if (!texts[i]) {
            s = vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_embed: text %d is NULL", i);
            goto done;
        }
        if ((s = vki_tokenizer_encode(md->tok, texts[i], strlen(texts[i]), true, false, &ids[i], &n_ids[i])) != VKI_OK)
            goto done;
    }
    s = mdl_embed(md->m, (const int32_t *const *)ids, n_ids, n_texts, pooling, ep.normalize, out);
done:
    for (int32_t i = 0; ids && i < n_texts; i++) free(ids[i]);
    free(ids);
    free(n_ids);
    return s;
}
