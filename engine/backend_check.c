/*
 * backend_check.c: VKI_CHECK_RESULTS=1 — a backend that wraps another and
 * checks every op it runs against the scalar CPU reference (engine/cpu/ref.c)
 * on the same inputs, read back from the device. It is how a kernel bug on
 * a new GPU is found inside a real model instead of guessed at from wrong
 * tokens: the first op past its tolerance is named with its tensor and
 * shape. Each op becomes its own pass (flush, read inputs, run, read the
 * output), so this is for debugging, never for speed.
 *
 * Tolerances are the op suite's (tests/engine/test_ops.c): NMSE 1e-5 for
 * float math, 2e-4 where the backend may quantize activations to 8 bits
 * (quantized MATMUL weights on the CPU backend).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/cpu/cpu.h"
#include "engine/cpu/ref.h"
#include "error.h"
#include "util.h"

typedef struct chk_stats { uint64_t n, n_bad; double worst; char worst_what[96]; } chk_stats;

typedef struct chk_ctx {
    bk_backend *inner;
    char        name[320];
    uint64_t    n_ops;
    chk_stats   by_kind[BK_OP_COUNT];
} chk_ctx;

static chk_ctx *ctx_of(bk_backend *be) { return be->ctx; }

/* A host copy of the bytes a tensor spans and a view of it. */
typedef struct host_t { uint8_t *data; cpu_buffer cb; bk_tensor view; } host_t;

static vki_status read_tensor(bk_backend *inner, const bk_tensor *t, host_t *h)
{
    uint64_t n = bk_span(t);
    h->data = malloc(n ? n : 1);
    if (!h->data) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "check: out of memory for %llu bytes", (unsigned long long)n);
    bk_tensor raw = {.type = VKI_TYPE_I8, .ne = {(int64_t)n, 1, 1, 1}, .nb = {1, n, n, n}, .buf = t->buf, .offs = t->offs};
    VKI_TRY(inner->iface->tensor_get(inner, &raw, h->data, 0, n));
    h->view = *t;
    h->view.buf = cpu_buffer_wrap(&h->cb, h->data, n);
    h->view.offs = 0;
    return VKI_OK;
}

static float elem(const bk_tensor *t, int64_t i0, int64_t i1, int64_t i2, int64_t i3)
{
    const uint8_t *p = (const uint8_t *)cpu_tensor_data(t) + (uint64_t)i0 * t->nb[0] + (uint64_t)i1 * t->nb[1] +
                       (uint64_t)i2 * t->nb[2] + (uint64_t)i3 * t->nb[3];
    if (t->type == VKI_TYPE_F16) return vki_fp16_to_fp32(*(const uint16_t *)p);
    float f;
    memcpy(&f, p, 4);
    return f;
}

static double tolerance(const bk_op *op)
{
    if (op->kind == BK_OP_MATMUL) {
        vki_type t = op->src[0]->type;
        if (t != VKI_TYPE_F32 && t != VKI_TYPE_F16 && t != VKI_TYPE_BF16) return 2e-4;
    }
    return 1e-5;
}

static bool same_tensor(const bk_tensor *a, const bk_tensor *b) { return a->buf == b->buf && a->offs == b->offs; }

/* Runs op on the inner backend and on the reference, and compares. */
static vki_status check_op(chk_ctx *c, const bk_op *op)
{
    bk_backend *in = c->inner;
    host_t src[3] = {0}, ref = {0}, got = {0};
    vki_status st = VKI_OK;
    int n_src = 0;
    for (int i = 0; i < 3; i++)
        if (op->src[i] && (st = read_tensor(in, op->src[i], &src[i])) != VKI_OK) goto done;
        else if (op->src[i]) n_src = i + 1;
    if ((st = read_tensor(in, op->dst, &ref)) != VKI_OK) goto done; /* unwritten parts stay as they were */
    /* The reference runs on the host copies; an in-place op shares one. */
    bk_op rop = *op;
    rop.dst = &ref.view;
    for (int i = 0; i < n_src; i++) {
        if (!op->src[i]) continue;
        rop.src[i] = same_tensor(op->src[i], op->dst) ? &ref.view : &src[i].view;
    }
    if ((st = bk_begin(in)) != VKI_OK) goto done;
    st = bk_compute(in, op);
    vki_status st2 = bk_end(in);
    if (st == VKI_OK) st = st2;
    if (st != VKI_OK) goto done;
    if ((st = read_tensor(in, op->dst, &got)) != VKI_OK) goto done;
    if ((st = cpu_ref_compute(&rop)) != VKI_OK) goto done;

    double err = 0, sum = 0;
    const bk_tensor *d = op->dst;
    bool finite = true;
    for (int64_t i3 = 0; i3 < d->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < d->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < d->ne[1]; i1++)
                for (int64_t i0 = 0; i0 < d->ne[0]; i0++) {
                    double g = elem(&got.view, i0, i1, i2, i3), r = elem(&ref.view, i0, i1, i2, i3);
                    if (!isfinite(g) && isfinite(r)) finite = false;
                    err += (g - r) * (g - r);
                    sum += r * r;
                }
    double nmse = finite ? (sum > 0 ? err / sum : err) : INFINITY;
    chk_stats *s = &c->by_kind[op->kind];
    char what[96];
    /* Weights name a MATMUL or GET_ROWS; activations are mostly unnamed. */
    const char *nm = (op->kind == BK_OP_MATMUL || op->kind == BK_OP_GET_ROWS) && op->src[0]->name ? op->src[0]->name
                     : d->name ? d->name : "-";
    snprintf(what, sizeof(what), "#%llu '%s' [%lld %lld %lld %lld]", (unsigned long long)c->n_ops, nm, (long long)d->ne[0],
             (long long)d->ne[1], (long long)d->ne[2], (long long)d->ne[3]);
    s->n++;
    if (!(nmse <= s->worst)) {
        s->worst = nmse;
        snprintf(s->worst_what, sizeof(s->worst_what), "%s", what);
    }
    if (!(nmse <= tolerance(op))) {
        s->n_bad++;
        fprintf(stderr, "vkinfer: VKI_CHECK_RESULTS: %s %s on %s: nmse %.3g > %.3g against the reference\n",
                bk_op_name(op->kind), what, c->name, nmse, tolerance(op));
    }
done:
    for (int i = 0; i < 3; i++) free(src[i].data);
    free(ref.data);
    free(got.data);
    return st;
}

/* ===== The wrapping interface =========================================== */

static vki_status chk_compute(bk_backend *be, const bk_op *op);

uint64_t bk_check_bad_count(bk_backend *be)
{
    if (!be || be->iface->compute != chk_compute) return 0;
    uint64_t bad = 0;
    for (int k = 0; k < BK_OP_COUNT; k++) bad += ctx_of(be)->by_kind[k].n_bad;
    return bad;
}

bk_backend *bk_check_inner(bk_backend *be)
{
    return be && be->iface->compute == chk_compute ? ctx_of(be)->inner : be;
}

uint64_t bk_check_op_count(bk_backend *be)
{
    return be && be->iface->compute == chk_compute ? ctx_of(be)->n_ops : 0;
}

static const char *chk_name(bk_backend *be) { return ctx_of(be)->name; }

static void chk_destroy(bk_backend *be)
{
    if (!be) return;
    chk_ctx *c = ctx_of(be);
    uint64_t bad = 0;
    for (int k = 0; k < BK_OP_COUNT; k++) bad += c->by_kind[k].n_bad;
    fprintf(stderr, "vkinfer: VKI_CHECK_RESULTS on %s: %llu ops checked, %llu past tolerance\n", c->name,
            (unsigned long long)c->n_ops, (unsigned long long)bad);
    for (int k = 0; k < BK_OP_COUNT; k++) {
        const chk_stats *s = &c->by_kind[k];
        if (s->n)
            fprintf(stderr, "  %-10s %8llu checked, %llu bad, worst nmse %.3g at %s\n", bk_op_name((bk_op_kind)k),
                    (unsigned long long)s->n, (unsigned long long)s->n_bad, s->worst, s->worst_what);
    }
    bk_destroy(c->inner);
    free(c);
    free(be);
}

static vki_status chk_buffer_create(bk_backend *be, uint64_t size, bk_buffer_usage u, bk_buffer **out)
{
    bk_backend *in = ctx_of(be)->inner;
    return in->iface->buffer_create(in, size, u, out);
}
static void chk_buffer_destroy(bk_backend *be, bk_buffer *b)
{
    bk_backend *in = ctx_of(be)->inner;
    in->iface->buffer_destroy(in, b);
}
static vki_status chk_buffer_from_host(bk_backend *be, void *ptr, uint64_t size, bk_buffer **out)
{
    bk_backend *in = ctx_of(be)->inner;
    return in->iface->buffer_from_host(in, ptr, size, out);
}
static void *chk_buffer_host_ptr(bk_backend *be, bk_buffer *b)
{
    bk_backend *in = ctx_of(be)->inner;
    return in->iface->buffer_host_ptr(in, b);
}
static vki_status chk_tensor_set(bk_backend *be, const bk_tensor *t, const void *src, uint64_t o, uint64_t n)
{
    bk_backend *in = ctx_of(be)->inner;
    return in->iface->tensor_set(in, t, src, o, n);
}
static vki_status chk_tensor_get(bk_backend *be, const bk_tensor *t, void *dst, uint64_t o, uint64_t n)
{
    bk_backend *in = ctx_of(be)->inner;
    return in->iface->tensor_get(in, t, dst, o, n);
}
static bool chk_supports_op(bk_backend *be, const bk_op *op)
{
    bk_backend *in = ctx_of(be)->inner;
    return in->iface->supports_op(in, op);
}
/* Each op runs in a pass of its own (check_op), so begin and end of the
 * caller's pass have nothing to record. */
static vki_status chk_begin(bk_backend *be) { (void)be; return VKI_OK; }
static vki_status chk_end(bk_backend *be) { (void)be; return VKI_OK; }
static vki_status chk_compute(bk_backend *be, const bk_op *op)
{
    chk_ctx *c = ctx_of(be);
    c->n_ops++;
    return check_op(c, op);
}
static uint64_t chk_memory_used(bk_backend *be)
{
    bk_backend *in = ctx_of(be)->inner;
    return in->iface->memory_used(in);
}

#define CHK_IFACE_COMMON                                                                                   \
    .version = BK_IFACE_VERSION, .name = chk_name, .destroy = chk_destroy, .buffer_create = chk_buffer_create,   \
    .buffer_destroy = chk_buffer_destroy, .tensor_set = chk_tensor_set, .tensor_get = chk_tensor_get,          \
    .supports_op = chk_supports_op, .begin = chk_begin, .compute = chk_compute, .end = chk_end,                \
    .memory_used = chk_memory_used

/* Host-memory entries are optional: the wrapper offers them only when the
 * inner backend does (the CPU backend; not Vulkan). */
static const bk_iface chk_iface_host = {CHK_IFACE_COMMON, .buffer_from_host = chk_buffer_from_host,
                                        .buffer_host_ptr = chk_buffer_host_ptr};
static const bk_iface chk_iface_dev = {CHK_IFACE_COMMON};

vki_status bk_check_create(bk_backend *inner, bk_backend **out)
{
    *out = NULL;
    bk_backend *be = calloc(1, sizeof(*be));
    chk_ctx *c = calloc(1, sizeof(*c));
    if (!be || !c) {
        free(be);
        free(c);
        bk_destroy(inner);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "check: out of memory");
    }
    c->inner = inner;
    for (int k = 0; k < BK_OP_COUNT; k++) c->by_kind[k].worst = -1.0;
    snprintf(c->name, sizeof(c->name), "%s", bk_name(inner));
    be->ctx = c;
    be->kind = inner->kind;
    VKI_ASSERT(!inner->iface->buffer_from_host == !inner->iface->buffer_host_ptr);
    be->iface = inner->iface->buffer_from_host ? &chk_iface_host : &chk_iface_dev;
    *out = be;
    return VKI_OK;
}
