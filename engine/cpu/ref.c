/*
 * ref.c: the scalar reference for every backend op (see ref.h), plus the
 * shape/type checks both CPU paths share. Clarity first: each op reads
 * whole rows into double/float scratch, computes, then writes, so in-place
 * use is safe. Must not: use SIMD, threads, or anything from the fast path.
 */
#include "ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "error.h"
#include "util.h"

/* ===== Tensor access ===================================================== */

static int64_t n_rows(const bk_tensor *t) { return t->ne[1] * t->ne[2] * t->ne[3]; }

static uint8_t *row_ptr(const bk_tensor *t, int64_t r)
{
    int64_t i1 = r % t->ne[1], i2 = (r / t->ne[1]) % t->ne[2], i3 = r / (t->ne[1] * t->ne[2]);
    return (uint8_t *)cpu_tensor_data(t) + (uint64_t)i1 * t->nb[1] + (uint64_t)i2 * t->nb[2] +
           (uint64_t)i3 * t->nb[3];
}

bool cpu_ref_row_f32(const bk_tensor *t, int64_t r, float *dst)
{
    const uint8_t *p = row_ptr(t, r);
    int64_t n = t->ne[0];
    switch (t->type) {
    case VKI_TYPE_F32:
        memcpy(dst, p, (size_t)n * sizeof(float));
        return true;
    case VKI_TYPE_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = vki_fp16_to_fp32(((const uint16_t *)p)[i]);
        return true;
    case VKI_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = vki_bf16_to_fp32(((const uint16_t *)p)[i]);
        return true;
    default:
        return vki_dequantize_row(t->type, p, dst, n);
    }
}

static void write_row_f32(const bk_tensor *t, int64_t r, const float *src)
{
    uint8_t *p = row_ptr(t, r);
    if (t->type == VKI_TYPE_F16)
        for (int64_t i = 0; i < t->ne[0]; i++) ((uint16_t *)p)[i] = vki_fp32_to_fp16(src[i]);
    else
        memcpy(p, src, (size_t)t->ne[0] * sizeof(float));
}

/* ===== Checks ============================================================ */

static bool same_shape(const bk_tensor *a, const bk_tensor *b)
{
    return a->ne[0] == b->ne[0] && a->ne[1] == b->ne[1] && a->ne[2] == b->ne[2] && a->ne[3] == b->ne[3];
}

static vki_status check_tensor(const bk_op *op, const bk_tensor *t, const char *role)
{
    const vki_type_traits *tr = vki_type_get(t->type);
    if (!tr || !tr->block_size)
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: %s '%s' has unknown type %d", bk_op_name(op->kind), role,
                        t->name ? t->name : "", (int)t->type);
    for (int i = 0; i < 4; i++)
        if (t->ne[i] < 1)
            return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: %s '%s' ne[%d] = %lld, expected >= 1",
                            bk_op_name(op->kind), role, t->name ? t->name : "", i, (long long)t->ne[i]);
    if (t->ne[0] % tr->block_size || t->nb[0] != tr->type_size)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT,
                        "%s: %s '%s' rows must be whole contiguous %s blocks (ne[0] %lld, nb[0] %llu)",
                        bk_op_name(op->kind), role, t->name ? t->name : "", tr->name, (long long)t->ne[0],
                        (unsigned long long)t->nb[0]);
    if (!t->buf)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: %s '%s' has no buffer", bk_op_name(op->kind), role,
                        t->name ? t->name : "");
    return VKI_OK;
}

#define NEED(cond, ...) do { if (!(cond)) return vki_fail(VKI_ERR_INVALID_ARGUMENT, __VA_ARGS__); } while (0)
#define NEED_TYPE(t, ty, role) NEED((t)->type == (ty), "%s: %s must be %s, found %s", name, role, \
                                    vki_type_name(ty), vki_type_name((t)->type))

vki_status cpu_op_check(const bk_op *op)
{
    if ((unsigned)op->kind >= BK_OP_COUNT) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "op kind %d is unknown", (int)op->kind);
    const char *name = bk_op_name(op->kind);
    const bk_tensor *d = op->dst, *a = op->src[0], *b = op->src[1], *c = op->src[2];
    NEED(d && a, "%s: dst and src0 are required", name);
    VKI_TRY(check_tensor(op, d, "dst"));
    VKI_TRY(check_tensor(op, a, "src0"));
    if (b) VKI_TRY(check_tensor(op, b, "src1"));
    if (c) VKI_TRY(check_tensor(op, c, "src2"));
    if (op->kind == BK_OP_TOP_K) NEED_TYPE(d, VKI_TYPE_I32, "dst");
    else if (op->kind != BK_OP_CPY) NEED_TYPE(d, VKI_TYPE_F32, "dst");

    switch (op->kind) {
    case BK_OP_GET_ROWS:
        NEED(b, "%s: src1 (row ids) is required", name);
        NEED_TYPE(b, VKI_TYPE_I32, "src1");
        NEED(a->ne[2] == 1 && a->ne[3] == 1, "%s: table must be 2-D", name);
        NEED(b->ne[1] * b->ne[2] * b->ne[3] == 1 && bk_is_contiguous(b), "%s: ids must be a contiguous vector", name);
        NEED(d->ne[0] == a->ne[0] && n_rows(d) == b->ne[0], "%s: dst is %lldx%lld, expected %lldx%lld", name,
             (long long)d->ne[0], (long long)n_rows(d), (long long)a->ne[0], (long long)b->ne[0]);
        if (a->type != VKI_TYPE_F32 && a->type != VKI_TYPE_F16 && a->type != VKI_TYPE_BF16 &&
            !vki_type_get(a->type)->supported)
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: table type %s is not supported", name, vki_type_name(a->type));
        return VKI_OK;
    case BK_OP_MATMUL:
        NEED(b, "%s: src1 (activations) is required", name);
        NEED_TYPE(b, VKI_TYPE_F32, "src1");
        NEED(a->ne[2] == 1 && a->ne[3] == 1, "%s: weight must be 2-D", name);
        NEED(b->ne[0] == a->ne[0], "%s: activation width %lld != weight width %lld", name, (long long)b->ne[0],
             (long long)a->ne[0]);
        NEED(d->ne[0] == a->ne[1] && n_rows(d) == n_rows(b), "%s: dst is %lldx%lld, expected %lldx%lld", name,
             (long long)d->ne[0], (long long)n_rows(d), (long long)a->ne[1], (long long)n_rows(b));
        if (c) {
            NEED_TYPE(c, VKI_TYPE_F32, "bias");
            NEED(c->ne[0] == a->ne[1] && n_rows(c) == 1, "%s: bias must be [%lld]", name, (long long)a->ne[1]);
        }
        NEED(op->ip[0] == 0 || op->ip[0] == BK_ACT_GELU || op->ip[0] == BK_ACT_GELU_TANH,
             "%s: fused activation %d is not 0, GELU or GELU_TANH", name, op->ip[0]);
        if (a->type != VKI_TYPE_F32 && a->type != VKI_TYPE_F16 && a->type != VKI_TYPE_BF16 &&
            !vki_type_get(a->type)->supported)
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: weight type %s is not supported", name, vki_type_name(a->type));
        return VKI_OK;
    case BK_OP_ADD:
    case BK_OP_MUL:
        NEED(b, "%s: src1 is required", name);
        NEED_TYPE(a, VKI_TYPE_F32, "src0");
        NEED_TYPE(b, VKI_TYPE_F32, "src1");
        NEED(same_shape(a, d), "%s: src0 and dst shapes differ", name);
        NEED(same_shape(a, b) || (b->ne[0] == a->ne[0] && n_rows(b) == 1),
             "%s: src1 must match src0's shape or be one row of %lld", name, (long long)a->ne[0]);
        return VKI_OK;
    case BK_OP_SWIGLU:
        NEED(b, "%s: src1 is required", name);
        NEED_TYPE(b, VKI_TYPE_F32, "src1");
        NEED(same_shape(a, b), "%s: src0 and src1 shapes differ", name);
        NEED(op->ip[0] == BK_ACT_SILU || op->ip[0] == BK_ACT_GELU || op->ip[0] == BK_ACT_GELU_TANH,
             "%s: activation %d is unknown", name, op->ip[0]);
        /* fallthrough */
    case BK_OP_SOFTCAP:
        NEED(op->kind != BK_OP_SOFTCAP || op->fp[0] > 0.0f, "%s: cap %g must be positive", name, op->fp[0]);
        /* fallthrough */
    case BK_OP_SCALE:
    case BK_OP_SOFTMAX:
    case BK_OP_SILU:
    case BK_OP_GELU:
    case BK_OP_L2_NORM:
        NEED_TYPE(a, VKI_TYPE_F32, "src0");
        NEED(same_shape(a, d), "%s: src0 and dst shapes differ", name);
        return VKI_OK;
    case BK_OP_RMS_NORM:
    case BK_OP_LAYER_NORM:
        NEED_TYPE(a, VKI_TYPE_F32, "src0");
        NEED(same_shape(a, d), "%s: src0 and dst shapes differ", name);
        for (int i = 1; i < 3; i++) {
            const bk_tensor *w = op->src[i];
            if (!w) continue;
            NEED(i == 1 || op->kind == BK_OP_LAYER_NORM, "%s: src2 is not used", name);
            NEED(w->type == VKI_TYPE_F32 && w->ne[0] == a->ne[0] && n_rows(w) == 1,
                 "%s: src%d must be f32 [%lld]", name, i, (long long)a->ne[0]);
        }
        return VKI_OK;
    case BK_OP_ROPE:
        NEED(b, "%s: src1 (positions) is required", name);
        NEED_TYPE(a, VKI_TYPE_F32, "src0");
        NEED_TYPE(b, VKI_TYPE_I32, "src1");
        NEED(same_shape(a, d) && a->ne[3] == 1, "%s: src0 and dst must be the same 3-D shape", name);
        NEED(bk_nelements(b) == a->ne[2] && bk_is_contiguous(b), "%s: %lld positions for %lld tokens", name,
             (long long)bk_nelements(b), (long long)a->ne[2]);
        NEED(op->ip[0] > 0 && op->ip[0] % 2 == 0 && op->ip[0] <= a->ne[0],
             "%s: n_rot %d must be even and in (0, %lld]", name, op->ip[0], (long long)a->ne[0]);
        NEED(op->ip[1] == BK_ROPE_NORMAL || op->ip[1] == BK_ROPE_NEOX, "%s: mode %d is unknown", name, op->ip[1]);
        if (c) {
            NEED_TYPE(c, VKI_TYPE_F32, "src2 (frequency divisors)");
            NEED(bk_nelements(c) == op->ip[0] / 2 && bk_is_contiguous(c), "%s: %lld frequency divisors for n_rot %d",
                 name, (long long)bk_nelements(c), op->ip[0]);
        }
        return VKI_OK;
    case BK_OP_CPY:
        NEED(a->type == VKI_TYPE_F32 || a->type == VKI_TYPE_F16, "%s: src0 must be f32 or f16, found %s", name,
             vki_type_name(a->type));
        NEED(d->type == VKI_TYPE_F32 || d->type == VKI_TYPE_F16, "%s: dst must be f32 or f16, found %s", name,
             vki_type_name(d->type));
        NEED(bk_nelements(a) == bk_nelements(d), "%s: %lld elements into %lld", name, (long long)bk_nelements(a),
             (long long)bk_nelements(d));
        return VKI_OK;
    case BK_OP_ATTN:
        NEED(b && c, "%s: k and v are required", name);
        NEED_TYPE(a, VKI_TYPE_F32, "q");
        NEED((b->type == VKI_TYPE_F32 || b->type == VKI_TYPE_F16) && (c->type == VKI_TYPE_F32 || c->type == VKI_TYPE_F16),
             "%s: k and v must be f32 or f16", name);
        NEED(same_shape(a, d) && a->ne[3] == 1, "%s: q and dst must be the same 3-D shape", name);
        NEED(same_shape(b, c) && b->ne[3] == 1, "%s: k and v shapes differ", name);
        NEED(b->ne[0] == a->ne[0], "%s: head_dim of k %lld != q %lld", name, (long long)b->ne[0], (long long)a->ne[0]);
        NEED(a->ne[1] % b->ne[1] == 0, "%s: n_head %lld is not a multiple of n_kv_head %lld", name,
             (long long)a->ne[1], (long long)b->ne[1]);
        NEED(op->ip[1] >= 0, "%s: q_pos0 %d is negative", name, op->ip[1]);
        NEED(op->ip[2] >= 0, "%s: window %d is negative", name, op->ip[2]);
        NEED(op->fp[1] >= 0.0f, "%s: softcap %g is negative", name, op->fp[1]);
        return VKI_OK;
    case BK_OP_POOL:
        NEED_TYPE(a, VKI_TYPE_F32, "src0");
        NEED(a->ne[2] == 1 && a->ne[3] == 1 && d->ne[0] == a->ne[0] && n_rows(d) == 1,
             "%s: src0 must be [n_tok][d] and dst [1][d]", name);
        NEED(op->ip[0] == BK_POOL_MEAN || op->ip[0] == BK_POOL_CLS || op->ip[0] == BK_POOL_LAST,
             "%s: mode %d is unknown", name, op->ip[0]);
        return VKI_OK;
    case BK_OP_TOP_K:
        NEED_TYPE(a, VKI_TYPE_F32, "src0");
        NEED(n_rows(d) == n_rows(a) && d->ne[0] <= a->ne[0], "%s: dst is %lldx%lld for src0 %lldx%lld", name,
             (long long)d->ne[0], (long long)n_rows(d), (long long)a->ne[0], (long long)n_rows(a));
        return VKI_OK;
    case BK_OP_GATHER_COLS:
        NEED(b, "%s: src1 (column ids) is required", name);
        NEED_TYPE(a, VKI_TYPE_F32, "src0");
        NEED_TYPE(b, VKI_TYPE_I32, "src1");
        NEED(same_shape(b, d) && n_rows(a) == n_rows(d), "%s: dst must be [%lld][k] like src1", name,
             (long long)n_rows(a));
        return VKI_OK;
    case BK_OP_MATMUL_ID:
        NEED(b && c, "%s: activations and expert ids are required", name);
        NEED_TYPE(b, VKI_TYPE_F32, "src1");
        NEED_TYPE(c, VKI_TYPE_I32, "src2");
        NEED(a->ne[3] == 1 && b->ne[3] == 1 && d->ne[3] == 1, "%s: tensors must be at most 3-D", name);
        NEED(b->ne[0] == a->ne[0], "%s: activation width %lld != weight width %lld", name, (long long)b->ne[0],
             (long long)a->ne[0]);
        NEED(c->ne[2] == 1 && c->ne[3] == 1, "%s: ids must be [n_tok][n_used]", name);
        NEED(d->ne[0] == a->ne[1] && d->ne[1] == c->ne[0] && d->ne[2] == c->ne[1],
             "%s: dst is {%lld, %lld, %lld}, expected {%lld, %lld, %lld}", name, (long long)d->ne[0],
             (long long)d->ne[1], (long long)d->ne[2], (long long)a->ne[1], (long long)c->ne[0], (long long)c->ne[1]);
        NEED(b->ne[2] == c->ne[1] && (b->ne[1] == 1 || b->ne[1] == c->ne[0]),
             "%s: activations must be {%lld, 1 or %lld, %lld}", name, (long long)a->ne[0], (long long)c->ne[0],
             (long long)c->ne[1]);
        if (a->type != VKI_TYPE_F32 && a->type != VKI_TYPE_F16 && a->type != VKI_TYPE_BF16 &&
            !vki_type_get(a->type)->supported)
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: weight type %s is not supported", name, vki_type_name(a->type));
        return VKI_OK;
    case BK_OP_MOE_SUM:
        NEED(b, "%s: src1 (weights) is required", name);
        NEED_TYPE(a, VKI_TYPE_F32, "src0");
        NEED_TYPE(b, VKI_TYPE_F32, "src1");
        NEED(a->ne[3] == 1 && d->ne[0] == a->ne[0] && n_rows(d) == a->ne[2], "%s: dst must be {%lld, %lld}", name,
             (long long)a->ne[0], (long long)a->ne[2]);
        NEED(b->ne[0] == a->ne[1] && n_rows(b) == a->ne[2], "%s: weights must be {%lld, %lld}", name,
             (long long)a->ne[1], (long long)a->ne[2]);
        return VKI_OK;
    default:
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: not implemented", name);
    }
}

/* ===== Ops =============================================================== */

static float silu(double x) { return (float)(x / (1.0 + exp(-x))); }
static float gelu(double x) { return (float)(0.5 * x * (1.0 + erf(x / sqrt(2.0)))); }
static float gelu_tanh(double x)
{
    return (float)(0.5 * x * (1.0 + tanh(0.79788456080286535588 * (x + 0.044715 * x * x * x))));
}

static double act(int kind, double x)
{
    return kind == BK_ACT_GELU ? gelu(x) : kind == BK_ACT_GELU_TANH ? gelu_tanh(x) : silu(x);
}

/* dst = f(src0 [, src1]) elementwise, row by row; src1 may be one broadcast row. */
static void ref_unary_binary(const bk_op *op, float *ra, float *rb)
{
    const bk_tensor *d = op->dst, *a = op->src[0], *b = op->src[1];
    int64_t n = a->ne[0];
    for (int64_t r = 0; r < n_rows(a); r++) {
        cpu_ref_row_f32(a, r, ra);
        if (b) cpu_ref_row_f32(b, n_rows(b) == 1 ? 0 : r, rb);
        for (int64_t i = 0; i < n; i++) {
            double x = ra[i];
            switch (op->kind) {
            case BK_OP_ADD:    ra[i] = (float)(x + rb[i]); break;
            case BK_OP_MUL:    ra[i] = (float)(x * rb[i]); break;
            case BK_OP_SCALE:  ra[i] = (float)(x * op->fp[0]); break;
            case BK_OP_SILU:   ra[i] = silu(x); break;
            case BK_OP_GELU:   ra[i] = op->ip[0] == BK_ACT_GELU_TANH ? gelu_tanh(x) : gelu(x); break;
            case BK_OP_SWIGLU: ra[i] = (float)(act(op->ip[0], x) * (double)rb[i]); break;
            case BK_OP_SOFTCAP: ra[i] = (float)(op->fp[0] * tanh(x / op->fp[0])); break;
            default: VKI_ASSERT(!"not elementwise");
            }
        }
        write_row_f32(d, r, ra);
    }
}

static void ref_norm(const bk_op *op, float *row, float *w, float *bias)
{
    const bk_tensor *d = op->dst, *a = op->src[0];
    int64_t n = a->ne[0];
    if (op->src[1]) cpu_ref_row_f32(op->src[1], 0, w);
    if (op->src[2]) cpu_ref_row_f32(op->src[2], 0, bias);
    for (int64_t r = 0; r < n_rows(a); r++) {
        cpu_ref_row_f32(a, r, row);
        double mean = 0, sq = 0;
        for (int64_t i = 0; i < n; i++) mean += row[i];
        mean /= (double)n;
        double inv;
        if (op->kind == BK_OP_RMS_NORM) {
            for (int64_t i = 0; i < n; i++) sq += (double)row[i] * row[i];
            inv = 1.0 / sqrt(sq / (double)n + op->fp[0]);
            mean = 0;
        } else if (op->kind == BK_OP_LAYER_NORM) {
            for (int64_t i = 0; i < n; i++) sq += (row[i] - mean) * (row[i] - mean);
            inv = 1.0 / sqrt(sq / (double)n + op->fp[0]);
        } else { /* L2_NORM */
            for (int64_t i = 0; i < n; i++) sq += (double)row[i] * row[i];
            inv = 1.0 / fmax(sqrt(sq), 1e-12);
            mean = 0;
        }
        for (int64_t i = 0; i < n; i++) {
            double y = (row[i] - mean) * inv;
            if (op->kind != BK_OP_L2_NORM && op->src[1]) y *= w[i];
            if (op->kind == BK_OP_LAYER_NORM && op->src[2]) y += bias[i];
            row[i] = (float)y;
        }
        write_row_f32(d, r, row);
    }
}

static void ref_softmax(const bk_op *op, float *row)
{
    const bk_tensor *a = op->src[0];
    int64_t n = a->ne[0];
    for (int64_t r = 0; r < n_rows(a); r++) {
        cpu_ref_row_f32(a, r, row);
        double mx = -INFINITY, sum = 0;
        for (int64_t i = 0; i < n; i++) mx = fmax(mx, (double)row[i] * op->fp[0]);
        for (int64_t i = 0; i < n; i++) sum += exp((double)row[i] * op->fp[0] - mx);
        for (int64_t i = 0; i < n; i++) row[i] = (float)(exp((double)row[i] * op->fp[0] - mx) / sum);
        write_row_f32(op->dst, r, row);
    }
}

static void ref_rope(const bk_op *op, float *row)
{
    const bk_tensor *a = op->src[0];
    const int32_t *pos = cpu_tensor_data(op->src[1]);
    const float *div = op->src[2] ? cpu_tensor_data(op->src[2]) : NULL;
    double ms = op->fp[2] != 0.0f ? op->fp[2] : 1.0;
    int64_t n_rot = op->ip[0], half = n_rot / 2;
    for (int64_t r = 0; r < n_rows(a); r++) {
        int64_t tok = r / a->ne[1];
        cpu_ref_row_f32(a, r, row);
        for (int64_t i = 0; i < half; i++) {
            double theta = pos[tok] * (double)op->fp[1] * pow((double)op->fp[0], -2.0 * (double)i / (double)n_rot);
            if (div) theta /= div[i];
            int64_t i0 = op->ip[1] == BK_ROPE_NEOX ? i : 2 * i;
            int64_t i1 = op->ip[1] == BK_ROPE_NEOX ? i + half : 2 * i + 1;
            double x0 = row[i0], x1 = row[i1], c = cos(theta) * ms, sn = sin(theta) * ms;
            row[i0] = (float)(x0 * c - x1 * sn);
            row[i1] = (float)(x0 * sn + x1 * c);
        }
        write_row_f32(op->dst, r, row);
    }
}

static void ref_cpy(const bk_op *op)
{
    const bk_tensor *a = op->src[0], *d = op->dst;
    int64_t n = bk_nelements(a);
    for (int64_t e = 0; e < n; e++) {
        /* The same linear index in each tensor's own logical shape. */
        const uint8_t *ps = row_ptr(a, e / a->ne[0]) + (uint64_t)(e % a->ne[0]) * a->nb[0];
        uint8_t *pd = row_ptr(d, e / d->ne[0]) + (uint64_t)(e % d->ne[0]) * d->nb[0];
        float v = a->type == VKI_TYPE_F16 ? vki_fp16_to_fp32(*(const uint16_t *)ps) : *(const float *)ps;
        if (d->type == VKI_TYPE_F16) *(uint16_t *)pd = vki_fp32_to_fp16(v);
        else *(float *)pd = v;
    }
}

static vki_status ref_get_rows(const bk_op *op, float *row)
{
    const bk_tensor *tab = op->src[0];
    const int32_t *ids = cpu_tensor_data(op->src[1]);
    for (int64_t r = 0; r < op->src[1]->ne[0]; r++) {
        if (ids[r] < 0 || ids[r] >= tab->ne[1])
            return vki_fail(VKI_ERR_INVALID_ARGUMENT, "GET_ROWS: id %d at %lld is outside [0, %lld)", ids[r],
                            (long long)r, (long long)tab->ne[1]);
        if (!cpu_ref_row_f32(tab, ids[r], row))
            return vki_fail(VKI_ERR_UNSUPPORTED, "GET_ROWS: cannot dequantize %s", vki_type_name(tab->type));
        write_row_f32(op->dst, r, row);
    }
    return VKI_OK;
}

static vki_status ref_matmul(const bk_op *op)
{
    const bk_tensor *w = op->src[0], *x = op->src[1], *bias = op->src[2];
    int64_t k = w->ne[0], m = w->ne[1], n = n_rows(x);
    vki_status st = VKI_OK;
    float *wr = malloc((size_t)k * sizeof(float)), *xr = malloc((size_t)k * sizeof(float));
    float *out = malloc((size_t)m * sizeof(float)), *b = malloc((size_t)m * sizeof(float));
    if (!wr || !xr || !out || !b) { st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "MATMUL ref: out of memory"); goto fail; }
    if (bias) cpu_ref_row_f32(bias, 0, b);
    for (int64_t j = 0; j < n; j++) {
        cpu_ref_row_f32(x, j, xr);
        for (int64_t i = 0; i < m; i++) {
            if (!cpu_ref_row_f32(w, i, wr)) {
                st = vki_fail(VKI_ERR_UNSUPPORTED, "MATMUL ref: cannot dequantize %s", vki_type_name(w->type));
                goto fail;
            }
            double acc = bias ? b[i] : 0.0;
            for (int64_t e = 0; e < k; e++) acc += (double)wr[e] * xr[e];
            out[i] = op->ip[0] ? (float)act(op->ip[0], acc) : (float)acc;
        }
        write_row_f32(op->dst, j, out);
    }
fail:
    free(wr); free(xr); free(out); free(b);
    return st;
}

static vki_status ref_attn(const bk_op *op)
{
    const bk_tensor *q = op->src[0], *k = op->src[1], *v = op->src[2];
    int64_t hd = q->ne[0], nh = q->ne[1], nq = q->ne[2], nkv = k->ne[2], group = nh / k->ne[1];
    vki_status st = VKI_OK;
    float *qr = malloc((size_t)hd * sizeof(float)), *kr = malloc((size_t)hd * sizeof(float));
    double *s = malloc((size_t)nkv * sizeof(double)), *acc = malloc((size_t)hd * sizeof(double));
    float *out = malloc((size_t)hd * sizeof(float));
    if (!qr || !kr || !s || !acc || !out) { st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "ATTN ref: out of memory"); goto fail; }
    for (int64_t i = 0; i < nq; i++) {
        int64_t n_vis = op->ip[0] ? VKI_MIN(nkv, (int64_t)op->ip[1] + i + 1) : nkv;
        int64_t j0 = op->ip[2] > 0 ? VKI_MAX(0, (int64_t)op->ip[1] + i - op->ip[2] + 1) : 0;
        for (int64_t h = 0; h < nh; h++) {
            int64_t kh = h / group;
            cpu_ref_row_f32(q, i * nh + h, qr);
            double mx = -INFINITY, sum = 0;
            for (int64_t j = j0; j < n_vis; j++) {
                cpu_ref_row_f32(k, j * k->ne[1] + kh, kr);
                double dot = 0;
                for (int64_t e = 0; e < hd; e++) dot += (double)qr[e] * kr[e];
                s[j] = dot * op->fp[0];
                if (op->fp[1] > 0.0f) s[j] = op->fp[1] * tanh(s[j] / op->fp[1]);
                mx = fmax(mx, s[j]);
            }
            for (int64_t e = 0; e < hd; e++) acc[e] = 0;
            for (int64_t j = j0; j < n_vis; j++) {
                double p = exp(s[j] - mx);
                sum += p;
                cpu_ref_row_f32(v, j * v->ne[1] + kh, kr);
                for (int64_t e = 0; e < hd; e++) acc[e] += p * kr[e];
            }
            for (int64_t e = 0; e < hd; e++) out[e] = n_vis > j0 ? (float)(acc[e] / sum) : 0.0f;
            write_row_f32(op->dst, i * nh + h, out);
        }
    }
fail:
    free(qr); free(kr); free(s); free(acc); free(out);
    return st;
}

static void ref_pool(const bk_op *op, float *row, double *acc)
{
    const bk_tensor *a = op->src[0];
    int64_t n = a->ne[0], nt = a->ne[1];
    for (int64_t i = 0; i < n; i++) acc[i] = 0;
    int64_t used = op->ip[0] == BK_POOL_MEAN ? nt : 1, first = op->ip[0] == BK_POOL_LAST ? nt - 1 : 0;
    for (int64_t r = first; r < first + used; r++) {
        cpu_ref_row_f32(a, r, row);
        for (int64_t i = 0; i < n; i++) acc[i] += row[i];
    }
    for (int64_t i = 0; i < n; i++) row[i] = (float)(acc[i] / (double)used);
    write_row_f32(op->dst, 0, row);
}

/* Selection by repeated scans: k is a handful of experts. */
static void ref_top_k(const bk_op *op, float *row)
{
    const bk_tensor *a = op->src[0], *d = op->dst;
    int64_t n = a->ne[0], k = d->ne[0];
    for (int64_t r = 0; r < n_rows(a); r++) {
        cpu_ref_row_f32(a, r, row);
        int32_t *o = (int32_t *)row_ptr(d, r);
        for (int64_t j = 0; j < k; j++) {
            int64_t best = -1;
            for (int64_t i = 0; i < n; i++)
                if (!isnan(row[i]) && (best < 0 || row[i] > row[best])) best = i;
            if (best < 0) best = j; /* an all-NaN row: any ids, still in range */
            o[j] = (int32_t)best;
            row[best] = NAN;
        }
    }
}

static vki_status ref_gather_cols(const bk_op *op, float *row)
{
    const bk_tensor *a = op->src[0], *ids = op->src[1], *d = op->dst;
    int64_t n = a->ne[0], k = d->ne[0];
    double *w = malloc((size_t)k * sizeof *w);
    if (!w) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "GATHER_COLS ref: out of memory");
    for (int64_t r = 0; r < n_rows(a); r++) {
        cpu_ref_row_f32(a, r, row);
        const int32_t *id = (const int32_t *)row_ptr(ids, r);
        double sum = 0;
        for (int64_t j = 0; j < k; j++) {
            if (id[j] < 0 || id[j] >= n) {
                free(w);
                return vki_fail(VKI_ERR_INVALID_ARGUMENT, "GATHER_COLS: id %d in row %lld is outside [0, %lld)",
                                id[j], (long long)r, (long long)n);
            }
            w[j] = row[id[j]];
            sum += w[j];
        }
        float *o = (float *)row_ptr(d, r);
        for (int64_t j = 0; j < k; j++) o[j] = (float)(op->ip[0] ? w[j] / sum : w[j]);
    }
    free(w);
    return VKI_OK;
}

static vki_status ref_matmul_id(const bk_op *op)
{
    const bk_tensor *w = op->src[0], *x = op->src[1], *ids = op->src[2], *d = op->dst;
    int64_t k = w->ne[0], m = w->ne[1], n_used = ids->ne[0], n_tok = ids->ne[1];
    vki_status st = VKI_OK;
    float *wr = malloc((size_t)k * sizeof(float)), *xr = malloc((size_t)k * sizeof(float));
    float *out = malloc((size_t)m * sizeof(float));
    if (!wr || !xr || !out) { st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "MATMUL_ID ref: out of memory"); goto fail; }
    for (int64_t t = 0; t < n_tok; t++) {
        const int32_t *id = (const int32_t *)row_ptr(ids, t);
        for (int64_t s = 0; s < n_used; s++) {
            if (id[s] < 0 || id[s] >= w->ne[2]) {
                st = vki_fail(VKI_ERR_INVALID_ARGUMENT, "MATMUL_ID: expert %d for token %lld is outside [0, %lld)",
                              id[s], (long long)t, (long long)w->ne[2]);
                goto fail;
            }
            cpu_ref_row_f32(x, t * x->ne[1] + (x->ne[1] == 1 ? 0 : s), xr);
            for (int64_t i = 0; i < m; i++) {
                if (!cpu_ref_row_f32(w, (int64_t)id[s] * m + i, wr)) {
                    st = vki_fail(VKI_ERR_UNSUPPORTED, "MATMUL_ID ref: cannot dequantize %s", vki_type_name(w->type));
                    goto fail;
                }
                double acc = 0.0;
                for (int64_t e = 0; e < k; e++) acc += (double)wr[e] * xr[e];
                out[i] = (float)acc;
            }
            write_row_f32(d, t * n_used + s, out);
        }
    }
fail:
    free(wr); free(xr); free(out);
    return st;
}

static void ref_moe_sum(const bk_op *op, float *row, double *acc)
{
    const bk_tensor *y = op->src[0], *wt = op->src[1];
    int64_t n = y->ne[0], n_used = y->ne[1];
    for (int64_t t = 0; t < y->ne[2]; t++) {
        const float *w = (const float *)row_ptr(wt, t);
        for (int64_t i = 0; i < n; i++) acc[i] = 0;
        for (int64_t s = 0; s < n_used; s++) {
            cpu_ref_row_f32(y, t * n_used + s, row);
            for (int64_t i = 0; i < n; i++) acc[i] += (double)w[s] * row[i];
        }
        for (int64_t i = 0; i < n; i++) row[i] = (float)acc[i];
        write_row_f32(op->dst, t, row);
    }
}

vki_status cpu_ref_compute(const bk_op *op)
{
    VKI_TRY(cpu_op_check(op));
    if (op->kind == BK_OP_MATMUL) return ref_matmul(op);
    if (op->kind == BK_OP_MATMUL_ID) return ref_matmul_id(op);
    if (op->kind == BK_OP_ATTN) return ref_attn(op);
    if (op->kind == BK_OP_CPY) { ref_cpy(op); return VKI_OK; }

    /* Row-wise ops: four scratch rows of the widest row involved. */
    int64_t n = VKI_MAX(op->src[0]->ne[0], op->dst->ne[0]);
    float *s = malloc((size_t)n * 4 * sizeof(float));
    double *acc = malloc((size_t)n * sizeof(double));
    vki_status st = VKI_OK;
    if (!s || !acc) { st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s ref: out of memory", bk_op_name(op->kind)); goto fail; }
    switch (op->kind) {
    case BK_OP_GET_ROWS:   st = ref_get_rows(op, s); break;
    case BK_OP_ADD: case BK_OP_MUL: case BK_OP_SCALE: case BK_OP_SILU: case BK_OP_GELU: case BK_OP_SWIGLU:
    case BK_OP_SOFTCAP:
        ref_unary_binary(op, s, s + n);
        break;
    case BK_OP_TOP_K:       ref_top_k(op, s); break;
    case BK_OP_GATHER_COLS: st = ref_gather_cols(op, s); break;
    case BK_OP_MOE_SUM:     ref_moe_sum(op, s, acc); break;
    case BK_OP_RMS_NORM: case BK_OP_LAYER_NORM: case BK_OP_L2_NORM:
        ref_norm(op, s, s + n, s + 2 * n);
        break;
    case BK_OP_SOFTMAX:    ref_softmax(op, s); break;
    case BK_OP_ROPE:       ref_rope(op, s); break;
    case BK_OP_POOL:       ref_pool(op, s, acc); break;
    default: st = vki_fail(VKI_ERR_UNSUPPORTED, "%s: no reference", bk_op_name(op->kind));
    }
fail:
    free(s);
    free(acc);
    return st;
}
