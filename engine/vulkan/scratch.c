/*
 * scratch.c: device memory a pass's kernels pass between themselves (the
 * int-dot mat-vec's quantized activations). One buffer used as a ring:
 * each request takes the next aligned range, wrapping to the start when
 * the end is reached; cmd.c's hazard tracking puts a barrier in before a
 * range is rewritten while an earlier dispatch of the pass may still read
 * it. A request larger than the ring replaces it with a larger one; the
 * old buffer may still be read by the recorded pass, so it is kept until
 * the pass's fence (vk_scratch_reset at the next begin, or deinit).
 */
#include "error.h"
#include "util.h"
#include "vk_internal.h"

#define SCRATCH_MIN (1ull << 20)

vki_status vk_scratch_get(vk_ctx *c, uint64_t size, vk_binding *out)
{
    uint64_t need = vki_align_up(size, c->align);
    if (!c->scratch || need > c->scratch->size) {
        if (c->n_scratch_old == VK_SCRATCH_OLD)
            return vki_fail(VKI_ERR_INTERNAL, "vulkan: scratch grew %d times in one pass", VK_SCRATCH_OLD);
        uint64_t cap = VKI_MAX(VKI_MAX(need, SCRATCH_MIN), c->scratch ? 2 * c->scratch->size : 0);
        bk_buffer *nb = NULL;
        VKI_TRY(vk_buffer_create(c, cap, BK_BUFFER_COMPUTE, &nb));
        if (c->scratch) c->scratch_old[c->n_scratch_old++] = c->scratch;
        c->scratch = nb;
        c->scratch_used = 0;
    }
    if (c->scratch_used + need > c->scratch->size) c->scratch_used = 0;
    VKI_TRY(vk_bind(c, c->scratch, c->scratch_used, size, true, "scratch", out));
    c->scratch_used += need;
    return VKI_OK;
}

void vk_scratch_reset(vk_ctx *c)
{
    vk_qcache_drop(c, NULL); /* its blocks lived in this pass's ring */
    for (int i = 0; i < c->n_scratch_old; i++) vk_buffer_destroy(c, c->scratch_old[i]);
    c->n_scratch_old = 0;
    c->scratch_used = 0;
}

void vk_scratch_deinit(vk_ctx *c)
{
    vk_scratch_reset(c);
    if (c->scratch) vk_buffer_destroy(c, c->scratch);
    c->scratch = NULL;
}
