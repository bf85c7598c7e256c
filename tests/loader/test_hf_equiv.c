/* test_hf_equiv.c: an HF-layout checkpoint (model.safetensors + config.json)
 * and its GGUF conversion, written here from the same random weights, must
 * give the same description: tensor names, shapes, types, every dequantized
 * row (llama q/k through convert_hf_to_gguf's rotary permutation) and the
 * key hyperparameters. Done for a llama (GQA) and a BERT. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "loader/gguf.h"
#include "loader/model_file.h"
#include "test_util.h"
#include "util.h"

typedef struct wt { char hf[96], gguf[96]; int64_t rows, cols; float *w; int permute_heads; } wt;

static uint64_t rng = 7;

static void add(wt *t, int *n, const char *hf, const char *gguf, int64_t rows, int64_t cols, int heads)
{
    wt *x = &t[(*n)++];
    snprintf(x->hf, sizeof x->hf, "%s", hf);
    snprintf(x->gguf, sizeof x->gguf, "%s", gguf);
    x->rows = rows;
    x->cols = cols;
    x->permute_heads = heads;
    x->w = malloc((size_t)(rows * cols) * sizeof(float));
    for (int64_t i = 0; i < rows * cols; i++) x->w[i] = test_rand_f32(&rng, -1, 1);
}

/* convert_hf_to_gguf's permute: view the rows as (n_head, 2, hd/2) and swap
 * the last two axes: GGUF row (h, i, j) is HF row (h, j, i). */
static void permute_rows(const wt *t, float *dst)
{
    const int64_t hd = t->rows / t->permute_heads;
    for (int64_t h = 0; h < t->permute_heads; h++)
        for (int64_t i = 0; i < hd / 2; i++)
            for (int64_t j = 0; j < 2; j++)
                memcpy(dst + (h * hd + i * 2 + j) * t->cols, t->w + (h * hd + j * (hd / 2) + i) * t->cols,
                       (size_t)t->cols * sizeof(float));
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void write_pair(const char *dir, const char *name, wt *t, int n, const char *config, void (*kv)(gguf_writer *))
{
    char path[1024];
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/%s-hf", dir, name);
    mkdir(path, 0755);
    /* safetensors: HF names, torch shapes [rows, cols] (or [cols] for vectors) */
    size_t cap = 1 << 16, len = 0;
    char *json = malloc(cap);
    uint64_t off = 0;
    len += (size_t)snprintf(json + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        uint64_t bytes = (uint64_t)(t[i].rows * t[i].cols) * 4;
        if (t[i].rows > 1)
            len += (size_t)snprintf(json + len, cap - len, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],\"data_offsets\":[%llu,%llu]}",
                                    t[i].hf, (long long)t[i].rows, (long long)t[i].cols, (unsigned long long)off, (unsigned long long)(off + bytes));
        else
            len += (size_t)snprintf(json + len, cap - len, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld],\"data_offsets\":[%llu,%llu]}",
                                    t[i].hf, (long long)t[i].cols, (unsigned long long)off, (unsigned long long)(off + bytes));
        off += bytes;
    }
    len += (size_t)snprintf(json + len, cap - len, "}");
    char st[1100];
    snprintf(st, sizeof st, "%s/model.safetensors", path);
    FILE *f = fopen(st, "wb");
    uint64_t hl = len;
    fwrite(&hl, 8, 1, f);
    fwrite(json, 1, len, f);
    for (int i = 0; i < n; i++) fwrite(t[i].w, 4, (size_t)(t[i].rows * t[i].cols), f);
    fclose(f);
    free(json);
    snprintf(st, sizeof st, "%s/config.json", path);
    write_text(st, config);
    /* GGUF: GGUF names, ne = [cols, rows], q/k rows permuted */
    gguf_writer *w = gguf_writer_create(32);
    kv(w);
    for (int i = 0; i < n; i++) {
        float *d = t[i].w, *p = NULL;
        if (t[i].permute_heads) {
            p = malloc((size_t)(t[i].rows * t[i].cols) * sizeof(float));
            permute_rows(&t[i], p);
            d = p;
        }
        const int64_t ne[2] = {t[i].cols, t[i].rows};
        CHECK(gguf_write_tensor(w, t[i].gguf, VKI_TYPE_F32, t[i].rows > 1 ? 2 : 1, ne, d) == VKI_OK);
        free(p);
    }
    snprintf(st, sizeof st, "%s/%s.gguf", dir, name);
    CHECK(gguf_writer_save(w, st) == VKI_OK);
    gguf_writer_destroy(w);
}

static void compare(const char *dir, const char *name, const char *const *keys)
{
    char hf[1024], gg[1024];
    snprintf(hf, sizeof hf, "%s/%s-hf", dir, name);
    snprintf(gg, sizeof gg, "%s/%s.gguf", dir, name);
    vki_model_file *a = NULL, *b = NULL;
    CHECKF(vki_file_open(hf, &a) == VKI_OK, "%s: %s", hf, vki_last_error());
    CHECKF(vki_file_open(gg, &b) == VKI_OK, "%s: %s", gg, vki_last_error());
    if (!a || !b) goto done;
    CHECK(vki_file_format_of(a) == VKI_FORMAT_SAFETENSORS && vki_file_format_of(b) == VKI_FORMAT_GGUF);
    CHECKF(!strcmp(vki_file_arch(a), vki_file_arch(b)), "arch %s vs %s", vki_file_arch(a), vki_file_arch(b));
    CHECKF(vki_file_n_tensors(a) == vki_file_n_tensors(b), "%s: %lld vs %lld tensors", name,
           (long long)vki_file_n_tensors(a), (long long)vki_file_n_tensors(b));
    for (int64_t i = 0; i < vki_file_n_tensors(b); i++) {
        const vki_tensor_info *tb = vki_file_tensor(b, i), *ta = vki_file_find_tensor(a, tb->name);
        CHECKF(ta, "%s: tensor %s missing from the HF side", name, tb->name);
        if (!ta) continue;
        CHECKF(ta->n_dims == tb->n_dims && ta->type == tb->type && !memcmp(ta->ne, tb->ne, sizeof ta->ne),
               "%s: %s shape/type differ", name, tb->name);
        float *ra = malloc((size_t)tb->ne[0] * 4), *rb = malloc((size_t)tb->ne[0] * 4);
        for (int64_t r = 0; r < tb->ne[1]; r++) {
            CHECK(vki_tensor_dequant_row(ta, r, ra) == VKI_OK && vki_tensor_dequant_row(tb, r, rb) == VKI_OK);
            if (memcmp(ra, rb, (size_t)tb->ne[0] * 4)) {
                CHECKF(false, "%s: %s row %lld differs", name, tb->name, (long long)r);
                break;
            }
        }
        free(ra);
        free(rb);
    }
    for (int k = 0; keys[k]; k++) {
        float fa = -1, fb = -2;
        CHECKF(vki_file_get_f32(a, keys[k], &fa) && vki_file_get_f32(b, keys[k], &fb) && fa == fb,
               "%s: %s is %g (HF) vs %g (GGUF)", name, keys[k], fa, fb);
    }
done:
    vki_file_close(a);
    vki_file_close(b);
}

static void llama_kv(gguf_writer *w)
{
    gguf_write_str(w, "general.architecture", "llama");
    gguf_write_u32(w, "llama.block_count", 2);
    gguf_write_u32(w, "llama.context_length", 256);
    gguf_write_u32(w, "llama.embedding_length", 64);
    gguf_write_u32(w, "llama.feed_forward_length", 96);
    gguf_write_u32(w, "llama.attention.head_count", 4);
    gguf_write_u32(w, "llama.attention.head_count_kv", 2);
    gguf_write_u32(w, "llama.rope.dimension_count", 16);
    gguf_write_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_write_f32(w, "llama.rope.freq_base", 500000.0f);
}

static void bert_kv(gguf_writer *w)
{
    gguf_write_str(w, "general.architecture", "bert");
    gguf_write_u32(w, "bert.block_count", 1);
    gguf_write_u32(w, "bert.context_length", 16);
    gguf_write_u32(w, "bert.embedding_length", 32);
    gguf_write_u32(w, "bert.feed_forward_length", 64);
    gguf_write_u32(w, "bert.attention.head_count", 2);
    gguf_write_f32(w, "bert.attention.layer_norm_epsilon", 1e-12f);
}

int main(void)
{
    const char *bd = getenv("VKI_BUILD_DIR");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/hf_equiv", bd ? bd : ".");
    wt t[64];
    int n = 0;
    add(t, &n, "model.embed_tokens.weight", "token_embd.weight", 40, 64, 0);
    add(t, &n, "model.norm.weight", "output_norm.weight", 1, 64, 0);
    add(t, &n, "lm_head.weight", "output.weight", 40, 64, 0);
    for (int l = 0; l < 2; l++) {
        char h[96], g[96];
#define L(hfn, gn, r, c, heads) \
    snprintf(h, sizeof h, "model.layers.%d." hfn, l); snprintf(g, sizeof g, "blk.%d." gn, l); add(t, &n, h, g, r, c, heads)
        L("self_attn.q_proj.weight", "attn_q.weight", 64, 64, 4);
        L("self_attn.k_proj.weight", "attn_k.weight", 32, 64, 2);
        L("self_attn.v_proj.weight", "attn_v.weight", 32, 64, 0);
        L("self_attn.o_proj.weight", "attn_output.weight", 64, 64, 0);
        L("mlp.gate_proj.weight", "ffn_gate.weight", 96, 64, 0);
        L("mlp.up_proj.weight", "ffn_up.weight", 96, 64, 0);
        L("mlp.down_proj.weight", "ffn_down.weight", 64, 96, 0);
        L("input_layernorm.weight", "attn_norm.weight", 1, 64, 0);
        L("post_attention_layernorm.weight", "ffn_norm.weight", 1, 64, 0);
    }
    write_pair(dir, "llama", t, n,
               "{\"model_type\":\"llama\",\"num_hidden_layers\":2,\"hidden_size\":64,\"intermediate_size\":96,"
               "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"rms_norm_eps\":1e-05,\"rope_theta\":500000.0,"
               "\"max_position_embeddings\":256}", llama_kv);
    static const char *const llama_keys[] = {"llama.block_count", "llama.context_length", "llama.embedding_length",
        "llama.feed_forward_length", "llama.attention.head_count", "llama.attention.head_count_kv",
        "llama.rope.dimension_count", "llama.attention.layer_norm_rms_epsilon", "llama.rope.freq_base", NULL};
    compare(dir, "llama", llama_keys);
    for (int i = 0; i < n; i++) free(t[i].w);

    n = 0;
    add(t, &n, "embeddings.word_embeddings.weight", "token_embd.weight", 50, 32, 0);
    add(t, &n, "embeddings.position_embeddings.weight", "position_embd.weight", 16, 32, 0);
    add(t, &n, "embeddings.token_type_embeddings.weight", "token_types.weight", 2, 32, 0);
    add(t, &n, "embeddings.LayerNorm.gamma", "token_embd_norm.weight", 1, 32, 0);
    add(t, &n, "embeddings.LayerNorm.beta", "token_embd_norm.bias", 1, 32, 0);
    {
        const int l = 0;
        char h[96], g[96];
        (void)l;
        snprintf(h, sizeof h, "encoder.layer.0.attention.self.query.weight"); add(t, &n, h, "blk.0.attn_q.weight", 32, 32, 0);
        snprintf(h, sizeof h, "encoder.layer.0.attention.self.query.bias"); add(t, &n, h, "blk.0.attn_q.bias", 1, 32, 0);
        snprintf(h, sizeof h, "encoder.layer.0.attention.self.key.weight"); add(t, &n, h, "blk.0.attn_k.weight", 32, 32, 0);
        snprintf(h, sizeof h, "encoder.layer.0.attention.self.value.weight"); add(t, &n, h, "blk.0.attn_v.weight", 32, 32, 0);
        snprintf(h, sizeof h, "encoder.layer.0.attention.output.dense.weight"); add(t, &n, h, "blk.0.attn_output.weight", 32, 32, 0);
        snprintf(h, sizeof h, "encoder.layer.0.attention.output.LayerNorm.weight"); add(t, &n, h, "blk.0.attn_output_norm.weight", 1, 32, 0);
        snprintf(h, sizeof h, "encoder.layer.0.intermediate.dense.weight"); add(t, &n, h, "blk.0.ffn_up.weight", 64, 32, 0);
        snprintf(h, sizeof h, "encoder.layer.0.output.dense.weight"); add(t, &n, h, "blk.0.ffn_down.weight", 32, 64, 0);
        snprintf(h, sizeof h, "encoder.layer.0.output.LayerNorm.bias"); snprintf(g, sizeof g, "blk.0.layer_output_norm.bias");
        add(t, &n, h, g, 1, 32, 0);
    }
    write_pair(dir, "bert", t, n,
               "{\"model_type\":\"bert\",\"num_hidden_layers\":1,\"hidden_size\":32,\"intermediate_size\":64,"
               "\"num_attention_heads\":2,\"layer_norm_eps\":1e-12,\"max_position_embeddings\":16}", bert_kv);
    static const char *const bert_keys[] = {"bert.block_count", "bert.context_length", "bert.embedding_length",
        "bert.feed_forward_length", "bert.attention.head_count", "bert.attention.layer_norm_epsilon", NULL};
    compare(dir, "bert", bert_keys);
    for (int i = 0; i < n; i++) free(t[i].w);
    return test_finish("test_hf_equiv");
}
