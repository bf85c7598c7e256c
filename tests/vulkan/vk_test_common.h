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

#endif
