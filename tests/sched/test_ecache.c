/*
 * test_ecache.c: the embedding result cache in the scheduler
 * (sched_ecache.c) on the shared BERT model, CPU backend: a hit is
 * byte-identical to the miss that stored it and to the cache off; a request
 * of hits is done at submit while the model's queue is full; a partial hit
 * embeds only the rest; a reload drops the model's entries; an unload and
 * load of the same file keeps them (a hit needs no load), a file changed in
 * place drops them; a model removed and added again under its id starts
 * empty; a budget of 0 is off; a small budget evicts the least recently used.
 */
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sched_test_util.h"

static const char *g_path;

static scheduler *start_path(const char *path, bool keep0, uint64_t cache_bytes, int32_t max_queue, double wait_ms,
                             int32_t token_budget)
{
    sched_params sp = sched_default_params();
    sp.engine.n_threads = 2;
    sp.emb_cache_bytes = cache_bytes;
    sp.max_queue = max_queue;
    sp.embed_wait_ms = wait_ms;
    sp.embed_token_budget = token_budget;
    scheduler *s = NULL;
    CHECK(sched_create(&sp, &s) == VKI_OK);
    sched_model_params mp = {.id = "e", .path = path, .kind = SCHED_KIND_EMBEDDING, .mp = vki_model_default_params()};
    mp.mp.backend = VKI_BACKEND_CPU;
    mp.has_keep_alive = keep0; /* keep_alive 0: unloaded as soon as it is idle */
    CHECK(sched_add_model(s, &mp) == VKI_OK);
    if (!keep0) CHECK(sched_wait_loaded(s, 60000));
    else CHECK(sched_wait_state(s, 0, SCHED_UNLOADED, 60000)); /* its file is open: it takes requests */
    return s;
}

static scheduler *start(uint64_t cache_bytes, int32_t max_queue, double wait_ms, int32_t token_budget)
{
    return start_path(g_path, false, cache_bytes, max_queue, wait_ms, token_budget);
}

static sched_stats stats(scheduler *s)
{
    sched_stats st;
    sched_model_get_stats(s, 0, &st);
    return st;
}

/* Embeds texts[0..n) as one request; copies the vectors into a malloc'd
 * array (*dim each). *at_once: the cache answered every text and the
 * request was done when submit returned. "Done at the first poll" alone
 * raced: a miss on a fast backend can finish between submit and the poll
 * (a fresh clone failed test_bypass that way once CPU prompts got faster). */
static float *embed(scheduler *s, const char *const *texts, int32_t n, int32_t *dim, bool *at_once)
{
    sched_request *r = NULL;
    double eta = -1;
    sched_emb_cache_info ci;
    sched_get_emb_cache_info(s, &ci);
    const uint64_t misses0 = stats(s).emb_cache_misses;
    vki_status st = sched_submit_embed(s, 0, texts, n, SCHED_PRIO_NORMAL, 0, &r, &eta);
    const bool all_hits = ci.budget > 0 && stats(s).emb_cache_misses == misses0; /* counted at submit */
    CHECKF(st == VKI_OK, "%s", vki_last_error());
    if (st != VKI_OK) exit(test_finish("test_ecache"));
    sched_result res;
    char *chunk = NULL;
    size_t len;
    sched_request_poll(r, 0, 0, &chunk, &len, &res);
    free(chunk);
    if (at_once) *at_once = res.done && all_hits;
    if (all_hits) CHECKF(res.done && res.start_order > 0 && eta == 0, "a request of cached texts only: done %d, eta %g",
                         res.done, eta);
    res = st_wait_done(r);
    CHECKF(res.status == VKI_OK, "%s", res.error);
    int32_t nt = 0;
    const float *e = sched_request_embeddings(r, &nt, dim);
    CHECK(e && nt == n);
    float *copy = malloc(sizeof *copy * (size_t)n * (size_t)*dim);
    memcpy(copy, e, sizeof *copy * (size_t)n * (size_t)*dim);
    sched_request_release(r);
    return copy;
}

static float *embed1(scheduler *s, const char *text, int32_t *dim, bool *at_once)
{
    return embed(s, &text, 1, dim, at_once);
}

/* Off, on, hit, partial hit, reload. Every vector is computed alone (one
 * text per mdl_embed), so the comparisons are exact, not within a tolerance. */
static void test_identical_and_reload(void)
{
    int32_t dim = 0, d2 = 0;
    bool now = false;
    scheduler *off = start(0, 0, 0, 0);
    float *ref = embed1(off, "hello world", &dim, &now);
    float *ref_new = embed1(off, "a new text", &dim, NULL);
    float *again = embed1(off, "hello world", &dim, &now);
    CHECK(!now && !memcmp(ref, again, sizeof *ref * (size_t)dim));
    sched_emb_cache_info ci;
    sched_get_emb_cache_info(off, &ci);
    CHECK(ci.budget == 0 && ci.entries == 0 && ci.bytes == 0);
    CHECK(stats(off).emb_cache_hits == 0 && stats(off).emb_cache_misses == 0);
    free(again);
    sched_destroy(off);

    scheduler *s = start(1 << 20, 0, 0, 0);
    float *miss = embed1(s, "hello world", &d2, &now);
    CHECK(d2 == dim && !now);
    float *hit = embed1(s, "hello world", &d2, &now);
    CHECKF(now, "a request whose only text is cached is done at submit");
    CHECK(!memcmp(ref, miss, sizeof *ref * (size_t)dim));
    CHECK(!memcmp(miss, hit, sizeof *ref * (size_t)dim));
    sched_stats st = stats(s);
    CHECKF(st.emb_cache_hits == 1 && st.emb_cache_misses == 1, "hits %llu misses %llu",
           (unsigned long long)st.emb_cache_hits, (unsigned long long)st.emb_cache_misses);
    CHECK(st.steps == 1); /* the hit ran nothing */

    /* Partial: the cached text is merged in place, only the other is embedded (alone). */
    const char *mixed[] = {"a new text", "hello world"};
    float *two = embed(s, mixed, 2, &d2, &now);
    CHECK(!now);
    CHECK(!memcmp(two, ref_new, sizeof *ref * (size_t)dim));
    CHECK(!memcmp(two + dim, ref, sizeof *ref * (size_t)dim));
    st = stats(s);
    CHECK(st.emb_cache_hits == 2 && st.emb_cache_misses == 2 && st.step_seqs == 2);
    sched_get_emb_cache_info(s, &ci);
    CHECK(ci.entries == 2 && ci.bytes > 0 && ci.bytes <= ci.budget && ci.budget == 1 << 20);

    /* A reload starts a new generation: the entries go, the next request embeds again. */
    CHECK(sched_reload_model(s, 0, g_path) == VKI_OK);
    for (int k = 0; k < 600 && stats(s).swaps == 0; k++) nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
    CHECK(stats(s).swaps == 1);
    CHECK(sched_wait_state(s, 0, SCHED_RESIDENT_CPU, 60000));
    sched_get_emb_cache_info(s, &ci);
    CHECKF(ci.entries == 0 && ci.bytes == 0, "%llu entries left after the reload", (unsigned long long)ci.entries);
    float *after = embed1(s, "hello world", &d2, &now);
    CHECK(!now && stats(s).emb_cache_misses == 3);
    CHECK(!memcmp(after, ref, sizeof *ref * (size_t)dim)); /* the same file gives the same bytes */
    free(after);
    after = embed1(s, "hello world", &d2, &now);
    CHECK(now && !memcmp(after, ref, sizeof *ref * (size_t)dim));
    /* Removed, then added again under the same id: nothing of the old one is answered. */
    CHECK(sched_remove_model(s, 0) == VKI_OK);
    for (int k = 0; k < 600; k++) {
        sched_get_emb_cache_info(s, &ci);
        if (!ci.entries) break;
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
    }
    CHECKF(ci.entries == 0, "a removed model's entries are dropped (%llu left)", (unsigned long long)ci.entries);
    sched_model_params mp = {.id = "e", .path = g_path, .kind = SCHED_KIND_EMBEDDING, .mp = vki_model_default_params()};
    mp.mp.backend = VKI_BACKEND_CPU;
    CHECK(sched_add_model(s, &mp) == VKI_OK && sched_find(s, "e") == 1);
    CHECK(sched_wait_state(s, 1, SCHED_RESIDENT_CPU, 60000));
    const char *hw = "hello world";
    sched_request *r = NULL;
    CHECK(sched_submit_embed(s, 1, &hw, 1, SCHED_PRIO_NORMAL, 0, &r, NULL) == VKI_OK);
    sched_result res = st_wait_done(r);
    sched_stats st1;
    sched_model_get_stats(s, 1, &st1);
    CHECKF(res.status == VKI_OK && st1.emb_cache_misses == 1 && st1.emb_cache_hits == 0, "status %d, %llu hits",
           res.status, (unsigned long long)st1.emb_cache_hits);
    sched_request_release(r);
    printf("identical: miss, hit, partial hit and cache off agree bit for bit (dim %d); a reload dropped 2 entries\n",
           dim);
    free(after);
    free(two);
    free(hit);
    free(miss);
    free(ref);
    free(ref_new);
    sched_destroy(s);
}

/* A lone short request waits a minute for company (it cannot fill the
 * token budget) and fills the queue (max_queue 1): a miss is refused, a
 * hit is answered at once. */
static void test_bypass(void)
{
    const char *longer = "the quick brown fox jumps over the lazy dog and runs away again";
    scheduler *s = start(1 << 20, 1, 60000, 8);
    int32_t dim = 0;
    bool now = true;
    float *first = embed1(s, longer, &dim, &now); /* over the budget: it runs at once */
    CHECK(!now);
    const char *shorter = "a";
    sched_request *waiting = NULL, *refused = NULL, *hit = NULL;
    double eta = 0;
    CHECK(sched_submit_embed(s, 0, &shorter, 1, SCHED_PRIO_NORMAL, 0, &waiting, &eta) == VKI_OK);
    const char *other = "b";
    vki_status st = sched_submit_embed(s, 0, &other, 1, SCHED_PRIO_NORMAL, 0, &refused, &eta);
    CHECKF(st == VKI_ERR_QUEUE_FULL, "a miss with the queue full: %s", vki_status_str(st));
    eta = -1;
    CHECK(sched_submit_embed(s, 0, &longer, 1, SCHED_PRIO_INTERACTIVE, 0, &hit, &eta) == VKI_OK);
    sched_result res;
    char *chunk = NULL;
    size_t len;
    sched_request_poll(hit, 0, 0, &chunk, &len, &res);
    CHECKF(res.done && res.status == VKI_OK && eta == 0 && res.queue_ms == 0,
           "the hit waited (done %d, eta %g s)", res.done, eta);
    int32_t pos = -1;
    double qeta = -1;
    sched_request_queue_info(hit, &pos, &qeta);
    CHECK(pos == 0 && qeta == 0);
    int32_t n = 0, d = 0;
    CHECK(!memcmp(sched_request_embeddings(hit, &n, &d), first, sizeof *first * (size_t)dim));
    sched_request_poll(waiting, 0, 0, &chunk, &len, &res);
    CHECK(!res.done); /* still waiting for company: the model's queue was full all along */
    sched_request_cancel(waiting);
    res = st_wait_done(waiting);
    CHECK(res.status == VKI_ERR_CANCELLED);
    sched_request_release(waiting);
    sched_request_release(hit);
    free(first);
    printf("bypass: a hit was answered at once beside a full queue\n");
    sched_destroy(s);
}

/* Room for two entries of one-token texts: a third evicts the least recently used. */
static void test_eviction(void)
{
    scheduler *probe = start(1 << 20, 0, 0, 0);
    int32_t dim = 0;
    free(embed1(probe, "a", &dim, NULL));
    sched_emb_cache_info ci;
    sched_get_emb_cache_info(probe, &ci);
    const uint64_t entry = ci.bytes;
    sched_destroy(probe);
    CHECK(entry > (uint64_t)dim * sizeof(float));

    scheduler *s = start(2 * entry + entry / 2, 0, 0, 0);
    bool now = false;
    const char *seq[] = {"a", "b", "a", "c"}; /* "a" is used again: "b" is the least recent */
    for (int k = 0; k < 4; k++) free(embed1(s, seq[k], &dim, &now));
    sched_get_emb_cache_info(s, &ci);
    CHECKF(ci.evictions >= 1 && ci.bytes <= ci.budget && ci.entries <= 2, "evictions %llu, %llu bytes of %llu",
           (unsigned long long)ci.evictions, (unsigned long long)ci.bytes, (unsigned long long)ci.budget);
    free(embed1(s, "a", &dim, &now));
    CHECKF(now, "the recently used entry stays");
    free(embed1(s, "b", &dim, &now));
    CHECKF(!now, "the least recently used entry was evicted");
    printf("eviction: budget %llu bytes (%llu per entry), %llu evictions\n", (unsigned long long)ci.budget,
           (unsigned long long)entry, (unsigned long long)ci.evictions);
    sched_destroy(s);
}

/* keep_alive 0 on a copy of the model: the entries outlive an unload (a hit
 * loads nothing), and a load that finds the file changed drops them. */
static void test_unload_and_file_change(void)
{
    char copy[] = "/tmp/test_ecache_XXXXXX";
    int fd = mkstemp(copy);
    size_t len = 0;
    char *bytes = test_read_file(g_path, &len);
    CHECK(fd >= 0 && bytes && write(fd, bytes, len) == (ssize_t)len);
    close(fd);
    free(bytes);
    scheduler *s = start_path(copy, true, 1 << 20, 0, 0, 0);
    int32_t dim = 0;
    bool now = true;
    float *x = embed1(s, "hello world", &dim, &now);
    CHECK(!now && stats(s).loads == 1);
    CHECK(sched_wait_state(s, 0, SCHED_UNLOADED, 60000));
    float *hit = embed1(s, "hello world", &dim, &now);
    CHECKF(now && stats(s).loads == 1, "a hit while unloaded loads nothing (done %d, %llu loads)", now,
           (unsigned long long)stats(s).loads);
    CHECK(!memcmp(x, hit, sizeof *x * (size_t)dim));
    CHECK(sched_wait_state(s, 0, SCHED_UNLOADED, 60000));
    /* The same bytes, but a new mtime: the cache cannot know they are the same. */
    struct timespec ts[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
    CHECK(utimensat(AT_FDCWD, copy, ts, 0) == 0);
    free(embed1(s, "another text", &dim, &now)); /* loads: the file changed */
    CHECK(!now && stats(s).loads == 2);
    sched_emb_cache_info ci;
    sched_get_emb_cache_info(s, &ci);
    CHECKF(ci.entries == 1, "the changed file's load dropped the old entries (%llu left)",
           (unsigned long long)ci.entries);
    free(embed1(s, "hello world", &dim, &now));
    CHECK(!now);
    printf("unload: a hit needed no load; a file changed in place dropped the entries\n");
    sched_destroy(s);
    unlink(copy);
    free(x);
    free(hit);
}

int main(void)
{
    g_path = test_shared_path("models/synthetic-bert-mini-f32.gguf");
    test_identical_and_reload();
    test_bypass();
    test_eviction();
    test_unload_and_file_change();
    return test_finish("test_ecache");
}
