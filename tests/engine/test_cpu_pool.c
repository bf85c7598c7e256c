/*
 * test_cpu_pool.c: the CPU thread pool's contract under stress: every job's
 * chunks are done exactly once whichever threads turn up, no thread runs a
 * job twice, and cpu_pool_run returns only after every thread that joined
 * has left fn. Workers are made late at random (short sleeps), the case
 * where the caller finishes a job alone and a worker arrives after it.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/cpu/cpu.h"
#include "error.h"
#include "test_util.h"

#define N_ITEMS 257

typedef struct job {
    cpu_chunks  ch;
    atomic_int  hits[N_ITEMS];
    atomic_int  runs[16];    /* per ith                               */
    atomic_int  inside;      /* threads in fn right now               */
    unsigned    seed;
} job;

static void work(void *arg, int ith, int nth)
{
    job *j = arg;
    atomic_fetch_add(&j->inside, 1);
    atomic_fetch_add(&j->runs[ith], 1);
    if (ith > 0 && (j->seed + (unsigned)ith) % 3 == 0) {
        struct timespec ts = {0, 20000 + (long)((j->seed * 7919u) % 50000u)};
        nanosleep(&ts, NULL);
    }
    int64_t i;
    for (cpu_chunk_it it = {0, 0}; cpu_chunk_each(&j->ch, &it, &i);) atomic_fetch_add(&j->hits[i], 1);
    (void)nth;
    atomic_fetch_sub(&j->inside, 1);
}

int main(void)
{
    int threads[] = {1, 2, 3, 4};
    for (size_t ti = 0; ti < VKI_COUNT(threads); ti++) {
        cpu_pool *pool = NULL;
        CHECK(cpu_pool_create(threads[ti], &pool) == VKI_OK);
        if (!pool) continue;
        job *j = malloc(sizeof *j);
        VKI_ASSERT(j);
        int bad = 0;
        for (unsigned it = 0; it < 2000 && bad < 5; it++) {
            memset(j, 0, sizeof *j);
            j->seed = it;
            cpu_chunks_init(&j->ch, N_ITEMS, threads[ti], 1 + it % 5);
            cpu_pool_run(pool, work, j);
            CHECKF(atomic_load(&j->inside) == 0, "%d threads, job %u: a thread was still in fn after run returned",
                   threads[ti], it);
            CHECKF(atomic_load(&j->runs[0]) == 1, "%d threads, job %u: caller ran fn %d times", threads[ti], it,
                   atomic_load(&j->runs[0]));
            for (int t = 1; t < 16; t++) {
                int r = atomic_load(&j->runs[t]);
                if (r > 1 || (t >= threads[ti] && r)) {
                    CHECKF(0, "%d threads, job %u: thread %d ran fn %d times", threads[ti], it, t, r);
                    bad++;
                }
            }
            for (int i = 0; i < N_ITEMS; i++)
                if (atomic_load(&j->hits[i]) != 1) {
                    CHECKF(0, "%d threads, job %u: item %d done %d times", threads[ti], it, i, atomic_load(&j->hits[i]));
                    bad++;
                    break;
                }
        }
        free(j);
        cpu_pool_destroy(pool);
    }
    cpu_pool_destroy(NULL);
    return test_finish("test_cpu_pool");
}
