/*
 * gemv_avx512.c: the float mat-vecs (F32, F16 and BF16 weights, one f32
 * activation row), which decode runs. The float tiles (kernels_avx512.c)
 * are built for prompts, whose weights come from cache; a decode streams
 * every weight once from memory, and with no prefetch the tiles ran at a
 * fifth of what the quantized mat-vecs reach (512 x 32000 F16, the lm_head
 * of a tied 40M model, one thread: 6 GB/s against 29 for Q8_0). Here four
 * rows go at a time, two vectors each per step (eight independent sums),
 * and each step prefetches the same bytes of the next four rows, the
 * scheme of CPU_PREFETCH_SPAN.
 */
#include "cpu.h"
#include "load_avx512.h"

#define GV_ROWS 4
#define GV_STEP 32 /* elements of each row per step: two vectors */

#define FLOAT_GEMV(WT, ESZ)                                                                       \
    INLINE void rows_##WT(int64_t k, const uint8_t *w, size_t ws, const float *x, float *d, const int R, \
                          const bool pf)                                                          \
    {                                                                                             \
        __m512 a[GV_ROWS][2];                                                                     \
        for (int r = 0; r < R; r++) a[r][0] = a[r][1] = _mm512_setzero_ps();                      \
        int64_t i = 0;                                                                            \
        for (; i + GV_STEP <= k; i += GV_STEP) {                                                  \
            __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);                 \
            for (int r = 0; r < R; r++) {                                                         \
                const uint8_t *row = w + (size_t)r * ws;                                          \
                if (pf) CPU_PREFETCH_SPAN(row + (size_t)R * ws + (size_t)i * (ESZ), GV_STEP * (ESZ)); \
                a[r][0] = _mm512_fmadd_ps(load16_##WT(row, i), x0, a[r][0]);                      \
                a[r][1] = _mm512_fmadd_ps(load16_##WT(row, i + 16), x1, a[r][1]);                 \
            }                                                                                     \
        }                                                                                         \
        for (; i < k; i += 16) {                                                                  \
            __mmask16 m = k - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (k - i)) - 1);    \
            __m512 x0 = loadm_f32(x, i, m);                                                       \
            for (int r = 0; r < R; r++) a[r][0] = _mm512_fmadd_ps(loadm_##WT(w + (size_t)r * ws, i, m), x0, a[r][0]); \
        }                                                                                         \
        for (int r = 0; r < R; r++) d[r] = _mm512_reduce_add_ps(_mm512_add_ps(a[r][0], a[r][1])); \
    }                                                                                             \
    static void gemv_##WT(int64_t k, const void *w, size_t ws, int64_t nrows, const void *x, float *d, \
                          void *scratch)                                                          \
    {                                                                                             \
        (void)scratch;                                                                            \
        const uint8_t *wb = w;                                                                    \
        int64_t r = 0;                                                                            \
        for (; r + GV_ROWS <= nrows; r += GV_ROWS) rows_##WT(k, wb + (size_t)r * ws, ws, x, d + r, GV_ROWS, true); \
        switch (nrows - r) {                                                                      \
        case 3: rows_##WT(k, wb + (size_t)r * ws, ws, x, d + r, 3, false); break;                 \
        case 2: rows_##WT(k, wb + (size_t)r * ws, ws, x, d + r, 2, false); break;                 \
        case 1: rows_##WT(k, wb + (size_t)r * ws, ws, x, d + r, 1, false); break;                 \
        default: break;                                                                           \
        }                                                                                         \
    }

FLOAT_GEMV(f32, 4)
FLOAT_GEMV(f16, 2)
FLOAT_GEMV(bf16, 2)

void cpu_gemv_init_avx512(cpu_kernels *k)
{
    k->gemv[VKI_TYPE_F32] = gemv_f32;
    k->gemv[VKI_TYPE_F16] = gemv_f16;
    k->gemv[VKI_TYPE_BF16] = gemv_bf16;
}
