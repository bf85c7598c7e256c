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

/* ===== Service: many models, priorities, batching, residency, fallback ===
 *
 * A service serves several models by id to many callers at once: requests
 * queue per model in three priority classes, generations are batched
 * continuously and embeddings dynamically, models are loaded when first
 * needed and unloaded or evicted as the device budget and keep_alive say,
 * and a request whose model cannot serve it (missing or failed file, no
 * device memory, circuit breaker open, queue ETA past its deadline) goes to
 * the model's fallback candidates. Everything runs on the service's own
 * threads; no call blocks while a model loads.
 *
 * Errors: a submit returns an error only when the request itself is
 * unusable (bad arguments, unknown model, a prompt that does not fit, a
 * grammar that does not parse). Everything the service decides (queue full,
 * model failed, deadline passed, cancelled) is the job's result.
 * Callbacks (on_token, on_done, on_state) run on one dispatcher thread the
 * service owns, one at a time: keep them short. They may submit, cancel and
 * read results, but not vki_job_wait (INVALID_ARGUMENT there) nor destroy
 * the service.
 */

typedef struct vki_service vki_service;
typedef struct vki_job     vki_job;

typedef enum vki_priority {
    VKI_PRIORITY_INTERACTIVE = 0, /* served first                        */
    VKI_PRIORITY_NORMAL      = 1,
    VKI_PRIORITY_BATCH       = 2, /* served when nothing else is waiting */
} vki_priority;

typedef enum vki_model_kind {
    VKI_MODEL_KIND_AUTO      = 0, /* from the file: bert-family = embedding, else chat */
    VKI_MODEL_KIND_CHAT      = 1,
    VKI_MODEL_KIND_EMBEDDING = 2,
} vki_model_kind;

typedef enum vki_model_state {
    VKI_MODEL_UNLOADED     = 0, /* not in memory; a request loads it  */
    VKI_MODEL_LOADING      = 1,
    VKI_MODEL_RESIDENT_GPU = 2,
    VKI_MODEL_RESIDENT_CPU = 3,
    VKI_MODEL_FAILED       = 4, /* cannot be served; see the message  */
} vki_model_state;

typedef enum vki_breaker_state {
    VKI_BREAKER_CLOSED    = 0, /* serving                                     */
    VKI_BREAKER_OPEN      = 1, /* refusing until its recovery time has passed */
    VKI_BREAKER_HALF_OPEN = 2, /* one probe request decides                   */
} vki_breaker_state;

/* Why a request left its own model for a fallback candidate. */
typedef enum vki_fallback_reason {
    VKI_FALLBACK_NONE         = -1, /* served by the model asked for           */
    VKI_FALLBACK_MISSING      =  0, /* the model's file is missing             */
    VKI_FALLBACK_FAILED       =  1, /* the model failed (load or device)       */
    VKI_FALLBACK_MEMORY       =  2, /* the device had no room to load it       */
    VKI_FALLBACK_BREAKER_OPEN =  3, /* its circuit breaker is open             */
    VKI_FALLBACK_ETA          =  4, /* its queue would not answer in time      */
    VKI_FALLBACK_LOADING      =  5, /* still opening its file (cannot queue)   */
} vki_fallback_reason;
#define VKI_FALLBACK_N_REASONS 6

/* Capabilities a model declares and a request may need (fallback scoring). */
enum { VKI_CAP_TOOLS = 1u << 2, VKI_CAP_JSON = 1u << 3 };

/* Short names: "interactive", "chat", "resident-gpu", "half-open", "breaker_open". */
VKI_API const char *vki_priority_name(vki_priority p);
VKI_API const char *vki_model_kind_name(vki_model_kind k);
VKI_API const char *vki_model_state_name(vki_model_state s);
VKI_API const char *vki_breaker_state_name(vki_breaker_state b);
VKI_API const char *vki_fallback_reason_name(vki_fallback_reason r);
/* The names back (as above, case-sensitive); false when `name` is none. */
VKI_API bool vki_priority_from_name(const char *name, vki_priority *out);
VKI_API bool vki_model_kind_from_name(const char *name, vki_model_kind *out);
/* RESIDENT_GPU or RESIDENT_CPU. */
VKI_API bool vki_model_state_resident(vki_model_state s);

typedef struct vki_service_model_info vki_service_model_info;

/* One warm-up decision (vki_service_params.on_warm). */
typedef struct vki_warm_event {
    const char *model;
    const char *action; /* "preload", or "skip" (wanted, but not now)          */
    double      p;      /* predicted chance of a request in the coming interval */
    const char *reason; /* why, with the figures                               */
} vki_warm_event;

typedef struct vki_service_params {
    vki_engine_params engine;
    int32_t max_queue;          /* waiting requests per model; 0 = 64                  */
    double  vram_fraction;      /* share of the device budget models may use; 0 = all  */
    double  embed_wait_ms;      /* a lone embedding waits this long for company; 0 = 5 */
    int32_t embed_token_budget; /* tokens per embedding batch; 0 = the model's n_batch  */
    uint64_t embedding_cache_bytes; /* embedding results kept for repeated texts; 0 = off */
    /* Fallback scoring of automatic candidates: weights of the declared
     * compatibility, the capability overlap and the request's needs (all
     * 0 = 0.4 / 0.4 / 0.2), and the least score tried (0 = 0.5). */
    double  fallback_weights[3];
    double  fallback_min_score;
    /* Device turns and arbiter; 0 = the defaults (engine/sched/README.md). */
    double  quantum_ms, quantum_loads, turn_drain_ms;
    int32_t arb_chunk_tokens;
    double  arb_aging_ms;
    /* Warm-up: load models ahead of their predicted use, from a usage
     * history kept in warm_state_path (copied; NULL = not kept). */
    bool        warmup;
    double      warm_interval_s;   /* 0 = 300  */
    double      warm_threshold;    /* 0 = 0.5  */
    const char *warm_state_path;
    /* Called on the dispatcher thread after each change of a model's state
     * or error message. NULL = none. */
    void  (*on_state)(const vki_service_model_info *info, void *user);
    void   *on_state_user;
    /* Called with each warm-up decision, on the service's warm-up thread
     * (not the dispatcher): keep it short. NULL = none. */
    void  (*on_warm)(const vki_warm_event *ev, void *user);
    void   *on_warm_user;
} vki_service_params;

VKI_API vki_service_params vki_service_default_params(void);

typedef struct vki_service_model_params {
    const char      *id;            /* unique, non-empty; copied                         */
    const char      *path;          /* as vki_model_load takes it; copied                */
    vki_model_kind   kind;          /* AUTO by default                                   */
    vki_model_params model;         /* backend, n_ctx, n_seq_max (0 = 4 for chat)        */
    double           keep_alive_ms; /* idle time before unloading; -1 (default) = never  */
    bool             pin;           /* never evicted for another model                   */
    bool             fallback_cpu;  /* load on the CPU when the GPU budget cannot hold it */
    bool             on_demand;     /* not loaded at create: the first request loads it  */
    /* A chat model keeps each finished sequence's KV and skips the prompt
     * tokens a new request shares with it (exact tokens; output identical
     * to a cold run). true turns that off. */
    bool             no_prefix_reuse;
    bool             fallback_auto; /* after the chain, any model of the kind scoring well */
    const char *const *fallback;    /* model ids tried in order, NULL-terminated; may be NULL */
    uint32_t         capabilities;  /* VKI_CAP_* it declares                             */
    const char      *languages;     /* "en,de"; NULL = none declared                     */
    /* The declared compatibility with other models (ids, scores in [0, 1]),
     * the strongest term of an automatic candidate's score. */
    const char *const *compatible_ids;
    const double     *compatible_scores;
    int32_t           n_compatible;
    /* The circuit breaker: opens after `breaker_failures` failures within
     * breaker_window_ms, retries after breaker_recovery_ms; 0 = 5, 60 s, 30 s. */
    int32_t          breaker_failures;
    double           breaker_window_ms, breaker_recovery_ms;
    /* In [0, 1]: ranks equally loaded models of a route (higher first);
     * a live setting (vki_service_update_model). */
    double           quality;
} vki_service_model_params;

VKI_API vki_service_model_params vki_service_model_default_params(void);

/* Creates a service with no models and starts its dispatcher thread.
 * params NULL = defaults. Returns VKI_OK, VKI_ERR_INVALID_ARGUMENT,
 * VKI_ERR_OUT_OF_MEMORY. */
VKI_API vki_status vki_service_create(const vki_service_params *params, vki_service **out);

/* Creates a service from a YAML configuration file (its models, device,
 * warmup and fallback_policy sections; the `server` section belongs to
 * `vkinfer serve` and is checked there) and adds its models. params gives
 * what the file does not (on_state, engine); the file wins where both do.
 * Relative model paths are taken from the file's folder.
 * Returns VKI_OK, VKI_ERR_NOT_FOUND (no such file), VKI_ERR_BAD_FILE
 * ("FILE:LINE:COL: what was wrong, what was expected"),
 * VKI_ERR_INVALID_ARGUMENT (the models do not fit together: a duplicate id,
 * a fallback naming no model), VKI_ERR_OUT_OF_MEMORY. */
VKI_API vki_status vki_service_create_from_config(const char *path, const vki_service_params *params,
                                                  vki_service **out);

/* Adds a model; returns at once (its file is opened, and loaded when it
 * fits, on the service's threads). Safe while requests run (see
 * "Changing the models" below), not against another add or remove.
 * Fallback ids may name models added later; they are checked at the first
 * submit.
 * Returns VKI_OK, VKI_ERR_INVALID_ARGUMENT (no id or path, a duplicate id),
 * VKI_ERR_OUT_OF_MEMORY. */
VKI_API vki_status vki_service_add_model(vki_service *svc, const vki_service_model_params *params);

/* Cancels what is queued or running (on_done sees VKI_ERR_CANCELLED), joins
 * the threads and frees the models. Jobs the caller still holds stay valid
 * until vki_job_release. NULL is a no-op. */
VKI_API void vki_service_destroy(vki_service *svc);

typedef struct vki_job_result {
    bool        done;           /* final (set before on_done runs)                    */
    vki_status  status;         /* when done                                          */
    const char *message;        /* when done with an error; never NULL ("" if none)   */
    const char *model;          /* who served it (or was last tried)                  */
    const char *requested;      /* the model asked for                                */
    vki_fallback_reason fallback; /* why `model` is not `requested`; NONE when it is  */
    const char *text;           /* generation: choice 0's text when done; else NULL   */
    size_t      text_len;
    const float *embeddings;    /* embeddings: [n_texts][dim], L2-normalised; else NULL */
    int32_t     n_texts, dim;
    int32_t     n_prompt;       /* prompt tokens (all texts for embeddings)           */
    int32_t     n_generated;
    bool        stopped_by_eos, stopped_by_string;
    int32_t     queue_position; /* requests ahead of it when it was queued            */
    double      eta_ms;         /* its expected wait before starting, when queued     */
    double      queue_ms;       /* submit -> start; 0 while queued                    */
    double      ttft_ms;        /* submit -> first token (generation)                 */
    double      retry_after_ms; /* QUEUE_FULL, breaker open: when a retry may succeed */
    bool        queued;         /* a model took it into its queue (queue_position,
                                   eta_ms are that model's)                           */
    /* When the job ended because every candidate refused it: why the first
     * one did, and whether that model had failed (its state FAILED); else
     * VKI_FALLBACK_NONE and false. */
    vki_fallback_reason refusal;
    bool        refusal_model_failed;
    /* Generation jobs (vki_service_chat, _generate_ex): prompt tokens whose
     * KV a sequence already held (prefix reuse), and whether the try has
     * been admitted (queue_ms is final then). */
    int32_t     n_cached;
    bool        started;
    /* `model`'s index: stable, and valid for a model removed while it
     * served (vki_service_model_find no longer finds its id). */
    int32_t     model_index;
} vki_job_result;

/* What one request asks of the service beyond its input. */
typedef struct vki_request_params {
    vki_priority priority;     /* NORMAL by default                                    */
    double       deadline_ms;  /* from submit; past it the job ends VKI_ERR_TIMEOUT;
                                  0 = none                                            */
    bool         allow_fallback; /* default true: the model's candidates may serve it  */
    uint32_t     capabilities; /* VKI_CAP_* the request needs (ranks candidates)      */
    /* Generation: each new piece of choice 0's text, in order, whole UTF-8
     * (one token's, or several when the dispatcher is behind). Return false
     * to cancel the job. NULL = none. */
    bool  (*on_token)(const char *text, void *user);
    /* Once, when the job ends (any status), before vki_job_wait returns,
     * unless the job was released first; result's pointers are valid until
     * vki_job_release. NULL = none. */
    void  (*on_done)(const vki_job_result *result, void *user);
    void   *user;
    /* The models to try, in this order, in place of the service's plan (the
     * model asked for, then vki_service_fallback_candidates): entry 0 is
     * the model asked for (the submit's `model` must name it, or be NULL).
     * Indices (vki_service_model_find), at most 16; copied. NULL = the plan. */
    const int32_t *candidates;
    int32_t        n_candidates;
    /* A candidate still opening its file refuses the job
     * (VKI_FALLBACK_LOADING, retry_after_ms 1000) instead of the job
     * waiting for it: for a caller that answers at once. */
    bool           refuse_opening;
} vki_request_params;

VKI_API vki_request_params vki_request_default_params(void);


/* Submits a generation to model `model` (NULL = the first chat model).
 * gp NULL = vki_generate_default_params(), rp NULL = defaults. The prompt
 * is tokenized now. On VKI_OK *out holds a job to vki_job_release.
 * Returns VKI_OK, VKI_ERR_INVALID_ARGUMENT (bad arguments, a prompt that
 * does not fit the context, a malformed grammar), VKI_ERR_NOT_FOUND (no
 * such model, or no chat model), VKI_ERR_UNSUPPORTED (an embedding model; a
 * schema keyword that cannot be enforced), VKI_ERR_OUT_OF_MEMORY.
 * Thread-safe. */
VKI_API vki_status vki_service_generate(vki_service *svc, const char *model, const char *prompt,
                                        const vki_generate_params *gp, const vki_request_params *rp,
                                        vki_job **out);

/* Submits n_texts texts to embed in one request (NULL model = the first
 * embedding model). Same returns (UNSUPPORTED: a chat model). Thread-safe. */
VKI_API vki_status vki_service_embed(vki_service *svc, const char *model, const char *const *texts,
                                     int32_t n_texts, const vki_request_params *rp, vki_job **out);

/* Waits up to timeout_ms (-1: forever, 0: not at all) for the job to end
 * (its on_done has returned). Returns VKI_OK (ended: see vki_job_get_result),
 * VKI_ERR_TIMEOUT (still running), VKI_ERR_INVALID_ARGUMENT (NULL, or called
 * from a callback). Thread-safe. */
VKI_API vki_status vki_job_wait(vki_job *job, int timeout_ms);
/* Fills *out with where the job stands; the pointers are valid until
 * vki_job_release. Thread-safe. */
VKI_API void       vki_job_get_result(vki_job *job, vki_job_result *out);
/* Asks the job to stop: it ends VKI_ERR_CANCELLED unless it finishes first.
 * Thread-safe; NULL is a no-op. */
VKI_API void       vki_job_cancel(vki_job *job);
/* Drops the caller's hold, cancelling the job if it still runs. No callback
 * of the job runs after this returns (one running on another thread is
 * waited for), so `user` may be freed then; it may be called from the
 * job's own callback. NULL is a no-op. */
VKI_API void       vki_job_release(vki_job *job);

struct vki_service_model_info {
    const char       *id, *path;   /* valid until vki_service_destroy            */
    vki_model_kind    kind;        /* CHAT or EMBEDDING (AUTO resolved)          */
    vki_model_state   state;
    char              message[1024]; /* why it failed, or why a load was refused; "" */
    bool              can_queue;   /* requests are accepted (file opened)        */
    bool              pin, fallback_cpu;
    double            keep_alive_ms; /* -1 = forever                             */
    double            load_ms;     /* the last load's duration                   */
    double            idle_ms;     /* since its last request started or ended    */
    uint64_t          bytes;       /* resident: held on its backend; else 0      */
    uint64_t          est_bytes;   /* estimated device bytes                     */
    int32_t           n_ctx, n_seq_max; /* resident                               */
    char              backend[128]; /* resident: "cpu (avx2)", a device name; else "" */
    vki_breaker_state breaker;
    double            breaker_retry_ms; /* open: until a probe may try           */
    double            eta_ms;      /* a request submitted now: expected time to its end;
                                      0 = nothing measured yet                   */
    bool              started;     /* its start-up is over: it has been in a state
                                      other than loading (later loads are on demand) */
    int32_t           breaker_failures; /* failures in the breaker's window now   */
    uint64_t          breaker_trips;    /* times its breaker opened               */
    bool              reloading;   /* vki_service_reload_model in progress       */
    bool              removing;    /* vki_service_remove_model: draining, refusing */
    bool              removed;     /* and done: unloaded; its index stays taken  */
    uint64_t          generation;  /* files it switched to by reloads; 0 = first */
    vki_status        fail_status; /* FAILED: why (NOT_FOUND: the file is missing) */
};

/* A latency histogram: bucket[k] counts the values in
 * (bounds[k-1], bounds[k]] seconds (vki_service_histogram_bounds), not
 * cumulative; bucket[VKI_HISTOGRAM_BUCKETS] is the rest (+Inf). */
#define VKI_HISTOGRAM_BUCKETS 14
typedef struct vki_histogram {
    uint64_t bucket[VKI_HISTOGRAM_BUCKETS + 1];
    uint64_t count;
    double   sum_s;
} vki_histogram;

/* The upper bounds in seconds of the histogram buckets, ascending; a
 * static array of VKI_HISTOGRAM_BUCKETS. */
VKI_API const double *vki_service_histogram_bounds(void);

typedef struct vki_service_model_stats {
    int32_t  queued[3];            /* waiting, by vki_priority                   */
    int32_t  active;               /* sequences decoding / requests in a batch   */
    uint64_t finished_ok, failed, cancelled, timed_out, rejected_full;
    uint64_t prompt_tokens, generated_tokens;
    uint64_t steps;                /* decode steps                               */
    uint64_t loads, evictions, idle_unloads, cpu_fallbacks, refused_loads;
    uint64_t breaker_trips;
    double   ttft_sum_ms;          /* over ttft_count first tokens               */
    uint64_t ttft_count;
    double   service_ema_ms;       /* start -> done, moving average              */
    /* Requests for this model served by another, by vki_fallback_reason. */
    uint64_t fallbacks_out[VKI_FALLBACK_N_REASONS];
    uint64_t fallbacks_in;         /* requests for other models served here      */
    uint64_t step_seqs;            /* sequences summed over the decode steps     */
    vki_histogram ttft;            /* submit -> first token                      */
    vki_histogram token_latency;   /* per generated token: its decode step       */
    vki_histogram request;         /* submit -> done, requests that succeeded    */
    uint64_t swaps;                /* reloads applied (vki_service_reload_model) */
    uint64_t breaker_failures;     /* failures its breaker counted               */
    uint64_t breaker_reloads;      /* unloaded as its breaker opened             */
    uint64_t yields;               /* device turns given up to a waiting model   */
    uint64_t paused;               /* generations paused at a turn's end         */
    uint64_t arb_grants;           /* device steps the arbiter granted it        */
    double   arb_wait_ms;          /* time those steps waited for the device     */
    uint64_t emb_cache_hits, emb_cache_misses; /* texts found / not found cached  */
    /* Prompt positions run through the model, and those found in a kept
     * sequence's KV and skipped (prefix reuse). */
    uint64_t prompt_evaluated, prompt_reused;
} vki_service_model_stats;

/* The embedding result cache, all models together; zeros when it is off. */
typedef struct vki_service_cache_info {
    uint64_t budget, bytes;        /* embedding_cache_bytes; held now            */
    uint64_t entries, hits, misses, inserts;
    uint64_t evictions;            /* entries dropped for room                   */
} vki_service_cache_info;

/* The device budget the service places models in. */
typedef struct vki_service_device_info {
    uint64_t budget;               /* bytes; 0 when there is no GPU device       */
    uint64_t used;                 /* held or reserved by GPU-resident models    */
    char     device[256];          /* its name; "" when none                     */
} vki_service_device_info;

/* The number of models, and model i's index by id (-1: none). */
VKI_API int32_t vki_service_model_count(const vki_service *svc);
VKI_API int32_t vki_service_model_find(const vki_service *svc, const char *id);
/* Model i's state now, and its counters since create. Thread-safe.
 * Returns VKI_OK, VKI_ERR_INVALID_ARGUMENT (NULL), VKI_ERR_NOT_FOUND (i). */
VKI_API vki_status vki_service_get_model_info(vki_service *svc, int32_t i, vki_service_model_info *out);
VKI_API vki_status vki_service_get_model_stats(vki_service *svc, int32_t i, vki_service_model_stats *out);
/* Requests for model `from` that model `to` served, by reason. */
VKI_API uint64_t vki_service_fallback_count(const vki_service *svc, int32_t from, int32_t to,
                                            vki_fallback_reason reason);
/* Waits up to timeout_ms (-1: forever) until no model is loading; true when
 * every model is resident. */
VKI_API bool vki_service_wait_loaded(vki_service *svc, int timeout_ms);
/* The embedding cache's and the device budget's figures now. Thread-safe.
 * Returns VKI_OK, VKI_ERR_INVALID_ARGUMENT (NULL). */
VKI_API vki_status vki_service_get_cache_info(vki_service *svc, vki_service_cache_info *out);
VKI_API vki_status vki_service_get_device_info(vki_service *svc, vki_service_device_info *out);
/* What a request needs of a fallback candidate. */
typedef struct vki_request_needs {
    uint32_t capabilities; /* VKI_CAP_* it uses                                  */
    int32_t  n_tokens;     /* prompt + completion tokens expected; 0 = unknown   */
    int32_t  n_embd;       /* embeddings: the width a candidate must keep; 0 = any */
} vki_request_needs;

/* The models that would serve a request for model i in its stead, in the
 * order the service tries them: its fallback chain, then (fallback_auto)
 * the other models of its kind scoring at least fallback_min_score, best
 * first. Model i itself and removed models are not among them. Writes up
 * to max indices to out and, when scores is not NULL, their scores in
 * [0, 1]; returns how many (0 on bad arguments). need NULL = nothing
 * particular. Thread-safe. */
VKI_API int32_t vki_service_fallback_candidates(vki_service *svc, int32_t i, const vki_request_needs *need,
                                                int32_t *out, double *scores, int32_t max);
/* Model i's k-th declared fallback id (0-based), NULL past the chain's end;
 * valid until vki_service_destroy. */
VKI_API const char *vki_service_model_fallback_id(const vki_service *svc, int32_t i, int32_t k);

/* ----- Changing the models while the service runs ------------------------
 * Model indices are stable: a removed model keeps its index (its info says
 * removed) and a new one takes the next (at most VKI_SERVICE_MAX_MODELS
 * over the service's life). vki_service_add_model is safe while requests run. These calls
 * are thread-safe with requests, not with each other: one caller changes
 * the models at a time. */

#define VKI_SERVICE_MAX_MODELS 256

/* Removes model i; returns at once. New requests for it fail NOT_FOUND and
 * it is no fallback candidate; those already accepted finish, then it
 * unloads. Returns VKI_OK, VKI_ERR_NOT_FOUND (no model i, or already
 * removed), VKI_ERR_INVALID_ARGUMENT (NULL). */
VKI_API vki_status vki_service_remove_model(vki_service *svc, int32_t i);
/* Replaces model i's file by path (same kind and tokenizer), keeping its id
 * and settings; returns at once. The new file loads beside the old one when
 * the budget holds both (no request waits), else after the old one drains.
 * A reload that fails leaves the old file serving, the reason in the info's
 * message. Returns VKI_OK, VKI_ERR_NOT_FOUND, VKI_ERR_INVALID_ARGUMENT (no
 * path, a reload in progress), VKI_ERR_UNSUPPORTED (the model failed or is
 * still opening its file), VKI_ERR_OUT_OF_MEMORY. */
VKI_API vki_status vki_service_reload_model(vki_service *svc, int32_t i, const char *path);
/* Applies the settings that can change while model i serves: keep_alive,
 * pin, fallback_cpu, the fallback chain and scoring, the breaker (id, path,
 * kind and model are ignored: those take a reload, or a remove and an add).
 * Returns VKI_OK, VKI_ERR_NOT_FOUND, VKI_ERR_INVALID_ARGUMENT,
 * VKI_ERR_OUT_OF_MEMORY. */
VKI_API vki_status vki_service_update_model(vki_service *svc, int32_t i, const vki_service_model_params *params);
/* Ends every queued and running request (VKI_ERR_CANCELLED) and refuses new
 * ones, keeping the models' states and counters readable until
 * vki_service_destroy (which does this first). Thread-safe. */
VKI_API void vki_service_shutdown(vki_service *svc);


/* ===== Service: routing (`model: "auto"`) ===============================
 *
 * A request that names no model is routed: routes (use cases) list a
 * primary model and its fallbacks and what they serve (chat or embedding,
 * tools, JSON output, a minimum context). A request goes to the routes that
 * serve what it needs; where several do and routes carry example prompts,
 * to the one whose nearest example is closest in meaning to the request's
 * query text (the cosine of their embeddings, against the route's
 * threshold), else to the only one (by need), else to the one whose best
 * model is least loaded (by load). Within the route its models are ordered
 * by whether they can serve, then load (resident, queue ETA, load cost),
 * then quality. No route serving it: every model that can, ranked alike.
 * The service embeds the examples with the router model itself, once it
 * is resident and again after each reload of its file; a query that comes
 * before them embeds them along with itself.
 */

#define VKI_SERVICE_MAX_ROUTES 64
#define VKI_ROUTE_MAX_MODELS   16

/* What decided a route. */
typedef enum vki_route_by {
    VKI_ROUTE_BY_MEANING = 0, /* the nearest example reached its threshold */
    VKI_ROUTE_BY_NEED    = 1, /* one route (or model) could serve it        */
    VKI_ROUTE_BY_LOAD    = 2, /* several could: the least loaded won        */
} vki_route_by;
#define VKI_ROUTE_N_BY 3

/* "meaning", "need", "load"; "?" for none. */
VKI_API const char *vki_route_by_name(vki_route_by b);

/* One route; strings and arrays are copied. */
typedef struct vki_route_params {
    const char         *name;         /* unique, non-empty                               */
    const char         *use_case;     /* a description; NULL = none                      */
    const char *const  *models;       /* model ids: the primary, then its fallbacks      */
    int32_t             n_models;     /* 1 .. VKI_ROUTE_MAX_MODELS                       */
    vki_model_kind      kind;         /* what it serves; AUTO = its primary's kind       */
    uint32_t            capabilities; /* VKI_CAP_*: requests using them may come here    */
    int32_t             min_ctx;      /* its models need this context; 0 = any           */
    const char *const  *examples;     /* prompts that belong here (chat routes); may be NULL */
    int32_t             n_examples;
    double              threshold;    /* nearest-example cosine in [-1, 1]; 0 = the router's */
} vki_route_params;

/* Why the examples' vectors changed, or could not be made (on_examples). */
typedef struct vki_route_examples_event {
    bool        ok;
    int32_t     n_examples, dim;  /* ok: how many, how wide                       */
    const char *model;            /* the router model's id                        */
    const char *message;          /* !ok: why; the service retries in retry_ms    */
    double      retry_ms;
} vki_route_examples_event;

typedef struct vki_router_params {
    const vki_route_params *routes;
    int32_t     n_routes;         /* 0 .. VKI_SERVICE_MAX_ROUTES                  */
    /* The embedding model the examples and queries are embedded with
     * (copied); NULL = none: no route may carry examples. */
    const char *model;
    double      threshold;        /* routes' default; 0 = 0.5                     */
    /* Called on the dispatcher thread each time the examples are embedded,
     * or fail to be. NULL = none. */
    void      (*on_examples)(const vki_route_examples_event *ev, void *user);
    void       *on_examples_user;
} vki_router_params;

VKI_API vki_router_params vki_router_default_params(void);

/* Installs the routes, once per service (model ids must exist by then).
 * Returns VKI_OK, VKI_ERR_INVALID_ARGUMENT (NULL, routes already set, too
 * many routes or models, no name, a name twice, a model named twice,
 * models of another kind than the route, examples without a router model
 * or on an embedding route, a threshold outside [-1, 1], a router model
 * that is no embedding model), VKI_ERR_NOT_FOUND (an unknown model id),
 * VKI_ERR_OUT_OF_MEMORY. */
VKI_API vki_status vki_service_set_router(vki_service *svc, const vki_router_params *params);

/* What a request to route needs, and who hears when a decision waited. */
typedef struct vki_route_request {
    vki_model_kind kind;          /* CHAT (default) or EMBEDDING                  */
    uint32_t       capabilities;  /* VKI_CAP_* it uses (chat)                     */
    int32_t        n_tokens;      /* context it expects to fill; 0 = unknown      */
    /* When the decision waits for the query's embedding: called once it is
     * made (see vki_service_route), on the dispatcher thread. */
    void         (*on_done)(const vki_job_result *result, void *user);
    void          *user;
} vki_route_request;

typedef struct vki_route_decision {
    int32_t      route;           /* route index; -1 = none matched (every model) */
    const char  *route_name;      /* "-" when none; valid until vki_service_destroy */
    vki_route_by by;
    double       score;           /* the best route's nearest-example cosine; 0 when
                                     the query was not embedded                  */
    int32_t      order[VKI_ROUTE_MAX_MODELS]; /* model indices to try, best first */
    int32_t      n_order;
    bool         embedded;        /* the query's embedding took part              */
    /* Why a query was not embedded or its vector not used ("" when it was,
     * or when meaning could not decide anyway). */
    char         note[512];
    double       decide_ms;       /* the decision itself, without the embedding   */
} vki_route_decision;

/* Routes a request. query: the text whose meaning may decide (a chat's
 * last user message); NULL = none. Where meaning cannot decide (no query,
 * no router model, fewer than two routes serving the request, none with
 * examples) the decision is made now: *out is filled and *job is NULL.
 * Else the query (with the examples when theirs are missing or stale) is
 * embedded on the router model, interactive class, and *job is that
 * embedding: req->on_done runs once the decision is made, and
 * vki_job_get_route reads it; release the job with vki_job_release. A
 * query that cannot be embedded is routed without it (out->note says why).
 * Each decision counts in vki_service_get_route_info's `decisions`.
 * Returns VKI_OK, VKI_ERR_NOT_FOUND (no model serves what it needs: the
 * message says what), VKI_ERR_INVALID_ARGUMENT (NULL, a kind that is
 * neither chat nor embedding), VKI_ERR_OUT_OF_MEMORY. Thread-safe; never
 * blocks on a model. */
VKI_API vki_status vki_service_route(vki_service *svc, const vki_route_request *req, const char *query,
                                     vki_route_decision *out, vki_job **job);

/* The decision of a job from vki_service_route. Returns VKI_OK,
 * VKI_ERR_TIMEOUT (not decided yet), VKI_ERR_INVALID_ARGUMENT (NULL, not a
 * route's job), or the decision's error (NOT_FOUND: the models that could
 * serve it went away meanwhile; vki_last_error says what). Thread-safe. */
VKI_API vki_status vki_job_get_route(vki_job *job, vki_route_decision *out);

typedef struct vki_route_info {
    const char    *name, *use_case; /* valid until vki_service_destroy; use_case may be NULL */
    int32_t        models[VKI_ROUTE_MAX_MODELS]; /* indices, primary first */
    int32_t        n_models;
    vki_model_kind kind;          /* CHAT or EMBEDDING                            */
    uint32_t       capabilities;
    int32_t        min_ctx;
    int32_t        n_examples;
    double         threshold;     /* in force (the router's default applied)      */
    uint64_t       decisions[VKI_ROUTE_N_BY]; /* requests routed here, by what decided */
} vki_route_info;

/* The number of routes (0 before vki_service_set_router), and route i's
 * settings and counters; i = -1 is the requests no route matched (name
 * "-", only `decisions` set). The router model's id, or NULL.
 * Returns VKI_OK, VKI_ERR_INVALID_ARGUMENT (NULL), VKI_ERR_NOT_FOUND (i). */
VKI_API int32_t     vki_service_route_count(const vki_service *svc);
VKI_API vki_status  vki_service_get_route_info(vki_service *svc, int32_t i, vki_route_info *out);
VKI_API const char *vki_service_router_model(const vki_service *svc);

/* ===== Generation jobs: chat, choices, token events (issue #13) =========
 * What a server needs of a generation beyond vki_service_generate: a chat
 * whose prompt each candidate model renders with its own template (the
 * messages' text kept literal), several choices sampled from one prompt,
 * the tokens with their log-probabilities read as they come, and a wake-up
 * hook so one event loop can watch many jobs without a thread per job.
 * Where the job waits (vki_job_result.queued, queue_position, eta_ms) and
 * who served it (model, fallback) are in vki_job_get_result. */

/* One message of a conversation. */
typedef struct vki_chat_message {
    const char *role;    /* "system", "user", "assistant" (others: as the template knows them) */
    const char *content; /* text; NULL = empty. Special-token text in it stays text           */
} vki_chat_message;

/* Where the messages' content lies in a rendered prompt: those bytes are
 * tokenized as text even with parse_special (a user's "<|im_end|>" does not
 * end the turn). */
typedef struct vki_prompt_span {
    size_t off, len;
} vki_prompt_span;

/* Renders the prompt for candidate model `model` (an index) in place of the
 * service's renderer. *prompt and *literal (sorted, may be NULL) are
 * malloc'd; the service frees them. gp is the job's copy for this try: the
 * renderer may set add_special / parse_special, and grammar to a string it
 * owns until its next call or vki_job_release. A status other than VKI_OK
 * ends the job with it (at submit: vki_service_chat returns it), message
 * from vki_last_error(): the conversation does not fit this model's template.
 * Runs on the submitting thread for the first candidate and on the
 * dispatcher for the later ones, never after vki_job_release returns. */
typedef vki_status (*vki_chat_render_fn)(int32_t model, vki_generate_params *gp, char **prompt,
                                         vki_prompt_span **literal, size_t *n_literal, void *user);

typedef struct vki_gen_params {
    /* Choices sampled from the prompt, 1 to the model's n_seq_max (0 = 1);
     * choice c samples with seed + c. The prompt is evaluated once. */
    int32_t     n_choices;
    /* Chat: OpenAI's `tools` array as JSON text, for templates that render
     * tools (vki_service_chat); NULL = none. Copied. */
    const char *tools_json;
    /* Chat: a built-in template family ("chatml", "llama3", "mistral", ...)
     * rendered in place of each model's own; NULL = the model's own, ChatML
     * for a model whose file has none. Copied. */
    const char *chat_template;
    /* Chat: renders each candidate's prompt instead (see above); NULL = the
     * service renders `messages` with the template. */
    vki_chat_render_fn render;
    void              *render_user;
    /* Called whenever vki_job_poll may have something new: a token, a
     * choice's end, a new try, the job's end. It runs on a service thread
     * with the service's locks held: it must only signal (set a flag, wake
     * an event loop), never call into the service. Not after
     * vki_job_release returns. NULL = none. */
    void (*on_news)(void *user);
    void  *news_user;
} vki_gen_params;

VKI_API vki_gen_params vki_gen_default_params(void);

/* A chat to model `model` (NULL = the first chat model): each candidate
 * (the model, then its fallbacks) renders messages[0..n_messages) with its
 * own template when its try comes, the messages' content kept literal. With
 * xp->render, messages may be NULL (the renderer has them). gp NULL =
 * defaults (parse_special and add_special are set per model: the rendered
 * text carries the template's markers, BOS when the template writes it).
 * xp, rp NULL = defaults. Returns as vki_service_generate, and the
 * renderer's status (INVALID_ARGUMENT: the first candidate's template
 * cannot render the conversation; BAD_FILE: it does not parse). */
VKI_API vki_status vki_service_chat(vki_service *svc, const char *model, const vki_chat_message *messages,
                                    int32_t n_messages, const vki_gen_params *xp, const vki_generate_params *gp,
                                    const vki_request_params *rp, vki_job **out);

/* vki_service_generate with choices and a wake-up hook: a text prompt, or
 * (prompt NULL) token ids[0..n_ids) used as given (no BOS added). */
VKI_API vki_status vki_service_generate_ex(vki_service *svc, const char *model, const char *prompt,
                                           const int32_t *ids, int32_t n_ids, const vki_gen_params *xp,
                                           const vki_generate_params *gp, const vki_request_params *rp,
                                           vki_job **out);

/* One generated token with its log-probabilities (gp.logprobs), as
 * vki_token_event has them. */
typedef struct vki_job_token {
    int32_t id;
    float   logprob;
    int32_t text_offset; /* characters of the choice's text before this token */
    int32_t n_top;
    int32_t top_ids[VKI_MAX_TOP_LOGPROBS];
    float   top_logprobs[VKI_MAX_TOP_LOGPROBS];
} vki_job_token;

/* What one choice produced since the previous vki_job_poll. */
typedef struct vki_job_choice {
    const char          *text;    /* the new text, whole UTF-8, NUL-terminated ("" if none) */
    size_t               text_len;
    const vki_job_token *tokens;  /* the new tokens (gp.logprobs; an ending EOS is not
                                     listed), NULL if none                            */
    int32_t              n_tokens;
    int32_t              n_generated; /* tokens sampled so far, an ending EOS included  */
    bool                 done;    /* the choice ended well (EOS, a stop string, length) */
    bool                 stopped_by_eos, stopped_by_string;
} vki_job_choice;

/* Reads what the job's choices produced since the previous call into
 * out[0..n) (n: the job's n_choices) and, when res is not NULL, where the
 * job stands (vki_job_get_result, with n_prompt, n_generated, n_cached and
 * queue_ms of the try in flight while it runs). A try that fails before any
 * output shows nothing: the next candidate's output follows, or the job
 * ends with the error. The pointers are valid until the next call or
 * vki_job_release. One reader per job. Returns VKI_OK,
 * VKI_ERR_INVALID_ARGUMENT (NULL, an embedding job, n not the job's
 * n_choices), VKI_ERR_OUT_OF_MEMORY (nothing read; a retry reads it). */
VKI_API vki_status vki_job_poll(vki_job *job, vki_job_choice *out, int32_t n, vki_job_result *res);

/* Sets (or, fn NULL, stops) the job's wake-up hook in place of
 * vki_gen_params.on_news, with the same rules; once this returns no call
 * of the previous hook is running or will run. The job's news before the
 * call are not replayed: look once (vki_job_poll) after setting it.
 * Thread-safe; not from the hook itself. NULL job is a no-op. */
VKI_API void vki_job_set_news(vki_job *job, void (*fn)(void *user), void *user);

/* Keeps the job on the model its try in flight runs on: a try that fails
 * from here ends the job with its error instead of passing to the next
 * candidate (for a caller that has told its client who serves it, e.g. in
 * a stream's headers). Thread-safe; NULL is a no-op. */
VKI_API void vki_job_stay(vki_job *job);

/* Token id's bytes in model i's vocabulary (special tokens as their text),
 * for rendering a job's tokens and alternatives. Returns the length, or -1
 * (no such model or token, the model not open, size too small). Thread-safe. */
VKI_API int32_t vki_service_token_piece(vki_service *svc, int32_t i, int32_t id, char *buf, int32_t size);

#ifdef __cplusplus
}
#endif

#endif /* VKINFER_H */
