/*
 * kquants_avx2.c: AVX2 dot products of K-quant weight blocks (Q2_K..Q6_K)
 * with Q8_K activations, the dot tiles (gemm) of those types: decode of
 * every K-quant file without an R16 layout (Q5_K_M, Q3_K_M, Q2_K, and the
 * Q6_K tensors of Q4_K_M files) runs them.
 *
 * maddubs takes the unsigned weight codes (at most 63) against signed
 * activations (|x| <= 127: at most 63 * 127 * 2 per int16 lane, no
 * saturation); madd applies the per-16/32 scales; offsets (Q2_K/Q4_K/Q5_K
 * mins, Q3_K's -4, Q6_K's -32) come from the Q8_K block sums. Scales and
 * mins are unpacked as vectors: the per-sub-block scalar unpacking these
 * dots began with cost as much as the products (one thread, Q5_K, 12 GB/s
 * whether the weights sat in L2 or in DRAM).
 */
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#include "cpu.h"
#include "kquants.h"
#include "load_avx2.h"
#include "tile.h"

/* [s_a x 8 | s_b x 8] from eight int16 scales held in both lanes of v:
 * the vpshufb index of scale pair i (a = 2i low lane, b = 2i + 1 high). */
static const int8_t pair_idx[4][32] = {
#define PI(a, b) a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, \
                 b, b + 1, b, b + 1, b, b + 1, b, b + 1, b, b + 1, b, b + 1, b, b + 1, b, b + 1
    {PI(0, 2)}, {PI(4, 6)}, {PI(8, 10)}, {PI(12, 14)}
#undef PI
};

INLINE __m256i scale_pair(__m256i v, int i)
{
    return _mm256_shuffle_epi8(v, _mm256_loadu_si256((const __m256i *)pair_idx[i]));
}

/* Scale s of the eight in both lanes of v, in every int16 lane. */
static const int8_t one_idx[8][32] = {
#define OI(a) a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, \
              a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1, a, a + 1
    {OI(0)}, {OI(2)}, {OI(4)}, {OI(6)}, {OI(8)}, {OI(10)}, {OI(12)}, {OI(14)}
#undef OI
};

INLINE __m256i scale_one(__m256i v, int s)
{
    return _mm256_shuffle_epi8(v, _mm256_loadu_si256((const __m256i *)one_idx[s]));
}

/* The eight int16 sums of adjacent Q8_K bsums: sub-blocks of 32. */
INLINE __m128i bsum_pairs(const block_q8_K *x)
{
    return _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)x->bsums), _mm_loadu_si128((const __m128i *)(x->bsums + 8)));
}

/* sum over 16 sub-blocks of v[s] * bsums[s] as four int32 lanes; v: 16 int16. */
INLINE __m128i bsum_dot16(__m256i v, const block_q8_K *x)
{
    __m256i p = _mm256_madd_epi16(v, _mm256_loadu_si256((const __m256i *)x->bsums));
    return _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
}

/* Decode streams each weight row once: prefetching four blocks ahead (into
 * the next row at a row's end) took Q5_K, two threads, 4096 x 16384 from
 * 19-22 to 23-27 GB/s. */
INLINE void prefetch_ahead(const void *blk, size_t bs)
{
    for (size_t o = 0; o < bs; o += 64) _mm_prefetch((const char *)blk + 4 * bs + o, _MM_HINT_T0);
}

INLINE float hsum4(__m128 v)
{
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    return _mm_cvtss_f32(_mm_add_ss(v, _mm_movehdup_ps(v)));
}

/* ===== Q4_K, Q5_K ====================================================== */

/* The eight 6-bit scales and mins of a Q4_K/Q5_K block (kquants.h:
 * kq_scale_min_k4) word by word: sub-blocks 0-3 keep their low six bits in
 * bytes 0-3 (scales) and 4-7 (mins); 4-7 take low nibbles from bytes 8-11
 * and their top two bits from the tops of bytes 0-3 and 4-7. */
INLINE void k4_scale_min(const uint8_t *q, __m128i *sc, __m128i *mn)
{
    uint32_t a, b, c;
    memcpy(&a, q, 4);
    memcpy(&b, q + 4, 4);
    memcpy(&c, q + 8, 4);
    const uint32_t m6 = 0x3f3f3f3fu, m4 = 0x0f0f0f0fu, m2 = 0x03030303u;
    uint64_t s = (uint64_t)(a & m6) | (uint64_t)((c & m4) | (((a >> 6) & m2) << 4)) << 32;
    uint64_t m = (uint64_t)(b & m6) | (uint64_t)(((c >> 4) & m4) | (((b >> 6) & m2) << 4)) << 32;
    *sc = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)s));
    *mn = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)m));
}

_Static_assert(offsetof(block_q4_K, d) == offsetof(block_q5_K, d) &&
                   offsetof(block_q4_K, dmin) == offsetof(block_q5_K, dmin) &&
                   offsetof(block_q4_K, scales) == offsetof(block_q5_K, scales),
               "Q4_K and Q5_K blocks lead with the same d, dmin and scales");

/* HIGH (Q5_K): each nibble gains a fifth bit from qh, bit 2j of qh[l] for
 * the low nibbles of 64-group j, 2j + 1 for the high ones. The two blocks
 * share d, dmin and scales at the same offsets. */
INLINE float dot_k4k5(int64_t k, const uint8_t *w, const block_q8_K *x, const int HIGH)
{
    const size_t bs = HIGH ? sizeof(block_q5_K) : sizeof(block_q4_K);
    const size_t qs_at = HIGH ? offsetof(block_q5_K, qs) : offsetof(block_q4_K, qs);
    __m256 acc = _mm256_setzero_ps();
    __m128 acc_m = _mm_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0F), b1 = _mm256_set1_epi8(1);
    for (int64_t b = 0; b < k / QK_K; b++, w += bs) {
        prefetch_ahead(w, bs);
        vki_half d, dmin;
        memcpy(&d, w + offsetof(block_q4_K, d), 2);
        memcpy(&dmin, w + offsetof(block_q4_K, dmin), 2);
        __m128i sc, mn;
        k4_scale_min(w + offsetof(block_q4_K, scales), &sc, &mn);
        __m128i summ = _mm_madd_epi16(mn, bsum_pairs(&x[b]));
        __m256i sv = _mm256_broadcastsi128_si256(sc);
        const uint8_t *qs = w + qs_at;
        __m256i hb = HIGH ? _mm256_loadu_si256((const __m256i *)(w + offsetof(block_q5_K, qh))) : _mm256_setzero_si256();
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
            __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            if (HIGH) {
                /* the shifted bit lands in bit 0 of its own byte; "& 1"
                 * drops what the 16-bit shift brought from the neighbour */
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(hb, b1), 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 1), b1), 4));
                hb = _mm256_srli_epi16(hb, 2);
            }
            __m256i x0 = _mm256_loadu_si256((const __m256i *)(x[b].qs + 64 * j));
            __m256i x1 = _mm256_loadu_si256((const __m256i *)(x[b].qs + 64 * j + 32));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(lo, x0), scale_one(sv, 2 * j)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(hi, x1), scale_one(sv, 2 * j + 1)));
        }
        float dx = x[b].d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dx * _cvtsh_ss(d)), _mm256_cvtepi32_ps(sumi), acc);
        acc_m = _mm_fmadd_ps(_mm_set1_ps(dx * _cvtsh_ss(dmin)), _mm_cvtepi32_ps(summ), acc_m);
    }
    return hsum8(acc) - hsum4(acc_m);
}

static float dot_q4_K(int64_t k, const block_q4_K *w, const block_q8_K *x)
{
    return dot_k4k5(k, (const uint8_t *)w, x, 0);
}

static float dot_q5_K(int64_t k, const block_q5_K *w, const block_q8_K *x)
{
    return dot_k4k5(k, (const uint8_t *)w, x, 1);
}

/* ===== Q2_K, Q3_K, Q6_K: sixteen sub-blocks of 16 =======================
 * One 32-byte code vector holds two sub-blocks (low 16 bytes, high 16), so
 * one madd applies both scales: scale_pair over the half's eight scales. */

/* Q2_K and Q3_K's plane j of a 32-byte qs run is (q >> 2j) & 3 per byte
 * (the 16-bit shift's spill from the neighbour byte lands above bit 1). */
static float dot_q2_K(int64_t k, const block_q2_K *w, const block_q8_K *x)
{
    __m256 acc = _mm256_setzero_ps();
    __m128 acc_m = _mm_setzero_ps();
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    for (int64_t b = 0; b < k / QK_K; b++) {
        prefetch_ahead(&w[b], sizeof w[b]);
        __m128i raw = _mm_loadu_si128((const __m128i *)w[b].scales);
        __m128i sc8 = _mm_and_si128(raw, m4), mn8 = _mm_and_si128(_mm_srli_epi16(raw, 4), m4);
        __m128i summ = bsum_dot16(_mm256_cvtepu8_epi16(mn8), &x[b]);
        __m256i sumi = _mm256_setzero_si256();
        for (int n = 0; n < 2; n++) {
            __m256i sv = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(n ? _mm_srli_si128(sc8, 8) : sc8));
            __m256i q = _mm256_loadu_si256((const __m256i *)(w[b].qs + 32 * n));
            for (int j = 0; j < 4; j++) {
                __m256i c = _mm256_and_si256(_mm256_srli_epi16(q, 2 * j), m3);
                __m256i xv = _mm256_loadu_si256((const __m256i *)(x[b].qs + 128 * n + 32 * j));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(c, xv), scale_pair(sv, j)));
            }
        }
        float dx = x[b].d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dx * _cvtsh_ss(w[b].d)), _mm256_cvtepi32_ps(sumi), acc);
        acc_m = _mm_fmadd_ps(_mm_set1_ps(dx * _cvtsh_ss(w[b].dmin)), _mm_cvtepi32_ps(summ), acc_m);
    }
    return hsum8(acc) - hsum4(acc_m);
}

/* Q3_K's sixteen signed 6-bit scales (kquants.h: kq_q3_K_scale) at once:
 * low nibbles of bytes 0-7 for sub-blocks 0-7, high nibbles for 8-15; the
 * top two bits of sub-block 4t + u at bit 2t of byte 8 + u. */
INLINE __m256i q3_scales(const uint8_t *q)
{
    uint64_t lo;
    uint32_t hi;
    memcpy(&lo, q, 8);
    memcpy(&hi, q + 8, 4);
    const uint64_t n4 = 0x0f0f0f0f0f0f0f0full;
    const uint32_t m2 = 0x03030303u;
    uint64_t h0 = (uint64_t)(hi & m2) | (uint64_t)((hi >> 2) & m2) << 32;
    uint64_t h1 = (uint64_t)((hi >> 4) & m2) | (uint64_t)((hi >> 6) & m2) << 32;
    __m128i s = _mm_set_epi64x((long long)(((lo >> 4) & n4) | h1 << 4), (long long)((lo & n4) | h0 << 4));
    return _mm256_sub_epi16(_mm256_cvtepu8_epi16(s), _mm256_set1_epi16(32));
}

/* Codes taken unsigned, plane | high bit << 2 (0..7); the stored form's -4
 * comes once per block through the activation sums. */
static float dot_q3_K(int64_t k, const block_q3_K *w, const block_q8_K *x)
{
    __m256 acc = _mm256_setzero_ps();
    __m128 acc_c = _mm_setzero_ps();
    const __m256i m3 = _mm256_set1_epi8(3), b1 = _mm256_set1_epi8(1);
    for (int64_t b = 0; b < k / QK_K; b++) {
        prefetch_ahead(&w[b], sizeof w[b]);
        __m256i sc = q3_scales(w[b].scales);
        __m128i corr = bsum_dot16(sc, &x[b]);
        __m256i hm = _mm256_loadu_si256((const __m256i *)w[b].hmask);
        __m256i sumi = _mm256_setzero_si256();
        for (int n = 0; n < 2; n++) {
            __m256i sv = n ? _mm256_permute2x128_si256(sc, sc, 0x11) : _mm256_permute2x128_si256(sc, sc, 0x00);
            __m256i q = _mm256_loadu_si256((const __m256i *)(w[b].qs + 32 * n));
            for (int j = 0; j < 4; j++) {
                __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * n + j), b1);
                __m256i c = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 2 * j), m3), _mm256_slli_epi16(hb, 2));
                __m256i xv = _mm256_loadu_si256((const __m256i *)(x[b].qs + 128 * n + 32 * j));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(c, xv), scale_pair(sv, j)));
            }
        }
        float dd = x[b].d * _cvtsh_ss(w[b].d);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dd), _mm256_cvtepi32_ps(sumi), acc);
        acc_c = _mm_fmadd_ps(_mm_set1_ps(dd * 4.0f), _mm_cvtepi32_ps(corr), acc_c);
    }
    return hsum8(acc) - hsum4(acc_c);
}

/* Q6_K: codes are 4 low bits from ql and 2 high from qh, stored +32. */
static float dot_q6_K(int64_t k, const block_q6_K *w, const block_q8_K *x)
{
    __m256 acc = _mm256_setzero_ps();
    __m128 acc_c = _mm_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3);
    for (int64_t b = 0; b < k / QK_K; b++) {
        prefetch_ahead(&w[b], sizeof w[b]);
        __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w[b].scales));
        __m128i corr = bsum_dot16(sc, &x[b]);
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w[b].ql + 64 * h, *qh = w[b].qh + 32 * h;
            const int8_t *xq = x[b].qs + 128 * h;
            __m256i sv = h ? _mm256_permute2x128_si256(sc, sc, 0x11) : _mm256_permute2x128_si256(sc, sc, 0x00);
            __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i hb = _mm256_loadu_si256((const __m256i *)qh);
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hb, m3), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m3), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m3), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m3), 4));
            for (int i = 0; i < 4; i++) {
                __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + 32 * i));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q[i], xv), scale_pair(sv, i)));
            }
        }
        float dd = x[b].d * _cvtsh_ss(w[b].d);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dd), _mm256_cvtepi32_ps(sumi), acc);
        acc_c = _mm_fmadd_ps(_mm_set1_ps(dd * 32.0f), _mm_cvtepi32_ps(corr), acc_c);
    }
    return hsum8(acc) - hsum4(acc_c);
}

GEMM_FROM_DOT(gemm_q2_K, block_q2_K, block_q8_K, dot_q2_K)
GEMM_FROM_DOT(gemm_q3_K, block_q3_K, block_q8_K, dot_q3_K)
GEMM_FROM_DOT(gemm_q4_K, block_q4_K, block_q8_K, dot_q4_K)
GEMM_FROM_DOT(gemm_q5_K, block_q5_K, block_q8_K, dot_q5_K)
GEMM_FROM_DOT(gemm_q6_K, block_q6_K, block_q8_K, dot_q6_K)

void cpu_kquants_init_avx2(cpu_kernels *k)
{
    k->gemm[VKI_TYPE_Q2_K] = gemm_q2_K;
    k->gemm[VKI_TYPE_Q3_K] = gemm_q3_K;
    k->gemm[VKI_TYPE_Q4_K] = gemm_q4_K;
    k->gemm[VKI_TYPE_Q5_K] = gemm_q5_K;
    k->gemm[VKI_TYPE_Q6_K] = gemm_q6_K;
}
