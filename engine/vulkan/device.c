/*
 * device.c: the Vulkan instance (with validation and a message counter when
 * asked), the physical-device list and choice (discrete > integrated >
 * virtual > CPU driver, overridable by index or name), the logical device
 * and its compute queue, and vk_check, the one VkResult -> vki_status path.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "util.h"
#include "vk_internal.h"

vki_status vk_check(VkResult r, const char *call)
{
    switch (r) {
    case VK_SUCCESS: return VKI_OK;
    case VK_ERROR_OUT_OF_HOST_MEMORY:
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "vulkan: %s: out of host memory", call);
    case VK_ERROR_OUT_OF_DEVICE_MEMORY:
        return vki_fail(VKI_ERR_OUT_OF_DEVICE_MEMORY, "vulkan: %s: out of device memory", call);
    case VK_ERROR_DEVICE_LOST:
        return vki_fail(VKI_ERR_DEVICE_LOST, "vulkan: %s: device lost", call);
    case VK_TIMEOUT: return vki_fail(VKI_ERR_TIMEOUT, "vulkan: %s: timed out", call);
    case VK_ERROR_INITIALIZATION_FAILED:
    case VK_ERROR_INCOMPATIBLE_DRIVER:
    case VK_ERROR_EXTENSION_NOT_PRESENT:
    case VK_ERROR_LAYER_NOT_PRESENT:
    case VK_ERROR_FEATURE_NOT_PRESENT:
        return vki_fail(VKI_ERR_UNSUPPORTED, "vulkan: %s failed (VkResult %d)", call, (int)r);
    default: return vki_fail(VKI_ERR_INTERNAL, "vulkan: %s failed (VkResult %d)", call, (int)r);
    }
}

static uint64_t env_u64(const char *name)
{
    const char *s = getenv(name);
    return s && *s ? strtoull(s, NULL, 0) : 0;
}

void vk_debug_read(vk_debug *d)
{
    d->max_alloc = env_u64("VKI_VK_MAX_ALLOC");
    d->max_range = env_u64("VKI_VK_MAX_RANGE");
    d->staging = env_u64("VKI_VK_STAGING");
    d->no_subgroup = env_u64("VKI_VK_DISABLE_SUBGROUP") != 0;
    d->no_transfer_queue = env_u64("VKI_VK_NO_TRANSFER_QUEUE") != 0;
    d->no_push_descriptor = env_u64("VKI_VK_NO_PUSH_DESCRIPTOR") != 0;
    d->profile = env_u64("VKI_VK_PROFILE") != 0;
    d->no_intdot = env_u64("VKI_VK_NO_INTDOT") != 0;
    d->no_qreuse = env_u64("VKI_VK_NO_QREUSE") != 0;
    const char *mm = getenv("VKI_VK_MATMUL");
    snprintf(d->matmul, sizeof(d->matmul), "%s", mm ? mm : "");
}

/* ===== Instance ========================================================== */

static VKAPI_ATTR VkBool32 VKAPI_CALL on_message(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
                                                 VkDebugUtilsMessageTypeFlagsEXT type,
                                                 const VkDebugUtilsMessengerCallbackDataEXT *data, void *user)
{
    (void)type;
    vk_ctx *c = user;
    if (sev & (VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT)) {
        atomic_fetch_add(&c->n_validation, 1);
        fprintf(stderr, "vkinfer: vulkan validation: %s\n", data->pMessage);
    }
    return VK_FALSE;
}

static bool layer_present(const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || !n) return false;
    VkLayerProperties *l = calloc(n, sizeof(*l));
    bool found = false;
    if (l && vkEnumerateInstanceLayerProperties(&n, l) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++) found |= strcmp(l[i].layerName, name) == 0;
    free(l);
    return found;
}

/* c may be NULL (device listing): then no validation. */
static vki_status instance_create(vk_ctx *c, bool validation, VkInstance *out)
{
    const char *layer = "VK_LAYER_KHRONOS_validation";
    const char *ext = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
    bool val = validation && layer_present(layer);
    if (validation && !val)
        fprintf(stderr, "vkinfer: validation requested but %s is not installed; running without it\n", layer);
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "vkinfer",
                             .pEngineName = "vkinfer", .apiVersion = VK_API_VERSION_1_2};
    VkDebugUtilsMessengerCreateInfoEXT mci = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = on_message, .pUserData = c};
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app};
    if (val) {
        ci.enabledLayerCount = 1;
        ci.ppEnabledLayerNames = &layer;
        ci.enabledExtensionCount = 1;
        ci.ppEnabledExtensionNames = &ext;
        ci.pNext = &mci; /* also catches messages from vkCreateInstance itself */
    }
    VkResult r = vkCreateInstance(&ci, NULL, out);
    if (r != VK_SUCCESS) {
        vk_check(r, "vkCreateInstance");
        return vki_fail_prefix(VKI_ERR_UNSUPPORTED, "no usable Vulkan driver");
    }
    if (c && val) {
        PFN_vkCreateDebugUtilsMessengerEXT fn =
            (PFN_vkCreateDebugUtilsMessengerEXT)vkGetInstanceProcAddr(*out, "vkCreateDebugUtilsMessengerEXT");
        if (!fn || fn(*out, &mci, NULL, &c->msgr) != VK_SUCCESS) {
            vkDestroyInstance(*out, NULL);
            *out = VK_NULL_HANDLE;
            return vki_fail(VKI_ERR_UNSUPPORTED, "vulkan: vkCreateDebugUtilsMessengerEXT failed");
        }
        c->validation = true;
    }
    return VKI_OK;
}

/* ===== Device description ================================================ */

/* VK_KHR_cooperative_matrix (headers from 1.3.255; Debian 12 has 1.3.239):
 * the structures and values this file uses, as the specification defines
 * them, when the headers lack them. */
#ifndef VK_KHR_cooperative_matrix
typedef struct VkCooperativeMatrixPropertiesKHR {
    VkStructureType sType;
    void           *pNext;
    uint32_t        MSize, NSize, KSize;
    int32_t         AType, BType, CType, ResultType; /* VkComponentTypeKHR */
    VkBool32        saturatingAccumulation;
    int32_t         scope;                           /* VkScopeKHR */
} VkCooperativeMatrixPropertiesKHR;
typedef struct VkPhysicalDeviceCooperativeMatrixFeaturesKHR {
    VkStructureType sType;
    void           *pNext;
    VkBool32        cooperativeMatrix, cooperativeMatrixRobustBufferAccess;
} VkPhysicalDeviceCooperativeMatrixFeaturesKHR;
typedef VkResult(VKAPI_PTR *PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)(
    VkPhysicalDevice, uint32_t *, VkCooperativeMatrixPropertiesKHR *);
#define VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR ((VkStructureType)1000506000)
#define VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR ((VkStructureType)1000506001)
#define VK_COMPONENT_TYPE_FLOAT16_KHR 0
#define VK_COMPONENT_TYPE_FLOAT32_KHR 1
#define VK_SCOPE_SUBGROUP_KHR 3
#endif

/* Does the device list the one shape matmul_cm.comp is written for? */
static bool coopmat_16x16x16(VkInstance inst, VkPhysicalDevice pd)
{
    PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR fn =
        (PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)vkGetInstanceProcAddr(
            inst, "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR");
    uint32_t n = 0;
    if (!fn || fn(pd, &n, NULL) != VK_SUCCESS || !n) return false;
    VkCooperativeMatrixPropertiesKHR *p = calloc(n, sizeof(*p));
    if (!p) return false;
    for (uint32_t i = 0; i < n; i++) p[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR;
    bool found = false;
    if (fn(pd, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++)
            found |= p[i].MSize == 16 && p[i].NSize == 16 && p[i].KSize == 16 &&
                     p[i].AType == VK_COMPONENT_TYPE_FLOAT16_KHR && p[i].BType == VK_COMPONENT_TYPE_FLOAT16_KHR &&
                     p[i].CType == VK_COMPONENT_TYPE_FLOAT32_KHR && p[i].ResultType == VK_COMPONENT_TYPE_FLOAT32_KHR &&
                     p[i].scope == VK_SCOPE_SUBGROUP_KHR && !p[i].saturatingAccumulation;
    free(p);
    return found;
}

static bool has_ext(const VkExtensionProperties *e, uint32_t n, const char *name)
{
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(e[i].extensionName, name) == 0) return true;
    return false;
}

/* A family that transfers but neither computes nor draws: a DMA engine
 * (AMD's SDMA), which copies weights in while the compute queue serves. */
static int transfer_family(const VkQueueFamilyProperties *qf, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if ((qf[i].queueFlags & VK_QUEUE_TRANSFER_BIT) && qf[i].queueCount > 0 &&
            !(qf[i].queueFlags & (VK_QUEUE_GRAPHICS_BIT | VK_QUEUE_COMPUTE_BIT)))
            return (int)i;
    return -1;
}

static void describe(VkInstance inst, VkPhysicalDevice pd, int index, bk_vk_device_info *d)
{
    memset(d, 0, sizeof(*d));
    d->index = index;
    uint32_t n_ext = 0;
    vkEnumerateDeviceExtensionProperties(pd, NULL, &n_ext, NULL);
    VkExtensionProperties *ext = calloc(n_ext ? n_ext : 1, sizeof(*ext));
    if (ext) vkEnumerateDeviceExtensionProperties(pd, NULL, &n_ext, ext);
    else n_ext = 0;
    d->has_memory_budget = has_ext(ext, n_ext, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
    d->integer_dot = has_ext(ext, n_ext, "VK_KHR_shader_integer_dot_product");
    bool size_control = has_ext(ext, n_ext, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
    d->coopmat = has_ext(ext, n_ext, "VK_KHR_cooperative_matrix");
    d->push_descriptor = has_ext(ext, n_ext, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME);
    free(ext);

    VkPhysicalDeviceDriverProperties drv = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    VkPhysicalDeviceSubgroupSizeControlProperties sgc = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES};
    drv.pNext = size_control ? &sgc : NULL;
    VkPhysicalDeviceSubgroupProperties sg = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES, .pNext = &drv};
    VkPhysicalDeviceMaintenance3Properties m3 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES, .pNext = &sg};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &m3};
    vkGetPhysicalDeviceProperties2(pd, &p2);
    const VkPhysicalDeviceProperties *p = &p2.properties;
    snprintf(d->name, sizeof(d->name), "%s", p->deviceName);
    snprintf(d->driver, sizeof(d->driver), "%s %s", drv.driverName, drv.driverInfo);
    static const char *const types[] = {"other", "integrated", "discrete", "virtual", "cpu"};
    static const int32_t scores[] = {0, 3, 4, 2, 1};
    int ti = p->deviceType <= VK_PHYSICAL_DEVICE_TYPE_CPU ? (int)p->deviceType : 0;
    d->type = types[ti];
    d->score = scores[ti];
    d->api_version = p->apiVersion;
    d->driver_version = p->driverVersion;
    d->vendor_id = p->vendorID;
    d->device_id = p->deviceID;
    d->subgroup_size = sg.subgroupSize;
    d->subgroup_arithmetic = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                             (sg.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT);
    d->max_storage_buffer_range = p->limits.maxStorageBufferRange;
    d->max_memory_allocation_size = m3.maxMemoryAllocationSize;
    d->max_shared_memory = p->limits.maxComputeSharedMemorySize;

    /* The extension alone does not say the shader feature is on. */
    VkPhysicalDeviceShaderIntegerDotProductFeatures fdot = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES};
    VkPhysicalDeviceSubgroupSizeControlFeatures fsgc = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES};
    VkPhysicalDeviceCooperativeMatrixFeaturesKHR fcm = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR};
    void *chain = NULL; /* only the structures of extensions the device has */
    if (d->integer_dot) fdot.pNext = chain, chain = &fdot;
    if (size_control) fsgc.pNext = chain, chain = &fsgc;
    if (d->coopmat) fcm.pNext = chain, chain = &fcm;
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES, .pNext = chain};
    VkPhysicalDeviceVulkan11Features f11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES, .pNext = &f12};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f11};
    vkGetPhysicalDeviceFeatures2(pd, &f2);
    d->fp16 = f12.shaderFloat16;
    d->int8 = f12.shaderInt8;
    d->storage_16bit = f11.storageBuffer16BitAccess;
    d->integer_dot = d->integer_dot && fdot.shaderIntegerDotProduct;
    if (size_control && fsgc.subgroupSizeControl && (sgc.requiredSubgroupSizeStages & VK_SHADER_STAGE_COMPUTE_BIT)) {
        d->subgroup_min = sgc.minSubgroupSize;
        d->subgroup_max = sgc.maxSubgroupSize;
    }
    d->coopmat_f16 = d->coopmat && fcm.cooperativeMatrix && f12.shaderFloat16 && f12.vulkanMemoryModel &&
                     coopmat_16x16x16(inst, pd);

    VkPhysicalDeviceMemoryBudgetPropertiesEXT bud = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
    VkPhysicalDeviceMemoryProperties2 mp2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2,
                                             .pNext = d->has_memory_budget ? &bud : NULL};
    vkGetPhysicalDeviceMemoryProperties2(pd, &mp2);
    const VkPhysicalDeviceMemoryProperties *mp = &mp2.memoryProperties;
    d->n_heaps = (int32_t)VKI_MIN(mp->memoryHeapCount, BK_VK_MAX_HEAPS);
    int best = -1;
    for (int i = 0; i < d->n_heaps; i++) {
        d->heap_size[i] = mp->memoryHeaps[i].size;
        d->heap_device_local[i] = mp->memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT;
        if (d->heap_device_local[i] && (best < 0 || d->heap_size[i] > d->heap_size[best])) best = i;
    }
    if (best < 0 && d->n_heaps) best = 0;
    if (best >= 0)
        d->budget = d->has_memory_budget && bud.heapBudget[best] ? bud.heapBudget[best] : d->heap_size[best];

    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, NULL);
    VkQueueFamilyProperties qf[16];
    nq = VKI_MIN(nq, 16u);
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, qf);
    d->transfer_queue = transfer_family(qf, nq) >= 0;
    d->timestamps = p->limits.timestampComputeAndGraphics && p->limits.timestampPeriod > 0;
}

static vki_status enumerate(VkInstance inst, VkPhysicalDevice **pds, uint32_t *n)
{
    *pds = NULL;
    *n = 0;
    VK_TRY(vkEnumeratePhysicalDevices(inst, n, NULL));
    if (!*n) return VKI_OK;
    *pds = calloc(*n, sizeof(**pds));
    if (!*pds) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "vulkan: out of memory listing devices");
    VkResult r = vkEnumeratePhysicalDevices(inst, n, *pds);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) {
        free(*pds);
        *pds = NULL;
        return vk_check(r, "vkEnumeratePhysicalDevices");
    }
    return VKI_OK;
}

vki_status bk_vk_list_devices(bk_vk_device_info **out, int *n_out)
{
    *out = NULL;
    *n_out = 0;
    VkInstance inst = VK_NULL_HANDLE;
    VkPhysicalDevice *pds = NULL;
    uint32_t n = 0;
    VKI_TRY(instance_create(NULL, false, &inst));
    vki_status st = enumerate(inst, &pds, &n);
    if (st != VKI_OK) goto fail;
    if (n) {
        *out = calloc(n, sizeof(**out));
        if (!*out) { st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "vulkan: out of memory listing devices"); goto fail; }
        for (uint32_t i = 0; i < n; i++) describe(inst, pds[i], (int)i, &(*out)[i]);
        *n_out = (int)n;
    }
fail:
    free(pds);
    vkDestroyInstance(inst, NULL);
    return st;
}

static int best_device(const bk_vk_device_info *d, int n)
{
    int best = -1;
    for (int i = 0; i < n; i++) {
        if (d[i].api_version < VK_API_VERSION_1_2) continue;
        if (best < 0 || d[i].score > d[best].score ||
            (d[i].score == d[best].score && d[i].budget > d[best].budget)) best = i;
    }
    return best;
}

static bool contains_nocase(const char *hay, const char *needle)
{
    size_t nl = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, nl) == 0) return true;
    return nl == 0;
}

vki_status bk_vk_find_device(const char *spec, int32_t *out)
{
    *out = -1;
    if (!spec || !*spec || strcmp(spec, "auto") == 0 || strcmp(spec, "-1") == 0) return VKI_OK;
    char *end;
    long idx = strtol(spec, &end, 10);
    bk_vk_device_info *d;
    int n;
    VKI_TRY(bk_vk_list_devices(&d, &n));
    vki_status st = VKI_OK;
    if (*end == '\0') {
        if (idx < 0 || idx >= n) st = vki_fail(VKI_ERR_NOT_FOUND, "vulkan: device %ld does not exist (%d devices)", idx, n);
        else *out = (int32_t)idx;
    } else {
        int found = -1;
        for (int i = 0; i < n && found < 0; i++)
            if (contains_nocase(d[i].name, spec)) found = i;
        if (found < 0) st = vki_fail(VKI_ERR_NOT_FOUND, "vulkan: no device name contains '%s' (%d devices)", spec, n);
        else *out = found;
    }
    free(d);
    return st;
}

/* ===== Logical device ==================================================== */

/* VKI_VK_MATMUL, or by default the hardware cooperative matrices where the
 * device lists their shape and this build has the kernels, else the tiled
 * f32 kernel. */
static vki_status matmul_path_choose(vk_ctx *c)
{
    const char *mm = c->dbg.matmul;
    bool hw = c->info.coopmat_f16 && vk_pipeline_embedded("matmul_cm_f16");
    c->matmul_path = hw ? VK_MATMUL_COOPMAT : VK_MATMUL_TILED;
    if (!strcmp(mm, "tiled")) c->matmul_path = VK_MATMUL_TILED;
    else if (!strcmp(mm, "coopemu")) c->matmul_path = VK_MATMUL_COOPEMU;
    else if (!strcmp(mm, "coopmat") && !hw)
        return vki_fail(VKI_ERR_UNSUPPORTED, "vulkan: VKI_VK_MATMUL=coopmat: %s",
                        !c->info.coopmat_f16 ? "the device lists no 16x16x16 f16 -> f32 cooperative matrices "
                                               "(with shaderFloat16 and vulkanMemoryModel)"
                                             : "this build has no hardware coop-matrix kernels (needs glslang >= 13 "
                                               "at configure time: scripts/deps.sh, or -DVKI_GLSLANG=path)");
    else if (*mm && strcmp(mm, "coopmat") != 0)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vulkan: VKI_VK_MATMUL=%s: expected tiled, coopemu or coopmat", mm);
    c->cm_subgroup = 32; /* the emulation's 32-lane "subgroups" */
    c->cm_required_size = false;
    if (c->matmul_path == VK_MATMUL_COOPMAT) {
        c->cm_required_size = c->info.subgroup_min && c->info.subgroup_min <= 32 && c->info.subgroup_max >= 32;
        c->cm_subgroup = c->cm_required_size ? 32 : c->info.subgroup_size;
    }
    return VKI_OK;
}

vki_status vk_device_init(vk_ctx *c, const bk_vk_params *p)
{
    VkPhysicalDevice *pds = NULL;
    bk_vk_device_info *infos = NULL;
    uint32_t n = 0;
    vki_status st = instance_create(c, p->validation, &c->inst);
    if (st != VKI_OK) return st;
    if ((st = enumerate(c->inst, &pds, &n)) != VKI_OK) goto fail;
    if (!n) { st = vki_fail(VKI_ERR_UNSUPPORTED, "vulkan: no devices found"); goto fail; }
    infos = calloc(n, sizeof(*infos));
    if (!infos) { st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "vulkan: out of memory"); goto fail; }
    for (uint32_t i = 0; i < n; i++) describe(c->inst, pds[i], (int)i, &infos[i]);
    int pick = p->device;
    if (pick < 0) pick = best_device(infos, (int)n);
    if (pick < 0) { st = vki_fail(VKI_ERR_UNSUPPORTED, "vulkan: no device supports Vulkan 1.2 (%u devices)", n); goto fail; }
    if (pick >= (int)n) { st = vki_fail(VKI_ERR_NOT_FOUND, "vulkan: device %d does not exist (%u devices)", pick, n); goto fail; }
    if (infos[pick].api_version < VK_API_VERSION_1_2) {
        st = vki_fail(VKI_ERR_UNSUPPORTED, "vulkan: device %d (%s) supports Vulkan %u.%u, need 1.2", pick,
                      infos[pick].name, VK_API_VERSION_MAJOR(infos[pick].api_version),
                      VK_API_VERSION_MINOR(infos[pick].api_version));
        goto fail;
    }
    c->pdev = pds[pick];
    c->info = infos[pick];
    vkGetPhysicalDeviceProperties(c->pdev, &c->props);
    vkGetPhysicalDeviceMemoryProperties(c->pdev, &c->mem_props);
    snprintf(c->name, sizeof(c->name), "Vulkan: %s (%s)", c->info.name, c->info.type);
    c->use_subgroup = c->info.subgroup_arithmetic && !c->dbg.no_subgroup && c->info.subgroup_size >= 4;

    /* A compute queue; prefer one without graphics (AMD's async compute). */
    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(c->pdev, &nq, NULL);
    VkQueueFamilyProperties qf[16];
    nq = VKI_MIN(nq, 16u);
    vkGetPhysicalDeviceQueueFamilyProperties(c->pdev, &nq, qf);
    int fam = -1;
    for (uint32_t i = 0; i < nq; i++) {
        if (!(qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT)) continue;
        if (fam < 0 || ((qf[fam].queueFlags & VK_QUEUE_GRAPHICS_BIT) && !(qf[i].queueFlags & VK_QUEUE_GRAPHICS_BIT)))
            fam = (int)i;
    }
    if (fam < 0) { st = vki_fail(VKI_ERR_UNSUPPORTED, "vulkan: %s has no compute queue", c->info.name); goto fail; }
    c->qfam = (uint32_t)fam;

    /* Uploads go to a dedicated transfer family where there is one; else
     * to the compute queue. Either way memory.c runs the same code. */
    int xfam = c->dbg.no_transfer_queue ? -1 : transfer_family(qf, nq);
    c->xfam = xfam >= 0 ? (uint32_t)xfam : c->qfam;

    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci[2] = {
        {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = c->qfam, .queueCount = 1,
         .pQueuePriorities = &prio},
        {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = c->xfam, .queueCount = 1,
         .pQueuePriorities = &prio}};
    const char *exts[6];
    uint32_t n_ext = 0;
    if (c->info.has_memory_budget) exts[n_ext++] = VK_EXT_MEMORY_BUDGET_EXTENSION_NAME;
    /* Push descriptors: a dispatch's buffers go into the command buffer
     * directly instead of a descriptor set allocated and written per
     * dispatch (host time per dispatch matters for small models on fast
     * GPUs, where a token is ~1 ms and a pass has ~150 dispatches). */
    c->use_push = c->info.push_descriptor && !c->dbg.no_push_descriptor;
    if (c->use_push) exts[n_ext++] = VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME;
    /* Integer dot products (the int-dot mat-vecs, intdot.glsl): the
     * extension and its one feature, when the device has them, this build
     * embeds the kernels and VKI_VK_NO_INTDOT does not ask for the float
     * path. */
    c->use_intdot = c->info.integer_dot && !c->dbg.no_intdot && vk_pipeline_embedded("quantize_q8");
    VkPhysicalDeviceShaderIntegerDotProductFeatures fdot = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES, .shaderIntegerDotProduct = VK_TRUE};
    void *chain = NULL;
    if (c->use_intdot) {
        exts[n_ext++] = "VK_KHR_shader_integer_dot_product";
        chain = &fdot;
    }
    /* The mat-mat kernel; the hardware cooperative-matrix one needs its
     * extension, f16 arithmetic, the Vulkan memory model (its scopes) and
     * a known subgroup size (four subgroups per workgroup): 32 where size
     * control allows it (RDNA3 runs WMMA in wave32), else the default. */
    VkPhysicalDeviceCooperativeMatrixFeaturesKHR fcm = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR, .cooperativeMatrix = VK_TRUE};
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
                                            .shaderFloat16 = VK_TRUE, .vulkanMemoryModel = VK_TRUE};
    VkPhysicalDeviceSubgroupSizeControlFeatures fsgc = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES, .subgroupSizeControl = VK_TRUE};
    if ((st = matmul_path_choose(c)) != VKI_OK) goto fail;
    if (c->matmul_path == VK_MATMUL_COOPMAT) {
        exts[n_ext++] = "VK_KHR_cooperative_matrix";
        fcm.pNext = chain;
        f12.pNext = &fcm;
        chain = &f12;
        if (c->cm_required_size) {
            exts[n_ext++] = VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME;
            fsgc.pNext = chain;
            chain = &fsgc;
        }
    }
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .pNext = chain,
                              .queueCreateInfoCount = c->xfam != c->qfam ? 2 : 1,
                              .pQueueCreateInfos = qci, .enabledExtensionCount = n_ext, .ppEnabledExtensionNames = exts};
    VkResult r = vkCreateDevice(c->pdev, &dci, NULL, &c->dev);
    if (r != VK_SUCCESS) { st = vk_check(r, "vkCreateDevice"); goto fail; }
    vkGetDeviceQueue(c->dev, c->qfam, 0, &c->queue);
    vkGetDeviceQueue(c->dev, c->xfam, 0, &c->xqueue);
    if (c->use_push) {
        c->push_set = (PFN_vkCmdPushDescriptorSetKHR)vkGetDeviceProcAddr(c->dev, "vkCmdPushDescriptorSetKHR");
        c->use_push = c->push_set != NULL;
    }
    if (c->xfam != c->qfam) {
        size_t l = strlen(c->name);
        snprintf(c->name + l, sizeof(c->name) - l, " + transfer queue");
    }
fail:
    free(pds);
    free(infos);
    return st;
}

void vk_device_deinit(vk_ctx *c)
{
    if (c->dev) vkDestroyDevice(c->dev, NULL);
    c->dev = VK_NULL_HANDLE;
    if (c->msgr) {
        PFN_vkDestroyDebugUtilsMessengerEXT fn =
            (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(c->inst, "vkDestroyDebugUtilsMessengerEXT");
        if (fn) fn(c->inst, c->msgr, NULL);
        c->msgr = VK_NULL_HANDLE;
    }
    if (c->inst) vkDestroyInstance(c->inst, NULL);
    c->inst = VK_NULL_HANDLE;
}
