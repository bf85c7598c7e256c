// intdot.glsl: 4 x int8 dot products (VK_KHR_shader_integer_dot_product)
// and the int-dot mat-vec's per-type block dots. The including shader
// declares wdata[] (weights, dequant.glsl) and xq[] (activations as q8
// blocks, written by quantize_q8.comp) and defines one of A_Q8_0, A_Q4_0,
// A_Q4_K, A_Q6_K.
//
// Debian 12's glslc (glslang 11) does not know GL_EXT_integer_dot_product,
// so OpSDot is emitted by opcode through GL_EXT_spirv_intrinsics: opcode
// 4450 = OpSDot, capabilities 6019 = DotProduct, 6018 =
// DotProductInput4x8BitPacked, literal 0 = PackedVectorFormat4x8Bit (both
// operands are four signed bytes packed in a 32-bit word). The device must
// enable shaderIntegerDotProduct (engine/vulkan/device.c).
#extension GL_EXT_spirv_intrinsics : require
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int sdot_4x8(uint a, uint b, spirv_literal int fmt);
#define SDOT(a, b) sdot_4x8(a, b, 0)

// Activation block (quantize_q8.comp): 32 elements in Q8_XWORDS words:
// [0] scale d (f32 bits), [1] sum of q over elements 0..15 (low 16 bits,
// signed) and 16..31 (high 16 bits), [2..9] q as packed int8. x = d * q.
#define Q8_XWORDS 10u
float xq_d(uint xb) { return uintBitsToFloat(xq[xb]); }
ivec2 xq_sums(uint xb) { uint s = xq[xb + 1u]; return ivec2(int(s << 16) >> 16, int(s) >> 16); }

// sum of the eight word dots of w against block xb's quants, split into
// the halves (elements 0..15, 16..31)
ivec2 sdot8(uvec4 w0, uvec4 w1, uint xb)
{
    uint q = xb + 2u;
    int a = SDOT(w0.x, xq[q]) + SDOT(w0.y, xq[q + 1u]) + SDOT(w0.z, xq[q + 2u]) + SDOT(w0.w, xq[q + 3u]);
    int b = SDOT(w1.x, xq[q + 4u]) + SDOT(w1.y, xq[q + 5u]) + SDOT(w1.z, xq[q + 6u]) + SDOT(w1.w, xq[q + 7u]);
    return ivec2(a, b);
}

// A 32-element weight block as the int-dot loop uses it: its codes as 32
// bytes (lo: elements 0..15, hi: 16..31; non-negative nibbles or 6-bit
// codes, or Q8_0's signed bytes) and f = (a0, a1, m0, m1) such that its dot
// with activation block xb is d_x * (a0 s0 + a1 s1 - m0 t0 - m1 t1), s the
// code-by-quant dots and t the quant sums of each half: the offsets (Q4_0's
// -8, Q4_K's minimum, Q6_K's -32) come out of the sums. Loaded once, dotted
// with every activation column of the workgroup.
struct wq32 { uvec4 lo, hi; vec4 f; };

float dotq32(wq32 w, uint xb)
{
    ivec2 s = sdot8(w.lo, w.hi, xb), t = xq_sums(xb);
    return xq_d(xb) * (w.f.x * float(s.x) + w.f.y * float(s.y) - w.f.z * float(t.x) - w.f.w * float(t.y));
}

// wq32_load(row, b): weight elements 32b..32b+31 of the row at byte address row.
#if defined(A_Q8_0)
wq32 wq32_load(uint row, uint b)
{
    uint blk = row + b * Q8_0_BYTES;
    float d = w_f16(blk);
    return wq32(w_u32x4(blk + Q8_0_QS), w_u32x4(blk + Q8_0_QS + 16u), vec4(d, d, 0.0, 0.0));
}
#elif defined(A_Q4_0)
wq32 wq32_load(uint row, uint b)
{
    uint blk = row + b * Q4_0_BYTES;
    uvec4 q = w_u32x4(blk + Q4_0_QS); // elements 0..15 in the low nibbles, 16..31 in the high
    float d = w_f16(blk);
    return wq32(q & 0x0F0F0F0Fu, (q >> 4) & 0x0F0F0F0Fu, vec4(d, d, 8.0 * d, 8.0 * d));
}
#elif defined(A_Q4_K)
wq32 wq32_load(uint row, uint b)
{
    uint blk = row + (b / 8u) * Q4_K_BYTES, j = b % 8u; // sub-block j of 32
    uvec2 sm = scale_min_k4(blk + Q4_K_SCALES, j);
    uint qa = blk + Q4_K_QS + (j / 2u) * 32u, sh = (j & 1u) * 4u; // odd sub-blocks: high nibbles
    float a = w_f16(blk) * float(sm.x), m = w_f16(blk + Q4_K_DMIN) * float(sm.y);
    return wq32((w_u32x4(qa) >> sh) & 0x0F0F0F0Fu, (w_u32x4(qa + 16u) >> sh) & 0x0F0F0F0Fu, vec4(a, a, m, m));
}
#elif defined(A_Q6_K)
wq32 wq32_load(uint row, uint b)
{
    uint blk = row + (b / 8u) * Q6_K_BYTES, j = b % 8u;
    uint h = j / 4u, qd = j % 4u; // 128-half and quarter, as dq16
    uint la = blk + h * 64u + (qd & 1u) * 32u, ha = blk + Q6_K_QH + h * 32u;
    uint sl = qd < 2u ? 0u : 4u, shh = 2u * qd;
    uvec4 lo = ((w_u32x4(la) >> sl) & 0x0F0F0F0Fu) | (((w_u32x4(ha) >> shh) & 0x03030303u) << 4);
    uvec4 hi = ((w_u32x4(la + 16u) >> sl) & 0x0F0F0F0Fu) | (((w_u32x4(ha + 16u) >> shh) & 0x03030303u) << 4);
    uint sb = blk + Q6_K_SCALES + h * 8u + 2u * qd; // one signed scale per 16 elements
    float d = w_f16(blk + Q6_K_D);
    float a0 = d * float(int(w_u8(sb) << 24) >> 24), a1 = d * float(int(w_u8(sb + 1u) << 24) >> 24);
    return wq32(lo, hi, vec4(a0, a1, 32.0 * a0, 32.0 * a1)); // codes 0..63: w = d * sc * (code - 32)
}
#else
#error "intdot.glsl: no int-dot kernel for this weight type"
#endif
