/*
 * sched.h: the scheduler. It owns the loaded models (by id), loads them on
 * background threads (unloaded -> loading -> ready | failed), and serves each
 * from its own worker thread with a bounded three-class priority queue.
 * Generation is continuously batched: up to n_seq_max sequences decode
 * together in one llama_decode, a new request joins at the next step and a
 * finished one leaves. Embeddings are batched dynamically: a few ms or a
 * token budget, then one bert_embed for all. Requests carry a cancel flag and
 * a deadline; a full queue refuses at once with an ETA.
 * Internal (not in vkinfer.h): see engine/sched/README.md for why.
 * Must not: parse HTTP or YAML; block the caller while a model loads.
 */
#ifndef VKI_SCHED_H
#define VKI_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vkinfer.h"

typedef struct scheduler     scheduler;
typedef struct sched_request sched_request;

typedef enum sched_prio {
    SCHED_PRIO_INTERACTIVE = 0, /* served first                     */
    SCHED_PRIO_NORMAL      = 1,
    SCHED_PRIO_BATCH       = 2, /* served when nothing else is queued */
    SCHED_N_PRIO           = 3,
} sched_prio;

typedef enum sched_state {
    SCHED_UNLOADED = 0,
    SCHED_LOADING  = 1,
    SCHED_READY    = 2,
    SCHED_FAILED   = 3,
} sched_state;

typedef enum sched_kind { SCHED_KIND_CHAT = 0, SCHED_KIND_EMBEDDING = 1 } sched_kind;

const char *sched_prio_name(sched_prio p);   /* "interactive", "normal", "batch" */
const char *sched_state_name(sched_state s); /* "unloaded", "loading", ...       */
const char *sched_kind_name(sched_kind k);   /* "chat", "embedding"              */
/* Parse the names above; false when the text is none of them. */
bool sched_prio_parse(const char *name, sched_prio *out);
bool sched_kind_parse(const char *name, sched_kind *out);

typedef struct sched_params {
    vki_engine_params engine;
    int32_t max_queue;          /* queued (not yet running) requests per model; 0 = 64      */
    double  embed_wait_ms;      /* how long a lone embedding request waits for company; 0 = 5 */
    int32_t embed_token_budget; /* tokens per embedding batch; 0 = the model's n_batch       */
} sched_params;

sched_params sched_default_params(void);

typedef struct sched_model_params {
    const char      *id;       /* copied; unique                                        */
    const char      *path;     /* copied                                                */
    sched_kind       kind;     /* the load fails when the file is the other kind         */
    vki_model_params mp;       /* backend, n_ctx, n_seq_max (progress is the scheduler's) */
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

/* Adds a model and starts loading it on its own thread; returns at once.
 * Not thread-safe against other calls: add every model before serving.
 * INVALID_ARGUMENT (duplicate or empty id), OUT_OF_MEMORY. */
vki_status sched_add_model(scheduler *s, const sched_model_params *mp);

int32_t sched_n_models(const scheduler *s);
/* The index of model `id`, or -1. */
int32_t sched_find(const scheduler *s, const char *id);

typedef struct sched_model_info {
    const char *id, *path;  /* valid until sched_destroy                         */
    sched_kind  kind;
    sched_state state;
    char        error[512]; /* why it failed (state FAILED)                      */
    double      load_ms;    /* how long the load took (READY)                    */
    int32_t     n_ctx, n_seq_max; /* READY                                       */
    char        backend[128];     /* READY                                       */
} sched_model_info;

void sched_model_get_info(const scheduler *s, int32_t i, sched_model_info *out);
/* Waits up to timeout_ms (-1: forever) until no model is loading; true when
 * every model is READY. */
bool sched_wait_loaded(scheduler *s, int timeout_ms);
/* The loaded model, NULL unless READY. Valid until sched_destroy; the caller
 * may use the const calls (tokenize, token pieces) from any thread. */
const vki_model *sched_model_handle(const scheduler *s, int32_t i);

/* ===== Requests ========================================================== */

/* Submits a generation. The prompt is tokenized here (gp->add_special,
 * gp->parse_special), so a prompt that does not fit the context fails now.
 * deadline_ms: on the vki_time_ms clock, 0 = none. On success *out holds a
 * request the caller must sched_request_release. On VKI_ERR_QUEUE_FULL
 * *eta_s says when to retry (from measured service times).
 * NOT_FOUND (index), UNSUPPORTED (not READY, or an embedding model),
 * INVALID_ARGUMENT, QUEUE_FULL, CANCELLED (shutting down), OUT_OF_MEMORY. */
vki_status sched_submit_generate(scheduler *s, int32_t model, const char *prompt, const vki_generate_params *gp,
                                 sched_prio prio, double deadline_ms, sched_request **out, double *eta_s);

/* Submits texts to embed (tokenized here, each must fit the model). The
 * result is [n_texts][n_embd], L2-normalised, pooled as the model says.
 * Same returns as sched_submit_generate (UNSUPPORTED: not an embedding model). */
vki_status sched_submit_embed(scheduler *s, int32_t model, const char *const *texts, int32_t n_texts,
                              sched_prio prio, double deadline_ms, sched_request **out, double *eta_s);

typedef struct sched_result {
    bool        done;
    vki_status  status;        /* when done                                  */
    const char *error;         /* when done with an error; valid until release */
    int32_t     n_prompt;      /* prompt tokens (all texts for embeddings)   */
    int32_t     n_generated;
    bool        stopped_by_eos, stopped_by_string;
    uint64_t    start_order;   /* 0 while queued; then the order of admission */
    double      ttft_ms;       /* submit -> first token (generation)         */
} sched_result;

/* Waits up to timeout_ms (-1: forever, 0: not at all) until the request has
 * text past byte `from` or is done, then copies text [from, end) into
 * *chunk (malloc'd, NUL-terminated; NULL when there is none) and the state
 * into *res. The text is whole UTF-8 at every length it is read at.
 * OUT_OF_MEMORY only. */
vki_status sched_request_poll(sched_request *r, size_t from, int timeout_ms, char **chunk, size_t *chunk_len,
                              sched_result *res);
/* The embeddings of a request that is done with VKI_OK; NULL otherwise.
 * Valid until release. */
const float *sched_request_embeddings(sched_request *r, int32_t *n_texts, int32_t *dim);
/* Asks the worker to stop the request (finished with VKI_ERR_CANCELLED unless
 * it finishes first). Thread-safe; any time before release. */
void sched_request_cancel(sched_request *r);
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
    uint64_t    prompt_tokens, generated_tokens;
    uint64_t    steps, step_seqs;  /* decode steps, and sequences summed over them */
    sched_histo ttft;              /* submit -> first token                     */
    sched_histo token_latency;     /* per generated token: its decode step      */
    sched_histo request;           /* submit -> done, successful requests       */
    double      service_ema_ms;    /* start -> done, moving average             */
} sched_stats;

void sched_model_get_stats(scheduler *s, int32_t i, sched_stats *out);

#endif
