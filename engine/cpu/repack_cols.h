/* The gemv / gemvn entries of an R16 type whose kernel takes one
 * activation column (r16_<WT>_one): every 16-row group against ncols
 * columns, one at a time; the first pass streams the group from memory,
 * the others read it from L1/L2. LAYOUT lays out column c's activation
 * row xc (k elements) into scratch sc as an XT. Included by the
 * repack_<types>_avx2.c files after their kernels. */
#ifndef VKI_CPU_REPACK_COLS_H
#define VKI_CPU_REPACK_COLS_H

#define R16_PER_COLUMN_ENTRIES(WT, XT, BS, LAYOUT)                                                           \
    static void gemvn_r16_##WT(int64_t k, const void *w, size_t ws, int64_t nrows, const void *xv, size_t xs, \
                               int ncols, float *d, size_t ds, void *scratch)                              \
    {                                                                                                      \
        XT xl[CPU_GEMVN_R16_MAX];                                                                              \
        for (int c = 0; c < ncols; c++) {                                                                  \
            const uint8_t *xc = (const uint8_t *)xv + (size_t)c * xs;                                      \
            uint8_t *sc = (uint8_t *)scratch + (size_t)c * CPU_GEMV_SCRATCH(k);                            \
            xl[c] = LAYOUT;                                                                                \
        }                                                                                                  \
        for (int64_t r = 0; r < nrows; r += R16_ROWS) {                                                    \
            const uint8_t *g = (const uint8_t *)w + (size_t)(r / R16_ROWS) * ws;                           \
            int nr = (int)(nrows - r < R16_ROWS ? nrows - r : R16_ROWS);                                   \
            for (int c = 0; c < ncols; c++) r16_##WT##_one(k / (BS), g, &xl[c], d + (size_t)c * ds + r, nr); \
        }                                                                                                  \
    }                                                                                                      \
    static void gemv_r16_##WT(int64_t k, const void *w, size_t ws, int64_t nrows, const void *x, float *d,  \
                              void *scratch)                                                               \
    {                                                                                                      \
        gemvn_r16_##WT(k, w, ws, nrows, x, 0, 1, d, 0, scratch);                                           \
    }

#endif
