/*
 * sched_internal.h: the structures shared by sched.c (models, queues,
 * requests, counters) and the two workers, sched_gen.c (continuous
 * batching) and sched_embed.c (dynamic batching).
 * Locks: a model's `mu` guards its queue and state and may be held while
 * taking `st_mu` (counters) or a request's `mu`; never the other way round.
 */
#ifndef VKI_SCHED_INTERNAL_H
#define VKI_SCHED_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "engine/sched/sched.h"

typedef struct sched_model sched_model;

struct sched_request {
    pthread_mutex_t mu;       /* guards the output half and refs           */
    pthread_cond_t  cv;       /* signalled on new text and on done         */
    int             refs;     /* the caller's and the scheduler's          */
    sched_request  *next;     /* queue link (model mu)                     */
    sched_prio      prio;
    bool            embed;
    atomic_bool     cancel;
    double          t_submit, deadline_ms, t_start; /* vki_time_ms clock    */
    /* input: generation */
    int32_t            *ids, n_ids;
    vki_generate_params gp;   /* gp.stop points into stops                 */
    char              **stops; /* NULL-terminated, owned                    */
    /* input: embeddings, [n_texts] token lists */
    int32_t           **eids, *n_eids, n_texts;
    /* output (mu) */
    char               *text;
    size_t              n_text, cap_text;
    float              *emb;  /* [n_texts][dim]                            */
    int32_t             dim;
    sched_result        res;  /* res.error points into err                 */
    char               *err;
};

struct sched_model {
    scheduler        *s;
    char             *id, *path;
    sched_kind        kind;
    vki_model_params  mp;
    pthread_t         thread;   /* loads, then runs the worker             */
    bool              thread_started;
    pthread_mutex_t   mu;
    pthread_cond_t    cv;       /* queue changed, or stop                  */
    pthread_cond_t    state_cv; /* state changed                           */
    sched_state       state;
    char              error[512];
    double            load_ms;
    vki_model        *md;       /* READY: owned                            */
    sched_request    *head[SCHED_N_PRIO], *tail[SCHED_N_PRIO];
    int32_t           n_queued[SCHED_N_PRIO];
    int64_t           queued_tokens; /* embeddings: tokens waiting           */
    int32_t           n_active;
    int32_t           n_slots;  /* sequences a step can hold (1 for embeddings) */
    atomic_bool       stop;
    pthread_mutex_t   st_mu;
    sched_stats       st;       /* (st_mu); queued/active filled on read   */
};

struct scheduler {
    sched_params     p;
    vki_engine      *eng;
    sched_model    **models;
    int32_t          n_models;
    atomic_uint_fast64_t order;  /* admission counter                       */
    bool             shut;
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
/* Appends generated text and counts the token (not under model mu). */
void           sched_emit(sched_model *m, sched_request *r, const char *text, size_t len, double now);
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

/* The worker loops; return when m->stop is set, with nothing left. */
void sched_gen_worker(sched_model *m);
void sched_embed_worker(sched_model *m);

#endif
