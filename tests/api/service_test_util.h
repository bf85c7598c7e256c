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

/* Adds the models the service tests share: "chat" (chat_path, on backend,
 * n_seq_max sequences) and "emb" (emb_path, CPU); with_gone, also "gone",
 * a chat model whose file does not exist, falling back to "chat". */
static inline void svc_add_test_models(vki_service *svc, const char *chat_path, const char *emb_path,
                                       vki_backend_kind backend, int32_t n_seq_max, bool with_gone)
{
    vki_service_model_params mp = vki_service_model_default_params();
    mp.id = "chat";
    mp.path = chat_path;
    mp.model.backend = backend;
    mp.model.n_seq_max = n_seq_max;
    CHECK(vki_service_add_model(svc, &mp) == VKI_OK);
    mp = vki_service_model_default_params();
    mp.id = "emb";
    mp.path = emb_path;
    mp.model.backend = VKI_BACKEND_CPU;
    CHECK(vki_service_add_model(svc, &mp) == VKI_OK);
    if (!with_gone) return;
    mp = vki_service_model_default_params();
    mp.id = "gone";
    mp.path = "/nonexistent/gone.gguf";
    mp.kind = VKI_MODEL_KIND_CHAT;
    mp.fallback = (const char *const[]){"chat", NULL};
    CHECK(vki_service_add_model(svc, &mp) == VKI_OK);
}

#endif
