/* test_backend_check.c: the VKI_CHECK_RESULTS wrapper (engine/backend_check.c)
 * passes correct ops, catches a backend that writes a wrong element, and
 * checks every op of a real model on the CPU and on Vulkan without a
 * false alarm. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../models/model_test_util.h"
#include "engine/backend.h"
#include "engine/cpu/cpu.h"
#include "error.h"

/* A CPU backend whose compute adds 0.5 to the first element of every
 * output: what a kernel with an off-by-one store looks like. */
static bk_iface g_bad_iface;
static vki_status (*g_cpu_compute)(bk_backend *, const bk_op *);

static vki_status bad_compute(bk_backend *be, const bk_op *op)
{
    VKI_TRY(g_cpu_compute(be, op));
    float *d = (float *)((uint8_t *)be->iface->buffer_host_ptr(be, op->dst->buf) + op->dst->offs);
    d[0] += 0.5f;
    return VKI_OK;
}

/* MATMUL, RMS_NORM and an in-place ROPE on backend be; returns 0 on success. */
static int run_ops(bk_backend *be)
{
    enum { K = 64, M = 48, N = 3 };
    bk_buffer *buf = NULL;
    uint64_t bytes = (uint64_t)(M * K + N * K + N * M + K + N * M) * 4 + N * 4;
    if (be->iface->buffer_create(be, bytes, BK_BUFFER_COMPUTE, &buf) != VKI_OK) return 1;
    uint64_t o = 0;
    bk_tensor w = bk_tensor_make(VKI_TYPE_F32, 2, (int64_t[]){K, M}, buf, o);
    o += (uint64_t)M * K * 4;
    bk_tensor x = bk_tensor_make(VKI_TYPE_F32, 2, (int64_t[]){K, N}, buf, o);
    o += (uint64_t)N * K * 4;
    bk_tensor y = bk_tensor_make(VKI_TYPE_F32, 2, (int64_t[]){M, N}, buf, o);
    o += (uint64_t)N * M * 4;
    bk_tensor g = bk_tensor_make(VKI_TYPE_F32, 1, (int64_t[]){K}, buf, o);
    o += (uint64_t)K * 4;
    bk_tensor z = bk_tensor_make(VKI_TYPE_F32, 2, (int64_t[]){M, N}, buf, o);
    o += (uint64_t)N * M * 4;
    bk_tensor pos = bk_tensor_make(VKI_TYPE_I32, 1, (int64_t[]){N}, buf, o);
    /* rope sees z as {head_dim 16, 3 heads, N tokens} */
    bk_tensor zr = z;
    zr.ne[0] = 16, zr.ne[1] = 3, zr.ne[2] = N, zr.ne[3] = 1;
    zr.nb[1] = 16 * 4, zr.nb[2] = 48 * 4, zr.nb[3] = zr.nb[2] * N;

    float *host = malloc(bytes);
    uint64_t seed = 7;
    for (uint64_t i = 0; i < bytes / 4; i++) host[i] = test_rand_f32(&seed, -1, 1);
    int32_t p[N] = {0, 5, 9};
    memcpy((uint8_t *)host + pos.offs, p, sizeof p);
    bk_tensor raw = {.type = VKI_TYPE_I8, .ne = {(int64_t)bytes, 1, 1, 1}, .nb = {1, bytes, bytes, bytes}, .buf = buf};
    int rc = be->iface->tensor_set(be, &raw, host, 0, bytes) != VKI_OK;
    free(host);
    rc |= bk_begin(be) != VKI_OK;
    rc |= bk_matmul(be, &y, &w, &x, NULL) != VKI_OK;
    bk_tensor x2 = bk_tensor_make(VKI_TYPE_F32, 2, (int64_t[]){K, N}, buf, x.offs);
    rc |= bk_rms_norm(be, &x2, &x, &g, 1e-6f) != VKI_OK;
    rc |= bk_rope(be, &zr, &zr, &pos, 16, BK_ROPE_NORMAL, 10000.0f, 1.0f) != VKI_OK;
    rc |= bk_end(be) != VKI_OK;
    be->iface->buffer_destroy(be, buf);
    return rc;
}

static void op_level(void)
{
    bk_backend *cpu = NULL, *chk = NULL;
    CHECK(bk_cpu_create(2, &cpu) == VKI_OK);
    CHECK(bk_check_create(cpu, &chk) == VKI_OK);
    CHECK(run_ops(chk) == 0);
    CHECKF(bk_check_op_count(chk) == 3 && bk_check_bad_count(chk) == 0, "correct ops: %llu checked, %llu bad",
           (unsigned long long)bk_check_op_count(chk), (unsigned long long)bk_check_bad_count(chk));
    bk_destroy(chk);

    /* The same ops on a backend that corrupts one element of each output. */
    bk_backend *bad = NULL;
    CHECK(bk_cpu_create(2, &bad) == VKI_OK);
    g_bad_iface = *bad->iface;
    g_cpu_compute = g_bad_iface.compute;
    g_bad_iface.compute = bad_compute;
    bad->iface = &g_bad_iface;
    CHECK(bk_check_create(bad, &chk) == VKI_OK);
    CHECK(run_ops(chk) == 0);
    CHECKF(bk_check_bad_count(chk) == 3, "corrupted ops: %llu of 3 caught", (unsigned long long)bk_check_bad_count(chk));
    bk_destroy(chk);
    CHECK(bk_check_bad_count(NULL) == 0);
}

static void model_level(vki_backend_kind kind, const char *rel)
{
    const char *path = test_shared_path(rel);
    setenv("VKI_CHECK_RESULTS", "1", 1);
    vki_engine_params ep = mt_engine_params();
    vki_engine *eng = NULL;
    vki_model *md = NULL;
    CHECK(vki_engine_create(&ep, &eng) == VKI_OK);
    vki_model_params mp = vki_model_default_params();
    mp.backend = kind;
    vki_status st = vki_model_load(eng, path, &mp, &md);
    CHECKF(st == VKI_OK, "%s: %s", rel, vki_last_error());
    if (st == VKI_OK) {
        vki_generate_params gp = vki_generate_default_params();
        gp.n_predict = 3;
        CHECKF(vki_generate(md, "Once upon a time", &gp, NULL, NULL, NULL) == VKI_OK, "%s", vki_last_error());
        bk_backend *be = api_model_backend(md);
        printf("%s on %s: %llu ops checked, %llu past tolerance\n", rel, bk_name(be),
               (unsigned long long)bk_check_op_count(be), (unsigned long long)bk_check_bad_count(be));
        CHECK(bk_check_op_count(be) > 100);
        CHECK(bk_check_bad_count(be) == 0);
        mt_check_validation(be, rel);
    }
    vki_model_destroy(md);
    vki_engine_destroy(eng);
    unsetenv("VKI_CHECK_RESULTS");
}

int main(int argc, char **argv)
{
    op_level();
    vki_backend_kind kind = mt_backend_arg(argc, argv);
    model_level(kind, "models/synthetic-llama-gqa-q4_0.gguf");
    model_level(kind, "models/synthetic-llama-gqa-f16.gguf");
    return test_finish("test_backend_check");
}
