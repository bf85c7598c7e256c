/*
 * repack.c: conversion between plain Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 / Q2_K..Q6_K / F32 / F16 rows and the R16
 * layout of repack.h, in both directions (unpacking gives the stored bytes
 * back exactly). Scalar and ISA-independent: packing runs once per weight
 * at load, unpacking only for the few consumers that want plain rows (the
 * prompt mat-mul's panel packers, GET_ROWS, tensor_get).
 */
#include "repack.h"

#include <stddef.h>
#include <string.h>

#include "kquants.h"
#include "util.h"

/* ===== Q4_0, Q8_0, Q4_1, Q5_0, Q5_1 ===================================== */

/* Where row r's block b (qs bytes and scale) sit in a group. */
static inline uint8_t *r16_codes(vki_type t, uint8_t *group, int64_t b, int r)
{
    return group + (size_t)(b / 2) * r16_unit_bytes(t) + (size_t)r16_pair_codes(t) + (size_t)(b & 1) * r16_block_codes(t) +
           (size_t)r * 4;
}

static inline uint8_t *r16_scale(vki_type t, uint8_t *group, int64_t b, int r)
{
    return group + (size_t)(b / 2) * r16_unit_bytes(t) + R16_PAIR_SCALES + (size_t)(b & 1) * 32 + (size_t)r * 2;
}

/* Row r of a group <-> its plain row (to_plain: which way). Every pair
 * type's block is d, then m (Q4_1, Q5_1), then qh (Q5_0, Q5_1), then qs. */
static void q_row(vki_type t, int64_t nb, uint8_t *group, int r, uint8_t *row, bool to_plain)
{
    const size_t bsz = (size_t)vki_type_get(t)->type_size;
    const bool mn = r16_pair_min(t), hi = r16_pair_high(t);
    const size_t at_qh = mn ? 4 : 2, at_qs = at_qh + (hi ? 4 : 0);
    const int nq = t == VKI_TYPE_Q8_0 ? 8 : 4;
    const uint32_t flip = t == VKI_TYPE_Q8_0 ? 0x80808080u : 0; /* Q8_0: s8 + 128 as u8 */
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *blk = row + (size_t)b * bsz, *c = r16_codes(t, group, b, r);
        uint8_t *u = group + (size_t)(b / 2) * r16_unit_bytes(t);
        uint8_t *m = u + 64 + (size_t)(b & 1) * 32 + (size_t)r * 2;
        uint8_t *h = u + r16_pair_qh(t) + (size_t)(b & 1) * 64 + (size_t)r * 4;
        uint32_t v;
        if (to_plain) {
            memcpy(blk, r16_scale(t, group, b, r), 2);
            if (mn) memcpy(blk + 2, m, 2);
            if (hi) memcpy(blk + at_qh, h, 4);
            for (int q = 0; q < nq; q++) {
                memcpy(&v, c + (size_t)q * 64, 4);
                v ^= flip;
                memcpy(blk + at_qs + 4 * q, &v, 4);
            }
        } else {
            memcpy(r16_scale(t, group, b, r), blk, 2);
            if (mn) memcpy(m, blk + 2, 2);
            if (hi) memcpy(h, blk + at_qh, 4);
            for (int q = 0; q < nq; q++) {
                memcpy(&v, blk + at_qs + 4 * q, 4);
                v ^= flip;
                memcpy(c + (size_t)q * 64, &v, 4);
            }
        }
    }
}

/* ===== Q4_K, Q5_K ======================================================== */

_Static_assert(offsetof(block_q4_K, d) == 0 && offsetof(block_q4_K, dmin) == 2 && offsetof(block_q5_K, d) == 0 &&
                   offsetof(block_q5_K, dmin) == 2,
               "Q4_K and Q5_K blocks lead with d, dmin");

/* high: Q5_K, whose block has qh between scales and qs, and whose unit has
 * the qh plane between header and codes. */
static void k45_row(int64_t nb, uint8_t *group, int r, uint8_t *row, bool to_plain, bool high)
{
    const size_t bs = high ? sizeof(block_q5_K) : sizeof(block_q4_K);
    const size_t ub = high ? R16_Q5K_UNIT : R16_Q4K_UNIT, codes = high ? R16_Q5K_CODES : R16_Q4K_CODES;
    const size_t at_scales = high ? offsetof(block_q5_K, scales) : offsetof(block_q4_K, scales);
    const size_t at_qs = high ? offsetof(block_q5_K, qs) : offsetof(block_q4_K, qs);
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *blk = row + (size_t)b * bs, *scales = blk + at_scales, *qs = blk + at_qs;
        uint8_t *u = group + (size_t)b * ub;
        uint8_t *sc = u + R16_Q4K_SCALES + r;                   /* [8][16] u8        */
        uint8_t *mn = u + R16_Q4K_MINS + 2 * r;                 /* [4][16][2] u8     */
        /* d and dmin lead both blocks */
        if (to_plain) {
            uint8_t s[8], m[8];
            for (int j = 0; j < 8; j++) s[j] = sc[16 * j], m[j] = mn[32 * (j / 2) + (j & 1)];
            /* The inverse of kq_scale_min_k4: every bit of the 12 bytes is
             * one of the 16 six-bit values, so this is exact. */
            for (int j = 0; j < 4; j++) {
                scales[j] = (uint8_t)(s[j] | ((s[j + 4] >> 4) << 6));
                scales[j + 4] = (uint8_t)(m[j] | ((m[j + 4] >> 4) << 6));
                scales[j + 8] = (uint8_t)((s[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
            }
            memcpy(blk, u + R16_Q4K_D + 2 * r, 2);
            memcpy(blk + 2, u + R16_Q4K_DMIN + 2 * r, 2);
        } else {
            for (int j = 0; j < 8; j++) {
                uint8_t s, m;
                kq_scale_min_k4(j, scales, &s, &m);
                sc[16 * j] = s;
                mn[32 * (j / 2) + (j & 1)] = m;
            }
            memcpy(u + R16_Q4K_D + 2 * r, blk, 2);
            memcpy(u + R16_Q4K_DMIN + 2 * r, blk + 2, 2);
        }
        for (int q = 0; q < 32; q++) {
            if (to_plain) memcpy(qs + 4 * q, u + codes + (size_t)q * 64 + (size_t)r * 4, 4);
            else memcpy(u + codes + (size_t)q * 64 + (size_t)r * 4, qs + 4 * q, 4);
        }
        if (high) {
            uint8_t *qh = blk + offsetof(block_q5_K, qh);
            for (int c = 0; c < 8; c++) {
                if (to_plain) memcpy(qh + 4 * c, u + R16_Q5K_QH + (size_t)c * 64 + (size_t)r * 4, 4);
                else memcpy(u + R16_Q5K_QH + (size_t)c * 64 + (size_t)r * 4, qh + 4 * c, 4);
            }
        }
    }
}

/* ===== Q6_K ============================================================== */

static void q6k_row(int64_t nb, uint8_t *group, int r, uint8_t *row, bool to_plain)
{
    for (int64_t b = 0; b < nb; b++) {
        block_q6_K *blk = (block_q6_K *)(row + (size_t)b * sizeof(block_q6_K));
        uint8_t *u = group + (size_t)b * R16_Q6K_UNIT;
        for (int h = 0; h < 2; h++) {
            uint8_t *half = u + R16_Q6K_HALF0 + (size_t)h * R16_Q6K_HALF;
            for (int i = 0; i < 4; i++) {
                uint8_t *sp = u + R16_Q6K_SCALES + 32 * (4 * h + i) + 2 * r;
                int8_t *lo = &blk->scales[8 * h + i], *hi = &blk->scales[8 * h + 4 + i];
                if (to_plain) memcpy(lo, sp, 1), memcpy(hi, sp + 1, 1);
                else memcpy(sp, lo, 1), memcpy(sp + 1, hi, 1);
            }
            for (int q = 0; q < 16; q++) {
                uint8_t *c = half + r16_q6k_ql(q) + (size_t)r * 4, *p = blk->ql + 64 * h + 4 * q;
                if (to_plain) memcpy(p, c, 4);
                else memcpy(c, p, 4);
            }
            for (int q = 0; q < 8; q++) {
                uint8_t *c = half + r16_q6k_qh(q) + (size_t)r * 4, *p = blk->qh + 32 * h + 4 * q;
                if (to_plain) memcpy(p, c, 4);
                else memcpy(c, p, 4);
            }
        }
        if (to_plain) memcpy(&blk->d, u + R16_Q6K_D + 2 * r, 2);
        else memcpy(u + R16_Q6K_D + 2 * r, &blk->d, 2);
    }
}

/* ===== Q3_K ============================================================== */

static void q3k_row(int64_t nb, uint8_t *group, int r, uint8_t *row, bool to_plain)
{
    for (int64_t b = 0; b < nb; b++) {
        block_q3_K *blk = (block_q3_K *)(row + (size_t)b * sizeof(block_q3_K));
        uint8_t *u = group + (size_t)b * R16_Q3K_UNIT, *body = u + R16_Q3K_BODY;
        int8_t *sp = (int8_t *)u + R16_Q3K_SCALES + 2 * r;
        if (to_plain) {
            /* The inverse of kq_q3_K_scale: every bit of the 12 bytes is
             * one of the 16 six-bit values, so this is exact. */
            uint8_t v[16];
            for (int p = 0; p < 8; p++) {
                int n = p / 4, g = (p / 2) % 2, jp = p % 2;
                v[8 * n + 4 * jp + g] = (uint8_t)(sp[32 * p] + 32);
                v[8 * n + 4 * jp + 2 + g] = (uint8_t)(sp[32 * p + 1] + 32);
            }
            memset(blk->scales, 0, sizeof blk->scales);
            for (int s = 0; s < 16; s++) {
                blk->scales[s % 8] |= (uint8_t)((v[s] & 0xF) << (s < 8 ? 0 : 4));
                blk->scales[8 + s % 4] |= (uint8_t)((v[s] >> 4) << (2 * (s / 4)));
            }
            memcpy(&blk->d, u + R16_Q3K_D + 2 * r, 2);
        } else {
            for (int p = 0; p < 8; p++) {
                int n = p / 4, g = (p / 2) % 2, jp = p % 2;
                sp[32 * p] = (int8_t)kq_q3_K_scale(blk->scales, 8 * n + 4 * jp + g);
                sp[32 * p + 1] = (int8_t)kq_q3_K_scale(blk->scales, 8 * n + 4 * jp + 2 + g);
            }
            memcpy(u + R16_Q3K_D + 2 * r, &blk->d, 2);
        }
        for (int q = 0; q < 16; q++) {
            uint8_t *c = body + r16_q3k_qs(q) + (size_t)r * 4, *p = blk->qs + 4 * q;
            if (to_plain) memcpy(p, c, 4);
            else memcpy(c, p, 4);
        }
        for (int q = 0; q < 8; q++) {
            uint8_t *c = body + r16_q3k_hm(q) + (size_t)r * 4, *p = blk->hmask + 4 * q;
            if (to_plain) memcpy(p, c, 4);
            else memcpy(c, p, 4);
        }
    }
}

/* ===== Q2_K ============================================================== */

static void q2k_row(int64_t nb, uint8_t *group, int r, uint8_t *row, bool to_plain)
{
    for (int64_t b = 0; b < nb; b++) {
        block_q2_K *blk = (block_q2_K *)(row + (size_t)b * sizeof(block_q2_K));
        uint8_t *u = group + (size_t)b * R16_Q2K_UNIT;
        for (int p = 0; p < 8; p++) { /* Q3_K's pairs (repack.h) */
            int n = p / 4, g = (p / 2) % 2, jp = p % 2, s0 = 8 * n + 4 * jp + g;
            uint8_t *sp = u + R16_Q2K_SCALES + 32 * p + 2 * r;
            if (to_plain) blk->scales[s0] = sp[0], blk->scales[s0 + 2] = sp[1];
            else sp[0] = blk->scales[s0], sp[1] = blk->scales[s0 + 2];
        }
        for (int q = 0; q < 16; q++) {
            uint8_t *c = u + R16_Q2K_CODES + (size_t)q * 64 + (size_t)r * 4, *p = blk->qs + 4 * q;
            if (to_plain) memcpy(p, c, 4);
            else memcpy(c, p, 4);
        }
        if (to_plain) {
            memcpy(&blk->d, u + R16_Q2K_D + 2 * r, 2);
            memcpy(&blk->dmin, u + R16_Q2K_DMIN + 2 * r, 2);
        } else {
            memcpy(u + R16_Q2K_D + 2 * r, &blk->d, 2);
            memcpy(u + R16_Q2K_DMIN + 2 * r, &blk->dmin, 2);
        }
    }
}

/* ===== Both directions =================================================== */

static void float_row(size_t es, int64_t k, uint8_t *group, int r, uint8_t *row, bool to_plain)
{
    for (int64_t i = 0; i < k; i++) {
        uint8_t *g = group + ((size_t)i * R16_ROWS + (size_t)r) * es, *p = row + (size_t)i * es;
        if (to_plain) memcpy(p, g, es);
        else memcpy(g, p, es);
    }
}

static void row_io(vki_type t, int64_t k, uint8_t *group, int r, uint8_t *row, bool to_plain)
{
    if (r16_float(t)) float_row(t == VKI_TYPE_F32 ? 4 : 2, k, group, r, row, to_plain);
    else if (t == VKI_TYPE_Q6_K) q6k_row(k / 256, group, r, row, to_plain);
    else if (t == VKI_TYPE_Q3_K) q3k_row(k / 256, group, r, row, to_plain);
    else if (t == VKI_TYPE_Q2_K) q2k_row(k / 256, group, r, row, to_plain);
    else if (r16_kquant(t)) k45_row(k / 256, group, r, row, to_plain, t == VKI_TYPE_Q5_K);
    else q_row(t, k / 32, group, r, row, to_plain);
}

void r16_pack(vki_type t, int64_t k, int64_t m, const uint8_t *src, size_t ws, uint8_t *dst, int64_t g0, int64_t g1)
{
    const size_t gb = r16_group_bytes(t, k);
    for (int64_t g = g0; g < g1; g++) {
        uint8_t *group = dst + (size_t)g * gb;
        /* Padding (rows past m, the odd block) stays zero: scale 0. */
        memset(group, 0, gb);
        for (int r = 0; r < R16_ROWS && g * R16_ROWS + r < m; r++)
            row_io(t, k, group, r, (uint8_t *)src + (size_t)(g * R16_ROWS + r) * ws, false);
    }
}

void r16_unpack_rows(vki_type t, int64_t k, const uint8_t *src, int64_t r0, int64_t n, uint8_t *dst, size_t ds)
{
    const size_t gb = r16_group_bytes(t, k);
    for (int64_t i = 0; i < n; i++) {
        int64_t row = r0 + i;
        row_io(t, k, (uint8_t *)src + (size_t)(row / R16_ROWS) * gb, (int)(row % R16_ROWS), dst + (size_t)i * ds, true);
    }
}

/* ===== Activation layouts for the R16 mat-vecs =========================== */

r16_x r16_layout_x(const block_q8_0 *x, int64_t nb, int32_t off, void *scratch)
{
    int64_t nbp = (nb + 1) & ~(int64_t)1;
    int8_t *q = scratch;
    float *d = (float *)(q + nbp * 32);
    int32_t *o = (int32_t *)(d + nbp);
    for (int64_t b = 0; b < nb; b++) {
        int32_t sum = 0;
        if (off) /* Q8_0 (off 0) needs no sums */
            for (int i = 0; i < QK8_0; i++) sum += x[b].qs[i];
        memcpy(q + b * 32, x[b].qs, 32);
        d[b] = vki_fp16_to_fp32(x[b].d);
        o[b] = off * sum;
    }
    if (nbp > nb) {
        memset(q + nb * 32, 0, 32);
        d[nb] = 0.0f;
        o[nb] = 0;
    }
    return (r16_x){q, d, o};
}

r16_xk r16_layout_xk(const block_q8_K *x, int64_t nb, void *scratch)
{
    int32_t *pb = scratch;
    for (int64_t b = 0; b < nb; b++)
        for (int t = 0; t < 4; t++) {
            const int16_t *s = x[b].bsums + 4 * t; /* 16-element sums: two per sub-block */
            uint16_t lo = (uint16_t)(s[0] + s[1]), hi = (uint16_t)(s[2] + s[3]);
            pb[4 * b + t] = (int32_t)((uint32_t)lo | ((uint32_t)hi << 16));
        }
    return (r16_xk){x, pb};
}

r16_xk16 r16_layout_xk16(const block_q8_K *x, int64_t nb, const int8_t pairs[8][2], void *scratch)
{
    int32_t *pb = scratch;
    for (int64_t b = 0; b < nb; b++)
        for (int p = 0; p < 8; p++)
            pb[8 * b + p] = (int32_t)((uint32_t)(uint16_t)x[b].bsums[pairs[p][0]] |
                                      ((uint32_t)(uint16_t)x[b].bsums[pairs[p][1]] << 16));
    return (r16_xk16){x, pb};
}
