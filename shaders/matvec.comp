#version 450
// matvec.comp: MATMUL for few activation rows (decode). A workgroup covers
// NROWS weight rows and NCOLS activation rows (spec constant 1 holds both:
// NROWS | NCOLS << 8); WG / NROWS threads share a weight row, so each weight
// byte is read once per NCOLS columns; weights are dequantized in registers
// (dequant.glsl). NCOLS is a constant so every per-column array is indexed
// by unrolled constants: a loop to a run-time column count would index them
// dynamically, which puts them in scratch memory on GPUs and in per-lane
// gathers on a CPU driver (it cost lavapipe 2x).
// Memory-bound: per token it reads the weights once (e.g. 3.9 GB for a 7B
// Q4_0), so on RDNA3 (960 GB/s) the ceiling is ~250 tokens/s for that model.
// Several rows per workgroup keep short rows (k = 256..1024) from leaving
// most threads idle and cut the workgroup count, which is what a CPU
// driver (lavapipe) pays for per group.
// MATMUL_ID (decode of mixture-of-experts layers): the z dimension is the
// (token, slot) pairs, NCOLS is 1, and each workgroup reads the rows of its
// pair's expert; pairs whose expert is not bound in this dispatch leave.
// INT_DOT (Q8_0, Q4_0, Q4_K, Q6_K where the device has integer dot
// products): binding 1 holds the activations as 8-bit blocks of 32
// (quantize_q8.comp, one pass per mat-vec) and each lane dots a 32-element
// weight block's codes with them four bytes per instruction (intdot.glsl):
// the weights stay packed, no per-element float conversion or FMA.
#extension GL_GOOGLE_include_directive : require
#ifdef USE_SUBGROUP
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
#ifdef MATMUL_ID
#define PUSH_MATMUL_ID
#else
#define PUSH_MATMUL
#endif
#include "push.glsl"

layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint SHAPE = 0x101u; // NROWS | NCOLS << 8; 0 counts as 1
layout(local_size_x_id = 0) in;
const uint NROWS = (SHAPE & 0xFFu) == 0u ? 1u : (SHAPE & 0xFFu);
const uint NCOLS = (SHAPE >> 8) == 0u ? 1u : (SHAPE >> 8);
const uint TPR = WG / NROWS; // threads per weight row (a power of two)

layout(binding = 0) readonly buffer W { uint wdata[]; };
#ifdef INT_DOT
layout(binding = 1) readonly buffer X { uint xq[]; }; // q8 blocks: row j at x.offs + j * (k / 32) * Q8_XWORDS
#else
layout(binding = 1) readonly buffer X { float x[]; };
#endif
layout(binding = 2) writeonly buffer D { float d[]; };
#ifdef MATMUL_ID
layout(binding = 3) readonly buffer I { int ids[]; };
layout(binding = 4) coherent buffer S { uint status[]; }; // flag, id, index, n_exp, tag
#define STATUS_MATMUL_ID 2u // VK_STATUS_OP_MATMUL_ID
#else
layout(binding = 3) readonly buffer B { float bias[]; };
#endif
#include "dequant.glsl"
#ifdef INT_DOT
#include "intdot.glsl"
#endif

shared float red[NCOLS * WG];

#ifdef MATMUL_ID
uint d_col; // dst element of weight row 0 for this workgroup's pair
void store(uint c, uint row, float s) { d[d_col + row] = s; }
#else
uint col0; // first activation row of this workgroup
#ifdef INT_DOT
uint x_row(uint j) { return p.x.offs + j * (p.k / 32u) * Q8_XWORDS; }
#else
uint x_row(uint j) { return row_offs(p.x, j, p.x_ne1, p.x_ne2); }
#endif
void store(uint c, uint row, float s)
{
    if (p.has_bias != 0u) s += bias[p.bias_offs + p.row0 + row];
    d[row_offs(p.d, col0 + c, p.d_ne1, p.d_ne2) + p.row0 + row] = s;
}
#endif

void main()
{
    uint tid = gl_LocalInvocationID.x;
    uint lr = tid / TPR, lane = tid % TPR;
    uint row = group_id() * NROWS + lr;
    bool live = row < p.m; // not uniform: every thread still reaches the barriers
    uint xo[NCOLS];
    float acc[NCOLS];
#ifdef MATMUL_ID
    uint pair = gl_WorkGroupID.z, t = pair / p.n_used, sl = pair % p.n_used;
    int ex = ids[p.ids_offs + t * p.ids_nb1 + sl];
    d_col = p.d_offs + t * p.d_nb2 + sl * p.d_nb1 + p.row0;
    // Both exits are uniform over the workgroup (one pair). An expert id
    // outside the table reads nothing: zeros, from the dispatches that
    // bind expert 0, and a report that fails the pass.
    if (ex < 0 || uint(ex) >= p.n_exp) {
        if (p.e0 != 0u) return;
        if (live && lane == 0u) store(0u, row, 0.0);
        if (tid == 0u && atomicCompSwap(status[0], 0u, STATUS_MATMUL_ID) == 0u) {
            status[1] = uint(ex);
            status[2] = pair;
            status[3] = p.n_exp;
            status[4] = p.tag;
        }
        return;
    }
    if (uint(ex) < p.e0 || uint(ex) >= p.e1) return;
    uint wrow = p.w_boffs + (uint(ex) - p.e0) * p.w_nb2 + row * p.w_nb1;
    uint ncol = 1u;
    for (uint c = 0u; c < NCOLS; c++) {
        xo[c] = p.x_offs + t * p.x_nb2 + sl * p.x_nb1;
        acc[c] = 0.0;
    }
#else
    col0 = gl_WorkGroupID.z * NCOLS;
    uint ncol = min(NCOLS, p.n - col0);
    uint wrow = p.w_boffs + row * p.w_nb1;
    for (uint c = 0u; c < NCOLS; c++) { // columns past n repeat the last one: no branch in the loop
        xo[c] = x_row(min(col0 + c, p.n - 1u));
        acc[c] = 0.0;
    }
#endif
#ifdef INT_DOT
    // Blocks of 32: consecutive lanes take consecutive blocks.
    uint k32 = live ? p.k / 32u : 0u;
    for (uint g = lane; g < k32; g += TPR) {
        wq32 w = wq32_load(wrow, g);
        for (uint c = 0u; c < NCOLS; c++) acc[c] += dotq32(w, xo[c] + g * Q8_XWORDS);
    }
#else
    // Chunks of 16 elements: one scale read and four words of quants per
    // chunk (dq16); consecutive lanes take consecutive chunks.
    uint k16 = live ? p.k / 16u : 0u;
    for (uint g = lane; g < k16; g += TPR) {
        vec4 w[4];
        dq16(wrow, 16u * g, w);
        for (uint c = 0u; c < NCOLS; c++) {
            uint o = xo[c] + 16u * g;
            float s = 0.0;
            for (uint i = 0u; i < 4u; i++)
                s += dot(w[i], vec4(x[o + 4u * i], x[o + 4u * i + 1u], x[o + 4u * i + 2u], x[o + 4u * i + 3u]));
            acc[c] += s;
        }
    }
#ifdef A_PLAIN
    // Plain types allow any k: the last k % 16 elements.
    for (uint e = 16u * k16 + lane; live && e < p.k; e += TPR) {
        float w = dq1(wrow, e);
        for (uint c = 0u; c < NCOLS; c++) acc[c] += w * x[xo[c] + e];
    }
#endif
#endif // INT_DOT

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
        store(c, row, s);
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
        store(c, row, red[c * WG + lr * TPR]);
    }
#endif
}
