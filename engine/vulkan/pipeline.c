/*
 * pipeline.c: compute pipelines from the embedded SPIR-V (shaders.h), made
 * on first use and kept for the device's life; the one descriptor-set
 * layout (binding i = i-th buffer argument, all storage buffers) and push
 * range; the VkPipelineCache stored under $XDG_CACHE_HOME/vkinfer (or
 * ~/.cache/vkinfer), one file per device UUID + driver version.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/vulkan/shaders.h"
#include "error.h"
#include "util.h"
#include "vk_internal.h"

static const vki_spirv *spirv_find(const char *name)
{
    for (const vki_spirv *s = vki_spirv_table; s->name; s++)
        if (strcmp(s->name, name) == 0) return s;
    return NULL;
}

bool vk_pipeline_embedded(const char *variant) { return spirv_find(variant) != NULL; }

bool vk_variant_usable(const vk_ctx *c, const char *v)
{
    if (strstr(v, "_sg") && !c->use_subgroup) return false;
    if ((strstr(v, "_dot") || strcmp(v, "quantize_q8") == 0) && !c->use_intdot) return false;
    if (strstr(v, "_cm") && !strstr(v, "_cmemu") && c->matmul_path != VK_MATMUL_COOPMAT) return false;
    return true;
}

void vk_pipeline_defaults(const char *variant, uint32_t *spec0, uint32_t *spec1)
{
    *spec1 = 0;
    if (strncmp(variant, "matvec", 6) == 0 || strncmp(variant, "get_rows", 8) == 0 || strncmp(variant, "attn", 4) == 0)
        *spec0 = 64;
    else if (strncmp(variant, "matmul_cm", 9) == 0)
        *spec0 = 128; /* four 32-lane subgroups (ops_matmul.c uses 4 x cm_subgroup) */
    else if (strncmp(variant, "eltwise", 7) == 0 || strncmp(variant, "cpy", 3) == 0 || strncmp(variant, "matmul", 6) == 0)
        *spec0 = 256;
    else
        *spec0 = 128;
}

/* ===== Pipeline cache file =============================================== */

static void cache_path(vk_ctx *c)
{
    char dir[400];
    const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    c->pcache_path[0] = '\0';
    if (x && *x) snprintf(dir, sizeof(dir), "%s", x);
    else if (home && *home) snprintf(dir, sizeof(dir), "%s/.cache", home);
    else return;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return;
    size_t dl = strlen(dir);
    snprintf(dir + dl, sizeof(dir) - dl, "/vkinfer");
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return;
    char uuid[2 * VK_UUID_SIZE + 1];
    for (unsigned i = 0; i < VK_UUID_SIZE; i++) snprintf(uuid + 2 * i, 3, "%02x", c->props.pipelineCacheUUID[i]);
    snprintf(c->pcache_path, sizeof(c->pcache_path), "%s/pipelines-%s-%08x.bin", dir, uuid, c->props.driverVersion);
}

static void cache_load(vk_ctx *c, void **data, size_t *size)
{
    *data = NULL;
    *size = 0;
    if (!c->pcache_path[0]) return;
    FILE *f = fopen(c->pcache_path, "rb");
    if (!f) return;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n > 0 && n < (64l << 20) && fseek(f, 0, SEEK_SET) == 0 && (*data = malloc((size_t)n))) {
            if (fread(*data, 1, (size_t)n, f) == (size_t)n) *size = (size_t)n;
            else { free(*data); *data = NULL; }
        }
    }
    fclose(f);
}

/* Written to a temporary name and renamed, so a reader never sees half a file. */
static void cache_save(vk_ctx *c)
{
    if (!c->pcache || !c->pcache_path[0]) return;
    size_t n = 0;
    if (vkGetPipelineCacheData(c->dev, c->pcache, &n, NULL) != VK_SUCCESS || !n) return;
    void *data = malloc(n);
    if (!data) return;
    if (vkGetPipelineCacheData(c->dev, c->pcache, &n, data) == VK_SUCCESS) {
        char tmp[600];
        snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", c->pcache_path, (long)getpid());
        FILE *f = fopen(tmp, "wb");
        if (f) {
            bool ok = fwrite(data, 1, n, f) == n;
            ok &= fclose(f) == 0;
            if (!ok || rename(tmp, c->pcache_path) != 0) remove(tmp);
        }
    }
    free(data);
}

/* ===== Layouts and pipelines ============================================= */

vki_status vk_pipeline_init(vk_ctx *c)
{
    cache_path(c);
    void *data;
    size_t size;
    cache_load(c, &data, &size);
    VkPipelineCacheCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO,
                                     .initialDataSize = size, .pInitialData = data};
    /* A stale or foreign file is ignored by the driver's header check; if it
     * is rejected outright, start empty rather than fail. */
    VkResult r = vkCreatePipelineCache(c->dev, &pci, NULL, &c->pcache);
    if (r != VK_SUCCESS && size) {
        pci.initialDataSize = 0;
        pci.pInitialData = NULL;
        r = vkCreatePipelineCache(c->dev, &pci, NULL, &c->pcache);
    }
    free(data);
    if (r != VK_SUCCESS) return vk_check(r, "vkCreatePipelineCache");

    VkDescriptorSetLayoutBinding b[VK_MAX_BINDINGS];
    for (uint32_t i = 0; i < VK_MAX_BINDINGS; i++)
        b[i] = (VkDescriptorSetLayoutBinding){.binding = i, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                              .descriptorCount = 1, .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VkDescriptorSetLayoutCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                           .flags = c->use_push ? VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR : 0,
                                           .bindingCount = VK_MAX_BINDINGS, .pBindings = b};
    VK_TRY(vkCreateDescriptorSetLayout(c->dev, &dci, NULL, &c->dsl));
    VkPushConstantRange pr = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = 128};
    VkPipelineLayoutCreateInfo lci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .setLayoutCount = 1,
                                      .pSetLayouts = &c->dsl, .pushConstantRangeCount = 1, .pPushConstantRanges = &pr};
    VK_TRY(vkCreatePipelineLayout(c->dev, &lci, NULL, &c->layout));
    return VKI_OK;
}

vki_status vk_pipeline_get(vk_ctx *c, const char *variant, uint32_t spec0, uint32_t spec1, VkPipeline *out)
{
    for (int i = 0; i < c->n_pipes; i++) {
        vk_pipeline *p = &c->pipes[i];
        if (p->spec[0] == spec0 && p->spec[1] == spec1 && strcmp(p->variant, variant) == 0) {
            *out = p->pipe;
            return VKI_OK;
        }
    }
    const vki_spirv *sp = spirv_find(variant);
    if (!sp) return vki_fail(VKI_ERR_INTERNAL, "vulkan: shader variant '%s' is not embedded", variant);
    if (c->n_pipes == c->cap_pipes) {
        int cap = c->cap_pipes * 2 + 16;
        vk_pipeline *np = realloc(c->pipes, (size_t)cap * sizeof(*np));
        if (!np) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
        c->pipes = np;
        c->cap_pipes = cap;
    }
    VkShaderModuleCreateInfo mci = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                    .codeSize = sp->n_words * 4, .pCode = sp->words};
    VkShaderModule mod;
    VkResult r = vkCreateShaderModule(c->dev, &mci, NULL, &mod);
    if (r != VK_SUCCESS) return vki_fail_prefix(vk_check(r, "vkCreateShaderModule"), "shader %s", variant);
    uint32_t spec[2] = {spec0, spec1};
    VkSpecializationMapEntry me[2] = {{0, 0, 4}, {1, 4, 4}};
    VkSpecializationInfo si = {.mapEntryCount = 2, .pMapEntries = me, .dataSize = 8, .pData = spec};
    VkComputePipelineCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = mod, .pName = "main", .pSpecializationInfo = &si},
        .layout = c->layout};
    /* The hardware coop-matrix kernel counts on four subgroups of
     * cm_subgroup lanes per workgroup. */
    VkPipelineShaderStageRequiredSubgroupSizeCreateInfo rss = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO,
        .requiredSubgroupSize = c->cm_subgroup};
    if (c->cm_required_size && strncmp(variant, "matmul_cm_", 10) == 0) ci.stage.pNext = &rss;
    VkPipeline pipe;
    r = vkCreateComputePipelines(c->dev, c->pcache, 1, &ci, NULL, &pipe);
    vkDestroyShaderModule(c->dev, mod, NULL);
    if (r != VK_SUCCESS) return vki_fail_prefix(vk_check(r, "vkCreateComputePipelines"), "shader %s", variant);
    c->pipes[c->n_pipes++] = (vk_pipeline){.variant = sp->name, .spec = {spec0, spec1}, .pipe = pipe};
    *out = pipe;
    return VKI_OK;
}

void vk_pipeline_deinit(vk_ctx *c)
{
    if (!c->dev) return;
    cache_save(c);
    for (int i = 0; i < c->n_pipes; i++) vkDestroyPipeline(c->dev, c->pipes[i].pipe, NULL);
    free(c->pipes);
    c->pipes = NULL;
    c->n_pipes = c->cap_pipes = 0;
    if (c->layout) vkDestroyPipelineLayout(c->dev, c->layout, NULL);
    if (c->dsl) vkDestroyDescriptorSetLayout(c->dev, c->dsl, NULL);
    if (c->pcache) vkDestroyPipelineCache(c->dev, c->pcache, NULL);
    c->layout = VK_NULL_HANDLE;
    c->dsl = VK_NULL_HANDLE;
    c->pcache = VK_NULL_HANDLE;
}

vki_status bk_vk_create_all_pipelines(bk_backend *be, int *n_out)
{
    vk_ctx *c = be->ctx;
    int n = 0;
    for (const vki_spirv *s = vki_spirv_table; s->name; s++) {
        if (!vk_variant_usable(c, s->name)) continue;
        uint32_t s0, s1;
        vk_pipeline_defaults(s->name, &s0, &s1);
        VkPipeline p;
        VKI_TRY(vk_pipeline_get(c, s->name, s0, s1, &p));
        n++;
    }
    *n_out = n;
    return VKI_OK;
}

const char *bk_vk_pipeline_cache_path(bk_backend *be)
{
    return ((vk_ctx *)be->ctx)->pcache_path;
}
