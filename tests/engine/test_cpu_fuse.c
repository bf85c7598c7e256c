/*
 * test_cpu_fuse.c: mat-vec MATMULs on one input, held back within a pass
 * and run as one job (backend_cpu.c's mm_defer, ops_matmul.c's
 * cpu_op_matmul_fused). Every case runs its ops in one pass and again each
 * in a pass of its own, and the two must agree bit for bit (a row's dot
 * does not depend on which job computes it); the one-op passes are what
 * test_ops checks against the scalar reference. Cases: Q/K/V-like groups
 * with biases and row counts that are not multiples of 16, mixed types on
 * one activation format, 1..31 input rows, and the ops that must not join:
 * another activation format, a chained input, overlapping outputs, a
 * fifth op.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/cpu/cpu.h"
#include "error.h"
#include "test_util.h"

#define MAX_W 6
#define MAX_OPS 6
#define REGION 16384 /* floats of the activation buffer per region */

typedef struct mm_spec {
    int  w;      /* weight index                                         */
    int  x_reg;  /* region holding the input rows (k floats each)        */
    int  d_reg;  /* region the output rows go to (m floats each), and    */
    int  d_off;  /* the float offset in it                               */
    bool bias;
} mm_spec;

typedef struct fuse_case {
    const char *name;
    int64_t     k;
    int64_t     n;                 /* input rows */
    vki_type    wt[MAX_W];
    int64_t     wm[MAX_W];         /* rows of each weight (0 ends the list) */
    mm_spec     ops[MAX_OPS];
    int         n_ops;
    int         want_fused;        /* ops run in a shared job, when R16 */
} fuse_case;

typedef struct rig {
    bk_backend *be;
    bk_buffer  *wb[MAX_W], *act, *bias;
    bk_tensor   w[MAX_W];
    int         n_w;
    bool        r16;               /* every weight was repacked */
} rig;

static void rig_free(rig *r)
{
    for (int i = 0; i < r->n_w; i++) r->be->iface->buffer_destroy(r->be, r->wb[i]);
    if (r->act) r->be->iface->buffer_destroy(r->be, r->act);
    if (r->bias) r->be->iface->buffer_destroy(r->be, r->bias);
}

static bool rig_init(rig *r, bk_backend *be, const fuse_case *c, uint64_t *seed)
{
    memset(r, 0, sizeof *r);
    r->be = be;
    r->r16 = true;
    float *row = malloc((size_t)c->k * sizeof(float));
    uint8_t *q = malloc((size_t)vki_row_bytes(VKI_TYPE_F32, c->k));
    VKI_ASSERT(row && q);
    for (int i = 0; i < MAX_W && c->wm[i]; i++, r->n_w++) {
        const uint64_t rb = vki_row_bytes(c->wt[i], c->k);
        CHECK(be->iface->buffer_create(be, rb * (uint64_t)c->wm[i], BK_BUFFER_WEIGHTS, &r->wb[i]) == VKI_OK);
        r->w[i] = bk_tensor_make(c->wt[i], 2, (int64_t[]){c->k, c->wm[i]}, r->wb[i], 0);
        for (int64_t m = 0; m < c->wm[i]; m++) {
            for (int64_t j = 0; j < c->k; j++) row[j] = test_rand_f32(seed, -1.0f, 1.0f);
            CHECK(vki_quantize_row(c->wt[i], row, q, c->k));
            CHECK(be->iface->tensor_set(be, &r->w[i], q, (uint64_t)m * rb, rb) == VKI_OK);
        }
        bool released;
        CHECK(be->iface->weight_prepare(be, &r->w[i], BK_WEIGHT_MATMUL, &released) == VKI_OK);
        r->r16 = r->r16 && ((const cpu_buffer *)r->wb[i])->layout == CPU_LAYOUT_R16;
    }
    CHECK(be->iface->buffer_create(be, (uint64_t)4 * REGION * 4, BK_BUFFER_COMPUTE, &r->act) == VKI_OK);
    CHECK(be->iface->buffer_create(be, (uint64_t)REGION * 4, BK_BUFFER_COMPUTE, &r->bias) == VKI_OK);
    float *a = malloc((size_t)4 * REGION * 4);
    VKI_ASSERT(a);
    for (int i = 0; i < 4 * REGION; i++) a[i] = test_rand_f32(seed, -2.0f, 2.0f);
    bk_tensor whole = bk_tensor_make(VKI_TYPE_F32, 1, (int64_t[]){4 * REGION}, r->act, 0);
    CHECK(be->iface->tensor_set(be, &whole, a, 0, (uint64_t)4 * REGION * 4) == VKI_OK);
    bk_tensor bw = bk_tensor_make(VKI_TYPE_F32, 1, (int64_t[]){REGION}, r->bias, 0);
    CHECK(be->iface->tensor_set(be, &bw, a, 0, (uint64_t)REGION * 4) == VKI_OK);
    free(a);
    free(row);
    free(q);
    return r->n_w > 0;
}

/* Runs the case's ops (in one pass, or each in its own) from the same
 * starting activations; out gets the whole activation buffer after. */
static void run(rig *r, const fuse_case *c, bool one_pass, const float *start, float *out)
{
    bk_backend *be = r->be;
    bk_tensor whole = bk_tensor_make(VKI_TYPE_F32, 1, (int64_t[]){4 * REGION}, r->act, 0);
    CHECK(be->iface->tensor_set(be, &whole, start, 0, (uint64_t)4 * REGION * 4) == VKI_OK);
    if (one_pass) CHECK(bk_begin(be) == VKI_OK);
    for (int i = 0; i < c->n_ops; i++) {
        const mm_spec *s = &c->ops[i];
        const bk_tensor *w = &r->w[s->w];
        const int64_t m = w->ne[1];
        bk_tensor x = bk_tensor_make(VKI_TYPE_F32, 2, (int64_t[]){c->k, c->n}, r->act, (uint64_t)s->x_reg * REGION * 4);
        bk_tensor d = bk_tensor_make(VKI_TYPE_F32, 2, (int64_t[]){m, c->n}, r->act,
                                     ((uint64_t)s->d_reg * REGION + (uint64_t)s->d_off) * 4);
        bk_tensor b = bk_tensor_make(VKI_TYPE_F32, 1, (int64_t[]){m}, r->bias, (uint64_t)(i * 256) * 4);
        if (!one_pass) CHECK(bk_begin(be) == VKI_OK);
        CHECKF(bk_matmul(be, &d, w, &x, s->bias ? &b : NULL) == VKI_OK, "%s op %d: %s", c->name, i, vki_last_error());
        if (!one_pass) CHECK(bk_end(be) == VKI_OK);
    }
    if (one_pass) CHECK(bk_end(be) == VKI_OK);
    CHECK(be->iface->tensor_get(be, &whole, out, 0, (uint64_t)4 * REGION * 4) == VKI_OK);
}

static void check_case(bk_backend *be, const fuse_case *c, uint64_t *seed)
{
    rig r;
    if (!rig_init(&r, be, c, seed)) return;
    float *start = malloc((size_t)4 * REGION * 4), *fused = malloc((size_t)4 * REGION * 4);
    float *alone = malloc((size_t)4 * REGION * 4);
    VKI_ASSERT(start && fused && alone);
    bk_tensor whole = bk_tensor_make(VKI_TYPE_F32, 1, (int64_t[]){4 * REGION}, r.act, 0);
    CHECK(be->iface->tensor_get(be, &whole, start, 0, (uint64_t)4 * REGION * 4) == VKI_OK);
    cpu_ctx *ctx = be->ctx;
    const uint64_t f0 = ctx->n_fused;
    run(&r, c, true, start, fused);
    const uint64_t f1 = ctx->n_fused;
    run(&r, c, false, start, alone);
    CHECKF(ctx->n_fused == f1, "%s: ops in passes of their own were fused", c->name);
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < 4 * REGION; i++)
        if (memcmp(&fused[i], &alone[i], sizeof(float))) {
            if (first < 0) first = i;
            bad++;
        }
    CHECKF(bad == 0, "%s: %lld floats differ between one pass and one pass per op (first at %lld: %g vs %g)",
           c->name, (long long)bad, (long long)first, first >= 0 ? fused[first] : 0.0, first >= 0 ? alone[first] : 0.0);
    /* Every op wrote something: the outputs are not the starting values. */
    for (int i = 0; i < c->n_ops; i++) {
        const int64_t at = (int64_t)c->ops[i].d_reg * REGION + c->ops[i].d_off;
        CHECKF(memcmp(&fused[at], &start[at], sizeof(float)), "%s op %d: output untouched", c->name, i);
    }
    if (r.r16)
        CHECKF(f1 - f0 == (uint64_t)c->want_fused, "%s: %llu ops ran fused, expected %d", c->name,
               (unsigned long long)(f1 - f0), c->want_fused);
    else
        printf("  %s: weights not repacked on this ISA (%s): nothing to fuse, results checked\n", c->name,
               bk_name(be));
    free(start);
    free(fused);
    free(alone);
    rig_free(&r);
}

int main(void)
{
    const vki_type Q40 = VKI_TYPE_Q4_0, Q80 = VKI_TYPE_Q8_0, Q4K = VKI_TYPE_Q4_K, Q6K = VKI_TYPE_Q6_K;
    const fuse_case cases[] = {
        {"qkv q4_0, biases, 40-row k/v", 256, 1, {Q40, Q40, Q40}, {80, 40, 40},
         {{0, 0, 1, 0, true}, {1, 0, 1, 1024, true}, {2, 0, 1, 2048, true}}, 3, 3},
        {"q4_K_M-like q4_K/q4_K/q6_K, 3 rows", 512, 3, {Q4K, Q4K, Q6K}, {48, 33, 33},
         {{0, 0, 1, 0, false}, {1, 0, 2, 0, true}, {2, 0, 3, 0, false}}, 3, 3},
        {"gate/up q8_0, 17 rows", 256, 17, {Q80, Q80}, {130, 130}, {{0, 0, 1, 0, false}, {1, 0, 2, 0, false}}, 2, 2},
        {"31 rows q4_0", 256, 31, {Q40, Q40}, {64, 16}, {{0, 0, 1, 0, true}, {1, 0, 2, 0, false}}, 2, 2},
        {"q8_0 and q4_K: two activation formats", 256, 1, {Q80, Q4K}, {32, 32},
         {{0, 0, 1, 0, false}, {1, 0, 2, 0, false}}, 2, 0},
        {"chained: the second reads the first's output", 256, 2, {Q40, Q40}, {256, 64},
         {{0, 0, 1, 0, false}, {1, 1, 2, 0, false}}, 2, 0},
        {"overlapping outputs run in order", 256, 1, {Q40, Q40}, {64, 64},
         {{0, 0, 1, 0, false}, {1, 0, 1, 32, false}}, 2, 0},
        {"the second writes over the shared input", 256, 1, {Q40, Q40}, {64, 64},
         {{0, 0, 1, 0, false}, {1, 0, 0, 64, false}}, 2, 0},
        {"the first writes over the shared input", 256, 1, {Q40, Q40}, {64, 64},
         {{0, 0, 0, 64, false}, {1, 0, 1, 0, false}}, 2, 0},
        {"five on one input: four together, one after", 256, 1, {Q40, Q40, Q40, Q40, Q40}, {16, 32, 48, 64, 80},
         {{0, 0, 1, 0, true}, {1, 0, 1, 1024, false}, {2, 0, 1, 2048, true}, {3, 0, 2, 0, false},
          {4, 0, 3, 0, true}}, 5, 4},
    };
    uint64_t seed = 0x5eed;
    int threads[] = {1, 2};
    for (size_t ti = 0; ti < VKI_COUNT(threads); ti++) {
        bk_backend *be = NULL;
        if (bk_cpu_create(threads[ti], &be) != VKI_OK) {
            CHECKF(false, "bk_cpu_create: %s", vki_last_error());
            continue;
        }
        for (size_t i = 0; i < VKI_COUNT(cases); i++) check_case(be, &cases[i], &seed);
        bk_destroy(be);
    }
    return test_finish("test_cpu_fuse");
}
