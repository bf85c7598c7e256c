/*
 * test_ops_cases.c: the case tables of test_ops.c: every op over the shapes
 * and types each backend must handle (awkward sizes, strided views, every
 * weight type), with the tolerance of each (see "Tolerances").
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "ops_cases.h"
#include "test_util.h"
#include "util.h"

test_case g_cases[MAX_CASES];
int       g_n_cases;

/* A tensor of type t, shape ne, rows padded by pad1 bytes and dim-2 slices
 * by pad2 more bytes (views into something larger: strided rows, KV caches). */
tt tt_make(vki_type t, int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3, uint64_t pad1, uint64_t pad2)
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
 *   Q4_0 per 32; Q4_K, Q6_K per 256 on every backend; on the CPU every
 *   quantized type, which test_ops applies per backend): each activation
 *   gets an error of up to
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
void ops_cases_perf(void)
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
        /* 4-D x with ne2 = 1: its dim-3 slices are padded apart, so the
         * rows are not evenly spaced although nb3 = nb2 * ne2 */
        c = add_case(BK_OP_MATMUL, matmul_nmse(t), "w=%s,k=%lld,m=37,n=6x1x3,views", tr->name, (long long)k);
        set_src(c, 0, tt_make(t, k, 37, 1, 1, 0, 0));
        set_src(c, 1, tt_make(VKI_TYPE_F32, k, 6, 1, 3, 16, 32));
        c->dst = tt_make(VKI_TYPE_F32, 37, 6, 1, 3, 12, 32);
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
     * (15, 16, 17, 48), one block (k = 32), k past 4096, 9..15 rows (the
     * R16 mat-vec in two column batches), and 131 rows: a quantized R16
     * weight takes the mat-vecs up to 31 rows (VKI_MMP_MIN_N_R16) and the
     * integer packed path, which packs from its groups (mq_r16.h), from 32. */
    static const vki_type r16_types[] = {VKI_TYPE_Q8_0, VKI_TYPE_Q4_0, VKI_TYPE_Q4_K, VKI_TYPE_Q5_K, VKI_TYPE_Q6_K,
                                         VKI_TYPE_F32,  VKI_TYPE_F16};
    for (size_t ti = 0; ti < VKI_COUNT(r16_types); ti++) {
        vki_type t = r16_types[ti];
        int64_t bs = vki_type_get(t)->block_size;
        /* F32 / F16 (bs 1): odd k, and 16+ rows, where prompts read the groups as panels */
        int64_t shapes[][3] = {{bs == 1 ? 7 : bs, 15, 1}, {2 * bs, 16, 2}, {4096 + bs, 17, 1}, {3 * bs, 48, 5},
                               {bs == 1 ? 101 : 5 * bs, 33, 12}, {bs == 1 ? 99 : 3 * bs, 40, 23},
                               {bs == 1 ? 67 : 2 * bs, 35, 131}};
        for (size_t sh = 0; sh < VKI_COUNT(shapes); sh++) {
            int64_t k = shapes[sh][0], m = shapes[sh][1], n = shapes[sh][2];
            test_case *c = add_case(BK_OP_MATMUL, matmul_nmse(t), "w=%s,k=%lld,m=%lld,n=%lld,r16", vki_type_name(t),
                                    (long long)k, (long long)m, (long long)n);
            set_src(c, 0, tt_make(t, k, m, 1, 1, 0, 0));
            set_src(c, 1, tt_make(VKI_TYPE_F32, k, n, 1, 1, 0, 0));
            c->dst = tt_make(VKI_TYPE_F32, m, n, 1, 1, 0, 0);
        }
    }
    /* MATMUL with a fused GELU (ip[0]; BERT's FFN): every CPU path (the
     * mat-vec, the dot tiles, the packed f32 and integer mat-mats, which
     * apply it per tile, partial tiles included) and the GPU's, with a bias
     * and a strided output, both GELU forms. */
    static const vki_type act_types[] = {VKI_TYPE_F32, VKI_TYPE_F16, VKI_TYPE_Q8_0, VKI_TYPE_Q4_0, VKI_TYPE_Q4_K};
    for (size_t ti = 0; ti < VKI_COUNT(act_types); ti++) {
        vki_type t = act_types[ti];
        const vki_type_traits *tr = vki_type_get(t);
        int64_t k = tr->block_size == 256 ? 512 : 96;
        int64_t shapes[][2] = {{37, 1}, {37, 5}, {130, 75}, {21, 18}, {67, 131}};
        for (size_t sh = 0; sh < VKI_COUNT(shapes); sh++) {
            int64_t m = shapes[sh][0], n = shapes[sh][1];
            int act = (sh + ti) % 2 ? BK_ACT_GELU_TANH : BK_ACT_GELU;
            const char *an = act == BK_ACT_GELU ? "gelu" : "gelu_tanh";
            test_case *c = add_case(BK_OP_MATMUL, matmul_nmse(t), "w=%s,k=%lld,m=%lld,n=%lld,bias,%s", tr->name,
                                    (long long)k, (long long)m, (long long)n, an);
            set_src(c, 0, tt_make(t, k, m, 1, 1, 0, 0));
            set_src(c, 1, tt_make(VKI_TYPE_F32, k, n, 1, 1, 0, 0));
            set_src(c, 2, tt_vec(VKI_TYPE_F32, m));
            c->dst = tt_make(VKI_TYPE_F32, m, n, 1, 1, sh == 3 ? 20 : 0, 0);
            c->ip[0] = act;
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
    /* div: per-pair frequency divisors (src2); mscale 0 means 1; positions
     * below pos_max (0: 4096). A single pair has theta = pos exactly, so a
     * long run of positions checks the kernel's sin and cos alone (an
     * H200's own were 1.3e-4 off at 4096); with more pairs theta is rounded
     * to float, which the double reference is not. */
    struct { int64_t hd, nh, nt; int n_rot, mode; float base, fscale; bool inplace, div; float mscale; int pos_max; } rs[] = {
        {64, 4, 7, 64, BK_ROPE_NORMAL, 10000.0f, 1.0f, false, false, 0.0f, 0},
        {64, 4, 7, 64, BK_ROPE_NEOX, 10000.0f, 1.0f, true, false, 0.0f, 0},
        {128, 3, 5, 64, BK_ROPE_NEOX, 1000000.0f, 0.25f, false, false, 0.0f, 0},
        {32, 8, 1, 16, BK_ROPE_NORMAL, 10000.0f, 0.5f, true, false, 0.0f, 0},
        {2, 1, 1, 2, BK_ROPE_NORMAL, 10000.0f, 1.0f, false, false, 0.0f, 0},
        {128, 4, 7, 128, BK_ROPE_NEOX, 500000.0f, 1.0f, false, true, 0.0f, 0},  /* llama 3 rope_freqs */
        {96, 3, 5, 96, BK_ROPE_NEOX, 10000.0f, 1.0f, true, true, 1.19f, 0},     /* LongRoPE: factors, attn_factor */
        {64, 2, 3, 32, BK_ROPE_NORMAL, 10000.0f, 0.5f, false, true, 0.7f, 0},   /* partial rotation */
        {64, 4, 1, 64, BK_ROPE_NEOX, 10000.0f, 1.0f, false, false, 1.25f, 0},   /* mscale alone */
        {2, 1, 1, 2, BK_ROPE_NORMAL, 10000.0f, 1.0f, false, true, 2.0f, 0},
        {2, 3, 64, 2, BK_ROPE_NORMAL, 10000.0f, 1.0f, false, false, 0.0f, 1 << 20}, /* sin/cos of long positions */
    };
    for (size_t i = 0; i < VKI_COUNT(rs); i++) {
        char extra[48] = "";
        if (rs[i].div || rs[i].mscale != 0.0f)
            snprintf(extra, sizeof extra, "%s,mscale=%g", rs[i].div ? ",div" : "", rs[i].mscale);
        if (rs[i].pos_max) snprintf(extra + strlen(extra), sizeof extra - strlen(extra), ",pos<%d", rs[i].pos_max);
        test_case *c = add_case(BK_OP_ROPE, NMSE_FLOAT, "hd=%lld,nh=%lld,nt=%lld,n_rot=%d,%s,base=%g,scale=%g%s%s",
                                (long long)rs[i].hd, (long long)rs[i].nh, (long long)rs[i].nt, rs[i].n_rot,
                                rs[i].mode == BK_ROPE_NEOX ? "neox" : "normal", rs[i].base, rs[i].fscale,
                                rs[i].inplace ? ",inplace" : "", extra);
        set_src(c, 0, tt_make(VKI_TYPE_F32, rs[i].hd, rs[i].nh, rs[i].nt, 1, rs[i].inplace ? 8 : 0, 0));
        set_src(c, 1, tt_vec(VKI_TYPE_I32, rs[i].nt));
        c->src[1].fill = FILL_POS;
        c->src[1].fill_max = rs[i].pos_max ? rs[i].pos_max : 4096;
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
        /* deep decode with few KV heads: the CPU splits the keys into
         * ranges and merges them (a range past the window is empty) */
        {64, 8, 1, 1, 700, 768, 1, 699, VKI_TYPE_F16, 0, 0},
        {64, 4, 2, 1, 1100, 1152, 1, 1099, VKI_TYPE_F32, 600, 0},
        {64, 4, 2, 1, 1100, 1152, 1, 1099, VKI_TYPE_F16, 300, 0},
        {64, 4, 1, 1, 600, 640, 1, 599, VKI_TYPE_F16, 0, 30.0f},
        {32, 32, 1, 2, 40, 48, 1, 38, VKI_TYPE_F16, 0, 0}, /* 32 heads on one KV head */
        /* prompts that fill the CPU's 16-lane kernel (heads x rows): MHA
         * with a partial last tile, GQA 8:1, several key blocks and a
         * partial one, chunked prefill, non-causal, windowed, split keys */
        {64, 2, 2, 20, 20, 32, 1, 0, VKI_TYPE_F16, 0, 0},
        {64, 16, 2, 5, 150, 160, 1, 145, VKI_TYPE_F16, 0, 0},
        {128, 8, 2, 9, 9, 16, 1, 0, VKI_TYPE_F32, 0, 0},
        {32, 4, 1, 40, 40, 48, 0, 0, VKI_TYPE_F32, 0, 0},
        {64, 4, 2, 70, 200, 256, 1, 130, VKI_TYPE_F16, 50, 0},
        {64, 16, 1, 1, 600, 640, 1, 599, VKI_TYPE_F16, 0, 0},
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

void ops_cases_all(void)
{
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
