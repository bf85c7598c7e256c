/*
 * gen.c: vkinfer-gen, which writes models with deterministic random weights:
 * a llama-family decoder (llama, or qwen2 with NeoX RoPE and q/k/v biases)
 * with an SPM byte-fallback vocabulary (or the vocabulary of another GGUF)
 * and a BERT encoder with a WordPiece vocabulary, as a GGUF file or as a
 * Hugging Face folder (gen_hf.c) holding the same weights; and, as GGUF only,
 * the qwen3, qwen3moe, gemma2, gemma3 and phi3 layouts llama.cpp writes. For
 * tests, benchmarks and the quick start; never at run time.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gen.h"
#include "loader/gguf.h"
#include "loader/model_file.h"
#include "util.h"

static const char usage[] =
    "usage: vkinfer-gen [--preset NAME] [options] -o OUT\n"
    "Writes a model with deterministic (seeded) random weights: a GGUF file, or with\n"
    "--format hf a Hugging Face folder holding the same weights for the same seed and shape.\n"
    "\n"
    "  --preset NAME     default (llama, 256 wide, 4 layers, ~3.7M params, F32; the quick start's model)\n"
    "                    tiny (llama, 64 wide, 2 layers), bench100m (llama, 768 wide, 12 layers,\n"
    "                    ffn 2048, vocab 32000, ~110M params, Q8_0), bert-mini (bert, 128 wide, 3 layers)\n"
    "  --arch A          llama | qwen2 (NeoX RoPE, q/k/v biases, rope base 1e6; SPM vocabulary, not\n"
    "                    Qwen's byte-level BPE) | bert; GGUF only: qwen3 (q/k norms) | qwen3moe (experts,\n"
    "                    see below) | gemma2 (softcaps, sliding window on even layers) | gemma3 (q/k norms,\n"
    "                    5 local layers per global one) | phi3 (fused Q|K|V and gate|up)\n"
    "  --n-expert N --n-expert-used N --n-ff-exp N\n"
    "                    qwen3moe: experts (default 8), experts per token (2), expert width (n_ff / 4)\n"
    "  --sliding-window N  gemma2/gemma3: the local layers' window (default 4096 / 1024)\n"
    "  --n-embd N --n-layer N --n-head N --n-head-kv N --n-ff N --n-vocab N --n-ctx N\n"
    "  --type T          weight type of the 2-D matrices: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K\n"
    "                    Q3_K Q4_K Q5_K Q6_K, or the mixes Q4_K_M and Q5_K_M (as llama.cpp's: Q6_K for\n"
    "                    output, and for attn_v and ffn_down in the first and last eighth of the layers\n"
    "                    and every third between; Q4_K or Q5_K elsewhere). Norms and biases stay F32,\n"
    "                    rounded through F16/BF16 for those types as a conversion of such a checkpoint\n"
    "                    gives; a matrix whose rows are not a multiple of the block size falls back to\n"
    "                    Q8_0/F16. With --format hf: the checkpoint dtype, F32, F16 or BF16\n"
    "  --qkv-bias        llama: attention biases on q/k/v/o (HF attention_bias)\n"
    "  --tied            decoders: no output matrix, logits from the token embeddings\n"
    "  --vocab-from F    take the tokenizer (tokenizer.* keys) from the GGUF file F (an SPM \"llama\"\n"
    "                    vocabulary for --format hf, written as BPE merges in score order; for\n"
    "                    --arch bert a \"bert\" WordPiece one, GGUF only)\n"
    "  --format F        gguf (default) or hf: OUT is a folder with config.json, model.safetensors,\n"
    "                    tokenizer.json and tokenizer_config.json (llama q/k rows in HF rotate-half\n"
    "                    order; torch shapes)\n"
    "  --shard-mb N      hf: split the weights into shards of at most N MiB with\n"
    "                    model.safetensors.index.json\n"
    "  --seed N          random seed (default 1)\n"
    "  -o OUT            output file (folder for --format hf)\n";

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static float rng_f32(uint64_t *s) { return (float)((rng_next(s) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }

/* ===== Vocabularies ====================================================== */

static uint64_t fnv(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "vkinfer-gen: out of memory\n");
        exit(1);
    }
    return q;
}

int32_t gen_vocab_find(const gen_vocab *v, const char *t)
{
    if (!v->map_cap) return -1;
    for (uint64_t h = fnv(t) & (v->map_cap - 1);; h = (h + 1) & (v->map_cap - 1)) {
        const int32_t id = v->map[h];
        if (id < 0) return -1;
        if (!strcmp(v->text[id], t)) return id;
    }
}

static void map_put(gen_vocab *v, int32_t id)
{
    uint64_t h = fnv(v->text[id]) & (v->map_cap - 1);
    while (v->map[h] >= 0) h = (h + 1) & (v->map_cap - 1);
    v->map[h] = id;
}

/* Appends a token unless its text is already there: a tokenizer.json vocab
 * is keyed by text, so a vocabulary with repeated pieces has no HF form. */
static void vocab_add(gen_vocab *v, const char *t, float score, int32_t type)
{
    if (gen_vocab_find(v, t) >= 0) return;
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 1024;
        v->text = xrealloc(v->text, (size_t)v->cap * sizeof *v->text);
        v->score = xrealloc(v->score, (size_t)v->cap * sizeof *v->score);
        v->type = xrealloc(v->type, (size_t)v->cap * sizeof *v->type);
    }
    if ((uint64_t)v->n * 2 >= v->map_cap) {
        free(v->map);
        v->map_cap = v->map_cap ? v->map_cap * 2 : 4096;
        v->map = xrealloc(NULL, v->map_cap * sizeof *v->map);
        memset(v->map, 0xff, v->map_cap * sizeof *v->map);
        for (int32_t i = 0; i < v->n; i++) map_put(v, i);
    }
    if (!(v->text[v->n] = strdup(t))) {
        fprintf(stderr, "vkinfer-gen: out of memory\n");
        exit(1);
    }
    v->score[v->n] = score;
    v->type[v->n] = type;
    map_put(v, v->n);
    v->n++;
}

static void vocab_free(gen_vocab *v)
{
    for (int i = 0; i < v->n; i++) free(v->text[i]);
    free(v->text);
    free(v->score);
    free(v->type);
    free(v->map);
}

static const char *const words[] = {
    "the", "and", "was", "to", "a", "he", "she", "it", "of", "in", "they", "said", "her", "his", "with", "day",
    "one", "you", "time", "upon", "once", "there", "little", "big", "happy", "play", "saw", "went", "had", "for",
    "that", "on", "but", "so", "very", "friend", "mom", "dog", "cat", "tree", "park", "ball", "sun", "fun",
};

/* SPM with byte fallback: <unk> <s> </s>, the 256 byte tokens, printable
 * ASCII, "▁"-prefixed letters and words, then letter pairs and triples until
 * n_vocab. Scores fall with the index so that earlier pieces merge first. */
static void spm_vocab(gen_vocab *v, int n)
{
    v->unk = 0;
    v->bos = 1;
    v->eos = 2;
    vocab_add(v, "<unk>", 0, 2);
    vocab_add(v, "<s>", 0, 3);
    vocab_add(v, "</s>", 0, 3);
    char buf[32];
    for (int b = 0; b < 256; b++) {
        snprintf(buf, sizeof buf, "<0x%02X>", b);
        vocab_add(v, buf, 0, 6);
    }
    vocab_add(v, "\xe2\x96\x81", -1, 1);
    for (int c = 33; c < 127 && v->n < n; c++) {
        buf[0] = (char)c;
        buf[1] = 0;
        vocab_add(v, buf, -(float)v->n, 1);
    }
    for (size_t w = 0; w < VKI_COUNT(words) && v->n < n; w++) {
        snprintf(buf, sizeof buf, "\xe2\x96\x81%s", words[w]);
        vocab_add(v, buf, -(float)v->n, 1);
    }
    for (int c = 'a'; c <= 'z' && v->n < n; c++) {
        snprintf(buf, sizeof buf, "\xe2\x96\x81%c", c);
        vocab_add(v, buf, -(float)v->n, 1);
    }
    for (int len = 2; len <= 4 && v->n < n; len++) {
        for (int k = 0; k < 26 * 26 * 26 * 26 && v->n < n; k++) {
            int x = k, ok = 1;
            char s[8];
            for (int i = 0; i < len; i++) {
                s[i] = (char)('a' + x % 26);
                x /= 26;
            }
            if (x) ok = 0;
            s[len] = 0;
            if (!ok) break;
            snprintf(buf, sizeof buf, "\xe2\x96\x81%s", s);
            vocab_add(v, buf, -(float)v->n, 1);
            if (v->n < n) vocab_add(v, s, -(float)v->n, 1);
        }
    }
}

/* WordPiece: the five specials, letters and digits, "##" continuations,
 * words, then letter pairs. */
static void wpm_vocab(gen_vocab *v, int n)
{
    static const char *const sp[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    for (int i = 0; i < 5; i++) vocab_add(v, sp[i], 0, i == 1 ? 2 : 3);
    char buf[32];
    for (int c = 33; c < 127 && v->n < n; c++) {
        if (c >= 'A' && c <= 'Z') continue;
        snprintf(buf, sizeof buf, "%c", c);
        vocab_add(v, buf, 0, 1);
    }
    for (int c = 'a'; c <= 'z' && v->n < n; c++) {
        snprintf(buf, sizeof buf, "##%c", c);
        vocab_add(v, buf, 0, 1);
    }
    for (size_t w = 0; w < VKI_COUNT(words) && v->n < n; w++)
        if (strlen(words[w]) > 1) vocab_add(v, words[w], 0, 1);
    for (int k = 0; k < 26 * 26 && v->n < n; k++) {
        snprintf(buf, sizeof buf, "%c%c", 'a' + k % 26, 'a' + k / 26);
        vocab_add(v, buf, 0, 1);
        if (v->n < n) {
            snprintf(buf, sizeof buf, "##%c%c", 'a' + k % 26, 'a' + k / 26);
            vocab_add(v, buf, 0, 1);
        }
    }
}

/* ===== Tensors =========================================================== */

typedef struct gen {
    gen_cfg      c;
    gguf_writer *w;        /* GGUF output                                    */
    hf_tensor   *hf;       /* HF output: [n_hf] tensors, written at the end  */
    int          n_hf, cap_hf;
    gen_vocab    vocab;    /* the generated vocabulary (HF output needs it)  */
    uint64_t     rng;
    uint64_t     params;
} gen;

/* llama.cpp's Q4_K_M / Q5_K_M mixes: output.weight, and attn_v and ffn_down
 * in the first and last eighth of the layers and every third between,
 * get Q6_K; everything else the base type. */
static vki_type mix_type(const gen_cfg *c, const char *name)
{
    if (c->type_more == VKI_TYPE_COUNT) return c->type;
    if (!strcmp(name, "output.weight")) return c->type_more;
    int l;
    char rest[64];
    if (sscanf(name, "blk.%d.%63s", &l, rest) != 2) return c->type;
    if (strcmp(rest, "attn_v.weight") && strcmp(rest, "ffn_down.weight")) return c->type;
    int n = c->n_layer;
    bool more = l < n / 8 || l >= 7 * n / 8 || (l - n / 8) % 3 == 2;
    return more ? c->type_more : c->type;
}

static vki_type fit_type(vki_type t, int64_t ne0)
{
    if (ne0 % vki_type_get(t)->block_size == 0) return t;
    if (ne0 % 32 == 0) return VKI_TYPE_Q8_0;
    return VKI_TYPE_F16;
}

/* convert_hf_to_gguf.py's LlamaModel.permute views the q/k rows of each head
 * as (2, hd/2) and transposes them to (hd/2, 2): GGUF row h*hd + 2*i + j is
 * HF row h*hd + j*hd/2 + i. This is where GGUF row r goes in an HF checkpoint. */
static int64_t hf_row_of(int64_t r, int64_t n_rows, int heads)
{
    if (heads <= 0) return r;
    const int64_t hd = n_rows / heads, h = r / hd, w = r % hd;
    return h * hd + (w % 2) * (hd / 2) + w / 2;
}

static vki_status add_hf(gen *g, const char *name, int64_t ne0, int64_t ne1, const float *v, int permute_heads)
{
    const vki_type t = g->c.type;
    const uint64_t es = vki_type_get(t)->type_size;
    hf_tensor x = {.name = strdup(name), .n_dims = ne1 > 1 ? 2 : 1, .type = t};
    x.shape[0] = ne1 > 1 ? ne1 : ne0;
    x.shape[1] = ne1 > 1 ? ne0 : 1;
    x.bytes = (uint64_t)(ne0 * ne1) * es;
    x.data = malloc(x.bytes);
    if (!x.name || !x.data) {
        free(x.name);
        free(x.data);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "vkinfer-gen: out of memory for %s", name);
    }
    if (ne1 > 1) {
        for (int64_t r = 0; r < ne1; r++)
            vki_quantize_row(t, v + r * ne0, x.data + (uint64_t)hf_row_of(r, ne1, permute_heads) * ne0 * es, ne0);
    } else {
        /* a q/k bias vector is permuted element by element, as its rows would be */
        for (int64_t i = 0; i < ne0; i++)
            vki_quantize_row(t, v + i, x.data + (uint64_t)hf_row_of(i, ne0, permute_heads) * es, 1);
    }
    if (g->n_hf == g->cap_hf) {
        g->cap_hf = g->cap_hf ? 2 * g->cap_hf : 64;
        g->hf = xrealloc(g->hf, (size_t)g->cap_hf * sizeof *g->hf);
    }
    g->hf[g->n_hf++] = x;
    return VKI_OK;
}

/* A [ne0, ne1] tensor named `name` in GGUF and `hf` in an HF checkpoint:
 * weights uniform in +-scale, or 1 +- scale for norms (`center`). GGUF: 2-D
 * matrices get the chosen type, vectors stay F32. An F16/BF16 model rounds
 * every value through its type first, so that the GGUF holds exactly what a
 * conversion of the F16/BF16 HF checkpoint holds. `permute_heads`: llama q/k
 * (HF rows in rotate-half order). */
static vki_status tensor(gen *g, const char *name, const char *hf, int64_t ne0, int64_t ne1, float scale, float center,
                         int permute_heads)
{
    const bool matrix = ne1 > 1;
    const vki_type t = matrix ? fit_type(mix_type(&g->c, name), ne0) : VKI_TYPE_F32;
    const bool round16 = g->c.type == VKI_TYPE_F16 || g->c.type == VKI_TYPE_BF16;
    const uint64_t rb = vki_row_bytes(t, ne0);
    float *v = malloc((size_t)(ne0 * ne1) * sizeof *v);
    uint8_t *data = g->c.hf ? NULL : malloc(rb * (uint64_t)ne1);
    uint16_t h;
    if (!v || (!g->c.hf && !data)) {
        free(v);
        free(data);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "vkinfer-gen: out of memory for %s", name);
    }
    for (int64_t r = 0; r < ne1; r++) {
        float *row = v + r * ne0;
        for (int64_t i = 0; i < ne0; i++) {
            row[i] = center + scale * rng_f32(&g->rng);
            if (round16) {
                vki_quantize_row(g->c.type, &row[i], &h, 1);
                vki_dequantize_row(g->c.type, &h, &row[i], 1);
            }
        }
        if (data) vki_quantize_row(t, row, data + (uint64_t)r * rb, ne0);
    }
    vki_status s;
    if (g->c.hf) {
        s = add_hf(g, hf, ne0, ne1, v, permute_heads);
    } else {
        const int64_t ne[2] = {ne0, ne1};
        s = gguf_write_tensor(g->w, name, t, matrix ? 2 : 1, ne, data);
    }
    g->params += (uint64_t)(ne0 * ne1);
    free(v);
    free(data);
    return s;
}

static vki_status write_vocab(gen *g, const gen_vocab *v, bool spm)
{
    if (g->c.hf) return VKI_OK; /* tokenizer.json is written with the folder */
    VKI_TRY(gguf_write_str(g->w, "tokenizer.ggml.model", spm ? "llama" : "bert"));
    VKI_TRY(gguf_write_arr_str(g->w, "tokenizer.ggml.tokens", (const char *const *)v->text, (uint64_t)v->n));
    if (spm) VKI_TRY(gguf_write_arr_f32(g->w, "tokenizer.ggml.scores", v->score, (uint64_t)v->n));
    VKI_TRY(gguf_write_arr_i32(g->w, "tokenizer.ggml.token_type", v->type, (uint64_t)v->n));
    if (spm) {
        VKI_TRY(gguf_write_u32(g->w, "tokenizer.ggml.unknown_token_id", 0));
        VKI_TRY(gguf_write_u32(g->w, "tokenizer.ggml.bos_token_id", 1));
        VKI_TRY(gguf_write_u32(g->w, "tokenizer.ggml.eos_token_id", 2));
        VKI_TRY(gguf_write_bool(g->w, "tokenizer.ggml.add_bos_token", true));
        VKI_TRY(gguf_write_bool(g->w, "tokenizer.ggml.add_space_prefix", true));
    } else {
        VKI_TRY(gguf_write_u32(g->w, "tokenizer.ggml.padding_token_id", 0));
        VKI_TRY(gguf_write_u32(g->w, "tokenizer.ggml.unknown_token_id", 1));
        VKI_TRY(gguf_write_u32(g->w, "tokenizer.ggml.cls_token_id", 2));
        VKI_TRY(gguf_write_u32(g->w, "tokenizer.ggml.seperator_token_id", 3));
        VKI_TRY(gguf_write_u32(g->w, "tokenizer.ggml.mask_token_id", 4));
        VKI_TRY(gguf_write_bool(g->w, "tokenizer.ggml.lowercase", true));
    }
    return VKI_OK;
}

/* Copies tokenizer.* from another GGUF whose tokenizer.ggml.model is model
 * (NULL: any); returns its vocabulary size. */
static vki_status copy_vocab(gen *g, const char *path, const char *model, int *n_vocab)
{
    vki_model_file *f = NULL;
    VKI_TRY(vki_file_open(path, &f));
    vki_status s = VKI_OK;
    vki_str kind = {0};
    const vki_kv *toks = vki_file_find_kv(f, "tokenizer.ggml.tokens");
    if (!toks || toks->type != VKI_KV_ARRAY || toks->v.arr.n == 0) {
        s = vki_fail(VKI_ERR_BAD_FILE, "%s: no tokenizer.ggml.tokens to copy", path);
        goto done;
    }
    if (model && (!vki_file_get_str(f, "tokenizer.ggml.model", &kind) || kind.n != strlen(model) ||
                  memcmp(kind.p, model, kind.n))) {
        s = vki_fail(VKI_ERR_UNSUPPORTED, "%s: --vocab-from for this architecture needs a \"%s\" vocabulary, not \"%.*s\"",
                     path, model, (int)kind.n, kind.p ? kind.p : "");
        goto done;
    }
    *n_vocab = (int)toks->v.arr.n;
    for (int64_t i = 0; i < vki_file_n_kv(f) && s == VKI_OK; i++) {
        const vki_kv *kv = vki_file_kv(f, i);
        if (kv->key.n > 10 && !memcmp(kv->key.p, "tokenizer.", 10)) s = gguf_write_kv(g->w, kv);
    }
done:
    vki_file_close(f);
    return s;
}

/* Reads another GGUF's SPM vocabulary for an HF tokenizer.json: texts must
 * be unique (tokenizer.json keys its vocab by text). */
static vki_status read_vocab(gen *g, const char *path, int *n_vocab)
{
    vki_model_file *f = NULL;
    VKI_TRY(vki_file_open(path, &f));
    vki_status s = VKI_OK;
    vki_str model = {0};
    const vki_kv *toks = vki_file_find_kv(f, "tokenizer.ggml.tokens");
    const vki_kv *scores = vki_file_find_kv(f, "tokenizer.ggml.scores");
    const vki_kv *types = vki_file_find_kv(f, "tokenizer.ggml.token_type");
    if (!vki_file_get_str(f, "tokenizer.ggml.model", &model) || model.n != 5 || memcmp(model.p, "llama", 5) || !toks ||
        toks->type != VKI_KV_ARRAY || toks->v.arr.elem != VKI_KV_STRING || toks->v.arr.n == 0) {
        s = vki_fail(VKI_ERR_UNSUPPORTED, "%s: --format hf takes only an SPM (\"llama\") vocabulary with tokens", path);
        goto done;
    }
    const uint64_t n = toks->v.arr.n;
    const bool sc = scores && scores->v.arr.elem == VKI_KV_F32 && scores->v.arr.n == n;
    const bool ty = types && types->v.arr.elem == VKI_KV_I32 && types->v.arr.n == n;
    for (uint64_t i = 0; i < n && s == VKI_OK; i++) {
        const vki_str t = toks->v.arr.items[i].v.s;
        char *z = malloc(t.n + 1);
        if (!z) {
            s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "vkinfer-gen: out of memory");
            break;
        }
        memcpy(z, t.p, t.n);
        z[t.n] = '\0';
        vocab_add(&g->vocab, z, sc ? (float)scores->v.arr.items[i].v.f : -(float)i,
                  ty ? (int32_t)types->v.arr.items[i].v.i : 1);
        if ((uint64_t)g->vocab.n != i + 1)
            s = vki_fail(VKI_ERR_UNSUPPORTED, "%s: token %llu ('%.64s') repeats an earlier piece", path,
                         (unsigned long long)i, z);
        free(z);
    }
    uint32_t id;
    g->vocab.unk = vki_file_get_u32(f, "tokenizer.ggml.unknown_token_id", &id) && id < n ? (int32_t)id : 0;
    g->vocab.bos = vki_file_get_u32(f, "tokenizer.ggml.bos_token_id", &id) && id < n ? (int32_t)id : 1;
    g->vocab.eos = vki_file_get_u32(f, "tokenizer.ggml.eos_token_id", &id) && id < n ? (int32_t)id : 2;
    *n_vocab = g->vocab.n;
done:
    vki_file_close(f);
    return s;
}

static vki_status put_u32(gen *g, const char *suffix, uint32_t v)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", g->c.arch, suffix);
    return g->c.hf ? VKI_OK : gguf_write_u32(g->w, key, v);
}

static vki_status put_f32(gen *g, const char *suffix, float v)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", g->c.arch, suffix);
    return g->c.hf ? VKI_OK : gguf_write_f32(g->w, key, v);
}

/* One tensor per layer: GGUF "blk.L.<gguf>", HF "<hf_layer>.L.<hf>". */
#define T(gguf, hf, ne0, ne1, sc, ce, perm)                                                      \
    do {                                                                                          \
        snprintf(key, sizeof key, "blk.%d.%s", l, gguf);                                          \
        snprintf(hkey, sizeof hkey, "%s.%d.%s", hf_layer, l, hf);                                 \
        VKI_TRY(tensor(g, key, hkey, ne0, ne1, sc, ce, perm));                                    \
    } while (0)

/* llama and qwen2; the HF names are LlamaForCausalLM's and Qwen2ForCausalLM's. */
static vki_status gen_decoder(gen *g)
{
    const gen_cfg *c = &g->c;
    const bool qwen2 = !strcmp(c->arch, "qwen2");
    const char *hf_layer = "model.layers";
    char key[128], hkey[160];
    const int n_embd_kv = c->n_embd / c->n_head * c->n_head_kv;
    if (!c->hf) {
        VKI_TRY(gguf_write_str(g->w, "general.architecture", c->arch));
        VKI_TRY(gguf_write_str(g->w, "general.name", qwen2 ? "vkinfer-gen qwen2" : "vkinfer-gen llama"));
    }
    VKI_TRY(put_u32(g, "context_length", (uint32_t)c->n_ctx));
    VKI_TRY(put_u32(g, "embedding_length", (uint32_t)c->n_embd));
    VKI_TRY(put_u32(g, "block_count", (uint32_t)c->n_layer));
    VKI_TRY(put_u32(g, "feed_forward_length", (uint32_t)c->n_ff));
    VKI_TRY(put_u32(g, "attention.head_count", (uint32_t)c->n_head));
    VKI_TRY(put_u32(g, "attention.head_count_kv", (uint32_t)c->n_head_kv));
    /* convert_hf_to_gguf writes the rotary width for llama, not for qwen2 */
    if (!qwen2) VKI_TRY(put_u32(g, "rope.dimension_count", (uint32_t)(c->n_embd / c->n_head)));
    VKI_TRY(put_f32(g, "attention.layer_norm_rms_epsilon", qwen2 ? 1e-6f : 1e-5f));
    VKI_TRY(put_f32(g, "rope.freq_base", qwen2 ? 1000000.0f : 10000.0f));
    int n_vocab = c->n_vocab;
    if (c->vocab_from) {
        VKI_TRY(c->hf ? read_vocab(g, c->vocab_from, &n_vocab) : copy_vocab(g, c->vocab_from, NULL, &n_vocab));
    } else {
        spm_vocab(&g->vocab, c->n_vocab);
        n_vocab = g->vocab.n;
        VKI_TRY(write_vocab(g, &g->vocab, true));
    }
    const float a = 1.0f / sqrtf((float)c->n_embd), af = 1.0f / sqrtf((float)c->n_ff);
    /* GGUF's llama conversion permutes q/k for its interleaved RoPE; qwen2
     * uses NeoX RoPE and is stored as HF has it */
    const int pq = qwen2 ? 0 : c->n_head, pk = qwen2 ? 0 : c->n_head_kv;
    const bool bias = qwen2 || c->qkv_bias;
    VKI_TRY(tensor(g, "token_embd.weight", "model.embed_tokens.weight", c->n_embd, n_vocab, 1.0f, 0.0f, 0));
    VKI_TRY(tensor(g, "output_norm.weight", "model.norm.weight", c->n_embd, 1, 0.1f, 1.0f, 0));
    if (!c->tied) VKI_TRY(tensor(g, "output.weight", "lm_head.weight", c->n_embd, n_vocab, a, 0.0f, 0));
    for (int l = 0; l < c->n_layer; l++) {
        T("attn_norm.weight", "input_layernorm.weight", c->n_embd, 1, 0.1f, 1.0f, 0);
        T("attn_q.weight", "self_attn.q_proj.weight", c->n_embd, c->n_embd, a, 0.0f, pq);
        T("attn_k.weight", "self_attn.k_proj.weight", c->n_embd, n_embd_kv, a, 0.0f, pk);
        T("attn_v.weight", "self_attn.v_proj.weight", c->n_embd, n_embd_kv, a, 0.0f, 0);
        T("attn_output.weight", "self_attn.o_proj.weight", c->n_embd, c->n_embd, a, 0.0f, 0);
        if (bias) {
            T("attn_q.bias", "self_attn.q_proj.bias", c->n_embd, 1, 0.05f, 0.0f, pq);
            T("attn_k.bias", "self_attn.k_proj.bias", n_embd_kv, 1, 0.05f, 0.0f, pk);
            T("attn_v.bias", "self_attn.v_proj.bias", n_embd_kv, 1, 0.05f, 0.0f, 0);
            /* LlamaAttention puts attention_bias on o_proj too; Qwen2 does not */
            if (!qwen2) T("attn_output.bias", "self_attn.o_proj.bias", c->n_embd, 1, 0.05f, 0.0f, 0);
        }
        T("ffn_norm.weight", "post_attention_layernorm.weight", c->n_embd, 1, 0.1f, 1.0f, 0);
        T("ffn_gate.weight", "mlp.gate_proj.weight", c->n_embd, c->n_ff, a, 0.0f, 0);
        T("ffn_up.weight", "mlp.up_proj.weight", c->n_embd, c->n_ff, a, 0.0f, 0);
        T("ffn_down.weight", "mlp.down_proj.weight", c->n_ff, c->n_embd, af, 0.0f, 0);
    }
    return VKI_OK;
}

/* BertModel's names (no "bert." prefix, as sentence-transformers saves it). */
static vki_status gen_bert(gen *g)
{
    const gen_cfg *c = &g->c;
    const char *hf_layer = "encoder.layer";
    char key[128], hkey[160];
    if (!c->hf) {
        VKI_TRY(gguf_write_str(g->w, "general.architecture", "bert"));
        VKI_TRY(gguf_write_str(g->w, "general.name", "vkinfer-gen bert"));
        VKI_TRY(gguf_write_bool(g->w, "bert.attention.causal", false));
        VKI_TRY(gguf_write_u32(g->w, "bert.pooling_type", 1));
        /* a copied vocabulary brings its own */
        if (!c->vocab_from) VKI_TRY(gguf_write_u32(g->w, "tokenizer.ggml.token_type_count", 2));
    }
    VKI_TRY(put_u32(g, "context_length", (uint32_t)c->n_ctx));
    VKI_TRY(put_u32(g, "embedding_length", (uint32_t)c->n_embd));
    VKI_TRY(put_u32(g, "block_count", (uint32_t)c->n_layer));
    VKI_TRY(put_u32(g, "feed_forward_length", (uint32_t)c->n_ff));
    VKI_TRY(put_u32(g, "attention.head_count", (uint32_t)c->n_head));
    VKI_TRY(put_f32(g, "attention.layer_norm_epsilon", 1e-12f));
    int n_vocab;
    if (c->vocab_from) {
        /* a real WordPiece vocabulary (llama.cpp's conversions mark word
         * starts with U+2581, not continuations with "##"): a peer reads
         * the same tokens from the same file */
        VKI_TRY(copy_vocab(g, c->vocab_from, "bert", &n_vocab));
    } else {
        wpm_vocab(&g->vocab, c->n_vocab);
        n_vocab = g->vocab.n;
        if (n_vocab < c->n_vocab)
            fprintf(stderr, "vkinfer-gen: the generated WordPiece vocabulary has %d tokens, not %d "
                    "(--vocab-from takes a larger one)\n", n_vocab, c->n_vocab);
        VKI_TRY(write_vocab(g, &g->vocab, false));
    }
    const float a = 1.0f / sqrtf((float)c->n_embd), af = 1.0f / sqrtf((float)c->n_ff);
    VKI_TRY(tensor(g, "token_embd.weight", "embeddings.word_embeddings.weight", c->n_embd, n_vocab, 0.5f, 0.0f, 0));
    VKI_TRY(tensor(g, "token_types.weight", "embeddings.token_type_embeddings.weight", c->n_embd, 2, 0.5f, 0.0f, 0));
    VKI_TRY(tensor(g, "position_embd.weight", "embeddings.position_embeddings.weight", c->n_embd, c->n_ctx, 0.5f,
                   0.0f, 0));
    VKI_TRY(tensor(g, "token_embd_norm.weight", "embeddings.LayerNorm.weight", c->n_embd, 1, 0.1f, 1.0f, 0));
    VKI_TRY(tensor(g, "token_embd_norm.bias", "embeddings.LayerNorm.bias", c->n_embd, 1, 0.1f, 0.0f, 0));
    for (int l = 0; l < c->n_layer; l++) {
        static const char *const proj[][2] = {{"attn_q", "attention.self.query"},
                                              {"attn_k", "attention.self.key"},
                                              {"attn_v", "attention.self.value"},
                                              {"attn_output", "attention.output.dense"}};
        char gn[64], hn[96];
        for (int p = 0; p < 4; p++) {
            snprintf(gn, sizeof gn, "%s.weight", proj[p][0]);
            snprintf(hn, sizeof hn, "%s.weight", proj[p][1]);
            T(gn, hn, c->n_embd, c->n_embd, a, 0.0f, 0);
            snprintf(gn, sizeof gn, "%s.bias", proj[p][0]);
            snprintf(hn, sizeof hn, "%s.bias", proj[p][1]);
            T(gn, hn, c->n_embd, 1, 0.05f, 0.0f, 0);
        }
        T("attn_output_norm.weight", "attention.output.LayerNorm.weight", c->n_embd, 1, 0.1f, 1.0f, 0);
        T("attn_output_norm.bias", "attention.output.LayerNorm.bias", c->n_embd, 1, 0.1f, 0.0f, 0);
        T("ffn_up.weight", "intermediate.dense.weight", c->n_embd, c->n_ff, a, 0.0f, 0);
        T("ffn_up.bias", "intermediate.dense.bias", c->n_ff, 1, 0.05f, 0.0f, 0);
        T("ffn_down.weight", "output.dense.weight", c->n_ff, c->n_embd, af, 0.0f, 0);
        T("ffn_down.bias", "output.dense.bias", c->n_embd, 1, 0.05f, 0.0f, 0);
        T("layer_output_norm.weight", "output.LayerNorm.weight", c->n_embd, 1, 0.1f, 1.0f, 0);
        T("layer_output_norm.bias", "output.LayerNorm.bias", c->n_embd, 1, 0.1f, 0.0f, 0);
    }
    /* BertModel's pooler, which a GGUF conversion drops: last, so that the
     * weights before it come from the same random stream in both formats */
    if (c->hf) {
        VKI_TRY(tensor(g, "", "pooler.dense.weight", c->n_embd, c->n_embd, a, 0.0f, 0));
        VKI_TRY(tensor(g, "", "pooler.dense.bias", c->n_embd, 1, 0.05f, 0.0f, 0));
    }
    return VKI_OK;
}
#undef T

/* One [ne0, ne1] matrix per slab, ne2 slabs, as one 3-D GGUF tensor (experts). */
static vki_status tensor3(gen *g, const char *name, int64_t ne0, int64_t ne1, int64_t ne2, float scale)
{
    const vki_type t = fit_type(g->c.type, ne0);
    const uint64_t rb = vki_row_bytes(t, ne0);
    float *row = malloc((size_t)ne0 * sizeof *row);
    uint8_t *data = malloc(rb * (uint64_t)(ne1 * ne2));
    if (!row || !data) {
        free(row);
        free(data);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "vkinfer-gen: out of memory for %s", name);
    }
    for (int64_t r = 0; r < ne1 * ne2; r++) {
        for (int64_t i = 0; i < ne0; i++) row[i] = scale * rng_f32(&g->rng);
        vki_quantize_row(t, row, data + (uint64_t)r * rb, ne0);
    }
    const int64_t ne[3] = {ne0, ne1, ne2};
    vki_status s = gguf_write_tensor(g->w, name, t, 3, ne, data);
    g->params += (uint64_t)(ne0 * ne1 * ne2);
    free(row);
    free(data);
    return s;
}

/* qwen3, qwen3moe, gemma2, gemma3 and phi3 with the tensor names and keys
 * llama.cpp's convert_hf_to_gguf.py writes (GGUF only). Gemma norm weights
 * are stored as GGUF holds them (HF w + 1, so around 1). */
static vki_status gen_family(gen *g)
{
    const gen_cfg *c = &g->c;
    const char *a = c->arch;
    const bool qwen3 = !strncmp(a, "qwen3", 5), moe = !strcmp(a, "qwen3moe"), gemma = !strncmp(a, "gemma", 5);
    const bool gemma3 = !strcmp(a, "gemma3"), phi3 = !strcmp(a, "phi3");
    const int hd = c->n_embd / c->n_head, q = c->n_embd, kv = hd * c->n_head_kv;
    char key[128], name[128];
    char gname[64];
    snprintf(gname, sizeof gname, "vkinfer-gen %s", a);
    VKI_TRY(gguf_write_str(g->w, "general.architecture", a));
    VKI_TRY(gguf_write_str(g->w, "general.name", gname));
    VKI_TRY(put_u32(g, "context_length", (uint32_t)c->n_ctx));
    VKI_TRY(put_u32(g, "embedding_length", (uint32_t)c->n_embd));
    VKI_TRY(put_u32(g, "block_count", (uint32_t)c->n_layer));
    VKI_TRY(put_u32(g, "feed_forward_length", (uint32_t)c->n_ff));
    VKI_TRY(put_u32(g, "attention.head_count", (uint32_t)c->n_head));
    VKI_TRY(put_u32(g, "attention.head_count_kv", (uint32_t)c->n_head_kv));
    VKI_TRY(put_u32(g, "attention.key_length", (uint32_t)hd));
    VKI_TRY(put_u32(g, "attention.value_length", (uint32_t)hd));
    VKI_TRY(put_f32(g, "attention.layer_norm_rms_epsilon", phi3 ? 1e-5f : 1e-6f));
    VKI_TRY(put_f32(g, "rope.freq_base", qwen3 || gemma3 ? 1000000.0f : 10000.0f));
    if (phi3) VKI_TRY(put_u32(g, "rope.dimension_count", (uint32_t)hd));
    if (moe) {
        VKI_TRY(put_u32(g, "expert_count", (uint32_t)c->n_expert));
        VKI_TRY(put_u32(g, "expert_used_count", (uint32_t)c->n_expert_used));
        VKI_TRY(put_u32(g, "expert_feed_forward_length", (uint32_t)c->n_ff_exp));
    }
    if (gemma) {
        VKI_TRY(put_u32(g, "attention.sliding_window",
                        (uint32_t)(c->sliding_window ? c->sliding_window : gemma3 ? 1024 : 4096)));
        if (gemma3) {
            VKI_TRY(put_f32(g, "rope.freq_base_swa", 10000.0f));
        } else {
            VKI_TRY(put_f32(g, "attn_logit_softcapping", 50.0f));
            VKI_TRY(put_f32(g, "final_logit_softcapping", 30.0f));
        }
    }
    spm_vocab(&g->vocab, c->n_vocab);
    const int n_vocab = g->vocab.n;
    VKI_TRY(write_vocab(g, &g->vocab, true));
    const float s = 1.0f / sqrtf((float)c->n_embd), sf = 1.0f / sqrtf((float)c->n_ff);
    /* gemma multiplies the embeddings by sqrt(n_embd) */
    VKI_TRY(tensor(g, "token_embd.weight", "", c->n_embd, n_vocab, gemma ? s : 1.0f, 0.0f, 0));
    VKI_TRY(tensor(g, "output_norm.weight", "", c->n_embd, 1, 0.1f, 1.0f, 0));
    if (!gemma && !c->tied) VKI_TRY(tensor(g, "output.weight", "", c->n_embd, n_vocab, s, 0.0f, 0));
#define L(suffix, ne0, ne1, sc, ce)                                       \
    do {                                                                  \
        snprintf(name, sizeof name, "blk.%d.%s", l, suffix);              \
        VKI_TRY(tensor(g, name, "", ne0, ne1, sc, ce, 0));                \
    } while (0)
    for (int l = 0; l < c->n_layer; l++) {
        L("attn_norm.weight", c->n_embd, 1, 0.1f, 1.0f);
        if (phi3) {
            L("attn_qkv.weight", c->n_embd, q + 2 * kv, s, 0.0f);
        } else {
            L("attn_q.weight", c->n_embd, q, s, 0.0f);
            L("attn_k.weight", c->n_embd, kv, s, 0.0f);
            L("attn_v.weight", c->n_embd, kv, s, 0.0f);
        }
        if (qwen3 || gemma3) {
            L("attn_q_norm.weight", hd, 1, 0.1f, 1.0f);
            L("attn_k_norm.weight", hd, 1, 0.1f, 1.0f);
        }
        L("attn_output.weight", q, c->n_embd, 1.0f / sqrtf((float)q), 0.0f);
        if (gemma) L("post_attention_norm.weight", c->n_embd, 1, 0.1f, 1.0f);
        L("ffn_norm.weight", c->n_embd, 1, 0.1f, 1.0f);
        if (moe) {
            L("ffn_gate_inp.weight", c->n_embd, c->n_expert, s, 0.0f);
            snprintf(key, sizeof key, "blk.%d.ffn_gate_exps.weight", l);
            VKI_TRY(tensor3(g, key, c->n_embd, c->n_ff_exp, c->n_expert, s));
            snprintf(key, sizeof key, "blk.%d.ffn_up_exps.weight", l);
            VKI_TRY(tensor3(g, key, c->n_embd, c->n_ff_exp, c->n_expert, s));
            snprintf(key, sizeof key, "blk.%d.ffn_down_exps.weight", l);
            VKI_TRY(tensor3(g, key, c->n_ff_exp, c->n_embd, c->n_expert, 1.0f / sqrtf((float)c->n_ff_exp)));
        } else if (phi3) {
            L("ffn_up.weight", c->n_embd, 2 * c->n_ff, s, 0.0f); /* gate rows, then up rows */
            L("ffn_down.weight", c->n_ff, c->n_embd, sf, 0.0f);
        } else {
            L("ffn_gate.weight", c->n_embd, c->n_ff, s, 0.0f);
            L("ffn_up.weight", c->n_embd, c->n_ff, s, 0.0f);
            L("ffn_down.weight", c->n_ff, c->n_embd, sf, 0.0f);
        }
        if (gemma) L("post_ffw_norm.weight", c->n_embd, 1, 0.1f, 1.0f);
    }
#undef L
    return VKI_OK;
}

/* ===== Command line ====================================================== */

/* Sets the model shape and type; output options are left alone. */
static bool preset(gen_cfg *c, const char *name)
{
    static const struct {
        const char *name, *arch;
        int n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
        vki_type type;
    } p[] = {
        {"default", "llama", 256, 4, 8, 4, 768, 1024, 512, VKI_TYPE_F32},
        {"tiny", "llama", 64, 2, 4, 2, 128, 512, 128, VKI_TYPE_F32},
        {"bench100m", "llama", 768, 12, 12, 12, 2048, 32000, 2048, VKI_TYPE_Q8_0},
        {"bert-mini", "bert", 128, 3, 4, 4, 512, 4096, 512, VKI_TYPE_F32},
    };
    for (size_t i = 0; i < VKI_COUNT(p); i++) {
        if (strcmp(name, p[i].name)) continue;
        c->arch = p[i].arch;
        c->n_embd = p[i].n_embd;
        c->n_layer = p[i].n_layer;
        c->n_head = p[i].n_head;
        c->n_head_kv = p[i].n_head_kv;
        c->n_ff = p[i].n_ff;
        c->n_vocab = p[i].n_vocab;
        c->n_ctx = p[i].n_ctx;
        c->type = p[i].type;
        c->type_more = VKI_TYPE_COUNT;
        return true;
    }
    return false;
}

static bool parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) return false;
    *out = (int)v;
    return true;
}

static void gen_free(gen *g)
{
    gguf_writer_destroy(g->w);
    for (int i = 0; i < g->n_hf; i++) {
        free(g->hf[i].name);
        free(g->hf[i].data);
    }
    free(g->hf);
    vocab_free(&g->vocab);
}

int main(int argc, char **argv)
{
    gen_cfg c = {.seed = 1, .type_more = VKI_TYPE_COUNT};
    preset(&c, "default");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int *ip = !strcmp(a, "--n-embd") ? &c.n_embd : !strcmp(a, "--n-layer") ? &c.n_layer
                : !strcmp(a, "--n-head") ? &c.n_head : !strcmp(a, "--n-head-kv") ? &c.n_head_kv
                : !strcmp(a, "--n-ff") ? &c.n_ff : !strcmp(a, "--n-vocab") ? &c.n_vocab
                : !strcmp(a, "--n-ctx") ? &c.n_ctx : !strcmp(a, "--n-expert") ? &c.n_expert
                : !strcmp(a, "--n-expert-used") ? &c.n_expert_used : !strcmp(a, "--n-ff-exp") ? &c.n_ff_exp
                : !strcmp(a, "--sliding-window") ? &c.sliding_window : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        if (!strcmp(a, "--qkv-bias") || !strcmp(a, "--tied")) {
            *(!strcmp(a, "--tied") ? &c.tied : &c.qkv_bias) = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "vkinfer-gen: option %s needs a value (see --help)\n", a);
            return 1;
        }
        i++;
        if (ip) {
            if (!parse_int(v, 1, 1 << 20, ip)) {
                fprintf(stderr, "vkinfer-gen: %s: '%s' is not an integer in [1, 1048576]\n", a, v);
                return 1;
            }
        } else if (!strcmp(a, "--preset")) {
            if (!preset(&c, v)) {
                fprintf(stderr, "vkinfer-gen: unknown preset '%s' (default, tiny, bench100m, bert-mini)\n", v);
                return 1;
            }
        } else if (!strcmp(a, "--arch")) {
            static const char *const archs[] = {"llama", "qwen2", "bert", "qwen3", "qwen3moe", "gemma2", "gemma3", "phi3"};
            bool known = false;
            for (size_t k = 0; k < VKI_COUNT(archs); k++) known |= !strcmp(v, archs[k]);
            if (!known) {
                fprintf(stderr, "vkinfer-gen: --arch must be llama, qwen2, bert, qwen3, qwen3moe, gemma2, gemma3 or phi3\n");
                return 1;
            }
            c.arch = v;
        } else if (!strcmp(a, "--type")) {
            static const vki_type ok[] = {VKI_TYPE_F32,  VKI_TYPE_F16,  VKI_TYPE_BF16, VKI_TYPE_Q8_0,
                                          VKI_TYPE_Q4_0, VKI_TYPE_Q4_1, VKI_TYPE_Q5_0, VKI_TYPE_Q5_1,
                                          VKI_TYPE_Q2_K, VKI_TYPE_Q3_K, VKI_TYPE_Q4_K, VKI_TYPE_Q5_K,
                                          VKI_TYPE_Q6_K};
            bool found = false;
            c.type_more = VKI_TYPE_COUNT;
            for (size_t k = 0; k < VKI_COUNT(ok); k++)
                if (!strcmp(v, vki_type_name(ok[k]))) { c.type = ok[k]; found = true; }
            if (!strcmp(v, "Q4_K_M") || !strcmp(v, "Q5_K_M")) {
                c.type = v[1] == '4' ? VKI_TYPE_Q4_K : VKI_TYPE_Q5_K;
                c.type_more = VKI_TYPE_Q6_K;
                found = true;
            }
            if (!found) {
                fprintf(stderr, "vkinfer-gen: --type must be F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, "
                                "Q3_K, Q4_K, Q5_K, Q6_K, Q4_K_M or Q5_K_M\n");
                return 1;
            }
        } else if (!strcmp(a, "--format")) {
            if (strcmp(v, "gguf") && strcmp(v, "hf")) {
                fprintf(stderr, "vkinfer-gen: --format must be gguf or hf\n");
                return 1;
            }
            c.hf = !strcmp(v, "hf");
        } else if (!strcmp(a, "--shard-mb")) {
            int mb;
            if (!parse_int(v, 1, 1 << 20, &mb)) {
                fprintf(stderr, "vkinfer-gen: --shard-mb: '%s' is not an integer in [1, 1048576]\n", v);
                return 1;
            }
            c.shard_bytes = (uint64_t)mb << 20;
        } else if (!strcmp(a, "--vocab-from")) {
            c.vocab_from = v;
        } else if (!strcmp(a, "--seed")) {
            c.seed = strtoull(v, NULL, 10);
        } else if (!strcmp(a, "-o")) {
            c.out = v;
        } else {
            fprintf(stderr, "vkinfer-gen: unknown option '%s' (see --help)\n", a);
            return 1;
        }
    }
    if (!c.out) {
        fprintf(stderr, "vkinfer-gen: no output file (-o OUT)\n");
        return 1;
    }
    if (c.n_embd % c.n_head || c.n_head % c.n_head_kv || (c.n_embd / c.n_head) % 2) {
        fprintf(stderr, "vkinfer-gen: n_embd %d must split into %d heads of even width, and heads %d into %d KV heads\n",
                c.n_embd, c.n_head, c.n_head, c.n_head_kv);
        return 1;
    }
    if (c.hf && c.type != VKI_TYPE_F32 && c.type != VKI_TYPE_F16 && c.type != VKI_TYPE_BF16) {
        fprintf(stderr, "vkinfer-gen: --format hf holds F32, F16 or BF16 weights, not %s\n", vki_type_name(c.type));
        return 1;
    }
    if (!c.hf && c.shard_bytes) {
        fprintf(stderr, "vkinfer-gen: --shard-mb needs --format hf\n");
        return 1;
    }
    if (!strcmp(c.arch, "bert") && c.hf && c.vocab_from) {
        fprintf(stderr, "vkinfer-gen: --arch bert takes --vocab-from for GGUF output only\n");
        return 1;
    }
    if (!strcmp(c.arch, "bert") && (c.qkv_bias || c.tied)) {
        fprintf(stderr, "vkinfer-gen: --qkv-bias and --tied are for decoders (llama, qwen2)\n");
        return 1;
    }
    const bool family = strcmp(c.arch, "llama") && strcmp(c.arch, "qwen2") && strcmp(c.arch, "bert");
    if (family && (c.hf || c.vocab_from || c.qkv_bias)) {
        fprintf(stderr, "vkinfer-gen: --arch %s is written as GGUF only, without --vocab-from or --qkv-bias\n", c.arch);
        return 1;
    }
    if (!strcmp(c.arch, "qwen3moe")) {
        if (!c.n_expert) c.n_expert = 8;
        if (!c.n_expert_used) c.n_expert_used = 2;
        if (!c.n_ff_exp) c.n_ff_exp = VKI_MAX(c.n_ff / 4, 1);
        if (c.n_expert_used > c.n_expert) {
            fprintf(stderr, "vkinfer-gen: --n-expert-used %d exceeds --n-expert %d\n", c.n_expert_used, c.n_expert);
            return 1;
        }
    }
    gen g = {.c = c, .rng = c.seed * 0x9E3779B97F4A7C15ull + 1};
    if (!c.hf && !(g.w = gguf_writer_create(32))) {
        fprintf(stderr, "vkinfer-gen: out of memory\n");
        return 1;
    }
    vki_status s = !strcmp(c.arch, "bert") ? gen_bert(&g) : family ? gen_family(&g) : gen_decoder(&g);
    if (s == VKI_OK) s = c.hf ? hf_write_folder(&c, g.hf, g.n_hf, &g.vocab) : gguf_writer_save(g.w, c.out);
    gen_free(&g);
    if (s != VKI_OK) {
        fprintf(stderr, "vkinfer-gen: %s\n", vki_last_error());
        return 1;
    }
    fprintf(stderr, "vkinfer-gen: wrote %s (%s, %.2fM parameters, %s%s %s)\n", c.out, c.arch, (double)g.params / 1e6,
            vki_type_name(c.type), c.type_more == VKI_TYPE_COUNT ? "" : "_M mix of", c.hf ? "HF folder" : "matrices");
    return 0;
}
