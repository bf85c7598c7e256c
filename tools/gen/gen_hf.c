/*
 * gen_hf.c: vkinfer-gen's Hugging Face folder writer: config.json as
 * transformers writes it for LlamaForCausalLM / Qwen2ForCausalLM / BertModel,
 * the weights as safetensors (one file, or shards with their index), and
 * tokenizer.json + tokenizer_config.json in the shape the hub's llama-2
 * (SPM-converted BPE with byte fallback) and bert-base-uncased (WordPiece)
 * files have. Must not: generate weights (gen.c does, in HF layout already).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "gen.h"
#include "util.h"

/* ===== Files ============================================================= */

static vki_status make_dir(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: cannot create the folder (%s)", path, strerror(errno));
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: exists and is not a folder", path);
    return VKI_OK;
}

static vki_status write_file(const char *dir, const char *name, const void *data, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%.3000s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: cannot create (%s)", path, strerror(errno));
    const bool ok = fwrite(data, 1, n, f) == n;
    if (fclose(f) != 0 || !ok) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: write failed", path);
    return VKI_OK;
}

/* Prints j (pretty, ending in a newline, as save_pretrained does) into
 * DIR/name and deletes it. */
static vki_status write_json(const char *dir, const char *name, cJSON *j)
{
    char *text = j ? cJSON_Print(j) : NULL;
    cJSON_Delete(j);
    size_t n = text ? strlen(text) : 0;
    char *nl = text ? realloc(text, n + 2) : NULL;
    if (!nl) {
        free(text);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "vkinfer-gen: out of memory for %s", name);
    }
    nl[n++] = '\n';
    vki_status s = write_file(dir, name, nl, n);
    free(nl);
    return s;
}

/* Removes DIR/name if it is there: a stale index or single file from an
 * earlier run would change what the folder means to a loader. */
static vki_status remove_stale(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%.3000s/%s", dir, name);
    if (remove(path) != 0 && errno != ENOENT)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: cannot remove a stale file (%s)", path, strerror(errno));
    return VKI_OK;
}

/* ===== config.json ======================================================= */

static const char *torch_dtype(vki_type t)
{
    return t == VKI_TYPE_F16 ? "float16" : t == VKI_TYPE_BF16 ? "bfloat16" : "float32";
}

static cJSON *config_json(const gen_cfg *c, int n_vocab)
{
    cJSON *j = cJSON_CreateObject();
    const bool bert = !strcmp(c->arch, "bert"), qwen2 = !strcmp(c->arch, "qwen2");
    cJSON *arch = cJSON_AddArrayToObject(j, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString(bert ? "BertModel" : qwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM"));
    if (bert) {
        cJSON_AddNumberToObject(j, "attention_probs_dropout_prob", 0.1);
        cJSON_AddNullToObject(j, "classifier_dropout");
        cJSON_AddStringToObject(j, "hidden_act", "gelu");
        cJSON_AddNumberToObject(j, "hidden_dropout_prob", 0.1);
    } else {
        if (!qwen2) cJSON_AddBoolToObject(j, "attention_bias", c->qkv_bias);
        cJSON_AddNumberToObject(j, "attention_dropout", 0.0);
        cJSON_AddNumberToObject(j, "bos_token_id", 1);
        cJSON_AddNumberToObject(j, "eos_token_id", 2);
        if (!qwen2) cJSON_AddNumberToObject(j, "head_dim", c->n_embd / c->n_head);
        cJSON_AddStringToObject(j, "hidden_act", "silu");
    }
    cJSON_AddNumberToObject(j, "hidden_size", c->n_embd);
    cJSON_AddNumberToObject(j, "initializer_range", 0.02);
    cJSON_AddNumberToObject(j, "intermediate_size", c->n_ff);
    if (bert) cJSON_AddNumberToObject(j, "layer_norm_eps", 1e-12);
    cJSON_AddNumberToObject(j, "max_position_embeddings", c->n_ctx);
    if (qwen2) cJSON_AddNumberToObject(j, "max_window_layers", c->n_layer);
    if (!bert && !qwen2) cJSON_AddBoolToObject(j, "mlp_bias", false);
    cJSON_AddStringToObject(j, "model_type", c->arch);
    cJSON_AddNumberToObject(j, "num_attention_heads", c->n_head);
    cJSON_AddNumberToObject(j, "num_hidden_layers", c->n_layer);
    if (!bert) cJSON_AddNumberToObject(j, "num_key_value_heads", c->n_head_kv);
    if (bert) {
        cJSON_AddNumberToObject(j, "pad_token_id", 0);
        cJSON_AddStringToObject(j, "position_embedding_type", "absolute");
    } else {
        if (!qwen2) cJSON_AddNumberToObject(j, "pretraining_tp", 1);
        cJSON_AddNumberToObject(j, "rms_norm_eps", qwen2 ? 1e-6 : 1e-5);
        cJSON_AddNullToObject(j, "rope_scaling");
        cJSON_AddNumberToObject(j, "rope_theta", qwen2 ? 1000000.0 : 10000.0);
        if (qwen2) cJSON_AddNumberToObject(j, "sliding_window", c->n_ctx);
        cJSON_AddBoolToObject(j, "tie_word_embeddings", c->tied);
    }
    cJSON_AddStringToObject(j, "torch_dtype", torch_dtype(c->type));
    cJSON_AddStringToObject(j, "transformers_version", "4.44.2");
    if (bert) cJSON_AddNumberToObject(j, "type_vocab_size", 2);
    cJSON_AddBoolToObject(j, "use_cache", true);
    if (qwen2) cJSON_AddBoolToObject(j, "use_sliding_window", false);
    cJSON_AddNumberToObject(j, "vocab_size", n_vocab);
    return j;
}

/* ===== safetensors ======================================================= */

static const hf_tensor *sort_base;

static int by_name(const void *a, const void *b)
{
    return strcmp(sort_base[*(const int *)a].name, sort_base[*(const int *)b].name);
}

static const char *st_dtype(vki_type t)
{
    return t == VKI_TYPE_F16 ? "F16" : t == VKI_TYPE_BF16 ? "BF16" : "F32";
}

/* One safetensors file holding tensors idx[0..n): the header lists them by
 * name, as the safetensors library sorts them, padded with spaces to a
 * multiple of 8 bytes; the data follows in the same order. */
static vki_status write_safetensors(const char *dir, const char *name, const hf_tensor *t, int *idx, int n)
{
    sort_base = t;
    qsort(idx, (size_t)n, sizeof *idx, by_name);
    size_t cap = 256 + (size_t)n * 400, len = 0;
    char *hdr = malloc(cap);
    if (!hdr) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "vkinfer-gen: out of memory for a safetensors header");
    len += (size_t)snprintf(hdr + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const hf_tensor *x = &t[idx[i]];
        len += (size_t)snprintf(hdr + len, cap - len, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld", x->name,
                                st_dtype(x->type), (long long)x->shape[0]);
        if (x->n_dims == 2) len += (size_t)snprintf(hdr + len, cap - len, ",%lld", (long long)x->shape[1]);
        len += (size_t)snprintf(hdr + len, cap - len, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                                (unsigned long long)(off + x->bytes));
        off += x->bytes;
    }
    len += (size_t)snprintf(hdr + len, cap - len, "}");
    while (len % 8) hdr[len++] = ' ';
    char path[4096];
    snprintf(path, sizeof path, "%.3000s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    vki_status s = VKI_OK;
    if (!f) {
        s = vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: cannot create (%s)", path, strerror(errno));
        goto done;
    }
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)((uint64_t)len >> (8 * i));
    bool ok = fwrite(le, 1, 8, f) == 8 && fwrite(hdr, 1, len, f) == len;
    for (int i = 0; i < n && ok; i++) ok = fwrite(t[idx[i]].data, 1, t[idx[i]].bytes, f) == t[idx[i]].bytes;
    if (fclose(f) != 0 || !ok) s = vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: write failed", path);
done:
    free(hdr);
    return s;
}

/* Shards fill in the model's tensor order (as save_pretrained splits a
 * state dict): a tensor that would push a non-empty shard past the limit
 * starts the next one. */
static vki_status write_weights(const gen_cfg *c, const hf_tensor *t, int n)
{
    int *shard = malloc((size_t)n * sizeof *shard), *idx = malloc((size_t)n * sizeof *idx);
    vki_status s = VKI_OK;
    cJSON *index = NULL;
    if (!shard || !idx) {
        s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "vkinfer-gen: out of memory");
        goto done;
    }
    int n_shards = 1;
    uint64_t cur = 0, total = 0;
    for (int i = 0; i < n; i++) {
        if (c->shard_bytes && cur > 0 && cur + t[i].bytes > c->shard_bytes) {
            n_shards++;
            cur = 0;
        }
        cur += t[i].bytes;
        total += t[i].bytes;
        shard[i] = n_shards - 1;
    }
    if ((s = remove_stale(c->out, n_shards == 1 ? "model.safetensors.index.json" : "model.safetensors")) != VKI_OK)
        goto done;
    if (n_shards == 1) {
        for (int i = 0; i < n; i++) idx[i] = i;
        s = write_safetensors(c->out, "model.safetensors", t, idx, n);
        goto done;
    }
    char name[64];
    index = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(index, "metadata");
    cJSON_AddNumberToObject(meta, "total_size", (double)total);
    cJSON *wm = cJSON_AddObjectToObject(index, "weight_map");
    for (int k = 0; k < n_shards && s == VKI_OK; k++) {
        int m = 0;
        for (int i = 0; i < n; i++)
            if (shard[i] == k) idx[m++] = i;
        snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k + 1, n_shards);
        s = write_safetensors(c->out, name, t, idx, m);
    }
    for (int i = 0; i < n; i++) idx[i] = i;
    sort_base = t;
    qsort(idx, (size_t)n, sizeof *idx, by_name);
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", shard[idx[i]] + 1, n_shards);
        cJSON_AddStringToObject(wm, t[idx[i]].name, name);
    }
    if (s == VKI_OK) s = write_json(c->out, "model.safetensors.index.json", index);
    else cJSON_Delete(index);
done:
    free(shard);
    free(idx);
    return s;
}

/* ===== Tokenizer ========================================================= */

static cJSON *added_token(int id, const char *text)
{
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "id", id);
    cJSON_AddStringToObject(a, "content", text);
    cJSON_AddBoolToObject(a, "single_word", false);
    cJSON_AddBoolToObject(a, "lstrip", false);
    cJSON_AddBoolToObject(a, "rstrip", false);
    cJSON_AddBoolToObject(a, "normalized", false);
    cJSON_AddBoolToObject(a, "special", true);
    return a;
}

static cJSON *special_token(const char *text, int type_id)
{
    cJSON *o = cJSON_CreateObject(), *s = cJSON_AddObjectToObject(o, "SpecialToken");
    cJSON_AddStringToObject(s, "id", text);
    cJSON_AddNumberToObject(s, "type_id", type_id);
    return o;
}

static cJSON *sequence(const char *id, int type_id)
{
    cJSON *o = cJSON_CreateObject(), *s = cJSON_AddObjectToObject(o, "Sequence");
    cJSON_AddStringToObject(s, "id", id);
    cJSON_AddNumberToObject(s, "type_id", type_id);
    return o;
}

/* TemplateProcessing adding `first` before and `last` (may be NULL) after. */
static cJSON *template(const gen_vocab *v, const char *first, const char *last)
{
    cJSON *pp = cJSON_CreateObject();
    cJSON_AddStringToObject(pp, "type", "TemplateProcessing");
    cJSON *single = cJSON_AddArrayToObject(pp, "single"), *pair = cJSON_AddArrayToObject(pp, "pair");
    cJSON_AddItemToArray(single, special_token(first, 0));
    cJSON_AddItemToArray(single, sequence("A", 0));
    if (last) cJSON_AddItemToArray(single, special_token(last, 0));
    cJSON_AddItemToArray(pair, special_token(first, 0));
    cJSON_AddItemToArray(pair, sequence("A", 0));
    if (last) cJSON_AddItemToArray(pair, special_token(last, 0));
    else cJSON_AddItemToArray(pair, special_token(first, 1));
    cJSON_AddItemToArray(pair, sequence("B", 1));
    if (last) cJSON_AddItemToArray(pair, special_token(last, 1));
    cJSON *st = cJSON_AddObjectToObject(pp, "special_tokens");
    const char *names[2] = {first, last};
    for (int k = 0; k < 2 && names[k]; k++) {
        cJSON *e = cJSON_AddObjectToObject(st, names[k]);
        cJSON_AddStringToObject(e, "id", names[k]);
        cJSON *ids = cJSON_AddArrayToObject(e, "ids"), *toks = cJSON_AddArrayToObject(e, "tokens");
        cJSON_AddItemToArray(ids, cJSON_CreateNumber(gen_vocab_find(v, names[k])));
        cJSON_AddItemToArray(toks, cJSON_CreateString(names[k]));
    }
    return pp;
}

static cJSON *replace(const char *from, const char *to)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "type", "Replace");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(r, "pattern"), "String", from);
    cJSON_AddStringToObject(r, "content", to);
    return r;
}

static cJSON *typed(const char *type)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type);
    return o;
}

static const gen_vocab *score_base;

static int by_score(const void *a, const void *b)
{
    const int x = *(const int *)a, y = *(const int *)b;
    const float sx = score_base->score[x], sy = score_base->score[y];
    return sx > sy ? -1 : sx < sy ? 1 : (x > y) - (x < y);
}

/* The merges of an SPM vocabulary, as transformers' LlamaConverter derives
 * them: for every normal piece of two or more characters, in falling score
 * order, every split into two pieces that are both in the vocabulary. BPE
 * by merge rank then builds what SPM builds by score. */
static vki_status spm_merges(const gen_vocab *v, cJSON *merges)
{
    int *order = malloc((size_t)v->n * sizeof *order);
    if (!order) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "vkinfer-gen: out of memory for merges");
    for (int i = 0; i < v->n; i++) order[i] = i;
    score_base = v;
    qsort(order, (size_t)v->n, sizeof *order, by_score);
    char left[256], pair[520];
    for (int k = 0; k < v->n; k++) {
        const char *t = v->text[order[k]];
        const size_t n = strlen(t);
        if (v->type[order[k]] != 1 || n >= sizeof left) continue;
        for (size_t b = 1; b < n; b++) {
            if (((unsigned char)t[b] & 0xC0) == 0x80) continue; /* inside a UTF-8 character */
            memcpy(left, t, b);
            left[b] = '\0';
            if (gen_vocab_find(v, left) < 0 || gen_vocab_find(v, t + b) < 0) continue;
            snprintf(pair, sizeof pair, "%s %s", left, t + b);
            cJSON_AddItemToArray(merges, cJSON_CreateString(pair));
        }
    }
    free(order);
    return VKI_OK;
}

/* The llama-2 hub files: specials as added tokens, "▁" prepended and spaces
 * replaced by the normalizer, <s> added by the post-processor. */
static vki_status tokenizer_spm(const gen_cfg *c, const gen_vocab *v)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "version", "1.0");
    cJSON_AddNullToObject(j, "truncation");
    cJSON_AddNullToObject(j, "padding");
    cJSON *added = cJSON_AddArrayToObject(j, "added_tokens");
    for (int i = 0; i < v->n; i++)
        if (v->type[i] == 2 || v->type[i] == 3) cJSON_AddItemToArray(added, added_token(i, v->text[i]));
    cJSON *norm = cJSON_AddObjectToObject(j, "normalizer");
    cJSON_AddStringToObject(norm, "type", "Sequence");
    cJSON *nl = cJSON_AddArrayToObject(norm, "normalizers");
    cJSON *prep = typed("Prepend");
    cJSON_AddStringToObject(prep, "prepend", "\xe2\x96\x81");
    cJSON_AddItemToArray(nl, prep);
    cJSON_AddItemToArray(nl, replace(" ", "\xe2\x96\x81"));
    cJSON_AddNullToObject(j, "pre_tokenizer");
    cJSON_AddItemToObject(j, "post_processor", template(v, v->text[v->bos], NULL));
    cJSON *dec = cJSON_AddObjectToObject(j, "decoder");
    cJSON_AddStringToObject(dec, "type", "Sequence");
    cJSON *dl = cJSON_AddArrayToObject(dec, "decoders");
    cJSON_AddItemToArray(dl, replace("\xe2\x96\x81", " "));
    cJSON_AddItemToArray(dl, typed("ByteFallback"));
    cJSON_AddItemToArray(dl, typed("Fuse"));
    cJSON *strip = typed("Strip");
    cJSON_AddStringToObject(strip, "content", " ");
    cJSON_AddNumberToObject(strip, "start", 1);
    cJSON_AddNumberToObject(strip, "stop", 0);
    cJSON_AddItemToArray(dl, strip);
    cJSON *m = cJSON_AddObjectToObject(j, "model");
    cJSON_AddStringToObject(m, "type", "BPE");
    cJSON_AddNullToObject(m, "dropout");
    cJSON_AddStringToObject(m, "unk_token", v->text[v->unk]);
    cJSON_AddNullToObject(m, "continuing_subword_prefix");
    cJSON_AddNullToObject(m, "end_of_word_suffix");
    cJSON_AddBoolToObject(m, "fuse_unk", true);
    cJSON_AddBoolToObject(m, "byte_fallback", true);
    cJSON_AddBoolToObject(m, "ignore_merges", false);
    cJSON *vocab = cJSON_AddObjectToObject(m, "vocab");
    for (int i = 0; i < v->n; i++) cJSON_AddNumberToObject(vocab, v->text[i], i);
    vki_status s = spm_merges(v, cJSON_AddArrayToObject(m, "merges"));
    if (s != VKI_OK) {
        cJSON_Delete(j);
        return s;
    }
    VKI_TRY(write_json(c->out, "tokenizer.json", j));

    cJSON *tc = cJSON_CreateObject();
    cJSON_AddBoolToObject(tc, "add_bos_token", true);
    cJSON_AddBoolToObject(tc, "add_eos_token", false);
    cJSON *atd = cJSON_AddObjectToObject(tc, "added_tokens_decoder");
    for (int i = 0; i < v->n; i++) {
        if (v->type[i] != 2 && v->type[i] != 3) continue;
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        cJSON *a = added_token(i, v->text[i]);
        cJSON_DeleteItemFromObject(a, "id");
        cJSON_AddItemToObject(atd, id, a);
    }
    cJSON_AddStringToObject(tc, "bos_token", v->text[v->bos]);
    cJSON_AddBoolToObject(tc, "clean_up_tokenization_spaces", false);
    cJSON_AddStringToObject(tc, "eos_token", v->text[v->eos]);
    cJSON_AddBoolToObject(tc, "legacy", false);
    cJSON_AddNumberToObject(tc, "model_max_length", c->n_ctx);
    cJSON_AddNullToObject(tc, "pad_token");
    cJSON_AddStringToObject(tc, "padding_side", "right");
    cJSON_AddObjectToObject(tc, "sp_model_kwargs");
    cJSON_AddStringToObject(tc, "tokenizer_class", "LlamaTokenizer");
    cJSON_AddStringToObject(tc, "unk_token", v->text[v->unk]);
    cJSON_AddBoolToObject(tc, "use_default_system_prompt", false);
    return write_json(c->out, "tokenizer_config.json", tc);
}

/* The bert-base-uncased hub files, plus vocab.txt and the
 * sentence-transformers mean pooling the GGUF side records. */
static vki_status tokenizer_wpm(const gen_cfg *c, const gen_vocab *v)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "version", "1.0");
    cJSON_AddNullToObject(j, "truncation");
    cJSON_AddNullToObject(j, "padding");
    cJSON *added = cJSON_AddArrayToObject(j, "added_tokens");
    for (int i = 0; i < v->n; i++)
        if (v->type[i] == 2 || v->type[i] == 3) cJSON_AddItemToArray(added, added_token(i, v->text[i]));
    cJSON *norm = cJSON_AddObjectToObject(j, "normalizer");
    cJSON_AddStringToObject(norm, "type", "BertNormalizer");
    cJSON_AddBoolToObject(norm, "clean_text", true);
    cJSON_AddBoolToObject(norm, "handle_chinese_chars", true);
    cJSON_AddNullToObject(norm, "strip_accents");
    cJSON_AddBoolToObject(norm, "lowercase", true);
    cJSON_AddItemToObject(j, "pre_tokenizer", typed("BertPreTokenizer"));
    cJSON_AddItemToObject(j, "post_processor", template(v, "[CLS]", "[SEP]"));
    cJSON *dec = cJSON_AddObjectToObject(j, "decoder");
    cJSON_AddStringToObject(dec, "type", "WordPiece");
    cJSON_AddStringToObject(dec, "prefix", "##");
    cJSON_AddBoolToObject(dec, "cleanup", true);
    cJSON *m = cJSON_AddObjectToObject(j, "model");
    cJSON_AddStringToObject(m, "type", "WordPiece");
    cJSON_AddStringToObject(m, "unk_token", "[UNK]");
    cJSON_AddStringToObject(m, "continuing_subword_prefix", "##");
    cJSON_AddNumberToObject(m, "max_input_chars_per_word", 100);
    cJSON *vocab = cJSON_AddObjectToObject(m, "vocab");
    for (int i = 0; i < v->n; i++) cJSON_AddNumberToObject(vocab, v->text[i], i);
    VKI_TRY(write_json(c->out, "tokenizer.json", j));

    cJSON *tc = cJSON_CreateObject();
    cJSON_AddStringToObject(tc, "cls_token", "[CLS]");
    cJSON_AddBoolToObject(tc, "clean_up_tokenization_spaces", true);
    cJSON_AddBoolToObject(tc, "do_lower_case", true);
    cJSON_AddStringToObject(tc, "mask_token", "[MASK]");
    cJSON_AddNumberToObject(tc, "model_max_length", c->n_ctx);
    cJSON_AddStringToObject(tc, "pad_token", "[PAD]");
    cJSON_AddStringToObject(tc, "sep_token", "[SEP]");
    cJSON_AddNullToObject(tc, "strip_accents");
    cJSON_AddBoolToObject(tc, "tokenize_chinese_chars", true);
    cJSON_AddStringToObject(tc, "tokenizer_class", "BertTokenizer");
    cJSON_AddStringToObject(tc, "unk_token", "[UNK]");
    VKI_TRY(write_json(c->out, "tokenizer_config.json", tc));

    size_t len = 0;
    for (int i = 0; i < v->n; i++) len += strlen(v->text[i]) + 1;
    char *txt = malloc(len + 1), *p = txt;
    if (!txt) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "vkinfer-gen: out of memory for vocab.txt");
    for (int i = 0; i < v->n; i++) p += sprintf(p, "%s\n", v->text[i]);
    vki_status s = write_file(c->out, "vocab.txt", txt, len);
    free(txt);
    VKI_TRY(s);

    cJSON *mods = cJSON_CreateArray();
    static const char *const mod[][3] = {{"0", "", "sentence_transformers.models.Transformer"},
                                         {"1", "1_Pooling", "sentence_transformers.models.Pooling"}};
    for (int i = 0; i < 2; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "idx", i);
        cJSON_AddStringToObject(e, "name", mod[i][0]);
        cJSON_AddStringToObject(e, "path", mod[i][1]);
        cJSON_AddStringToObject(e, "type", mod[i][2]);
        cJSON_AddItemToArray(mods, e);
    }
    VKI_TRY(write_json(c->out, "modules.json", mods));
    char dir[4096];
    snprintf(dir, sizeof dir, "%.3000s/1_Pooling", c->out);
    VKI_TRY(make_dir(dir));
    cJSON *pool = cJSON_CreateObject();
    cJSON_AddNumberToObject(pool, "word_embedding_dimension", c->n_embd);
    static const char *const modes[] = {"pooling_mode_cls_token", "pooling_mode_mean_tokens",
                                        "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens",
                                        "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"};
    for (size_t i = 0; i < VKI_COUNT(modes); i++) cJSON_AddBoolToObject(pool, modes[i], i == 1);
    cJSON_AddBoolToObject(pool, "include_prompt", true);
    return write_json(dir, "config.json", pool);
}

/* ===== The folder ======================================================== */

vki_status hf_write_folder(const gen_cfg *c, const hf_tensor *t, int n_tensors, const gen_vocab *v)
{
    VKI_TRY(make_dir(c->out));
    VKI_TRY(write_json(c->out, "config.json", config_json(c, v->n)));
    VKI_TRY(write_weights(c, t, n_tensors));
    return !strcmp(c->arch, "bert") ? tokenizer_wpm(c, v) : tokenizer_spm(c, v);
}
