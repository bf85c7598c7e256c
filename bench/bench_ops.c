/*
 * bench_ops.c: vkinfer-bench-ops, the CPU backend's op microbenchmark.
 * Mat-vec (decode) per weight type in GB/s of weight bytes read, mat-mat
 * (prompt) in GFLOP/s, attention and thread-pool dispatch in us/run, through the real backend path
 * (threads, activation quantization). Results to stdout as a markdown
 * table; the median of -r runs after one warmup run, and the fastest run
 * (on a shared, loaded machine the minimum is the steadier figure).
 * Usage: vkinfer-bench-ops [-t THREADS] [-r REPS] [-i ISA] [-o matvec|matmul|attn|dispatch] [-T TYPE] [-S KxMxN]
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/backend.h"
#include "engine/cpu/cpu.h"
#include "util.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct bench_ctx {
    bk_backend *be;
    int         reps;
    double      min_ms; /* fastest run of the last time_op */
} bench_ctx;

/* Median milliseconds of reps runs of op (after a warmup). */
static double time_op(bench_ctx *b, const bk_op *op)
{
    double t[256];
    int reps = b->reps > 256 ? 256 : b->reps;
    bk_compute(b->be, op);
    for (int i = 0; i < reps; i++) {
        double t0 = vki_time_ms();
        if (bk_compute(b->be, op) != VKI_OK) {
            fprintf(stderr, "bench: %s\n", vki_last_error());
            return -1;
        }
        t[i] = vki_time_ms() - t0;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    b->min_ms = t[0];
    return t[reps / 2];
}

static bk_buffer *filled_buffer(bk_backend *be, vki_type t, int64_t k, int64_t rows, uint64_t *seed)
{
    uint64_t rb = vki_row_bytes(t, k);
    bk_buffer *buf = NULL;
    if (be->iface->buffer_create(be, rb * (uint64_t)rows, BK_BUFFER_WEIGHTS, &buf) != VKI_OK) return NULL;
    uint8_t *p = be->iface->buffer_host_ptr(be, buf);
    float *row = malloc((size_t)k * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t i = 0; i < k; i++) {
            *seed ^= *seed << 13; *seed ^= *seed >> 7; *seed ^= *seed << 17;
            row[i] = (float)((double)(*seed >> 11) / 9007199254740992.0 * 2.0 - 1.0);
        }
        if (t == VKI_TYPE_F32) memcpy(p + r * rb, row, rb);
        else vki_quantize_row(t, row, p + r * rb, k);
    }
    free(row);
    return buf;
}

static void bench_matmul(bench_ctx *b, vki_type t, int64_t k, int64_t m, int64_t n, const char *label)
{
    uint64_t seed = 42;
    bk_backend *be = b->be;
    bk_buffer *wb = filled_buffer(be, t, k, m, &seed), *xb = filled_buffer(be, VKI_TYPE_F32, k, n, &seed);
    bk_buffer *db = NULL;
    if (!wb || !xb || be->iface->buffer_create(be, (uint64_t)m * (uint64_t)n * 4, BK_BUFFER_COMPUTE, &db) != VKI_OK) {
        fprintf(stderr, "bench: out of memory\n");
        goto done;
    }
    int64_t wne[2] = {k, m}, xne[2] = {k, n}, dne[2] = {m, n};
    bk_tensor w = bk_tensor_make(t, 2, wne, wb, 0), x = bk_tensor_make(VKI_TYPE_F32, 2, xne, xb, 0);
    bk_tensor d = bk_tensor_make(VKI_TYPE_F32, 2, dne, db, 0);
    bk_op op = {.kind = BK_OP_MATMUL, .dst = &d, .src = {&w, &x, NULL}};
    /* The weight as a model load leaves it: the backend may repack it
     * (VKI_CPU_NO_REPACK=1 keeps the plain rows); "+r" marks a repacked run. */
    char lab[16];
    snprintf(lab, sizeof lab, "%s", label);
    if (be->iface->weight_prepare) {
        bool released;
        if (be->iface->weight_prepare(be, &w, BK_WEIGHT_MATMUL, &released) != VKI_OK) {
            fprintf(stderr, "bench: %s\n", vki_last_error());
            goto done;
        }
        if (((const cpu_buffer *)wb)->layout != CPU_LAYOUT_PLAIN) snprintf(lab, sizeof lab, "%s+r", label);
    }
    double ms = time_op(b, &op);
    double gbs = (double)bk_nbytes(&w) / (ms * 1e6), gflops = 2.0 * (double)k * (double)m * (double)n / (ms * 1e6);
    double mn = b->min_ms;
    printf("| %-22s | %-5s | %-6s | %5lld x %5lld x %4lld | %9.1f | %7.1f | %8.1f | %9.1f | %7.1f | %8.1f |\n", bk_name(be),
           vki_type_name(t), lab, (long long)k, (long long)m, (long long)n, ms * 1000.0, gbs, gflops, mn * 1000.0,
           (double)bk_nbytes(&w) / (mn * 1e6), 2.0 * (double)k * (double)m * (double)n / (mn * 1e6));
done:
    be->iface->buffer_destroy(be, wb);
    be->iface->buffer_destroy(be, xb);
    be->iface->buffer_destroy(be, db);
}

static void bench_attn(bench_ctx *b, int64_t nq, int64_t nkv, int64_t nh)
{
    uint64_t seed = 7;
    bk_backend *be = b->be;
    int64_t hd = 64, nkvh = 4;
    bk_buffer *qb = filled_buffer(be, VKI_TYPE_F32, hd, nh * nq, &seed);
    bk_buffer *kb = filled_buffer(be, VKI_TYPE_F16, hd, nkvh * nkv, &seed);
    bk_buffer *vb = filled_buffer(be, VKI_TYPE_F16, hd, nkvh * nkv, &seed);
    bk_buffer *ob = filled_buffer(be, VKI_TYPE_F32, hd, nh * nq, &seed);
    if (qb && kb && vb && ob) {
        int64_t qne[3] = {hd, nh, nq}, kne[3] = {hd, nkvh, nkv};
        bk_tensor q = bk_tensor_make(VKI_TYPE_F32, 3, qne, qb, 0), o = bk_tensor_make(VKI_TYPE_F32, 3, qne, ob, 0);
        bk_tensor k = bk_tensor_make(VKI_TYPE_F16, 3, kne, kb, 0), v = bk_tensor_make(VKI_TYPE_F16, 3, kne, vb, 0);
        bk_op op = {.kind = BK_OP_ATTN, .dst = &o, .src = {&q, &k, &v}, .ip = {1, (int32_t)(nkv - nq)},
                    .fp = {0.125f}};
        double ms = time_op(b, &op);
        double flops = 4.0 * (double)hd * (double)nh * (double)nq * (double)nkv * (nq > 1 ? 0.5 : 1.0);
        printf("| %-22s | f16kv | attn   | q%4lld kv%5lld h%lld/4 d64 | %9.1f | %7s | %8.1f | %9.1f | %7s | %8.1f |\n",
               bk_name(be), (long long)nq, (long long)nkv, (long long)nh, ms * 1000.0, "", flops / (ms * 1e6), b->min_ms * 1000.0, "",
               flops / (b->min_ms * 1e6));
    }
    be->iface->buffer_destroy(be, qb);
    be->iface->buffer_destroy(be, kb);
    be->iface->buffer_destroy(be, vb);
    be->iface->buffer_destroy(be, ob);
}

static void empty_task(void *ctx, int ith, int nth)
{
    (void)ith, (void)nth;
    atomic_fetch_add((atomic_int *)ctx, 1);
}

/* Cost of one thread-pool dispatch as the caller sees it (publish, run an
 * empty job, close it, wait for the workers that joined): the floor under
 * every op a decode step splits. Median of reps batches of 10000
 * back-to-back dispatches. */
static void bench_dispatch(int n_threads, int reps, const char *name)
{
    cpu_pool *pool = NULL;
    if (cpu_pool_create(n_threads, &pool) != VKI_OK) {
        fprintf(stderr, "bench: %s\n", vki_last_error());
        return;
    }
    atomic_int hits;
    atomic_init(&hits, 0);
    double t[256];
    reps = reps > 256 ? 256 : reps;
    for (int r = 0; r < reps; r++) {
        double t0 = vki_time_ms();
        for (int i = 0; i < 10000; i++) cpu_pool_run(pool, empty_task, &hits);
        t[r] = (vki_time_ms() - t0) * 1000.0 / 10000.0;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    printf("| %-22s | -     | dispatch | %d threads            | %8.2f |       - |        - | %9.2f |       - |        - |\n",
           name, cpu_pool_size(pool), t[reps / 2], t[0]);
    cpu_pool_destroy(pool);
}

static bool want_test(const char *only, const char *name) { return !only || !strcmp(only, name); }
static bool want_type(const char *only, vki_type t) { return !only || !strcasecmp(only, vki_type_name(t)); }

int main(int argc, char **argv)
{
    int n_threads = 2, reps = 5;
    const char *isa_arg = NULL, *only_test = NULL, *only_type = NULL;
    long long sk = 0, sm = 0, sn = 0; /* -S KxMxN: one custom matmul shape instead of the defaults */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) n_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-i") && i + 1 < argc) isa_arg = argv[++i];
        else if (!strcmp(argv[i], "-o") && i + 1 < argc) only_test = argv[++i];
        else if (!strcmp(argv[i], "-T") && i + 1 < argc) only_type = argv[++i];
        else if (!strcmp(argv[i], "-S") && i + 1 < argc && sscanf(argv[i + 1], "%lldx%lldx%lld", &sk, &sm, &sn) == 3 &&
                 sk > 0 && sm > 0 && sn > 0)
            i++;
        else {
            fprintf(stderr, "usage: %s [-t THREADS] [-r REPS] [-i scalar|avx2|avx512] [-o matvec|matmul|attn|dispatch] [-T TYPE] [-S KxMxN]\n",
                    argv[0]);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    printf("| backend                | type  | test   | k x m x n            |   us/run |    GB/s |  GFLOP/s "
           "| min us/run | max GB/s | max GFLOP/s |\n");
    printf("|------------------------|-------|--------|----------------------|----------|---------|----------"
           "|-----------|---------|----------|\n");
    for (int isa = 0; isa < CPU_ISA_COUNT; isa++) {
        cpu_isa want;
        if (isa_arg && (!cpu_isa_parse(isa_arg, &want) || want != (cpu_isa)isa)) continue;
        if (!isa_arg && isa == CPU_ISA_SCALAR) continue; /* scalar only when asked: it is the oracle, not a path */
        if (!cpu_isa_available((cpu_isa)isa)) continue;
        bench_ctx b = {.reps = reps};
        if (bk_cpu_create_isa(n_threads, (cpu_isa)isa, &b.be) != VKI_OK) {
            fprintf(stderr, "bench: %s\n", vki_last_error());
            return 1;
        }
        const vki_type types[] = {VKI_TYPE_F32,  VKI_TYPE_F16,  VKI_TYPE_BF16, VKI_TYPE_Q8_0, VKI_TYPE_Q4_0,
                                  VKI_TYPE_Q4_K, VKI_TYPE_Q6_K, VKI_TYPE_Q4_1, VKI_TYPE_Q5_0, VKI_TYPE_Q5_1,
                                  VKI_TYPE_Q2_K, VKI_TYPE_Q3_K, VKI_TYPE_Q5_K};
        /* Mat-vec on a weight too big for the caches: decode is memory bound. */
        if (sk) {
            for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
                if (want_type(only_type, types[t])) bench_matmul(&b, types[t], sk, sm, sn, "custom");
            bk_destroy(b.be);
            continue;
        }
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
            if (want_test(only_test, "matvec") && want_type(only_type, types[t]))
                bench_matmul(&b, types[t], 4096, 8192, 1, "matvec");
        /* Mat-mat at the 40M llama's FFN shape and a 512-token prompt. */
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
            if (want_test(only_test, "matmul") && want_type(only_type, types[t]))
                bench_matmul(&b, types[t], 512, 1408, 512, "matmul");
        if (want_test(only_test, "dispatch") && !only_type && isa == (int)cpu_isa_best())
            bench_dispatch(n_threads, reps, b.be->iface->name(b.be));
        if (want_test(only_test, "attn") && !only_type) {
            bench_attn(&b, 1, 512, 8);
            bench_attn(&b, 512, 512, 8);
            bench_attn(&b, 1, 2048, 32); /* a 1.1B (TinyLlama) layer's decode, 2048 deep */
        }
        bk_destroy(b.be);
    }
    return 0;
}
