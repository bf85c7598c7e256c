/*
 * kernels_avx2.c: AVX2 + FMA + F16C kernels (compiled with those flags
 * only; called only when dispatch.c found them). Tiles of up to 4 weight
 * rows x 4 activation rows keep 16 accumulators in registers, so each
 * loaded vector is used 4 times. Int8 dots use the abs/sign trick with
 * maddubs (both operands within +-127, so no 16-bit overflow); every
 * supported quantized type has its tile. Also the mat-vec for Q8_0/Q4_0
 * and the integer packed mat-mat (mq.h layouts).
 */
#include <immintrin.h>
#include <string.h>

#include "cpu.h"
#include "kquants.h"
#include "load_avx2.h"
#include "tile.h"

/* ===== Float tiles ======================================================= */

#define FLOAT_TILE(WT, LOAD, TO_F32)                                                              \
    INLINE void tile_##WT(int64_t k, const uint8_t *w, size_t ws, const uint8_t *x, size_t xs,    \
                          float *d, size_t ds, const int RM, const int RN)                        \
    {                                                                                             \
        __m256 acc[4][4];                                                                         \
        for (int r = 0; r < RM; r++)                                                              \
            for (int c = 0; c < RN; c++) acc[r][c] = _mm256_setzero_ps();                         \
        int64_t i = 0;                                                                            \
        for (; i + 8 <= k; i += 8) {                                                              \
            __m256 xv[4];                                                                         \
            for (int c = 0; c < RN; c++) xv[c] = _mm256_loadu_ps((const float *)(x + c * xs) + i); \
            for (int r = 0; r < RM; r++) {                                                        \
                __m256 wv = LOAD(w + r * ws, i);                                                  \
                for (int c = 0; c < RN; c++) acc[r][c] = _mm256_fmadd_ps(wv, xv[c], acc[r][c]);   \
            }                                                                                     \
        }                                                                                         \
        for (int r = 0; r < RM; r++)                                                              \
            for (int c = 0; c < RN; c++) {                                                        \
                float s = hsum8(acc[r][c]);                                                       \
                for (int64_t j = i; j < k; j++)                                                   \
                    s += TO_F32(w + r * ws, j) * ((const float *)(x + c * xs))[j];                \
                d[c * ds + r] = s;                                                                \
            }                                                                                     \
    }

INLINE float f32_at(const void *p, int64_t j) { return ((const float *)p)[j]; }
INLINE float f16_at(const void *p, int64_t j) { return _cvtsh_ss(((const uint16_t *)p)[j]); }
INLINE float bf16_at(const void *p, int64_t j) { return vki_bf16_to_fp32(((const uint16_t *)p)[j]); }

FLOAT_TILE(f32, load8_f32, f32_at)
FLOAT_TILE(f16, load8_f16, f16_at)
FLOAT_TILE(bf16, load8_bf16, bf16_at)

GEMM_ENTRY(f32)
GEMM_ENTRY(f16)
GEMM_ENTRY(bf16)

/* Float mat-vecs for decode, as gemv_avx512.c: four rows at a time, two
 * vectors each per step, prefetching the same bytes of the next four rows
 * (the tiles above have no prefetch and serve prompts from cache). */
#define FLOAT_GEMV(WT, ESZ)                                                                       \
    INLINE void gv_rows_##WT(int64_t k, const uint8_t *w, size_t ws, const float *x, float *d, const int R, \
                             const bool pf)                                                       \
    {                                                                                             \
        __m256 a[4][2];                                                                           \
        for (int r = 0; r < R; r++) a[r][0] = a[r][1] = _mm256_setzero_ps();                      \
        int64_t i = 0;                                                                            \
        for (; i + 16 <= k; i += 16) {                                                            \
            __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);                  \
            for (int r = 0; r < R; r++) {                                                         \
                const uint8_t *row = w + (size_t)r * ws;                                          \
                if (pf) CPU_PREFETCH_SPAN(row + (size_t)R * ws + (size_t)i * (ESZ), 16 * (ESZ));   \
                a[r][0] = _mm256_fmadd_ps(load8_##WT(row, i), x0, a[r][0]);                       \
                a[r][1] = _mm256_fmadd_ps(load8_##WT(row, i + 8), x1, a[r][1]);                   \
            }                                                                                     \
        }                                                                                         \
        for (int r = 0; r < R; r++) {                                                             \
            float s = hsum8(_mm256_add_ps(a[r][0], a[r][1]));                                     \
            for (int64_t j = i; j < k; j++) s += WT##_at(w + (size_t)r * ws, j) * x[j];           \
            d[r] = s;                                                                             \
        }                                                                                         \
    }                                                                                             \
    static void gemv_##WT(int64_t k, const void *w, size_t ws, int64_t nrows, const void *x, float *d, \
                          void *scratch)                                                          \
    {                                                                                             \
        (void)scratch;                                                                            \
        const uint8_t *wb = w;                                                                    \
        int64_t r = 0;                                                                            \
        for (; r + 4 <= nrows; r += 4) gv_rows_##WT(k, wb + (size_t)r * ws, ws, x, d + r, 4, true); \
        switch (nrows - r) {                                                                      \
        case 3: gv_rows_##WT(k, wb + (size_t)r * ws, ws, x, d + r, 3, false); break;              \
        case 2: gv_rows_##WT(k, wb + (size_t)r * ws, ws, x, d + r, 2, false); break;              \
        case 1: gv_rows_##WT(k, wb + (size_t)r * ws, ws, x, d + r, 1, false); break;              \
        default: break;                                                                           \
        }                                                                                         \
    }

FLOAT_GEMV(f32, 4)
FLOAT_GEMV(f16, 2)
FLOAT_GEMV(bf16, 2)

/* ===== Int8 tiles (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 weights; Q8_0 activations) */

/* Sum of 32 int8 products as 8 int32 lanes, as floats. */
INLINE __m256 dot32_i8(__m256i a, __m256i b)
{
    __m256i ax = _mm256_sign_epi8(a, a);
    __m256i sy = _mm256_sign_epi8(b, a);
    __m256i p16 = _mm256_maddubs_epi16(ax, sy);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

INLINE __m256i unpack_q4_0(const block_q4_0 *b)
{
    __m128i q = _mm_loadu_si128((const __m128i *)b->qs);
    __m256i v = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
    v = _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
    return _mm256_sub_epi8(v, _mm256_set1_epi8(8));
}

/* Bit e of a Q5 block's qh as 0x10 in byte e (e = 0..31: the element the
 * byte holds, as unpack_q4_0 orders them): each lane broadcasts the two qh
 * bytes of its 16 elements, and each byte keeps its own bit. */
INLINE __m256i q5_high_bits(const uint8_t *qh)
{
    uint32_t h;
    memcpy(&h, qh, 4);
    const __m256i pick = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    __m256i v = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)h), pick), bit);
    return _mm256_and_si256(_mm256_cmpeq_epi8(v, bit), _mm256_set1_epi8(0x10));
}

INLINE __m256i nibbles32(const uint8_t *qs)
{
    __m128i q = _mm_loadu_si128((const __m128i *)qs);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0F));
}

INLINE __m256i unpack_q4_1(const block_q4_1 *b) { return nibbles32(b->qs); }
INLINE __m256i unpack_q5_0(const block_q5_0 *b)
{
    return _mm256_sub_epi8(_mm256_or_si256(nibbles32(b->qs), q5_high_bits(b->qh)), _mm256_set1_epi8(16));
}
INLINE __m256i unpack_q5_1(const block_q5_1 *b) { return _mm256_or_si256(nibbles32(b->qs), q5_high_bits(b->qh)); }

/* MIN: w = d q + m (Q4_1, Q5_1; m = MINF(block)), so a block also adds
 * m xd sum(x codes). */
#define INT8_TILE(WT, WBLOCK, UNPACK, MIN, MINF)                                                \
    INLINE void tile_##WT(int64_t k, const uint8_t *w, size_t ws, const uint8_t *x, size_t xs,  \
                          float *d, size_t ds, const int RM, const int RN)                      \
    {                                                                                           \
        __m256 acc[4][4];                                                                       \
        for (int r = 0; r < RM; r++)                                                            \
            for (int c = 0; c < RN; c++) acc[r][c] = _mm256_setzero_ps();                       \
        for (int64_t b = 0; b < k / 32; b++) {                                                  \
            __m256i xq[4];                                                                      \
            float xd[4];                                                                        \
            __m256 xsum[4];                                                                     \
            for (int c = 0; c < RN; c++) {                                                      \
                const block_q8_0 *xb = (const block_q8_0 *)(x + c * xs) + b;                    \
                xq[c] = _mm256_loadu_si256((const __m256i *)xb->qs);                            \
                xd[c] = _cvtsh_ss(xb->d);                                                       \
                if (MIN)                                                                        \
                    xsum[c] = _mm256_cvtepi32_ps(_mm256_madd_epi16(                             \
                        _mm256_maddubs_epi16(_mm256_set1_epi8(1), xq[c]), _mm256_set1_epi16(1))); \
            }                                                                                   \
            for (int r = 0; r < RM; r++) {                                                      \
                const WBLOCK *wb = (const WBLOCK *)(w + r * ws) + b;                            \
                __m256i wq = UNPACK(wb);                                                        \
                float wd = _cvtsh_ss(wb->d);                                                    \
                for (int c = 0; c < RN; c++) {                                                  \
                    acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(wd * xd[c]), dot32_i8(wq, xq[c]), acc[r][c]); \
                    if (MIN)                                                                    \
                        acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(MINF(wb) * xd[c]), xsum[c], acc[r][c]); \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
        for (int r = 0; r < RM; r++)                                                            \
            for (int c = 0; c < RN; c++) d[c * ds + r] = hsum8(acc[r][c]);                      \
    }

INLINE __m256i unpack_q8_0(const block_q8_0 *b) { return _mm256_loadu_si256((const __m256i *)b->qs); }

INLINE float min_q4_1(const block_q4_1 *b) { return _cvtsh_ss(b->m); }
INLINE float min_q5_1(const block_q5_1 *b) { return _cvtsh_ss(b->m); }
INLINE float no_min(const void *b) { (void)b; return 0.0f; }

INT8_TILE(q8_0, block_q8_0, unpack_q8_0, 0, no_min)
INT8_TILE(q4_0, block_q4_0, unpack_q4_0, 0, no_min)
INT8_TILE(q4_1, block_q4_1, unpack_q4_1, 1, min_q4_1)
INT8_TILE(q5_0, block_q5_0, unpack_q5_0, 0, no_min)
INT8_TILE(q5_1, block_q5_1, unpack_q5_1, 1, min_q5_1)
GEMM_ENTRY(q8_0)
GEMM_ENTRY(q4_0)
GEMM_ENTRY(q4_1)
GEMM_ENTRY(q5_0)
GEMM_ENTRY(q5_1)

/* ===== Mat-vec (Q8_0 / Q4_0) =============================================
 * Decode reads each weight once, so per block and row the work is one load,
 * the unpack, maddubs + madd and one fma, with four rows sharing every
 * activation load. Q4_0 nibbles enter unsigned (0..15, no sign fix-up);
 * their -8 offset is folded in as an int32 vector per block holding
 * -8 * sum(x codes) in lane 0, computed once per call. Activation scales
 * are converted from f16 once per call as well. */

INLINE void gv_rows(const int Q4, const int R, int64_t nb, const uint8_t *w, size_t ws, const block_q8_0 *x,
                    const float *xd, const int32_t *xo, float *d)
{
    const __m256i ones = _mm256_set1_epi16(1), m4 = _mm256_set1_epi8(0x0F);
    const int BS = Q4 ? (int)sizeof(block_q4_0) : (int)sizeof(block_q8_0);
    __m256 acc[4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i xv = _mm256_loadu_si256((const __m256i *)x[b].qs);
        __m256i no = Q4 ? _mm256_loadu_si256((const __m256i *)(xo + 8 * b)) : _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const uint8_t *wb = w + (size_t)r * ws + (size_t)b * BS;
            _mm_prefetch((const char *)wb + (size_t)R * ws, _MM_HINT_T0); /* see CPU_PREFETCH_SPAN */
            uint16_t h;
            memcpy(&h, wb, 2);
            __m256i p;
            if (Q4) {
                __m128i q = _mm_loadu_si128((const __m128i *)(wb + 2));
                __m256i wq = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), m4);
                p = _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(wq, xv), ones), no);
            } else {
                __m256i wq = _mm256_loadu_si256((const __m256i *)(wb + 2));
                p = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(wq, wq), _mm256_sign_epi8(xv, wq)), ones);
            }
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(_cvtsh_ss(h) * xd[b]), acc[r]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) d[r] = hsum8(acc[r]);
}

#define GEMV_ENTRY(WT, Q4)                                                                                \
    static void gemv_##WT(int64_t k, const void *w, size_t ws, int64_t nrows, const void *xv, float *d,  \
                          void *scratch)                                                                  \
    {                                                                                                     \
        const block_q8_0 *x = xv;                                                                         \
        int64_t nb = k / 32, r = 0;                                                                       \
        int32_t *xo = scratch;                                                                            \
        float *xd = (float *)(xo + 8 * nb);                                                               \
        for (int64_t b = 0; b < nb; b++) {                                                                \
            int32_t sum = 0;                                                                              \
            for (int i = 0; i < QK8_0; i++) sum += x[b].qs[i];                                            \
            memset(xo + 8 * b, 0, 32);                                                                    \
            xo[8 * b] = -8 * sum;                                                                         \
            xd[b] = _cvtsh_ss(x[b].d);                                                                    \
        }                                                                                                 \
        const uint8_t *wr = w;                                                                            \
        for (; r + 4 <= nrows; r += 4) gv_rows(Q4, 4, nb, wr + (size_t)r * ws, ws, x, xd, xo, d + r);     \
        for (; r < nrows; r++) gv_rows(Q4, 1, nb, wr + (size_t)r * ws, ws, x, xd, xo, d + r);             \
    }

GEMV_ENTRY(q8_0, 0)
GEMV_ENTRY(q4_0, 1)



/* ===== Packed f32 mat-mat ================================================
 * Micro-tile: 16 weight rows (two ymm of lanes) x 6 activation rows = 12
 * accumulators + 2 weight vectors + 1 broadcast of the 16 ymm registers;
 * 12 FMAs per 8 loads keep both FMA ports fed. */

#define MM_MR 16
#define MM_NR 6

static bool mm_pack_w(vki_type t, int64_t k, const void *w, size_t ws, int nrows, float *dst, float *tmp)
{
    for (int r = 0; r < MM_MR; r++) {
        if (r >= nrows) {
            for (int64_t i = 0; i < k; i++) dst[(size_t)i * MM_MR + (size_t)r] = 0.0f;
            continue;
        }
        const uint8_t *row = (const uint8_t *)w + (size_t)r * ws;
        const float *src = tmp;
        int64_t i = 0;
        if (t == VKI_TYPE_F32) {
            src = (const float *)row;
        } else if (t == VKI_TYPE_F16) {
            for (; i + 8 <= k; i += 8) _mm256_storeu_ps(tmp + i, load8_f16(row, i));
            for (; i < k; i++) tmp[i] = f16_at(row, i);
        } else if (t == VKI_TYPE_BF16) {
            for (; i + 8 <= k; i += 8) _mm256_storeu_ps(tmp + i, load8_bf16(row, i));
            for (; i < k; i++) tmp[i] = bf16_at(row, i);
        } else if (!vki_dequantize_row(t, row, tmp, k)) {
            return false;
        }
        for (i = 0; i < k; i++) dst[(size_t)i * MM_MR + (size_t)r] = src[i];
    }
    return true;
}

/* One panel times one activation group; ROWS: the group's rows read where
 * they are (xr[c], nc real ones; the rest repeat row 0 and are not
 * stored), else the packed group xp [k][MM_NR]. */
INLINE void mm_tile(int64_t k, const float *wp, int nrows, const float *xp, const float *const *xr, int nc,
                    const float *bias, float *d, size_t ds, const bool ROWS)
{
    __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
    float bt[MM_MR] = {0};
    if (bias) {
        for (int r = 0; r < nrows; r++) bt[r] = bias[r];
        b0 = _mm256_loadu_ps(bt);
        b1 = _mm256_loadu_ps(bt + 8);
    }
    const float *x[MM_NR];
    if (ROWS)
        for (int c = 0; c < MM_NR; c++) x[c] = xr[c < nc ? c : 0];
    __m256 a0[MM_NR], a1[MM_NR];
#pragma GCC unroll 6
    for (int c = 0; c < MM_NR; c++) a0[c] = b0, a1[c] = b1;
    for (int64_t i = 0; i < k; i++, wp += MM_MR, xp += MM_NR) {
        __m256 w0 = _mm256_loadu_ps(wp), w1 = _mm256_loadu_ps(wp + 8);
#pragma GCC unroll 6
        for (int c = 0; c < MM_NR; c++) {
            __m256 xb = _mm256_broadcast_ss(ROWS ? x[c] + i : xp + c);
            a0[c] = _mm256_fmadd_ps(w0, xb, a0[c]);
            a1[c] = _mm256_fmadd_ps(w1, xb, a1[c]);
        }
    }
#pragma GCC unroll 6
    for (int c = 0; c < MM_NR; c++) {
        if (c >= nc) break;
        if (nrows == MM_MR) {
            _mm256_storeu_ps(d + (size_t)c * ds, a0[c]);
            _mm256_storeu_ps(d + (size_t)c * ds + 8, a1[c]);
        } else {
            float out[MM_MR];
            _mm256_storeu_ps(out, a0[c]);
            _mm256_storeu_ps(out + 8, a1[c]);
            memcpy(d + (size_t)c * ds, out, (size_t)nrows * sizeof(float));
        }
    }
}

MM_KERNEL_ENTRIES

/* ===== Integer packed mat-mat ============================================
 * Layouts in mq.h; lanes are weight rows (8 a ymm), activation rows are
 * the tile's columns. maddubs multiplies unsigned codes by signed
 * activations into int16 pairs: Q4 codes (<= 15) and Q6_K codes (<= 63)
 * cannot saturate (63 * 127 * 2 < 32767); Q8_0 comes as signed codes, whose
 * sign moves onto the activation (|w| <= 128: 128 * 127 * 2 < 32767).
 *
 * maddubs issues once a cycle here (Zen 3), so it sets the pace: widening
 * each product with madd as well halved the Q4 rate. Unsigned codes sum
 * their int16 pairs over a block first and run 16 rows x 3 columns (two
 * weight loads and three broadcasts feed six maddubs); one core, k = 2048,
 * from L1: Q4_0 19 MACs/cycle before, 34 after. Signed codes need the madd
 * every step and two registers for the sign fix-up, so they keep 8 x 4,
 * where they ran 8% faster than at 16 x 3. */
#define MQ_MR_U 16
#define MQ_NR_U 3
#define MQ_MR_S 8
#define MQ_NR_S 4

/* G16: steps of 4 elements whose maddubs int16 pair sums add up before
 * one madd widens them (mq_int16_steps: Q4 codes 8, Q5 4, Q6_K 2, signed
 * Q8_0 1). */
INLINE void mq_tile(int64_t k, const uint8_t *wp, int nrows, const uint8_t *xp, int nc, const float *bias, float *d,
                    size_t ds, const int BL, const int MIN, const int SIGNED, const int G16)
{
    enum { MH_MAX = MQ_MR_U / 8, NR_MAX = MQ_NR_S };
    const int MH = SIGNED ? MQ_MR_S / 8 : MQ_MR_U / 8, MR = 8 * MH, NR = SIGNED ? MQ_NR_S : MQ_NR_U;
    int64_t nbl = k / BL;
    const float *wsc = (const float *)(wp + (size_t)k * MR), *wmn = wsc + nbl * MR;
    const float *xd = (const float *)(xp + (size_t)k * NR);
    const uint8_t *xa = (const uint8_t *)(xd + nbl * NR);
    float bt[8 * MH_MAX] = {0};
    if (bias)
        for (int r = 0; r < nrows; r++) bt[r] = bias[r];
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 f[MH_MAX][NR_MAX];
    for (int h = 0; h < MH; h++)
#pragma GCC unroll 4
        for (int c = 0; c < NR; c++) f[h][c] = _mm256_loadu_ps(bt + 8 * h);
    for (int64_t b = 0; b < nbl; b++) {
        __m256i acc[MH_MAX][NR_MAX];
        const uint8_t *xab = xa + (size_t)b * NR * 4;
        const uint8_t *wq = wp + (size_t)b * BL * MR, *xq = xp + (size_t)b * BL * NR;
#pragma GCC unroll 8
        for (int s0 = 0; s0 < BL / 4; s0 += G16) {
            __m256i a16[MH_MAX][NR_MAX];
#pragma GCC unroll 8
            for (int s = s0; s < s0 + G16; s++) {
                __m256i w[MH_MAX], aw[MH_MAX];
#pragma GCC unroll 2
                for (int h = 0; h < MH; h++) {
                    w[h] = _mm256_loadu_si256((const __m256i *)(wq + (s * MR + 8 * h) * 4));
                    aw[h] = SIGNED ? _mm256_sign_epi8(w[h], w[h]) : w[h];
                }
#pragma GCC unroll 4
                for (int c = 0; c < NR; c++) {
                    int32_t v;
                    memcpy(&v, xq + (s * NR + c) * 4, 4);
                    __m256i xb = _mm256_set1_epi32(v);
#pragma GCC unroll 2
                    for (int h = 0; h < MH; h++) {
                        __m256i p = _mm256_maddubs_epi16(aw[h], SIGNED ? _mm256_sign_epi8(xb, w[h]) : xb);
                        a16[h][c] = s == s0 ? p : _mm256_add_epi16(a16[h][c], p);
                        KEEP_ORDER(a16[h][c]);
                    }
                }
            }
#pragma GCC unroll 4
            for (int c = 0; c < NR; c++) {
                int32_t a;
                memcpy(&a, xab + 4 * c, 4);
#pragma GCC unroll 2
                for (int h = 0; h < MH; h++) {
                    __m256i p = _mm256_madd_epi16(a16[h][c], ones);
                    /* Offset types start from the activation term -off * sum p. */
                    if (s0 == 0) acc[h][c] = MIN ? p : _mm256_add_epi32(p, _mm256_set1_epi32(a));
                    else acc[h][c] = _mm256_add_epi32(acc[h][c], p);
                }
            }
        }
#pragma GCC unroll 4
        for (int c = 0; c < NR; c++) {
            __m256 xs = _mm256_set1_ps(xd[b * NR + c]);
#pragma GCC unroll 2
            for (int h = 0; h < MH; h++)
                f[h][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[h][c]),
                                          _mm256_mul_ps(_mm256_loadu_ps(wsc + b * MR + 8 * h), xs), f[h][c]);
        }
        if (MIN) {
#pragma GCC unroll 4
            for (int c = 0; c < NR; c++) {
                float a;
                memcpy(&a, xab + 4 * c, 4);
                __m256 av = _mm256_set1_ps(a);
#pragma GCC unroll 2
                for (int h = 0; h < MH; h++)
                    f[h][c] = _mm256_fnmadd_ps(_mm256_loadu_ps(wmn + b * MR + 8 * h), av, f[h][c]);
            }
        }
    }
    for (int c = 0; c < nc && c < NR; c++) {
        float out[8 * MH_MAX], *o = nrows == MR ? d + (size_t)c * ds : out;
        for (int h = 0; h < MH; h++) _mm256_storeu_ps(o + 8 * h, f[h][c]);
        if (o == out) memcpy(d + (size_t)c * ds, out, (size_t)nrows * sizeof(float));
    }
}

/* One instance per (block, min, int16 steps) that mq_format's types use:
 * Q4_0 and Q5_0; Q4_1/Q4_K and Q5_1/Q5_K; Q6_K, Q3_K and Q2_K. A format
 * without one runs its block's tile widening every step. */
static void mq_kernel(const mq_fmt *f, int64_t k, const uint8_t *wp, int nrows, const uint8_t *xp, int nc,
                      const float *bias, float *d, size_t ds)
{
#define MQ_CASE(BL, MIN, G)                                                                     \
    if (f->bl == BL && f->has_min == MIN && g == G) {                                          \
        mq_tile(k, wp, nrows, xp, nc, bias, d, ds, BL, MIN, 0, G);                              \
        return;                                                                                 \
    }
    if (f->is_signed) {
        mq_tile(k, wp, nrows, xp, nc, bias, d, ds, 32, 0, 1, 1);
        return;
    }
    int g = mq_int16_steps(f);
    MQ_CASE(32, 0, 8) MQ_CASE(32, 0, 4) MQ_CASE(32, 1, 8) MQ_CASE(32, 1, 4)
    MQ_CASE(16, 0, 2) MQ_CASE(16, 0, 4) MQ_CASE(16, 1, 4)
#undef MQ_CASE
    if (f->bl == 16) f->has_min ? mq_tile(k, wp, nrows, xp, nc, bias, d, ds, 16, 1, 0, 1)
                                : mq_tile(k, wp, nrows, xp, nc, bias, d, ds, 16, 0, 0, 1);
    else f->has_min ? mq_tile(k, wp, nrows, xp, nc, bias, d, ds, 32, 1, 0, 1)
                    : mq_tile(k, wp, nrows, xp, nc, bias, d, ds, 32, 0, 0, 1);
}

/* ===== Vector helpers ==================================================== */

DOT_ENTRY(f32, float)
DOT_ENTRY(f16, uint16_t)

static void mad_f32(int64_t n, float *y, const float *x, float s)
{
    __m256 sv = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(sv, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += s * x[i];
}

static void mad_f16(int64_t n, float *y, const uint16_t *x, float s)
{
    __m256 sv = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(sv, load8_f16(x, i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += s * _cvtsh_ss(x[i]);
}

static void scale_f32(int64_t n, float *y, float s)
{
    __m256 sv = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(sv, _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] *= s;
}

void cpu_kernels_init_avx2(cpu_kernels *k)
{
    k->gemm[VKI_TYPE_F32] = gemm_f32;
    k->gemm[VKI_TYPE_F16] = gemm_f16;
    k->gemm[VKI_TYPE_BF16] = gemm_bf16;
    k->gemm[VKI_TYPE_Q8_0] = gemm_q8_0;
    k->gemm[VKI_TYPE_Q4_0] = gemm_q4_0;
    k->gemm[VKI_TYPE_Q4_1] = gemm_q4_1;
    k->gemm[VKI_TYPE_Q5_0] = gemm_q5_0;
    k->gemm[VKI_TYPE_Q5_1] = gemm_q5_1;
    k->gemv[VKI_TYPE_F32] = gemv_f32;
    k->gemv[VKI_TYPE_F16] = gemv_f16;
    k->gemv[VKI_TYPE_BF16] = gemv_bf16;
    k->gemv[VKI_TYPE_Q8_0] = gemv_q8_0;
    k->gemv[VKI_TYPE_Q4_0] = gemv_q4_0;
    k->mm_mr = MM_MR;
    k->mm_nr = MM_NR;
    k->mm_pack_w = mm_pack_w;
    k->mm_kernel = mm_kernel;
    k->mm_kernel_rows = mm_kernel_rows;
    k->mq_mr[0] = MQ_MR_U;
    k->mq_nr[0] = MQ_NR_U;
    k->mq_mr[1] = MQ_MR_S;
    k->mq_nr[1] = MQ_NR_S;
    k->mq_signed_q8 = true;
    k->mq_kernel = mq_kernel;
    k->dot_f32 = dot_f32;
    k->dot_f16 = dot_f16;
    k->mad_f32 = mad_f32;
    k->mad_f16 = mad_f16;
    k->scale_f32 = scale_f32;
    cpu_act_init_avx2(k);
    cpu_kquants_init_avx2(k);
    cpu_attn_init_avx2(k);
    cpu_quant_init_avx2(k);
}
