/*
 * weights.c: the CPU backend's weight layouts. weight_prepare repacks a
 * Q4_0/Q8_0/Q4_K/F32 mat-mul weight into the R16 layout (repack.h) when the
 * ISA has R16 mat-vec kernels for it (AVX-512 VNNI; AVX2 for Q4_0, Q8_0, Q2_K..Q6_K, F32, F16), on the thread pool; the
 * buffer then owns the repacked copy and records its layout, and the
 * consumers that want plain rows (the prompt mat-mul's packers, GET_ROWS,
 * tensor_get) get them from cpu_weight_rows.
 * Must not: repack where no kernel reads R16: plain rows would only be
 * unpacked again on every use.
 */
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "error.h"
#include "repack.h"
#include "util.h"

typedef struct pack_task {
    vki_type       type;
    int64_t        k, m;
    const uint8_t *src;
    size_t         ws;
    uint8_t       *dst;
    cpu_chunks     ch; /* 16-row groups */
} pack_task;

static void pack_work(void *arg, int ith, int nth)
{
    pack_task *t = arg;
    (void)ith, (void)nth;
    int64_t g0, g1;
    while (cpu_chunk_next(&t->ch, &g0, &g1)) r16_pack(t->type, t->k, t->m, t->src, t->ws, t->dst, g0, g1);
}

vki_status cpu_weight_prepare(cpu_ctx *c, const bk_tensor *t, unsigned uses, bool *released)
{
    cpu_buffer *b = (cpu_buffer *)t->buf;
    *released = false;
    /* Only what a mat-vec reads: a table only gathered keeps its rows. */
    if (c->no_repack || !(uses & (BK_WEIGHT_MATMUL | BK_WEIGHT_MATMUL_ID)) || !b) return VKI_OK;
    if (!r16_type_ok(t->type) || !c->kern->gemv_r16[t->type] || !c->kern->gemvn_r16[t->type]) return VKI_OK;
    /* The whole buffer must be this one contiguous matrix of whole blocks. */
    if (b->layout != CPU_LAYOUT_PLAIN || t->offs != 0 || !bk_is_contiguous(t) || bk_nbytes(t) != b->size ||
        t->ne[0] % r16_block_size(t->type) != 0)
        return VKI_OK;
    const int64_t m = cpu_n_rows(t);
    const uint64_t bytes = r16_bytes(t->type, t->ne[0], m);
    /* In huge-page slabs (wmem.c): also what keeps the load fast (faulting in
     * 4 KiB pages had a 1.1B Q4_0 model load in 3.4 s against 0.7 s unpacked). */
    cpu_wslab *slab;
    void *p = cpu_wmem_alloc(c->wmem, (size_t)bytes, &slab);
    if (!p)
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "cpu: no memory to repack weight '%s' (%llu bytes)",
                        t->name ? t->name : "", (unsigned long long)bytes);
    pack_task pt = {.type = t->type, .k = t->ne[0], .m = m, .src = b->data, .ws = t->nb[1], .dst = p};
    int64_t groups = (m + R16_ROWS - 1) / R16_ROWS;
    bool alone = c->n_threads == 1 || bytes < (1u << 20);
    cpu_chunks_init(&pt.ch, groups, alone ? 1 : c->n_threads, 1);
    if (alone) pack_work(&pt, 0, 1);
    else cpu_pool_run(c->pool, pack_work, &pt);

    if (b->owned) {
        cpu_wmem_free(c->wmem, b->data, b->slab);
        atomic_fetch_sub(&c->mem_used, b->alloc);
    } else {
        *released = true;
    }
    b->data = p;
    b->slab = slab;
    b->owned = true;
    b->alloc = bytes;
    b->layout = CPU_LAYOUT_R16;
    b->r16_type = t->type;
    b->r16_k = t->ne[0];
    b->r16_rows = m;
    atomic_fetch_add(&c->mem_used, bytes);
    return VKI_OK;
}

const uint8_t *cpu_weight_rows(const bk_tensor *t, int64_t r, int64_t n, uint8_t *tmp)
{
    const cpu_buffer *b = (const cpu_buffer *)t->buf;
    if (b->layout == CPU_LAYOUT_PLAIN) return (const uint8_t *)cpu_tensor_data(t) + (uint64_t)r * t->nb[1];
    VKI_ASSERT(b->layout == CPU_LAYOUT_R16 && t->offs % t->nb[1] == 0 && t->type == b->r16_type);
    r16_unpack_rows(b->r16_type, b->r16_k, b->data, cpu_r16_row0(t) + r, n, tmp, (size_t)t->nb[1]);
    return tmp;
}

vki_status cpu_weight_read(const bk_tensor *t, void *dst, uint64_t offs, uint64_t size)
{
    const cpu_buffer *b = (const cpu_buffer *)t->buf;
    VKI_ASSERT(b->layout == CPU_LAYOUT_R16);
    /* Byte ranges of the matrix's plain form; row bytes from the type. */
    const uint64_t rb = vki_row_bytes(b->r16_type, b->r16_k), start = t->offs + offs;
    uint8_t *row = malloc((size_t)rb);
    if (!row) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "cpu: tensor_get: no memory for one row");
    for (uint64_t done = 0; done < size;) {
        uint64_t at = start + done, r = at / rb, in = at % rb, n = VKI_MIN(rb - in, size - done);
        r16_unpack_rows(b->r16_type, b->r16_k, b->data, (int64_t)r, 1, row, (size_t)rb);
        memcpy((uint8_t *)dst + done, row + in, (size_t)n);
        done += n;
    }
    free(row);
    return VKI_OK;
}
