/*
 * repack_avx512.c: AVX-512 VNNI mat-vecs over the R16 layout (repack.h),
 * the decode path of repacked Q4_0 / Q8_0 / Q4_K weights. Lane r of every vector is
 * row r of a 16-row group, so a block's eight vpdpbusd land in one int32
 * vector whose lanes share the block's per-row scale: per block and 16 rows
 * one offset correction, one convert and one fma, no horizontal sums, no
 * gathers, and every weight load is an aligned 64 bytes of a sequential
 * stream. Only compiled into the table when CPUID reports VNNI.
 */
#include <immintrin.h>
#include <string.h>

#include "cpu.h"
#include "repack.h"

#define INLINE static inline __attribute__((always_inline))

/* Distance, in bytes of the weight stream, at which lines are prefetched:
 * a few pair units ahead keeps the stream ahead of the decode from DRAM. */
#define R16_PF_BYTES 2048
/* Q4_K's 2368-byte unit is prefetched a quarter at a time, one quarter per
 * sub-block pair, 1 KiB ahead: its 37 lines issued at once at the top of
 * each unit (as the smaller units are) stalled on the line-fill buffers.
 * 2 threads streaming 600 MB from DRAM (Xeon, AVX-512 VNNI): 26.7 GB/s ->
 * 29.9; 2 KiB ahead 28.9, 4 KiB 25.2, none 29.3. */
#define R16_Q4K_PF 1024

INLINE __m512i bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* One group (16 rows) against C activation rows: d[c * ds + r] for r < nr. */
INLINE void r16_q4_0_group(const int C, int64_t nb, const uint8_t *w, const r16_x *x, float *d, size_t ds, int nr)
{
    const __m512i m_lo = _mm512_set1_epi8(0x0F), m_hi = _mm512_set1_epi8((char)0xF0);
    __m512 acc[8];
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) acc[c] = _mm512_setzero_ps();
    for (int64_t b0 = 0; b0 < nb; b0 += 2) {
        const uint8_t *u = w + (size_t)(b0 / 2) * 576;
        for (int o = 0; o < 576; o += 64) _mm_prefetch((const char *)u + R16_PF_BYTES + o, _MM_HINT_T0);
        const __m512 dw0 = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(u + R16_PAIR_SCALES)));
        const __m512 dw1 = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(u + R16_PAIR_SCALES + 32)));
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const int64_t b = b0 + h;
            __m512i lo[8], hi[8];
#pragma GCC unroll 8
            for (int c = 0; c < C; c++) lo[c] = hi[c] = _mm512_setzero_si512();
#pragma GCC unroll 8
            for (int q = 0; q < 4; q++) {
                __m512i v = _mm512_load_si512((const __m512i *)(u + R16_PAIR_CODES + h * 256 + q * 64));
                __m512i vl = _mm512_and_si512(v, m_lo), vh = _mm512_and_si512(v, m_hi);
#pragma GCC unroll 8
                for (int c = 0; c < C; c++) {
                    const int8_t *xq = x[c].q + b * 32 + 4 * q;
                    lo[c] = _mm512_dpbusd_epi32(lo[c], vl, bcast4(xq));
                    hi[c] = _mm512_dpbusd_epi32(hi[c], vh, bcast4(xq + 16)); /* 16 x the high nibbles' dot */
                }
            }
            const __m512 dw = h ? dw1 : dw0;
#pragma GCC unroll 8
            for (int c = 0; c < C; c++) {
                __m512i s = _mm512_add_epi32(lo[c], _mm512_srai_epi32(hi[c], 4));
                s = _mm512_sub_epi32(s, _mm512_set1_epi32(x[c].o[b]));
                acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, _mm512_set1_ps(x[c].d[b])), acc[c]);
            }
        }
    }
    __mmask16 m = (__mmask16)(nr >= 16 ? 0xFFFF : (1u << nr) - 1);
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) _mm512_mask_storeu_ps(d + (size_t)c * ds, m, acc[c]);
}

INLINE void r16_q8_0_group(const int C, int64_t nb, const uint8_t *w, const r16_x *x, float *d, size_t ds, int nr)
{
    __m512 acc[8];
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) acc[c] = _mm512_setzero_ps();
    for (int64_t b0 = 0; b0 < nb; b0 += 2) {
        const uint8_t *u = w + (size_t)(b0 / 2) * 1088;
        for (int o = 0; o < 1088; o += 64) _mm_prefetch((const char *)u + R16_PF_BYTES + o, _MM_HINT_T0);
        const __m512 dw0 = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(u + R16_PAIR_SCALES)));
        const __m512 dw1 = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(u + R16_PAIR_SCALES + 32)));
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const int64_t b = b0 + h;
            __m512i s0[8], s1[8]; /* even and odd chunks: two dependency chains */
#pragma GCC unroll 8
            for (int c = 0; c < C; c++) s0[c] = s1[c] = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int q = 0; q < 8; q += 2) {
                __m512i v0 = _mm512_load_si512((const __m512i *)(u + R16_PAIR_CODES + h * 512 + q * 64));
                __m512i v1 = _mm512_load_si512((const __m512i *)(u + R16_PAIR_CODES + h * 512 + q * 64 + 64));
#pragma GCC unroll 8
                for (int c = 0; c < C; c++) {
                    const int8_t *xq = x[c].q + b * 32 + 4 * q;
                    s0[c] = _mm512_dpbusd_epi32(s0[c], v0, bcast4(xq));
                    s1[c] = _mm512_dpbusd_epi32(s1[c], v1, bcast4(xq + 4));
                }
            }
            const __m512 dw = h ? dw1 : dw0;
#pragma GCC unroll 8
            for (int c = 0; c < C; c++) {
                __m512i s = _mm512_sub_epi32(_mm512_add_epi32(s0[c], s1[c]), _mm512_set1_epi32(x[c].o[b]));
                acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, _mm512_set1_ps(x[c].d[b])), acc[c]);
            }
        }
    }
    __mmask16 m = (__mmask16)(nr >= 16 ? 0xFFFF : (1u << nr) - 1);
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) _mm512_mask_storeu_ps(d + (size_t)c * ds, m, acc[c]);
}

/* Q4_K against Q8_K activations: per sub-block the low or high nibbles
 * dot (four chains over the eight chunks of a 32-byte run) times the row's
 * unpacked scale (vpmulld), summed as integers over the super-block; the
 * mins against the activation's sub-block sums in four vpdpwssd. Then one
 * fma each for d and dmin per super-block and 16 rows. */
INLINE void r16_q4_K_group(const int C, int64_t nb, const uint8_t *w, const r16_xk *x, float *d, size_t ds, int nr)
{
    const __m512i m_lo = _mm512_set1_epi8(0x0F), m_hi = _mm512_set1_epi8((char)0xF0);
    __m512 acc[4];
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) acc[c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *u = w + (size_t)b * R16_Q4K_UNIT;
        __m512i isum[4], summ[4];
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) isum[c] = summ[c] = _mm512_setzero_si512();
        for (int j = 0; j < 4; j++) {
            for (int o = j * 640; o < (j == 3 ? R16_Q4K_UNIT : j * 640 + 640); o += 64)
                _mm_prefetch((const char *)u + R16_Q4K_PF + o, _MM_HINT_T0);
            __m512i l0[4], l1[4], h0[4], h1[4];
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) l0[c] = l1[c] = h0[c] = h1[c] = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int qq = 0; qq < 8; qq += 2) {
                __m512i v0 = _mm512_load_si512((const __m512i *)(u + R16_Q4K_CODES + (8 * j + qq) * 64));
                __m512i v1 = _mm512_load_si512((const __m512i *)(u + R16_Q4K_CODES + (8 * j + qq + 1) * 64));
                __m512i vl0 = _mm512_and_si512(v0, m_lo), vh0 = _mm512_and_si512(v0, m_hi);
                __m512i vl1 = _mm512_and_si512(v1, m_lo), vh1 = _mm512_and_si512(v1, m_hi);
#pragma GCC unroll 4
                for (int c = 0; c < C; c++) {
                    const int8_t *xq = x[c].b[b].qs + 64 * j + 4 * qq;
                    l0[c] = _mm512_dpbusd_epi32(l0[c], vl0, bcast4(xq));
                    l1[c] = _mm512_dpbusd_epi32(l1[c], vl1, bcast4(xq + 4));
                    h0[c] = _mm512_dpbusd_epi32(h0[c], vh0, bcast4(xq + 32)); /* 16 x the high nibbles' dot */
                    h1[c] = _mm512_dpbusd_epi32(h1[c], vh1, bcast4(xq + 36));
                }
            }
            const __m512i sc_lo = _mm512_cvtepu8_epi32(_mm_load_si128((const __m128i *)(u + R16_Q4K_SCALES + 32 * j)));
            const __m512i sc_hi = _mm512_cvtepu8_epi32(_mm_load_si128((const __m128i *)(u + R16_Q4K_SCALES + 32 * j + 16)));
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) {
                __m512i lo = _mm512_add_epi32(l0[c], l1[c]);
                __m512i hi = _mm512_srai_epi32(_mm512_add_epi32(h0[c], h1[c]), 4);
                isum[c] = _mm512_add_epi32(isum[c], _mm512_add_epi32(_mm512_mullo_epi32(lo, sc_lo),
                                                                     _mm512_mullo_epi32(hi, sc_hi)));
            }
        }
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            const __m512i mn = _mm512_cvtepu8_epi16(_mm256_load_si256((const __m256i *)(u + R16_Q4K_MINS + 32 * t)));
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) summ[c] = _mm512_dpwssd_epi32(summ[c], mn, _mm512_set1_epi32(x[c].pb[4 * b + t]));
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(u + R16_Q4K_D)));
        const __m512 dm = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(u + R16_Q4K_DMIN)));
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            __m512 dx = _mm512_set1_ps(x[c].b[b].d);
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), _mm512_mul_ps(dw, dx), acc[c]);
            acc[c] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(summ[c]), _mm512_mul_ps(dm, dx), acc[c]);
        }
    }
    __mmask16 m = (__mmask16)(nr >= 16 ? 0xFFFF : (1u << nr) - 1);
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) _mm512_mask_storeu_ps(d + (size_t)c * ds, m, acc[c]);
}

/* Every group of rows against ncols activation rows, in column groups of
 * up to W (Q4_0, Q8_0: 8; Q4_K: 4); a 16-row group is small enough to stay
 * in L1/L2 between column groups, so memory sees each weight once. Eight
 * columns a pass instead of four (each weight vector loaded for twice the
 * columns), 1.1B, 2 threads, alternating: pp16 Q4_0 216 -> 245-257 tok/s,
 * Q8_0 172-173 -> 182-195; 8 sequences decoded together Q4_0 175-176 ->
 * 215, Q8_0 120 -> 142-144. The wide variants spill a little (about 220
 * stack accesses in r16_rows_q4_0 against 2); they still win. The one-column
 * decode kernel is called on its own. */
/* The column-group widths: calls for 1..W columns (C a constant in each). */
#define R16_GROUP_SWITCH_4(WT)                                                                             \
    switch (ncols - c0 < 4 ? ncols - c0 : 4) {                                                             \
    case 1: r16_##WT##_group(1, nb, g, x + c0, dc, ds, nr); break;                                         \
    case 2: r16_##WT##_group(2, nb, g, x + c0, dc, ds, nr); break;                                         \
    case 3: r16_##WT##_group(3, nb, g, x + c0, dc, ds, nr); break;                                         \
    default: r16_##WT##_group(4, nb, g, x + c0, dc, ds, nr); break;                                        \
    }
#define R16_GROUP_SWITCH_8(WT)                                                                             \
    switch (ncols - c0 < 8 ? ncols - c0 : 8) {                                                             \
    case 1: r16_##WT##_group(1, nb, g, x + c0, dc, ds, nr); break;                                         \
    case 2: r16_##WT##_group(2, nb, g, x + c0, dc, ds, nr); break;                                         \
    case 3: r16_##WT##_group(3, nb, g, x + c0, dc, ds, nr); break;                                         \
    case 4: r16_##WT##_group(4, nb, g, x + c0, dc, ds, nr); break;                                         \
    case 5: r16_##WT##_group(5, nb, g, x + c0, dc, ds, nr); break;                                         \
    case 6: r16_##WT##_group(6, nb, g, x + c0, dc, ds, nr); break;                                         \
    case 7: r16_##WT##_group(7, nb, g, x + c0, dc, ds, nr); break;                                         \
    default: r16_##WT##_group(8, nb, g, x + c0, dc, ds, nr); break;                                        \
    }

#define R16_ENTRIES(WT, XT, BS, LAYOUT, W)                                                                  \
    static void r16_rows_##WT(int64_t nb, const uint8_t *w, size_t ws, int64_t nrows, const XT *x, int ncols, \
                              float *d, size_t ds)                                                         \
    {                                                                                                      \
        for (int64_t r = 0; r < nrows; r += R16_ROWS) {                                                    \
            const uint8_t *g = w + (size_t)(r / R16_ROWS) * ws;                                            \
            int nr = (int)(nrows - r < R16_ROWS ? nrows - r : R16_ROWS);                                   \
            for (int c0 = 0; c0 < ncols; c0 += W) {                                                        \
                float *dc = d + (size_t)c0 * ds + r;                                                       \
                R16_GROUP_SWITCH_##W(WT)                                                                   \
            }                                                                                              \
        }                                                                                                  \
    }                                                                                                      \
    static void gemv_r16_##WT(int64_t k, const void *w, size_t ws, int64_t nrows, const void *xv, float *d, \
                              void *scratch)                                                               \
    {                                                                                                      \
        const void *x = xv;                                                                                \
        XT xl = LAYOUT;                                                                                    \
        /* decode: the one-column kernel alone, apart from the wide ones' registers */                     \
        for (int64_t r = 0; r < nrows; r += R16_ROWS)                                                      \
            r16_##WT##_group(1, k / BS, (const uint8_t *)w + (size_t)(r / R16_ROWS) * ws, &xl, d + r, 0,   \
                             (int)(nrows - r < R16_ROWS ? nrows - r : R16_ROWS));                          \
    }                                                                                                      \
    static void gemvn_r16_##WT(int64_t k, const void *w, size_t ws, int64_t nrows, const void *xv, size_t xs, \
                               int ncols, float *d, size_t ds, void *scratch0)                             \
    {                                                                                                      \
        XT xl[CPU_GEMVN_R16_MAX];                                                                              \
        for (int c = 0; c < ncols; c++) {                                                                  \
            const void *x = (const uint8_t *)xv + (size_t)c * xs;                                          \
            void *scratch = (uint8_t *)scratch0 + (size_t)c * CPU_GEMV_SCRATCH(k);                         \
            xl[c] = LAYOUT;                                                                                \
        }                                                                                                  \
        r16_rows_##WT(k / BS, w, ws, nrows, xl, ncols, d, ds);                                             \
    }

R16_ENTRIES(q4_0, r16_x, 32, r16_layout_x(x, k / 32, 8, scratch), 8)
R16_ENTRIES(q8_0, r16_x, 32, r16_layout_x(x, k / 32, 128, scratch), 8)
R16_ENTRIES(q4_K, r16_xk, 256, r16_layout_xk(x, k / 256, scratch), 4)

void cpu_kernels_init_repack_avx512(cpu_kernels *k)
{
    if (!cpu_has_vnni()) return;
    k->gemv_r16[VKI_TYPE_Q4_0] = gemv_r16_q4_0;
    k->gemvn_r16[VKI_TYPE_Q4_0] = gemvn_r16_q4_0;
    k->gemv_r16[VKI_TYPE_Q8_0] = gemv_r16_q8_0;
    k->gemvn_r16[VKI_TYPE_Q8_0] = gemvn_r16_q8_0;
    k->gemv_r16[VKI_TYPE_Q4_K] = gemv_r16_q4_K;
    k->gemvn_r16[VKI_TYPE_Q4_K] = gemvn_r16_q4_K;
}
