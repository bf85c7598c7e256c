#version 450
// matmul_cm.comp: MATMUL for prompts and batches on cooperative matrices
// (16 x 16 x 16, f16 inputs, f32 accumulators), written once in
// coopmat.glsl's macros: built with COOPMAT for GL_KHR_cooperative_matrix
// hardware (RDNA3 WMMA, NVIDIA tensor cores), without it as the emulation
// that lavapipe runs through the op suite.
// A workgroup computes a 64 (weight rows) x 64 (activation rows) tile of
// dst with four subgroups, each a 32 x 32 quarter as 2 x 2 accumulators.
// Per step of BK = 32 along k the weights are dequantized (dequant.glsl,
// in f32) and the activations read, both stored as f16 tiles in shared
// memory, then each subgroup does 2 x 2 x 2 MulAdds. Results go through a
// 16 x 16 block per subgroup in shared memory (the bias, bounds and dst's
// row strides are applied there, which a coopMatStore to dst could not).
// Precision: weights and activations are rounded to f16 (sums stay f32):
// the op suite compares this path with a reference on the same rounded
// inputs. Activations past 65504 would overflow f16 (see README).
// Shared memory: As + Bs = 2 x 64 x 32 halves (8 KB) + Cs 4 KB.
// Workgroup size (spec constant 0): four subgroups, so 4 x the subgroup
// size the host requires (COOPMAT) or 128 (emulation, 32-lane "subgroups").
#extension GL_GOOGLE_include_directive : require
#ifdef COOPMAT
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#endif
#define PUSH_MATMUL
#include "push.glsl"

layout(local_size_x_id = 0) in;
#define BM 64u
#define BN 64u
#define BK 32u

layout(binding = 0) readonly buffer W { uint wdata[]; };
layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 2) writeonly buffer D { float d[]; };
layout(binding = 3) readonly buffer B { float bias[]; };
#include "dequant.glsl"

#ifdef COOPMAT
shared float16_t As[BM * BK];
shared float16_t Bs[BN * BK];
#else
shared uint As[BM * BK / 2u];
shared uint Bs[BN * BK / 2u];
#endif
shared float Cs[4u * 256u];
#include "coopmat.glsl"

void main()
{
    uint tid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x;
    uint m0 = gl_WorkGroupID.x * BM, n0 = gl_WorkGroupID.y * BN;
    uint sg = CM_SUBGROUP;
    uint sm = (sg % 2u) * 32u, sn = (sg / 2u) * 32u; // this subgroup's quarter
    CM_ACC acc[2][2];
    for (uint i = 0u; i < 2u; i++)
        for (uint j = 0u; j < 2u; j++) CM_ZERO(acc[i][j]);

    for (uint k0 = 0u; k0 < p.k; k0 += BK) {
        // BM x BK weights and BN x BK activations, four elements per item.
        for (uint it = tid; it < (BM + BN) * BK / 4u; it += wg) {
            bool is_w = it < BM * BK / 4u;
            uint e = is_w ? it : it - BM * BK / 4u;
            uint r = e / (BK / 4u), kl = 4u * (e % (BK / 4u)), k = k0 + kl;
            vec4 v = vec4(0.0);
            if (is_w && m0 + r < p.m) {
                uint wrow = p.w_boffs + (m0 + r) * p.w_nb1;
                if (k + 3u < p.k) v = dq4(wrow, k);
#ifdef A_PLAIN
                else
                    for (uint q = 0u; q < 4u; q++) v[q] = k + q < p.k ? dq1(wrow, k + q) : 0.0;
#endif
            } else if (!is_w && n0 + r < p.n) {
                uint xrow = row_offs(p.x, n0 + r, p.x_ne1, p.x_ne2);
                for (uint q = 0u; q < 4u; q++) v[q] = k + q < p.k ? x[xrow + k + q] : 0.0;
            }
            if (is_w) cm_put4(As, r * BK + kl, v) else cm_put4(Bs, r * BK + kl, v)
        }
        barrier();
        if (sg < 4u) {
            for (uint kk = 0u; kk < BK; kk += 16u) {
                CM_A a[2];
                CM_B b[2];
                for (uint i = 0u; i < 2u; i++) CM_LOAD_A(a[i], (sm + 16u * i) * BK + kk);
                for (uint j = 0u; j < 2u; j++) CM_LOAD_B(b[j], (sn + 16u * j) * BK + kk);
                for (uint i = 0u; i < 2u; i++)
                    for (uint j = 0u; j < 2u; j++) CM_MULADD(acc[i][j], a[i], b[j]);
            }
        }
        barrier();
    }
    // Each accumulator block in turn: through Cs to dst, with bias and bounds.
    for (uint i = 0u; i < 2u; i++)
        for (uint j = 0u; j < 2u; j++) {
            if (sg < 4u) CM_STORE_C(acc[i][j], sg * 256u);
            barrier();
            for (uint e = tid; e < 4u * 256u; e += wg) {
                uint s = e / 256u, r = (e % 256u) / 16u, c = e % 16u;
                uint m = m0 + (s % 2u) * 32u + 16u * i + r, n = n0 + (s / 2u) * 32u + 16u * j + c;
                if (m >= p.m || n >= p.n) continue;
                float v = Cs[e];
                if (p.has_bias != 0u) v += bias[p.bias_offs + p.row0 + m];
                d[row_offs(p.d, n, p.d_ne1, p.d_ne2) + p.row0 + m] = v;
            }
            barrier();
        }
}
