/*
 * sched_ecache.c: the embedding result cache (emb_cache.c) wired into the
 * scheduler: lookups at submit, stores after a batch, and the model's
 * generation, which changes whenever its vectors could (a new file, another
 * backend), so an entry is only ever served for the model that computed it.
 * Must not: decide queueing (sched_request.c does, from what this leaves
 * in r->emiss).
 */
#include <string.h>
#include <sys/stat.h>

#include "engine/api_internal.h"
#include "engine/sched/emb_cache.h"
#include "engine/sched/sched_internal.h"

/* The scheduler always asks mdl_embed for unit vectors; the key still says
 * so, so a route that asks for raw ones later cannot collide with them. */
#define ECACHE_NORMALIZED true

static emb_cache_key key_of(const sched_model *m, uint64_t gen, int32_t pooling, const sched_request *r, int32_t t)
{
    return (emb_cache_key){.model = m->id, .generation = gen, .normalized = ECACHE_NORMALIZED, .pooling = pooling,
                           .ids = r->eids[t], .n_ids = r->n_eids[t]};
}

void sched_ecache_lookup(sched_model *m, sched_request *r)
{
    emb_cache *c = m->s->ecache;
    pthread_mutex_lock(&m->mu);
    const uint64_t gen = m->emb_gen;
    const int32_t pooling = m->emb_pooling;
    pthread_mutex_unlock(&m->mu);
    /* Before the first load of a generation nothing of it can be stored. */
    const bool look = c && pooling >= 0;
    int32_t hits = 0;
    r->n_emiss = 0;
    r->etokens = 0;
    for (int32_t t = 0; t < r->n_texts; t++) {
        emb_cache_key k = key_of(m, gen, pooling, r, t);
        if (look && emb_cache_get(c, &k, r->emb + (size_t)t * (size_t)r->dim, r->dim)) {
            hits++;
            continue;
        }
        r->emiss[r->n_emiss++] = t;
        r->etokens += r->n_eids[t];
    }
    if (!c) return;
    pthread_mutex_lock(&m->st_mu);
    m->st.emb_cache_hits += (uint64_t)hits;
    m->st.emb_cache_misses += (uint64_t)(r->n_texts - hits);
    pthread_mutex_unlock(&m->st_mu);
}

void sched_ecache_store(sched_model *m, const sched_request *r, int32_t pooling)
{
    emb_cache *c = m->s->ecache;
    if (!c) return;
    /* The worker runs between installs: the generation is the one that computed these. */
    pthread_mutex_lock(&m->mu);
    const uint64_t gen = m->emb_gen;
    pthread_mutex_unlock(&m->mu);
    for (int32_t k = 0; k < r->n_emiss; k++) {
        const int32_t t = r->emiss[k];
        emb_cache_key key = key_of(m, gen, pooling, r, t);
        emb_cache_put(c, &key, r->emb + (size_t)t * (size_t)r->dim, r->dim);
    }
}

void sched_ecache_installed(sched_model *m, vki_model *md)
{
    mdl_model *mm = api_model_mdl(md);
    const int32_t backend = (int32_t)mdl_backend(mm)->kind;
    bool dropped = false;
    pthread_mutex_lock(&m->mu);
    /* A file replaced under the same path (a copy over it, not a reload)
     * must not be answered from the old one's vectors either. */
    struct stat sb;
    uint64_t id[4] = {0};
    if (!stat(m->path, &sb))
        memcpy(id, (uint64_t[4]){(uint64_t)sb.st_dev, (uint64_t)sb.st_ino, (uint64_t)sb.st_size,
                                 (uint64_t)sb.st_mtim.tv_sec * 1000000000ull + (uint64_t)sb.st_mtim.tv_nsec},
               sizeof id);
    if (m->emb_backend >= 0 && (m->emb_backend != backend || memcmp(id, m->emb_file, sizeof id))) {
        m->emb_gen = atomic_fetch_add(&m->s->emb_gen_next, 1) + 1;
        dropped = true;
    }
    memcpy(m->emb_file, id, sizeof id);
    m->emb_backend = backend;
    m->emb_pooling = mdl_get_hparams(mm)->pooling;
    pthread_mutex_unlock(&m->mu);
    if (dropped) emb_cache_drop_model(m->s->ecache, m->id);
}

void sched_ecache_new_generation(sched_model *m)
{
    m->emb_gen = atomic_fetch_add(&m->s->emb_gen_next, 1) + 1;
    m->emb_pooling = -1;
    m->emb_backend = -1;
    /* the cache's own lock is never held while taking a model's mu */
    emb_cache_drop_model(m->s->ecache, m->id);
}

void sched_get_emb_cache_info(scheduler *s, sched_emb_cache_info *out)
{
    memset(out, 0, sizeof *out);
    if (!s) return;
    emb_cache_stats st;
    emb_cache_get_stats(s->ecache, &st);
    *out = (sched_emb_cache_info){.budget = st.budget, .bytes = st.bytes, .entries = st.entries, .hits = st.hits,
                                  .misses = st.misses, .inserts = st.inserts, .evictions = st.evictions};
}
