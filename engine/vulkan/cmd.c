/*
 * cmd.c: recording one forward pass into a command buffer. begin() resets
 * the descriptor pools and opens the buffer; each dispatch pushes its
 * buffers (VK_KHR_push_descriptor) or, without it, gets a fresh descriptor
 * set, and a barrier only when it touches memory an earlier
 * dispatch of the pass wrote (read-after-write, write-after-write) or reads
 * that it now writes (write-after-read); end() submits and waits on a fence.
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "util.h"
#include "vk_internal.h"

#define SETS_PER_POOL 512

vki_status vk_cmd_init(vk_ctx *c)
{
    VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                   .queueFamilyIndex = c->qfam};
    VK_TRY(vkCreateCommandPool(c->dev, &pci, NULL, &c->cmd_pool));
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                      .commandPool = c->cmd_pool, .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                      .commandBufferCount = 1};
    VK_TRY(vkAllocateCommandBuffers(c->dev, &ai, &c->cb));
    VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VK_TRY(vkCreateFence(c->dev, &fi, NULL, &c->fence));
    return VKI_OK;
}

void vk_cmd_deinit(vk_ctx *c)
{
    if (!c->dev) return;
    for (int i = 0; i < c->n_dpools; i++) vkDestroyDescriptorPool(c->dev, c->dpools[i], NULL);
    free(c->dpools);
    c->dpools = NULL;
    c->n_dpools = 0;
    free(c->hazards);
    c->hazards = NULL;
    if (c->fence) vkDestroyFence(c->dev, c->fence, NULL);
    if (c->cmd_pool) vkDestroyCommandPool(c->dev, c->cmd_pool, NULL);
    c->fence = VK_NULL_HANDLE;
    c->cmd_pool = VK_NULL_HANDLE;
}

void vk_barrier_all(VkCommandBuffer cb)
{
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_MEMORY_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT};
    vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, 0, 1, &mb, 0,
                         NULL, 0, NULL);
}

vki_status vk_cmd_begin(vk_ctx *c)
{
    if (c->recording) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vulkan: begin called twice without end");
    for (int i = 0; i < c->n_dpools; i++) VK_TRY(vkResetDescriptorPool(c->dev, c->dpools[i], 0));
    c->cur_dpool = 0;
    c->n_hazards = 0;
    c->n_gather = 0;
    c->n_routed = 0;
    vk_scratch_reset(c);
    /* The previous pass's fence was waited on: no kernel uses the words. */
    for (int i = 0; i < VK_STATUS_WORDS; i++) c->status_map[i] = 0;
    VK_TRY(vkResetCommandBuffer(c->cb, 0));
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VK_TRY(vkBeginCommandBuffer(c->cb, &bi));
    /* Uploads and earlier passes finished (their fences were waited on); this
     * makes their writes visible to the shaders of this pass. */
    vk_barrier_all(c->cb);
    vk_profile_begin(c);
    c->recording = true;
    return VKI_OK;
}

vki_status vk_submit_wait(vk_ctx *c, VkCommandBuffer cb, VkFence fence)
{
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &cb};
    VK_TRY(vkQueueSubmit(c->queue, 1, &si, fence));
    VK_TRY(vkWaitForFences(c->dev, 1, &fence, VK_TRUE, UINT64_MAX));
    VK_TRY(vkResetFences(c->dev, 1, &fence));
    return VKI_OK;
}

vki_status vk_cmd_end(vk_ctx *c)
{
    if (!c->recording) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vulkan: end without begin");
    c->recording = false;
    vk_barrier_all(c->cb); /* results visible to readback copies */
    if (c->n_gather || c->n_routed) { /* the status words visible to the host after the fence */
        VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                              .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
        vkCmdPipelineBarrier(c->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0,
                             NULL, 0, NULL);
    }
    VK_TRY(vkEndCommandBuffer(c->cb));
    VKI_TRY(vk_submit_wait(c, c->cb, c->fence));
    vk_profile_end(c);
    /* A kernel met bad input. It wrote zeros where the id would have led,
     * so nothing unwritten or out of bounds was read; the pass still fails,
     * as the CPU backend's does. */
    volatile const uint32_t *w = c->status_map;
    int32_t id = (int32_t)w[VK_STATUS_ID];
    switch (w[VK_STATUS_FLAG]) {
    case 0: return VKI_OK;
    case VK_STATUS_OP_GET_ROWS:
        return vki_fail(VKI_ERR_INVALID_ARGUMENT,
                        "vulkan: GET_ROWS (number %u of the pass): id %d at index %u is outside the table's rows [0, %u)",
                        w[VK_STATUS_TAG] + 1, id, w[VK_STATUS_INDEX], w[VK_STATUS_ROWS]);
    case VK_STATUS_OP_MATMUL_ID:
        return vki_fail(VKI_ERR_INVALID_ARGUMENT,
                        "vulkan: MATMUL_ID (MoE op number %u of the pass): expert %d for (token, slot) %u is outside "
                        "[0, %u)", w[VK_STATUS_TAG] + 1, id, w[VK_STATUS_INDEX], w[VK_STATUS_ROWS]);
    case VK_STATUS_OP_GATHER_COLS:
        return vki_fail(VKI_ERR_INVALID_ARGUMENT,
                        "vulkan: GATHER_COLS (MoE op number %u of the pass): column id %d at index %u is outside "
                        "[0, %u)", w[VK_STATUS_TAG] + 1, id, w[VK_STATUS_INDEX], w[VK_STATUS_ROWS]);
    default:
        return vki_fail(VKI_ERR_INTERNAL, "vulkan: unknown status flag %u", w[VK_STATUS_FLAG]);
    }
}

void vk_groups_2d(uint64_t n, uint32_t *gx, uint32_t *gy)
{
    if (n <= 65535) {
        *gx = (uint32_t)(n ? n : 1);
        *gy = 1;
    } else {
        *gx = 65535;
        *gy = (uint32_t)((n + 65534) / 65535);
    }
}

static vki_status alloc_set(vk_ctx *c, VkDescriptorSet *out)
{
    for (;;) {
        if (c->cur_dpool == c->n_dpools) {
            VkDescriptorPoolSize ps = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, SETS_PER_POOL * VK_MAX_BINDINGS};
            VkDescriptorPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                              .maxSets = SETS_PER_POOL, .poolSizeCount = 1, .pPoolSizes = &ps};
            VkDescriptorPool *np = realloc(c->dpools, (size_t)(c->n_dpools + 1) * sizeof(*np));
            if (!np) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
            c->dpools = np;
            VK_TRY(vkCreateDescriptorPool(c->dev, &pci, NULL, &c->dpools[c->n_dpools]));
            c->n_dpools++;
        }
        VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                          .descriptorPool = c->dpools[c->cur_dpool], .descriptorSetCount = 1,
                                          .pSetLayouts = &c->dsl};
        VkResult r = vkAllocateDescriptorSets(c->dev, &ai, out);
        if (r == VK_SUCCESS) return VKI_OK;
        if (r != VK_ERROR_OUT_OF_POOL_MEMORY && r != VK_ERROR_FRAGMENTED_POOL) return vk_check(r, "vkAllocateDescriptorSets");
        c->cur_dpool++; /* this pool is full: the next one */
    }
}

static bool overlaps(const vk_range *r, const vk_binding *b)
{
    return r->buf == b->buf && r->lo < b->offs + b->range && b->offs < r->hi;
}

/* True when b conflicts with a range touched since the last barrier. The
 * status words are exempt: kernels only claim them with an atomic
 * compare-and-swap (the first report wins) and the host reads them after
 * the fence, so no dispatch orders against another through them. */
static bool hazard(const vk_ctx *c, const vk_binding *b)
{
    if (b->buf == c->status) return false;
    for (int i = 0; i < c->n_hazards; i++)
        if ((b->write || c->hazards[i].write) && overlaps(&c->hazards[i], b)) return true;
    return false;
}

static vki_status track(vk_ctx *c, const vk_binding *b)
{
    if (c->n_hazards == c->cap_hazards) {
        int cap = c->cap_hazards * 2 + 32;
        vk_range *nh = realloc(c->hazards, (size_t)cap * sizeof(*nh));
        if (!nh) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
        c->hazards = nh;
        c->cap_hazards = cap;
    }
    c->hazards[c->n_hazards++] = (vk_range){b->buf, b->offs, b->offs + b->range, b->write};
    return VKI_OK;
}

vki_status vk_dispatch(vk_ctx *c, const char *variant, uint32_t spec0, uint32_t spec1, const vk_binding *b,
                       int n, const void *push, uint32_t push_size, uint32_t gx, uint32_t gy, uint32_t gz)
{
    VKI_ASSERT(c->recording && n <= VK_MAX_BINDINGS && push_size <= 128);
    VkPipeline pipe;
    VKI_TRY(vk_pipeline_get(c, variant, spec0, spec1, &pipe));
    VkDescriptorBufferInfo bi[VK_MAX_BINDINGS];
    VkWriteDescriptorSet w[VK_MAX_BINDINGS];
    VkDescriptorSet set = VK_NULL_HANDLE;
    if (!c->use_push) VKI_TRY(alloc_set(c, &set));
    for (int i = 0; i < VK_MAX_BINDINGS; i++) {
        bi[i] = i < n ? (VkDescriptorBufferInfo){b[i].buf, b[i].offs, b[i].range}
                      : (VkDescriptorBufferInfo){c->dummy, 0, VK_WHOLE_SIZE};
        w[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = set,
                                      .dstBinding = (uint32_t)i, .descriptorCount = 1,
                                      .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .pBufferInfo = &bi[i]};
    }
    if (!c->use_push) vkUpdateDescriptorSets(c->dev, VK_MAX_BINDINGS, w, 0, NULL);

    bool need = false;
    for (int i = 0; i < n && !need; i++) need = hazard(c, &b[i]);
    if (need) {
        VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                              .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT};
        vkCmdPipelineBarrier(c->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1,
                             &mb, 0, NULL, 0, NULL);
        c->n_hazards = 0;
        c->n_barrier++;
    }
    for (int i = 0; i < n; i++) {
        if (b[i].buf != c->status) VKI_TRY(track(c, &b[i]));
        if (b[i].write) vk_qcache_drop(c, &b[i]);
    }

    vk_profile_before_dispatch(c);
    uint8_t pc[128] = {0};
    memcpy(pc, push, push_size);
    vkCmdBindPipeline(c->cb, VK_PIPELINE_BIND_POINT_COMPUTE, pipe);
    if (c->use_push)
        c->push_set(c->cb, VK_PIPELINE_BIND_POINT_COMPUTE, c->layout, 0, VK_MAX_BINDINGS, w);
    else
        vkCmdBindDescriptorSets(c->cb, VK_PIPELINE_BIND_POINT_COMPUTE, c->layout, 0, 1, &set, 0, NULL);
    vkCmdPushConstants(c->cb, c->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, 128, pc);
    vkCmdDispatch(c->cb, gx, gy, gz);
    vk_profile_after_dispatch(c, variant);
    c->n_dispatch++;
    return VKI_OK;
}
