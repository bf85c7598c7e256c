/*
 * backend_vk.h: what the Vulkan backend offers beyond bk_iface: the device
 * list (`vkinfer devices`), device lookup by name, the validation-message
 * count tests assert on, uploads with progress/cancel, and memory figures.
 * Must not: expose Vulkan types (callers need no vulkan.h).
 */
#ifndef VKI_BACKEND_VK_H
#define VKI_BACKEND_VK_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/backend.h"

#define BK_VK_MAX_HEAPS 8

/* One physical device as `vkinfer devices` shows it. */
typedef struct bk_vk_device_info {
    int32_t  index;                /* position in enumeration order (bk_vk_params.device) */
    char     name[256];
    const char *type;              /* "discrete", "integrated", "virtual", "cpu", "other" */
    char     driver[512];          /* driver name and info                                */
    uint32_t api_version, driver_version, vendor_id, device_id;
    int32_t  n_heaps;
    uint64_t heap_size[BK_VK_MAX_HEAPS];
    bool     heap_device_local[BK_VK_MAX_HEAPS];
    uint64_t budget;               /* of the largest device-local heap: VK_EXT_memory_budget or its size */
    bool     has_memory_budget;    /* VK_EXT_memory_budget present                        */
    uint32_t subgroup_size;
    bool     subgroup_arithmetic;  /* compute stage                                       */
    bool     fp16;                 /* shaderFloat16                                       */
    bool     int8;                 /* shaderInt8                                          */
    bool     storage_16bit;        /* storageBuffer16BitAccess                            */
    bool     integer_dot;          /* VK_KHR_shader_integer_dot_product                   */
    bool     coopmat;              /* VK_KHR_cooperative_matrix                           */
    bool     coopmat_f16;          /* ... lists 16x16x16 f16 x f16 -> f32 at subgroup scope,
                                      with shaderFloat16 and vulkanMemoryModel (what
                                      matmul_cm.comp's hardware form needs)               */
    uint32_t subgroup_min, subgroup_max; /* VK_EXT_subgroup_size_control range (0: none) */
    bool     push_descriptor;      /* VK_KHR_push_descriptor                              */
    bool     transfer_queue;       /* a queue family for transfers only (DMA engine)      */
    bool     timestamps;           /* compute queue writes timestamps (VKI_VK_PROFILE)    */
    uint64_t max_storage_buffer_range, max_memory_allocation_size;
    uint32_t max_shared_memory;
    int32_t  score;                /* higher = preferred by device = -1                  */
} bk_vk_device_info;

/* Lists the Vulkan devices. *out is malloc'd (caller frees); *n may be 0.
 * VKI_ERR_UNSUPPORTED when no Vulkan loader/ICD answers. */
vki_status bk_vk_list_devices(bk_vk_device_info **out, int *n);

/* Resolves "-1"/"auto", an index, or a case-insensitive name substring to a
 * device index (-1 = best). VKI_ERR_NOT_FOUND when nothing matches. */
vki_status bk_vk_find_device(const char *spec, int32_t *out);

/* Validation-layer warnings and errors seen since bk_vk_create (0 when
 * validation is off). Tests assert it stays 0. */
uint64_t bk_vk_validation_count(bk_backend *be);
/* True when validation was requested and the layer was found and enabled. */
bool bk_vk_validation_active(bk_backend *be);

/* The kernels this device runs MATMUL with (VKI_VK_NO_INTDOT and
 * VKI_VK_MATMUL choose; engine/vulkan/README.md): whether mat-vecs of
 * Q8_0/Q4_0/Q4_K/Q6_K use integer dot products, and the mat-mat kernel
 * for more than 8 rows, "tiled", "coopemu" or "coopmat". The last two
 * round weights and activations to f16 (F16 and quantized weights; F32
 * and BF16 stay on "tiled"). */
bool        bk_vk_matmul_intdot(bk_backend *be);
const char *bk_vk_matmul_kernel(bk_backend *be);
/* Whether this MATMUL runs on a kernel that rounds its inputs to f16 (the
 * op suite then compares it with a reference on the same rounded inputs). */
bool        bk_vk_matmul_f16(bk_backend *be, const bk_op *op);

/* tensor_set with progress: copies in staging-ring chunks, calling cb after
 * each; cb returning false stops the upload (VKI_ERR_CANCELLED; the bytes
 * already copied stay). cb may be NULL. */
vki_status bk_vk_tensor_set_progress(bk_backend *be, const bk_tensor *t, const void *src, uint64_t offs,
                                     uint64_t size, bk_progress_cb cb, void *user);

typedef struct bk_vk_memory_stats {
    uint64_t buffers;      /* bytes of live bk_buffers as asked for               */
    uint64_t device;       /* bytes of VkDeviceMemory blocks held for them
                              (= memory_used)                                    */
    uint64_t staging;      /* host-visible staging ring                          */
    uint64_t budget;       /* the budget allocations are checked against         */
    uint32_t n_blocks;
    uint64_t max_storage_buffer_range, max_memory_allocation_size; /* effective  */
} bk_vk_memory_stats;
void bk_vk_memory_stats_get(bk_backend *be, bk_vk_memory_stats *out);

/* Creates every pipeline now (tests; warms the pipeline cache). Returns the
 * count created through *n_out. */
vki_status bk_vk_create_all_pipelines(bk_backend *be, int *n_out);
/* The pipeline-cache file this device uses ("" when none could be made). */
const char *bk_vk_pipeline_cache_path(bk_backend *be);

#endif
