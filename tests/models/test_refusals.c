/* test_refusals.c: files that need what vkinfer does not do are refused
 * before a load, with a message that names the architecture or key, and
 * never run with wrong numbers: an unknown architecture, an unknown RoPE
 * scaling type, shared experts, a non-softmax expert gate, experts without
 * a count, more experts used than exist, a value length unlike the key
 * length, rank pooling. The same metadata without the defect is accepted
 * (so the refusals are not blanket ones). Files are written with the
 * project's GGUF writer into a temporary folder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/models/model.h"
#include "loader/gguf.h"
#include "test_util.h"

typedef enum defect {
    D_NONE, D_ARCH, D_ROPE_TYPE, D_SHARED_EXPERTS, D_GATING, D_NO_EXPERT_COUNT, D_TOO_MANY_USED, D_VALUE_LEN,
    D_POOL_RANK, D_COUNT
} defect;

static const char *const defect_name[D_COUNT] = {
    "none", "architecture", "rope scaling type", "shared experts", "expert gating", "no expert count",
    "experts used > count", "value length", "rank pooling",
};

/* A qwen3moe-shaped header (or mamba for D_ARCH) with one defect. */
static void write_file(const char *path, defect d)
{
    const char *arch = d == D_ARCH ? "mamba" : "qwen3moe";
    char key[128];
    gguf_writer *w = gguf_writer_create(32);
#define K(suffix) (snprintf(key, sizeof key, "%s.%s", arch, suffix), key)
    CHECK(gguf_write_str(w, "general.architecture", arch) == VKI_OK);
    gguf_write_u32(w, K("embedding_length"), 64);
    gguf_write_u32(w, K("block_count"), 1);
    gguf_write_u32(w, K("feed_forward_length"), 128);
    gguf_write_u32(w, K("attention.head_count"), 4);
    gguf_write_u32(w, K("attention.head_count_kv"), 2);
    gguf_write_u32(w, K("attention.key_length"), 16);
    gguf_write_u32(w, K("attention.value_length"), d == D_VALUE_LEN ? 32 : 16);
    if (d != D_NO_EXPERT_COUNT) gguf_write_u32(w, K("expert_count"), 4);
    gguf_write_u32(w, K("expert_used_count"), d == D_TOO_MANY_USED ? 5 : 2);
    if (d == D_SHARED_EXPERTS) gguf_write_u32(w, K("expert_shared_count"), 1);
    if (d == D_GATING) gguf_write_u32(w, K("expert_gating_func"), 2);
    if (d == D_ROPE_TYPE) gguf_write_str(w, K("rope.scaling.type"), "dynamic");
    if (d == D_POOL_RANK) gguf_write_u32(w, K("pooling_type"), 4);
#undef K
    static float embd[64 * 8];
    CHECK(gguf_write_tensor(w, "token_embd.weight", VKI_TYPE_F32, 2, (int64_t[]){64, 8}, embd) == VKI_OK);
    CHECK(gguf_writer_save(w, path) == VKI_OK);
    gguf_writer_destroy(w);
}

int main(void)
{
    char dir[] = "/tmp/vki_refusals_XXXXXX";
    if (!mkdtemp(dir)) test_skip("cannot make a temporary folder");
    static const struct { defect d; vki_status want; const char *says; } cases[] = {
        {D_NONE, VKI_OK, NULL},
        {D_ARCH, VKI_ERR_UNSUPPORTED, "architecture 'mamba' is not supported"},
        {D_ROPE_TYPE, VKI_ERR_UNSUPPORTED, "rope.scaling.type = 'dynamic' is not supported"},
        {D_SHARED_EXPERTS, VKI_ERR_UNSUPPORTED, "shared experts"},
        {D_GATING, VKI_ERR_UNSUPPORTED, "expert_gating_func 2"},
        {D_NO_EXPERT_COUNT, VKI_ERR_BAD_FILE, "expert_count"},
        {D_TOO_MANY_USED, VKI_ERR_BAD_FILE, "expert_used_count 5"},
        {D_VALUE_LEN, VKI_ERR_UNSUPPORTED, "value_length 32"},
        {D_POOL_RANK, VKI_ERR_UNSUPPORTED, "pooling_type 4"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/case%zu.gguf", dir, i);
        write_file(path, cases[i].d);
        vki_model_file *f = NULL;
        CHECKF(vki_file_open(path, &f) == VKI_OK, "%s: %s", path, vki_last_error());
        if (!f) continue;
        mdl_estimate_t e;
        vki_status s = mdl_estimate(f, NULL, &e);
        const char *msg = s == VKI_OK ? "" : vki_last_error();
        printf("%-22s -> %s%s%s\n", defect_name[cases[i].d], vki_status_str(s), s ? ": " : "", msg);
        CHECKF(s == cases[i].want, "%s: got %s, expected %s", defect_name[cases[i].d], vki_status_str(s),
               vki_status_str(cases[i].want));
        CHECKF(!cases[i].says || strstr(msg, cases[i].says), "%s: message '%s' does not say '%s'",
               defect_name[cases[i].d], msg, cases[i].says);
        vki_file_close(f);
        unlink(path);
    }
    rmdir(dir);
    return test_finish("test_refusals");
}
