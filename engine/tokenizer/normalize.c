/*
 * normalize.c: Unicode normalization forms (NFD, NFC, NFKD, NFKC per UAX #15,
 * over the Unicode 14 tables in unicode_tables.c) and the Hugging Face
 * normalizer steps a tokenizer.json may ask for, read from
 * `tokenizer.hf.normalizer` and applied to each run of text before the
 * family encoder. Must not: accept a step it does not implement.
 *
 * tokenizer.hf.normalizer is an array of strings, one step each, fields
 * separated by U+001F: "NFD", "NFC", "NFKD", "NFKC", "Lowercase",
 * "StripAccents", "Strip\x1f<0|1 left>\x1f<0|1 right>",
 * "Replace\x1f<literal pattern>\x1f<content>", "Prepend\x1f<text>".
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "util.h"
#include "tok_internal.h"

/* ===== Normalization forms =============================================== */

static bool grow_cps(uint32_t **v, size_t *cap, size_t need)
{
    if (need > SIZE_MAX / sizeof(uint32_t)) return false;
    size_t bytes = *cap * sizeof(uint32_t);
    void *p = *v;
    if (!tok_grow(&p, &bytes, need * sizeof(uint32_t))) return false;
    *v = p;
    *cap = bytes / sizeof(uint32_t);
    return true;
}

/* Stable sort of a run of non-starters by combining class. Runs are short in
 * real text (insertion sort); a hostile run of alternating classes would be
 * quadratic, so long runs take a counting sort (stable, linear). */
static bool order_run(uint32_t *v, size_t n)
{
    if (n < 2) return true;
    if (n <= 32) {
        for (size_t i = 1; i < n; i++) {
            uint32_t c = v[i];
            uint8_t k = uc_ccc(c);
            size_t j = i;
            while (j > 0 && uc_ccc(v[j - 1]) > k) { v[j] = v[j - 1]; j--; }
            v[j] = c;
        }
        return true;
    }
    uint32_t *tmp = malloc(n * sizeof *tmp);
    if (!tmp) return false;
    size_t count[257] = {0};
    for (size_t i = 0; i < n; i++) count[uc_ccc(v[i]) + 1]++;
    for (int c = 1; c <= 256; c++) count[c] += count[c - 1];
    for (size_t i = 0; i < n; i++) tmp[count[uc_ccc(v[i])]++] = v[i];
    memcpy(v, tmp, n * sizeof *tmp);
    free(tmp);
    return true;
}

/* Canonical composition in place (UAX #15 section 1.3, with the blocking
 * rule: a mark composes with the last starter unless a character of the
 * same or higher class, or any starter, lies between them). */
static size_t compose(uint32_t *v, size_t n)
{
    if (n == 0) return 0;
    size_t starter = 0, k = 1;
    /* a text that opens with a non-starter has no starter to compose into */
    int last = uc_ccc(v[0]) ? 256 : 0;
    for (size_t i = 1; i < n; i++) {
        uint32_t c = v[i];
        int cc = uc_ccc(c);
        uint32_t comp = (last < cc || last == 0) ? uc_compose(v[starter], c) : 0;
        if (comp) {
            v[starter] = comp;
            continue;
        }
        if (cc == 0) starter = k;
        last = cc;
        v[k++] = c;
    }
    return k;
}

vki_status tok_normalize_cps(tok_norm_kind form, const uint32_t *in, size_t n, uint32_t **out, size_t *cap,
                             size_t *n_out)
{
    const bool compat = form == TN_NFKD || form == TN_NFKC;
    *n_out = 0;
    if (!grow_cps(out, cap, n + 1)) goto oom;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k + UC_MAX_DECOMP > *cap && !grow_cps(out, cap, k + UC_MAX_DECOMP + n - i)) goto oom;
        k += (size_t)uc_decompose(in[i], compat, *out + k);
    }
    uint32_t *v = *out;
    for (size_t i = 0; i < k;) {
        if (uc_ccc(v[i]) == 0) { i++; continue; }
        size_t j = i;
        while (j < k && uc_ccc(v[j]) != 0) j++;
        if (!order_run(v + i, j - i)) goto oom;
        i = j;
    }
    if (form == TN_NFC || form == TN_NFKC) k = compose(v, k);
    *n_out = k;
    return VKI_OK;
oom:
    return vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory normalizing %zu code points", n);
}

/* ===== Steps from metadata =============================================== */

void tok_norm_free(vki_tokenizer *t)
{
    for (int i = 0; i < t->n_norm; i++) {
        free(t->norm[i].from);
        free(t->norm[i].to);
    }
    free(t->norm);
    t->norm = NULL;
    t->n_norm = 0;
}

/* UTF-8 -> code points, invalid bytes as TOK_BYTE_MARK + byte. */
static size_t decode_all(const char *s, size_t n, uint32_t *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        int l;
        uint32_t cp = uc_decode((const uint8_t *)s + i, n - i, &l);
        out[k++] = cp == UC_INVALID ? TOK_BYTE_MARK + (uint8_t)s[i] : cp;
        i += (size_t)l;
    }
    return k;
}

static bool field_cps(const char *s, size_t n, uint32_t **out, size_t *n_out)
{
    *out = malloc((n + 1) * sizeof **out);
    if (!*out) return false;
    *n_out = decode_all(s, n, *out);
    return true;
}

vki_status tok_norm_load(vki_tokenizer *t, const vki_model_file *f)
{
    const vki_kv *kv = vki_file_find_kv(f, "tokenizer.hf.normalizer");
    if (!kv) return VKI_OK;
    if (kv->type != VKI_KV_ARRAY || kv->v.arr.elem != VKI_KV_STRING)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: tokenizer.hf.normalizer is not an array of strings", vki_file_path(f));
    if (kv->v.arr.n > 64)
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: tokenizer.hf.normalizer has %llu steps, at most 64 supported",
                        vki_file_path(f), (unsigned long long)kv->v.arr.n);
    t->norm = calloc(kv->v.arr.n + 1, sizeof *t->norm);
    if (!t->norm) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    for (uint64_t i = 0; i < kv->v.arr.n; i++) {
        vki_str s = kv->v.arr.items[i].v.s;
        /* split into at most 3 fields at U+001F */
        const char *fld[3] = {s.p, NULL, NULL};
        size_t len[3] = {s.n, 0, 0};
        int nf = 1;
        for (size_t j = 0; j < s.n && nf < 3; j++) {
            if (s.p[j] != 0x1f || fld[nf - 1] > s.p + j) continue;
            len[nf - 1] = (size_t)(s.p + j - fld[nf - 1]);
            fld[nf] = s.p + j + 1;
            len[nf] = s.n - j - 1;
            nf++;
        }
        tok_norm *st = &t->norm[t->n_norm];
#define IS(x, nfields) (len[0] == strlen(x) && memcmp(fld[0], x, len[0]) == 0 && nf == (nfields))
        if (IS("NFD", 1)) st->kind = TN_NFD;
        else if (IS("NFC", 1)) st->kind = TN_NFC;
        else if (IS("NFKD", 1)) st->kind = TN_NFKD;
        else if (IS("NFKC", 1)) st->kind = TN_NFKC;
        else if (IS("Lowercase", 1)) st->kind = TN_LOWERCASE;
        else if (IS("StripAccents", 1)) st->kind = TN_STRIP_ACCENTS;
        else if (IS("Strip", 3) && len[1] == 1 && len[2] == 1) {
            st->kind = TN_STRIP;
            st->left = fld[1][0] == '1';
            st->right = fld[2][0] == '1';
        } else if (IS("Replace", 3) && len[1] > 0) {
            st->kind = TN_REPLACE;
            if (!field_cps(fld[1], len[1], &st->from, &st->n_from) || !field_cps(fld[2], len[2], &st->to, &st->n_to)) {
                t->n_norm++;
                return vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
            }
        } else if (IS("Prepend", 2)) {
            st->kind = TN_PREPEND;
            if (!field_cps(fld[1], len[1], &st->to, &st->n_to)) {
                t->n_norm++;
                return vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
            }
        } else {
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: tokenizer.hf.normalizer step %llu '%.*s' (%d fields) is not supported "
                            "(NFD, NFC, NFKD, NFKC, Lowercase, StripAccents, Strip, Replace, Prepend are)",
                            vki_file_path(f), (unsigned long long)i, (int)VKI_MIN(len[0], 40), fld[0], nf);
        }
#undef IS
        t->n_norm++;
    }
    return VKI_OK;
}

/* ===== Applying the steps ================================================ */

/* One step from a[0..n) into *b; returns the new count through *n_out. */
static vki_status apply_step(const tok_norm *st, const uint32_t *a, size_t n, uint32_t **b, size_t *cap,
                             size_t *n_out)
{
    size_t k = 0;
    switch (st->kind) {
    case TN_NFD: case TN_NFC: case TN_NFKD: case TN_NFKC:
        return tok_normalize_cps(st->kind, a, n, b, cap, n_out);
    case TN_LOWERCASE:
        /* Rust's char::to_lowercase per character: the simple mapping, and
         * U+0130's full one (the only lowercase that is longer) */
        if (!grow_cps(b, cap, 2 * n + 1)) goto oom;
        for (size_t i = 0; i < n; i++) {
            if (a[i] == 0x130) { (*b)[k++] = 'i'; (*b)[k++] = 0x307; }
            else (*b)[k++] = a[i] < 0x110000 ? uc_tolower(a[i]) : a[i];
        }
        break;
    case TN_STRIP_ACCENTS:
        /* HF StripAccents drops every combining mark (General_Category M) */
        if (!grow_cps(b, cap, n + 1)) goto oom;
        for (size_t i = 0; i < n; i++)
            if (a[i] >= 0x110000 || !(uc_flags(a[i]) & UC_M)) (*b)[k++] = a[i];
        break;
    case TN_STRIP: {
        size_t lo = 0, hi = n;
        if (st->left) while (lo < hi && a[lo] < 0x110000 && uc_is_space(a[lo])) lo++;
        if (st->right) while (hi > lo && a[hi - 1] < 0x110000 && uc_is_space(a[hi - 1])) hi--;
        if (!grow_cps(b, cap, hi - lo + 1)) goto oom;
        memcpy(*b, a + lo, (hi - lo) * sizeof *a);
        k = hi - lo;
        break;
    }
    case TN_REPLACE: {
        /* literal, non-overlapping, left to right (Rust str::replace) */
        size_t need = n + 1;
        if (st->n_to > st->n_from) {
            if (n > (SIZE_MAX / sizeof(uint32_t) - 1) / (st->n_to - st->n_from + 1)) goto oom;
            need = n * (st->n_to - st->n_from + 1) + 1;
        }
        if (!grow_cps(b, cap, need)) goto oom;
        for (size_t i = 0; i < n;) {
            if (a[i] == st->from[0] && i + st->n_from <= n &&
                memcmp(a + i, st->from, st->n_from * sizeof *a) == 0) {
                memcpy(*b + k, st->to, st->n_to * sizeof *a);
                k += st->n_to;
                i += st->n_from;
            } else {
                (*b)[k++] = a[i++];
            }
        }
        break;
    }
    case TN_PREPEND:
        /* HF prepends only to a non-empty string */
        if (!grow_cps(b, cap, n + st->n_to + 1)) goto oom;
        if (n) {
            memcpy(*b, st->to, st->n_to * sizeof *a);
            k = st->n_to;
        }
        memcpy(*b + k, a, n * sizeof *a);
        k += n;
        break;
    }
    *n_out = k;
    return VKI_OK;
oom:
    return vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory normalizing %zu code points", n);
}

/* True when the step leaves this text as it is: the normalization forms do
 * not touch ASCII, and NFC/NFD nothing below U+0300 / U+00C0
 * (tests/tokenizer checks these bounds against unicodedata). */
static bool step_is_identity(tok_norm_kind kind, uint32_t max_cp)
{
    switch (kind) {
    case TN_NFC: return max_cp < 0x300;
    case TN_NFD: return max_cp < 0xC0;
    case TN_NFKC: case TN_NFKD: return max_cp < 0xA0;
    default: return false;
    }
}

vki_status tok_normalize(const vki_tokenizer *t, const char *text, size_t len, tok_scratch *s,
                         const char **out, size_t *out_len)
{
    *out = text;
    *out_len = len;
    if (t->n_norm == 0 || len == 0) return VKI_OK;
    if (!grow_cps(&s->na, &s->na_cap, len + 1)) goto oom;
    size_t n = decode_all(text, len, s->na);
    uint32_t max_cp = 0;
    for (size_t i = 0; i < n; i++) max_cp = s->na[i] > max_cp ? s->na[i] : max_cp;
    bool changed = false;
    for (int i = 0; i < t->n_norm; i++) {
        if (step_is_identity(t->norm[i].kind, max_cp)) continue;
        size_t m;
        VKI_TRY(apply_step(&t->norm[i], s->na, n, &s->nb, &s->nb_cap, &m));
        uint32_t *tp = s->na; s->na = s->nb; s->nb = tp;
        size_t tc = s->na_cap; s->na_cap = s->nb_cap; s->nb_cap = tc;
        n = m;
        changed = true;
        max_cp = 0;
        for (size_t j = 0; j < n; j++) max_cp = s->na[j] > max_cp ? s->na[j] : max_cp;
    }
    if (!changed) return VKI_OK;
    if (n > SIZE_MAX / 4 - 1 || !tok_grow((void **)&s->norm, &s->norm_cap, n * 4 + 1)) goto oom;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s->na[i];
        if (c >= TOK_BYTE_MARK) s->norm[k++] = (char)(c - TOK_BYTE_MARK);
        else k += (size_t)uc_encode(c, s->norm + k);
    }
    *out = s->norm;
    *out_len = k;
    return VKI_OK;
oom:
    return vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory normalizing %zu bytes", len);
}
