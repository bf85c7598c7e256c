/*
 * vocab.c: builds the vocabulary tables of a vki_tokenizer from GGUF
 * `tokenizer.ggml.*` metadata (the loader maps HF tokenizer.json onto the
 * same keys): token texts, scores, types, the text -> id hash, BPE merge
 * ranks, special ids and the add-BOS/EOS flags.
 * Must not: keep pointers into the model file (everything is copied).
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "util.h"
#include "tok_internal.h"

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static uint32_t hash_u64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (uint32_t)k;
}

int32_t tok_find(const vki_tokenizer *t, const char *s, size_t n)
{
    uint32_t mask = t->hash_cap - 1;
    for (uint32_t i = hash_bytes(s, n) & mask;; i = (i + 1) & mask) {
        int32_t id = t->hash[i];
        if (id < 0) return -1;
        if (t->tokens[id].len == n && memcmp(tok_text(t, id), s, n) == 0) return id;
    }
}

int32_t tok_merge_rank(const vki_tokenizer *t, int32_t left, int32_t right, int32_t *result)
{
    if (!t->merge_cap || left < 0 || right < 0) return -1;
    uint64_t key = ((uint64_t)(uint32_t)left << 32 | (uint32_t)right) + 1;
    uint32_t mask = t->merge_cap - 1;
    for (uint32_t i = hash_u64(key) & mask;; i = (i + 1) & mask) {
        if (t->merges[i].key == 0) return -1;
        if (t->merges[i].key == key) { *result = t->merges[i].result; return t->merges[i].rank; }
    }
}

static uint32_t pow2_at_least(uint64_t n)
{
    uint32_t c = 16;
    while (c < n && c < (1u << 30)) c <<= 1;
    return c;
}

/* Fetches an array key; NULL when absent. Fails when present with the wrong
 * element type. */
static vki_status get_array(const vki_model_file *f, const char *key, vki_kv_type elem,
                            const vki_kv **out)
{
    *out = NULL;
    const vki_kv *kv = vki_file_find_kv(f, key);
    if (!kv) return VKI_OK;
    if (kv->type != VKI_KV_ARRAY || kv->v.arr.elem != elem)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: tokenizer key '%s' has type %d (elements %d), expected an array of type %d",
                        vki_file_path(f), key, (int)kv->type,
                        kv->type == VKI_KV_ARRAY ? (int)kv->v.arr.elem : -1, (int)elem);
    *out = kv;
    return VKI_OK;
}

/* Reads an optional special id; -1 when absent; fails when out of range. */
static vki_status get_id(const vki_model_file *f, const char *key, int32_t n_vocab, bool strict,
                         int32_t *out)
{
    uint32_t v;
    if (!vki_file_get_u32(f, key, &v)) {
        int64_t i;
        if (!vki_file_get_i64(f, key, &i)) return VKI_OK; /* keep the family default */
        if (i < 0) { *out = -1; return VKI_OK; }
        v = (uint32_t)VKI_MIN(i, (int64_t)UINT32_MAX);
    }
    if (v >= (uint32_t)n_vocab) {
        /* some converters write ids past the vocabulary for tokens the
         * model never uses (padding); only BOS/EOS must be real */
        if (strict)
            return vki_fail(VKI_ERR_BAD_FILE, "%s: %s = %u is outside the vocabulary (%d tokens)",
                            vki_file_path(f), key, v, n_vocab);
        *out = -1;
        return VKI_OK;
    }
    *out = (int32_t)v;
    return VKI_OK;
}

static vki_status load_merges(vki_tokenizer *t, const vki_model_file *f)
{
    const vki_kv *m;
    VKI_TRY(get_array(f, "tokenizer.ggml.merges", VKI_KV_STRING, &m));
    if (!m) return vki_fail(VKI_ERR_BAD_FILE, "%s: BPE tokenizer without tokenizer.ggml.merges", vki_file_path(f));
    if (m->v.arr.n > (uint64_t)INT32_MAX / 2)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: %llu merges is too many", vki_file_path(f),
                        (unsigned long long)m->v.arr.n);
    t->merge_cap = pow2_at_least(m->v.arr.n * 2 + 1);
    t->merges = calloc(t->merge_cap, sizeof *t->merges);
    if (!t->merges) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for %llu merges",
                                    (unsigned long long)m->v.arr.n);
    char *tmp = NULL;
    size_t tmp_cap = 0;
    for (uint64_t r = 0; r < m->v.arr.n; r++) {
        vki_str s = m->v.arr.items[r].v.s;
        /* "left right": the separator is the first space after the first
         * byte, so a left part may itself be a space (llama.cpp's rule) */
        const char *sp = s.n > 1 ? memchr(s.p + 1, ' ', s.n - 1) : NULL;
        if (!sp) {
            free(tmp);
            return vki_fail(VKI_ERR_BAD_FILE, "%s: merge %llu ('%.*s') has no space separator",
                            vki_file_path(f), (unsigned long long)r, (int)VKI_MIN(s.n, 64), s.p);
        }
        size_t nl = (size_t)(sp - s.p), nr = s.n - nl - 1;
        int32_t l = tok_find(t, s.p, nl), rr = tok_find(t, sp + 1, nr);
        if (!tok_grow((void **)&tmp, &tmp_cap, nl + nr)) {
            free(tmp);
            return vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory reading merges");
        }
        memcpy(tmp, s.p, nl);
        memcpy(tmp + nl, sp + 1, nr);
        int32_t res = tok_find(t, tmp, nl + nr);
        /* a merge whose parts or result are not tokens can never apply
         * (HF refuses such files; llama.cpp ignores the merge) */
        if (l < 0 || rr < 0 || res < 0) continue;
        uint64_t key = ((uint64_t)(uint32_t)l << 32 | (uint32_t)rr) + 1;
        uint32_t mask = t->merge_cap - 1, i = hash_u64(key) & mask;
        while (t->merges[i].key != 0 && t->merges[i].key != key) i = (i + 1) & mask;
        if (t->merges[i].key == key) continue; /* the first (lowest) rank wins */
        t->merges[i] = (tok_merge){key, (int32_t)r, res};
        t->n_merges++;
    }
    free(tmp);
    return VKI_OK;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

vki_status tok_vocab_load(vki_tokenizer *t, const vki_model_file *f, const char *model)
{
    const char *path = vki_file_path(f);
    const vki_kv *toks, *scores, *types;
    VKI_TRY(get_array(f, "tokenizer.ggml.tokens", VKI_KV_STRING, &toks));
    if (!toks) return vki_fail(VKI_ERR_BAD_FILE, "%s: no tokenizer.ggml.tokens", path);
    VKI_TRY(get_array(f, "tokenizer.ggml.scores", VKI_KV_F32, &scores));
    VKI_TRY(get_array(f, "tokenizer.ggml.token_type", VKI_KV_I32, &types));
    uint64_t n = toks->v.arr.n;
    if (n == 0 || n > (uint64_t)INT32_MAX / 4)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: tokenizer.ggml.tokens has %llu entries", path, (unsigned long long)n);
    if (scores && scores->v.arr.n != n)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: tokenizer.ggml.scores has %llu entries, expected %llu",
                        path, (unsigned long long)scores->v.arr.n, (unsigned long long)n);
    if (types && types->v.arr.n != n)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: tokenizer.ggml.token_type has %llu entries, expected %llu",
                        path, (unsigned long long)types->v.arr.n, (unsigned long long)n);
    t->n_vocab = (int32_t)n;

    uint64_t bytes = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (toks->v.arr.items[i].v.s.n > UINT32_MAX / 2)
            return vki_fail(VKI_ERR_BAD_FILE, "%s: token %llu is too long", path, (unsigned long long)i);
        bytes += toks->v.arr.items[i].v.s.n + 1;
    }
    t->text = malloc(bytes);
    t->tokens = calloc(n, sizeof *t->tokens);
    t->hash_cap = pow2_at_least(n * 2);
    t->hash = malloc(t->hash_cap * sizeof *t->hash);
    t->eog = calloc(n, 1);
    if (!t->text || !t->tokens || !t->hash || !t->eog)
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for %llu tokens", (unsigned long long)n);
    memset(t->hash, 0xff, t->hash_cap * sizeof *t->hash);
    uint64_t off = 0;
    uint32_t mask = t->hash_cap - 1;
    for (uint64_t i = 0; i < n; i++) {
        vki_str s = toks->v.arr.items[i].v.s;
        memcpy(t->text + off, s.p, s.n);
        t->text[off + s.n] = 0;
        tok_entry *e = &t->tokens[i];
        e->off = (uint32_t)off;
        e->len = (uint32_t)s.n;
        e->score = scores ? (float)scores->v.arr.items[i].v.f : 0.0f;
        e->type = types ? (int32_t)types->v.arr.items[i].v.i : TOK_TYPE_NORMAL;
        off += s.n + 1;
        /* duplicates: the first id keeps the text (HF and llama.cpp agree) */
        uint32_t h = hash_bytes(s.p, s.n) & mask;
        bool dup = false;
        for (; t->hash[h] >= 0; h = (h + 1) & mask) {
            int32_t o = t->hash[h];
            if (t->tokens[o].len == s.n && memcmp(tok_text(t, o), s.p, s.n) == 0) { dup = true; break; }
        }
        if (!dup) t->hash[h] = (int32_t)i;
    }

    /* family defaults, then the file's keys */
    t->bos = t->eos = t->unk = t->pad = t->sep = t->cls = t->eot = t->eom = -1;
    if (t->kind == VKI_TOK_SPM) {
        t->bos = n > 1 ? 1 : -1;
        t->eos = n > 2 ? 2 : -1;
        t->unk = 0;
        t->add_bos = true;
        t->add_space_prefix = true;
    } else if (t->kind == VKI_TOK_WPM) {
        t->add_bos = t->add_eos = true;
        t->unk = tok_find(t, "[UNK]", 5);
        t->cls = tok_find(t, "[CLS]", 5);
        t->sep = tok_find(t, "[SEP]", 5);
        t->pad = tok_find(t, "[PAD]", 5);
    }
    VKI_TRY(get_id(f, "tokenizer.ggml.bos_token_id", t->n_vocab, true, &t->bos));
    VKI_TRY(get_id(f, "tokenizer.ggml.eos_token_id", t->n_vocab, true, &t->eos));
    VKI_TRY(get_id(f, "tokenizer.ggml.unknown_token_id", t->n_vocab, false, &t->unk));
    VKI_TRY(get_id(f, "tokenizer.ggml.padding_token_id", t->n_vocab, false, &t->pad));
    VKI_TRY(get_id(f, "tokenizer.ggml.seperator_token_id", t->n_vocab, false, &t->sep));
    VKI_TRY(get_id(f, "tokenizer.ggml.cls_token_id", t->n_vocab, false, &t->cls));
    VKI_TRY(get_id(f, "tokenizer.ggml.eot_token_id", t->n_vocab, false, &t->eot));
    VKI_TRY(get_id(f, "tokenizer.ggml.eom_token_id", t->n_vocab, false, &t->eom));
    if (t->kind == VKI_TOK_WPM) {
        /* BERT's BOS/EOS are its [CLS]/[SEP] */
        if (t->cls < 0) t->cls = t->bos;
        if (t->sep < 0) t->sep = t->eos;
        t->bos = t->cls;
        t->eos = t->sep;
    }
    bool b;
    if (vki_file_get_bool(f, "tokenizer.ggml.add_bos_token", &b)) t->add_bos = b;
    if (vki_file_get_bool(f, "tokenizer.ggml.add_eos_token", &b)) t->add_eos = b;
    if (vki_file_get_bool(f, "tokenizer.ggml.add_space_prefix", &b)) t->add_space_prefix = b;

    /* byte tokens */
    for (int i = 0; i < 256; i++) t->byte_id[i] = -1;
    for (int i = 0; i < 256; i++) {
        char buf[8];
        if (t->kind == VKI_TOK_SPM) {
            static const char hex[] = "0123456789ABCDEF";
            memcpy(buf, "<0x", 3);
            buf[3] = hex[i >> 4];
            buf[4] = hex[i & 15];
            buf[5] = '>';
            t->byte_id[i] = tok_find(t, buf, 6);
        } else if (t->kind == VKI_TOK_BPE) {
            t->byte_id[i] = tok_find(t, buf, (size_t)uc_encode(tok_byte_to_cp((uint8_t)i), buf));
        }
    }

    if (t->kind == VKI_TOK_BPE) VKI_TRY(load_merges(t, f));
    if (t->kind == VKI_TOK_WPM) {
        /* llama.cpp's converter stores BERT vocabularies with '▁' before
         * word-initial pieces and no "##" on continuations */
        t->wpm_phantom = tok_find(t, "##s", 3) < 0 && tok_find(t, "\xe2\x96\x81the", 6) >= 0;
        t->wpm_lowercase = true;
        bool lc;
        if (vki_file_get_bool(f, "tokenizer.ggml.lowercase", &lc)) t->wpm_lowercase = lc;
    }

    /* tokens that end generation: EOS/EOT/EOM and the end-of-turn markers
     * of the chat families (as llama.cpp detects them) */
    static const char *const eog_text[] = {
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>",
        "<|end_of_text|>", "<|eom_id|>", ("<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"),
    };
    for (size_t i = 0; i < VKI_COUNT(eog_text); i++) {
        int32_t id = tok_find(t, eog_text[i], strlen(eog_text[i]));
        if (id >= 0 && (t->tokens[id].type == TOK_TYPE_CONTROL || t->tokens[id].type == TOK_TYPE_USER_DEFINED))
            t->eog[id] = 1;
    }
    if (t->kind != VKI_TOK_WPM && t->eos >= 0) t->eog[t->eos] = 1;
    if (t->eot >= 0) t->eog[t->eot] = 1;
    if (t->eom >= 0) t->eog[t->eom] = 1;

    /* special tokens that can appear inside text, longest first (ties by
     * id); sorted as (~len, id) keys */
    uint64_t *keys = malloc(n * sizeof *keys);
    t->specials = malloc(n * sizeof *t->specials);
    if (!keys || !t->specials) {
        free(keys);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    }
    for (int32_t i = 0; i < t->n_vocab; i++) {
        int32_t ty = t->tokens[i].type;
        if (t->tokens[i].len > 0 &&
            (ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_USER_DEFINED || ty == TOK_TYPE_UNKNOWN))
            keys[t->n_specials++] = (uint64_t)(UINT32_MAX - t->tokens[i].len) << 32 | (uint32_t)i;
    }
    qsort(keys, (size_t)t->n_specials, sizeof *keys, cmp_u64);
    for (int32_t i = 0; i < t->n_specials; i++) t->specials[i] = (int32_t)(keys[i] & 0xffffffffu);
    free(keys);
    (void)model;
    return VKI_OK;
}
