// dequant.glsl: the one place weights are decoded, in registers, for every
// kernel (matvec, matmul, get_rows). The including shader declares
//   buffer { uint wdata[]; }
// and defines exactly one of A_F32, A_F16, A_BF16, A_Q8_0, A_Q4_0, A_Q4_1,
// A_Q5_0, A_Q5_1, A_Q2_K, A_Q3_K, A_Q4_K, A_Q5_K, A_Q6_K. Each mirrors the
// scalar reference in loader/quants.c.
// dq4(row, k): elements k..k+3 (k % 4 == 0) of the row at byte address row.
// dq1(row, k): one element (plain types only; for rows not a multiple of 4).
// dq16(row, k, v): elements k..k+15 (k % 16 == 0) into v[0..3]. The types
// that decode-time bandwidth matters for read their 16 bytes of quants in
// four words and their scale once; the others fall back to four dq4.
#include "types.glsl"

uint w_u8(uint b) { return (wdata[b >> 2] >> ((b & 3u) * 8u)) & 0xFFu; }
uint w_u16(uint b) { return (wdata[b >> 2] >> ((b & 2u) * 8u)) & 0xFFFFu; } // b even
// Four bytes at any alignment. The second word is read only when the bytes
// straddle it, so nothing past the data is touched.
uint w_u32(uint b)
{
    uint sh = (b & 3u) * 8u;
    uint w0 = wdata[b >> 2];
    return sh == 0u ? w0 : (w0 >> sh) | (wdata[(b >> 2) + 1u] << (32u - sh));
}
// Sixteen bytes at any alignment: four words, plus a fifth and a shift
// when b is not a multiple of 4 (Q4_0/Q8_0 blocks are 18/34 bytes).
uvec4 w_u32x4(uint b)
{
    uint i = b >> 2, sh = (b & 3u) * 8u;
    uvec4 q = uvec4(wdata[i], wdata[i + 1u], wdata[i + 2u], wdata[i + 3u]);
    if (sh == 0u) return q;
    uvec4 n = uvec4(q.yzw, wdata[i + 4u]);
    return (q >> sh) | (n << (32u - sh));
}
float w_f16(uint b) { return unpackHalf2x16(w_u16(b)).x; }
vec4 i8x4(uint q) { return vec4(ivec4(int(q << 24) >> 24, int(q << 16) >> 24, int(q << 8) >> 24, int(q) >> 24)); }
vec4 u8x4(uint q) { return vec4(q & 0xFFu, (q >> 8) & 0xFFu, (q >> 16) & 0xFFu, q >> 24); }
vec4 nib_lo(uint q) { return vec4(q & 0xFu, (q >> 8) & 0xFu, (q >> 16) & 0xFu, (q >> 24) & 0xFu); }
vec4 nib_hi(uint q) { return nib_lo(q >> 4); }
// Bits j..j+3 of qh (the fifth bit of elements j..j+3 in Q5_0/Q5_1), times 16.
vec4 bit5(uint qh, uint j) { return vec4(uvec4(qh >> j, qh >> (j + 1u), qh >> (j + 2u), qh >> (j + 3u)) & 1u) * 16.0; }
// The 2-bit fields at bit shift of four bytes (Q2_K/Q3_K planes).
vec4 crumbs(uint q, uint shift) { return vec4(uvec4(q >> shift, q >> (shift + 8u), q >> (shift + 16u), q >> (shift + 24u)) & 3u); }
// ggml's get_scale_min_k4: 6-bit scale and min of sub-block is (0..7) from
// the 12 scale bytes at sb (Q4_K, Q5_K).
uvec2 scale_min_k4(uint sb, uint is)
{
    if (is < 4u) return uvec2(w_u8(sb + is) & 63u, w_u8(sb + is + 4u) & 63u);
    return uvec2((w_u8(sb + is + 4u) & 0xFu) | ((w_u8(sb + is - 4u) >> 6) << 4),
                 (w_u8(sb + is + 4u) >> 4) | ((w_u8(sb + is) >> 6) << 4));
}

#if defined(A_F32)
#define A_PLAIN 1 // any row length; dq1 exists
#define A_BLOCK 1u
#define A_BYTES 4u
vec4 dq4(uint row, uint k)
{
    uint i = (row >> 2) + k;
    return vec4(uintBitsToFloat(wdata[i]), uintBitsToFloat(wdata[i + 1u]),
                uintBitsToFloat(wdata[i + 2u]), uintBitsToFloat(wdata[i + 3u]));
}
float dq1(uint row, uint k) { return uintBitsToFloat(wdata[(row >> 2) + k]); }
#elif defined(A_F16)
#define A_PLAIN 1 // any row length; dq1 exists
#define A_BLOCK 1u
#define A_BYTES 2u
vec4 dq4(uint row, uint k)
{
    return vec4(unpackHalf2x16(w_u32(row + 2u * k)), unpackHalf2x16(w_u32(row + 2u * k + 4u)));
}
float dq1(uint row, uint k) { return w_f16(row + 2u * k); }
#define HAVE_DQ16
void dq16(uint row, uint k, out vec4 v[4])
{
    uvec4 a = w_u32x4(row + 2u * k), b = w_u32x4(row + 2u * k + 16u);
    v[0] = vec4(unpackHalf2x16(a.x), unpackHalf2x16(a.y)); v[1] = vec4(unpackHalf2x16(a.z), unpackHalf2x16(a.w));
    v[2] = vec4(unpackHalf2x16(b.x), unpackHalf2x16(b.y)); v[3] = vec4(unpackHalf2x16(b.z), unpackHalf2x16(b.w));
}
#elif defined(A_BF16)
#define A_PLAIN 1 // any row length; dq1 exists
#define A_BLOCK 1u
#define A_BYTES 2u
vec2 bf16x2(uint q) { return vec2(uintBitsToFloat(q << 16), uintBitsToFloat(q & 0xFFFF0000u)); }
vec4 dq4(uint row, uint k) { return vec4(bf16x2(w_u32(row + 2u * k)), bf16x2(w_u32(row + 2u * k + 4u))); }
float dq1(uint row, uint k) { return uintBitsToFloat(w_u16(row + 2u * k) << 16); }
#elif defined(A_Q8_0)
#define A_BLOCK 32u
#define A_BYTES Q8_0_BYTES
vec4 dq4(uint row, uint k)
{
    uint blk = row + (k / 32u) * Q8_0_BYTES;
    return w_f16(blk) * i8x4(w_u32(blk + Q8_0_QS + (k % 32u)));
}
#define HAVE_DQ16
void dq16(uint row, uint k, out vec4 v[4])
{
    uint blk = row + (k / 32u) * Q8_0_BYTES;
    uvec4 q = w_u32x4(blk + Q8_0_QS + (k % 32u));
    float d = w_f16(blk);
    v[0] = d * i8x4(q.x); v[1] = d * i8x4(q.y); v[2] = d * i8x4(q.z); v[3] = d * i8x4(q.w);
}
#elif defined(A_Q4_0)
#define A_BLOCK 32u
#define A_BYTES Q4_0_BYTES
vec4 dq4(uint row, uint k)
{
    uint blk = row + (k / 32u) * Q4_0_BYTES;
    uint j = k % 32u; // element j sits in byte j % 16, low nibble for j < 16
    uint q = w_u32(blk + Q4_0_QS + (j & 15u));
    vec4 v = j < 16u ? nib_lo(q) : nib_hi(q);
    return w_f16(blk) * (v - 8.0);
}
#define HAVE_DQ16
void dq16(uint row, uint k, out vec4 v[4])
{
    uint blk = row + (k / 32u) * Q4_0_BYTES;
    uvec4 q = w_u32x4(blk + Q4_0_QS) >> ((k & 16u) >> 2); // high nibbles for the second half
    float d = w_f16(blk);
    v[0] = d * (nib_lo(q.x) - 8.0); v[1] = d * (nib_lo(q.y) - 8.0);
    v[2] = d * (nib_lo(q.z) - 8.0); v[3] = d * (nib_lo(q.w) - 8.0);
}
#elif defined(A_Q4_1)
#define A_BLOCK 32u
#define A_BYTES Q4_1_BYTES
vec4 dq4(uint row, uint k)
{
    uint blk = row + (k / 32u) * Q4_1_BYTES;
    uint j = k % 32u; // as Q4_0: element j in byte j % 16, low nibble for j < 16
    uint q = w_u32(blk + Q4_1_QS + (j & 15u));
    vec4 v = j < 16u ? nib_lo(q) : nib_hi(q);
    return w_f16(blk) * v + w_f16(blk + Q4_1_M);
}
#elif defined(A_Q5_0)
#define A_BLOCK 32u
#define A_BYTES Q5_0_BYTES
vec4 dq4(uint row, uint k)
{
    uint blk = row + (k / 32u) * Q5_0_BYTES;
    uint j = k % 32u; // low four bits as Q4_0, the fifth is bit j of qh
    uint q = w_u32(blk + Q5_0_QS + (j & 15u));
    vec4 v = (j < 16u ? nib_lo(q) : nib_hi(q)) + bit5(w_u32(blk + Q5_0_QH), j);
    return w_f16(blk) * (v - 16.0);
}
#elif defined(A_Q5_1)
#define A_BLOCK 32u
#define A_BYTES Q5_1_BYTES
vec4 dq4(uint row, uint k)
{
    uint blk = row + (k / 32u) * Q5_1_BYTES;
    uint j = k % 32u;
    uint q = w_u32(blk + Q5_1_QS + (j & 15u));
    vec4 v = (j < 16u ? nib_lo(q) : nib_hi(q)) + bit5(w_u32(blk + Q5_1_QH), j);
    return w_f16(blk) * v + w_f16(blk + Q5_1_M);
}
#elif defined(A_Q2_K)
#define A_BLOCK 256u
#define A_BYTES Q2_K_BYTES
vec4 dq4(uint row, uint k)
{
    uint blk = row + (k / 256u) * Q2_K_BYTES;
    uint j = k % 256u;
    // Per 128-element half: 32 bytes of qs hold four 2-bit planes; element
    // j takes byte j % 32 of its half at shift 2 * (j % 128 / 32). Sub-block
    // j / 16 has a 4-bit scale (low) and min (high) in scales[j / 16].
    uint q = w_u32(blk + Q2_K_QS + (j / 128u) * 32u + (j % 32u));
    vec4 v = crumbs(q, 2u * ((j % 128u) / 32u));
    uint sc = w_u8(blk + j / 16u);
    return w_f16(blk + Q2_K_D) * float(sc & 0xFu) * v - w_f16(blk + Q2_K_DMIN) * float(sc >> 4);
}
#elif defined(A_Q3_K)
#define A_BLOCK 256u
#define A_BYTES Q3_K_BYTES
vec4 dq4(uint row, uint k)
{
    uint blk = row + (k / 256u) * Q3_K_BYTES;
    uint j = k % 256u;
    // Low two bits as Q2_K's planes; the third (subtract 4 when clear) is
    // bit j / 32 of hmask[j % 32]. Sub-block s = j / 16 has a signed 6-bit
    // scale: low nibble in scales[s % 8] (high nibble for s >= 8), high two
    // bits in scales[8 + s % 4] at bit 2 * (s / 4).
    uint q = w_u32(blk + Q3_K_QS + (j / 128u) * 32u + (j % 32u));
    vec4 lo = crumbs(q, 2u * ((j % 128u) / 32u));
    uint hm = w_u32(blk + (j % 32u)) >> (j / 32u);
    vec4 hi = vec4(uvec4(hm, hm >> 8, hm >> 16, hm >> 24) & 1u);
    uint s = j / 16u, sb = blk + Q3_K_SCALES;
    uint sl = s < 8u ? (w_u8(sb + s) & 0xFu) : (w_u8(sb + s - 8u) >> 4);
    uint sh = (w_u8(sb + 8u + s % 4u) >> (2u * (s / 4u))) & 3u;
    float sc = float(int(sl | (sh << 4)) - 32);
    return w_f16(blk + Q3_K_D) * sc * (lo - 4.0 + 4.0 * hi);
}
#elif defined(A_Q5_K)
#define A_BLOCK 256u
#define A_BYTES Q5_K_BYTES
vec4 dq4(uint row, uint k)
{
    uint blk = row + (k / 256u) * Q5_K_BYTES;
    uint j = k % 256u;
    // As Q4_K, plus a fifth bit: bit j / 32 of qh[j % 32].
    uvec2 sm = scale_min_k4(blk + Q5_K_SCALES, j / 32u);
    uint l = j % 64u;
    uint q = w_u32(blk + Q5_K_QS + (j / 64u) * 32u + (l & 31u));
    uint h = w_u32(blk + Q5_K_QH + (j % 32u)) >> (j / 32u);
    vec4 v = (l < 32u ? nib_lo(q) : nib_hi(q)) + 16.0 * vec4(uvec4(h, h >> 8, h >> 16, h >> 24) & 1u);
    return w_f16(blk) * float(sm.x) * v - w_f16(blk + Q5_K_DMIN) * float(sm.y);
}
#elif defined(A_Q4_K)
#define A_BLOCK 256u
#define A_BYTES Q4_K_BYTES
vec4 dq4(uint row, uint k)
{
    uint blk = row + (k / 256u) * Q4_K_BYTES;
    uint j = k % 256u;
    uvec2 sm = scale_min_k4(blk + Q4_K_SCALES, j / 32u); // sub-block of 32
    // 64 elements share 32 bytes of qs: the first 32 low nibbles, then high.
    uint l = j % 64u;
    uint q = w_u32(blk + Q4_K_QS + (j / 64u) * 32u + (l & 31u));
    vec4 v = l < 32u ? nib_lo(q) : nib_hi(q);
    return w_f16(blk) * float(sm.x) * v - w_f16(blk + Q4_K_DMIN) * float(sm.y);
}
#define HAVE_DQ16
void dq16(uint row, uint k, out vec4 v[4])
{
    uint blk = row + (k / 256u) * Q4_K_BYTES;
    uint j = k % 256u, l = j % 64u;
    uvec2 sm = scale_min_k4(blk + Q4_K_SCALES, j / 32u);
    uvec4 q = w_u32x4(blk + Q4_K_QS + (j / 64u) * 32u + (l & 31u)) >> (l < 32u ? 0u : 4u);
    float a = w_f16(blk) * float(sm.x), b = w_f16(blk + Q4_K_DMIN) * float(sm.y);
    v[0] = a * nib_lo(q.x) - b; v[1] = a * nib_lo(q.y) - b; v[2] = a * nib_lo(q.z) - b; v[3] = a * nib_lo(q.w) - b;
}
#elif defined(A_Q6_K)
#define A_BLOCK 256u
#define A_BYTES Q6_K_BYTES
vec4 dq4(uint row, uint k)
{
    uint blk = row + (k / 256u) * Q6_K_BYTES;
    uint j = k % 256u;
    uint h = j / 128u, r = j % 128u, qd = r / 32u, l = r % 32u;
    // quarter qd of a 128-half: low/high nibbles of ql[l] and ql[l+32],
    // two high bits each from qh[l] at bit 2*qd.
    uint ql = w_u32(blk + h * 64u + l + (qd & 1u) * 32u);
    uint qh = w_u32(blk + Q6_K_QH + h * 32u + l);
    vec4 lo = qd < 2u ? nib_lo(ql) : nib_hi(ql);
    vec4 hi = nib_lo(qh >> (2u * qd)) ; // bits 2qd..2qd+1 (masked below)
    hi = vec4(uvec4(hi) & 3u);
    int sc = int(w_u8(blk + Q6_K_SCALES + h * 8u + l / 16u + 2u * qd) << 24) >> 24;
    return w_f16(blk + Q6_K_D) * float(sc) * (lo + 16.0 * hi - 32.0);
}
#define HAVE_DQ16
void dq16(uint row, uint k, out vec4 v[4])
{
    uint blk = row + (k / 256u) * Q6_K_BYTES;
    uint j = k % 256u;
    uint h = j / 128u, r = j % 128u, qd = r / 32u, l = r % 32u; // l is 0 or 16: one scale
    uvec4 ql = w_u32x4(blk + h * 64u + l + (qd & 1u) * 32u) >> (qd < 2u ? 0u : 4u);
    uvec4 qh = (w_u32x4(blk + Q6_K_QH + h * 32u + l) >> (2u * qd)) & 0x03030303u;
    int sc = int(w_u8(blk + Q6_K_SCALES + h * 8u + l / 16u + 2u * qd) << 24) >> 24;
    float d = w_f16(blk + Q6_K_D) * float(sc);
    v[0] = d * (nib_lo(ql.x) + 16.0 * u8x4(qh.x) - 32.0); v[1] = d * (nib_lo(ql.y) + 16.0 * u8x4(qh.y) - 32.0);
    v[2] = d * (nib_lo(ql.z) + 16.0 * u8x4(qh.z) - 32.0); v[3] = d * (nib_lo(ql.w) + 16.0 * u8x4(qh.w) - 32.0);
}
#else
#error "define one A_* weight type"
#endif

#ifndef HAVE_DQ16
void dq16(uint row, uint k, out vec4 v[4])
{
    for (uint i = 0u; i < 4u; i++) v[i] = dq4(row, k + 4u * i);
}
#endif
