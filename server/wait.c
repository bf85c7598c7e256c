/*
 * wait.c: waiting without a thread. No handler ever blocks a pool thread:
 * a request waiting for the service suspends its connection, and the jobs'
 * news (output, another model tried, the end) resumes it (srv_watch,
 * srv_wait; streams' content readers the same way, srv_arm/srv_pause).
 * Moved out of http.c.
 */
#include <stdlib.h>

#include "server/conn.h"
#include "util.h"

/* A job's news (a service thread, its locks held: only wakes). */
static void on_news(void *arg)
{
    srv_conn *cn = arg;
    pthread_mutex_lock(&cn->srv->socks_mu);
    srv_wake_locked(cn);
    pthread_mutex_unlock(&cn->srv->socks_mu);
}

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
enum MHD_Result srv_run_wait(srv_conn *cn)
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
    if (w->cn) srv_wake_locked(w->cn);
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
    return srv_run_wait(cn);
}

void srv_waker_detach(srv_conn *cn)
{
    if (!cn->waker) return;
    pthread_mutex_lock(&cn->srv->socks_mu);
    cn->waker->cn = NULL; /* a stream's jobs may still run: their hooks wake nothing now */
    pthread_mutex_unlock(&cn->srv->socks_mu);
    srv_waker_drop(cn->waker);
    cn->waker = NULL;
}
