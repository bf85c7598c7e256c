/*
 * kernels_scalar.c: the portable kernels every ISA table starts from, and
 * the activation quantizers all ISAs share (so integer dot products see the
 * same inputs on every level). Plain C, no intrinsics.
 */
#include <math.h>

#include "cpu.h"
#include "kquants.h"
#include "tile.h"
#include "util.h"

/* ===== Activation formats and quantizers ================================ */

cpu_act cpu_act_for(vki_type wtype)
{
    switch (wtype) {
    case VKI_TYPE_Q8_0:
    case VKI_TYPE_Q4_0:
    case VKI_TYPE_Q4_1:
    case VKI_TYPE_Q5_0:
    case VKI_TYPE_Q5_1: return CPU_ACT_Q8_0;
    case VKI_TYPE_Q2_K:
    case VKI_TYPE_Q3_K:
    case VKI_TYPE_Q4_K:
    case VKI_TYPE_Q5_K:
    case VKI_TYPE_Q6_K: return CPU_ACT_Q8_K;
    default:            return CPU_ACT_F32;
    }
}

/* Round to nearest even for |v| < 2^22, as lrintf does in the default
 * rounding mode, without the libm call (so the loops vectorise): after
 * adding 1.5 * 2^23 no fraction bits are left. Exact because we do not
 * build with -ffast-math, so the two adds are kept. */
static inline int32_t round_ne(float v) { return (int32_t)((v + 12582912.0f) - 12582912.0f); }

/* The max of |x| over n floats; NaNs are skipped, as fmaxf does. */
static inline float abs_max(const float *x, int n)
{
    float amax = 0.0f;
    for (int i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        amax = a > amax ? a : amax;
    }
    return amax;
}

void cpu_quantize_q8_0(const float *x, void *dst, int64_t n)
{
    block_q8_0 *y = dst;
    for (int64_t b = 0; b < n / QK8_0; b++, x += QK8_0) {
        float amax = abs_max(x, QK8_0);
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = vki_fp32_to_fp16(d);
        for (int i = 0; i < QK8_0; i++) y[b].qs[i] = (int8_t)round_ne(x[i] * id);
    }
}

void cpu_quantize_q8_K(const float *x, void *dst, int64_t n)
{
    block_q8_K *y = dst;
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        float amax = abs_max(x, QK_K);
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = d;
        for (int i = 0; i < QK_K; i++) {
            int32_t q = round_ne(x[i] * id);
            y[b].qs[i] = (int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
        }
        for (int g = 0; g < QK_K / 16; g++) {
            int s = 0;
            for (int i = 0; i < 16; i++) s += y[b].qs[16 * g + i];
            y[b].bsums[g] = (int16_t)s;
        }
    }
}

/* ===== Dot products ====================================================== */

static float dot_f32(int64_t n, const float *a, const float *b)
{
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static float dot_f16(int64_t n, const uint16_t *a, const float *b)
{
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += vki_fp16_to_fp32(a[i]) * b[i];
    return s;
}

static float dot_bf16(int64_t n, const uint16_t *a, const float *b)
{
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += vki_bf16_to_fp32(a[i]) * b[i];
    return s;
}

static float dot_q8_0(int64_t n, const block_q8_0 *w, const block_q8_0 *x)
{
    float s = 0.0f;
    for (int64_t b = 0; b < n / QK8_0; b++) {
        int32_t si = 0;
        for (int i = 0; i < QK8_0; i++) si += w[b].qs[i] * x[b].qs[i];
        s += vki_fp16_to_fp32(w[b].d) * vki_fp16_to_fp32(x[b].d) * (float)si;
    }
    return s;
}

static float dot_q4_0(int64_t n, const block_q4_0 *w, const block_q8_0 *x)
{
    float s = 0.0f;
    for (int64_t b = 0; b < n / QK4_0; b++) {
        int32_t si = 0;
        for (int i = 0; i < QK4_0 / 2; i++) {
            si += ((w[b].qs[i] & 0xF) - 8) * x[b].qs[i];
            si += ((w[b].qs[i] >> 4) - 8) * x[b].qs[i + QK4_0 / 2];
        }
        s += vki_fp16_to_fp32(w[b].d) * vki_fp16_to_fp32(x[b].d) * (float)si;
    }
    return s;
}

/* Bit e of a Q5 block's high bits (element e = 0..31) as 0 or 16. */
static inline int q5_high(const uint8_t *qh, int e) { return ((qh[e / 8] >> (e % 8)) & 1) << 4; }

/* Q4_1 / Q5_1: w = d q + m, so a block adds d xd sum(q x) + m xd sum(x). */
static float dot_q4_1(int64_t n, const block_q4_1 *w, const block_q8_0 *x)
{
    float s = 0.0f;
    for (int64_t b = 0; b < n / QK4_1; b++) {
        int32_t si = 0, sx = 0;
        for (int i = 0; i < QK4_1 / 2; i++) {
            si += (w[b].qs[i] & 0xF) * x[b].qs[i] + (w[b].qs[i] >> 4) * x[b].qs[i + QK4_1 / 2];
            sx += x[b].qs[i] + x[b].qs[i + QK4_1 / 2];
        }
        float xd = vki_fp16_to_fp32(x[b].d);
        s += vki_fp16_to_fp32(w[b].d) * xd * (float)si + vki_fp16_to_fp32(w[b].m) * xd * (float)sx;
    }
    return s;
}

static float dot_q5_0(int64_t n, const block_q5_0 *w, const block_q8_0 *x)
{
    float s = 0.0f;
    for (int64_t b = 0; b < n / QK5_0; b++) {
        int32_t si = 0;
        for (int i = 0; i < QK5_0 / 2; i++) {
            si += (((w[b].qs[i] & 0xF) | q5_high(w[b].qh, i)) - 16) * x[b].qs[i];
            si += (((w[b].qs[i] >> 4) | q5_high(w[b].qh, i + 16)) - 16) * x[b].qs[i + QK5_0 / 2];
        }
        s += vki_fp16_to_fp32(w[b].d) * vki_fp16_to_fp32(x[b].d) * (float)si;
    }
    return s;
}

static float dot_q5_1(int64_t n, const block_q5_1 *w, const block_q8_0 *x)
{
    float s = 0.0f;
    for (int64_t b = 0; b < n / QK5_1; b++) {
        int32_t si = 0, sx = 0;
        for (int i = 0; i < QK5_1 / 2; i++) {
            si += ((w[b].qs[i] & 0xF) | q5_high(w[b].qh, i)) * x[b].qs[i];
            si += ((w[b].qs[i] >> 4) | q5_high(w[b].qh, i + 16)) * x[b].qs[i + QK5_1 / 2];
            sx += x[b].qs[i] + x[b].qs[i + QK5_1 / 2];
        }
        float xd = vki_fp16_to_fp32(x[b].d);
        s += vki_fp16_to_fp32(w[b].d) * xd * (float)si + vki_fp16_to_fp32(w[b].m) * xd * (float)sx;
    }
    return s;
}

static void mad_f32(int64_t n, float *y, const float *x, float s)
{
    for (int64_t i = 0; i < n; i++) y[i] += s * x[i];
}

static void mad_f16(int64_t n, float *y, const uint16_t *x, float s)
{
    for (int64_t i = 0; i < n; i++) y[i] += s * vki_fp16_to_fp32(x[i]);
}

static void scale_f32(int64_t n, float *y, float s)
{
    for (int64_t i = 0; i < n; i++) y[i] *= s;
}

static void swiglu_f32(int64_t n, float *o, const float *x, const float *y)
{
    for (int64_t i = 0; i < n; i++) {
        float s = x[i] / (1.0f + expf(-x[i]));
        o[i] = y ? s * y[i] : s;
    }
}

/* x Phi(x) as x/2 erfc(-x/sqrt2) and x/2 (1 + tanh u) as x sigmoid(2u),
 * the sigmoid from e^-2|u| (which cannot overflow): the forms that keep the
 * tail for negative x (1 + erf and 1 + tanh cancel there), and the ones the
 * vector levels compute. */
static void gelu_f32(int64_t n, float *o, const float *x, const float *y, bool tanh_form)
{
    for (int64_t i = 0; i < n; i++) {
        float v = x[i], g;
        if (tanh_form) {
            float u2 = 1.59576912160573071f * (v + 0.044715f * v * v * v), e = expf(-fabsf(u2));
            g = u2 >= 0.0f ? v / (1.0f + e) : v * e / (1.0f + e);
        } else g = 0.5f * v * erfcf(-v * 0.70710678118654752f);
        o[i] = y ? g * y[i] : g;
    }
}

static float exp_sum_f32(int64_t n, float *y, float m)
{
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += y[i] = expf(y[i] - m);
    return s;
}

/* ===== Tiles from dots =================================================== */


GEMM_FROM_DOT(gemm_f32, float, float, dot_f32)
GEMM_FROM_DOT(gemm_f16, uint16_t, float, dot_f16)
GEMM_FROM_DOT(gemm_bf16, uint16_t, float, dot_bf16)
GEMM_FROM_DOT(gemm_q8_0, block_q8_0, block_q8_0, dot_q8_0)
GEMM_FROM_DOT(gemm_q4_0, block_q4_0, block_q8_0, dot_q4_0)
GEMM_FROM_DOT(gemm_q4_1, block_q4_1, block_q8_0, dot_q4_1)
GEMM_FROM_DOT(gemm_q5_0, block_q5_0, block_q8_0, dot_q5_0)
GEMM_FROM_DOT(gemm_q5_1, block_q5_1, block_q8_0, dot_q5_1)
GEMM_FROM_DOT(gemm_q2_K, block_q2_K, block_q8_K, kq_dot_q2_K_q8_K)
GEMM_FROM_DOT(gemm_q3_K, block_q3_K, block_q8_K, kq_dot_q3_K_q8_K)
GEMM_FROM_DOT(gemm_q4_K, block_q4_K, block_q8_K, kq_dot_q4_K_q8_K)
GEMM_FROM_DOT(gemm_q5_K, block_q5_K, block_q8_K, kq_dot_q5_K_q8_K)
GEMM_FROM_DOT(gemm_q6_K, block_q6_K, block_q8_K, kq_dot_q6_K_q8_K)

void cpu_kernels_init_scalar(cpu_kernels *k)
{
    k->gemm[VKI_TYPE_F32] = gemm_f32;
    k->gemm[VKI_TYPE_F16] = gemm_f16;
    k->gemm[VKI_TYPE_BF16] = gemm_bf16;
    k->gemm[VKI_TYPE_Q8_0] = gemm_q8_0;
    k->gemm[VKI_TYPE_Q4_0] = gemm_q4_0;
    k->gemm[VKI_TYPE_Q4_1] = gemm_q4_1;
    k->gemm[VKI_TYPE_Q5_0] = gemm_q5_0;
    k->gemm[VKI_TYPE_Q5_1] = gemm_q5_1;
    k->gemm[VKI_TYPE_Q2_K] = gemm_q2_K;
    k->gemm[VKI_TYPE_Q3_K] = gemm_q3_K;
    k->gemm[VKI_TYPE_Q4_K] = gemm_q4_K;
    k->gemm[VKI_TYPE_Q5_K] = gemm_q5_K;
    k->gemm[VKI_TYPE_Q6_K] = gemm_q6_K;
    k->dot_f32 = dot_f32;
    k->dot_f16 = dot_f16;
    k->mad_f32 = mad_f32;
    k->mad_f16 = mad_f16;
    k->scale_f32 = scale_f32;
    k->exp_sum_f32 = exp_sum_f32;
    k->quantize_q8_0 = cpu_quantize_q8_0;
    k->quantize_q8_K = cpu_quantize_q8_K;
    k->swiglu_f32 = swiglu_f32;
    k->gelu_f32 = gelu_f32;
}
