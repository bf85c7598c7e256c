/*
 * test_cpu_wmem.c: the repacked weights' slab memory. Blocks are page
 * aligned, never overlap, hold what is written to them, reuse a slab's room
 * while it lasts, and a slab is unmapped when its last block is freed
 * (swapped-out models must give their memory back), in any free order.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/cpu.h"
#include "test_util.h"

#define N_BLOCKS 24

int main(void)
{
    cpu_wmem *w = NULL;
    CHECK(cpu_wmem_create(&w) == VKI_OK);
    if (!w) return test_finish("test_cpu_wmem");
    /* Sizes of a model's matrices, odd ones and one larger than a slab. */
    const size_t sizes[N_BLOCKS] = {
        2359296, 294912, 294912, 2359296, 6488064, 6488064, 6488064, 1, 4095, 4097, 36864000, 100,
        (size_t)80 << 20, 2359296, 294912, 12345, 6488064, 64, 65536, 1 << 20, 3, 2359296, 6488064, 777,
    };
    uint8_t *p[N_BLOCKS];
    cpu_wslab *slab[N_BLOCKS];
    for (int i = 0; i < N_BLOCKS; i++) {
        p[i] = cpu_wmem_alloc(w, sizes[i], &slab[i]);
        CHECKF(p[i] != NULL, "block %d (%zu bytes) not allocated", i, sizes[i]);
        if (!p[i]) return test_finish("test_cpu_wmem");
        CHECKF((uintptr_t)p[i] % 64 == 0, "block %d at %p is not 64-byte aligned", i, (void *)p[i]);
        if (slab[i]) CHECKF((uintptr_t)p[i] % 4096 == 0, "slab block %d at %p does not start a page", i, (void *)p[i]);
        memset(p[i], i + 1, sizes[i]);
    }
    const size_t mapped = cpu_wmem_mapped(w);
    size_t total = 0;
    for (int i = 0; i < N_BLOCKS; i++) total += sizes[i];
    if (slab[0]) {
        /* Room is reused: no more than one 64 MiB slab per 64 MiB of blocks,
         * plus the oversized block's own. */
        CHECKF(mapped >= total, "%zu bytes mapped for %zu bytes of blocks", mapped, total);
        CHECKF(mapped <= total + ((size_t)192 << 20), "%zu bytes mapped for %zu bytes of blocks", mapped, total);
    } else {
        CHECKF(mapped == 0, "heap blocks (AddressSanitizer), yet %zu bytes of slabs", mapped);
    }
    for (int i = 0; i < N_BLOCKS; i++)
        for (int j = i + 1; j < N_BLOCKS; j++)
            CHECKF(p[i] + sizes[i] <= p[j] || p[j] + sizes[j] <= p[i], "blocks %d and %d overlap", i, j);
    /* Every block still holds its own bytes (first, last, middle). */
    for (int i = 0; i < N_BLOCKS; i++) {
        size_t at[3] = {0, sizes[i] / 2, sizes[i] - 1};
        for (int a = 0; a < 3; a++)
            CHECKF(p[i][at[a]] == (uint8_t)(i + 1), "block %d byte %zu is %d, wrote %d", i, at[a], p[i][at[a]], i + 1);
    }
    /* Free the odd blocks, then the even ones backwards: slabs go when empty. */
    for (int i = 1; i < N_BLOCKS; i += 2) cpu_wmem_free(w, p[i], slab[i]);
    CHECKF(cpu_wmem_mapped(w) <= mapped, "freeing grew the mapping: %zu -> %zu", mapped, cpu_wmem_mapped(w));
    for (int i = N_BLOCKS - 2; i >= 0; i -= 2) cpu_wmem_free(w, p[i], slab[i]);
    CHECKF(cpu_wmem_mapped(w) == 0, "%zu bytes still mapped after every block was freed", cpu_wmem_mapped(w));
    /* A new block after everything went: a fresh slab, usable. */
    cpu_wslab *s;
    uint8_t *q = cpu_wmem_alloc(w, 5000, &s);
    CHECK(q != NULL);
    if (q) {
        memset(q, 7, 5000);
        CHECK(q[4999] == 7);
        cpu_wmem_free(w, q, s);
    }
    CHECK(cpu_wmem_mapped(w) == 0);
    cpu_wmem_destroy(w);
    cpu_wmem_destroy(NULL);
    return test_finish("test_cpu_wmem");
}
