// act.glsl: the activations and tanh the elementwise and attention kernels
// share (GLSL has no erf, and its tanh may overflow to inf/inf = NaN for
// large arguments on some drivers; these stay finite for any input).

float silu(float v) { return v / (1.0 + exp(-v)); }

// erf by Abramowitz-Stegun 7.1.26 is only 1.5e-7 absolute.
float erf_approx(float v)
{
    float s = sign(v), t = 1.0 / (1.0 + 0.3275911 * abs(v));
    float y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-v * v);
    return s * y;
}

// tanh through exp(-2|v|), which never overflows; near 0, where 1 - e
// would cancel, its Taylor series (next term under 2e-10 relative at 1/8).
float tanh_safe(float v)
{
    float a = abs(v);
    if (a < 0.125) {
        float v2 = v * v;
        return v * (1.0 + v2 * (-1.0 / 3.0 + v2 * (2.0 / 15.0 + v2 * (-17.0 / 315.0))));
    }
    float e = exp(-2.0 * a);
    return sign(v) * (1.0 - e) / (1.0 + e);
}

// Exact GELU (BERT) and its tanh approximation (gemma, GeGLU).
float gelu_erf(float v) { return 0.5 * v * (1.0 + erf_approx(v * 0.70710678118654752)); }
float gelu_tanh(float v) { return 0.5 * v * (1.0 + tanh_safe(0.79788456080286535588 * (v + 0.044715 * v * v * v))); }
