/*
 * test_vk_moe.c: what test_ops cannot reach for the mixture-of-experts ops
 * on Vulkan. MATMUL_ID with expert weights bound window by window
 * (VKI_VK_MAX_RANGE forced small: several experts per binding, and one
 * expert's rows split over bindings), on both kernels (mat-vec for few
 * tokens, tiles for prompts); and expert or column ids outside their
 * tables: the pass fails with INVALID_ARGUMENT naming the id, as the CPU
 * backend's does, bad rows are zeros, good rows are right, and the next
 * pass works again.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "util.h"
#include "vk_test_common.h"

/* Runs MATMUL_ID of weights [n_exp][m][k] of type t, activations one per
 * (token, slot) and ids [n_tok][n_used]; bad = some id is out of range.
 * Checks the status and every output row against a double-precision sum
 * (zeros for bad ids). */
static void check_matmul_id(bk_backend *be, const char *what, vki_type t, int64_t k, int64_t m, int64_t n_exp,
                            int64_t n_used, int64_t n_tok, const int32_t *ids, bool bad)
{
    uint64_t rb = vki_row_bytes(t, k);
    int64_t n_pairs = n_used * n_tok;
    float *wf = malloc(sizeof(float) * (size_t)(k * m * n_exp)), *x = malloc(sizeof(float) * (size_t)(k * n_pairs));
    float *out = malloc(sizeof(float) * (size_t)(m * n_pairs)), *row = malloc(sizeof(float) * (size_t)k);
    uint8_t *wq = malloc((size_t)(rb * (uint64_t)(m * n_exp)));
    uint64_t rng = 11;
    for (int64_t i = 0; i < k * m * n_exp; i++) wf[i] = test_rand_f32(&rng, -1, 1);
    for (int64_t i = 0; i < k * n_pairs; i++) x[i] = test_rand_f32(&rng, -1, 1);
    for (int64_t r = 0; r < m * n_exp; r++) CHECK(vki_quantize_row(t, wf + r * k, wq + (uint64_t)r * rb, k));

    bk_tensor tw = vkt_tensor(be, t, k, m * n_exp, wq);
    tw.ne[1] = m;
    tw.ne[2] = n_exp;
    tw.nb[2] = tw.nb[1] * (uint64_t)m;
    tw.nb[3] = tw.nb[2] * (uint64_t)n_exp;
    tw.name = "experts";
    bk_tensor tx = vkt_tensor(be, VKI_TYPE_F32, k, n_pairs, x);
    tx.ne[1] = n_used;
    tx.ne[2] = n_tok;
    tx.nb[2] = tx.nb[1] * (uint64_t)n_used;
    tx.nb[3] = tx.nb[2] * (uint64_t)n_tok;
    bk_tensor ti = vkt_tensor(be, VKI_TYPE_I32, n_used, n_tok, ids);
    bk_tensor td = vkt_tensor(be, VKI_TYPE_F32, m, n_pairs, NULL);
    td.ne[1] = n_used;
    td.ne[2] = n_tok;
    td.nb[2] = td.nb[1] * (uint64_t)n_used;
    td.nb[3] = td.nb[2] * (uint64_t)n_tok;

    CHECK(bk_begin(be) == VKI_OK);
    vki_status st = bk_matmul_id(be, &td, &tw, &tx, &ti);
    vki_status st2 = bk_end(be);
    if (bad) {
        CHECKF(st == VKI_OK && st2 == VKI_ERR_INVALID_ARGUMENT, "%s: bad ids gave %s", what, vki_status_str(st2));
        CHECKF(strstr(vki_last_error(), "outside") != NULL, "%s: message: %s", what, vki_last_error());
        printf("%s: %s\n", what, vki_last_error());
    } else {
        CHECKF(st == VKI_OK && st2 == VKI_OK, "%s: %s", what, vki_last_error());
    }
    CHECK(be->iface->tensor_get(be, &td, out, 0, sizeof(float) * (uint64_t)(m * n_pairs)) == VKI_OK);
    double err = 0, sum = 0;
    int64_t wrong_zero = 0;
    for (int64_t p = 0; p < n_pairs; p++) {
        int32_t e = ids[p];
        for (int64_t i = 0; i < m; i++) {
            float got = out[p * m + i];
            if (e < 0 || e >= n_exp) {
                wrong_zero += got != 0.0f;
                continue;
            }
            vki_dequantize_row(t, wq + (uint64_t)(e * m + i) * rb, row, k);
            double want = 0;
            for (int64_t j = 0; j < k; j++) want += (double)row[j] * x[p * k + j];
            err += (got - want) * (got - want);
            sum += want * want;
        }
    }
    CHECKF(wrong_zero == 0, "%s: %lld elements of bad pairs are not zero", what, (long long)wrong_zero);
    CHECKF(sum > 0 && err / sum < 1e-8, "%s: nmse %g", what, sum > 0 ? err / sum : err);
    vkt_free(be, &tw);
    vkt_free(be, &tx);
    vkt_free(be, &ti);
    vkt_free(be, &td);
    free(wf);
    free(x);
    free(out);
    free(row);
    free(wq);
}

/* n_tok tokens, each routed to n_used distinct experts of n_exp; with bad,
 * a few ids are replaced by ones outside [0, n_exp). */
static int32_t *route(int64_t n_exp, int64_t n_used, int64_t n_tok, bool bad)
{
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(n_used * n_tok));
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t s = 0; s < n_used; s++) ids[t * n_used + s] = (int32_t)((t * 7 + s * 3) % n_exp);
    if (bad) {
        ids[0] = -1;
        ids[n_used * n_tok / 2] = (int32_t)n_exp;
        ids[n_used * n_tok - 1] = INT32_MAX;
    }
    return ids;
}

static void check_both_paths(bk_backend *be, const char *name, vki_type t, int64_t k, int64_t m, int64_t n_exp)
{
    const int64_t toks[] = {2, 12}; /* mat-vec, tiles */
    for (int i = 0; i < 2; i++)
        for (int bad = 0; bad < 2; bad++) {
            char what[128];
            snprintf(what, sizeof what, "%s %s n_tok=%lld%s", name, vki_type_name(t), (long long)toks[i],
                     bad ? " bad ids" : "");
            int32_t *ids = route(n_exp, 2, toks[i], bad);
            check_matmul_id(be, what, t, k, m, n_exp, 2, toks[i], ids, bad);
            free(ids);
        }
}

static void check_gather_cols_bad(bk_backend *be)
{
    const float probs[2][4] = {{0.1f, 0.2f, 0.3f, 0.4f}, {0.4f, 0.3f, 0.2f, 0.1f}};
    const int32_t ids[2][2] = {{3, 1}, {0, 4}};
    bk_tensor ta = vkt_tensor(be, VKI_TYPE_F32, 4, 2, probs);
    bk_tensor ti = vkt_tensor(be, VKI_TYPE_I32, 2, 2, ids);
    bk_tensor td = vkt_tensor(be, VKI_TYPE_F32, 2, 2, NULL);
    CHECK(bk_begin(be) == VKI_OK);
    vki_status st = bk_gather_cols(be, &td, &ta, &ti, true);
    vki_status st2 = bk_end(be);
    CHECKF(st == VKI_OK && st2 == VKI_ERR_INVALID_ARGUMENT, "GATHER_COLS bad id gave %s", vki_status_str(st2));
    CHECKF(strstr(vki_last_error(), "GATHER_COLS") && strstr(vki_last_error(), "outside"), "message: %s",
           vki_last_error());
    printf("GATHER_COLS bad id: %s\n", vki_last_error());
    float out[4];
    CHECK(be->iface->tensor_get(be, &td, out, 0, sizeof out) == VKI_OK);
    CHECKF(fabsf(out[0] - 0.4f / 0.6f) < 1e-6f && fabsf(out[1] - 0.2f / 0.6f) < 1e-6f, "good row: %g %g", out[0],
           out[1]);
    CHECKF(out[2] == 0.0f && out[3] == 0.0f, "bad row: %g %g", out[2], out[3]);
    vkt_free(be, &ta);
    vkt_free(be, &ti);
    vkt_free(be, &td);
}

int main(void)
{
    bk_backend *be = vkt_create(0);
    check_both_paths(be, "whole binding", VKI_TYPE_Q4_K, 256, 20, 16);
    check_gather_cols_bad(be);
    vkt_destroy(be);

    /* 32 KiB bindings, so the activations (24 pairs of 256) and outputs
     * fit one while the weights do not: F32 rows of 256 are 1 KiB, so
     * experts of 4 rows go about seven to a binding and experts of 40 rows
     * are split by rows; Q8_0 rows of 256 are 272 bytes (odd blocks). */
    setenv("VKI_VK_MAX_RANGE", "32768", 1);
    be = vkt_create(0);
    unsetenv("VKI_VK_MAX_RANGE");
    check_both_paths(be, "experts per window", VKI_TYPE_F32, 256, 4, 20);
    check_both_paths(be, "rows per window", VKI_TYPE_F32, 256, 40, 5);
    check_both_paths(be, "rows per window", VKI_TYPE_Q8_0, 256, 150, 6);
    vkt_destroy(be);
    return test_finish("test_vk_moe");
}
