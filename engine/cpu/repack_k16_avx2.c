/*
 * repack_k16_avx2.c: the AVX2 mat-vecs over the R16 layouts (repack.h) of
 * the K-quants with sixteen sub-blocks of 16: Q6_K (Q6_K files, and the
 * output, attn_v and half the ffn_down tensors of every Q4_K_M and Q5_K_M
 * file), Q3_K (Q3_K_S/M/L files) and Q2_K. The row-major dots
 * (kquants_avx2.c) computed 15 (Q6_K), 10 (Q3_K) and 9 (Q2_K) GB/s a core
 * from cache, which two cores could not lift to memory speed.
 *
 * Per 32-byte half chunk (eight rows, four code bytes each) the codes are
 * assembled by shifts and masks (Q6_K: a nibble and two bits of qh; Q3_K:
 * a 2-bit plane and a bit of hmask), then vpmaddubsw against the
 * activation's four matching bytes, summed in int16 for as many steps as
 * the codes allow (Q6_K 2: 2 x 63 x 128 x 2 = 32256; Q3_K 4). vpmaddwd
 * then applies the rows' sub-block scales, duplicated into both int16
 * halves by vpshufb from the unit's scale pairs, the same pairs that meet
 * the activation's sub-block sums for the codes' offset (Q6_K's +32,
 * Q3_K's -4).
 */
#include <immintrin.h>
#include <string.h>

#include "cpu.h"
#include "load_avx2.h"
#include "repack.h"
#include "repack_cols.h"

/* The weight stream's prefetch is one unit ahead, line by line as the
 * chunks are first read (as Q4_K's and Q5_K's, repack_avx2.c); the
 * chunks lie in that order, which the hardware prefetcher needs too. */

/* The int16 of each 32-bit lane's low (HI 0) or high (HI 1) half in both. */
static const int8_t dup_idx[2][32] = {
#define DI(a) a, a + 1, a, a + 1, a + 4, a + 5, a + 4, a + 5, a + 8, a + 9, a + 8, a + 9, a + 12, a + 13, a + 12, a + 13
    {DI(0), DI(0)}, {DI(2), DI(2)}
#undef DI
};

/* Codes of chunk q of a half for rows 8h'..: v its ql bytes, hb its qh
 * bytes. K (q / 8) picks the qh bit pair: 0-1 / 4-5 for K = 0, 2-3 / 6-7
 * for K = 1; the 16-bit shifts' spill from the neighbour byte lies outside
 * the 0x30 mask. */
INLINE void q6_codes(__m256i v, __m256i hb, const int K, __m256i *lo, __m256i *hi)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    __m256i hl = K ? _mm256_slli_epi16(hb, 2) : _mm256_slli_epi16(hb, 4);
    __m256i hh = K ? _mm256_srli_epi16(hb, 2) : hb;
    *lo = _mm256_or_si256(_mm256_and_si256(v, m4), _mm256_and_si256(hl, m30));
    *hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4), _mm256_and_si256(hh, m30));
}

/* One activation column, both row halves (rows 0-7, 8-15) per chunk: the
 * broadcasts serve both. */
INLINE void r16_q6_K_one(int64_t nb, const uint8_t *w, const r16_xk16 *x, float *d, int nr)
{
    const __m256i dup_lo = _mm256_loadu_si256((const __m256i *)dup_idx[0]);
    const __m256i dup_hi = _mm256_loadu_si256((const __m256i *)dup_idx[1]);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *u = w + (size_t)b * R16_Q6K_UNIT;
        for (int o = 0; o < R16_Q6K_HALF0 + 32; o += 64) _mm_prefetch((const char *)u + R16_Q6K_UNIT + o, _MM_HINT_T0);
        __m256i is0 = _mm256_setzero_si256(), is1 = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const uint8_t *hf = u + R16_Q6K_HALF0 + h * R16_Q6K_HALF;
            const int8_t *xq = x->b[b].qs + 128 * h;
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                /* a fence for the scheduler, which otherwise hoisted the unit's
                 * 53 prefetches and its scale vectors to the top (spills) */
                __asm__ volatile("" ::: "memory");
                const int8_t *sp = (const int8_t *)u + R16_Q6K_SCALES + 32 * (4 * h + i);
                const __m256i p0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sp));
                const __m256i p1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(sp + 16)));
                const __m256i pb = _mm256_set1_epi32(x->pb[8 * b + 4 * h + i]);
                is0 = _mm256_sub_epi32(is0, _mm256_slli_epi32(_mm256_madd_epi16(p0, pb), 5));
                is1 = _mm256_sub_epi32(is1, _mm256_slli_epi32(_mm256_madd_epi16(p1, pb), 5));
                KEEP_ORDER(is0);
                KEEP_ORDER(is1);
#pragma GCC unroll 2
                for (int s = 0; s < 2; s++) {
                    __m256i lo0 = _mm256_setzero_si256(), hi0 = lo0, lo1 = lo0, hi1 = lo0;
#pragma GCC unroll 2
                    for (int e = 0; e < 2; e++) {
                        const int q = 4 * i + 2 * s + e, c = q % 8, K = q / 8;
                        const uint8_t *vq = hf + r16_q6k_ql(q), *hq = hf + r16_q6k_qh(c);
                        _mm_prefetch((const char *)vq + R16_Q6K_UNIT + 32, _MM_HINT_T0);
                        if (!K) _mm_prefetch((const char *)hq + R16_Q6K_UNIT + 32, _MM_HINT_T0);
                        const __m256i xa = bcast4(xq + 4 * q), xb = bcast4(xq + 64 + 4 * q);
                        __m256i cl, ch;
                        q6_codes(_mm256_load_si256((const __m256i *)vq), _mm256_load_si256((const __m256i *)hq), K,
                                 &cl, &ch);
                        lo0 = _mm256_add_epi16(lo0, _mm256_maddubs_epi16(cl, xa));
                        hi0 = _mm256_add_epi16(hi0, _mm256_maddubs_epi16(ch, xb));
                        KEEP_ORDER(lo0);
                        KEEP_ORDER(hi0);
                        q6_codes(_mm256_load_si256((const __m256i *)(vq + 32)),
                                 _mm256_load_si256((const __m256i *)(hq + 32)), K, &cl, &ch);
                        lo1 = _mm256_add_epi16(lo1, _mm256_maddubs_epi16(cl, xa));
                        hi1 = _mm256_add_epi16(hi1, _mm256_maddubs_epi16(ch, xb));
                        KEEP_ORDER(lo1);
                        KEEP_ORDER(hi1);
                    }
                    is0 = _mm256_add_epi32(is0, _mm256_add_epi32(_mm256_madd_epi16(lo0, _mm256_shuffle_epi8(p0, dup_lo)),
                                                                 _mm256_madd_epi16(hi0, _mm256_shuffle_epi8(p0, dup_hi))));
                    is1 = _mm256_add_epi32(is1, _mm256_add_epi32(_mm256_madd_epi16(lo1, _mm256_shuffle_epi8(p1, dup_lo)),
                                                                 _mm256_madd_epi16(hi1, _mm256_shuffle_epi8(p1, dup_hi))));
                    KEEP_ORDER(is0);
                    KEEP_ORDER(is1);
                }
            }
        }
        const __m256 dx = _mm256_set1_ps(x->b[b].d);
        const __m256 dw0 = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(u + R16_Q6K_D))), dx);
        const __m256 dw1 = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(u + R16_Q6K_D + 16))), dx);
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is0), dw0, acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is1), dw1, acc1);
    }
    store_half(acc0, d, 0, nr);
    store_half(acc1, d, 1, nr);
}

/* Q3_K's code: plane j of v, and bit HB (4n + j) of hmask h at bit 2. */
INLINE __m256i q3_code(__m256i v, __m256i h, const int j, const int HB)
{
    const __m256i m3 = _mm256_set1_epi8(3), m4 = _mm256_set1_epi8(4);
    __m256i pl = _mm256_and_si256(j ? _mm256_srli_epi16(v, 2 * j) : v, m3);
    __m256i hb = HB > 2 ? _mm256_srli_epi16(h, HB - 2) : HB < 2 ? _mm256_slli_epi16(h, 2 - HB) : h;
    return _mm256_or_si256(pl, _mm256_and_si256(hb, m4));
}

INLINE void r16_q3_K_one(int64_t nb, const uint8_t *w, const r16_xk16 *x, float *d, int nr)
{
    const __m256i dup_lo = _mm256_loadu_si256((const __m256i *)dup_idx[0]);
    const __m256i dup_hi = _mm256_loadu_si256((const __m256i *)dup_idx[1]);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *u = w + (size_t)b * R16_Q3K_UNIT, *body = u + R16_Q3K_BODY;
        for (int o = 0; o < R16_Q3K_BODY + 32; o += 64) _mm_prefetch((const char *)u + R16_Q3K_UNIT + o, _MM_HINT_T0);
        __m256i is0 = _mm256_setzero_si256(), is1 = _mm256_setzero_si256();
#pragma GCC unroll 2
        for (int n = 0; n < 2; n++)
#pragma GCC unroll 2
            for (int g = 0; g < 2; g++) {
                __asm__ volatile("" ::: "memory"); /* as in r16_q6_K_one */
                const int8_t *xq = x->b[b].qs + 128 * n + 16 * g;
#pragma GCC unroll 2
                for (int jp = 0; jp < 2; jp++) {
                    const int p = 4 * n + 2 * g + jp;
                    const int8_t *sp = (const int8_t *)u + R16_Q3K_SCALES + 32 * p;
                    const __m256i p0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sp));
                    const __m256i p1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(sp + 16)));
                    const __m256i pb = _mm256_set1_epi32(x->pb[8 * b + p]);
                    is0 = _mm256_sub_epi32(is0, _mm256_slli_epi32(_mm256_madd_epi16(p0, pb), 2));
                    is1 = _mm256_sub_epi32(is1, _mm256_slli_epi32(_mm256_madd_epi16(p1, pb), 2));
                    KEEP_ORDER(is0);
                    KEEP_ORDER(is1);
#pragma GCC unroll 2
                    for (int jj = 0; jj < 2; jj++) {
                        const int j = 2 * jp + jj;
                        __m256i a0 = _mm256_setzero_si256(), a1 = a0;
#pragma GCC unroll 4
                        for (int t = 0; t < 4; t++) {
                            const uint8_t *vq = body + r16_q3k_qs(8 * n + 4 * g + t), *hq = body + r16_q3k_hm(4 * g + t);
                            if (j == 0) {
                                _mm_prefetch((const char *)vq + R16_Q3K_UNIT + 32, _MM_HINT_T0);
                                if (n == 0) _mm_prefetch((const char *)hq + R16_Q3K_UNIT + 32, _MM_HINT_T0);
                            }
                            const __m256i xa = bcast4(xq + 32 * j + 4 * t);
                            a0 = _mm256_add_epi16(a0, _mm256_maddubs_epi16(
                                q3_code(_mm256_load_si256((const __m256i *)vq), _mm256_load_si256((const __m256i *)hq), j, 4 * n + j), xa));
                            a1 = _mm256_add_epi16(a1, _mm256_maddubs_epi16(
                                q3_code(_mm256_load_si256((const __m256i *)(vq + 32)), _mm256_load_si256((const __m256i *)(hq + 32)), j, 4 * n + j), xa));
                            KEEP_ORDER(a0);
                            KEEP_ORDER(a1);
                        }
                        is0 = _mm256_add_epi32(is0, _mm256_madd_epi16(a0, _mm256_shuffle_epi8(p0, jj ? dup_hi : dup_lo)));
                        is1 = _mm256_add_epi32(is1, _mm256_madd_epi16(a1, _mm256_shuffle_epi8(p1, jj ? dup_hi : dup_lo)));
                        KEEP_ORDER(is0);
                        KEEP_ORDER(is1);
                    }
                }
            }
        const __m256 dx = _mm256_set1_ps(x->b[b].d);
        const __m256 dw0 = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(u + R16_Q3K_D))), dx);
        const __m256 dw1 = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(u + R16_Q3K_D + 16))), dx);
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is0), dw0, acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is1), dw1, acc1);
    }
    store_half(acc0, d, 0, nr);
    store_half(acc1, d, 1, nr);
}

/* Q2_K: Q3_K's loop with 2-bit codes (no hmask), the scale and min pairs
 * from one byte each (low and high nibble); mins against the activation
 * sums by one vpmaddwd a pair. */
INLINE void r16_q2_K_one(int64_t nb, const uint8_t *w, const r16_xk16 *x, float *d, int nr)
{
    const __m256i dup_lo = _mm256_loadu_si256((const __m256i *)dup_idx[0]);
    const __m256i dup_hi = _mm256_loadu_si256((const __m256i *)dup_idx[1]);
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *u = w + (size_t)b * R16_Q2K_UNIT;
        for (int o = 0; o < R16_Q2K_CODES; o += 64) _mm_prefetch((const char *)u + R16_Q2K_UNIT + o, _MM_HINT_T0);
        __m256i is0 = _mm256_setzero_si256(), is1 = is0, ms0 = is0, ms1 = is0;
#pragma GCC unroll 2
        for (int n = 0; n < 2; n++)
#pragma GCC unroll 2
            for (int g = 0; g < 2; g++) {
                __asm__ volatile("" ::: "memory"); /* as in r16_q6_K_one */
                const int8_t *xq = x->b[b].qs + 128 * n + 16 * g;
#pragma GCC unroll 2
                for (int jp = 0; jp < 2; jp++) {
                    const int p = 4 * n + 2 * g + jp;
                    const __m128i r0 = _mm_loadu_si128((const __m128i *)(u + R16_Q2K_SCALES + 32 * p));
                    const __m128i r1 = _mm_loadu_si128((const __m128i *)(u + R16_Q2K_SCALES + 32 * p + 16));
                    const __m256i s0 = _mm256_cvtepu8_epi16(_mm_and_si128(r0, m4));
                    const __m256i s1 = _mm256_cvtepu8_epi16(_mm_and_si128(r1, m4));
                    const __m256i pb = _mm256_set1_epi32(x->pb[8 * b + p]);
                    ms0 = _mm256_add_epi32(ms0, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(r0, 4), m4)), pb));
                    ms1 = _mm256_add_epi32(ms1, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(r1, 4), m4)), pb));
                    KEEP_ORDER(ms0);
                    KEEP_ORDER(ms1);
#pragma GCC unroll 2
                    for (int jj = 0; jj < 2; jj++) {
                        const int j = 2 * jp + jj;
                        __m256i a0 = _mm256_setzero_si256(), a1 = a0;
#pragma GCC unroll 4
                        for (int t = 0; t < 4; t++) {
                            const uint8_t *vq = u + R16_Q2K_CODES + (8 * n + 4 * g + t) * 64;
                            if (j == 0) _mm_prefetch((const char *)vq + R16_Q2K_UNIT, _MM_HINT_T0);
                            const __m256i xa = bcast4(xq + 32 * j + 4 * t);
                            __m256i v0 = _mm256_load_si256((const __m256i *)vq), v1 = _mm256_load_si256((const __m256i *)(vq + 32));
                            if (j) v0 = _mm256_srli_epi16(v0, 2 * j), v1 = _mm256_srli_epi16(v1, 2 * j);
                            a0 = _mm256_add_epi16(a0, _mm256_maddubs_epi16(_mm256_and_si256(v0, m3), xa));
                            a1 = _mm256_add_epi16(a1, _mm256_maddubs_epi16(_mm256_and_si256(v1, m3), xa));
                            KEEP_ORDER(a0);
                            KEEP_ORDER(a1);
                        }
                        is0 = _mm256_add_epi32(is0, _mm256_madd_epi16(a0, _mm256_shuffle_epi8(s0, jj ? dup_hi : dup_lo)));
                        is1 = _mm256_add_epi32(is1, _mm256_madd_epi16(a1, _mm256_shuffle_epi8(s1, jj ? dup_hi : dup_lo)));
                        KEEP_ORDER(is0);
                        KEEP_ORDER(is1);
                    }
                }
            }
        const __m256 dx = _mm256_set1_ps(x->b[b].d);
        const __m256 dw0 = _mm256_mul_ps(_mm256_cvtph_ps(_mm_load_si128((const __m128i *)(u + R16_Q2K_D))), dx);
        const __m256 dw1 = _mm256_mul_ps(_mm256_cvtph_ps(_mm_load_si128((const __m128i *)(u + R16_Q2K_D + 16))), dx);
        const __m256 dm0 = _mm256_mul_ps(_mm256_cvtph_ps(_mm_load_si128((const __m128i *)(u + R16_Q2K_DMIN))), dx);
        const __m256 dm1 = _mm256_mul_ps(_mm256_cvtph_ps(_mm_load_si128((const __m128i *)(u + R16_Q2K_DMIN + 16))), dx);
        acc0 = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(ms0), dm0, _mm256_fmadd_ps(_mm256_cvtepi32_ps(is0), dw0, acc0));
        acc1 = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(ms1), dm1, _mm256_fmadd_ps(_mm256_cvtepi32_ps(is1), dw1, acc1));
    }
    store_half(acc0, d, 0, nr);
    store_half(acc1, d, 1, nr);
}

/* The unit's scale pairs (repack.h) as sub-block indices, for the
 * activation's sums. Q6_K: pair 4H + i is (8H + i, 8H + 4 + i); Q3_K and
 * Q2_K: pair 4n + 2g + p is (8n + 4p + g, 8n + 4p + 2 + g). */
static const int8_t q6k_pairs[8][2] = {{0, 4}, {1, 5}, {2, 6}, {3, 7}, {8, 12}, {9, 13}, {10, 14}, {11, 15}};
static const int8_t q3k_pairs[8][2] = {{0, 2}, {4, 6}, {1, 3}, {5, 7}, {8, 10}, {12, 14}, {9, 11}, {13, 15}};

#define K16_ENTRIES(WT, PAIRS) \
    R16_PER_COLUMN_ENTRIES(WT, r16_xk16, QK_K, r16_layout_xk16((const block_q8_K *)xc, k / QK_K, PAIRS, sc))

K16_ENTRIES(q6_K, q6k_pairs)
K16_ENTRIES(q3_K, q3k_pairs)
K16_ENTRIES(q2_K, q3k_pairs)

void cpu_kernels_init_repack_k16_avx2(cpu_kernels *k)
{
    k->gemv_r16[VKI_TYPE_Q6_K] = gemv_r16_q6_K;
    k->gemvn_r16[VKI_TYPE_Q6_K] = gemvn_r16_q6_K;
    k->gemv_r16[VKI_TYPE_Q3_K] = gemv_r16_q3_K;
    k->gemvn_r16[VKI_TYPE_Q3_K] = gemvn_r16_q3_K;
    k->gemv_r16[VKI_TYPE_Q2_K] = gemv_r16_q2_K;
    k->gemvn_r16[VKI_TYPE_Q2_K] = gemvn_r16_q2_K;
}
