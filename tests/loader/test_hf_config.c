/* test_hf_config.c: the HF config.json and tensor-name mapping of the newer
 * families, on the tiny transformers-made folders in
 * tests/models/data/hf_tiny: the GGUF keys each config turns into (RoPE
 * scaling, experts, Gemma's window, pattern, softcaps and scale, LongRoPE
 * factor tensors), MoE experts stacked into one tensor whose rows are the
 * per-expert rows, Gemma norms stored + 1, fused Phi-3 and nomic tensors;
 * and every setting the engine does not implement refused with
 * UNSUPPORTED and a message naming it (a copy of a folder with one config
 * key changed).
 * Usage: test_hf_config --data DIR. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loader/model_file.h"
#include "test_util.h"
#include "util.h"

static const char *data_dir;

static vki_model_file *open_family(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", data_dir, name);
    vki_model_file *f = NULL;
    vki_status s = vki_file_open(path, &f);
    CHECKF(s == VKI_OK, "%s: %s", path, vki_last_error());
    return f;
}

/* The checkpoint as stored: the safetensors bytes alone (no config.json
 * beside them), HF names. The bytes stay in raw_bytes until the next call. */
static char *raw_bytes;

static vki_model_file *open_raw(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/model.safetensors", data_dir, name);
    size_t n = 0;
    free(raw_bytes);
    raw_bytes = test_read_file(path, &n);
    vki_model_file *f = NULL;
    CHECKF(raw_bytes && vki_file_open_safetensors_memory(raw_bytes, n, path, &f) == VKI_OK, "%s: %s", path,
           vki_last_error());
    return f;
}

static void check_u32(const vki_model_file *f, const char *key, uint32_t want)
{
    uint32_t v = 0;
    CHECKF(vki_file_get_u32(f, key, &v) && v == want, "%s = %u, expected %u", key, v, want);
}

static void check_f32(const vki_model_file *f, const char *key, double want)
{
    float v = NAN;
    CHECKF(vki_file_get_f32(f, key, &v) && fabs(v - want) <= 1e-6 * fmax(1.0, fabs(want)), "%s = %g, expected %g",
           key, v, want);
}

static void check_str(const vki_model_file *f, const char *key, const char *want)
{
    vki_str v = {0};
    CHECKF(vki_file_get_str(f, key, &v) && v.n == strlen(want) && !memcmp(v.p, want, v.n), "%s = '%.*s', expected '%s'",
           key, (int)v.n, v.p ? v.p : "", want);
}

static const vki_tensor_info *check_tensor(const vki_model_file *f, const char *name, int64_t ne0, int64_t ne1,
                                           int64_t ne2)
{
    const vki_tensor_info *t = vki_file_find_tensor(f, name);
    CHECKF(t, "tensor %s is missing", name);
    if (t)
        CHECKF(t->ne[0] == ne0 && t->ne[1] == ne1 && t->ne[2] == ne2, "%s: [%lld, %lld, %lld], expected [%lld, %lld, %lld]",
               name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)ne0, (long long)ne1,
               (long long)ne2);
    return t;
}

/* Logical row r of t, as the engine reads it, against row `row` of raw tensor `hf` (+ add). */
static void check_row(const vki_tensor_info *t, int64_t r, const vki_tensor_info *hf, int64_t row, float add)
{
    if (!t || !hf) return;
    float a[512], b[512];
    CHECK(t->ne[0] <= 512 && hf->ne[0] == t->ne[0]);
    if (t->ne[0] > 512 || hf->ne[0] != t->ne[0]) return;
    CHECK(vki_tensor_dequant_row(t, r, a) == VKI_OK && vki_tensor_dequant_row(hf, row, b) == VKI_OK);
    bool same = true;
    for (int64_t i = 0; i < t->ne[0]; i++) same &= a[i] == b[i] + add;
    CHECKF(same, "%s row %lld differs from %s row %lld%s", t->name, (long long)r, hf->name, (long long)row,
           add != 0 ? " + 1" : "");
    if (add == 0 && t->type == hf->type && vki_tensor_read_mode(t) != VKI_TENSOR_READ_DEQUANT)
        CHECKF(!memcmp(vki_tensor_row_data(t, r), vki_tensor_row_data(hf, row), vki_row_bytes(t->type, t->ne[0])),
               "%s row %lld: stored bytes differ", t->name, (long long)r);
}

static void test_mappings(void)
{
    vki_model_file *f = open_family("llama3");
    if (f) {
        check_str(f, "general.architecture", "llama");
        check_str(f, "llama.rope.scaling.type", "llama3");
        check_f32(f, "llama.rope.scaling.factor", 8);
        check_f32(f, "llama.rope.scaling.low_freq_factor", 1);
        check_f32(f, "llama.rope.scaling.high_freq_factor", 4);
        check_u32(f, "llama.rope.scaling.original_context_length", 64);
        check_u32(f, "llama.rope.dimension_count", 16);
        const vki_tensor_info *q = check_tensor(f, "blk.0.attn_q.weight", 64, 64, 1);
        CHECK(q && q->rope_permute_heads == 4 && vki_tensor_read_mode(q) == VKI_TENSOR_READ_ROWS);
    }
    vki_file_close(f);

    f = open_family("qwen3");
    if (f) {
        check_str(f, "general.architecture", "qwen3");
        check_u32(f, "qwen3.attention.key_length", 32);
        check_u32(f, "qwen3.attention.value_length", 32);
        check_f32(f, "qwen3.rope.freq_base", 1e6);
        CHECK(!vki_file_find_kv(f, "qwen3.rope.scaling.type"));
        const vki_tensor_info *q = check_tensor(f, "blk.1.attn_q.weight", 64, 128, 1);
        CHECK(q && q->rope_permute_heads == 0 && vki_tensor_read_mode(q) == VKI_TENSOR_READ_DIRECT);
        check_tensor(f, "blk.1.attn_q_norm.weight", 32, 1, 1);
        check_tensor(f, "blk.1.attn_k_norm.weight", 32, 1, 1);
    }
    vki_file_close(f);

    f = open_family("qwen3-yarn");
    if (f) {
        check_str(f, "qwen3.rope.scaling.type", "yarn");
        check_f32(f, "qwen3.rope.scaling.factor", 4);
        check_u32(f, "qwen3.rope.scaling.original_context_length", 32);
    }
    vki_file_close(f);

    const char *moe[2] = {"qwen3moe", "qwen3moe-nonorm"};
    for (int k = 0; k < 2; k++) {
        f = open_family(moe[k]);
        vki_model_file *raw = open_raw(moe[k]);
        if (f && raw) {
            check_str(f, "general.architecture", "qwen3moe");
            check_u32(f, "qwen3moe.expert_count", 4);
            check_u32(f, "qwen3moe.expert_used_count", 2);
            check_u32(f, "qwen3moe.expert_feed_forward_length", 32);
            bool norm = !k;
            CHECKF(vki_file_get_bool(f, "qwen3moe.expert_weights_norm", &norm) && norm == !k,
                   "%s: expert_weights_norm", moe[k]);
            check_tensor(f, "blk.0.ffn_gate_inp.weight", 64, 4, 1);
            const char *proj[3] = {"gate", "up", "down"};
            for (int p = 0; p < 3; p++) {
                char name[96], hf[128];
                snprintf(name, sizeof name, "blk.0.ffn_%s_exps.weight", proj[p]);
                const vki_tensor_info *t = check_tensor(f, name, p == 2 ? 32 : 64, p == 2 ? 64 : 32, 4);
                CHECK(t && t->n_dims == 3 && t->n_parts == 4 && !t->data &&
                      vki_tensor_read_mode(t) == VKI_TENSOR_READ_ROWS);
                CHECK(!t || t->bytes == 4u * 64u * 32u * 4u);
                for (int e = 0; t && e < 4; e++) {
                    snprintf(hf, sizeof hf, "model.layers.0.mlp.experts.%d.%s_proj.weight", e, proj[p]);
                    const vki_tensor_info *x = vki_file_find_tensor(raw, hf);
                    CHECKF(x, "%s: %s", moe[k], hf);
                    for (int64_t r = 0; x && r < t->ne[1]; r += 7) check_row(t, e * t->ne[1] + r, x, r, 0);
                }
            }
            CHECK(!vki_file_find_tensor(f, "model.layers.0.mlp.experts.0.gate_proj.weight"));
        }
        vki_file_close(raw);
        vki_file_close(f);
    }

    const char *gem[2] = {"gemma2", "gemma3"};
    for (int k = 0; k < 2; k++) {
        char key[96];
        f = open_family(gem[k]);
        vki_model_file *raw = open_raw(gem[k]);
        if (f && raw) {
            snprintf(key, sizeof key, "%s.attention.sliding_window", gem[k]);
            check_u32(f, key, 8);
            snprintf(key, sizeof key, "%s.attention.sliding_window_pattern", gem[k]);
            check_u32(f, key, k ? 3 : 2);
            snprintf(key, sizeof key, "%s.attention.scale", gem[k]);
            check_f32(f, key, 1.0 / sqrt(24.0));
            snprintf(key, sizeof key, "%s.attention.key_length", gem[k]);
            check_u32(f, key, 16);
            if (k == 0) {
                check_f32(f, "gemma2.attn_logit_softcapping", 2);
                check_f32(f, "gemma2.final_logit_softcapping", 3);
            } else {
                CHECK(!vki_file_find_kv(f, "gemma3.attn_logit_softcapping"));
                check_f32(f, "gemma3.rope.freq_base", 1e6);
                check_f32(f, "gemma3.rope.freq_base_swa", 1e4);
                check_str(f, "gemma3.rope.scaling.type", "linear");
                check_f32(f, "gemma3.rope.scaling.factor", 4);
            }
            static const char *const norms[][2] = {
                {"blk.2.attn_norm.weight", "model.layers.2.input_layernorm.weight"},
                {"blk.2.post_attention_norm.weight", "model.layers.2.post_attention_layernorm.weight"},
                {"blk.2.ffn_norm.weight", "model.layers.2.pre_feedforward_layernorm.weight"},
                {"blk.2.post_ffw_norm.weight", "model.layers.2.post_feedforward_layernorm.weight"},
                {"output_norm.weight", "model.norm.weight"},
                {"blk.0.attn_q_norm.weight", "model.layers.0.self_attn.q_norm.weight"},
                {"blk.0.attn_k_norm.weight", "model.layers.0.self_attn.k_norm.weight"},
            };
            for (size_t i = 0; i < (k ? VKI_COUNT(norms) : 5); i++) {
                const vki_tensor_info *t = vki_file_find_tensor(f, norms[i][0]);
                const vki_tensor_info *x = vki_file_find_tensor(raw, norms[i][1]);
                CHECKF(t && x, "%s: %s / %s", gem[k], norms[i][0], norms[i][1]);
                if (t && x) {
                    CHECK(t->type == VKI_TYPE_F32 && vki_tensor_read_mode(t) == VKI_TENSOR_READ_DIRECT);
                    check_row(t, 0, x, 0, 1.0f);
                }
            }
            const vki_tensor_info *q = vki_file_find_tensor(f, "blk.0.attn_q.weight");
            const vki_tensor_info *qx = vki_file_find_tensor(raw, "model.layers.0.self_attn.q_proj.weight");
            check_row(q, 5, qx, 5, 0); /* matrices untouched */
            CHECK(!vki_file_find_tensor(f, "output.weight"));
        }
        vki_file_close(raw);
        vki_file_close(f);
    }

    f = open_family("phi3");
    if (f) {
        check_str(f, "general.architecture", "phi3");
        check_u32(f, "phi3.rope.dimension_count", 16);
        check_tensor(f, "blk.0.attn_qkv.weight", 64, 128, 1);
        check_tensor(f, "blk.0.ffn_up.weight", 64, 192, 1);
        check_tensor(f, "blk.0.ffn_down.weight", 96, 64, 1);
        CHECK(!vki_file_find_tensor(f, "rope_factors_long.weight"));
    }
    vki_file_close(f);

    f = open_family("phi3-longrope");
    if (f) {
        check_u32(f, "phi3.rope.dimension_count", 8);
        check_u32(f, "phi3.context_length", 128);
        check_u32(f, "phi3.rope.scaling.original_context_length", 32);
        check_f32(f, "phi3.rope.scaling.attn_factor", sqrt(1.0 + log(4.0) / log(32.0)));
        const float want[2][4] = {{1.0f, 1.5f, 3.0f, 6.0f}, {1.0f, 1.1f, 1.25f, 1.5f}};
        const char *names[2] = {"rope_factors_long.weight", "rope_factors_short.weight"};
        for (int k = 0; k < 2; k++) {
            const vki_tensor_info *t = check_tensor(f, names[k], 4, 1, 1);
            float v[4] = {0};
            CHECK(t && t->type == VKI_TYPE_F32 && vki_tensor_dequant_row(t, 0, v) == VKI_OK);
            CHECKF(!memcmp(v, want[k], sizeof v), "%s = %g %g %g %g", names[k], v[0], v[1], v[2], v[3]);
        }
    }
    vki_file_close(f);

    f = open_family("nomic-bert");
    if (f) {
        check_str(f, "general.architecture", "nomic-bert");
        bool causal = true;
        CHECK(vki_file_get_bool(f, "nomic-bert.attention.causal", &causal) && !causal);
        check_u32(f, "nomic-bert.pooling_type", 1);
        check_f32(f, "nomic-bert.rope.freq_base", 1000);
        check_f32(f, "nomic-bert.attention.layer_norm_epsilon", 1e-12);
        check_tensor(f, "blk.1.attn_qkv.weight", 64, 192, 1);
        check_tensor(f, "blk.1.ffn_gate.weight", 64, 96, 1);
        check_tensor(f, "token_embd_norm.bias", 64, 1, 1);
        check_tensor(f, "blk.1.layer_output_norm.weight", 64, 1, 1);
        check_tensor(f, "token_types.weight", 64, 2, 1);
    }
    vki_file_close(f);
}

/* ----- refusals: a copy of a folder with one config change ---------------- */

static char work[256];

static void copy_file(const char *from, const char *to)
{
    size_t n = 0;
    char *text = test_read_file(from, &n);
    FILE *fp = text ? fopen(to, "wb") : NULL;
    CHECKF(fp, "copy %s -> %s", from, to);
    if (fp) {
        fwrite(text, 1, n, fp);
        fclose(fp);
    }
    free(text);
}

/* Opens family `name` with the keys of `patch` (a JSON object; null deletes)
 * set in its config.json; expects `want`, and `needle` in the message. */
static void expect(const char *name, const char *patch, vki_status want, const char *needle)
{
    char src[1024], dst[1024], dir[512];
    snprintf(dir, sizeof dir, "%s/%s", work, name);
    mkdir(dir, 0755);
    snprintf(src, sizeof src, "%s/%s/model.safetensors", data_dir, name);
    snprintf(dst, sizeof dst, "%s/model.safetensors", dir);
    unlink(dst);
    char *abs = realpath(src, NULL);
    CHECKF(abs && symlink(abs, dst) == 0, "symlink %s -> %s", dst, src);
    free(abs);
    snprintf(src, sizeof src, "%s/%s/tokenizer.json", data_dir, name);
    snprintf(dst, sizeof dst, "%s/tokenizer.json", dir);
    copy_file(src, dst);
    snprintf(src, sizeof src, "%s/%s/config.json", data_dir, name);
    char *text = test_read_file(src, NULL);
    cJSON *cfg = text ? cJSON_Parse(text) : NULL, *p = cJSON_Parse(patch);
    free(text);
    CHECKF(cfg && p, "%s: config or patch '%s' is not JSON", name, patch);
    if (!cfg || !p) {
        cJSON_Delete(cfg);
        cJSON_Delete(p);
        return;
    }
    for (cJSON *e = p->child; e; e = e->next) {
        cJSON_DeleteItemFromObjectCaseSensitive(cfg, e->string);
        if (!cJSON_IsNull(e)) cJSON_AddItemToObject(cfg, e->string, cJSON_Duplicate(e, true));
    }
    char *out = cJSON_Print(cfg);
    snprintf(dst, sizeof dst, "%s/config.json", dir);
    FILE *fp = fopen(dst, "w");
    if (fp) {
        fputs(out, fp);
        fclose(fp);
    }
    free(out);
    cJSON_Delete(cfg);
    cJSON_Delete(p);
    vki_model_file *f = NULL;
    vki_status s = vki_file_open(dir, &f);
    CHECKF(s == want, "%s + %s: %s (%s), expected %s", name, patch, vki_status_str(s), s ? vki_last_error() : "",
           vki_status_str(want));
    if (s != VKI_OK && needle)
        CHECKF(strstr(vki_last_error(), needle), "%s + %s: message '%s' does not name '%s'", name, patch,
               vki_last_error(), needle);
    vki_file_close(f);
}

static void test_refusals(void)
{
    const vki_status U = VKI_ERR_UNSUPPORTED;
    expect("qwen3", "{}", VKI_OK, NULL);
    expect("qwen3", "{\"model_type\": \"mixtral\"}", U, "mixtral");
    expect("qwen3", "{\"rope_parameters\": {\"rope_type\": \"dynamic\", \"factor\": 2.0, \"rope_theta\": 1e6}}", U,
           "dynamic");
    expect("qwen3", "{\"rope_parameters\": null, \"rope_theta\": 1e6, \"rope_scaling\": {\"type\": \"ntk\", "
           "\"factor\": 2.0}}", U, "ntk");
    expect("qwen3", "{\"rope_parameters\": {\"rope_type\": \"longrope\", \"long_factor\": [1], \"short_factor\": [1]}}",
           U, "longrope");
    expect("qwen3", "{\"rope_parameters\": {\"rope_type\": \"yarn\", \"factor\": 4.0, \"attention_factor\": 1.2, "
           "\"original_max_position_embeddings\": 32}}", U, "attention_factor");
    expect("qwen3", "{\"rope_parameters\": {\"rope_type\": \"llama3\", \"factor\": 8.0}}", VKI_ERR_BAD_FILE, "llama3");
    expect("qwen3", "{\"hidden_act\": \"gelu\"}", U, "hidden_act");
    expect("qwen3", "{\"use_sliding_window\": true}", U, "use_sliding_window");
    expect("qwen3", "{\"partial_rotary_factor\": 0.5}", VKI_OK, NULL);
    expect("qwen3moe", "{\"mlp_only_layers\": [0]}", U, "mlp_only_layers");
    expect("qwen3moe", "{\"decoder_sparse_step\": 2}", U, "decoder_sparse_step");
    expect("qwen3moe", "{\"num_experts\": 2, \"num_local_experts\": 2}", VKI_ERR_BAD_FILE, "experts");
    expect("gemma2", "{\"hidden_activation\": \"gelu\"}", U, "hidden_activation");
    expect("gemma3", "{\"layer_types\": [\"full_attention\", \"sliding_attention\", \"full_attention\"]}", U,
           "layer_types");
    expect("gemma3", "{\"use_bidirectional_attention\": true}", U, "use_bidirectional_attention");
    expect("phi3-longrope", "{\"rope_scaling\": {\"type\": \"longrope\", \"long_factor\": [1, 2], "
           "\"short_factor\": [1, 2]}}", VKI_ERR_BAD_FILE, "long_factor");
    expect("nomic-bert", "{\"prenorm\": true}", U, "prenorm");
    expect("nomic-bert", "{\"rotary_emb_fraction\": 0.5}", U, "rotary_emb_fraction");
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--data")) data_dir = argv[i + 1];
    if (!data_dir) {
        fprintf(stderr, "usage: test_hf_config --data DIR\n");
        return 2;
    }
    snprintf(work, sizeof work, "%s/vki_hf_config_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(work)) {
        fprintf(stderr, "mkdtemp %s failed\n", work);
        return 1;
    }
    test_mappings();
    test_refusals();
    free(raw_bytes);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", work);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", work);
    return test_finish("test_hf_config");
}
