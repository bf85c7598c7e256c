/*
 * repack.c: conversion between plain Q4_0 / Q8_0 rows and the R16 layout
 * of repack.h, in both directions. Scalar and ISA-independent: packing runs
 * once per weight at load, unpacking only for the few consumers that want
 * plain rows (the prompt mat-mul's panel packer, GET_ROWS, tensor_get).
 */
#include "repack.h"

#include <string.h>

/* Where row r's block b (qs bytes and scale) sit in a group. */
static inline uint8_t *r16_codes(vki_type t, uint8_t *group, int64_t b, int r)
{
    return group + (size_t)(b / 2) * r16_unit_bytes(t) + (size_t)(b & 1) * r16_block_codes(t) + (size_t)r * 4;
}

static inline uint8_t *r16_scale(vki_type t, uint8_t *group, int64_t b, int r)
{
    return group + (size_t)(b / 2) * r16_unit_bytes(t) + 2 * r16_block_codes(t) + (size_t)(b & 1) * 32 + (size_t)r * 2;
}

void r16_pack(vki_type t, int64_t k, int64_t m, const uint8_t *src, size_t ws, uint8_t *dst, int64_t g0, int64_t g1)
{
    const int64_t nb = k / 32;
    const size_t gb = r16_group_bytes(t, nb), bsz = t == VKI_TYPE_Q4_0 ? sizeof(block_q4_0) : sizeof(block_q8_0);
    const int nq = t == VKI_TYPE_Q4_0 ? 4 : 8;
    for (int64_t g = g0; g < g1; g++) {
        uint8_t *group = dst + (size_t)g * gb;
        /* Padding (rows past m, the odd block) stays zero: scale 0. */
        memset(group, 0, gb);
        for (int r = 0; r < R16_ROWS && g * R16_ROWS + r < m; r++) {
            const uint8_t *row = src + (size_t)(g * R16_ROWS + r) * ws;
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *blk = row + (size_t)b * bsz;
                memcpy(r16_scale(t, group, b, r), blk, 2); /* d is the first field of both block types */
                uint8_t *c = r16_codes(t, group, b, r);
                for (int q = 0; q < nq; q++) {
                    uint8_t *o = c + (size_t)q * 64;
                    memcpy(o, blk + 2 + 4 * q, 4);
                    if (t == VKI_TYPE_Q8_0)
                        for (int i = 0; i < 4; i++) o[i] ^= 0x80; /* s8 + 128 as u8 */
                }
            }
        }
    }
}

void r16_unpack_rows(vki_type t, int64_t k, const uint8_t *src, int64_t r0, int64_t n, uint8_t *dst, size_t ds)
{
    const int64_t nb = k / 32;
    const size_t gb = r16_group_bytes(t, nb), bsz = t == VKI_TYPE_Q4_0 ? sizeof(block_q4_0) : sizeof(block_q8_0);
    const int nq = t == VKI_TYPE_Q4_0 ? 4 : 8;
    for (int64_t i = 0; i < n; i++) {
        int64_t row = r0 + i;
        uint8_t *group = (uint8_t *)src + (size_t)(row / R16_ROWS) * gb;
        int r = (int)(row % R16_ROWS);
        uint8_t *out = dst + (size_t)i * ds;
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *blk = out + (size_t)b * bsz;
            memcpy(blk, r16_scale(t, group, b, r), 2);
            const uint8_t *c = r16_codes(t, group, b, r);
            for (int q = 0; q < nq; q++) {
                memcpy(blk + 2 + 4 * q, c + (size_t)q * 64, 4);
                if (t == VKI_TYPE_Q8_0)
                    for (int j = 0; j < 4; j++) blk[2 + 4 * q + j] ^= 0x80;
            }
        }
    }
}
