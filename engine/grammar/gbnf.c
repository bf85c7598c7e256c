/*
 * gbnf.c: grammar text -> gram_grammar (see grammar.h for the syntax).
 * Groups and repetitions become synthetic rules; character classes over
 * code points become byte classes and, for non-ASCII ranges, alternatives of
 * UTF-8 byte sequences. Refuses undefined and left-recursive rules, which the
 * matcher could not run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/grammar/gram_internal.h"
#include "error.h"

#define MAX_REPEAT 10000   /* x{m,n}: copies cost grammar size; past this it is an error */
#define MAX_RULES  200000

typedef struct ivec { int32_t *p; int32_t n, cap; } ivec;

typedef struct brule {
    char   *name;
    ivec    body;       /* alternatives, each ending in GRAM_END */
    bool    defined;
    int32_t ref_line;   /* where it was first used, for "undefined rule" */
} brule;

typedef struct bld {
    const char *text, *s, *end;
    brule      *rules;
    int32_t     n_rules, cap_rules;
    uint32_t  (*cls)[8];
    int32_t     n_cls, cap_cls;
    int32_t     byte_cls[256]; /* single-byte class ids, -1 until made */
    int32_t     n_synth;
    bool        oom;
    vki_status  st;            /* the first failure                      */
} bld;

/* ===== Small helpers ===================================================== */

static bool ivec_push(bld *b, ivec *v, int32_t x)
{
    if (v->n == v->cap) {
        int32_t cap = v->cap ? v->cap * 2 : 8;
        int32_t *np = realloc(v->p, sizeof *np * (size_t)cap);
        if (!np) { b->oom = true; return false; }
        v->p = np;
        v->cap = cap;
    }
    v->p[v->n++] = x;
    return true;
}

static void where(const bld *b, const char *at, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (const char *p = b->text; p < at && p < b->end; p++) {
        if (*p == '\n') { (*line)++; *col = 1; }
        else (*col)++;
    }
}

static bool fail_at(bld *b, const char *at, const char *what)
{
    if (b->st != VKI_OK) return false;
    int line, col;
    where(b, at, &line, &col);
    b->st = vki_fail(VKI_ERR_INVALID_ARGUMENT, "grammar: line %d column %d: %s", line, col, what);
    return false;
}

static int32_t add_cls(bld *b, const uint32_t bits[8])
{
    for (int32_t i = 0; i < b->n_cls; i++)
        if (!memcmp(b->cls[i], bits, 32)) return i;
    if (b->n_cls == b->cap_cls) {
        int32_t cap = b->cap_cls ? b->cap_cls * 2 : 64;
        uint32_t (*np)[8] = realloc(b->cls, sizeof *np * (size_t)cap);
        if (!np) { b->oom = true; return -1; }
        b->cls = np;
        b->cap_cls = cap;
    }
    memcpy(b->cls[b->n_cls], bits, 32);
    return b->n_cls++;
}

static int32_t byte_range_cls(bld *b, unsigned lo, unsigned hi)
{
    if (lo == hi && b->byte_cls[lo] >= 0) return b->byte_cls[lo];
    uint32_t bits[8] = {0};
    for (unsigned c = lo; c <= hi; c++) bits[c >> 5] |= 1u << (c & 31);
    int32_t id = add_cls(b, bits);
    if (lo == hi) b->byte_cls[lo] = id;
    return id;
}

/* The rule named name[0..n), created undefined if new. -1 on OOM. */
static int32_t rule_get(bld *b, const char *name, size_t n, int32_t line)
{
    for (int32_t i = 0; i < b->n_rules; i++)
        if (strlen(b->rules[i].name) == n && !memcmp(b->rules[i].name, name, n)) return i;
    if (b->n_rules >= MAX_RULES) {
        if (b->st == VKI_OK) b->st = vki_fail(VKI_ERR_INVALID_ARGUMENT, "grammar: more than %d rules", MAX_RULES);
        return -1;
    }
    if (b->n_rules == b->cap_rules) {
        int32_t cap = b->cap_rules ? b->cap_rules * 2 : 32;
        brule *np = realloc(b->rules, sizeof *np * (size_t)cap);
        if (!np) { b->oom = true; return -1; }
        b->rules = np;
        b->cap_rules = cap;
    }
    brule *r = &b->rules[b->n_rules];
    memset(r, 0, sizeof *r);
    r->name = malloc(n + 1);
    if (!r->name) { b->oom = true; return -1; }
    memcpy(r->name, name, n);
    r->name[n] = '\0';
    r->ref_line = line;
    return b->n_rules++;
}

/* A new rule that the text cannot name ('#' never starts an identifier). */
static int32_t rule_synth(bld *b)
{
    char name[32];
    int n = snprintf(name, sizeof name, "#%d", b->n_synth++);
    int32_t r = rule_get(b, name, (size_t)n, 0);
    if (r >= 0) b->rules[r].defined = true;
    return r;
}

/* ===== Code points to UTF-8 byte sequences =============================== */

typedef struct cp_range { uint32_t lo, hi; } cp_range;

static int utf8_encode(uint32_t c, uint8_t *o)
{
    if (c < 0x80) { o[0] = (uint8_t)c; return 1; }
    if (c < 0x800) { o[0] = (uint8_t)(0xC0 | c >> 6); o[1] = (uint8_t)(0x80 | (c & 63)); return 2; }
    if (c < 0x10000) {
        o[0] = (uint8_t)(0xE0 | c >> 12); o[1] = (uint8_t)(0x80 | (c >> 6 & 63)); o[2] = (uint8_t)(0x80 | (c & 63));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | c >> 18); o[1] = (uint8_t)(0x80 | (c >> 12 & 63));
    o[2] = (uint8_t)(0x80 | (c >> 6 & 63)); o[3] = (uint8_t)(0x80 | (c & 63));
    return 4;
}

/* Appends to rule r one alternative per run of byte ranges that spells
 * exactly the code points lo..hi (surrogates left out): split until the
 * encodings of lo and hi have the same length and differ only where the
 * later bytes cover every continuation value, then each byte position is
 * one range. ASCII is collected in *ascii instead. */
static void utf8_ranges(bld *b, int32_t r, uint32_t lo, uint32_t hi, uint32_t ascii[8])
{
    if (lo > hi || b->oom) return;
    if (lo <= 0xDFFF && hi >= 0xD800) {
        if (lo < 0xD800) utf8_ranges(b, r, lo, 0xD7FF, ascii);
        if (hi > 0xDFFF) utf8_ranges(b, r, 0xE000, hi, ascii);
        return;
    }
    static const uint32_t len_max[] = {0x7F, 0x7FF, 0xFFFF};
    for (int i = 0; i < 3; i++)
        if (lo <= len_max[i] && hi > len_max[i]) {
            utf8_ranges(b, r, lo, len_max[i], ascii);
            utf8_ranges(b, r, len_max[i] + 1, hi, ascii);
            return;
        }
    if (hi < 0x80) {
        for (uint32_t c = lo; c <= hi; c++) ascii[c >> 5] |= 1u << (c & 31);
        return;
    }
    for (int i = 1; i < 4; i++) {
        uint32_t m = (1u << (6 * i)) - 1;
        if ((lo & ~m) != (hi & ~m)) {
            if (lo & m) {
                utf8_ranges(b, r, lo, lo | m, ascii);
                utf8_ranges(b, r, (lo | m) + 1, hi, ascii);
                return;
            }
            if ((hi & m) != m) {
                utf8_ranges(b, r, lo, (hi & ~m) - 1, ascii);
                utf8_ranges(b, r, hi & ~m, hi, ascii);
                return;
            }
        }
    }
    uint8_t el[4], eh[4];
    int n = utf8_encode(lo, el);
    utf8_encode(hi, eh);
    ivec *body = &b->rules[r].body;
    for (int k = 0; k < n; k++) ivec_push(b, body, byte_range_cls(b, el[k], eh[k]));
    ivec_push(b, body, GRAM_END);
}

/* A symbol for the code point set `rs` (sorted, merged): one byte class when
 * it is all ASCII, else a rule of byte sequences. */
static int32_t class_symbol(bld *b, const cp_range *rs, int n)
{
    uint32_t ascii[8] = {0};
    bool multi = false;
    for (int i = 0; i < n; i++) multi |= rs[i].hi >= 0x80;
    if (!multi) {
        for (int i = 0; i < n; i++)
            for (uint32_t c = rs[i].lo; c <= rs[i].hi; c++) ascii[c >> 5] |= 1u << (c & 31);
        return add_cls(b, ascii);
    }
    int32_t r = rule_synth(b);
    if (r < 0) return 0;
    for (int i = 0; i < n; i++) utf8_ranges(b, r, rs[i].lo, rs[i].hi, ascii);
    bool any_ascii = false;
    for (int k = 0; k < 4; k++) any_ascii |= ascii[k] != 0;
    if (any_ascii) {
        ivec_push(b, &b->rules[r].body, add_cls(b, ascii));
        ivec_push(b, &b->rules[r].body, GRAM_END);
    }
    return GRAM_RULE_SYM(r);
}

/* ===== Parser ============================================================ */

static bool at_end(const bld *b) { return b->s >= b->end; }

/* Skips blanks and comments; newlines only where `nl` (inside groups, after '|'). */
static void skip(bld *b, bool nl)
{
    while (!at_end(b)) {
        char c = *b->s;
        if (c == ' ' || c == '\t' || c == '\r' || (nl && c == '\n')) b->s++;
        else if (c == '#') while (!at_end(b) && *b->s != '\n') b->s++;
        else if (c == '\\' && b->s + 1 < b->end && b->s[1] == '\n') b->s += 2;
        else break;
    }
}

static bool is_ident(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* One character of a literal or class (escapes decoded) as a code point; in
 * literals bytes of invalid UTF-8 pass as themselves (*raw set). */
static bool read_char(bld *b, uint32_t *cp, bool *raw)
{
    *raw = false;
    if (at_end(b)) return fail_at(b, b->s, "unexpected end of text");
    const unsigned char *p = (const unsigned char *)b->s;
    if (*p == '\\') {
        if (b->s + 1 >= b->end) return fail_at(b, b->s, "unfinished escape");
        char e = b->s[1];
        b->s += 2;
        int nhex = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
        if (nhex) {
            uint32_t v = 0;
            for (int i = 0; i < nhex; i++) {
                int h = at_end(b) ? -1 : hexval(*b->s);
                if (h < 0) return fail_at(b, b->s, "expected a hex digit in the escape");
                v = v * 16 + (uint32_t)h;
                b->s++;
            }
            if (v > 0x10FFFF) return fail_at(b, b->s, "escape beyond U+10FFFF");
            *cp = v;
            *raw = e == 'x' && v >= 0x80; /* \xHH is a byte */
            return true;
        }
        switch (e) {
        case 'n': *cp = '\n'; return true;
        case 'r': *cp = '\r'; return true;
        case 't': *cp = '\t'; return true;
        case '\\': case '"': case '[': case ']': case '-': case '^': case '/': *cp = (uint32_t)e; return true;
        default: return fail_at(b, b->s - 2, "unknown escape");
        }
    }
    if (*p < 0x80) { *cp = *p; b->s++; return true; }
    int n = (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : (*p & 0xF8) == 0xF0 ? 4 : 0;
    uint32_t v = n == 2 ? (*p & 0x1Fu) : n == 3 ? (*p & 0x0Fu) : (*p & 0x07u);
    bool ok = n && b->s + n <= b->end;
    for (int i = 1; ok && i < n; i++) {
        ok = (p[i] & 0xC0) == 0x80;
        v = v << 6 | (p[i] & 0x3Fu);
    }
    if (!ok) { *cp = *p; *raw = true; b->s++; return true; }
    *cp = v;
    b->s += n;
    return true;
}

static int cmp_range(const void *a, const void *c)
{
    const cp_range *x = a, *y = c;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* '[' already consumed. */
static int32_t parse_class(bld *b)
{
    const char *start = b->s - 1;
    bool neg = !at_end(b) && *b->s == '^';
    if (neg) b->s++;
    cp_range *rs = NULL;
    int n = 0, cap = 0;
    int32_t sym = -1;
    while (!at_end(b) && *b->s != ']') {
        uint32_t lo, hi;
        bool raw;
        if (!read_char(b, &lo, &raw)) goto out;
        hi = lo;
        if (b->s + 1 < b->end && *b->s == '-' && b->s[1] != ']') {
            b->s++;
            if (!read_char(b, &hi, &raw)) goto out;
            if (hi < lo) { fail_at(b, b->s, "class range runs backwards"); goto out; }
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            cp_range *np = realloc(rs, sizeof *np * (size_t)cap);
            if (!np) { b->oom = true; goto out; }
            rs = np;
        }
        rs[n++] = (cp_range){lo, hi};
    }
    if (at_end(b)) { fail_at(b, start, "unterminated character class"); goto out; }
    b->s++;
    if (n) qsort(rs, (size_t)n, sizeof *rs, cmp_range);
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m && rs[i].lo <= rs[m - 1].hi + 1) { if (rs[i].hi > rs[m - 1].hi) rs[m - 1].hi = rs[i].hi; }
        else rs[m++] = rs[i];
    }
    if (neg) {
        cp_range *c = malloc(sizeof *c * (size_t)(m + 1));
        if (!c) { b->oom = true; goto out; }
        int k = 0;
        uint32_t next = 0;
        for (int i = 0; i < m; i++) {
            if (rs[i].lo > next) c[k++] = (cp_range){next, rs[i].lo - 1};
            next = rs[i].hi + 1;
        }
        if (next <= 0x10FFFF) c[k++] = (cp_range){next, 0x10FFFF};
        free(rs);
        rs = c;
        m = k;
    }
    if (!m) { fail_at(b, start, "empty character class"); goto out; }
    sym = class_symbol(b, rs, m);
out:
    free(rs);
    return sym;
}

static bool parse_alts(bld *b, int32_t r, bool nested, int depth);

/* Wraps out[from..n) into one symbol (a synthetic rule when longer than 1). */
static int32_t unit_symbol(bld *b, ivec *out, int32_t from)
{
    if (out->n - from == 1) return out->p[--out->n];
    int32_t r = rule_synth(b);
    if (r < 0) return 0;
    for (int32_t i = from; i < out->n; i++) ivec_push(b, &b->rules[r].body, out->p[i]);
    ivec_push(b, &b->rules[r].body, GRAM_END);
    out->n = from;
    return GRAM_RULE_SYM(r);
}

/* x{lo,hi} (hi < 0: unbounded) appended to out as rules over symbol x. */
static bool repeat(bld *b, ivec *out, int32_t x, long lo, long hi)
{
    for (long i = 0; i < lo; i++) ivec_push(b, out, x);
    if (hi < 0) { /* star ::= x star | () */
        int32_t r = rule_synth(b);
        if (r < 0) return false;
        ivec *body = &b->rules[r].body;
        ivec_push(b, body, x);
        ivec_push(b, body, GRAM_RULE_SYM(r));
        ivec_push(b, body, GRAM_END);
        ivec_push(b, body, GRAM_END);
        return ivec_push(b, out, GRAM_RULE_SYM(r));
    }
    /* opt_k ::= x opt_{k-1} | (), built from the innermost out */
    int32_t inner = 0; /* 0: none yet */
    for (long k = 0; k < hi - lo; k++) {
        int32_t r = rule_synth(b);
        if (r < 0) return false;
        ivec *body = &b->rules[r].body;
        ivec_push(b, body, x);
        if (inner) ivec_push(b, body, inner);
        ivec_push(b, body, GRAM_END);
        ivec_push(b, body, GRAM_END);
        inner = GRAM_RULE_SYM(r);
    }
    return !inner || ivec_push(b, out, inner);
}

static bool read_count(bld *b, long *v)
{
    skip(b, true);
    if (at_end(b) || *b->s < '0' || *b->s > '9') return fail_at(b, b->s, "expected a number in {}");
    *v = 0;
    while (!at_end(b) && *b->s >= '0' && *b->s <= '9') {
        *v = *v * 10 + (*b->s++ - '0');
        if (*v > MAX_REPEAT) return fail_at(b, b->s, "repetition count over 10000");
    }
    skip(b, true);
    return true;
}

static bool parse_seq(bld *b, ivec *out, bool nested, int depth)
{
    if (depth > 200) return fail_at(b, b->s, "groups nested more than 200 deep");
    for (;;) {
        skip(b, nested);
        if (at_end(b)) return true;
        int32_t from = out->n;
        char c = *b->s;
        if (c == '"') {
            const char *start = b->s++;
            while (!at_end(b) && *b->s != '"') {
                uint32_t cp;
                bool raw;
                if (!read_char(b, &cp, &raw)) return false;
                uint8_t enc[4];
                int n = raw ? (enc[0] = (uint8_t)cp, 1) : utf8_encode(cp, enc);
                for (int k = 0; k < n; k++) ivec_push(b, out, byte_range_cls(b, enc[k], enc[k]));
            }
            if (at_end(b)) return fail_at(b, start, "unterminated literal");
            b->s++;
            if (out->n == from) continue; /* "" matches nothing: no unit to repeat */
        } else if (c == '[') {
            b->s++;
            int32_t sym = parse_class(b);
            if (sym == -1 || b->st != VKI_OK) return false;
            ivec_push(b, out, sym);
        } else if (c == '.') {
            b->s++;
            cp_range any = {0, 0x10FFFF};
            ivec_push(b, out, class_symbol(b, &any, 1));
        } else if (c == '(') {
            const char *start = b->s++;
            int32_t r = rule_synth(b);
            if (r < 0 || !parse_alts(b, r, true, depth + 1)) return false;
            skip(b, true);
            if (at_end(b) || *b->s != ')') return fail_at(b, start, "unclosed '('");
            b->s++;
            ivec_push(b, out, GRAM_RULE_SYM(r));
        } else if (is_ident(c)) {
            const char *n0 = b->s;
            while (!at_end(b) && is_ident(*b->s)) b->s++;
            int line, col;
            where(b, n0, &line, &col);
            int32_t r = rule_get(b, n0, (size_t)(b->s - n0), line);
            if (r < 0) return false;
            ivec_push(b, out, GRAM_RULE_SYM(r));
        } else {
            return true;
        }
        if (b->oom) return false;
        /* Postfix operators apply to the last unit. One of *, + and ? after
         * another is folded into it ("a"++ is "a"+, "a"+? and "a"?+ are
         * "a"*): stacked, each is a rule over the last, and a text of n
         * bytes has exponentially many parses through them (fuzz_grammar's
         * slowest inputs; the matcher's bounds refused them). */
        int32_t x = 0;
        bool simple_last = false;
        long last_lo = 0, last_hi = 0;
        for (;;) {
            skip(b, nested);
            if (at_end(b)) break;
            char p = *b->s;
            long lo, hi;
            if (p == '*') { lo = 0; hi = -1; }
            else if (p == '+') { lo = 1; hi = -1; }
            else if (p == '?') { lo = 0; hi = 1; }
            else if (p == '{') {
                b->s++;
                if (!read_count(b, &lo)) return false;
                hi = lo;
                if (!at_end(b) && *b->s == ',') {
                    b->s++;
                    skip(b, true);
                    if (!at_end(b) && *b->s == '}') hi = -1;
                    else if (!read_count(b, &hi)) return false;
                }
                if (at_end(b) || *b->s != '}') return fail_at(b, b->s, "expected '}'");
                if (hi >= 0 && hi < lo) return fail_at(b, b->s, "repetition {m,n} with n < m");
            } else break;
            b->s++;
            const bool simple = p == '*' || p == '+' || p == '?';
            if (simple && simple_last) {
                if (last_hi == 1 && hi == 1) { lo = 0; hi = 1; }        /* (x?)? */
                else if (last_lo == 1 && lo == 1) { lo = 1; hi = -1; }  /* (x+)+ */
                else { lo = 0; hi = -1; }                               /* x*    */
                out->n = from; /* x's last repetition, built again */
            } else {
                x = unit_symbol(b, out, from);
            }
            if (b->oom || !repeat(b, out, x, lo, hi)) return false;
            simple_last = simple;
            last_lo = lo;
            last_hi = hi;
        }
    }
}

static bool parse_alts(bld *b, int32_t r, bool nested, int depth)
{
    for (;;) {
        ivec seq = {0};
        bool ok = parse_seq(b, &seq, nested, depth);
        /* rules may have been added (and b->rules moved) while parsing */
        for (int32_t i = 0; ok && i < seq.n; i++) ok = ivec_push(b, &b->rules[r].body, seq.p[i]);
        free(seq.p);
        if (!ok || !ivec_push(b, &b->rules[r].body, GRAM_END)) return false;
        skip(b, nested);
        if (at_end(b) || *b->s != '|') return true;
        b->s++;
        skip(b, true);
    }
}

/* ===== Checks and flattening ============================================= */

/* Left recursion: a rule that can call itself before consuming a byte.
 * Edges r -> t where t is called after only nullable symbols; a rule left
 * after peeling off every rule with no such incoming edge (Kahn) lies on or
 * behind a cycle. */
static bool check_left_recursion(bld *b, const gram_grammar *g)
{
    const int32_t nr = g->n_rule;
    bool *nullable = calloc((size_t)nr, 1);
    int32_t *indeg = calloc((size_t)nr, sizeof *indeg), *queue = malloc(sizeof *queue * (size_t)nr);
    ivec *edges = calloc((size_t)nr, sizeof *edges);
    bool ok = true;
    if (!nullable || !indeg || !queue || !edges) { b->oom = true; ok = false; goto out; }
    for (bool changed = true; changed;) {
        changed = false;
        for (int32_t r = 0; r < nr; r++) {
            if (nullable[r]) continue;
            for (int32_t a = g->rule_alt[r]; a < g->rule_alt[r + 1] && !nullable[r]; a++) {
                const int32_t *s = g->sym + g->alt_start[a];
                while (*s <= -2 && nullable[GRAM_SYM_RULE(*s)]) s++;
                if (*s == GRAM_END) nullable[r] = changed = true;
            }
        }
    }
    for (int32_t r = 0; r < nr && ok; r++)
        for (int32_t a = g->rule_alt[r]; a < g->rule_alt[r + 1] && ok; a++)
            for (const int32_t *s = g->sym + g->alt_start[a]; *s <= -2; s++) {
                int32_t t = GRAM_SYM_RULE(*s);
                if (!(ok = ivec_push(b, &edges[r], t))) break;
                indeg[t]++;
                if (!nullable[t]) break;
            }
    if (!ok) goto out;
    int32_t qh = 0, qt = 0;
    for (int32_t r = 0; r < nr; r++)
        if (!indeg[r]) queue[qt++] = r;
    while (qh < qt) {
        int32_t r = queue[qh++];
        for (int32_t k = 0; k < edges[r].n; k++)
            if (--indeg[edges[r].p[k]] == 0) queue[qt++] = edges[r].p[k];
    }
    if (qt < nr) {
        /* name a rule on the cycle, preferring one the text named */
        int32_t bad = -1;
        for (int32_t r = 0; r < nr; r++)
            if (indeg[r] && (bad < 0 || (b->rules[bad].name[0] == '#' && b->rules[r].name[0] != '#'))) bad = r;
        b->st = vki_fail(VKI_ERR_INVALID_ARGUMENT, "grammar: rule '%s' is left-recursive (it can reach itself "
                         "before matching a character)", b->rules[bad].name);
        ok = false;
    }
out:
    for (int32_t r = 0; edges && r < nr; r++) free(edges[r].p);
    free(edges);
    free(nullable);
    free(indeg);
    free(queue);
    return ok;
}

/* FIRST sets and nullability, by fixpoint (the grammar has no left
 * recursion, but a rule may still refer to rules defined after it). */
static bool compute_first(gram_grammar *g)
{
    g->rule_first = calloc((size_t)g->n_rule, sizeof *g->rule_first);
    g->alt_first = calloc((size_t)g->n_alt, sizeof *g->alt_first);
    g->rule_nullable = calloc((size_t)g->n_rule, 1);
    g->alt_nullable = calloc((size_t)g->n_alt, 1);
    if (!g->rule_first || !g->alt_first || !g->rule_nullable || !g->alt_nullable) return false;
    for (bool changed = true; changed;) {
        changed = false;
        for (int32_t r = 0; r < g->n_rule; r++)
            for (int32_t a = g->rule_alt[r]; a < g->rule_alt[r + 1]; a++) {
                uint32_t f[8];
                memcpy(f, g->alt_first[a], sizeof f);
                const int32_t *s = g->sym + g->alt_start[a];
                for (; *s != GRAM_END; s++) {
                    const uint32_t *add = *s >= 0 ? g->cls[*s] : g->rule_first[GRAM_SYM_RULE(*s)];
                    for (int k = 0; k < 8; k++) f[k] |= add[k];
                    if (*s >= 0 || !g->rule_nullable[GRAM_SYM_RULE(*s)]) break;
                }
                bool nul = *s == GRAM_END;
                if (memcmp(f, g->alt_first[a], sizeof f) || nul != g->alt_nullable[a]) {
                    memcpy(g->alt_first[a], f, sizeof f);
                    g->alt_nullable[a] = nul;
                    changed = true;
                }
                for (int k = 0; k < 8; k++) {
                    if ((g->rule_first[r][k] | f[k]) != g->rule_first[r][k]) changed = true;
                    g->rule_first[r][k] |= f[k];
                }
                if (nul && !g->rule_nullable[r]) g->rule_nullable[r] = changed = true;
            }
    }
    return true;
}

static void bld_free(bld *b)
{
    for (int32_t i = 0; i < b->n_rules; i++) {
        free(b->rules[i].name);
        free(b->rules[i].body.p);
    }
    free(b->rules);
    free(b->cls);
}

vki_status gram_parse(const char *text, size_t len, gram_grammar **out)
{
    *out = NULL;
    if (!text) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "grammar: no text");
    bld b = {.text = text, .s = text, .end = text + len, .st = VKI_OK};
    for (int i = 0; i < 256; i++) b.byte_cls[i] = -1;
    gram_grammar *g = NULL;
    for (;;) {
        skip(&b, true);
        if (at_end(&b)) break;
        const char *n0 = b.s;
        while (!at_end(&b) && is_ident(*b.s)) b.s++;
        if (b.s == n0) { fail_at(&b, n0, "expected a rule name"); goto fail; }
        int32_t r = rule_get(&b, n0, (size_t)(b.s - n0), 0);
        if (r < 0) goto fail;
        skip(&b, false);
        if (b.end - b.s < 3 || memcmp(b.s, "::=", 3)) { fail_at(&b, b.s, "expected '::='"); goto fail; }
        if (b.rules[r].defined) { fail_at(&b, n0, "rule defined twice"); goto fail; }
        b.rules[r].defined = true;
        b.s += 3;
        if (!parse_alts(&b, r, false, 0)) goto fail;
        skip(&b, false);
        if (!at_end(&b) && *b.s != '\n') { fail_at(&b, b.s, "unexpected character"); goto fail; }
    }
    if (b.oom) goto fail;
    int32_t root = -1;
    for (int32_t i = 0; i < b.n_rules; i++) {
        if (!b.rules[i].defined) {
            b.st = vki_fail(VKI_ERR_INVALID_ARGUMENT, "grammar: rule '%s' (line %d) is used but never defined",
                            b.rules[i].name, b.rules[i].ref_line);
            goto fail;
        }
        if (!strcmp(b.rules[i].name, "root")) root = i;
    }
    if (root < 0) { b.st = vki_fail(VKI_ERR_INVALID_ARGUMENT, "grammar: no rule named 'root'"); goto fail; }

    g = calloc(1, sizeof *g);
    if (!g) { b.oom = true; goto fail; }
    g->n_rule = b.n_rules;
    g->root = root;
    for (int32_t i = 0; i < b.n_rules; i++) {
        g->n_sym += b.rules[i].body.n;
        for (int32_t k = 0; k < b.rules[i].body.n; k++) g->n_alt += b.rules[i].body.p[k] == GRAM_END;
    }
    g->sym = malloc(sizeof *g->sym * (size_t)(g->n_sym + 2));
    g->alt_start = malloc(sizeof *g->alt_start * (size_t)(g->n_alt + 1));
    g->rule_alt = malloc(sizeof *g->rule_alt * (size_t)(g->n_rule + 1));
    if (!g->sym || !g->alt_start || !g->rule_alt) { b.oom = true; goto fail; }
    int32_t ns = 0, na = 0;
    for (int32_t i = 0; i < b.n_rules; i++) {
        g->rule_alt[i] = na;
        const ivec *body = &b.rules[i].body;
        for (int32_t k = 0; k < body->n; k++) {
            if (k == 0 || body->p[k - 1] == GRAM_END) g->alt_start[na++] = ns;
            g->sym[ns++] = body->p[k];
        }
    }
    g->rule_alt[b.n_rules] = na;
    g->start = ns; /* the matcher's first frame: "call root, then end" */
    g->sym[ns++] = GRAM_RULE_SYM(root);
    g->sym[ns++] = GRAM_END;
    g->cls = b.cls;
    g->n_cls = b.n_cls;
    b.cls = NULL;
    if (!check_left_recursion(&b, g)) goto fail;
    if (!compute_first(g)) { b.oom = true; goto fail; }
    bld_free(&b);
    *out = g;
    return VKI_OK;
fail:
    gram_destroy(g);
    bld_free(&b);
    if (b.oom) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "grammar: out of memory");
    return b.st != VKI_OK ? b.st : vki_fail(VKI_ERR_INVALID_ARGUMENT, "grammar: invalid");
}

void gram_destroy(gram_grammar *g)
{
    if (!g) return;
    free(g->sym);
    free(g->alt_start);
    free(g->rule_alt);
    free(g->cls);
    free(g->rule_first);
    free(g->alt_first);
    free(g->rule_nullable);
    free(g->alt_nullable);
    free(g);
}

int32_t gram_n_rules(const gram_grammar *g) { return g ? g->n_rule : 0; }
