/*
 * profile.c: VKI_VK_PROFILE=1 — GPU time per kernel variant from timestamp
 * queries, printed to stderr when the backend is destroyed. Each dispatch is
 * preceded by a full barrier in this mode, so consecutive timestamps bound
 * exactly one kernel (the passes run slower, but each kernel's share is
 * honest). This is how a kernel change is judged on a real GPU: which
 * variant dominates a decode step and how far it is from its bytes/FLOPs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "util.h"
#include "vk_internal.h"

#define PROF_MAX_QUERIES 8192 /* per pass; dispatches past it go untimed */

typedef struct prof_entry { char name[40]; uint64_t count; double ns; } prof_entry;

struct vk_profile {
    VkQueryPool  pool;
    double       ns_per_tick;
    uint32_t     n_queries;              /* written in this pass          */
    char         names[PROF_MAX_QUERIES][40]; /* variant of the dispatch ending at query i */
    prof_entry  *entries;
    int          n_entries, cap_entries;
    uint64_t     n_passes;
};

vki_status vk_profile_init(vk_ctx *c)
{
    if (!c->dbg.profile) return VKI_OK;
    if (c->props.limits.timestampPeriod <= 0 || !c->info.timestamps) {
        fprintf(stderr, "vkinfer: VKI_VK_PROFILE: %s has no compute timestamps; profiling off\n", c->name);
        return VKI_OK;
    }
    vk_profile *pr = calloc(1, sizeof(*pr));
    if (!pr) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
    VkQueryPoolCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                .queryType = VK_QUERY_TYPE_TIMESTAMP, .queryCount = PROF_MAX_QUERIES};
    VkResult r = vkCreateQueryPool(c->dev, &qi, NULL, &pr->pool);
    if (r != VK_SUCCESS) {
        free(pr);
        return vk_check(r, "vkCreateQueryPool");
    }
    pr->ns_per_tick = c->props.limits.timestampPeriod;
    c->prof = pr;
    return VKI_OK;
}

static int by_time(const void *a, const void *b)
{
    double x = ((const prof_entry *)a)->ns, y = ((const prof_entry *)b)->ns;
    return (x < y) - (x > y);
}

void vk_profile_deinit(vk_ctx *c)
{
    vk_profile *pr = c->prof;
    if (!pr) return;
    double total = 0;
    for (int i = 0; i < pr->n_entries; i++) total += pr->entries[i].ns;
    qsort(pr->entries, (size_t)pr->n_entries, sizeof(*pr->entries), by_time);
    fprintf(stderr, "vkinfer: VKI_VK_PROFILE on %s: %llu passes, %.3f ms of kernels\n", c->name,
            (unsigned long long)pr->n_passes, total * 1e-6);
    fprintf(stderr, "  %-28s %10s %12s %10s %6s\n", "variant", "dispatches", "total ms", "us each", "share");
    for (int i = 0; i < pr->n_entries; i++) {
        const prof_entry *e = &pr->entries[i];
        fprintf(stderr, "  %-28s %10llu %12.3f %10.2f %5.1f%%\n", e->name, (unsigned long long)e->count, e->ns * 1e-6,
                e->ns * 1e-3 / (double)e->count, total > 0 ? 100.0 * e->ns / total : 0.0);
    }
    vkDestroyQueryPool(c->dev, pr->pool, NULL);
    free(pr->entries);
    free(pr);
    c->prof = NULL;
}

void vk_profile_begin(vk_ctx *c)
{
    vk_profile *pr = c->prof;
    if (!pr) return;
    vkCmdResetQueryPool(c->cb, pr->pool, 0, PROF_MAX_QUERIES);
    vkCmdWriteTimestamp(c->cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, pr->pool, 0);
    pr->n_queries = 1;
}

void vk_profile_before_dispatch(vk_ctx *c)
{
    if (c->prof) vk_barrier_all(c->cb);
}

void vk_profile_after_dispatch(vk_ctx *c, const char *variant)
{
    vk_profile *pr = c->prof;
    if (!pr || pr->n_queries >= PROF_MAX_QUERIES) return;
    snprintf(pr->names[pr->n_queries], sizeof(pr->names[0]), "%s", variant);
    vkCmdWriteTimestamp(c->cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, pr->pool, pr->n_queries++);
}

static prof_entry *entry(vk_profile *pr, const char *name)
{
    for (int i = 0; i < pr->n_entries; i++)
        if (strcmp(pr->entries[i].name, name) == 0) return &pr->entries[i];
    if (pr->n_entries == pr->cap_entries) {
        int cap = pr->cap_entries * 2 + 16;
        prof_entry *ne = realloc(pr->entries, (size_t)cap * sizeof(*ne));
        if (!ne) return NULL;
        pr->entries = ne;
        pr->cap_entries = cap;
    }
    prof_entry *e = &pr->entries[pr->n_entries++];
    memset(e, 0, sizeof(*e));
    snprintf(e->name, sizeof(e->name), "%s", name);
    return e;
}

void vk_profile_end(vk_ctx *c)
{
    vk_profile *pr = c->prof;
    if (!pr || pr->n_queries < 2) return;
    uint64_t *t = malloc(pr->n_queries * sizeof(*t));
    if (!t) return;
    /* Called after the pass's fence: every query is available. */
    if (vkGetQueryPoolResults(c->dev, pr->pool, 0, pr->n_queries, pr->n_queries * sizeof(*t), t, sizeof(*t),
                              VK_QUERY_RESULT_64_BIT) == VK_SUCCESS) {
        for (uint32_t i = 1; i < pr->n_queries; i++) {
            prof_entry *e = entry(pr, pr->names[i]);
            if (!e) break;
            e->count++;
            e->ns += (double)(t[i] - t[i - 1]) * pr->ns_per_tick;
        }
        pr->n_passes++;
    }
    free(t);
}
