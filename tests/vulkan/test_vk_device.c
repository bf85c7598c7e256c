/*
 * test_vk_device.c: device listing and lookup, every embedded SPIR-V blob
 * through spirv-val and into a pipeline, the pipeline cache file under
 * $XDG_CACHE_HOME/vkinfer, and a pass of dependent ops (the barrier
 * tracking) checked against host arithmetic. Validation on, zero messages.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/vulkan/shaders.h"
#include "test_util.h"
#include "vk_test_common.h"

static void test_list(void)
{
    bk_vk_device_info *d = NULL;
    int n = 0;
    vki_status st = bk_vk_list_devices(&d, &n);
    if (st != VKI_OK || n == 0) test_skip("no Vulkan device (%s)", st ? vki_last_error() : "none listed");
    for (int i = 0; i < n; i++) {
        CHECK(d[i].index == i);
        CHECK(d[i].name[0] != '\0');
        CHECK(d[i].max_storage_buffer_range >= (1u << 16));
        CHECK(d[i].n_heaps >= 1 && d[i].budget > 0);
        printf("device %d: %s (%s), subgroup %u, range %llu\n", i, d[i].name, d[i].type, d[i].subgroup_size,
               (unsigned long long)d[i].max_storage_buffer_range);
    }
    int32_t idx = -2;
    CHECK(bk_vk_find_device("auto", &idx) == VKI_OK && idx == -1);
    CHECK(bk_vk_find_device("0", &idx) == VKI_OK && idx == 0);
    char sub[8];
    snprintf(sub, sizeof(sub), "%.4s", d[n - 1].name); /* a name prefix, matched case-insensitively */
    for (char *p = sub; *p; p++) *p = (char)((*p >= 'a' && *p <= 'z') ? *p - 32 : *p);
    CHECK(bk_vk_find_device(sub, &idx) == VKI_OK && idx >= 0 && idx < n);
    CHECK(bk_vk_find_device("no-such-gpu-xyz", &idx) == VKI_ERR_NOT_FOUND);
    CHECK(strstr(vki_last_error(), "no-such-gpu-xyz") != NULL);
    CHECK(bk_vk_find_device("99", &idx) == VKI_ERR_NOT_FOUND);
    free(d);
}

static void test_spirv_val(const char *spirv_val)
{
    if (!spirv_val || !*spirv_val) {
        printf("spirv-val not found at configure time: blobs not validated\n");
        return;
    }
    const char *dir = getenv("VKI_BUILD_DIR");
    char path[512], cmd[1200];
    int n = 0;
    for (const vki_spirv *s = vki_spirv_table; s->name; s++) {
        /* glslang >= 13's blobs: test_spirv_glslang validates them with its
         * own spirv-val, this one predates their extensions */
        if (!strncmp(s->name, "matmul_cm_", 10)) continue;
        n++;
        snprintf(path, sizeof(path), "%s/test_vk_blob.spv", dir ? dir : ".");
        FILE *f = fopen(path, "wb");
        CHECK(f != NULL);
        if (!f) return;
        CHECK(fwrite(s->words, 4, s->n_words, f) == s->n_words);
        fclose(f);
        snprintf(cmd, sizeof(cmd), "'%s' --target-env vulkan1.2 '%s'", spirv_val, path);
        CHECKF(system(cmd) == 0, "spirv-val rejects %s", s->name);
    }
    remove(path);
    CHECK(n >= 30);
    printf("spirv-val: %d blobs\n", n);
}

static void test_pipelines_and_cache(void)
{
    bk_backend *be = vkt_create(0);
    int n = 0, total = 0, optional = 0;
    for (const vki_spirv *s = vki_spirv_table; s->name; s++) {
        total++;
        /* variants for device features: subgroup arithmetic, integer dot
         * products, cooperative matrices (emulated ones run anywhere) */
        optional += strstr(s->name, "_sg") || strstr(s->name, "_dot") || !strcmp(s->name, "quantize_q8") ||
                    (strstr(s->name, "_cm") && !strstr(s->name, "_cmemu"));
    }
    vki_status st = bk_vk_create_all_pipelines(be, &n);
    CHECKF(st == VKI_OK, "%s", vki_last_error());
    CHECKF(n <= total && n >= total - optional, "%d pipelines of %d blobs (%d optional)", n, total, optional);
    char path[512];
    snprintf(path, sizeof(path), "%s", bk_vk_pipeline_cache_path(be));
    const char *xdg = getenv("XDG_CACHE_HOME");
    CHECKF(path[0] && xdg && strncmp(path, xdg, strlen(xdg)) == 0 && strstr(path, "/vkinfer/pipelines-"),
           "cache path '%s'", path);
    vkt_destroy(be); /* writes the cache */
    struct stat sb;
    CHECKF(stat(path, &sb) == 0 && sb.st_size > 0, "no pipeline cache at %s", path);
    /* A second device loads it and builds the same pipelines. */
    be = vkt_create(0);
    CHECK(strcmp(bk_vk_pipeline_cache_path(be), path) == 0);
    CHECK(bk_vk_create_all_pipelines(be, &n) == VKI_OK);
    vkt_destroy(be);
}

/* a = x + y; b = a * a; b = silu(b) in place; s = softmax(b): each op reads
 * what the previous one wrote in the same pass, so barriers must be right. */
static void test_dependent_pass(void)
{
    bk_backend *be = vkt_create(0);
    enum { N = 1000, R = 3 };
    float x[N * R], y[N * R], out[N * R], ref[N * R];
    uint64_t rng = 7;
    for (int i = 0; i < N * R; i++) {
        x[i] = test_rand_f32(&rng, -2, 2);
        y[i] = test_rand_f32(&rng, -2, 2);
    }
    bk_tensor tx = vkt_tensor(be, VKI_TYPE_F32, N, R, x), ty = vkt_tensor(be, VKI_TYPE_F32, N, R, y);
    bk_tensor ta = vkt_tensor(be, VKI_TYPE_F32, N, R, NULL), tb = vkt_tensor(be, VKI_TYPE_F32, N, R, NULL);
    for (int rep = 0; rep < 2; rep++) { /* twice: descriptor pools are reset and reused */
        CHECK(bk_begin(be) == VKI_OK);
        CHECK(bk_add(be, &ta, &tx, &ty) == VKI_OK);
        CHECK(bk_mul(be, &tb, &ta, &ta) == VKI_OK);
        CHECK(bk_silu(be, &tb, &tb) == VKI_OK);
        CHECK(bk_softmax(be, &ta, &tb, 0.5f) == VKI_OK);
        CHECKF(bk_end(be) == VKI_OK, "%s", vki_last_error());
    }
    CHECK(be->iface->tensor_get(be, &ta, out, 0, sizeof(out)) == VKI_OK);
    for (int r = 0; r < R; r++) {
        double mx = -INFINITY, sum = 0;
        for (int i = 0; i < N; i++) {
            double a = (double)x[r * N + i] + y[r * N + i], b = a * a;
            ref[r * N + i] = (float)(0.5 * b / (1 + exp(-b)));
            mx = fmax(mx, ref[r * N + i]);
        }
        for (int i = 0; i < N; i++) sum += exp(ref[r * N + i] - mx);
        for (int i = 0; i < N; i++) ref[r * N + i] = (float)(exp(ref[r * N + i] - mx) / sum);
    }
    double err = 0;
    for (int i = 0; i < N * R; i++) err = fmax(err, fabs(out[i] - ref[i]) / (fabs(ref[i]) + 1e-6));
    CHECKF(err < 1e-4, "max relative error %g", err);
    /* compute outside begin/end is an error, not a crash */
    CHECK(bk_add(be, &ta, &tx, &ty) == VKI_ERR_INVALID_ARGUMENT);
    vkt_free(be, &tx);
    vkt_free(be, &ty);
    vkt_free(be, &ta);
    vkt_free(be, &tb);
    CHECK(be->iface->memory_used(be) == 0);
    vkt_destroy(be);
}

int main(int argc, char **argv)
{
    test_list();
    test_spirv_val(argc > 1 ? argv[1] : NULL);
    test_pipelines_and_cache();
    test_dependent_pass();
    return test_finish("test_vk_device");
}
