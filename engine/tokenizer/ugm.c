/*
 * ugm.c: SentencePiece unigram tokenization (llama.cpp's "t5"/UGM: T5,
 * XLM-R, bge-m3, multilingual-e5): the precompiled charsmap normalizer,
 * whitespace handling (SentencePiece's rules for GGUF files, the HF
 * normalizer/Metaspace rules for tokenizer.json), the best segmentation by
 * summed piece scores (Viterbi over a byte trie of the pieces), unknown
 * characters as one fused unknown token, and byte fallback.
 * Owns: the piece trie and the charsmap copy. Must not: keep pointers into
 * the model file.
 */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "util.h"
#include "tok_internal.h"

/* SentencePiece scores an unknown character this far below the worst
 * piece, so any segmentation into real pieces wins (kUnkPenalty). */
#define UGM_UNK_PENALTY 10.0

#define META "\xe2\x96\x81" /* U+2581, the escaped space */

typedef enum ugm_prepend { UGM_PREPEND_NEVER, UGM_PREPEND_ALWAYS, UGM_PREPEND_FIRST } ugm_prepend;

struct tok_ugm {
    /* piece trie: node 0 is the root; an edge is (node << 8 | byte) + 1 in
     * an open-addressed table, so 0 marks an empty slot */
    int32_t  *node_id;        /* [n_nodes] piece ending here, -1 = none   */
    uint32_t  n_nodes;
    size_t    node_bytes;     /* allocated bytes of node_id               */
    uint64_t *edge_key;       /* [edge_cap]                               */
    uint32_t *edge_child;     /* [edge_cap]                               */
    uint32_t  edge_cap, n_edges;
    double    unk_score;      /* worst normal piece - UGM_UNK_PENALTY     */
    bool      byte_fallback;  /* all 256 <0xNN> byte tokens are present   */

    /* precompiled charsmap: a darts-clone double array over UTF-8 bytes
     * whose leaves index NUL-terminated replacements */
    uint32_t *xcda;           /* [n_xcda] units                           */
    uint32_t  n_xcda;
    char     *repl;           /* [n_repl] replacements, NUL-terminated    */
    uint32_t  n_repl;

    /* whitespace: SentencePiece's rules (GGUF), or HF's (tokenizer.json) */
    bool        hf;
    bool        remove_extra_ws; /* spm: trim and collapse ' ' runs           */
    bool        escape_ws;       /* ' ' -> U+2581                             */
    bool        hf_ws_split;     /* hf: WhitespaceSplit before Metaspace      */
    bool        hf_collapse;     /* hf: Replace(" {2,}") collapses space runs */
    bool        hf_split;        /* hf: Metaspace splits before each U+2581   */
    ugm_prepend hf_prepend;      /* hf: Metaspace prepend_scheme              */
};

/* ===== Piece trie ======================================================== */

static uint32_t edge_hash(uint64_t k)
{
    k ^= k >> 29;
    k *= 0xbf58476d1ce4e5b9ull;
    k ^= k >> 32;
    return (uint32_t)k;
}

static int64_t trie_child(const tok_ugm *u, uint32_t node, uint8_t b)
{
    uint64_t key = ((uint64_t)node << 8 | b) + 1;
    uint32_t mask = u->edge_cap - 1;
    for (uint32_t i = edge_hash(key) & mask;; i = (i + 1) & mask) {
        if (u->edge_key[i] == key) return u->edge_child[i];
        if (u->edge_key[i] == 0) return -1;
    }
}

static bool edges_grow(tok_ugm *u)
{
    uint32_t cap = u->edge_cap ? u->edge_cap * 2 : 1024;
    uint64_t *key = calloc(cap, sizeof *key);
    uint32_t *child = malloc(cap * sizeof *child);
    if (!key || !child || cap < u->edge_cap) {
        free(key);
        free(child);
        return false;
    }
    for (uint32_t i = 0; i < u->edge_cap; i++) {
        if (!u->edge_key[i]) continue;
        uint32_t j = edge_hash(u->edge_key[i]) & (cap - 1);
        while (key[j]) j = (j + 1) & (cap - 1);
        key[j] = u->edge_key[i];
        child[j] = u->edge_child[i];
    }
    free(u->edge_key);
    free(u->edge_child);
    u->edge_key = key;
    u->edge_child = child;
    u->edge_cap = cap;
    return true;
}

static bool trie_insert(tok_ugm *u, const uint8_t *s, size_t n, int32_t id)
{
    uint32_t node = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t c = trie_child(u, node, s[i]);
        if (c < 0) {
            if (u->n_nodes == INT32_MAX) return false;
            if ((uint64_t)(u->n_edges + 1) * 2 > u->edge_cap && !edges_grow(u)) return false;
            if (!tok_grow((void **)&u->node_id, &u->node_bytes, ((size_t)u->n_nodes + 1) * sizeof *u->node_id))
                return false;
            c = u->n_nodes++;
            u->node_id[c] = -1;
            uint64_t key = ((uint64_t)node << 8 | s[i]) + 1;
            uint32_t j = edge_hash(key) & (u->edge_cap - 1);
            while (u->edge_key[j]) j = (j + 1) & (u->edge_cap - 1);
            u->edge_key[j] = key;
            u->edge_child[j] = (uint32_t)c;
            u->n_edges++;
        }
        node = (uint32_t)c;
    }
    /* duplicates: the first id keeps the text (as vocab.c does) */
    if (u->node_id[node] < 0) u->node_id[node] = id;
    return true;
}

/* ===== Precompiled charsmap ============================================== */

/* A darts-clone unit: the child offset, the label checked on entry, whether
 * a value hangs below, and the value itself. */
static uint32_t unit_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
static uint32_t unit_label(uint32_t u) { return u & ((1u << 31) | 0xff); }
static bool     unit_leaf(uint32_t u) { return (u >> 8) & 1; }
static uint32_t unit_value(uint32_t u) { return u & ((1u << 31) - 1); }

/* The blob is [u32 size][size bytes of units][replacement strings]: all
 * little-endian, as SentencePiece writes it. */
static vki_status charsmap_load(tok_ugm *u, const vki_model_file *f, const vki_kv *kv)
{
    const char *path = vki_file_path(f);
    if (kv->type != VKI_KV_ARRAY || (kv->v.arr.elem != VKI_KV_U8 && kv->v.arr.elem != VKI_KV_I8))
        return vki_fail(VKI_ERR_BAD_FILE, "%s: tokenizer.ggml.precompiled_charsmap has type %d, expected an array of "
                        "u8 or i8", path, (int)kv->type);
    uint64_t n = kv->v.arr.n;
    if (n == 0) return VKI_OK;
    uint8_t *b = malloc(n);
    if (!b) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for a %llu-byte charsmap",
                            (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++) b[i] = (uint8_t)kv->v.arr.items[i].v.u;
    vki_status st = VKI_OK;
    uint32_t size = n >= 4 ? (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24 : 0;
    if (n < 4 || size % 4 != 0 || size == 0 || (uint64_t)size + 4 >= n || n > UINT32_MAX) {
        st = vki_fail(VKI_ERR_BAD_FILE, "%s: tokenizer.ggml.precompiled_charsmap: %llu bytes with a double array of "
                      "%u bytes; expected a non-empty multiple of 4 followed by replacement strings",
                      path, (unsigned long long)n, size);
        goto done;
    }
    u->n_xcda = size / 4;
    u->n_repl = (uint32_t)(n - 4 - size);
    u->xcda = malloc((size_t)size);
    u->repl = malloc((size_t)u->n_repl + 1); /* + a NUL so a lookup never runs off */
    if (!u->xcda || !u->repl) {
        st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for the charsmap");
        goto done;
    }
    for (uint32_t i = 0; i < u->n_xcda; i++) {
        const uint8_t *p = b + 4 + 4 * (size_t)i;
        u->xcda[i] = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    }
    memcpy(u->repl, b + 4 + size, u->n_repl);
    u->repl[u->n_repl] = 0;
done:
    free(b);
    return st;
}

/* The longest charsmap rule matching a prefix of s[0..n): its byte length
 * (0 when none) and replacement. SentencePiece takes the longest match
 * (Normalizer::NormalizePrefix), HF's Precompiled the shortest; a NUL byte
 * ends the search (the double array uses label 0 for its own leaves), and
 * so do out-of-range units. */
static size_t charsmap_match(const tok_ugm *u, const uint8_t *s, size_t n, bool shortest, const char **repl)
{
    if (!u->n_xcda) return 0;
    uint32_t node = unit_offset(u->xcda[0]);
    size_t best = 0;
    for (size_t i = 0; i < n && s[i]; i++) {
        node ^= s[i];
        if (node >= u->n_xcda) break;
        uint32_t unit = u->xcda[node];
        if (unit_label(unit) != s[i]) break;
        node ^= unit_offset(unit);
        if (!unit_leaf(unit)) continue;
        if (node >= u->n_xcda) break;
        uint32_t v = unit_value(u->xcda[node]);
        if (v >= u->n_repl) break;
        best = i + 1;
        *repl = u->repl + v;
        if (shortest) break;
    }
    return best;
}

/* ===== Setup ============================================================= */

void tok_ugm_free(tok_ugm *u)
{
    if (!u) return;
    free(u->node_id);
    free(u->edge_key);
    free(u->edge_child);
    free(u->xcda);
    free(u->repl);
    free(u);
}

static bool get_str_is(const vki_model_file *f, const char *key, const char *want)
{
    vki_str s;
    return vki_file_get_str(f, key, &s) && s.n == strlen(want) && memcmp(s.p, want, s.n) == 0;
}

vki_status tok_ugm_prepare(vki_tokenizer *t, const vki_model_file *f)
{
    const char *path = vki_file_path(f);
    tok_ugm *u = calloc(1, sizeof *u);
    if (!u) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    t->ugm = u;

    /* llama.cpp's defaults for "t5" where the file is silent: EOS 1, UNK
     * 2, PAD 0, EOS appended, no BOS, the dummy prefix on */
    bool b;
    if (!vki_file_find_kv(f, "tokenizer.ggml.eos_token_id") && t->n_vocab > 1) t->eos = 1;
    if (!vki_file_find_kv(f, "tokenizer.ggml.padding_token_id")) t->pad = 0;
    if (!vki_file_get_bool(f, "tokenizer.ggml.add_eos_token", &b)) t->add_eos = true;
    if (!vki_file_get_bool(f, "tokenizer.ggml.add_space_prefix", &b)) t->add_space_prefix = true;
    u->remove_extra_ws = vki_file_get_bool(f, "tokenizer.ggml.remove_extra_whitespaces", &b) ? b : true;
    u->escape_ws = vki_file_get_bool(f, "tokenizer.ggml.escape_whitespaces", &b) ? b : true;
    if (vki_file_get_bool(f, "tokenizer.ggml.treat_whitespace_as_suffix", &b) && b)
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: tokenizer.ggml.treat_whitespace_as_suffix is not supported", path);
    /* the unknown token: the file's, else the first of type UNKNOWN */
    if (t->unk < 0 || t->tokens[t->unk].type != TOK_TYPE_UNKNOWN) {
        int32_t found = -1;
        for (int32_t i = 0; i < t->n_vocab && found < 0; i++)
            if (t->tokens[i].type == TOK_TYPE_UNKNOWN) found = i;
        if (found >= 0 || t->unk < 0) t->unk = found;
    }
    if (t->unk < 0)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: unigram vocabulary without an unknown token (no token of type 2 and no "
                        "tokenizer.ggml.unknown_token_id)", path);

    /* the HF pipeline (loader/hf_tokenizer.c maps tokenizer.json onto these
     * keys; tokenizer.hf.ugm_prepend marks it): "never" | "always" | "first" */
    if (vki_file_find_kv(f, "tokenizer.hf.ugm_prepend")) {
        u->hf = true;
        u->escape_ws = true;
        if (get_str_is(f, "tokenizer.hf.ugm_prepend", "never")) u->hf_prepend = UGM_PREPEND_NEVER;
        else if (get_str_is(f, "tokenizer.hf.ugm_prepend", "always")) u->hf_prepend = UGM_PREPEND_ALWAYS;
        else if (get_str_is(f, "tokenizer.hf.ugm_prepend", "first")) u->hf_prepend = UGM_PREPEND_FIRST;
        else
            return vki_fail(VKI_ERR_BAD_FILE, "%s: tokenizer.hf.ugm_prepend is not one of \"never\", \"always\", "
                            "\"first\"", path);
        u->hf_ws_split = vki_file_get_bool(f, "tokenizer.hf.ugm_whitespace_split", &b) && b;
        u->hf_collapse = vki_file_get_bool(f, "tokenizer.hf.ugm_collapse_spaces", &b) && b;
        u->hf_split = vki_file_get_bool(f, "tokenizer.hf.ugm_metaspace_split", &b) && b;
    }

    /* SentencePiece's decoder keeps dropping the leading U+2581 of pieces
     * until some text has come out; HF's Metaspace decoder only the first */
    t->strip_while_empty = !u->hf;

    const vki_kv *cm = vki_file_find_kv(f, "tokenizer.ggml.precompiled_charsmap");
    if (cm) VKI_TRY(charsmap_load(u, f, cm));

    /* the trie holds the pieces Viterbi may choose: normal and user-defined
     * ones (SentencePiece skips unused pieces; control, unknown and byte
     * pieces never match text). HF's Unigram matches every vocabulary
     * entry, so its byte pieces match their own text ("<0x41>"); control
     * and unknown ones are added tokens, split out before (or, without
     * parse_special, deliberately kept from matching user text). */
    if (!edges_grow(u) || !tok_grow((void **)&u->node_id, &u->node_bytes, 64 * sizeof *u->node_id)) goto oom;
    u->node_id[0] = -1;
    u->n_nodes = 1;
    double min_score = DBL_MAX;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        const tok_entry *e = &t->tokens[i];
        if (e->type != TOK_TYPE_NORMAL && e->type != TOK_TYPE_USER_DEFINED && !(u->hf && e->type == TOK_TYPE_BYTE))
            continue;
        if (e->len == 0) continue;
        if (e->type == TOK_TYPE_NORMAL && e->score < min_score) min_score = e->score;
        if (!trie_insert(u, (const uint8_t *)tok_text(t, i), e->len, i)) goto oom;
    }
    u->unk_score = (min_score == DBL_MAX ? 0.0 : min_score) - UGM_UNK_PENALTY;

    /* byte tokens, for byte fallback */
    static const char hex[] = "0123456789ABCDEF";
    int n_bytes = 0;
    for (int i = 0; i < 256; i++) {
        char name[6] = {'<', '0', 'x', hex[i >> 4], hex[i & 15], '>'};
        int32_t id = tok_find(t, name, 6);
        t->byte_id[i] = id >= 0 && t->tokens[id].type == TOK_TYPE_BYTE ? id : -1;
        n_bytes += t->byte_id[i] >= 0;
    }
    u->byte_fallback = n_bytes == 256;
    return VKI_OK;
oom:
    return vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory building the piece trie (%u nodes)", u->n_nodes);
}

/* ===== Normalization ===================================================== */

typedef struct ugm_buf { char *p; size_t n, cap; } ugm_buf;

static bool put(ugm_buf *b, const char *s, size_t n)
{
    if (n > SIZE_MAX - b->n - 1 || !tok_grow((void **)&b->p, &b->cap, b->n + n + 1)) return false;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    return true;
}

static bool starts_meta(const char *s, size_t n) { return n >= 3 && memcmp(s, META, 3) == 0; }

/* SentencePiece's charsmap over text: each position takes the longest
 * rule, else the character as it is, else (invalid UTF-8) U+FFFD for one
 * byte. */
static bool apply_charsmap(const tok_ugm *u, const char *text, size_t len, ugm_buf *out)
{
    for (size_t i = 0; i < len;) {
        const char *rep;
        size_t m = charsmap_match(u, (const uint8_t *)text + i, len - i, false, &rep);
        if (m) {
            if (!put(out, rep, strlen(rep))) return false;
            i += m;
            continue;
        }
        int l;
        uint32_t cp = uc_decode((const uint8_t *)text + i, len - i, &l);
        if (!(cp == UC_INVALID ? put(out, "\xef\xbf\xbd", 3) : put(out, text + i, (size_t)l))) return false;
        i += (size_t)l;
    }
    return true;
}

/* ----- extended grapheme clusters (UAX #29), as far as HF's Precompiled
 * needs them: it looks at whole clusters before single characters ----- */

enum { GB_OTHER, GB_CR, GB_LF, GB_CONTROL, GB_EXTEND, GB_ZWJ, GB_PREPEND, GB_RI, GB_L, GB_V, GB_T, GB_LV, GB_LVT };

static bool in(uint32_t c, uint32_t a, uint32_t b) { return c >= a && c <= b; }

static int gb_class(uint32_t c)
{
    if (c == '\r') return GB_CR;
    if (c == '\n') return GB_LF;
    if (c == 0x200D) return GB_ZWJ;
    if (c >= 0x110000) return GB_CONTROL;
    if (in(c, 0x1100, 0x115F) || in(c, 0xA960, 0xA97C)) return GB_L;
    if (in(c, 0x1160, 0x11A7) || in(c, 0xD7B0, 0xD7C6)) return GB_V;
    if (in(c, 0x11A8, 0x11FF) || in(c, 0xD7CB, 0xD7FB)) return GB_T;
    if (in(c, 0xAC00, 0xD7A3)) return (c - 0xAC00) % 28 == 0 ? GB_LV : GB_LVT;
    if (in(c, 0x1F1E6, 0x1F1FF)) return GB_RI;
    if (in(c, 0x0600, 0x0605) || c == 0x06DD || c == 0x070F || in(c, 0x0890, 0x0891) || c == 0x08E2 ||
        c == 0x0D4E || c == 0x110BD || c == 0x110CD)
        return GB_PREPEND;
    /* Extend and SpacingMark join alike in extended clusters: marks, ZWNJ,
     * halfwidth kana voicing marks, emoji modifiers, tags, Thai/Lao AM */
    if (c == 0x200C || in(c, 0xFF9E, 0xFF9F) || in(c, 0x1F3FB, 0x1F3FF) || in(c, 0xE0020, 0xE007F) || c == 0x0E33 ||
        c == 0x0EB3)
        return GB_EXTEND;
    uint16_t fl = uc_flags(c);
    if (fl & UC_M) return GB_EXTEND;
    if ((fl & (UC_CC | UC_CF)) || c == 0x2028 || c == 0x2029) return GB_CONTROL;
    return GB_OTHER;
}

/* Extended_Pictographic, by its blocks (close enough for ZWJ sequences) */
static bool ext_pict(uint32_t c)
{
    return c == 0xA9 || c == 0xAE || c == 0x203C || c == 0x2049 || c == 0x2122 || c == 0x2139 ||
           in(c, 0x2194, 0x2199) || in(c, 0x21A9, 0x21AA) || in(c, 0x231A, 0x231B) || c == 0x2328 || c == 0x2388 ||
           c == 0x23CF || in(c, 0x23E9, 0x23F3) || in(c, 0x23F8, 0x23FA) || c == 0x24C2 || in(c, 0x25AA, 0x25AB) ||
           c == 0x25B6 || c == 0x25C0 || in(c, 0x25FB, 0x25FE) || in(c, 0x2600, 0x27BF) || in(c, 0x2934, 0x2935) ||
           in(c, 0x2B05, 0x2B07) || in(c, 0x2B1B, 0x2B1C) || c == 0x2B50 || c == 0x2B55 || c == 0x3030 ||
           c == 0x303D || c == 0x3297 || c == 0x3299 ||
           (in(c, 0x1F000, 0x1FAFF) && !in(c, 0x1F1E6, 0x1F1FF) && !in(c, 0x1F3FB, 0x1F3FF)) || in(c, 0x1FC00, 0x1FFFD);
}

/* The end of the cluster that starts at s[i] (s is valid UTF-8). */
static size_t grapheme_end(const char *s, size_t n, size_t i)
{
    int l;
    uint32_t c = uc_decode((const uint8_t *)s + i, n - i, &l);
    int prev = gb_class(c), n_ri = prev == GB_RI;
    bool pict = ext_pict(c), pict_zwj = false; /* ExtPict Extend* [ZWJ] so far */
    for (i += (size_t)l; i < n; i += (size_t)l) {
        c = uc_decode((const uint8_t *)s + i, n - i, &l);
        int cur = gb_class(c);
        bool join;
        if (prev == GB_CR) join = cur == GB_LF;                                         /* GB3, GB4 */
        else if (prev == GB_CONTROL || prev == GB_LF) join = false;                     /* GB4 */
        else if (cur == GB_CONTROL || cur == GB_CR || cur == GB_LF) join = false;       /* GB5 */
        else if (prev == GB_L) join = cur == GB_L || cur == GB_V || cur == GB_LV || cur == GB_LVT; /* GB6 */
        else join = false;
        if (!join && prev != GB_CR && prev != GB_LF && prev != GB_CONTROL && cur != GB_CONTROL && cur != GB_CR &&
            cur != GB_LF) {
            if ((prev == GB_LV || prev == GB_V) && (cur == GB_V || cur == GB_T)) join = true; /* GB7 */
            else if ((prev == GB_LVT || prev == GB_T) && cur == GB_T) join = true;           /* GB8 */
            else if (cur == GB_EXTEND || cur == GB_ZWJ) join = true;                          /* GB9, GB9a */
            else if (prev == GB_PREPEND) join = true;                                         /* GB9b */
            else if (prev == GB_ZWJ && pict_zwj && ext_pict(c)) join = true;                  /* GB11 */
            else if (prev == GB_RI && cur == GB_RI && n_ri % 2 == 1) join = true;             /* GB12, GB13 */
        }
        if (!join) break;
        pict_zwj = pict && cur == GB_ZWJ;
        if (cur != GB_EXTEND && cur != GB_ZWJ) pict = ext_pict(c);
        n_ri = cur == GB_RI ? n_ri + 1 : 0;
        prev = cur;
    }
    return i;
}

/* HF's Precompiled normalizer (spm_precompiled): a cluster under 6 bytes
 * that starts with a rule becomes that rule's replacement, whole; any
 * other cluster goes character by character. */
static bool apply_charsmap_hf(const tok_ugm *u, const char *text, size_t len, ugm_buf *out)
{
    ugm_buf v = {0};
    bool ok = true;
    /* invalid UTF-8 first becomes U+FFFD (HF only ever sees valid text) */
    for (size_t i = 0; i < len && ok;) {
        int l;
        uint32_t cp = uc_decode((const uint8_t *)text + i, len - i, &l);
        ok = cp == UC_INVALID ? put(&v, "\xef\xbf\xbd", 3) : put(&v, text + i, (size_t)l);
        i += (size_t)l;
    }
    for (size_t i = 0; i < v.n && ok;) {
        size_t j = grapheme_end(v.p, v.n, i);
        const char *rep;
        if (j - i < 6 && charsmap_match(u, (const uint8_t *)v.p + i, j - i, true, &rep)) {
            ok = put(out, rep, strlen(rep));
            i = j;
            continue;
        }
        while (i < j && ok) {
            size_t l = (size_t)uc_seq_len((uint8_t)v.p[i]);
            ok = charsmap_match(u, (const uint8_t *)v.p + i, l, true, &rep) ? put(out, rep, strlen(rep))
                                                                            : put(out, v.p + i, l);
            i += l;
        }
    }
    free(v.p);
    return ok;
}

/* SentencePiece's whitespace rules (Normalizer::Normalize) on normalized
 * text: with remove_extra_whitespaces, leading spaces go, runs collapse to
 * one and trailing ones go (after escaping, so a trailing literal U+2581
 * goes too); the dummy prefix comes first. */
static bool spm_spaces(const tok_ugm *u, const char *s, size_t n, bool prefix, ugm_buf *out)
{
    const char *sym = u->escape_ws ? META : " ";
    const size_t sym_n = u->escape_ws ? 3 : 1;
    size_t i = 0;
    if (u->remove_extra_ws) while (i < n && s[i] == ' ') i++;
    if (i == n) return true;
    if (prefix && !put(out, sym, sym_n)) return false;
    bool prev_space = u->remove_extra_ws;
    for (; i < n; i++) {
        if (s[i] != ' ') {
            if (!put(out, s + i, 1)) return false;
            prev_space = false;
        } else if (!(u->remove_extra_ws && prev_space)) {
            if (!put(out, sym, sym_n)) return false;
            prev_space = true;
        }
    }
    if (u->remove_extra_ws)
        while (out->n >= sym_n && memcmp(out->p + out->n - sym_n, sym, sym_n) == 0) out->n -= sym_n;
    return true;
}

/* Appends one HF pre-token: spaces escaped, U+2581 prepended unless it
 * already starts with one (Metaspace), and its start recorded. */
static bool hf_pretoken(const char *s, size_t n, bool prefix, ugm_buf *out, ugm_buf *cuts)
{
    if (n == 0) return true; /* HF drops empty pieces; prepend does nothing on "" */
    size_t at = out->n;
    if (!put(cuts, (const char *)&at, sizeof at)) return false;
    bool esc_first = s[0] == ' ';
    if (prefix && !esc_first && !starts_meta(s, n) && !put(out, META, 3)) return false;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == ' ' ? put(out, META, 3) : put(out, s + i, 1))) return false;
    return true;
}

/* HF's rules: [WhitespaceSplit], the " {2,}" collapse, then Metaspace:
 * ' ' -> U+2581, the prepend scheme, and optionally a split before each
 * U+2581. cuts receives each pre-token's start offset in out (size_t). */
static bool hf_spaces(const tok_ugm *u, const char *s, size_t n, bool at_start, ugm_buf *out, ugm_buf *cuts)
{
    const bool prefix = u->hf_prepend == UGM_PREPEND_ALWAYS || (u->hf_prepend == UGM_PREPEND_FIRST && at_start);
    if (u->hf_ws_split) {
        /* words between White_Space characters, each its own pre-token */
        for (size_t i = 0; i < n;) {
            int l;
            uint32_t cp = uc_decode((const uint8_t *)s + i, n - i, &l);
            if (cp != UC_INVALID && uc_is_space(cp)) { i += (size_t)l; continue; }
            size_t j = i;
            while (j < n) {
                cp = uc_decode((const uint8_t *)s + j, n - j, &l);
                if (cp != UC_INVALID && uc_is_space(cp)) break;
                j += (size_t)l;
            }
            if (!hf_pretoken(s + i, j - i, prefix, out, cuts)) return false;
            i = j;
        }
    } else if (u->hf_collapse) {
        ugm_buf c = {0};
        bool ok = true;
        for (size_t i = 0; i < n && ok; i++)
            if (s[i] != ' ' || i == 0 || s[i - 1] != ' ') ok = put(&c, s + i, 1);
        ok = ok && hf_pretoken(c.p, c.n, prefix, out, cuts);
        free(c.p);
        if (!ok) return false;
    } else if (!hf_pretoken(s, n, prefix, out, cuts)) {
        return false;
    }
    return true;
}

/* ===== Viterbi =========================================================== */

typedef struct ugm_lattice {
    double  *score;  /* [n+1] best score of a segmentation of s[a..i)   */
    uint32_t *from;  /* [n+1] where the last piece of that one starts    */
    int32_t *id;     /* [n+1] and which piece it is (unk for unknown)    */
} ugm_lattice;

/* The best segmentation of s[a..b) into pieces, appended to out. Scores
 * add up in double (HF's f64; llama.cpp does the same). An unknown
 * character costs unk_score; runs of them fuse into one unknown token, or
 * become byte tokens under byte fallback. */
static vki_status viterbi(const vki_tokenizer *t, const char *s, size_t a, size_t b, ugm_lattice *lat,
                          tok_ids *out)
{
    const tok_ugm *u = t->ugm;
    lat->score[a] = 0.0;
    for (size_t i = a + 1; i <= b; i++) lat->score[i] = -DBL_MAX;
    for (size_t i = a; i < b;) {
        size_t clen = (size_t)uc_seq_len((uint8_t)s[i]);
        if (clen > b - i) clen = b - i;
        const double base = lat->score[i];
        bool single = false;
        uint32_t node = 0;
        for (size_t j = i; j < b; j++) {
            int64_t c = trie_child(u, node, (uint8_t)s[j]);
            if (c < 0) break;
            node = (uint32_t)c;
            int32_t id = u->node_id[node];
            if (id < 0) continue;
            if (j + 1 - i == clen) single = true;
            /* user-defined pieces score 0 so that they win (llama.cpp);
             * HF's byte pieces carry their vocabulary score (0) */
            const tok_entry *e = &t->tokens[id];
            double sc = base + (e->type == TOK_TYPE_NORMAL || e->type == TOK_TYPE_BYTE ? (double)e->score : 0.0);
            if (sc > lat->score[j + 1]) {
                lat->score[j + 1] = sc;
                lat->from[j + 1] = (uint32_t)(i - a);
                lat->id[j + 1] = id;
            }
        }
        if (!single && base + u->unk_score > lat->score[i + clen]) {
            lat->score[i + clen] = base + u->unk_score;
            lat->from[i + clen] = (uint32_t)(i - a);
            lat->id[i + clen] = t->unk;
        }
        i += clen;
    }
    /* backtrack: the pieces end to start, then reversed in place */
    const int32_t first = out->n;
    for (size_t end = b; end > a;) {
        size_t start = a + lat->from[end];
        int32_t id = lat->id[end];
        if (id == t->unk && u->byte_fallback) {
            for (size_t k = end; k > start; k--) VKI_TRY(tok_ids_push(out, t->byte_id[(uint8_t)s[k - 1]]));
        } else if (!(id == t->unk && out->n > first && out->v[out->n - 1] == t->unk)) {
            VKI_TRY(tok_ids_push(out, id));
        }
        end = start;
    }
    for (int32_t i = first, j = out->n - 1; i < j; i++, j--) {
        int32_t x = out->v[i];
        out->v[i] = out->v[j];
        out->v[j] = x;
    }
    return VKI_OK;
}

/* ===== Encode ============================================================ */

vki_status tok_ugm_encode(const vki_tokenizer *t, const char *text, size_t len, bool at_start, tok_scratch *sc,
                          tok_ids *out)
{
    const tok_ugm *u = t->ugm;
    ugm_buf a = {0}, w = {0}, cuts = {0};
    ugm_lattice lat = {0};
    vki_status st = VKI_OK;
    if (!(u->hf ? apply_charsmap_hf(u, text, len, &a) : apply_charsmap(u, text, len, &a))) goto oom;
    /* HF normalizer steps that follow Precompiled (Strip, NFKC, ...) */
    const char *s = a.p ? a.p : "";
    size_t n = a.n;
    if (t->n_norm) {
        st = tok_normalize(t, s, n, sc, &s, &n);
        if (st != VKI_OK) goto done;
    }
    if (u->hf) {
        if (!hf_spaces(u, s, n, at_start, &w, &cuts)) goto oom;
    } else {
        size_t zero = 0;
        if (!spm_spaces(u, s, n, t->add_space_prefix, &w) || !put(&cuts, (const char *)&zero, sizeof zero)) goto oom;
    }
    if (w.n == 0) goto done;
    if (w.n >= UINT32_MAX) {
        st = vki_fail(VKI_ERR_INVALID_ARGUMENT, "tokenizer: text of %zu bytes is too long", len);
        goto done;
    }
    lat.score = malloc((w.n + 1) * sizeof *lat.score);
    lat.from = malloc((w.n + 1) * sizeof *lat.from);
    lat.id = malloc((w.n + 1) * sizeof *lat.id);
    if (!lat.score || !lat.from || !lat.id) goto oom;
    /* pre-tokens in order; HF's Metaspace split also cuts before each
     * U+2581 inside them (the mark starts the next piece) */
    const size_t *cut = (const size_t *)cuts.p;
    const size_t n_cuts = cuts.n / sizeof *cut;
    for (size_t k = 0; k < n_cuts && st == VKI_OK; k++) {
        size_t end = k + 1 < n_cuts ? cut[k + 1] : w.n, from = cut[k];
        if (u->hf && u->hf_split) {
            for (size_t i = from + 1; i + 3 <= end && st == VKI_OK; i++) {
                if (!starts_meta(w.p + i, end - i)) continue;
                st = viterbi(t, w.p, from, i, &lat, out);
                from = i;
            }
        }
        if (st == VKI_OK && from < end) st = viterbi(t, w.p, from, end, &lat, out);
    }
    goto done;
oom:
    st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for %zu bytes of text", len);
done:
    free(lat.score);
    free(lat.from);
    free(lat.id);
    free(a.p);
    free(w.p);
    free(cuts.p);
    return st;
}
