/*
 * tile.h: the dispatch every ISA's tiled float GEMM shares: a runtime (nr, nc)
 * becomes a call of the constant-shaped tile, so the compiler fully unrolls
 * each shape, and a dot product is the 1x1 tile. Included by kernels_<isa>.c,
 * whose tile_<type> functions the macros call.
 */
#ifndef VKI_CPU_TILE_H
#define VKI_CPU_TILE_H

#define TILE_SWITCH(TILE, ...)                                                                  \
    switch (nr * 8 + nc) {                                                                      \
    case 1 * 8 + 1: TILE(__VA_ARGS__, 1, 1); break; case 1 * 8 + 2: TILE(__VA_ARGS__, 1, 2); break; \
    case 1 * 8 + 3: TILE(__VA_ARGS__, 1, 3); break; case 1 * 8 + 4: TILE(__VA_ARGS__, 1, 4); break; \
    case 2 * 8 + 1: TILE(__VA_ARGS__, 2, 1); break; case 2 * 8 + 2: TILE(__VA_ARGS__, 2, 2); break; \
    case 2 * 8 + 3: TILE(__VA_ARGS__, 2, 3); break; case 2 * 8 + 4: TILE(__VA_ARGS__, 2, 4); break; \
    case 3 * 8 + 1: TILE(__VA_ARGS__, 3, 1); break; case 3 * 8 + 2: TILE(__VA_ARGS__, 3, 2); break; \
    case 3 * 8 + 3: TILE(__VA_ARGS__, 3, 3); break; case 3 * 8 + 4: TILE(__VA_ARGS__, 3, 4); break; \
    case 4 * 8 + 1: TILE(__VA_ARGS__, 4, 1); break; case 4 * 8 + 2: TILE(__VA_ARGS__, 4, 2); break; \
    case 4 * 8 + 3: TILE(__VA_ARGS__, 4, 3); break; case 4 * 8 + 4: TILE(__VA_ARGS__, 4, 4); break; \
    default: break;                                                                             \
    }

#define GEMM_ENTRY(WT)                                                                          \
    static void gemm_##WT(int64_t k, const void *w, size_t ws, int nr, const void *x, size_t xs, \
                          int nc, float *d, size_t ds)                                          \
    {                                                                                           \
        TILE_SWITCH(tile_##WT, k, (const uint8_t *)w, ws, (const uint8_t *)x, xs, d, ds)        \
    }

/* A tile as nr x nc dot products dotfn(k, weight row, activation row), for
 * the types whose kernels are dots. */
#define GEMM_FROM_DOT(fname, wtype, xtype, dotfn)                                              \
    static void fname(int64_t k, const void *w, size_t ws, int nr, const void *x, size_t xs,  \
                      int nc, float *d, size_t ds)                                             \
    {                                                                                          \
        for (int c = 0; c < nc; c++)                                                           \
            for (int r = 0; r < nr; r++)                                                       \
                d[(size_t)c * ds + (size_t)r] =                                                \
                    dotfn(k, (const wtype *)((const uint8_t *)w + (size_t)r * ws),             \
                          (const xtype *)((const uint8_t *)x + (size_t)c * xs));               \
    }

/* One dot product as the 1x1 tile. */
#define DOT_ENTRY(WT, ET)                                                                       \
    static float dot_##WT(int64_t n, const ET *a, const float *b)                               \
    {                                                                                           \
        float d;                                                                                \
        tile_##WT(n, (const uint8_t *)a, 0, (const uint8_t *)b, 0, &d, 0, 1, 1);                \
        return d;                                                                               \
    }

/* The packed f32 mat-mat's two entries (cpu.h: mm_kernel, mm_kernel_rows)
 * over the file's mm_tile, which takes the packed group xp, or (ROWS) the
 * rows xr where they are. */
#define MM_KERNEL_ENTRIES                                                                       \
    static void mm_kernel(int64_t k, const float *wp, int nrows, const float *xp, int nc,         \
                          const float *bias, float *d, size_t ds)                               \
    {                                                                                           \
        mm_tile(k, wp, nrows, xp, NULL, nc, bias, d, ds, false);                                \
    }                                                                                           \
    static void mm_kernel_rows(int64_t k, const float *wp, int nrows, const float *const *xr,   \
                               int nc, const float *bias, float *d, size_t ds)                  \
    {                                                                                           \
        mm_tile(k, wp, nrows, NULL, xr, nc, bias, d, ds, true);                                 \
    }

#endif
