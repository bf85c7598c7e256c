// coopmat.glsl: the cooperative-matrix operations matmul_cm.comp is written
// in, as macros with two implementations:
// - COOPMAT: GL_KHR_cooperative_matrix (glslang >= 13; the host runs it only
//   where VkCooperativeMatrixPropertiesKHR lists 16x16x16 f16 x f16 -> f32
//   at subgroup scope, e.g. RDNA3's WMMA). A "subgroup" is a real one.
// - otherwise an emulation any Vulkan 1.2 device (and Debian's glslc) runs:
//   a "subgroup" is CM_LANES = 32 consecutive invocations, a loaded A or B
//   matrix is only its offset into the shared tile it came from, and an
//   accumulator is CM_PER = 8 floats per lane (lane l holds elements
//   l + 32 i, i.e. row l / 16 + 2 i, column l % 16). MulAdd reads A and B
//   straight from shared memory, so the tiles the kernel loaded (and
//   barrier()ed) are all it needs: no subgroup operations, same results as
//   the hardware path up to the order of the f32 additions.
// The including shader declares the tiles before including this:
//   As: BM x BK f16 weights, row-major (element (m, k) at m * BK + k)
//   Bs: BN x BK f16 activations, so B = X^T is column-major with stride BK
//   Cs: CM_SUBGROUPS x 256 floats, one 16 x 16 row-major block per subgroup
// and stores into As/Bs through cm_put4(As/Bs, i, v) (4 elements at i, i % 4 == 0).

#ifdef COOPMAT
#define CM_A coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA>
#define CM_B coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB>
#define CM_ACC coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>
#define CM_ZERO(c) c = CM_ACC(0.0)
#define CM_LOAD_A(a, off) coopMatLoad(a, As, off, BK, gl_CooperativeMatrixLayoutRowMajor)
#define CM_LOAD_B(b, off) coopMatLoad(b, Bs, off, BK, gl_CooperativeMatrixLayoutColumnMajor)
#define CM_MULADD(c, a, b) c = coopMatMulAdd(a, b, c)
#define CM_STORE_C(c, off) coopMatStore(c, Cs, off, 16u, gl_CooperativeMatrixLayoutRowMajor)
#define CM_SUBGROUP gl_SubgroupID
#define CM_SUBGROUPS gl_NumSubgroups
#define CM_TILE_T float16_t
#define CM_TILE_WORDS(n) (n)
#define cm_put4(arr, i, v) { arr[i] = float16_t(v.x); arr[(i) + 1u] = float16_t(v.y); \
                             arr[(i) + 2u] = float16_t(v.z); arr[(i) + 3u] = float16_t(v.w); }
#else
#define CM_LANES 32u
#define CM_PER 8u // 256 elements / 32 lanes
#define CM_A uint
#define CM_B uint
#define CM_ACC float[CM_PER]
#define CM_ZERO(c) for (uint i_ = 0u; i_ < CM_PER; i_++) c[i_] = 0.0
#define CM_LOAD_A(a, off) a = (off)
#define CM_LOAD_B(b, off) b = (off)
#define CM_MULADD(c, a, b) c = cm_muladd(a, b, c)
#define CM_STORE_C(c, off) cm_store(c, off)
#define CM_SUBGROUP (gl_LocalInvocationID.x / CM_LANES)
#define CM_SUBGROUPS (gl_WorkGroupSize.x / CM_LANES)
// f16 tiles as pairs in uint words (packHalf2x16): no 16-bit feature needed.
#define CM_TILE_T uint
#define CM_TILE_WORDS(n) ((n) / 2u)
#define cm_put4(arr, i, v) { arr[(i) / 2u] = packHalf2x16(v.xy); arr[(i) / 2u + 1u] = packHalf2x16(v.zw); }
#endif

#ifndef COOPMAT
uint cm_lane() { return gl_LocalInvocationID.x % CM_LANES; }

// c + A B for the 16 x 16 blocks at a (in As) and b (in Bs); k in pairs.
float[CM_PER] cm_muladd(uint a, uint b, float c[CM_PER])
{
    uint l = cm_lane(), r0 = l / 16u, col = l % 16u;
    for (uint kp = 0u; kp < 8u; kp++) {
        vec2 bv = unpackHalf2x16(Bs[(b + col * BK) / 2u + kp]);
        for (uint i = 0u; i < CM_PER; i++) {
            vec2 av = unpackHalf2x16(As[(a + (r0 + 2u * i) * BK) / 2u + kp]);
            c[i] += av.x * bv.x + av.y * bv.y;
        }
    }
    return c;
}

void cm_store(float c[CM_PER], uint off)
{
    uint l = cm_lane();
    for (uint i = 0u; i < CM_PER; i++) Cs[off + (l / 16u + 2u * i) * 16u + l % 16u] = c[i];
}
#endif
