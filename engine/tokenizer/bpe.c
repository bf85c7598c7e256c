/*
 * bpe.c: byte-level BPE (gpt-2, llama-3, qwen2, deepseek, falcon, ...): the
 * pre-tokenizer splits the text into words; each word's bytes start as
 * byte-symbol tokens and merge by rank (lowest first, leftmost on ties)
 * through a priority queue with lazy invalidation, O(n log n) per word.
 * Words repeat, so each encode call keeps a word -> ids cache (per call, so
 * a tokenizer shared by threads needs no lock).
 * Also the GPT-2 byte <-> code point table.
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tok_internal.h"

/* GPT-2's bytes_to_unicode(): printable Latin-1 bytes (33-126, 161-172,
 * 174-255) stand for themselves, the other 68 map to U+0100.. in byte
 * order: 0-32, then 127-160, then 173. In closed form: decoding calls this
 * for every character, and a loop over the bytes showed up there (and
 * made fuzz_tokenizer crawl under comparison tracing). */
static bool printable(uint32_t b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255); }

uint32_t tok_byte_to_cp(uint8_t b)
{
    if (printable(b)) return b;
    return 256 + (b <= 32 ? b : b <= 160 ? 33u + (b - 127u) : 67u);
}

int tok_cp_to_byte(uint32_t cp)
{
    if (cp < 256) return printable(cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    uint32_t k = cp - 256;
    return k < 33 ? (int)k : k < 67 ? (int)(127 + (k - 33)) : 173;
}

typedef struct bpe_sym { int32_t id, prev, next; } bpe_sym;
typedef struct bpe_bigram { int32_t rank, left, lid, rid; } bpe_bigram;

static bool bg_before(const bpe_bigram *a, const bpe_bigram *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

typedef struct bpe_heap { bpe_bigram *v; size_t n; } bpe_heap;

static void heap_push(bpe_heap *h, bpe_bigram x)
{
    size_t i = h->n++;
    while (i > 0 && bg_before(&x, &h->v[(i - 1) / 2])) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = x;
}

static bpe_bigram heap_pop(bpe_heap *h)
{
    bpe_bigram top = h->v[0], x = h->v[--h->n];
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

static void try_bigram(const vki_tokenizer *t, bpe_sym *sym, bpe_heap *h, int32_t l, int32_t r)
{
    if (l < 0 || r < 0) return;
    int32_t res;
    int32_t rank = tok_merge_rank(t, sym[l].id, sym[r].id, &res);
    if (rank >= 0) heap_push(h, (bpe_bigram){rank, l, sym[l].id, sym[r].id});
}

/* One pre-tokenized word: bytes w[0..n). */
static vki_status encode_word(const vki_tokenizer *t, const uint8_t *w, size_t n, tok_scratch *s,
                              tok_ids *out)
{
    if (t->ignore_merges || n == 1) {
        /* llama-3 (HF ignore_merges): a word that is itself a token wins */
        if (!tok_grow((void **)&s->buf, &s->buf_cap, n * 2)) goto oom;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) k += (size_t)uc_encode(tok_byte_to_cp(w[i]), s->buf + k);
        int32_t id = tok_find(t, s->buf, k);
        if (id >= 0) return tok_ids_push(out, id);
    }
    /* every bigram can sit in the heap at most once per merge that creates
     * it; 3n bounds the live entries (n initial + 2 per merge) */
    if (!tok_grow(&s->sym, &s->sym_cap, n * sizeof(bpe_sym)) ||
        !tok_grow(&s->heap, &s->heap_cap, 3 * n * sizeof(bpe_bigram)))
        goto oom;
    bpe_sym *sym = s->sym;
    bpe_heap h = {s->heap, 0};
    for (size_t i = 0; i < n; i++)
        sym[i] = (bpe_sym){t->byte_id[w[i]], (int32_t)i - 1, i + 1 == n ? -1 : (int32_t)i + 1};
    for (size_t i = 1; i < n; i++) try_bigram(t, sym, &h, (int32_t)i - 1, (int32_t)i);
    while (h.n) {
        bpe_bigram bg = heap_pop(&h);
        bpe_sym *l = &sym[bg.left];
        if (l->id != bg.lid || l->next < 0 || sym[l->next].id != bg.rid) continue; /* stale */
        int32_t res, r = l->next;
        tok_merge_rank(t, bg.lid, bg.rid, &res);
        l->id = res;
        l->next = sym[r].next;
        sym[r].id = -2; /* merged away */
        if (l->next >= 0) sym[l->next].prev = bg.left;
        try_bigram(t, sym, &h, l->prev, bg.left);
        try_bigram(t, sym, &h, bg.left, l->next);
    }
    for (int32_t i = 0; i != -1; i = sym[i].next) {
        /* a byte with no byte token (a vocabulary without the full 256)
         * becomes the unknown token; without one it cannot be encoded */
        int32_t id = sym[i].id >= 0 ? sym[i].id : t->unk;
        if (id < 0)
            return vki_fail(VKI_ERR_UNSUPPORTED, "tokenizer: byte 0x%02X has no token in this vocabulary and there is "
                            "no unknown token", w[i]);
        VKI_TRY(tok_ids_push(out, id));
    }
    return VKI_OK;
oom:
    return vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for a word of %zu bytes", n);
}

/* ===== Per-call word cache =============================================== */

#define BPE_CACHE_MAX_WORD    64        /* longer words are rare repeats   */
#define BPE_CACHE_MAX_ENTRIES (1 << 16) /* bounds the memory of one call   */

typedef struct bpe_entry { uint32_t hash, key_off, key_len, ids_off, n_ids; } bpe_entry;

struct tok_bpe_cache {
    uint32_t  *slot;    uint32_t cap;              /* [cap] entry index + 1, 0 = empty */
    bpe_entry *ent;     uint32_t n_ent, ent_cap;
    char      *keys;    size_t   n_keys, keys_cap; /* word bytes, back to back         */
    int32_t   *ids;     size_t   n_ids, ids_cap;   /* their ids, back to back          */
};

void tok_bpe_cache_free(struct tok_bpe_cache *c)
{
    if (!c) return;
    free(c->slot);
    free(c->ent);
    free(c->keys);
    free(c->ids);
    free(c);
}

static uint32_t word_hash(const uint8_t *w, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ w[i]) * 16777619u;
    return h;
}

/* The cached entry for w, or NULL; *slot_out gets the slot to insert at. */
static const bpe_entry *cache_find(const struct tok_bpe_cache *c, const uint8_t *w, size_t n, uint32_t h,
                                   uint32_t *slot_out)
{
    uint32_t mask = c->cap - 1;
    for (uint32_t i = h & mask;; i = (i + 1) & mask) {
        uint32_t e = c->slot[i];
        if (e == 0) { *slot_out = i; return NULL; }
        const bpe_entry *x = &c->ent[e - 1];
        if (x->hash == h && x->key_len == n && memcmp(c->keys + x->key_off, w, n) == 0) return x;
    }
}

static bool cache_rehash(struct tok_bpe_cache *c, uint32_t cap)
{
    uint32_t *slot = calloc(cap, sizeof *slot);
    if (!slot) return false;
    for (uint32_t e = 0; e < c->n_ent; e++) {
        uint32_t i = c->ent[e].hash & (cap - 1);
        while (slot[i]) i = (i + 1) & (cap - 1);
        slot[i] = e + 1;
    }
    free(c->slot);
    c->slot = slot;
    c->cap = cap;
    return true;
}

/* Remembers ids[0..n) for w; a failed allocation only skips the entry. */
static void cache_put(struct tok_bpe_cache *c, const uint8_t *w, size_t len, uint32_t h, uint32_t slot,
                      const int32_t *ids, int32_t n)
{
    if (c->n_ent >= BPE_CACHE_MAX_ENTRIES) return;
    size_t ent_bytes = c->ent_cap * sizeof *c->ent, ids_bytes = c->ids_cap * sizeof *c->ids;
    if (!tok_grow((void **)&c->ent, &ent_bytes, (c->n_ent + 1) * sizeof *c->ent) ||
        !tok_grow((void **)&c->keys, &c->keys_cap, c->n_keys + len) ||
        !tok_grow((void **)&c->ids, &ids_bytes, (c->n_ids + (size_t)n) * sizeof *c->ids))
        return;
    c->ent_cap = (uint32_t)(ent_bytes / sizeof *c->ent);
    c->ids_cap = ids_bytes / sizeof *c->ids;
    c->ent[c->n_ent] = (bpe_entry){h, (uint32_t)c->n_keys, (uint32_t)len, (uint32_t)c->n_ids, (uint32_t)n};
    memcpy(c->keys + c->n_keys, w, len);
    memcpy(c->ids + c->n_ids, ids, (size_t)n * sizeof *ids);
    c->n_keys += len;
    c->n_ids += (size_t)n;
    c->slot[slot] = ++c->n_ent;
    if (c->n_ent * 2 > c->cap) cache_rehash(c, c->cap * 2); /* on failure the table just fills up more */
}

/* ===== Encoding ========================================================== */

vki_status tok_bpe_encode(const vki_tokenizer *t, const char *text, size_t len, tok_scratch *s,
                          tok_ids *out)
{
    if (len == 0) return VKI_OK;
    if (!tok_grow((void **)&s->cps, &s->cps_cap, len * sizeof *s->cps) ||
        !tok_grow((void **)&s->offs, &s->offs_cap, (len + 1) * sizeof *s->offs))
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for %zu bytes of text", len);
    /* invalid bytes become UC_INVALID code points (category "other") and
     * keep their byte, so the byte-level encoding round-trips them */
    int64_t n = 0;
    const uint8_t *u = (const uint8_t *)text;
    for (size_t i = 0; i < len;) {
        int l;
        s->cps[n] = uc_decode(u + i, len - i, &l);
        s->offs[n++] = i;
        i += (size_t)l;
    }
    s->offs[n] = len;
    VKI_TRY(tok_pretokenize(t->re, t->n_re, s->cps, n, s));
    if (!s->cache && !s->no_cache) {
        s->cache = calloc(1, sizeof *s->cache);
        if (s->cache && !cache_rehash(s->cache, 1024)) {
            free(s->cache);
            s->cache = NULL;
        }
    }
    struct tok_bpe_cache *c = s->cache; /* NULL (out of memory): no caching */
    for (int64_t k = 0; k < s->a.n; k++) {
        size_t a = s->offs[s->a.v[k].a], b = s->offs[s->a.v[k].b];
        if (!c || b - a > BPE_CACHE_MAX_WORD) {
            VKI_TRY(encode_word(t, u + a, b - a, s, out));
            continue;
        }
        uint32_t h = word_hash(u + a, b - a), slot;
        const bpe_entry *e = cache_find(c, u + a, b - a, h, &slot);
        if (e) {
            for (uint32_t i = 0; i < e->n_ids; i++) VKI_TRY(tok_ids_push(out, c->ids[e->ids_off + i]));
            continue;
        }
        int32_t before = out->n;
        VKI_TRY(encode_word(t, u + a, b - a, s, out));
        cache_put(c, u + a, b - a, h, slot, out->v + before, out->n - before);
    }
    return VKI_OK;
}
