/*
 * test_service_config.c: vki_service_create_from_config: a YAML file with a
 * chat model, an embedding model (relative path) and a missing model that
 * falls back; the `server` section left to `vkinfer serve`; malformed
 * files refused with FILE:LINE:COL, unknown keys, a fallback naming no
 * model, a missing file. argv: CHAT.gguf EMBED.gguf.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "service_test_util.h"

static char dir[] = "/tmp/vki_svc_cfg_XXXXXX";

static const char *write_cfg(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) test_skip("cannot write %s", path);
    fputs(text, f);
    fclose(f);
    return path;
}

static void expect_refused(const char *name, const char *text, vki_status want, const char *needle)
{
    vki_service *svc = (vki_service *)1;
    vki_status st = vki_service_create_from_config(write_cfg(name, text), NULL, &svc);
    CHECKF(st == want, "%s: %s (%s)", name, vki_status_str(st), vki_last_error());
    CHECK(svc == NULL);
    CHECKF(strstr(vki_last_error(), needle), "%s: '%s' lacks '%s'", name, vki_last_error(), needle);
}

int main(int argc, char **argv)
{
    svc_models_arg(argc, argv, "test_service_config", "");
    if (!mkdtemp(dir)) test_skip("mkdtemp failed");
    char link[600];
    snprintf(link, sizeof link, "%s/emb.gguf", dir);
    if (symlink(argv[2], link) != 0) test_skip("cannot link %s", link);

    char text[4096];
    snprintf(text, sizeof text,
             "server: {port: 1234, not_a_library_key: 1}\n"
             "device: {prefer: cpu}\n"
             "warmup: {enabled: false}\n"
             "models:\n"
             "  - {id: chat, path: %s, n_seq_max: 2}\n"
             "  - {id: emb, path: emb.gguf}\n"
             "  - {id: gone, path: gone.gguf, kind: chat, fallback: [chat]}\n",
             argv[1]);
    vki_service *svc = NULL;
    vki_status st = vki_service_create_from_config(write_cfg("ok.yaml", text), NULL, &svc);
    CHECKF(st == VKI_OK, "%s", vki_last_error());
    if (svc) {
        CHECK(vki_service_model_count(svc) == 3);
        vki_service_model_info info;
        CHECK(vki_service_get_model_info(svc, vki_service_model_find(svc, "emb"), &info) == VKI_OK);
        CHECK(info.kind == VKI_MODEL_KIND_EMBEDDING);
        vki_service_wait_loaded(svc, 60000); /* "gone" has failed: a fallback for a missing file */
        vki_job *j = NULL;
        vki_generate_params gp = vki_generate_default_params();
        gp.n_predict = 4;
        gp.ignore_eos = true;
        CHECK(vki_service_generate(svc, "gone", "Hi", &gp, NULL, &j) == VKI_OK);
        CHECK(vki_job_wait(j, 60000) == VKI_OK);
        vki_job_result r;
        vki_job_get_result(j, &r);
        CHECKF(r.status == VKI_OK, "%s", r.message);
        CHECKF(!strcmp(r.model, "chat") && r.fallback == VKI_FALLBACK_MISSING && r.n_generated == 4, "%s %s %d",
               r.model, vki_fallback_reason_name(r.fallback), r.n_generated);
        vki_job_release(j);
        CHECK(vki_service_get_model_info(svc, vki_service_model_find(svc, "chat"), &info) == VKI_OK);
        CHECKF(info.state == VKI_MODEL_RESIDENT_CPU && info.n_seq_max == 2, "%s, %d",
               vki_model_state_name(info.state), info.n_seq_max);
        vki_service_destroy(svc);
    }

    expect_refused("syntax.yaml", "models:\n  - {id: a, path: [x\n", VKI_ERR_BAD_FILE, "syntax.yaml:");
    expect_refused("key.yaml", "device: {prefer: cpu}\nmodles: []\n", VKI_ERR_BAD_FILE,
                   "key.yaml:2:1: unknown top-level key 'modles'");
    expect_refused("mkey.yaml", "models:\n  - {id: a, path: x.gguf, colour: red}\n", VKI_ERR_BAD_FILE,
                   "mkey.yaml:2:27: models[]: unknown key 'colour'");
    expect_refused("fb.yaml", "models:\n  - {id: a, path: x.gguf, kind: chat, fallback: [b]}\n",
                   VKI_ERR_INVALID_ARGUMENT, "fallback names 'b'");
    expect_refused("none.yaml", "device: {prefer: cpu}\n", VKI_ERR_INVALID_ARGUMENT, "no models");
    vki_service *svc2 = NULL;
    CHECK(vki_service_create_from_config("/nonexistent/vkinfer.yaml", NULL, &svc2) == VKI_ERR_NOT_FOUND);
    CHECKF(strstr(vki_last_error(), "cannot open"), "%s", vki_last_error());
    CHECK(vki_service_create_from_config(NULL, NULL, &svc2) == VKI_ERR_INVALID_ARGUMENT);

    const char *names[] = {"ok.yaml", "syntax.yaml", "key.yaml", "mkey.yaml", "fb.yaml", "none.yaml", "emb.gguf"};
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, names[k]);
        unlink(p);
    }
    rmdir(dir);
    return test_finish("test_service_config");
}
