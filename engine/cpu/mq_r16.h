/*
 * mq_r16.h: integer mat-mat ("mq", mq.h) weight panels packed straight from
 * the R16 layout (repack.h) for the types prompts run most: Q4_0, Q8_0,
 * Q4_K, Q5_K and Q6_K (the output and half the ffn_down of Q4_K_M files).
 * The general packer wants plain rows, so a repacked weight was first
 * unpacked row by row (four bytes at a time) and then decoded and scattered
 * into the panel again; here an R16 chunk (four code bytes of 16 rows) is
 * already a panel step for those rows, so codes move as 64-byte runs (the
 * 4-bit types split into low and high nibbles, the high bits of Q5_K and
 * Q6_K merged in by word masks) and scales as one row of 16.
 * Must not: depend on an ISA (ops_matmul.c, built for the baseline, calls it).
 */
#ifndef VKI_CPU_MQ_R16_H
#define VKI_CPU_MQ_R16_H

#include <stdint.h>
#include <string.h>

#include "mq.h"
#include "repack.h"

/* Whether mq_pack_panel_r16 packs type t in format f for a tile of mr rows. */
static inline bool mq_r16_ok(vki_type t, const mq_fmt *f, int mr)
{
    if (mr % R16_ROWS) return false;
    switch (t) {
    case VKI_TYPE_Q8_0: return !f->is_signed && f->off == 128; /* the layout's codes are s8 + 128 */
    case VKI_TYPE_Q4_0: return f->off == 8 && f->bl == 32;
    case VKI_TYPE_Q4_K:
    case VKI_TYPE_Q5_K: return f->has_min && f->bl == 32;
    case VKI_TYPE_Q6_K: return f->bl == 16 && f->off == 32;
    default: return false;
    }
}

#define MQ_R16_LO4 0x0F0F0F0F0F0F0F0Full

/* 64 code bytes (four of each of 16 rows) to their low nibbles at lo and high nibbles at hi. */
static inline void mq_r16_nibbles(const uint8_t *src, uint8_t *lo, uint8_t *hi)
{
    for (int i = 0; i < 64; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        uint64_t l = w & MQ_R16_LO4, h = (w >> 4) & MQ_R16_LO4;
        memcpy(lo + i, &l, 8);
        memcpy(hi + i, &h, 8);
    }
}

/* Q5_K: the nibbles of code chunk 8t + c, topped by bits 2t (low) and
 * 2t + 1 (high) of qh chunk c. */
static inline void mq_r16_nibbles5(const uint8_t *src, const uint8_t *qh, int t, uint8_t *lo, uint8_t *hi)
{
    for (int i = 0; i < 64; i += 8) {
        uint64_t w, h;
        memcpy(&w, src + i, 8);
        memcpy(&h, qh + i, 8);
        uint64_t l = (w & MQ_R16_LO4) | (((h >> (2 * t)) & 0x0101010101010101ull) << 4);
        uint64_t u = ((w >> 4) & MQ_R16_LO4) | (((h >> (2 * t + 1)) & 0x0101010101010101ull) << 4);
        memcpy(lo + i, &l, 8);
        memcpy(hi + i, &u, 8);
    }
}

/* Q6_K, one half: ql chunks c and c + 8 and qh chunk c give the codes of
 * elements 4c.., 32 + 4c.., 64 + 4c.., 96 + 4c.. of the half (out[0..3]). */
static inline void mq_r16_q6(const uint8_t *l0, const uint8_t *l8, const uint8_t *qh, uint8_t *const out[4])
{
    const uint64_t m2 = 0x0303030303030303ull;
    for (int i = 0; i < 64; i += 8) {
        uint64_t a, b, h;
        memcpy(&a, l0 + i, 8);
        memcpy(&b, l8 + i, 8);
        memcpy(&h, qh + i, 8);
        uint64_t v[4] = {(a & MQ_R16_LO4) | ((h & m2) << 4), (b & MQ_R16_LO4) | (((h >> 2) & m2) << 4),
                         ((a >> 4) & MQ_R16_LO4) | (((h >> 4) & m2) << 4),
                         ((b >> 4) & MQ_R16_LO4) | (((h >> 6) & m2) << 4)};
        for (int j = 0; j < 4; j++) memcpy(out[j] + i, &v[j], 8);
    }
}

/* One panel of mr rows (mq.h's layout) from the mr / 16 groups at grp,
 * group stride gs, of which the first ng exist; the panel's rows past them
 * are zero codes of scale 0, as mq_pack_panel's past its rows. Rows the
 * last group pads (past the matrix) are zero codes of scale 0 already. */
static inline void mq_pack_panel_r16(vki_type t, const mq_fmt *f, int64_t k, const uint8_t *grp, size_t gs, int ng,
                                     int mr, uint8_t *dst)
{
    const int64_t nbl = k / f->bl;
    const size_t step = (size_t)mr * 4; /* bytes of one 4-element step of the panel's codes */
    float *sc = (float *)(dst + (size_t)k * (size_t)mr), *mn = sc + (size_t)nbl * (size_t)mr;
    for (int gi = 0; gi < mr / R16_ROWS; gi++) {
        uint8_t *cd = dst + (size_t)gi * 64; /* rows 16 gi .. 16 gi + 15 of every step */
        float *s = sc + gi * R16_ROWS, *m = mn + gi * R16_ROWS;
        if (gi >= ng) {
            for (int64_t g = 0; g < k / 4; g++) memset(cd + (size_t)g * step, 0, 64);
            for (int64_t b = 0; b < nbl; b++) {
                memset(s + (size_t)b * (size_t)mr, 0, R16_ROWS * sizeof(float));
                if (f->has_min) memset(m + (size_t)b * (size_t)mr, 0, R16_ROWS * sizeof(float));
            }
            continue;
        }
        const uint8_t *G = grp + (size_t)gi * gs;
        if (t == VKI_TYPE_Q4_0 || t == VKI_TYPE_Q8_0) {
            const size_t ub = r16_unit_bytes(t), bc = r16_block_codes(t);
            for (int64_t b = 0; b < k / 32; b++) {
                const uint8_t *u = G + (size_t)(b / 2) * ub, *c = u + R16_PAIR_CODES + (size_t)(b & 1) * bc;
                const uint16_t *h = (const uint16_t *)(u + R16_PAIR_SCALES) + (b & 1) * R16_ROWS;
                for (int r = 0; r < R16_ROWS; r++) s[(size_t)b * (size_t)mr + r] = vki_fp16_to_fp32(h[r]);
                uint8_t *o = cd + (size_t)(8 * b) * step;
                if (t == VKI_TYPE_Q8_0)
                    for (int q = 0; q < 8; q++) memcpy(o + (size_t)q * step, c + q * 64, 64);
                else /* byte j of a block: element j low, j + 16 high */
                    for (int q = 0; q < 4; q++) mq_r16_nibbles(c + q * 64, o + (size_t)q * step, o + (size_t)(q + 4) * step);
            }
        } else if (t == VKI_TYPE_Q6_K) {
            for (int64_t b = 0; b < k / QK_K; b++) {
                const uint8_t *u = G + (size_t)b * R16_Q6K_UNIT;
                for (int r = 0; r < R16_ROWS; r++) {
                    uint16_t dh;
                    memcpy(&dh, u + R16_Q6K_D + 2 * r, 2);
                    float dr = vki_fp16_to_fp32(dh);
                    /* pair (4H + i) holds sub-blocks 8H + i and 8H + 4 + i */
                    for (int p = 0; p < 8; p++)
                        for (int e = 0; e < 2; e++) {
                            int j = 8 * (p / 4) + p % 4 + 4 * e;
                            s[(size_t)(16 * b + j) * (size_t)mr + (size_t)r] =
                                dr * (float)(int8_t)u[R16_Q6K_SCALES + 32 * p + 2 * r + e];
                        }
                }
                for (int h = 0; h < 2; h++) {
                    const uint8_t *half = u + R16_Q6K_HALF0 + (size_t)h * R16_Q6K_HALF;
                    uint8_t *o = cd + (size_t)(64 * b + 32 * h) * step;
                    for (int c = 0; c < 8; c++) {
                        uint8_t *out[4] = {o + (size_t)c * step, o + (size_t)(8 + c) * step, o + (size_t)(16 + c) * step,
                                           o + (size_t)(24 + c) * step};
                        mq_r16_q6(half + r16_q6k_ql(c), half + r16_q6k_ql(c + 8), half + r16_q6k_qh(c), out);
                    }
                }
            }
        } else { /* Q4_K, Q5_K: the same header */
            const bool k5 = t == VKI_TYPE_Q5_K;
            for (int64_t b = 0; b < k / QK_K; b++) {
                const uint8_t *u = G + (size_t)b * (k5 ? R16_Q5K_UNIT : R16_Q4K_UNIT);
                const uint16_t *d = (const uint16_t *)(u + R16_Q4K_D), *dm = (const uint16_t *)(u + R16_Q4K_DMIN);
                for (int r = 0; r < R16_ROWS; r++) {
                    /* the reference dequantizer's roundings: d * sc, dmin * m */
                    float dr = vki_fp16_to_fp32(d[r]), dmr = vki_fp16_to_fp32(dm[r]);
                    for (int j = 0; j < 8; j++) {
                        size_t at = (size_t)(8 * b + j) * (size_t)mr + (size_t)r;
                        s[at] = dr * (float)u[R16_Q4K_SCALES + 16 * j + r];
                        m[at] = dmr * (float)u[R16_Q4K_MINS + 32 * (j / 2) + 2 * r + (j & 1)];
                    }
                }
                /* chunk q: qs bytes 4q..4q+3; run q / 8 holds sub-blocks 2 (q / 8) (low) and 2 (q / 8) + 1 (high) */
                uint8_t *o = cd + (size_t)(64 * b) * step;
                for (int q = 0; q < 32; q++) {
                    size_t g = (size_t)(16 * (q / 8) + q % 8);
                    if (k5)
                        mq_r16_nibbles5(u + R16_Q5K_CODES + q * 64, u + R16_Q5K_QH + (q % 8) * 64, q / 8, o + g * step,
                                        o + (g + 8) * step);
                    else
                        mq_r16_nibbles(u + R16_Q4K_CODES + q * 64, o + g * step, o + (g + 8) * step);
                }
            }
        }
    }
}

#endif
