/*
 * rope.c: the per-pair RoPE frequency divisors and the cos/sin scale a file
 * asks for: stored factors (llama-3 rope_freqs, phi3 LongRoPE long/short by
 * context), or computed from the scaling keys (llama3 from an HF config,
 * YaRN's ramp folded into divisors), or a linear scale. Host arithmetic
 * only; model.c uploads the result.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "model.h"
#include "util.h"

/* The per-pair frequency divisors and the cos/sin scale a file asks for:
 * stored factors (llama-3 rope_freqs, phi3 LongRoPE long/short by context),
 * or computed from the scaling keys (llama3 from an HF config, YaRN). A
 * scaling type we do not know is refused: running it would be wrong. */
vki_status mdl_rope_divisors(const vki_model_file *f, mdl_arch arch, mdl_hparams *hp, int32_t n_ctx, float *div,
                             bool *have_out, uint64_t *stored_bytes)
{
    const char *path = vki_file_path(f);
    const int32_t half = hp->n_rot / 2, type = hp->rope_scaling;
    float factor = mdl_key_f32(f, "rope.scaling.factor", 1.0f);
    const int32_t n_orig = mdl_key_u32(f, "rope.scaling.original_context_length", hp->n_ctx_train);
    hp->rope_mscale = mdl_key_f32(f, "rope.scaling.attn_factor", 1.0f);
    *have_out = false;
    *stored_bytes = 0;
    if (!(factor > 0.0f)) return vki_fail(VKI_ERR_BAD_FILE, "%s: rope.scaling.factor %g is not positive", path, factor);
    bool have = false;
    for (int32_t i = 0; i < half; i++) div[i] = 1.0f;

    const char *stored = "rope_freqs.weight";
    if (arch == MDL_ARCH_PHI3) stored = n_ctx > n_orig ? "rope_factors_long.weight" : "rope_factors_short.weight";
    const vki_tensor_info *ti = vki_file_find_tensor(f, stored);
    if (ti) {
        if (ti->ne[0] != half || ti->ne[1] != 1 || ti->ne[2] != 1)
            return vki_fail(VKI_ERR_BAD_FILE, "%s: tensor '%s' has %lld values, expected n_rot/2 = %d", path, stored,
                            (long long)ti->ne[0], half);
        VKI_TRY(vki_tensor_dequant_row(ti, 0, div));
        *stored_bytes = ti->bytes;
        have = true;
    }
    const double base = hp->rope_base;
    if (type == MDL_ROPE_SCALING_NONE || type == MDL_ROPE_SCALING_LONGROPE) {
        /* LongRoPE's factors are the stored tensors above */
    } else if (type == MDL_ROPE_SCALING_LINEAR) {
        hp->rope_scale = 1.0f / factor;
    } else if (type == MDL_ROPE_SCALING_LLAMA3) {
        if (!ti) {
            /* convert_hf_to_gguf's llama3 factors: long wavelengths divided
             * by the factor, short ones kept, a smooth ramp between */
            float lo = mdl_key_f32(f, "rope.scaling.low_freq_factor", 1.0f);
            float hi = mdl_key_f32(f, "rope.scaling.high_freq_factor", 4.0f);
            double lo_wl = n_orig / lo, hi_wl = n_orig / hi;
            for (int32_t i = 0; i < half; i++) {
                double freq = pow(base, -2.0 * i / hp->n_rot), wl = 2.0 * 3.14159265358979323846 / freq;
                if (wl < hi_wl) div[i] = 1.0f;
                else if (wl > lo_wl) div[i] = factor;
                else {
                    double sm = (n_orig / wl - lo) / (hi - lo);
                    div[i] = (float)(1.0 / ((1.0 - sm) / factor + sm));
                }
            }
            have = true;
        }
    } else { /* MDL_ROPE_SCALING_YARN: mdl_read_hparams refused every other type */
        /* YaRN mixes interpolated (theta * s) and extrapolated angles per
         * pair by a ramp over the pairs' wavelengths: theta * (s (1 - r) + r),
         * which is a divisor 1 / (s (1 - r) + r); magnitude 1 + 0.1 ln(1/s). */
        const float fs = 1.0f / factor;
        const float ext = mdl_key_f32(f, "rope.scaling.yarn_ext_factor", 1.0f);
        const float beta_fast = mdl_key_f32(f, "rope.scaling.yarn_beta_fast", 32.0f);
        const float beta_slow = mdl_key_f32(f, "rope.scaling.yarn_beta_slow", 1.0f);
        double corr[2];
        for (int c = 0; c < 2; c++) {
            double n_rot_c = c == 0 ? beta_fast : beta_slow;
            corr[c] = hp->n_rot * log(n_orig / (n_rot_c * 2.0 * 3.14159265358979323846)) / (2.0 * log(base));
        }
        double lo = fmax(0.0, floor(corr[0])), hi = fmin(hp->n_rot - 1.0, ceil(corr[1]));
        for (int32_t i = 0; i < half; i++) {
            double y = (i - lo) / fmax(0.001, hi - lo);
            double r = (1.0 - fmin(1.0, fmax(0.0, y))) * ext;
            div[i] = (float)(div[i] / (fs * (1.0 - r) + r));
        }
        if (ext != 0.0f) hp->rope_mscale *= 1.0f + 0.1f * logf(1.0f / fs);
        have = true;
    }
    if (arch == MDL_ARCH_PHI3 && !ti && vki_file_find_tensor(f, "rope_factors_long.weight"))
        return vki_fail(VKI_ERR_BAD_FILE, "%s: rope_factors_long.weight without rope_factors_short.weight", path);
    *have_out = have;
    return VKI_OK;
}
