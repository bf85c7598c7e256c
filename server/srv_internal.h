/*
 * srv_internal.h: what the server's files share: the server and connection
 * state, the route table, the one status -> HTTP table, and the response
 * helpers. http.c owns the daemon and the request lifecycle, conn.c the
 * connections' limits and watchdog, wait.c the threadless waits,
 * respond.c the answers and counters, fields.c the shared request fields;
 * routes_gen.c the generation routes (JSON and SSE); routes_info.c the
 * others.
 */
#ifndef VKI_SRV_INTERNAL_H
#define VKI_SRV_INTERNAL_H

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "engine/tokenizer/chat_template.h"
#include "server/log.h"
#include "server/server.h"
#include "server/tool_calls.h"

typedef enum srv_route {
    SRV_ROUTE_HEALTH = 0,
    SRV_ROUTE_MODELS,
    SRV_ROUTE_COMPLETIONS,
    SRV_ROUTE_CHAT,
    SRV_ROUTE_EMBEDDINGS,
    SRV_ROUTE_METRICS,
    SRV_ROUTE_STATUS,     /* GET /v1/system/status                    */
    SRV_ROUTE_UI,         /* GET / and /ui: the status page (no key)  */
    SRV_ROUTE_ADMIN,      /* POST /admin/reload, POST /admin/models/{id}/reload (reload.c) */
    SRV_ROUTE_GENERATE,   /* the legacy POST /generate (routes_legacy.c) */
    SRV_ROUTE_OTHER,      /* unknown paths, counted together */
    SRV_N_ROUTES,
} srv_route;

extern const char *const srv_route_path[SRV_N_ROUTES];
/* The method each route takes (NULL for SRV_ROUTE_OTHER): 405's Allow. */
extern const char *const srv_route_method[SRV_N_ROUTES];

/* The HTTP statuses the server answers with, for the counters. */
#define SRV_N_CODES 15
extern const int srv_codes[SRV_N_CODES];

/* A socket kept open after its body was cut off, so that the client reads
 * the 413 before any reset (linger.c). */
#define SRV_LINGER_MAX 64
typedef struct srv_linger_fd { int fd; double t0; size_t dropped; } srv_linger_fd;

struct srv_server {
    /* The settings the routes read: cmd_serve's at start, then each hot
     * reload publishes a new one (entry i = the scheduler's model i); the
     * old ones stay valid until srv_stop (reload.c). */
    const srv_config *_Atomic cfg;
    pthread_mutex_t       reload_mu;  /* one reload (or model reload) at a time */
    srv_config_fn         cfg_fn;     /* where a reload reads the config (reload_mu) */
    void                 *cfg_user;
    struct srv_retired_cfg *retired;  /* what reloads published (reload.c)    */
    vki_service          *svc;
    struct MHD_Daemon    *d;
    char                 *api_key;    /* NULL = no auth                   */
    srv_log              *log;        /* borrowed; NULL = no log lines    */
    uint16_t              port;
    time_t                created;
    atomic_uint_fast64_t  next_id;    /* request and response ids         */
    atomic_uint_fast64_t  count[SRV_N_ROUTES][SRV_N_CODES];
    atomic_uint_fast64_t  disconnects; /* clients gone before their answer ended */
    atomic_uint_fast64_t *fb_count;   /* [from][to][reason] fallbacks (fallback.c) */
    atomic_uint_fast64_t  evictions;  /* slow or idle connections closed to make room */
    atomic_int            in_flight;  /* requests from their headers to their end */
    struct srv_window    *window;     /* the last minutes' traffic (routes_status.c) */
    /* borrowed; NULL = none. Atomic: srv_set_events runs while the pool serves. */
    struct srv_events *_Atomic events;
    atomic_bool           draining;   /* srv_quiesce: no new connections or requests */
    int                   listen_fd;  /* after srv_quiesce, closed after the daemon stops */
    /* The open connections (conn.c's srv_sock list), the waits' suspend and
     * resume state (srv_conn.suspended/signalled), and the watchdog that
     * closes those past their header or body deadline and wakes suspended
     * ones whose client left. */
    pthread_mutex_t       socks_mu;
    pthread_cond_t        socks_cv;
    struct srv_sock      *socks;
    int32_t               n_socks;
    int32_t               n_live;     /* n_socks less those the server has cut */
    atomic_bool           stopping;   /* srv_stop: no more suspending; the watchdog ends */
    /* cut connections' sockets the watchdog drains before closing (linger.c) */
    srv_linger_fd         linger[SRV_LINGER_MAX];
    int                   n_linger;
    bool                  watchdog_started;
    pthread_t             watchdog;
};

/* A growable text buffer: p[n] is '\0' once anything was added; oom says
 * an append failed (what came before it stays). Freed with free(p). */
typedef struct srv_buf { char *p; size_t n, cap; bool oom; } srv_buf;

/* What the request's log line says (srv_log_request), filled as it goes. */
typedef struct srv_req_log {
    char        id[48];       /* "req-N"; the generation routes make it "cmpl-N" */
    char        method[16];
    char        path[256];
    const char *model;        /* the model's id (valid until sched_destroy) */
    unsigned    status;       /* 0 until an answer is queued                */
    int32_t     prompt_tokens, completion_tokens; /* -1: none              */
    double      queue_ms;     /* -1: did not queue                          */
    double      t0;           /* vki_time_ms when the request arrived       */
    const char *priority;     /* the class it ran in, when the route logs it; NULL = not said */
    char        session[129]; /* POST /generate's session_id ("" = none): logged, never kept */
} srv_req_log;

typedef struct srv_conn srv_conn;
typedef struct srv_waker srv_waker;

/* A route's continuation while its scheduler request runs: called each time
 * the request has news (and when the client may have left); sets *wait to
 * be called again later, else has queued its answer (or returns MHD_NO) and
 * freed `state`. */
typedef enum MHD_Result (*srv_step_fn)(srv_conn *cn, void *state, bool *wait);

/* One request's state across the handler calls. */
struct srv_conn {
    srv_server            *srv;
    struct MHD_Connection *c;
    srv_route              route;
    srv_buf                body;
    bool                   too_big;
    bool                   answered; /* a response was queued early */
    uint64_t               n;        /* its number (next_id)        */
    srv_req_log            log;
    bool                   streamed; /* the stream logs at its end, not the connection */
    char                   model_id[256]; /* GET /v1/models/{id}: the id ("" for the list) */
    const char            *served_by; /* the model that answered: X-Vkinfer-Served-By */
    char                   route_hdr[320]; /* `auto`'s decision: X-Vkinfer-Route ("" = none) */
    cJSON                 *json;     /* the parsed body (generation, embeddings) */
    /* The wait (srv_wait): the requests that wake the connection, the
     * continuation and its state (dropped if the connection ends first). */
    vki_job              **watched_jobs; /* their wake-up hooks (vki_job_set_news) */
    int32_t                n_watched_jobs, cap_watched_jobs;
    srv_waker             *waker;        /* what the jobs' hooks wake (wait.c) */
    /* Set while a renderer runs off the handler (routes_gen.c): the error
     * srv_send_error would queue is written here instead, for the answer. */
    struct srv_fb_error   *capture;
    srv_step_fn            step;
    void                 (*drop)(void *state);
    void                  *state;
    bool                   suspended, signalled; /* socks_mu */
    /* Where an accepted request stood in its queue (X-Queue-Position and
     * X-Queue-ETA on every answer to it), or the wait a 429 names. */
    bool                   has_queue;
    int32_t                queue_pos;     /* -1: not known (a refusal)   */
    double                 queue_eta_s;
};

/* ----- respond.c, wait.c, fields.c (http.c's helpers) ----- */

/* Append n bytes / formatted text; false (and b->oom) when memory ran out. */
bool srv_buf_append(srv_buf *b, const void *data, size_t n);
bool srv_buf_printf(srv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The one way the server turns JSON into bytes: cJSON's text with every
 * broken UTF-8 part (model bytes, file contents in errors) as U+FFFD, by the
 * rule of engine/common/util.h. malloc'd; NULL when out of memory. */
char *srv_json_print(const cJSON *json);
/* Writes the request's log line (if the server logs). */
void  srv_log_done(srv_server *srv, const srv_req_log *l);

/* Adds X-Queue-Position and X-Queue-ETA to r when the request was queued. */
void srv_queue_headers(const srv_conn *cn, struct MHD_Response *r);
/* Queues a JSON response (takes `json`, a cJSON tree) and counts it. */
/* Queues text (malloc'd, NUL-terminated; taken) with its Content-Type and
 * the queue and served-by headers. */
enum MHD_Result srv_send_text(srv_conn *cn, unsigned status, char *text, const char *type);
enum MHD_Result srv_send_json(srv_conn *cn, unsigned status, cJSON *json);
/* The OpenAI error body's text (malloc'd; NULL when out of memory), for an
 * answer written by other means (a body cut off on the socket). */
char           *srv_error_text(const srv_conn *cn, unsigned status, const char *code, const char *msg);
/* Queues an OpenAI error {"error":{"message","type","code"}}. retry_after > 0
 * adds Retry-After (seconds). */
enum MHD_Result srv_send_error(srv_conn *cn, unsigned status, const char *code, int retry_after, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* The error response for a failed scheduler call (the one status table). */
enum MHD_Result srv_send_status(srv_conn *cn, vki_status s, const char *msg, double eta_s);
/* That table: the HTTP status, error code and Retry-After (0 = none) of a
 * scheduler status (eta_s: QUEUE_FULL's ETA, or an open breaker's wait). */
void            srv_status_http(vki_status s, double eta_s, unsigned *http, const char **code, int *retry);
/* Queues r (not consumed), closing the connection after it while the
 * server drains. */
enum MHD_Result srv_queue(srv_conn *cn, unsigned status, struct MHD_Response *r);

/* Waiting without a thread: handlers never block a pool thread. A route
 * that submitted generation jobs has the connection woken whenever one
 * gains output, tries another model or ends (srv_watch each: its wake-up
 * hook, vki_job_set_news; false: out of memory), then srv_wait calls
 * step(cn, state) now and on each wake-up until it stops asking to wait;
 * meanwhile the connection is suspended. Other jobs wake it by on_done
 * (srv_job_wake). If the connection ends first, drop(state) frees the
 * state (after srv_unwatch). */
bool            srv_watch(srv_conn *cn, vki_job *job);
/* For a stream, whose jobs live in its response and may be released before
 * or after the connection ends (MHD 0.9 frees the response first): forgets
 * the watched jobs without stopping their hooks and returns a reference to
 * what they wake, which does nothing once the connection has ended. The
 * owner drops it (srv_waker_drop) after releasing the jobs. NULL: none. */
srv_waker      *srv_watch_handover(srv_conn *cn);
void            srv_waker_drop(srv_waker *w);
/* A vki_request_params.on_done (and on_token) for a job the route waits on
 * (user = the srv_conn): wakes the connection. The route's drop releases
 * the job (vki_job_release), after which no callback runs. */
void            srv_job_wake(const vki_job_result *res, void *user);
/* srv_queue_note for a job: where it was queued, when it was. */
void            srv_queue_note_job(srv_conn *cn, const vki_job_result *res);
/* The answer to a job that ended with an error: its candidates' first
 * refusal as the fallback triggers say (503 model_loading / model_failed,
 * breaker_open, 504 timeout), else the status table. */
enum MHD_Result srv_send_job_error(srv_conn *cn, const vki_job_result *res);
enum MHD_Result srv_wait(srv_conn *cn, srv_step_fn step, void (*drop)(void *), void *state);
/* Stops the wake-ups of every job watched (before releasing them); called
 * for those still watched when the connection ends. */
void            srv_unwatch(srv_conn *cn);
/* Frees the request's parsed body (cn->json) before the request ends, once
 * nothing borrows from it; otherwise the end of the request frees it. */
void            srv_drop_json(srv_conn *cn);
/* For a content reader with nothing to send: call srv_arm before looking
 * at the request, then srv_pause when it had nothing: true = suspended until
 * the next wake-up (return 0 from the reader); false = news came meanwhile
 * (look again). */
void            srv_arm(srv_conn *cn);
bool            srv_pause(srv_conn *cn);

/* Counts a response sent by other means (streams). */
void            srv_count(srv_server *srv, srv_route route, unsigned status);
/* True when the client closed its side of the connection. */
bool            srv_client_gone(struct MHD_Connection *c);

/* Finds the model a request names (or the first of `kind` when it names
 * none) and checks its kind; on failure queues the error response and
 * returns -1 with *ret set. Whether it can serve now is the service's to
 * judge when the route's job tries it (engine/service/service_fallback.c). */
int32_t srv_pick_model(srv_conn *cn, const cJSON *body, vki_model_kind kind, enum MHD_Result *ret);
/* Reads "priority" and "timeout" (vkinfer extensions); false after
 * queueing a 400. */
bool    srv_parse_common(srv_conn *cn, const cJSON *body, int32_t model, vki_priority route_default, vki_priority *prio,
                         double *deadline_ms, enum MHD_Result *ret);

/* ----- gen_render.c ----- */

/* A chat request's renderer (vki_gen_params.render, user = it): copies the
 * body's messages and tool fields (tries outlive the request's JSON) and
 * the config of the request's time. NULL: out of memory. */
typedef struct srv_gen_render srv_gen_render;
srv_gen_render     *srv_gen_render_new(srv_conn *cn, const cJSON *body);
void                srv_gen_render_free(srv_gen_render *x);
vki_status          srv_gen_render_fn(int32_t model, vki_generate_params *gp, char **prompt,
                                      vki_prompt_span **literal, size_t *n_literal, void *user);
/* Once the job has ended (or served): the refusal its last render queued
 * as an answer (NULL: none), and the tool format of the model it rendered
 * for last, the one serving. */
const struct srv_fb_error *srv_gen_render_error(const srv_gen_render *x);
srv_tool_format     srv_gen_render_format(const srv_gen_render *x);

/* ----- logprobs.c ----- */

/* An empty `logprobs` object in the chat ({"content": [], "refusal": null})
 * or the completions shape ({tokens, token_logprobs, top_logprobs,
 * text_offset}: empty arrays). */
cJSON *srv_logprobs_new(bool chat);
/* Appends n tokens of a job served by model i (its vocabulary gives the
 * token strings) to such an object. */
void   srv_logprobs_add(cJSON *lp, bool chat, vki_service *svc, int32_t model, const vki_job_token *toks, int32_t n);

/* ----- response_format.c ----- */

/* Reads `response_format` into gp->grammar (json_object, json_schema; text
 * sets nothing). *grammar is the compiled schema's text, which the caller
 * frees once the request is submitted. false after queueing a 400 naming
 * the field or the schema keyword. */
bool srv_response_format(srv_conn *cn, const cJSON *body, vki_generate_params *gp, char **grammar,
                         enum MHD_Result *ret);

/* ----- routes_info.c ----- */

/* srv_pick_model, except that a request naming no model goes to the first
 * model of `kind` that is serving (not the first configured when that one
 * failed); when none serves, the first of the kind answers why. */
int32_t srv_pick_serving(srv_conn *cn, const cJSON *body, vki_model_kind kind, enum MHD_Result *ret);

/* ----- fallback.c ----- */

/* Why a request went to another model (vkinfer_fallbacks_total's reason):
 * the library's vki_fallback_reason, spelt for the routes. */
enum {
    SRV_FB_MISSING = VKI_FALLBACK_MISSING,
    SRV_FB_FAILED  = VKI_FALLBACK_FAILED,
    SRV_FB_MEMORY  = VKI_FALLBACK_MEMORY,
    SRV_FB_BREAKER = VKI_FALLBACK_BREAKER_OPEN,
    SRV_FB_ETA     = VKI_FALLBACK_ETA,
    SRV_FB_LOADING = VKI_FALLBACK_LOADING,
    SRV_FB_N       = VKI_FALLBACK_N_REASONS,
};

/* An error answer kept for later: what srv_send_error would have queued
 * (srv_conn.capture), e.g. a chat template's refusal found on the service's
 * thread. */
typedef struct srv_fb_error {
    unsigned    http;
    const char *code;
    int         retry;   /* Retry-After seconds; 0 = none */
    char        msg[1280];
} srv_fb_error;

/* The models to try for a request for `model`, in order: itself, then its
 * fallback candidates (vki_service_fallback_candidates), unless the body says
 * "model_fallback": false. Returns how many (>= 1), or 0 after queueing a
 * 400 for a bad model_fallback. */
int32_t srv_fb_plan(srv_conn *cn, const cJSON *body, int32_t model, const vki_request_needs *need, int32_t *order,
                    int32_t max, enum MHD_Result *ret);
/* Counts a fallback (the request for `from` served by `to`). */
void            srv_fb_count(srv_server *srv, int32_t from, int32_t to, int reason);
/* Appends vkinfer_fallbacks_total to the /metrics text. */
void            srv_fb_metrics(srv_server *srv, srv_buf *b);
/* Allocates / frees the counters (srv_start, srv_stop). */
bool            srv_fb_init(srv_server *srv);
void            srv_fb_free(srv_server *srv);

/* ----- routes ----- */

enum MHD_Result srv_route_health(srv_conn *cn);
enum MHD_Result srv_route_models(srv_conn *cn);
/* GET /v1/models/{id}: the object the list holds; 404 for an unknown id. */
enum MHD_Result srv_route_model(srv_conn *cn, const char *id);
enum MHD_Result srv_route_metrics(srv_conn *cn);
/* GET /v1/system/status and the page at / and /ui (routes_status.c). */
enum MHD_Result srv_route_status(srv_conn *cn);
enum MHD_Result srv_route_ui(srv_conn *cn);
/* Unix time in seconds, for the window and the status. */
double          srv_now_s(void);
/* The /admin routes (reload.c): 403 without an API key unless server.admin. */
enum MHD_Result srv_route_admin(srv_conn *cn);
/* Frees what reloads published (srv_stop). */
void            srv_reload_free(srv_server *srv);
enum MHD_Result srv_route_embeddings(srv_conn *cn, const cJSON *body);
enum MHD_Result srv_route_generate(srv_conn *cn, const cJSON *body, bool chat);
/* What a generation route answers: OpenAI's completion or chat shapes, or
 * the generated text alone (the legacy POST /generate: text/plain, or with
 * stream a chunked body of raw text flushed per token). */
typedef enum srv_gen_shape { SRV_GEN_COMPLETION = 0, SRV_GEN_CHAT, SRV_GEN_PLAIN } srv_gen_shape;
/* srv_route_generate for any shape. PLAIN takes one prompt string (the
 * caller checked it) and no choices, logprobs or stream_options; its fields
 * are srv_gen_plain_fields. req_prio >= 0: a class the request asked for
 * by other means (service_type): it comes before the model's configured
 * priority, and `priority` before it. */
enum MHD_Result srv_route_generate_as(srv_conn *cn, const cJSON *body, srv_gen_shape shape, int req_prio);
extern const char *const srv_gen_plain_fields[];
/* POST /generate: the body of the model service vkinfer replaces (prompt,
 * service_type, priority, stream, session_id) onto the PLAIN generation. */
enum MHD_Result srv_route_generate_legacy(srv_conn *cn, const cJSON *body);
/* Its own fields, before srv_route_generate_as reads the rest: the field
 * names, session_id (into cn's log line), prompt, and service_type as
 * *prio (-1: not given). False with the error answer sent (*ret); no
 * scheduler is touched, so fuzz_http calls it. */
bool            srv_parse_generate_legacy(srv_conn *cn, const cJSON *body, int *prio, enum MHD_Result *ret);

/* ----- routes_auto.c ----- */

typedef struct srv_auto srv_auto;

/* Hands the config's routes to the service (vki_service_set_router, once:
 * srv_start); false with err. */
bool            srv_auto_init(srv_server *srv, char *err, size_t err_size);
/* True when the body's model is "auto". */
bool            srv_auto_asked(const cJSON *body);
/* Decides where an `auto` request of `kind` goes, from what the body uses
 * (tools, response_format), n_tokens of context and, for chat routes with
 * examples, the meaning of its last user message (or prompt), which is
 * embedded first: then *a holds that wait (the connection watches it) and
 * srv_auto_step finishes. Fills order[*n] (the models to try, best first;
 * only the first with "model_fallback": false), the X-Vkinfer-Route header,
 * the log line and the counters; *prio becomes the chosen model's configured
 * class unless the body names one (prio is borrowed until the decision). 1: decided; 2: waiting (*a); 0: an error
 * was queued (*ret). */
int             srv_auto_begin(srv_conn *cn, const cJSON *body, vki_model_kind kind, int32_t n_tokens, vki_priority *prio,
                               srv_auto **a, int32_t *order, int32_t *n, enum MHD_Result *ret);
/* On a wake-up while *a waits: 1 decided (*a freed), 2 still waiting, 0
 * error queued (*ret; *a freed). */
int             srv_auto_step(srv_conn *cn, srv_auto **a, int32_t *order, int32_t *n, enum MHD_Result *ret);
/* Cancels and frees a wait (its job: no wake-up after this). NULL is a no-op. */
void            srv_auto_drop(srv_auto *a);
/* vkinfer_route_decisions_total{route,by} for /metrics. */
void            srv_auto_metrics(srv_server *srv, srv_buf *b);
/* The `auto` entry of /v1/models (with its routes), or NULL when there is
 * nothing to route (no model). */
cJSON          *srv_auto_model_json(srv_server *srv);

/* ===== Tool calling (tools.c; the formats: tool_calls.c) ===================== */

typedef enum srv_tool_choice {
    SRV_TOOL_NONE = 0, /* no tools, or tool_choice "none": plain text             */
    SRV_TOOL_AUTO,     /* the model may call: its output is parsed                */
    SRV_TOOL_REQUIRED, /* a call to any tool, forced by a grammar                 */
    SRV_TOOL_NAMED,    /* a call to `name`, forced by a grammar                   */
} srv_tool_choice;

typedef struct srv_tool_req {
    const cJSON    *tools;    /* the request's non-empty tools array, or NULL */
    srv_tool_choice choice;
    const char     *name;     /* SRV_TOOL_NAMED                               */
    bool            parallel; /* parallel_tool_calls (default true)           */
} srv_tool_req;

/* tools, tool_choice, parallel_tool_calls into *t. false = queued 400. */
bool srv_tools_parse(srv_conn *cn, const cJSON *body, srv_tool_req *t, enum MHD_Result *ret);
/* For one candidate model (its file, and `family` from the config or NULL):
 * checks the tool messages, then, when tools or tool messages are there,
 * either renders with the template into *prompt and *spans (a tool-aware
 * template: *fmt its format) or returns in *generic the messages rewritten
 * for the plain path (*fmt GENERIC). Neither: nothing to do. false = queued
 * error. */
bool srv_tools_render(srv_conn *cn, const cJSON *msgs, const srv_tool_req *t, const vki_model_file *file,
                      const char *family, cJSON **generic, char **prompt, vki_text_span **spans, size_t *n_spans,
                      srv_tool_format *fmt, enum MHD_Result *ret);
/* The grammar forcing a call (required / named; *grammar NULL otherwise,
 * malloc'd). false = queued 400 (a schema we cannot enforce). */
bool srv_tools_grammar(srv_conn *cn, const srv_tool_req *t, srv_tool_format fmt, char **grammar,
                       enum MHD_Result *ret);

/* ===== Request bodies (request.c) ============================================ */

/* What the routes do with a body, up to (not including) submitting it,
 * without the scheduler: the fuzz target (tests/fuzz/fuzz_http.c) calls
 * these as the routes do. Each false has queued the error answer (*ret);
 * nothing needs freeing after it. With cn->c NULL (no connection) an
 * answer is only recorded in cn->log.status. */

/* Refuses (a queued 400 naming it, false) any body field not in `known`
 * (NULL-terminated): an OpenAI field we do not implement is never ignored. */
bool srv_check_fields(srv_conn *cn, const cJSON *body, const char *const *known, enum MHD_Result *ret);

#define SRV_MAX_STOPS 16

/* One prompt of a completion: text (borrowed from the body) or ids. */
typedef struct srv_prompt {
    const char *text;
    int32_t    *ids;   /* malloc'd when text is NULL */
    int32_t     n_ids;
} srv_prompt;

/* A generation request as parsed: gp.stop points into stops and gp.grammar
 * at grammar, so a copy must point its gp.stop at its own stops. */
typedef struct srv_gen_req {
    vki_generate_params gp;
    char               *grammar;                  /* response_format's, owned      */
    const char         *stops[SRV_MAX_STOPS + 1]; /* borrowed from the body        */
    bool                stream;
    bool                include_usage;            /* stream_options.include_usage  */
    int32_t             n;                        /* choices per prompt            */
    srv_tool_req        tools;                    /* chat: tools, tool_choice      */
    vki_priority        prio;
    double              deadline_ms;              /* 0: none                       */
    srv_prompt         *prompts;                  /* completions: [n_prompts], owned; chat: NULL */
    int32_t             n_prompts;
} srv_gen_req;

/* Every field of a chat, completion or /generate (PLAIN) body, for a request to
 * `model` (its configured priority is the default). The chat messages are
 * read per candidate model by srv_render_chat. */
bool srv_parse_generate(srv_conn *cn, const cJSON *body, srv_gen_shape shape, int32_t model, srv_gen_req *rq,
                        enum MHD_Result *ret);
void srv_gen_req_free(srv_gen_req *rq);
/* The chat messages rendered with a model's template (`tmpl` from its
 * config, or NULL for the file's own) into *prompt and *spans (malloc'd),
 * the tool-aware template's format in *fmt; gp's special-token flags set.
 * file/tok NULL (the model stopped serving) answers 503 once the messages
 * pass. */
bool srv_render_chat(srv_conn *cn, const cJSON *body, const srv_tool_req *tr, const vki_model_file *file,
                     const vki_tokenizer *tok, const char *tmpl, vki_generate_params *gp, char **prompt,
                     vki_text_span **spans, size_t *n_spans, srv_tool_format *fmt, enum MHD_Result *ret);

/* The fields /v1/embeddings takes. */
extern const char *const srv_embed_fields[];
typedef struct srv_embed_req {
    const char **texts;     /* [n] borrowed from the body; the array malloc'd */
    int32_t      n;
    bool         b64;       /* encoding_format "base64"                       */
    double       want_dim;  /* dimensions; 0: not given                       */
    vki_priority prio;
    double       deadline_ms;
} srv_embed_req;
bool srv_parse_embeddings(srv_conn *cn, const cJSON *body, int32_t model, srv_embed_req *rq, enum MHD_Result *ret);
void srv_embed_req_free(srv_embed_req *rq);

#endif
