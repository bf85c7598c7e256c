/*
 * test_vk_big.c: tensors over 128 MiB (lavapipe's maxStorageBufferRange)
 * with the device's real limits: a 136 MiB Q8_0 weight through MATMUL and
 * a 136 MiB f32 table through GET_ROWS, each bound window by window.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "util.h"
#include "vk_test_common.h"

int main(void)
{
    bk_backend *be = vkt_create(0);
    bk_vk_memory_stats ms;
    bk_vk_memory_stats_get(be, &ms);
    const int64_t k = 4096, m = 32768; /* Q8_0: 4352 bytes a row, 136 MiB */
    uint64_t rb = vki_row_bytes(VKI_TYPE_Q8_0, k), wbytes = rb * (uint64_t)m;
    if (wbytes <= ms.max_storage_buffer_range)
        printf("note: this device binds %llu bytes at once; the weight fits one binding\n",
               (unsigned long long)ms.max_storage_buffer_range);

    /* Random but valid Q8_0 blocks: small scales, any int8 quants. */
    uint8_t *wq = malloc(wbytes);
    uint64_t rng = 11;
    for (uint64_t off = 0; off < wbytes; off += sizeof(block_q8_0)) {
        block_q8_0 *b = (block_q8_0 *)(wq + off);
        b->d = vki_fp32_to_fp16(test_rand_f32(&rng, 0.001f, 0.01f));
        uint64_t r = test_rand_u64(&rng);
        for (int i = 0; i < 32; i++) {
            if (i % 8 == 0) r = test_rand_u64(&rng);
            b->qs[i] = (int8_t)(r >> (8 * (i % 8)));
        }
    }
    int64_t ne[2] = {k, m};
    bk_tensor w = bk_tensor_make(VKI_TYPE_Q8_0, 2, ne, NULL, 0);
    w.name = "big-weight";
    CHECKF(be->iface->buffer_create(be, wbytes, BK_BUFFER_WEIGHTS, &w.buf) == VKI_OK, "%s", vki_last_error());
    CHECK(be->iface->tensor_set(be, &w, wq, 0, wbytes) == VKI_OK);

    enum { N = 2 };
    float *x = malloc(k * N * sizeof(float)), *out = malloc((size_t)m * N * sizeof(float));
    for (int64_t i = 0; i < k * N; i++) x[i] = test_rand_f32(&rng, -1, 1);
    bk_tensor tx = vkt_tensor(be, VKI_TYPE_F32, k, N, x), td = vkt_tensor(be, VKI_TYPE_F32, m, N, NULL);
    CHECK(bk_begin(be) == VKI_OK);
    CHECKF(bk_matmul(be, &td, &w, &tx, NULL) == VKI_OK, "%s", vki_last_error());
    CHECKF(bk_end(be) == VKI_OK, "%s", vki_last_error());
    CHECK(be->iface->tensor_get(be, &td, out, 0, (uint64_t)m * N * 4) == VKI_OK);
    /* Rows at the start, around every window edge, and at the end. */
    uint64_t per = (ms.max_storage_buffer_range - 256) / rb;
    int64_t check_rows[64];
    int nr = 0;
    check_rows[nr++] = 0;
    for (int64_t e = (int64_t)per; e < m && nr < 60; e += (int64_t)per) {
        check_rows[nr++] = e - 1;
        check_rows[nr++] = e;
    }
    check_rows[nr++] = m - 1;
    float *row = malloc(k * sizeof(float));
    vkt_matmul_activations(be, VKI_TYPE_Q8_0, x, k, N, x); /* what the kernel multiplies */
    double worst = 0;
    for (int i = 0; i < nr; i++) {
        int64_t r = check_rows[i];
        vki_dequantize_row(VKI_TYPE_Q8_0, wq + (uint64_t)r * rb, row, k);
        for (int j = 0; j < N; j++) {
            double acc = 0, mag = 0;
            for (int64_t e = 0; e < k; e++) {
                acc += (double)row[e] * x[j * k + e];
                mag += fabs((double)row[e] * x[j * k + e]);
            }
            worst = fmax(worst, fabs(out[(int64_t)j * m + r] - acc) / (mag + 1e-9));
        }
    }
    CHECKF(worst < 1e-5, "matmul over a %llu-byte weight: worst relative error %g",
           (unsigned long long)wbytes, worst);

    /* GET_ROWS from a 136 MiB f32 table: reuse the weight bytes as floats
     * (finite: every value is masked into [1, 2)). */
    uint32_t *tf = (uint32_t *)wq;
    for (uint64_t i = 0; i < wbytes / 4; i++) tf[i] = 0x3f800000u | (tf[i] & 0x7fffffu);
    int64_t tne[2] = {1088, (int64_t)(wbytes / 4 / 1088)};
    bk_tensor tab = bk_tensor_make(VKI_TYPE_F32, 2, tne, w.buf, 0);
    CHECK(be->iface->tensor_set(be, &tab, tf, 0, bk_nbytes(&tab)) == VKI_OK);
    int32_t ids[4] = {0, (int32_t)tne[1] - 1, (int32_t)(tne[1] / 2), 7};
    bk_tensor tid = vkt_tensor(be, VKI_TYPE_I32, 4, 1, ids), tout = vkt_tensor(be, VKI_TYPE_F32, 1088, 4, NULL);
    CHECK(bk_begin(be) == VKI_OK);
    CHECKF(bk_get_rows(be, &tout, &tab, &tid) == VKI_OK, "%s", vki_last_error());
    CHECK(bk_end(be) == VKI_OK);
    float got[4 * 1088];
    CHECK(be->iface->tensor_get(be, &tout, got, 0, sizeof(got)) == VKI_OK);
    for (int i = 0; i < 4; i++)
        CHECKF(memcmp(got + i * 1088, tf + (uint64_t)ids[i] * 1088, 1088 * 4) == 0, "table row %d", ids[i]);

    vkt_free(be, &tx);
    vkt_free(be, &td);
    vkt_free(be, &tid);
    vkt_free(be, &tout);
    be->iface->buffer_destroy(be, w.buf);
    free(wq); free(x); free(out); free(row);
    vkt_destroy(be);
    return test_finish("test_vk_big");
}
