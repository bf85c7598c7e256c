/* test_rope_scaling.c: the RoPE frequency divisors computed from scaling
 * keys (rope.c) against independent implementations:
 *   - llama3 keys (factor 8, low 1, high 4, original 8192, base 5e5) vs the
 *     rope_freqs.weight that llama.cpp's converter stored in
 *     ../shared/models/synthetic-llama-ropefreqs-f32.gguf, and vs Hugging
 *     Face transformers' llama3 frequencies (tests/models/data);
 *   - YaRN keys (factor 4, original 32768, base 1e6, head_dim 128) vs
 *     transformers' YaRN frequencies and attention factor;
 *   - linear: no divisors, rope_scale = 1/factor.
 * Usage: test_rope_scaling DATA_JSON. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/models/model.h"
#include "loader/gguf.h"
#include "test_util.h"

/* A llama header with the given scaling keys. */
static vki_model_file *open_with(const char *path, int head_dim, float base, const char *type, float factor,
                                 int orig, float low, float high)
{
    gguf_writer *w = gguf_writer_create(32);
    gguf_write_str(w, "general.architecture", "llama");
    gguf_write_u32(w, "llama.embedding_length", (uint32_t)(head_dim * 4));
    gguf_write_u32(w, "llama.block_count", 1);
    gguf_write_u32(w, "llama.feed_forward_length", 64);
    gguf_write_u32(w, "llama.attention.head_count", 4);
    gguf_write_u32(w, "llama.context_length", 131072);
    gguf_write_f32(w, "llama.rope.freq_base", base);
    gguf_write_str(w, "llama.rope.scaling.type", type);
    gguf_write_f32(w, "llama.rope.scaling.factor", factor);
    gguf_write_u32(w, "llama.rope.scaling.original_context_length", (uint32_t)orig);
    if (low > 0) gguf_write_f32(w, "llama.rope.scaling.low_freq_factor", low);
    if (high > 0) gguf_write_f32(w, "llama.rope.scaling.high_freq_factor", high);
    CHECK(gguf_writer_save(w, path) == VKI_OK);
    gguf_writer_destroy(w);
    vki_model_file *f = NULL;
    CHECKF(vki_file_open(path, &f) == VKI_OK, "%s: %s", path, vki_last_error());
    return f;
}

static double compare(const char *what, const float *got, const cJSON *ref, int n)
{
    double worst = 0;
    CHECKF(cJSON_GetArraySize(ref) == n, "%s: %d reference values for %d pairs", what, cJSON_GetArraySize(ref), n);
    for (int i = 0; i < n && i < cJSON_GetArraySize(ref); i++) {
        double r = cJSON_GetArrayItem(ref, i)->valuedouble;
        worst = fmax(worst, fabs(got[i] - r) / r);
    }
    printf("%-44s max relative difference %.2e over %d pairs\n", what, worst, n);
    CHECKF(worst < 1e-5, "%s: divisors differ by %.3g (relative)", what, worst);
    return worst;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_rope_scaling DATA_JSON\n");
        return 2;
    }
    char *text = test_read_file(argv[1], NULL);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!j) {
        fprintf(stderr, "%s: cannot read or parse\n", argv[1]);
        return 1;
    }
    char dir[] = "/tmp/vki_rope_XXXXXX", path[128];
    if (!mkdtemp(dir)) test_skip("cannot make a temporary folder");
    snprintf(path, sizeof path, "%s/h.gguf", dir);
    float div[128];
    bool have;
    uint64_t stored;
    mdl_arch arch;
    mdl_hparams hp;

    /* llama3 from keys */
    const cJSON *l3 = cJSON_GetObjectItem(j, "llama3");
    vki_model_file *f = open_with(path, 64, 500000.0f, "llama3", 8.0f, 8192, 1.0f, 4.0f);
    CHECK(f && mdl_read_hparams(f, &arch, &hp) == VKI_OK);
    CHECK(f && mdl_rope_divisors(f, arch, &hp, 4096, div, &have, &stored) == VKI_OK && have);
    compare("llama3 keys vs transformers", div, cJSON_GetObjectItem(l3, "divisors"), 32);
    vki_file_close(f);
    /* ... and vs the factors llama.cpp's converter stored */
    vki_model_file *g = NULL;
    /* not test_shared_path: without ../shared only this comparison is skipped */
    char shared[4096];
    const char *sd = getenv("VKI_SHARED_DIR");
    snprintf(shared, sizeof shared, "%s/models/synthetic-llama-ropefreqs-f32.gguf", sd && sd[0] ? sd : "../shared");
    if (access(shared, R_OK) == 0 && vki_file_open(shared, &g) == VKI_OK) {
        const vki_tensor_info *ti = vki_file_find_tensor(g, "rope_freqs.weight");
        float stored_div[32];
        CHECK(ti && ti->ne[0] == 32 && vki_tensor_dequant_row(ti, 0, stored_div) == VKI_OK);
        cJSON *arr = cJSON_CreateFloatArray(stored_div, 32);
        compare("llama3 keys vs llama.cpp's rope_freqs.weight", div, arr, 32);
        cJSON_Delete(arr);
        vki_file_close(g);
    } else {
        printf("note: %s absent: the comparison with llama.cpp's stored factors is skipped\n", shared);
    }

    /* YaRN */
    const cJSON *y = cJSON_GetObjectItem(j, "yarn");
    f = open_with(path, 128, 1e6f, "yarn", 4.0f, 32768, 0, 0);
    CHECK(f && mdl_read_hparams(f, &arch, &hp) == VKI_OK);
    CHECK(f && mdl_rope_divisors(f, arch, &hp, 4096, div, &have, &stored) == VKI_OK && have);
    compare("yarn keys vs transformers", div, cJSON_GetObjectItem(y, "divisors"), 64);
    double att = cJSON_GetObjectItem(y, "attn_factor")->valuedouble;
    printf("%-44s %.7f vs %.7f\n", "yarn attention factor", hp.rope_mscale, att);
    CHECKF(fabs(hp.rope_mscale - att) < 1e-6, "yarn mscale %g, transformers %g", hp.rope_mscale, att);
    vki_file_close(f);

    /* linear */
    f = open_with(path, 64, 10000.0f, "linear", 4.0f, 4096, 0, 0);
    CHECK(f && mdl_read_hparams(f, &arch, &hp) == VKI_OK);
    CHECK(f && mdl_rope_divisors(f, arch, &hp, 4096, div, &have, &stored) == VKI_OK);
    CHECKF(!have && fabsf(hp.rope_scale - 0.25f) < 1e-7f, "linear: have %d, scale %g", have, hp.rope_scale);
    vki_file_close(f);

    unlink(path);
    rmdir(dir);
    cJSON_Delete(j);
    return test_finish("test_rope_scaling");
}
