/*
 * sched_internal.h: the structures shared by sched.c (models, queues,
 * requests, counters) and the two workers, sched_gen.c (continuous
 * batching) and sched_embed.c (dynamic batching).
 * Locks: the scheduler's `res_mu` (device accounting) may be held while
 * taking a model's `mu`; a model's `mu` guards its queue and state and may
 * be held while taking `st_mu` (counters) or a request's `mu`; never the
 * other way round.
 */
#ifndef VKI_SCHED_INTERNAL_H
#define VKI_SCHED_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "engine/grammar/grammar.h"
#include "engine/gen_seq.h"
#include "engine/sched/sched.h"
#include "engine/sched/warmup.h"

typedef struct sched_model sched_model;

/* ----- sched_prefix.c: prompt-prefix KV reuse (the generation worker's) ----- */

typedef struct mdl_model mdl_model; /* engine/models/model.h */

/* What one KV slot holds: the tokens at positions [0, n) of its sequence. */
typedef struct sched_kv_hist {
    int32_t *ids;  /* [n_ctx]; NULL when reuse is off                     */
    int32_t  n;
    uint64_t used; /* sched_prefix.clock when it was last picked; 0 = never */
} sched_kv_hist;

typedef struct sched_prefix {
    sched_kv_hist *slot;  /* [n_slots] */
    int32_t        n_slots, n_ctx;
    uint64_t       clock;
    bool           on;    /* off: every prompt is evaluated whole (old behaviour) */
} sched_prefix;

vki_status sched_prefix_init(sched_prefix *px, int32_t n_slots, int32_t n_ctx, bool on);
void       sched_prefix_deinit(sched_prefix *px);
/* Prompt tokens of ids[0, n) that slot's cache holds, at most n - 1 (the
 * last is always evaluated for its logits); 0 when off. */
int32_t    sched_prefix_match(const sched_prefix *px, int32_t slot, const int32_t *ids, int32_t n);
/* The free slot (is_free[i]) for a prompt: the longest match, else the
 * least recently used (empty first); -1 when none is free. Marks it used. */
int32_t    sched_prefix_pick(sched_prefix *px, const bool *is_free, const int32_t *ids, int32_t n);
/* Cuts slot's KV to its match with ids and returns how many positions it
 * keeps (0 when a sliding window forbids the cut: the slot is cleared). */
int32_t    sched_prefix_place(sched_prefix *px, mdl_model *mm, int32_t slot, const int32_t *ids, int32_t n);
/* A pass wrote ids[0, n) after what slot held. */
void       sched_prefix_fed(sched_prefix *px, int32_t slot, const int32_t *ids, int32_t n);
/* mdl_kv_seq_copy(src, dst) succeeded: dst holds what src does. */
void       sched_prefix_copy(sched_prefix *px, int32_t src, int32_t dst);
/* The slot's sequence ended: its cache stays for the next prompt when
 * reuse is on and keep (the rows are sound), else it is cleared. */
void       sched_prefix_release(sched_prefix *px, mdl_model *mm, int32_t slot, bool keep);

/* ----- sched_breaker.c: the state machine (pure: the caller passes the time) ----- */

#define SCHED_BREAKER_MAX_FAILURES 64 /* failures remembered for the window */

typedef struct sched_breaker {
    sched_breaker_params p;       /* defaults filled in                          */
    sched_breaker_state  state;
    double   fail_t[SCHED_BREAKER_MAX_FAILURES]; /* ring of the latest failures' times */
    int32_t  n_fail, head;
    double   opened_at;
    bool     probing;             /* half-open: the probe was let through         */
    bool     reloaded;            /* it opened since the last success, so the model
                                     was unloaded and the probe reloads it        */
    uint64_t trips;
} sched_breaker;

typedef enum sched_breaker_verdict {
    SCHED_BREAKER_KEEP = 0,  /* nothing changes                                    */
    SCHED_BREAKER_TRIP,      /* it opened: end what is queued, unload; the probe reloads */
    SCHED_BREAKER_DEAD,      /* it failed again after that reload: the model has failed */
} sched_breaker_verdict;

void                  sched_breaker_init(sched_breaker *b, const sched_breaker_params *p);
/* The state at `now` (open turns half-open once recovery_ms passed). */
sched_breaker_state   sched_breaker_at(sched_breaker *b, double now);
/* May a request go now? true: yes (*probe when it is the half-open probe,
 * whose end decides). false: refused, *retry_ms until it may try. */
bool                  sched_breaker_admit(sched_breaker *b, double now, bool *probe, double *retry_ms);
sched_breaker_verdict sched_breaker_fail(sched_breaker *b, double now);
/* A request succeeded: a half-open breaker closes and forgets. */
void                  sched_breaker_ok(sched_breaker *b);
/* The probe ended without a verdict (cancelled, a client error): the next request probes. */
void                  sched_breaker_probe_end(sched_breaker *b);
/* Failures within the window at `now`. */
int32_t               sched_breaker_recent(const sched_breaker *b, double now);

/* What a model file says before it loads (sched_resid_estimate). */
typedef struct sched_shape {
    int32_t  n_ctx, n_batch, n_embd, n_vocab; /* as mdl_load will set them */
    uint64_t est_bytes;                       /* device bytes estimate      */
} sched_shape;

/* Where a reload (sched_swap.c) stands (model mu). */
typedef enum sched_swap_state {
    SCHED_SWAP_NONE = 0,
    SCHED_SWAP_LOADING,  /* the new file is being opened / loaded beside the old one   */
    SCHED_SWAP_READY,    /* the new model is loaded: drain the old one, then switch      */
    SCHED_SWAP_DRAIN,    /* no room for both (or nothing loaded): drain, then load anew  */
} sched_swap_state;

/* A generation paused at a step boundary when its model's turn ended: the
 * sequence's sampler and text state, and every token its cache held (the
 * prompt, then each sampled token), re-fed when it runs again. */
typedef struct sched_paused {
    gen_seq  g;
    int32_t *feed, n_feed, cap_feed;
} sched_paused;

struct sched_request {
    pthread_mutex_t mu;       /* guards the output half and refs           */
    pthread_cond_t  cv;       /* signalled on new text and on done         */
    int             refs;     /* the caller's and the scheduler's          */
    sched_request  *next;     /* queue link (model mu)                     */
    sched_prio      prio;
    bool            embed;
    atomic_bool     cancel;
    bool            probe;    /* the half-open breaker's probe (sched_breaker.c) */
    double          t_submit, deadline_ms, t_start; /* vki_time_ms clock    */
    int32_t         queue_pos; /* requests ahead of it when it was queued   */
    sched_paused   *paused;    /* queued again after a pause (model mu)       */
    double          eta_ms;    /* its expected wait then (sched_request_queue_info) */
    /* input: generation */
    int32_t            *ids, n_ids;
    vki_generate_params gp;   /* gp.stop points into stops; grammar/json_schema
                                 are NULL: compiled into gram at submit     */
    char              **stops; /* NULL-terminated, owned                    */
    gram_grammar       *gram;  /* owned; NULL = unconstrained               */
    /* input: embeddings, [n_texts] token lists */
    int32_t           **eids, *n_eids, n_texts;
    int32_t            *emiss, n_emiss; /* the texts to embed (not cached): [n_emiss] indices */
    int64_t             etokens;  /* their tokens (the queue's token count)  */
    int32_t             n_choices;
    int32_t             n_live;   /* choices still running (worker only)    */
    /* output (mu) */
    struct sched_choice {
        char           *text;
        size_t          n_text, cap_text;
        sched_token    *toks;     /* [n_toks] with gp.logprobs               */
        int32_t         n_toks, cap_toks;
        int32_t         n_generated;
        bool            done, stopped_by_eos, stopped_by_string;
    }                  *ch;       /* [n_choices]                             */
    float              *emb;  /* [n_texts][dim]                            */
    int32_t             dim;
    sched_result        res;  /* res.error points into err                 */
    char               *err;
    void              (*notify)(void *); /* sched_request_set_notify (mu)    */
    void               *notify_arg;
};

struct sched_model {
    scheduler        *s;
    char             *id, *path;
    sched_kind        kind;
    vki_model_params  mp;
    bool              has_keep_alive, pin, fallback_cpu, on_demand, prefix_reuse;
    double            keep_alive_ms;
    vki_model_file   *file;     /* header + tokenizer, open from the first  */
    vki_tokenizer    *tok;      /* moment to sched_destroy (can_queue)       */
    bool              can_queue;
    sched_shape       shape;
    /* swap (sched_swap.c): the new file's parts until the switch (mu) */
    sched_swap_state  swap;
    pthread_t         swap_thread;
    bool              swap_started;
    bool              swap_installing; /* a ready swap applied, its model not yet
                                          installed: still reloading (install
                                          clears error, which a second reload's
                                          failure must not lose)               */
    char             *swap_path;
    vki_model_file   *swap_file;
    vki_tokenizer    *swap_tok;
    sched_shape       swap_shape;
    vki_model        *swap_md;
    bool              swap_on_gpu;
    uint64_t          swap_gpu_bytes; /* (res_mu) */
    double            swap_load_ms;
    /* what the switches replaced, kept until sched_destroy: callers may hold them */
    struct sched_retired {
        char           *path;
        vki_model_file *file;
        vki_tokenizer  *tok;
    }                *retired;
    int32_t           n_retired;
    pthread_t         thread;   /* loads, runs the worker, unloads; repeats  */
    bool              thread_started;
    pthread_mutex_t   mu;
    pthread_cond_t    cv;       /* queue changed, or stop                  */
    pthread_cond_t    state_cv; /* state changed                           */
    sched_state       state;
    bool              started;  /* has left its first loading state (mu)     */
    char              error[1024];
    /* what the on_state hook was last told (mu): it hears each change once */
    bool              told;
    sched_state       told_state;
    const char       *told_path;
    char              told_error[1024];
    double            load_ms;  /* the last load (mu)                       */
    double            load_ema_ms; /* loads, moving average: turns and ETAs (mu) */
    vki_model        *md;       /* resident: owned                          */
    bool              evict;    /* another model asked for the room (mu)    */
    bool              preload;  /* warm-up asks for a load ahead of use (mu) */
    bool              yield;    /* its turn is over: admit nothing new, drain, unload (mu) */
    double            t_yield;  /* when it was asked to (mu): older requests still start */
    double            t_resident; /* when it was installed (mu)             */
    sched_prio        run_prio; /* the most urgent class running now (mu)  */
    double            step_ema_ms; /* a step (decode or batch), moving average (mu) */
    double            drain_ema_ms; /* a yield to the worker's end, moving average (mu) */
    double            want_since; /* waiting for device room since; 0 = not (res_mu) */
    uint64_t          want_bytes; /* and for how many bytes (res_mu)        */
    struct sched_arb *arb;      /* the arbiter of the device it runs on (set at install) */
    sched_prefix      px;       /* what each KV slot holds (generation worker only) */
    double            t_used;   /* last admission or end (mu)               */
    double            freq;     /* admissions, decayed (sched_resid.c) (mu) */
    double            t_freq;   /* when freq was last decayed (mu)          */
    uint64_t          gpu_bytes; /* held or reserved on the device (res_mu)  */
    sched_request    *head[SCHED_N_PRIO], *tail[SCHED_N_PRIO];
    int32_t           n_queued[SCHED_N_PRIO];
    int64_t           queued_tokens; /* embeddings: tokens waiting           */
    int32_t           n_active;
    int32_t           n_slots;  /* sequences a step can hold (1 for embeddings) */
    atomic_bool       stop;
    pthread_mutex_t   st_mu;
    sched_stats       st;       /* (st_mu); queued/active filled on read   */
    vki_status        fail_status; /* FAILED: why (mu)                       */
    /* fallback settings, copied (sched_fallback.c); replaced whole by
     * sched_model_update, the old ones kept until sched_destroy (readers
     * hold no lock) */
    struct sched_fb {
        char   **chain, *languages, **compat_ids;
        double  *compat;
        int32_t  n_chain, n_compat;
        uint32_t caps;
        bool     auto_candidates;
        struct sched_fb *older;   /* the ones it replaced */
    }                *_Atomic fb;
    /* sched_remove_model: set once (under mu); the thread drains what was
     * accepted, unloads, and the slot is retired, never reused */
    atomic_bool       removing;
    bool              removed;    /* retired: nothing left to run (mu)      */
    bool              thread_done; /* the model thread has returned (mu)    */
    sched_breaker     brk;      /* (st_mu)                                  */
    int32_t           test_fail_loads, test_fail_steps; /* (st_mu)          */
    bool              brk_unload; /* the breaker opened: unload (mu)        */
    /* the embedding cache's view of the model (mu): vectors of one
     * generation come from one file on one backend */
    uint64_t          emb_gen;      /* from s->emb_gen_next */
    int32_t           emb_pooling;  /* of that generation; -1 = not loaded in it yet */
    int32_t           emb_backend;  /* vki_backend_kind of the last install; -1 = none */
    uint64_t          emb_file[4];  /* the file's device, inode, size, mtime (ns) then */
};

/* One device's order of work (sched_arbiter.c): every step of every model
 * on the device passes it, most urgent class first, then the oldest. */
typedef struct sched_arb_waiter sched_arb_waiter;
typedef struct sched_arb {
    pthread_mutex_t   mu;
    pthread_cond_t    cv;
    bool              held;
    sched_prio        last_prio;  /* of the step that released last        */
    const void       *last_owner; /* its model: it may come back in hold_ms */
    double            t_release;
    sched_arb_waiter *waiters;
    double            aging_ms, hold_ms;
} sched_arb;

struct scheduler {
    sched_params     p;
    vki_engine      *eng;
    /* [SCHED_MAX_MODELS], allocated once: a slot never moves or is reused,
     * so an index a request holds stays valid while models are added at run
     * time. n_models grows under res_mu (and add_mu); readers need no lock. */
    sched_model    **models;
    _Atomic int32_t  n_models;
    pthread_mutex_t  add_mu;     /* add, remove, update and shutdown, one at a time */
    atomic_uint_fast64_t order;  /* admission counter                       */
    atomic_uint_fast64_t emb_gen_next; /* embedding-cache generations, unique across
                                          models: an id removed and added again
                                          never meets its old entries */
    bool             shut;
    bool             has_gpu;    /* AUTO models go to Vulkan (as api.c decides) */
    uint64_t         budget;     /* device bytes models may hold; 0 = no device */
    char             dev_name[256]; /* that device's name; "" = no device         */
    pthread_mutex_t  res_mu;     /* gpu_bytes of every model                    */
    pthread_cond_t   res_cv;     /* a model unloaded or refused to             */
    /* warm-up (sched_warm.c) */
    pthread_mutex_t  warm_mu;    /* the history, dirty, stop                   */
    pthread_cond_t   warm_cv;
    warm_history     warm;
    char            *warm_path;  /* the history file; NULL = memory only       */
    bool             warm_dirty, warm_stop, warm_started;
    pthread_t        warm_thread;
    sched_arb        arb_cpu, arb_dev; /* the CPU backend's and the Vulkan device's */
    struct emb_cache *ecache;    /* embedding results; NULL = off (thread-safe) */
};

/* ----- sched.c, for the workers ----- */

/* Pops the most urgent queued request (model mu held); NULL when none. */
sched_request *sched_pop(sched_model *m);
/* Puts r back at the head of its class (model mu held). */
void           sched_push_front(sched_model *m, sched_request *r);
/* Finishes every queued request that was cancelled or whose deadline
 * passed (model mu held). */
void           sched_purge(sched_model *m, double now);
/* Marks r admitted: start time and order (model mu held). */
void           sched_admit(sched_model *m, sched_request *r);
/* Appends choice j's token: its text, its logprobs (when the request asked
 * and the token is not an ending EOS: `record`), and counts it (not under
 * model mu). */
void           sched_emit(sched_model *m, sched_request *r, int32_t j, const vki_token_event *ev, bool record,
                          int32_t text_offset, double now);
/* Marks choice j done with how it stopped (not under model mu). */
void           sched_choice_end(sched_request *r, int32_t j, bool by_eos, bool by_string);
/* Records the end of r (status and message when not OK), wakes its
 * waiters, updates the counters, drops the scheduler's hold. r is gone
 * afterwards as far as the worker is concerned. */
void           sched_finish(sched_model *m, sched_request *r, vki_status st, const char *msg);
/* The status a running request must end with now (cancel, deadline), or VKI_OK. */
vki_status     sched_check(const sched_request *r, double now);
void           sched_histo_add(sched_histo *h, double seconds);
/* Condition variables here wait on CLOCK_MONOTONIC, the vki_time_ms clock. */
void            sched_cond_init(pthread_cond_t *cv);
/* Waits on cv until the vki_time_ms time abs_ms (or a signal). */
void            sched_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, double abs_ms);
/* Calls the on_state hook when m's state, error or file changed since it
 * was last told (no lock held; after the change is made and broadcast). */
void            sched_notify(sched_model *m);

/* Called by an idle worker (model mu held, nothing queued or running):
 * waits for work and returns true when the model should unload now
 * (evicted, or keep_alive passed). */
bool           sched_idle_wait(sched_model *m);

/* The worker loops; return when m->stop is set or the model is to be
 * unloaded (sched_idle_wait), with nothing running. */
void sched_gen_worker(sched_model *m);
void sched_embed_worker(sched_model *m);

/* ----- sched_resid.c ----- */

/* Reads what the file says about shapes (loaded with mp). */
void       sched_resid_estimate(const vki_model_file *f, const vki_tokenizer *tok, const vki_model_params *mp,
                                sched_shape *out);
/* Reserves need bytes into *slot (m->gpu_bytes or m->swap_gpu_bytes)
 * against the budget, evicting other idle models when may_evict.
 * OUT_OF_DEVICE_MEMORY with the reason when it cannot fit. */
vki_status sched_resid_reserve(sched_model *m, uint64_t need, uint64_t *slot, bool may_evict);
/* True when m's model goes to the Vulkan backend under the budget. */
bool       sched_resid_on_gpu(const sched_model *m);
/* vki_model_load of path for m on backend kind (cancelled by m->stop). */
vki_status sched_resid_load_file(sched_model *m, const char *path, vki_backend_kind kind, vki_model **out);
/* The bytes a loaded GPU model holds against the budget. */
uint64_t   sched_resid_gpu_bytes(const vki_model *md);
/* Where the budget comes from: the device list (as api.c chooses). */
void       sched_resid_init(scheduler *s);
/* Loads m's model (on m's thread, no lock held). GPU models reserve their
 * estimate against the budget first; when it does not fit and may_evict,
 * idle unpinned models are asked to unload, lowest score first; when it
 * still does not fit, a model with fallback_cpu loads on the CPU. Without
 * may_evict a load that does not fit returns VKI_ERR_OUT_OF_DEVICE_MEMORY
 * at once. On success *on_gpu says where it went. *load_ms: the time the
 * load itself took (the file to the device), without the wait for room. */
vki_status sched_resid_load(sched_model *m, bool may_evict, vki_model **out, bool *on_gpu, double *load_ms);
/* Device bytes held or reserved by every model, swaps included (res_mu held). */
uint64_t   sched_resid_used(const scheduler *s);
/* Gives back *slot's device bytes (a model of m's was destroyed). */
void       sched_resid_release(sched_model *m, uint64_t *slot);

/* ----- sched_warm.c ----- */

void sched_warm_init(scheduler *s);  /* in create: the history file read     */
void sched_warm_start(scheduler *s); /* the planner's thread, when p.warmup  */
void sched_warm_stop(scheduler *s);  /* joins it and saves the history        */
void sched_warm_free(scheduler *s);
/* Records a request submitted to m / a load of m (any thread, no lock held). */
void sched_warm_note_request(sched_model *m);
void sched_warm_note_load(sched_model *m, double load_ms);
/* ----- sched_arbiter.c ----- */

void       sched_arb_init(sched_arb *a, double aging_ms, double hold_ms);
void       sched_arb_deinit(sched_arb *a);
/* Waits until the device is free and this step (class prio, for model
 * owner) is the most urgent waiting: the lowest class, where a waiter rises
 * one class per aging_ms, ties to the one waiting longest; after a step of
 * a more urgent class, its model gets hold_ms to ask again first. Returns
 * the milliseconds it waited. */
double     sched_arb_acquire(sched_arb *a, sched_prio prio, const void *owner);
void       sched_arb_release(sched_arb *a, sched_prio prio, const void *owner);
/* Runs around one step on m's device (counted in m's stats). */
void       sched_arb_enter(sched_model *m, sched_prio prio);
void       sched_arb_leave(sched_model *m, sched_prio prio);

/* ----- sched_turn.c ----- */

/* The most urgent class m has queued or running, and the submit time of
 * its oldest queued request (0 when none) (model mu held). */
sched_prio sched_turn_urgent(const sched_model *m, double *oldest);
/* With res_mu held, when m needs deficit more bytes and no idle model can
 * give them: if models that hold the device with work of their own (not
 * pinned) can, m waits for a turn: those whose turn has lasted long enough
 * are asked to yield (drain, then unload), idle ones to unload. Returns
 * false when even that cannot make room (m's requests are refused), else
 * true with *wake_ms when to look again. */
bool       sched_turn_ask(sched_model *m, uint64_t deficit, double now, double *wake_ms);
/* With res_mu held: whether m, whose need fits now, should let an older
 * waiter that also fits now go first (one that yielded comes back last). */
bool       sched_turn_defer(const sched_model *m, uint64_t used);
/* Whether o, resident with nothing queued or running, may be evicted now
 * (o's mu held): it has been idle a moment (not between two requests of
 * steady traffic), or its turn is over. */
bool       sched_turn_idle(const sched_model *o, double now);
/* The expected wait (ms) before m can serve a request queued now that
 * would start start_ms after m serves (the queue ahead of it): 0 when m is
 * resident and the request starts within m's turn; else what is left of
 * m's drain, the turns of the models m waits for (holders, then waiters
 * ahead of it), and m's load (*for_turn true when any turn is in it: a
 * wait that cannot be shortened). No lock held. */
double     sched_turn_eta_ms(sched_model *m, double start_ms, bool *for_turn);

/* ----- sched_breaker.c, the model's side (no lock held unless said) ----- */

/* The breakers' clock (sched_params.breaker_clock or vki_time_ms). */
double                sched_breaker_clock(const scheduler *s);
/* Whether a status ends a load or a step as a failure the breaker counts
 * (device, internal, host memory), not as the client's doing. */
bool                  sched_breaker_counts(vki_status st);
/* Counts a failure of m (a load, a step) and returns the verdict. */
sched_breaker_verdict sched_breaker_record(sched_model *m);
/* A failed step or batch (status st, message msg) in m's worker: counted;
 * when the breaker opens, or the model is declared failed, every queued
 * request ends with the reason (written to why) and true is returned: the
 * worker ends what it runs with VKI_ERR_DEVICE_LOST and why, and returns
 * (the model thread unloads it, or stops when it failed). */
bool                  sched_breaker_step_failed(sched_model *m, vki_status st, const char *msg, char *why,
                                                size_t why_size);
/* Tests only: whether this load (or step) is one that test_fail_* makes fail. */
bool                  sched_breaker_test_fail(sched_model *m, bool load);
/* The submit-time check (model mu not held): VKI_OK, or DEVICE_LOST with
 * the seconds to wait in *retry_s. *probe: the request is the probe. */
vki_status            sched_breaker_check(sched_model *m, bool *probe, double *retry_s);
/* A request ended: a success closes a half-open breaker; a probe that ended
 * otherwise lets the next request probe (st_mu held). */
void                  sched_breaker_request_end(sched_model *m, const sched_request *r, vki_status st);

/* ----- sched_ecache.c: the embedding cache in the scheduler ----- */

/* At submit (no lock held): copies the cached vectors of r's texts into
 * r->emb and lists the others in r->emiss (all of them when the cache is
 * off or the model has not been loaded in its current generation);
 * counts hits and misses. */
void sched_ecache_lookup(sched_model *m, sched_request *r);
/* After a batch on m's worker: stores the vectors r's missed texts got. */
void sched_ecache_store(sched_model *m, const sched_request *r, int32_t pooling);
/* m's model was installed (its thread, no lock held): records its pooling;
 * another backend than the last install's (its vectors differ in the last
 * bits), or a file changed in place since then, starts a new generation. */
void sched_ecache_installed(sched_model *m, vki_model *md);
/* m's file was replaced (sched_swap_apply, model mu held): a new
 * generation, and the old one's entries are dropped. */
void sched_ecache_new_generation(sched_model *m);

/* ----- sched_fallback.c ----- */

/* Copies p's fallback settings into a new m->fb (the previous one is kept
 * for readers until sched_fb_free); false when out of memory. */
bool sched_fb_copy(sched_model *m, const sched_fb_params *p);
/* Frees m->fb and every one it replaced (sched_destroy). */
void sched_fb_free(sched_model *m);

/* ----- sched_swap.c ----- */

/* On m's thread with no worker running (old model, if any, in m->md):
 * applies a finished swap. READY: the old model is destroyed, the new one
 * takes its place; returns true (a model is resident, run the worker).
 * DRAIN: the old model (if any) is unloaded and the new file becomes the
 * model's; returns false (load it). */
bool       sched_swap_apply(sched_model *m, vki_model **md, bool *on_gpu, double *load_ms);
/* Joins the swap thread (shutdown, after m->stop is set). */
void       sched_swap_join(sched_model *m);
/* Frees what swaps left: an unapplied new model, the retired files (sched_destroy). */
void       sched_swap_free(sched_model *m);
/* One resident model as the eviction score sees it. */
typedef struct sched_resid_cand {
    bool     evictable;   /* GPU-resident, not pinned, nothing queued or running */
    double   idle_s;      /* since its last request started or ended             */
    double   freq;        /* admissions, halving every 10 minutes                */
    double   reload_ms;   /* its last load time                                  */
    uint64_t bytes;       /* device bytes it holds                               */
} sched_resid_cand;
/* The value of keeping c resident (the formula is at its definition). */
double     sched_resid_score(const sched_resid_cand *c);
/* Chooses evictable candidates, lowest score first, until their bytes reach
 * need: writes their indices to order[] and returns how many (0 when need
 * is 0), or -1 when all evictable ones together are not enough. */
int32_t    sched_resid_pick(const sched_resid_cand *c, int32_t n, uint64_t need, int32_t *order);
/* Counts an admission in m's decayed frequency (model mu held). */
void       sched_resid_touch(sched_model *m, double now);

#endif
