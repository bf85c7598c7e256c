/*
 * test_service_fallback.c: a job's walk over its candidates when the model
 * asked for takes the job and then fails it at once. Model "a" accepts
 * every submit, and every load of it fails (test_fail.loads, a device
 * failure; its breaker opens only on 64 within 1 ms), so each try ends
 * while the submitter may still be returning from the submit: the
 * dispatcher walks on from there. Every job must end served by "b" (reason
 * FAILED, or BREAKER_OPEN should the breaker open after all), from 8
 * threads submitting at once, and a job that may not fall back must end
 * with a's own error. The walk once published the try before counting it,
 * so a fast end tried a again and never b (seen in CI as test_fallback's
 * 503s). On the generated chat model (argv[1]) under two ids.
 * argv: CHAT.gguf EMBED.gguf
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "service_test_util.h"

enum { N_THREADS = 8, N_JOBS = 40 };

typedef struct worker {
    vki_service *svc;
    int          n_ok, n_bad;
    char         bad[512];
} worker;

static void *submitter(void *arg)
{
    worker *w = arg;
    const vki_generate_params gp = greedy(1);
    for (int k = 0; k < N_JOBS; k++) {
        vki_job *j = NULL;
        if (vki_service_generate(w->svc, "a", "Once upon a time", &gp, NULL, &j) != VKI_OK) {
            w->n_bad++;
            snprintf(w->bad, sizeof w->bad, "submit: %s", vki_last_error());
            continue;
        }
        if (vki_job_wait(j, 60000) != VKI_OK) {
            w->n_bad++;
            snprintf(w->bad, sizeof w->bad, "job %d did not end in 60 s", k);
            vki_job_release(j);
            continue;
        }
        vki_job_result r;
        vki_job_get_result(j, &r);
        if (r.status == VKI_OK && !strcmp(r.model, "b") &&
            (r.fallback == VKI_FALLBACK_FAILED || r.fallback == VKI_FALLBACK_BREAKER_OPEN)) {
            w->n_ok++;
        } else {
            w->n_bad++;
            snprintf(w->bad, sizeof w->bad, "job %d: %s served by %s, fallback %s: %s", k,
                     vki_status_str(r.status), r.model, vki_fallback_reason_name(r.fallback), r.message);
        }
        vki_job_release(j);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    svc_models_arg(argc, argv, "test_service_fallback", "");
    char *chat = realpath(argv[1], NULL); /* the file's paths are taken from its folder */
    CHECK(chat != NULL);
    if (!chat) return test_finish("test_service_fallback");
    char cfg[] = "/tmp/vki_svc_fb_XXXXXX";
    const int fd = mkstemp(cfg);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    CHECK(f != NULL);
    fprintf(f,
            "device: {prefer: cpu}\n"
            "models:\n"
            "  - id: a\n    path: %s\n    fallback: [b]\n"
            "    breaker: {failures: 64, window: 1ms}\n"
            "    test_fail: {loads: 1000000}\n"
            "  - {id: b, path: %s, n_seq_max: 8}\n",
            chat, chat);
    fclose(f);
    free(chat);
    vki_service *svc = NULL;
    const vki_status cst = vki_service_create_from_config(cfg, NULL, &svc);
    unlink(cfg);
    if (cst != VKI_OK) {
        fprintf(stderr, "create: %s\n", vki_last_error());
        CHECK(cst == VKI_OK);
        return test_finish("test_service_fallback");
    }

    /* a takes jobs once its file is open (before, b would serve with the
     * reason LOADING, which is not the walk under test) */
    const int32_t ia = vki_service_model_find(svc, "a"), ib = vki_service_model_find(svc, "b");
    CHECK(ia >= 0 && ib >= 0);
    vki_service_model_info ai = {0}, bi = {0};
    for (int k = 0; k < 6000 && !(ai.can_queue && bi.can_queue); k++) {
        vki_service_get_model_info(svc, ia, &ai);
        vki_service_get_model_info(svc, ib, &bi);
        usleep(10000);
    }
    CHECK(ai.can_queue && bi.can_queue);

    worker w[N_THREADS];
    pthread_t t[N_THREADS];
    for (int k = 0; k < N_THREADS; k++) {
        w[k] = (worker){.svc = svc};
        CHECK(pthread_create(&t[k], NULL, submitter, &w[k]) == 0);
    }
    int n_ok = 0, n_bad = 0;
    for (int k = 0; k < N_THREADS; k++) {
        pthread_join(t[k], NULL);
        n_ok += w[k].n_ok;
        n_bad += w[k].n_bad;
        if (w[k].n_bad) fprintf(stderr, "thread %d: %d not served by b, e.g. %s\n", k, w[k].n_bad, w[k].bad);
    }
    printf("%d of %d jobs for a served by b\n", n_ok, N_THREADS * N_JOBS);
    CHECK(n_ok == N_THREADS * N_JOBS && n_bad == 0);

    /* No fallback: a's own failure, as the walk first found it. */
    vki_request_params rp = vki_request_default_params();
    rp.allow_fallback = false;
    const vki_generate_params gp = greedy(1);
    vki_job *j = NULL;
    CHECK(vki_service_generate(svc, "a", "Once upon a time", &gp, &rp, &j) == VKI_OK);
    vki_job_result r = finish(j);
    CHECK(r.status != VKI_OK && !strcmp(r.model, "a") && strstr(r.message, "injected load failure"));
    vki_job_release(j);
    vki_service_destroy(svc);
    return test_finish("test_service_fallback");
}
