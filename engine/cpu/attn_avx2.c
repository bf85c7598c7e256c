/*
 * attn_avx2.c: the attention key-block helpers on AVX2 + FMA + F16C (the
 * scheme of kernels_avx512.c's): scores for 8 keys at once, with one
 * hadd-and-permute tree instead of 8 horizontal sums, and the weighted V
 * sum keeping up to 64 output floats in registers across the key block.
 * Without them each key cost a dot_f32 and a mad_f32 call: together 30%
 * of a 40M model's 512-token prompt on AVX2.
 */
#include <immintrin.h>
#include <string.h>

#include "cpu.h"
#include "load_avx2.h"

/* Values i .. i+7 of a K or V row, f32 or f16; rem < 8 reads only rem of
 * them (the rest are zero). */
INLINE __m256 load8_kv(const uint8_t *row, int64_t i, int64_t rem, const int F16)
{
    if (rem >= 8) return F16 ? load8_f16(row, i) : load8_f32(row, i);
    if (F16) {
        uint16_t h[8] = {0};
        memcpy(h, row + 2 * i, (size_t)rem * 2);
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
    }
    float f[8] = {0};
    memcpy(f, (const float *)row + i, (size_t)rem * 4);
    return _mm256_loadu_ps(f);
}

/* lane j = the total of a[j] */
INLINE __m256 sum8x8(const __m256 *a)
{
    __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
    __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
    __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

INLINE void dot_rows_t(int64_t n, const uint8_t *rows, size_t rs, int nrows, const float *q, float *out, const int F16)
{
    for (int j0 = 0; j0 < nrows; j0 += 8) {
        int nj = nrows - j0 < 8 ? nrows - j0 : 8;
        const uint8_t *r[8];
        for (int j = 0; j < 8; j++) r[j] = rows + (size_t)(j0 + (j < nj ? j : 0)) * rs; /* tail: repeat a row */
        __m256 a[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) a[j] = _mm256_setzero_ps();
        int64_t i = 0;
        for (; i + 8 <= n; i += 8) {
            __m256 qv = _mm256_loadu_ps(q + i);
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) a[j] = _mm256_fmadd_ps(load8_kv(r[j], i, 8, F16), qv, a[j]);
        }
        if (i < n) {
            __m256 qv = load8_kv((const uint8_t *)q, i, n - i, 0);
            for (int j = 0; j < 8; j++) a[j] = _mm256_fmadd_ps(load8_kv(r[j], i, n - i, F16), qv, a[j]);
        }
        float s[8];
        _mm256_storeu_ps(s, sum8x8(a));
        memcpy(out + j0, s, (size_t)nj * sizeof(float));
    }
}

static void dot_rows(int64_t n, const void *rows, size_t rs, int nrows, bool f16, const float *q, float *out)
{
    if (f16) dot_rows_t(n, rows, rs, nrows, q, out, 1);
    else dot_rows_t(n, rows, rs, nrows, q, out, 0);
}

/* NV full vectors (NV * 8 <= 64 values) held in registers over all rows. */
INLINE void mad_rows_nv(float *y, const uint8_t *rows, size_t rs, int nrows, const float *p, const int NV,
                        const int F16)
{
    __m256 acc[8];
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) acc[v] = _mm256_loadu_ps(y + 8 * v);
    for (int j = 0; j < nrows; j++) {
        __m256 pv = _mm256_set1_ps(p[j]);
        const uint8_t *row = rows + (size_t)j * rs;
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) acc[v] = _mm256_fmadd_ps(pv, load8_kv(row, 8 * v, 8, F16), acc[v]);
    }
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) _mm256_storeu_ps(y + 8 * v, acc[v]);
}

INLINE void mad_rows_t(int64_t n, float *y, const uint8_t *rows, size_t rs, int nrows, const float *p, const int F16)
{
    const size_t es = F16 ? 2 : 4;
    int64_t i0 = 0;
    while (i0 + 8 <= n) {
        int nv = (int)((n - i0) / 8 < 8 ? (n - i0) / 8 : 8);
        const uint8_t *r0 = rows + (size_t)i0 * es;
        switch (nv) {
        case 8: mad_rows_nv(y + i0, r0, rs, nrows, p, 8, F16); break;
        case 7: mad_rows_nv(y + i0, r0, rs, nrows, p, 7, F16); break;
        case 6: mad_rows_nv(y + i0, r0, rs, nrows, p, 6, F16); break;
        case 5: mad_rows_nv(y + i0, r0, rs, nrows, p, 5, F16); break;
        case 4: mad_rows_nv(y + i0, r0, rs, nrows, p, 4, F16); break;
        case 3: mad_rows_nv(y + i0, r0, rs, nrows, p, 3, F16); break;
        case 2: mad_rows_nv(y + i0, r0, rs, nrows, p, 2, F16); break;
        default: mad_rows_nv(y + i0, r0, rs, nrows, p, 1, F16); break;
        }
        i0 += 8 * nv;
    }
    if (i0 < n) { /* the last 1..7 values */
        float t[8] = {0};
        memcpy(t, y + i0, (size_t)(n - i0) * sizeof(float));
        __m256 acc = _mm256_loadu_ps(t);
        for (int j = 0; j < nrows; j++)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), load8_kv(rows + (size_t)j * rs, i0, n - i0, F16), acc);
        _mm256_storeu_ps(t, acc);
        memcpy(y + i0, t, (size_t)(n - i0) * sizeof(float));
    }
}

static void mad_rows(int64_t n, float *y, const void *rows, size_t rs, int nrows, bool f16, const float *p)
{
    if (f16) mad_rows_t(n, y, rows, rs, nrows, p, 1);
    else mad_rows_t(n, y, rows, rs, nrows, p, 0);
}

void cpu_attn_init_avx2(cpu_kernels *k)
{
    k->dot_rows = dot_rows;
    k->mad_rows = mad_rows;
}
