/*
 * config.h: the server's configuration: its defaults, the YAML file's
 * `server`, `routes` and `router` sections, and command-line overrides;
 * the rest of the file (models, device, warmup, scheduler, fallback_policy)
 * is the library's svc_config, read in the same parse
 * (engine/service/service_config.h).
 * A malformed file is refused with file:line:column and what was expected.
 * Owns: every string in srv_config. Must not: start anything.
 */
#ifndef VKI_SRV_CONFIG_H
#define VKI_SRV_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/service/service_config.h"
#include "vkinfer.h"

/* How the server's log lines are written (server/log.h). */
typedef enum srv_log_format { SRV_LOG_TEXT = 0, SRV_LOG_JSON = 1 } srv_log_format;

typedef svc_model_cfg srv_model_cfg; /* the library's (engine/service/service_config.h) */

/* One route of `model: "auto"` (routes: [...]; engine/sched/router.h). */
typedef struct srv_route_cfg {
    char      *name, *use_case;
    char     **models;         /* model: the primary, then fallback: [...] */
    int32_t    n_models;
    char     **where_models;   /* "FILE:LINE:COL" of each id, for srv_config_resolve */
    bool       has_kind;       /* needs: [chat | embedding, ...]; else the primary's kind */
    vki_model_kind kind;       /* CHAT or EMBEDDING                         */
    uint32_t   caps;           /* needs: [tools, json]                      */
    int32_t    min_ctx;        /* min_context: 0 = any                       */
    char     **examples;       /* examples: prompts that belong to the route */
    int32_t    n_examples;
    double     threshold;      /* 0 = router.threshold                       */
    char      *where;          /* "FILE:LINE:COL" of the route               */
} srv_route_cfg;

typedef struct srv_config {
    svc_config       svc;           /* models, device, warmup, scheduler, fallback_policy: the library's */
    char            *host;          /* default 127.0.0.1                          */
    int32_t          port;          /* 0 = any free port                          */
    char            *api_key_env;   /* environment variable holding the key; NULL = no auth */
    size_t           max_body;      /* bytes, 64 B to 1 GiB; default 1 MiB        */
    int32_t          max_conns;     /* open connections; default 512 (and a few more kept for /health) */
    int32_t          max_conns_per_ip; /* per client address; default 64          */
    double           header_timeout_ms; /* a request's headers must arrive within; default 10 s */
    double           body_timeout_ms;   /* and its body within (from the same start); default 60 s */
    double           drain_timeout_ms;  /* on SIGTERM, how long in-flight requests may finish; default 30 s */
    srv_log_format   log_format;    /* text (default) or json lines, on stderr    */
    int32_t          health_degraded_status; /* /health's code when degraded; default 200 */
    bool             admin;         /* server.admin: the /admin routes without an API key */
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



/* Parses "text" or "json"; false if neither. */
bool srv_parse_log_format(const char *s, srv_log_format *out);

#endif
