/*
 * act_avx2.c: AVX2 + FMA helpers built on a vector exp: softmax's exp-sum
 * and the gate activations (SiLU, both GELU forms), the same forms as
 * act_avx512.c. Without them an AVX2 CPU ran these in scalar libm: a
 * BERT embedding spent 18% of its time in erfcf.
 */
#include <immintrin.h>
#include <stdbool.h>

#include "cpu.h"
#include "exp_avx2.h"
#include "load_avx2.h"

/* Lanes below rem are on: the masks of maskload/maskstore for a tail. */
INLINE __m256i tail_mask(int64_t rem)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static float exp_sum_f32(int64_t n, float *y, float m)
{
    __m256 mv = _mm256_set1_ps(m), sum = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(y + i), mv));
        _mm256_storeu_ps(y + i, e);
        sum = _mm256_add_ps(sum, e);
    }
    if (i < n) {
        __m256i msk = tail_mask(n - i);
        __m256 e = exp8(_mm256_sub_ps(_mm256_maskload_ps(y + i, msk), mv));
        _mm256_maskstore_ps(y + i, msk, e);
        sum = _mm256_add_ps(sum, _mm256_and_ps(e, _mm256_castsi256_ps(msk)));
    }
    return hsum8(sum);
}

/* silu through exp8: e^-x overflows to inf for x < -88.7, where x / inf
 * gives the -0 that libm's expf gives as well. */
static void swiglu_f32(int64_t n, float *o, const float *x, const float *y)
{
    const __m256 one = _mm256_set1_ps(1.0f), neg = _mm256_set1_ps(-0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 xv = _mm256_loadu_ps(x + i);
        __m256 s = _mm256_div_ps(xv, _mm256_add_ps(one, exp8(_mm256_xor_ps(xv, neg))));
        if (y) s = _mm256_mul_ps(s, _mm256_loadu_ps(y + i));
        _mm256_storeu_ps(o + i, s);
    }
    if (i < n) { /* masked only at the tail: vmaskmovps stores are microcoded on AMD */
        __m256i m = tail_mask(n - i);
        __m256 xv = _mm256_maskload_ps(x + i, m);
        __m256 s = _mm256_div_ps(xv, _mm256_add_ps(one, exp8(_mm256_xor_ps(xv, neg))));
        if (y) s = _mm256_mul_ps(s, _mm256_maskload_ps(y + i, m));
        _mm256_maskstore_ps(o + i, m, s);
    }
}

/* GELU, erf form, as gelu_erf16 (act_avx512.c has the derivation): x/2
 * erfc(-x/sqrt2) with Numerical Recipes' erfcc fit for z = |x|/sqrt2 and
 * erfc(-z) = 2 - erfc(z), so the negative tail does not cancel. */
INLINE __m256 gelu_erf8(__m256 x)
{
    const __m256 one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f), sign = _mm256_set1_ps(-0.0f);
    __m256 z = _mm256_mul_ps(_mm256_andnot_ps(sign, x), _mm256_set1_ps(0.70710678118654752f));
    __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(half, z, one));
    __m256 p = _mm256_set1_ps(0.17087277f);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.82215223f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.48851587f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.13520398f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.27886807f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.18628806f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.09678418f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.37409196f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.00002368f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.26551223f));
    __m256 half_erfc = _mm256_mul_ps(_mm256_mul_ps(half, t), exp8(_mm256_fnmadd_ps(z, z, p)));
    __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    return _mm256_mul_ps(x, _mm256_blendv_ps(_mm256_sub_ps(one, half_erfc), half_erfc, neg));
}

/* GELU, tanh form, as gelu_tanh16: x sigmoid(2u) from e = e^-2|u|, which
 * never overflows, so the negative tail stays exact. */
INLINE __m256 gelu_tanh8(__m256 x)
{
    __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
    __m256 u2 = _mm256_mul_ps(_mm256_fmadd_ps(_mm256_set1_ps(0.044715f), x3, x), _mm256_set1_ps(1.59576912160573071f));
    __m256 e = exp8(_mm256_or_ps(u2, _mm256_set1_ps(-0.0f))); /* -|u2| */
    __m256 r = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    __m256 neg = _mm256_cmp_ps(u2, _mm256_setzero_ps(), _CMP_LT_OQ);
    return _mm256_blendv_ps(r, _mm256_mul_ps(r, e), neg);
}

static void gelu_f32(int64_t n, float *o, const float *x, const float *y, bool tanh_form)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 xv = _mm256_loadu_ps(x + i);
        __m256 g = tanh_form ? gelu_tanh8(xv) : gelu_erf8(xv);
        if (y) g = _mm256_mul_ps(g, _mm256_loadu_ps(y + i));
        _mm256_storeu_ps(o + i, g);
    }
    if (i < n) {
        __m256i m = tail_mask(n - i);
        __m256 xv = _mm256_maskload_ps(x + i, m);
        __m256 g = tanh_form ? gelu_tanh8(xv) : gelu_erf8(xv);
        if (y) g = _mm256_mul_ps(g, _mm256_maskload_ps(y + i, m));
        _mm256_maskstore_ps(o + i, m, g);
    }
}

void cpu_act_init_avx2(cpu_kernels *k)
{
    k->exp_sum_f32 = exp_sum_f32;
    k->swiglu_f32 = swiglu_f32;
    k->gelu_f32 = gelu_f32;
}
