/*
 * quant_avx2.c: the activation quantizers on AVX2, bit for bit with the
 * scalar cpu_quantize_q8_0 / cpu_quantize_q8_K (cpu.h's contract: a level
 * may only vectorise them). Decode runs one before each mat-vec on the
 * calling thread alone while the others wait, so the scalar loops cost more
 * than their share of a profile: the AVX-512 Q8_K one took a 1.1B Q4_K
 * decode from 83% to 93% of the memory bound.
 *
 * Same results because: the max drops NaN lanes as the scalar compare does
 * (vmaxps returns its second operand when the first is NaN), d and 1/d are
 * the same scalar expressions, vcvtps2dq rounds to nearest even under the
 * default MXCSR as the scalar's magic-number rounding does, and the codes
 * are within [-127, 127], where the saturating packs equal the casts.
 */
#include <immintrin.h>

#include "cpu.h"

/* The max of |x| over 8 k floats. */
static inline float abs_max8(const float *x, int k)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < 8 * k; i += 8) m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)), m);
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* 32 floats times id, rounded, as 32 int8 in order; the four int32 vectors in q. */
static inline __m256i codes32(const float *x, __m256 id, __m256i q[4])
{
    for (int i = 0; i < 4; i++) q[i] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * i), id));
    /* the packs work per 128-bit lane: put the dwords back in order after */
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static inline int32_t hsum_i32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

static void quantize_q8_0(const float *x, void *dst, int64_t n)
{
    block_q8_0 *y = dst;
    __m256i q[4];
    for (int64_t b = 0; b < n / QK8_0; b++, x += QK8_0) {
        float amax = abs_max8(x, 4);
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = vki_fp32_to_fp16(d);
        _mm256_storeu_si256((__m256i *)y[b].qs, codes32(x, _mm256_set1_ps(id), q));
    }
}

static void quantize_q8_K(const float *x, void *dst, int64_t n)
{
    block_q8_K *y = dst;
    const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
    __m256i q[4];
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        float amax = abs_max8(x, QK_K / 8);
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = d;
        const __m256 iv = _mm256_set1_ps(id);
        for (int g = 0; g < QK_K; g += 32) {
            __m256i c = codes32(x + g, iv, q);
            /* the scalar clamps to +-127 before the cast; the sums are of the clamped codes */
            c = _mm256_max_epi8(c, _mm256_set1_epi8(-127));
            _mm256_storeu_si256((__m256i *)(y[b].qs + g), c);
            for (int h = 0; h < 2; h++) {
                __m256i a = _mm256_min_epi32(_mm256_max_epi32(q[2 * h], lo), hi);
                __m256i e = _mm256_min_epi32(_mm256_max_epi32(q[2 * h + 1], lo), hi);
                y[b].bsums[g / 16 + h] = (int16_t)hsum_i32(_mm256_add_epi32(a, e));
            }
        }
    }
}

void cpu_quant_init_avx2(cpu_kernels *k)
{
    k->quantize_q8_0 = quantize_q8_0;
    k->quantize_q8_K = quantize_q8_K;
}
