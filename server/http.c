/*
 * http.c: the libmicrohttpd daemon and each request's lifecycle: the body
 * gathered across handler calls (with the size limit, a body past it cut
 * off at its first byte), routing, methods, bearer-key auth, the request's
 * log line, and the start and graceful stop (srv_quiesce, srv_stop: stop
 * accepting, let what is in flight finish, then end the rest with an error
 * answer).
 *
 * A small fixed pool of polling threads serves every connection; no
 * handler ever blocks one (wait.c). Beside it: conn.c (the connections'
 * limits, deadlines and watchdog), respond.c (answers, errors, the status
 * table, counters), fields.c (the fields every model route reads).
 */
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/conn.h"
#include "server/events.h"
#include "server/srv_internal.h"
#include "server/stats_window.h"
#include "util.h"

const char *const srv_route_path[SRV_N_ROUTES] = {"/health",       "/v1/models", "/v1/completions",
                                                  "/v1/chat/completions", "/v1/embeddings", "/metrics",
                                                  "/v1/system/status", "/ui", "/admin/reload", "/generate", "other"};
const char *const srv_route_method[SRV_N_ROUTES] = {"GET", "GET", "POST", "POST", "POST", "GET", "GET", "GET", "POST",
                                                       "POST", NULL};
const int srv_codes[SRV_N_CODES] = {200, 202, 304, 400, 401, 403, 404, 405, 409, 413, 429, 500, 503, 504, 0};

/* The polling threads: fixed, since none ever waits for the scheduler; a
 * few so one parsing a large body or tokenizing a long prompt does not
 * hold up /health. */
#define HTTP_THREADS 4
/* After the drain, how long the error answers of the requests cancelled
 * then may take to be written before the connections are closed. */
#define FLUSH_MS 5000.0

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
    if (strcmp(method, srv_route_method[cn->route]))
        return srv_send_error(cn, 405, "method_not_allowed", 0, "%s takes %s, not %s", srv_route_path[cn->route],
                              srv_route_method[cn->route], method);
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


/* Answers 413 on the socket itself and has MHD close the connection: MHD
 * (0.9.75) cannot queue a response once it reads a body, and reading the
 * rest of an endless chunked upload to answer at its end is what a client
 * must not be able to make the server do. */
static enum MHD_Result cut_body(srv_conn *cn)
{
    srv_server *srv = cn->srv;
    char msg[128];
    snprintf(msg, sizeof msg, "the body is over the limit of %zu bytes", srv->cfg->max_body);
    char *text = srv_error_text(cn, 413, "body_too_large", msg);
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(cn->c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (text && ci) {
        srv_buf b = {0};
        srv_buf_printf(&b, "HTTP/1.1 413 Content Too Large\r\nContent-Type: application/json\r\nContent-Length: "
                           "%zu\r\nConnection: close\r\n\r\n%s", strlen(text), text);
        /* nothing else is being sent on it: one small write fits the socket buffer */
        if (!b.oom && b.p && send(ci->connect_fd, b.p, b.n, MSG_NOSIGNAL | MSG_DONTWAIT) > 0) {
            shutdown(ci->connect_fd, SHUT_WR);
            srv_linger_add(srv, ci->connect_fd); /* MHD's close then sends no reset */
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
        srv_sock *k = srv_sock_of(c);
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
        srv_sock_set_phase(srv, c, SOCK_BODY);
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
    if (cn->step) return srv_run_wait(cn); /* woken: the request has news */
    srv_sock_set_phase(srv, c, SOCK_ANSWER);
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
    srv_sock *k = srv_sock_of(c);
    const bool aborted = toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT || toe == MHD_REQUEST_TERMINATED_READ_ERROR;
    bool cut = false;
    if (k) {
        pthread_mutex_lock(&srv->socks_mu);
        cut = k->cut;
        if (k->cn == cn) k->cn = NULL;
        pthread_mutex_unlock(&srv->socks_mu);
    }
    srv_sock_set_phase(srv, c, SOCK_HEADERS);
    if (!cn) {
        /* gone before its handler ran (mid-headers or mid-body): still a disconnect */
        if (aborted && !cut) atomic_fetch_add(&srv->disconnects, 1);
        return;
    }
    /* No wake-up may reach cn once it is freed; a wait the connection did
     * not see to its end frees its state. */
    srv_unwatch(cn);
    free(cn->watched_jobs);
    srv_waker_detach(cn);
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
    if (!srv_watchdog_start(srv)) {
        freeaddrinfo(ai);
        snprintf(err, err_size, "cannot start a thread");
        goto fail;
    }
    /* Our limits (on_accept) are the ones that bind: MHD's is twice theirs,
     * as it splits it evenly between the pool's threads and still counts a
     * connection the server cut until it is reaped. */
    const unsigned mhd_limit = 2u * (unsigned)(cfg->max_conns + SRV_RESERVE_CONNS);
    raise_fd_limit(srv, (rlim_t)(cfg->max_conns + SRV_RESERVE_CONNS) + 64); /* + model files, pipes, ... */
    /* poll, not epoll: MHD 0.9.75's epoll pool can abort in MHD_quiesce_daemon
     * (srv_quiesce) when a thread drops the listening socket at the same time;
     * poll has no such race and a few thousand sockets cost it little. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    /* the logger first, so it has every message */
    srv->d = MHD_start_daemon(flags, 0, srv_on_accept, srv, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv,
                              MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)HTTP_THREADS,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_NOTIFY_CONNECTION,
                              srv_on_connection, srv, MHD_OPTION_CONNECTION_LIMIT, mhd_limit,
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
    srv_watchdog_stop(srv);
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
    const int32_t left = atomic_load(&srv->in_flight);
    if (left > 0 && srv->log)
        srv_log_event(srv->log, "stopping", "%d request%s had not written %s error answer within %.0f s: closed", left,
                      left == 1 ? "" : "s", left == 1 ? "its" : "their", FLUSH_MS / 1e3);
    /* MHD may not stop with a connection suspended: none may suspend from
     * here (srv_pause), and any still suspended is resumed. */
    srv_watchdog_stop(srv);
    pthread_mutex_lock(&srv->socks_mu);
    for (srv_sock *k = srv->socks; k; k = k->next)
        if (k->cn && k->cn->suspended) srv_wake_locked(k->cn);
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
