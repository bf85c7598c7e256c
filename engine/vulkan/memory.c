/*
 * memory.c: device memory for the Vulkan backend. Buffers are suballocated
 * (first fit) from VkDeviceMemory blocks no larger than
 * maxMemoryAllocationSize; a buffer larger than that is split into pieces.
 * Every allocation is checked against the budget (VK_EXT_memory_budget or
 * the heap size, lowered by vram_budget). Uploads and readbacks go through
 * a host-visible staging ring of two slots so copying the next chunk on the
 * host overlaps the transfer of the previous one.
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "util.h"
#include "vk_internal.h"

#define MIB (1024ull * 1024ull)

static int find_type(vk_ctx *c, uint32_t bits, VkMemoryPropertyFlags want, VkMemoryPropertyFlags avoid)
{
    for (uint32_t i = 0; i < c->mem_props.memoryTypeCount; i++) {
        VkMemoryPropertyFlags f = c->mem_props.memoryTypes[i].propertyFlags;
        if ((bits & (1u << i)) && (f & want) == want && !(f & avoid)) return (int)i;
    }
    return -1;
}

static vki_status alloc_memory(vk_ctx *c, uint64_t size, uint32_t type, VkDeviceMemory *out)
{
    if (c->device_bytes + c->staging_bytes + size > c->budget)
        return vki_fail(VKI_ERR_OUT_OF_DEVICE_MEMORY,
                        "vulkan: allocating %llu MiB would exceed the budget of %llu MiB (%llu MiB in use) on %s",
                        (unsigned long long)(size / MIB), (unsigned long long)(c->budget / MIB),
                        (unsigned long long)((c->device_bytes + c->staging_bytes) / MIB), c->info.name);
    VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = size,
                               .memoryTypeIndex = type};
    VkResult r = vkAllocateMemory(c->dev, &ai, NULL, out);
    if (r != VK_SUCCESS) return vki_fail_prefix(vk_check(r, "vkAllocateMemory"), "%llu bytes", (unsigned long long)size);
    return VKI_OK;
}

/* ===== Block suballocator ================================================ */

static bool block_take(vk_block *b, uint64_t size, uint64_t align, uint64_t *offs)
{
    for (int i = 0; i < b->n_free; i++) {
        vk_free_range *f = &b->free[i];
        uint64_t o = vki_align_up(f->offs, align);
        if (o + size > f->offs + f->size) continue;
        uint64_t tail_o = o + size, tail_s = f->offs + f->size - tail_o;
        uint64_t head_s = o - f->offs;
        if (head_s && tail_s) { /* split in two: one more entry */
            if (b->n_free == b->cap_free) {
                int cap = b->cap_free * 2 + 4;
                vk_free_range *nf = realloc(b->free, (size_t)cap * sizeof(*nf));
                if (!nf) return false;
                b->free = nf;
                b->cap_free = cap;
                f = &b->free[i];
            }
            memmove(&b->free[i + 2], &b->free[i + 1], (size_t)(b->n_free - i - 1) * sizeof(*f));
            b->free[i].size = head_s;
            b->free[i + 1] = (vk_free_range){tail_o, tail_s};
            b->n_free++;
        } else if (head_s) {
            f->size = head_s;
        } else if (tail_s) {
            *f = (vk_free_range){tail_o, tail_s};
        } else {
            memmove(&b->free[i], &b->free[i + 1], (size_t)(b->n_free - i - 1) * sizeof(*f));
            b->n_free--;
        }
        *offs = o;
        b->n_live++;
        return true;
    }
    return false;
}

/* Gives [offs, offs+size) back, merging with its neighbours. */
static bool block_give(vk_block *b, uint64_t offs, uint64_t size)
{
    int i = 0;
    while (i < b->n_free && b->free[i].offs < offs) i++;
    bool merge_prev = i > 0 && b->free[i - 1].offs + b->free[i - 1].size == offs;
    bool merge_next = i < b->n_free && offs + size == b->free[i].offs;
    if (merge_prev && merge_next) {
        b->free[i - 1].size += size + b->free[i].size;
        memmove(&b->free[i], &b->free[i + 1], (size_t)(b->n_free - i - 1) * sizeof(b->free[0]));
        b->n_free--;
    } else if (merge_prev) {
        b->free[i - 1].size += size;
    } else if (merge_next) {
        b->free[i].offs = offs;
        b->free[i].size += size;
    } else {
        if (b->n_free == b->cap_free) {
            int cap = b->cap_free * 2 + 4;
            vk_free_range *nf = realloc(b->free, (size_t)cap * sizeof(*nf));
            if (!nf) return false;
            b->free = nf;
            b->cap_free = cap;
        }
        memmove(&b->free[i + 1], &b->free[i], (size_t)(b->n_free - i) * sizeof(b->free[0]));
        b->free[i] = (vk_free_range){offs, size};
        b->n_free++;
    }
    b->n_live--;
    return true;
}

static void block_destroy(vk_ctx *c, vk_block *b)
{
    vkFreeMemory(c->dev, b->mem, NULL);
    c->device_bytes -= b->size;
    c->n_blocks--;
    free(b->free);
    free(b);
}

/* Size of a new block for a request of size bytes. Blocks grow with what is
 * already held (1/32 of it, from 256 KiB up to block_size), so the free
 * tail of the newest block, the memory held but unused, stays under ~3% of
 * the total plus 256 KiB: memory_used reports held blocks, and one backend
 * serves one model, so a fixed 256 MiB block would be charged in full to a
 * 1 MiB model. Requests over half a block get a block of their own. */
static uint64_t block_size_for(const vk_ctx *c, uint64_t size)
{
    if (size > c->block_size / 2) return vki_align_up(size, 4096);
    uint64_t bs = VKI_MIN(VKI_MAX(c->device_bytes / 32, 256 * 1024ull), c->block_size);
    return vki_align_up(VKI_MAX(bs, size), 4096);
}

/* Suballocates size bytes (aligned) from a block, making a new block
 * (block_size_for, at most max_alloc) when none has room. */
static vki_status suballoc(vk_ctx *c, uint64_t size, uint64_t align, vk_block **ob, uint64_t *offs)
{
    for (vk_block *b = c->blocks; b; b = b->next)
        if (block_take(b, size, align, offs)) { *ob = b; return VKI_OK; }
    uint64_t bs = VKI_MIN(block_size_for(c, size), c->max_alloc);
    if (bs < size) return vki_fail(VKI_ERR_INTERNAL, "vulkan: piece of %llu bytes over the allocation limit",
                                   (unsigned long long)size);
    vk_block *b = calloc(1, sizeof(*b));
    if (!b) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
    vki_status st = alloc_memory(c, bs, c->mt_device, &b->mem);
    if (st == VKI_ERR_OUT_OF_DEVICE_MEMORY && bs > vki_align_up(size, 4096)) { /* a smaller block may still fit */
        bs = vki_align_up(size, 4096);
        st = alloc_memory(c, bs, c->mt_device, &b->mem);
    }
    if (st != VKI_OK) { free(b); return st; }
    b->size = bs;
    b->free = malloc(4 * sizeof(*b->free));
    if (!b->free) { vkFreeMemory(c->dev, b->mem, NULL); free(b); return vki_fail(VKI_ERR_OUT_OF_MEMORY, "vulkan: out of memory"); }
    b->cap_free = 4;
    b->n_free = 1;
    b->free[0] = (vk_free_range){0, bs};
    b->next = c->blocks;
    c->blocks = b;
    c->device_bytes += bs;
    c->n_blocks++;
    VKI_ASSERT(block_take(b, size, align, offs));
    *ob = b;
    return VKI_OK;
}

static const VkBufferUsageFlags buf_usage =
    VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;

/* Device buffers are shared by the compute and the transfer queue without
 * ownership transfers: concurrent sharing costs nothing measurable for
 * buffers, and the host orders the two queues through fences anyway (an
 * upload is waited for before a pass may use it). */
static void set_sharing(const vk_ctx *c, VkBufferCreateInfo *bi, uint32_t fams[2])
{
    if (c->xfam == c->qfam) {
        bi->sharingMode = VK_SHARING_MODE_EXCLUSIVE;
        return;
    }
    fams[0] = c->qfam;
    fams[1] = c->xfam;
    bi->sharingMode = VK_SHARING_MODE_CONCURRENT;
    bi->queueFamilyIndexCount = 2;
    bi->pQueueFamilyIndices = fams;
}

static vki_status piece_create(vk_ctx *c, vk_piece *p)
{
    VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = p->size, .usage = buf_usage};
    uint32_t fams[2];
    set_sharing(c, &bi, fams);
    VK_TRY(vkCreateBuffer(c->dev, &bi, NULL, &p->buf));
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(c->dev, p->buf, &req);
    vki_status st = VKI_OK;
    if (!(req.memoryTypeBits & (1u << c->mt_device))) {
        st = vki_fail(VKI_ERR_UNSUPPORTED, "vulkan: storage buffers cannot use memory type %u", c->mt_device);
        goto fail;
    }
    if ((st = suballoc(c, req.size, req.alignment, &p->block, &p->block_offs)) != VKI_OK) goto fail;
    VkResult r = vkBindBufferMemory(c->dev, p->buf, p->block->mem, p->block_offs);
    if (r != VK_SUCCESS) {
        block_give(p->block, p->block_offs, req.size);
        p->block = NULL;
        st = vk_check(r, "vkBindBufferMemory");
        goto fail;
    }
    return VKI_OK;
fail:
    vkDestroyBuffer(c->dev, p->buf, NULL);
    p->buf = VK_NULL_HANDLE;
    return st;
}

static void piece_destroy(vk_ctx *c, vk_piece *p)
{
    if (!p->buf) return;
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(c->dev, p->buf, &req);
    vkDestroyBuffer(c->dev, p->buf, NULL);
    p->buf = VK_NULL_HANDLE;
    block_give(p->block, p->block_offs, req.size);
    if (p->block->n_live == 0) { /* return empty blocks so the budget frees up for other models */
        for (vk_block **pp = &c->blocks; *pp; pp = &(*pp)->next)
            if (*pp == p->block) { *pp = p->block->next; break; }
        block_destroy(c, p->block);
    }
    p->block = NULL;
}

vki_status vk_buffer_create(vk_ctx *c, uint64_t size, bk_buffer_usage usage, bk_buffer **out)
{
    *out = NULL;
    if (size == 0) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vulkan: buffer of 0 bytes");
    /* Pieces: multiples of 256 bytes, so every piece start is aligned for any binding. */
    uint64_t piece = c->max_alloc / 256 * 256;
    uint64_t padded = vki_align_up(size, 16); /* kernels read whole 32-bit words */
    int n = (int)((padded + piece - 1) / piece);
    bk_buffer *b = calloc(1, sizeof(*b));
    if (!b || !(b->pieces = calloc((size_t)n, sizeof(vk_piece)))) {
        free(b);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
    }
    b->size = size;
    b->usage = usage;
    b->n_pieces = n;
    vki_status st = VKI_OK;
    for (int i = 0; i < n; i++) {
        b->pieces[i].base = (uint64_t)i * piece;
        b->pieces[i].size = VKI_MIN(piece, padded - b->pieces[i].base);
        if ((st = piece_create(c, &b->pieces[i])) != VKI_OK) goto fail;
    }
    c->buffer_bytes += size;
    *out = b;
    return VKI_OK;
fail:
    for (int i = 0; i < n; i++) piece_destroy(c, &b->pieces[i]);
    free(b->pieces);
    free(b);
    return st;
}

void vk_buffer_destroy(vk_ctx *c, bk_buffer *b)
{
    if (!b) return;
    for (int i = 0; i < b->n_pieces; i++) piece_destroy(c, &b->pieces[i]);
    c->buffer_bytes -= b->size;
    free(b->pieces);
    free(b);
}

int vk_piece_at(const bk_buffer *b, uint64_t offs)
{
    for (int i = 0; i < b->n_pieces; i++)
        if (offs >= b->pieces[i].base && offs < b->pieces[i].base + b->pieces[i].size) return i;
    return -1;
}

vki_status vk_bind(vk_ctx *c, bk_buffer *b, uint64_t offs, uint64_t size, bool write, const char *what,
                   vk_binding *out)
{
    if (offs + size > b->size)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vulkan: %s: bytes [%llu, %llu) outside its buffer of %llu", what,
                        (unsigned long long)offs, (unsigned long long)(offs + size), (unsigned long long)b->size);
    int pi = vk_piece_at(b, offs);
    VKI_ASSERT(pi >= 0);
    const vk_piece *p = &b->pieces[pi];
    if (offs + size > p->base + p->size)
        return vki_fail(VKI_ERR_UNSUPPORTED,
                        "vulkan: %s: bytes [%llu, %llu) straddle two device allocations (limit %llu bytes each); "
                        "place tensors so none crosses a multiple of that size",
                        what, (unsigned long long)offs, (unsigned long long)(offs + size),
                        (unsigned long long)(c->max_alloc / 256 * 256));
    uint64_t rel = offs - p->base;
    uint64_t ao = rel / c->align * c->align;
    uint64_t range = vki_align_up(rel + size, 4) - ao;
    if (range > c->max_range)
        return vki_fail(VKI_ERR_UNSUPPORTED, "vulkan: %s: %llu bytes exceed maxStorageBufferRange %llu in one binding",
                        what, (unsigned long long)range, (unsigned long long)c->max_range);
    *out = (vk_binding){.buf = p->buf, .offs = ao, .range = VKI_MIN(range, p->size - ao), .delta = rel - ao,
                        .write = write};
    return VKI_OK;
}

/* ===== Staging ring ====================================================== */

static vki_status slot_wait(vk_ctx *c, vk_staging_slot *s)
{
    if (!s->busy) return VKI_OK;
    VK_TRY(vkWaitForFences(c->dev, 1, &s->fence, VK_TRUE, UINT64_MAX));
    VK_TRY(vkResetFences(c->dev, 1, &s->fence));
    s->busy = false;
    return VKI_OK;
}

static vki_status ring_drain(vk_ctx *c)
{
    vki_status st = VKI_OK;
    for (int i = 0; i < VK_STAGING_SLOTS; i++) {
        vki_status s2 = slot_wait(c, &c->staging[i]);
        if (st == VKI_OK) st = s2;
    }
    return st;
}

/* Records and submits one copy between slot s and a piece. */
static vki_status slot_copy(vk_ctx *c, vk_staging_slot *s, VkBuffer dev, uint64_t dev_offs, uint64_t n, bool up)
{
    if (up) vk_qcache_drop(c, NULL); /* the host may be overwriting quantized rows' source */
    VK_TRY(vkResetCommandBuffer(s->cb, 0));
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VK_TRY(vkBeginCommandBuffer(s->cb, &bi));
    vk_barrier_all(s->cb); /* order against earlier copies (and passes, when this is the compute queue) */
    VkBufferCopy r = {.srcOffset = up ? 0 : dev_offs, .dstOffset = up ? dev_offs : 0, .size = n};
    vkCmdCopyBuffer(s->cb, up ? s->buf : dev, up ? dev : s->buf, 1, &r);
    if (!up) {
        VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                              .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
        vkCmdPipelineBarrier(s->cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    }
    VK_TRY(vkEndCommandBuffer(s->cb));
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &s->cb};
    VK_TRY(vkQueueSubmit(c->xqueue, 1, &si, s->fence));
    s->busy = true;
    return VKI_OK;
}

vki_status vk_upload(vk_ctx *c, bk_buffer *b, uint64_t offs, const void *src, uint64_t size, bk_progress_cb cb,
                     void *user)
{
    if (c->recording) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vulkan: tensor_set between begin and end");
    if (offs + size > b->size || offs + size < offs)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vulkan: upload of %llu bytes at %llu outside a buffer of %llu",
                        (unsigned long long)size, (unsigned long long)offs, (unsigned long long)b->size);
    const uint8_t *p = src;
    uint64_t done = 0;
    vki_status st = VKI_OK;
    while (done < size) {
        int pi = vk_piece_at(b, offs + done);
        const vk_piece *pc = &b->pieces[pi];
        uint64_t n = VKI_MIN(size - done, c->staging_size);
        n = VKI_MIN(n, pc->base + pc->size - (offs + done));
        vk_staging_slot *s = &c->staging[c->staging_next];
        c->staging_next = (c->staging_next + 1) % VK_STAGING_SLOTS;
        if ((st = slot_wait(c, s)) != VKI_OK) break;
        memcpy(s->map, p + done, n);
        if ((st = slot_copy(c, s, pc->buf, offs + done - pc->base, n, true)) != VKI_OK) break;
        done += n;
        if (cb && !cb(done, size, user)) {
            st = vki_fail(VKI_ERR_CANCELLED, "vulkan: upload cancelled after %llu of %llu bytes",
                          (unsigned long long)done, (unsigned long long)size);
            break;
        }
    }
    vki_status s2 = ring_drain(c);
    return st != VKI_OK ? st : s2;
}

vki_status vk_download(vk_ctx *c, bk_buffer *b, uint64_t offs, void *dst, uint64_t size)
{
    if (c->recording) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vulkan: tensor_get between begin and end");
    if (offs + size > b->size || offs + size < offs)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vulkan: readback of %llu bytes at %llu outside a buffer of %llu",
                        (unsigned long long)size, (unsigned long long)offs, (unsigned long long)b->size);
    uint8_t *p = dst;
    uint64_t done = 0;
    vk_staging_slot *s = &c->staging[0];
    VKI_TRY(ring_drain(c));
    while (done < size) {
        int pi = vk_piece_at(b, offs + done);
        const vk_piece *pc = &b->pieces[pi];
        uint64_t n = VKI_MIN(size - done, c->staging_size);
        n = VKI_MIN(n, pc->base + pc->size - (offs + done));
        VKI_TRY(slot_copy(c, s, pc->buf, offs + done - pc->base, n, false));
        VKI_TRY(slot_wait(c, s));
        memcpy(p + done, s->map, n);
        done += n;
    }
    return VKI_OK;
}

/* ===== Init ============================================================== */

vki_status vk_memory_init(vk_ctx *c, uint64_t vram_budget)
{
    c->align = VKI_MAX(c->props.limits.minStorageBufferOffsetAlignment, 16);
    c->max_alloc = c->info.max_memory_allocation_size ? c->info.max_memory_allocation_size : (1ull << 30);
    if (c->dbg.max_alloc) c->max_alloc = VKI_MIN(c->max_alloc, c->dbg.max_alloc);
    c->max_alloc = VKI_MAX(c->max_alloc, 1 * MIB);
    c->max_range = c->props.limits.maxStorageBufferRange;
    if (c->dbg.max_range) c->max_range = VKI_MIN(c->max_range, VKI_MAX(c->dbg.max_range, 4096));
    c->max_range = c->max_range / c->align * c->align;
    /* Blocks of up to 256 MiB (ggml uses up to 1 GiB): big enough that a
     * large model needs a few dozen, small enough not to strand much of a
     * budget; smaller models get smaller blocks (block_size_for). */
    c->budget = c->info.budget;
    if (vram_budget && vram_budget < c->budget) c->budget = vram_budget;
    c->block_size = VKI_MIN(VKI_MIN(256 * MIB, c->max_alloc), VKI_MAX(c->budget / 8, 16 * MIB));

    int t = find_type(c, ~0u, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0);
    if (t < 0) t = find_type(c, ~0u, 0, 0);
    int h = find_type(c, ~0u, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT |
                                  VK_MEMORY_PROPERTY_HOST_CACHED_BIT, 0);
    if (h < 0) h = find_type(c, ~0u, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT, 0);
    if (t < 0 || h < 0) return vki_fail(VKI_ERR_UNSUPPORTED, "vulkan: %s lacks device-local or host-coherent memory", c->info.name);
    c->mt_device = (uint32_t)t;
    c->mt_host = (uint32_t)h;

    c->staging_size = c->dbg.staging ? vki_align_up(c->dbg.staging, 256) : 8 * MIB;
    VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                   .queueFamilyIndex = c->xfam};
    VK_TRY(vkCreateCommandPool(c->dev, &pci, NULL, &c->xfer_pool));
    for (int i = 0; i < VK_STAGING_SLOTS; i++) {
        vk_staging_slot *s = &c->staging[i];
        VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = c->staging_size,
                                 .usage = VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                                 .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
        VK_TRY(vkCreateBuffer(c->dev, &bi, NULL, &s->buf));
        VkMemoryRequirements req;
        vkGetBufferMemoryRequirements(c->dev, s->buf, &req);
        int ht = find_type(c, req.memoryTypeBits, c->mem_props.memoryTypes[c->mt_host].propertyFlags, 0);
        if (ht < 0) return vki_fail(VKI_ERR_UNSUPPORTED, "vulkan: no host-visible memory for staging");
        VKI_TRY(alloc_memory(c, req.size, (uint32_t)ht, &s->mem));
        c->staging_bytes += req.size;
        VK_TRY(vkBindBufferMemory(c->dev, s->buf, s->mem, 0));
        VK_TRY(vkMapMemory(c->dev, s->mem, 0, VK_WHOLE_SIZE, 0, &s->map));
        VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                          .commandPool = c->xfer_pool, .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                          .commandBufferCount = 1};
        VK_TRY(vkAllocateCommandBuffers(c->dev, &ai, &s->cb));
        VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        VK_TRY(vkCreateFence(c->dev, &fi, NULL, &s->fence));
    }
    /* A small buffer bound to the descriptor slots an op leaves unused. */
    VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = 256, .usage = buf_usage,
                             .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VK_TRY(vkCreateBuffer(c->dev, &bi, NULL, &c->dummy));
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(c->dev, c->dummy, &req);
    VKI_TRY(alloc_memory(c, req.size, c->mt_device, &c->dummy_mem));
    c->staging_bytes += req.size;
    VK_TRY(vkBindBufferMemory(c->dev, c->dummy, c->dummy_mem, 0));

    /* The status words: host-visible so end() reads them without a copy. */
    bi.size = 256;
    VK_TRY(vkCreateBuffer(c->dev, &bi, NULL, &c->status));
    vkGetBufferMemoryRequirements(c->dev, c->status, &req);
    int st = find_type(c, req.memoryTypeBits, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT, 0);
    if (st < 0) return vki_fail(VKI_ERR_UNSUPPORTED, "vulkan: no host-visible memory for storage buffers on %s", c->info.name);
    VKI_TRY(alloc_memory(c, req.size, (uint32_t)st, &c->status_mem));
    c->staging_bytes += req.size;
    VK_TRY(vkBindBufferMemory(c->dev, c->status, c->status_mem, 0));
    void *map = NULL;
    VK_TRY(vkMapMemory(c->dev, c->status_mem, 0, VK_WHOLE_SIZE, 0, &map));
    c->status_map = map;
    for (int i = 0; i < VK_STATUS_WORDS; i++) c->status_map[i] = 0;
    return VKI_OK;
}

vk_binding vk_status_binding(const vk_ctx *c)
{
    return (vk_binding){.buf = c->status, .offs = 0, .range = 256, .delta = 0, .write = true};
}

void vk_memory_deinit(vk_ctx *c)
{
    if (!c->dev) return;
    ring_drain(c);
    for (int i = 0; i < VK_STAGING_SLOTS; i++) {
        vk_staging_slot *s = &c->staging[i];
        if (s->fence) vkDestroyFence(c->dev, s->fence, NULL);
        if (s->buf) vkDestroyBuffer(c->dev, s->buf, NULL);
        if (s->mem) vkFreeMemory(c->dev, s->mem, NULL);
        memset(s, 0, sizeof(*s));
    }
    if (c->xfer_pool) vkDestroyCommandPool(c->dev, c->xfer_pool, NULL); /* frees the slots' buffers */
    c->xfer_pool = VK_NULL_HANDLE;
    c->staging_bytes = 0;
    if (c->dummy) {
        vkDestroyBuffer(c->dev, c->dummy, NULL);
        c->dummy = VK_NULL_HANDLE;
    }
    if (c->dummy_mem) vkFreeMemory(c->dev, c->dummy_mem, NULL);
    c->dummy_mem = VK_NULL_HANDLE;
    if (c->status) vkDestroyBuffer(c->dev, c->status, NULL);
    if (c->status_mem) vkFreeMemory(c->dev, c->status_mem, NULL); /* unmaps */
    c->status = VK_NULL_HANDLE;
    c->status_mem = VK_NULL_HANDLE;
    c->status_map = NULL;
    while (c->blocks) {
        vk_block *b = c->blocks;
        c->blocks = b->next;
        block_destroy(c, b);
    }
}
