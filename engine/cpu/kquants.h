/*
 * kquants.h: dot products of K-quant weight blocks with block_q8_K
 * activations, in plain integer C. Included by kernels_scalar.c and by the
 * SIMD files (where the compiler vectorises the integer loops with that
 * file's ISA flags). Exact integer sums; one float multiply per sub-block.
 */
#ifndef VKI_CPU_KQUANTS_H
#define VKI_CPU_KQUANTS_H

#include <stddef.h>

#include "loader/types.h"
#include "util.h"

/* The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block. */
static inline void kq_scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* One Q4_K or Q5_K block's integer sums against a Q8_K block: sumi over
 * the scaled codes, summ over the mins times the activation sums. qh: the
 * Q5_K block's high bits (bit 2j of qh[l] tops the low nibble of 64-group
 * j, bit 2j + 1 its high nibble), NULL for Q4_K. */
static inline void kq_sums_k45(const uint8_t *scales, const uint8_t *qs, const uint8_t *qh, const block_q8_K *x,
                               int32_t *sumi, int32_t *summ)
{
    const int8_t *xq = x->qs;
    *sumi = *summ = 0;
    for (int j = 0; j < QK_K / 64; j++, qs += 32, xq += 64) {
        uint8_t sc0, m0, sc1, m1;
        kq_scale_min_k4(2 * j, scales, &sc0, &m0);
        kq_scale_min_k4(2 * j + 1, scales, &sc1, &m1);
        int32_t lo = 0, hi = 0;
        for (int l = 0; l < 32; l++) {
            int h0 = qh ? ((qh[l] >> (2 * j)) & 1) << 4 : 0, h1 = qh ? ((qh[l] >> (2 * j + 1)) & 1) << 4 : 0;
            lo += ((qs[l] & 0xF) | h0) * xq[l];
            hi += ((qs[l] >> 4) | h1) * xq[l + 32];
        }
        *sumi += sc0 * lo + sc1 * hi;
        *summ += m0 * (x->bsums[4 * j] + x->bsums[4 * j + 1]) + m1 * (x->bsums[4 * j + 2] + x->bsums[4 * j + 3]);
    }
}

static inline float kq_dot_q4_K_q8_K(int64_t k, const block_q4_K *w, const block_q8_K *x)
{
    float sum = 0.0f;
    for (int64_t b = 0; b < k / QK_K; b++) {
        int32_t sumi, summ;
        kq_sums_k45(w[b].scales, w[b].qs, NULL, &x[b], &sumi, &summ);
        sum += x[b].d * (vki_fp16_to_fp32(w[b].d) * (float)sumi - vki_fp16_to_fp32(w[b].dmin) * (float)summ);
    }
    return sum;
}

/* Q2_K and Q3_K: 16 sub-blocks of 16. Element 128 n + 32 j + 16 h + l (half
 * n, plane j, h = 0/1) is the 2-bit plane j of qs[32 n + 16 h + l]; its
 * sub-block is 8 n + 2 j + h, whose Q8_K activation sum is bsums[8 n + 2 j + h]. */
static inline int kq_plane2(const uint8_t *q, int n, int j, int h, int l)
{
    return (q[32 * n + 16 * h + l] >> (2 * j)) & 3;
}

/* Q2_K: a 4-bit scale (low nibble) and a 4-bit min (high) per sub-block. */
static inline float kq_dot_q2_K_q8_K(int64_t k, const block_q2_K *w, const block_q8_K *x)
{
    float sum = 0.0f;
    for (int64_t b = 0; b < k / QK_K; b++) {
        int32_t sumi = 0, summ = 0;
        for (int n = 0; n < 2; n++)
            for (int j = 0; j < 4; j++)
                for (int h = 0; h < 2; h++) {
                    int is = 8 * n + 2 * j + h;
                    const int8_t *xq = x[b].qs + 16 * is;
                    int32_t s = 0;
                    for (int l = 0; l < 16; l++) s += kq_plane2(w[b].qs, n, j, h, l) * xq[l];
                    sumi += (w[b].scales[is] & 0xF) * s;
                    summ += (w[b].scales[is] >> 4) * x[b].bsums[is];
                }
        sum += x[b].d * (vki_fp16_to_fp32(w[b].d) * (float)sumi - vki_fp16_to_fp32(w[b].dmin) * (float)summ);
    }
    return sum;
}

/* Q3_K's signed 6-bit scale (stored +32) of sub-block s: the low nibble in
 * scales[s] (s < 8) or the high nibble of scales[s - 8], the two high bits
 * in scales[8 + s % 4] at bit 2 (s / 4). */
static inline int kq_q3_K_scale(const uint8_t *sc, int s)
{
    int lo = s < 8 ? (sc[s] & 0xF) : (sc[s - 8] >> 4);
    int hi = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
    return (lo | hi << 4) - 32;
}

/* Q3_K: a code is its 2-bit plane minus 4 unless bit 4 n + j of
 * hmask[16 h + l] is set: -4..3. */
static inline float kq_dot_q3_K_q8_K(int64_t k, const block_q3_K *w, const block_q8_K *x)
{
    float sum = 0.0f;
    for (int64_t b = 0; b < k / QK_K; b++) {
        int32_t sumi = 0;
        for (int n = 0; n < 2; n++)
            for (int j = 0; j < 4; j++)
                for (int h = 0; h < 2; h++) {
                    int is = 8 * n + 2 * j + h;
                    const int8_t *xq = x[b].qs + 16 * is;
                    int32_t s = 0;
                    for (int l = 0; l < 16; l++) {
                        int hbit = (w[b].hmask[16 * h + l] >> (4 * n + j)) & 1;
                        s += (kq_plane2(w[b].qs, n, j, h, l) - (hbit ? 0 : 4)) * xq[l];
                    }
                    sumi += kq_q3_K_scale(w[b].scales, is) * s;
                }
        sum += x[b].d * vki_fp16_to_fp32(w[b].d) * (float)sumi;
    }
    return sum;
}

/* Q5_K is Q4_K with a fifth bit per code (kq_sums_k45). */
static inline float kq_dot_q5_K_q8_K(int64_t k, const block_q5_K *w, const block_q8_K *x)
{
    float sum = 0.0f;
    for (int64_t b = 0; b < k / QK_K; b++) {
        int32_t sumi, summ;
        kq_sums_k45(w[b].scales, w[b].qs, w[b].qh, &x[b], &sumi, &summ);
        sum += x[b].d * (vki_fp16_to_fp32(w[b].d) * (float)sumi - vki_fp16_to_fp32(w[b].dmin) * (float)summ);
    }
    return sum;
}

static inline float kq_dot_q6_K_q8_K(int64_t k, const block_q6_K *w, const block_q8_K *x)
{
    float sum = 0.0f;
    for (int64_t b = 0; b < k / QK_K; b++) {
        const uint8_t *ql = w[b].ql, *qh = w[b].qh;
        const int8_t *sc = w[b].scales, *xq = x[b].qs;
        int32_t sumi = 0;
        for (int half = 0; half < 2; half++) {
            /* 16-element groups l in [0,16) and [16,32) of each of the four
             * 32-wide quarter rows use scales sc[is + 2q]. */
            for (int is = 0; is < 2; is++) {
                int32_t s[4] = {0, 0, 0, 0};
                for (int l = 16 * is; l < 16 * is + 16; l++) {
                    int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    s[0] += q1 * xq[l];
                    s[1] += q2 * xq[l + 32];
                    s[2] += q3 * xq[l + 64];
                    s[3] += q4 * xq[l + 96];
                }
                for (int q = 0; q < 4; q++) sumi += sc[is + 2 * q] * s[q];
            }
            ql += 64;
            qh += 32;
            sc += 8;
            xq += 128;
        }
        sum += x[b].d * vki_fp16_to_fp32(w[b].d) * (float)sumi;
    }
    return sum;
}

#endif
