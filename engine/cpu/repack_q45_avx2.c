/*
 * repack_q45_avx2.c: the AVX2 mat-vecs over the R16 pair units (repack.h)
 * of Q4_1, Q5_0 and Q5_1: Q4_0's kernel (repack_avx2.c) with a min per
 * block (Q4_1, Q5_1: m times the activation block's sum) and a fifth code
 * bit (Q5_0, Q5_1) from the row's 32-bit qh word. The dot tiles
 * (kernels_avx2.c) computed 7-10 GB/s a core from cache.
 *
 * 5-bit codes let four vpmaddubsw results add up in int16 (4 x 2 x 31 x
 * 128 = 31744), so a block's sums are widened after each two chunks.
 */
#include <immintrin.h>
#include <string.h>

#include "cpu.h"
#include "load_avx2.h"
#include "repack.h"
#include "repack_cols.h"

/* Prefetch distance in bytes of the weight stream, as Q4_0's. */
#define Q45_PF_BYTES 2048

/* Byte i of every row's lane: bit S + i of the row's qh word, at bit 4.
 * The four bits times 0x02040810 land at bits 4, 12, 20, 28 without
 * carries (each copy is four bits wide, seven apart). */
INLINE __m256i q5_bits(__m256i qh, const int S, __m256i spread)
{
    const __m256i n = _mm256_and_si256(S ? _mm256_srli_epi32(qh, S) : qh, _mm256_set1_epi32(0xF));
    return _mm256_and_si256(_mm256_mullo_epi32(n, spread), _mm256_set1_epi32(0x10101010));
}

/* One activation column, both row halves per chunk (the broadcasts serve
 * both), a pair unit at a time. */
INLINE void r16_q45_one(int64_t nb, const uint8_t *w, const r16_x *x, float *d, int nr, const int MIN, const int HIGH)
{
    const int QH = 64 + (MIN ? 64 : 0), CODES = QH + (HIGH ? 128 : 0), UNIT = CODES + 512;
    const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    /* hidden from GCC, which otherwise built the multiply from four
     * shifts and three adds */
    __m256i spread = _mm256_set1_epi32(0x02040810);
    KEEP_ORDER(spread);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t b0 = 0; b0 < nb; b0 += 2) {
        const uint8_t *u = w + (size_t)(b0 / 2) * UNIT;
        for (int o = 0; o < UNIT; o += 64) _mm_prefetch((const char *)u + Q45_PF_BYTES + o, _MM_HINT_T0);
#pragma GCC unroll 2
        for (int e = 0; e < 2; e++) {
            const int64_t b = b0 + e;
            __m256i i0 = _mm256_setzero_si256(), i1 = i0, s0 = i0, s1 = i0, h0 = i0, h1 = i0;
            if (HIGH) {
                h0 = _mm256_load_si256((const __m256i *)(u + QH + e * 64));
                h1 = _mm256_load_si256((const __m256i *)(u + QH + e * 64 + 32));
            }
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++) {
                const int8_t *xq = x->q + b * 32 + 4 * q;
                const __m256i xa = bcast4(xq), xb = bcast4(xq + 16);
                const __m256i v0 = _mm256_load_si256((const __m256i *)(u + CODES + e * 256 + q * 64));
                const __m256i v1 = _mm256_load_si256((const __m256i *)(u + CODES + e * 256 + q * 64 + 32));
                __m256i l0 = _mm256_and_si256(v0, m4), g0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), m4);
                __m256i l1 = _mm256_and_si256(v1, m4), g1 = _mm256_and_si256(_mm256_srli_epi16(v1, 4), m4);
                if (HIGH) { /* elements 4q.. take bits 4q.., elements 16 + 4q.. bits 16 + 4q.. */
                    l0 = _mm256_or_si256(l0, q5_bits(h0, 4 * q, spread));
                    g0 = _mm256_or_si256(g0, q5_bits(h0, 16 + 4 * q, spread));
                    l1 = _mm256_or_si256(l1, q5_bits(h1, 4 * q, spread));
                    g1 = _mm256_or_si256(g1, q5_bits(h1, 16 + 4 * q, spread));
                }
                s0 = _mm256_add_epi16(s0, _mm256_add_epi16(_mm256_maddubs_epi16(l0, xa), _mm256_maddubs_epi16(g0, xb)));
                s1 = _mm256_add_epi16(s1, _mm256_add_epi16(_mm256_maddubs_epi16(l1, xa), _mm256_maddubs_epi16(g1, xb)));
                KEEP_ORDER(s0);
                KEEP_ORDER(s1);
                if (!HIGH && q < 3) continue; /* 4-bit codes: one widening a block */
                if (HIGH && q % 2 == 0) continue;
                i0 = _mm256_add_epi32(i0, _mm256_madd_epi16(s0, ones));
                i1 = _mm256_add_epi32(i1, _mm256_madd_epi16(s1, ones));
                s0 = s1 = _mm256_setzero_si256();
            }
            if (!MIN) { /* Q5_0: codes stored + 16, x->o = 16 x the block's code sum */
                const __m256i o = _mm256_set1_epi32(x->o[b]);
                i0 = _mm256_sub_epi32(i0, o);
                i1 = _mm256_sub_epi32(i1, o);
            }
            const __m256 dx = _mm256_set1_ps(x->d[b]);
            const __m256 dw0 = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(u + R16_PAIR_SCALES + 32 * e)));
            const __m256 dw1 = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(u + R16_PAIR_SCALES + 32 * e + 16)));
            acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0), _mm256_mul_ps(dw0, dx), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i1), _mm256_mul_ps(dw1, dx), acc1);
            if (MIN) { /* m times the block's value sum: x->o is the code sum (off 1) */
                const __m256 xs = _mm256_set1_ps(x->d[b] * (float)x->o[b]);
                acc0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_load_si128((const __m128i *)(u + 64 + 32 * e))), xs, acc0);
                acc1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_load_si128((const __m128i *)(u + 64 + 32 * e + 16))), xs, acc1);
            }
        }
    }
    store_half(acc0, d, 0, nr);
    store_half(acc1, d, 1, nr);
}

INLINE void r16_q4_1_one(int64_t nb, const uint8_t *w, const r16_x *x, float *d, int nr)
{
    r16_q45_one(nb, w, x, d, nr, 1, 0);
}

INLINE void r16_q5_0_one(int64_t nb, const uint8_t *w, const r16_x *x, float *d, int nr)
{
    r16_q45_one(nb, w, x, d, nr, 0, 1);
}

INLINE void r16_q5_1_one(int64_t nb, const uint8_t *w, const r16_x *x, float *d, int nr)
{
    r16_q45_one(nb, w, x, d, nr, 1, 1);
}

/* OFF: the activation layout's offset (r16_layout_x): 1 for the code sums
 * the mins need, 16 for Q5_0's stored + 16. */
#define Q45_ENTRIES(WT, OFF) \
    R16_PER_COLUMN_ENTRIES(WT, r16_x, 32, r16_layout_x((const block_q8_0 *)xc, k / 32, OFF, sc))

Q45_ENTRIES(q4_1, 1)
Q45_ENTRIES(q5_0, 16)
Q45_ENTRIES(q5_1, 1)

void cpu_kernels_init_repack_q45_avx2(cpu_kernels *k)
{
    k->gemv_r16[VKI_TYPE_Q4_1] = gemv_r16_q4_1;
    k->gemvn_r16[VKI_TYPE_Q4_1] = gemvn_r16_q4_1;
    k->gemv_r16[VKI_TYPE_Q5_0] = gemv_r16_q5_0;
    k->gemvn_r16[VKI_TYPE_Q5_0] = gemvn_r16_q5_0;
    k->gemv_r16[VKI_TYPE_Q5_1] = gemv_r16_q5_1;
    k->gemvn_r16[VKI_TYPE_Q5_1] = gemvn_r16_q5_1;
}
