/* test_arbiter.c: one order of work per device (engine/sched/sched_arbiter.c).
 * An interactive chat stream on one model, while other models on the same
 * device (the CPU backend) run a flood of batch completions with long
 * prompts (one client repeats its prompt, which prefix reuse then finds
 * whole; one sends that history with a new tail each time, cut into chunks)
 * and, with ../shared, batch embeddings. The
 * stream's per-token latency (p50, p99) with the flood stays within 1.5x of
 * its latency alone; both are measured in the same run, alternating alone
 * and flooded rounds, so the box's other load falls on both (up to five
 * such measurements; one must meet the bound on both figures). The batch work
 * still completes. A unit check first: the arbiter's grant order (class,
 * then age, aging) with no model.
 * Usage: test_arbiter DEFAULT_MODEL.gguf [ROUNDS] */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/sched/sched_internal.h"
#include "sched_test_util.h"
#include "test_util.h"
#include "util.h"

#define N_TOKENS 24   /* per stream */
#define MAX_GAPS 4096
/* The bound the task sets: flooded latency within 1.5x of alone. */
#define BOUND 1.5
#define ATTEMPTS 5

/* ===== The grant order, no model ======================================== */

typedef struct arb_client {
    sched_arb *a;
    sched_prio prio;
    int        order; /* when it was granted */
    int       *next;
    pthread_mutex_t *mu;
} arb_client;

static void *arb_main(void *arg)
{
    arb_client *c = arg;
    sched_arb_acquire(c->a, c->prio, c);
    pthread_mutex_lock(c->mu);
    c->order = (*c->next)++;
    pthread_mutex_unlock(c->mu);
    sched_arb_release(c->a, c->prio, c);
    return NULL;
}

static void test_order(void)
{
    sched_arb a;
    sched_arb_init(&a, 100000, -1); /* no aging within the test, no hold */
    int next = 0;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    /* Held by the test while three wait: batch (first), normal, interactive. */
    const void *me = &a;
    sched_arb_acquire(&a, SCHED_PRIO_BATCH, me);
    arb_client c[3] = {{&a, SCHED_PRIO_BATCH, -1, &next, &mu},
                       {&a, SCHED_PRIO_NORMAL, -1, &next, &mu},
                       {&a, SCHED_PRIO_INTERACTIVE, -1, &next, &mu}};
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        CHECK(pthread_create(&th[i], NULL, arb_main, &c[i]) == 0);
        /* let it queue: it must be waiting before the next arrives */
        for (double t = vki_time_ms(); vki_time_ms() - t < 50;) {}
    }
    sched_arb_release(&a, SCHED_PRIO_BATCH, me);
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    CHECKF(c[2].order == 0 && c[1].order == 1 && c[0].order == 2, "granted interactive %d, normal %d, batch %d",
           c[2].order, c[1].order, c[0].order);
    sched_arb_deinit(&a);

    /* Aging: a batch step that waited 3 aging periods goes before a new interactive one. */
    sched_arb_init(&a, 20, -1);
    next = 0;
    sched_arb_acquire(&a, SCHED_PRIO_BATCH, me);
    c[0] = (arb_client){&a, SCHED_PRIO_BATCH, -1, &next, &mu};
    c[1] = (arb_client){&a, SCHED_PRIO_INTERACTIVE, -1, &next, &mu};
    CHECK(pthread_create(&th[0], NULL, arb_main, &c[0]) == 0);
    for (double t = vki_time_ms(); vki_time_ms() - t < 60;) {}
    CHECK(pthread_create(&th[1], NULL, arb_main, &c[1]) == 0);
    for (double t = vki_time_ms(); vki_time_ms() - t < 5;) {}
    sched_arb_release(&a, SCHED_PRIO_BATCH, me);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    CHECKF(c[0].order == 0, "the aged batch step went %s", c[0].order == 0 ? "first" : "second");
    sched_arb_deinit(&a);

    /* The hold: a batch step waits while an interactive owner steps again
     * within hold_ms, and goes once the hold is over. A release does not
     * wake waiters the hold keeps out, so this checks they still wake by
     * themselves at its end (not at the aging look, 25 s here). */
    sched_arb_init(&a, 100000, 100);
    next = 0;
    sched_arb_acquire(&a, SCHED_PRIO_INTERACTIVE, me);
    c[0] = (arb_client){&a, SCHED_PRIO_BATCH, -1, &next, &mu};
    CHECK(pthread_create(&th[0], NULL, arb_main, &c[0]) == 0);
    for (double t = vki_time_ms(); vki_time_ms() - t < 30;) {}
    for (int k = 0; k < 3; k++) { /* three more interactive steps, each within the hold */
        sched_arb_release(&a, SCHED_PRIO_INTERACTIVE, me);
        sched_arb_acquire(&a, SCHED_PRIO_INTERACTIVE, me);
    }
    pthread_mutex_lock(&mu);
    const int batch_before = c[0].order;
    pthread_mutex_unlock(&mu);
    const double t_rel = vki_time_ms();
    sched_arb_release(&a, SCHED_PRIO_INTERACTIVE, me);
    pthread_join(th[0], NULL);
    const double after = vki_time_ms() - t_rel;
    CHECKF(batch_before == -1, "the batch step went during the interactive owner's steps");
    CHECKF(after >= 90 && after < 2000, "the batch step went %.1f ms after the last interactive step (hold 100 ms)",
           after);
    sched_arb_deinit(&a);
    printf("order: interactive, normal, batch; an aged batch step before a new interactive one; a batch step held "
           "off by an interactive one's steps, then granted %.1f ms after its last (hold 100 ms)\n", after);
}

/* ===== The flood ========================================================= */

typedef struct flood {
    scheduler  *s;
    int32_t     model;
    bool        embed;
    atomic_bool stop;
    int         done_ok, failed, n_sent;
    char        error[256];
} flood;

static const char *long_prompt(void)
{
    static char p[4096];
    if (!p[0])
        for (int i = 0; i < 24; i++) strcat(p, "Once upon a time there was a little dog who liked to run. ");
    return p;
}

/* A flood prompt: the long one, then (n >= 0) a tail of about 100 tokens
 * that differs per request. With prefix reuse the long part is found in a
 * slot and the tail is evaluated in chunks, as a chat client's next turn
 * is; the prompt repeated whole (n < 0) costs one token, so its requests
 * are decode steps back to back and end (and come again) most often. */
static void flood_prompt(char *p, size_t cap, int n)
{
    static const char *const w[8] = {"apple", "river", "stone", "cloud", "lamp", "forest", "violin", "harbor"};
    size_t len = (size_t)snprintf(p, cap, "%s", long_prompt());
    for (int i = 0; i < 24 && n >= 0 && len < cap; i++)
        len += (size_t)snprintf(p + len, cap - len, "%s %d, ", w[(n * 7 + i * 3) % 8], n * 31 + i);
}

static void *flood_main(void *arg)
{
    flood *f = arg;
    char prompt[8192];
    static const char *const texts[8] = {"a small red ball", "the cat sat on the mat", "once upon a time",
                                         "a quick brown fox jumps over the lazy dog", "rain in the morning",
                                         "the end of the story", "bread and butter", "a long walk home"};
    while (!atomic_load(&f->stop)) {
        sched_request *r = NULL;
        vki_status st;
        if (f->embed) {
            st = sched_submit_embed(f->s, f->model, texts, 8, SCHED_PRIO_BATCH, 0, &r, NULL);
        } else {
            vki_generate_params gp = st_greedy(8);
            flood_prompt(prompt, sizeof prompt, f->n_sent < 0 ? -1 : f->n_sent++);
            st = sched_submit_generate(f->s, f->model, prompt, &gp, SCHED_PRIO_BATCH, 0, &r, NULL);
        }
        if (st != VKI_OK) {
            if (!f->error[0]) snprintf(f->error, sizeof f->error, "submit: %s", vki_last_error());
            f->failed++;
            break;
        }
        sched_result res = st_wait_done(r);
        if (res.status == VKI_OK) f->done_ok++;
        else {
            if (!f->error[0]) snprintf(f->error, sizeof f->error, "%s", res.error ? res.error : "");
            f->failed++;
        }
        sched_request_release(r);
    }
    return NULL;
}

/* One interactive stream: appends its per-token gaps (ms) to gaps[]. */
static void stream_once(scheduler *s, int32_t model, double *gaps, int *n_gaps)
{
    vki_generate_params gp = st_greedy(N_TOKENS);
    sched_request *r = NULL;
    CHECK(sched_submit_generate(s, model, "Once upon a time", &gp, SCHED_PRIO_INTERACTIVE, 0, &r, NULL) == VKI_OK);
    if (!r) return;
    size_t have = 0;
    int32_t seen = 0;
    double last = 0;
    for (;;) {
        char *chunk = NULL;
        size_t n = 0;
        sched_result res;
        sched_request_poll(r, have, -1, &chunk, &n, &res);
        free(chunk);
        have += n;
        const double now = vki_time_ms();
        if (res.n_generated > seen) {
            /* The first token is the prompt's (TTFT), not a per-token figure. */
            if (seen > 0 && *n_gaps < MAX_GAPS) {
                const int32_t k = res.n_generated - seen;
                for (int32_t i = 0; i < k && *n_gaps < MAX_GAPS; i++) gaps[(*n_gaps)++] = (now - last) / k;
            }
            seen = res.n_generated;
            last = now;
        }
        if (res.done) {
            CHECKF(res.status == VKI_OK, "stream: %s", res.error ? res.error : "");
            break;
        }
    }
    sched_request_release(r);
}

/* The greedy text of n tokens after prompt on model (malloc'd). */
static char *greedy_text(scheduler *s, int32_t model, const char *prompt, int32_t n)
{
    vki_generate_params gp = st_greedy(n);
    sched_request *r = NULL;
    CHECK(sched_submit_generate(s, model, prompt, &gp, SCHED_PRIO_NORMAL, 0, &r, NULL) == VKI_OK);
    if (!r) return NULL;
    sched_result res = st_wait_done(r);
    char *text = NULL;
    size_t len = 0;
    sched_request_poll(r, 0, 0, &text, &len, &res);
    CHECKF(res.status == VKI_OK, "greedy run: %s", res.error ? res.error : "");
    sched_request_release(r);
    return text;
}

/* A prompt fed in chunks gives the text it gives in one pass. */
static void test_chunked_prompt(const char *path)
{
    char *text[2] = {NULL, NULL};
    const int32_t chunk[2] = {7, 4096};
    int32_t n_prompt = 0;
    for (int k = 0; k < 2; k++) {
        sched_params sp = sched_default_params();
        sp.engine.n_threads = 2;
        sp.arb_chunk_tokens = chunk[k];
        scheduler *s = NULL;
        CHECK(sched_create(&sp, &s) == VKI_OK);
        sched_model_params mp = {.id = "m", .path = path, .kind = SCHED_KIND_CHAT, .mp = vki_model_default_params()};
        mp.mp.backend = VKI_BACKEND_CPU;
        mp.mp.n_ctx = 1024;
        CHECK(sched_add_model(s, &mp) == VKI_OK);
        CHECK(sched_wait_loaded(s, 60000));
        text[k] = greedy_text(s, 0, long_prompt(), 16);
        sched_stats st;
        sched_model_get_stats(s, 0, &st);
        n_prompt = (int32_t)st.prompt_tokens;
        if (k == 0) CHECKF(st.steps >= (uint64_t)(n_prompt / 7), "%llu steps for a %d-token prompt in chunks of 7",
                           (unsigned long long)st.steps, n_prompt);
        sched_destroy(s);
    }
    CHECKF(text[0] && text[1] && !strcmp(text[0], text[1]), "chunked prompt: '%s' against '%s' in one pass",
           text[0] ? text[0] : "(none)", text[1] ? text[1] : "(none)");
    printf("chunked prompt: %d tokens in chunks of 7 give the one-pass greedy text\n", n_prompt);
    free(text[0]);
    free(text[1]);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
    if (n == 0) return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    int i = (int)ceil(p * n) - 1;
    return v[i < 0 ? 0 : i];
}

int main(int argc, char **argv)
{
    const char *path = st_model_arg(argc, argv, "test_arbiter");
    const int rounds = argc > 2 && atoi(argv[2]) > 0 ? atoi(argv[2]) : 20;
    test_order();
    test_chunked_prompt(path);

    const char *dir = getenv("VKI_SHARED_DIR");
    char bert[1024];
    snprintf(bert, sizeof bert, "%s/models/synthetic-bert-mini-f32.gguf", dir && dir[0] ? dir : "../shared");
    FILE *bf = fopen(bert, "rb");
    const bool have_bert = bf != NULL;
    if (bf) fclose(bf);

    sched_params sp = sched_default_params();
    sp.engine.n_threads = 2;
    /* The test model decodes a token in about 1 ms on the CPU: a chunk must
     * be small beside that (a 64-token chunk takes 10-15 ms), and a 2-core
     * box that runs other work can leave the stream's thread off a core for
     * a few ms between steps (the hold). ARB_CHUNK / ARB_HOLD change them. */
    sp.arb_chunk_tokens = getenv("ARB_CHUNK") ? atoi(getenv("ARB_CHUNK")) : 16;
    sp.arb_hold_ms = getenv("ARB_HOLD") ? atof(getenv("ARB_HOLD")) : 10;
    scheduler *s = NULL;
    CHECK(sched_create(&sp, &s) == VKI_OK);
    sched_model_params mp = {.id = "chat", .path = path, .kind = SCHED_KIND_CHAT, .mp = vki_model_default_params()};
    mp.mp.backend = VKI_BACKEND_CPU;
    mp.mp.n_ctx = 1024;
    mp.mp.n_seq_max = 1;
    /* Prefix reuse on, as users run it: the flood's repeated prompt then
     * costs one token, so bulk runs decode steps back to back and its
     * requests end (and are submitted again) ten times as often as with
     * reuse off. ARB_NO_REUSE=1 turns it off to compare. */
    mp.no_prefix_reuse = getenv("ARB_NO_REUSE") != NULL;
    CHECK(sched_add_model(s, &mp) == VKI_OK);
    mp.id = "bulk";
    mp.mp.n_seq_max = 2;
    CHECK(sched_add_model(s, &mp) == VKI_OK);
    if (have_bert) {
        sched_model_params ep = {.id = "emb", .path = bert, .kind = SCHED_KIND_EMBEDDING,
                                 .mp = vki_model_default_params()};
        ep.mp.backend = VKI_BACKEND_CPU;
        CHECK(sched_add_model(s, &ep) == VKI_OK);
    } else {
        printf("embeddings: left out (%s is absent); the flood is batch completions only\n", bert);
    }
    CHECK(sched_wait_loaded(s, 60000));

    static double alone[MAX_GAPS], flooded[MAX_GAPS];
    int flood_ok = 0, flood_failed = 0, passed = 0, bulk_ok = 0;
    double a50 = 0, a99 = 0, f50 = 0, f99 = 0;
    /* Up to ATTEMPTS measurements: the box's other load makes any one p99
     * noisy (alone, it ranges 2-20 ms here); one that meets the bound on
     * both figures passes. Without the arbiter's order (one chunk per
     * prompt, no hold) every attempt fails by far: p50 6x, p99 30x. */
    for (int attempt = 0; attempt < ATTEMPTS && !passed; attempt++) {
        int n_alone = 0, n_flooded = 0;
        stream_once(s, 0, alone, &n_alone); /* warm-up, not counted */
        n_alone = 0;
        for (int round = 0; round < rounds; round++) {
            for (int phase = 0; phase < 2; phase++) {
                const bool with_flood = (phase + round) % 2 == 1; /* alternate which comes first */
                if (!with_flood) {
                    stream_once(s, 0, alone, &n_alone);
                    continue;
                }
                flood f[4];
                pthread_t th[4];
                int nf = 0;
                /* one client repeats its prompt, one sends new tails */
                for (int k = 0; k < 2; k++, nf++)
                    f[nf] = (flood){.s = s, .model = 1, .n_sent = k ? 1000 * (round + rounds * attempt) : -1};
                if (have_bert)
                    for (int k = 0; k < 2; k++, nf++) f[nf] = (flood){.s = s, .model = 2, .embed = true};
                for (int k = 0; k < nf; k++) {
                    atomic_init(&f[k].stop, false);
                    CHECK(pthread_create(&th[k], NULL, flood_main, &f[k]) == 0);
                }
                /* Let the flood fill the queues first (its submits are
                 * in, both models step). */
                usleep(150 * 1000);
                stream_once(s, 0, flooded, &n_flooded);
                for (int k = 0; k < nf; k++) atomic_store(&f[k].stop, true);
                for (int k = 0; k < nf; k++) {
                    pthread_join(th[k], NULL);
                    flood_ok += f[k].done_ok;
                    if (!f[k].embed) bulk_ok += f[k].done_ok;
                    flood_failed += f[k].failed;
                    CHECKF(!f[k].error[0], "flood %d: %s", k, f[k].error);
                }
            }
        }
        a50 = pct(alone, n_alone, 0.5), a99 = pct(alone, n_alone, 0.99);
        f50 = pct(flooded, n_flooded, 0.5), f99 = pct(flooded, n_flooded, 0.99);
        printf("attempt %d: per-token latency, %d rounds of %d tokens: alone p50 %.2f ms p99 %.2f ms; with the flood "
               "p50 %.2f ms (%.2fx) p99 %.2f ms (%.2fx)\n",
               attempt + 1, rounds, N_TOKENS, a50, a99, f50, f50 / a50, f99, f99 / a99);
        passed = f50 <= BOUND * a50 && f99 <= BOUND * a99;
    }
    sched_stats st[3];
    for (int i = 0; i < (have_bert ? 3 : 2); i++) sched_model_get_stats(s, i, &st[i]);
    printf("flood: %d batch requests done, %d failed; bulk %llu steps (%.1f ms waited per grant)", flood_ok,
           flood_failed, (unsigned long long)st[1].arb_grants,
           st[1].arb_grants ? st[1].arb_wait_ms / (double)st[1].arb_grants : 0);
    if (have_bert)
        printf(", emb %llu chunks (%.1f ms waited per grant)", (unsigned long long)st[2].arb_grants,
               st[2].arb_grants ? st[2].arb_wait_ms / (double)st[2].arb_grants : 0);
    printf("; chat waited %.2f ms per grant\n", st[0].arb_grants ? st[0].arb_wait_ms / (double)st[0].arb_grants : 0);
    CHECKF(f50 <= BOUND * a50, "p50 %.2f ms with the flood, %.2f ms alone", f50, a50);
    CHECKF(f99 <= BOUND * a99, "p99 %.2f ms with the flood, %.2f ms alone", f99, a99);
    CHECKF(flood_ok > 0 && flood_failed == 0, "the batch work: %d done, %d failed", flood_ok, flood_failed);
    printf("bulk prompts: %llu tokens reused, %llu evaluated\n", (unsigned long long)st[1].prompt_reused,
           (unsigned long long)st[1].prompt_evaluated);
    /* After the first request in each of its 2 slots, every prompt starts with a history a slot holds. */
    if (!mp.no_prefix_reuse && bulk_ok > 2)
        CHECKF(st[1].prompt_reused > 0, "prefix reuse on, yet bulk reused no prompt token in %d requests", bulk_ok);
    sched_destroy(s);
    return test_finish("test_arbiter");
}
