/* sched_test_util.h: what the scheduler tests share: greedy generation
 * params, waiting on a request, whether Vulkan is usable, and the model
 * argument every test takes. */
#ifndef VKI_SCHED_TEST_UTIL_H
#define VKI_SCHED_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>

#include "engine/backend.h"
#include "engine/sched/sched.h"
#include "engine/vulkan/backend_vk.h"
#include "test_util.h"

/* Greedy, exactly n tokens (end of sequence ignored). */
static inline vki_generate_params st_greedy(int32_t n)
{
    vki_generate_params gp = vki_generate_default_params();
    gp.temperature = 0;
    gp.n_predict = n;
    gp.ignore_eos = true;
    return gp;
}

/* Waits for r to end, dropping its text; returns its result. It polls past
 * what it has read: from 0 the poll returns at once once there is any text
 * and the loop spins (sched.h, sched_request_poll). */
static inline sched_result st_wait_done(sched_request *r)
{
    sched_result res;
    char *chunk;
    size_t len, have = 0;
    do {
        sched_request_poll(r, have, -1, &chunk, &len, &res);
        free(chunk);
        have += len;
    } while (!res.done);
    return res;
}

/* Waits until r has produced a token (or ended). */
static inline void st_wait_started(sched_request *r)
{
    sched_result res;
    char *chunk;
    size_t len;
    do {
        sched_request_poll(r, 0, 50, &chunk, &len, &res);
        free(chunk);
    } while (!res.done && res.n_generated == 0);
}

/* Whether a Vulkan backend can be created (vki_last_error says why not). */
static inline bool st_have_vulkan(void)
{
    bk_vk_params vp = {.device = -1};
    bk_backend *be = NULL;
    if (bk_vk_create(&vp, &be) != VKI_OK) return false;
    bk_destroy(be);
    return true;
}

/* argv[1], the default model the build generates; exits 2 without it and
 * skips when the file is absent. */
static inline const char *st_model_arg(int argc, char **argv, const char *test)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DEFAULT_MODEL.gguf\n", test);
        exit(2);
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) test_skip("%s is absent (it is built by the vki_default_model target)", argv[1]);
    fclose(f);
    return argv[1];
}

#endif
