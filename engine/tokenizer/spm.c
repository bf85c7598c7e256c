/*
 * spm.c: SentencePiece-style BPE as llama.cpp and sentencepiece run it for
 * llama-2/mistral/phi-3 vocabularies: ' ' becomes U+2581 (with one leading
 * U+2581 when asked), adjacent pieces merge by the score of the merged
 * token (highest first, leftmost on ties) through a priority queue, and
 * pieces that are not tokens fall back to <0xNN> byte tokens.
 * Speed: the text is cut where no merge can ever cross (between two
 * characters that no vocabulary token holds side by side, a set built once
 * per tokenizer), and each segment is merged on its own: same ids, small
 * queues. tok_spm_encode_whole keeps the one-queue form for tests.
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

/* ===== Pairs that a merge can join ======================================== */

/* A character (one UTF-8 sequence, or one invalid byte) as its bytes packed
 * big-endian: distinct characters get distinct keys. */
static uint32_t pack_char(const uint8_t *p, int n)
{
    uint32_t k = 0;
    for (int i = 0; i < n; i++) k = k << 8 | p[i];
    return k;
}

static uint32_t hash_pair(uint64_t k)
{
    k ^= k >> 31;
    k *= 0x9e3779b97f4a7c15ull;
    k ^= k >> 29;
    return (uint32_t)k;
}

/* Keys are pair + 1, so 0 marks an empty slot (no packed pair is ~0). */
static bool pair_insert(uint64_t *set, uint32_t mask, uint64_t key)
{
    key += 1;
    for (uint32_t i = hash_pair(key) & mask;; i = (i + 1) & mask) {
        if (set[i] == key) return false;
        if (set[i] == 0) { set[i] = key; return true; }
    }
}

static bool pair_joinable(const vki_tokenizer *t, uint32_t a, uint32_t b)
{
    uint64_t key = ((uint64_t)a << 32 | b) + 1;
    uint32_t mask = t->spm_pair_cap - 1;
    for (uint32_t i = hash_pair(key) & mask;; i = (i + 1) & mask) {
        if (t->spm_pairs[i] == key) return true;
        if (t->spm_pairs[i] == 0) return false;
    }
}

static bool pairs_rehash(vki_tokenizer *t, uint32_t cap)
{
    uint64_t *set = calloc(cap, sizeof *set);
    if (!set) return false;
    for (uint32_t i = 0; i < t->spm_pair_cap; i++)
        if (t->spm_pairs[i]) pair_insert(set, cap - 1, t->spm_pairs[i] - 1);
    free(t->spm_pairs);
    t->spm_pairs = set;
    t->spm_pair_cap = cap;
    return true;
}

vki_status tok_spm_prepare(vki_tokenizer *t)
{
    /* every adjacent character pair inside any token (any type: the merge
     * loop looks merged text up among all tokens); the table grows with the
     * distinct pairs (llama-2's 32k tokens hold 3.5k: 64 KiB) */
    uint32_t n_set = 0;
    if (!pairs_rehash(t, 1024)) goto oom;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const uint8_t *p = (const uint8_t *)tok_text(t, id);
        uint32_t n = t->tokens[id].len, prev = 0;
        bool have_prev = false;
        for (uint32_t i = 0; i < n;) {
            int l;
            uc_decode(p + i, n - i, &l);
            uint32_t c = pack_char(p + i, l);
            if (have_prev && pair_insert(t->spm_pairs, t->spm_pair_cap - 1, (uint64_t)prev << 32 | c) &&
                ++n_set * 2 > t->spm_pair_cap && !pairs_rehash(t, t->spm_pair_cap * 2))
                goto oom;
            prev = c;
            have_prev = true;
            i += (uint32_t)l;
        }
    }
    return VKI_OK;
oom:
    return vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for %u character pairs", n_set);
}

/* ===== Encoding ========================================================== */

/* Merges the symbols first..last (linked, first.prev = last.next = -1) and
 * appends their ids. */
static vki_status merge_segment(spm_ctx *c, int32_t first, tok_ids *out)
{
    spm_sym *sym = c->sym;
    c->heap.n = 0;
    for (int32_t i = first; sym[i].next >= 0; i = sym[i].next)
        if (!try_bigram(c, i, sym[i].next)) goto oom;
    while (c->heap.n) {
        spm_bigram bg = heap_pop(&c->heap);
        spm_sym *l = &sym[bg.left], *r = &sym[bg.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != bg.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = bg.left;
        if (!try_bigram(c, l->prev, bg.left) || !try_bigram(c, bg.left, l->next)) goto oom;
    }
    for (int32_t i = first; i != -1; i = sym[i].next) VKI_TRY(emit_piece(c->t, c->s + sym[i].off, sym[i].n, out));
    return VKI_OK;
oom:
    return vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory merging");
}

static vki_status spm_encode(const vki_tokenizer *t, const char *text, size_t len, bool prefix_space, bool whole,
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
     * then cannot give the text back; valid text is split the same way.)
     * A segment ends where the next character can never join this one. */
    int32_t ns = 0, seg = 0;
    uint32_t prev = 0;
    for (size_t off = 0; off < n;) {
        int dl;
        uc_decode((const uint8_t *)s + off, n - off, &dl);
        uint32_t ch = pack_char((const uint8_t *)s + off, dl);
        if (ns > seg && !whole && !pair_joinable(t, prev, ch)) {
            sym[ns - 1].next = -1;
            st = merge_segment(&c, seg, out);
            if (st != VKI_OK) goto done;
            seg = ns;
        }
        sym[ns] = (spm_sym){ns == seg ? -1 : ns - 1, ns + 1, (uint32_t)off, (uint32_t)dl};
        prev = ch;
        ns++;
        off += (size_t)dl;
    }
    sym[ns - 1].next = -1;
    st = merge_segment(&c, seg, out);
    goto done;
oom:
    st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for %zu bytes of text", len);
done:
    free(c.heap.v);
    free(sym);
    free(s);
    return st;
}

vki_status tok_spm_encode(const vki_tokenizer *t, const char *text, size_t len, bool prefix_space, tok_ids *out)
{
    return spm_encode(t, text, len, prefix_space, t->spm_pairs == NULL, out);
}

vki_status tok_spm_encode_whole(const vki_tokenizer *t, const char *text, size_t len, bool prefix_space,
                                tok_ids *out)
{
    return spm_encode(t, text, len, prefix_space, true, out);
}
