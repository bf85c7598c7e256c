/*
 * http.c: the libmicrohttpd daemon and each request's lifecycle: the body
 * gathered across handler calls (with the size limit), routing, methods,
 * bearer-key auth, the one vki_status -> HTTP table, OpenAI-shaped errors,
 * and the per-route counters behind /metrics.
 *
 * A small fixed pool of polling threads serves every connection; no handler
 * ever blocks one: a request waiting for the scheduler suspends its
 * connection, and the scheduler's token and completion events resume it
 * (srv_watch, srv_wait; streams' content readers the same way). What keeps slow
 * clients from taking the server: a per-address limit, a total one past
 * which the oldest connection still sending its request (or idle between
 * requests) is evicted for a new one, a few slots past that which serve only
 * /health, and a watchdog that closes a connection whose headers or body
 * have not arrived by their absolute deadline (MHD's own timeout restarts
 * with every byte) and wakes a suspended one whose client left. A body over
 * max_body is cut off at the first byte past it. srv_quiesce and srv_stop
 * are the graceful shutdown: stop accepting, let what is in flight finish,
 * then end the rest with an error answer.
 */
#include <arpa/inet.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/events.h"
#include "server/srv_internal.h"
#include "server/stats_window.h"
#include "util.h"

const char *const srv_route_path[SRV_N_ROUTES] = {"/health",       "/v1/models", "/v1/completions",
                                                  "/v1/chat/completions", "/v1/embeddings", "/metrics",
                                                  "/v1/system/status", "/ui", "/admin/reload", "/generate", "other"};
static const char *const route_method[SRV_N_ROUTES] = {"GET", "GET", "POST", "POST", "POST", "GET", "GET", "GET", "POST",
                                                       "POST", NULL};
const int srv_codes[SRV_N_CODES] = {200, 202, 304, 400, 401, 403, 404, 405, 409, 413, 429, 500, 503, 504, 0};

void srv_count(srv_server *srv, srv_route route, unsigned status)
{
    int k = SRV_N_CODES - 1; /* 0: anything else */
    for (int i = 0; i < SRV_N_CODES - 1; i++)
        if (srv_codes[i] == (int)status) k = i;
    atomic_fetch_add(&srv->count[route][k], 1);
}

bool srv_client_gone(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return false;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
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
    if (status == 405 && route_method[cn->route]) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, route_method[cn->route]);
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
static char *error_text(const srv_conn *cn, unsigned status, const char *code, const char *msg)
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
    char *text = error_text(cn, status, code, msg);
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

/* ===== Shared request fields ============================================== */

int32_t srv_pick_model(srv_conn *cn, const cJSON *body, vki_model_kind kind, enum MHD_Result *ret)
{
    vki_service *svc = cn->srv->svc;
    const cJSON *jm = cJSON_GetObjectItemCaseSensitive(body, "model");
    int32_t i = -1;
    if (jm && !cJSON_IsNull(jm)) {
        if (!cJSON_IsString(jm)) {
            *ret = srv_send_error(cn, 400, "invalid_field", 0, "model: expected a string");
            return -1;
        }
        i = vki_service_model_find(svc, jm->valuestring);
        if (i < 0) {
            *ret = srv_send_error(cn, 404, "model_not_found", 0, "model '%s' does not exist (GET /v1/models lists them)",
                                  jm->valuestring);
            return -1;
        }
    } else {
        vki_service_model_info info;
        for (int32_t k = 0; k < vki_service_model_count(svc) && i < 0; k++) {
            vki_service_get_model_info(svc, k, &info);
            if (info.kind == kind && !info.removing) i = k;
        }
        if (i < 0) {
            *ret = srv_send_error(cn, 400, "invalid_field", 0, "model: required (no %s model is configured)",
                                  vki_model_kind_name(kind));
            return -1;
        }
    }
    vki_service_model_info info;
    vki_service_get_model_info(svc, i, &info);
    cn->log.model = info.id;
    if (info.kind != kind) {
        *ret = srv_send_error(cn, 400, "wrong_model_kind", 0, "model '%s' is a%s %s model; %s needs a%s %s model", info.id,
                              info.kind == VKI_MODEL_KIND_EMBEDDING ? "n" : "", vki_model_kind_name(info.kind),
                              srv_route_path[cn->route], kind == VKI_MODEL_KIND_EMBEDDING ? "n" : "",
                              vki_model_kind_name(kind));
        return -1;
    }
    /* A failed model, or one still opening its file, is the service's to
     * judge when the job tries it: another model may serve the request. */
    return i;
}

bool srv_parse_common(srv_conn *cn, const cJSON *body, int32_t model, vki_priority route_default, vki_priority *prio,
                      double *deadline_ms, enum MHD_Result *ret)
{
    const srv_config *cfg = cn->srv->cfg;
    *prio = route_default;
    if (model < cfg->svc.n_models && cfg->svc.models[model].has_priority) *prio = cfg->svc.models[model].priority;
    const cJSON *jp = cJSON_GetObjectItemCaseSensitive(body, "priority");
    if (jp && !cJSON_IsNull(jp) && (!cJSON_IsString(jp) || !vki_priority_from_name(jp->valuestring, prio))) {
        *ret = srv_send_error(cn, 400, "invalid_field", 0, "priority: expected \"interactive\", \"normal\" or "
                              "\"batch\" (or a service name: \"chat\", \"npc\", \"search\", \"summary\")");
        return false;
    }
    *deadline_ms = 0;
    const cJSON *jt = cJSON_GetObjectItemCaseSensitive(body, "timeout");
    if (jt && !cJSON_IsNull(jt)) {
        if (!cJSON_IsNumber(jt) || !(jt->valuedouble > 0) || jt->valuedouble > 1e7) {
            *ret = srv_send_error(cn, 400, "invalid_field", 0, "timeout: expected seconds, a number > 0");
            return false;
        }
        *deadline_ms = vki_time_ms() + jt->valuedouble * 1e3;
    }
    return true;
}

/* ===== Request lifecycle ================================================== */

static srv_route find_route(const char *url)
{
    for (int r = 0; r < SRV_ROUTE_OTHER; r++)
        if (!strcmp(url, srv_route_path[r])) return (srv_route)r;
    if (!strcmp(url, "/")) return SRV_ROUTE_UI;
    /* GET /v1/models/{id} (the SDK's models.retrieve) */
    if (!strncmp(url, "/v1/models/", 11) && url[11]) return SRV_ROUTE_MODELS;
    /* POST /admin/models/{id}/reload */
    const size_t n = strlen(url);
    if (!strncmp(url, "/admin/models/", 14) && n > 14 + 7 && !strcmp(url + n - 7, "/reload")) return SRV_ROUTE_ADMIN;
    return SRV_ROUTE_OTHER;
}

/* Constant-time comparison, so the key cannot be guessed byte by byte. */
static bool key_equal(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    unsigned char d = (unsigned char)(na != nb);
    for (size_t i = 0; i < na; i++) d |= (unsigned char)(a[i] ^ b[i % (nb ? nb : 1)]);
    return d == 0;
}

static enum MHD_Result dispatch(srv_conn *cn, const char *url, const char *method)
{
    srv_server *srv = cn->srv;
    if (cn->route == SRV_ROUTE_OTHER) return srv_send_error(cn, 404, "not_found", 0, "no route %s %s", method, url);
    if (strcmp(method, route_method[cn->route]))
        return srv_send_error(cn, 405, "method_not_allowed", 0, "%s takes %s, not %s", srv_route_path[cn->route],
                              route_method[cn->route], method);
    /* The page holds no data: it asks for the key and sends it with each read. */
    if (srv->api_key && cn->route != SRV_ROUTE_HEALTH && cn->route != SRV_ROUTE_UI) {
        const char *h = MHD_lookup_connection_value(cn->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        /* the scheme is case-insensitive (RFC 9110 11.1) */
        if (!h || strncasecmp(h, "Bearer ", 7) || !key_equal(h + 7, srv->api_key))
            return srv_send_error(cn, 401, "invalid_api_key", 0, "%s",
                                  h ? "the bearer key is not valid" : "missing \"Authorization: Bearer KEY\" header");
    }
    if (cn->too_big)
        return srv_send_error(cn, 413, "body_too_large", 0, "the body is over the limit of %zu bytes",
                              srv->cfg->max_body);
    switch (cn->route) {
    case SRV_ROUTE_ADMIN: return srv_route_admin(cn);
    case SRV_ROUTE_HEALTH: return srv_route_health(cn);
    case SRV_ROUTE_MODELS: return cn->model_id[0] ? srv_route_model(cn, cn->model_id) : srv_route_models(cn);
    case SRV_ROUTE_METRICS: return srv_route_metrics(cn);
    case SRV_ROUTE_STATUS: return srv_route_status(cn);
    case SRV_ROUTE_UI: return srv_route_ui(cn);
    default: break;
    }
    const char *end = NULL;
    cJSON *body = cJSON_ParseWithLengthOpts(cn->body.p ? cn->body.p : "", cn->body.n, &end, false);
    if (!body || !cJSON_IsObject(body)) {
        size_t at = body ? 0 : (size_t)(cJSON_GetErrorPtr() && cn->body.p ? cJSON_GetErrorPtr() - cn->body.p : 0);
        cJSON_Delete(body);
        if (!cn->body.n) return srv_send_error(cn, 400, "invalid_json", 0, "the body is empty; expected a JSON object");
        return srv_send_error(cn, 400, "invalid_json", 0, body ? "the body is not a JSON object"
                                                                : "the body is not valid JSON (error near byte %zu)", at);
    }
    /* The request holds its body until it ends (or srv_drop_json): a wait
     * may try the next fallback model with it. */
    cn->json = body;
    switch (cn->route) {
    case SRV_ROUTE_COMPLETIONS: return srv_route_generate(cn, body, false);
    case SRV_ROUTE_CHAT: return srv_route_generate(cn, body, true);
    case SRV_ROUTE_GENERATE: return srv_route_generate_legacy(cn, body);
    default: return srv_route_embeddings(cn, body);
    }
}

void srv_drop_json(srv_conn *cn)
{
    cJSON_Delete(cn->json);
    cn->json = NULL;
}

/* ===== Connections and their deadlines =================================== */

/* How many connections past max_connections are kept for /health (and
 * only for it), and how long such a connection may take over its headers. */
#define RESERVE_CONNS 16
#define RESERVE_HEADER_MS 2000.0
/* How often the watchdog looks at the deadlines and suspended clients. */
#define WATCHDOG_MS 100
/* The polling threads: fixed, since none ever waits for the scheduler; a
 * few so one parsing a large body or tokenizing a long prompt does not
 * hold up /health. */
#define HTTP_THREADS 4
/* After the drain, how long the error answers of the requests cancelled
 * then may take to be written before the connections are closed. */
#define FLUSH_MS 5000.0

typedef enum sock_phase { SOCK_HEADERS = 0, SOCK_BODY, SOCK_ANSWER } sock_phase;

/* One open connection (MHD's socket context), in srv->socks under socks_mu
 * from MHD's STARTED notice to its CLOSED notice; MHD closes the socket
 * only after CLOSED returns, so the watchdog may shut fd down while the
 * entry is listed. */
typedef struct srv_sock {
    struct srv_sock *prev, *next;
    int              fd;
    double           t0;       /* vki_time_ms when the current request began to arrive */
    sock_phase       phase;
    bool             reserved; /* past max_connections: /health only */
    bool             cut;      /* the server shut it down            */
    srv_conn        *cn;       /* its request, from the first handler call to on_completed */
} srv_sock;

static srv_sock *conn_sock(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* Moves the connection's current request to `phase`; SOCK_HEADERS starts the
 * next request's clock (keep-alive). */
static void sock_set_phase(srv_server *srv, struct MHD_Connection *c, sock_phase phase)
{
    srv_sock *k = conn_sock(c);
    if (!k) return;
    pthread_mutex_lock(&srv->socks_mu);
    k->phase = phase;
    if (phase == SOCK_HEADERS) k->t0 = vki_time_ms();
    pthread_mutex_unlock(&srv->socks_mu);
}

/* Shuts a connection down (socks_mu held); MHD then sees it closed. */
static void sock_cut(srv_server *srv, srv_sock *k)
{
    if (k->cut) return;
    if (k->fd >= 0) shutdown(k->fd, SHUT_RDWR);
    k->cut = true;
    srv->n_live--;
}

/* Makes room for a new connection when the server is full (socks_mu held):
 * the connection that has waited longest for its request's headers or body,
 * or sat idle between requests longest, is closed. Those being answered are
 * never taken. */
static bool evict_one(srv_server *srv)
{
    srv_sock *oldest = NULL;
    for (srv_sock *k = srv->socks; k; k = k->next)
        if (!k->cut && k->fd >= 0 && k->phase != SOCK_ANSWER && (!oldest || k->t0 < oldest->t0)) oldest = k;
    if (!oldest) return false;
    sock_cut(srv, oldest);
    atomic_fetch_add(&srv->evictions, 1);
    srv_log_debug(srv->log, "http", "evicted a connection %s for %.0f ms to make room",
                  oldest->phase == SOCK_BODY ? "sending its body" : "idle or sending headers",
                  vki_time_ms() - oldest->t0);
    return true;
}

/* MHD has accepted a connection that passed its total and per-address
 * limits: past max_connections a slow or idle one makes room for it; with
 * none, it may take one of the /health slots; past those it is refused. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t len)
{
    (void)addr;
    (void)len;
    srv_server *srv = cls;
    if (atomic_load(&srv->draining)) return MHD_NO;
    pthread_mutex_lock(&srv->socks_mu);
    if (srv->n_live >= srv->cfg->max_conns) evict_one(srv);
    bool ok = srv->n_live < srv->cfg->max_conns + RESERVE_CONNS;
    pthread_mutex_unlock(&srv->socks_mu);
    if (!ok) srv_log_debug(srv->log, "http", "refused a connection: %d open, none idle", (int)srv->cfg->max_conns);
    return ok ? MHD_YES : MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    srv_server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        srv_sock *k = calloc(1, sizeof *k);
        if (!k) return; /* on_request refuses it */
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        k->fd = ci ? ci->connect_fd : -1;
        k->t0 = vki_time_ms();
        pthread_mutex_lock(&srv->socks_mu);
        k->reserved = srv->n_live >= srv->cfg->max_conns;
        k->next = srv->socks;
        if (srv->socks) srv->socks->prev = k;
        srv->socks = k;
        srv->n_socks++;
        srv->n_live++;
        pthread_mutex_unlock(&srv->socks_mu);
        *socket_context = k;
        return;
    }
    srv_sock *k = *socket_context;
    if (!k) return;
    pthread_mutex_lock(&srv->socks_mu);
    if (k->prev) k->prev->next = k->next;
    else srv->socks = k->next;
    if (k->next) k->next->prev = k->prev;
    srv->n_socks--;
    if (!k->cut) srv->n_live--;
    pthread_mutex_unlock(&srv->socks_mu);
    free(k);
    *socket_context = NULL;
}

/* Resumes cn if it is suspended, else marks the news for its next look
 * (socks_mu held). */
static void wake_locked(srv_conn *cn)
{
    cn->signalled = true;
    if (!cn->suspended) return;
    cn->suspended = false;
    MHD_resume_connection(cn->c);
}

/* A job's news (a service thread, its locks held: only wakes). */
static void on_news(void *arg)
{
    srv_conn *cn = arg;
    pthread_mutex_lock(&cn->srv->socks_mu);
    wake_locked(cn);
    pthread_mutex_unlock(&cn->srv->socks_mu);
}

/* Shuts down each connection whose headers or body are past their absolute
 * deadline (MHD then sees it closed), and wakes each suspended one whose
 * client has gone (MHD does not watch suspended sockets), so its wait
 * cancels the request. */
static void *watchdog_main(void *arg)
{
    srv_server *srv = arg;
    const srv_config *cfg = srv->cfg;
    pthread_mutex_lock(&srv->socks_mu);
    while (!atomic_load(&srv->stopping)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += WATCHDOG_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&srv->socks_cv, &srv->socks_mu, &ts);
        double now = vki_time_ms();
        for (srv_sock *k = srv->socks; k; k = k->next) {
            if (k->cut || k->fd < 0) continue;
            if (k->phase == SOCK_ANSWER) {
                if (k->cn && k->cn->suspended) {
                    struct pollfd p = {.fd = k->fd, .events = POLLRDHUP};
                    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) wake_locked(k->cn);
                }
                continue;
            }
            double limit = k->phase == SOCK_BODY ? cfg->body_timeout_ms : cfg->header_timeout_ms;
            if (k->reserved) limit = VKI_MIN(limit, RESERVE_HEADER_MS);
            if (now - k->t0 <= limit) continue;
            sock_cut(srv, k);
            srv_log_debug(srv->log, "http", "closed a connection whose %s took over %.0f ms",
                          k->phase == SOCK_BODY ? "body" : "headers", limit);
        }
    }
    pthread_mutex_unlock(&srv->socks_mu);
    return NULL;
}

/* ===== Waiting without a thread ========================================== */

void srv_arm(srv_conn *cn)
{
    pthread_mutex_lock(&cn->srv->socks_mu);
    cn->signalled = false;
    pthread_mutex_unlock(&cn->srv->socks_mu);
}

bool srv_pause(srv_conn *cn)
{
    pthread_mutex_lock(&cn->srv->socks_mu);
    /* srv_stop resumes every connection before the daemon stops: none may
     * suspend after that */
    bool pause = !cn->signalled && !atomic_load(&cn->srv->stopping);
    if (pause) {
        cn->suspended = true;
        MHD_suspend_connection(cn->c);
    }
    pthread_mutex_unlock(&cn->srv->socks_mu);
    return pause;
}

void srv_unwatch(srv_conn *cn)
{
    for (int32_t i = 0; i < cn->n_watched_jobs; i++) vki_job_set_news(cn->watched_jobs[i], NULL, NULL);
    cn->n_watched_jobs = 0;
}

/* Runs the continuation until it answers or has to wait; a wait suspends
 * the connection until the scheduler or the watchdog wakes it. */
static enum MHD_Result run_wait(srv_conn *cn)
{
    for (;;) {
        srv_arm(cn);
        bool wait = false;
        enum MHD_Result ret = cn->step(cn, cn->state, &wait);
        if (!wait) {
            cn->step = NULL;
            cn->drop = NULL;
            cn->state = NULL;
            return ret;
        }
        if (srv_pause(cn)) return MHD_YES;
        if (atomic_load(&cn->srv->stopping)) return MHD_NO; /* closing: cn->drop frees the state */
    }
}

void srv_job_wake(const vki_job_result *res, void *user)
{
    (void)res;
    on_news(user);
}

/* What a job's hook wakes: the connection while it lasts. The connection
 * and a stream's response each hold a reference; on_completed clears cn. */
struct srv_waker {
    atomic_int  refs;
    srv_server *srv;
    srv_conn   *cn; /* socks_mu; NULL once the connection ended */
};

static void on_job_news(void *arg)
{
    srv_waker *w = arg;
    pthread_mutex_lock(&w->srv->socks_mu);
    if (w->cn) wake_locked(w->cn);
    pthread_mutex_unlock(&w->srv->socks_mu);
}

void srv_waker_drop(srv_waker *w)
{
    if (w && atomic_fetch_sub(&w->refs, 1) == 1) free(w);
}

srv_waker *srv_watch_handover(srv_conn *cn)
{
    cn->n_watched_jobs = 0;
    if (cn->waker) atomic_fetch_add(&cn->waker->refs, 1);
    return cn->waker;
}

bool srv_watch(srv_conn *cn, vki_job *job)
{
    if (!cn->waker) {
        if (!(cn->waker = calloc(1, sizeof *cn->waker))) return false;
        atomic_init(&cn->waker->refs, 1);
        cn->waker->srv = cn->srv;
        cn->waker->cn = cn;
    }
    if (cn->n_watched_jobs == cn->cap_watched_jobs) {
        int32_t cap = VKI_MAX(4, 2 * cn->cap_watched_jobs);
        vki_job **nw = realloc(cn->watched_jobs, sizeof *nw * (size_t)cap);
        if (!nw) return false;
        cn->watched_jobs = nw;
        cn->cap_watched_jobs = cap;
    }
    cn->watched_jobs[cn->n_watched_jobs++] = job;
    vki_job_set_news(job, on_job_news, cn->waker);
    /* what the job did before this had no one to wake: the wait looks once
     * more before it suspends */
    on_news(cn);
    return true;
}

enum MHD_Result srv_wait(srv_conn *cn, srv_step_fn step, void (*drop)(void *), void *state)
{
    cn->step = step;
    cn->drop = drop;
    cn->state = state;
    return run_wait(cn);
}




/* Answers 413 on the socket itself and has MHD close the connection: MHD
 * (0.9.75) cannot queue a response once it reads a body, and reading the
 * rest of an endless chunked upload to answer at its end is what a client
 * must not be able to make the server do. */
static enum MHD_Result cut_body(srv_conn *cn)
{
    srv_server *srv = cn->srv;
    char msg[128];
    snprintf(msg, sizeof msg, "the body is over the limit of %zu bytes", srv->cfg->max_body);
    char *text = error_text(cn, 413, "body_too_large", msg);
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(cn->c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (text && ci) {
        srv_buf b = {0};
        srv_buf_printf(&b, "HTTP/1.1 413 Content Too Large\r\nContent-Type: application/json\r\nContent-Length: "
                           "%zu\r\nConnection: close\r\n\r\n%s", strlen(text), text);
        /* nothing else is being sent on it: one small write fits the socket buffer */
        if (!b.oom && b.p && send(ci->connect_fd, b.p, b.n, MSG_NOSIGNAL | MSG_DONTWAIT) > 0) {
            shutdown(ci->connect_fd, SHUT_WR);
            cn->log.status = 413;
            srv_count(srv, cn->route, 413);
        }
        free(b.p);
    }
    free(text);
    cn->too_big = cn->answered = true;
    return MHD_NO;
}

/* The first of several Content-Length headers that disagree, for a 400
 * (RFC 9112 6.3: a framing no two readers may see alike). */
typedef struct cl_seen { const char *first; bool conflict; } cl_seen;

static enum MHD_Result each_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    cl_seen *s = cls;
    if (!key || strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) return MHD_YES;
    if (!s->first) s->first = value ? value : "";
    else if (strcmp(s->first, value ? value : "")) s->conflict = true;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    srv_server *srv = cls;
    srv_conn *cn = *con_cls;
    if (!cn) {
        srv_sock *k = conn_sock(c);
        if (!k || !(cn = calloc(1, sizeof *cn))) return MHD_NO; /* out of memory */
        cn->srv = srv;
        cn->c = c;
        cn->route = find_route(url);
        if (cn->route == SRV_ROUTE_MODELS && url[10] == '/') {
            /* an id too long for any model is kept too long, so it is not found */
            snprintf(cn->model_id, sizeof cn->model_id, "%s", url + 11);
        }
        if (cn->route == SRV_ROUTE_ADMIN && !strncmp(url, "/admin/models/", 14)) {
            const size_t n = strlen(url + 14) - 7; /* less "/reload" (find_route checked it) */
            if (n < sizeof cn->model_id) snprintf(cn->model_id, sizeof cn->model_id, "%.*s", (int)n, url + 14);
            else snprintf(cn->model_id, sizeof cn->model_id, "%s", url + 14); /* too long for any id: not found */
        }
        cn->n = atomic_fetch_add(&srv->next_id, 1) + 1;
        cn->log = (srv_req_log){.prompt_tokens = -1, .completion_tokens = -1, .queue_ms = -1, .t0 = vki_time_ms()};
        snprintf(cn->log.id, sizeof cn->log.id, "req-%llu", (unsigned long long)cn->n);
        snprintf(cn->log.method, sizeof cn->log.method, "%s", method);
        snprintf(cn->log.path, sizeof cn->log.path, "%s", url);
        *con_cls = cn;
        atomic_fetch_add(&srv->in_flight, 1);
        pthread_mutex_lock(&srv->socks_mu);
        k->cn = cn;
        pthread_mutex_unlock(&srv->socks_mu);
        /* Queued now, an answer makes MHD skip the body and close after it. */
        if (atomic_load(&srv->draining)) {
            cn->answered = true;
            return srv_send_error(cn, 503, "shutting_down", 0, "the server is shutting down");
        }
        if (k->reserved && cn->route != SRV_ROUTE_HEALTH) {
            cn->answered = true;
            return srv_send_error(cn, 503, "too_many_connections", 1, "the server is at its limit of %d connections; "
                                  "retry shortly", (int)srv->cfg->max_conns);
        }
        sock_set_phase(srv, c, SOCK_BODY);
        cl_seen seen = {0};
        MHD_get_connection_values(c, MHD_HEADER_KIND, each_header, &seen);
        if (seen.conflict) {
            cn->answered = true;
            return srv_send_error(cn, 400, "invalid_request", 0, "conflicting Content-Length headers");
        }
        /* A declared body over the limit is refused before it is read. */
        const char *cl = seen.first;
        if (cl && strtoull(cl, NULL, 10) > srv->cfg->max_body) {
            cn->too_big = cn->answered = true;
            return srv_send_error(cn, 413, "body_too_large", 0, "the body (%s bytes) is over the limit of %zu bytes",
                                  cl, srv->cfg->max_body);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (cn->answered) return MHD_NO;
        if (cn->body.n + n > srv->cfg->max_body) return cut_body(cn);
        return srv_buf_append(&cn->body, upload, n) ? MHD_YES : MHD_NO;
    }
    if (cn->answered) return MHD_YES; /* the early answer is on its way */
    if (cn->step) return run_wait(cn); /* woken: the request has news */
    sock_set_phase(srv, c, SOCK_ANSWER);
    return dispatch(cn, url, method);
}

/* The model routes' traffic, which the status window counts (not the
 * page's own polling). */
static bool model_path(const char *path)
{
    return !strcmp(path, srv_route_path[SRV_ROUTE_COMPLETIONS]) || !strcmp(path, srv_route_path[SRV_ROUTE_CHAT]) ||
           !strcmp(path, srv_route_path[SRV_ROUTE_EMBEDDINGS]);
}

void srv_log_done(srv_server *srv, const srv_req_log *l)
{
    if (model_path(l->path)) {
        srv_window_sample ws = {.t_s = srv_now_s(), .latency_ms = vki_time_ms() - l->t0,
                                .error = !l->status || l->status >= 400,
                                .prompt_tokens = l->prompt_tokens, .completion_tokens = l->completion_tokens};
        srv_window_add(srv->window, &ws);
    }
    if (!srv->log) return;
    srv_log_req r = {.id = l->id, .method = l->method, .path = l->path, .model = l->model,
                     /* no answer was queued: the client left first (nginx's 499) */
                     .status = l->status ? l->status : 499, .prompt_tokens = l->prompt_tokens,
                     .completion_tokens = l->completion_tokens, .queue_ms = l->queue_ms,
                     .total_ms = vki_time_ms() - l->t0, .priority = l->priority,
                     .session = l->session[0] ? l->session : NULL};
    srv_log_request(srv->log, &r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    srv_server *srv = cls;
    srv_conn *cn = *con_cls;
    srv_sock *k = conn_sock(c);
    const bool aborted = toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT || toe == MHD_REQUEST_TERMINATED_READ_ERROR;
    bool cut = false;
    if (k) {
        pthread_mutex_lock(&srv->socks_mu);
        cut = k->cut;
        if (k->cn == cn) k->cn = NULL;
        pthread_mutex_unlock(&srv->socks_mu);
    }
    sock_set_phase(srv, c, SOCK_HEADERS);
    if (!cn) {
        /* gone before its handler ran (mid-headers or mid-body): still a disconnect */
        if (aborted && !cut) atomic_fetch_add(&srv->disconnects, 1);
        return;
    }
    /* No wake-up may reach cn once it is freed; a wait the connection did
     * not see to its end frees its state. */
    srv_unwatch(cn);
    free(cn->watched_jobs);
    if (cn->waker) {
        pthread_mutex_lock(&srv->socks_mu);
        cn->waker->cn = NULL; /* a stream's jobs may still run: their hooks wake nothing now */
        pthread_mutex_unlock(&srv->socks_mu);
        srv_waker_drop(cn->waker);
    }
    if (cn->drop) cn->drop(cn->state);
    srv_drop_json(cn);
    /* A client that closes early is normal traffic: counted, and logged
     * only at debug level. Connections the server cut are not counted. */
    if (!cut && (aborted || (toe == MHD_REQUEST_TERMINATED_WITH_ERROR && !cn->too_big && srv_client_gone(c)))) {
        atomic_fetch_add(&srv->disconnects, 1);
        srv_log_debug(srv->log, "http", "client disconnected: %s %s %s", cn->log.id, cn->log.method, cn->log.path);
    }
    if (!cn->streamed) srv_log_done(cn->srv, &cn->log);
    free(cn->body.p);
    free(cn);
    *con_cls = NULL;
    atomic_fetch_sub(&srv->in_flight, 1);
}

/* ===== Start and stop ===================================================== */

/* MHD's messages. Those about one connection that a client closed, or that
 * the limits refused, come with every such client: debug level only (the
 * counters in /metrics have them); the rest are warnings. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    srv_server *srv = cls;
    static const char *const per_connection[] = {
        "Application reported internal error", "Closing connection (application", "Socket has been disconnected",
        "Connection socket is closed", "Connection was closed by remote side", "Failed to send",
        "Server reached connection limit", "Connection rejected by application", "Error processing request",
    };
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) msg[--n] = '\0';
    for (size_t i = 0; i < sizeof per_connection / sizeof per_connection[0]; i++)
        if (!strncmp(msg, per_connection[i], strlen(per_connection[i]))) {
            srv_log_debug(srv->log, "http", "%s", msg);
            return;
        }
    if (srv->log) srv_log_event(srv->log, "warning", "http: %s", msg);
    else fprintf(stderr, "http: %s\n", msg);
}

static void stop_watchdog(srv_server *srv)
{
    if (!srv->watchdog_started) return;
    pthread_mutex_lock(&srv->socks_mu);
    atomic_store(&srv->stopping, true);
    pthread_cond_signal(&srv->socks_cv);
    pthread_mutex_unlock(&srv->socks_mu);
    pthread_join(srv->watchdog, NULL);
    srv->watchdog_started = false;
}

/* Each connection holds a descriptor: the soft limit is raised to the hard
 * one, and a hard limit below what the connection limits need is said. */
static void raise_fd_limit(srv_server *srv, rlim_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl)) return;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (!setrlimit(RLIMIT_NOFILE, &rl))
            srv_log_debug(srv->log, "http", "open-file limit raised from %llu to %llu", (unsigned long long)was,
                          (unsigned long long)rl.rlim_cur);
        else getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need && srv->log)
        srv_log_event(srv->log, "warning", "http: the open-file limit (%llu) is below the %llu descriptors "
                      "max_connections needs; connections past it are refused (raise it with ulimit -n)",
                      (unsigned long long)rl.rlim_cur, (unsigned long long)need);
}

vki_status srv_start(const srv_config *cfg, vki_service *svc, srv_log *log, srv_server **out, char *err,
                     size_t err_size)
{
    *out = NULL;
    srv_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        snprintf(err, err_size, "out of memory");
        return VKI_ERR_OUT_OF_MEMORY;
    }
    srv->cfg = cfg;
    srv->svc = svc;
    srv->log = log;
    srv->created = time(NULL);
    srv->window = srv_window_create(0, srv_now_s());
    if (!srv->window || !srv_fb_init(srv)) {
        srv_window_destroy(srv->window);
        free(srv);
        snprintf(err, err_size, "out of memory");
        return VKI_ERR_OUT_OF_MEMORY;
    }
    srv->listen_fd = -1;
    pthread_mutex_init(&srv->socks_mu, NULL);
    pthread_mutex_init(&srv->reload_mu, NULL);
    pthread_cond_init(&srv->socks_cv, NULL);
    if (!srv_auto_init(srv, err, err_size)) goto fail;
    if (cfg->api_key_env) {
        const char *k = getenv(cfg->api_key_env);
        if (!k || !k[0]) {
            snprintf(err, err_size, "api_key_env names %s, but that environment variable is empty or unset",
                     cfg->api_key_env);
            goto fail;
        }
        srv->api_key = strdup(k);
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->port);
    int gai = getaddrinfo(cfg->host, port, &hints, &ai);
    if (gai != 0) {
        snprintf(err, err_size, "host '%s': %s", cfg->host, gai_strerror(gai));
        goto fail;
    }
    if (pthread_create(&srv->watchdog, NULL, watchdog_main, srv)) {
        freeaddrinfo(ai);
        snprintf(err, err_size, "cannot start a thread");
        goto fail;
    }
    srv->watchdog_started = true;
    /* Our limits (on_accept) are the ones that bind: MHD's is twice theirs,
     * as it splits it evenly between the pool's threads and still counts a
     * connection the server cut until it is reaped. */
    const unsigned mhd_limit = 2u * (unsigned)(cfg->max_conns + RESERVE_CONNS);
    raise_fd_limit(srv, (rlim_t)(cfg->max_conns + RESERVE_CONNS) + 64); /* + model files, pipes, ... */
    /* poll, not epoll: MHD 0.9.75's epoll pool can abort in MHD_quiesce_daemon
     * (srv_quiesce) when a thread drops the listening socket at the same time;
     * poll has no such race and a few thousand sockets cost it little. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    /* the logger first, so it has every message */
    srv->d = MHD_start_daemon(flags, 0, on_accept, srv, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv,
                              MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)HTTP_THREADS,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_NOTIFY_CONNECTION,
                              on_connection, srv, MHD_OPTION_CONNECTION_LIMIT, mhd_limit,
                              MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->max_conns_per_ip,
                              MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!srv->d) {
        snprintf(err, err_size, "cannot listen on %s:%d (port in use, or no permission?)", cfg->host, cfg->port);
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di ? di->port : (uint16_t)cfg->port;
    *out = srv;
    return VKI_OK;
fail:
    stop_watchdog(srv);
    pthread_cond_destroy(&srv->socks_cv);
    pthread_mutex_destroy(&srv->socks_mu);
    pthread_mutex_destroy(&srv->reload_mu);
    srv_fb_free(srv);
    srv_window_destroy(srv->window);
    free(srv->api_key);
    free(srv);
    return VKI_ERR_INVALID_ARGUMENT;
}

uint16_t srv_port(const srv_server *srv) { return srv ? srv->port : 0; }

void srv_set_events(srv_server *srv, srv_events *ev)
{
    if (srv) atomic_store(&srv->events, ev);
}

void srv_quiesce(srv_server *srv)
{
    if (!srv || atomic_exchange(&srv->draining, true)) return;
    srv->listen_fd = MHD_quiesce_daemon(srv->d);
    /* Connections waiting in the backlog, and new ones, are refused at once
     * (Linux resets them), rather than held until the daemon stops; the
     * descriptor itself is closed only after MHD_stop_daemon. */
    if (srv->listen_fd >= 0) shutdown(srv->listen_fd, SHUT_RDWR);
}

int32_t srv_in_flight(const srv_server *srv) { return srv ? atomic_load(&srv->in_flight) : 0; }

void srv_stop(srv_server *srv)
{
    if (!srv) return;
    srv_quiesce(srv);
    /* What is still running ends with an error answer (an SSE error event
     * and [DONE] for streams, a JSON error otherwise): the cancelled
     * requests wake their connections, which write those answers. */
    vki_service_shutdown(srv->svc);
    double until = vki_time_ms() + FLUSH_MS;
    while (atomic_load(&srv->in_flight) > 0 && vki_time_ms() < until) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    /* MHD may not stop with a connection suspended: none may suspend from
     * here (srv_pause), and any still suspended is resumed. */
    stop_watchdog(srv);
    pthread_mutex_lock(&srv->socks_mu);
    for (srv_sock *k = srv->socks; k; k = k->next)
        if (k->cn && k->cn->suspended) wake_locked(k->cn);
    pthread_mutex_unlock(&srv->socks_mu);
    MHD_stop_daemon(srv->d);
    if (srv->listen_fd >= 0) close(srv->listen_fd);
    pthread_cond_destroy(&srv->socks_cv);
    pthread_mutex_destroy(&srv->socks_mu);
    pthread_mutex_destroy(&srv->reload_mu);
    srv_fb_free(srv);
    srv_window_destroy(srv->window);
    srv_reload_free(srv);
    free(srv->api_key);
    free(srv);
}
