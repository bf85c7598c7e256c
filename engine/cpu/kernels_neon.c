/*
 * kernels_neon.c: arm64 Advanced SIMD kernels (built only for arm64). Kept
 * deliberately simple, one weight row x one activation row at a time, so it
 * is obviously right without hardware to test on; what is not here runs the
 * scalar code.
 */
#include <arm_neon.h>

#include "cpu.h"
#include "tile.h"
#include "util.h"

static float dot_f32(int64_t n, const float *a, const float *b)
{
    float32x4_t acc = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) acc = vfmaq_f32(acc, vld1q_f32(a + i), vld1q_f32(b + i));
    float s = vaddvq_f32(acc);
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static float dot_q8_0(int64_t n, const block_q8_0 *w, const block_q8_0 *x)
{
    float s = 0.0f;
    for (int64_t b = 0; b < n / QK8_0; b++) {
        int32x4_t acc = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            int8x16_t wv = vld1q_s8(w[b].qs + 16 * h), xv = vld1q_s8(x[b].qs + 16 * h);
            acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(wv), vget_low_s8(xv)));
            acc = vpadalq_s16(acc, vmull_s8(vget_high_s8(wv), vget_high_s8(xv)));
        }
        s += vki_fp16_to_fp32(w[b].d) * vki_fp16_to_fp32(x[b].d) * (float)vaddvq_s32(acc);
    }
    return s;
}

static float dot_q4_0(int64_t n, const block_q4_0 *w, const block_q8_0 *x)
{
    float s = 0.0f;
    for (int64_t b = 0; b < n / QK4_0; b++) {
        uint8x16_t q = vld1q_u8(w[b].qs);
        int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F))), vdupq_n_s8(8));
        int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), vdupq_n_s8(8));
        int8x16_t x0 = vld1q_s8(x[b].qs), x1 = vld1q_s8(x[b].qs + 16);
        int32x4_t acc = vdupq_n_s32(0);
        acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(lo), vget_low_s8(x0)));
        acc = vpadalq_s16(acc, vmull_s8(vget_high_s8(lo), vget_high_s8(x0)));
        acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(hi), vget_low_s8(x1)));
        acc = vpadalq_s16(acc, vmull_s8(vget_high_s8(hi), vget_high_s8(x1)));
        s += vki_fp16_to_fp32(w[b].d) * vki_fp16_to_fp32(x[b].d) * (float)vaddvq_s32(acc);
    }
    return s;
}

static void mad_f32(int64_t n, float *y, const float *x, float s)
{
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), s));
    for (; i < n; i++) y[i] += s * x[i];
}

GEMM_FROM_DOT(gemm_f32, float, float, dot_f32)
GEMM_FROM_DOT(gemm_q8_0, block_q8_0, block_q8_0, dot_q8_0)
GEMM_FROM_DOT(gemm_q4_0, block_q4_0, block_q8_0, dot_q4_0)

void cpu_kernels_init_neon(cpu_kernels *k)
{
    k->gemm[VKI_TYPE_F32] = gemm_f32;
    k->gemm[VKI_TYPE_Q8_0] = gemm_q8_0;
    k->gemm[VKI_TYPE_Q4_0] = gemm_q4_0;
    k->dot_f32 = dot_f32;
    k->mad_f32 = mad_f32;
}
