/*
 * vkinfer.h: the one public header of vkinfer, a local inference engine with
 * its own Vulkan compute kernels and a SIMD CPU fallback.
 *
 * Usage (this example is compiled by tests/api/test_api_example.c):
 *
 *     vki_engine *eng = NULL;
 *     vki_model *model = NULL;
 *     if (vki_engine_create(NULL, &eng) != VKI_OK) { puts(vki_last_error()); return 1; }
 *     vki_model_params mp = vki_model_default_params();
 *     mp.backend = VKI_BACKEND_AUTO;
 *     if (vki_model_load(eng, "model.gguf", &mp, &model) != VKI_OK) {
 *         fprintf(stderr, "%s\n", vki_last_error());
 *         vki_engine_destroy(eng);
 *         return 1;
 *     }
 *     vki_generate_params gp = vki_generate_default_params();
 *     gp.n_predict = 32;
 *     vki_generate(model, "Once upon a time", &gp, on_token, NULL, NULL);
 *     vki_model_destroy(model);
 *     vki_engine_destroy(eng);
 *
 * Errors: every fallible call returns a vki_status; the detail (what was
 * wrong, where, found vs expected) is in vki_last_error(), which is
 * thread-local and valid until the next failing call on the same thread.
 * Library code never exits or aborts on bad input or device failures.
 *
 * Ownership: whoever creates an object destroys it; every *_destroy(NULL) is
 * a harmless no-op. Pointers returned by a getter stay valid until the object
 * they came from is destroyed.
 */
#ifndef VKINFER_H
#define VKINFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define VKI_API __declspec(dllexport)
#elif defined(__GNUC__)
#define VKI_API __attribute__((visibility("default")))
#else
#define VKI_API
#endif

#if defined(__GNUC__)
#define VKI_DEPRECATED(decl, hint) decl __attribute__((deprecated(hint)))
#else
#define VKI_DEPRECATED(decl, hint) decl
#endif

/* ===== Version ========================================================= */

#define VKI_VERSION_MAJOR 0
#define VKI_VERSION_MINOR 1
#define VKI_VERSION_PATCH 0
#define VKI_VERSION_STRING "0.1.0"
#define VKI_VERSION_NUMBER (VKI_VERSION_MAJOR * 1000000 + VKI_VERSION_MINOR * 1000 + VKI_VERSION_PATCH)

/* The version of the library linked at run time; compare with
 * VKI_VERSION_NUMBER to catch a header/library mismatch. */
VKI_API int         vki_version_number(void);
VKI_API const char *vki_version_string(void);

/* ===== Status and errors =============================================== */

typedef enum vki_status {
    VKI_OK                       =   0,
    VKI_ERR_INVALID_ARGUMENT     =  -1, /* caller passed something unusable        */
    VKI_ERR_NOT_FOUND            =  -2, /* file, model, key or tensor is missing    */
    VKI_ERR_BAD_FILE             =  -3, /* file is malformed or truncated           */
    VKI_ERR_UNSUPPORTED          =  -4, /* valid, but not something vkinfer handles */
    VKI_ERR_OUT_OF_MEMORY        =  -5, /* host allocation failed                   */
    VKI_ERR_OUT_OF_DEVICE_MEMORY =  -6, /* device allocation or budget exceeded     */
    VKI_ERR_DEVICE_LOST          =  -7, /* the device went away; reload the model   */
    VKI_ERR_QUEUE_FULL           =  -8, /* back off and retry                       */
    VKI_ERR_CANCELLED            =  -9, /* a callback asked to stop                 */
    VKI_ERR_TIMEOUT              = -10, /* a deadline passed                        */
    VKI_ERR_INTERNAL             = -11, /* a bug in vkinfer; please report it       */
} vki_status;

/* A short constant name for a status ("bad file"). Never NULL. */
VKI_API const char *vki_status_str(vki_status s);

/* The detail of the last failure on this thread. Never NULL (empty string
 * when there was none). Valid until the next failing call on this thread. */
VKI_API const char *vki_last_error(void);

/* ===== Engine ========================================================== */

typedef struct vki_engine vki_engine;
typedef struct vki_model  vki_model;

typedef enum vki_backend_kind {
    VKI_BACKEND_AUTO   = 0, /* a Vulkan GPU if there is one, else the CPU backend (a
                               Vulkan driver running on the CPU is not chosen) */
    VKI_BACKEND_CPU    = 1,
    VKI_BACKEND_VULKAN = 2,
} vki_backend_kind;

typedef struct vki_engine_params {
    int32_t  n_threads;       /* CPU worker threads; 0 = number of cores             */
    int32_t  vk_device;       /* Vulkan device index; -1 = pick the best             */
    uint64_t vram_budget;     /* bytes of device memory to use at most; 0 = all the
                                 budget the driver reports                           */
    bool     vk_validation;   /* enable Vulkan validation layers (tests, debugging)  */
} vki_engine_params;

VKI_API vki_engine_params vki_engine_default_params(void);

/* Creates an engine: the thread pool and, lazily, Vulkan devices.
 * Thread-safety: an engine may be shared by threads; see each call.
 * Returns VKI_OK, VKI_ERR_INVALID_ARGUMENT, VKI_ERR_OUT_OF_MEMORY. */
VKI_API vki_status vki_engine_create(const vki_engine_params *params, vki_engine **out);
VKI_API void       vki_engine_destroy(vki_engine *eng);

/* ===== Models ========================================================== */

typedef enum vki_pooling {
    VKI_POOLING_FROM_MODEL = 0,
    VKI_POOLING_NONE       = 1,
    VKI_POOLING_MEAN       = 2,
    VKI_POOLING_CLS        = 3,
    VKI_POOLING_LAST       = 4, /* the last token (decoder embedding models) */
} vki_pooling;

/* Called during a load with the fraction done in [0,1]; return false to
 * cancel the load (vki_model_load then returns VKI_ERR_CANCELLED). */
typedef bool (*vki_progress_cb)(float progress, void *user);

typedef struct vki_model_params {
    vki_backend_kind backend;     /* where the weights go                                */
    uint32_t         n_ctx;       /* context length per sequence; 0 = from model (capped
                                     at 4096)                                            */
    uint32_t         n_seq_max;   /* sequences evaluated together; 0 = 1                 */
    vki_progress_cb  progress;    /* optional                                            */
    void            *progress_user;
} vki_model_params;

VKI_API vki_model_params vki_model_default_params(void);

/* Loads a GGUF file, a .safetensors file (with config.json and tokenizer.json
 * beside it) or an HF model folder. The file is mmap'd; weights are uploaded
 * to the chosen backend. The model borrows the engine: destroy the model
 * first.
 * Returns VKI_OK, VKI_ERR_NOT_FOUND, VKI_ERR_BAD_FILE, VKI_ERR_UNSUPPORTED,
 * VKI_ERR_OUT_OF_MEMORY, VKI_ERR_OUT_OF_DEVICE_MEMORY, VKI_ERR_CANCELLED. */
VKI_API vki_status vki_model_load(vki_engine *eng, const char *path,
                                  const vki_model_params *params, vki_model **out);
VKI_API void       vki_model_destroy(vki_model *model);

VKI_API const char *vki_model_arch(const vki_model *model);        /* "llama", "bert", ... */
VKI_API const char *vki_model_backend_name(const vki_model *model); /* "cpu (avx512)", device name */
VKI_API int32_t     vki_model_n_vocab(const vki_model *model);
VKI_API int32_t     vki_model_n_embd(const vki_model *model);
VKI_API int32_t     vki_model_n_ctx(const vki_model *model);
VKI_API bool        vki_model_is_embedding(const vki_model *model);
/* Bytes the loaded model holds on its backend: weights + KV cache + scratch.
 * Vulkan: the device memory held for them (allocation blocks included);
 * CPU: its buffers plus the weights read in place from the file mapping. */
VKI_API uint64_t    vki_model_memory_bytes(const vki_model *model);

/* ===== Tokens ========================================================== */

/* Tokenizes text. add_special adds BOS/EOS or [CLS]/[SEP] as the model asks;
 * parse_special recognises special-token text such as "<s>" inside text.
 * Writes at most n_max ids; returns the number of ids, or, when n_max is too
 * small, the negated number needed. Returns INT32_MIN on error (see
 * vki_last_error()). */
VKI_API int32_t vki_tokenize(const vki_model *model, const char *text, size_t len,
                             int32_t *ids, int32_t n_max, bool add_special, bool parse_special);

/* The text of one token, as bytes (may be an incomplete UTF-8 sequence).
 * Returns the byte count written, or the negated size needed. */
VKI_API int32_t vki_token_to_piece(const vki_model *model, int32_t id, char *buf, int32_t size);

VKI_API int32_t vki_token_bos(const vki_model *model); /* -1 when the model has none */
VKI_API int32_t vki_token_eos(const vki_model *model);

/* ===== Generation ====================================================== */

/* The most alternatives a token event reports (vki_generate_params.n_top_logprobs). */
#define VKI_MAX_TOP_LOGPROBS 20

typedef struct vki_generate_params {
    int32_t     n_predict;        /* tokens to generate at most; 0 = until EOS or n_ctx */
    float       temperature;      /* 0 = greedy                                        */
    int32_t     top_k;            /* 0 = off                                           */
    float       top_p;            /* 1 = off                                           */
    float       min_p;            /* 0 = off                                           */
    float       repeat_penalty;   /* 1 = off                                           */
    float       frequency_penalty;/* 0 = off                                           */
    float       presence_penalty; /* 0 = off                                           */
    int32_t     penalty_last_n;   /* window for the penalties; 0 = 64                  */
    uint64_t    seed;             /* same seed + same inputs = same output             */
    const char *const *stop;      /* stop strings, NULL-terminated list, each valid
                                     UTF-8 (else INVALID_ARGUMENT); may be NULL        */
    bool        ignore_eos;
    bool        add_special;      /* add BOS to the prompt (default true)              */
    bool        parse_special;
    bool        logprobs;         /* fill vki_token_event.logprob and top_logprob_*;
                                     off (the default) costs nothing                   */
    int32_t     n_top_logprobs;   /* with logprobs: alternatives per token, 0..
                                     VKI_MAX_TOP_LOGPROBS                              */
    /* Constrained decoding: at most one of the two (both = INVALID_ARGUMENT).
     * Each step samples only among the tokens that keep the output a prefix
     * of the language; generation ends (stopped_by_eos) as soon as the output
     * is complete and nothing may follow, or at an end-of-generation token
     * where the output is complete. n_predict or the context can still cut
     * the output short: then it is incomplete. The strings are read during
     * the call (and, in the scheduler, copied at submit). NULL = none. */
    const char *grammar;          /* grammar text, start rule `root`: the syntax is in
                                     engine/grammar/README.md                          */
    const char *json_schema;      /* JSON Schema text: the output is one JSON value valid
                                     against it; unsupported keywords are refused
                                     (VKI_ERR_UNSUPPORTED naming them). "{}" = any JSON
                                     value, {"type":"object"} = any object (JSON mode) */
} vki_generate_params;

VKI_API vki_generate_params vki_generate_default_params(void);

/* One generated token. text is the token's complete UTF-8 text (bytes of an
 * unfinished sequence are held back and delivered with a later token).
 * top_ids/top_logits: the 5 largest raw logits before sampling.
 * With vki_generate_params.logprobs, the log-probabilities are those of the
 * model's own distribution, log-softmax of the raw logits: before penalties,
 * temperature and the top-k/top-p/min-p filters (as vLLM reports them by
 * default), so they do not depend on the sampling settings. Without it
 * logprob is 0 and n_top_logprobs 0. */
typedef struct vki_token_event {
    int32_t     id;
    const char *text;
    int32_t     top_ids[5];
    float       top_logits[5];
    float       logprob;          /* of id                                             */
    int32_t     n_top_logprobs;   /* entries below: min(params.n_top_logprobs, n_vocab) */
    int32_t     top_logprob_ids[VKI_MAX_TOP_LOGPROBS]; /* most likely first; ties by id */
    float       top_logprobs[VKI_MAX_TOP_LOGPROBS];
} vki_token_event;

/* Return false to stop generating (vki_generate then returns VKI_OK). */
typedef bool (*vki_token_cb)(const vki_token_event *ev, void *user);

typedef struct vki_generate_stats {
    int32_t n_prompt;
    int32_t n_generated;
    double  prompt_ms;
    double  gen_ms;
    bool    stopped_by_eos;       /* an end-of-generation token, or a grammar's output
                                     complete with nothing allowed after it            */
    bool    stopped_by_string;
} vki_generate_stats;

/* Generates from a text prompt, calling cb for every token. stats may be NULL.
 * Not thread-safe on one model: serialise calls per model (the scheduler does).
 * Returns VKI_OK, VKI_ERR_INVALID_ARGUMENT (embedding model, prompt too long,
 * a sampling value out of range such as n_top_logprobs above 20, a grammar
 * or schema that is malformed), VKI_ERR_UNSUPPORTED (a schema keyword that
 * cannot be enforced; a vocabulary that cannot spell what the grammar
 * requires), VKI_ERR_OUT_OF_DEVICE_MEMORY, VKI_ERR_DEVICE_LOST. */
VKI_API vki_status vki_generate(vki_model *model, const char *prompt,
                                const vki_generate_params *params,
                                vki_token_cb cb, void *user, vki_generate_stats *stats);

/* The same from token ids (no tokenization, no BOS added). */
VKI_API vki_status vki_generate_ids(vki_model *model, const int32_t *ids, int32_t n_ids,
                                    const vki_generate_params *params,
                                    vki_token_cb cb, void *user, vki_generate_stats *stats);

/* ===== Embeddings ====================================================== */

typedef struct vki_embed_params {
    vki_pooling pooling;   /* FROM_MODEL by default                     */
    bool        normalize; /* L2-normalise each embedding (default true) */
} vki_embed_params;

VKI_API vki_embed_params vki_embed_default_params(void);

/* Embeds n_texts texts in one batch into out, row-major [n_texts][n_embd]
 * floats (the caller's storage; see vki_model_n_embd).
 * Returns VKI_OK, VKI_ERR_INVALID_ARGUMENT (not an embedding model, text too
 * long for n_ctx), VKI_ERR_OUT_OF_DEVICE_MEMORY, VKI_ERR_DEVICE_LOST. */
VKI_API vki_status vki_embed(vki_model *model, const char *const *texts, int32_t n_texts,
                             const vki_embed_params *params, float *out);

#ifdef __cplusplus
}
#endif

#endif /* VKINFER_H */
