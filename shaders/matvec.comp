#version 450
// matvec.comp: MATMUL for few activation rows (decode). A workgroup covers
// NROWS weight rows (spec constant 1) and NCOLS activation rows; WG / NROWS
// threads share a weight row, so each weight byte is read once per NCOLS
// columns; weights are dequantized in registers (dequant.glsl).
// Memory-bound: per token it reads the weights once (e.g. 3.9 GB for a 7B
// Q4_0), so on RDNA3 (960 GB/s) the ceiling is ~250 tokens/s for that model.
// Several rows per workgroup keep short rows (k = 256..1024) from leaving
// most threads idle and cut the workgroup count, which is what a CPU
// driver (lavapipe) pays for per group.
#extension GL_GOOGLE_include_directive : require
#ifdef USE_SUBGROUP
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
#define PUSH_MATMUL
#include "push.glsl"

layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint NROWS_SPEC = 1; // 0 counts as 1
layout(local_size_x_id = 0) in;
#define NCOLS 8u
const uint NROWS = NROWS_SPEC == 0u ? 1u : NROWS_SPEC;
const uint TPR = WG / NROWS; // threads per weight row (a power of two)

layout(binding = 0) readonly buffer W { uint wdata[]; };
layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 2) writeonly buffer D { float d[]; };
layout(binding = 3) readonly buffer B { float bias[]; };
#include "dequant.glsl"

shared float red[NCOLS * WG];

uint x_row(uint j) { return row_offs(p.x, j, p.x_ne1, p.x_ne2); }

void main()
{
    uint tid = gl_LocalInvocationID.x;
    uint lr = tid / TPR, lane = tid % TPR;
    uint row = group_id() * NROWS + lr;
    bool live = row < p.m; // not uniform: every thread still reaches the barriers
    uint col0 = gl_WorkGroupID.z * NCOLS;
    uint ncol = min(NCOLS, p.n - col0);
    uint wrow = p.w_boffs + row * p.w_nb1;

    uint xo[NCOLS];
    float acc[NCOLS];
    for (uint c = 0u; c < NCOLS; c++) {
        xo[c] = c < ncol ? x_row(col0 + c) : 0u;
        acc[c] = 0.0;
    }
    uint k4 = live ? p.k / 4u : 0u;
    for (uint g = lane; g < k4; g += TPR) {
        vec4 w = dq4(wrow, 4u * g);
        for (uint c = 0u; c < ncol; c++) {
            uint o = xo[c] + 4u * g;
            acc[c] += dot(w, vec4(x[o], x[o + 1u], x[o + 2u], x[o + 3u]));
        }
    }
#ifdef A_PLAIN
    // Plain types allow any k: the last k % 4 elements.
    for (uint e = 4u * k4 + lane; live && e < p.k; e += TPR) {
        float w = dq1(wrow, e);
        for (uint c = 0u; c < ncol; c++) acc[c] += w * x[xo[c] + e];
    }
#endif

#ifdef USE_SUBGROUP
    // The host picks NROWS so that a subgroup never spans two rows (TPR is
    // a multiple of the subgroup size): reduce in each subgroup, then the
    // TPR / size partial sums of a row through shared memory.
    for (uint c = 0u; c < NCOLS; c++) {
        float s = subgroupAdd(acc[c]);
        if (gl_SubgroupInvocationID == 0u) red[c * WG + gl_SubgroupID] = s;
    }
    barrier();
    uint per_row = max(TPR / gl_SubgroupSize, 1u);
    for (uint c = lane; live && c < ncol; c += TPR) { // TPR may be under NCOLS
        float s = 0.0;
        for (uint i = 0u; i < per_row; i++) s += red[c * WG + lr * per_row + i];
        if (p.has_bias != 0u) s += bias[p.bias_offs + p.row0 + row];
        d[row_offs(p.d, col0 + c, p.d_ne1, p.d_ne2) + p.row0 + row] = s;
    }
#else
    for (uint c = 0u; c < NCOLS; c++) red[c * WG + tid] = acc[c];
    barrier();
    for (uint s = TPR / 2u; s > 0u; s >>= 1) {
        if (lane < s)
            for (uint c = 0u; c < NCOLS; c++) red[c * WG + tid] += red[c * WG + tid + s];
        barrier();
    }
    for (uint c = lane; live && c < ncol; c += TPR) { // TPR may be under NCOLS
        float s = red[c * WG + lr * TPR];
        if (p.has_bias != 0u) s += bias[p.bias_offs + p.row0 + row];
        d[row_offs(p.d, col0 + c, p.d_ne1, p.d_ne2) + p.row0 + row] = s;
    }
#endif
}
