/*
 * spm_convert.c: vkinfer-spm-convert reads a SentencePiece unigram model
 * (the ModelProto protobuf of a .model file) and writes what users load:
 * a vocabulary-only GGUF with the keys llama.cpp's converter writes for T5
 * (tokenizer.ggml.model = "t5") and/or a Hugging Face tokenizer.json in
 * the layouts transformers' converters produce (XLM-R, T5, older T5).
 * Development tool: the UGM test converts a public model with it.
 * Must not: guess; a field it cannot represent is refused with a message.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "loader/gguf.h"
#include "util.h"

/* ===== ModelProto ======================================================== */

/* Field numbers from sentencepiece_model.proto. */
enum {
    MP_PIECES = 1, MP_TRAINER = 2, MP_NORMALIZER = 3,
    SP_PIECE = 1, SP_SCORE = 2, SP_TYPE = 3,
    TS_MODEL_TYPE = 3, TS_WS_SUFFIX = 24, TS_BYTE_FALLBACK = 35,
    TS_UNK_ID = 40, TS_BOS_ID = 41, TS_EOS_ID = 42, TS_PAD_ID = 43,
    NS_NAME = 1, NS_CHARSMAP = 2, NS_DUMMY_PREFIX = 3, NS_REMOVE_WS = 4, NS_ESCAPE_WS = 5,
};

/* piece types, numbered as in the proto and in GGUF */
enum { PT_NORMAL = 1, PT_UNKNOWN = 2, PT_CONTROL = 3, PT_USER_DEFINED = 4, PT_UNUSED = 5, PT_BYTE = 6 };

typedef struct spm_piece { char *text; float score; int32_t type; } spm_piece;

typedef struct spm_model {
    spm_piece *pieces;
    int32_t    n_pieces, cap;
    int64_t    model_type;                    /* 1 unigram, 2 BPE, 3 word, 4 char */
    bool       byte_fallback, ws_suffix;
    int64_t    unk_id, bos_id, eos_id, pad_id;
    uint8_t   *charsmap;
    size_t     n_charsmap;
    bool       add_dummy_prefix, remove_extra_ws, escape_ws;
} spm_model;

typedef struct pb { const uint8_t *p, *end; const char *path; } pb;

static bool pb_varint(pb *r, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && r->p < r->end; shift += 7) {
        uint8_t b = *r->p++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return true;
    }
    return false;
}

/* Reads one field header and, for length-delimited fields, the sub-range. */
static vki_status pb_field(pb *r, uint32_t *field, uint32_t *wire, uint64_t *val, pb *sub)
{
    uint64_t key;
    size_t at = 0;
    if (!pb_varint(r, &key)) goto bad;
    *field = (uint32_t)(key >> 3);
    *wire = (uint32_t)(key & 7);
    switch (*wire) {
    case 0: if (!pb_varint(r, val)) goto bad; return VKI_OK;
    case 1: if (r->end - r->p < 8) goto bad; memcpy(val, r->p, 8); r->p += 8; return VKI_OK;
    case 5: {
        uint32_t x;
        if (r->end - r->p < 4) goto bad;
        memcpy(&x, r->p, 4);
        r->p += 4;
        *val = x;
        return VKI_OK;
    }
    case 2:
        if (!pb_varint(r, val) || *val > (uint64_t)(r->end - r->p)) goto bad;
        *sub = (pb){r->p, r->p + *val, r->path};
        r->p += *val;
        return VKI_OK;
    }
bad:
    at = (size_t)(r->end - r->p);
    return vki_fail(VKI_ERR_BAD_FILE, "%s: malformed protobuf (field %u, wire type %u, %zu bytes left): not a "
                    "SentencePiece model", r->path, *field, *wire, at);
}

static vki_status read_piece(spm_model *m, pb r)
{
    if (m->n_pieces == m->cap) {
        int32_t cap = m->cap ? m->cap * 2 : 1024;
        spm_piece *p = realloc(m->pieces, (size_t)cap * sizeof *p);
        if (!p) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory for %d pieces", r.path, cap);
        m->pieces = p;
        m->cap = cap;
    }
    spm_piece *sp = &m->pieces[m->n_pieces];
    *sp = (spm_piece){NULL, 0.0f, PT_NORMAL};
    while (r.p < r.end) {
        uint32_t f, w;
        uint64_t v;
        pb sub;
        VKI_TRY(pb_field(&r, &f, &w, &v, &sub));
        if (f == SP_PIECE && w == 2) {
            free(sp->text);
            sp->text = malloc(v + 1);
            if (!sp->text) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", r.path);
            memcpy(sp->text, sub.p, v);
            sp->text[v] = 0;
            if (strlen(sp->text) != v)
                return vki_fail(VKI_ERR_UNSUPPORTED, "%s: piece %d holds a NUL byte", r.path, m->n_pieces);
        } else if (f == SP_SCORE && w == 5) {
            uint32_t bits = (uint32_t)v;
            memcpy(&sp->score, &bits, 4);
        } else if (f == SP_TYPE && w == 0) {
            sp->type = (int32_t)v;
        }
    }
    if (!sp->text) return vki_fail(VKI_ERR_BAD_FILE, "%s: piece %d has no text", r.path, m->n_pieces);
    if (sp->type < PT_NORMAL || sp->type > PT_BYTE)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: piece %d ('%.40s') has type %d, expected 1..6", r.path, m->n_pieces,
                        sp->text, sp->type);
    m->n_pieces++;
    return VKI_OK;
}

static vki_status read_trainer(spm_model *m, pb r)
{
    while (r.p < r.end) {
        uint32_t f, w;
        uint64_t v;
        pb sub;
        VKI_TRY(pb_field(&r, &f, &w, &v, &sub));
        if (w != 0) continue;
        /* int32 fields are sign-extended to 64 bits on the wire */
        switch (f) {
        case TS_MODEL_TYPE: m->model_type = (int64_t)v; break;
        case TS_WS_SUFFIX: m->ws_suffix = v != 0; break;
        case TS_BYTE_FALLBACK: m->byte_fallback = v != 0; break;
        case TS_UNK_ID: m->unk_id = (int32_t)v; break;
        case TS_BOS_ID: m->bos_id = (int32_t)v; break;
        case TS_EOS_ID: m->eos_id = (int32_t)v; break;
        case TS_PAD_ID: m->pad_id = (int32_t)v; break;
        }
    }
    return VKI_OK;
}

static vki_status read_normalizer(spm_model *m, pb r)
{
    while (r.p < r.end) {
        uint32_t f, w;
        uint64_t v;
        pb sub;
        VKI_TRY(pb_field(&r, &f, &w, &v, &sub));
        if (f == NS_CHARSMAP && w == 2) {
            free(m->charsmap);
            m->charsmap = malloc(v ? v : 1);
            if (!m->charsmap) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", r.path);
            memcpy(m->charsmap, sub.p, v);
            m->n_charsmap = v;
        } else if (w == 0 && f == NS_DUMMY_PREFIX) m->add_dummy_prefix = v != 0;
        else if (w == 0 && f == NS_REMOVE_WS) m->remove_extra_ws = v != 0;
        else if (w == 0 && f == NS_ESCAPE_WS) m->escape_ws = v != 0;
    }
    return VKI_OK;
}

static void model_free(spm_model *m)
{
    for (int32_t i = 0; i < m->n_pieces; i++) free(m->pieces[i].text);
    free(m->pieces);
    free(m->charsmap);
    memset(m, 0, sizeof *m);
}

static vki_status model_read(const char *path, spm_model *m)
{
    /* proto2 defaults of the fields we read */
    *m = (spm_model){.model_type = 1, .unk_id = 0, .bos_id = 1, .eos_id = 2, .pad_id = -1,
                     .add_dummy_prefix = true, .remove_extra_ws = true, .escape_ws = true};
    FILE *fp = fopen(path, "rb");
    if (!fp) return vki_fail(VKI_ERR_NOT_FOUND, "%s: cannot open (%s)", path, strerror(errno));
    uint8_t *data = NULL;
    size_t n = 0, cap = 0;
    vki_status s = VKI_OK;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1 << 20;
            uint8_t *d = realloc(data, cap);
            if (!d) { s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", path); goto done; }
            data = d;
        }
        size_t k = fread(data + n, 1, cap - n, fp);
        n += k;
        if (k == 0) break;
    }
    pb r = {data, data + n, path};
    while (r.p < r.end && s == VKI_OK) {
        uint32_t f, w;
        uint64_t v;
        pb sub;
        if ((s = pb_field(&r, &f, &w, &v, &sub)) != VKI_OK) break;
        if (w != 2) continue;
        if (f == MP_PIECES) s = read_piece(m, sub);
        else if (f == MP_TRAINER) s = read_trainer(m, sub);
        else if (f == MP_NORMALIZER) s = read_normalizer(m, sub);
    }
    if (s == VKI_OK && m->n_pieces == 0) s = vki_fail(VKI_ERR_BAD_FILE, "%s: no pieces: not a SentencePiece model", path);
    if (s == VKI_OK && m->model_type != 1)
        s = vki_fail(VKI_ERR_UNSUPPORTED, "%s: model_type %lld; only unigram (1) models are converted", path,
                     (long long)m->model_type);
    if (s == VKI_OK && m->ws_suffix)
        s = vki_fail(VKI_ERR_UNSUPPORTED, "%s: treat_whitespace_as_suffix is not supported", path);
    if (s == VKI_OK && (m->unk_id < 0 || m->unk_id >= m->n_pieces || m->pieces[m->unk_id].type != PT_UNKNOWN))
        s = vki_fail(VKI_ERR_BAD_FILE, "%s: unk_id %lld is not an unknown piece", path, (long long)m->unk_id);
done:
    fclose(fp);
    free(data);
    return s;
}

static vki_status add_piece(spm_model *m, const char *text, int32_t type)
{
    if (m->n_pieces == m->cap) {
        int32_t cap = m->cap * 2 + 16;
        spm_piece *p = realloc(m->pieces, (size_t)cap * sizeof *p);
        if (!p) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "out of memory");
        m->pieces = p;
        m->cap = cap;
    }
    char *t = strdup(text);
    if (!t) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "out of memory");
    m->pieces[m->n_pieces++] = (spm_piece){t, 0.0f, type};
    return VKI_OK;
}

/* ===== GGUF ============================================================== */

static vki_status write_gguf(const spm_model *m, const char *out)
{
    gguf_writer *w = gguf_writer_create(GGUF_DEFAULT_ALIGNMENT);
    const char **texts = malloc((size_t)m->n_pieces * sizeof *texts);
    float *scores = malloc((size_t)m->n_pieces * sizeof *scores);
    int32_t *types = malloc((size_t)m->n_pieces * sizeof *types);
    vki_kv cm = {.key = {"tokenizer.ggml.precompiled_charsmap", strlen("tokenizer.ggml.precompiled_charsmap")},
                 .type = VKI_KV_ARRAY};
    cm.v.arr.elem = VKI_KV_U8;
    cm.v.arr.n = m->n_charsmap;
    cm.v.arr.items = calloc(m->n_charsmap ? m->n_charsmap : 1, sizeof(vki_kv));
    vki_status s = VKI_OK;
    if (!w || !texts || !scores || !types || !cm.v.arr.items) {
        s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    for (int32_t i = 0; i < m->n_pieces; i++) {
        texts[i] = m->pieces[i].text;
        scores[i] = m->pieces[i].score;
        types[i] = m->pieces[i].type;
    }
    for (size_t i = 0; i < m->n_charsmap; i++) cm.v.arr.items[i] = (vki_kv){.type = VKI_KV_U8, .v.u = m->charsmap[i]};
    /* the keys and defaults of llama.cpp's T5 conversion: no BOS, EOS added */
    if ((s = gguf_write_str(w, "general.name", "SentencePiece unigram vocabulary")) != VKI_OK ||
        (s = gguf_write_str(w, "tokenizer.ggml.model", "t5")) != VKI_OK ||
        (s = gguf_write_str(w, "tokenizer.ggml.pre", "default")) != VKI_OK ||
        (s = gguf_write_arr_str(w, "tokenizer.ggml.tokens", texts, (uint64_t)m->n_pieces)) != VKI_OK ||
        (s = gguf_write_arr_f32(w, "tokenizer.ggml.scores", scores, (uint64_t)m->n_pieces)) != VKI_OK ||
        (s = gguf_write_arr_i32(w, "tokenizer.ggml.token_type", types, (uint64_t)m->n_pieces)) != VKI_OK ||
        (s = gguf_write_bool(w, "tokenizer.ggml.add_space_prefix", m->add_dummy_prefix)) != VKI_OK ||
        (s = gguf_write_bool(w, "tokenizer.ggml.remove_extra_whitespaces", m->remove_extra_ws)) != VKI_OK)
        goto done;
    if (m->n_charsmap && (s = gguf_write_kv(w, &cm)) != VKI_OK) goto done;
    static const char *const id_keys[] = {"tokenizer.ggml.unknown_token_id", "tokenizer.ggml.bos_token_id",
                                          "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id"};
    const int64_t ids[] = {m->unk_id, m->bos_id, m->eos_id, m->pad_id};
    for (int i = 0; i < 4; i++)
        if (ids[i] >= 0 && ids[i] < m->n_pieces && (s = gguf_write_u32(w, id_keys[i], (uint32_t)ids[i])) != VKI_OK)
            goto done;
    if ((s = gguf_write_bool(w, "tokenizer.ggml.add_bos_token", false)) != VKI_OK ||
        (s = gguf_write_bool(w, "tokenizer.ggml.add_eos_token", m->eos_id >= 0)) != VKI_OK)
        goto done;
    s = gguf_writer_save(w, out);
done:
    free(cm.v.arr.items);
    free(texts);
    free(scores);
    free(types);
    gguf_writer_destroy(w);
    return s;
}

/* ===== tokenizer.json ==================================================== */

typedef enum hf_style { STYLE_XLMR, STYLE_T5, STYLE_T5_LEGACY } hf_style;

static char *base64(const uint8_t *p, size_t n)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc((n + 2) / 3 * 4 + 1), *q = o;
    if (!o) return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        *q++ = al[v >> 18];
        *q++ = al[(v >> 12) & 63];
        *q++ = i + 1 < n ? al[(v >> 6) & 63] : '=';
        *q++ = i + 2 < n ? al[v & 63] : '=';
    }
    *q = 0;
    return o;
}

static cJSON *jobj(const char *type)
{
    cJSON *o = cJSON_CreateObject();
    if (o && type) cJSON_AddStringToObject(o, "type", type);
    return o;
}

static cJSON *metaspace(const char *type)
{
    cJSON *o = jobj(type);
    cJSON_AddStringToObject(o, "replacement", "\xe2\x96\x81");
    cJSON_AddStringToObject(o, "prepend_scheme", "always");
    cJSON_AddBoolToObject(o, "split", true);
    return o;
}

static cJSON *regex_replace(const char *rx, const char *content)
{
    cJSON *o = jobj("Replace");
    cJSON *pat = cJSON_AddObjectToObject(o, "pattern");
    cJSON_AddStringToObject(pat, "Regex", rx);
    cJSON_AddStringToObject(o, "content", content);
    return o;
}

static void add_token(cJSON *added, int64_t id, const char *text, bool special)
{
    cJSON *t = cJSON_CreateObject();
    cJSON_AddNumberToObject(t, "id", (double)id);
    cJSON_AddStringToObject(t, "content", text);
    cJSON_AddBoolToObject(t, "single_word", false);
    cJSON_AddBoolToObject(t, "lstrip", false);
    cJSON_AddBoolToObject(t, "rstrip", false);
    cJSON_AddBoolToObject(t, "normalized", false);
    cJSON_AddBoolToObject(t, "special", special);
    cJSON_AddItemToArray(added, t);
}

static vki_status write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "wb");
    if (!fp) return vki_fail(VKI_ERR_NOT_FOUND, "%s: cannot create (%s)", path, strerror(errno));
    size_t n = strlen(text);
    bool ok = fwrite(text, 1, n, fp) == n;
    ok = fclose(fp) == 0 && ok;
    return ok ? VKI_OK : vki_fail(VKI_ERR_INTERNAL, "%s: write failed (%s)", path, strerror(errno));
}

/* The tokenizer.json transformers' converters write for this model:
 *   xlmr: XLMRobertaConverter (bge-m3, multilingual-e5): <s> <pad> </s> <unk>,
 *         then pieces[3:], then <mask>; Precompiled + Replace(" {2,}" -> " ");
 *         Metaspace; <s> $A </s>.
 *   t5:   SpmConverter as T5Converter uses it today: pieces as they are;
 *         Precompiled + Strip(right) + Replace(" {2,}" -> "▁"); Metaspace;
 *         $A </s>.
 *   t5-legacy: the older T5 files: Precompiled; WhitespaceSplit + Metaspace. */
static vki_status write_hf(const spm_model *m, const char *dir, hf_style style)
{
    const bool xlmr = style == STYLE_XLMR;
    if (xlmr && (m->n_pieces < 3 || m->unk_id != 0 || m->bos_id != 1 || m->eos_id != 2))
        return vki_fail(VKI_ERR_UNSUPPORTED, "the xlmr layout needs <unk> <s> </s> as pieces 0, 1, 2");
    cJSON *root = cJSON_CreateObject(), *cfg = cJSON_CreateObject();
    char *b64 = base64(m->charsmap, m->n_charsmap), *text = NULL, *cfg_text = NULL;
    vki_status s = VKI_OK;
    if (!root || !cfg || !b64) {
        s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    cJSON *vocab = cJSON_CreateArray();
    const int64_t shift = xlmr ? 1 : 0; /* fairseq's ids: pieces[3:] move up by one */
    const char *eos = m->eos_id >= 0 ? m->pieces[m->eos_id].text : NULL;
    const char *bos = m->bos_id >= 0 ? m->pieces[m->bos_id].text : NULL;
    if (xlmr) {
        static const char *const head[] = {"<s>", "<pad>", "</s>", "<unk>"};
        for (int i = 0; i < 4; i++) {
            cJSON *e = cJSON_CreateArray();
            cJSON_AddItemToArray(e, cJSON_CreateString(head[i]));
            cJSON_AddItemToArray(e, cJSON_CreateNumber(0.0));
            cJSON_AddItemToArray(vocab, e);
            add_token(added, i, head[i], true);
        }
        bos = "<s>";
        eos = "</s>";
    }
    for (int32_t i = xlmr ? 3 : 0; i < m->n_pieces; i++) {
        const spm_piece *p = &m->pieces[i];
        cJSON *e = cJSON_CreateArray();
        cJSON_AddItemToArray(e, cJSON_CreateString(p->text));
        cJSON_AddItemToArray(e, cJSON_CreateNumber((double)p->score));
        cJSON_AddItemToArray(vocab, e);
        /* control and unknown pieces are special added tokens, user-defined
         * ones plain added tokens (SpmConverter.tokenizer) */
        if (p->type == PT_CONTROL || p->type == PT_UNKNOWN || p->type == PT_USER_DEFINED)
            add_token(added, i + shift, p->text, p->type != PT_USER_DEFINED);
    }
    int64_t n_vocab = m->n_pieces + shift;
    if (xlmr) {
        cJSON *e = cJSON_CreateArray();
        cJSON_AddItemToArray(e, cJSON_CreateString("<mask>"));
        cJSON_AddItemToArray(e, cJSON_CreateNumber(0.0));
        cJSON_AddItemToArray(vocab, e);
        add_token(added, n_vocab++, "<mask>", true);
    }

    cJSON *norm = jobj("Sequence"), *list = cJSON_AddArrayToObject(norm, "normalizers");
    cJSON *pc = jobj("Precompiled");
    cJSON_AddStringToObject(pc, "precompiled_charsmap", b64);
    cJSON_AddItemToArray(list, pc);
    if (style == STYLE_T5) {
        cJSON *st = jobj("Strip");
        cJSON_AddBoolToObject(st, "strip_left", false);
        cJSON_AddBoolToObject(st, "strip_right", true);
        cJSON_AddItemToArray(list, st);
        cJSON_AddItemToArray(list, regex_replace(" {2,}", "\xe2\x96\x81"));
    } else if (xlmr) {
        cJSON_AddItemToArray(list, regex_replace(" {2,}", " "));
    }
    if (!m->remove_extra_ws || !m->add_dummy_prefix || !m->escape_ws) {
        s = vki_fail(VKI_ERR_UNSUPPORTED, "the HF layouts assume remove_extra_whitespaces, add_dummy_prefix and "
                     "escape_whitespaces (this model has %d, %d, %d)", m->remove_extra_ws, m->add_dummy_prefix,
                     m->escape_ws);
        cJSON_Delete(norm);
        cJSON_Delete(vocab);
        goto done;
    }
    cJSON_AddItemToObject(root, "normalizer", norm);
    if (style == STYLE_T5_LEGACY) {
        cJSON *pre = jobj("Sequence"), *pl = cJSON_AddArrayToObject(pre, "pretokenizers");
        cJSON_AddItemToArray(pl, jobj("WhitespaceSplit"));
        cJSON_AddItemToArray(pl, metaspace("Metaspace"));
        cJSON_AddItemToObject(root, "pre_tokenizer", pre);
    } else {
        cJSON_AddItemToObject(root, "pre_tokenizer", metaspace("Metaspace"));
    }
    /* single "[<s>] $A </s>", pair "[<s>] $A </s> [</s>] $B </s>" */
    cJSON *post = jobj("TemplateProcessing");
    cJSON *single = cJSON_AddArrayToObject(post, "single"), *pair = cJSON_AddArrayToObject(post, "pair");
    cJSON *specials = cJSON_AddObjectToObject(post, "special_tokens");
    const char *seq[] = {xlmr ? bos : NULL, "$A", eos, xlmr ? eos : NULL, "$B", eos};
    for (int i = 0; i < 6; i++) {
        if (!seq[i]) continue;
        cJSON *item = cJSON_CreateObject(), *in = NULL;
        if (seq[i][0] == '$') {
            in = cJSON_AddObjectToObject(item, "Sequence");
            cJSON_AddStringToObject(in, "id", seq[i] + 1);
        } else {
            in = cJSON_AddObjectToObject(item, "SpecialToken");
            cJSON_AddStringToObject(in, "id", seq[i]);
            if (!cJSON_GetObjectItemCaseSensitive(specials, seq[i])) {
                cJSON *st = cJSON_AddObjectToObject(specials, seq[i]);
                cJSON_AddStringToObject(st, "id", seq[i]);
                cJSON *ids = cJSON_AddArrayToObject(st, "ids");
                int64_t id = i == 0 ? 0 : xlmr ? 2 : m->eos_id;
                cJSON_AddItemToArray(ids, cJSON_CreateNumber((double)id));
                cJSON *toks = cJSON_AddArrayToObject(st, "tokens");
                cJSON_AddItemToArray(toks, cJSON_CreateString(seq[i]));
            }
        }
        cJSON_AddNumberToObject(in, "type_id", i < 3 ? 0 : 1);
        if (i < 3) cJSON_AddItemToArray(single, cJSON_Duplicate(item, true));
        cJSON_AddItemToArray(pair, item);
    }
    cJSON_AddItemToObject(root, "post_processor", post);
    if (m->byte_fallback) {
        cJSON *dec = jobj("Sequence"), *dl = cJSON_AddArrayToObject(dec, "decoders");
        cJSON *rep = jobj("Replace");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(rep, "pattern"), "String", "\xe2\x96\x81");
        cJSON_AddStringToObject(rep, "content", " ");
        cJSON_AddItemToArray(dl, rep);
        cJSON_AddItemToArray(dl, jobj("ByteFallback"));
        cJSON_AddItemToArray(dl, jobj("Fuse"));
        cJSON *st = jobj("Strip");
        cJSON_AddStringToObject(st, "content", " ");
        cJSON_AddNumberToObject(st, "start", 1);
        cJSON_AddNumberToObject(st, "stop", 0);
        cJSON_AddItemToArray(dl, st);
        cJSON_AddItemToObject(root, "decoder", dec);
    } else {
        cJSON_AddItemToObject(root, "decoder", metaspace("Metaspace"));
    }
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "Unigram");
    cJSON_AddNumberToObject(model, "unk_id", (double)(xlmr ? 3 : m->unk_id));
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddBoolToObject(model, "byte_fallback", m->byte_fallback);

    /* tokenizer_config.json names the special tokens */
    cJSON_AddStringToObject(cfg, "unk_token", xlmr ? "<unk>" : m->pieces[m->unk_id].text);
    if (xlmr) {
        cJSON_AddStringToObject(cfg, "bos_token", "<s>");
        cJSON_AddStringToObject(cfg, "pad_token", "<pad>");
        cJSON_AddStringToObject(cfg, "mask_token", "<mask>");
    } else if (m->pad_id >= 0 && m->pad_id < m->n_pieces) {
        cJSON_AddStringToObject(cfg, "pad_token", m->pieces[m->pad_id].text);
    }
    if (eos) cJSON_AddStringToObject(cfg, "eos_token", eos);

    text = cJSON_PrintUnformatted(root);
    cfg_text = cJSON_Print(cfg);
    if (!text || !cfg_text) {
        s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    mkdir(dir, 0777);
    char path[4096];
    snprintf(path, sizeof path, "%.4000s/tokenizer.json", dir);
    if ((s = write_text(path, text)) != VKI_OK) goto done;
    snprintf(path, sizeof path, "%.4000s/tokenizer_config.json", dir);
    s = write_text(path, cfg_text);
done:
    free(text);
    free(cfg_text);
    free(b64);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    return s;
}

/* ===== main ============================================================== */

static int usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s MODEL.model [--gguf OUT.gguf] [--hf DIR [--style xlmr|t5|t5-legacy]]\n"
            "          [--byte-fallback] [--user-defined PIECE]...\n"
            "  --gguf           vocabulary-only GGUF, tokenizer.ggml.model = \"t5\" (llama.cpp's keys)\n"
            "  --hf             DIR/tokenizer.json + tokenizer_config.json as transformers converts:\n"
            "                   xlmr (bge-m3, multilingual-e5; default), t5, t5-legacy\n"
            "  --byte-fallback  append <0x00>..<0xFF> byte pieces and turn byte fallback on\n"
            "  --user-defined   append a user-defined piece (repeatable)\n",
            argv0);
    return 2;
}

int main(int argc, char **argv)
{
    const char *in = NULL, *gguf = NULL, *hf = NULL;
    hf_style style = STYLE_XLMR;
    bool byte_fallback = false;
    const char *user[64];
    int n_user = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--gguf") && i + 1 < argc) gguf = argv[++i];
        else if (!strcmp(argv[i], "--hf") && i + 1 < argc) hf = argv[++i];
        else if (!strcmp(argv[i], "--style") && i + 1 < argc) {
            const char *v = argv[++i];
            if (!strcmp(v, "xlmr")) style = STYLE_XLMR;
            else if (!strcmp(v, "t5")) style = STYLE_T5;
            else if (!strcmp(v, "t5-legacy")) style = STYLE_T5_LEGACY;
            else return usage(argv[0]);
        } else if (!strcmp(argv[i], "--byte-fallback")) byte_fallback = true;
        else if (!strcmp(argv[i], "--user-defined") && i + 1 < argc && n_user < 64) user[n_user++] = argv[++i];
        else if (argv[i][0] != '-' && !in) in = argv[i];
        else return usage(argv[0]);
    }
    if (!in || (!gguf && !hf)) return usage(argv[0]);
    spm_model m;
    vki_status s = model_read(in, &m);
    for (int i = 0; s == VKI_OK && i < n_user; i++) s = add_piece(&m, user[i], PT_USER_DEFINED);
    if (s == VKI_OK && byte_fallback) {
        for (int b = 0; s == VKI_OK && b < 256; b++) {
            char t[8];
            snprintf(t, sizeof t, "<0x%02X>", b);
            s = add_piece(&m, t, PT_BYTE);
        }
        m.byte_fallback = true;
    }
    if (s == VKI_OK && gguf) s = write_gguf(&m, gguf);
    if (s == VKI_OK && hf) s = write_hf(&m, hf, style);
    if (s != VKI_OK) fprintf(stderr, "vkinfer-spm-convert: %s: %s\n", vki_status_str(s), vki_last_error());
    else fprintf(stderr, "vkinfer-spm-convert: %s: %d pieces, charsmap %zu bytes\n", in, m.n_pieces, m.n_charsmap);
    model_free(&m);
    return s == VKI_OK ? 0 : 1;
}
