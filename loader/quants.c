/*
 * quants.c: reference dequantizers (exact to ggml's dequantize_row_* and the
 * GGUF block layouts) and round-to-nearest reference quantizers for the test
 * suite and the model generator. Scalar and written for clarity: backends have
 * their own fast paths and are checked against these.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "loader/types.h"
#include "util.h"

#define H2F(h) vki_fp16_to_fp32(h)
#define F2H(f) vki_fp32_to_fp16(f)

/* ===== Dequantization ==================================================== */

static void deq_q4_0(const block_q4_0 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += QK4_0) {
        const float d = H2F(x[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            y[j] = (float)((x[i].qs[j] & 0x0F) - 8) * d;
            y[j + QK4_0 / 2] = (float)((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

static void deq_q4_1(const block_q4_1 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += QK4_1) {
        const float d = H2F(x[i].d), m = H2F(x[i].m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            y[j] = (float)(x[i].qs[j] & 0x0F) * d + m;
            y[j + QK4_1 / 2] = (float)(x[i].qs[j] >> 4) * d + m;
        }
    }
}

/* qh is four bytes read as a little-endian u32: bit j is the fifth bit of
 * element j. */
static uint32_t load_qh(const uint8_t qh[4])
{
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

static void deq_q5_0(const block_q5_0 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += QK5_0) {
        const float d = H2F(x[i].d);
        const uint32_t qh = load_qh(x[i].qh);
        for (int j = 0; j < QK5_0 / 2; j++) {
            const int xh0 = (int)(((qh >> j) << 4) & 0x10);
            const int xh1 = (int)((qh >> (j + 12)) & 0x10);
            y[j] = (float)(((x[i].qs[j] & 0x0F) | xh0) - 16) * d;
            y[j + QK5_0 / 2] = (float)(((x[i].qs[j] >> 4) | xh1) - 16) * d;
        }
    }
}

static void deq_q5_1(const block_q5_1 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += QK5_1) {
        const float d = H2F(x[i].d), m = H2F(x[i].m);
        const uint32_t qh = load_qh(x[i].qh);
        for (int j = 0; j < QK5_1 / 2; j++) {
            const int xh0 = (int)(((qh >> j) << 4) & 0x10);
            const int xh1 = (int)((qh >> (j + 12)) & 0x10);
            y[j] = (float)((x[i].qs[j] & 0x0F) | xh0) * d + m;
            y[j + QK5_1 / 2] = (float)((x[i].qs[j] >> 4) | xh1) * d + m;
        }
    }
}

static void deq_q8_0(const block_q8_0 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += QK8_0) {
        const float d = H2F(x[i].d);
        for (int j = 0; j < QK8_0; j++) y[j] = (float)x[i].qs[j] * d;
    }
}

static void deq_q8_1(const block_q8_1 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += QK8_1) {
        const float d = H2F(x[i].d); /* s (= d * sum qs) is only for dot products */
        for (int j = 0; j < QK8_1; j++) y[j] = (float)x[i].qs[j] * d;
    }
}

/* Q2_K: 16 sub-blocks of 16; scales[is] holds a 4-bit scale (low) and a 4-bit
 * min (high); each 32-byte run of qs holds four 2-bit planes. */
static void deq_q2_K(const block_q2_K *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float d = H2F(x[i].d), min = H2F(x[i].dmin);
        const uint8_t *q = x[i].qs;
        int is = 0;
        for (int n = 0; n < QK_K; n += 128) {
            int shift = 0;
            for (int j = 0; j < 4; j++) {
                uint8_t sc = x[i].scales[is++];
                float dl = d * (float)(sc & 0xF), ml = min * (float)(sc >> 4);
                for (int l = 0; l < 16; l++) *y++ = dl * (float)((q[l] >> shift) & 3) - ml;
                sc = x[i].scales[is++];
                dl = d * (float)(sc & 0xF);
                ml = min * (float)(sc >> 4);
                for (int l = 0; l < 16; l++) *y++ = dl * (float)((q[l + 16] >> shift) & 3) - ml;
                shift += 2;
            }
            q += 32;
        }
    }
}

/* The 6-bit signed scale (stored +32) of Q3_K sub-block s (0..15): the low
 * nibble sits in scales[s] (s < 8) or the high nibble of scales[s - 8], the
 * two high bits in scales[8 + s % 4] at bit 2 * (s / 4). This is ggml's
 * kmask1/kmask2 shuffle on the u32 words, written byte by byte. */
static int q3_K_scale(const uint8_t *sc, int s)
{
    const int lo = s < 8 ? (sc[s] & 0xF) : (sc[s - 8] >> 4);
    const int hi = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
    return (lo | hi << 4) - 32;
}

static void deq_q3_K(const block_q3_K *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float d_all = H2F(x[i].d);
        const uint8_t *q = x[i].qs, *hm = x[i].hmask;
        uint8_t m = 1;
        int is = 0;
        for (int n = 0; n < QK_K; n += 128) {
            int shift = 0;
            for (int j = 0; j < 4; j++) {
                float dl = d_all * (float)q3_K_scale(x[i].scales, is++);
                for (int l = 0; l < 16; l++)
                    *y++ = dl * (float)(((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                dl = d_all * (float)q3_K_scale(x[i].scales, is++);
                for (int l = 0; l < 16; l++)
                    *y++ = dl * (float)(((q[l + 16] >> shift) & 3) - ((hm[l + 16] & m) ? 0 : 4));
                shift += 2;
                m = (uint8_t)(m << 1);
            }
            q += 32;
        }
    }
}

/* ggml's get_scale_min_k4: 6-bit scale and min of sub-block j (0..7) packed
 * into the 12 scale bytes of a Q4_K/Q5_K block. */
static void scale_min_k4(int j, const uint8_t *q, int *d, int *m)
{
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static void deq_q4_K(const block_q4_K *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float d = H2F(x[i].d), min = H2F(x[i].dmin);
        const uint8_t *q = x[i].qs;
        for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, q += 32) {
            int sc, m;
            scale_min_k4(is, x[i].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = min * (float)m;
            scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = min * (float)m;
            for (int l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

static void deq_q5_K(const block_q5_K *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float d = H2F(x[i].d), min = H2F(x[i].dmin);
        const uint8_t *ql = x[i].qs, *qh = x[i].qh;
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, ql += 32) {
            int sc, m;
            scale_min_k4(is, x[i].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = min * (float)m;
            scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = min * (float)m;
            for (int l = 0; l < 32; l++) *y++ = d1 * (float)((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (float)((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            u1 = (uint8_t)(u1 << 2);
            u2 = (uint8_t)(u2 << 2);
        }
    }
}

/* Q6_K: per 128 elements, ql holds 64 bytes of low nibbles and qh 32 bytes
 * of 2-bit high parts; element l + 32 k (k = 0..3) takes ql[l] or ql[l + 32]
 * (low nibble for k < 2, high for k >= 2) and bits 2k..2k+1 of qh[l]. */
static void deq_q6_K(const block_q6_K *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float d = H2F(x[i].d);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int n = 0; n < QK_K; n += 128) {
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * (float)sc[is] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
            y += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}

static void deq_q8_K(const block_q8_K *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += QK_K)
        for (int j = 0; j < QK_K; j++) y[j] = x[i].d * (float)x[i].qs[j];
}

bool vki_dequantize_row(vki_type t, const void *src, float *dst, int64_t n)
{
    const vki_type_traits *tr = vki_type_get(t);
    if (!tr->supported || n < 0 || n % tr->block_size) return false;
    const int64_t nb = n / tr->block_size;
    const uint8_t *b = src;
    switch (t) {
    case VKI_TYPE_F32: memcpy(dst, src, (size_t)n * sizeof(float)); return true;
    case VKI_TYPE_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, b + 2 * i, 2);
            dst[i] = vki_fp16_to_fp32(h);
        }
        return true;
    case VKI_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, b + 2 * i, 2);
            dst[i] = vki_bf16_to_fp32(h);
        }
        return true;
    case VKI_TYPE_F64:
        for (int64_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, b + 8 * i, 8);
            dst[i] = (float)v;
        }
        return true;
    case VKI_TYPE_I8:
        for (int64_t i = 0; i < n; i++) dst[i] = (float)(int8_t)b[i];
        return true;
    case VKI_TYPE_U8:
        for (int64_t i = 0; i < n; i++) dst[i] = (float)b[i];
        return true;
    case VKI_TYPE_I16:
        for (int64_t i = 0; i < n; i++) {
            int16_t v;
            memcpy(&v, b + 2 * i, 2);
            dst[i] = (float)v;
        }
        return true;
    case VKI_TYPE_I32:
        for (int64_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, b + 4 * i, 4);
            dst[i] = (float)v;
        }
        return true;
    case VKI_TYPE_I64:
        for (int64_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, b + 8 * i, 8);
            dst[i] = (float)v;
        }
        return true;
    case VKI_TYPE_Q4_0: deq_q4_0(src, dst, nb); return true;
    case VKI_TYPE_Q4_1: deq_q4_1(src, dst, nb); return true;
    case VKI_TYPE_Q5_0: deq_q5_0(src, dst, nb); return true;
    case VKI_TYPE_Q5_1: deq_q5_1(src, dst, nb); return true;
    case VKI_TYPE_Q8_0: deq_q8_0(src, dst, nb); return true;
    case VKI_TYPE_Q8_1: deq_q8_1(src, dst, nb); return true;
    case VKI_TYPE_Q2_K: deq_q2_K(src, dst, nb); return true;
    case VKI_TYPE_Q3_K: deq_q3_K(src, dst, nb); return true;
    case VKI_TYPE_Q4_K: deq_q4_K(src, dst, nb); return true;
    case VKI_TYPE_Q5_K: deq_q5_K(src, dst, nb); return true;
    case VKI_TYPE_Q6_K: deq_q6_K(src, dst, nb); return true;
    case VKI_TYPE_Q8_K: deq_q8_K(src, dst, nb); return true;
    default: return false;
    }
}

/* ===== Quantization (round to nearest) =================================== */

/* The element of largest magnitude, with its sign (ggml's "max" that makes
 * the extreme land exactly on the most negative level). */
static float signed_absmax(const float *x, int n)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }
static int nearest(float v) { return (int)lroundf(v); }

static void q_q4_0(const float *x, block_q4_0 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += QK4_0) {
        const float d = signed_absmax(x, QK4_0) / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = F2H(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const int a = VKI_MIN(15, (int)(int8_t)(x[j] * id + 8.5f));
            const int b = VKI_MIN(15, (int)(int8_t)(x[j + QK4_0 / 2] * id + 8.5f));
            y[i].qs[j] = (uint8_t)(a | b << 4);
        }
    }
}

static void min_max(const float *x, int n, float *mn, float *mx)
{
    *mn = FLT_MAX;
    *mx = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < *mn) *mn = x[j];
        if (x[j] > *mx) *mx = x[j];
    }
}

static void q_q4_1(const float *x, block_q4_1 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += QK4_1) {
        float mn, mx;
        min_max(x, QK4_1, &mn, &mx);
        const float d = (mx - mn) / 15.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = F2H(d);
        y[i].m = F2H(mn);
        for (int j = 0; j < QK4_1 / 2; j++) {
            const int a = VKI_MIN(15, (int)(int8_t)((x[j] - mn) * id + 0.5f));
            const int b = VKI_MIN(15, (int)(int8_t)((x[j + QK4_1 / 2] - mn) * id + 0.5f));
            y[i].qs[j] = (uint8_t)(a | b << 4);
        }
    }
}

static void put_qh(uint8_t qh[4], uint32_t v)
{
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(v >> (8 * k));
}

static void q_q5_0(const float *x, block_q5_0 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += QK5_0) {
        const float d = signed_absmax(x, QK5_0) / -16.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = F2H(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_0 / 2; j++) {
            const int a = VKI_MIN(31, (int)(int8_t)(x[j] * id + 16.5f));
            const int b = VKI_MIN(31, (int)(int8_t)(x[j + QK5_0 / 2] * id + 16.5f));
            y[i].qs[j] = (uint8_t)((a & 0xF) | (b & 0xF) << 4);
            qh |= (uint32_t)((a & 0x10) >> 4) << j;
            qh |= (uint32_t)((b & 0x10) >> 4) << (j + QK5_0 / 2);
        }
        put_qh(y[i].qh, qh);
    }
}

static void q_q5_1(const float *x, block_q5_1 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += QK5_1) {
        float mn, mx;
        min_max(x, QK5_1, &mn, &mx);
        const float d = (mx - mn) / 31.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = F2H(d);
        y[i].m = F2H(mn);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_1 / 2; j++) {
            const int a = VKI_MIN(31, (int)((x[j] - mn) * id + 0.5f));
            const int b = VKI_MIN(31, (int)((x[j + QK5_1 / 2] - mn) * id + 0.5f));
            y[i].qs[j] = (uint8_t)((a & 0xF) | (b & 0xF) << 4);
            qh |= (uint32_t)((a & 0x10) >> 4) << j;
            qh |= (uint32_t)((b & 0x10) >> 4) << (j + QK5_1 / 2);
        }
        put_qh(y[i].qh, qh);
    }
}

static void q_q8_0(const float *x, block_q8_0 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += QK8_0) {
        const float amax = fabsf(signed_absmax(x, QK8_0));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = F2H(d);
        for (int j = 0; j < QK8_0; j++) y[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

static void q_q8_1(const float *x, block_q8_1 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += QK8_1) {
        const float amax = fabsf(signed_absmax(x, QK8_1));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        y[i].d = F2H(d);
        for (int j = 0; j < QK8_1; j++) {
            y[i].qs[j] = (int8_t)roundf(x[j] * id);
            sum += y[i].qs[j];
        }
        y[i].s = F2H((float)sum * d);
    }
}

/* Affine K-quants (Q2_K, Q4_K, Q5_K): per sub-block of `sub` elements a
 * scale (x_max - x_min) / nmax and a min -x_min >= 0, both then quantized
 * to `sbits` bits against the block's d and dmin. Writes the integer scales
 * and mins and returns d, dmin through pointers; `q` gets 0..nmax levels. */
static void affine_k(const float *x, int n_sub, int sub, int nmax, int smax, uint8_t *ls, uint8_t *lm,
                     uint8_t *q, vki_half *hd, vki_half *hdmin)
{
    float scale[16], minv[16], max_scale = 0.0f, max_min = 0.0f;
    for (int s = 0; s < n_sub; s++) {
        float mn, mx;
        min_max(x + s * sub, sub, &mn, &mx);
        if (mn > 0.0f) mn = 0.0f;
        scale[s] = (mx - mn) / (float)nmax;
        minv[s] = -mn;
        max_scale = VKI_MAX(max_scale, scale[s]);
        max_min = VKI_MAX(max_min, minv[s]);
    }
    *hd = F2H(max_scale / (float)smax);
    *hdmin = F2H(max_min / (float)smax);
    const float d = H2F(*hd), dmin = H2F(*hdmin);
    for (int s = 0; s < n_sub; s++) {
        ls[s] = (uint8_t)(d > 0.0f ? clampi(nearest(scale[s] / d), 0, smax) : 0);
        lm[s] = (uint8_t)(dmin > 0.0f ? clampi(nearest(minv[s] / dmin), 0, smax) : 0);
        const float dl = d * (float)ls[s], ml = dmin * (float)lm[s];
        for (int j = 0; j < sub; j++)
            q[s * sub + j] = (uint8_t)(dl > 0.0f ? clampi(nearest((x[s * sub + j] + ml) / dl), 0, nmax) : 0);
    }
}

static void q_q2_K(const float *x, block_q2_K *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        uint8_t ls[16], lm[16], q[QK_K];
        affine_k(x, 16, 16, 3, 15, ls, lm, q, &y[i].d, &y[i].dmin);
        for (int s = 0; s < 16; s++) y[i].scales[s] = (uint8_t)(ls[s] | lm[s] << 4);
        memset(y[i].qs, 0, sizeof y[i].qs);
        /* element e: chunk c = e / 128, plane j = (e % 128) / 32 at bit 2j,
         * byte 32c + e % 32 */
        for (int e = 0; e < QK_K; e++)
            y[i].qs[32 * (e / 128) + e % 32] |= (uint8_t)(q[e] << (2 * ((e % 128) / 32)));
    }
}

static void q_q3_K(const float *x, block_q3_K *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        float scale[16];
        for (int s = 0; s < 16; s++) scale[s] = signed_absmax(x + 16 * s, 16) / -4.0f;
        const float d = signed_absmax(scale, 16) / -32.0f;
        y[i].d = F2H(d);
        const float dd = H2F(y[i].d);
        memset(y[i].scales, 0, sizeof y[i].scales);
        memset(y[i].qs, 0, sizeof y[i].qs);
        memset(y[i].hmask, 0, sizeof y[i].hmask);
        for (int s = 0; s < 16; s++) {
            const int sc = dd != 0.0f ? clampi(nearest(scale[s] / dd), -32, 31) : 0;
            const int v = sc + 32;
            if (s < 8) y[i].scales[s] |= (uint8_t)(v & 0xF);
            else y[i].scales[s - 8] |= (uint8_t)((v & 0xF) << 4);
            y[i].scales[8 + s % 4] |= (uint8_t)((v >> 4) << (2 * (s / 4)));
            const float dl = dd * (float)sc;
            for (int j = 0; j < 16; j++) {
                const int e = 16 * s + j;
                const int qv = dl != 0.0f ? clampi(nearest(x[e] / dl), -4, 3) : 0;
                const int u = qv + 4; /* low 2 bits in qs, bit 2 in hmask */
                const int c = e / 128, plane = (e % 128) / 32, l = e % 32;
                y[i].qs[32 * c + l] |= (uint8_t)((u & 3) << (2 * plane));
                if (u & 4) y[i].hmask[l] |= (uint8_t)(1u << (4 * c + plane));
            }
        }
    }
}

/* Packs 6-bit scales/mins of 8 sub-blocks as get_scale_min_k4 reads them. */
static void pack_k4(uint8_t out[12], const uint8_t ls[8], const uint8_t lm[8])
{
    memset(out, 0, 12);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            out[j] |= ls[j] & 63;
            out[j + 4] |= lm[j] & 63;
        } else {
            out[j + 4] = (uint8_t)((ls[j] & 0xF) | (lm[j] & 0xF) << 4);
            out[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            out[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

static void q_q4_K(const float *x, block_q4_K *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        uint8_t ls[8], lm[8], q[QK_K];
        affine_k(x, 8, 32, 15, 63, ls, lm, q, &y[i].d, &y[i].dmin);
        pack_k4(y[i].scales, ls, lm);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                y[i].qs[32 * c + l] = (uint8_t)(q[64 * c + l] | q[64 * c + 32 + l] << 4);
    }
}

static void q_q5_K(const float *x, block_q5_K *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        uint8_t ls[8], lm[8], q[QK_K];
        affine_k(x, 8, 32, 31, 63, ls, lm, q, &y[i].d, &y[i].dmin);
        pack_k4(y[i].scales, ls, lm);
        memset(y[i].qh, 0, sizeof y[i].qh);
        for (int c = 0; c < 4; c++) {
            for (int l = 0; l < 32; l++) {
                const uint8_t a = q[64 * c + l], b = q[64 * c + 32 + l];
                y[i].qs[32 * c + l] = (uint8_t)((a & 0xF) | (b & 0xF) << 4);
                y[i].qh[l] |= (uint8_t)(((a >> 4) << (2 * c)) | ((b >> 4) << (2 * c + 1)));
            }
        }
    }
}

static void q_q6_K(const float *x, block_q6_K *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        float scale[16];
        for (int s = 0; s < 16; s++) scale[s] = signed_absmax(x + 16 * s, 16) / -32.0f;
        const float d = signed_absmax(scale, 16) / -128.0f;
        y[i].d = F2H(d);
        const float dd = H2F(y[i].d);
        memset(y[i].ql, 0, sizeof y[i].ql);
        memset(y[i].qh, 0, sizeof y[i].qh);
        for (int s = 0; s < 16; s++) {
            const int sc = dd != 0.0f ? clampi(nearest(scale[s] / dd), -128, 127) : 0;
            y[i].scales[s] = (int8_t)sc;
            const float dl = dd * (float)sc;
            for (int j = 0; j < 16; j++) {
                const int e = 16 * s + j;
                const int u = (dl != 0.0f ? clampi(nearest(x[e] / dl), -32, 31) : 0) + 32;
                const int n = e / 128, k = (e % 128) / 32, l = e % 32;
                uint8_t *ql = y[i].ql + 64 * n + l + (k & 1) * 32;
                *ql |= (uint8_t)((u & 0xF) << (k >= 2 ? 4 : 0));
                y[i].qh[32 * n + l] |= (uint8_t)((u >> 4) << (2 * k));
            }
        }
    }
}

static void q_q8_K(const float *x, block_q8_K *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        const float max = signed_absmax(x, QK_K);
        if (max == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        /* ggml's scale: the extreme maps to -128 so that all 256 levels of
         * int8 are usable */
        const float iscale = -128.0f / max;
        for (int j = 0; j < QK_K; j++) y[i].qs[j] = (int8_t)VKI_MIN(127, nearest(iscale * x[j]));
        for (int j = 0; j < QK_K / 16; j++) {
            int sum = 0;
            for (int k = 0; k < 16; k++) sum += y[i].qs[16 * j + k];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1.0f / iscale;
    }
}

bool vki_quantize_row(vki_type t, const float *src, void *dst, int64_t n)
{
    const vki_type_traits *tr = vki_type_get(t);
    if (!tr->block_size || n < 0 || n % tr->block_size) return false;
    const int64_t nb = n / tr->block_size;
    uint8_t *b = dst;
    switch (t) {
    case VKI_TYPE_F32: memcpy(dst, src, (size_t)n * sizeof(float)); return true;
    case VKI_TYPE_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = vki_fp32_to_fp16(src[i]);
            memcpy(b + 2 * i, &h, 2);
        }
        return true;
    case VKI_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = vki_fp32_to_bf16(src[i]);
            memcpy(b + 2 * i, &h, 2);
        }
        return true;
    case VKI_TYPE_Q4_0: q_q4_0(src, dst, nb); return true;
    case VKI_TYPE_Q4_1: q_q4_1(src, dst, nb); return true;
    case VKI_TYPE_Q5_0: q_q5_0(src, dst, nb); return true;
    case VKI_TYPE_Q5_1: q_q5_1(src, dst, nb); return true;
    case VKI_TYPE_Q8_0: q_q8_0(src, dst, nb); return true;
    case VKI_TYPE_Q8_1: q_q8_1(src, dst, nb); return true;
    case VKI_TYPE_Q2_K: q_q2_K(src, dst, nb); return true;
    case VKI_TYPE_Q3_K: q_q3_K(src, dst, nb); return true;
    case VKI_TYPE_Q4_K: q_q4_K(src, dst, nb); return true;
    case VKI_TYPE_Q5_K: q_q5_K(src, dst, nb); return true;
    case VKI_TYPE_Q6_K: q_q6_K(src, dst, nb); return true;
    case VKI_TYPE_Q8_K: q_q8_K(src, dst, nb); return true;
    default: return false;
    }
}
