/*
 * backend_vk.c: the Vulkan bk_iface: creation (device, memory, pipelines,
 * command recording, in that order; destroyed in reverse), buffers, tensor
 * copies, and the begin/compute/end recording of a forward pass.
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "util.h"
#include "vk_internal.h"

static vk_ctx *ctx_of(bk_backend *be) { return be->ctx; }

static const char *vk_name(bk_backend *be) { return ctx_of(be)->name; }

static void vk_destroy(bk_backend *be)
{
    if (!be) return;
    vk_ctx *c = ctx_of(be);
    if (c) {
        if (c->dev) vkDeviceWaitIdle(c->dev);
        vk_profile_deinit(c);
        vk_pipeline_deinit(c);
        vk_scratch_deinit(c);
        vk_memory_deinit(c);
        vk_cmd_deinit(c);
        vk_device_deinit(c);
        free(c);
    }
    free(be);
}

static vki_status vk_buffer_create_if(bk_backend *be, uint64_t size, bk_buffer_usage usage, bk_buffer **out)
{
    return vk_buffer_create(ctx_of(be), size, usage, out);
}

static void vk_buffer_destroy_if(bk_backend *be, bk_buffer *buf) { vk_buffer_destroy(ctx_of(be), buf); }

static vki_status check_copy(const bk_tensor *t, uint64_t offs, uint64_t size, const char *what)
{
    uint64_t n = bk_nbytes(t);
    if (offs > n || size > n - offs)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vulkan: %s of bytes [%llu, %llu) of tensor '%s' of %llu bytes", what,
                        (unsigned long long)offs, (unsigned long long)(offs + size), t->name ? t->name : "?",
                        (unsigned long long)n);
    return VKI_OK;
}

vki_status bk_vk_tensor_set_progress(bk_backend *be, const bk_tensor *t, const void *src, uint64_t offs,
                                     uint64_t size, bk_progress_cb cb, void *user)
{
    VKI_TRY(check_copy(t, offs, size, "upload"));
    return vk_upload(ctx_of(be), t->buf, t->offs + offs, src, size, cb, user);
}

static vki_status vk_tensor_set(bk_backend *be, const bk_tensor *t, const void *src, uint64_t offs, uint64_t size)
{
    return bk_vk_tensor_set_progress(be, t, src, offs, size, NULL, NULL);
}

static vki_status vk_tensor_get(bk_backend *be, const bk_tensor *t, void *dst, uint64_t offs, uint64_t size)
{
    VKI_TRY(check_copy(t, offs, size, "readback"));
    return vk_download(ctx_of(be), t->buf, t->offs + offs, dst, size);
}

static bool vk_supports_op(bk_backend *be, const bk_op *op) { return vk_op_check(ctx_of(be), op) == VKI_OK; }
static vki_status vk_begin(bk_backend *be) { return vk_cmd_begin(ctx_of(be)); }
static vki_status vk_compute(bk_backend *be, const bk_op *op) { return vk_op_record(ctx_of(be), op); }
static vki_status vk_end(bk_backend *be) { return vk_cmd_end(ctx_of(be)); }
/* The device memory held for buffers (their blocks), not the bytes asked
 * for: that is what counts against the budget and what a scheduler must
 * plan with. The staging ring is host memory and reported apart. */
static uint64_t vk_memory_used(bk_backend *be) { return ctx_of(be)->device_bytes; }

static const bk_iface vk_iface = {
    .version = BK_IFACE_VERSION,
    .name = vk_name,
    .destroy = vk_destroy,
    .buffer_create = vk_buffer_create_if,
    .buffer_destroy = vk_buffer_destroy_if,
    .buffer_from_host = NULL, /* device memory: weights are always copied in */
    .buffer_host_ptr = NULL,
    .tensor_set = vk_tensor_set,
    .tensor_get = vk_tensor_get,
    .supports_op = vk_supports_op,
    .begin = vk_begin,
    .compute = vk_compute,
    .end = vk_end,
    .memory_used = vk_memory_used,
};

vki_status bk_vk_create(const bk_vk_params *params, bk_backend **out)
{
    *out = NULL;
    bk_vk_params def = {.device = -1};
    const bk_vk_params *p = params ? params : &def;
    bk_backend *be = calloc(1, sizeof(*be));
    vk_ctx *c = calloc(1, sizeof(*c));
    if (!be || !c) {
        free(be);
        free(c);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
    }
    be->iface = &vk_iface;
    be->ctx = c;
    be->kind = VKI_BACKEND_VULKAN;
    vk_debug_read(&c->dbg);
    vki_status st;
    if ((st = vk_device_init(c, p)) != VKI_OK) goto fail;
    if ((st = vk_cmd_init(c)) != VKI_OK) goto fail;
    if ((st = vk_memory_init(c, p->vram_budget)) != VKI_OK) goto fail;
    if ((st = vk_pipeline_init(c)) != VKI_OK) goto fail;
    if ((st = vk_profile_init(c)) != VKI_OK) goto fail;
    *out = be;
    return VKI_OK;
fail:
    vk_destroy(be);
    return st;
}

uint64_t bk_vk_validation_count(bk_backend *be) { return atomic_load(&ctx_of(be)->n_validation); }
bool bk_vk_validation_active(bk_backend *be) { return ctx_of(be)->validation; }

void bk_vk_memory_stats_get(bk_backend *be, bk_vk_memory_stats *out)
{
    vk_ctx *c = ctx_of(be);
    *out = (bk_vk_memory_stats){.buffers = c->buffer_bytes, .device = c->device_bytes, .staging = c->staging_bytes,
                                .budget = c->budget, .n_blocks = c->n_blocks,
                                .max_storage_buffer_range = c->max_range, .max_memory_allocation_size = c->max_alloc};
}

bool bk_vk_matmul_intdot(bk_backend *be) { return ctx_of(be)->use_intdot; }

const char *bk_vk_matmul_kernel(bk_backend *be)
{
    static const char *const names[] = {"tiled", "coopemu", "coopmat"};
    return names[ctx_of(be)->matmul_path];
}
