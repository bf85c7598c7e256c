#version 450
// matmul.comp: tiled MATMUL for prompts and batches. A workgroup of 256
// computes a 64 (weight rows) x BN (activation rows) tile of dst, BN = 16 TN
// with TN (spec constant 1; 0 counts as 4) 1, 2 or 4; each thread holds a
// 4 x TN register block. Weight tiles are dequantized once into
// shared memory (dequant.glsl) and reused by 64 activation rows, which is
// what makes this compute-bound. Shared use: 2 x 32 x 64 floats = 16 KB
// (see ws below; RDNA3 has 64 KB LDS per workgroup; a coopmat 16x16x16 f16
// path would replace the inner loop there).
// MATMUL_ID (prompts of mixture-of-experts layers): the z dimension is the
// experts bound in this dispatch. A workgroup finds the (token, slot) pairs
// routed to its expert (a scan of the ids with a prefix sum, so ranks follow
// pair order and every workgroup of the expert agrees on them) and runs the
// same tiles over them, BN pairs at a time, gathering activation rows and
// scattering results through the pair list: only chosen experts' weights
// are read, each once per BN routed rows. The host picks BN from the rows
// an expert gets on average (16 for a short prompt over many experts,
// where 64-row tiles would be mostly empty).
#extension GL_GOOGLE_include_directive : require
#ifdef MATMUL_ID
#define PUSH_MATMUL_ID
#else
#define PUSH_MATMUL
#endif
#include "push.glsl"

layout(local_size_x = 256) in;
layout(constant_id = 1) const uint TN_SPEC = 4;
#define WG 256u
#define BM 64u
const uint TN = TN_SPEC == 0u ? 4u : TN_SPEC;
const uint BN = 16u * TN;
#ifdef MATMUL_ID
// The pair tables below take 2.3 KB of the 16 KB minimum: 64-row tiles
// step k by 16 (8 KB of tiles), smaller ones by 32 (10 or 12 KB).
const uint BK = TN == 4u ? 16u : 32u;
#else
const uint BK = 32u;
#endif

layout(binding = 0) readonly buffer W { uint wdata[]; };
layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 2) writeonly buffer D { float d[]; };
#ifdef MATMUL_ID
layout(binding = 3) readonly buffer I { int ids[]; };
layout(binding = 4) coherent buffer S { uint status[]; }; // flag, id, index, n_exp, tag
#define STATUS_MATMUL_ID 2u // VK_STATUS_OP_MATMUL_ID
#else
layout(binding = 3) readonly buffer B { float bias[]; };
#endif
#include "dequant.glsl"

// Exactly 16 KB, the minimum every device offers. BK = 32 halves the
// barriers per FLOP against BK = 16 (lavapipe: -35% CPU time on pp128);
// there is no room for a padding column, so the loader's stores (16 per
// thread per slice, against 256 shared reads) may conflict 4-way.
shared float ws[BK][BM];
shared float xs[BK][BN];

#ifdef MATMUL_ID
shared uint rank_end[2][WG]; // inclusive prefix sums of each thread's matches (ping-pong)
shared uint pair_of[BN];  // the (token, slot) pair of each activation row of the tile

int expert_at(uint q) { return ids[p.ids_offs + (q / p.n_used) * p.ids_nb1 + q % p.n_used]; }
uint x_row_of(uint q) { return p.x_offs + (q / p.n_used) * p.x_nb2 + (q % p.n_used) * p.x_nb1; }
uint d_row_of(uint q) { return p.d_offs + (q / p.n_used) * p.d_nb2 + (q % p.n_used) * p.d_nb1 + p.row0; }

// Thread tid owns pairs [lo, hi); returns how many of them go to expert e
// (and, in the one workgroup that reports bad ids, zeros their rows).
uint count_routed(uint e, uint lo, uint hi, bool report)
{
    uint c = 0u;
    for (uint q = lo; q < hi; q++) {
        int ex = expert_at(q);
        if (ex == int(e)) c++;
        if (report && (ex < 0 || uint(ex) >= p.n_exp)) {
            for (uint i = 0u; i < p.m; i++) d[d_row_of(q) + i] = 0.0;
            if (atomicCompSwap(status[0], 0u, STATUS_MATMUL_ID) == 0u) {
                status[1] = uint(ex);
                status[2] = q;
                status[3] = p.n_exp;
                status[4] = p.tag;
            }
        }
    }
    return c;
}

// pair_of[0..] = the pairs of ranks [n0, n0 + BN) among those routed to e;
// thread tid's first match has rank rank. The previous tile read pair_of
// before its last barrier (tile() takes its output rows first).
void gather_tile(uint e, uint lo, uint hi, uint rank, uint n0)
{
    for (uint q = lo; q < hi && rank < n0 + BN; q++) {
        if (expert_at(q) != int(e)) continue;
        if (rank >= n0) pair_of[rank - n0] = q;
        rank++;
    }
    barrier();
}
#endif

// The dst element of weight row 0 (of this dispatch) for activation row
// jl of the tile starting at n0.
#ifdef MATMUL_ID
uint d_row(uint n0, uint jl) { return d_row_of(pair_of[jl]); }
#else
uint d_row(uint n0, uint jl) { return row_offs(p.d, n0 + jl, p.d_ne1, p.d_ne2) + p.row0; }
#endif

// One BM x BN tile of dst: weight rows m0.. (this thread loads row wrow),
// activation rows n0.. of which n_here exist (this thread loads xrow).
void tile(uint m0, uint n0, uint n_here, uint wrow, bool w_ok, uint xrow, bool x_ok)
{
    uint tid = gl_LocalInvocationID.x;
    uint tx = tid % 16u, ty = tid / 16u;
    // Loader role: row tid / 4 of each tile, BK / 4 consecutive k at lk.
    uint lr = tid / 4u, lk = (tid % 4u) * (BK / 4u);
    uint orow[TN]; // before the k loop: its last barrier frees pair_of for the next tile
    for (uint j = 0u; j < TN; j++) orow[j] = ty + 16u * j < n_here ? d_row(n0, ty + 16u * j) : 0u;
    float acc[4][TN];
    for (uint i = 0u; i < 4u; i++)
        for (uint j = 0u; j < TN; j++) acc[i][j] = 0.0;

    for (uint k0 = 0u; k0 < p.k; k0 += BK) {
        for (uint h = 0u; h < BK / 16u; h++) {
            uint kl = lk + 4u * h, k = k0 + kl;
            vec4 wv = vec4(0.0), xv = vec4(0.0);
            if (k + 3u < p.k) {
                if (w_ok) wv = dq4(wrow, k);
                if (x_ok) xv = vec4(x[xrow + k], x[xrow + k + 1u], x[xrow + k + 2u], x[xrow + k + 3u]);
            } else {
#ifdef A_PLAIN
                for (uint e = 0u; e < 4u; e++) {
                    if (k + e < p.k) {
                        if (w_ok) wv[e] = dq1(wrow, k + e);
                        if (x_ok) xv[e] = x[xrow + k + e];
                    }
                }
#endif
            }
            for (uint e = 0u; e < 4u; e++) {
                ws[kl + e][lr] = wv[e];
                if (lr < BN) xs[kl + e][lr] = xv[e];
            }
        }
        barrier();
        for (uint kk = 0u; kk < BK; kk++) {
            float a[4], b[TN];
            for (uint i = 0u; i < 4u; i++) a[i] = ws[kk][tx + 16u * i];
            for (uint j = 0u; j < TN; j++) b[j] = xs[kk][ty + 16u * j];
            for (uint i = 0u; i < 4u; i++)
                for (uint j = 0u; j < TN; j++) acc[i][j] += a[i] * b[j];
        }
        barrier();
    }
    for (uint j = 0u; j < TN; j++) {
        if (ty + 16u * j >= n_here) continue;
        uint o = orow[j];
        for (uint i = 0u; i < 4u; i++) {
            uint m = m0 + tx + 16u * i;
            if (m >= p.m) continue;
            float s = acc[i][j];
#ifndef MATMUL_ID
            if (p.has_bias != 0u) s += bias[p.bias_offs + p.row0 + m];
#endif
            d[o + m] = s;
        }
    }
}

void main()
{
    uint tid = gl_LocalInvocationID.x;
    uint m0 = gl_WorkGroupID.x * BM, lr = tid / 4u;
    bool w_ok = m0 + lr < p.m;
#ifdef MATMUL_ID
    uint expert = p.e0 + gl_WorkGroupID.z;
    uint n_pairs = p.n_used * p.n_tok, per = (n_pairs + WG - 1u) / WG;
    uint lo = min(tid * per, n_pairs), hi = min(lo + per, n_pairs);
    bool report = p.e0 == 0u && gl_WorkGroupID.x == 0u && gl_WorkGroupID.y == 0u && gl_WorkGroupID.z == 0u;
    uint mine = count_routed(expert, lo, hi, report), sum = mine, buf = 0u;
    rank_end[0][tid] = mine;
    barrier();
    for (uint off = 1u; off < WG; off <<= 1) { // Hillis-Steele inclusive scan
        if (tid >= off) sum += rank_end[buf][tid - off];
        buf ^= 1u;
        rank_end[buf][tid] = sum;
        barrier();
    }
    uint total = rank_end[buf][WG - 1u], rank0 = sum - mine;
    uint wrow = p.w_boffs + (expert - p.e0) * p.w_nb2 + (m0 + lr) * p.w_nb1;
    // Tiles of BN routed pairs, strided over the y groups (the host sizes y
    // for one slot per token; a token routed twice to an expert only adds
    // iterations). total is uniform, so the barriers inside are too.
    for (uint n0 = gl_WorkGroupID.y * BN; n0 < total; n0 += gl_NumWorkGroups.y * BN) {
        gather_tile(expert, lo, hi, rank0, n0);
        uint n_here = min(BN, total - n0);
        bool x_ok = lr < n_here;
        tile(m0, n0, n_here, wrow, w_ok, x_ok ? x_row_of(pair_of[lr]) : 0u, x_ok);
    }
#else
    uint n0 = gl_WorkGroupID.y * BN;
    bool x_ok = lr < BN && n0 + lr < p.n;
    uint xrow = x_ok ? row_offs(p.x, n0 + lr, p.x_ne1, p.x_ne2) : 0u;
    tile(m0, n0, p.n - n0, p.w_boffs + (m0 + lr) * p.w_nb1, w_ok, xrow, x_ok);
#endif
}
