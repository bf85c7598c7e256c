/* service_test_util.h: what the service API tests share: greedy
 * generation params, waiting a job out, and the two model arguments every
 * one of them takes. */
#ifndef VKI_SERVICE_TEST_UTIL_H
#define VKI_SERVICE_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "test_util.h"
#include "vkinfer.h"

/* Greedy, exactly n tokens (end of sequence ignored). */
static inline vki_generate_params greedy(int32_t n)
{
    vki_generate_params gp = vki_generate_default_params();
    gp.temperature = 0;
    gp.n_predict = n;
    gp.ignore_eos = true;
    return gp;
}

/* Waits for j to end (60 s at most); returns its result. */
static inline vki_job_result finish(vki_job *j)
{
    CHECK(vki_job_wait(j, 60000) == VKI_OK);
    vki_job_result r;
    vki_job_get_result(j, &r);
    CHECK(r.done);
    return r;
}

/* argv[1] and argv[2], the chat and embedding models the build generates:
 * exits 2 without them (usage names the extra arguments) and skips when a
 * file is absent. */
static inline void svc_models_arg(int argc, char **argv, const char *test, const char *extra)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s CHAT.gguf EMBED.gguf%s\n", test, extra);
        exit(2);
    }
    for (int k = 1; k < 3; k++)
        if (access(argv[k], R_OK) != 0) test_skip("%s is absent (the build generates it)", argv[k]);
}

#endif
