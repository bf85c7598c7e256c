/*
 * test_emb_cache.c: the embedding result cache on its own: hits are
 * byte-identical copies, every part of the key matters (model, generation,
 * normalisation, ids, width), least recently used entries leave first and
 * the byte budget holds, a model's entries can be dropped, a budget of 0 is
 * off, and four threads hammering one cache agree with the counters.
 */
#include <pthread.h>
#include <string.h>

#include "engine/sched/emb_cache.h"
#include "test_util.h"

#define DIM 64

static void fill(float *v, int32_t seed)
{
    for (int i = 0; i < DIM; i++) v[i] = (float)seed * 0.001f + (float)i * 1e-7f;
}

static emb_cache_key key(const char *model, uint64_t gen, const int32_t *ids, int32_t n)
{
    return (emb_cache_key){.model = model, .generation = gen, .normalized = true, .ids = ids, .n_ids = n};
}

static void test_keys(void)
{
    emb_cache *c = emb_cache_create(1 << 20);
    CHECK(c != NULL);
    int32_t ids[] = {1, 2, 3, 4}, other[] = {1, 2, 3, 5};
    float v[DIM], out[DIM];
    fill(v, 7);
    emb_cache_key k = key("m", 0, ids, 4);
    CHECK(!emb_cache_get(c, &k, out, DIM));
    emb_cache_put(c, &k, v, DIM);
    memset(out, 0, sizeof out);
    CHECK(emb_cache_get(c, &k, out, DIM));
    CHECK(!memcmp(out, v, sizeof v));
    emb_cache_key k2 = key("m", 0, other, 4);
    CHECK(!emb_cache_get(c, &k2, out, DIM));          /* other ids        */
    k2 = key("m", 0, ids, 3);
    CHECK(!emb_cache_get(c, &k2, out, DIM));          /* a prefix         */
    k2 = key("n", 0, ids, 4);
    CHECK(!emb_cache_get(c, &k2, out, DIM));          /* other model      */
    k2 = key("m", 1, ids, 4);
    CHECK(!emb_cache_get(c, &k2, out, DIM));          /* reloaded model   */
    k2 = key("m", 0, ids, 4);
    k2.normalized = false;
    CHECK(!emb_cache_get(c, &k2, out, DIM));          /* not normalised   */
    CHECK(!emb_cache_get(c, &k, out, DIM - 1));       /* other width      */
    int32_t none = 0;
    emb_cache_key empty = key("m", 0, &none, 0);      /* zero tokens is a key too */
    emb_cache_put(c, &empty, v, DIM);
    CHECK(emb_cache_get(c, &empty, out, DIM));
    /* Replacing an equal key keeps one entry. */
    float w[DIM];
    fill(w, 9);
    emb_cache_put(c, &k, w, DIM);
    CHECK(emb_cache_get(c, &k, out, DIM) && !memcmp(out, w, sizeof w));
    emb_cache_stats st;
    emb_cache_get_stats(c, &st);
    CHECK(st.entries == 2 && st.inserts == 3 && st.hits == 3 && st.misses == 7);
    emb_cache_drop_model(c, "m");
    CHECK(!emb_cache_get(c, &k, out, DIM));
    emb_cache_get_stats(c, &st);
    CHECK(st.entries == 0 && st.bytes == 0);
    emb_cache_destroy(c);
}

static void test_lru(void)
{
    /* Room for about ten entries of this size. */
    float v[DIM], out[DIM];
    int32_t ids[8];
    emb_cache *probe = emb_cache_create(1 << 20);
    fill(v, 0);
    for (int i = 0; i < 8; i++) ids[i] = i;
    emb_cache_key k = key("m", 0, ids, 8);
    emb_cache_put(probe, &k, v, DIM);
    emb_cache_stats st;
    emb_cache_get_stats(probe, &st);
    uint64_t one = st.bytes;
    emb_cache_destroy(probe);
    CHECK(one > DIM * sizeof(float));

    emb_cache *c = emb_cache_create(10 * one + one / 2);
    for (int32_t t = 0; t < 10; t++) {
        ids[0] = t;
        fill(v, t);
        emb_cache_put(c, &k, v, DIM);
    }
    ids[0] = 0; /* touch 0: now 1 is the least recently used */
    CHECK(emb_cache_get(c, &k, out, DIM));
    ids[0] = 100;
    emb_cache_put(c, &k, v, DIM);
    ids[0] = 1;
    CHECK(!emb_cache_get(c, &k, out, DIM));
    ids[0] = 0;
    CHECK(emb_cache_get(c, &k, out, DIM));
    ids[0] = 2;
    CHECK(emb_cache_get(c, &k, out, DIM));
    emb_cache_get_stats(c, &st);
    CHECK(st.bytes <= st.budget && st.entries == 10 && st.evictions == 1);
    /* An entry over the whole budget is not stored and evicts nothing. */
    int32_t big[4096] = {0};
    emb_cache_key kb = key("m", 0, big, 4096);
    emb_cache_put(c, &kb, v, DIM);
    CHECK(!emb_cache_get(c, &kb, out, DIM));
    emb_cache_get_stats(c, &st);
    CHECK(st.entries == 10);
    emb_cache_destroy(c);

    /* Off: a budget of 0 gives no cache, and NULL is harmless. */
    CHECK(emb_cache_create(0) == NULL);
    emb_cache_put(NULL, &k, v, DIM);
    CHECK(!emb_cache_get(NULL, &k, out, DIM));
    emb_cache_drop_model(NULL, "m");
    emb_cache_get_stats(NULL, &st);
    CHECK(st.entries == 0);
    emb_cache_destroy(NULL);
}

typedef struct worker_arg {
    emb_cache *c;
    int        id;
    uint64_t   hits, misses, wrong;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;
    uint64_t rng = 1234 + (uint64_t)a->id;
    float v[DIM], out[DIM];
    int32_t ids[3];
    for (int i = 0; i < 20000; i++) {
        int32_t t = (int32_t)(test_rand_u64(&rng) % 3000);
        ids[0] = t, ids[1] = t * 7, ids[2] = -t;
        emb_cache_key k = key(t % 2 ? "a" : "b", 0, ids, 3);
        if (emb_cache_get(a->c, &k, out, DIM)) {
            a->hits++;
            fill(v, t);
            if (memcmp(out, v, sizeof v)) a->wrong++;
        } else {
            a->misses++;
            fill(v, t);
            emb_cache_put(a->c, &k, v, DIM);
        }
    }
    return NULL;
}

static void test_threads(void)
{
    emb_cache *c = emb_cache_create(256 << 10); /* smaller than the working set: evictions */
    pthread_t th[4];
    worker_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (worker_arg){.c = c, .id = i};
        pthread_create(&th[i], NULL, worker, &a[i]);
    }
    uint64_t hits = 0, misses = 0, wrong = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        hits += a[i].hits, misses += a[i].misses, wrong += a[i].wrong;
    }
    emb_cache_stats st;
    emb_cache_get_stats(c, &st);
    printf("threads: %llu hits, %llu misses, %llu evictions, %llu entries, %llu of %llu bytes\n",
           (unsigned long long)hits, (unsigned long long)misses, (unsigned long long)st.evictions,
           (unsigned long long)st.entries, (unsigned long long)st.bytes, (unsigned long long)st.budget);
    CHECK(wrong == 0);
    CHECK(st.hits == hits && st.misses == misses);
    CHECK(hits > 0 && st.evictions > 0 && st.bytes <= st.budget);
    emb_cache_destroy(c);
}

int main(void)
{
    test_keys();
    test_lru();
    test_threads();
    return test_finish("test_emb_cache");
}
