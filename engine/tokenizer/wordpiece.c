/*
 * wordpiece.c: BERT's tokenizer as Hugging Face runs it (BertNormalizer ->
 * BertPreTokenizer -> WordPiece): drop control characters, map whitespace to
 * ' ', pad CJK ideographs with spaces, strip accents (NFD, drop Mn) and
 * lower-case; split on whitespace and around punctuation; then greedy
 * longest-match-first pieces, a word with no spelling becomes [UNK].
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tok_internal.h"

#define WPM_MAX_WORD_CHARS 100 /* HF max_input_chars_per_word */

/* Rust char::is_other(): Cc Cf Cs Co Cn, i.e. no other category flag */
static bool is_other(uint16_t f)
{
    return (f & (UC_L | UC_N | UC_P | UC_S | UC_M | UC_Z)) == 0;
}

static bool is_punct(uint32_t cp, uint16_t f)
{
    if (cp < 0x80) return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
                          (cp >= 123 && cp <= 126);
    return (f & UC_P) != 0;
}

typedef struct wbuf { uint32_t *v; size_t n, cap; } wbuf;

static bool wpush(wbuf *b, uint32_t cp)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        uint32_t *v = realloc(b->v, cap * sizeof *v);
        if (!v) return false;
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = cp;
    return true;
}

/* Pieces of one word cps[0..n): greedy longest match. */
static vki_status word_pieces(const vki_tokenizer *t, const uint32_t *cps, size_t n, char *tmp,
                              tok_ids *out)
{
    if (n > WPM_MAX_WORD_CHARS) return t->unk >= 0 ? tok_ids_push(out, t->unk) : VKI_OK;
    /* the word as UTF-8, and where each character starts */
    char word[WPM_MAX_WORD_CHARS * 4 + 8];
    size_t at[WPM_MAX_WORD_CHARS + 1], k = 0;
    for (size_t i = 0; i < n; i++) {
        at[i] = k;
        k += (size_t)uc_encode(cps[i], word + k);
    }
    at[n] = k;
    int32_t found[WPM_MAX_WORD_CHARS];
    int n_found = 0;
    for (size_t i = 0; i < n;) {
        size_t pre;
        if (t->wpm_phantom) { pre = i == 0 ? 3 : 0; memcpy(tmp, "\xe2\x96\x81", 3); }
        else { pre = i == 0 ? 0 : 2; memcpy(tmp, "##", 2); }
        int32_t id = -1;
        size_t j = n;
        for (; j > i; j--) {
            memcpy(tmp + pre, word + at[i], at[j] - at[i]);
            id = tok_find(t, tmp, pre + at[j] - at[i]);
            if (id >= 0) break;
        }
        if (id < 0) return t->unk >= 0 ? tok_ids_push(out, t->unk) : VKI_OK;
        found[n_found++] = id;
        i = j;
    }
    for (int i = 0; i < n_found; i++) VKI_TRY(tok_ids_push(out, found[i]));
    return VKI_OK;
}

vki_status tok_wpm_encode(const vki_tokenizer *t, const char *text, size_t len, tok_ids *out)
{
    wbuf b = {0};
    vki_status st = VKI_OK;
    const uint8_t *u = (const uint8_t *)text;
    /* normalize into code points; ' ' separates, punctuation is isolated */
    for (size_t i = 0; i < len;) {
        int l;
        uint32_t cp = uc_decode(u + i, len - i, &l);
        i += (size_t)l;
        if (cp == UC_INVALID || cp == 0 || cp == 0xFFFD) continue;
        uint16_t f = uc_flags(cp);
        bool ws = cp == '\t' || cp == '\n' || cp == '\r' || uc_is_space(cp);
        if (ws) { if (!wpush(&b, ' ')) goto oom; continue; }
        if (is_other(f)) continue;
        if (uc_is_cjk(cp)) {
            if (!wpush(&b, ' ') || !wpush(&b, cp) || !wpush(&b, ' ')) goto oom;
            continue;
        }
        uint32_t d[8];
        int nd = 1;
        d[0] = cp;
        if (t->wpm_lowercase) nd = uc_nfd(cp, d); /* strip_accents follows lowercase */
        for (int q = 0; q < nd; q++) {
            uint32_t c = d[q];
            if (t->wpm_lowercase) {
                if (uc_flags(c) & UC_MN) continue;
                /* U+0130 lowers to "i" + U+0307; the mark was stripped above
                 * for NFD input, so only 'i' remains */
                c = c == 0x130 ? 'i' : uc_tolower(c);
            }
            if (!wpush(&b, c)) goto oom;
        }
    }
    char tmp[WPM_MAX_WORD_CHARS * 4 + 8];
    for (size_t i = 0; i < b.n && st == VKI_OK;) {
        uint32_t cp = b.v[i];
        if (cp == ' ' || uc_is_space(cp)) { i++; continue; }
        if (is_punct(cp, uc_flags(cp))) {
            st = word_pieces(t, &b.v[i], 1, tmp, out);
            i++;
            continue;
        }
        size_t j = i;
        while (j < b.n && b.v[j] != ' ' && !uc_is_space(b.v[j]) && !is_punct(b.v[j], uc_flags(b.v[j]))) j++;
        st = word_pieces(t, &b.v[i], j - i, tmp, out);
        i = j;
    }
    free(b.v);
    return st;
oom:
    free(b.v);
    return vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory normalizing %zu bytes", len);
}
