/* test_model_memory.c: vki_model_memory_bytes against an independent sum
 * for every model in ../shared/models, loaded through the public API:
 * weights from the file's tensor table as uploaded (1-D norms and biases
 * become f32, matrices keep their stored type), the KV cache
 * 2 x n_layer x n_ctx x n_embd_kv x 4 bytes x n_seq (f32 cache), and the
 * scratch activations model.h documents. The two must agree within 10%.
 * Usage: test_model_memory [--backend cpu|vulkan]. */
#include <dirent.h>
#include <stdio.h>

#include "engine/models/model.h"
#include "loader/model_file.h"
#include "model_test_util.h"

static int64_t arch_u32(const vki_model_file *f, const char *suffix, int64_t dflt)
{
    uint32_t v;
    return vki_file_get_arch_u32(f, suffix, &v) ? (int64_t)v : dflt;
}

/* Weights as the model uploads them: every tensor in the file, vectors as
 * f32 (the ops take f32 norms and biases), matrices as stored (both
 * backends multiply every type the loader reads). */
static uint64_t expected_weights(const vki_model_file *f)
{
    uint64_t sum = 0;
    for (int64_t i = 0; i < vki_file_n_tensors(f); i++) {
        const vki_tensor_info *t = vki_file_tensor(f, i);
        int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        sum += t->n_dims == 1 ? (uint64_t)n * 4u : t->bytes;
    }
    return sum;
}

typedef struct expect {
    uint64_t weights, kv, scratch;
} expect;

static expect expected(const vki_model_file *f, bool enc, int64_t n_ctx, int64_t n_seq, int64_t nb, int64_t n_vocab)
{
    const int64_t E = arch_u32(f, "embedding_length", 0), L = arch_u32(f, "block_count", 0);
    const int64_t F = arch_u32(f, "feed_forward_length", 0), H = arch_u32(f, "attention.head_count", 1);
    const int64_t HKV = arch_u32(f, "attention.head_count_kv", H), hd = arch_u32(f, "attention.key_length", E / H);
    const int64_t X = arch_u32(f, "expert_count", 0), U = arch_u32(f, "expert_used_count", 0);
    const int64_t FX = arch_u32(f, "expert_feed_forward_length", F);
    const bool emb = enc || arch_u32(f, "pooling_type", 0) > 0;
    const int64_t Q = H * hd, KV = HKV * hd, n_out = n_seq;
    expect e = {.weights = expected_weights(f)};
    /* gemma's local layers (l % p < p - 1) hold 2W + n_batch rows */
    const int64_t W = strncmp(vki_file_arch(f), "gemma", 5) ? 0 : arch_u32(f, "attention.sliding_window", 0);
    const int64_t P = !strcmp(vki_file_arch(f), "gemma2") ? 2 : arch_u32(f, "attention.sliding_window_pattern", 6);
    for (int64_t l = 0; !enc && l < L; l++) {
        int64_t rows = W > 0 && l % P < P - 1 ? (2 * W + nb < n_ctx ? 2 * W + nb : n_ctx) : n_ctx;
        e.kv += 2u * (uint64_t)(rows * KV * n_seq) * 4u;
    }
    /* model.h, mdl_scratch: ids, pos [nb]; types [nb] (encoders); out_ids
     * [n_out] (decoders); x, h, o [nb][E]; q, att [nb][Q]; k, v [nb][KV];
     * fa, fb, fc [nb][F]; xo, ho [n_out][E] and logits [n_out][n_vocab]
     * (decoders); pooled [nb][E] (embedding models); MoE: router logits and
     * probabilities [nb][X], ids and weights [nb][U], gate/up/product
     * [nb U][FX], outputs [nb U][E]. i32 and f32 alike. */
    int64_t el = 2 * nb + (enc ? nb : n_out) + 3 * nb * E + 2 * nb * Q + 2 * nb * KV + 3 * nb * F;
    if (!enc) el += 2 * n_out * E + n_out * n_vocab;
    if (emb) el += nb * E;
    if (X > 0) el += 2 * nb * X + 2 * nb * U + 3 * nb * U * FX + nb * U * E;
    e.scratch = (uint64_t)el * 4u;
    return e;
}

static void check_model(const char *dir, const char *file, vki_engine *eng, vki_backend_kind kind, int *n_checked)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path) {
        CHECKF(0, "%s/%s: path too long", dir, file);
        return;
    }
    vki_model_file *f = NULL;
    if (vki_file_open(path, &f) != VKI_OK) {
        CHECKF(0, "%s: %s", file, vki_last_error());
        return;
    }
    const bool bert = !strcmp(vki_file_arch(f), "bert") || !strcmp(vki_file_arch(f), "nomic-bert");
    vki_model_params mp = vki_model_default_params();
    mp.backend = kind;
    mp.n_seq_max = bert ? 1 : 2; /* the KV cache scales with the sequences */
    vki_model *md = NULL;
    vki_status s = vki_model_load(eng, path, &mp, &md);
    CHECKF(s == VKI_OK, "%s: load: %s", file, vki_last_error());
    if (s == VKI_OK) {
        const mdl_model *m = api_model_mdl(md);
        expect e = expected(f, bert, vki_model_n_ctx(md), mdl_n_seq_max(m), mdl_n_batch(m), vki_model_n_vocab(md));
        uint64_t want = e.weights + e.kv + e.scratch, got = vki_model_memory_bytes(md);
        double rel = ((double)got - (double)want) / (double)want;
        printf("%-36s n_ctx %5d: weights %9llu + kv %9llu + scratch %9llu = %9llu; reported %9llu (%+.2f%%)\n",
               file, vki_model_n_ctx(md), (unsigned long long)e.weights, (unsigned long long)e.kv,
               (unsigned long long)e.scratch, (unsigned long long)want, (unsigned long long)got, 100.0 * rel);
        CHECKF(rel >= -0.10 && rel <= 0.10, "%s: reported %llu bytes, expected %llu within 10%%", file,
               (unsigned long long)got, (unsigned long long)want);
        mt_check_validation(api_model_backend(md), file);
        vki_model_destroy(md);
        (*n_checked)++;
    }
    vki_file_close(f);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv)
{
    vki_backend_kind kind = mt_backend_arg(argc, argv);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", test_shared_path("models"));
    DIR *d = opendir(dir);
    if (!d) test_skip("cannot list %s", dir);
    char *names[64];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 64) {
        size_t l = strlen(de->d_name);
        if (l > 5 && !strcmp(de->d_name + l - 5, ".gguf")) names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);

    vki_engine_params ep = mt_engine_params();
    vki_engine *eng = NULL;
    CHECK(vki_engine_create(&ep, &eng) == VKI_OK);
    int n_checked = 0;
    for (int i = 0; i < n; i++) {
        check_model(dir, names[i], eng, kind, &n_checked);
        free(names[i]);
    }
    CHECKF(n_checked >= 8, "%d models checked, expected the 8 of ../shared/models", n_checked);
    vki_engine_destroy(eng);
    return test_finish("test_model_memory");
}
