/*
 * vk_internal.h: the Vulkan backend's own state, shared by device.c,
 * memory.c, pipeline.c, cmd.c, ops_*.c and backend_vk.c. Nothing outside
 * engine/vulkan includes it. Must not: contain GLSL or know about models.
 */
#ifndef VKI_VK_INTERNAL_H
#define VKI_VK_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <vulkan/vulkan.h>

#include "engine/backend.h"
#include "engine/vulkan/backend_vk.h"
#include "engine/vulkan/push.h"

#define VK_MAX_BINDINGS 5   /* the one descriptor-set layout: bindings 0..4, storage buffers */
#define VK_STAGING_SLOTS 2

/* Knobs read once at device creation (engine/vulkan/README.md lists them). */
typedef struct vk_debug {
    uint64_t max_alloc;      /* VKI_VK_MAX_ALLOC: lower maxMemoryAllocationSize (bytes) */
    uint64_t max_range;      /* VKI_VK_MAX_RANGE: lower maxStorageBufferRange (bytes)    */
    uint64_t staging;        /* VKI_VK_STAGING: bytes per staging slot                   */
    bool     no_subgroup;    /* VKI_VK_DISABLE_SUBGROUP=1                                */
    bool     no_transfer_queue; /* VKI_VK_NO_TRANSFER_QUEUE=1: uploads on the compute queue */
    bool     profile;        /* VKI_VK_PROFILE=1: per-variant GPU times at destroy       */
    bool     no_push_descriptor; /* VKI_VK_NO_PUSH_DESCRIPTOR=1: descriptor sets from pools */
    bool     no_intdot;      /* VKI_VK_NO_INTDOT=1: float mat-vecs even with integer dot products */
    bool     no_qreuse;      /* VKI_VK_NO_QREUSE=1: quantize the activations for every int-dot mat-vec */
    char     matmul[16];     /* VKI_VK_MATMUL: "", "tiled", "coopemu" or "coopmat" (mat-mat kernel) */
} vk_debug;

/* The mat-mat kernel for more than 8 activation rows (ops_matmul.c). */
typedef enum vk_matmul_path {
    VK_MATMUL_TILED = 0,  /* matmul.comp: f32 register tiles                        */
    VK_MATMUL_COOPEMU,    /* matmul_cm.comp, cooperative matrices emulated in shared memory */
    VK_MATMUL_COOPMAT,    /* matmul_cm.comp on VK_KHR_cooperative_matrix (16x16x16 f16)  */
} vk_matmul_path;

#define VK_SCRATCH_OLD 8 /* scratch buffers a pass may outgrow (scratch.c) */

typedef struct vk_free_range { uint64_t offs, size; } vk_free_range;

/* One VkDeviceMemory that buffers are suballocated from (first fit). */
typedef struct vk_block {
    VkDeviceMemory   mem;
    uint64_t         size;
    vk_free_range   *free;   /* sorted by offs, coalesced */
    int              n_free, cap_free;
    int              n_live;
    struct vk_block *next;
} vk_block;

/* A bk_buffer is one or more pieces, each a VkBuffer no larger than the
 * allocation limit; a tensor must lie inside one piece. */
typedef struct vk_piece {
    VkBuffer  buf;
    vk_block *block;
    uint64_t  block_offs; /* where in block->mem       */
    uint64_t  base, size; /* bytes [base, base+size) of the bk_buffer */
} vk_piece;

struct bk_buffer {
    uint64_t        size;
    bk_buffer_usage usage;
    int             n_pieces;
    vk_piece       *pieces;
};

/* A byte range of one VkBuffer as a descriptor binds it. */
typedef struct vk_binding {
    VkBuffer buf;
    uint64_t offs, range; /* offs aligned to minStorageBufferOffsetAlignment */
    uint64_t delta;       /* bytes from offs to what the kernel addresses    */
    bool     write;
} vk_binding;

typedef struct vk_pipeline {
    const char *variant;
    uint32_t    spec[2];
    VkPipeline  pipe;
} vk_pipeline;

typedef struct vk_staging_slot {
    VkBuffer        buf;
    VkDeviceMemory  mem;
    void           *map;
    VkCommandBuffer cb;
    VkFence         fence;
    bool            busy;
} vk_staging_slot;

typedef struct vk_range { VkBuffer buf; uint64_t lo, hi; bool write; } vk_range;

typedef struct vk_ctx {
    vk_debug  dbg;
    char      name[320];
    /* instance and device */
    VkInstance               inst;
    VkDebugUtilsMessengerEXT msgr;
    bool                     validation;
    atomic_uint_fast64_t     n_validation;
    VkPhysicalDevice         pdev;
    bk_vk_device_info        info;
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties mem_props;
    VkDevice                 dev;
    VkQueue                  queue;   /* compute */
    uint32_t                 qfam;
    VkQueue                  xqueue;  /* uploads/readbacks: a transfer-only family, or = queue */
    uint32_t                 xfam;
    bool                     use_subgroup;
    bool                     use_push;  /* VK_KHR_push_descriptor: no descriptor sets */
    bool                     use_intdot; /* int-dot mat-vecs (shaderIntegerDotProduct enabled) */
    vk_matmul_path           matmul_path;
    uint32_t                 cm_subgroup;      /* subgroup size matmul_cm runs at (x 4 = workgroup) */
    bool                     cm_required_size; /* ... set through VK_EXT_subgroup_size_control */
    PFN_vkCmdPushDescriptorSetKHR push_set;
    /* memory */
    uint64_t  max_alloc, max_range, align, block_size;
    uint32_t  mt_device, mt_host;
    uint64_t  budget, device_bytes, buffer_bytes, staging_bytes;
    vk_block *blocks;
    uint32_t  n_blocks;
    VkCommandPool   xfer_pool;  /* on xfam, for the staging slots */
    vk_staging_slot staging[VK_STAGING_SLOTS];
    uint64_t  staging_size;
    int       staging_next;
    VkBuffer  dummy;           /* bound to unused binding slots */
    VkDeviceMemory dummy_mem;
    /* Host-visible words kernels report bad input through (VK_STATUS_*):
     * GET_ROWS, MATMUL_ID and GATHER_COLS ids outside their tables. Cleared
     * at begin, read after the fence. */
    VkBuffer  status;
    VkDeviceMemory status_mem;
    volatile uint32_t *status_map;
    /* pipelines */
    VkPipelineCache       pcache;
    char                  pcache_path[512];
    VkDescriptorSetLayout dsl;
    VkPipelineLayout      layout;
    vk_pipeline          *pipes;
    int                   n_pipes, cap_pipes;
    /* command recording for one forward pass */
    VkCommandPool     cmd_pool;
    VkCommandBuffer   cb;
    VkFence           fence;
    bool              recording;
    VkDescriptorPool *dpools;
    int               n_dpools, cur_dpool;
    vk_range         *hazards; /* ranges touched since the last barrier */
    int               n_hazards, cap_hazards;
    uint64_t          n_dispatch, n_barrier;
    uint32_t          n_gather;  /* GET_ROWS dispatches recorded in this pass */
    uint32_t          n_routed;  /* MATMUL_ID and GATHER_COLS ops recorded in this pass */
    struct vk_profile *prof;     /* VKI_VK_PROFILE, else NULL */
    /* The last activations quantized for an int-dot mat-vec (ops_matmul.c):
     * Q, K and V, or gate and up, read the same rows, which are quantized
     * once while neither they nor their blocks in the scratch ring have
     * been written since (vk_qcache_drop). */
    struct {
        bool           valid;
        vk_binding     src, q; /* the f32 rows as bound; their 8-bit blocks */
        vk_push_tensor x;
        uint32_t       k, n, x_ne1, x_ne2, q_offs;
    } qcache;
    uint64_t n_qreuse; /* quantize dispatches saved, for tests */
    /* scratch ring (scratch.c) */
    bk_buffer *scratch;
    uint64_t   scratch_used;
    bk_buffer *scratch_old[VK_SCRATCH_OLD];
    int        n_scratch_old;
} vk_ctx;

/* The status words (vk_ctx.status), mirrored by shaders/get_rows.comp,
 * gather_cols.comp, matvec.comp and matmul.comp. The flag names the op
 * that reported (VK_STATUS_OP_*); ROWS is the size of what the id indexes,
 * TAG the op's number in the pass among those of its kind. */
enum { VK_STATUS_FLAG = 0, VK_STATUS_ID, VK_STATUS_INDEX, VK_STATUS_ROWS, VK_STATUS_TAG, VK_STATUS_WORDS };
enum { VK_STATUS_OP_GET_ROWS = 1, VK_STATUS_OP_MATMUL_ID = 2, VK_STATUS_OP_GATHER_COLS = 3 };

/* ===== device.c ===== */
/* Maps a VkResult to a status, naming the call: the one vk_check path. */
vki_status vk_check(VkResult r, const char *call);
#define VK_TRY(call) do { VkResult vk_try_r_ = (call); \
    if (vk_try_r_ != VK_SUCCESS) return vk_check(vk_try_r_, #call); } while (0)
vki_status vk_device_init(vk_ctx *c, const bk_vk_params *p);
void       vk_device_deinit(vk_ctx *c);
void       vk_debug_read(vk_debug *d);

/* ===== memory.c ===== */
vki_status vk_memory_init(vk_ctx *c, uint64_t vram_budget);
void       vk_memory_deinit(vk_ctx *c);
vki_status vk_buffer_create(vk_ctx *c, uint64_t size, bk_buffer_usage usage, bk_buffer **out);
void       vk_buffer_destroy(vk_ctx *c, bk_buffer *b);
vki_status vk_upload(vk_ctx *c, bk_buffer *b, uint64_t offs, const void *src, uint64_t size,
                     bk_progress_cb cb, void *user);
vki_status vk_download(vk_ctx *c, bk_buffer *b, uint64_t offs, void *dst, uint64_t size);
/* Binds bytes [offs, offs+size) of b; fails when they straddle pieces or
 * exceed maxStorageBufferRange. what names the tensor for the message. */
vki_status vk_bind(vk_ctx *c, bk_buffer *b, uint64_t offs, uint64_t size, bool write, const char *what,
                   vk_binding *out);
/* The status buffer as a binding (written with atomics, never hazard-tracked). */
vk_binding vk_status_binding(const vk_ctx *c);
/* The piece holding byte offs of b (its index), or -1. */
int vk_piece_at(const bk_buffer *b, uint64_t offs);

/* ===== pipeline.c ===== */
vki_status vk_pipeline_init(vk_ctx *c);
void       vk_pipeline_deinit(vk_ctx *c);
/* The pipeline of variant with spec constants {spec0 (workgroup), spec1}. */
vki_status vk_pipeline_get(vk_ctx *c, const char *variant, uint32_t spec0, uint32_t spec1, VkPipeline *out);
/* The default spec constants of a variant (create_all uses them). */
void vk_pipeline_defaults(const char *variant, uint32_t *spec0, uint32_t *spec1);
/* Whether this build embeds a variant (feature-tested ones may be absent). */
bool vk_pipeline_embedded(const char *variant);
/* Whether this device can run a variant: "_sg" needs subgroup arithmetic,
 * "_dot" integer dot products, "_cm" cooperative matrices. */
bool vk_variant_usable(const vk_ctx *c, const char *variant);

/* ===== ops_matmul.c ===== */
/* Forgets the cached quantized activations when b writes over them or
 * over the rows they came from (vk_dispatch, for every binding it
 * records); b NULL forgets them outright (a new pass, a wrapped ring). */
void vk_qcache_drop(vk_ctx *c, const vk_binding *b);

/* ===== scratch.c ===== */
/* size bytes of the scratch ring for this pass (written by one dispatch,
 * read by the next; the hazard tracking orders reuse). */
vki_status vk_scratch_get(vk_ctx *c, uint64_t size, vk_binding *out);
void       vk_scratch_reset(vk_ctx *c); /* at begin: the previous pass is done */
void       vk_scratch_deinit(vk_ctx *c);

/* ===== cmd.c ===== */
vki_status vk_cmd_init(vk_ctx *c);
void       vk_cmd_deinit(vk_ctx *c);
vki_status vk_cmd_begin(vk_ctx *c);
vki_status vk_cmd_end(vk_ctx *c);
/* Records one dispatch of groups (x, y, z); bindings fill slots 0..n-1. A
 * barrier goes in first when a binding overlaps a range a previous dispatch
 * of this pass wrote (or writes one it read). */
vki_status vk_dispatch(vk_ctx *c, const char *variant, uint32_t spec0, uint32_t spec1, const vk_binding *b,
                       int n, const void *push, uint32_t push_size, uint32_t gx, uint32_t gy, uint32_t gz);
/* Splits n linear workgroups into x <= 65535 and y. */
void vk_groups_2d(uint64_t n, uint32_t *gx, uint32_t *gy);
/* A one-off command buffer on the queue, waited for (uploads use their own ring). */
vki_status vk_submit_wait(vk_ctx *c, VkCommandBuffer cb, VkFence fence);
/* A full memory barrier: every earlier write visible to every later access. */
void vk_barrier_all(VkCommandBuffer cb);

/* ===== profile.c ===== (no-ops unless VKI_VK_PROFILE=1) */
typedef struct vk_profile vk_profile;
vki_status vk_profile_init(vk_ctx *c);
void       vk_profile_deinit(vk_ctx *c); /* prints the table */
void       vk_profile_begin(vk_ctx *c);
void       vk_profile_before_dispatch(vk_ctx *c);
void       vk_profile_after_dispatch(vk_ctx *c, const char *variant);
void       vk_profile_end(vk_ctx *c); /* after the pass's fence */

/* ===== ops_*.c ===== */
/* Checks op against what the kernels handle; the reason via vki_fail. */
vki_status vk_op_check(vk_ctx *c, const bk_op *op);
vki_status vk_op_record(vk_ctx *c, const bk_op *op);
vki_status vk_ops_basic(vk_ctx *c, const bk_op *op, bool record);
vki_status vk_ops_matmul(vk_ctx *c, const bk_op *op, bool record);
vki_status vk_ops_attn(vk_ctx *c, const bk_op *op, bool record);
/* TOP_K, GATHER_COLS, MOE_SUM, MATMUL_ID (ops_moe.c). */
vki_status vk_ops_moe(vk_ctx *c, const bk_op *op, bool record);
/* The variant suffix of a weight type ("q4_k"), or NULL without kernels. */
const char *vk_weight_suffix(vki_type t);
/* Weight rows per matvec workgroup for rows of k elements (ops_matmul.c). */
uint32_t vk_matvec_rows(const vk_ctx *c, int64_t k);
/* Binding of a whole tensor (every element) and its push-constant view in
 * units of elem_bytes. */
vki_status vk_bind_tensor(vk_ctx *c, const bk_tensor *t, bool write, uint32_t elem_bytes, vk_binding *b,
                          vk_push_tensor *pt);

#endif
