/*
 * test_vk_get_rows.c: GET_ROWS with ids outside the table. The Vulkan pass
 * must fail with INVALID_ARGUMENT naming the id, as the CPU backend's does,
 * and never read outside the table: rows of bad ids are zeros, rows of good
 * ids are right, including when the table is bound window by window
 * (VKI_VK_MAX_RANGE forced small); the next pass works again.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "util.h"
#include "vk_test_common.h"

#define NAN_BITS 0xFFFFFFFFu

/* Runs GET_ROWS of ids over a table of type t [rows][d] on be; checks the
 * status (bad = some id is out of range) and every output row. */
static void check_gather(bk_backend *be, const char *what, vki_type t, int64_t d, int64_t rows, const int32_t *ids,
                         int64_t n, bool bad)
{
    uint64_t rb = vki_row_bytes(t, d);
    float *f = malloc(sizeof(float) * (size_t)(d * rows)), *out = malloc(sizeof(float) * (size_t)(d * n));
    float *ref = malloc(sizeof(float) * (size_t)d);
    uint8_t *q = malloc((size_t)(rb * rows));
    uint64_t rng = 7;
    for (int64_t i = 0; i < d * rows; i++) f[i] = test_rand_f32(&rng, -1, 1);
    for (int64_t r = 0; r < rows; r++) CHECK(vki_quantize_row(t, f + r * d, q + r * rb, d));
    bk_tensor tab = vkt_tensor(be, t, d, rows, q);
    bk_tensor ti = vkt_tensor(be, VKI_TYPE_I32, n, 1, ids);
    uint32_t *nan = malloc(sizeof(float) * (size_t)(d * n));
    for (int64_t i = 0; i < d * n; i++) nan[i] = NAN_BITS;
    bk_tensor td = vkt_tensor(be, VKI_TYPE_F32, d, n, nan);
    tab.name = "table";

    CHECK(bk_begin(be) == VKI_OK);
    vki_status st = bk_get_rows(be, &td, &tab, &ti);
    vki_status st2 = bk_end(be);
    if (bad) {
        CHECKF(st != VKI_OK || st2 == VKI_ERR_INVALID_ARGUMENT, "%s: a bad id gave %s", what, vki_status_str(st2));
        CHECKF(strstr(vki_last_error(), "outside") != NULL, "%s: message: %s", what, vki_last_error());
        printf("%s: %s\n", what, vki_last_error());
    } else {
        CHECKF(st == VKI_OK && st2 == VKI_OK, "%s: %s", what, vki_last_error());
    }
    /* Vulkan writes every row (zeros for bad ids); the CPU stops at the
     * first bad id, so only its status is compared. */
    if (be->kind == VKI_BACKEND_VULKAN || !bad) {
        CHECK(be->iface->tensor_get(be, &td, out, 0, sizeof(float) * (uint64_t)(d * n)) == VKI_OK);
        for (int64_t r = 0; r < n; r++) {
            bool ok_id = ids[r] >= 0 && ids[r] < rows;
            if (ok_id) vki_dequantize_row(t, q + (uint64_t)ids[r] * rb, ref, d);
            int64_t wrong = 0;
            for (int64_t i = 0; i < d; i++) {
                float want = ok_id ? ref[i] : 0.0f, got = out[r * d + i];
                if (!(got == want)) wrong++;
            }
            CHECKF(wrong == 0, "%s: row %lld (id %d): %lld of %lld elements wrong", what, (long long)r, ids[r],
                   (long long)wrong, (long long)d);
        }
    }
    vkt_free(be, &tab);
    vkt_free(be, &ti);
    vkt_free(be, &td);
    free(f);
    free(out);
    free(ref);
    free(q);
    free(nan);
}

int main(void)
{
    const int32_t bad_ids[] = {3, -1, 9, 10, 7, INT32_MAX, 0, INT32_MIN};
    const int32_t good_ids[] = {9, 0, 4, 4};

    bk_backend *be = vkt_create(0);
    check_gather(be, "vulkan Q8_0 bad ids", VKI_TYPE_Q8_0, 64, 10, bad_ids, 8, true);
    check_gather(be, "vulkan Q8_0 after the error", VKI_TYPE_Q8_0, 64, 10, good_ids, 4, false);
    check_gather(be, "vulkan F16 d=33 bad ids", VKI_TYPE_F16, 33, 10, bad_ids, 8, true);
    vkt_destroy(be);

    /* 64 f32 per row = 256 bytes; 4 KiB bindings (the knob's floor) hold
     * at most 16 rows, so a 40-row table takes 3 or more windows. */
    setenv("VKI_VK_MAX_RANGE", "4096", 1);
    be = vkt_create(0);
    unsetenv("VKI_VK_MAX_RANGE");
    const int32_t win_ids[] = {39, -5, 20, 40, 0, 13, 1000000};
    check_gather(be, "vulkan windows bad ids", VKI_TYPE_F32, 64, 40, win_ids, 7, true);
    const int32_t win_good[] = {39, 20, 0, 13};
    check_gather(be, "vulkan windows", VKI_TYPE_F32, 64, 40, win_good, 4, false);
    vkt_destroy(be);

    /* The CPU backend refuses the same pass. */
    bk_backend *cpu = NULL;
    CHECK(bk_cpu_create(1, &cpu) == VKI_OK);
    check_gather(cpu, "cpu Q8_0 bad ids", VKI_TYPE_Q8_0, 64, 10, bad_ids, 8, true);
    check_gather(cpu, "cpu Q8_0", VKI_TYPE_Q8_0, 64, 10, good_ids, 4, false);
    bk_destroy(cpu);
    return test_finish("test_vk_get_rows");
}
