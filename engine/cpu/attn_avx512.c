/*
 * attn_avx512.c: attention with one query vector per lane (cpu_attn_tile).
 * For a prompt, the query heads of one KV head over a few rows fill the 16
 * lanes; a block of 64 keys is widened to f32 once, then scores are
 * vertical fmas (a key's element broadcast against 16 queries' elements),
 * the softmax's max, exp and sums are vertical too, and the weighted V sum
 * is again broadcast-and-fma: no horizontal sums or transposes per key, as
 * the one-query helpers (dot_rows, mad_rows) need. vkinfer-bench-ops
 * attn, 2 threads: 512 queries x 512 keys, 8 heads on 4 KV heads, 4224 ->
 * 1559 us (63 -> 172 GFLOP/s); a 1.1B decode step 2048 deep (8 lanes of
 * query heads) 257 -> 180 us. Decode with fewer heads per KV head keeps
 * the one-query helpers (ops_attn.c decides).
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "cpu.h"
#include "exp_avx512.h"
#include "load_avx512.h"

#define KB CPU_ATTN_TILE_KEYS

/* Rows [j0, j0 + nb) of K or V into dst [KB][hd] f32; rows past nb are
 * zeroed so the score loop may run whole groups of 8. */
static void widen_rows(const uint8_t *base, size_t rs, bool f16, int64_t hd, int64_t j0, int nb, float *dst)
{
    for (int jj = 0; jj < nb; jj++) {
        const uint8_t *row = base + (size_t)(j0 + jj) * rs;
        for (int64_t d = 0; d < hd; d += 16)
            _mm512_store_ps(dst + (size_t)jj * hd + d, f16 ? load16_f16(row, d) : load16_f32(row, d));
    }
    for (int jj = nb; jj < (nb + 7) / 8 * 8; jj++) memset(dst + (size_t)jj * hd, 0, (size_t)hd * sizeof(float));
}

static void attn_tile(const cpu_attn_tile *t)
{
    const int64_t hd = t->hd;
    float *qt = t->scratch;          /* [hd][16] queries, scaled, lane-major */
    float *ot = t->out_o;            /* [hd][16] running sum of p * V        */
    float *kb = qt + hd * 16;        /* [KB][hd] the block's keys, f32       */
    float *vb = kb + KB * hd;        /* [KB][hd] its values                  */
    float *s = vb + KB * hd;         /* [KB][16] scores, then p              */
    for (int64_t d = 0; d < hd; d++)
        for (int l = 0; l < 16; l++) qt[d * 16 + l] = l < t->nqv ? t->q[l][d] * t->scale : 0.0f;
    memset(ot, 0, (size_t)hd * 16 * sizeof(float));
    const __m512i lo = _mm512_loadu_si512(t->lo), hi = _mm512_loadu_si512(t->hi);
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __m512 m = ninf, lsum = _mm512_setzero_ps();
    for (int64_t j0 = t->a; j0 < t->b; j0 += KB) {
        const int nb = (int)(t->b - j0 < KB ? t->b - j0 : KB);
        widen_rows(t->k, t->ks, t->k16, hd, j0, nb, kb);
        /* s[jj][l] = q_l . k_jj, eight keys at a time */
        for (int jj0 = 0; jj0 < nb; jj0 += 8) {
            __m512 acc[8];
#pragma GCC unroll 8
            for (int r = 0; r < 8; r++) acc[r] = _mm512_setzero_ps();
            const float *k0 = kb + (size_t)jj0 * hd;
            for (int64_t d = 0; d < hd; d++) {
                const __m512 qv = _mm512_load_ps(qt + d * 16);
#pragma GCC unroll 8
                for (int r = 0; r < 8; r++) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(k0[r * hd + d]), qv, acc[r]);
            }
#pragma GCC unroll 8
            for (int r = 0; r < 8; r++) _mm512_store_ps(s + (size_t)(jj0 + r) * 16, acc[r]);
        }
        /* each lane's visible keys, the block's max, the new running max */
        __m512 bm = ninf;
        __mmask16 vis[KB];
        for (int jj = 0; jj < nb; jj++) {
            const __m512i j = _mm512_set1_epi32((int32_t)(j0 + jj));
            vis[jj] = _mm512_cmpge_epi32_mask(j, lo) & _mm512_cmplt_epi32_mask(j, hi);
            bm = _mm512_mask_max_ps(bm, vis[jj], bm, _mm512_load_ps(s + (size_t)jj * 16));
        }
        const __m512 mn = _mm512_max_ps(m, bm);
        /* lanes that have seen no key yet keep corr 1 (their sums are 0) */
        const __mmask16 seen = _mm512_cmp_ps_mask(mn, ninf, _CMP_NEQ_OQ);
        const __m512 corr = _mm512_mask_mov_ps(_mm512_set1_ps(1.0f), seen, exp16(_mm512_sub_ps(m, mn)));
        lsum = _mm512_mul_ps(lsum, corr);
        for (int64_t d = 0; d < hd; d++) _mm512_store_ps(ot + d * 16, _mm512_mul_ps(_mm512_load_ps(ot + d * 16), corr));
        for (int jj = 0; jj < nb; jj++) {
            __m512 p = _mm512_maskz_mov_ps(vis[jj], exp16(_mm512_sub_ps(_mm512_load_ps(s + (size_t)jj * 16), mn)));
            _mm512_store_ps(s + (size_t)jj * 16, p);
            lsum = _mm512_add_ps(lsum, p);
        }
        m = mn;
        /* ot[d][l] += sum over the block of v_jj[d] * p[jj][l], 16 d at a time */
        widen_rows(t->v, t->vs, t->v16, hd, j0, nb, vb);
        for (int64_t d0 = 0; d0 < hd; d0 += 16) {
            __m512 acc[16];
#pragma GCC unroll 16
            for (int r = 0; r < 16; r++) acc[r] = _mm512_load_ps(ot + (d0 + r) * 16);
            for (int jj = 0; jj < nb; jj++) {
                const __m512 p = _mm512_load_ps(s + (size_t)jj * 16);
                const float *v0 = vb + (size_t)jj * hd + d0;
#pragma GCC unroll 16
                for (int r = 0; r < 16; r++) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(v0[r]), p, acc[r]);
            }
#pragma GCC unroll 16
            for (int r = 0; r < 16; r++) _mm512_store_ps(ot + (d0 + r) * 16, acc[r]);
        }
    }
    _mm512_storeu_ps(t->out_m, m);
    _mm512_storeu_ps(t->out_l, lsum);
}

void cpu_attn_init_avx512(cpu_kernels *k)
{
    k->attn_tile = attn_tile;
    k->attn_lanes = 16;
}
