/* model_test_util.h: what the model tests share: the --backend argument
 * (a Vulkan run skips only when no Vulkan device can be created, and fails
 * on wrong results; Vulkan runs have the validation layer on and must end
 * with no message), reading reference JSON, and comparisons. */
#ifndef VKI_MODEL_TEST_UTIL_H
#define VKI_MODEL_TEST_UTIL_H

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/api_internal.h"
#include "engine/backend.h"
#include "engine/vulkan/backend_vk.h"
#include "test_util.h"

static inline vki_backend_kind mt_backend_arg(int argc, char **argv)
{
    vki_backend_kind k = VKI_BACKEND_CPU;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--backend")) k = !strcmp(argv[i + 1], "vulkan") ? VKI_BACKEND_VULKAN : VKI_BACKEND_CPU;
    if (k == VKI_BACKEND_VULKAN) {
        bk_backend *be = NULL;
        bk_vk_params vp = {.device = -1};
        vki_status s = bk_vk_create(&vp, &be);
        if (s == VKI_ERR_UNSUPPORTED) test_skip("no Vulkan device could be created: %s", vki_last_error());
        if (s != VKI_OK) {
            fprintf(stderr, "bk_vk_create failed: %s: %s\n", vki_status_str(s), vki_last_error());
            exit(1);
        }
        bk_destroy(be);
    }
    return k;
}

/* A backend of the kind asked for, 2 CPU threads (the machine's cores);
 * Vulkan with the validation layer on. */
static inline bk_backend *mt_backend_create(vki_backend_kind k)
{
    bk_backend *be = NULL;
    bk_vk_params vp = {.device = -1, .validation = true};
    vki_status s = k == VKI_BACKEND_VULKAN ? bk_vk_create(&vp, &be) : bk_cpu_create(2, &be);
    if (s != VKI_OK) {
        fprintf(stderr, "backend: %s: %s\n", vki_status_str(s), vki_last_error());
        exit(1);
    }
    return be;
}

/* Engine params for public-API runs: 2 threads, Vulkan validation on. */
static inline vki_engine_params mt_engine_params(void)
{
    vki_engine_params ep = vki_engine_default_params();
    ep.n_threads = 2;
    ep.vk_validation = true;
    return ep;
}

/* Fails the test when a Vulkan backend's validation layer said anything. */
static inline void mt_check_validation(bk_backend *be, const char *what)
{
    be = bk_check_inner(be); /* VKI_CHECK_RESULTS wraps the Vulkan backend */
    if (!be || be->kind != VKI_BACKEND_VULKAN) return;
    if (!bk_vk_validation_active(be)) {
        printf("note: %s: validation layer not installed; messages not checked\n", what);
        return;
    }
    CHECKF(bk_vk_validation_count(be) == 0, "%s: %llu Vulkan validation messages", what,
           (unsigned long long)bk_vk_validation_count(be));
}

/* Opens ../shared/models/NAME and loads it on be with lp; false (and a
 * failed check naming the step) when either fails. */
static inline bool mt_open_model(const char *name, bk_backend *be, const mdl_load_params *lp, vki_model_file **f,
                                 mdl_model **m)
{
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s", name);
    *f = NULL;
    *m = NULL;
    if (vki_file_open(test_shared_path(rel), f) != VKI_OK) {
        CHECKF(0, "%s: open: %s", name, vki_last_error());
        return false;
    }
    if (mdl_load(*f, be, lp, m) != VKI_OK) {
        CHECKF(0, "%s: load: %s", name, vki_last_error());
        vki_file_close(*f);
        *f = NULL;
        return false;
    }
    return true;
}

static inline cJSON *mt_load_json(const char *rel)
{
    const char *path = test_shared_path(rel);
    char *text = test_read_file(path, NULL);
    if (!text) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(1);
    }
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j) {
        fprintf(stderr, "%s: not valid JSON\n", path);
        exit(1);
    }
    return j;
}

/* Int array from a JSON array; caller frees. */
static inline int32_t *mt_int_array(const cJSON *a, int32_t *n)
{
    *n = cJSON_GetArraySize(a);
    int32_t *v = malloc(sizeof *v * (size_t)(*n ? *n : 1));
    for (int32_t i = 0; i < *n; i++) v[i] = (int32_t)cJSON_GetArrayItem(a, i)->valuedouble;
    return v;
}

static inline int32_t mt_argmax(const float *l, int32_t n)
{
    int32_t b = 0;
    for (int32_t i = 1; i < n; i++)
        if (l[i] > l[b]) b = i;
    return b;
}

static inline double mt_cosine(const float *a, const double *b, int32_t n)
{
    double ab = 0, aa = 0, bb = 0;
    for (int32_t i = 0; i < n; i++) {
        ab += a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += b[i] * b[i];
    }
    return ab / sqrt(aa * bb + 1e-300);
}

#endif
