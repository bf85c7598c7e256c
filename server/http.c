/*
 * http.c: the libmicrohttpd daemon and each request's lifecycle: the body
 * gathered across handler calls (with the size limit), routing, methods,
 * bearer-key auth, the one vki_status -> HTTP table, OpenAI-shaped errors,
 * and the per-route counters behind /metrics. Thread per connection, so a
 * handler may wait for the scheduler without stalling other clients.
 */
#include <arpa/inet.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "server/srv_internal.h"
#include "util.h"

const char *const srv_route_path[SRV_N_ROUTES] = {"/health",       "/v1/models", "/v1/completions",
                                                  "/v1/chat/completions", "/v1/embeddings", "/metrics", "other"};
static const char *const route_method[SRV_N_ROUTES] = {"GET", "GET", "POST", "POST", "POST", "GET", NULL};
const int srv_codes[SRV_N_CODES] = {200, 400, 401, 404, 405, 413, 429, 500, 503, 504, 0};

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

static enum MHD_Result send_text(srv_conn *cn, unsigned status, char *text, const char *type, int retry_after)
{
    cn->log.status = status;
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
    if (status == 401) MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result ret = MHD_queue_response(cn->c, status, r);
    MHD_destroy_response(r);
    srv_count(cn->srv, cn->route, status);
    return ret;
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
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    case 503: return "service_unavailable_error";
    case 504: return "timeout_error";
    case 500: return "internal_error";
    default: return "invalid_request_error";
    }
}

enum MHD_Result srv_send_error(srv_conn *cn, unsigned status, const char *code, int retry_after, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *root = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", error_type(status));
    cJSON_AddStringToObject(e, "code", code);
    char *text = srv_json_print(root);
    cJSON_Delete(root);
    if (!text) return MHD_NO;
    return send_text(cn, status, text, "application/json", retry_after);
}

/* The one table from a scheduler status to an HTTP answer. */
enum MHD_Result srv_send_status(srv_conn *cn, vki_status s, const char *msg, double eta_s)
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
    case VKI_ERR_DEVICE_LOST: http = 503; code = "device_lost"; break;
    case VKI_ERR_CANCELLED: http = 503; code = "shutting_down"; break;
    case VKI_ERR_TIMEOUT: http = 504; code = "timeout"; break;
    default: break;
    }
    return srv_send_error(cn, http, code, retry, "%s", msg && msg[0] ? msg : vki_status_str(s));
}

/* ===== Shared request fields ============================================== */

int32_t srv_pick_model(srv_conn *cn, const cJSON *body, sched_kind kind, enum MHD_Result *ret)
{
    scheduler *s = cn->srv->s;
    const cJSON *jm = cJSON_GetObjectItemCaseSensitive(body, "model");
    int32_t i = -1;
    if (jm && !cJSON_IsNull(jm)) {
        if (!cJSON_IsString(jm)) {
            *ret = srv_send_error(cn, 400, "invalid_field", 0, "model: expected a string");
            return -1;
        }
        i = sched_find(s, jm->valuestring);
        if (i < 0) {
            *ret = srv_send_error(cn, 404, "model_not_found", 0, "model '%s' does not exist (GET /v1/models lists them)",
                                  jm->valuestring);
            return -1;
        }
    } else {
        sched_model_info info;
        for (int32_t k = 0; k < sched_n_models(s) && i < 0; k++) {
            sched_model_get_info(s, k, &info);
            if (info.kind == kind) i = k;
        }
        if (i < 0) {
            *ret = srv_send_error(cn, 400, "invalid_field", 0, "model: required (no %s model is configured)",
                                  sched_kind_name(kind));
            return -1;
        }
    }
    sched_model_info info;
    sched_model_get_info(s, i, &info);
    cn->log.model = info.id;
    if (info.kind != kind) {
        *ret = srv_send_error(cn, 400, "wrong_model_kind", 0, "model '%s' is a %s model; %s needs a %s model", info.id,
                              sched_kind_name(info.kind), srv_route_path[cn->route], sched_kind_name(kind));
        return -1;
    }
    if (info.state == SCHED_FAILED) {
        *ret = srv_send_error(cn, 503, "model_failed", 0, "model '%s' failed to load: %s", info.id, info.error);
        return -1;
    }
    /* An unloaded model takes requests (they wait while it loads); only a
     * model whose file is still being opened cannot tokenize them yet. */
    if (!info.can_queue) {
        *ret = srv_send_error(cn, 503, "model_loading", 1, "model '%s' is %s; retry shortly", info.id,
                              sched_state_name(info.state));
        return -1;
    }
    return i;
}

bool srv_parse_common(srv_conn *cn, const cJSON *body, int32_t model, sched_prio route_default, sched_prio *prio,
                      double *deadline_ms, enum MHD_Result *ret)
{
    const srv_config *cfg = cn->srv->cfg;
    *prio = route_default;
    if (model < cfg->n_models && cfg->models[model].has_priority) *prio = cfg->models[model].priority;
    const cJSON *jp = cJSON_GetObjectItemCaseSensitive(body, "priority");
    if (jp && !cJSON_IsNull(jp) && (!cJSON_IsString(jp) || !sched_prio_parse(jp->valuestring, prio))) {
        *ret = srv_send_error(cn, 400, "invalid_field", 0, "priority: expected \"interactive\", \"normal\" or \"batch\"");
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
    if (srv->api_key && cn->route != SRV_ROUTE_HEALTH) {
        const char *h = MHD_lookup_connection_value(cn->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (!h || strncmp(h, "Bearer ", 7) || !key_equal(h + 7, srv->api_key))
            return srv_send_error(cn, 401, "invalid_api_key", 0, "%s",
                                  h ? "the bearer key is not valid" : "missing \"Authorization: Bearer KEY\" header");
    }
    if (cn->too_big)
        return srv_send_error(cn, 413, "body_too_large", 0, "the body is over the limit of %zu bytes",
                              srv->cfg->max_body);
    switch (cn->route) {
    case SRV_ROUTE_HEALTH: return srv_route_health(cn);
    case SRV_ROUTE_MODELS: return srv_route_models(cn);
    case SRV_ROUTE_METRICS: return srv_route_metrics(cn);
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
    enum MHD_Result ret;
    switch (cn->route) {
    case SRV_ROUTE_COMPLETIONS: ret = srv_route_generate(cn, body, false); break;
    case SRV_ROUTE_CHAT: ret = srv_route_generate(cn, body, true); break;
    default: ret = srv_route_embeddings(cn, body); break;
    }
    cJSON_Delete(body);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    srv_server *srv = cls;
    srv_conn *cn = *con_cls;
    if (!cn) {
        cn = calloc(1, sizeof *cn);
        if (!cn) return MHD_NO;
        cn->srv = srv;
        cn->c = c;
        cn->route = find_route(url);
        cn->n = atomic_fetch_add(&srv->next_id, 1) + 1;
        cn->log = (srv_req_log){.prompt_tokens = -1, .completion_tokens = -1, .queue_ms = -1, .t0 = vki_time_ms()};
        snprintf(cn->log.id, sizeof cn->log.id, "req-%llu", (unsigned long long)cn->n);
        snprintf(cn->log.method, sizeof cn->log.method, "%s", method);
        snprintf(cn->log.path, sizeof cn->log.path, "%s", url);
        *con_cls = cn;
        /* A declared body over the limit is refused before it is read. */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
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
        if (cn->answered || cn->too_big || cn->body.n + n > srv->cfg->max_body) {
            cn->too_big = true; /* keep reading, drop the bytes, answer 413 at the end */
            return MHD_YES;
        }
        return srv_buf_append(&cn->body, upload, n) ? MHD_YES : MHD_NO;
    }
    if (cn->answered) return MHD_YES; /* the early 413 is on its way */
    return dispatch(cn, url, method);
}

void srv_log_done(srv_server *srv, const srv_req_log *l)
{
    if (!srv->log) return;
    srv_log_req r = {.id = l->id, .method = l->method, .path = l->path, .model = l->model,
                     /* no answer was queued: the client left first (nginx's 499) */
                     .status = l->status ? l->status : 499, .prompt_tokens = l->prompt_tokens,
                     .completion_tokens = l->completion_tokens, .queue_ms = l->queue_ms,
                     .total_ms = vki_time_ms() - l->t0};
    srv_log_request(srv->log, &r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    srv_conn *cn = *con_cls;
    if (!cn) return;
    if (!cn->streamed) srv_log_done(cn->srv, &cn->log);
    free(cn->body.p);
    free(cn);
    *con_cls = NULL;
}

/* ===== Start and stop ===================================================== */

vki_status srv_start(const srv_config *cfg, scheduler *s, srv_log *log, srv_server **out, char *err,
                     size_t err_size)
{
    *out = NULL;
    srv_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        snprintf(err, err_size, "out of memory");
        return VKI_ERR_OUT_OF_MEMORY;
    }
    srv->cfg = cfg;
    srv->s = s;
    srv->log = log;
    srv->created = time(NULL);
    if (cfg->api_key_env) {
        const char *k = getenv(cfg->api_key_env);
        if (!k || !k[0]) {
            snprintf(err, err_size, "api_key_env names %s, but that environment variable is empty or unset",
                     cfg->api_key_env);
            free(srv);
            return VKI_ERR_INVALID_ARGUMENT;
        }
        srv->api_key = strdup(k);
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->port);
    int gai = getaddrinfo(cfg->host, port, &hints, &ai);
    if (gai != 0) {
        snprintf(err, err_size, "host '%s': %s", cfg->host, gai_strerror(gai));
        free(srv->api_key);
        free(srv);
        return VKI_ERR_INVALID_ARGUMENT;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
                     (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    srv->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_CONNECTION_LIMIT, 512u,
                              MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!srv->d) {
        snprintf(err, err_size, "cannot listen on %s:%d (port in use, or no permission?)", cfg->host, cfg->port);
        free(srv->api_key);
        free(srv);
        return VKI_ERR_INVALID_ARGUMENT;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di ? di->port : (uint16_t)cfg->port;
    *out = srv;
    return VKI_OK;
}

uint16_t srv_port(const srv_server *srv) { return srv ? srv->port : 0; }

void srv_stop(srv_server *srv)
{
    if (!srv) return;
    /* Waiting handlers and streams see their requests end, then the
     * connection threads can be joined. */
    sched_shutdown(srv->s);
    MHD_stop_daemon(srv->d);
    free(srv->api_key);
    free(srv);
}
