/*
 * spm.c: SentencePiece-style BPE as llama.cpp and sentencepiece run it for
 * llama-2/mistral/phi-3 vocabularies: ' ' becomes U+2581 (with one leading
 * U+2581 when asked), adjacent pieces merge by the score of the merged
 * token (highest first, leftmost on ties) through a priority queue, and
 * pieces that are not tokens fall back to <0xNN> byte tokens.
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tok_internal.h"

typedef struct spm_sym { int32_t prev, next; uint32_t off, n; } spm_sym;
typedef struct spm_bigram { float score; int32_t left, right; uint32_t size; } spm_bigram;

/* max-heap on (score, then smaller left) */
static bool bg_before(const spm_bigram *a, const spm_bigram *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct spm_heap { spm_bigram *v; size_t n, cap; } spm_heap;

static bool heap_push(spm_heap *h, spm_bigram x)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        spm_bigram *v = realloc(h->v, cap * sizeof *v);
        if (!v) return false;
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0 && bg_before(&x, &h->v[(i - 1) / 2])) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = x;
    return true;
}

static spm_bigram heap_pop(spm_heap *h)
{
    spm_bigram top = h->v[0], x = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && bg_before(&h->v[c + 1], &h->v[c])) c++;
        if (!bg_before(&h->v[c], &x)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = x;
    return top;
}

typedef struct spm_ctx {
    const vki_tokenizer *t;
    const char *s;
    spm_sym    *sym;
    spm_heap    heap;
} spm_ctx;

static bool try_bigram(spm_ctx *c, int32_t l, int32_t r)
{
    if (l < 0 || r < 0) return true;
    uint32_t size = c->sym[l].n + c->sym[r].n;
    int32_t id = tok_find(c->t, c->s + c->sym[l].off, size);
    if (id < 0) return true;
    return heap_push(&c->heap, (spm_bigram){c->t->tokens[id].score, l, r, size});
}

static vki_status emit_piece(const vki_tokenizer *t, const char *p, uint32_t n, tok_ids *out)
{
    int32_t id = tok_find(t, p, n);
    if (id >= 0) return tok_ids_push(out, id);
    /* Merged pieces are always tokens, so only single characters that are
     * not in the vocabulary get here: spell them as bytes. */
    for (uint32_t i = 0; i < n; i++) {
        int32_t b = t->byte_id[(uint8_t)p[i]];
        VKI_TRY(tok_ids_push(out, b >= 0 ? b : t->unk));
    }
    return VKI_OK;
}

vki_status tok_spm_encode(const vki_tokenizer *t, const char *text, size_t len, bool prefix_space,
                          tok_ids *out)
{
    /* escape: ' ' -> U+2581 (3 bytes) */
    size_t n_sp = 0;
    for (size_t i = 0; i < len; i++) n_sp += text[i] == ' ';
    if (len + n_sp * 2 + 3 > UINT32_MAX / 2)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "tokenizer: text of %zu bytes is too long", len);
    size_t n = len + n_sp * 2 + (prefix_space ? 3 : 0);
    if (n == 0) return VKI_OK;
    char *s = malloc(n);
    spm_sym *sym = malloc(n * sizeof *sym);
    spm_ctx c = {.t = t, .s = s, .sym = sym};
    vki_status st = VKI_OK;
    if (!s || !sym) goto oom;
    size_t k = 0;
    if (prefix_space) { memcpy(s, "\xe2\x96\x81", 3); k = 3; }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') { memcpy(s + k, "\xe2\x96\x81", 3); k += 3; }
        else s[k++] = text[i];
    }
    /* one symbol per UTF-8 character; each byte of invalid UTF-8 is a
     * symbol of its own. (llama.cpp takes the length from the lead byte
     * alone, which can swallow the first byte of a following U+2581 and
     * then cannot give the text back; valid text is split the same way.) */
    int32_t ns = 0;
    for (size_t off = 0; off < n;) {
        int dl;
        uc_decode((const uint8_t *)s + off, n - off, &dl);
        size_t l = (size_t)dl;
        sym[ns] = (spm_sym){ns - 1, off + l == n ? -1 : ns + 1, (uint32_t)off, (uint32_t)l};
        ns++;
        off += l;
    }
    for (int32_t i = 1; i < ns; i++)
        if (!try_bigram(&c, i - 1, i)) goto oom;
    while (c.heap.n) {
        spm_bigram bg = heap_pop(&c.heap);
        spm_sym *l = &sym[bg.left], *r = &sym[bg.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != bg.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = bg.left;
        if (!try_bigram(&c, l->prev, bg.left) || !try_bigram(&c, bg.left, l->next)) goto oom;
    }
    for (int32_t i = 0; i != -1; i = sym[i].next) {
        st = emit_piece(t, s + sym[i].off, sym[i].n, out);
        if (st != VKI_OK) break;
    }
    goto done;
oom:
    st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for %zu bytes of text", len);
done:
    free(c.heap.v);
    free(sym);
    free(s);
    return st;
}
