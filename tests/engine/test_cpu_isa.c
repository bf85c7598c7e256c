/*
 * test_cpu_isa.c: each SIMD level's kernels against the scalar table on the
 * same inputs: every gemm tile shape (1..4 x 1..4) for every weight type the
 * tables cover, odd lengths for the vector helpers. Integer block sums are
 * exact on every level, so only float summation order may differ: results
 * must agree within 1e-5 of sum |w_i x_i| (k * eps would be 2e-4 at
 * k = 2304; the random signs keep real drift far below that).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/cpu.h"
#include "error.h"
#include "test_util.h"
#include "util.h"

static const vki_type types[] = {VKI_TYPE_F32, VKI_TYPE_F16, VKI_TYPE_BF16, VKI_TYPE_Q8_0,
                                 VKI_TYPE_Q4_0, VKI_TYPE_Q4_K, VKI_TYPE_Q6_K};

static size_t act_row_bytes(cpu_act a, int64_t k)
{
    return a == CPU_ACT_Q8_0 ? (size_t)(k / QK8_0) * sizeof(block_q8_0)
         : a == CPU_ACT_Q8_K ? (size_t)(k / QK_K) * sizeof(block_q8_K) : (size_t)k * sizeof(float);
}

static void check_gemm(const cpu_kernels *ref, const cpu_kernels *fast, vki_type t, int64_t k, uint64_t *seed)
{
    const int R = CPU_TILE_R, C = CPU_TILE_C;
    cpu_act act = cpu_act_for(t);
    size_t ws = (size_t)vki_row_bytes(t, k), xs = act_row_bytes(act, k);
    float *wf = malloc((size_t)(R * k) * sizeof(float)), *xf = malloc((size_t)(C * k) * sizeof(float));
    uint8_t *w = malloc(ws * R), *x = malloc(xs * C);
    VKI_ASSERT(wf && xf && w && x);
    for (int64_t i = 0; i < R * k; i++) wf[i] = test_rand_f32(seed, -1.0f, 1.0f);
    for (int64_t i = 0; i < C * k; i++) xf[i] = test_rand_f32(seed, -1.0f, 1.0f);
    for (int r = 0; r < R; r++) {
        bool ok = t == VKI_TYPE_F32 ? (memcpy(w + r * ws, wf + r * k, ws), true)
                                    : vki_quantize_row(t, wf + r * k, w + r * ws, k);
        CHECKF(ok, "quantize %s", vki_type_name(t));
        vki_dequantize_row(t, w + r * ws, wf + r * k, k); /* what the kernels see */
    }
    for (int c = 0; c < C; c++) {
        if (act == CPU_ACT_Q8_0) cpu_quantize_q8_0(xf + c * k, x + c * xs, k);
        else if (act == CPU_ACT_Q8_K) cpu_quantize_q8_K(xf + c * k, x + c * xs, k);
        else memcpy(x + c * xs, xf + c * k, xs);
    }
    for (int nr = 1; nr <= R; nr++)
        for (int nc = 1; nc <= C; nc++) {
            float a[CPU_TILE_R * CPU_TILE_C], b[CPU_TILE_R * CPU_TILE_C];
            for (int i = 0; i < R * C; i++) a[i] = b[i] = NAN;
            ref->gemm[t](k, w, ws, nr, x, xs, nc, a, R);
            fast->gemm[t](k, w, ws, nr, x, xs, nc, b, R);
            for (int c = 0; c < C; c++)
                for (int r = 0; r < R; r++) {
                    float va = a[c * R + r], vb = b[c * R + r];
                    if (r >= nr || c >= nc) {
                        CHECKF(isnan(vb), "%s %s tile %dx%d wrote outside (%d,%d)", fast->name, vki_type_name(t), nr, nc, r, c);
                        continue;
                    }
                    double mag = 0;
                    for (int64_t i = 0; i < k; i++) mag += fabs((double)wf[r * k + i] * xf[c * k + i]);
                    CHECKF(fabs((double)va - vb) <= 1e-5 * mag + 1e-6, "%s %s k=%lld tile %dx%d (%d,%d): %.7g vs scalar %.7g",
                           fast->name, vki_type_name(t), (long long)k, nr, nc, r, c, vb, va);
                }
        }
    free(wf); free(xf); free(w); free(x);
}

static void check_vec(const cpu_kernels *ref, const cpu_kernels *fast, int64_t n, uint64_t *seed)
{
    float *a = malloc((size_t)n * 4), *b = malloc((size_t)n * 4), *y1 = malloc((size_t)(n + 1) * 4), *y2 = malloc((size_t)(n + 1) * 4);
    uint16_t *h = malloc((size_t)n * 2);
    VKI_ASSERT(a && b && y1 && y2 && h);
    for (int64_t i = 0; i < n; i++) {
        a[i] = test_rand_f32(seed, -1, 1);
        b[i] = test_rand_f32(seed, -1, 1);
        h[i] = vki_fp32_to_fp16(a[i]);
    }
    float d1 = ref->dot_f32(n, a, b), d2 = fast->dot_f32(n, a, b);
    CHECKF(fabsf(d1 - d2) <= 1e-5f * (float)n, "%s dot_f32 n=%lld: %g vs %g", fast->name, (long long)n, d2, d1);
    d1 = ref->dot_f16(n, h, b), d2 = fast->dot_f16(n, h, b);
    CHECKF(fabsf(d1 - d2) <= 1e-5f * (float)n, "%s dot_f16 n=%lld: %g vs %g", fast->name, (long long)n, d2, d1);
    for (int pass = 0; pass < 3; pass++) {
        for (int64_t i = 0; i <= n; i++) y1[i] = y2[i] = (float)i * 0.25f;
        if (pass == 0) { ref->mad_f32(n, y1, a, 0.3f); fast->mad_f32(n, y2, a, 0.3f); }
        if (pass == 1) { ref->mad_f16(n, y1, h, -0.7f); fast->mad_f16(n, y2, h, -0.7f); }
        if (pass == 2) { ref->scale_f32(n, y1, 1.3f); fast->scale_f32(n, y2, 1.3f); }
        for (int64_t i = 0; i < n; i++)
            CHECKF(fabsf(y1[i] - y2[i]) <= 1e-6f * (1.0f + fabsf(y1[i])), "%s helper %d n=%lld at %lld: %g vs %g",
                   fast->name, pass, (long long)n, (long long)i, y2[i], y1[i]);
        CHECKF(y2[n] == (float)n * 0.25f, "%s helper %d n=%lld wrote past the end", fast->name, pass, (long long)n);
    }
    free(a); free(b); free(y1); free(y2); free(h);
}

int main(void)
{
    const cpu_kernels *ref = cpu_kernels_get(CPU_ISA_SCALAR);
    int n_checked = 0;
    for (int isa = 1; isa < CPU_ISA_COUNT; isa++) {
        if (!cpu_isa_available((cpu_isa)isa)) {
            printf("%s: skipped (not available on this CPU)\n", cpu_isa_name((cpu_isa)isa));
            continue;
        }
        const cpu_kernels *fast = cpu_kernels_get((cpu_isa)isa);
        uint64_t seed = 1234 + (uint64_t)isa;
        for (size_t ti = 0; ti < VKI_COUNT(types); ti++) {
            vki_type t = types[ti];
            int64_t bs = vki_type_get(t)->block_size;
            int64_t ks[] = {bs == 1 ? 1 : bs, bs == 1 ? 17 : 3 * bs, bs == 1 ? 129 : 9 * bs};
            for (size_t i = 0; i < VKI_COUNT(ks); i++) check_gemm(ref, fast, t, ks[i], &seed);
        }
        int64_t ns[] = {1, 7, 15, 16, 17, 33, 80, 257};
        for (size_t i = 0; i < VKI_COUNT(ns); i++) check_vec(ref, fast, ns[i], &seed);
        printf("%s: checked against scalar\n", fast->name);
        n_checked++;
    }
    if (n_checked == 0) test_skip("only the scalar kernels exist on this CPU: nothing to compare");
    return test_finish("test_cpu_isa");
}
