/*
 * threadpool.c: the CPU backend's workers. One job at a time: the caller
 * publishes (fn, ctx) under a new generation number, runs fn as thread 0,
 * then closes the job and waits only for the workers that joined it. Jobs
 * hand out their work in chunks claimed by whoever runs, so a worker that
 * is descheduled or asleep (a loaded machine) never holds up an op: the
 * caller does its share. Workers poll the generation for a while (ops come
 * back to back in a forward pass) and then sleep on a condvar.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cpu.h"
#include "error.h"

/* How long an idle worker polls before it sleeps: long enough to bridge
 * the single-threaded ops between two mat-vecs (a decode layer's norms,
 * rope, KV copies and attention: 20 us and more), short enough not to burn
 * a core when idle. A count of 20000 polls was meant as 50 us but lasted
 * far less on a fast core: the worker slept before a layer's Wo and joined
 * it 5 us late on average (the futex wake), 2-5% of every mat-vec. */
#define POOL_SPIN_NS 200000
/* Polls between looks at the clock, and the caller's polls of the workers
 * at the end of a job before it yields. */
#define POOL_CLOCK_EVERY 64
#define POOL_WAIT_SPIN 20000

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct pool_worker {
    cpu_pool *pool;
    int       ith;
    pthread_t thread;
} pool_worker;

struct cpu_pool {
    int           n_threads;
    pool_worker  *workers;   /* [n_threads - 1]; worker i is thread i + 1 */
    int           n_started;
    cpu_task_fn   fn;
    void         *ctx;
    atomic_uint   state;      /* generation << 1 | 1 while the job is open */
    atomic_int    n_active;   /* workers inside fn (or about to decide)    */
    atomic_int    n_sleeping; /* workers in (or about to enter) cond_wait */
    atomic_bool   stop;
    pthread_mutex_t mutex;
    pthread_cond_t  cond;
};

int cpu_core_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void *worker_main(void *arg)
{
    pool_worker *w = arg;
    cpu_pool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned st;
        int spins = 0;
        int64_t t0 = 0;
        while (((st = atomic_load(&p->state)) >> 1) == seen && !atomic_load_explicit(&p->stop, memory_order_acquire)) {
            cpu_relax();
            if (++spins % POOL_CLOCK_EVERY) continue;
            if (!t0) t0 = now_ns();
            if (now_ns() - t0 < POOL_SPIN_NS) continue;
            /* Announce the sleep before the last look at the state;
             * cpu_pool_run publishes before reading n_sleeping (both
             * seq_cst), so either it sees us and broadcasts, or we see it. */
            pthread_mutex_lock(&p->mutex);
            atomic_fetch_add(&p->n_sleeping, 1);
            while ((atomic_load(&p->state) >> 1) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->cond, &p->mutex);
            atomic_fetch_sub(&p->n_sleeping, 1);
            pthread_mutex_unlock(&p->mutex);
        }
        if (atomic_load(&p->stop)) return NULL;
        seen = st >> 1;
        if (!(st & 1)) continue; /* closed before we got here */
        /* Join, then check the job is still the open one: the caller closes
         * before it reads n_active (seq_cst), so either it waits for us or
         * we see the close and leave without touching fn/ctx. */
        atomic_fetch_add(&p->n_active, 1);
        if (atomic_load(&p->state) == st) p->fn(p->ctx, w->ith, p->n_threads);
        atomic_fetch_sub(&p->n_active, 1);
    }
}

vki_status cpu_pool_create(int n_threads, cpu_pool **out)
{
    *out = NULL;
    if (n_threads <= 0) n_threads = cpu_core_count();
    if (n_threads > 512)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "cpu pool: %d threads requested, at most 512", n_threads);
    cpu_pool *p = calloc(1, sizeof *p);
    if (!p) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "cpu pool: out of memory");
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mutex, NULL);
    pthread_cond_init(&p->cond, NULL);
    atomic_init(&p->state, 0);
    atomic_init(&p->n_active, 0);
    atomic_init(&p->n_sleeping, 0);
    atomic_init(&p->stop, false);
    if (n_threads > 1) {
        p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->workers) goto fail;
        for (int i = 0; i < n_threads - 1; i++) {
            p->workers[i].pool = p;
            p->workers[i].ith = i + 1;
            if (pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]) != 0) goto fail;
            p->n_started++;
        }
    }
    *out = p;
    return VKI_OK;
fail:
    cpu_pool_destroy(p);
    return vki_fail(VKI_ERR_OUT_OF_MEMORY, "cpu pool: could not start %d worker threads", n_threads - 1);
}

void cpu_pool_destroy(cpu_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mutex);
    atomic_store(&p->stop, true);
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mutex);
    for (int i = 0; i < p->n_started; i++) pthread_join(p->workers[i].thread, NULL);
    pthread_mutex_destroy(&p->mutex);
    pthread_cond_destroy(&p->cond);
    free(p->workers);
    free(p);
}

int cpu_pool_size(const cpu_pool *p) { return p->n_threads; }

void cpu_pool_run(cpu_pool *p, cpu_task_fn fn, void *ctx)
{
    if (p->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    unsigned gen = (atomic_load_explicit(&p->state, memory_order_relaxed) >> 1) + 1;
    atomic_store(&p->state, gen << 1 | 1);
    /* Workers spinning on the state need no syscall: the mutex and
     * broadcast (futex calls) are paid only when one has gone to sleep. */
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mutex);
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->mutex);
    }
    fn(ctx, 0, p->n_threads);
    atomic_store(&p->state, gen << 1);
    int spins = 0;
    while (atomic_load(&p->n_active) > 0)
        if (++spins > POOL_WAIT_SPIN) sched_yield();
}
