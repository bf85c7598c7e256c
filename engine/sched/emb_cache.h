/*
 * emb_cache.h: the embedding result cache. Services embed the same texts
 * again and again; a hit returns the stored vector without queueing. Keyed
 * by the model's id and generation (a reload starts a new generation, so a
 * swapped model never answers from the old one's vectors), the pooling and
 * normalisation and the exact input token ids, so a hit is byte-identical
 * to a fresh run of the same model. Least recently used entries go first
 * when the byte budget is full. Thread-safe (one mutex; entries are copied
 * in and out, never borrowed).
 * Must not: know about requests, queues or models beyond their ids.
 */
#ifndef VKI_EMB_CACHE_H
#define VKI_EMB_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct emb_cache emb_cache;

typedef struct emb_cache_key {
    const char    *model;      /* the model's id                              */
    uint64_t       generation; /* bumped when the model's file is swapped     */
    bool           normalized;
    int32_t        pooling;    /* the model's pooling (mdl hparams)          */
    const int32_t *ids;        /* the input's token ids, as embedded          */
    int32_t        n_ids;
} emb_cache_key;

typedef struct emb_cache_stats {
    uint64_t hits, misses, inserts, evictions;
    uint64_t entries, bytes, budget;
} emb_cache_stats;

/* A cache holding at most budget_bytes (keys, vectors and bookkeeping
 * counted). NULL when budget_bytes is 0 (off) or on OOM; every call takes
 * NULL and then does nothing (a miss). */
emb_cache *emb_cache_create(uint64_t budget_bytes);
void       emb_cache_destroy(emb_cache *c); /* NULL-safe */

/* On a hit copies dim floats into out and returns true. A stored vector of
 * another width is a miss. */
bool emb_cache_get(emb_cache *c, const emb_cache_key *k, float *out, int32_t dim);
/* Stores a copy (replacing an equal key), evicting the least recently used
 * entries to stay within budget; an entry larger than the whole budget is
 * not stored. */
void emb_cache_put(emb_cache *c, const emb_cache_key *k, const float *v, int32_t dim);
/* Drops every entry of a model (all generations). */
void emb_cache_drop_model(emb_cache *c, const char *model);

void emb_cache_get_stats(emb_cache *c, emb_cache_stats *out); /* zeros for NULL */

#endif
