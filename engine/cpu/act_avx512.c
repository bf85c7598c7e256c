/*
 * act_avx512.c: AVX-512 helpers built on a vector exp: softmax's exp-sum
 * and the gate activations (SiLU, both GELU forms). Split from
 * kernels_avx512.c, which holds the mat-mul kernels.
 */
#include <immintrin.h>
#include <stdbool.h>

#include "cpu.h"
#include "exp_avx512.h"

static float exp_sum_f32(int64_t n, float *y, float m)
{
    __m512 mv = _mm512_set1_ps(m), sum = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(y + i), mv));
        _mm512_storeu_ps(y + i, e);
        sum = _mm512_add_ps(sum, e);
    }
    if (i < n) {
        __mmask16 msk = (__mmask16)((1u << (n - i)) - 1);
        __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(msk, y + i), mv));
        _mm512_mask_storeu_ps(y + i, msk, e);
        sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(msk, e));
    }
    return _mm512_reduce_add_ps(sum);
}

/* silu through exp16 (about 1 ulp): e^-x overflows to inf for x < -88,
 * where x / inf gives the -0 that libm's expf gives as well. */
static void swiglu_f32(int64_t n, float *o, const float *x, const float *y)
{
    const __m512 one = _mm512_set1_ps(1.0f), neg = _mm512_set1_ps(-0.0f);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 xv = _mm512_maskz_loadu_ps(m, x + i);
        __m512 s = _mm512_div_ps(xv, _mm512_add_ps(one, exp16(_mm512_xor_ps(xv, neg))));
        if (y) s = _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, y + i));
        _mm512_mask_storeu_ps(o + i, m, s);
    }
}

/* GELU, erf form: x Phi(x) = x/2 erfc(-x/sqrt2), erfc(z) = t exp(-z^2 + P(t)),
 * t = 1 / (1 + z/2), z >= 0 (the Chebyshev fit of Numerical Recipes'
 * erfcc, fractional error < 1.2e-7), and erfc(-z) = 2 - erfc(z). For
 * negative x this takes the small tail directly instead of 1 + erf(x/sqrt2),
 * which cancels: the profile of a BERT embedding had 9% in scalar erff. */
INLINE __m512 gelu_erf16(__m512 x)
{
    const __m512 one = _mm512_set1_ps(1.0f), half = _mm512_set1_ps(0.5f);
    __m512 z = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.70710678118654752f));
    __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(half, z, one));
    __m512 p = _mm512_set1_ps(0.17087277f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.82215223f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.48851587f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.13520398f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.27886807f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.18628806f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.09678418f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.37409196f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.00002368f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.26551223f));
    __m512 half_erfc = _mm512_mul_ps(_mm512_mul_ps(half, t), exp16(_mm512_fnmadd_ps(z, z, p)));
    __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    return _mm512_mul_ps(x, _mm512_mask_blend_ps(neg, _mm512_sub_ps(one, half_erfc), half_erfc));
}

/* GELU, tanh form: x/2 (1 + tanh u) = x sigmoid(2u), u = sqrt(2/pi)
 * (x + 0.044715 x^3), the sigmoid from e = e^-2|u| as 1 / (1 + e) or
 * e / (1 + e): e never overflows, so the negative tail stays exact down to
 * FLT_MIN instead of turning into 0 where e^-2u passes FLT_MAX. */
INLINE __m512 gelu_tanh16(__m512 x)
{
    __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
    __m512 u2 = _mm512_mul_ps(_mm512_fmadd_ps(_mm512_set1_ps(0.044715f), x3, x), _mm512_set1_ps(1.59576912160573071f));
    __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(u2)));
    __m512 r = _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    __mmask16 neg = _mm512_cmp_ps_mask(u2, _mm512_setzero_ps(), _CMP_LT_OQ);
    return _mm512_mask_mul_ps(r, neg, r, e);
}

static void gelu_f32(int64_t n, float *o, const float *x, const float *y, bool tanh_form)
{
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 xv = _mm512_maskz_loadu_ps(m, x + i);
        __m512 g = tanh_form ? gelu_tanh16(xv) : gelu_erf16(xv);
        if (y) g = _mm512_mul_ps(g, _mm512_maskz_loadu_ps(m, y + i));
        _mm512_mask_storeu_ps(o + i, m, g);
    }
}

void cpu_act_init_avx512(cpu_kernels *k)
{
    k->exp_sum_f32 = exp_sum_f32;
    k->swiglu_f32 = swiglu_f32;
    k->gelu_f32 = gelu_f32;
}
