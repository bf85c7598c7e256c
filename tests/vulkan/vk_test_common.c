/* vk_test_common.c: see vk_test_common.h. */
#include "vk_test_common.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "test_util.h"

bk_backend *vkt_create(uint64_t vram_budget)
{
    bk_vk_params p = {.device = -1, .vram_budget = vram_budget, .validation = true};
    bk_backend *be = NULL;
    vki_status st = bk_vk_create(&p, &be);
    if (st == VKI_ERR_UNSUPPORTED) test_skip("no Vulkan device: %s", vki_last_error());
    if (st != VKI_OK) {
        fprintf(stderr, "bk_vk_create: %s\n", vki_last_error());
        exit(1);
    }
    if (!bk_vk_validation_active(be)) fprintf(stderr, "note: validation layer not installed; messages not checked\n");
    return be;
}

void vkt_destroy(bk_backend *be)
{
    CHECKF(bk_vk_validation_count(be) == 0, "%llu validation messages",
           (unsigned long long)bk_vk_validation_count(be));
    bk_destroy(be);
}

bk_tensor vkt_tensor(bk_backend *be, vki_type t, int64_t ne0, int64_t ne1, const void *data)
{
    bk_buffer *buf = NULL;
    int64_t ne[2] = {ne0, ne1};
    bk_tensor x = bk_tensor_make(t, 2, ne, NULL, 0);
    if (be->iface->buffer_create(be, bk_nbytes(&x), BK_BUFFER_COMPUTE, &buf) != VKI_OK) {
        fprintf(stderr, "buffer_create: %s\n", vki_last_error());
        exit(1);
    }
    x.buf = buf;
    if (data && be->iface->tensor_set(be, &x, data, 0, bk_nbytes(&x)) != VKI_OK) {
        fprintf(stderr, "tensor_set: %s\n", vki_last_error());
        exit(1);
    }
    return x;
}

void vkt_free(bk_backend *be, bk_tensor *t)
{
    be->iface->buffer_destroy(be, t->buf);
    t->buf = NULL;
}

void vkt_matmul_activations(bk_backend *be, vki_type t, const float *x, int64_t k, int64_t n, float *out)
{
    bool q8 = bk_vk_matmul_intdot(be) && n <= 8 && k % 32 == 0 &&
              (t == VKI_TYPE_Q8_0 || t == VKI_TYPE_Q4_0 || t == VKI_TYPE_Q4_K || t == VKI_TYPE_Q6_K);
    for (int64_t b = 0; b < k * n; b += 32) {
        float amax = 0.0f;
        for (int i = 0; q8 && i < 32; i++) amax = fmaxf(amax, fabsf(x[b + i]));
        float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
        for (int64_t i = b; i < b + 32 && i < k * n; i++) {
            float q = roundf(x[i] * id);
            out[i] = q8 ? d * fminf(fmaxf(q, -127.0f), 127.0f) : x[i];
        }
    }
}
