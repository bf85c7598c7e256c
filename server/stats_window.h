/*
 * stats_window.h: rolling traffic figures for the status route: one bucket
 * per wall-clock minute over the last few minutes (requests, errors,
 * tokens, and a log-spaced latency histogram for percentiles). The server
 * adds each finished model request; readers take a summary. Thread-safe
 * (one mutex; adds and reads are short).
 * Must not: know about HTTP or the scheduler; the caller passes the time.
 */
#ifndef VKI_STATS_WINDOW_H
#define VKI_STATS_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

#define SRV_WINDOW_MAX_MINUTES 60

typedef struct srv_window srv_window;

/* One finished request. */
typedef struct srv_window_sample {
    double  t_s;           /* when it ended, unix seconds                 */
    double  latency_ms;    /* arrival to end                              */
    bool    error;         /* answered with a status >= 400 (or not at all) */
    int64_t prompt_tokens, completion_tokens; /* 0 when none               */
} srv_window_sample;

/* One minute of the window (oldest first in srv_window_summary). */
typedef struct srv_window_minute {
    double   t_s;          /* the minute's start, unix seconds            */
    uint64_t requests, errors;
    uint64_t prompt_tokens, completion_tokens;
    double   p50_ms, p95_ms, p99_ms; /* 0 when it had no request         */
} srv_window_minute;

typedef struct srv_window_summary {
    int32_t  n_minutes;    /* minutes covered (the window's length)       */
    double   span_s;       /* seconds the rates are over: from the window's
                              start or start_s, whichever is later, to now  */
    uint64_t requests, errors, prompt_tokens, completion_tokens;
    double   requests_per_min, tokens_per_s; /* over span_s                */
    double   p50_ms, p95_ms, p99_ms;         /* over the whole window; 0 when empty */
    srv_window_minute minute[SRV_WINDOW_MAX_MINUTES];
} srv_window_summary;

/* A window of n_minutes (1 .. SRV_WINDOW_MAX_MINUTES; 0 = 15) whose
 * traffic began at start_s (unix seconds; the rates of a young server are
 * over its life, not the whole window). NULL on OOM or a bad length. */
srv_window *srv_window_create(int32_t n_minutes, double start_s);
void        srv_window_destroy(srv_window *w); /* NULL-safe */
/* Adds a finished request. A sample older than the window is dropped;
 * NULL w is a no-op. */
void        srv_window_add(srv_window *w, const srv_window_sample *s);
/* The window as seen at now_s: the n_minutes minutes ending with now_s's
 * (empty ones included), their sums and percentiles. Percentiles come from
 * the histogram: within 5 % of the true value. */
void        srv_window_get(srv_window *w, double now_s, srv_window_summary *out);

#endif
