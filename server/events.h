/*
 * events.h: the recent-events ring the status route shows: model loads,
 * CPU fallbacks, evictions and other unloads, failures, breaker trips and
 * request fallbacks, each with its time, model and reason. Fixed size: the
 * oldest entry goes first. srv_events_on_state turns the service's
 * on_state calls into events (the reason of an unload is read from the
 * model's counters, which the scheduler bumps before it tells).
 * Thread-safe (one mutex).
 * Must not: know about HTTP.
 */
#ifndef VKI_SRV_EVENTS_H
#define VKI_SRV_EVENTS_H

#include <stdint.h>

#include "vkinfer.h"

typedef struct srv_events srv_events;

typedef struct srv_event {
    uint64_t seq;          /* 1, 2, ...: a reader asks for what came after one */
    double   t_s;          /* unix seconds                                 */
    char     kind[16];     /* "load", "cpu_fallback", "eviction", "idle_unload",
                              "yield", "breaker_trip", "unload", "failed",
                              "fallback" (a request served by another model) */
    char     model[128];
    char     detail[512];  /* the reason, with the figures                 */
} srv_event;

/* A ring of `capacity` events (0 = 128). NULL on OOM. */
srv_events *srv_events_create(int32_t capacity);
void        srv_events_destroy(srv_events *ev); /* NULL-safe */
/* Records an event now. NULL ev is a no-op. */
void        srv_events_push(srv_events *ev, const char *kind, const char *model, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Copies up to max of the newest events with seq > after, oldest first;
 * returns how many. */
int32_t     srv_events_get(srv_events *ev, uint64_t after, srv_event *out, int32_t max);

/* The service whose counters srv_events_on_state reads (set once it
 * exists; until then unloads are recorded as "unload"). */
void        srv_events_attach(srv_events *ev, vki_service *svc);
/* A vki_service_params.on_state hook (user = the srv_events). */
void        srv_events_on_state(const vki_service_model_info *info, void *user);

#endif
