/*
 * test_ops.c: every backend op x backend x type x shape against the scalar
 * reference (engine/cpu/ref.c), in the manner of ggml's test-backend-ops.
 * Backends: the CPU backend forced to each ISA this machine has, and the
 * Vulkan backend (validation on) when it is built and a device exists.
 * Inputs are surrounded by NaN bytes (0xFF) so any read outside a tensor
 * poisons the result; outputs start as NaN so any unwritten element fails,
 * and every byte of the output buffer outside the tensor must stay 0xFF.
 * Usage: test_ops [-o 'OP|OP...'] [-x 'OP|OP...'] [-b BACKEND-prefix] [-f 'SUBSTR|SUBSTR...'] [--list]
 *                 [--perf [RUNS]]
 * (-o: only these ops, -x: all but these, -f: cases whose description
 * contains one of the substrings; --perf: only the perf cases, each
 * checked once and then timed over RUNS passes (default 10), printed as
 * us/run and weight GB/s or GFLOP/s; a sanity figure, not a benchmark).
 */
#include <time.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/cpu/cpu.h"
#include "engine/cpu/ref.h"
#ifdef VKI_HAVE_VULKAN
#include "engine/vulkan/backend_vk.h"
#endif
#include "error.h"
#include "test_util.h"
#include "util.h"

#define PAD 64          /* NaN bytes before and after every tensor */
#define MAX_CASES 1024

/* ===== Case description ================================================== */

/* FILL_RAND: uniform [-1, 1]; FILL_IDS, FILL_POS, FILL_ROUTE: i32 in
 * [0, fill_max), positions as an increasing run, routes as distinct ids per
 * row (a token's experts); FILL_DIV: f32 in [1, 40] (frequency divisors);
 * FILL_TIES: multiples of 1/4 in [-1, 1], so rows repeat values; FILL_PROB:
 * f32 in [0.01, 1] (router probabilities). */
typedef enum fill_kind { FILL_RAND = 0, FILL_IDS, FILL_POS, FILL_ROUTE, FILL_DIV, FILL_TIES, FILL_PROB } fill_kind;

typedef struct tt {
    vki_type  type;
    int64_t   ne[4];
    uint64_t  nb[4];
    uint64_t  size;   /* bytes of its buffer (PAD + span + PAD) */
    fill_kind fill;
    int32_t   fill_max; /* ids/positions are drawn from [0, fill_max) */
} tt;

typedef struct test_case {
    bk_op_kind kind;
    char       desc[160];
    int        n_src;
    tt         src[3];
    bool       has_src[3];
    tt         dst;
    bool       inplace; /* dst is src0's tensor in src0's buffer */
    int32_t    ip[4];
    float      fp[4];
    double     max_nmse;
} test_case;

static test_case g_cases[MAX_CASES];
static int g_n_cases;
static int g_perf_runs; /* --perf */

/* A tensor of type t, shape ne, rows padded by pad1 bytes and dim-2 slices
 * by pad2 more bytes (views into something larger: strided rows, KV caches). */
static tt tt_make(vki_type t, int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3, uint64_t pad1, uint64_t pad2)
{
    tt x = {.type = t, .ne = {ne0, ne1, ne2, ne3}};
    const vki_type_traits *tr = vki_type_get(t);
    VKI_ASSERT(tr && tr->block_size && ne0 % tr->block_size == 0);
    x.nb[0] = tr->type_size;
    x.nb[1] = (uint64_t)(ne0 / tr->block_size) * tr->type_size + pad1;
    x.nb[2] = x.nb[1] * (uint64_t)ne1 + pad2;
    x.nb[3] = x.nb[2] * (uint64_t)ne2;
    x.size = PAD + x.nb[3] * (uint64_t)ne3 + PAD;
    return x;
}

static tt tt_vec(vki_type t, int64_t n) { return tt_make(t, n, 1, 1, 1, 0, 0); }

static test_case *add_case(bk_op_kind k, double max_nmse, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static test_case *add_case(bk_op_kind k, double max_nmse, const char *fmt, ...)
{
    VKI_ASSERT(g_n_cases < MAX_CASES);
    test_case *c = &g_cases[g_n_cases++];
    memset(c, 0, sizeof *c);
    c->kind = k;
    c->max_nmse = max_nmse;
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(c->desc, sizeof c->desc, "%s(", bk_op_name(k));
    vsnprintf(c->desc + n, sizeof c->desc - (size_t)n - 1, fmt, ap);
    va_end(ap);
    strcat(c->desc, ")");
    return c;
}

static void set_src(test_case *c, int i, tt t)
{
    c->src[i] = t;
    c->has_src[i] = true;
    if (i + 1 > c->n_src) c->n_src = i + 1;
}

/* ===== Tolerances ========================================================
 * NMSE = sum (out - ref)^2 / sum ref^2, as test-backend-ops computes it.
 * - Float math in float vs the double reference: relative rounding ~1e-7
 *   per element, growing like sqrt(k) in sums of k terms: 1e-8 leaves
 *   room for k = 4096 sums and expf/erff.
 * - Weight types whose kernels quantize the activations to 8 bits (Q8_0,
 *   Q4_0 per 32; Q4_K, Q6_K per 256): each activation gets an error of up to
 *   d/2 with d = max|x|/127, a variance of (1/127)^2/12 = 5.2e-6 against
 *   var(x) = 1/3 for uniform [-1, 1] inputs: NMSE ~1.6e-5 in the dot. The
 *   bound is 2e-4 (about 12x) because K-quant blocks are 8x wider, so their
 *   max is larger relative to the rms.
 * - Ops that only move or convert data (GET_ROWS, CPY) must be exact up to
 *   the conversion both sides share: 1e-12.
 * For MATMUL the denominator is sum over outputs of sum_k (w_ik x_k)^2, not
 * sum ref^2: the two agree in expectation for random inputs, but a single
 * output whose terms happen to cancel would otherwise make any rounding
 * look like a large relative error (the error scales with the terms, not
 * with their sum).
 */
#define NMSE_FLOAT 1e-8
#define NMSE_ACTQ  2e-4
#define NMSE_EXACT 1e-12

static double matmul_nmse(vki_type t)
{
    switch (t) {
    case VKI_TYPE_Q8_0: case VKI_TYPE_Q4_0: case VKI_TYPE_Q4_K: case VKI_TYPE_Q6_K: return NMSE_ACTQ;
    default: return NMSE_FLOAT;
    }
}

/* ===== Case tables ======================================================= */

/* --perf: a 1B-class model's (hidden 2048, ffn 8192) largest mat-vec per
 * int-dot type (decode, one token) and a mat-mat of a 128-token prompt. */
static void cases_perf(void)
{
    static const vki_type types[] = {VKI_TYPE_Q4_0, VKI_TYPE_Q8_0, VKI_TYPE_Q4_K, VKI_TYPE_Q6_K, VKI_TYPE_F16};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        const vki_type_traits *tr = vki_type_get(types[i]);
        test_case *c = add_case(BK_OP_MATMUL, types[i] == VKI_TYPE_F16 ? NMSE_FLOAT : NMSE_ACTQ,
                                "w=%s,k=2048,m=8192,n=1,perf", tr->name);
        set_src(c, 0, tt_make(types[i], 2048, 8192, 1, 1, 0, 0));
        set_src(c, 1, tt_vec(VKI_TYPE_F32, 2048));
        c->dst = tt_vec(VKI_TYPE_F32, 8192);
    }
    static const vki_type mm_types[] = {VKI_TYPE_Q4_0, VKI_TYPE_F16};
    for (size_t i = 0; i < sizeof(mm_types) / sizeof(mm_types[0]); i++) {
        const vki_type_traits *tr = vki_type_get(mm_types[i]);
        test_case *c = add_case(BK_OP_MATMUL, mm_types[i] == VKI_TYPE_F16 ? NMSE_FLOAT : NMSE_ACTQ,
                                "w=%s,k=2048,m=2048,n=128,perf", tr->name);
        set_src(c, 0, tt_make(mm_types[i], 2048, 2048, 1, 1, 0, 0));
        set_src(c, 1, tt_make(VKI_TYPE_F32, 2048, 128, 1, 1, 0, 0));
        c->dst = tt_make(VKI_TYPE_F32, 2048, 128, 1, 1, 0, 0);
    }
    /* A copy of 64 MiB each way: the device's streaming bandwidth as the
     * kernels see it (scripts/device-check.sh's fallback peak). */
    test_case *c = add_case(BK_OP_CPY, NMSE_EXACT, "f32,4096x4096,perf-copy");
    set_src(c, 0, tt_make(VKI_TYPE_F32, 4096, 4096, 1, 1, 0, 0));
    c->dst = tt_make(VKI_TYPE_F32, 4096, 4096, 1, 1, 0, 0);
}

static const vki_type weight_types[] = {
    VKI_TYPE_F32, VKI_TYPE_F16, VKI_TYPE_BF16, VKI_TYPE_Q8_0, VKI_TYPE_Q4_0, VKI_TYPE_Q4_K, VKI_TYPE_Q6_K,
    VKI_TYPE_Q4_1, VKI_TYPE_Q5_0, VKI_TYPE_Q5_1, VKI_TYPE_Q2_K, VKI_TYPE_Q3_K, VKI_TYPE_Q5_K,
};

static void cases_matmul(void)
{
    for (size_t ti = 0; ti < VKI_COUNT(weight_types); ti++) {
        vki_type t = weight_types[ti];
        const vki_type_traits *tr = vki_type_get(t);
        if (!tr || !tr->block_size) continue;
        int64_t bs = tr->block_size;
        /* k: one block, a few blocks (odd counts), a long row; m/n: 1, 33,
         * odd, and n > 64 to cross the activation tiling. n = 2, 3, 8 and 9
         * hit each activation-row count of the mat-vec kernels (1, 2, 4, 8
         * per workgroup, columns past n) and the switch to mat-mat. */
        int64_t shapes[][3] = {
            {bs == 1 ? 1 : bs, 1, 1},
            {bs == 1 ? 33 : 3 * bs, 33, 1},
            {bs == 1 ? 100 : 9 * bs, 67, 5},
            {bs == 1 ? 257 : (bs == 256 ? 2 * bs : 9 * bs), 19, 67},
            {bs == 1 ? 48 : 2 * bs, 21, 2},
            {bs == 1 ? 71 : 5 * bs, 13, 3},
            {bs == 1 ? 160 : 5 * bs, 11, 8},
            {bs == 1 ? 16 : bs, 9, 9},
        };
        /* The row-count shapes test kernel logic shared by all types; the
         * types with their own decoders in those kernels (plain tails, the
         * odd Q4_0/Q8_0 block sizes, K-quants) run them, the rest only the
         * first four (each new shape is a pipeline to compile on lavapipe,
         * which dominates the suite's time under ASan). */
        bool own_decoder = t == VKI_TYPE_F32 || t == VKI_TYPE_F16 || t == VKI_TYPE_Q8_0 || t == VKI_TYPE_Q4_0 ||
                           t == VKI_TYPE_Q4_K || t == VKI_TYPE_Q6_K;
        for (size_t s = 0; s < (own_decoder ? VKI_COUNT(shapes) : 4); s++) {
            int64_t k = shapes[s][0], m = shapes[s][1], n = shapes[s][2];
            test_case *c = add_case(BK_OP_MATMUL, matmul_nmse(t), "w=%s,k=%lld,m=%lld,n=%lld", tr->name,
                                    (long long)k, (long long)m, (long long)n);
            set_src(c, 0, tt_make(t, k, m, 1, 1, 0, 0));
            set_src(c, 1, tt_make(VKI_TYPE_F32, k, n, 1, 1, 0, 0));
            c->dst = tt_make(VKI_TYPE_F32, m, n, 1, 1, 0, 0);
        }
        /* bias, strided activations and output (views of wider rows), 3-D x */
        int64_t k = bs == 1 ? 64 : (bs == 256 ? 256 : 4 * bs);
        test_case *c = add_case(BK_OP_MATMUL, matmul_nmse(t), "w=%s,k=%lld,m=37,n=2x3,bias,views", tr->name, (long long)k);
        set_src(c, 0, tt_make(t, k, 37, 1, 1, 0, 0));
        set_src(c, 1, tt_make(VKI_TYPE_F32, k, 2, 3, 1, 16, 32));
        set_src(c, 2, tt_vec(VKI_TYPE_F32, 37));
        c->dst = tt_make(VKI_TYPE_F32, 37, 2, 3, 1, 12, 0);
        /* the same with 2x9 rows: the CPU's packed mat-mat paths (16+ rows)
         * with a bias and a strided output */
        c = add_case(BK_OP_MATMUL, matmul_nmse(t), "w=%s,k=%lld,m=37,n=2x9,bias,views", tr->name, (long long)k);
        set_src(c, 0, tt_make(t, k, 37, 1, 1, 0, 0));
        set_src(c, 1, tt_make(VKI_TYPE_F32, k, 2, 9, 1, 16, 32));
        set_src(c, 2, tt_vec(VKI_TYPE_F32, 37));
        c->dst = tt_make(VKI_TYPE_F32, 37, 2, 9, 1, 12, 0);
    }
    /* Mat-mat tiles (64 x 64 on the GPU): m and n past one tile, neither a
     * multiple of it, k a few steps of 32 (plain types: not a multiple of
     * 4). Pipelines do not depend on these shapes, so every type runs it. */
    for (size_t ti = 0; ti < VKI_COUNT(weight_types); ti++) {
        vki_type t = weight_types[ti];
        const vki_type_traits *tr = vki_type_get(t);
        int64_t bs = tr->block_size, k = bs == 1 ? 99 : (bs == 256 ? 768 : 7 * bs);
        test_case *c = add_case(BK_OP_MATMUL, matmul_nmse(t), "w=%s,k=%lld,m=130,n=75,tiles", tr->name, (long long)k);
        set_src(c, 0, tt_make(t, k, 130, 1, 1, 0, 0));
        set_src(c, 1, tt_make(VKI_TYPE_F32, k, 75, 1, 1, 0, 0));
        c->dst = tt_make(VKI_TYPE_F32, 130, 75, 1, 1, 0, 0);
    }
    /* The int-dot mat-vecs' types (Q8_0, Q4_0 with any number of 32-blocks;
     * K-quants by 256): one row, 33 rows, odd counts, k not a multiple of
     * 256 or of the threads per row, long rows. */
    static const vki_type dot_types[] = {VKI_TYPE_Q8_0, VKI_TYPE_Q4_0, VKI_TYPE_Q4_K, VKI_TYPE_Q6_K};
    for (size_t ti = 0; ti < VKI_COUNT(dot_types); ti++) {
        vki_type t = dot_types[ti];
        const vki_type_traits *tr = vki_type_get(t);
        bool k32 = tr->block_size == 32;
        int64_t shapes[][3] = {{k32 ? 7 * 32 : 3 * 256, 1, 1}, {k32 ? 33 * 32 : 11 * 256, 33, 4}, {4096, 7, 1}};
        for (size_t s = 0; s < VKI_COUNT(shapes); s++) {
            int64_t k = shapes[s][0], m = shapes[s][1], n = shapes[s][2];
            test_case *c = add_case(BK_OP_MATMUL, matmul_nmse(t), "w=%s,k=%lld,m=%lld,n=%lld,dot", tr->name,
                                    (long long)k, (long long)m, (long long)n);
            set_src(c, 0, tt_make(t, k, m, 1, 1, 0, 0));
            set_src(c, 1, tt_make(VKI_TYPE_F32, k, n, 1, 1, 0, 0));
            c->dst = tt_make(VKI_TYPE_F32, m, n, 1, 1, 0, 0);
        }
    }
    /* Repacked CPU weights (16-row groups): row counts around the group
     * (15, 16, 17, 48), one block (k = 32), k past 4096, and 9..15 rows
     * (the R16 mat-vec in two column batches). */
    static const vki_type r16_types[] = {VKI_TYPE_Q8_0, VKI_TYPE_Q4_0, VKI_TYPE_Q4_K};
    for (size_t ti = 0; ti < VKI_COUNT(r16_types); ti++) {
        vki_type t = r16_types[ti];
        int64_t bs = vki_type_get(t)->block_size;
        int64_t shapes[][3] = {{bs, 15, 1}, {2 * bs, 16, 2}, {4096 + bs, 17, 1}, {3 * bs, 48, 5}, {5 * bs, 33, 12}};
        for (size_t sh = 0; sh < VKI_COUNT(shapes); sh++) {
            int64_t k = shapes[sh][0], m = shapes[sh][1], n = shapes[sh][2];
            test_case *c = add_case(BK_OP_MATMUL, matmul_nmse(t), "w=%s,k=%lld,m=%lld,n=%lld,r16", vki_type_name(t),
                                    (long long)k, (long long)m, (long long)n);
            set_src(c, 0, tt_make(t, k, m, 1, 1, 0, 0));
            set_src(c, 1, tt_make(VKI_TYPE_F32, k, n, 1, 1, 0, 0));
            c->dst = tt_make(VKI_TYPE_F32, m, n, 1, 1, 0, 0);
        }
    }
    /* A weight over 128 MiB: backends must split bindings at
     * maxStorageBufferRange. One token keeps it quick. */
    test_case *c = add_case(BK_OP_MATMUL, NMSE_FLOAT, "w=F32,k=4096,m=8448,n=1,over-128MiB");
    set_src(c, 0, tt_make(VKI_TYPE_F32, 4096, 8448, 1, 1, 0, 0));
    set_src(c, 1, tt_vec(VKI_TYPE_F32, 4096));
    c->dst = tt_vec(VKI_TYPE_F32, 8448);
}

static void cases_get_rows(void)
{
    for (size_t ti = 0; ti < VKI_COUNT(weight_types); ti++) {
        vki_type t = weight_types[ti];
        const vki_type_traits *tr = vki_type_get(t);
        if (!tr || !tr->block_size) continue;
        int64_t bs = tr->block_size;
        int64_t shapes[][3] = {{bs == 1 ? 1 : bs, 1, 1}, {bs == 1 ? 33 : 3 * bs, 40, 7}};
        for (size_t s = 0; s < VKI_COUNT(shapes); s++) {
            int64_t d = shapes[s][0], rows = shapes[s][1], n = shapes[s][2];
            test_case *c = add_case(BK_OP_GET_ROWS, NMSE_EXACT, "t=%s,d=%lld,rows=%lld,n=%lld%s", tr->name,
                                    (long long)d, (long long)rows, (long long)n, s ? ",dst-view" : "");
            set_src(c, 0, tt_make(t, d, rows, 1, 1, 0, 0));
            set_src(c, 1, tt_vec(VKI_TYPE_I32, n));
            c->src[1].fill = FILL_IDS;
            c->src[1].fill_max = (int32_t)rows;
            c->dst = tt_make(VKI_TYPE_F32, d, n, 1, 1, s ? 8 : 0, 0);
        }
    }
    test_case *c = add_case(BK_OP_GET_ROWS, NMSE_EXACT, "t=F16,d=1024,rows=70000,n=5,over-128MiB");
    set_src(c, 0, tt_make(VKI_TYPE_F16, 1024, 70000, 1, 1, 0, 0));
    set_src(c, 1, tt_vec(VKI_TYPE_I32, 5));
    c->src[1].fill = FILL_IDS;
    c->src[1].fill_max = 70000;
    c->dst = tt_make(VKI_TYPE_F32, 1024, 5, 1, 1, 0, 0);
}

static const int64_t eshapes[][3] = {{1, 1, 1}, {33, 7, 1}, {1000, 3, 1}, {64, 5, 3}};

static void cases_elementwise(void)
{
    bk_op_kind un[] = {BK_OP_SCALE, BK_OP_SILU, BK_OP_GELU, BK_OP_SOFTMAX, BK_OP_L2_NORM};
    for (size_t o = 0; o < VKI_COUNT(un); o++)
        for (size_t s = 0; s < VKI_COUNT(eshapes); s++) {
            const int64_t *e = eshapes[s];
            test_case *c = add_case(un[o], NMSE_FLOAT, "ne=%lldx%lldx%lld", (long long)e[0], (long long)e[1], (long long)e[2]);
            set_src(c, 0, tt_make(VKI_TYPE_F32, e[0], e[1], e[2], 1, 0, 0));
            c->dst = tt_make(VKI_TYPE_F32, e[0], e[1], e[2], 1, 0, 0);
            c->fp[0] = un[o] == BK_OP_SOFTMAX ? 0.125f * 8 : 0.37f;
        }
    /* GELU's tanh approximation; SOFTCAP from nearly linear (30) to
     * saturated (0.05: |x / cap| up to 20). */
    for (size_t s = 0; s < VKI_COUNT(eshapes); s++) {
        const int64_t *e = eshapes[s];
        test_case *c = add_case(BK_OP_GELU, NMSE_FLOAT, "tanh,ne=%lldx%lldx%lld", (long long)e[0], (long long)e[1],
                                (long long)e[2]);
        set_src(c, 0, tt_make(VKI_TYPE_F32, e[0], e[1], e[2], 1, 0, 0));
        c->dst = tt_make(VKI_TYPE_F32, e[0], e[1], e[2], 1, 0, 0);
        c->ip[0] = BK_ACT_GELU_TANH;
        const float caps[] = {30.0f, 1.0f, 0.05f};
        for (size_t k = 0; k < VKI_COUNT(caps); k++) {
            c = add_case(BK_OP_SOFTCAP, NMSE_FLOAT, "cap=%g,ne=%lldx%lldx%lld%s", caps[k], (long long)e[0],
                         (long long)e[1], (long long)e[2], k == 1 ? ",inplace,views" : "");
            set_src(c, 0, tt_make(VKI_TYPE_F32, e[0], e[1], e[2], 1, k == 1 ? 20 : 0, k == 1 ? 8 : 0));
            c->dst = k == 1 ? c->src[0] : tt_make(VKI_TYPE_F32, e[0], e[1], e[2], 1, 0, 0);
            c->inplace = k == 1;
            c->fp[0] = caps[k];
        }
    }
    /* The gated products with GELU gates (GeGLU), plain and in place. */
    for (int act = BK_ACT_GELU; act <= BK_ACT_GELU_TANH; act++)
        for (size_t s = 0; s < VKI_COUNT(eshapes); s++)
            for (int mode = 0; mode < 2; mode++) {
                const int64_t *e = eshapes[s];
                test_case *c = add_case(BK_OP_SWIGLU, NMSE_FLOAT, "act=%s,ne=%lldx%lldx%lld%s",
                                        act == BK_ACT_GELU ? "gelu" : "gelu_tanh", (long long)e[0], (long long)e[1],
                                        (long long)e[2], mode ? ",inplace,views" : "");
                uint64_t p1 = mode ? 20 : 0, p2 = mode ? 8 : 0;
                set_src(c, 0, tt_make(VKI_TYPE_F32, e[0], e[1], e[2], 1, p1, p2));
                set_src(c, 1, tt_make(VKI_TYPE_F32, e[0], e[1], e[2], 1, p1, 0));
                c->dst = c->src[0];
                c->inplace = mode;
                c->ip[0] = act;
            }
    bk_op_kind bin[] = {BK_OP_ADD, BK_OP_MUL, BK_OP_SWIGLU};
    for (size_t o = 0; o < VKI_COUNT(bin); o++)
        for (size_t s = 0; s < VKI_COUNT(eshapes); s++)
            for (int mode = 0; mode < 3; mode++) { /* 0 same shape, 1 broadcast row, 2 in place + views */
                if (mode == 1 && bin[o] == BK_OP_SWIGLU) continue;
                const int64_t *e = eshapes[s];
                test_case *c = add_case(bin[o], NMSE_FLOAT, "ne=%lldx%lldx%lld%s", (long long)e[0], (long long)e[1],
                                        (long long)e[2], mode == 1 ? ",bcast" : mode == 2 ? ",inplace,views" : "");
                uint64_t p1 = mode == 2 ? 20 : 0, p2 = mode == 2 ? 8 : 0;
                set_src(c, 0, tt_make(VKI_TYPE_F32, e[0], e[1], e[2], 1, p1, p2));
                set_src(c, 1, mode == 1 ? tt_vec(VKI_TYPE_F32, e[0]) : tt_make(VKI_TYPE_F32, e[0], e[1], e[2], 1, p1, 0));
                c->dst = c->src[0];
                c->inplace = mode == 2;
            }
}

static void cases_norm(void)
{
    const int64_t shapes[][2] = {{1, 1}, {33, 7}, {4096, 2}, {384, 9}};
    for (int kind = 0; kind < 2; kind++)
        for (size_t s = 0; s < VKI_COUNT(shapes); s++)
            for (int wmode = 0; wmode < 3; wmode++) {
                if (kind == 0 && wmode == 2) continue;
                bk_op_kind k = kind ? BK_OP_LAYER_NORM : BK_OP_RMS_NORM;
                int64_t n = shapes[s][0], r = shapes[s][1];
                test_case *c = add_case(k, NMSE_FLOAT, "ne=%lldx%lld%s", (long long)n, (long long)r,
                                        wmode == 0 ? "" : wmode == 1 ? ",w" : ",w,b");
                set_src(c, 0, tt_make(VKI_TYPE_F32, n, r, 1, 1, 0, 0));
                if (wmode >= 1) set_src(c, 1, tt_vec(VKI_TYPE_F32, n));
                if (wmode >= 2) set_src(c, 2, tt_vec(VKI_TYPE_F32, n));
                c->dst = tt_make(VKI_TYPE_F32, n, r, 1, 1, 0, 0);
                c->fp[0] = 1e-5f;
            }
}

static void cases_rope(void)
{
    /* div: per-pair frequency divisors (src2); mscale 0 means 1. */
    struct { int64_t hd, nh, nt; int n_rot, mode; float base, fscale; bool inplace, div; float mscale; } rs[] = {
        {64, 4, 7, 64, BK_ROPE_NORMAL, 10000.0f, 1.0f, false, false, 0.0f},
        {64, 4, 7, 64, BK_ROPE_NEOX, 10000.0f, 1.0f, true, false, 0.0f},
        {128, 3, 5, 64, BK_ROPE_NEOX, 1000000.0f, 0.25f, false, false, 0.0f},
        {32, 8, 1, 16, BK_ROPE_NORMAL, 10000.0f, 0.5f, true, false, 0.0f},
        {2, 1, 1, 2, BK_ROPE_NORMAL, 10000.0f, 1.0f, false, false, 0.0f},
        {128, 4, 7, 128, BK_ROPE_NEOX, 500000.0f, 1.0f, false, true, 0.0f},  /* llama 3 rope_freqs */
        {96, 3, 5, 96, BK_ROPE_NEOX, 10000.0f, 1.0f, true, true, 1.19f},     /* LongRoPE: factors, attn_factor */
        {64, 2, 3, 32, BK_ROPE_NORMAL, 10000.0f, 0.5f, false, true, 0.7f},   /* partial rotation */
        {64, 4, 1, 64, BK_ROPE_NEOX, 10000.0f, 1.0f, false, false, 1.25f},   /* mscale alone */
        {2, 1, 1, 2, BK_ROPE_NORMAL, 10000.0f, 1.0f, false, true, 2.0f},
    };
    for (size_t i = 0; i < VKI_COUNT(rs); i++) {
        char extra[48] = "";
        if (rs[i].div || rs[i].mscale != 0.0f)
            snprintf(extra, sizeof extra, "%s,mscale=%g", rs[i].div ? ",div" : "", rs[i].mscale);
        test_case *c = add_case(BK_OP_ROPE, NMSE_FLOAT, "hd=%lld,nh=%lld,nt=%lld,n_rot=%d,%s,base=%g,scale=%g%s%s",
                                (long long)rs[i].hd, (long long)rs[i].nh, (long long)rs[i].nt, rs[i].n_rot,
                                rs[i].mode == BK_ROPE_NEOX ? "neox" : "normal", rs[i].base, rs[i].fscale,
                                rs[i].inplace ? ",inplace" : "", extra);
        set_src(c, 0, tt_make(VKI_TYPE_F32, rs[i].hd, rs[i].nh, rs[i].nt, 1, rs[i].inplace ? 8 : 0, 0));
        set_src(c, 1, tt_vec(VKI_TYPE_I32, rs[i].nt));
        c->src[1].fill = FILL_POS;
        c->src[1].fill_max = 4096;
        c->dst = rs[i].inplace ? c->src[0] : tt_make(VKI_TYPE_F32, rs[i].hd, rs[i].nh, rs[i].nt, 1, 0, 0);
        c->inplace = rs[i].inplace;
        c->ip[0] = rs[i].n_rot;
        c->ip[1] = rs[i].mode;
        c->fp[0] = rs[i].base;
        c->fp[1] = rs[i].fscale;
        c->fp[2] = rs[i].mscale;
        if (rs[i].div) {
            set_src(c, 2, tt_vec(VKI_TYPE_F32, rs[i].n_rot / 2));
            c->src[2].fill = FILL_DIV;
        }
    }
}

static void cases_cpy(void)
{
    vki_type ts[] = {VKI_TYPE_F32, VKI_TYPE_F16};
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            test_case *c = add_case(BK_OP_CPY, NMSE_EXACT, "%s->%s,33x7", vki_type_name(ts[a]), vki_type_name(ts[b]));
            set_src(c, 0, tt_make(ts[a], 33, 7, 1, 1, 0, 0));
            c->dst = tt_make(ts[b], 33, 7, 1, 1, 0, 0);
            /* KV cache write: {hd, n_kv_head, n_tok} into a cache view whose
             * token stride is wider (more positions allocated). */
            c = add_case(BK_OP_CPY, NMSE_EXACT, "%s->%s,kv-view", vki_type_name(ts[a]), vki_type_name(ts[b]));
            set_src(c, 0, tt_make(ts[a], 64, 2, 5, 1, 0, 0));
            c->dst = tt_make(ts[b], 64, 2, 5, 1, 0, 256);
            /* Same element count, different shape: flattening order. */
            c = add_case(BK_OP_CPY, NMSE_EXACT, "%s->%s,64x4x3->256x3", vki_type_name(ts[a]), vki_type_name(ts[b]));
            set_src(c, 0, tt_make(ts[a], 64, 4, 3, 1, 4, 0));
            c->dst = tt_make(ts[b], 256, 3, 1, 1, 0, 0);
        }
}

static void cases_attn(void)
{
    /* window: sliding window (0 = none); cap: logit softcap (0 = none). */
    struct { int64_t hd, nh, nkvh, nq, nkv, n_ctx; int causal, pos0; vki_type kv; int window; float cap; } as[] = {
        {64, 4, 4, 1, 33, 64, 1, 32, VKI_TYPE_F16, 0, 0},  /* decode step, MHA       */
        {64, 8, 2, 7, 7, 16, 1, 0, VKI_TYPE_F32, 0, 0},    /* prompt, GQA 4:1        */
        {32, 4, 2, 5, 40, 48, 1, 35, VKI_TYPE_F16, 0, 0},  /* chunked prefill        */
        {64, 4, 4, 9, 9, 9, 0, 0, VKI_TYPE_F32, 0, 0},     /* encoder, non-causal    */
        {80, 6, 3, 3, 100, 128, 0, 0, VKI_TYPE_F16, 0, 0}, /* head_dim 80, odd sizes */
        {1, 1, 1, 1, 1, 1, 1, 0, VKI_TYPE_F32, 0, 0},      /* smallest               */
        {64, 4, 2, 1, 50, 64, 1, 49, VKI_TYPE_F16, 0, 0},  /* decode, GQA 2:1        */
        {48, 3, 1, 1, 70, 80, 1, 69, VKI_TYPE_F32, 0, 0},  /* decode, 3 heads per kv */
        /* sliding windows (gemma 2/3, phi-3): smaller than the kv length,
         * over whole key blocks, larger than it, on prompts (rows of one
         * workgroup with different windows), decode and chunked prefill */
        {64, 4, 2, 1, 200, 256, 1, 199, VKI_TYPE_F16, 16, 0},
        {64, 4, 2, 1, 200, 256, 1, 199, VKI_TYPE_F32, 130, 0},
        {64, 8, 2, 7, 7, 16, 1, 0, VKI_TYPE_F32, 3, 0},
        {32, 4, 1, 33, 33, 40, 1, 0, VKI_TYPE_F16, 5, 0},
        {32, 4, 2, 5, 40, 48, 1, 35, VKI_TYPE_F16, 1, 0},
        {64, 4, 4, 9, 9, 9, 1, 0, VKI_TYPE_F32, 100, 0},
        {64, 4, 4, 9, 9, 9, 0, 0, VKI_TYPE_F32, 4, 0},     /* non-causal, windowed   */
        {64, 2, 2, 3, 20, 32, 0, 100, VKI_TYPE_F32, 5, 0}, /* window past every key: zeros */
        /* logit softcap (gemma 2: 50; small caps saturate the scores) */
        {64, 4, 2, 1, 50, 64, 1, 49, VKI_TYPE_F16, 0, 50.0f},
        {64, 8, 2, 7, 7, 16, 1, 0, VKI_TYPE_F32, 0, 0.3f},
        {80, 6, 3, 3, 100, 128, 0, 0, VKI_TYPE_F16, 0, 1.0f},
        {128, 8, 4, 5, 100, 128, 1, 95, VKI_TYPE_F16, 64, 0.5f}, /* both (gemma 2 local layer) */
    };
    for (size_t i = 0; i < VKI_COUNT(as); i++) {
        char extra[48] = "";
        if (as[i].window || as[i].cap > 0.0f) snprintf(extra, sizeof extra, ",window=%d,softcap=%g", as[i].window, as[i].cap);
        test_case *c = add_case(BK_OP_ATTN, NMSE_FLOAT, "hd=%lld,nh=%lld,nkvh=%lld,nq=%lld,nkv=%lld,%s,pos0=%d,kv=%s%s",
                                (long long)as[i].hd, (long long)as[i].nh, (long long)as[i].nkvh, (long long)as[i].nq,
                                (long long)as[i].nkv, as[i].causal ? "causal" : "full", as[i].pos0,
                                vki_type_name(as[i].kv), extra);
        set_src(c, 0, tt_make(VKI_TYPE_F32, as[i].hd, as[i].nh, as[i].nq, 1, 0, 0));
        /* K/V are the first nkv positions of a cache of n_ctx: the rest of
         * the buffer is NaN, so reading past nkv fails the test. */
        tt kv = tt_make(as[i].kv, as[i].hd, as[i].nkvh, as[i].n_ctx, 1, 0, 0);
        kv.ne[2] = as[i].nkv;
        set_src(c, 1, kv);
        set_src(c, 2, kv);
        c->dst = tt_make(VKI_TYPE_F32, as[i].hd, as[i].nh, as[i].nq, 1, 0, 0);
        c->ip[0] = as[i].causal;
        c->ip[1] = as[i].pos0;
        c->ip[2] = as[i].window;
        c->fp[0] = 1.0f / sqrtf((float)as[i].hd);
        c->fp[1] = as[i].cap;
    }
}

static void cases_pool(void)
{
    const int64_t shapes[][2] = {{384, 7}, {33, 1}, {1, 5}};
    static const char *const names[] = {[BK_POOL_MEAN] = "mean", [BK_POOL_CLS] = "cls", [BK_POOL_LAST] = "last"};
    for (int mode = 0; mode < 3; mode++)
        for (size_t s = 0; s < VKI_COUNT(shapes); s++) {
            test_case *c = add_case(BK_OP_POOL, NMSE_FLOAT, "%s,d=%lld,n_tok=%lld", names[mode],
                                    (long long)shapes[s][0], (long long)shapes[s][1]);
            set_src(c, 0, tt_make(VKI_TYPE_F32, shapes[s][0], shapes[s][1], 1, 1, 0, 0));
            c->dst = tt_make(VKI_TYPE_F32, shapes[s][0], 1, 1, 1, 0, 0);
            c->ip[0] = mode;
        }
}

/* Mixture-of-experts routing: TOP_K with ties (multiples of 1/4), rows
 * shorter than the workgroup and longer, k from 1 to the whole row. */
static void cases_moe_route(void)
{
    const int64_t tk[][3] = {{4, 1, 1}, {8, 2, 7}, {60, 8, 64}, {128, 8, 33}, {128, 128, 3}, {300, 5, 2}, {1, 1, 5}};
    for (size_t i = 0; i < VKI_COUNT(tk); i++)
        for (int ties = 0; ties < 2; ties++) {
            int64_t n = tk[i][0], k = tk[i][1], rows = tk[i][2];
            test_case *c = add_case(BK_OP_TOP_K, NMSE_EXACT, "n=%lld,k=%lld,rows=%lld%s", (long long)n, (long long)k,
                                    (long long)rows, ties ? ",ties,views" : "");
            set_src(c, 0, tt_make(VKI_TYPE_F32, n, rows, 1, 1, ties ? 12 : 0, 0));
            c->src[0].fill = ties ? FILL_TIES : FILL_RAND;
            c->dst = tt_make(VKI_TYPE_I32, k, rows, 1, 1, ties ? 8 : 0, 0);
        }
    /* GATHER_COLS: the chosen experts' probabilities, renormalised or not. */
    const int64_t gc[][3] = {{4, 1, 1}, {8, 2, 7}, {128, 8, 64}, {60, 4, 200}, {33, 3, 3}};
    for (size_t i = 0; i < VKI_COUNT(gc); i++)
        for (int norm = 0; norm < 2; norm++) {
            int64_t n = gc[i][0], k = gc[i][1], rows = gc[i][2];
            test_case *c = add_case(BK_OP_GATHER_COLS, NMSE_FLOAT, "n=%lld,k=%lld,rows=%lld%s", (long long)n,
                                    (long long)k, (long long)rows, norm ? ",norm" : ",views");
            set_src(c, 0, tt_make(VKI_TYPE_F32, n, rows, 1, 1, norm ? 0 : 20, 0));
            c->src[0].fill = FILL_PROB;
            set_src(c, 1, tt_make(VKI_TYPE_I32, k, rows, 1, 1, norm ? 0 : 4, 0));
            c->src[1].fill = FILL_ROUTE;
            c->src[1].fill_max = (int32_t)n;
            c->dst = tt_make(VKI_TYPE_F32, k, rows, 1, 1, norm ? 0 : 8, 0);
            c->ip[0] = norm;
        }
    /* MOE_SUM: d x n_used x n_tok. */
    const int64_t ms[][3] = {{1, 1, 1}, {33, 2, 7}, {1000, 8, 3}, {64, 8, 64}, {2048, 2, 2}};
    for (size_t i = 0; i < VKI_COUNT(ms); i++)
        for (int views = 0; views < 2; views++) {
            int64_t d = ms[i][0], nu = ms[i][1], nt = ms[i][2];
            test_case *c = add_case(BK_OP_MOE_SUM, NMSE_FLOAT, "d=%lld,n_used=%lld,n_tok=%lld%s", (long long)d,
                                    (long long)nu, (long long)nt, views ? ",views" : "");
            set_src(c, 0, tt_make(VKI_TYPE_F32, d, nu, nt, 1, views ? 16 : 0, views ? 32 : 0));
            set_src(c, 1, tt_make(VKI_TYPE_F32, nu, nt, 1, 1, views ? 4 : 0, 0));
            c->src[1].fill = FILL_PROB;
            c->dst = tt_make(VKI_TYPE_F32, d, nt, 1, 1, views ? 12 : 0, 0);
        }
}

/* MATMUL_ID for every weight type: decode (1, 2, 7 tokens: one pair per
 * workgroup) and prompts (64+ tokens: tiles per expert), 1/2/8 experts per
 * token out of 4..128, activations shared by the slots or one per slot,
 * m and k at 1, 3, 33 and odd multiples of the block. */
static void cases_matmul_id(void)
{
    for (size_t ti = 0; ti < VKI_COUNT(weight_types); ti++) {
        vki_type t = weight_types[ti];
        const vki_type_traits *tr = vki_type_get(t);
        if (!tr || !tr->block_size) continue;
        int64_t bs = tr->block_size;
        /* k, m, n_exp, n_used, n_tok, shared activations, ids (0 distinct
         * per token, 1 random with repeats: an expert twice in a token) */
        const int64_t sh[][7] = {
            {bs == 1 ? 1 : bs, 1, 4, 1, 1, 0, 0},
            {bs == 1 ? 33 : 3 * bs, 33, 8, 2, 2, 1, 0},
            {bs == 1 ? 100 : (bs == 256 ? 2 * bs : 9 * bs), 67, 128, 8, 7, 0, 0},
            {bs == 1 ? 48 : 2 * bs, 3, 16, 2, 64, 0, 0},
            {bs == 1 ? 71 : bs, 19, 128, 8, 64, 1, 0},
            {bs == 1 ? 16 : bs, 70, 4, 2, 200, 0, 0},
            {bs == 1 ? 36 : bs, 9, 2, 4, 70, 0, 1},
            {bs == 1 ? 40 : bs, 21, 8, 2, 100, 0, 0},
        };
        /* The prompts' tiles are 16, 32 or 64 routed rows by the rows an
         * expert gets on average: 8 and 4 (16 and 128 experts), 25 (the
         * last shape), 100 and 140 (4 and 2 experts, the last with experts
         * over the y groups' rows, so tiles loop). Each tile size is a
         * pipeline to compile (what dominates under ASan) and 128 experts
         * are seconds on lavapipe for a K-quant; the tiles' logic does not
         * depend on the type, so every type runs the 64-row tiles and a
         * plain type, one of the 32-blocks and a K-quant all three. The
         * second decode shape is one more mat-vec pipeline per type: only
         * the types with their own 16-element decoders in matvec.comp run
         * it, as in cases_matmul. */
        bool all_tiles = t == VKI_TYPE_F32 || t == VKI_TYPE_Q8_0 || t == VKI_TYPE_Q4_K;
        bool own_decoder = t == VKI_TYPE_F32 || t == VKI_TYPE_F16 || t == VKI_TYPE_Q8_0 || t == VKI_TYPE_Q4_0 ||
                           t == VKI_TYPE_Q4_K || t == VKI_TYPE_Q6_K;
        for (size_t s = 0; s < VKI_COUNT(sh); s++) {
            if (((s == 3 || s == 4 || s == 7) && !all_tiles) || (s == 1 && !own_decoder)) continue;
            int64_t k = sh[s][0], m = sh[s][1], ne = sh[s][2], nu = sh[s][3], nt = sh[s][4];
            bool shared = sh[s][5], rep = sh[s][6];
            test_case *c = add_case(BK_OP_MATMUL_ID, matmul_nmse(t), "w=%s,k=%lld,m=%lld,n_exp=%lld,n_used=%lld,n_tok=%lld%s%s",
                                    tr->name, (long long)k, (long long)m, (long long)ne, (long long)nu, (long long)nt,
                                    shared ? ",shared" : "", rep ? ",repeats" : "");
            set_src(c, 0, tt_make(t, k, m, ne, 1, 0, 0));
            /* per-slot activations as a view with padded rows and tokens */
            set_src(c, 1, shared ? tt_make(VKI_TYPE_F32, k, 1, nt, 1, 0, 0) : tt_make(VKI_TYPE_F32, k, nu, nt, 1, 16, 32));
            set_src(c, 2, tt_make(VKI_TYPE_I32, nu, nt, 1, 1, s == 2 ? 8 : 0, 0));
            c->src[2].fill = rep ? FILL_IDS : FILL_ROUTE;
            c->src[2].fill_max = (int32_t)ne;
            c->dst = tt_make(VKI_TYPE_F32, m, nu, nt, 1, s == 3 ? 12 : 0, 0);
        }
    }
}

/* ===== Data ============================================================== */

/* Host bytes of one tensor's buffer: NaN everywhere, then its elements. */
static uint8_t *make_data(const tt *t, uint64_t *seed)
{
    uint8_t *buf = malloc((size_t)t->size);
    if (!buf) return NULL;
    memset(buf, 0xFF, (size_t)t->size);
    const vki_type_traits *tr = vki_type_get(t->type);
    int64_t n0 = t->ne[0];
    float *row = malloc((size_t)n0 * sizeof(float));
    if (!row) { free(buf); return NULL; }
    for (int64_t i3 = 0; i3 < t->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < t->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < t->ne[1]; i1++) {
                uint8_t *p = buf + PAD + (uint64_t)i1 * t->nb[1] + (uint64_t)i2 * t->nb[2] + (uint64_t)i3 * t->nb[3];
                if (t->type == VKI_TYPE_I32) {
                    for (int64_t i = 0; i < n0; i++)
                        ((int32_t *)p)[i] = (int32_t)(test_rand_u64(seed) % (uint64_t)t->fill_max);
                    if (t->fill == FILL_POS && n0 > 1) /* an increasing run, like a real prompt */
                        for (int64_t i = 1; i < n0; i++) ((int32_t *)p)[i] = ((int32_t *)p)[0] + (int32_t)i;
                    if (t->fill == FILL_ROUTE) /* redraw until distinct: n0 is a handful of fill_max */
                        for (int64_t i = 1; i < n0; i++)
                            for (int64_t j = 0; j < i; j++)
                                if (((int32_t *)p)[j] == ((int32_t *)p)[i]) {
                                    ((int32_t *)p)[i] = (int32_t)(test_rand_u64(seed) % (uint64_t)t->fill_max);
                                    j = -1;
                                }
                    continue;
                }
                for (int64_t i = 0; i < n0; i++) row[i] = test_rand_f32(seed, -1.0f, 1.0f);
                if (t->fill == FILL_DIV)
                    for (int64_t i = 0; i < n0; i++) row[i] = 20.5f + 19.5f * row[i];
                if (t->fill == FILL_TIES)
                    for (int64_t i = 0; i < n0; i++) row[i] = roundf(row[i] * 4.0f) / 4.0f;
                if (t->fill == FILL_PROB)
                    for (int64_t i = 0; i < n0; i++) row[i] = 0.505f + 0.495f * row[i];
                if (t->type == VKI_TYPE_F32) memcpy(p, row, (size_t)n0 * 4);
                else if (t->type == VKI_TYPE_F16) for (int64_t i = 0; i < n0; i++) ((uint16_t *)p)[i] = vki_fp32_to_fp16(row[i]);
                else if (t->type == VKI_TYPE_BF16) for (int64_t i = 0; i < n0; i++) ((uint16_t *)p)[i] = vki_fp32_to_bf16(row[i]);
                else if (!vki_quantize_row(t->type, row, p, n0)) {
                    (void)tr;
                    free(row);
                    free(buf);
                    return NULL;
                }
            }
    free(row);
    return buf;
}

/* Marks the bytes a tensor's elements occupy. */
static void mark_elements(const tt *t, uint8_t *mask)
{
    const vki_type_traits *tr = vki_type_get(t->type);
    uint64_t row_bytes = (uint64_t)(t->ne[0] / tr->block_size) * tr->type_size;
    for (int64_t i3 = 0; i3 < t->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < t->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < t->ne[1]; i1++)
                memset(mask + PAD + (uint64_t)i1 * t->nb[1] + (uint64_t)i2 * t->nb[2] + (uint64_t)i3 * t->nb[3], 1,
                       (size_t)row_bytes);
}

static float elem_f32(const tt *t, const uint8_t *buf, int64_t i0, int64_t r)
{
    int64_t i1 = r % t->ne[1], i2 = (r / t->ne[1]) % t->ne[2], i3 = r / (t->ne[1] * t->ne[2]);
    const uint8_t *p = buf + PAD + (uint64_t)i1 * t->nb[1] + (uint64_t)i2 * t->nb[2] + (uint64_t)i3 * t->nb[3] +
                       (uint64_t)i0 * t->nb[0];
    if (t->type == VKI_TYPE_F16) return vki_fp16_to_fp32(*(const uint16_t *)p);
    if (t->type == VKI_TYPE_I32) return (float)*(const int32_t *)p; /* ids: compared as values */
    float f;
    memcpy(&f, p, 4);
    return f;
}

static bk_tensor tensor_of(const tt *t, bk_buffer *buf)
{
    bk_tensor x = {.type = t->type, .buf = buf, .offs = PAD};
    memcpy(x.ne, t->ne, sizeof x.ne);
    memcpy(x.nb, t->nb, sizeof x.nb);
    return x;
}

/* The whole buffer as bytes, for raw uploads and read-backs. */
static bk_tensor raw_of(uint64_t size, bk_buffer *buf)
{
    bk_tensor x = {.type = VKI_TYPE_I8, .ne = {(int64_t)size, 1, 1, 1}, .nb = {1, size, size, size}, .buf = buf};
    return x;
}

/* ===== Backends ========================================================== */

typedef struct backend_entry {
    char        name[40];
    bk_backend *be;
    bool        prepare;    /* weights go through weight_prepare (the CPU's repacked layout) */
    int         n_repacked; /* weights it repacked                                          */
} backend_entry;

/* Adds a CPU backend at isa (prepare: its weights repacked) as out[*n];
 * false (counted as a failure) when it cannot be created. */
static bool add_cpu_backend(backend_entry *out, int *n, cpu_isa isa, const char *name, bool prepare)
{
    bk_backend *be = NULL;
    if (bk_cpu_create_isa(2, isa, &be) != VKI_OK) {
        printf("backend %s: cannot be created: %s\n", name, vki_last_error());
        vki_test_failures++;
        return false;
    }
    out[*n] = (backend_entry){.be = be, .prepare = prepare};
    snprintf(out[*n].name, sizeof out[*n].name, "%s", name);
    (*n)++;
    return true;
}

static int make_backends(backend_entry *out, const char *filter)
{
    int n = 0;
    for (int isa = 0; isa < CPU_ISA_COUNT; isa++) {
        char name[32], r16_name[40];
        snprintf(name, sizeof name, "cpu-%s", cpu_isa_name((cpu_isa)isa));
        if (filter && strncmp(name, filter, strlen(filter)) != 0) continue;
        if (!cpu_isa_available((cpu_isa)isa)) {
            printf("backend %s: skipped (this CPU lacks %s)\n", name, cpu_isa_name((cpu_isa)isa));
            continue;
        }
        if (!add_cpu_backend(out, &n, (cpu_isa)isa, name, false)) continue;
        /* The same level again with its weights repacked, where it has
         * repacked kernels: every consumer of a repacked weight (mat-vec,
         * batched, the packed mat-mats, GET_ROWS, MATMUL_ID) must agree
         * with the reference as closely as plain weights do. */
        bool r16 = false;
        for (int t = 0; t < VKI_TYPE_COUNT; t++) r16 |= cpu_kernels_get((cpu_isa)isa)->gemv_r16[t] != NULL;
        if (!r16 || getenv("VKI_CPU_NO_REPACK")) continue;
        snprintf(r16_name, sizeof r16_name, "%s-r16", name);
        (void)add_cpu_backend(out, &n, (cpu_isa)isa, r16_name, true);
    }
    if (!filter || strncmp("vulkan", filter, strlen(filter)) == 0) {
#ifdef VKI_HAVE_VULKAN
        bk_vk_params p = {.device = -1, .validation = true};
        bk_backend *be = NULL;
        vki_status st = bk_vk_create(&p, &be);
        if (st == VKI_OK) {
            out[n] = (backend_entry){.be = be}; /* prepare false: Vulkan takes the file's layout */
            snprintf(out[n].name, sizeof out[n].name, "vulkan");
            n++;
        } else {
            printf("backend vulkan: skipped (%s: %s)\n", vki_status_str(st), vki_last_error());
        }
#else
        printf("backend vulkan: skipped (engine/vulkan does not provide bk_vk_create in this build)\n");
#endif
    }
    return n;
}

/* ===== Running one case on one backend =================================== */

typedef struct case_data {
    uint8_t *host[3];   /* inputs as generated                        */
    uint8_t *ref_out;   /* output buffer after the reference ran       */
    uint8_t *mask;      /* bytes of the output's elements              */
    const tt *out_tt;
    uint64_t out_size;
    int      out_src;   /* -1: dst has its own buffer; 0: in place     */
    double   norm;      /* NMSE denominator; 0 = sum of ref^2          */
    uint8_t *ref_f16;   /* MATMUL: the reference on weights and activations
                           rounded to f16 (see f16_reference), or NULL   */
} case_data;

typedef enum { RES_PASS, RES_FAIL, RES_UNSUPPORTED } result;

static result run_on_backend(const test_case *c, const case_data *cd, backend_entry *b, double *nmse_out)
{
    bk_backend *be = b->be;
    bk_buffer *bufs[4] = {0};
    bk_tensor ts[4];
    result res = RES_FAIL;
    uint8_t *out = NULL;
    /* A weight to repack gets a buffer of its own, as a model's weights do
     * (no sentinel padding: weight_prepare takes whole buffers only). */
    const bool prep = b->prepare && (c->kind == BK_OP_MATMUL || c->kind == BK_OP_GET_ROWS ||
                                     c->kind == BK_OP_MATMUL_ID);
    for (int i = 0; i < c->n_src; i++) {
        if (!c->has_src[i]) continue;
        uint64_t size = c->src[i].size - (prep && i == 0 ? 2 * PAD : 0);
        if (be->iface->buffer_create(be, size, BK_BUFFER_COMPUTE, &bufs[i]) != VKI_OK) {
            printf("  %s [%s]: buffer_create failed: %s\n", c->desc, b->name, vki_last_error());
            goto done;
        }
        ts[i] = tensor_of(&c->src[i], bufs[i]);
        if (prep && i == 0) ts[i].offs = 0;
    }
    if (c->inplace) {
        ts[3] = ts[0];
    } else {
        if (be->iface->buffer_create(be, c->dst.size, BK_BUFFER_COMPUTE, &bufs[3]) != VKI_OK) {
            printf("  %s [%s]: buffer_create failed: %s\n", c->desc, b->name, vki_last_error());
            goto done;
        }
        ts[3] = tensor_of(&c->dst, bufs[3]);
    }
    bk_op op = {.kind = c->kind, .dst = &ts[3]};
    for (int i = 0; i < c->n_src; i++) op.src[i] = c->has_src[i] ? &ts[i] : NULL;
    memcpy(op.ip, c->ip, sizeof op.ip);
    memcpy(op.fp, c->fp, sizeof op.fp);
    if (!be->iface->supports_op(be, &op)) {
        res = RES_UNSUPPORTED;
        goto done;
    }
    for (int i = 0; i < c->n_src; i++) {
        if (!c->has_src[i]) continue;
        bool own = prep && i == 0;
        bk_tensor raw = raw_of(c->src[i].size - (own ? 2 * PAD : 0), bufs[i]);
        if (be->iface->tensor_set(be, &raw, cd->host[i] + (own ? PAD : 0), 0, raw.ne[0]) != VKI_OK) {
            printf("  %s [%s]: tensor_set failed: %s\n", c->desc, b->name, vki_last_error());
            goto done;
        }
    }
    if (prep) {
        /* GET_ROWS as a tied embedding's table: gathered and multiplied. */
        unsigned uses = c->kind == BK_OP_MATMUL      ? BK_WEIGHT_MATMUL
                      : c->kind == BK_OP_MATMUL_ID ? BK_WEIGHT_MATMUL_ID : BK_WEIGHT_MATMUL | BK_WEIGHT_GATHER;
        bool released = false;
        if (be->iface->weight_prepare(be, &ts[0], uses, &released) != VKI_OK) {
            printf("  %s [%s]: weight_prepare failed: %s\n", c->desc, b->name, vki_last_error());
            goto done;
        }
        b->n_repacked += ((cpu_buffer *)bufs[0])->layout == CPU_LAYOUT_R16;
    }
    bk_buffer *obuf = c->inplace ? bufs[0] : bufs[3];
    if (!c->inplace) {
        uint8_t *nan = malloc((size_t)cd->out_size);
        if (!nan) goto done;
        memset(nan, 0xFF, (size_t)cd->out_size);
        bk_tensor raw = raw_of(cd->out_size, obuf);
        vki_status st = be->iface->tensor_set(be, &raw, nan, 0, cd->out_size);
        free(nan);
        if (st != VKI_OK) goto done;
    }
    vki_status st = bk_begin(be);
    if (st == VKI_OK) st = bk_compute(be, &op);
    vki_status st2 = bk_end(be);
    if (st != VKI_OK || st2 != VKI_OK) {
        printf("  %s [%s]: FAIL: compute returned %s: %s\n", c->desc, b->name,
               vki_status_str(st != VKI_OK ? st : st2), vki_last_error());
        goto done;
    }
    out = malloc((size_t)cd->out_size);
    bk_tensor raw = raw_of(cd->out_size, obuf);
    if (!out || be->iface->tensor_get(be, &raw, out, 0, cd->out_size) != VKI_OK) {
        printf("  %s [%s]: tensor_get failed: %s\n", c->desc, b->name, vki_last_error());
        goto done;
    }
    /* Sentinels: every byte outside the output's elements is unchanged. */
    const uint8_t *before = c->inplace ? cd->host[0] : NULL;
    for (uint64_t i = 0; i < cd->out_size; i++) {
        if (cd->mask[i]) continue;
        uint8_t want = before ? before[i] : 0xFF;
        if (out[i] != want) {
            printf("  %s [%s]: FAIL: byte %llu outside the output changed (0x%02x, expected 0x%02x)\n", c->desc,
                   b->name, (unsigned long long)i, out[i], want);
            goto done;
        }
    }
    const tt *o = cd->out_tt;
    const uint8_t *ref = cd->ref_out;
#ifdef VKI_HAVE_VULKAN
    /* The coop-matrix mat-mats compute in f16 x f16 -> f32 by design: they
     * are held to the case's tolerance against the same sums on inputs
     * rounded as the kernel rounds them. */
    if (be->kind == VKI_BACKEND_VULKAN && cd->ref_f16 && bk_vk_matmul_f16(be, &op)) ref = cd->ref_f16;
#endif
    double err = 0.0, sum = 0.0;
    int64_t rows = o->ne[1] * o->ne[2] * o->ne[3];
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < o->ne[0]; i++) {
            float got = elem_f32(o, out, i, r), want = elem_f32(o, ref, i, r);
            if (!isfinite(got)) {
                printf("  %s [%s]: FAIL: element (%lld, row %lld) is %g (reference %g)\n", c->desc, b->name,
                       (long long)i, (long long)r, got, want);
                goto done;
            }
            err += ((double)got - want) * ((double)got - want);
            sum += (double)want * want;
        }
    if (cd->norm > 0) sum = cd->norm;
    double nmse = sum > 0 ? err / sum : err;
    *nmse_out = nmse;
    if (nmse > c->max_nmse) {
        printf("  %s [%s]: FAIL: nmse %.3g > %.3g\n", c->desc, b->name, nmse, c->max_nmse);
        goto done;
    }
    res = RES_PASS;
    if (g_perf_runs > 0) {
        /* All runs in one pass (as a forward pass records its ops), so the
         * figure is the op's, not the submission's. */
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        vki_status s1 = bk_begin(be);
        for (int i = 0; i < g_perf_runs && s1 == VKI_OK; i++) s1 = bk_compute(be, &op);
        if (bk_end(be) != VKI_OK || s1 != VKI_OK) res = RES_FAIL;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double us = ((double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3) / g_perf_runs;
        const tt *w = &c->src[0];
        if (c->kind == BK_OP_MATMUL) {
            double wbytes = (double)(w->nb[1] * (uint64_t)w->ne[1]);
            double flops = 2.0 * (double)w->ne[0] * (double)w->ne[1] * (double)(c->src[1].ne[1] * c->src[1].ne[2]);
            printf("  perf %s [%s]: %.1f us/run, %.2f GB/s of weights, %.2f GFLOP/s\n", c->desc, b->name, us,
                   wbytes / us / 1e3, flops / us / 1e3);
        } else { /* CPY: bytes read and written */
            double bytes = (double)(w->nb[1] * (uint64_t)w->ne[1] + c->dst.nb[1] * (uint64_t)c->dst.ne[1]);
            printf("  perf %s [%s]: %.1f us/run, %.2f GB/s copied (read + write)\n", c->desc, b->name, us,
                   bytes / us / 1e3);
        }
    }
done:
    free(out);
    for (int i = 0; i < 4; i++)
        if (bufs[i]) be->iface->buffer_destroy(be, bufs[i]);
    return res;
}

/* MATMUL's NMSE denominator: sum over outputs of the squared terms of
 * their dot products (see Tolerances). */
static double matmul_norm(const test_case *c, const case_data *cd)
{
    const tt *w = &c->src[0], *x = &c->src[1];
    int64_t k = w->ne[0], m = w->ne[1], n = x->ne[1] * x->ne[2] * x->ne[3];
    float *wr = malloc((size_t)k * sizeof(float));
    if (!wr) return 0.0;
    double norm = 0.0;
    for (int64_t i = 0; i < m; i++) {
        if (!vki_dequantize_row(w->type, cd->host[0] + PAD + (uint64_t)i * w->nb[1], wr, k)) break;
        for (int64_t j = 0; j < n; j++)
            for (int64_t e = 0; e < k; e++) {
                double t = (double)wr[e] * elem_f32(x, cd->host[1], e, j);
                norm += t * t;
            }
    }
    free(wr);
    return norm;
}

/* The same denominator for MATMUL_ID: each (token, slot) against the rows
 * of its expert. Ids outside the table (none in the tables) count nothing. */
static double matmul_id_norm(const test_case *c, const case_data *cd)
{
    const tt *w = &c->src[0], *x = &c->src[1], *ids = &c->src[2];
    int64_t k = w->ne[0], m = w->ne[1], nu = ids->ne[0], nt = ids->ne[1];
    float *wr = malloc((size_t)k * sizeof(float));
    if (!wr) return 0.0;
    double norm = 0.0;
    for (int64_t t = 0; t < nt; t++)
        for (int64_t s = 0; s < nu; s++) {
            int32_t e = *(const int32_t *)(cd->host[2] + PAD + (uint64_t)t * ids->nb[1] + (uint64_t)s * 4);
            if (e < 0 || e >= w->ne[2]) continue;
            int64_t xr = t * x->ne[1] + (x->ne[1] == 1 ? 0 : s);
            for (int64_t i = 0; i < m; i++) {
                if (!vki_dequantize_row(w->type, cd->host[0] + PAD + (uint64_t)e * w->nb[2] + (uint64_t)i * w->nb[1],
                                        wr, k))
                    break;
                for (int64_t j = 0; j < k; j++) {
                    double v = (double)wr[j] * elem_f32(x, cd->host[1], j, xr);
                    norm += v * v;
                }
            }
        }
    free(wr);
    return norm;
}

/* MATMUL's second reference: the weights dequantized and rounded to f16
 * (an F16 weight), the activations rounded to f16, the bias as it is; what
 * a kernel computing f16 x f16 products in f32 sums (matmul_cm.comp) must
 * match. Returns the output buffer or NULL (then nothing is compared
 * against it: F32/BF16 weights, whose kernels stay f32). */
static uint8_t *f16_reference(const test_case *c, const case_data *cd)
{
    const tt *w = &c->src[0], *x = &c->src[1];
    if (w->type == VKI_TYPE_F32 || w->type == VKI_TYPE_BF16) return NULL;
    int64_t k = w->ne[0], m = w->ne[1];
    tt w16 = tt_make(VKI_TYPE_F16, k, m, 1, 1, 0, 0);
    uint8_t *wb = malloc((size_t)w16.size), *xb = malloc((size_t)x->size), *out = malloc((size_t)cd->out_size);
    uint8_t *bb = NULL;
    float *row = malloc((size_t)k * sizeof(float));
    bool ok = wb && xb && out && row;
    for (int64_t i = 0; ok && i < m; i++) {
        ok = vki_dequantize_row(w->type, cd->host[0] + PAD + (uint64_t)i * w->nb[1], row, k);
        for (int64_t e = 0; ok && e < k; e++)
            ((uint16_t *)(wb + PAD + (uint64_t)i * w16.nb[1]))[e] = vki_fp32_to_fp16(row[e]);
    }
    if (ok) {
        memcpy(xb, cd->host[1], (size_t)x->size);
        for (int64_t r = 0; r < x->ne[1] * x->ne[2] * x->ne[3]; r++) {
            int64_t i1 = r % x->ne[1], i2 = (r / x->ne[1]) % x->ne[2], i3 = r / (x->ne[1] * x->ne[2]);
            float *xr = (float *)(xb + PAD + (uint64_t)i1 * x->nb[1] + (uint64_t)i2 * x->nb[2] + (uint64_t)i3 * x->nb[3]);
            for (int64_t e = 0; e < k; e++) xr[e] = vki_fp16_to_fp32(vki_fp32_to_fp16(xr[e]));
        }
        memset(out, 0xFF, (size_t)cd->out_size);
    }
    if (ok && c->has_src[2]) {
        ok = (bb = malloc((size_t)c->src[2].size)) != NULL;
        if (ok) memcpy(bb, cd->host[2], (size_t)c->src[2].size);
    }
    if (ok) {
        cpu_buffer hb[4];
        bk_tensor tw = tensor_of(&w16, cpu_buffer_wrap(&hb[0], wb, w16.size));
        bk_tensor tx = tensor_of(x, cpu_buffer_wrap(&hb[1], xb, x->size));
        bk_tensor td = tensor_of(&c->dst, cpu_buffer_wrap(&hb[3], out, cd->out_size));
        bk_tensor tb;
        if (bb) tb = tensor_of(&c->src[2], cpu_buffer_wrap(&hb[2], bb, c->src[2].size));
        bk_op op = {.kind = BK_OP_MATMUL, .dst = &td, .src = {&tw, &tx, bb ? &tb : NULL}};
        ok = cpu_ref_compute(&op) == VKI_OK;
    }
    free(wb); free(xb); free(bb); free(row);
    if (!ok) {
        free(out);
        return NULL;
    }
    return out;
}

/* Builds inputs and the reference output for a case. */
static bool prepare_case(const test_case *c, case_data *cd, uint64_t seed)
{
    memset(cd, 0, sizeof *cd);
    cpu_buffer hb[4];
    bk_tensor ts[4];
    for (int i = 0; i < c->n_src; i++) {
        if (!c->has_src[i]) continue;
        if (!(cd->host[i] = make_data(&c->src[i], &seed))) {
            printf("  %s: cannot build input %d (%s): %s\n", c->desc, i, vki_type_name(c->src[i].type), vki_last_error());
            return false;
        }
    }
    cd->out_tt = c->inplace ? &c->src[0] : &c->dst;
    cd->out_size = cd->out_tt->size;
    cd->ref_out = malloc((size_t)cd->out_size);
    cd->mask = calloc(1, (size_t)cd->out_size);
    if (!cd->ref_out || !cd->mask) return false;
    if (c->inplace) memcpy(cd->ref_out, cd->host[0], (size_t)cd->out_size);
    else memset(cd->ref_out, 0xFF, (size_t)cd->out_size);
    mark_elements(cd->out_tt, cd->mask);
    /* The reference runs on copies so in-place ops leave host[] intact. */
    uint8_t *copies[3] = {0};
    bool ok = true;
    for (int i = 0; i < c->n_src && ok; i++) {
        if (!c->has_src[i]) continue;
        if (i == 0 && c->inplace) {
            ts[0] = tensor_of(&c->src[0], cpu_buffer_wrap(&hb[0], cd->ref_out, cd->out_size));
            continue;
        }
        copies[i] = malloc((size_t)c->src[i].size);
        if (!copies[i]) { ok = false; break; }
        memcpy(copies[i], cd->host[i], (size_t)c->src[i].size);
        ts[i] = tensor_of(&c->src[i], cpu_buffer_wrap(&hb[i], copies[i], c->src[i].size));
    }
    if (ok) {
        ts[3] = c->inplace ? ts[0] : tensor_of(&c->dst, cpu_buffer_wrap(&hb[3], cd->ref_out, cd->out_size));
        bk_op op = {.kind = c->kind, .dst = &ts[3]};
        for (int i = 0; i < c->n_src; i++) op.src[i] = c->has_src[i] ? &ts[i] : NULL;
        memcpy(op.ip, c->ip, sizeof op.ip);
        memcpy(op.fp, c->fp, sizeof op.fp);
        vki_status st = cpu_ref_compute(&op);
        if (st != VKI_OK) {
            printf("  %s: reference failed: %s\n", c->desc, vki_last_error());
            ok = false;
        }
    }
    for (int i = 0; i < 3; i++) free(copies[i]);
    if (ok && c->kind == BK_OP_MATMUL) cd->norm = matmul_norm(c, cd);
    if (ok && c->kind == BK_OP_MATMUL && !c->inplace) cd->ref_f16 = f16_reference(c, cd);
    if (ok && c->kind == BK_OP_MATMUL_ID) cd->norm = matmul_id_norm(c, cd);
    return ok;
}

static void free_case(case_data *cd)
{
    for (int i = 0; i < 3; i++) free(cd->host[i]);
    free(cd->ref_out);
    free(cd->ref_f16);
    free(cd->mask);
}

/* ===== Main ============================================================== */

/* True when desc contains one of the '|'-separated substrings of filter. */
static bool desc_matches(const char *desc, const char *filter)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", filter);
    for (char *save = NULL, *tok = strtok_r(buf, "|", &save); tok; tok = strtok_r(NULL, "|", &save))
        if (strstr(desc, tok)) return true;
    return false;
}

/* True when name is one of the '|'-separated op names of filter. */
static bool op_matches(const char *name, const char *filter)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", filter);
    for (char *save = NULL, *tok = strtok_r(buf, "|", &save); tok; tok = strtok_r(NULL, "|", &save))
        if (!strcmp(name, tok)) return true;
    return false;
}

/* -o OPS keeps only those ops, -x OPS drops them (either may be NULL). */
static bool op_selected(const char *name, const char *only, const char *skip)
{
    return (!only || op_matches(name, only)) && (!skip || !op_matches(name, skip));
}

int main(int argc, char **argv)
{
    const char *op_filter = NULL, *op_skip = NULL, *be_filter = NULL, *desc_filter = NULL;
    bool list = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc) op_filter = argv[++i];
        else if (!strcmp(argv[i], "-x") && i + 1 < argc) op_skip = argv[++i];
        else if (!strcmp(argv[i], "-f") && i + 1 < argc) desc_filter = argv[++i];
        else if (!strcmp(argv[i], "-b") && i + 1 < argc) be_filter = argv[++i];
        else if (!strcmp(argv[i], "--list")) list = true;
        else if (!strcmp(argv[i], "--perf")) g_perf_runs = i + 1 < argc && argv[i + 1][0] != '-' ? atoi(argv[++i]) : 10;
        else {
            fprintf(stderr, "usage: %s [-o 'OP|OP...'] [-x 'OP|OP...'] [-b BACKEND] [-f 'SUBSTR|SUBSTR...'] [--list]\n", argv[0]);
            return 2;
        }
    }
    if (g_perf_runs > 0) {
        cases_perf();
    } else {
    cases_matmul();
    cases_get_rows();
    cases_elementwise();
    cases_norm();
    cases_rope();
    cases_cpy();
    cases_attn();
    cases_pool();
    cases_moe_route();
    cases_matmul_id();
    }

    if (list) {
        for (int i = 0; i < g_n_cases; i++)
            if (op_selected(bk_op_name(g_cases[i].kind), op_filter, op_skip)) printf("%s\n", g_cases[i].desc);
        return 0;
    }
    backend_entry bes[8];
    int n_be = make_backends(bes, be_filter);
    if (n_be == 0) test_skip("no backend matches '%s' on this machine", be_filter ? be_filter : "");
    int pass[8] = {0}, fail[8] = {0}, unsup[8] = {0};
    for (int ci = 0; ci < g_n_cases; ci++) {
        const test_case *c = &g_cases[ci];
        if (!op_selected(bk_op_name(c->kind), op_filter, op_skip)) continue;
        if (desc_filter && !desc_matches(c->desc, desc_filter)) continue;
        case_data cd;
        if (!prepare_case(c, &cd, 0x9e3779b97f4a7c15ull ^ (uint64_t)(ci + 1))) {
            vki_test_failures++;
            free_case(&cd);
            continue;
        }
        for (int b = 0; b < n_be; b++) {
            double nmse = 0.0;
            result r = run_on_backend(c, &cd, &bes[b], &nmse);
            if (r == RES_PASS) {
                pass[b]++;
                printf("  %s [%s]: OK (nmse %.2g)\n", c->desc, bes[b].name, nmse);
            } else if (r == RES_UNSUPPORTED) {
                unsup[b]++;
                printf("  %s: not supported [%s]\n", c->desc, bes[b].name);
            } else {
                fail[b]++;
                vki_test_failures++;
            }
        }
        free_case(&cd);
    }
    for (int b = 0; b < n_be; b++) {
        printf("%s (%s): %d passed, %d failed, %d not supported\n", bes[b].name, bk_name(bes[b].be), pass[b],
               fail[b], unsup[b]);
        if (pass[b] == 0 && fail[b] == 0) printf("  (nothing ran on %s)\n", bes[b].name);
        if (bes[b].prepare && !op_filter && !desc_filter)
            CHECKF(bes[b].n_repacked > 0, "%s: no weight was repacked", bes[b].name);
        if (bes[b].prepare) printf("  %s: %d weights repacked\n", bes[b].name, bes[b].n_repacked);
#ifdef VKI_HAVE_VULKAN
        /* Every op ran with the validation layer on: it must have said nothing. */
        if (bes[b].be->kind == VKI_BACKEND_VULKAN) {
            if (!bk_vk_validation_active(bes[b].be))
                printf("  note: validation layer not installed; messages not checked\n");
            CHECKF(bk_vk_validation_count(bes[b].be) == 0, "vulkan: %llu validation messages",
                   (unsigned long long)bk_vk_validation_count(bes[b].be));
        }
#endif
        bk_destroy(bes[b].be);
    }
    return test_finish("test_ops");
}
