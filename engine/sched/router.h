/*
 * router.h: `model: "auto"`: which model serves a request that names none.
 * Routes (use cases) list a primary model and fallbacks and what they serve
 * (chat or embedding, tools, JSON output, a minimum context); a request is
 * matched by what it needs, then, where routes carry example prompts, by
 * meaning (cosine of the query's embedding to the nearest example, against
 * a threshold), else by load; within the route the models are ordered by
 * whether they can serve, then load (resident, ETA, load cost).
 * Owns: the routes and their example embeddings. The decision is a pure
 * function of a snapshot of the models (sched_router_snapshot takes one
 * from a scheduler), so it can be tested and timed alone. Must not: embed
 * (the caller embeds the examples and the query with the model it chose,
 * and installs the examples' vectors), know HTTP or YAML.
 */
#ifndef VKI_SCHED_ROUTER_H
#define VKI_SCHED_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/sched/sched.h"

typedef struct sched_router sched_router;

#define SCHED_ROUTE_MAX_MODELS  16  /* per route                        */
#define SCHED_ROUTER_MAX_ROUTES 64
#define SCHED_ROUTER_MAX_MODELS 256 /* in a snapshot                    */

/* One route as configured; strings and arrays are copied. */
typedef struct sched_route_params {
    const char          *name;       /* unique, non-empty                                    */
    const char          *use_case;   /* a description for /v1/models; NULL = none            */
    const int32_t       *models;     /* model indices: the primary, then its fallbacks       */
    int32_t              n_models;   /* 1 .. SCHED_ROUTE_MAX_MODELS                          */
    sched_kind           kind;       /* what it serves                                       */
    uint32_t             caps;       /* SCHED_CAP_TOOLS / _JSON: requests using them may come */
    int32_t              min_ctx;    /* its models need at least this context; 0 = any      */
    const char *const   *examples;   /* prompts that belong here; may be NULL                */
    int32_t              n_examples;
    double               threshold;  /* nearest-example cosine to route by meaning; 0 = the router's */
} sched_route_params;

/* One model as a decision sees it (sched_router_snapshot). */
typedef struct sched_route_model {
    sched_kind kind;
    uint32_t   caps;       /* SCHED_CAP_*: what it can do                        */
    int32_t    n_ctx;      /* 0 = not known yet (not ruled out by context)       */
    bool       can_serve;  /* not failed, file open, breaker not open             */
    bool       resident;
    double     eta_ms;     /* sched_eta_ms: 0 = nothing queued or not measured    */
    double     load_ms;    /* the cost of loading it: 0 when resident              */
    double     quality;    /* configured quality score; higher first on a tie    */
} sched_route_model;

/* What a request needs. */
typedef struct sched_route_request {
    sched_kind kind;
    uint32_t   caps;      /* SCHED_CAP_TOOLS / _JSON it uses */
    int32_t    n_tokens;  /* context it expects to fill; 0 = unknown */
} sched_route_request;

typedef enum sched_route_by {
    SCHED_ROUTE_BY_MEANING = 0, /* nearest example above the threshold       */
    SCHED_ROUTE_BY_NEED    = 1, /* one route (or model) could serve it        */
    SCHED_ROUTE_BY_LOAD    = 2, /* several could: the least loaded won        */
    SCHED_ROUTE_N_BY       = 3,
} sched_route_by;
const char *sched_route_by_name(sched_route_by b); /* "meaning", "need", "load" */

typedef struct sched_route_decision {
    int32_t        route;   /* index; -1 = no route matched: the registry's models */
    sched_route_by by;
    double         score;   /* the best route's nearest-example cosine; 0 when not embedded */
    int32_t        order[SCHED_ROUTE_MAX_MODELS]; /* models to try, best first */
    int32_t        n_order;
    bool           want_query; /* decided without a query where one could route by meaning */
} sched_route_decision;

typedef struct sched_router_params {
    double threshold; /* default for routes that set none; 0 = 0.5 */
} sched_router_params;

/* INVALID_ARGUMENT (more than SCHED_ROUTER_MAX_ROUTES, no name, a name twice, no models, a model index < 0,
 * a threshold outside [-1, 1], examples on an embedding route),
 * OUT_OF_MEMORY. p NULL = defaults. */
vki_status sched_router_create(const sched_router_params *p, const sched_route_params *routes, int32_t n_routes,
                               sched_router **out);
/* NULL is a no-op. */
void       sched_router_destroy(sched_router *r);

int32_t                   sched_router_n_routes(const sched_router *r);
/* Route i as created (pointers valid until destroy; examples' vectors not included). */
const sched_route_params *sched_router_route(const sched_router *r, int32_t i);
double                    sched_router_threshold(const sched_router *r, int32_t i);

/* Every route's examples in one list (route 0's first): what to embed. */
int32_t     sched_router_n_examples(const sched_router *r);
const char *sched_router_example(const sched_router *r, int32_t k);
/* Installs the examples' vectors: emb[n][dim] in the order above,
 * L2-normalised, computed by the embedding model at `version` (what the
 * caller uses to tell a reloaded model: sched_router_version). Thread-safe
 * against decisions. INVALID_ARGUMENT (n is not the count, dim < 1),
 * OUT_OF_MEMORY. */
vki_status  sched_router_set_examples(sched_router *r, const float *emb, int32_t n, int32_t dim, uint64_t version);
/* True when vectors are installed and were computed at `version`. */
bool        sched_router_examples_ready(sched_router *r, uint64_t version);

/* Decides for `req` over the models' snapshot m[n_models] (indexed as the
 * routes' model indices). query: the request's last user message embedded
 * (L2-normalised, dim wide), or NULL: then no decision by meaning. Routes
 * serve a request when they are its kind, declare the capabilities it uses
 * and have a model that has them with context for n_tokens; the nearest
 * such route by meaning when its score reaches its threshold, else the
 * only one (by need), else the one whose best model is least loaded (by
 * load; ties: configuration order). No route serves it: every model that
 * can, ranked the same way (route -1). Thread-safe.
 * NOT_FOUND when no model can serve the request (the message says what it
 * needs), INVALID_ARGUMENT (query of another width than the examples',
 * more than SCHED_ROUTER_MAX_MODELS models). */
vki_status  sched_router_decide(sched_router *r, const sched_route_request *req, const sched_route_model *m,
                                int32_t n_models, const float *query, int32_t dim, sched_route_decision *out);

/* The snapshot of the scheduler's models in its order: m[sched_n_models];
 * quality[i] per model (NULL = all 0). A model that declares no
 * capabilities is taken to have all of its kind (the server serves tools
 * and JSON output with any chat model). */
void        sched_router_snapshot(scheduler *s, const double *quality, sched_route_model *m);
/* What the router's embedding model's vectors depend on: changes when the
 * model's file is replaced (sched_reload_model). */
uint64_t    sched_router_version(scheduler *s, int32_t embed_model);

#endif
