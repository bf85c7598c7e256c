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
#include "ops_cases.h"
#include "test_util.h"
#include "util.h"

static int g_perf_runs; /* --perf */

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
    /* Two threads, so every op's work is split; VKI_TEST_CPU_THREADS=1
     * for an emulator that runs one (tests/cross). */
    const char *env = getenv("VKI_TEST_CPU_THREADS");
    int nth = env ? atoi(env) : 0;
    if (nth <= 0) nth = 2;
    bk_backend *be = NULL;
    if (bk_cpu_create_isa(nth, isa, &be) != VKI_OK) {
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

/* The CPU backend quantizes the activations of every quantized weight
 * type (cpu_act_for: Q8_0 or Q8_K, as llama.cpp's CPU backend does); the
 * GPU kernels keep them in float for the types outside matmul_nmse's list,
 * so those cases carry the float tolerance and the CPU gets the 8-bit one. */
static double case_tolerance(const test_case *c, const bk_backend *be)
{
    bool mm = c->kind == BK_OP_MATMUL || c->kind == BK_OP_MATMUL_ID;
    if (be->kind == VKI_BACKEND_CPU && mm && cpu_act_for(c->src[0].type) != CPU_ACT_F32)
        return fmax(c->max_nmse, NMSE_ACTQ);
    return c->max_nmse;
}

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
    double tol = case_tolerance(c, be);
    if (nmse > tol) {
        printf("  %s [%s]: FAIL: nmse %.3g > %.3g\n", c->desc, b->name, nmse, tol);
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
        memcpy(op.ip, c->ip, sizeof op.ip); /* the fused activation */
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
    if (g_perf_runs > 0) ops_cases_perf();
    else ops_cases_all();

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
