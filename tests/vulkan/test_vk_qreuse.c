/*
 * test_vk_qreuse.c: the int-dot mat-vecs quantize their activations once
 * for every mat-vec that reads the same rows (Q, K and V; gate and up),
 * and again once anything writes over those rows. In one pass: W1 x and
 * W2 x share one quantize dispatch; x is then overwritten (CPY from y) and
 * W3 x must see y, not the stale blocks; a mat-vec of x viewed as one row
 * instead of two quantizes anew. Every result is checked against a
 * reference summed from the activations the kernel multiplies.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/vulkan/vk_internal.h"
#include "test_util.h"
#include "util.h"
#include "vk_test_common.h"

#define K 256
#define M 48
#define N 2

/* d[n][M] = W (dequantized) . xq[n] in double */
static void reference(const uint8_t *wq, const float *xq, int64_t n, float *d)
{
    uint64_t rb = vki_row_bytes(VKI_TYPE_Q8_0, K);
    float w[K];
    for (int64_t r = 0; r < M; r++) {
        vki_dequantize_row(VKI_TYPE_Q8_0, wq + (uint64_t)r * rb, w, K);
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t i = 0; i < K; i++) s += (double)w[i] * xq[j * K + i];
            d[j * M + r] = (float)s;
        }
    }
}

static void check_close(bk_backend *be, const bk_tensor *t, const float *want, int64_t n, const char *what)
{
    float got[N * M];
    CHECK(be->iface->tensor_get(be, t, got, 0, sizeof(float) * (uint64_t)(n * M)) == VKI_OK);
    double err = 0, ref = 0;
    for (int64_t i = 0; i < n * M; i++) {
        err += (got[i] - want[i]) * (double)(got[i] - want[i]);
        ref += (double)want[i] * want[i];
    }
    CHECKF(err <= 1e-8 * ref, "%s: nmse %.3g", what, err / ref);
}

int main(void)
{
    bk_backend *be = vkt_create(0);
    vk_ctx *c = be->ctx;
    if (!c->use_intdot) {
        vkt_destroy(be);
        test_skip("the device has no integer dot products: no int-dot mat-vec to share quantized rows");
    }
    uint64_t rb = vki_row_bytes(VKI_TYPE_Q8_0, K), rng = 11;
    uint8_t *wq[3];
    bk_tensor w[3];
    float *f = malloc(sizeof(float) * K * M);
    for (int i = 0; i < 3; i++) {
        wq[i] = malloc(rb * M);
        for (int64_t j = 0; j < K * M; j++) f[j] = test_rand_f32(&rng, -1, 1);
        for (int64_t r = 0; r < M; r++) CHECK(vki_quantize_row(VKI_TYPE_Q8_0, f + r * K, wq[i] + r * rb, K));
        w[i] = vkt_tensor(be, VKI_TYPE_Q8_0, K, M, wq[i]);
    }
    float x[N * K], y[N * K], xq[N * K], yq[N * K], yq1[N * K];
    for (int i = 0; i < N * K; i++) {
        x[i] = test_rand_f32(&rng, -2, 2);
        y[i] = test_rand_f32(&rng, -2, 2);
    }
    bk_tensor tx = vkt_tensor(be, VKI_TYPE_F32, K, N, x), ty = vkt_tensor(be, VKI_TYPE_F32, K, N, y);
    bk_tensor d[4];
    for (int i = 0; i < 4; i++) d[i] = vkt_tensor(be, VKI_TYPE_F32, M, N, NULL);
    /* the first row of x as a tensor of its own: the same bytes, another view */
    bk_tensor tx1 = tx, d1 = d[3];
    tx1.ne[1] = 1;
    d1.ne[1] = 1;

    uint64_t saved0 = c->n_qreuse;
    CHECK(bk_begin(be) == VKI_OK);
    CHECK(bk_matmul(be, &d[0], &w[0], &tx, NULL) == VKI_OK);
    CHECK(bk_matmul(be, &d[1], &w[1], &tx, NULL) == VKI_OK); /* reuses W1's blocks */
    CHECK(bk_cpy(be, &tx, &ty) == VKI_OK);                     /* x := y */
    CHECK(bk_matmul(be, &d[2], &w[2], &tx, NULL) == VKI_OK); /* must quantize y */
    CHECK(bk_matmul(be, &d1, &w[0], &tx1, NULL) == VKI_OK);  /* another view: quantized anew */
    CHECK(bk_end(be) == VKI_OK);
    uint64_t saved = c->n_qreuse - saved0;
    uint64_t want_saved = c->dbg.no_qreuse ? 0 : 1; /* VKI_VK_NO_QREUSE=1: none */
    CHECKF(saved == want_saved, "quantize dispatches saved: %llu, want %llu (W2 x only)", (unsigned long long)saved,
           (unsigned long long)want_saved);

    vkt_matmul_activations(be, VKI_TYPE_Q8_0, x, K, N, xq);
    vkt_matmul_activations(be, VKI_TYPE_Q8_0, y, K, N, yq);
    vkt_matmul_activations(be, VKI_TYPE_Q8_0, y, K, 1, yq1);
    float want[N * M];
    reference(wq[0], xq, N, want);
    check_close(be, &d[0], want, N, "W1 x");
    reference(wq[1], xq, N, want);
    check_close(be, &d[1], want, N, "W2 x (shared blocks)");
    reference(wq[2], yq, N, want);
    check_close(be, &d[2], want, N, "W3 x after x := y");
    reference(wq[0], yq1, 1, want);
    check_close(be, &d1, want, 1, "W1 x[0] (one-row view)");

    for (int i = 0; i < 3; i++) {
        vkt_free(be, &w[i]);
        free(wq[i]);
    }
    for (int i = 0; i < 3; i++) vkt_free(be, &d[i]);
    vkt_free(be, &d[3]);
    vkt_free(be, &tx);
    vkt_free(be, &ty);
    free(f);
    vkt_destroy(be);
    return test_finish("test_vk_qreuse");
}
