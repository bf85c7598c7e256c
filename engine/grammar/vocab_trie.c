/*
 * vocab_trie.c: the token texts of a vocabulary in a byte trie, so a mask is
 * one walk that shares every common prefix and drops a whole subtree at the
 * first byte the grammar refuses. Built once per tokenizer; read-only after.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/grammar/gram_vocab.h"
#include "error.h"

typedef struct tok_text { const char *p; int32_t n, id; } tok_text;

static int cmp_text(const void *a, const void *b)
{
    const tok_text *x = a, *y = b;
    int32_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->p, y->p, (size_t)n);
    if (c) return c;
    if (x->n != y->n) return x->n < y->n ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* texts[i][0..lens[i]) is token i's text (lens[i] <= 0: none); eog[i] marks
 * end-of-generation tokens. The texts are copied. */
vki_status gram_vocab_create_from_texts(int32_t nv, const char *const *in_texts, const int32_t *lens,
                                        const bool *eog, gram_vocab **out)
{
    *out = NULL;
    gram_vocab *v = calloc(1, sizeof *v);
    tok_text *tt = calloc((size_t)nv + 1, sizeof *tt);
    char *texts = NULL;
    int32_t *path = NULL;
    if (!v || !tt) goto oom;
    v->n_vocab = nv;
    v->mask_words = (nv + 31) / 32;
    v->eog = malloc(sizeof *v->eog * (size_t)(nv + 1));
    v->tok_off = calloc((size_t)nv + 1, sizeof *v->tok_off);
    v->tok_len = calloc((size_t)nv + 1, sizeof *v->tok_len);
    if (!v->eog || !v->tok_off || !v->tok_len) goto oom;
    size_t total = 0;
    for (int32_t i = 0; i < nv; i++) total += lens[i] > 0 ? (size_t)lens[i] : 0;
    texts = malloc(total + 1);
    if (!texts) goto oom;
    size_t off = 0;
    int32_t n_tt = 0, max_len = 0;
    for (int32_t i = 0; i < nv; i++) {
        if (eog && eog[i]) { v->eog[v->n_eog++] = i; continue; }
        int32_t k = lens[i];
        if (k <= 0) continue; /* no text: it can never advance a grammar */
        memcpy(texts + off, in_texts[i], (size_t)k);
        tt[n_tt++] = (tok_text){texts + off, k, i};
        v->tok_off[i] = off;
        v->tok_len[i] = k;
        off += (size_t)k;
        if (k > max_len) max_len = k;
    }
    qsort(tt, (size_t)n_tt, sizeof *tt, cmp_text);

    /* Sorted insertion: each text shares a prefix with the previous one, and
     * children arrive in byte order, so a node's children are appended. */
    int32_t cap = 1024;
    v->node = malloc(sizeof *v->node * (size_t)cap);
    v->toks = malloc(sizeof *v->toks * (size_t)(n_tt + 1));
    path = malloc(sizeof *path * (size_t)(max_len + 1));
    int32_t *last_child = malloc(sizeof *last_child * (size_t)cap);
    if (!v->node || !v->toks || !path || !last_child) { free(last_child); goto oom; }
    v->node[0] = (gram_trie_node){.first_child = -1, .next_sibling = -1, .tok_begin = 0, .tok_end = 0};
    last_child[0] = -1;
    v->n_node = 1;
    path[0] = 0;
    int32_t depth_prev = 0;
    for (int32_t t = 0; t < n_tt; t++) {
        int32_t common = 0;
        if (t > 0) {
            int32_t lim = tt[t - 1].n < tt[t].n ? tt[t - 1].n : tt[t].n;
            while (common < lim && tt[t - 1].p[common] == tt[t].p[common]) common++;
            if (common > depth_prev) common = depth_prev;
        }
        for (int32_t d = common; d < tt[t].n; d++) {
            if (v->n_node == cap) {
                cap *= 2;
                gram_trie_node *nn = realloc(v->node, sizeof *nn * (size_t)cap);
                if (nn) v->node = nn;
                int32_t *nl = realloc(last_child, sizeof *nl * (size_t)cap);
                if (nl) last_child = nl;
                if (!nn || !nl) { free(last_child); goto oom; }
            }
            int32_t parent = path[d], id = v->n_node++;
            v->node[id] = (gram_trie_node){.first_child = -1, .next_sibling = -1,
                                           .byte = (uint8_t)tt[t].p[d], .tok_begin = 0, .tok_end = 0};
            last_child[id] = -1;
            if (last_child[parent] < 0) v->node[parent].first_child = id;
            else v->node[last_child[parent]].next_sibling = id;
            last_child[parent] = id;
            path[d + 1] = id;
        }
        gram_trie_node *leaf = &v->node[path[tt[t].n]];
        if (leaf->tok_end == leaf->tok_begin) leaf->tok_begin = leaf->tok_end = t;
        v->toks[leaf->tok_end++] = tt[t].id;
        depth_prev = tt[t].n;
    }
    free(last_child);
    free(path);
    free(tt);
    v->text = texts;
    *out = v;
    return VKI_OK;
oom:
    free(path);
    free(tt);
    free(texts);
    gram_vocab_destroy(v);
    return vki_fail(VKI_ERR_OUT_OF_MEMORY, "grammar: out of memory for the vocabulary trie (%d tokens)", nv);
}

vki_status gram_vocab_create(const vki_tokenizer *tok, gram_vocab **out)
{
    *out = NULL;
    const int32_t nv = vki_tokenizer_n_vocab(tok);
    /* the texts exactly as the streaming detokenizer appends them */
    size_t total = 0;
    for (int32_t i = 0; i < nv; i++) {
        int32_t need = -vki_tokenizer_piece(tok, i, NULL, 0, false);
        total += need > 0 ? (size_t)need : 0;
    }
    char *buf = malloc(total + 1);
    const char **texts = malloc(sizeof *texts * ((size_t)nv + 1));
    int32_t *lens = calloc((size_t)nv + 1, sizeof *lens);
    bool *eog = calloc((size_t)nv + 1, 1);
    vki_status st;
    if (!buf || !texts || !lens || !eog) {
        st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "grammar: out of memory for the vocabulary (%d tokens)", nv);
        goto out;
    }
    size_t off = 0;
    for (int32_t i = 0; i < nv; i++) {
        eog[i] = vki_tokenizer_is_eog(tok, i);
        int32_t need = -vki_tokenizer_piece(tok, i, NULL, 0, false);
        texts[i] = buf + off;
        if (need <= 0) continue;
        int32_t k = vki_tokenizer_piece(tok, i, buf + off, need, false);
        lens[i] = k > 0 ? k : 0;
        off += (size_t)lens[i];
    }
    st = gram_vocab_create_from_texts(nv, texts, lens, eog, out);
out:
    free(buf);
    free(texts);
    free(lens);
    free(eog);
    return st;
}

void gram_vocab_destroy(gram_vocab *v)
{
    if (!v) return;
    free(v->node);
    free(v->toks);
    free(v->eog);
    free(v->tok_off);
    free(v->tok_len);
    free(v->text);
    free(v);
}
