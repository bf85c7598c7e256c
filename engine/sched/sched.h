/*
 * sched.h: the scheduler. It owns the loaded models (by id), loads them on
 * background threads (unloaded -> loading -> ready | failed), and serves each
 * from its own worker thread with a bounded three-class priority queue.
 * A model is loaded when it is first asked for (or at start when it fits),
 * on the GPU while the device budget allows, evicting idle models by a
 * score (sched_resid.c), else on the CPU when it may fall back; keep_alive
 * unloads idle models.
 * Generation is continuously batched: up to n_seq_max sequences decode
 * together in one llama_decode, a new request joins at the next step and a
 * finished one leaves. Embeddings are batched dynamically: a few ms or a
 * token budget, then one mdl_embed for all. Requests carry a cancel flag and
 * a deadline; a full queue refuses at once with an ETA, an accepted request
 * gets its place and ETA. GPU models that cannot fit together and all have
 * work take the device in turns (sched_turn.c); every step of every model on
 * one device passes that device's arbiter in priority order (sched_arbiter.c).
 * Internal (not in vkinfer.h): see engine/sched/README.md for why.
 * Must not: parse HTTP or YAML; block the caller while a model loads.
 */
#ifndef VKI_SCHED_H
#define VKI_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vkinfer.h"

typedef struct vki_model_file vki_model_file; /* loader/model_file.h       */
typedef struct vki_tokenizer  vki_tokenizer;  /* engine/tokenizer/tokenizer.h */
typedef struct vki_text_span  vki_text_span;  /* engine/tokenizer/tokenizer.h */
typedef struct scheduler     scheduler;
typedef struct sched_request sched_request;

typedef enum sched_prio {
    SCHED_PRIO_INTERACTIVE = 0, /* served first                     */
    SCHED_PRIO_NORMAL      = 1,
    SCHED_PRIO_BATCH       = 2, /* served when nothing else is queued */
    SCHED_N_PRIO           = 3,
} sched_prio;

typedef enum sched_state {
    SCHED_UNLOADED     = 0, /* not in memory; a request loads it            */
    SCHED_LOADING      = 1,
    SCHED_RESIDENT_GPU = 2, /* serving from the Vulkan backend              */
    SCHED_RESIDENT_CPU = 3, /* serving from the CPU backend (asked, or fallback) */
    SCHED_FAILED       = 4, /* the file cannot be served; see the error     */
} sched_state;

/* True for the two resident states. */
bool sched_state_resident(sched_state s);

typedef enum sched_kind { SCHED_KIND_CHAT = 0, SCHED_KIND_EMBEDDING = 1 } sched_kind;

const char *sched_prio_name(sched_prio p);   /* "interactive", "normal", "batch" */
const char *sched_state_name(sched_state s); /* "unloaded", "resident-gpu", ...  */
const char *sched_kind_name(sched_kind k);   /* "chat", "embedding"              */
/* Parse the names above; false when the text is none of them. A class also
 * answers to the service that uses it: "chat" (interactive), "npc" and
 * "search" (normal), "summary" (batch). */
bool sched_prio_parse(const char *name, sched_prio *out);
bool sched_kind_parse(const char *name, sched_kind *out);

typedef struct sched_model_info sched_model_info;

/* One warm-up decision, for the log (sched_params.on_warm). */
typedef struct sched_warm_event {
    const char *model;
    const char *action; /* "preload" or "skip" (wanted, but not now)           */
    double      p;      /* predicted chance of a request in the coming interval */
    const char *reason; /* why, with the figures                               */
} sched_warm_event;

/* ===== Circuit breakers and fallback (sched_breaker.c, sched_fallback.c) === */

typedef enum sched_breaker_state {
    SCHED_BREAKER_CLOSED    = 0, /* serving                                         */
    SCHED_BREAKER_OPEN      = 1, /* refusing at once until the recovery time passed  */
    SCHED_BREAKER_HALF_OPEN = 2, /* one probe request may try; it decides            */
} sched_breaker_state;
const char *sched_breaker_state_name(sched_breaker_state b); /* "closed", "open", "half-open" */

/* When a model's breaker opens: `failures` failures (loads that failed,
 * failed decode steps or embedding batches, a request's internal error)
 * within `window_ms`. It stays open `recovery_ms`, then lets one probe
 * through. 0 = the defaults: 5, 60 s, 30 s. */
typedef struct sched_breaker_params {
    int32_t failures;
    double  window_ms, recovery_ms;
} sched_breaker_params;

/* The capability bits a model declares (config) for fallback scoring. */
enum { SCHED_CAP_CHAT = 1u << 0, SCHED_CAP_EMBEDDING = 1u << 1, SCHED_CAP_TOOLS = 1u << 2, SCHED_CAP_JSON = 1u << 3 };

/* How a fallback candidate is scored (sched_fallback_score): the declared
 * compatibility, the capability overlap, and how well it meets the request.
 * All 0 = 0.4 / 0.4 / 0.2. */
typedef struct sched_fb_weights {
    double declared, capabilities, request;
} sched_fb_weights;

/* A model's fallback settings (sched_model_params.fb); strings are copied. */
typedef struct sched_fb_params {
    const char *const *chain;     /* other model ids tried in order, NULL-terminated; NULL = none  */
    bool               auto_candidates; /* then every other model of the kind, best score first */
    uint32_t           caps;      /* SCHED_CAP_* it declares (its kind is added)                    */
    const char        *languages; /* comma-separated ("en,de"); NULL = none declared               */
    const char *const *compat_ids; /* the declared compatibility matrix's row: ids ...            */
    const double      *compat;     /* ... and their scores in [0, 1]                               */
    int32_t            n_compat;
    sched_breaker_params breaker;
    /* For tests only: the next N loads / decode steps (or embedding batches)
     * of this model fail as a device would. 0 = never (the normal case). */
    int32_t            test_fail_loads, test_fail_steps;
} sched_fb_params;


typedef struct sched_params {
    vki_engine_params engine;
    int32_t max_queue;          /* queued (not yet running) requests per model; 0 = 64      */
    double  embed_wait_ms;      /* how long a lone embedding request waits for company; 0 = 5 */
    int32_t embed_token_budget; /* tokens per embedding batch; 0 = the model's n_batch       */
    double  vram_fraction;      /* share of the device's budget models may use; 0 = all. The
                                   budget is the device's (VK_EXT_memory_budget or heap size),
                                   times this, lowered to engine.vram_budget when that is set */
    /* Called once per change of a model's state, error message or file
     * (loading, resident with its backend and bytes, unloaded, failed and
     * why, a reload that failed), with what sched_model_get_info says then.
     * Runs on the scheduler's threads with no scheduler lock held; it may
     * call sched_model_get_info but should return quickly. NULL = none. */
    void  (*on_state)(const sched_model_info *info, void *user);
    void   *on_state_user;
    /* Warm-up (sched_warm.c): requests and loads are recorded in a usage
     * history by hour of the week; with `warmup` a thread plans every
     * warm_interval_s (0 = 300) and loads ahead the models whose chance of
     * a request in the coming interval reaches warm_threshold (0 = 0.5),
     * evicting only idle, unpinned models the history finds colder. */
    bool        warmup;
    double      warm_interval_s;
    double      warm_threshold;
    const char *warm_state_path;  /* history file (copied); NULL = not kept     */
    double    (*clock_s)(void *user); /* wall clock, unix s; NULL = the system's */
    void       *clock_user;
    void      (*on_warm)(const sched_warm_event *ev, void *user); /* may be NULL */
    void       *on_warm_user;
    /* The circuit breakers' clock in ms (tests inject one); NULL = vki_time_ms. */
    double (*breaker_clock)(void *user);
    void   *breaker_clock_user;
    sched_fb_weights fb_weights;  /* 0 = 0.4 / 0.4 / 0.2                                  */
    double           fb_min_score; /* automatic candidates below this are not tried; 0 = 0.5 */
    /* Turns (sched_turn.c): when GPU models that cannot fit together all have
     * work, the resident one gives the device up after a turn of at least
     * quantum_ms and quantum_loads x the larger load time (a moving average
     * of the loads alone; a swap costs a load), weighed by class and queue
     * age but never below quantum_loads loads. 0 = 2000 ms and 4. */
    double  quantum_ms;
    double  quantum_loads;
    /* A model whose turn ended lets its running generations finish for
     * turn_drain_ms (0 = 1000), then pauses the rest at a step boundary:
     * they queue again and resume (their tokens re-fed) at its next turn. */
    double  turn_drain_ms;
    /* The device arbiter (sched_arbiter.c): one order of decode steps, prompt
     * chunks and embedding batches for every model on a device. A prompt or
     * an embedding batch is cut into chunks of at most arb_chunk_tokens
     * (0 = 64); a waiting step rises one class per arb_aging_ms (0 = 500);
     * after an interactive step lower classes wait arb_hold_ms (0 = 2; < 0:
     * none) for that model's next step. */
    int32_t arb_chunk_tokens;
    double  arb_aging_ms;
    double  arb_hold_ms;
    /* The embedding result cache (emb_cache.c), shared by every embedding
     * model: at most this many bytes of keys and vectors, least recently used
     * first out; 0 = off. A text whose vector is cached (same model and file,
     * pooling, normalisation and token ids) is answered from it at submit; a
     * request whose texts all hit ends at once, without queueing. */
    uint64_t emb_cache_bytes;
} sched_params;

sched_params sched_default_params(void);

typedef struct sched_model_params {
    const char      *id;       /* copied; unique                                        */
    const char      *path;     /* copied                                                */
    sched_kind       kind;     /* the load fails when the file is the other kind         */
    vki_model_params mp;       /* backend, n_ctx, n_seq_max (progress is the scheduler's) */
    bool             has_keep_alive; /* else the model stays loaded once loaded            */
    double           keep_alive_ms;  /* idle time before it is unloaded; 0 = as soon as idle */
    bool             pin;            /* never evicted for another model                    */
    bool             fallback_cpu;   /* load on the CPU when the GPU budget cannot hold it */
    bool             on_demand;      /* not loaded at start: the first request loads it
                                        (implied by a keep_alive of 0)                   */
    sched_fb_params  fb;             /* fallback chain, capabilities, breaker            */
    /* Chat models keep each finished sequence's KV in its slot and start a
     * prompt that begins with those tokens after them (sched_prefix.c);
     * true turns that off (config `prefix_reuse: false`). */
    bool             no_prefix_reuse;
} sched_model_params;

/* Creates a scheduler with no models. INVALID_ARGUMENT, OUT_OF_MEMORY. */
vki_status sched_create(const sched_params *p, scheduler **out);
/* Cancels everything queued or running (finished with VKI_ERR_CANCELLED),
 * stops loads and workers and frees the models. Requests the caller still
 * holds stay valid until sched_request_release. NULL is a no-op. */
void       sched_destroy(scheduler *s);
/* The first half of destroy: cancels and joins, frees nothing. Lets a server
 * wake its waiting connections before it stops them. Idempotent. */
void       sched_shutdown(scheduler *s);

/* The most models a scheduler holds over its life: a removed model keeps
 * its slot (an index a request holds must stay valid), so adds after that
 * many are refused until a restart. */
#define SCHED_MAX_MODELS 256

/* Adds a model and starts its thread, which reads the file's header and
 * tokenizer (then requests can queue) and loads the model at once when it
 * fits the budget without evicting anything (unless on_demand or a
 * keep_alive of 0); otherwise the first request loads it. Returns at once.
 * Safe while serving, from any thread: the model gets the next index
 * (sched_n_models() - 1 after it), and indices already handed out keep
 * their meaning. The id of a model being removed may be used again.
 * INVALID_ARGUMENT (duplicate or empty id), OUT_OF_MEMORY (also: all
 * SCHED_MAX_MODELS slots used), CANCELLED (shut down). */
vki_status sched_add_model(scheduler *s, const sched_model_params *mp);
/* Removes model i; returns at once. From now on sched_find does not see
 * it and new requests for it fail with NOT_FOUND ("being removed"), and it
 * is no fallback candidate; requests already accepted (queued or running)
 * finish. Then it unloads (a reload in progress is waited for and thrown
 * away) and its slot is retired: info.removed, never reused. Its file and
 * tokenizer stay open until sched_destroy (callers may hold them). Safe
 * while serving. NOT_FOUND (no such index, or already removed). */
vki_status sched_remove_model(scheduler *s, int32_t i);
/* Applies the settings that can change while model i serves, from p (id,
 * path, kind and mp are ignored; those need sched_reload_model or a remove
 * and an add): keep_alive, pin, fallback_cpu and the fallback settings
 * (fb: chain, capabilities, languages, compatibility; breaker and test_fail
 * are kept). Requests running keep going. NOT_FOUND, OUT_OF_MEMORY. */
vki_status sched_model_update(scheduler *s, int32_t i, const sched_model_params *p);

int32_t sched_n_models(const scheduler *s);
/* The index of model `id`, or -1 (also for a model being removed). */
int32_t sched_find(const scheduler *s, const char *id);

struct sched_model_info {
    const char *id, *path;  /* valid until sched_destroy                         */
    sched_kind  kind;
    sched_state state;
    char        error[1024]; /* why it failed (FAILED), or why the last load did not
                               happen (UNLOADED after a refused load); else ""   */
    bool        can_queue;  /* requests are accepted (header and tokenizer read) */
    bool        reloading;  /* a sched_reload_model is in progress               */
    bool        removing;   /* sched_remove_model: draining, refusing new requests */
    bool        removed;    /* and done: unloaded, its slot retired             */
    uint64_t    generation; /* files it switched to (sched_reload_model); 0 = the first */
    bool        started;    /* its start-up is over: it has been in a state other
                               than loading (a later load is on demand)          */
    bool        pin, fallback_cpu;
    double      keep_alive_ms; /* -1 = forever                                   */
    double      load_ms;    /* how long the last load took (not the wait before) */
    double      idle_ms;    /* since the last request started or ended           */
    uint64_t    est_bytes;  /* estimated device bytes (sched_resid.c)            */
    uint64_t    bytes;      /* resident: what it holds on its backend; else 0    */
    int32_t     n_ctx, n_seq_max; /* resident                                    */
    char        backend[128];     /* resident                                    */
    vki_status  fail_status;      /* FAILED: why (NOT_FOUND: the file is missing) */
    sched_breaker_state breaker;
    double      breaker_retry_s;  /* open: until the probe may try               */
    int32_t     breaker_failures; /* failures in the window now                   */
    uint64_t    breaker_trips;    /* times it opened                              */
};

void sched_model_get_info(const scheduler *s, int32_t i, sched_model_info *out);
/* Replaces model i's file by path, keeping its id and settings; returns at
 * once. When the model is resident and the budget holds both, the new one
 * loads beside the old, which keeps serving; then the old one admits
 * nothing more, finishes what it runs, and the new one takes over (no
 * request waits for a load). Otherwise the old one drains and unloads
 * first, then the new one loads (evicting if it must) while requests wait
 * in the queue. The new file must be the same kind with the same
 * tokenizer: queued requests keep their token ids (ids outside the new
 * vocabulary, or embeddings of another width, fail). A reload that fails
 * leaves the old model serving, with the reason in info.error.
 * NOT_FOUND, INVALID_ARGUMENT (no path, or a reload in progress),
 * UNSUPPORTED (the model failed or is still being opened), OUT_OF_MEMORY. */
vki_status sched_reload_model(scheduler *s, int32_t i, const char *path);

/* Runs the warm-up planner once now (the thread does it every interval):
 * preloads what it decides, telling on_warm. For tests with an injected
 * clock, and for a caller that wants a plan at once. INVALID_ARGUMENT,
 * OUT_OF_MEMORY. */
vki_status sched_warm_tick(scheduler *s);

/* Waits up to timeout_ms (-1: forever) until no model is loading; true when
 * every model is resident. */
bool sched_wait_loaded(scheduler *s, int timeout_ms);
/* Waits up to timeout_ms (-1: forever) until model i is in state `want`. */
bool sched_wait_state(scheduler *s, int32_t i, sched_state want, int timeout_ms);
/* The model's file (metadata, chat template) and tokenizer, which stay open
 * while the weights come and go: NULL until info.can_queue. Valid until
 * sched_destroy; the const calls may be used from any thread. */
const vki_model_file *sched_model_file(const scheduler *s, int32_t i);
const vki_tokenizer  *sched_model_tokenizer(const scheduler *s, int32_t i);

/* The device budget and what is held against it. */
typedef struct sched_resid_info {
    uint64_t budget;   /* bytes; 0 when there is no Vulkan device          */
    uint64_t used;     /* bytes held or reserved by GPU-resident models    */
    char     device[256]; /* the budget's Vulkan device; "" when none      */
} sched_resid_info;
void sched_get_resid_info(scheduler *s, sched_resid_info *out);

/* What a request needs of a fallback candidate (sched_fallback_candidates). */
typedef struct sched_needs {
    uint32_t caps;     /* SCHED_CAP_* the request uses (beyond its kind)           */
    int32_t  n_tokens; /* prompt + completion tokens it expects; 0 = unknown        */
    int32_t  n_embd;   /* embeddings: the width it must keep (exact); 0 = any        */
} sched_needs;

/* One model as sched_fallback_score sees it. */
typedef struct sched_fb_model {
    sched_kind  kind;
    uint32_t    caps;      /* declared SCHED_CAP_* (the kind's own bit included) */
    const char *languages; /* comma-separated; NULL = none                     */
    int32_t     n_ctx;     /* 0 = not known yet                                */
    int32_t     n_embd;    /* embedding width; 0 = not known yet                */
} sched_fb_model;

/* The score of serving `need` (of a request for `from`) on `to`, in [0, 1]:
 * w.declared x declared (the matrix's entry) + w.capabilities x overlap
 * (Jaccard of capability bits and languages, averaged with the share of
 * from's context to has) + w.request x the share of the request's needs to
 * meets (capabilities asked, context for n_tokens). -1 when `to` cannot
 * serve it at all: another kind, or embeddings of another width. */
double  sched_fallback_score(const sched_fb_model *from, const sched_fb_model *to, double declared,
                             const sched_needs *need, const sched_fb_weights *w);
/* Where a request for model i may go when i cannot serve it, in order: its
 * chain (ids that exist, are not i and can serve the kind), then, with
 * auto_candidates, the other models scoring at least fb_min_score, best
 * first. Writes up to max indices and their scores (chain entries too);
 * returns how many. */
int32_t sched_fallback_candidates(scheduler *s, int32_t i, const sched_needs *need, int32_t *out, double *score,
                                  int32_t max);
/* A model's fallback chain as configured (for /v1/models): entry k of its
 * explicit chain, NULL past the end. Valid until sched_destroy. */
const char *sched_fallback_chain_id(const scheduler *s, int32_t i, int32_t k);
/* The expected time in ms from submitting a request to model i now to its
 * end: the measured service time (moving average) times the rounds of
 * slots the requests ahead fill, plus the last load time when the model is
 * not resident. 0 when nothing was measured yet (no estimate). */
double  sched_eta_ms(scheduler *s, int32_t i);

/* ===== Requests ========================================================== */

/* Submits a generation to a model that can queue (any state but FAILED once
 * its header is read; an unloaded model starts loading). The prompt is tokenized here (gp->add_special,
 * gp->parse_special), so a prompt that does not fit the context fails now.
 * deadline_ms: on the vki_time_ms clock, 0 = none. On success *out holds a
 * request the caller must sched_request_release. On VKI_ERR_QUEUE_FULL
 * *eta_s says when to retry (from measured service times); on success it
 * is the request's expected wait before it starts (sched_request_queue_info).
 * NOT_FOUND (index), UNSUPPORTED (failed or still opening, or an embedding model),
 * INVALID_ARGUMENT, QUEUE_FULL, CANCELLED (shutting down), OUT_OF_MEMORY,
 * DEVICE_LOST with *eta_s > 0 (the model's circuit breaker is open, or its
 * half-open probe is running: retry after *eta_s). */
vki_status sched_submit_generate(scheduler *s, int32_t model, const char *prompt, const vki_generate_params *gp,
                                 sched_prio prio, double deadline_ms, sched_request **out, double *eta_s);
/* The same for a rendered chat prompt: with gp->parse_special, special
 * tokens are parsed everywhere but in the literal byte ranges (the messages'
 * content, from vki_chat_apply_spans), which stay text whatever they hold. */
vki_status sched_submit_generate_spans(scheduler *s, int32_t model, const char *prompt, const vki_text_span *literal,
                                       size_t n_literal, const vki_generate_params *gp, sched_prio prio,
                                       double deadline_ms, sched_request **out, double *eta_s);

/* What one generation request runs: a text prompt (tokenized as
 * sched_submit_generate_spans does) or token ids, and how many choices are
 * sampled from it. The prompt is evaluated once; its KV rows are copied to
 * the other choices' sequences, so a request holds n_choices of the model's
 * n_seq_max sequences and waits until that many are free. Choice j samples
 * with gp->seed + j. */
typedef struct sched_gen_input {
    const char          *prompt;    /* NULL: use ids                          */
    const vki_text_span *literal;   /* with prompt: as _spans; may be NULL    */
    size_t               n_literal;
    const int32_t       *ids;       /* without prompt: ids as given (no BOS)  */
    int32_t              n_ids;
    int32_t              n_choices; /* 0 = 1; at most the model's n_seq_max  */
} sched_gen_input;

/* sched_submit_generate for a sched_gen_input. INVALID_ARGUMENT also for
 * n_choices above the model's n_seq_max (the message names the limit) and
 * ids outside the vocabulary; otherwise the same returns. */
vki_status sched_submit_generate_input(scheduler *s, int32_t model, const sched_gen_input *in,
                                       const vki_generate_params *gp, sched_prio prio, double deadline_ms,
                                       sched_request **out, double *eta_s);

/* Submits texts to embed (tokenized here, each must fit the model). The
 * result is [n_texts][n_embd], L2-normalised, pooled as the model says.
 * With the embedding cache on (sched_params.emb_cache_bytes), texts found
 * there take their stored vector (byte-identical to what the model gives);
 * only the others are queued and embedded. When all are found the request
 * is done on return: it takes no queue place and no slot (a full queue, a
 * busy or unloaded model, an open breaker do not refuse it), *eta_s is 0.
 * Same returns as sched_submit_generate (UNSUPPORTED: not an embedding model). */
vki_status sched_submit_embed(scheduler *s, int32_t model, const char *const *texts, int32_t n_texts,
                              sched_prio prio, double deadline_ms, sched_request **out, double *eta_s);

typedef struct sched_result {
    bool        done;
    vki_status  status;        /* when done                                  */
    const char *error;         /* when done with an error; valid until release */
    int32_t     n_prompt;      /* prompt tokens (all texts for embeddings)   */
    int32_t     n_generated;   /* summed over the choices                  */
    bool        stopped_by_eos, stopped_by_string; /* choice 0's            */
    uint64_t    start_order;   /* 0 while queued; then the order of admission */
    double      queue_ms;      /* submit -> admission; 0 while queued        */
    double      ttft_ms;       /* submit -> first token (generation)         */
    int32_t     n_cached;      /* prompt tokens whose KV a slot already held
                                  (prefix reuse; not evaluated again)        */
} sched_result;

/* Waits up to timeout_ms (-1: forever, 0: not at all) until the request has
 * text (choice 0's) past byte `from` or is done, then copies text [from, end) into
 * *chunk (malloc'd, NUL-terminated; NULL when there is none) and the state
 * into *res. The text is whole UTF-8 at every length it is read at.
 * A caller that waits in a loop must move `from` past what it has read:
 * with a fixed `from` it returns at once once there is text, and the loop
 * spins on a core the models need (on a 2-core CPU box such loops tripled
 * an interactive stream's per-token latency in test_arbiter).
 * OUT_OF_MEMORY only. */
vki_status sched_request_poll(sched_request *r, size_t from, int timeout_ms, char **chunk, size_t *chunk_len,
                              sched_result *res);
/* One generated token with its log-probabilities (gp.logprobs), as
 * vki_token_event has them. */
typedef struct sched_token {
    int32_t id;
    float   logprob;
    int32_t n_top;
    int32_t text_offset; /* characters of the choice's text before this token */
    int32_t top_ids[VKI_MAX_TOP_LOGPROBS];
    float   top_logprobs[VKI_MAX_TOP_LOGPROBS];
} sched_token;

/* One choice's output read past a point (sched_request_poll_choices). */
typedef struct sched_choice_out {
    size_t       from_text;   /* in: text bytes already read                    */
    int32_t      from_tok;    /* in: tokens already read                        */
    char        *chunk;       /* out: text [from_text, end), malloc'd, or NULL  */
    size_t       chunk_len;
    sched_token *toks;        /* out: tokens [from_tok, end), malloc'd, or NULL;
                                 only with gp.logprobs. A token that ends the
                                 choice by EOS is not listed (its text is none) */
    int32_t      n_toks;
    int32_t      n_generated; /* out: tokens sampled, an ending EOS included    */
    bool         done, stopped_by_eos, stopped_by_string; /* out               */
} sched_choice_out;

/* The number of choices r samples (1 for embeddings). */
int32_t    sched_request_n_choices(const sched_request *r);
/* sched_request_poll for all n (== sched_request_n_choices) choices at once:
 * waits until some choice has text or tokens past its from_* or the request
 * is done, then fills every outs[j]. res->n_generated is the sum over the
 * choices. INVALID_ARGUMENT (n is not the request's count, or an embedding
 * request), OUT_OF_MEMORY (nothing is returned then). */
vki_status sched_request_poll_choices(sched_request *r, int timeout_ms, sched_choice_out *outs, int32_t n,
                                      sched_result *res);

/* Has fn(arg) called each time the request gains output (a token), a choice
 * ends or the request ends,
 * so a caller can wait without a thread (an event loop). fn runs on the
 * scheduler's thread with the request's lock held: it must be quick and
 * must not call into r. fn NULL stops the calls; once this returns, no call
 * is running or will run. Thread-safe; any time before release. */
void sched_request_set_notify(sched_request *r, void (*fn)(void *arg), void *arg);
/* The embeddings of a request that is done with VKI_OK; NULL otherwise.
 * Valid until release. */
const float *sched_request_embeddings(sched_request *r, int32_t *n_texts, int32_t *dim);
/* Asks the worker to stop the request (finished with VKI_ERR_CANCELLED unless
 * it finishes first). Thread-safe; any time before release. */
void sched_request_cancel(sched_request *r);
/* Where the request stood when it was queued: *position requests of its
 * class or a more urgent one were ahead of it, and *eta_s is the expected
 * wait until it starts: the load of its model when it is not resident (and
 * the turn of a model that holds the device), then the queue ahead over
 * the model's slots, from measured load and service times. Either may be NULL. */
void sched_request_queue_info(const sched_request *r, int32_t *position, double *eta_s);
/* Drops the caller's hold (cancelling the request if it is still running).
 * NULL is a no-op. */
void sched_request_release(sched_request *r);

/* ===== Counters ========================================================== */

#define SCHED_N_BUCKETS 14
/* Upper bounds (seconds) of the latency histogram buckets. */
extern const double sched_bucket_s[SCHED_N_BUCKETS];

typedef struct sched_histo {
    uint64_t bucket[SCHED_N_BUCKETS + 1]; /* non-cumulative; the last is +Inf */
    uint64_t count;
    double   sum_s;
} sched_histo;

typedef struct sched_stats {
    int32_t     queued[SCHED_N_PRIO];
    int32_t     active;            /* sequences decoding / requests in a batch */
    uint64_t    finished_ok, failed, cancelled, timed_out, rejected_full;
    uint64_t    prompt_tokens, generated_tokens; /* of requests that finished ok   */
    uint64_t    steps, step_seqs;  /* decode steps, and sequences summed over them */
    sched_histo ttft;              /* submit -> first token                     */
    sched_histo token_latency;     /* per generated token: its decode step      */
    sched_histo request;           /* submit -> done, successful requests       */
    double      service_ema_ms;    /* start -> done, moving average             */
    uint64_t    loads;             /* loads that succeeded (GPU or CPU)         */
    uint64_t    evictions;         /* unloaded to make room for another model   */
    uint64_t    idle_unloads;      /* unloaded by keep_alive                    */
    uint64_t    fallbacks;         /* loaded on the CPU because the GPU was full */
    uint64_t    refused_loads;     /* loads refused: no room and no fallback    */
    uint64_t    swaps;             /* reloads applied (sched_reload_model)      */
    uint64_t    breaker_failures;  /* failures the breaker counted              */
    uint64_t    breaker_reloads;   /* unloaded when the breaker opened (reloaded by the probe) */
    uint64_t    yields;            /* turns ended: unloaded for a waiting model  */
    uint64_t    paused;            /* generations paused at a turn's end (resumed later) */
    uint64_t    arb_grants;        /* device steps granted by the arbiter       */
    double      arb_wait_ms;       /* time those steps waited for the device    */
    uint64_t    emb_cache_hits;    /* texts answered from the embedding cache   */
    uint64_t    emb_cache_misses;  /* texts looked up there and embedded        */
    /* Prompt positions of admitted sequences (any outcome, a paused one's
     * re-fed tokens too): run through the model, or found in a slot's KV
     * and skipped (prefix reuse). */
    uint64_t    prompt_evaluated, prompt_reused;
} sched_stats;

void sched_model_get_stats(scheduler *s, int32_t i, sched_stats *out);

/* The embedding result cache as a whole (all models); zeros when it is off. */
typedef struct sched_emb_cache_info {
    uint64_t budget;    /* sched_params.emb_cache_bytes                        */
    uint64_t bytes;     /* held now: keys, vectors and bookkeeping              */
    uint64_t entries;
    uint64_t hits, misses, inserts;
    uint64_t evictions; /* entries dropped for room (not those of a reload)     */
} sched_emb_cache_info;
void sched_get_emb_cache_info(scheduler *s, sched_emb_cache_info *out);

#endif
