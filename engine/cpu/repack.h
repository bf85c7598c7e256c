/*
 * repack.h: the CPU backend's repacked weight layout ("R16"): 16 rows of a
 * Q4_0 / Q8_0 / Q2_K..Q6_K / F32 / F16 matrix interleaved so that the decode mat-vec runs one
 * accumulator lane per row, from aligned sequential loads. Converting to and
 * from it lives in repack.c (scalar, any ISA); the kernels that read it in
 * repack_<isa>.c. Must not: depend on an ISA (static inline helpers only).
 *
 * A matrix of m rows and k elements becomes ceil(m / 16) groups of 16 rows,
 * each r16_group_bytes(t, k) bytes, 64-byte aligned. Rows past m in the
 * last group are zero codes with scale 0 (they add nothing and are never
 * stored). A group is a run of units, each one or two block columns.
 *
 * Q4_0 / Q8_0 (nb = k / 32 blocks a row): ceil(nb / 2) pair units, a pair
 * unit two block columns b = 2p, 2p + 1 (an odd nb ends with a zero block
 * of scale 0), its 64 bytes of scales ahead of the codes as in Q4_K's
 * unit (with them behind, 1.1B decode, four alternating rounds: Q8_0
 * 25.7-28.8 tok/s against 26.5-31.7, Q4_0 2-6% slower each round):
 *   scales f16 [2][16]         block b's scale of each row
 *   codes  u8  [2][nq][16][4]  chunk q of block b, lane r = row r: bytes
 *                              4q..4q+3 of that row's block qs
 * Q4_0: nq = 4, code bytes as stored (byte j: element j in the low nibble,
 *       j + 16 in the high one), 576 bytes a unit.
 * Q8_0: nq = 8, code bytes + 128 (unsigned, for vpdpbusd), 1088 bytes a unit.
 * Q4_1 / Q5_0 / Q5_1: Q4_0's unit with, after the scales, the blocks' mins
 *   (Q4_1, Q5_1: f16 [2][16]) and high bits (Q5_0, Q5_1: [2][16][4], row
 *   r's qh word), 640 / 704 / 768 bytes a unit (the rows' own).
 * Q4_K (nb = k / 256 super-blocks a row): one unit per super-block, 2368
 * bytes, the 6-bit scales and mins unpacked so no lane decodes them, and
 * ahead of the codes, so a unit is read front to back (with them behind,
 * each sub-block's scales were a jump forward: 1.1B decode 20% slower):
 *   scales u8  [8][16]         sub-block s's scale of row r
 *   mins   u8  [4][16][2]      sub-blocks 2t, 2t + 1's mins of row r, widened
 *                              to int16 pairs by one vpmovzxbw for vpmaddwd /
 *                              vpdpwssd (as int16 they streamed 5% more bytes)
 *   d      f16 [16], dmin f16 [16]
 *   codes  u8  [32][16][4]     chunk q: bytes 4q..4q+3 of the row's qs
 * So one 64-byte load is four code bytes of each of the 16 rows, and the
 * activation's matching four bytes are one broadcast.
 * Q5_K: Q4_K's unit with the high bits between header and codes, 2880 bytes:
 *   qh     u8  [8][16][4]      chunk c: bytes 4c..4c+3 of the row's qh, whose
 *                              bits 2j, 2j + 1 top code chunk 8j + c's low and
 *                              high nibbles
 * Q6_K: one unit per super-block, 3360 bytes (the rows' own bytes, so a
 * unit is 32-byte but not 64-byte aligned); the 2-bit high plane of each
 * 128-element half follows that half's low nibbles:
 *   scales s8  [2][4][16][2]   half H, i: row r's scales of sub-blocks
 *                              8H + i and 8H + 4 + i, the two a code chunk
 *                              of that half feeds (low and high nibbles)
 *   d      f16 [16]
 *   then per half H (1536 bytes), 64-byte chunks of [16 rows][4 bytes]:
 *   ql chunk q (16): bytes 4q..4q+3 of the row's ql[64H..]: elements
 *                    128H + 4q.. (low nibbles), 128H + 64 + 4q.. (high)
 *   qh chunk c (8):  bytes 4c..4c+3 of the row's qh[32H..]: bits 0-1 and
 *                    4-5 top ql chunk c's nibbles, bits 2-3 and 6-7 chunk
 *                    c + 8's
 *   in the order the mat-vec first reads them (r16_q6k_ql, r16_q6k_qh):
 *   ql 0-3, qh 0-3, ql 4-7, qh 4-7, ql 8-15. With ql and qh as two planes
 *   the mat-vec streamed 12-13 GB/s from memory on one core (Q5_K 19),
 *   whatever the prefetch distance.
 * Q2_K: one unit per super-block, 1344 bytes (the rows' own):
 *   scales u8  [2][2][2][16][2] as Q3_K's pairs, the stored bytes (scale
 *                              in the low nibble, min in the high)
 *   d      f16 [16], dmin f16 [16]
 *   codes  u8  [16][16][4]     chunk q: bytes 4q..4q+3 of the row's qs, as
 *                              Q3_K's qs chunks
 * Q3_K: one unit per super-block, 1824 bytes (3.6% more than the rows:
 * the scales unpacked), 32-byte aligned:
 *   scales s8  [2][2][2][16][2] half n, g, pair p: row r's signed scales of
 *                              sub-blocks 8n + 4p + g and 8n + 4p + 2 + g
 *                              (planes 2p and 2p + 1 of qs chunks 8n + 4g..)
 *   d      f16 [16]
 *   then 64-byte chunks of [16 rows][4 bytes] in first-read order
 *   (r16_q3k_qs, r16_q3k_hm): qs 0-3, hmask 0-3, qs 4-7, hmask 4-7, qs
 *   8-15. qs chunk q: bytes 4q..4q+3 of the row's qs, plane j of byte
 *   32n + 16g + l being element 128n + 32j + 16g + l (n = q / 8, g = q / 4
 *   % 2); hmask chunk c: bytes 4c..4c+3 of its hmask, bit 4n + j the high
 *   bit of plane j of qs chunk 8n + c.
 * F32 (one unit per element column, 64 bytes): [k][16] floats, element i
 * of row r at i * 16 + r: a group is exactly the f32 panel the packed
 * mat-mat multiplies ([k][mm_mr] with mm_mr = 16), so prompts read it in
 * place instead of gathering 16 strided rows per call, and a mat-vec is
 * one fma per 8 rows with no horizontal sums. F16 (32 bytes a column):
 * the same in halves; prompts widen a group to that panel in one
 * contiguous pass (cpu_kernels.mm_panel_r16).
 */
#ifndef VKI_CPU_REPACK_H
#define VKI_CPU_REPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loader/types.h"

#define R16_ROWS 16

#define R16_Q4K_SCALES 0 /* offsets inside a Q4_K unit */
#define R16_Q4K_MINS   128
#define R16_Q4K_D      256
#define R16_Q4K_DMIN   288
#define R16_Q4K_CODES  320
#define R16_Q4K_UNIT   2368

#define R16_Q5K_QH    320 /* a Q5_K unit: Q4_K's header, then the high bits, then codes */
#define R16_Q5K_CODES 832
#define R16_Q5K_UNIT  2880

#define R16_Q6K_SCALES 0 /* a Q6_K unit */
#define R16_Q6K_D      256
#define R16_Q6K_HALF0  288  /* half H at R16_Q6K_HALF0 + H * R16_Q6K_HALF */
#define R16_Q6K_HALF   1536
#define R16_Q6K_UNIT   3360

#define R16_Q2K_SCALES 0 /* a Q2_K unit */
#define R16_Q2K_D      256
#define R16_Q2K_DMIN   288
#define R16_Q2K_CODES  320
#define R16_Q2K_UNIT   1344

#define R16_Q3K_SCALES 0 /* a Q3_K unit */
#define R16_Q3K_D      256
#define R16_Q3K_BODY   288
#define R16_Q3K_UNIT   1824

/* Where qs chunk q (16) and hmask chunk c (8) sit in a Q3_K unit's body. */
static inline int r16_q3k_qs(int q)
{
    int g = (q % 8) / 4, t = q % 4;
    return q < 8 ? g * 512 + t * 64 : 1024 + g * 256 + t * 64;
}
static inline int r16_q3k_hm(int c) { return (c / 4) * 512 + 256 + (c % 4) * 64; }

/* Where ql chunk q and qh chunk c sit in a Q6_K unit's half. */
static inline int r16_q6k_ql(int q) { return q < 8 ? (q / 4) * 512 + (q % 4) * 64 : 1024 + (q - 8) * 64; }
static inline int r16_q6k_qh(int c) { return (c / 4) * 512 + 256 + (c % 4) * 64; }

#define R16_PAIR_SCALES 0 /* offsets inside a pair unit (Q4_0, Q8_0, Q4_1, Q5_0, Q5_1) */
#define R16_PAIR_CODES  64 /* Q4_0's and Q8_0's; r16_pair_codes for any */

/* The pair types whose blocks add a min (Q4_1, Q5_1) or a fifth bit
 * (Q5_0, Q5_1). */
static inline bool r16_pair_min(vki_type t) { return t == VKI_TYPE_Q4_1 || t == VKI_TYPE_Q5_1; }
static inline bool r16_pair_high(vki_type t) { return t == VKI_TYPE_Q5_0 || t == VKI_TYPE_Q5_1; }
/* Offsets in a pair unit: mins f16 [2][16] after the scales, then qh
 * [2][16][4], then the codes. */
static inline int r16_pair_qh(vki_type t) { return 64 + (r16_pair_min(t) ? 64 : 0); }
static inline int r16_pair_codes(vki_type t) { return r16_pair_qh(t) + (r16_pair_high(t) ? 128 : 0); }

/* Whether the layout exists for type t (the kernels are per ISA: see
 * cpu_kernels.gemv_r16). */
static inline bool r16_type_ok(vki_type t)
{
    return t == VKI_TYPE_Q4_0 || t == VKI_TYPE_Q8_0 || t == VKI_TYPE_Q4_1 || t == VKI_TYPE_Q5_0 || t == VKI_TYPE_Q5_1 ||
           t == VKI_TYPE_Q4_K || t == VKI_TYPE_Q5_K || t == VKI_TYPE_Q6_K ||
           t == VKI_TYPE_Q2_K || t == VKI_TYPE_Q3_K || t == VKI_TYPE_F32 || t == VKI_TYPE_F16;
}
/* The super-block types, one unit per 256-element block. */
static inline bool r16_kquant(vki_type t)
{
    return t == VKI_TYPE_Q2_K || t == VKI_TYPE_Q3_K || t == VKI_TYPE_Q4_K || t == VKI_TYPE_Q5_K || t == VKI_TYPE_Q6_K;
}
/* F32 and F16: one element a column, [k][16] values of the type. */
static inline bool r16_float(vki_type t) { return t == VKI_TYPE_F32 || t == VKI_TYPE_F16; }
/* Elements per block column. */
static inline int64_t r16_block_size(vki_type t) { return r16_float(t) ? 1 : r16_kquant(t) ? 256 : 32; }
/* Code bytes of one block column of a group (the pair types). */
static inline size_t r16_block_codes(vki_type t) { return t == VKI_TYPE_Q8_0 ? 512 : 256; }
/* Block columns per unit, and a unit's bytes. */
static inline int64_t r16_unit_blocks(vki_type t) { return r16_kquant(t) || r16_float(t) ? 1 : 2; }
static inline size_t r16_unit_bytes(vki_type t)
{
    return t == VKI_TYPE_F32   ? R16_ROWS * 4
         : t == VKI_TYPE_F16   ? R16_ROWS * 2
         : t == VKI_TYPE_Q4_K ? R16_Q4K_UNIT
         : t == VKI_TYPE_Q5_K ? R16_Q5K_UNIT
         : t == VKI_TYPE_Q6_K ? R16_Q6K_UNIT
         : t == VKI_TYPE_Q3_K ? R16_Q3K_UNIT
         : t == VKI_TYPE_Q2_K ? R16_Q2K_UNIT
                               : 2 * r16_block_codes(t) + (size_t)r16_pair_codes(t);
}
/* Bytes of one 16-row group of k elements a row. */
static inline size_t r16_group_bytes(vki_type t, int64_t k)
{
    int64_t nb = k / r16_block_size(t), ub = r16_unit_blocks(t);
    return (size_t)((nb + ub - 1) / ub) * r16_unit_bytes(t);
}

/* Bytes the repacked copy of an m x k matrix takes. */
static inline uint64_t r16_bytes(vki_type t, int64_t k, int64_t m)
{
    return (uint64_t)((m + R16_ROWS - 1) / R16_ROWS) * r16_group_bytes(t, k);
}

/* Repacks rows [0, m) of the plain matrix src (row stride ws) into dst
 * (r16_bytes(t, k, m) bytes); groups [g0, g1) only, so callers can split
 * the work. */
void r16_pack(vki_type t, int64_t k, int64_t m, const uint8_t *src, size_t ws, uint8_t *dst, int64_t g0, int64_t g1);
/* Writes rows [r0, r0 + n) of a repacked matrix as plain rows at dst
 * (stride ds bytes, at least the type's row bytes). */
void r16_unpack_rows(vki_type t, int64_t k, const uint8_t *src, int64_t r0, int64_t n, uint8_t *dst, size_t ds);

/* One activation row laid out for the R16 mat-vecs (repack_<isa>.c), built
 * once per mat-vec. Q4_0 / Q8_0 against block_q8_0 [nb]: codes q [nbp][32]
 * contiguous, scales d [nbp] and offsets o [nbp] (off, the weights' code
 * offset: 8 for Q4_0, 128 for stored Q8_0 codes, 0 for none, times the
 * block's code sum), nbp = nb rounded up to even with a zero block. */
typedef struct r16_x {
    const int8_t  *q;
    const float   *d;
    const int32_t *o;
} r16_x;

/* Q4_K / Q5_K against block_q8_K [nb]: the blocks, and pb [nb][4], the int16
 * pairs (sum of sub-block 2t, of 2t + 1) the mins are dotted with. */
typedef struct r16_xk {
    const block_q8_K *b;
    const int32_t    *pb;
} r16_xk;

/* Q6_K, Q3_K and Q2_K against block_q8_K [nb]: pb [nb][8], the int16 pairs
 * of sub-block sums (bsums[pairs[p][0]], bsums[pairs[p][1]]) at p, for the
 * codes' offset (Q6_K's +32, Q3_K's -4, Q2_K's mins): the unit's scale
 * pairs. */
typedef r16_xk r16_xk16;

/* All lay out into scratch (CPU_GEMV_SCRATCH(k) bytes, 64-byte aligned). */
r16_x  r16_layout_x(const block_q8_0 *x, int64_t nb, int32_t off, void *scratch);
r16_xk r16_layout_xk(const block_q8_K *x, int64_t nb, void *scratch);
r16_xk16 r16_layout_xk16(const block_q8_K *x, int64_t nb, const int8_t pairs[8][2], void *scratch);

#endif
