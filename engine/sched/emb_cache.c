/*
 * emb_cache.c: a hash table of entries chained per bucket, and one doubly
 * linked list in recency order (head = most recent). An entry is a single
 * allocation: header, model id, token ids, vector.
 */
#include "engine/sched/emb_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry entry;
struct entry {
    entry   *hnext;          /* bucket chain               */
    entry   *prev, *next;    /* recency list               */
    uint64_t hash, generation, bytes;
    bool     normalized;
    int32_t  pooling, n_ids, dim;
    char    *model;          /* into the same allocation   */
    int32_t *ids;
    float   *vec;
};

struct emb_cache {
    pthread_mutex_t mu;
    entry         **buckets;
    size_t          n_buckets;
    entry          *head, *tail;
    emb_cache_stats st;
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t key_hash(const emb_cache_key *k)
{
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv(h, k->model, strlen(k->model) + 1);
    h = fnv(h, &k->generation, sizeof k->generation);
    uint8_t nz = k->normalized;
    h = fnv(h, &nz, 1);
    h = fnv(h, &k->pooling, sizeof k->pooling);
    h = fnv(h, k->ids, (size_t)k->n_ids * sizeof *k->ids);
    return h ^ (h >> 29);
}

static bool key_eq(const entry *e, uint64_t h, const emb_cache_key *k)
{
    return e->hash == h && e->generation == k->generation && e->normalized == k->normalized &&
           e->pooling == k->pooling &&
           e->n_ids == k->n_ids && !strcmp(e->model, k->model) &&
           !memcmp(e->ids, k->ids, (size_t)k->n_ids * sizeof *k->ids);
}

emb_cache *emb_cache_create(uint64_t budget_bytes)
{
    if (budget_bytes == 0) return NULL;
    emb_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->n_buckets = 1024;
    c->buckets = calloc(c->n_buckets, sizeof *c->buckets);
    if (!c->buckets) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    c->st.budget = budget_bytes;
    return c;
}

void emb_cache_destroy(emb_cache *c)
{
    if (!c) return;
    for (entry *e = c->head, *n; e; e = n) {
        n = e->next;
        free(e);
    }
    free(c->buckets);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static void list_unlink(emb_cache *c, entry *e)
{
    if (e->prev) e->prev->next = e->next;
    else c->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void list_push_front(emb_cache *c, entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head) c->head->prev = e;
    c->head = e;
    if (!c->tail) c->tail = e;
}

static void remove_entry(emb_cache *c, entry *e)
{
    entry **pp = &c->buckets[e->hash % c->n_buckets];
    while (*pp != e) pp = &(*pp)->hnext;
    *pp = e->hnext;
    list_unlink(c, e);
    c->st.bytes -= e->bytes;
    c->st.entries--;
    free(e);
}

/* Doubles the table when chains grow past two entries on average. */
static void maybe_grow(emb_cache *c)
{
    if (c->st.entries < 2 * c->n_buckets) return;
    size_t nb = c->n_buckets * 2;
    entry **b = calloc(nb, sizeof *b);
    if (!b) return; /* longer chains, still correct */
    for (size_t i = 0; i < c->n_buckets; i++)
        for (entry *e = c->buckets[i], *n; e; e = n) {
            n = e->hnext;
            e->hnext = b[e->hash % nb];
            b[e->hash % nb] = e;
        }
    free(c->buckets);
    c->buckets = b;
    c->n_buckets = nb;
}

static entry *find(emb_cache *c, uint64_t h, const emb_cache_key *k)
{
    for (entry *e = c->buckets[h % c->n_buckets]; e; e = e->hnext)
        if (key_eq(e, h, k)) return e;
    return NULL;
}

bool emb_cache_get(emb_cache *c, const emb_cache_key *k, float *out, int32_t dim)
{
    if (!c || !k || !k->model || k->n_ids < 0 || (k->n_ids && !k->ids)) return false;
    uint64_t h = key_hash(k);
    pthread_mutex_lock(&c->mu);
    entry *e = find(c, h, k);
    bool hit = e && e->dim == dim;
    if (hit) {
        memcpy(out, e->vec, (size_t)dim * sizeof *out);
        list_unlink(c, e);
        list_push_front(c, e);
        c->st.hits++;
    } else {
        c->st.misses++;
    }
    pthread_mutex_unlock(&c->mu);
    return hit;
}

void emb_cache_put(emb_cache *c, const emb_cache_key *k, const float *v, int32_t dim)
{
    if (!c || !k || !k->model || !v || dim <= 0 || k->n_ids < 0 || (k->n_ids && !k->ids)) return;
    size_t ml = strlen(k->model) + 1;
    /* header, ids and vector 8-aligned, then the id string */
    size_t off_ids = (sizeof(entry) + 7) & ~(size_t)7;
    size_t off_vec = off_ids + (((size_t)k->n_ids * sizeof(int32_t) + 7) & ~(size_t)7);
    size_t off_str = off_vec + (size_t)dim * sizeof(float);
    size_t bytes = off_str + ml;
    if (bytes > c->st.budget) return;
    entry *e = malloc(bytes);
    if (!e) return;
    memset(e, 0, sizeof *e);
    e->ids = (int32_t *)(void *)((char *)e + off_ids);
    e->vec = (float *)(void *)((char *)e + off_vec);
    e->model = (char *)e + off_str;
    memcpy(e->ids, k->ids, (size_t)k->n_ids * sizeof(int32_t));
    memcpy(e->vec, v, (size_t)dim * sizeof(float));
    memcpy(e->model, k->model, ml);
    e->hash = key_hash(k);
    e->generation = k->generation;
    e->normalized = k->normalized;
    e->pooling = k->pooling;
    e->n_ids = k->n_ids;
    e->dim = dim;
    e->bytes = bytes;
    pthread_mutex_lock(&c->mu);
    entry *old = find(c, e->hash, k);
    if (old) remove_entry(c, old);
    while (c->tail && c->st.bytes + bytes > c->st.budget) {
        remove_entry(c, c->tail);
        c->st.evictions++;
    }
    entry **b = &c->buckets[e->hash % c->n_buckets];
    e->hnext = *b;
    *b = e;
    list_push_front(c, e);
    c->st.bytes += bytes;
    c->st.entries++;
    c->st.inserts++;
    maybe_grow(c);
    pthread_mutex_unlock(&c->mu);
}

void emb_cache_drop_model(emb_cache *c, const char *model)
{
    if (!c || !model) return;
    pthread_mutex_lock(&c->mu);
    for (entry *e = c->head, *n; e; e = n) {
        n = e->next;
        if (!strcmp(e->model, model)) remove_entry(c, e);
    }
    pthread_mutex_unlock(&c->mu);
}

void emb_cache_get_stats(emb_cache *c, emb_cache_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    *out = c->st;
    pthread_mutex_unlock(&c->mu);
}
