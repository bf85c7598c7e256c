/*
 * kernels_avx512.c: AVX-512 kernels (F/BW/VL/DQ; the int8 kernels, which use
 * vpdpbusd, only when CPUID reports VNNI). The table starts from the AVX2
 * one, so anything not set here (K-quant gemm tiles, every int8 kernel on
 * a CPU without VNNI) runs the AVX2 code. Sections: float tiles, VNNI
 * tiles and mat-vecs, packed f32 and integer mat-mat, attention helpers,
 * the activation quantizer (the exp-based helpers are in act_avx512.c).
 */
#include <immintrin.h>
#include <string.h>

#include "cpu.h"
#include "loader/types.h"
#include "load_avx512.h"
#include "tile.h"


#define FLOAT_TILE(WT)                                                                            \
    INLINE void tile_##WT(int64_t k, const uint8_t *w, size_t ws, const uint8_t *x, size_t xs,    \
                          float *d, size_t ds, const int RM, const int RN)                        \
    {                                                                                             \
        __m512 acc[4][4];                                                                         \
        for (int r = 0; r < RM; r++)                                                              \
            for (int c = 0; c < RN; c++) acc[r][c] = _mm512_setzero_ps();                         \
        int64_t i = 0;                                                                            \
        for (; i + 16 <= k; i += 16) {                                                            \
            __m512 xv[4];                                                                         \
            for (int c = 0; c < RN; c++) xv[c] = _mm512_loadu_ps((const float *)(x + c * xs) + i); \
            for (int r = 0; r < RM; r++) {                                                        \
                __m512 wv = load16_##WT(w + r * ws, i);                                           \
                for (int c = 0; c < RN; c++) acc[r][c] = _mm512_fmadd_ps(wv, xv[c], acc[r][c]);   \
            }                                                                                     \
        }                                                                                         \
        if (i < k) {                                                                              \
            __mmask16 m = (__mmask16)((1u << (k - i)) - 1);                                       \
            __m512 xv[4];                                                                         \
            for (int c = 0; c < RN; c++) xv[c] = loadm_f32(x + c * xs, i, m);                     \
            for (int r = 0; r < RM; r++) {                                                        \
                __m512 wv = loadm_##WT(w + r * ws, i, m);                                         \
                for (int c = 0; c < RN; c++) acc[r][c] = _mm512_fmadd_ps(wv, xv[c], acc[r][c]);   \
            }                                                                                     \
        }                                                                                         \
        for (int r = 0; r < RM; r++)                                                              \
            for (int c = 0; c < RN; c++) d[c * ds + r] = _mm512_reduce_add_ps(acc[r][c]);         \
    }

FLOAT_TILE(f32)
FLOAT_TILE(f16)
FLOAT_TILE(bf16)

GEMM_ENTRY(f32)
GEMM_ENTRY(f16)
GEMM_ENTRY(bf16)

/* ===== VNNI int8 tiles =================================================== */

INLINE __m256i unpack_q8_0(const block_q8_0 *b) { return _mm256_loadu_si256((const __m256i *)b->qs); }
INLINE __m256i unpack_q4_0(const block_q4_0 *b)
{
    __m128i q = _mm_loadu_si128((const __m128i *)b->qs);
    __m256i v = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
    v = _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
    return _mm256_sub_epi8(v, _mm256_set1_epi8(8));
}

/* vpdpbusd multiplies unsigned by signed bytes: move w's sign onto x. */
#define INT8_TILE(WT, WBLOCK)                                                                   \
    INLINE void tile_##WT(int64_t k, const uint8_t *w, size_t ws, const uint8_t *x, size_t xs,  \
                          float *d, size_t ds, const int RM, const int RN)                      \
    {                                                                                           \
        __m256 acc[4][4];                                                                       \
        for (int r = 0; r < RM; r++)                                                            \
            for (int c = 0; c < RN; c++) acc[r][c] = _mm256_setzero_ps();                       \
        for (int64_t b = 0; b < k / 32; b++) {                                                  \
            __m256i xq[4];                                                                      \
            float xd[4];                                                                        \
            for (int c = 0; c < RN; c++) {                                                      \
                const block_q8_0 *xb = (const block_q8_0 *)(x + c * xs) + b;                    \
                xq[c] = _mm256_loadu_si256((const __m256i *)xb->qs);                            \
                xd[c] = _cvtsh_ss(xb->d);                                                       \
            }                                                                                   \
            for (int r = 0; r < RM; r++) {                                                      \
                const WBLOCK *wb = (const WBLOCK *)(w + r * ws) + b;                            \
                __m256i wq = unpack_##WT(wb);                                                   \
                __m256i aw = _mm256_sign_epi8(wq, wq);                                          \
                float wd = _cvtsh_ss(wb->d);                                                    \
                for (int c = 0; c < RN; c++) {                                                  \
                    __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw,                 \
                                                    _mm256_sign_epi8(xq[c], wq));               \
                    acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(wd * xd[c]), _mm256_cvtepi32_ps(p), acc[r][c]); \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
        for (int r = 0; r < RM; r++)                                                            \
            for (int c = 0; c < RN; c++) {                                                      \
                __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc[r][c]), _mm256_extractf128_ps(acc[r][c], 1)); \
                s = _mm_add_ps(s, _mm_movehl_ps(s, s));                                         \
                s = _mm_add_ss(s, _mm_movehdup_ps(s));                                          \
                d[c * ds + r] = _mm_cvtss_f32(s);                                               \
            }                                                                                   \
    }

INT8_TILE(q8_0, block_q8_0)
INT8_TILE(q4_0, block_q4_0)
GEMM_ENTRY(q8_0)
GEMM_ENTRY(q4_0)


/* ===== VNNI mat-vec (Q8_0 / Q4_0) ========================================
 * Decode reads every weight once, so the kernel must retire a 32-weight
 * block in about a cycle to keep up with memory. Two blocks share one zmm
 * vpdpbusd; weights enter as unsigned bytes (Q8_0 codes + 128, Q4_0 raw
 * nibbles) against signed activations, and the offset (128 or 8 times the
 * block's activation sum) is taken off once per 16 blocks in float. Weight
 * scales for 16 blocks come in with one gather. The activation row is
 * re-laid out once per call: codes contiguous (Q4_0: in nibble order),
 * scales and offset terms as floats, zero-padded to 16 blocks. */

#define P8(a, b) a, a, a, a, a, a, a, a, b, b, b, b, b, b, b, b
#define P4(a, b) a, a, a, a, b, b, b, b, a, a, a, a, b, b, b, b
/* Lane -> block-within-pair of the scale vector, for pair p of a group. */
static const int32_t gv_perm_q8[8][16] __attribute__((aligned(64))) = {
    {P8(0, 1)}, {P8(2, 3)}, {P8(4, 5)}, {P8(6, 7)}, {P8(8, 9)}, {P8(10, 11)}, {P8(12, 13)}, {P8(14, 15)}};
static const int32_t gv_perm_q4[8][16] __attribute__((aligned(64))) = {
    {P4(0, 1)}, {P4(2, 3)}, {P4(4, 5)}, {P4(6, 7)}, {P4(8, 9)}, {P4(10, 11)}, {P4(12, 13)}, {P4(14, 15)}};

/* x (block_q8_0 [nb]) -> xq [nbp * 32] codes, xd [nbp] scales, corr [nbp]
 * offset terms; nbp = nb rounded up to 16. */
static void gv_layout_x(const block_q8_0 *x, int64_t nb, int q4, int8_t *xq, float *xd, float *corr)
{
    int64_t nbp = (nb + 15) & ~(int64_t)15;
    float off = q4 ? 8.0f : 128.0f;
    for (int64_t b = 0; b < nbp; b++) {
        int8_t *dst = xq + (b & ~(int64_t)1) * 32 + (b & 1) * 16; /* Q4_0 pair order: lo0 lo1 hi0 hi1 */
        if (b >= nb) {
            memset(q4 ? dst : xq + b * 32, 0, 16);
            memset(q4 ? dst + 32 : xq + b * 32 + 16, 0, 16);
            xd[b] = corr[b] = 0.0f;
            continue;
        }
        int32_t sum = 0;
        for (int i = 0; i < QK8_0; i++) sum += x[b].qs[i];
        if (q4) {
            memcpy(dst, x[b].qs, 16);
            memcpy(dst + 32, x[b].qs + 16, 16);
        } else {
            memcpy(xq + b * 32, x[b].qs, 32);
        }
        xd[b] = _cvtsh_ss(x[b].d);
        corr[b] = off * (float)sum * xd[b];
    }
}

/* R weight rows against C activation columns (R x C <= 8: the accumulators
 * and per-column scales stay in registers): each pair of weight blocks is
 * decoded once and fed to C vpdpbusd. Mat-vec runs 4 x 1, batched decode
 * 2 x C. */
INLINE void gv_rows_cols(const int Q4, const int R, const int C, int64_t nb, const uint8_t *w, size_t ws,
                         int8_t *const *xq, float *const *xd, float *const *corr, float *d, size_t ds)
{
    const int BS = Q4 ? (int)sizeof(block_q4_0) : (int)sizeof(block_q8_0);
    const __m512i gidx = _mm512_mullo_epi32(_mm512_set1_epi32(BS),
                                            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    const __m512i bias8 = _mm512_set1_epi8((char)0x80);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) acc[r][c] = _mm512_setzero_ps();
    for (int64_t g = 0; g < nb; g += 16) {
        int n = (int)(nb - g < 16 ? nb - g : 16);
        __mmask16 gm = (__mmask16)(n == 16 ? 0xFFFF : (1u << n) - 1);
        __m512 s[4][4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512i h = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), gm, gidx, w + (size_t)r * ws + (size_t)g * BS, 1);
            __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(h));
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) {
                s[r][c] = _mm512_mul_ps(dw, _mm512_loadu_ps(xd[c] + g));
                acc[r][c] = _mm512_fnmadd_ps(dw, _mm512_loadu_ps(corr[c] + g), acc[r][c]);
            }
        }
        for (int p = 0; 2 * p < n; p++) {
            __m512i perm = _mm512_load_si512(Q4 ? gv_perm_q4[p] : gv_perm_q8[p]);
            bool two = 2 * p + 1 < n;
            __m512i xv[4];
#pragma GCC unroll 4
            for (int c = 0; c < C; c++) xv[c] = _mm512_loadu_si512(xq[c] + (g + 2 * p) * 32);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const uint8_t *b0 = w + (size_t)r * ws + (size_t)(g + 2 * p) * BS + 2; /* codes follow the f16 scale */
                CPU_PREFETCH_SPAN(b0 + (size_t)R * ws, Q4 ? 1 : 2 * BS); /* a Q4_0 pair (36 bytes) needs one line */
                __m512i wv;
                if (Q4) {
                    __m256i t = two ? _mm256_loadu2_m128i((const __m128i *)(b0 + BS), (const __m128i *)b0)
                                    : _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)b0));
                    __m256i lo = _mm256_and_si256(t, m4), hi = _mm256_and_si256(_mm256_srli_epi16(t, 4), m4);
                    wv = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
                } else {
                    __m256i lo = _mm256_loadu_si256((const __m256i *)b0);
                    wv = two ? _mm512_inserti64x4(_mm512_castsi256_si512(lo), _mm256_loadu_si256((const __m256i *)(b0 + BS)), 1)
                             : _mm512_zextsi256_si512(lo);
                    wv = _mm512_xor_si512(wv, bias8);
                }
#pragma GCC unroll 4
                for (int c = 0; c < C; c++) {
                    __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, xv[c]);
                    acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp), _mm512_permutexvar_ps(perm, s[r][c]), acc[r][c]);
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) d[(size_t)c * ds + r] = _mm512_reduce_add_ps(acc[r][c]);
}

#define GEMV_ENTRY(WT, Q4)                                                                        \
    static void gemv_##WT(int64_t k, const void *w, size_t ws, int64_t nrows, const void *x, float *d,  \
                          void *scratch)                                                          \
    {                                                                                             \
        int64_t nb = k / 32, nbp = (nb + 15) & ~(int64_t)15;                                      \
        int8_t *xq = scratch;                                                                     \
        float *xd = (float *)(xq + nbp * 32), *corr = xd + nbp;                                   \
        gv_layout_x(x, nb, Q4, xq, xd, corr);                                                     \
        const uint8_t *wr = w;                                                                    \
        int64_t r = 0;                                                                            \
        for (; r + 4 <= nrows; r += 4) gv_rows_cols(Q4, 4, 1, nb, wr + (size_t)r * ws, ws, &xq, &xd, &corr, d + r, 1); \
        for (; r < nrows; r++) gv_rows_cols(Q4, 1, 1, nb, wr + (size_t)r * ws, ws, &xq, &xd, &corr, d + r, 1);  \
    }

GEMV_ENTRY(q8_0, 0)
GEMV_ENTRY(q4_0, 1)

/* Batched decode takes the columns in groups of four and runs CALL(CC)
 * for each, with CC the group's column count as a literal: the kernels'
 * column loops then unroll with constant bounds and stay in registers. */
#define COL_GROUPS(nc, c0, CALL)                                                                   \
    for (int c0 = 0; c0 < (nc); c0 += 4) {                                                         \
        switch ((nc) - c0 < 4 ? (nc) - c0 : 4) {                                                   \
        case 1: CALL(1); break;                                                                    \
        case 2: CALL(2); break;                                                                    \
        case 3: CALL(3); break;                                                                    \
        default: CALL(4); break;                                                                   \
        }                                                                                          \
    }

INLINE void gv_cols(const int Q4, int64_t nb, const uint8_t *w, size_t ws, int64_t nrows, int8_t *const *xq,
                    float *const *xd, float *const *corr, int nc, float *d, size_t ds)
{
#define GV_CALL(CC)                                                                                \
    for (int64_t r = 0; r < nrows; r += 2)                                                         \
        if (r + 1 < nrows) gv_rows_cols(Q4, 2, CC, nb, w + (size_t)r * ws, ws, xq + c0, xd + c0, corr + c0, d + (size_t)c0 * ds + r, ds); \
        else gv_rows_cols(Q4, 1, CC, nb, w + (size_t)r * ws, ws, xq + c0, xd + c0, corr + c0, d + (size_t)c0 * ds + r, ds)
    COL_GROUPS(nc, c0, GV_CALL)
#undef GV_CALL
}

#define GEMVN_ENTRY(WT, Q4)                                                                       \
    static void gemvn_##WT(int64_t k, const void *w, size_t ws, int64_t nrows, const void *x, size_t xs, \
                           int ncols, float *d, size_t ds, void *scratch)                          \
    {                                                                                             \
        int64_t nb = k / 32, nbp = (nb + 15) & ~(int64_t)15;                                      \
        int8_t *xq[CPU_GEMVN_MAX];                                                                \
        float *xd[CPU_GEMVN_MAX], *corr[CPU_GEMVN_MAX];                                           \
        for (int c = 0; c < ncols; c++) {                                                         \
            xq[c] = (int8_t *)scratch + (size_t)c * CPU_GEMV_SCRATCH(k);                          \
            xd[c] = (float *)(xq[c] + nbp * 32);                                                  \
            corr[c] = xd[c] + nbp;                                                                \
            gv_layout_x((const block_q8_0 *)((const uint8_t *)x + (size_t)c * xs), nb, Q4, xq[c], xd[c], corr[c]); \
        }                                                                                         \
        gv_cols(Q4, nb, w, ws, nrows, xq, xd, corr, ncols, d, ds);                                \
    }

GEMVN_ENTRY(q8_0, 0)
GEMVN_ENTRY(q4_0, 1)

/* ===== VNNI mat-vec (Q4_K / Q6_K) ========================================
 * Against Q8_K activations. Codes go in unsigned (Q4_K nibbles, Q6_K 6-bit
 * codes stored +32) and each vpdpbusd sums four of them per int32 lane;
 * lanes are then multiplied by their sub-block scale (vpmulld with a
 * vpermd-spread copy of the block's scales) and summed as integers for the
 * whole 256-block, leaving one convert and fma per block and row. The
 * offsets (Q4_K mins, Q6_K's 32) come from the activation block sums.
 * Q4_K keeps two sub-blocks in one 32-byte run (low/high nibbles), so the
 * activation row is re-laid out once per call to match; Q6_K's 64-byte
 * code vectors follow element order and need no re-layout. */

static const int32_t kq_perm4[4][16] __attribute__((aligned(64))) = {
    {0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2}, {1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3},
    {4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6}, {5, 5, 5, 5, 5, 5, 5, 5, 7, 7, 7, 7, 7, 7, 7, 7}};
static const int32_t kq_perm6[4][16] __attribute__((aligned(64))) = {
    {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3}, {4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7},
    {8, 8, 8, 8, 9, 9, 9, 9, 10, 10, 10, 10, 11, 11, 11, 11},
    {12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15, 15}};

/* Q4_K activation layout per block: codes in the order lo(qs[0..63]),
 * hi(qs[0..63]), lo(qs[64..127]), hi(qs[64..127]) use, then 16 int32 with
 * lanes 8..15 the sums of each 32-element sub-block (lanes 0..7 zero). */
#define KQ4_XBYTES (QK_K + 64)

static void kq4_layout_x(const block_q8_K *x, int64_t nb, uint8_t *dst)
{
    static const int src[8] = {0, 64, 32, 96, 128, 192, 160, 224};
    for (int64_t b = 0; b < nb; b++, dst += KQ4_XBYTES) {
        for (int i = 0; i < 8; i++) memcpy(dst + 32 * i, x[b].qs + src[i], 32);
        int32_t sums[16] = {0};
        for (int j = 0; j < 8; j++) sums[8 + j] = x[b].bsums[2 * j] + x[b].bsums[2 * j + 1];
        memcpy(dst + QK_K, sums, 64);
    }
}

/* sum_i (q[i] . x[i]) * s[i] over four 64-byte code vectors: the integer
 * dot of one K-quant block, each int32 lane weighted by its sub-block
 * scale. The mat-vecs load x once per block for all their rows. */
INLINE __m512i kq_dot(const __m512i q[4], const __m512i s[4], const __m512i x[4])
{
    __m512i sumi = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        sumi = _mm512_add_epi32(sumi, _mm512_mullo_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), q[i], x[i]), s[i]));
    return sumi;
}

INLINE void kq_load_x(const void *x, __m512i xv[4])
{
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) xv[i] = _mm512_loadu_si512((const uint8_t *)x + 64 * i);
}

/* One Q4_K block: sm = its 6-bit scales (lanes 0..7) and mins (8..15) as
 * int32, q = its codes as four 64-byte vectors of nibbles. */
INLINE void kq4_decode(const block_q4_K *wb, __m512i *sm, __m512i q[4])
{
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    uint32_t u[4];
    memcpy(u, wb->scales, 12);
    u[3] = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
    uint32_t m1 = u[1] & 0x3f3f3f3f;
    u[1] = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
    u[2] = m1;
    u[0] &= 0x3f3f3f3f;
    *sm = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)u));
    __m512i qa = _mm512_loadu_si512(wb->qs), qb = _mm512_loadu_si512(wb->qs + 64);
    q[0] = _mm512_and_si512(qa, m4);
    q[1] = _mm512_and_si512(_mm512_srli_epi16(qa, 4), m4);
    q[2] = _mm512_and_si512(qb, m4);
    q[3] = _mm512_and_si512(_mm512_srli_epi16(qb, 4), m4);
}

INLINE void kq4_rows(const int R, int64_t nb, const uint8_t *w, size_t ws, const uint8_t *xl, const block_q8_K *x,
                     float *d)
{
    __m512 acc[4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++, xl += KQ4_XBYTES) {
        __m512i xv[4];
        kq_load_x(xl, xv);
        __m512i xs = _mm512_loadu_si512(xl + QK_K);
        float xd = x[b].d;
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const block_q4_K *wb = (const block_q4_K *)(w + (size_t)r * ws) + b;
            CPU_PREFETCH_SPAN((const char *)wb + (size_t)R * ws, sizeof *wb);
            __m512i sm, q[4];
            kq4_decode(wb, &sm, q);
            __m512i sc[4];
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) sc[i] = _mm512_permutexvar_epi32(_mm512_load_si512(kq_perm4[i]), sm);
            __m512i sumi = kq_dot(q, sc, xv);
            __m512i summ = _mm512_mullo_epi32(sm, xs);
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), _mm512_set1_ps(xd * _cvtsh_ss(wb->d)), acc[r]);
            acc[r] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(summ), _mm512_set1_ps(xd * _cvtsh_ss(wb->dmin)), acc[r]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) d[r] = _mm512_reduce_add_ps(acc[r]);
}

static void gemv_q4_K(int64_t k, const void *w, size_t ws, int64_t nrows, const void *x, float *d, void *scratch)
{
    int64_t nb = k / QK_K, r = 0;
    kq4_layout_x(x, nb, scratch);
    for (; r + 4 <= nrows; r += 4) kq4_rows(4, nb, (const uint8_t *)w + (size_t)r * ws, ws, scratch, x, d + r);
    for (; r < nrows; r++) kq4_rows(1, nb, (const uint8_t *)w + (size_t)r * ws, ws, scratch, x, d + r);
}

/* One Q6_K block: sc = its 16 signed scales as int32, q = its 6-bit codes
 * (stored +32) in element order as four 64-byte vectors, s[i] = sc spread
 * to the int32 lanes of q[i]'s dot products. */
INLINE void kq6_decode(const block_q6_K *wb, __m512i *sc, __m512i q[4], __m512i s[4])
{
    const __m512i m4 = _mm512_set1_epi8(0x0F), m3 = _mm512_set1_epi8(0x03);
    *sc = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)wb->scales));
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        __m512i l = _mm512_loadu_si512(wb->ql + 64 * h);
        __m256i hb = _mm256_loadu_si256((const __m256i *)(wb->qh + 32 * h));
        /* high bits for elements 0..63: qh, qh >> 2; for 64..127: qh >> 4, qh >> 6 */
        __m512i h01 = _mm512_inserti64x4(_mm512_castsi256_si512(hb), _mm256_srli_epi16(hb, 2), 1);
        __m512i h23 = _mm512_srli_epi16(h01, 4);
        q[2 * h] = _mm512_or_si512(_mm512_and_si512(l, m4), _mm512_slli_epi16(_mm512_and_si512(h01, m3), 4));
        q[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
                                       _mm512_slli_epi16(_mm512_and_si512(h23, m3), 4));
        s[2 * h] = _mm512_permutexvar_epi32(_mm512_load_si512(kq_perm6[2 * h]), *sc);
        s[2 * h + 1] = _mm512_permutexvar_epi32(_mm512_load_si512(kq_perm6[2 * h + 1]), *sc);
    }
}

INLINE void kq6_rows(const int R, int64_t nb, const uint8_t *w, size_t ws, const block_q8_K *x, float *d)
{
    __m512 acc[4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m512i xv[4];
        kq_load_x(x[b].qs, xv);
        __m512i bs = _mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)x[b].bsums));
        float xd = x[b].d;
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const block_q6_K *wb = (const block_q6_K *)(w + (size_t)r * ws) + b;
            CPU_PREFETCH_SPAN((const char *)wb + (size_t)R * ws, sizeof *wb);
            __m512i sc, q[4], sq[4];
            kq6_decode(wb, &sc, q, sq);
            __m512i sumi = kq_dot(q, sq, xv);
            /* codes are stored +32: take off 32 * sum_g scale_g * bsum_g */
            sumi = _mm512_sub_epi32(sumi, _mm512_slli_epi32(_mm512_mullo_epi32(sc, bs), 5));
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), _mm512_set1_ps(xd * _cvtsh_ss(wb->d)), acc[r]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) d[r] = _mm512_reduce_add_ps(acc[r]);
}

static void gemv_q6_K(int64_t k, const void *w, size_t ws, int64_t nrows, const void *x, float *d, void *scratch)
{
    (void)scratch;
    int64_t nb = k / QK_K, r = 0;
    for (; r + 4 <= nrows; r += 4) kq6_rows(4, nb, (const uint8_t *)w + (size_t)r * ws, ws, x, d + r);
    for (; r < nrows; r++) kq6_rows(1, nb, (const uint8_t *)w + (size_t)r * ws, ws, x, d + r);
}

/* Batched decode (2..8 activation rows): one weight row at a time, its
 * block's codes and scales decoded once and reused by C <= 4 columns. */
INLINE void kq4_cols(const int C, int64_t nb, const uint8_t *w, size_t ws, const uint8_t *const *xl,
                     const block_q8_K *const *x, float *d, size_t ds)
{
    __m512 acc[4];
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) acc[c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const block_q4_K *wb = (const block_q4_K *)w + b;
        CPU_PREFETCH_SPAN((const char *)wb + ws, sizeof *wb);
        __m512i sm, q[4];
        kq4_decode(wb, &sm, q);
        __m512i sc[4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) sc[i] = _mm512_permutexvar_epi32(_mm512_load_si512(kq_perm4[i]), sm);
        float wd = _cvtsh_ss(wb->d), wm = _cvtsh_ss(wb->dmin);
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const uint8_t *xc = xl[c] + (size_t)b * KQ4_XBYTES;
            __m512i xv[4];
            kq_load_x(xc, xv);
            __m512i sumi = kq_dot(q, sc, xv);
            __m512i summ = _mm512_mullo_epi32(sm, _mm512_loadu_si512(xc + QK_K));
            float xd = x[c][b].d;
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), _mm512_set1_ps(xd * wd), acc[c]);
            acc[c] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(summ), _mm512_set1_ps(xd * wm), acc[c]);
        }
    }
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) d[(size_t)c * ds] = _mm512_reduce_add_ps(acc[c]);
}

static void gemvn_q4_K(int64_t k, const void *w, size_t ws, int64_t nrows, const void *xv, size_t xs, int ncols,
                       float *d, size_t ds, void *scratch)
{
    int64_t nb = k / QK_K;
    const uint8_t *xl[CPU_GEMVN_MAX];
    const block_q8_K *x[CPU_GEMVN_MAX];
    for (int c = 0; c < ncols; c++) {
        x[c] = (const block_q8_K *)((const uint8_t *)xv + (size_t)c * xs);
        uint8_t *l = (uint8_t *)scratch + (size_t)c * CPU_GEMV_SCRATCH(k);
        kq4_layout_x(x[c], nb, l);
        xl[c] = l;
    }
#define KQ4_CALL(CC)                                                                               \
    for (int64_t r = 0; r < nrows; r++)                                                            \
        kq4_cols(CC, nb, (const uint8_t *)w + (size_t)r * ws, ws, xl + c0, x + c0, d + (size_t)c0 * ds + r, ds)
    COL_GROUPS(ncols, c0, KQ4_CALL)
#undef KQ4_CALL
}

INLINE void kq6_cols(const int C, int64_t nb, const uint8_t *w, size_t ws, const block_q8_K *const *x, float *d, size_t ds)
{
    __m512 acc[4];
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) acc[c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const block_q6_K *wb = (const block_q6_K *)w + b;
        CPU_PREFETCH_SPAN((const char *)wb + ws, sizeof *wb);
        __m512i sc, q[4], s[4];
        kq6_decode(wb, &sc, q, s);
        float wd = _cvtsh_ss(wb->d);
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const block_q8_K *xb = x[c] + b;
            __m512i xv[4];
            kq_load_x(xb->qs, xv);
            __m512i sumi = kq_dot(q, s, xv);
            __m512i bs = _mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)xb->bsums));
            sumi = _mm512_sub_epi32(sumi, _mm512_slli_epi32(_mm512_mullo_epi32(sc, bs), 5));
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), _mm512_set1_ps(xb->d * wd), acc[c]);
        }
    }
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) d[(size_t)c * ds] = _mm512_reduce_add_ps(acc[c]);
}

static void gemvn_q6_K(int64_t k, const void *w, size_t ws, int64_t nrows, const void *xv, size_t xs, int ncols,
                       float *d, size_t ds, void *scratch)
{
    (void)scratch;
    int64_t nb = k / QK_K;
    const block_q8_K *x[CPU_GEMVN_MAX];
    for (int c = 0; c < ncols; c++) x[c] = (const block_q8_K *)((const uint8_t *)xv + (size_t)c * xs);
#define KQ6_CALL(CC)                                                                               \
    for (int64_t r = 0; r < nrows; r++)                                                            \
        kq6_cols(CC, nb, (const uint8_t *)w + (size_t)r * ws, ws, x + c0, d + (size_t)c0 * ds + r, ds)
    COL_GROUPS(ncols, c0, KQ6_CALL)
#undef KQ6_CALL
}

/* ===== Vector helpers ==================================================== */

DOT_ENTRY(f32, float)
DOT_ENTRY(f16, uint16_t)

static void mad_f32(int64_t n, float *y, const float *x, float s)
{
    __m512 sv = _mm512_set1_ps(s);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(sv, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(sv, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
    }
}

static void mad_f16(int64_t n, float *y, const uint16_t *x, float s)
{
    __m512 sv = _mm512_set1_ps(s);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(sv, load16_f16(x, i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(sv, loadm_f16(x, i, m), _mm512_maskz_loadu_ps(m, y + i)));
    }
}

static void scale_f32(int64_t n, float *y, float s)
{
    __m512 sv = _mm512_set1_ps(s);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_mul_ps(sv, _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(sv, _mm512_maskz_loadu_ps(m, y + i)));
    }
}


/* ===== Packed f32 mat-mat ================================================
 * Micro-tile: 32 weight rows (two zmm of lanes) x 12 activation rows = 24
 * accumulators; each k step loads 2 weight vectors and broadcasts 12
 * activations, so FMAs outnumber loads 24 to 14 and both FMA pipes stay busy
 * (FMA latency 4 x 2 pipes needs >= 8 independent sums). */

#define MM_MR 32
#define MM_NR 12

/* Converts one weight row to f32; returns where the floats are. */
static const float *row_to_f32(vki_type t, int64_t k, const uint8_t *row, float *tmp)
{
    int64_t i = 0;
    switch (t) {
    case VKI_TYPE_F32: return (const float *)row;
    case VKI_TYPE_F16:
        for (; i + 16 <= k; i += 16) _mm512_storeu_ps(tmp + i, load16_f16(row, i));
        if (i < k) _mm512_mask_storeu_ps(tmp + i, (__mmask16)((1u << (k - i)) - 1), loadm_f16(row, i, (__mmask16)((1u << (k - i)) - 1)));
        return tmp;
    case VKI_TYPE_BF16:
        for (; i + 16 <= k; i += 16) _mm512_storeu_ps(tmp + i, load16_bf16(row, i));
        if (i < k) _mm512_mask_storeu_ps(tmp + i, (__mmask16)((1u << (k - i)) - 1), loadm_bf16(row, i, (__mmask16)((1u << (k - i)) - 1)));
        return tmp;
    default:
        return vki_dequantize_row(t, row, tmp, k) ? tmp : NULL;
    }
}

/* In-register 16 x 16 transpose: r[j] holds row j on entry, column j on
 * exit (unpacks within 128-bit lanes, then a 4 x 4 transpose of lanes). */
INLINE void transpose16(__m512 r[16])
{
    __m512 t[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
        __m512d c = _mm512_castps_pd(t[4 * i + 1]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
    }
    /* r[4i + e], lane L: rows 4i..4i+3 of column 4L + e */
#pragma GCC unroll 4
    for (int e = 0; e < 4; e++) {
        __m512 t0 = _mm512_shuffle_f32x4(r[e], r[4 + e], 0x44), t1 = _mm512_shuffle_f32x4(r[e], r[4 + e], 0xEE);
        __m512 t2 = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], 0x44), t3 = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], 0xEE);
        t[e] = _mm512_shuffle_f32x4(t0, t2, 0x88);
        t[4 + e] = _mm512_shuffle_f32x4(t0, t2, 0xDD);
        t[8 + e] = _mm512_shuffle_f32x4(t1, t3, 0x88);
        t[12 + e] = _mm512_shuffle_f32x4(t1, t3, 0xDD);
    }
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) r[i] = t[i];
}

/* Float weights go into the panel 16 x 16 at a time through registers,
 * instead of one scalar store per weight at a 128-byte stride. */
INLINE void pack_float_rows(int64_t k, const uint8_t *w, size_t ws, int nrows, float *dst, const int T)
{
    for (int h = 0; h < MM_MR; h += 16)
        for (int64_t i0 = 0; i0 < k; i0 += 16) {
            __mmask16 m = k - i0 >= 16 ? 0xFFFF : (__mmask16)((1u << (k - i0)) - 1);
            __m512 r[16];
#pragma GCC unroll 16
            for (int j = 0; j < 16; j++) {
                const uint8_t *row = w + (size_t)(h + j) * ws;
                r[j] = h + j >= nrows ? _mm512_setzero_ps()
                     : T == 0        ? loadm_f32(row, i0, m)
                     : T == 1        ? loadm_f16(row, i0, m)
                                     : loadm_bf16(row, i0, m);
            }
            transpose16(r);
            int nc = (int)(k - i0 < 16 ? k - i0 : 16);
            for (int c = 0; c < nc; c++) _mm512_storeu_ps(dst + (size_t)(i0 + c) * MM_MR + h, r[c]);
        }
}

static bool mm_pack_w(vki_type t, int64_t k, const void *w, size_t ws, int nrows, float *dst, float *tmp)
{
    switch (t) {
    case VKI_TYPE_F32: pack_float_rows(k, w, ws, nrows, dst, 0); return true;
    case VKI_TYPE_F16: pack_float_rows(k, w, ws, nrows, dst, 1); return true;
    case VKI_TYPE_BF16: pack_float_rows(k, w, ws, nrows, dst, 2); return true;
    default: break;
    }
    for (int r = 0; r < MM_MR; r++) {
        if (r >= nrows) {
            for (int64_t i = 0; i < k; i++) dst[(size_t)i * MM_MR + (size_t)r] = 0.0f;
            continue;
        }
        const float *src = row_to_f32(t, k, (const uint8_t *)w + (size_t)r * ws, tmp);
        if (!src) return false;
        for (int64_t i = 0; i < k; i++) dst[(size_t)i * MM_MR + (size_t)r] = src[i];
    }
    return true;
}

/* One panel times one activation group; ROWS: the group's rows read where
 * they are (xr[c], nc real ones; the rest repeat row 0 and are not
 * stored), else the packed group xp [k][MM_NR]. */
INLINE void mm_tile(int64_t k, const float *wp, int nrows, const float *xp, const float *const *xr, int nc,
                    const float *bias, float *d, size_t ds, const bool ROWS)
{
    const float *x[MM_NR];
    if (ROWS)
        for (int c = 0; c < MM_NR; c++) x[c] = xr[c < nc ? c : 0];
    __mmask16 m0 = nrows >= 16 ? 0xFFFF : (__mmask16)((1u << nrows) - 1);
    __mmask16 m1 = nrows >= 32 ? 0xFFFF : nrows > 16 ? (__mmask16)((1u << (nrows - 16)) - 1) : 0;
    __m512 b0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    __m512 b1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
    __m512 a0[MM_NR], a1[MM_NR];
#pragma GCC unroll 12
    for (int c = 0; c < MM_NR; c++) a0[c] = b0, a1[c] = b1;
    for (int64_t i = 0; i < k; i++, wp += MM_MR, xp += MM_NR) {
        __m512 w0 = _mm512_loadu_ps(wp), w1 = _mm512_loadu_ps(wp + 16);
#pragma GCC unroll 12
        for (int c = 0; c < MM_NR; c++) {
            __m512 xb = _mm512_set1_ps(ROWS ? x[c][i] : xp[c]);
            a0[c] = _mm512_fmadd_ps(w0, xb, a0[c]);
            a1[c] = _mm512_fmadd_ps(w1, xb, a1[c]);
        }
    }
#pragma GCC unroll 12
    for (int c = 0; c < MM_NR; c++)
        if (c < nc) {
            _mm512_mask_storeu_ps(d + (size_t)c * ds, m0, a0[c]);
            _mm512_mask_storeu_ps(d + (size_t)c * ds + 16, m1, a1[c]);
        }
}

MM_KERNEL_ENTRIES

/* ===== Integer packed mat-mat (VNNI) =====================================
 * Layouts in mq.h. Lanes are weight rows: one vpdpbusd multiplies four
 * codes of 16 rows by four broadcast activation codes of one column. A tile
 * is 32 rows (two zmm) x 6 columns: 12 int32 sums for the current block and
 * 12 float sums, so each step does 12 vpdpbusd for 2 loads and 6
 * broadcasts, and each block ends with one convert and two float ops per
 * sum. The integer sums start at the column's -off * sum p, which folds the
 * unsigned-code offset in for free. */

#define MQ_MR 32
#define MQ_NR 6

INLINE void mq_tile(int64_t k, const uint8_t *wp, int nrows, const uint8_t *xp, int nc, const float *bias, float *d,
                    size_t ds, const int BL, const int MIN)
{
    int64_t nbl = k / BL;
    const float *wsc = (const float *)(wp + (size_t)k * MQ_MR), *wmn = wsc + nbl * MQ_MR;
    const float *xd = (const float *)(xp + (size_t)k * MQ_NR);
    const uint8_t *xa = (const uint8_t *)(xd + nbl * MQ_NR);
    __mmask16 m0 = nrows >= 16 ? 0xFFFF : (__mmask16)((1u << nrows) - 1);
    __mmask16 m1 = nrows >= 32 ? 0xFFFF : nrows > 16 ? (__mmask16)((1u << (nrows - 16)) - 1) : 0;
    __m512 b0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    __m512 b1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
    __m512 f0[MQ_NR], f1[MQ_NR];
#pragma GCC unroll 6
    for (int c = 0; c < MQ_NR; c++) f0[c] = b0, f1[c] = b1;
    for (int64_t b = 0; b < nbl; b++) {
        __m512i i0[MQ_NR], i1[MQ_NR];
        const uint8_t *xab = xa + (size_t)b * MQ_NR * 4;
#pragma GCC unroll 6
        for (int c = 0; c < MQ_NR; c++) {
            int32_t a;
            memcpy(&a, xab + 4 * c, 4);
            i0[c] = i1[c] = MIN ? _mm512_setzero_si512() : _mm512_set1_epi32(a);
        }
        const uint8_t *wq = wp + (size_t)b * BL * MQ_MR, *xq = xp + (size_t)b * BL * MQ_NR;
#pragma GCC unroll 8
        for (int s = 0; s < BL / 4; s++) {
            __m512i w0 = _mm512_loadu_si512(wq + s * 4 * MQ_MR), w1 = _mm512_loadu_si512(wq + s * 4 * MQ_MR + 64);
#pragma GCC unroll 6
            for (int c = 0; c < MQ_NR; c++) {
                int32_t v;
                memcpy(&v, xq + (s * MQ_NR + c) * 4, 4);
                __m512i xb = _mm512_set1_epi32(v);
                i0[c] = _mm512_dpbusd_epi32(i0[c], w0, xb);
                i1[c] = _mm512_dpbusd_epi32(i1[c], w1, xb);
            }
        }
        __m512 s0 = _mm512_loadu_ps(wsc + b * MQ_MR), s1 = _mm512_loadu_ps(wsc + b * MQ_MR + 16);
#pragma GCC unroll 6
        for (int c = 0; c < MQ_NR; c++) {
            __m512 xdv = _mm512_set1_ps(xd[b * MQ_NR + c]);
            f0[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i0[c]), _mm512_mul_ps(s0, xdv), f0[c]);
            f1[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i1[c]), _mm512_mul_ps(s1, xdv), f1[c]);
        }
        if (MIN) {
            __m512 n0 = _mm512_loadu_ps(wmn + b * MQ_MR), n1 = _mm512_loadu_ps(wmn + b * MQ_MR + 16);
#pragma GCC unroll 6
            for (int c = 0; c < MQ_NR; c++) {
                float a;
                memcpy(&a, xab + 4 * c, 4);
                __m512 av = _mm512_set1_ps(a);
                f0[c] = _mm512_fnmadd_ps(n0, av, f0[c]);
                f1[c] = _mm512_fnmadd_ps(n1, av, f1[c]);
            }
        }
    }
#pragma GCC unroll 6
    for (int c = 0; c < MQ_NR; c++)
        if (c < nc) {
            _mm512_mask_storeu_ps(d + (size_t)c * ds, m0, f0[c]);
            _mm512_mask_storeu_ps(d + (size_t)c * ds + 16, m1, f1[c]);
        }
}

static void mq_kernel(const mq_fmt *f, int64_t k, const uint8_t *wp, int nrows, const uint8_t *xp, int nc,
                      const float *bias, float *d, size_t ds)
{
    if (f->bl == 16) f->has_min ? mq_tile(k, wp, nrows, xp, nc, bias, d, ds, 16, 1)
                                : mq_tile(k, wp, nrows, xp, nc, bias, d, ds, 16, 0);
    else f->has_min ? mq_tile(k, wp, nrows, xp, nc, bias, d, ds, 32, 1)
                    : mq_tile(k, wp, nrows, xp, nc, bias, d, ds, 32, 0);
}

/* ===== Activation quantizer =============================================
 * cpu_quantize_q8_0 bit for bit: the same float max (NaN lanes dropped,
 * as the scalar compare does), the same d and 1/d, and vcvtps2dq rounds to
 * nearest even under the default MXCSR exactly as the scalar's magic-number
 * rounding does; vpmovdb truncates like the (int8_t) cast. */
/* The max of |x| over 16 k floats (vmaxps returns its second operand when
 * the first is NaN: NaN lanes drop out as in the scalar compare). */
static inline float abs_max16(const float *x, int k)
{
    const __m512 sign = _mm512_set1_ps(-0.0f);
    __m512 m = _mm512_setzero_ps();
    for (int i = 0; i < 16 * k; i += 16) m = _mm512_max_ps(_mm512_andnot_ps(sign, _mm512_loadu_ps(x + i)), m);
    return _mm512_reduce_max_ps(m);
}

static void quantize_q8_0(const float *x, void *dst, int64_t n)
{
    block_q8_0 *y = dst;
    for (int64_t b = 0; b < n / QK8_0; b++, x += QK8_0) {
        __m512 a = _mm512_loadu_ps(x), c = _mm512_loadu_ps(x + 16);
        float amax = abs_max16(x, 2);
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = vki_fp32_to_fp16(d);
        __m512 iv = _mm512_set1_ps(id);
        _mm_storeu_si128((__m128i *)y[b].qs, _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(a, iv))));
        _mm_storeu_si128((__m128i *)(y[b].qs + 16), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(c, iv))));
    }
}

/* cpu_quantize_q8_K bit for bit: the max and d as above (d stays f32),
 * each 16-lane vector one bsums group; the clamp to +-127 the scalar
 * applies, then the narrowing. */
static void quantize_q8_K(const float *x, void *dst, int64_t n)
{
    block_q8_K *y = dst;
    const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        float amax = abs_max16(x, QK_K / 16);
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = d;
        __m512 iv = _mm512_set1_ps(id);
        for (int g = 0; g < QK_K / 16; g++) {
            __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 16 * g), iv));
            q = _mm512_min_epi32(_mm512_max_epi32(q, lo), hi);
            _mm_storeu_si128((__m128i *)(y[b].qs + 16 * g), _mm512_cvtepi32_epi8(q));
            y[b].bsums[g] = (int16_t)_mm512_reduce_add_epi32(q);
        }
    }
}

/* ===== Attention key blocks ==============================================
 * Scores for 16 keys at once: 16 accumulators over the head dimension,
 * then one transpose-and-add tree (45 shuffles and adds) turns them into a
 * vector of 16 dots, instead of 16 full horizontal reductions. The weighted
 * V sum keeps up to 128 output floats in registers across the whole key
 * block instead of loading and storing them per key. */

INLINE __m512 load16_kv(const uint8_t *row, int64_t i, __mmask16 m, const int F16)
{
    return F16 ? loadm_f16(row, i, m) : loadm_f32(row, i, m);
}

/* out lane 4i + r = total of a[4i + r] */
INLINE __m512 sum16x16(const __m512 *a)
{
    __m512 u[8], v[4];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        u[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        __m512d x = _mm512_castps_pd(u[2 * i]), y = _mm512_castps_pd(u[2 * i + 1]);
        v[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
    }
    __m512 x01 = _mm512_add_ps(_mm512_shuffle_f32x4(v[0], v[1], 0x44), _mm512_shuffle_f32x4(v[0], v[1], 0xEE));
    __m512 x23 = _mm512_add_ps(_mm512_shuffle_f32x4(v[2], v[3], 0x44), _mm512_shuffle_f32x4(v[2], v[3], 0xEE));
    return _mm512_add_ps(_mm512_shuffle_f32x4(x01, x23, 0x88), _mm512_shuffle_f32x4(x01, x23, 0xDD));
}

INLINE void dot_rows_t(int64_t n, const uint8_t *rows, size_t rs, int nrows, const float *q, float *out, const int F16)
{
    for (int j0 = 0; j0 < nrows; j0 += 16) {
        int nj = nrows - j0 < 16 ? nrows - j0 : 16;
        const uint8_t *r[16];
        for (int j = 0; j < 16; j++) r[j] = rows + (size_t)(j0 + (j < nj ? j : 0)) * rs; /* tail: repeat a row */
        __m512 a[16];
#pragma GCC unroll 16
        for (int j = 0; j < 16; j++) a[j] = _mm512_setzero_ps();
        for (int64_t i = 0; i < n; i += 16) {
            __mmask16 m = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
            __m512 qv = _mm512_maskz_loadu_ps(m, q + i);
#pragma GCC unroll 16
            for (int j = 0; j < 16; j++) a[j] = _mm512_fmadd_ps(load16_kv(r[j], i, m, F16), qv, a[j]);
        }
        _mm512_mask_storeu_ps(out + j0, (__mmask16)((1u << nj) - 1), sum16x16(a));
    }
}

static void dot_rows(int64_t n, const void *rows, size_t rs, int nrows, bool f16, const float *q, float *out)
{
    if (f16) dot_rows_t(n, rows, rs, nrows, q, out, 1);
    else dot_rows_t(n, rows, rs, nrows, q, out, 0);
}

/* NV full vectors (NV * 16 <= 128 values) held in registers over all rows. */
INLINE void mad_rows_nv(float *y, const uint8_t *rows, size_t rs, int nrows, const float *p, const int NV,
                        const int F16)
{
    __m512 acc[8];
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) acc[v] = _mm512_loadu_ps(y + 16 * v);
    for (int j = 0; j < nrows; j++) {
        __m512 pv = _mm512_set1_ps(p[j]);
        const uint8_t *row = rows + (size_t)j * rs;
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) acc[v] = _mm512_fmadd_ps(pv, load16_kv(row, 16 * v, 0xFFFF, F16), acc[v]);
    }
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) _mm512_storeu_ps(y + 16 * v, acc[v]);
}

INLINE void mad_rows_t(int64_t n, float *y, const uint8_t *rows, size_t rs, int nrows, const float *p, const int F16)
{
    const size_t es = F16 ? 2 : 4;
    int64_t i0 = 0;
    for (; i0 + 16 <= n; i0 += 128) {
        int nv = (int)((n - i0) / 16 < 8 ? (n - i0) / 16 : 8);
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
        if (nv < 8) {
            i0 += 16 * nv;
            break;
        }
    }
    if (i0 < n) { /* the last 1..15 values */
        __mmask16 m = (__mmask16)((1u << (n - i0)) - 1);
        __m512 acc = _mm512_maskz_loadu_ps(m, y + i0);
        for (int j = 0; j < nrows; j++)
            acc = _mm512_fmadd_ps(_mm512_set1_ps(p[j]), load16_kv(rows + (size_t)j * rs, i0, m, F16), acc);
        _mm512_mask_storeu_ps(y + i0, m, acc);
    }
}

static void mad_rows(int64_t n, float *y, const void *rows, size_t rs, int nrows, bool f16, const float *p)
{
    if (f16) mad_rows_t(n, y, rows, rs, nrows, p, 1);
    else mad_rows_t(n, y, rows, rs, nrows, p, 0);
}

void cpu_kernels_init_avx512(cpu_kernels *k)
{
    k->mm_mr = MM_MR;
    k->mm_nr = MM_NR;
    k->mm_pack_w = mm_pack_w;
    k->mm_kernel = mm_kernel;
    /* Every entry tied to the tile geometry is replaced together: the
     * AVX2 table under this one has 16 x 6 tiles, and its mm_kernel_rows
     * under 32 x 12 computed 6 of 12 columns (NaN rows on every AVX-512
     * prompt and embedding through the packed f32 path). mm_panel_r16
     * (repack_avx2.c, 16-row panels) is skipped while mm_mr != 16. */
    k->mm_kernel_rows = mm_kernel_rows;
    k->gemm[VKI_TYPE_F32] = gemm_f32;
    k->gemm[VKI_TYPE_F16] = gemm_f16;
    k->gemm[VKI_TYPE_BF16] = gemm_bf16;
    if (cpu_has_vnni()) {
        k->gemm[VKI_TYPE_Q8_0] = gemm_q8_0;
        k->gemm[VKI_TYPE_Q4_0] = gemm_q4_0;
        k->gemv[VKI_TYPE_Q8_0] = gemv_q8_0;
        k->gemv[VKI_TYPE_Q4_0] = gemv_q4_0;
        k->gemvn[VKI_TYPE_Q8_0] = gemvn_q8_0;
        k->gemvn[VKI_TYPE_Q4_0] = gemvn_q4_0;
        k->gemv[VKI_TYPE_Q4_K] = gemv_q4_K;
        k->gemvn[VKI_TYPE_Q4_K] = gemvn_q4_K;
        k->gemv[VKI_TYPE_Q6_K] = gemv_q6_K;
        k->gemvn[VKI_TYPE_Q6_K] = gemvn_q6_K;
        k->mq_mr[0] = k->mq_mr[1] = MQ_MR;
        k->mq_nr[0] = k->mq_nr[1] = MQ_NR;
        k->mq_signed_q8 = false;
        k->mq_kernel = mq_kernel;
    }
    k->dot_f32 = dot_f32;
    k->dot_f16 = dot_f16;
    k->mad_f32 = mad_f32;
    k->mad_f16 = mad_f16;
    k->scale_f32 = scale_f32;
    k->quantize_q8_0 = quantize_q8_0;
    k->quantize_q8_K = quantize_q8_K;
    k->dot_rows = dot_rows;
    k->mad_rows = mad_rows;
    cpu_act_init_avx512(k);
    cpu_attn_init_avx512(k);
    cpu_gemv_init_avx512(k);
}
