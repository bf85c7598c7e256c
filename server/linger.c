/*
 * linger.c: the lingering close after a body is cut off (http.c cut_body).
 * The 413 is written and the write side shut, but the client is usually
 * still sending; closing a socket with unread bytes sends a reset, and a
 * reset can reach the client before it reads the 413, which it then never
 * sees. So the cut connection's socket is kept open on a duplicate while
 * the watchdog reads and drops what still arrives (every LINGER_TICK_MS
 * while any lingers), until the client closes its side, LINGER_MS pass or
 * twice max_body (at least LINGER_MIN_BYTES) are dropped: RFC 9112 9.6's
 * "lingering close", as nginx does. A client that sends a body of up to
 * three times the limit reads its 413; one that keeps sending past that
 * gets the reset, so an endless upload still ends within a fraction of a
 * second, and nothing read here reaches a request. A full table closes at
 * once, as before.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/conn.h"
#include "util.h"

#define LINGER_MS        2000.0
#define LINGER_MIN_BYTES (256u << 10)

void srv_linger_add(srv_server *srv, int fd)
{
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) return;
    pthread_mutex_lock(&srv->socks_mu);
    if (srv->n_linger == SRV_LINGER_MAX || atomic_load(&srv->stopping)) {
        pthread_mutex_unlock(&srv->socks_mu);
        close(dup_fd);
        return;
    }
    srv->linger[srv->n_linger++] = (srv_linger_fd){.fd = dup_fd, .t0 = vki_time_ms()};
    pthread_mutex_unlock(&srv->socks_mu);
}

/* Drops what arrived on each lingering socket; closes those that are done. */
void srv_linger_tick(srv_server *srv, double now)
{
    char buf[16384];
    size_t cap = VKI_MAX((size_t)LINGER_MIN_BYTES, 2 * srv->cfg->max_body);
    for (int i = 0; i < srv->n_linger;) {
        srv_linger_fd *l = &srv->linger[i];
        bool done = now - l->t0 > LINGER_MS;
        while (!done) {
            ssize_t n = recv(l->fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0) {
                l->dropped += (size_t)n;
                done = l->dropped > cap;
            } else {
                done = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
                break;
            }
        }
        if (!done) {
            i++;
            continue;
        }
        close(l->fd);
        srv->linger[i] = srv->linger[--srv->n_linger];
    }
}

void srv_linger_close_all(srv_server *srv)
{
    for (int i = 0; i < srv->n_linger; i++) close(srv->linger[i].fd);
    srv->n_linger = 0;
}
