/*
 * config.h: the server's configuration: defaults, the YAML file (DESIGN.md's
 * sketch: server{...}, device{...}, models[...]) and command-line overrides.
 * A malformed file is refused with file:line:column and what was expected.
 * Owns: every string in srv_config. Must not: start anything.
 */
#ifndef VKI_SRV_CONFIG_H
#define VKI_SRV_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/sched/sched.h"
#include "vkinfer.h"

/* How the server's log lines are written (server/log.h). */
typedef enum srv_log_format { SRV_LOG_TEXT = 0, SRV_LOG_JSON = 1 } srv_log_format;

typedef struct srv_model_cfg {
    char      *id, *path;
    bool       has_kind;      /* else detected from the file's architecture  */
    sched_kind kind;
    bool       has_priority;  /* else the route's default class              */
    sched_prio priority;
    uint32_t   n_ctx;         /* 0 = from the model                          */
    uint32_t   n_seq_max;     /* sequences decoded together; 0 = 4           */
    char      *chat_template; /* family name; NULL = the model's own         */
    bool       has_keep_alive; /* keep_alive given and not -1 (forever)     */
    double     keep_alive_ms;  /* idle time before unloading; 0 = at once   */
    bool       pin;            /* never evicted                              */
    bool       fallback_cpu;   /* fallback: [cpu]                            */
    char     **fallback_ids;   /* fallback: other model ids, in order        */
    int32_t    n_fallback;
    bool       fallback_auto;  /* fallback: [..., auto]                      */
    uint32_t   caps;           /* capabilities: [chat, tools, json, ...]     */
    char      *languages;      /* languages: [en, de] as "en,de"; NULL = none */
    int32_t    dims[16];       /* dimensions: [512, 256]: Matryoshka widths the model
                                  was trained to be cut to (embeddings; a request's
                                  `dimensions` takes one of these or the full width) */
    int32_t    n_dims;
    char     **compat_ids;     /* compatible: {id: score}                    */
    double    *compat;
    int32_t    n_compat;
    sched_breaker_params breaker;  /* breaker: {failures, window, recovery} */
    int32_t    test_fail_loads, test_fail_steps; /* test_fail: {loads, steps}: for tests only */
    char      *use_case;       /* use_case: a description (registry, /v1/models); NULL = none */
    double     quality;        /* quality: [0, 1], ranks equally loaded candidates of `auto` */
    int32_t    line, col;      /* where the file defines it (1-based); 0 = not from a file */
    bool       no_prefix_reuse; /* prefix_reuse: false (default true: chat KV kept for the next prompt) */
} srv_model_cfg;

/* One route of `model: "auto"` (routes: [...]; engine/sched/router.h). */
typedef struct srv_route_cfg {
    char      *name, *use_case;
    char     **models;         /* model: the primary, then fallback: [...] */
    int32_t    n_models;
    char     **where_models;   /* "FILE:LINE:COL" of each id, for srv_config_resolve */
    bool       has_kind;       /* needs: [chat | embedding, ...]; else the primary's kind */
    sched_kind kind;
    uint32_t   caps;           /* needs: [tools, json]                      */
    int32_t    min_ctx;        /* min_context: 0 = any                       */
    char     **examples;       /* examples: prompts that belong to the route */
    int32_t    n_examples;
    double     threshold;      /* 0 = router.threshold                       */
    char      *where;          /* "FILE:LINE:COL" of the route               */
} srv_route_cfg;

typedef struct srv_config {
    char            *host;          /* default 127.0.0.1                          */
    int32_t          port;          /* 0 = any free port                          */
    char            *api_key_env;   /* environment variable holding the key; NULL = no auth */
    size_t           max_body;      /* bytes, 64 B to 1 GiB; default 1 MiB        */
    int32_t          max_conns;     /* open connections; default 512 (and a few more kept for /health) */
    int32_t          max_conns_per_ip; /* per client address; default 64          */
    double           header_timeout_ms; /* a request's headers must arrive within; default 10 s */
    double           body_timeout_ms;   /* and its body within (from the same start); default 60 s */
    double           drain_timeout_ms;  /* on SIGTERM, how long in-flight requests may finish; default 30 s */
    int32_t          max_queue;     /* per model; default 64                      */
    uint64_t         emb_cache_bytes; /* scheduler.embedding_cache: bytes; 0 = off (default) */
    vki_backend_kind prefer;
    uint64_t         vram_budget;   /* bytes; 0 = all                             */
    double           vram_fraction; /* "90%": of the chosen device's budget; 0 = unused */
    int32_t          n_threads;     /* 0 = all cores                              */
    srv_log_format   log_format;    /* text (default) or json lines, on stderr    */
    /* warmup: {enabled, interval, threshold, state_dir}: the usage history
     * lives in state_dir (NULL = $XDG_STATE_HOME/vkinfer, else
     * ~/.local/state/vkinfer; "" = none kept; relative to the
     * config file's folder); with enabled (the default)
     * models are loaded ahead of their predicted use. */
    bool             warmup;
    double           warm_interval_ms; /* default 5 min                         */
    double           warm_threshold;   /* default 0.5                           */
    char            *state_dir;
    sched_fb_weights fb_weights;    /* fallback_policy.weights; 0 = 0.4/0.4/0.2    */
    double           fb_min_score;  /* fallback_policy.min_score; 0 = 0.5          */
    int32_t          health_degraded_status; /* /health's code when degraded; default 200 */
    bool             admin;         /* server.admin: the /admin routes without an API key */
    /* The device's turns and arbiter (sched_params); 0 = the scheduler's default. */
    double           quantum_ms;    /* device.quantum: a model's turn, at least    */
    double           quantum_loads; /* device.quantum_loads: and this many loads   */
    double           drain_ms;      /* device.drain: then running ones finish, or pause */
    int32_t          chunk_tokens;  /* device.chunk_tokens: prompt/embedding chunk */
    double           aging_ms;      /* device.aging: a waiting step rises a class  */
    srv_model_cfg   *models;
    int32_t          n_models;
    srv_route_cfg   *routes;        /* routes: `model: "auto"`'s use cases        */
    int32_t          n_routes;
    char            *router_model;  /* router.model: the embedding model for examples; NULL = none */
    char            *router_where;  /* "FILE:LINE:COL" of router.model          */
    double           router_threshold; /* router.threshold: 0 = 0.5              */
} srv_config;

void srv_config_init(srv_config *c);
void srv_config_deinit(srv_config *c);

/* Reads a YAML file into c (on top of what c holds). Relative model paths
 * are taken from the file's folder. On failure writes
 * "FILE:LINE:COL: what was wrong, what was expected" to err and returns
 * VKI_ERR_BAD_FILE (or NOT_FOUND when the file cannot be opened). */
vki_status srv_config_load(srv_config *c, const char *path, char *err, size_t err_size);
/* The same from text[len] in memory; name is used in messages, dir for
 * relative model paths. */
vki_status srv_config_parse(srv_config *c, const char *name, const char *dir, const char *text, size_t len, char *err,
                            size_t err_size);

/* Appends a model (strings copied). id NULL = the file name without extension. */
vki_status srv_config_add_model(srv_config *c, const char *id, const char *path);

/* Fills kind for models that did not name one, from each file's
 * architecture (bert-family = embedding); checks ids are unique.
 * Writes the problem to err on failure. */
vki_status srv_config_resolve(srv_config *c, char *err, size_t err_size);

/* Checks the routes against the models (config_routes.c; called by
 * srv_config_resolve once kinds are known): ids that exist, kinds that
 * match, a router model of the embedding kind when routes carry examples;
 * fills each route's kind (the primary's when needs names none).
 * Writes "FILE:LINE:COL: ..." to err. */
vki_status srv_config_check_routes(srv_config *c, char *err, size_t err_size);
/* Frees the routes and router settings (srv_config_deinit). */
void       srv_config_free_routes(srv_config *c);

/* Parses a keep_alive: "-1" (forever: *forever true), "0", "30s", "10m",
 * "1h", "500ms", or a plain number of seconds; false if none of these. */
bool srv_parse_duration(const char *s, double *ms, bool *forever);

/* Parses "123", "64KiB", "1MiB", "2GiB", "1.5GB" into bytes; false if not a size. */
bool srv_parse_size(const char *s, uint64_t *out);

/* Parses "text" or "json"; false if neither. */
bool srv_parse_log_format(const char *s, srv_log_format *out);

#endif
