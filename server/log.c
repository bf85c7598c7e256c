/*
 * log.c: the server's log lines (log.h). Text lines read
 *   2025-06-01T10:00:00.123Z model default: resident-cpu on cpu (...), 14.2 MiB, loaded in 120 ms
 *   2025-06-01T10:00:01.000Z request cmpl-3 POST /v1/completions model=default status=200 ...
 * and JSON lines carry the same fields by name. Both go through the one
 * UTF-8 rule (engine/common/util.h), since errors quote file contents.
 */
#define _POSIX_C_SOURCE 200809L
#include "server/log.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/srv_internal.h"
#include "util.h"

void srv_log_init(srv_log *l, FILE *f, srv_log_format format)
{
    l->f = f;
    l->format = format;
    const char *level = getenv("VKI_LOG_LEVEL");
    l->debug = level && !strcmp(level, "debug");
    pthread_mutex_init(&l->mu, NULL);
}

void srv_log_deinit(srv_log *l)
{
    if (!l || !l->f) return;
    pthread_mutex_destroy(&l->mu);
    l->f = NULL;
}

/* UTC with milliseconds: 2025-06-01T10:00:00.123Z */
static void now_iso(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* Writes text[0..n) and a newline as one line of valid UTF-8. */
static void put_line(srv_log *l, const char *text, size_t n)
{
    char *clean = malloc(3 * n + 1);
    if (!clean) return;
    size_t k = vki_utf8_sanitize(text, n, clean);
    for (size_t i = 0; i < k; i++)
        if (clean[i] == '\n' || clean[i] == '\r') clean[i] = ' '; /* one event, one line */
    clean[k++] = '\n';
    pthread_mutex_lock(&l->mu);
    fwrite(clean, 1, k, l->f);
    fflush(l->f);
    pthread_mutex_unlock(&l->mu);
    free(clean);
}

/* A JSON object opened with time and event; put_json closes and writes it. */
static cJSON *json_head(const char *event)
{
    char t[40];
    now_iso(t, sizeof t);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "time", t);
    cJSON_AddStringToObject(o, "event", event);
    return o;
}

static void put_json(srv_log *l, cJSON *o)
{
    char *s = srv_json_print(o);
    cJSON_Delete(o);
    if (s) put_line(l, s, strlen(s));
    free(s);
}

/* A text line opened with the time. */
static void text_head(srv_buf *b)
{
    char t[40];
    now_iso(t, sizeof t);
    srv_buf_printf(b, "%s ", t);
}

static void put_text(srv_log *l, srv_buf *b)
{
    if (!b->oom && b->p) put_line(l, b->p, b->n);
    free(b->p);
}

void srv_log_model(const vki_service_model_info *info, void *user)
{
    srv_log *l = user;
    const bool resident = vki_model_state_resident(info->state);
    const double mib = (double)info->bytes / 1048576.0;
    if (l->format == SRV_LOG_JSON) {
        cJSON *o = json_head("model");
        cJSON_AddStringToObject(o, "model", info->id);
        cJSON_AddStringToObject(o, "state", vki_model_state_name(info->state));
        cJSON_AddStringToObject(o, "kind", vki_model_kind_name(info->kind));
        cJSON_AddStringToObject(o, "path", info->path);
        if (resident) {
            cJSON_AddStringToObject(o, "backend", info->backend);
            cJSON_AddNumberToObject(o, "resident_mib", (double)(int64_t)(mib * 10 + 0.5) / 10);
            cJSON_AddNumberToObject(o, "load_ms", (double)(int64_t)(info->load_ms + 0.5));
        }
        if (info->message[0]) cJSON_AddStringToObject(o, "error", info->message);
        put_json(l, o);
        return;
    }
    srv_buf b = {0};
    text_head(&b);
    srv_buf_printf(&b, "model %s: %s", info->id, vki_model_state_name(info->state));
    if (info->state == VKI_MODEL_LOADING) srv_buf_printf(&b, " %s", info->path);
    if (resident)
        srv_buf_printf(&b, " on %s, %.1f MiB, loaded in %.1f ms", info->backend, mib, info->load_ms);
    if (info->message[0]) srv_buf_printf(&b, ": %s", info->message);
    put_text(l, &b);
}

void srv_log_warm(const vki_warm_event *ev, void *user)
{
    srv_log *l = user;
    if (l->format == SRV_LOG_JSON) {
        cJSON *o = json_head("warmup");
        cJSON_AddStringToObject(o, "model", ev->model);
        cJSON_AddStringToObject(o, "action", ev->action);
        cJSON_AddNumberToObject(o, "p", (double)(int64_t)(ev->p * 100 + 0.5) / 100);
        cJSON_AddStringToObject(o, "reason", ev->reason);
        put_json(l, o);
        return;
    }
    srv_buf b = {0};
    text_head(&b);
    srv_buf_printf(&b, "warm-up: %s %s: %s", ev->action, ev->model, ev->reason);
    put_text(l, &b);
}

void srv_log_request(srv_log *l, const srv_log_req *r)
{
    if (l->format == SRV_LOG_JSON) {
        cJSON *o = json_head("request");
        cJSON_AddStringToObject(o, "id", r->id);
        cJSON_AddStringToObject(o, "method", r->method);
        cJSON_AddStringToObject(o, "path", r->path);
        if (r->model) cJSON_AddStringToObject(o, "model", r->model);
        else cJSON_AddNullToObject(o, "model");
        cJSON_AddNumberToObject(o, "status", r->status);
        if (r->prompt_tokens >= 0) cJSON_AddNumberToObject(o, "prompt_tokens", r->prompt_tokens);
        if (r->completion_tokens >= 0) cJSON_AddNumberToObject(o, "completion_tokens", r->completion_tokens);
        if (r->queue_ms >= 0) cJSON_AddNumberToObject(o, "queue_ms", (double)(int64_t)(r->queue_ms * 100 + 0.5) / 100);
        cJSON_AddNumberToObject(o, "total_ms", (double)(int64_t)(r->total_ms * 100 + 0.5) / 100);
        if (r->priority) cJSON_AddStringToObject(o, "priority", r->priority);
        if (r->session) cJSON_AddStringToObject(o, "session_id", r->session);
        put_json(l, o);
        return;
    }
    srv_buf b = {0};
    text_head(&b);
    srv_buf_printf(&b, "request %s %s %s model=%s status=%u", r->id, r->method, r->path, r->model ? r->model : "-",
                   r->status);
    if (r->prompt_tokens >= 0) srv_buf_printf(&b, " prompt_tokens=%d", r->prompt_tokens);
    if (r->completion_tokens >= 0) srv_buf_printf(&b, " completion_tokens=%d", r->completion_tokens);
    if (r->queue_ms >= 0) srv_buf_printf(&b, " queue_ms=%.2f", r->queue_ms);
    srv_buf_printf(&b, " total_ms=%.2f", r->total_ms);
    if (r->priority) srv_buf_printf(&b, " priority=%s", r->priority);
    if (r->session) srv_buf_printf(&b, " session_id=%s", r->session);
    put_text(l, &b);
}

static void log_event(srv_log *l, const char *event, const char *msg)
{
    if (l->format == SRV_LOG_JSON) {
        cJSON *o = json_head(event);
        cJSON_AddStringToObject(o, "message", msg);
        put_json(l, o);
        return;
    }
    srv_buf b = {0};
    text_head(&b);
    srv_buf_printf(&b, "%s: %s", event, msg);
    put_text(l, &b);
}

void srv_log_event(srv_log *l, const char *event, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_event(l, event, msg);
}

void srv_log_debug(srv_log *l, const char *event, const char *fmt, ...)
{
    if (!l || !l->debug) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_event(l, event, msg);
}

void srv_log_warning(const char *msg, void *user) { srv_log_event(user, "warning", "%s", msg); }
