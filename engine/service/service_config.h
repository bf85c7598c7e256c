/*
 * service_config.h: what the configuration file says of the service: its
 * models (id, path, kind, residency, fallback, breaker, ...), the device,
 * warm-up and fallback policy, read from YAML (service_config.c). Both
 * vki_service_create_from_config and `vkinfer serve` read the file through
 * it; the server reads its own `server` section through the hook.
 * Owns: every string in svc_config. Must not: start anything.
 */
#ifndef VKI_SERVICE_CONFIG_H
#define VKI_SERVICE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/sched/sched.h"
#include "engine/service/config_yaml.h"
#include "vkinfer.h"

typedef struct svc_model_cfg {
    char      *id, *path;
    bool           has_kind;     /* else detected from the file's architecture  */
    vki_model_kind kind;         /* CHAT or EMBEDDING once resolved              */
    bool           has_priority; /* else the route's default class              */
    vki_priority   priority;
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
} svc_model_cfg;

typedef struct svc_config {
    int32_t          max_queue;     /* per model; default 64 (server.max_queue)  */
    int32_t          n_threads;     /* 0 = all cores (server.threads)             */
    vki_backend_kind prefer;        /* device.prefer                              */
    uint64_t         vram_budget;   /* bytes; 0 = all                             */
    double           vram_fraction; /* "90%": of the chosen device's budget; 0 = unused */
    /* warmup: {enabled, interval, threshold, state_dir}: with enabled (the
     * default) models are loaded ahead of their predicted use; the usage
     * history lives in state_dir (relative to the file's folder; NULL = the
     * caller's choice; "" = none kept). */
    bool             warmup;
    double           warm_interval_ms; /* default 5 min                         */
    double           warm_threshold;   /* default 0.5                           */
    char            *state_dir;
    sched_fb_weights fb_weights;    /* fallback_policy.weights; 0 = 0.4/0.4/0.2    */
    double           fb_min_score;  /* fallback_policy.min_score; 0 = 0.5          */
    /* The device's turns and arbiter (sched_params); 0 = the scheduler's default. */
    double           quantum_ms;    /* device.quantum: a model's turn, at least    */
    double           quantum_loads; /* device.quantum_loads: and this many loads   */
    double           drain_ms;      /* device.drain: then running ones finish, or pause */
    int32_t          chunk_tokens;  /* device.chunk_tokens: prompt/embedding chunk */
    double           aging_ms;      /* device.aging: a waiting step rises a class  */
    uint64_t         emb_cache_bytes; /* scheduler.embedding_cache: bytes; 0 = off (default) */
    svc_model_cfg   *models;
    int32_t          n_models;
} svc_config;

void svc_config_init(svc_config *c);
void svc_config_deinit(svc_config *c);
void svc_model_cfg_free(svc_model_cfg *m);

/* Reads a YAML file into c (on top of what c holds). Relative model paths
 * are taken from the file's folder. The sections of `vkinfer serve`
 * (server, routes, router) go to server(server_user) (NULL: skipped). On failure writes
 * "FILE:LINE:COL: what was wrong, what was expected" to err and returns
 * VKI_ERR_BAD_FILE (or NOT_FOUND when the file cannot be opened). */
vki_status svc_config_load(svc_config *c, const char *path, svc_cfg_pair_fn server, void *server_user, char *err,
                           size_t err_size);
/* The same from text[len] in memory; name is used in messages, dir for
 * relative model paths. */
vki_status svc_config_parse(svc_config *c, const char *name, const char *dir, const char *text, size_t len,
                            svc_cfg_pair_fn server, void *server_user, char *err, size_t err_size);
/* Appends a model (strings copied). id NULL = the file name without extension. */
vki_status svc_config_add_model(svc_config *c, const char *id, const char *path);
/* Fills kind for models that did not name one, from each file's
 * architecture (bert-family = embedding); checks ids are unique and that
 * fallback and compatible name other models of the kind. Writes the
 * problem to err on failure (INVALID_ARGUMENT). */
vki_status svc_config_resolve(svc_config *c, char *err, size_t err_size);

/* service_from_config.c: the config's settings onto service params (its
 * fields only), and model m as scheduler params (chain[] is filled with
 * borrowed ids: keep it alive until sched_add_model returns). */
void svc_config_service_params(const svc_config *c, vki_service_params *p);
void svc_config_model_params(const svc_config *c, const svc_model_cfg *m, const char *chain[65],
                             sched_model_params *mp);
/* A service with c's settings (over base's; NULL = defaults) and models,
 * test hooks included: vki_service_create_from_config after the file, and
 * `vkinfer serve` after its command line. The warm-up history is
 * base->warm_state_path, else c->state_dir's usage.json when set. */
vki_status svc_config_create(const svc_config *c, const vki_service_params *base, vki_service **out);
/* Model m of c added to svc (vki_service_add_model with the config's test
 * hooks), or its live settings applied to svc's model i
 * (vki_service_update_model): a hot reload's adds and in-place changes. */
vki_status svc_config_add_model_to(vki_service *svc, const svc_config *c, const svc_model_cfg *m);
vki_status svc_config_update_model(vki_service *svc, int32_t i, const svc_config *c, const svc_model_cfg *m);

#endif
