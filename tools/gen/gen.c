/*
 * gen.c: vkinfer-gen, which writes GGUF models with deterministic random
 * weights: a llama-family decoder with an SPM byte-fallback vocabulary (or
 * the vocabulary of another GGUF) and a BERT encoder with a WordPiece
 * vocabulary. For tests, benchmarks and the quick start; never at run time.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "loader/gguf.h"
#include "loader/model_file.h"
#include "util.h"

static const char usage[] =
    "usage: vkinfer-gen [--preset NAME] [options] -o OUT.gguf\n"
    "Writes a GGUF model with deterministic (seeded) random weights.\n"
    "\n"
    "  --preset NAME     default (llama, 256 wide, 4 layers, ~3.7M params, F32; the quick start's model)\n"
    "                    tiny (llama, 64 wide, 2 layers), bench100m (llama, 768 wide, 12 layers,\n"
    "                    ffn 2048, vocab 32000, ~110M params, Q8_0), bert-mini (bert, 128 wide, 3 layers)\n"
    "  --arch A          llama | bert\n"
    "  --n-embd N --n-layer N --n-head N --n-head-kv N --n-ff N --n-vocab N --n-ctx N\n"
    "  --type T          weight type of the 2-D matrices: F32 F16 Q8_0 Q4_0 Q4_K Q6_K (norms stay F32;\n"
    "                    a matrix whose rows are not a multiple of the block size falls back to Q8_0/F16)\n"
    "  --vocab-from F    take the tokenizer (tokenizer.* keys) from the GGUF file F\n"
    "  --seed N          random seed (default 1)\n"
    "  -o OUT            output file\n";

typedef struct gen_cfg {
    const char *arch, *out, *vocab_from;
    int n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
    vki_type type;
    uint64_t seed;
} gen_cfg;

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

typedef struct vocab { char **text; float *score; int32_t *type; int n, cap; } vocab;

static void vocab_add(vocab *v, const char *t, float score, int32_t type)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 1024;
        v->text = realloc(v->text, (size_t)v->cap * sizeof *v->text);
        v->score = realloc(v->score, (size_t)v->cap * sizeof *v->score);
        v->type = realloc(v->type, (size_t)v->cap * sizeof *v->type);
        if (!v->text || !v->score || !v->type) {
            fprintf(stderr, "vkinfer-gen: out of memory\n");
            exit(1);
        }
    }
    v->text[v->n] = strdup(t);
    v->score[v->n] = score;
    v->type[v->n] = type;
    v->n++;
}

static void vocab_free(vocab *v)
{
    for (int i = 0; i < v->n; i++) free(v->text[i]);
    free(v->text);
    free(v->score);
    free(v->type);
}

static const char *const words[] = {
    "the", "and", "was", "to", "a", "he", "she", "it", "of", "in", "they", "said", "her", "his", "with", "day",
    "one", "you", "time", "upon", "once", "there", "little", "big", "happy", "play", "saw", "went", "had", "for",
    "that", "on", "but", "so", "very", "friend", "mom", "dog", "cat", "tree", "park", "ball", "sun", "fun",
};

/* SPM with byte fallback: <unk> <s> </s>, the 256 byte tokens, printable
 * ASCII, "▁"-prefixed letters and words, then letter pairs and triples until
 * n_vocab. Scores fall with the index so that earlier pieces merge first. */
static void spm_vocab(vocab *v, int n)
{
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
static void wpm_vocab(vocab *v, int n)
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

typedef struct gen { gen_cfg c; gguf_writer *w; uint64_t rng; uint64_t params; } gen;

static vki_type fit_type(vki_type t, int64_t ne0)
{
    if (ne0 % vki_type_get(t)->block_size == 0) return t;
    if (ne0 % 32 == 0) return VKI_TYPE_Q8_0;
    return VKI_TYPE_F16;
}

/* A [ne0, ne1] tensor: weights uniform in +-scale, or 1 +- scale for norms
 * (`center`); 2-D matrices get the chosen type, vectors stay F32. */
static vki_status tensor(gen *g, const char *name, int64_t ne0, int64_t ne1, float scale, float center)
{
    const bool matrix = ne1 > 1;
    const vki_type t = matrix ? fit_type(g->c.type, ne0) : VKI_TYPE_F32;
    const uint64_t rb = vki_row_bytes(t, ne0);
    float *row = malloc((size_t)ne0 * sizeof *row);
    uint8_t *data = malloc(rb * (uint64_t)ne1);
    if (!row || !data) {
        free(row);
        free(data);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "vkinfer-gen: out of memory for %s", name);
    }
    for (int64_t r = 0; r < ne1; r++) {
        for (int64_t i = 0; i < ne0; i++) row[i] = center + scale * rng_f32(&g->rng);
        vki_quantize_row(t, row, data + (uint64_t)r * rb, ne0);
    }
    const int64_t ne[2] = {ne0, ne1};
    vki_status s = gguf_write_tensor(g->w, name, t, matrix ? 2 : 1, ne, data);
    g->params += (uint64_t)(ne0 * ne1);
    free(row);
    free(data);
    return s;
}

static vki_status write_vocab(gen *g, const vocab *v, bool spm)
{
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

/* Copies tokenizer.* from another GGUF; returns its vocabulary size. */
static vki_status copy_vocab(gen *g, const char *path, int *n_vocab)
{
    vki_model_file *f = NULL;
    VKI_TRY(vki_file_open(path, &f));
    vki_status s = VKI_OK;
    const vki_kv *toks = vki_file_find_kv(f, "tokenizer.ggml.tokens");
    if (!toks || toks->type != VKI_KV_ARRAY || toks->v.arr.n == 0) {
        s = vki_fail(VKI_ERR_BAD_FILE, "%s: no tokenizer.ggml.tokens to copy", path);
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

static vki_status gen_llama(gen *g)
{
    const gen_cfg *c = &g->c;
    char key[128];
    const int n_embd_kv = c->n_embd / c->n_head * c->n_head_kv;
    VKI_TRY(gguf_write_str(g->w, "general.architecture", "llama"));
    VKI_TRY(gguf_write_str(g->w, "general.name", "vkinfer-gen llama"));
    VKI_TRY(gguf_write_u32(g->w, "llama.context_length", (uint32_t)c->n_ctx));
    VKI_TRY(gguf_write_u32(g->w, "llama.embedding_length", (uint32_t)c->n_embd));
    VKI_TRY(gguf_write_u32(g->w, "llama.block_count", (uint32_t)c->n_layer));
    VKI_TRY(gguf_write_u32(g->w, "llama.feed_forward_length", (uint32_t)c->n_ff));
    VKI_TRY(gguf_write_u32(g->w, "llama.attention.head_count", (uint32_t)c->n_head));
    VKI_TRY(gguf_write_u32(g->w, "llama.attention.head_count_kv", (uint32_t)c->n_head_kv));
    VKI_TRY(gguf_write_u32(g->w, "llama.rope.dimension_count", (uint32_t)(c->n_embd / c->n_head)));
    VKI_TRY(gguf_write_f32(g->w, "llama.attention.layer_norm_rms_epsilon", 1e-5f));
    VKI_TRY(gguf_write_f32(g->w, "llama.rope.freq_base", 10000.0f));
    int n_vocab = c->n_vocab;
    if (c->vocab_from) {
        VKI_TRY(copy_vocab(g, c->vocab_from, &n_vocab));
    } else {
        vocab v = {0};
        spm_vocab(&v, c->n_vocab);
        n_vocab = v.n;
        vki_status s = write_vocab(g, &v, true);
        vocab_free(&v);
        VKI_TRY(s);
    }
    const float a = 1.0f / sqrtf((float)c->n_embd), af = 1.0f / sqrtf((float)c->n_ff);
    VKI_TRY(tensor(g, "token_embd.weight", c->n_embd, n_vocab, 1.0f, 0.0f));
    VKI_TRY(tensor(g, "output_norm.weight", c->n_embd, 1, 0.1f, 1.0f));
    VKI_TRY(tensor(g, "output.weight", c->n_embd, n_vocab, a, 0.0f));
    for (int l = 0; l < c->n_layer; l++) {
#define T(nm, ne0, ne1, sc, ce) \
    do { snprintf(key, sizeof key, "blk.%d." nm, l); VKI_TRY(tensor(g, key, ne0, ne1, sc, ce)); } while (0)
        T("attn_norm.weight", c->n_embd, 1, 0.1f, 1.0f);
        T("attn_q.weight", c->n_embd, c->n_embd, a, 0.0f);
        T("attn_k.weight", c->n_embd, n_embd_kv, a, 0.0f);
        T("attn_v.weight", c->n_embd, n_embd_kv, a, 0.0f);
        T("attn_output.weight", c->n_embd, c->n_embd, a, 0.0f);
        T("ffn_norm.weight", c->n_embd, 1, 0.1f, 1.0f);
        T("ffn_gate.weight", c->n_embd, c->n_ff, a, 0.0f);
        T("ffn_up.weight", c->n_embd, c->n_ff, a, 0.0f);
        T("ffn_down.weight", c->n_ff, c->n_embd, af, 0.0f);
    }
    return VKI_OK;
}

static vki_status gen_bert(gen *g)
{
    const gen_cfg *c = &g->c;
    char key[128];
    VKI_TRY(gguf_write_str(g->w, "general.architecture", "bert"));
    VKI_TRY(gguf_write_str(g->w, "general.name", "vkinfer-gen bert"));
    VKI_TRY(gguf_write_u32(g->w, "bert.context_length", (uint32_t)c->n_ctx));
    VKI_TRY(gguf_write_u32(g->w, "bert.embedding_length", (uint32_t)c->n_embd));
    VKI_TRY(gguf_write_u32(g->w, "bert.block_count", (uint32_t)c->n_layer));
    VKI_TRY(gguf_write_u32(g->w, "bert.feed_forward_length", (uint32_t)c->n_ff));
    VKI_TRY(gguf_write_u32(g->w, "bert.attention.head_count", (uint32_t)c->n_head));
    VKI_TRY(gguf_write_f32(g->w, "bert.attention.layer_norm_epsilon", 1e-12f));
    VKI_TRY(gguf_write_bool(g->w, "bert.attention.causal", false));
    VKI_TRY(gguf_write_u32(g->w, "bert.pooling_type", 1));
    VKI_TRY(gguf_write_u32(g->w, "tokenizer.ggml.token_type_count", 2));
    vocab v = {0};
    wpm_vocab(&v, c->n_vocab);
    const int n_vocab = v.n;
    vki_status s = write_vocab(g, &v, false);
    vocab_free(&v);
    VKI_TRY(s);
    const float a = 1.0f / sqrtf((float)c->n_embd), af = 1.0f / sqrtf((float)c->n_ff);
    VKI_TRY(tensor(g, "token_embd.weight", c->n_embd, n_vocab, 0.5f, 0.0f));
    VKI_TRY(tensor(g, "token_types.weight", c->n_embd, 2, 0.5f, 0.0f));
    VKI_TRY(tensor(g, "position_embd.weight", c->n_embd, c->n_ctx, 0.5f, 0.0f));
    VKI_TRY(tensor(g, "token_embd_norm.weight", c->n_embd, 1, 0.1f, 1.0f));
    VKI_TRY(tensor(g, "token_embd_norm.bias", c->n_embd, 1, 0.1f, 0.0f));
    for (int l = 0; l < c->n_layer; l++) {
        static const char *const proj[] = {"attn_q", "attn_k", "attn_v", "attn_output"};
        for (int p = 0; p < 4; p++) {
            snprintf(key, sizeof key, "blk.%d.%s.weight", l, proj[p]);
            VKI_TRY(tensor(g, key, c->n_embd, c->n_embd, a, 0.0f));
            snprintf(key, sizeof key, "blk.%d.%s.bias", l, proj[p]);
            VKI_TRY(tensor(g, key, c->n_embd, 1, 0.05f, 0.0f));
        }
        T("attn_output_norm.weight", c->n_embd, 1, 0.1f, 1.0f);
        T("attn_output_norm.bias", c->n_embd, 1, 0.1f, 0.0f);
        T("ffn_up.weight", c->n_embd, c->n_ff, a, 0.0f);
        T("ffn_up.bias", c->n_ff, 1, 0.05f, 0.0f);
        T("ffn_down.weight", c->n_ff, c->n_embd, af, 0.0f);
        T("ffn_down.bias", c->n_embd, 1, 0.05f, 0.0f);
        T("layer_output_norm.weight", c->n_embd, 1, 0.1f, 1.0f);
        T("layer_output_norm.bias", c->n_embd, 1, 0.1f, 0.0f);
#undef T
    }
    return VKI_OK;
}

/* ===== Command line ====================================================== */

static bool preset(gen_cfg *c, const char *name)
{
    if (!strcmp(name, "default"))
        *c = (gen_cfg){"llama", c->out, c->vocab_from, 256, 4, 8, 4, 768, 1024, 512, VKI_TYPE_F32, c->seed};
    else if (!strcmp(name, "tiny"))
        *c = (gen_cfg){"llama", c->out, c->vocab_from, 64, 2, 4, 2, 128, 512, 128, VKI_TYPE_F32, c->seed};
    else if (!strcmp(name, "bench100m"))
        *c = (gen_cfg){"llama", c->out, c->vocab_from, 768, 12, 12, 12, 2048, 32000, 2048, VKI_TYPE_Q8_0, c->seed};
    else if (!strcmp(name, "bert-mini"))
        *c = (gen_cfg){"bert", c->out, c->vocab_from, 128, 3, 4, 4, 512, 4096, 512, VKI_TYPE_F32, c->seed};
    else return false;
    return true;
}

static bool parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) return false;
    *out = (int)v;
    return true;
}

int main(int argc, char **argv)
{
    gen_cfg c = {.seed = 1};
    preset(&c, "default");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int *ip = !strcmp(a, "--n-embd") ? &c.n_embd : !strcmp(a, "--n-layer") ? &c.n_layer
                : !strcmp(a, "--n-head") ? &c.n_head : !strcmp(a, "--n-head-kv") ? &c.n_head_kv
                : !strcmp(a, "--n-ff") ? &c.n_ff : !strcmp(a, "--n-vocab") ? &c.n_vocab
                : !strcmp(a, "--n-ctx") ? &c.n_ctx : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
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
            if (strcmp(v, "llama") && strcmp(v, "bert")) {
                fprintf(stderr, "vkinfer-gen: --arch must be llama or bert\n");
                return 1;
            }
            c.arch = v;
        } else if (!strcmp(a, "--type")) {
            static const vki_type ok[] = {VKI_TYPE_F32, VKI_TYPE_F16, VKI_TYPE_Q8_0, VKI_TYPE_Q4_0, VKI_TYPE_Q4_K,
                                          VKI_TYPE_Q6_K};
            bool found = false;
            for (size_t k = 0; k < VKI_COUNT(ok); k++)
                if (!strcmp(v, vki_type_name(ok[k]))) { c.type = ok[k]; found = true; }
            if (!found) {
                fprintf(stderr, "vkinfer-gen: --type must be F32, F16, Q8_0, Q4_0, Q4_K or Q6_K\n");
                return 1;
            }
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
        fprintf(stderr, "vkinfer-gen: no output file (-o OUT.gguf)\n");
        return 1;
    }
    if (c.n_embd % c.n_head || c.n_head % c.n_head_kv || (c.n_embd / c.n_head) % 2) {
        fprintf(stderr, "vkinfer-gen: n_embd %d must split into %d heads of even width, and heads %d into %d KV heads\n",
                c.n_embd, c.n_head, c.n_head, c.n_head_kv);
        return 1;
    }
    gen g = {.c = c, .w = gguf_writer_create(32), .rng = c.seed * 0x9E3779B97F4A7C15ull + 1};
    if (!g.w) {
        fprintf(stderr, "vkinfer-gen: out of memory\n");
        return 1;
    }
    vki_status s = !strcmp(c.arch, "bert") ? gen_bert(&g) : gen_llama(&g);
    if (s == VKI_OK) s = gguf_writer_save(g.w, c.out);
    gguf_writer_destroy(g.w);
    if (s != VKI_OK) {
        fprintf(stderr, "vkinfer-gen: %s\n", vki_last_error());
        return 1;
    }
    fprintf(stderr, "vkinfer-gen: wrote %s (%s, %.2fM parameters, %s matrices)\n", c.out, c.arch,
            (double)g.params / 1e6, vki_type_name(c.type));
    return 0;
}
