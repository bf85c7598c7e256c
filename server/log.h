/*
 * log.h: the server's log: one line per model state change (from the
 * scheduler's on_state hook) and one per answered request, as text (the
 * default) or JSON lines (--log-format json), to stderr. Each line is
 * written with one call under a lock, so threads never interleave, and is
 * valid UTF-8 like every byte the server prints.
 * Owns: its lock. Borrows: the FILE. Must not: block on the scheduler.
 */
#ifndef VKI_SRV_LOG_H
#define VKI_SRV_LOG_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "vkinfer.h"
#include "server/config.h"

typedef struct srv_log {
    FILE           *f;      /* borrowed; stderr in `vkinfer serve` */
    srv_log_format  format;
    pthread_mutex_t mu;     /* one line at a time                  */
    bool            debug;  /* VKI_LOG_LEVEL=debug: also srv_log_debug lines (read once at init) */
} srv_log;

void srv_log_init(srv_log *l, FILE *f, srv_log_format format);
void srv_log_deinit(srv_log *l);

/* The service's on_state hook (user = the srv_log): "model ID: STATE",
 * with where and how many MiB when resident, the load time, and why when
 * failed or refused. */
void srv_log_model(const vki_service_model_info *info, void *user);
/* The service's on_warm hook: one line per warm-up decision and its reason. */
void srv_log_warm(const vki_warm_event *ev, void *user);

/* One answered request. Counts are -1 where the route has none. */
typedef struct srv_log_req {
    const char *id;          /* "cmpl-7", "req-3"                               */
    const char *method;
    const char *path;        /* as the client sent it                           */
    const char *model;       /* NULL when the request named none that exists    */
    unsigned    status;      /* 499: the client closed before an answer was queued */
    int32_t     prompt_tokens, completion_tokens;
    double      queue_ms;    /* waiting for the scheduler; -1 = did not queue   */
    double      total_ms;    /* first byte of the request to the end of the answer */
    const char *priority;    /* the class it ran in; NULL = the route does not say */
    const char *session;     /* the client's session id (POST /generate); NULL = none */
} srv_log_req;

void srv_log_request(srv_log *l, const srv_log_req *r);

/* vki_set_warn_handler's fn (user = the srv_log): a "warning" event. */
void srv_log_warning(const char *msg, void *user);

/* A server event ("listening", "stopping") with a free-form message. */
void srv_log_event(srv_log *l, const char *event, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The same, written only at debug level (per-connection noise such as a
 * client that closed its connection early, which /metrics counts). */
void srv_log_debug(srv_log *l, const char *event, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
