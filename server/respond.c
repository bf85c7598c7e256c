/*
 * respond.c: the answers: text and JSON responses with the queue,
 * served-by and route headers, OpenAI-shaped errors, the one vki_status ->
 * HTTP table, the growable buffers the routes write into, and the
 * per-route counters behind /metrics. Moved out of http.c, which keeps the
 * daemon and the requests' lifecycle.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/srv_internal.h"
#include "util.h"

void srv_count(srv_server *srv, srv_route route, unsigned status)
{
    int k = SRV_N_CODES - 1; /* 0: anything else */
    for (int i = 0; i < SRV_N_CODES - 1; i++)
        if (srv_codes[i] == (int)status) k = i;
    atomic_fetch_add(&srv->count[route][k], 1);
}

void srv_queue_note_job(srv_conn *cn, const vki_job_result *res)
{
    if (!res->queued) return;
    cn->has_queue = true;
    cn->queue_pos = res->queue_position;
    cn->queue_eta_s = res->eta_ms / 1e3;
}

void srv_queue_headers(const srv_conn *cn, struct MHD_Response *r)
{
    if (!cn->has_queue) return;
    char v[32];
    if (cn->queue_pos >= 0) {
        snprintf(v, sizeof v, "%d", cn->queue_pos);
        MHD_add_response_header(r, "X-Queue-Position", v);
    }
    snprintf(v, sizeof v, "%.1f", cn->queue_eta_s);
    MHD_add_response_header(r, "X-Queue-ETA", v);
}

static enum MHD_Result send_text(srv_conn *cn, unsigned status, char *text, const char *type, int retry_after)
{
    cn->log.status = status;
    if (!cn->c) {
        /* a body parsed with no connection (request.c's fuzz target): only recorded */
        free(text);
        srv_count(cn->srv, cn->route, status);
        return MHD_NO;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (retry_after > 0) {
        char v[32];
        snprintf(v, sizeof v, "%d", retry_after);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    if (status == 405 && srv_route_method[cn->route]) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, srv_route_method[cn->route]);
    srv_queue_headers(cn, r);
    if (status == 401) MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (cn->served_by) MHD_add_response_header(r, "X-Vkinfer-Served-By", cn->served_by);
    if (cn->route_hdr[0]) MHD_add_response_header(r, "X-Vkinfer-Route", cn->route_hdr);
    enum MHD_Result ret = srv_queue(cn, status, r);
    MHD_destroy_response(r);
    srv_count(cn->srv, cn->route, status);
    return ret;
}

enum MHD_Result srv_queue(srv_conn *cn, unsigned status, struct MHD_Response *r)
{
    /* a keep-alive client learns the server is going and goes elsewhere */
    if (atomic_load(&cn->srv->draining)) MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    return MHD_queue_response(cn->c, status, r);
}

bool srv_buf_append(srv_buf *b, const void *data, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = VKI_MAX(b->cap * 2, b->n + n + 256);
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return false;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = '\0';
    return true;
}

bool srv_buf_printf(srv_buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return false;
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return true;
        }
        size_t cap = VKI_MAX(b->cap * 2, b->n + (size_t)k + 256);
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return false;
        }
        b->p = np;
        b->cap = cap;
    }
}

char *srv_json_print(const cJSON *json)
{
    char *raw = json ? cJSON_PrintUnformatted(json) : NULL;
    if (!raw) return NULL;
    /* cJSON escapes controls but copies other bytes as they are */
    size_t n = strlen(raw);
    char *text = malloc(3 * n + 1);
    if (text) text[vki_utf8_sanitize(raw, n, text)] = '\0';
    free(raw);
    return text;
}

enum MHD_Result srv_send_text(srv_conn *cn, unsigned status, char *text, const char *type)
{
    return send_text(cn, status, text, type, 0);
}

enum MHD_Result srv_send_json(srv_conn *cn, unsigned status, cJSON *json)
{
    char *text = srv_json_print(json);
    cJSON_Delete(json);
    if (!text) return MHD_NO;
    return send_text(cn, status, text, "application/json", 0);
}

static const char *error_type(unsigned status)
{
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 409: return "conflict_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    case 503: return "service_unavailable_error";
    case 504: return "timeout_error";
    case 500: return "internal_error";
    default: return "invalid_request_error";
    }
}

/* The OpenAI error body, malloc'd (NULL when out of memory); a refusal
 * that knows the wait (429) says it as eta_s too. */
char *srv_error_text(const srv_conn *cn, unsigned status, const char *code, const char *msg)
{
    cJSON *root = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", error_type(status));
    cJSON_AddStringToObject(e, "code", code);
    if (cn->has_queue && (status == 429 || status == 503)) cJSON_AddNumberToObject(e, "eta_s", cn->queue_eta_s);
    char *text = srv_json_print(root);
    cJSON_Delete(root);
    return text;
}

enum MHD_Result srv_send_error(srv_conn *cn, unsigned status, const char *code, int retry_after, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (cn->capture) {
        /* off the handler: kept for the answer the handler gives later */
        *cn->capture = (srv_fb_error){.http = status, .code = code, .retry = retry_after};
        snprintf(cn->capture->msg, sizeof cn->capture->msg, "%s", msg);
        return MHD_YES;
    }
    char *text = srv_error_text(cn, status, code, msg);
    if (!text) return MHD_NO;
    return send_text(cn, status, text, "application/json", retry_after);
}

/* The one table from a scheduler status to an HTTP answer. */
void srv_status_http(vki_status s, double eta_s, unsigned *http_out, const char **code_out, int *retry_out)
{
    unsigned http = 500;
    const char *code = "internal_error";
    int retry = 0;
    switch (s) {
    case VKI_ERR_INVALID_ARGUMENT: http = 400; code = "invalid_request"; break;
    case VKI_ERR_UNSUPPORTED: http = 400; code = "unsupported"; break;
    case VKI_ERR_NOT_FOUND: http = 404; code = "model_not_found"; break;
    case VKI_ERR_QUEUE_FULL:
        http = 429;
        code = "queue_full";
        retry = (int)VKI_MAX(1.0, ceil(eta_s));
        break;
    case VKI_ERR_OUT_OF_MEMORY:
    case VKI_ERR_OUT_OF_DEVICE_MEMORY: http = 503; code = "out_of_memory"; break;
    case VKI_ERR_DEVICE_LOST:
        /* with a wait: the model's circuit breaker refused (a try of a job) */
        http = 503;
        code = eta_s > 0 ? "breaker_open" : "device_lost";
        retry = eta_s > 0 ? (int)VKI_MAX(1.0, ceil(eta_s)) : 0;
        break;
    case VKI_ERR_CANCELLED: http = 503; code = "shutting_down"; break;
    case VKI_ERR_TIMEOUT: http = 504; code = "timeout"; break;
    default: break;
    }
    *http_out = http;
    *code_out = code;
    *retry_out = retry;
}

enum MHD_Result srv_send_job_error(srv_conn *cn, const vki_job_result *res)
{
    const double retry_s = res->retry_after_ms / 1e3;
    if (res->refusal == VKI_FALLBACK_NONE) return srv_send_status(cn, res->status, res->message, retry_s);
    /* The first refusal, as the fallback triggers (svc_fb_precheck,
     * svc_fb_judge) found it. */
    if (res->refusal == VKI_FALLBACK_LOADING)
        return srv_send_error(cn, 503, "model_loading", (int)ceil(retry_s), "%s", res->message);
    unsigned http;
    const char *code;
    int retry;
    srv_status_http(res->status, retry_s, &http, &code, &retry);
    if (res->refusal_model_failed) {
        http = 503;
        code = "model_failed";
    }
    return srv_send_error(cn, http, code, retry, "%s", res->message[0] ? res->message : vki_status_str(res->status));
}

enum MHD_Result srv_send_status(srv_conn *cn, vki_status s, const char *msg, double eta_s)
{
    unsigned http;
    const char *code;
    int retry;
    srv_status_http(s, eta_s, &http, &code, &retry);
    if (s == VKI_ERR_QUEUE_FULL) { /* the wait goes in X-Queue-ETA and the body's eta_s too */
        cn->has_queue = true;
        cn->queue_pos = -1;
        cn->queue_eta_s = eta_s;
    }
    return srv_send_error(cn, http, code, retry, "%s", msg && msg[0] ? msg : vki_status_str(s));
}
