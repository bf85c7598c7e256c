/*
 * repack_avx2.c: AVX2 mat-vecs over the R16 layout (repack.h) for Q4_0,
 * Q4_K, Q8_0, F32 and F16, the decode path of those repacked weights on CPUs
 * without AVX-512 VNNI.
 * The row-major AVX2 kernels were compute-bound far below memory speed
 * (2048 x 1024, one thread, from cache: Q4_0 10 GB/s, Q4_K 5 GB/s, against
 * 52 and 41 for the AVX-512 R16 kernels). A 64-byte R16 chunk is two
 * 256-bit halves, rows 0-7 and rows 8-15; each half is one lane per row, so
 * a block ends in one convert and one fma for eight rows. vpmaddubsw has no
 * int32 accumulator: the nibble products' int16 pair sums (at most
 * 2 x 15 x 127 = 3810) are added over a block's eight chunks in int16 (at
 * most 30480), then widened by one vpmaddwd. Q8_0 codes would overflow
 * that (255 x 127): see q8_pairs. A first R16 Q8_0 kernel that split each
 * code byte into nibbles against the same activation byte ran slower than
 * the row-major one (2048 x 5632, one thread, Zen 3: 24 GB/s against
 * 27.5), as many uops a weight byte and no fewer loads.
 */
#include <immintrin.h>
#include <string.h>

#include "cpu.h"
#include "load_avx2.h"
#include "repack.h"

#define INLINE static inline __attribute__((always_inline))

/* Prefetch distance in bytes of the weight stream, as repack_avx512.c. */
#define R16_PF_BYTES 2048
/* Q4_K's and Q5_K's (the kernels' UNIT): one whole unit ahead, so the next
 * unit's header (scales, mins, d) is asked for with its codes. Measured while the header was still at
 * the unit's end, where 2048 bytes reached it only as its own codes were
 * read: from memory (8192 x 16384, 2 threads) 1.9-2.1 ms against 2.5,
 * 1.1B decode 43.8-45.9 tok/s against 42.5-44.3 in five alternating
 * pairs (two units: slower than either). */
/* Activation columns per pass over a group: the int16 sums, the
 * accumulators and the activation pointers of two columns and one half
 * fit the 16 registers. */
#define R16_AVX2_COLS 2

/* The prefetch of a half pass, per unit u of `bytes` at group base w: the
 * first half streams `ahead` bytes on; the second reads the group from
 * cache, so it streams the same unit of the next group (nx), if any. */
INLINE void r16_half_prefetch(const uint8_t *u, const uint8_t *w, const uint8_t *nx, int h, int bytes, int ahead)
{
    if (h == 0)
        for (int o = 0; o < bytes; o += 64) _mm_prefetch((const char *)u + ahead + o, _MM_HINT_T0);
    else if (nx)
        for (int o = 0; o < bytes; o += 64) _mm_prefetch((const char *)nx + (u - w) + o, _MM_HINT_T0);
}

INLINE void r16_q4_0_half(const int C, int64_t nb, const uint8_t *w, const r16_x *x, float *d, size_t ds, int nr,
                          const int h, const uint8_t *nx)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    __m256 acc[R16_AVX2_COLS];
    for (int c = 0; c < C; c++) acc[c] = _mm256_setzero_ps();
    for (int64_t b0 = 0; b0 < nb; b0 += 2) {
        const uint8_t *u = w + (size_t)(b0 / 2) * 576;
        r16_half_prefetch(u, w, nx, h, 576, R16_PF_BYTES);
#pragma GCC unroll 2
        for (int e = 0; e < 2; e++) {
            const int64_t b = b0 + e;
            __m256i s16[R16_AVX2_COLS];
            for (int c = 0; c < C; c++) s16[c] = _mm256_setzero_si256();
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++) {
                __m256i v = _mm256_load_si256((const __m256i *)(u + R16_PAIR_CODES + e * 256 + q * 64 + 32 * h));
                __m256i vl = _mm256_and_si256(v, m4), vh = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                for (int c = 0; c < C; c++) {
                    const int8_t *xq = x[c].q + b * 32 + 4 * q;
                    s16[c] = _mm256_add_epi16(s16[c], _mm256_add_epi16(_mm256_maddubs_epi16(vl, bcast4(xq)),
                                                                       _mm256_maddubs_epi16(vh, bcast4(xq + 16))));
                    KEEP_ORDER(s16[c]);
                }
            }
            const __m256 dw = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(u + R16_PAIR_SCALES + 32 * e + 16 * h)));
            for (int c = 0; c < C; c++) {
                __m256i s = _mm256_sub_epi32(_mm256_madd_epi16(s16[c], ones), _mm256_set1_epi32(x[c].o[b]));
                acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_set1_ps(x[c].d[b])), acc[c]);
            }
        }
    }
    for (int c = 0; c < C; c++) store_half(acc[c], d + (size_t)c * ds, h, nr);
}

/* One activation column (decode of one sequence), both halves of every
 * chunk in one pass: a chunk's two broadcasts and its block's scales serve
 * all 16 rows, and the group streams once, with no second pass that asks
 * nothing of memory. Two columns would spill, so they keep the half
 * passes. Against those (with the next-group prefetch), alternating runs:
 * 1.1B Q4_0 decode median 34.2 tok/s against 30.4, 40M 7-13% faster. */
INLINE void r16_q4_0_one(int64_t nb, const uint8_t *w, const r16_x *x, float *d, int nr)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t b0 = 0; b0 < nb; b0 += 2) {
        const uint8_t *u = w + (size_t)(b0 / 2) * 576;
        for (int o = 0; o < 576; o += 64) _mm_prefetch((const char *)u + R16_PF_BYTES + o, _MM_HINT_T0);
#pragma GCC unroll 2
        for (int e = 0; e < 2; e++) {
            const int64_t b = b0 + e;
            __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++) {
                const int8_t *xq = x->q + b * 32 + 4 * q;
                const __m256i xa = bcast4(xq), xb = bcast4(xq + 16);
                __m256i v0 = _mm256_load_si256((const __m256i *)(u + R16_PAIR_CODES + e * 256 + q * 64));
                __m256i v1 = _mm256_load_si256((const __m256i *)(u + R16_PAIR_CODES + e * 256 + q * 64 + 32));
                s0 = _mm256_add_epi16(s0, _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_and_si256(v0, m4), xa),
                     _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v0, 4), m4), xb)));
                s1 = _mm256_add_epi16(s1, _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_and_si256(v1, m4), xa),
                     _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v1, 4), m4), xb)));
                KEEP_ORDER(s0);
                KEEP_ORDER(s1);
            }
            const __m256i o = _mm256_set1_epi32(x->o[b]);
            const __m256 dx = _mm256_set1_ps(x->d[b]);
            const __m256 dw0 = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(u + R16_PAIR_SCALES + 32 * e)));
            const __m256 dw1 = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(u + R16_PAIR_SCALES + 32 * e + 16)));
            acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_madd_epi16(s0, ones), o)),
                                   _mm256_mul_ps(dw0, dx), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_madd_epi16(s1, ones), o)),
                                   _mm256_mul_ps(dw1, dx), acc1);
        }
    }
    store_half(acc0, d, 0, nr);
    store_half(acc1, d, 1, nr);
}

/* Eight rows' sub-block scales as (s, s) int16 pairs, for vpmaddwd. */
INLINE __m256i q4k_scales(const uint8_t *p)
{
    __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
    return _mm256_or_si256(v, _mm256_slli_epi32(v, 16));
}

/* Q4_K for one column, both halves in one pass as r16_q4_0_one. 1.1B Q4_K
 * decode, four alternating pairs against the half passes: 26.6-33.0
 * tok/s against 22.9-31.8, each pair won.
 * HIGH (Q5_K): each code chunk's nibbles gain their fifth bit from the qh
 * plane (bit 2j, 2j + 1 of chunk qq's bytes), and 5-bit codes let only 4
 * steps of int16 pair sums add up (31 * 127 * 2 * 4 < 32767): the sums are
 * widened twice per sub-block pair. */
INLINE __m256i k5_high(__m256i qh, int bit)
{
    return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, bit), _mm256_set1_epi8(1)), 4);
}

INLINE void r16_k45_one(int64_t nb, const uint8_t *w, const r16_xk *x, float *d, int nr, const int HIGH)
{
    const int UNIT = HIGH ? R16_Q5K_UNIT : R16_Q4K_UNIT, CODES = HIGH ? R16_Q5K_CODES : R16_Q4K_CODES;
    const int STEPS = HIGH ? 4 : 8;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *u = w + (size_t)b * UNIT;
        /* A code line's prefetch goes with its load below; here only the
         * header's lines. All 37 lines at once, as before, queued up
         * behind the core's fill buffers: one thread, 2048 x 2048 from L3,
         * best of 60 runs 60.5-62.2 us against 67.8-69.7. */
        for (int o = 0; o < CODES; o += 64) _mm_prefetch((const char *)u + UNIT + o, _MM_HINT_T0);
        __m256i is0 = _mm256_setzero_si256(), is1 = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            const uint8_t *sc = u + R16_Q4K_SCALES + 32 * j;
#pragma GCC unroll 2
            for (int q0 = 0; q0 < 8; q0 += STEPS) {
                __m256i lo0 = _mm256_setzero_si256(), hi0 = lo0, lo1 = lo0, hi1 = lo0;
#pragma GCC unroll 8
                for (int qq = q0; qq < q0 + STEPS; qq++) {
                    const int8_t *xq = x->b[b].qs + 64 * j + 4 * qq;
                    const __m256i xa = bcast4(xq), xb = bcast4(xq + 32);
                    _mm_prefetch((const char *)u + UNIT + CODES + (8 * j + qq) * 64, _MM_HINT_T0);
                    /* half by half: Q5_K's high bits need the registers */
                    __m256i v0 = _mm256_load_si256((const __m256i *)(u + CODES + (8 * j + qq) * 64));
                    __m256i cl0 = _mm256_and_si256(v0, m4), ch0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), m4);
                    if (HIGH) {
                        __m256i h0 = _mm256_load_si256((const __m256i *)(u + R16_Q5K_QH + qq * 64));
                        cl0 = _mm256_or_si256(cl0, k5_high(h0, 2 * j));
                        ch0 = _mm256_or_si256(ch0, k5_high(h0, 2 * j + 1));
                    }
                    lo0 = _mm256_add_epi16(lo0, _mm256_maddubs_epi16(cl0, xa));
                    hi0 = _mm256_add_epi16(hi0, _mm256_maddubs_epi16(ch0, xb));
                    KEEP_ORDER(lo0);
                    KEEP_ORDER(hi0);
                    __m256i v1 = _mm256_load_si256((const __m256i *)(u + CODES + (8 * j + qq) * 64 + 32));
                    __m256i cl1 = _mm256_and_si256(v1, m4), ch1 = _mm256_and_si256(_mm256_srli_epi16(v1, 4), m4);
                    if (HIGH) {
                        __m256i h1 = _mm256_load_si256((const __m256i *)(u + R16_Q5K_QH + qq * 64 + 32));
                        cl1 = _mm256_or_si256(cl1, k5_high(h1, 2 * j));
                        ch1 = _mm256_or_si256(ch1, k5_high(h1, 2 * j + 1));
                    }
                    lo1 = _mm256_add_epi16(lo1, _mm256_maddubs_epi16(cl1, xa));
                    hi1 = _mm256_add_epi16(hi1, _mm256_maddubs_epi16(ch1, xb));
                    KEEP_ORDER(lo1);
                    KEEP_ORDER(hi1);
                }
                is0 = _mm256_add_epi32(is0, _mm256_add_epi32(_mm256_madd_epi16(lo0, q4k_scales(sc)),
                                                             _mm256_madd_epi16(hi0, q4k_scales(sc + 16))));
                is1 = _mm256_add_epi32(is1, _mm256_add_epi32(_mm256_madd_epi16(lo1, q4k_scales(sc + 8)),
                                                             _mm256_madd_epi16(hi1, q4k_scales(sc + 24))));
            }
        }
        __m256i sm0 = _mm256_setzero_si256(), sm1 = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            const __m256i pb = _mm256_set1_epi32(x->pb[4 * b + t]);
            const __m128i *mn = (const __m128i *)(u + R16_Q4K_MINS + 32 * t);
            sm0 = _mm256_add_epi32(sm0, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_load_si128(mn)), pb));
            sm1 = _mm256_add_epi32(sm1, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_load_si128(mn + 1)), pb));
        }
        const __m256 dx = _mm256_set1_ps(x->b[b].d);
        const __m256 dw0 = _mm256_mul_ps(_mm256_cvtph_ps(_mm_load_si128((const __m128i *)(u + R16_Q4K_D))), dx);
        const __m256 dw1 = _mm256_mul_ps(_mm256_cvtph_ps(_mm_load_si128((const __m128i *)(u + R16_Q4K_D + 16))), dx);
        const __m256 dm0 = _mm256_mul_ps(_mm256_cvtph_ps(_mm_load_si128((const __m128i *)(u + R16_Q4K_DMIN))), dx);
        const __m256 dm1 = _mm256_mul_ps(_mm256_cvtph_ps(_mm_load_si128((const __m128i *)(u + R16_Q4K_DMIN + 16))), dx);
        acc0 = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(sm0), dm0, _mm256_fmadd_ps(_mm256_cvtepi32_ps(is0), dw0, acc0));
        acc1 = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(sm1), dm1, _mm256_fmadd_ps(_mm256_cvtepi32_ps(is1), dw1, acc1));
    }
    store_half(acc0, d, 0, nr);
    store_half(acc1, d, 1, nr);
}

INLINE void r16_q4_K_one(int64_t nb, const uint8_t *w, const r16_xk *x, float *d, int nr)
{
    r16_k45_one(nb, w, x, d, nr, 0);
}

INLINE void r16_q5_K_one(int64_t nb, const uint8_t *w, const r16_xk *x, float *d, int nr)
{
    r16_k45_one(nb, w, x, d, nr, 1);
}

/* Q4_K against Q8_K: per sub-block pair the low and high nibbles' int16
 * sums, widened and scaled at once by vpmaddwd with the rows' scales in
 * both int16 halves; the mins against the activation's sub-block sums in
 * four more vpmaddwd. HIGH (Q5_K) as in r16_k45_one. */
INLINE void r16_k45_half(const int C, int64_t nb, const uint8_t *w, const r16_xk *x, float *d, size_t ds, int nr,
                         const int h, const uint8_t *nx, const int HIGH)
{
    const int UNIT = HIGH ? R16_Q5K_UNIT : R16_Q4K_UNIT, CODES = HIGH ? R16_Q5K_CODES : R16_Q4K_CODES;
    const int STEPS = HIGH ? 4 : 8;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc[R16_AVX2_COLS];
    for (int c = 0; c < C; c++) acc[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *u = w + (size_t)b * UNIT;
        r16_half_prefetch(u, w, nx, h, UNIT, UNIT);
        __m256i isum[R16_AVX2_COLS], summ[R16_AVX2_COLS];
        for (int c = 0; c < C; c++) isum[c] = summ[c] = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            const uint8_t *sc = u + R16_Q4K_SCALES + 32 * j + 8 * h;
#pragma GCC unroll 2
            for (int q0 = 0; q0 < 8; q0 += STEPS) {
                __m256i lo[R16_AVX2_COLS], hi[R16_AVX2_COLS];
                for (int c = 0; c < C; c++) lo[c] = hi[c] = _mm256_setzero_si256();
#pragma GCC unroll 8
                for (int qq = q0; qq < q0 + STEPS; qq++) {
                    __m256i v = _mm256_load_si256((const __m256i *)(u + CODES + (8 * j + qq) * 64 + 32 * h));
                    __m256i vl = _mm256_and_si256(v, m4), vh = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                    if (HIGH) {
                        __m256i hb = _mm256_load_si256((const __m256i *)(u + R16_Q5K_QH + qq * 64 + 32 * h));
                        vl = _mm256_or_si256(vl, k5_high(hb, 2 * j));
                        vh = _mm256_or_si256(vh, k5_high(hb, 2 * j + 1));
                    }
                    for (int c = 0; c < C; c++) {
                        const int8_t *xq = x[c].b[b].qs + 64 * j + 4 * qq;
                        lo[c] = _mm256_add_epi16(lo[c], _mm256_maddubs_epi16(vl, bcast4(xq)));
                        hi[c] = _mm256_add_epi16(hi[c], _mm256_maddubs_epi16(vh, bcast4(xq + 32)));
                        KEEP_ORDER(lo[c]);
                        KEEP_ORDER(hi[c]);
                    }
                }
                const __m256i sl = q4k_scales(sc), sh = q4k_scales(sc + 16);
                for (int c = 0; c < C; c++)
                    isum[c] = _mm256_add_epi32(isum[c], _mm256_add_epi32(_mm256_madd_epi16(lo[c], sl), _mm256_madd_epi16(hi[c], sh)));
            }
        }
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            const __m256i mn = _mm256_cvtepu8_epi16(_mm_load_si128((const __m128i *)(u + R16_Q4K_MINS + 32 * t + 16 * h)));
            for (int c = 0; c < C; c++)
                summ[c] = _mm256_add_epi32(summ[c], _mm256_madd_epi16(mn, _mm256_set1_epi32(x[c].pb[4 * b + t])));
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(u + R16_Q4K_D + 16 * h)));
        const __m256 dm = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(u + R16_Q4K_DMIN + 16 * h)));
        for (int c = 0; c < C; c++) {
            __m256 dx = _mm256_set1_ps(x[c].b[b].d);
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), _mm256_mul_ps(dw, dx), acc[c]);
            acc[c] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(summ[c]), _mm256_mul_ps(dm, dx), acc[c]);
        }
    }
    for (int c = 0; c < C; c++) store_half(acc[c], d + (size_t)c * ds, h, nr);
}

INLINE void r16_q4_K_half(const int C, int64_t nb, const uint8_t *w, const r16_xk *x, float *d, size_t ds, int nr,
                          const int h, const uint8_t *nx)
{
    r16_k45_half(C, nb, w, x, d, ds, nr, h, nx, 0);
}

INLINE void r16_q5_K_half(const int C, int64_t nb, const uint8_t *w, const r16_xk *x, float *d, size_t ds, int nr,
                          const int h, const uint8_t *nx)
{
    r16_k45_half(C, nb, w, x, d, ds, nr, h, nx, 1);
}

/* Q8_0: the stored codes are w + 128 (for vpdpbusd), which vpmaddubsw
 * cannot take (255 x 127 twice overflows int16). An xor with 0x80 gives w
 * back; |w| against x with w's sign (vpabsb, vpsignb) makes the unsigned x
 * signed product pairs, at most 2 x 128 x 127, and a vpmaddwd per chunk
 * widens them. The activation offset is 0 (r16_layout_x with off 0).
 * Against the row-major kernel: one thread, 2048 x 2048 from L3, best of
 * 60 runs 95-97 us against 151; 40M Q8_0 decode (2 threads), three
 * alternating pairs, each won: 708-794 tok/s against 532-720. Where
 * memory is the limit (1.1B, or 8192 x 8192 from memory) no change. */
INLINE __m256i q8_pairs(__m256i v, __m256i xb)
{
    const __m256i w = _mm256_xor_si256(v, _mm256_set1_epi8((char)0x80));
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(xb, w)), _mm256_set1_epi16(1));
}

INLINE void r16_q8_0_one(int64_t nb, const uint8_t *w, const r16_x *x, float *d, int nr)
{
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t b0 = 0; b0 < nb; b0 += 2) {
        const uint8_t *u = w + (size_t)(b0 / 2) * 1088;
        _mm_prefetch((const char *)u + R16_PF_BYTES + R16_PAIR_SCALES, _MM_HINT_T0);
#pragma GCC unroll 2
        for (int e = 0; e < 2; e++) {
            const int64_t b = b0 + e;
            __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
#pragma GCC unroll 8
            for (int q = 0; q < 8; q++) {
                _mm_prefetch((const char *)u + R16_PF_BYTES + R16_PAIR_CODES + e * 512 + q * 64, _MM_HINT_T0);
                const __m256i xb = bcast4(x->q + b * 32 + 4 * q);
                s0 = _mm256_add_epi32(s0, q8_pairs(_mm256_load_si256((const __m256i *)(u + R16_PAIR_CODES + e * 512 + q * 64)), xb));
                s1 = _mm256_add_epi32(s1, q8_pairs(_mm256_load_si256((const __m256i *)(u + R16_PAIR_CODES + e * 512 + q * 64 + 32)), xb));
                KEEP_ORDER(s0);
                KEEP_ORDER(s1);
            }
            const __m256 dx = _mm256_set1_ps(x->d[b]);
            const __m256 dw0 = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(u + R16_PAIR_SCALES + 32 * e)));
            const __m256 dw1 = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(u + R16_PAIR_SCALES + 32 * e + 16)));
            acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), _mm256_mul_ps(dw0, dx), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), _mm256_mul_ps(dw1, dx), acc1);
        }
    }
    store_half(acc0, d, 0, nr);
    store_half(acc1, d, 1, nr);
}

INLINE void r16_q8_0_half(const int C, int64_t nb, const uint8_t *w, const r16_x *x, float *d, size_t ds, int nr,
                          const int h, const uint8_t *nx)
{
    __m256 acc[R16_AVX2_COLS];
    for (int c = 0; c < C; c++) acc[c] = _mm256_setzero_ps();
    for (int64_t b0 = 0; b0 < nb; b0 += 2) {
        const uint8_t *u = w + (size_t)(b0 / 2) * 1088;
        r16_half_prefetch(u, w, nx, h, 1088, R16_PF_BYTES);
#pragma GCC unroll 2
        for (int e = 0; e < 2; e++) {
            const int64_t b = b0 + e;
            __m256i s[R16_AVX2_COLS];
            for (int c = 0; c < C; c++) s[c] = _mm256_setzero_si256();
#pragma GCC unroll 8
            for (int q = 0; q < 8; q++) {
                const __m256i v = _mm256_load_si256((const __m256i *)(u + R16_PAIR_CODES + e * 512 + q * 64 + 32 * h));
                for (int c = 0; c < C; c++) {
                    s[c] = _mm256_add_epi32(s[c], q8_pairs(v, bcast4(x[c].q + b * 32 + 4 * q)));
                    KEEP_ORDER(s[c]);
                }
            }
            const __m256 dw = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(u + R16_PAIR_SCALES + 32 * e + 16 * h)));
            for (int c = 0; c < C; c++)
                acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[c]), _mm256_mul_ps(dw, _mm256_set1_ps(x[c].d[b])), acc[c]);
        }
    }
    for (int c = 0; c < C; c++) store_half(acc[c], d + (size_t)c * ds, h, nr);
}

/* Every group against ncols activation rows, two columns and one half at
 * a time (a last odd column in one pass, r16_*_one); the second half and later columns read the group from L1/L2
 * (a group is tens of KB), so memory sees each weight once. That pass
 * asks nothing of memory itself, so the last one over a group prefetches
 * the next group (nx): the stream no longer pauses for half of each
 * group's compute. 1.1B Q4_0 decode, six alternating runs: median 35.1
 * tok/s against 31.4 without; Q4_K unchanged (30.3 against 30.2). */
#define R16_ENTRIES(WT, XT, BS, LAYOUT)                                                                     \
    static void r16_rows_##WT(int64_t nb, const uint8_t *w, size_t ws, int64_t nrows, const XT *x, int ncols, \
                              float *d, size_t ds)                                                         \
    {                                                                                                      \
        for (int64_t r = 0; r < nrows; r += R16_ROWS) {                                                    \
            const uint8_t *g = w + (size_t)(r / R16_ROWS) * ws;                                            \
            int nr = (int)(nrows - r < R16_ROWS ? nrows - r : R16_ROWS);                                   \
            for (int c0 = 0; c0 < ncols; c0 += R16_AVX2_COLS) {                                            \
                float *dc = d + (size_t)c0 * ds + r;                                                       \
                /* the last pass over a group streams in the next one */                                \
                const uint8_t *nx = c0 + R16_AVX2_COLS >= ncols && r + R16_ROWS < nrows ? g + ws : NULL;   \
                if (ncols - c0 == 1) { /* a lone column: both halves in one pass */                       \
                    r16_##WT##_one(nb, g, x + c0, dc, nr);                                                 \
                    continue;                                                                              \
                }                                                                                          \
                for (int h = 0; h < (nr > 8 ? 2 : 1); h++) r16_##WT##_half(2, nb, g, x + c0, dc, ds, nr, h, nx); \
            }                                                                                              \
        }                                                                                                  \
    }                                                                                                      \
    static void gemv_r16_##WT(int64_t k, const void *w, size_t ws, int64_t nrows, const void *xv, float *d, \
                              void *scratch)                                                               \
    {                                                                                                      \
        const void *x = xv;                                                                                \
        XT xl = LAYOUT;                                                                                    \
        r16_rows_##WT(k / BS, w, ws, nrows, &xl, 1, d, 0);                                                 \
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

R16_ENTRIES(q4_0, r16_x, 32, r16_layout_x(x, k / 32, 8, scratch))
R16_ENTRIES(q4_K, r16_xk, 256, r16_layout_xk(x, k / 256, scratch))
R16_ENTRIES(q5_K, r16_xk, 256, r16_layout_xk(x, k / 256, scratch))
R16_ENTRIES(q8_0, r16_x, 32, r16_layout_x(x, k / 32, 0, scratch))

/* ===== F32 and F16 ========================================================
 * A group is [k][16] values: per element, two loads (F16: widened by
 * vcvtph2ps) cover the 16 rows and one broadcast of the activation feeds
 * both fmas, four columns at a time (8 accumulators), no horizontal sums.
 * One column alone splits k into even and odd elements so four fma chains
 * hide the latency. */

#define R16_F_COLS 4

/* Rows 8h .. 8h + 7 of element i of a group. */
INLINE __m256 r16_ld(const void *g, int64_t i, int h, const bool F16)
{
    if (F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)g + i * R16_ROWS + 8 * h)));
    return _mm256_loadu_ps((const float *)g + i * R16_ROWS + 8 * h);
}

INLINE void r16_fl_cols(int64_t k, const void *g, const float *const *x, int C, float *d, size_t ds, int nr,
                        const bool F16)
{
    const size_t es = F16 ? 2 : 4;
    __m256 a0[R16_F_COLS], a1[R16_F_COLS];
    for (int c = 0; c < R16_F_COLS; c++) a0[c] = a1[c] = _mm256_setzero_ps();
    for (int64_t i = 0; i < k; i++) {
        /* one prefetch a 64-byte line: an F32 element column is one, an F16 one half */
        if ((i & (F16 ? 1 : 0)) == 0)
            _mm_prefetch((const char *)g + (size_t)i * R16_ROWS * es + R16_PF_BYTES, _MM_HINT_T0);
        __m256 w0 = r16_ld(g, i, 0, F16), w1 = r16_ld(g, i, 1, F16);
#pragma GCC unroll 4
        for (int c = 0; c < R16_F_COLS; c++) {
            if (c >= C) break;
            __m256 xb = _mm256_broadcast_ss(x[c] + i);
            a0[c] = _mm256_fmadd_ps(w0, xb, a0[c]);
            a1[c] = _mm256_fmadd_ps(w1, xb, a1[c]);
        }
    }
    for (int c = 0; c < C; c++) {
        store_half(a0[c], d + (size_t)c * ds, 0, nr);
        store_half(a1[c], d + (size_t)c * ds, 1, nr);
    }
}

INLINE void r16_fl_one(int64_t k, const void *g, const float *x, float *d, int nr, const bool F16)
{
    const size_t es = F16 ? 2 : 4;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 2 <= k; i += 2) {
        /* F16 only: on F32 (4 loads a 128 bytes) the hardware prefetcher
         * alone streams faster. Zen 3, 40M F32 decode, four alternating
         * rounds: 172-198 tok/s without, 150-166 with a prefetch every line,
         * 127-159 every other line. F16 (half the bytes an fma) and the
         * multi-column loop keep theirs: dropping them cost 5-20%. */
        if (F16) _mm_prefetch((const char *)g + (size_t)i * R16_ROWS * es + R16_PF_BYTES, _MM_HINT_T0);
        __m256 x0 = _mm256_broadcast_ss(x + i), x1 = _mm256_broadcast_ss(x + i + 1);
        a0 = _mm256_fmadd_ps(r16_ld(g, i, 0, F16), x0, a0);
        a1 = _mm256_fmadd_ps(r16_ld(g, i, 1, F16), x0, a1);
        b0 = _mm256_fmadd_ps(r16_ld(g, i + 1, 0, F16), x1, b0);
        b1 = _mm256_fmadd_ps(r16_ld(g, i + 1, 1, F16), x1, b1);
    }
    if (i < k) {
        __m256 x0 = _mm256_broadcast_ss(x + i);
        a0 = _mm256_fmadd_ps(r16_ld(g, i, 0, F16), x0, a0);
        a1 = _mm256_fmadd_ps(r16_ld(g, i, 1, F16), x0, a1);
    }
    store_half(_mm256_add_ps(a0, b0), d, 0, nr);
    store_half(_mm256_add_ps(a1, b1), d, 1, nr);
}

INLINE void r16_fl_rows(int64_t k, const void *w, size_t ws, int64_t nrows, const void *xv, size_t xs, int ncols,
                        float *d, size_t ds, const bool F16)
{
    for (int64_t r = 0; r < nrows; r += R16_ROWS) {
        const void *g = (const uint8_t *)w + (size_t)(r / R16_ROWS) * ws;
        int nr = (int)(nrows - r < R16_ROWS ? nrows - r : R16_ROWS);
        for (int c0 = 0; c0 < ncols; c0 += R16_F_COLS) {
            const float *x[R16_F_COLS];
            int C = ncols - c0 < R16_F_COLS ? ncols - c0 : R16_F_COLS;
            for (int c = 0; c < C; c++) x[c] = (const float *)((const uint8_t *)xv + (size_t)(c0 + c) * xs);
            if (C == 1) r16_fl_one(k, g, x[0], d + (size_t)c0 * ds + r, nr, F16);
            else r16_fl_cols(k, g, x, C, d + (size_t)c0 * ds + r, ds, nr, F16);
        }
    }
}

/* The gemv / gemvn entry points of a float type (no activation layout:
 * the rows are read as they are). */
#define R16_FL_ENTRIES(WT, F16)                                                                             \
    static void gemvn_r16_##WT(int64_t k, const void *w, size_t ws, int64_t nrows, const void *x, size_t xs, \
                               int ncols, float *d, size_t ds, void *scratch)                              \
    {                                                                                                      \
        (void)scratch;                                                                                     \
        r16_fl_rows(k, w, ws, nrows, x, xs, ncols, d, ds, F16);                                            \
    }                                                                                                      \
    static void gemv_r16_##WT(int64_t k, const void *w, size_t ws, int64_t nrows, const void *x, float *d,  \
                              void *scratch)                                                               \
    {                                                                                                      \
        (void)scratch;                                                                                     \
        r16_fl_rows(k, w, ws, nrows, x, 0, 1, d, 0, F16);                                                  \
    }

R16_FL_ENTRIES(f32, false)
R16_FL_ENTRIES(f16, true)

/* An F16 group widened to the packed mat-mat's [k][16] f32 panel: one
 * contiguous pass. */
static void mm_panel_r16(int64_t k, const void *group, float *dst)
{
    const uint16_t *h = group;
    for (int64_t i = 0; i < k * R16_ROWS; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
}

void cpu_kernels_init_repack_avx2(cpu_kernels *k)
{
    k->gemv_r16[VKI_TYPE_F32] = gemv_r16_f32;
    k->gemvn_r16[VKI_TYPE_F32] = gemvn_r16_f32;
    k->gemv_r16[VKI_TYPE_F16] = gemv_r16_f16;
    k->gemvn_r16[VKI_TYPE_F16] = gemvn_r16_f16;
    k->mm_panel_r16 = mm_panel_r16;
    k->gemv_r16[VKI_TYPE_Q4_0] = gemv_r16_q4_0;
    k->gemvn_r16[VKI_TYPE_Q4_0] = gemvn_r16_q4_0;
    k->gemv_r16[VKI_TYPE_Q4_K] = gemv_r16_q4_K;
    k->gemvn_r16[VKI_TYPE_Q4_K] = gemvn_r16_q4_K;
    k->gemv_r16[VKI_TYPE_Q5_K] = gemv_r16_q5_K;
    k->gemvn_r16[VKI_TYPE_Q5_K] = gemvn_r16_q5_K;
    k->gemv_r16[VKI_TYPE_Q8_0] = gemv_r16_q8_0;
    k->gemvn_r16[VKI_TYPE_Q8_0] = gemvn_r16_q8_0;
    cpu_kernels_init_repack_k16_avx2(k);
    cpu_kernels_init_repack_q45_avx2(k);
}
