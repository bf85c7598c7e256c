/*
 * events.c: the ring of recent events and the on_state hook that feeds it.
 * The hook keeps, per model, what it saw last (state, breaker trips, the
 * unload counters) so one state change becomes one event with its cause.
 */
#include "server/events.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SEEN 64

/* What the hook last saw of one model. */
typedef struct seen {
    char        id[128];
    vki_model_state state;
    uint64_t    trips, evictions, idle, yields, fallbacks;
} seen;

struct srv_events {
    pthread_mutex_t mu;
    srv_event      *ring;
    int32_t         cap, n, head; /* head: where the next one goes */
    uint64_t        seq;
    vki_service    *svc;
    seen            seen[MAX_SEEN];
    int32_t         n_seen;
};

srv_events *srv_events_create(int32_t capacity)
{
    if (capacity <= 0) capacity = 128;
    srv_events *ev = calloc(1, sizeof *ev);
    if (!ev) return NULL;
    ev->ring = calloc((size_t)capacity, sizeof *ev->ring);
    if (!ev->ring) {
        free(ev);
        return NULL;
    }
    ev->cap = capacity;
    pthread_mutex_init(&ev->mu, NULL);
    return ev;
}

void srv_events_destroy(srv_events *ev)
{
    if (!ev) return;
    pthread_mutex_destroy(&ev->mu);
    free(ev->ring);
    free(ev);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void vpush(srv_events *ev, const char *kind, const char *model, const char *fmt, va_list ap)
{
    srv_event e = {.t_s = now_s()};
    snprintf(e.kind, sizeof e.kind, "%s", kind);
    snprintf(e.model, sizeof e.model, "%s", model ? model : "");
    vsnprintf(e.detail, sizeof e.detail, fmt, ap);
    pthread_mutex_lock(&ev->mu);
    e.seq = ++ev->seq;
    ev->ring[ev->head] = e;
    ev->head = (ev->head + 1) % ev->cap;
    if (ev->n < ev->cap) ev->n++;
    pthread_mutex_unlock(&ev->mu);
}

void srv_events_push(srv_events *ev, const char *kind, const char *model, const char *fmt, ...)
{
    if (!ev) return;
    va_list ap;
    va_start(ap, fmt);
    vpush(ev, kind, model, fmt, ap);
    va_end(ap);
}

/* Records an event with a fixed text (no format string from the scheduler). */
static void push_text(srv_events *ev, const char *kind, const char *model, const char *text)
{
    srv_events_push(ev, kind, model, "%s", text);
}

int32_t srv_events_get(srv_events *ev, uint64_t after, srv_event *out, int32_t max)
{
    if (!ev || max <= 0) return 0;
    pthread_mutex_lock(&ev->mu);
    int32_t take = 0;
    /* the newest first, to count how many pass `after` and fit */
    for (int32_t k = 0; k < ev->n && take < max; k++) {
        const srv_event *e = &ev->ring[(ev->head - 1 - k + ev->cap) % ev->cap];
        if (e->seq <= after) break;
        take++;
    }
    for (int32_t k = 0; k < take; k++) out[k] = ev->ring[(ev->head - take + k + ev->cap) % ev->cap];
    pthread_mutex_unlock(&ev->mu);
    return take;
}

void srv_events_attach(srv_events *ev, vki_service *svc)
{
    if (!ev) return;
    pthread_mutex_lock(&ev->mu);
    ev->svc = svc;
    pthread_mutex_unlock(&ev->mu);
}

/* The model's record (ev->mu held); NULL when the table is full. */
static seen *find_seen(srv_events *ev, const char *id)
{
    for (int32_t i = 0; i < ev->n_seen; i++)
        if (!strcmp(ev->seen[i].id, id)) return &ev->seen[i];
    if (ev->n_seen == MAX_SEEN) return NULL;
    seen *m = &ev->seen[ev->n_seen++];
    memset(m, 0, sizeof *m);
    snprintf(m->id, sizeof m->id, "%s", id);
    m->state = VKI_MODEL_UNLOADED;
    return m;
}

static double mib(uint64_t b) { return (double)b / (1024.0 * 1024.0); }

void srv_events_on_state(const vki_service_model_info *info, void *user)
{
    srv_events *ev = user;
    if (!ev || !info || !info->id) return;
    pthread_mutex_lock(&ev->mu);
    vki_service *svc = ev->svc;
    pthread_mutex_unlock(&ev->mu);
    /* The counters outside ev->mu: reading them takes the model's locks. */
    vki_service_model_stats st = {0};
    const int32_t idx = svc ? vki_service_model_find(svc, info->id) : -1;
    if (idx >= 0) vki_service_get_model_stats(svc, idx, &st);
    pthread_mutex_lock(&ev->mu);
    seen *m = find_seen(ev, info->id);
    if (!m) {
        pthread_mutex_unlock(&ev->mu);
        return;
    }
    seen was = *m;
    m->state = info->state;
    m->trips = info->breaker_trips;
    if (idx >= 0) {
        m->evictions = st.evictions;
        m->idle = st.idle_unloads;
        m->yields = st.yields;
        m->fallbacks = st.cpu_fallbacks;
    }
    pthread_mutex_unlock(&ev->mu);

    if (info->breaker_trips > was.trips)
        srv_events_push(ev, "breaker_trip", info->id, "circuit breaker opened (%d failures in the window, %llu trips)",
                        info->breaker_failures, (unsigned long long)info->breaker_trips);
    if (info->state == was.state) return; /* an error text or a file changed: not an event here */
    switch (info->state) {
    case VKI_MODEL_RESIDENT_GPU:
    case VKI_MODEL_RESIDENT_CPU:
        if (idx >= 0 && st.cpu_fallbacks > was.fallbacks)
            srv_events_push(ev, "cpu_fallback", info->id, "loaded on the CPU as the GPU budget could not hold it "
                            "(%.0f MiB, %.0f ms)", mib(info->bytes), info->load_ms);
        else
            srv_events_push(ev, "load", info->id, "loaded on %s (%.0f MiB, %.0f ms)", info->backend, mib(info->bytes),
                            info->load_ms);
        break;
    case VKI_MODEL_UNLOADED:
        if (!vki_model_state_resident(was.state)) break; /* a refused load: its reason is in the model's error */
        if (idx >= 0 && st.evictions > was.evictions)
            push_text(ev, "eviction", info->id, "unloaded to make room for another model");
        else if (idx >= 0 && st.yields > was.yields)
            push_text(ev, "yield", info->id, "gave the device up at the end of its turn");
        else if (idx >= 0 && st.idle_unloads > was.idle)
            push_text(ev, "idle_unload", info->id, "unloaded after its keep_alive");
        else if (info->message[0])
            push_text(ev, "unload", info->id, info->message);
        else
            push_text(ev, "unload", info->id, "unloaded");
        break;
    case VKI_MODEL_FAILED:
        push_text(ev, "failed", info->id, info->message[0] ? info->message : "failed");
        break;
    case VKI_MODEL_LOADING:
        break; /* the load's end is the event */
    }
}
