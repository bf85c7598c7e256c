/*
 * test_vk_memory.c: suballocation and the budget (over-budget allocations
 * fail with OUT_OF_DEVICE_MEMORY and a message), staging-ring uploads with
 * progress and cancel, and, with the allocation and binding limits forced
 * small (VKI_VK_MAX_ALLOC / VKI_VK_MAX_RANGE), buffers split into pieces and
 * ops split into windows, checked against the CPU reference.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/ref.h"
#include "test_util.h"
#include "util.h"
#include "vk_test_common.h"

#define MIB (1024ull * 1024ull)

static void test_budget(void)
{
    bk_backend *be = vkt_create(64 * MIB);
    bk_vk_memory_stats ms;
    bk_vk_memory_stats_get(be, &ms);
    CHECK(ms.budget == 64 * MIB);
    bk_buffer *b[8] = {0};
    for (int i = 0; i < 8; i++)
        CHECKF(be->iface->buffer_create(be, 16384 + 4 * (uint64_t)i, BK_BUFFER_COMPUTE, &b[i]) == VKI_OK, "%s",
               vki_last_error());
    bk_vk_memory_stats_get(be, &ms);
    CHECKF(ms.n_blocks == 1, "8 small buffers took %u blocks", ms.n_blocks);
    CHECK(ms.buffers == 8 * 16384 + 4 * 28 && be->iface->memory_used(be) == ms.device);
    /* Blocks grow with what is held, so little is held unused: 8 MiB more
     * in 1 MiB buffers leaves at most 1/32 + 256 KiB of slack. */
    bk_buffer *mb[8] = {0};
    for (int i = 0; i < 8; i++)
        CHECKF(be->iface->buffer_create(be, 1 * MIB, BK_BUFFER_COMPUTE, &mb[i]) == VKI_OK, "%s", vki_last_error());
    bk_vk_memory_stats_get(be, &ms);
    CHECKF(ms.device >= ms.buffers && ms.device <= ms.buffers + ms.buffers / 32 + 256 * 1024 + 8 * 4096,
           "%llu bytes held for %llu asked", (unsigned long long)ms.device, (unsigned long long)ms.buffers);
    for (int i = 0; i < 8; i++) be->iface->buffer_destroy(be, mb[i]);
    bk_buffer *big = NULL;
    CHECK(be->iface->buffer_create(be, 80 * MIB, BK_BUFFER_WEIGHTS, &big) == VKI_ERR_OUT_OF_DEVICE_MEMORY);
    CHECKF(strstr(vki_last_error(), "budget") != NULL, "message: %s", vki_last_error());
    CHECK(big == NULL);
    /* Freeing makes room again: blocks go back when empty. */
    for (int i = 0; i < 8; i++) be->iface->buffer_destroy(be, b[i]);
    bk_vk_memory_stats_get(be, &ms);
    CHECK(ms.n_blocks == 0 && ms.buffers == 0 && ms.device == 0);
    CHECKF(be->iface->buffer_create(be, 40 * MIB, BK_BUFFER_WEIGHTS, &big) == VKI_OK, "%s", vki_last_error());
    be->iface->buffer_destroy(be, big);
    be->iface->buffer_destroy(be, NULL); /* no-op */
    vkt_destroy(be);
}

typedef struct { int calls; uint64_t last, total; int stop_after; bool monotonic; } progress;

static bool on_progress(uint64_t done, uint64_t total, void *user)
{
    progress *p = user;
    p->monotonic &= done > p->last && done <= total;
    p->last = done;
    p->total = total;
    return ++p->calls != p->stop_after;
}

static void test_staging(void)
{
    setenv("VKI_VK_STAGING", "1048576", 1); /* 1 MiB slots: a 5.5 MiB upload takes 6 chunks */
    bk_backend *be = vkt_create(0);
    unsetenv("VKI_VK_STAGING");
    enum { N = 5 * 1024 * 1024 / 4 + 12345 };
    float *src = malloc(N * sizeof(float)), *back = malloc(N * sizeof(float));
    uint64_t rng = 1;
    for (int i = 0; i < N; i++) src[i] = test_rand_f32(&rng, -1, 1);
    bk_tensor t = vkt_tensor(be, VKI_TYPE_F32, N, 1, NULL);
    progress p = {.monotonic = true};
    CHECKF(bk_vk_tensor_set_progress(be, &t, src, 0, N * 4ull, on_progress, &p) == VKI_OK, "%s", vki_last_error());
    CHECKF(p.calls == 6 && p.monotonic && p.last == N * 4ull && p.total == N * 4ull, "%d calls, last %llu",
           p.calls, (unsigned long long)p.last);
    CHECK(be->iface->tensor_get(be, &t, back, 0, N * 4ull) == VKI_OK);
    CHECK(memcmp(src, back, N * 4ull) == 0);
    /* A partial read at an odd offset. */
    CHECK(be->iface->tensor_get(be, &t, back, 4 * 777, 4 * 1000) == VKI_OK);
    CHECK(memcmp(src + 777, back, 4000) == 0);
    progress c = {.monotonic = true, .stop_after = 2};
    CHECK(bk_vk_tensor_set_progress(be, &t, back, 0, N * 4ull, on_progress, &c) == VKI_ERR_CANCELLED);
    CHECK(c.calls == 2);
    CHECK(be->iface->tensor_set(be, &t, src, 0, N * 4ull + 4) == VKI_ERR_INVALID_ARGUMENT);
    vkt_free(be, &t);
    free(src);
    free(back);
    vkt_destroy(be);
}

/* Reference matmul row values for W (type wt, [m][k]) . x [n][k]. */
static void check_matmul_split(bk_backend *be, vki_type wt, int64_t k, int64_t m, int64_t n, bk_buffer *wbuf,
                               uint64_t woffs)
{
    uint64_t rb = vki_row_bytes(wt, k);
    float *wf = malloc((size_t)(k * m) * sizeof(float)), *x = malloc((size_t)(k * n) * sizeof(float));
    uint8_t *wq = malloc((size_t)(rb * m));
    float *out = malloc((size_t)(m * n) * sizeof(float));
    uint64_t rng = 3;
    for (int64_t i = 0; i < k * m; i++) wf[i] = test_rand_f32(&rng, -1, 1);
    for (int64_t i = 0; i < k * n; i++) x[i] = test_rand_f32(&rng, -1, 1);
    for (int64_t r = 0; r < m; r++) CHECK(vki_quantize_row(wt, wf + r * k, wq + r * rb, k));
    int64_t ne[2] = {k, m};
    bk_tensor w = bk_tensor_make(wt, 2, ne, wbuf, woffs);
    w.name = "split-weight";
    CHECK(be->iface->tensor_set(be, &w, wq, 0, rb * m) == VKI_OK);
    bk_tensor tx = vkt_tensor(be, VKI_TYPE_F32, k, n, x), td = vkt_tensor(be, VKI_TYPE_F32, m, n, NULL);
    CHECK(bk_begin(be) == VKI_OK);
    vki_status st = bk_matmul(be, &td, &w, &tx, NULL);
    CHECKF(st == VKI_OK, "%s", vki_last_error());
    CHECK(bk_end(be) == VKI_OK);
    CHECK(be->iface->tensor_get(be, &td, out, 0, (uint64_t)(m * n) * 4) == VKI_OK);
    float *row = malloc((size_t)k * sizeof(float));
    vkt_matmul_activations(be, wt, x, k, n, x); /* what the kernel multiplies */
    double num = 0, den = 0;
    for (int64_t r = 0; r < m; r++) {
        vki_dequantize_row(wt, wq + r * rb, row, k);
        for (int64_t j = 0; j < n; j++) {
            double acc = 0;
            for (int64_t e = 0; e < k; e++) acc += (double)row[e] * x[j * k + e];
            num += (out[j * m + r] - acc) * (out[j * m + r] - acc);
            den += acc * acc;
        }
    }
    CHECKF(num / den < 1e-8, "%s split matmul n=%lld nmse %g", vki_type_name(wt), (long long)n, num / den);
    vkt_free(be, &tx);
    vkt_free(be, &td);
    free(wf); free(x); free(wq); free(out); free(row);
}

static void test_forced_limits(void)
{
    setenv("VKI_VK_MAX_ALLOC", "4194304", 1); /* 4 MiB allocations */
    setenv("VKI_VK_MAX_RANGE", "1048576", 1); /* 1 MiB bindings    */
    bk_backend *be = vkt_create(0);
    unsetenv("VKI_VK_MAX_ALLOC");
    unsetenv("VKI_VK_MAX_RANGE");
    bk_vk_memory_stats ms;
    bk_vk_memory_stats_get(be, &ms);
    CHECK(ms.max_memory_allocation_size == 4 * MIB && ms.max_storage_buffer_range == 1 * MIB);

    /* 10 MiB buffer = 3 pieces; a byte round trip across piece boundaries. */
    bk_buffer *buf = NULL;
    CHECK(be->iface->buffer_create(be, 10 * MIB, BK_BUFFER_WEIGHTS, &buf) == VKI_OK);
    bk_vk_memory_stats_get(be, &ms);
    CHECK(ms.n_blocks == 3);
    int64_t ne = (int64_t)(10 * MIB / 4);
    bk_tensor all = bk_tensor_make(VKI_TYPE_F32, 1, &ne, buf, 0);
    uint8_t *data = malloc(10 * MIB), *back = malloc(10 * MIB);
    for (uint64_t i = 0; i < 10 * MIB; i++) data[i] = (uint8_t)(i * 2654435761u >> 13);
    CHECK(be->iface->tensor_set(be, &all, data, 0, 10 * MIB) == VKI_OK);
    CHECK(be->iface->tensor_get(be, &all, back, 0, 10 * MIB) == VKI_OK);
    CHECK(memcmp(data, back, 10 * MIB) == 0);

    /* Weights of ~3.4 MiB inside piece 1: bound 1 MiB at a time (4 windows). */
    check_matmul_split(be, VKI_TYPE_Q8_0, 4096, 860, 1, buf, 4 * MIB);
    check_matmul_split(be, VKI_TYPE_Q4_K, 2048, 1500, 3, buf, 4 * MIB + 256);
    check_matmul_split(be, VKI_TYPE_F16, 1000, 1500, 20, buf, 4 * MIB);

    /* GET_ROWS from a 3 MiB f32 table: three windows, ids in each. */
    int64_t tne[2] = {1024, 768};
    bk_tensor tab = bk_tensor_make(VKI_TYPE_F32, 2, tne, buf, 0);
    CHECK(be->iface->tensor_set(be, &tab, data, 0, bk_nbytes(&tab)) == VKI_OK);
    int32_t ids[5] = {0, 767, 300, 511, 256};
    bk_tensor tid = vkt_tensor(be, VKI_TYPE_I32, 5, 1, ids), tout = vkt_tensor(be, VKI_TYPE_F32, 1024, 5, NULL);
    CHECK(bk_begin(be) == VKI_OK);
    CHECKF(bk_get_rows(be, &tout, &tab, &tid) == VKI_OK, "%s", vki_last_error());
    CHECK(bk_end(be) == VKI_OK);
    float rows[5 * 1024];
    CHECK(be->iface->tensor_get(be, &tout, rows, 0, sizeof(rows)) == VKI_OK);
    for (int i = 0; i < 5; i++) CHECKF(memcmp(rows + i * 1024, data + (uint64_t)ids[i] * 4096, 4096) == 0, "row %d", ids[i]);

    /* A tensor straddling two pieces is refused with a message, not run. */
    int64_t sne[2] = {1024, 16};
    bk_tensor st = bk_tensor_make(VKI_TYPE_F32, 2, sne, buf, 4 * MIB - 4096 * 8);
    st.name = "straddler";
    bk_op op = {.kind = BK_OP_SCALE, .dst = &st, .src = {&st}, .fp = {2.0f}};
    CHECK(!be->iface->supports_op(be, &op));
    CHECK(strstr(vki_last_error(), "straddler") && strstr(vki_last_error(), "straddle"));
    /* A single activation over the binding limit is refused too. */
    int64_t bne[2] = {1024, 300};
    bk_tensor bg = bk_tensor_make(VKI_TYPE_F32, 2, bne, buf, 0);
    op.dst = op.src[0] = &bg;
    CHECK(!be->iface->supports_op(be, &op));
    CHECK(strstr(vki_last_error(), "maxStorageBufferRange") != NULL);

    vkt_free(be, &tid);
    vkt_free(be, &tout);
    be->iface->buffer_destroy(be, buf);
    free(data);
    free(back);
    vkt_destroy(be);
}

int main(void)
{
    test_budget();
    test_staging();
    test_forced_limits();
    return test_finish("test_vk_memory");
}
