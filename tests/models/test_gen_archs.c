/* test_gen_archs.c: every architecture vkinfer-gen writes as GGUF for the
 * benchmarks (qwen3, qwen3moe, gemma2, gemma3, phi3; F32 and a quantized
 * type) loads through the public API and runs: the architecture the file
 * names, 8 greedy tokens with finite top logits, the same ids on a second
 * run, and the logits of a prompt equal on the CPU and on the backend under
 * test: to 1e-3 of the largest for F32, 5e-2 for quantized matrices (the CPU
 * backend quantizes activations to Q8 for them, as llama.cpp does; Vulkan
 * does not).
 * Usage: test_gen_archs --gen PATH/vkinfer-gen [--backend cpu|vulkan]. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model_test_util.h"
#include "util.h"
#include "vkinfer.h"

#define N_PREDICT 8

typedef struct gen_case { const char *arch, *args; double tol; } gen_case;

static const gen_case cases[] = {
    {"qwen3", "--preset tiny --arch qwen3 --seed 21", 1e-3},
    {"qwen3moe", "--preset tiny --arch qwen3moe --n-expert 4 --n-expert-used 2 --seed 22", 1e-3},
    {"gemma2", "--preset tiny --arch gemma2 --sliding-window 8 --seed 23", 1e-3},
    {"gemma3", "--preset tiny --arch gemma3 --n-layer 6 --sliding-window 8 --seed 24", 1e-3},
    {"phi3", "--preset tiny --arch phi3 --seed 25", 1e-3},
    {"qwen3moe", "--preset tiny --arch qwen3moe --n-embd 256 --n-head 4 --n-head-kv 2 --n-ff-exp 256 --type Q8_0 --seed 26",
     5e-2},
    {"gemma3", "--preset tiny --arch gemma3 --n-embd 256 --n-head 4 --n-head-kv 1 --n-ff 512 --type Q4_K --seed 27", 5e-2},
};

static const int32_t prompt[] = {1, 300, 301, 302, 303, 304, 305, 306, 307, 308, 309, 310, 311, 312, 313, 314, 315};

typedef struct run { int32_t n, ids[N_PREDICT]; float top[N_PREDICT]; } run;

static bool on_token(const vki_token_event *ev, void *user)
{
    run *r = user;
    if (r->n < N_PREDICT) {
        r->ids[r->n] = ev->id;
        r->top[r->n] = ev->top_logits[0];
        r->n++;
    }
    return true;
}

static vki_model *load(vki_engine *eng, const char *path, vki_backend_kind be)
{
    vki_model_params mp = vki_model_default_params();
    mp.backend = be;
    mp.n_ctx = 64;
    vki_model *m = NULL;
    vki_status s = vki_model_load(eng, path, &mp, &m);
    CHECKF(s == VKI_OK, "load %s: %s: %s", path, vki_status_str(s), vki_last_error());
    return s == VKI_OK ? m : NULL;
}

static bool prompt_logits(vki_model *m, float *out)
{
    mdl_model *mm = api_model_mdl(m);
    mdl_kv_seq_clear(mm, 0);
    mdl_span sp = {.seq = 0, .n_tokens = (int32_t)VKI_COUNT(prompt), .tokens = prompt};
    vki_status s = llama_decode(mm, &sp, 1, out);
    mdl_kv_seq_clear(mm, 0);
    CHECKF(s == VKI_OK, "decode: %s", vki_last_error());
    return s == VKI_OK;
}

int main(int argc, char **argv)
{
    const char *gen = NULL;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--gen")) gen = argv[i + 1];
    if (!gen) {
        fprintf(stderr, "usage: test_gen_archs --gen PATH/vkinfer-gen [--backend cpu|vulkan]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    const vki_backend_kind backend = mt_backend_arg(argc, argv);
    char work[256];
    snprintf(work, sizeof work, "%s/vki_gen_archs_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(work)) {
        fprintf(stderr, "mkdtemp %s failed\n", work);
        return 1;
    }
    vki_engine_params ep = mt_engine_params();
    vki_engine *eng = NULL;
    CHECKF(vki_engine_create(&ep, &eng) == VKI_OK, "engine: %s", vki_last_error());
    for (size_t k = 0; eng && k < VKI_COUNT(cases); k++) {
        const gen_case *c = &cases[k];
        char path[400], cmd[1024];
        snprintf(path, sizeof path, "%s/%zu-%s.gguf", work, k, c->arch);
        snprintf(cmd, sizeof cmd, "'%s' %s -o '%s' 2>&1", gen, c->args, path);
        int rc = system(cmd);
        CHECKF(rc == 0, "'%s' exited with %d", cmd, rc);
        if (rc != 0) continue;
        vki_model *m = load(eng, path, backend);
        if (!m) continue;
        CHECKF(!strcmp(vki_model_arch(m), c->arch), "%s: loaded as %s", c->args, vki_model_arch(m));
        run r[2] = {0};
        for (int pass = 0; pass < 2; pass++) {
            vki_generate_params gp = vki_generate_default_params();
            gp.n_predict = N_PREDICT;
            gp.temperature = 0;
            gp.ignore_eos = true;
            gp.add_special = false;
            vki_status s = vki_generate_ids(m, prompt, (int32_t)VKI_COUNT(prompt), &gp, on_token, &r[pass], NULL);
            CHECKF(s == VKI_OK && r[pass].n == N_PREDICT, "%s: generate: %s (%d tokens)", c->args,
                   vki_last_error(), r[pass].n);
        }
        bool finite = true;
        for (int t = 0; t < r[0].n; t++) finite &= isfinite(r[0].top[t]);
        CHECKF(finite, "%s: a top logit is not finite", c->args);
        CHECKF(!memcmp(r[0].ids, r[1].ids, sizeof r[0].ids), "%s: two greedy runs differ", c->args);
        /* the backend under test against the CPU backend */
        const int32_t nv = vki_model_n_vocab(m);
        float *la = malloc(sizeof *la * (size_t)nv), *lb = malloc(sizeof *lb * (size_t)nv);
        vki_model *cpu = backend == VKI_BACKEND_CPU ? NULL : load(eng, path, VKI_BACKEND_CPU);
        double diff = 0, scale = 0;
        if (prompt_logits(m, la) && (!cpu || prompt_logits(cpu, lb))) {
            for (int32_t i = 0; cpu && i < nv; i++) {
                diff = fmax(diff, fabs((double)la[i] - lb[i]));
                scale = fmax(scale, fabs((double)lb[i]));
            }
            CHECKF(diff <= c->tol * fmax(scale, 1.0), "%s: logits differ from the CPU's by %.3g (largest %.3g)",
                   c->args, diff, scale);
        }
        printf("%-9s %-60s %s: greedy %d %d %d %d ...%s\n", c->arch, c->args, vki_model_backend_name(m), r[0].ids[0],
               r[0].ids[1], r[0].ids[2], r[0].ids[3], cpu ? "" : " (CPU only)");
        if (cpu) printf("          prompt logits vs CPU: max diff %.3g (largest %.3g)\n", diff, scale);
        mt_check_validation(api_model_backend(m), c->arch);
        free(la);
        free(lb);
        vki_model_destroy(cpu);
        vki_model_destroy(m);
        unlink(path);
    }
    vki_engine_destroy(eng);
    rmdir(work);
    return test_finish("test_gen_archs");
}
