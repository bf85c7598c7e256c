/*
 * load_avx2.h: 8 floats from f32, f16 or bf16 storage and the horizontal
 * sum of a vector, and KEEP_ORDER, for the AVX2 kernel files (kernels_avx2.c,
 * act_avx2.c, attn_avx2.c, repack_avx2.c). Included only by *_avx2.c.
 */
#ifndef VKI_CPU_LOAD_AVX2_H
#define VKI_CPU_LOAD_AVX2_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#ifndef INLINE
#define INLINE static inline __attribute__((always_inline))
#endif

/* An empty asm that takes an accumulator in a register and may change it:
 * sums stay a chain. Integer adds reassociate, and GCC turned unrolled
 * chunk loops into add trees whose live products spilled to the stack:
 * Q4_K's one-column R16 mat-vec ran at 19 GB/s (one thread, 2048 x 2048
 * from L3) with them, 22-29 without; the integer mat-mat tile kept 26
 * int16 products in flight (13 spills a 32-element block). */
#define KEEP_ORDER(v) __asm__("" : "+x"(v))

INLINE float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Loads 8 weights of type WT as floats. */
INLINE __m256 load8_f32(const void *p, int64_t i) { return _mm256_loadu_ps((const float *)p + i); }
INLINE __m256 load8_f16(const void *p, int64_t i)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
}
INLINE __m256 load8_bf16(const void *p, int64_t i)
{
    __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
}

/* The R16 kernels' (repack_avx2.c, repack_k16_avx2.c) four activation
 * bytes in every 32-bit lane. */
INLINE __m256i bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* The eight rows of R16 half h (rows 8h .. 8h + 7) written to d, nr rows
 * of the group being real. */
INLINE void store_half(const __m256 acc, float *d, int h, int nr)
{
    int n = nr - 8 * h;
    if (n >= 8) {
        _mm256_storeu_ps(d + 8 * h, acc);
    } else if (n > 0) {
        float t[8];
        _mm256_storeu_ps(t, acc);
        memcpy(d + 8 * h, t, (size_t)n * sizeof(float));
    }
}

#endif
