/*
 * service_internal.h: the objects behind vki_service and vki_job (vkinfer.h),
 * shared by the service's files. A service wraps one scheduler
 * (engine/sched/sched.h) and owns one dispatcher thread that runs every
 * callback and every fallback retry; a job is one request as the caller
 * sees it, across the scheduler requests its fallback tries make.
 * Lock order: a scheduler request's lock (held while it notifies) ->
 * svc->mu; job->mu -> a scheduler request's lock. Nothing takes job->mu
 * while holding svc->mu.
 */
#ifndef VKI_SERVICE_INTERNAL_H
#define VKI_SERVICE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "engine/sched/sched.h"
#include "engine/service/service_fallback.h"
#include "vkinfer.h"

#define SVC_MAX_TRIES 16

/* A model state change waiting for the dispatcher (on_state). */
typedef struct svc_state_event {
    vki_service_model_info   info;
    struct svc_state_event *next;
} svc_state_event;

struct vki_service {
    scheduler         *s;
    vki_service_params p;
    pthread_t          thread;
    bool               thread_started;
    pthread_mutex_t    mu;
    pthread_cond_t     cv;       /* the dispatcher's wake-up; also "a job ended" */
    vki_job           *ready;    /* jobs with news, each holding a reference     */
    vki_job          **ready_tail;
    svc_state_event   *events, **events_tail;
    /* Jobs whose models are all still opening their files: tried again at
     * the next state change (or their deadline), each holding a reference. */
    vki_job           *parked;
    bool               shutting;
    int32_t            n_live;   /* jobs not yet ended                            */
    bool               stop;
    /* [from][to][reason]: requests for `from` served by `to`; n_fb =
     * SCHED_MAX_MODELS, allocated at create (adds never resize it). */
    _Atomic uint64_t  *fb_count;
    int32_t            n_fb;
    /* `auto` (service_route.c): set once by vki_service_set_router; NULL
     * until then. The models' quality ([SCHED_MAX_MODELS], under mu) ranks
     * a route's equally loaded models. */
    struct svc_router *_Atomic router;
    double             quality[SCHED_MAX_MODELS];
};

struct vki_job {
    vki_service       *svc;
    atomic_int         refs;     /* the caller's, the dispatcher's, the ready list's */
    pthread_mutex_t    mu;
    pthread_cond_t     cv;
    /* The request, kept for the fallback tries. */
    bool               embed;
    char              *prompt;
    vki_generate_params gp;      /* its strings point into owned copies below    */
    char             **stop;
    char              *grammar, *json_schema;
    char             **texts;
    int32_t            n_texts;
    vki_request_params rp;
    sched_prio         prio;
    double             deadline;  /* absolute, vki_time_ms clock; 0 = none      */
    int32_t            order[SVC_MAX_TRIES], n_try, k; /* candidates, the next try */
    int32_t            requested, served;
    int                first_reason;          /* why the first try failed; -1 */
    bool               first_model_failed;    /* its model was FAILED then    */
    vki_status         first_status;
    char               first_msg[1200];
    double             first_retry_ms;
    /* Under mu. */
    sched_request     *r;
    atomic_bool        cancelled;
    bool               queued;    /* in svc->ready (under svc->mu)             */
    bool               end_now;   /* refused at once: the dispatcher just ends it */
    bool               ended;     /* the dispatcher is through with it         */
    bool               done;      /* on_done returned: vki_job_wait wakes       */
    bool               in_callback; /* on_token or on_done is running             */
    vki_job_result     res;
    char              *text;      /* choice 0's text so far                     */
    size_t             text_len, text_cap;
    float             *emb;
    char               message[1200];
    char               model_id[256], requested_id[256];
    vki_job           *next;      /* svc->ready                                 */
    vki_job           *next_parked; /* svc->parked                              */
    struct svc_route_wait *route; /* vki_service_route's decision; under mu     */
    /* Generation jobs (service_chat.c): choices, a chat rendered per
     * candidate, ids in place of a prompt; strings point into owned copies. */
    vki_gen_params     xp;
    bool               chat;
    vki_chat_message  *msgs;      /* [n_msgs], role and content owned         */
    int32_t            n_msgs;
    char              *tools_json, *chat_template;
    int32_t           *ids;       /* [n_ids] when prompt is NULL              */
    int32_t            n_ids;
    atomic_bool        stay;      /* vki_job_stay: no further candidate         */
    atomic_bool        news_off;  /* released: no renderer or hook runs any more */
    /* The wake-up hook (xp.on_news, vki_job_set_news): written under mu with
     * the request's notify stopped, read under the request's lock. */
    void             (*news_fn)(void *user);
    void              *news_user;
    /* Under mu: tries submitted (vki_job_poll starts over at a new one), and
     * the last try's request, kept after the end for vki_job_poll. */
    int32_t            n_submits;
    sched_request     *done_r;
    /* vki_job_poll's cursors and what its last call returned (service_poll.c). */
    sched_choice_out  *poll_outs;  /* [n_choices]                              */
    char             **poll_text;  /* [n_choices]                              */
    vki_job_token    **poll_toks;  /* [n_choices]                              */
    int32_t            poll_try;
};

/* The scheduler's kind for a public one (AUTO: chat, the zero default of
 * a config entry not yet resolved, as the scheduler's own zero was). */
static inline sched_kind svc_sched_kind(vki_model_kind k)
{
    return k == VKI_MODEL_KIND_EMBEDDING ? SCHED_KIND_EMBEDDING : SCHED_KIND_CHAT;
}

/* service_job.c */
void svc_job_process(vki_job *j);
/* The route decision a job carries (vki_service_route's); owned by it. */
void svc_job_set_route(vki_job *j, struct svc_route_wait *w);
struct svc_route_wait *svc_job_route(vki_job *j);

void svc_job_unref(vki_job *j);
/* Why the try in flight (or the one that served) is not the requested model's. */
vki_fallback_reason svc_job_fallback(const vki_job *j);
/* What vki_service_generate, _chat and _generate_ex share: the request's
 * checks, the model by id (or the first of the kind) or by the candidates,
 * a new job, its input copied, and the submit along the plan (which frees
 * the job when it fails). */
vki_status svc_check_request(vki_service *svc, const char *model, sched_kind kind, const vki_request_params *rp,
                             const char *fn, int32_t *i);
vki_job   *svc_job_new(vki_service *svc, bool embed, const vki_request_params *rp, int32_t model);
bool       svc_job_copy_gen(vki_job *j, const char *prompt, const vki_generate_params *gp);
void       svc_job_free(vki_job *j);
vki_status svc_job_submit(vki_service *svc, vki_job *j, const vki_request_needs *need, vki_job **out);

/* service_chat.c */
/* Submits j's generation to model i: the chat rendered with i's template
 * first. *render_failed: the status is the renderer's (the job ends). */
vki_status svc_submit_gen(vki_job *j, int32_t i, sched_request **r, double *eta_s, bool *render_failed);
/* Frees what service_chat.c and service_poll.c added to a job. */
void       svc_gen_free(vki_job *j);
/* The model's file and tokenizer for a renderer of its own (vkinfer
 * serve's): valid until vki_service_destroy (a reload retires the old ones,
 * never frees them); NULL while the model has none open. */
const vki_model_file *svc_model_file(vki_service *svc, int32_t i);
const vki_tokenizer  *svc_model_tokenizer(vki_service *svc, int32_t i);
/* service.c */
/* Parks j until a model changes state (service_internal.h: parked). */
void svc_park(vki_service *svc, vki_job *j);
void svc_push_ready(vki_service *svc, vki_job *j);
void svc_fb_count_add(vki_service *svc, int32_t from, int32_t to, int reason);
/* True on the dispatcher thread (a callback). */
bool svc_on_dispatcher(const vki_service *svc);
/* Adds a model from scheduler params (the config's path: test hooks too). */
/* service_admin.c: add / update from scheduler params (the config's path,
 * which carries its test hooks). */
vki_status svc_add_sched_model(vki_service *svc, const sched_model_params *mp);
vki_status svc_update_sched_model(vki_service *svc, int32_t i, const sched_model_params *mp);
/* service_route.c: the dispatcher embeds the routes' examples when their
 * model is ready (svc_route_tick, after each round of state changes and
 * jobs, and again at svc_route_due: a retry's time, 0 = none). */
void   svc_route_tick(vki_service *svc);
double svc_route_due(const vki_service *svc);
void   svc_router_free(vki_service *svc);
void   svc_route_wait_free(struct svc_route_wait *w);
void   svc_set_quality(vki_service *svc, int32_t i, double quality);
void svc_info_from_sched(const sched_model_info *si, vki_service_model_info *out, scheduler *s, int32_t i);

#endif
