/*
 * bench_ecache.c: embeddings per second through the scheduler with a share
 * of repeated texts, the embedding cache off and on. C clients each submit
 * one text at a time and wait for it (closed loop, as services do); a
 * share of the texts (default 50%) repeats one seen earlier in the run.
 * Each run uses texts no earlier run used, so every run starts cold; one
 * untimed warm-up run per mode, then -r timed runs: the median, min and max.
 * Results go to stdout (markdown), progress to stderr.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sched/sched.h"
#include "util.h"

static const char usage[] =
    "usage: bench_ecache -m EMBEDDING_MODEL [options]\n"
    "  -n N            requests (one text each) per run (default 400)\n"
    "  --repeat F      share of requests that repeat an earlier text of the run (default 0.5)\n"
    "  -c N            concurrent clients (default 8)\n"
    "  -r N            timed runs per mode after a warm-up (default 5)\n"
    "  --cache BYTES   the cache's budget when on (default 64 MiB)\n"
    "  --words N       words per text (default 24)\n"
    "  -t N            CPU threads (default: all)\n"
    "  --backend B     cpu | vulkan | auto (default cpu)\n";

typedef struct bench {
    scheduler   *s;
    char       **texts;  /* [n] the run's requests in order */
    int32_t      n;
    int32_t      next;   /* the next request to send (mu) */
    pthread_mutex_t mu;
    int          failed;
} bench;

/* Text k of run `run`: words drawn from a fixed list by a hash of both. */
static char *make_text(int run, int k, int words)
{
    static const char *const w[] = {"cache", "vector", "model", "service", "queue", "token", "embedding", "search",
                                    "npc", "dialogue", "summary", "player", "world", "quest", "memory", "device"};
    size_t cap = 64 + (size_t)words * 12, len = 0;
    char *t = malloc(cap);
    if (!t) return NULL;
    len += (size_t)snprintf(t, cap, "run %d text %d:", run, k);
    uint64_t h = (uint64_t)run * 0x9e3779b97f4a7c15ull ^ (uint64_t)k * 0xbf58476d1ce4e5b9ull;
    for (int i = 0; i < words && len + 12 < cap; i++) {
        h ^= h >> 31;
        h *= 0x94d049bb133111ebull;
        len += (size_t)snprintf(t + len, cap - len, " %s", w[(h >> 17) % 16]);
    }
    return t;
}

/* The run's requests: each is new, or (share `repeat`) one of the earlier ones. */
static char **make_run(int run, int32_t n, double repeat, int words)
{
    char **texts = calloc((size_t)n, sizeof *texts);
    int32_t *fresh = malloc(sizeof *fresh * (size_t)n), n_fresh = 0;
    uint64_t h = 0x1234567 + (uint64_t)run;
    for (int32_t k = 0; texts && fresh && k < n; k++) {
        h = h * 6364136223846793005ull + 1442695040888963407ull;
        const double u = (double)(h >> 11) / 9007199254740992.0;
        if (n_fresh > 0 && u < repeat) {
            texts[k] = strdup(texts[fresh[(h >> 7) % (uint64_t)n_fresh]]);
        } else {
            texts[k] = make_text(run, k, words);
            fresh[n_fresh++] = k;
        }
    }
    free(fresh);
    return texts;
}

static void *client(void *arg)
{
    bench *b = arg;
    for (;;) {
        pthread_mutex_lock(&b->mu);
        const int32_t k = b->next < b->n ? b->next++ : -1;
        pthread_mutex_unlock(&b->mu);
        if (k < 0) return NULL;
        sched_request *r = NULL;
        const char *t = b->texts[k];
        if (sched_submit_embed(b->s, 0, &t, 1, SCHED_PRIO_NORMAL, 0, &r, NULL) != VKI_OK) {
            fprintf(stderr, "bench_ecache: submit: %s\n", vki_last_error());
            b->failed = 1;
            return NULL;
        }
        sched_result res;
        char *chunk;
        size_t len;
        do {
            sched_request_poll(r, 0, -1, &chunk, &len, &res);
            free(chunk);
        } while (!res.done);
        if (res.status != VKI_OK) b->failed = 1;
        sched_request_release(r);
    }
}

/* One run: embeddings per second. */
static double run_once(bench *b, int run, int32_t n, double repeat, int words, int clients)
{
    b->texts = make_run(run, n, repeat, words);
    b->n = n;
    b->next = 0;
    pthread_t th[64];
    const double t0 = vki_time_ms();
    for (int c = 0; c < clients; c++) pthread_create(&th[c], NULL, client, b);
    for (int c = 0; c < clients; c++) pthread_join(th[c], NULL);
    const double ms = vki_time_ms() - t0;
    for (int32_t k = 0; k < n; k++) free(b->texts[k]);
    free(b->texts);
    return n / (ms / 1e3);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int32_t n = 400;
    double repeat = 0.5;
    int clients = 8, reps = 5, words = 24, threads = 0;
    uint64_t cache = 64ull << 20;
    vki_backend_kind backend = VKI_BACKEND_CPU;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "bench_ecache: %s needs a value\n%s", a, usage);
            return 2;
        }
        i++;
        if (!strcmp(a, "-m")) path = v;
        else if (!strcmp(a, "-n")) n = atoi(v);
        else if (!strcmp(a, "--repeat")) repeat = atof(v);
        else if (!strcmp(a, "-c")) clients = atoi(v);
        else if (!strcmp(a, "-r")) reps = atoi(v);
        else if (!strcmp(a, "--cache")) cache = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--words")) words = atoi(v);
        else if (!strcmp(a, "-t")) threads = atoi(v);
        else if (!strcmp(a, "--backend")) {
            if (!strcmp(v, "cpu")) backend = VKI_BACKEND_CPU;
            else if (!strcmp(v, "vulkan")) backend = VKI_BACKEND_VULKAN;
            else if (!strcmp(v, "auto")) backend = VKI_BACKEND_AUTO;
            else {
                fprintf(stderr, "bench_ecache: --backend %s: expected cpu, vulkan or auto\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "bench_ecache: unknown option %s\n%s", a, usage);
            return 2;
        }
    }
    if (!path || n < 1 || !(repeat >= 0 && repeat < 1) || clients < 1 || clients > 64 || reps < 1 || reps > 99 ||
        words < 1 || threads < 0 || !cache) {
        fprintf(stderr, "bench_ecache: need -m, n >= 1, 0 <= repeat < 1, 1..64 clients, 1..99 runs, a cache "
                        "budget > 0\n%s", usage);
        return 2;
    }
    double med[2] = {0}, lo[2] = {0}, hi[2] = {0}, hit_rate = 0;
    int run = 0;
    for (int on = 0; on < 2; on++) {
        sched_params sp = sched_default_params();
        sp.engine.n_threads = threads;
        sp.emb_cache_bytes = on ? cache : 0;
        sp.warmup = false;
        bench b = {.n = n};
        pthread_mutex_init(&b.mu, NULL);
        if (sched_create(&sp, &b.s) != VKI_OK) {
            fprintf(stderr, "bench_ecache: %s\n", vki_last_error());
            return 1;
        }
        sched_model_params mp = {.id = "embed", .path = path, .kind = SCHED_KIND_EMBEDDING,
                                 .mp = vki_model_default_params()};
        mp.mp.backend = backend;
        if (sched_add_model(b.s, &mp) != VKI_OK || !sched_wait_loaded(b.s, 600000)) {
            sched_model_info info;
            sched_model_get_info(b.s, 0, &info);
            fprintf(stderr, "bench_ecache: %s does not load: %s\n", path, info.error);
            sched_destroy(b.s);
            return 1;
        }
        double eps[100];
        sched_stats st0, st1;
        fprintf(stderr, "cache %s: warm-up\n", on ? "on" : "off");
        run_once(&b, run++, n, repeat, words, clients);
        sched_model_get_stats(b.s, 0, &st0);
        for (int r = 0; r < reps; r++) {
            eps[r] = run_once(&b, run++, n, repeat, words, clients);
            fprintf(stderr, "cache %s: run %d: %.1f embeddings/s\n", on ? "on" : "off", r + 1, eps[r]);
        }
        sched_model_get_stats(b.s, 0, &st1);
        if (on) {
            const double h = (double)(st1.emb_cache_hits - st0.emb_cache_hits);
            const double m = (double)(st1.emb_cache_misses - st0.emb_cache_misses);
            hit_rate = h + m > 0 ? h / (h + m) : 0;
        }
        qsort(eps, (size_t)reps, sizeof *eps, cmp_double);
        med[on] = reps % 2 ? eps[reps / 2] : (eps[reps / 2 - 1] + eps[reps / 2]) / 2;
        lo[on] = eps[0];
        hi[on] = eps[reps - 1];
        sched_destroy(b.s);
        pthread_mutex_destroy(&b.mu);
        if (b.failed) {
            fprintf(stderr, "bench_ecache: requests failed\n");
            return 1;
        }
    }
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    printf("| model | cache | requests | repeated | clients | embeddings/s (median of %d) | min | max | hit rate |\n"
           "|---|---|---:|---:|---:|---:|---:|---:|---:|\n", reps);
    for (int on = 0; on < 2; on++) {
        char rate[32] = "-";
        if (on) snprintf(rate, sizeof rate, "%.1f%%", hit_rate * 100);
        printf("| %s | %s | %d | %.0f%% | %d | %.1f | %.1f | %.1f | %s |\n", name, on ? "on" : "off", n, repeat * 100,
               clients, med[on], lo[on], hi[on], rate);
    }
    printf("\ncache on / off: %.2fx; %d words per text, %s backend\n", med[0] > 0 ? med[1] / med[0] : 0, words,
           backend == VKI_BACKEND_CPU ? "cpu" : backend == VKI_BACKEND_VULKAN ? "vulkan" : "auto");
    return 0;
}
