/*
 * sched_prefix.c: prompt-prefix KV reuse. A generation worker's KV slots keep
 * what their last sequence left (the tokens of positions [0, n), mirrored
 * here), and a new prompt goes to the free slot holding its longest common
 * prefix: that slot's cache is cut to the match and only the rest of the
 * prompt is evaluated, so a chat client that resends its history pays for
 * the new turn only. Owns the token mirror of each slot; must not decide
 * admission order (sched_gen.c does) or keep anything across loads (a new
 * worker starts empty, so reloads and unloads forget everything).
 *
 * Matching is by exact tokens, not blocks: cutting a slot's cache to n
 * positions (mdl_kv_seq_truncate) only lowers its length, and the rows
 * [0, n) are the ones a cold run writes for the same tokens at the same
 * positions (RoPE is applied by absolute position when a row is written), so
 * any n is as exact as a block boundary. Sliding-window layers are the one
 * exception: once a slot's local rows moved past position n - W + 1 it
 * cannot go back to n, and the truncation falls back to 0 (a cold run).
 */
#include <stdlib.h>
#include <string.h>

#include "engine/models/model.h"
#include "engine/sched/sched_internal.h"
#include "error.h"
#include "util.h"

vki_status sched_prefix_init(sched_prefix *px, int32_t n_slots, int32_t n_ctx, bool on)
{
    memset(px, 0, sizeof *px);
    px->on = on;
    px->n_slots = n_slots;
    px->n_ctx = n_ctx;
    px->slot = calloc((size_t)n_slots, sizeof *px->slot);
    if (!px->slot) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "prefix reuse: out of memory for %d slots", n_slots);
    if (!on) return VKI_OK;
    for (int32_t i = 0; i < n_slots; i++)
        if (!(px->slot[i].ids = malloc(sizeof(int32_t) * (size_t)n_ctx))) {
            sched_prefix_deinit(px);
            return vki_fail(VKI_ERR_OUT_OF_MEMORY, "prefix reuse: out of memory for %d x %d tokens", n_slots, n_ctx);
        }
    return VKI_OK;
}

void sched_prefix_deinit(sched_prefix *px)
{
    if (px->slot)
        for (int32_t i = 0; i < px->n_slots; i++) free(px->slot[i].ids);
    free(px->slot);
    memset(px, 0, sizeof *px);
}

int32_t sched_prefix_match(const sched_prefix *px, int32_t slot, const int32_t *ids, int32_t n)
{
    if (!px->on || n <= 1) return 0;
    const sched_kv_hist *h = &px->slot[slot];
    /* The last prompt token is always evaluated: its logits start the reply. */
    const int32_t lim = VKI_MIN(h->n, n - 1);
    int32_t k = 0;
    while (k < lim && h->ids[k] == ids[k]) k++;
    return k;
}

static uint64_t lru_rank(const sched_prefix *px, int32_t i) { return px->slot[i].n ? px->slot[i].used : 0; }

int32_t sched_prefix_pick(sched_prefix *px, const bool *is_free, const int32_t *ids, int32_t n)
{
    int32_t best = -1, best_len = 0, lru = -1;
    for (int32_t i = 0; i < px->n_slots; i++) {
        if (!is_free[i]) continue;
        const int32_t len = sched_prefix_match(px, i, ids, n);
        if (len > best_len) best = i, best_len = len;
        /* without a match the least recently used slot gives its cache up
         * (an empty one first), so recent conversations keep theirs */
        if (lru < 0 || lru_rank(px, i) < lru_rank(px, lru)) lru = i;
    }
    const int32_t i = best >= 0 ? best : lru;
    if (i >= 0) px->slot[i].used = ++px->clock;
    return i;
}

int32_t sched_prefix_place(sched_prefix *px, mdl_model *mm, int32_t slot, const int32_t *ids, int32_t n)
{
    const int32_t want = sched_prefix_match(px, slot, ids, n);
    int32_t keep = mdl_kv_seq_truncate(mm, slot, want);
    if (keep != want) { /* a sliding window already dropped what the match needs */
        mdl_kv_seq_clear(mm, slot);
        keep = 0;
    }
    px->slot[slot].n = keep;
    return keep;
}

void sched_prefix_fed(sched_prefix *px, int32_t slot, const int32_t *ids, int32_t n)
{
    sched_kv_hist *h = &px->slot[slot];
    if (!px->on) return;
    /* the cache never holds more than n_ctx positions (submit checks it) */
    VKI_ASSERT(h->n + n <= px->n_ctx);
    memcpy(h->ids + h->n, ids, sizeof *ids * (size_t)n);
    h->n += n;
}

void sched_prefix_copy(sched_prefix *px, int32_t src, int32_t dst)
{
    if (!px->on) return;
    memcpy(px->slot[dst].ids, px->slot[src].ids, sizeof(int32_t) * (size_t)px->slot[src].n);
    px->slot[dst].n = px->slot[src].n;
}

void sched_prefix_release(sched_prefix *px, mdl_model *mm, int32_t slot, bool keep)
{
    if (px->on && keep) return;
    mdl_kv_seq_clear(mm, slot);
    px->slot[slot].n = 0;
}
