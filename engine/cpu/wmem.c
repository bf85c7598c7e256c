/*
 * wmem.c: memory for the CPU backend's repacked weights, carved out of
 * 2 MiB-aligned slabs that the kernel is asked to back with transparent huge
 * pages. A decode mat-vec streams each weight once per token, and in 4 KiB
 * pages every page starts cold for the hardware prefetchers and costs a TLB
 * walk: the 1.1B model's 2.4 MB attention matrices (under the old 4 MiB
 * huge-page threshold) streamed at 17 GB/s against 28 GB/s for the 6.5 MB
 * FFN matrices in huge pages; in slabs they stream like the FFN's.
 * Allocations are first fit at the slab's end (weights are loaded and freed
 * model by model, so holes are not reused); a slab goes back to the OS when
 * its last allocation is freed. Untouched slab tails are never faulted in,
 * so a half-used slab costs address space, not memory.
 * Under AddressSanitizer every weight gets its own heap block instead, so a
 * kernel reading past a weight's end is still caught.
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "cpu.h"
#include "error.h"
#include "util.h"

#if defined(__SANITIZE_ADDRESS__)
#define WMEM_HEAP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WMEM_HEAP 1
#endif
#endif

#define WMEM_HUGE  ((size_t)2 << 20)
#define WMEM_SLAB  ((size_t)64 << 20) /* default slab: a few layers of a 1B model */
#define WMEM_ALIGN ((size_t)4096)    /* each weight starts a page              */

struct cpu_wslab {
    cpu_wslab *next;
    uint8_t   *base;
    size_t     cap, used;
    int64_t    live; /* allocations not yet freed */
};

struct cpu_wmem {
    pthread_mutex_t mutex;
    cpu_wslab      *slabs;
};

vki_status cpu_wmem_create(cpu_wmem **out)
{
    cpu_wmem *w = calloc(1, sizeof *w);
    *out = w;
    if (!w) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "cpu: out of memory creating the weight memory");
    pthread_mutex_init(&w->mutex, NULL);
    return VKI_OK;
}

static void slab_release(cpu_wslab *s)
{
    munmap(s->base, s->cap);
    free(s);
}

void cpu_wmem_destroy(cpu_wmem *w)
{
    if (!w) return;
    for (cpu_wslab *s = w->slabs, *n; s; s = n) {
        n = s->next;
        slab_release(s);
    }
    pthread_mutex_destroy(&w->mutex);
    free(w);
}

/* A slab of at least `bytes`, 2 MiB aligned: map 2 MiB more than asked and
 * unmap the unaligned head and the tail. NULL: no memory. */
static cpu_wslab *slab_new(size_t bytes)
{
    size_t cap = (size_t)vki_align_up(bytes > WMEM_SLAB ? bytes : WMEM_SLAB, WMEM_HUGE);
    if (cap < bytes) return NULL;
    cpu_wslab *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    uint8_t *m = mmap(NULL, cap + WMEM_HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        free(s);
        return NULL;
    }
    uint8_t *base = (uint8_t *)vki_align_up((uintptr_t)m, WMEM_HUGE);
    if (base > m) munmap(m, (size_t)(base - m));
    if (base + cap < m + cap + WMEM_HUGE) munmap(base + cap, (size_t)(m + cap + WMEM_HUGE - (base + cap)));
#ifdef MADV_HUGEPAGE
    madvise(base, cap, MADV_HUGEPAGE); /* advice only: without THP the slab is plain pages */
#endif
    s->base = base;
    s->cap = cap;
    return s;
}

void *cpu_wmem_alloc(cpu_wmem *w, size_t bytes, cpu_wslab **slab)
{
    *slab = NULL;
#ifdef WMEM_HEAP
    (void)w;
    void *p = NULL;
    return posix_memalign(&p, 64, bytes ? bytes : 1) == 0 ? p : NULL;
#else
    size_t need = (size_t)vki_align_up(bytes ? bytes : 1, WMEM_ALIGN);
    if (need < bytes) return NULL;
    pthread_mutex_lock(&w->mutex);
    cpu_wslab *s = w->slabs;
    while (s && s->cap - s->used < need) s = s->next;
    if (!s && (s = slab_new(need)) != NULL) {
        s->next = w->slabs;
        w->slabs = s;
    }
    void *p = NULL;
    if (s) {
        p = s->base + s->used;
        s->used += need;
        s->live++;
        *slab = s;
    }
    pthread_mutex_unlock(&w->mutex);
    return p;
#endif
}

size_t cpu_wmem_mapped(cpu_wmem *w)
{
    size_t n = 0;
    pthread_mutex_lock(&w->mutex);
    for (const cpu_wslab *s = w->slabs; s; s = s->next) n += s->cap;
    pthread_mutex_unlock(&w->mutex);
    return n;
}

void cpu_wmem_free(cpu_wmem *w, void *p, cpu_wslab *slab)
{
    if (!slab) {
        free(p);
        return;
    }
    pthread_mutex_lock(&w->mutex);
    if (--slab->live == 0) {
        cpu_wslab **pp = &w->slabs;
        while (*pp != slab) pp = &(*pp)->next;
        *pp = slab->next;
        slab_release(slab);
    }
    pthread_mutex_unlock(&w->mutex);
}
