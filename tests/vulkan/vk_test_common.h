/* vk_test_common.h: helpers the Vulkan tests share: a backend with
 * validation on (skipping when there is no device), tensors filled from the
 * host, and the zero-validation-message check. */
#ifndef VKI_VK_TEST_COMMON_H
#define VKI_VK_TEST_COMMON_H

#include "engine/backend.h"
#include "engine/vulkan/backend_vk.h"

/* bk_vk_create with validation; skips the test when Vulkan is absent. */
bk_backend *vkt_create(uint64_t vram_budget);
/* Checks no validation message was seen, then destroys be. */
void vkt_destroy(bk_backend *be);
/* A new buffer holding a contiguous tensor of type t with data. */
bk_tensor vkt_tensor(bk_backend *be, vki_type t, int64_t ne0, int64_t ne1, const void *data);
void vkt_free(bk_backend *be, bk_tensor *t);
/* The activations a MATMUL of n rows of x (each k long) with weight type t
 * multiplies on this backend: x itself, or, where the int-dot mat-vec runs
 * (bk_vk_matmul_intdot, Q8_0/Q4_0/Q4_K/Q6_K, n <= 8), x as shaders/
 * quantize_q8.comp rounds it (blocks of 32, d = max|x| / 127, q =
 * round(x / d)), so a test's reference sums what the kernel sums. out may
 * be x. */
void vkt_matmul_activations(bk_backend *be, vki_type t, const float *x, int64_t k, int64_t n, float *out);

#endif
