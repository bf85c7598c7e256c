/*
 * mq.h: the packed layouts of the integer mat-mat ("mq") path, and the
 * scalar weight packer each ISA file compiles for itself (static inline
 * only, so no ISA-flagged copy leaks into another level's code).
 * Must not: depend on an ISA; the kernels that read these layouts live in
 * kernels_<isa>.c.
 *
 * A weight of every supported type is seen as w = s * q - o, with q an
 * unsigned byte code (signed for Q8_0 on ISAs without vpdpbusd), one float
 * scale s per bl elements and either a fixed integer offset (o = off * s:
 * Q8_0 128, Q4_0 8, Q5_0 16, Q3_K 4, Q6_K 32) or a float min per bl
 * elements (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K). Against
 * Q8_0 activations x = xd * p (one xd per 32) a bl-block contributes
 *   s * xd * (sum q p - off * sum p)   or   s * xd * sum q p - m * xd * sum p
 * so the kernel needs integer dots of codes, and one or two float terms per
 * block from the activation sums packed next to the codes.
 *
 * Weight panel of MR rows, k elements, nbl = k / bl:
 *   codes  u8  [k/4][MR][4]   four consecutive elements of a row per lane
 *   scales f32 [nbl][MR]
 *   mins   f32 [nbl][MR]      has_min types only
 * Activation group of NR rows:
 *   codes  s8  [k/4][NR][4]
 *   xd     f32 [nbl][NR]      scale of the 32-block holding the bl-block
 *   xa     32b [nbl][NR]      int32 -off * sum p, or (has_min) f32 xd * sum p
 */
#ifndef VKI_CPU_MQ_H
#define VKI_CPU_MQ_H

#include <string.h>

#include "kquants.h"
#include "loader/types.h"
#include "util.h"

typedef struct mq_fmt {
    int  bl;      /* elements per weight scale: 32, or 16 (Q2_K, Q3_K, Q6_K) */
    int  off;     /* integer code offset (0 when has_min or signed)          */
    int  qmax;    /* the largest code (|code| when signed)                    */
    bool has_min; /* float min per block (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K)       */
    bool is_signed; /* codes are signed bytes (Q8_0 without VNNI)            */
} mq_fmt;

/* The layout of weight type t; false when the mq path does not take it. */
static inline bool mq_format(vki_type t, bool signed_q8, mq_fmt *f)
{
    memset(f, 0, sizeof *f);
    f->bl = 32;
    switch (t) {
    case VKI_TYPE_Q8_0:
        f->is_signed = signed_q8;
        f->off = signed_q8 ? 0 : 128;
        f->qmax = signed_q8 ? 128 : 255;
        return true;
    case VKI_TYPE_Q4_0: f->off = 8; f->qmax = 15; return true;
    case VKI_TYPE_Q5_0: f->off = 16; f->qmax = 31; return true;
    case VKI_TYPE_Q4_1:
    case VKI_TYPE_Q4_K: f->has_min = true; f->qmax = 15; return true;
    case VKI_TYPE_Q5_1:
    case VKI_TYPE_Q5_K: f->has_min = true; f->qmax = 31; return true;
    case VKI_TYPE_Q2_K: f->bl = 16; f->has_min = true; f->qmax = 3; return true;
    case VKI_TYPE_Q3_K: f->bl = 16; f->off = 4; f->qmax = 7; return true;
    case VKI_TYPE_Q6_K: f->bl = 16; f->off = 32; f->qmax = 63; return true;
    default: return false;
    }
}

/* How many 4-element steps of maddubs int16 pair sums (two products of a
 * code and an activation |p| <= 127 each) add up before one could pass
 * 32767: 8, 4, 2 or 1, and at most the bl / 4 steps of a block. */
static inline int mq_int16_steps(const mq_fmt *f)
{
    for (int g = 8; g > 1; g /= 2)
        if (g <= f->bl / 4 && 2 * g * f->qmax * 127 <= 32767) return g;
    return 1;
}

static inline size_t mq_panel_bytes(const mq_fmt *f, int64_t k, int mr)
{
    return (size_t)k * (size_t)mr + (size_t)(k / f->bl) * (size_t)mr * sizeof(float) * (f->has_min ? 2 : 1);
}

static inline size_t mq_group_bytes(const mq_fmt *f, int64_t k, int nr)
{
    return (size_t)k * (size_t)nr + (size_t)(k / f->bl) * (size_t)nr * 8;
}

/* Q4_1, Q5_0, Q5_1: w = d q + m (m = 0 for Q5_0, whose offset is f->off);
 * the fifth bit of element e (Q5) is bit e of qh. The panel's min is what
 * the kernel subtracts, so -m. */
static inline void mq_decode_q4q5(vki_type t, int64_t k, const void *row, uint8_t *q, float *s, float *m)
{
    size_t bs = vki_type_get(t)->type_size;
    for (int64_t i = 0; i < k / 32; i++, q += 32) {
        const uint8_t *blk = (const uint8_t *)row + (size_t)i * bs;
        const uint8_t *qs, *qhp = NULL;
        vki_half d, mn = 0;
        memcpy(&d, blk, 2);
        if (t == VKI_TYPE_Q4_1) memcpy(&mn, blk + 2, 2), qs = blk + 4;
        else if (t == VKI_TYPE_Q5_0) qhp = blk + 2, qs = blk + 6;
        else memcpy(&mn, blk + 2, 2), qhp = blk + 4, qs = blk + 8;
        s[i] = vki_fp16_to_fp32(d);
        m[i] = -vki_fp16_to_fp32(mn);
        for (int j = 0; j < 16; j++) {
            int h0 = qhp ? ((qhp[j / 8] >> (j % 8)) & 1) << 4 : 0;
            int h1 = qhp ? ((qhp[(j + 16) / 8] >> ((j + 16) % 8)) & 1) << 4 : 0;
            q[j] = (uint8_t)((qs[j] & 0xF) | h0);
            q[j + 16] = (uint8_t)((qs[j] >> 4) | h1);
        }
    }
}

/* Q2_K, Q3_K (layouts in kquants.h): 16 sub-blocks of 16 per 256. Q2_K's
 * scale and min are d and dmin times 4-bit fields; Q3_K's code is the plane
 * with the hmask bit as bit 2 (its -4 is f->off). */
static inline void mq_decode_q2q3(vki_type t, int64_t k, const void *row, uint8_t *q, float *s, float *m)
{
    for (int64_t i = 0; i < k / QK_K; i++, q += QK_K, s += 16, m += 16) {
        const block_q2_K *b2 = (const block_q2_K *)row + i;
        const block_q3_K *b3 = (const block_q3_K *)row + i;
        const uint8_t *qs = t == VKI_TYPE_Q2_K ? b2->qs : b3->qs;
        for (int n = 0; n < 2; n++)
            for (int j = 0; j < 4; j++)
                for (int h = 0; h < 2; h++) {
                    int is = 8 * n + 2 * j + h;
                    if (t == VKI_TYPE_Q2_K) {
                        s[is] = vki_fp16_to_fp32(b2->d) * (float)(b2->scales[is] & 0xF);
                        m[is] = vki_fp16_to_fp32(b2->dmin) * (float)(b2->scales[is] >> 4);
                    } else {
                        s[is] = vki_fp16_to_fp32(b3->d) * (float)kq_q3_K_scale(b3->scales, is);
                    }
                    for (int l = 0; l < 16; l++) {
                        int c = kq_plane2(qs, n, j, h, l);
                        if (t == VKI_TYPE_Q3_K) c |= ((b3->hmask[16 * h + l] >> (4 * n + j)) & 1) << 2;
                        q[16 * is + l] = (uint8_t)c;
                    }
                }
    }
}

/* Q4_K, Q5_K: eight sub-blocks of 32 per 256 with 6-bit scales and mins;
 * Q5_K's fifth bit of sub-block j's element l is bit j of qh[l]. */
static inline void mq_decode_k4k5(vki_type t, int64_t k, const void *row, uint8_t *q, float *s, float *m)
{
    for (int64_t i = 0; i < k / QK_K; i++, q += QK_K, s += 8, m += 8) {
        const block_q4_K *b4 = (const block_q4_K *)row + i;
        const block_q5_K *b5 = (const block_q5_K *)row + i;
        bool k4 = t == VKI_TYPE_Q4_K;
        const uint8_t *qs0 = k4 ? b4->qs : b5->qs, *scales = k4 ? b4->scales : b5->scales;
        float d = vki_fp16_to_fp32(k4 ? b4->d : b5->d), dmin = vki_fp16_to_fp32(k4 ? b4->dmin : b5->dmin);
        for (int j = 0; j < 8; j++) {
            uint8_t sc, mn;
            kq_scale_min_k4(j, scales, &sc, &mn);
            /* the reference dequantizer's roundings: d * sc, dmin * m */
            s[j] = d * (float)sc;
            m[j] = dmin * (float)mn;
            const uint8_t *qs = qs0 + 32 * (j / 2);
            for (int l = 0; l < 32; l++) {
                int c = j & 1 ? qs[l] >> 4 : qs[l] & 0xF;
                if (t == VKI_TYPE_Q5_K) c |= ((b5->qh[l] >> j) & 1) << 4;
                q[32 * j + l] = (uint8_t)c;
            }
        }
    }
}

/* One row's codes (k bytes), scales and mins (k / bl floats each). */
static inline void mq_decode_row(vki_type t, const mq_fmt *f, int64_t k, const void *row, uint8_t *q, float *s,
                                 float *m)
{
    switch (t) {
    case VKI_TYPE_Q8_0: {
        const block_q8_0 *b = row;
        for (int64_t i = 0; i < k / QK8_0; i++) {
            s[i] = vki_fp16_to_fp32(b[i].d);
            for (int j = 0; j < QK8_0; j++) q[i * 32 + j] = (uint8_t)(b[i].qs[j] + f->off);
        }
        break;
    }
    case VKI_TYPE_Q4_0: {
        const block_q4_0 *b = row;
        for (int64_t i = 0; i < k / QK4_0; i++) {
            s[i] = vki_fp16_to_fp32(b[i].d);
            for (int j = 0; j < 16; j++) {
                q[i * 32 + j] = b[i].qs[j] & 0xF;
                q[i * 32 + j + 16] = b[i].qs[j] >> 4;
            }
        }
        break;
    }
    case VKI_TYPE_Q4_1:
    case VKI_TYPE_Q5_0:
    case VKI_TYPE_Q5_1:
        mq_decode_q4q5(t, k, row, q, s, m);
        break;
    case VKI_TYPE_Q2_K:
    case VKI_TYPE_Q3_K:
        mq_decode_q2q3(t, k, row, q, s, m);
        break;
    case VKI_TYPE_Q4_K:
    case VKI_TYPE_Q5_K:
        mq_decode_k4k5(t, k, row, q, s, m);
        break;
    case VKI_TYPE_Q6_K: {
        const block_q6_K *b = row;
        for (int64_t i = 0; i < k / QK_K; i++, q += QK_K, s += 16) {
            float d = vki_fp16_to_fp32(b[i].d);
            for (int j = 0; j < 16; j++) s[j] = d * (float)b[i].scales[j];
            for (int h = 0; h < 2; h++) {
                const uint8_t *ql = b[i].ql + 64 * h, *qh = b[i].qh + 32 * h;
                uint8_t *o = q + 128 * h;
                for (int l = 0; l < 32; l++) {
                    o[l] = (uint8_t)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4));
                    o[l + 32] = (uint8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4));
                    o[l + 64] = (uint8_t)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
                    o[l + 96] = (uint8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
                }
            }
        }
        break;
    }
    default: break;
    }
}

/* Packs weight rows [0, nrows) (nrows <= mr) of w into one panel at dst;
 * rows past nrows get zero codes and scales. tmp holds k + 2 * k / bl * 4
 * bytes. */
static inline void mq_pack_panel(vki_type t, const mq_fmt *f, int64_t k, const void *w, size_t ws, int nrows,
                                 int mr, uint8_t *dst, uint8_t *tmp)
{
    int64_t nbl = k / f->bl;
    float *sc = (float *)(dst + (size_t)k * (size_t)mr), *mn = sc + (size_t)nbl * (size_t)mr;
    float *ts = (float *)tmp, *tm = ts + nbl;
    uint8_t *tq = (uint8_t *)(tm + nbl);
    for (int r = 0; r < mr; r++) {
        if (r < nrows) {
            mq_decode_row(t, f, k, (const uint8_t *)w + (size_t)r * ws, tq, ts, tm);
        } else {
            memset(tq, 0, (size_t)k);
            memset(ts, 0, (size_t)nbl * sizeof(float));
            memset(tm, 0, (size_t)nbl * sizeof(float));
        }
        for (int64_t g = 0; g < k / 4; g++) memcpy(dst + ((size_t)g * (size_t)mr + (size_t)r) * 4, tq + 4 * g, 4);
        for (int64_t b = 0; b < nbl; b++) {
            sc[(size_t)b * (size_t)mr + (size_t)r] = ts[b];
            if (f->has_min) mn[(size_t)b * (size_t)mr + (size_t)r] = tm[b];
        }
    }
}

/* Packs nc (<= nr) activation rows, already quantized to Q8_0 (rows[c],
 * k / 32 blocks each), into one group at dst; columns past nc are zero. */
static inline void mq_pack_group(const mq_fmt *f, int64_t k, const block_q8_0 *const *rows, int nc, int nr,
                                 uint8_t *dst)
{
    int64_t nbl = k / f->bl;
    float *xd = (float *)(dst + (size_t)k * (size_t)nr);
    uint8_t *xa = (uint8_t *)(xd + (size_t)nbl * (size_t)nr);
    for (int c = 0; c < nr; c++) {
        const block_q8_0 *x = c < nc ? rows[c] : NULL;
        for (int64_t g = 0; g < k / 4; g++) {
            uint8_t *o = dst + ((size_t)g * (size_t)nr + (size_t)c) * 4;
            if (x) memcpy(o, x[(4 * g) / QK8_0].qs + (4 * g) % QK8_0, 4);
            else memset(o, 0, 4);
        }
        for (int64_t b = 0; b < nbl; b++) {
            size_t at = (size_t)b * (size_t)nr + (size_t)c;
            int32_t sum = 0;
            float d = 0.0f;
            if (x) {
                int64_t e0 = b * f->bl;
                const block_q8_0 *xb = &x[e0 / QK8_0];
                d = vki_fp16_to_fp32(xb->d);
                for (int i = 0; i < f->bl; i++) sum += xb->qs[e0 % QK8_0 + i];
            }
            xd[at] = d;
            if (f->has_min) {
                float v = d * (float)sum;
                memcpy(xa + at * 4, &v, 4);
            } else {
                int32_t v = -f->off * sum;
                memcpy(xa + at * 4, &v, 4);
            }
        }
    }
}

#endif
