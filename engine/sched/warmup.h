/*
 * warmup.h: usage history per model and the warm-up predictor. The history
 * counts requests per hour of the week (decayed, so old habits fade) and
 * remembers how long each model takes to load; the predictor turns it into
 * the chance that a model is asked for in the coming interval, and the
 * planner decides which models to load ahead of time without evicting
 * anything hotter. Pure: every call takes the time as an argument (unix
 * seconds), so tests replay weeks of traffic with an injected clock; the
 * scheduler supplies the real one (sched_warm.c). Persisted as a small JSON
 * file (warmup_io.c) so habits survive restarts.
 * Must not: touch models, devices or threads.
 */
#ifndef VKI_WARMUP_H
#define VKI_WARMUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vkinfer.h"

#define WARM_HOURS 168 /* hours in a week: the profile's buckets */

typedef struct warm_model {
    char    *id;
    double   hour[WARM_HOURS]; /* decayed request counts by hour of week          */
    double   active[WARM_HOURS]; /* decayed count of hour instances with a request */
    int64_t  last_active_hour; /* absolute local hour last counted in active; -1  */
    double   first_s, last_s;  /* first and latest request seen (unix s); 0 = none */
    double   load_ms;          /* moving average of load times; 0 = never loaded  */
    uint64_t n_requests;       /* undecayed total, for logs                       */
} warm_model;

typedef struct warm_params {
    double half_life_weeks; /* a week's counts weigh half after this long; 0 = 4   */
    double threshold;       /* preload when P(request in the interval) >= this; 0 = 0.5 */
    double utc_offset_s;    /* where "9:00" is: the local zone's offset from UTC  */
} warm_params;

warm_params warm_default_params(void); /* utc_offset_s from the local zone now */

typedef struct warm_history {
    warm_params p;
    warm_model *m;
    int32_t     n, cap;
    double      as_of_s; /* the time the hour counts are decayed to */
} warm_history;

void       warm_init(warm_history *h, const warm_params *p);
void       warm_free(warm_history *h); /* NULL-safe; leaves h empty */
/* The model with this id, added (empty) when absent; NULL on OOM. */
warm_model *warm_model_get(warm_history *h, const char *id);
/* One request for `id` at time t. OUT_OF_MEMORY only. */
vki_status warm_record_request(warm_history *h, const char *id, double t_s);
/* A load of `id` that took load_ms. OUT_OF_MEMORY only. */
vki_status warm_record_load(warm_history *h, const char *id, double load_ms);

/* 0..167: Monday 00:00 local is 0. */
int32_t warm_hour_of_week(const warm_history *h, double t_s);

typedef struct warm_prediction {
    double expected;   /* requests expected in [t, t + horizon)            */
    double confidence; /* 0..1: how much history backs the estimate         */
    double p;          /* confidence x P(at least one request)              */
} warm_prediction;

/* What model `id` is expected to see in [t_s, t_s + horizon_s): the weekly
 * profile (same hour of the week) blended with the daily one (same hour
 * of any day) by how many weeks of history there are, then discounted by
 * how many days there are. A model with no history predicts 0. */
warm_prediction warm_predict(const warm_history *h, const char *id, double t_s, double horizon_s);

/* One model as the planner sees it now. */
typedef struct warm_cand {
    const char *id;
    bool        resident;  /* on the device (or loading)                  */
    bool        busy;      /* requests queued or running: never evicted   */
    bool        pinned;    /* never evicted                               */
    uint64_t    bytes;     /* resident: what it holds; else its estimate  */
    bool        loadable;  /* may be loaded (not failed, header read)     */
} warm_cand;

typedef enum warm_action { WARM_NONE = 0, WARM_PRELOAD, WARM_SKIP } warm_action;

typedef struct warm_decision {
    warm_action     action;    /* PRELOAD: load now; SKIP: wanted, but not now */
    warm_prediction pred;
    int32_t         n_evict;   /* PRELOAD: how many residents it displaces      */
    int32_t         evict[8];  /* their indices into the candidates            */
    char            reason[256];
} warm_decision;

/* Decides, for each of cands[0..n), whether to load it ahead of the
 * interval [t_s, t_s + horizon_s) on a device with budget bytes of which
 * `used` are held: a model is preloaded when its chance reaches the
 * threshold and it fits, either in free memory or by evicting idle,
 * unpinned residents whose own chance is lower (nothing hotter is ever
 * displaced). Hotter candidates are placed first. out[i] answers cands[i];
 * every WARM_PRELOAD and WARM_SKIP carries its reason for the log. */
void warm_plan(const warm_history *h, const warm_cand *cands, int32_t n, uint64_t budget, uint64_t used,
               double t_s, double horizon_s, warm_decision *out);

/* The file: NOT_FOUND when absent (start empty), BAD_FILE with the reason
 * when unreadable (the caller warns and starts empty). warm_save writes a
 * temporary beside the file and renames it, so a crash never leaves half a
 * file. */
vki_status warm_load(warm_history *h, const char *path);
vki_status warm_save(const warm_history *h, const char *path);

#endif
