/*
 * matcher.c: runs a gram_grammar over output bytes. The state is a set of
 * stacks; a stack is a chain of frames (pos = the next symbol of an
 * alternative, parent = the frame to return to), kept in an arena so stacks
 * share their tails and copying one is free. Frames are expanded lazily: a
 * rule is entered only for a byte in its FIRST set, so a step creates only
 * the frames that survive it.
 * The mask walks the vocabulary trie once with that state, dropping a
 * subtree at its first refused byte, and is cached by state (the stacks'
 * frame positions) for the next time the same state comes round.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/grammar/gram_internal.h"
#include "engine/grammar/gram_vocab.h"
#include "error.h"

#define MAX_STACKS     1024              /* more live parses: the grammar is too ambiguous */
/* More expansions for one byte: the same. Nullable rules in sequence are
 * each entered and skipped, and both ways reach the same continuation, so
 * without a bound 28 of them took minutes for one byte (fuzz_grammar); ten
 * nested `+` stayed under 1 << 17 and still took 0.5 s a grammar. */
#define MAX_EXPANSIONS (1 << 14)
#define CACHE_BYTES    (8u << 20)        /* masks kept per matcher                          */
#define CACHE_MAX_ENTS 4096
#define DEDUP_SLOTS    (2 * MAX_STACKS)  /* a set never holds more stacks than half of it   */

/* hash: of the positions from this frame to the bottom, so two stacks that
 * are equal have equal hashes wherever their frames lie in the arena */
typedef struct frame { int32_t pos, parent; uint32_t hash; } frame;

typedef struct cache_ent {
    uint64_t hash;
    int32_t  key_off, key_len; /* into keys          */
    int32_t  mask;             /* index into masks   */
} cache_ent;

struct gram_matcher {
    const gram_grammar *g;
    const gram_vocab   *v;
    frame    *fr;                /* frame arena                          */
    int32_t   n_fr, cap_fr;
    int32_t  *sets;              /* stack ids; -1 = the empty stack      */
    int32_t   n_sets, cap_sets;
    int32_t   cur_off, cur_n;    /* the current state in sets            */
    uint32_t *mask;              /* [mask_words]                         */
    bool      overflow, oom;
    int32_t   work;              /* match() expansions for the byte being advanced */
    /* mask cache: open addressing over slots, cleared when full */
    cache_ent *ents;
    int32_t   *slots;            /* [n_slots] entry index, -1 empty      */
    int32_t    n_slots, n_ents, max_ents;
    uint32_t  *masks;            /* [max_ents][mask_words]               */
    int32_t   *keys, n_keys, cap_keys;
    int32_t   *key, cap_key;     /* the key being built                  */
    /* compaction scratch */
    frame     *fr2;
    int32_t    cap_fr2;
    int32_t   *remap, cap_remap, *chain, cap_chain;
    uint64_t   n_cached, n_walked;
    /* the set being built by advance(), by stack hash: finding a stack
     * already there took a walk over every stack (an ambiguous grammar
     * keeps hundreds alive, and that scan was 60% of fuzz_grammar's time) */
    uint32_t   dedup_gen;
    uint32_t   dedup_stamp[DEDUP_SLOTS]; /* == dedup_gen: the slot is in use */
    int32_t    dedup_set[DEDUP_SLOTS];   /* index into sets                   */
};

/* ===== Arena ============================================================= */

static bool grow(void **p, int32_t *cap, int32_t need, size_t elem)
{
    if (need <= *cap) return true;
    int32_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    void *np = realloc(*p, elem * (size_t)nc);
    if (!np) return false;
    *p = np;
    *cap = nc;
    return true;
}

static uint32_t stack_hash(const gram_matcher *m, int32_t st)
{
    return st < 0 ? 0x9e3779b9u : m->fr[st].hash;
}

static int32_t new_frame(gram_matcher *m, int32_t pos, int32_t parent)
{
    if (!grow((void **)&m->fr, &m->cap_fr, m->n_fr + 1, sizeof *m->fr)) {
        m->oom = true;
        return -1;
    }
    uint32_t below = stack_hash(m, parent);
    uint32_t h = (uint32_t)pos * 0x85ebca6bu ^ (below + 0x7f4a7c15u + (below << 6) + (below >> 2));
    m->fr[m->n_fr] = (frame){pos, parent, h};
    return m->n_fr++;
}

static bool same_stack(const gram_matcher *m, int32_t a, int32_t b)
{
    while (a != b) {
        if (a < 0 || b < 0 || m->fr[a].pos != m->fr[b].pos) return false;
        a = m->fr[a].parent;
        b = m->fr[b].parent;
    }
    return true;
}

/* Adds st to the set advance() is building (from out_off), unless an equal
 * stack is there. */
static void add_stack(gram_matcher *m, int32_t out_off, int32_t st)
{
    const uint32_t h = stack_hash(m, st);
    uint32_t s = h & (DEDUP_SLOTS - 1);
    for (; m->dedup_stamp[s] == m->dedup_gen; s = (s + 1) & (DEDUP_SLOTS - 1)) {
        int32_t other = m->sets[m->dedup_set[s]];
        if (stack_hash(m, other) == h && same_stack(m, other, st)) return;
    }
    if (m->n_sets - out_off >= MAX_STACKS) { m->overflow = true; return; }
    if (!grow((void **)&m->sets, &m->cap_sets, m->n_sets + 1, sizeof *m->sets)) { m->oom = true; return; }
    m->dedup_stamp[s] = m->dedup_gen;
    m->dedup_set[s] = m->n_sets;
    m->sets[m->n_sets++] = st;
}

/* ===== Stepping ========================================================== */

/* Consumes byte c from the stack (pos, parent): every way it can is added
 * to the set starting at out_off. */
static void match(gram_matcher *m, int32_t pos, int32_t parent, uint8_t c, int32_t out_off)
{
    const gram_grammar *g = m->g;
    for (;;) {
        if (m->overflow || ++m->work > MAX_EXPANSIONS) {
            m->overflow = true;
            return;
        }
        int32_t s = g->sym[pos];
        if (s == GRAM_END) {
            if (parent < 0) return;
            pos = m->fr[parent].pos;
            parent = m->fr[parent].parent;
            continue;
        }
        if (s >= 0) {
            if (!gram_cls_has(g, s, c)) return;
            /* frames never point at GRAM_END: a finished frame is its parent */
            int32_t st = g->sym[pos + 1] == GRAM_END ? parent : new_frame(m, pos + 1, parent);
            if (!m->oom) add_stack(m, out_off, st);
            return;
        }
        int32_t r = GRAM_SYM_RULE(s);
        if (gram_bits_has(g->rule_first[r], c)) {
            int32_t cont = -2;
            for (int32_t a = g->rule_alt[r]; a < g->rule_alt[r + 1]; a++) {
                if (!gram_bits_has(g->alt_first[a], c)) continue;
                if (cont == -2) cont = g->sym[pos + 1] == GRAM_END ? parent : new_frame(m, pos + 1, parent);
                if (m->oom) return;
                match(m, g->alt_start[a], cont, c, out_off);
            }
        }
        if (!g->rule_nullable[r]) return;
        pos++; /* the rule matched nothing: go on in this frame */
    }
}

/* The set after byte c: appended at the end of sets; returns its length. */
static int32_t advance(gram_matcher *m, int32_t off, int32_t n, uint8_t c)
{
    int32_t out = m->n_sets;
    m->work = 0;
    if (++m->dedup_gen == 0) { /* wrapped: every stamp could look current */
        memset(m->dedup_stamp, 0, sizeof m->dedup_stamp);
        m->dedup_gen = 1;
    }
    for (int32_t i = 0; i < n && !m->overflow; i++) {
        int32_t st = m->sets[off + i];
        if (st >= 0) match(m, m->fr[st].pos, m->fr[st].parent, c, out);
    }
    return m->n_sets - out;
}

static bool stack_can_end(const gram_matcher *m, int32_t st)
{
    if (st < 0) return true;
    const gram_grammar *g = m->g;
    int32_t pos = m->fr[st].pos, parent = m->fr[st].parent;
    for (;;) {
        int32_t s = g->sym[pos];
        if (s == GRAM_END) {
            if (parent < 0) return true;
            pos = m->fr[parent].pos;
            parent = m->fr[parent].parent;
        } else if (s >= 0 || !g->rule_nullable[GRAM_SYM_RULE(s)]) {
            return false;
        } else {
            pos++;
        }
    }
}

static bool stack_can_grow(const gram_matcher *m, int32_t st)
{
    const gram_grammar *g = m->g;
    if (st < 0) return false;
    int32_t pos = m->fr[st].pos, parent = m->fr[st].parent;
    for (;;) {
        int32_t s = g->sym[pos];
        if (s == GRAM_END) {
            if (parent < 0) return false;
            pos = m->fr[parent].pos;
            parent = m->fr[parent].parent;
            continue;
        }
        if (s >= 0) return true;
        int32_t r = GRAM_SYM_RULE(s);
        for (int k = 0; k < 8; k++)
            if (g->rule_first[r][k]) return true;
        if (!g->rule_nullable[r]) return false;
        pos++;
    }
}

bool gram_matcher_can_end(const gram_matcher *m)
{
    for (int32_t i = 0; i < m->cur_n; i++)
        if (stack_can_end(m, m->sets[m->cur_off + i])) return true;
    return false;
}

bool gram_matcher_must_end(const gram_matcher *m)
{
    for (int32_t i = 0; i < m->cur_n; i++)
        if (stack_can_grow(m, m->sets[m->cur_off + i])) return false;
    return gram_matcher_can_end(m);
}

/* Copies the current stacks into a fresh arena (dropping the frames of
 * refused paths and of earlier states) and moves them to sets[0..). */
static bool compact(gram_matcher *m, int32_t off, int32_t n)
{
    if (!grow((void **)&m->remap, &m->cap_remap, m->n_fr + 1, sizeof *m->remap) ||
        !grow((void **)&m->fr2, &m->cap_fr2, m->n_fr + 1, sizeof *m->fr2) ||
        !grow((void **)&m->chain, &m->cap_chain, m->n_fr + 1, sizeof *m->chain))
        return false;
    for (int32_t i = 0; i < m->n_fr; i++) m->remap[i] = -2;
    int32_t n2 = 0;
    for (int32_t i = 0; i < n; i++) {
        int32_t st = m->sets[off + i], depth = 0;
        while (st >= 0 && m->remap[st] == -2) { m->chain[depth++] = st; st = m->fr[st].parent; }
        int32_t below = st < 0 ? -1 : m->remap[st];
        while (depth > 0) {
            int32_t old = m->chain[--depth];
            m->fr2[n2] = (frame){m->fr[old].pos, below, m->fr[old].hash};
            m->remap[old] = below = n2++;
        }
        int32_t top = m->sets[off + i];
        m->sets[off + i] = top < 0 ? -1 : m->remap[top];
    }
    frame *t = m->fr; m->fr = m->fr2; m->fr2 = t;
    int32_t tc = m->cap_fr; m->cap_fr = m->cap_fr2; m->cap_fr2 = tc;
    m->n_fr = n2;
    memmove(m->sets, m->sets + off, sizeof *m->sets * (size_t)n);
    m->n_sets = n;
    m->cur_off = 0;
    m->cur_n = n;
    return true;
}

vki_status gram_matcher_accept_bytes(gram_matcher *m, const char *s, size_t len)
{
    int32_t mark_fr = m->n_fr, mark_sets = m->n_sets, off = m->cur_off, n = m->cur_n;
    m->overflow = m->oom = false;
    for (size_t i = 0; i < len; i++) {
        int32_t o2 = m->n_sets, n2 = advance(m, off, n, (uint8_t)s[i]);
        if (m->oom || m->overflow || n2 == 0) {
            m->n_fr = mark_fr;
            m->n_sets = mark_sets;
            if (m->oom) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "grammar: out of memory");
            if (m->overflow)
                return vki_fail(VKI_ERR_INVALID_ARGUMENT, "grammar: more than %d parses alive at once or %d "
                                "expansions for one byte (the grammar is too ambiguous)", MAX_STACKS,
                                MAX_EXPANSIONS);
            return vki_fail(VKI_ERR_INVALID_ARGUMENT, "grammar: byte %zu (0x%02x) of the text is not allowed here",
                            i, (unsigned)(uint8_t)s[i]);
        }
        off = o2;
        n = n2;
    }
    if (!compact(m, off, n)) {
        m->n_fr = mark_fr;
        m->n_sets = mark_sets;
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "grammar: out of memory");
    }
    return VKI_OK;
}

vki_status gram_matcher_accept_token(gram_matcher *m, int32_t id)
{
    const gram_vocab *v = m->v;
    if (id < 0 || id >= v->n_vocab) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "grammar: token %d out of range", id);
    for (int32_t k = 0; k < v->n_eog; k++)
        if (v->eog[k] == id) {
            if (gram_matcher_can_end(m)) return VKI_OK;
            return vki_fail(VKI_ERR_INVALID_ARGUMENT, "grammar: end of generation before the text is complete");
        }
    if (!v->tok_len[id]) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "grammar: token %d has no text", id);
    return gram_matcher_accept_bytes(m, v->text + v->tok_off[id], (size_t)v->tok_len[id]);
}

/* ===== Masks ============================================================= */

static void walk(gram_matcher *m, int32_t tn, int32_t off, int32_t n)
{
    const gram_vocab *v = m->v;
    for (int32_t c = v->node[tn].first_child; c >= 0 && !m->overflow && !m->oom; c = v->node[c].next_sibling) {
        const gram_trie_node *nd = &v->node[c];
        int32_t mark_fr = m->n_fr, mark_sets = m->n_sets, o2 = m->n_sets;
        int32_t n2 = advance(m, off, n, nd->byte);
        if (n2 > 0) {
            for (int32_t k = nd->tok_begin; k < nd->tok_end; k++) {
                int32_t id = v->toks[k];
                m->mask[id >> 5] |= 1u << (id & 31);
            }
            if (nd->first_child >= 0 && (n2 > 1 || m->sets[o2] >= 0)) walk(m, c, o2, n2);
        }
        m->n_fr = mark_fr;
        m->n_sets = mark_sets;
    }
}

static uint64_t hash_key(const int32_t *k, int32_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (int32_t i = 0; i < n; i++) h = (h ^ (uint32_t)k[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

/* The state as the frame positions of each stack, top to bottom. */
static bool build_key(gram_matcher *m, int32_t *len)
{
    int32_t n = 0;
    for (int32_t i = 0; i < m->cur_n; i++) {
        for (int32_t st = m->sets[m->cur_off + i];; st = m->fr[st].parent) {
            if (!grow((void **)&m->key, &m->cap_key, n + 1, sizeof *m->key)) return false;
            if (st < 0) { m->key[n++] = -1; break; }
            m->key[n++] = m->fr[st].pos;
        }
    }
    *len = n;
    return true;
}

static void cache_clear(gram_matcher *m)
{
    for (int32_t i = 0; i < m->n_slots; i++) m->slots[i] = -1;
    m->n_ents = 0;
    m->n_keys = 0;
}

vki_status gram_matcher_mask(gram_matcher *m, const uint32_t **mask)
{
    const gram_vocab *v = m->v;
    const size_t words = (size_t)v->mask_words;
    int32_t klen = 0;
    bool keyed = m->max_ents > 0 && build_key(m, &klen);
    uint64_t h = keyed ? hash_key(m->key, klen) : 0;
    if (keyed) {
        for (int32_t s = (int32_t)(h & (uint64_t)(m->n_slots - 1));; s = (s + 1) & (m->n_slots - 1)) {
            int32_t e = m->slots[s];
            if (e < 0) break;
            const cache_ent *ce = &m->ents[e];
            if (ce->hash == h && ce->key_len == klen && !memcmp(m->keys + ce->key_off, m->key, sizeof *m->key * (size_t)klen)) {
                m->n_cached++;
                *mask = m->masks + (size_t)ce->mask * words;
                return VKI_OK;
            }
        }
    }
    memset(m->mask, 0, words * sizeof *m->mask);
    if (gram_matcher_can_end(m))
        for (int32_t k = 0; k < v->n_eog; k++) m->mask[v->eog[k] >> 5] |= 1u << (v->eog[k] & 31);
    m->overflow = m->oom = false;
    int32_t mark_fr = m->n_fr, mark_sets = m->n_sets;
    walk(m, 0, m->cur_off, m->cur_n);
    m->n_fr = mark_fr;
    m->n_sets = mark_sets;
    m->n_walked++;
    if (m->oom) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "grammar: out of memory");
    if (m->overflow)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "grammar: more than %d parses alive at once or %d "
                        "expansions for one byte (the grammar is too ambiguous)", MAX_STACKS, MAX_EXPANSIONS);
    *mask = m->mask;
    if (!keyed) return VKI_OK;
    if (m->n_ents == m->max_ents) cache_clear(m);
    if (!grow((void **)&m->keys, &m->cap_keys, m->n_keys + klen, sizeof *m->keys)) return VKI_OK; /* uncached */
    cache_ent *ce = &m->ents[m->n_ents];
    *ce = (cache_ent){h, m->n_keys, klen, m->n_ents};
    memcpy(m->keys + m->n_keys, m->key, sizeof *m->key * (size_t)klen);
    m->n_keys += klen;
    memcpy(m->masks + (size_t)ce->mask * words, m->mask, words * sizeof *m->mask);
    int32_t s = (int32_t)(h & (uint64_t)(m->n_slots - 1));
    while (m->slots[s] >= 0) s = (s + 1) & (m->n_slots - 1);
    m->slots[s] = m->n_ents++;
    return VKI_OK;
}

void gram_matcher_counts(const gram_matcher *m, uint64_t *cached, uint64_t *walked)
{
    if (cached) *cached = m->n_cached;
    if (walked) *walked = m->n_walked;
}

/* ===== Lifetime ========================================================== */

vki_status gram_matcher_create(const gram_grammar *g, const gram_vocab *v, gram_matcher **out)
{
    *out = NULL;
    gram_matcher *m = calloc(1, sizeof *m);
    if (!m) goto oom;
    m->g = g;
    m->v = v;
    m->mask = calloc((size_t)v->mask_words, sizeof *m->mask);
    if (!m->mask) goto oom;
    size_t mask_bytes = (size_t)v->mask_words * 4;
    m->max_ents = (int32_t)(CACHE_BYTES / mask_bytes);
    if (m->max_ents > CACHE_MAX_ENTS) m->max_ents = CACHE_MAX_ENTS;
    if (m->max_ents > 0) {
        m->n_slots = 1;
        while (m->n_slots < 2 * m->max_ents) m->n_slots *= 2;
        m->slots = malloc(sizeof *m->slots * (size_t)m->n_slots);
        m->ents = malloc(sizeof *m->ents * (size_t)m->max_ents);
        m->masks = malloc(mask_bytes * (size_t)m->max_ents);
        if (!m->slots || !m->ents || !m->masks) goto oom;
        cache_clear(m);
    }
    /* the start: one stack whose frame calls root */
    int32_t st = new_frame(m, g->start, -1);
    if (st < 0 || !grow((void **)&m->sets, &m->cap_sets, 1, sizeof *m->sets)) goto oom;
    m->sets[0] = st;
    m->n_sets = 1;
    m->cur_off = 0;
    m->cur_n = 1;
    *out = m;
    return VKI_OK;
oom:
    gram_matcher_destroy(m);
    return vki_fail(VKI_ERR_OUT_OF_MEMORY, "grammar: out of memory for a matcher");
}

void gram_matcher_destroy(gram_matcher *m)
{
    if (!m) return;
    free(m->fr);
    free(m->fr2);
    free(m->sets);
    free(m->mask);
    free(m->ents);
    free(m->slots);
    free(m->masks);
    free(m->keys);
    free(m->key);
    free(m->remap);
    free(m->chain);
    free(m);
}
