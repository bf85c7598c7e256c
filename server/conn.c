/*
 * conn.c: the open connections and what keeps slow clients from taking
 * the server: the per-connection phase and clock, the eviction of the
 * oldest one still sending its request (or idle) when the server is full,
 * the few reserved slots that serve only /health, and the watchdog that
 * closes a connection whose headers or body are past their absolute
 * deadline (MHD's own timeout restarts with every byte) and wakes a
 * suspended one whose client left. Moved out of http.c.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "server/conn.h"
#include "util.h"

/* How long a connection in a /health slot may take over its headers. */
#define RESERVE_HEADER_MS 2000.0
/* How often the watchdog looks at the deadlines and suspended clients. */
#define WATCHDOG_MS 100

bool srv_client_gone(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return false;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

srv_sock *srv_sock_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* Moves the connection's current request to `phase`; SOCK_HEADERS starts the
 * next request's clock (keep-alive). */
void srv_sock_set_phase(srv_server *srv, struct MHD_Connection *c, sock_phase phase)
{
    srv_sock *k = srv_sock_of(c);
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
enum MHD_Result srv_on_accept(void *cls, const struct sockaddr *addr, socklen_t len)
{
    (void)addr;
    (void)len;
    srv_server *srv = cls;
    if (atomic_load(&srv->draining)) return MHD_NO;
    pthread_mutex_lock(&srv->socks_mu);
    if (srv->n_live >= srv->cfg->max_conns) evict_one(srv);
    bool ok = srv->n_live < srv->cfg->max_conns + SRV_RESERVE_CONNS;
    pthread_mutex_unlock(&srv->socks_mu);
    if (!ok) srv_log_debug(srv->log, "http", "refused a connection: %d open, none idle", (int)srv->cfg->max_conns);
    return ok ? MHD_YES : MHD_NO;
}

void srv_on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
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

void srv_wake_locked(srv_conn *cn)
{
    cn->signalled = true;
    if (!cn->suspended) return;
    cn->suspended = false;
    MHD_resume_connection(cn->c);
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
        ts.tv_nsec += (srv->n_linger ? LINGER_TICK_MS : WATCHDOG_MS) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&srv->socks_cv, &srv->socks_mu, &ts);
        double now = vki_time_ms();
        srv_linger_tick(srv, now);
        for (srv_sock *k = srv->socks; k; k = k->next) {
            if (k->cut || k->fd < 0) continue;
            if (k->phase == SOCK_ANSWER) {
                if (k->cn && k->cn->suspended) {
                    struct pollfd p = {.fd = k->fd, .events = POLLRDHUP};
                    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) srv_wake_locked(k->cn);
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

bool srv_watchdog_start(srv_server *srv)
{
    if (pthread_create(&srv->watchdog, NULL, watchdog_main, srv)) return false;
    srv->watchdog_started = true;
    return true;
}

void srv_watchdog_stop(srv_server *srv)
{
    if (!srv->watchdog_started) return;
    pthread_mutex_lock(&srv->socks_mu);
    atomic_store(&srv->stopping, true);
    pthread_cond_signal(&srv->socks_cv);
    pthread_mutex_unlock(&srv->socks_mu);
    pthread_join(srv->watchdog, NULL);
    srv->watchdog_started = false;
    srv_linger_close_all(srv);
}
