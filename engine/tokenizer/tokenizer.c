/*
 * tokenizer.c: the vki_tokenizer object: creation from model-file metadata,
 * encoding (special-token partitioning, then the family encoder), pieces,
 * whole and streaming detokenization.
 * Must not: know about backends or models.
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "util.h"
#include "tok_internal.h"

bool tok_grow(void **p, size_t *cap, size_t need)
{
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c);
    if (!q) return false;
    *p = q;
    *cap = c;
    return true;
}

vki_status tok_ids_push(tok_ids *l, int32_t id)
{
    if (l->n == l->cap) {
        if (l->cap > INT32_MAX / 2)
            return vki_fail(VKI_ERR_INVALID_ARGUMENT, "tokenizer: more than %d tokens", INT32_MAX / 2);
        int32_t cap = l->cap ? l->cap * 2 : 64;
        int32_t *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for %d ids", cap);
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = id;
    return VKI_OK;
}

/* ===== Create / destroy ================================================== */

void vki_tokenizer_destroy(vki_tokenizer *t)
{
    if (!t) return;
    for (int i = 0; i < t->n_re; i++) tok_regex_destroy(t->re[i]);
    tok_norm_free(t);
    tok_ugm_free(t->ugm);
    free(t->spm_pairs);
    free(t->text);
    free(t->tokens);
    free(t->hash);
    free(t->merges);
    free(t->eog);
    free(t->specials);
    free(t);
}

vki_status vki_tokenizer_create(const vki_model_file *f, vki_tokenizer **out)
{
    if (!out) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_tokenizer_create: out is NULL");
    *out = NULL;
    if (!f) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_tokenizer_create: model file is NULL");
    vki_str model;
    if (!vki_file_get_str(f, "tokenizer.ggml.model", &model))
        return vki_fail(VKI_ERR_BAD_FILE, "%s: no tokenizer.ggml.model: the file carries no tokenizer", vki_file_path(f));
    vki_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    vki_status st;
#define IS(s) (model.n == strlen(s) && memcmp(model.p, s, model.n) == 0)
    if (IS("llama")) t->kind = VKI_TOK_SPM;
    else if (IS("gpt2")) t->kind = VKI_TOK_BPE;
    else if (IS("bert")) t->kind = VKI_TOK_WPM;
    else if (IS("t5")) t->kind = VKI_TOK_UGM;
    else {
        st = vki_fail(VKI_ERR_UNSUPPORTED, "%s: tokenizer.ggml.model = '%.*s' is not supported (llama, gpt2, bert, t5 are)",
                      vki_file_path(f), (int)VKI_MIN(model.n, 64), model.p);
        goto fail;
    }
#undef IS
    st = tok_vocab_load(t, f, NULL);
    if (st != VKI_OK) goto fail;
    st = tok_norm_load(t, f);
    if (st != VKI_OK) goto fail;
    if (t->kind == VKI_TOK_SPM) {
        st = tok_spm_prepare(t);
        if (st != VKI_OK) goto fail;
    }
    if (t->kind == VKI_TOK_UGM) {
        st = tok_ugm_prepare(t, f);
        if (st != VKI_OK) goto fail;
    }
    if (t->kind == VKI_TOK_BPE) {
        st = tok_pre_select(t, f);
        if (st != VKI_OK) goto fail;
        /* llama-3 family models start with <|begin_of_text|> unless the
         * file says otherwise (llama.cpp's rule) */
        bool b;
        if (t->ignore_merges && !vki_file_get_bool(f, "tokenizer.ggml.add_bos_token", &b)) t->add_bos = true;
    }
    *out = t;
    return VKI_OK;
fail:
    vki_tokenizer_destroy(t);
    return st;
}

vki_tok_kind vki_tokenizer_kind(const vki_tokenizer *t) { return t->kind; }

const char *vki_tokenizer_kind_name(const vki_tokenizer *t)
{
    return t->kind == VKI_TOK_SPM ? "spm" : t->kind == VKI_TOK_BPE ? "bpe" : t->kind == VKI_TOK_UGM ? "ugm" : "wordpiece";
}

int32_t vki_tokenizer_n_vocab(const vki_tokenizer *t) { return t->n_vocab; }
int32_t vki_tokenizer_bos(const vki_tokenizer *t) { return t->bos; }
int32_t vki_tokenizer_eos(const vki_tokenizer *t) { return t->eos; }

bool vki_tokenizer_is_eog(const vki_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab && t->eog[id];
}

/* ===== Encode ============================================================ */

/* The longest special token starting at s[0..n), -1 when none. Control and
 * unknown tokens count only when parse_special; user-defined tokens always
 * do (HF added tokens that are not special; llama.cpp does the same). */
static int32_t special_at(const vki_tokenizer *t, const char *s, size_t n, bool parse_special)
{
    for (int32_t k = 0; k < t->n_specials; k++) {
        int32_t id = t->specials[k];
        const tok_entry *e = &t->tokens[id];
        if (e->len > n) continue;
        if (!parse_special && e->type != TOK_TYPE_USER_DEFINED) continue;
        if ((uint8_t)t->text[e->off] == (uint8_t)s[0] && memcmp(t->text + e->off, s, e->len) == 0) return id;
    }
    return -1;
}

static vki_status encode_run(const vki_tokenizer *t, const char *s, size_t n, bool prev_special, bool at_start,
                             tok_scratch *sc, tok_ids *out)
{
    /* UGM runs the charsmap before the HF steps: it normalizes itself */
    if (t->kind == VKI_TOK_UGM) return tok_ugm_encode(t, s, n, at_start, sc, out);
    /* HF normalizes each run between added tokens, then splits it */
    VKI_TRY(tok_normalize(t, s, n, sc, &s, &n));
    switch (t->kind) {
    case VKI_TOK_SPM: return tok_spm_encode(t, s, n, t->add_space_prefix && prev_special, out);
    case VKI_TOK_BPE: return tok_bpe_encode(t, s, n, sc, out);
    case VKI_TOK_WPM: return tok_wpm_encode(t, s, n, out);
    case VKI_TOK_UGM: break;
    }
    return vki_fail(VKI_ERR_INTERNAL, "tokenizer: bad kind %d", (int)t->kind);
}

/* Both encodes: parse_special everywhere outside the literal spans. */
static vki_status encode(const vki_tokenizer *t, const char *text, size_t len, bool add_special, bool parse_special,
                         const vki_text_span *literal, size_t n_literal, int32_t **ids, int32_t *n_ids)
{
    *ids = NULL;
    *n_ids = 0;
    tok_ids out = {0};
    tok_scratch sc = {0};
    vki_status st = VKI_OK;
    if (add_special && t->add_bos && t->bos >= 0) st = tok_ids_push(&out, t->bos);

    /* a first-byte filter keeps the special scan off most positions */
    uint8_t first[256] = {0};
    for (int32_t k = 0; k < t->n_specials; k++) {
        const tok_entry *e = &t->tokens[t->specials[k]];
        if (parse_special || e->type == TOK_TYPE_USER_DEFINED) first[(uint8_t)t->text[e->off]] = 1;
    }
    size_t run = 0, k = 0;
    bool prev_special = true; /* SPM: the text start counts as after a special */
    for (size_t i = 0; i < len && st == VKI_OK;) {
        /* A match must end where the region it starts in (literal or not) ends. */
        while (k < n_literal && literal[k].off + literal[k].len <= i) k++;
        bool in_lit = k < n_literal && literal[k].off <= i;
        size_t end = in_lit ? literal[k].off + literal[k].len : k < n_literal ? literal[k].off : len;
        int32_t sp = first[(uint8_t)text[i]] ? special_at(t, text + i, end - i, parse_special && !in_lit) : -1;
        if (sp < 0) { i++; continue; }
        if (run < i) {
            st = encode_run(t, text + run, i - run, prev_special, run == 0, &sc, &out);
            if (st != VKI_OK) break;
        }
        st = tok_ids_push(&out, sp);
        prev_special = true;
        i += t->tokens[sp].len;
        run = i;
    }
    if (st == VKI_OK && run < len) st = encode_run(t, text + run, len - run, prev_special, run == 0, &sc, &out);
    if (st == VKI_OK && add_special && t->add_eos && t->eos >= 0) st = tok_ids_push(&out, t->eos);
    tok_scratch_free(&sc);
    if (st != VKI_OK) {
        free(out.v);
        return st;
    }
    if (!out.v) { /* an empty result is still a valid, freeable array */
        out.v = malloc(sizeof *out.v);
        if (!out.v) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    }
    *ids = out.v;
    *n_ids = out.n;
    return VKI_OK;
}

vki_status vki_tokenizer_encode(const vki_tokenizer *t, const char *text, size_t len,
                                bool add_special, bool parse_special, int32_t **ids, int32_t *n_ids)
{
    if (!t || !ids || !n_ids || (!text && len))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_tokenizer_encode: NULL argument");
    return encode(t, text, len, add_special, parse_special, NULL, 0, ids, n_ids);
}

vki_status vki_tokenizer_encode_literal(const vki_tokenizer *t, const char *text, size_t len, bool add_special,
                                        const vki_text_span *literal, size_t n_literal, int32_t **ids,
                                        int32_t *n_ids)
{
    if (!t || !ids || !n_ids || (!text && len) || (!literal && n_literal))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_tokenizer_encode_literal: NULL argument");
    for (size_t k = 0; k < n_literal; k++)
        if (literal[k].off > len || literal[k].len > len - literal[k].off ||
            (k && literal[k].off < literal[k - 1].off + literal[k - 1].len))
            return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_tokenizer_encode_literal: span %zu [%zu, +%zu) is out of "
                            "order or past the text's %zu bytes", k, literal[k].off, literal[k].len, len);
    return encode(t, text, len, add_special, true, literal, n_literal, ids, n_ids);
}

/* ===== Pieces and detokenization ========================================= */

static int32_t copy_out(const char *s, int32_t n, char *buf, int32_t size)
{
    if (n > size) return -n;
    if (n) memcpy(buf, s, (size_t)n);
    return n;
}

int32_t vki_tokenizer_piece(const vki_tokenizer *t, int32_t id, char *buf, int32_t size, bool special)
{
    if (id < 0 || id >= t->n_vocab) return 0;
    const tok_entry *e = &t->tokens[id];
    const char *s = tok_text(t, id);
    char tmp[1024];
    if (e->type == TOK_TYPE_CONTROL || e->type == TOK_TYPE_UNKNOWN || e->type == TOK_TYPE_UNUSED) {
        if (!special) return 0;
        return copy_out(s, (int32_t)e->len, buf, size);
    }
    if (e->type == TOK_TYPE_USER_DEFINED) return copy_out(s, (int32_t)e->len, buf, size);
    if (t->kind == VKI_TOK_SPM || t->kind == VKI_TOK_UGM) {
        if (e->type == TOK_TYPE_BYTE && e->len == 6) {
            char b = (char)strtol(s + 3, NULL, 16);
            return copy_out(&b, 1, buf, size);
        }
    } else if (t->kind == VKI_TOK_BPE) {
        /* byte-level symbols back to bytes; anything else stays UTF-8 */
        int32_t k = 0;
        for (uint32_t i = 0; i < e->len;) {
            int l;
            uint32_t cp = uc_decode((const uint8_t *)s + i, e->len - i, &l);
            int b = cp == UC_INVALID ? -1 : tok_cp_to_byte(cp);
            if (k + 4 > (int32_t)sizeof tmp) break;
            if (b >= 0) tmp[k++] = (char)b;
            else { memcpy(tmp + k, s + i, (size_t)l); k += l; }
            i += (uint32_t)l;
        }
        return copy_out(tmp, k, buf, size);
    } else if (!t->wpm_phantom) {
        /* WordPiece: "##x" continues a word; any other piece starts one */
        if (e->len >= 2 && s[0] == '#' && s[1] == '#') return copy_out(s + 2, (int32_t)e->len - 2, buf, size);
        if (e->len + 1 > sizeof tmp) return copy_out(s, (int32_t)e->len, buf, size);
        tmp[0] = ' ';
        memcpy(tmp + 1, s, e->len);
        return copy_out(tmp, (int32_t)e->len + 1, buf, size);
    }
    /* SPM and UGM normal tokens and GGUF WordPiece: U+2581 -> ' ' */
    int32_t k = 0;
    for (uint32_t i = 0; i < e->len && k + 3 <= (int32_t)sizeof tmp;) {
        if (i + 3 <= e->len && memcmp(s + i, "\xe2\x96\x81", 3) == 0) { tmp[k++] = ' '; i += 3; }
        else tmp[k++] = s[i++];
    }
    return copy_out(tmp, k, buf, size);
}

/* SPM and WordPiece pieces carry the space before a word; the first word
 * of a text has none (SPM's dummy prefix, BERT's word start). */
static bool strips_first_space(const vki_tokenizer *t)
{
    return ((t->kind == VKI_TOK_SPM || t->kind == VKI_TOK_UGM) && t->add_space_prefix) || t->kind == VKI_TOK_WPM;
}

vki_status vki_tokenizer_decode(const vki_tokenizer *t, const int32_t *ids, int32_t n_ids, bool special,
                                char **out, size_t *out_len)
{
    *out = NULL;
    if (out_len) *out_len = 0;
    size_t cap = 64, n = 0;
    char *s = malloc(cap);
    if (!s) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    bool first = true;
    for (int32_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab) {
            free(s);
            return vki_fail(VKI_ERR_INVALID_ARGUMENT, "detokenize: id %d at position %d is outside the vocabulary (%d tokens)",
                            ids[i], i, t->n_vocab);
        }
        int32_t need = -vki_tokenizer_piece(t, ids[i], s, 0, special);
        if (!tok_grow((void **)&s, &cap, n + (size_t)need + 1)) {
            free(s);
            return vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
        }
        int32_t k = vki_tokenizer_piece(t, ids[i], s + n, need, special);
        if (k > 0 && first && strips_first_space(t) && s[n] == ' ') {
            memmove(s + n, s + n + 1, (size_t)k - 1);
            k--;
        }
        if (k > 0 || (k == 0 && need > 0 && !t->strip_while_empty)) first = false;
        n += (size_t)k;
    }
    s[n] = 0;
    *out = s;
    if (out_len) *out_len = n;
    return VKI_OK;
}

/* ===== Streaming detokenization ========================================== */

void vki_detok_init(vki_detok *d, const vki_tokenizer *tok)
{
    memset(d, 0, sizeof *d);
    d->tok = tok;
}

int32_t vki_detok_push(vki_detok *d, int32_t id, char *out, int32_t size)
{
    const vki_tokenizer *t = d->tok;
    int32_t need = -vki_tokenizer_piece(t, id, NULL, 0, false);
    if (need < 0) need = 0;
    char stack[512];
    char *buf = need + d->n_pending <= (int32_t)sizeof stack ? stack : malloc((size_t)(need + d->n_pending));
    if (!buf) return INT32_MIN;
    memcpy(buf, d->pending, (size_t)d->n_pending);
    int32_t k = vki_tokenizer_piece(t, id, buf + d->n_pending, need, false);
    if (k > 0 && d->n_pushed == 0 && strips_first_space(t) && buf[d->n_pending] == ' ') {
        memmove(buf + d->n_pending, buf + d->n_pending + 1, (size_t)k - 1);
        k--;
    }
    int32_t total = d->n_pending + k;
    /* the UTF-8 rule every printed text follows (engine/common/util.h) */
    int32_t hold = (int32_t)vki_utf8_incomplete_tail(buf, (size_t)total);
    int32_t emit = total - hold;
    if (emit > size) {
        if (buf != stack) free(buf);
        return -emit; /* state unchanged: the caller retries with room */
    }
    memcpy(out, buf, (size_t)emit);
    memcpy(d->pending, buf + emit, (size_t)hold);
    d->n_pending = hold;
    if (k > 0 || (need > 0 && !t->strip_while_empty)) d->n_pushed++;
    if (buf != stack) free(buf);
    return emit;
}

int32_t vki_detok_finish(vki_detok *d, char *out, int32_t size)
{
    /* an unfinished sequence at the end is not text: one U+FFFD for it */
    if (d->n_pending == 0) return 0;
    if (size < 3) return -3;
    memcpy(out, "\xef\xbf\xbd", 3);
    d->n_pending = 0;
    return 3;
}
