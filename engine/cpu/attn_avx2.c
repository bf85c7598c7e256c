/*
 * attn_avx2.c: the attention key-block helpers on AVX2 + FMA + F16C (the
 * scheme of kernels_avx512.c's): scores for 8 keys at once, with one
 * hadd-and-permute tree instead of 8 horizontal sums, and the weighted V
 * sum keeping up to 64 output floats in registers across the key block.
 * Without them each key cost a dot_f32 and a mad_f32 call: together 30%
 * of a 40M model's 512-token prompt on AVX2. And attn_tile, one query
 * vector per lane (see attn_avx512.c).
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "cpu.h"
#include "exp_avx2.h"
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

/* ===== One query vector per lane (cpu_attn_tile), 8 lanes ==============
 * attn_avx512.c's scheme on 8 lanes: a 1.1B decode step (8 query heads on
 * each KV head) fills them, as do a prompt's rows times fewer heads. */

#define KB CPU_ATTN_TILE_KEYS

static void widen_rows(const uint8_t *base, size_t rs, bool f16, int64_t hd, int64_t j0, int nb, float *dst)
{
    for (int jj = 0; jj < nb; jj++) {
        const uint8_t *row = base + (size_t)(j0 + jj) * rs;
        for (int64_t d = 0; d < hd; d += 8)
            _mm256_store_ps(dst + (size_t)jj * hd + d, f16 ? load8_f16(row, d) : load8_f32(row, d));
    }
    for (int jj = nb; jj < (nb + 3) / 4 * 4; jj++) memset(dst + (size_t)jj * hd, 0, (size_t)hd * sizeof(float));
}

static void attn_tile(const cpu_attn_tile *t)
{
    const int64_t hd = t->hd;
    float *qt = t->scratch;   /* [hd][8] queries, scaled, lane-major */
    float *ot = t->out_o;     /* [hd][8] running sum of p * V        */
    float *kb = qt + hd * 8;  /* [KB][hd] the block's keys, f32       */
    float *vb = kb + KB * hd; /* [KB][hd] its values                  */
    float *s = vb + KB * hd;  /* [KB][8] scores, then p               */
    for (int64_t d = 0; d < hd; d++)
        for (int l = 0; l < 8; l++) qt[d * 8 + l] = l < t->nqv ? t->q[l][d] * t->scale : 0.0f;
    memset(ot, 0, (size_t)hd * 8 * sizeof(float));
    const __m256i lo = _mm256_loadu_si256((const __m256i *)t->lo), hi = _mm256_loadu_si256((const __m256i *)t->hi);
    const __m256 ninf = _mm256_set1_ps(-INFINITY), one = _mm256_set1_ps(1.0f);
    __m256 m = ninf, lsum = _mm256_setzero_ps();
    __m256 vis[KB]; /* all-ones lanes: key visible to that lane */
    for (int64_t j0 = t->a; j0 < t->b; j0 += KB) {
        const int nb = (int)(t->b - j0 < KB ? t->b - j0 : KB);
        widen_rows(t->k, t->ks, t->k16, hd, j0, nb, kb);
        for (int jj0 = 0; jj0 < nb; jj0 += 4) { /* four keys at a time */
            __m256 acc[4];
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) acc[r] = _mm256_setzero_ps();
            const float *k0 = kb + (size_t)jj0 * hd;
            for (int64_t d = 0; d < hd; d++) {
                const __m256 qv = _mm256_load_ps(qt + d * 8);
#pragma GCC unroll 4
                for (int r = 0; r < 4; r++) acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(k0 + r * hd + d), qv, acc[r]);
            }
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) _mm256_store_ps(s + (size_t)(jj0 + r) * 8, acc[r]);
        }
        __m256 bm = ninf;
        for (int jj = 0; jj < nb; jj++) {
            const __m256i j = _mm256_set1_epi32((int32_t)(j0 + jj));
            /* lo <= j < hi: not (lo > j) and (hi > j) */
            vis[jj] = _mm256_castsi256_ps(_mm256_andnot_si256(_mm256_cmpgt_epi32(lo, j), _mm256_cmpgt_epi32(hi, j)));
            bm = _mm256_max_ps(bm, _mm256_blendv_ps(ninf, _mm256_load_ps(s + (size_t)jj * 8), vis[jj]));
        }
        const __m256 mn = _mm256_max_ps(m, bm);
        const __m256 seen = _mm256_cmp_ps(mn, ninf, _CMP_NEQ_OQ);
        const __m256 corr = _mm256_blendv_ps(one, exp8(_mm256_sub_ps(m, mn)), seen);
        lsum = _mm256_mul_ps(lsum, corr);
        for (int64_t d = 0; d < hd; d++) _mm256_store_ps(ot + d * 8, _mm256_mul_ps(_mm256_load_ps(ot + d * 8), corr));
        for (int jj = 0; jj < nb; jj++) {
            __m256 p = _mm256_and_ps(vis[jj], exp8(_mm256_sub_ps(_mm256_load_ps(s + (size_t)jj * 8), mn)));
            _mm256_store_ps(s + (size_t)jj * 8, p);
            lsum = _mm256_add_ps(lsum, p);
        }
        m = mn;
        widen_rows(t->v, t->vs, t->v16, hd, j0, nb, vb);
        for (int64_t d0 = 0; d0 < hd; d0 += 8) {
            __m256 acc[8];
#pragma GCC unroll 8
            for (int r = 0; r < 8; r++) acc[r] = _mm256_load_ps(ot + (d0 + r) * 8);
            for (int jj = 0; jj < nb; jj++) {
                const __m256 p = _mm256_load_ps(s + (size_t)jj * 8);
                const float *v0 = vb + (size_t)jj * hd + d0;
#pragma GCC unroll 8
                for (int r = 0; r < 8; r++) acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(v0 + r), p, acc[r]);
            }
#pragma GCC unroll 8
            for (int r = 0; r < 8; r++) _mm256_store_ps(ot + (d0 + r) * 8, acc[r]);
        }
    }
    _mm256_storeu_ps(t->out_m, m);
    _mm256_storeu_ps(t->out_l, lsum);
}

void cpu_attn_init_avx2(cpu_kernels *k)
{
    k->dot_rows = dot_rows;
    k->mad_rows = mad_rows;
    k->attn_tile = attn_tile;
    k->attn_lanes = 8;
}
