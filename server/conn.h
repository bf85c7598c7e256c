/*
 * conn.h: the open connections (conn.c) as http.c and wait.c see them:
 * one srv_sock per socket from MHD's STARTED notice to its CLOSED notice,
 * its phase and clock, and the wake-up of a suspended request.
 */
#ifndef VKI_SERVER_CONN_H
#define VKI_SERVER_CONN_H

#include "server/srv_internal.h"

/* How many connections past max_connections are kept for /health (and
 * only for it). */
#define SRV_RESERVE_CONNS 16

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

/* MHD's accept policy and connection notices (MHD_start_daemon's
 * apc and MHD_OPTION_NOTIFY_CONNECTION; cls = the srv_server). */
enum MHD_Result srv_on_accept(void *cls, const struct sockaddr *addr, socklen_t len);
void            srv_on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                                  enum MHD_ConnectionNotificationCode code);
/* The connection's entry; NULL when its STARTED notice found no memory. */
srv_sock       *srv_sock_of(struct MHD_Connection *c);
/* Moves the connection's current request to `phase`; SOCK_HEADERS starts
 * the next request's clock (keep-alive). */
void            srv_sock_set_phase(srv_server *srv, struct MHD_Connection *c, sock_phase phase);
/* Resumes cn if it is suspended, else marks the news for its next look
 * (socks_mu held). */
void            srv_wake_locked(srv_conn *cn);
/* The watchdog thread: false when it cannot start. Stop sets
 * srv->stopping (no connection suspends after it) and joins it. */
bool            srv_watchdog_start(srv_server *srv);
void            srv_watchdog_stop(srv_server *srv);
/* linger.c: keeps a duplicate of a cut connection's socket (fd) for the
 * watchdog to drain before it closes; the tick runs with socks_mu held,
 * close_all when the watchdog has stopped. */
#define LINGER_TICK_MS 10
void            srv_linger_add(srv_server *srv, int fd);
void            srv_linger_tick(srv_server *srv, double now);
void            srv_linger_close_all(srv_server *srv);

/* wait.c: runs the request's continuation (cn->step) until it answers or
 * has to wait (then suspended); on_request calls it when woken. */
enum MHD_Result srv_run_wait(srv_conn *cn);
/* The end of the connection: the jobs' hooks wake nothing from now on,
 * and the connection's reference to its waker goes. */
void            srv_waker_detach(srv_conn *cn);

#endif
