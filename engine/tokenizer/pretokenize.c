/*
 * pretokenize.c: the pre-tokenizer: a small backtracking regex engine for the
 * subset the tokenizer split patterns use (classes with \p{L} \p{N} \p{P}
 * \p{S} \s, alternation, (?: ) and (?i: ) groups, ? * + {m,n}, (?! ) and
 * (?= ) lookahead, $), with Perl/Oniguruma leftmost-first semantics, and the
 * table that maps a `tokenizer.ggml.pre` name to its patterns.
 * Must not: accept a pattern it cannot run exactly (it fails to compile).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "util.h"
#include "tok_internal.h"

/* ===== Compiled form ===================================================== */

enum { I_CLASS, I_SPLIT, I_JMP, I_MATCH, I_EOL, I_LOOK_NEG, I_LOOK_POS };

typedef struct rx_item { uint8_t kind; uint32_t lo, hi; } rx_item; /* kind: 0 range, 1 flags, 2 space */

typedef struct rx_class {
    bool     neg;
    int      n;
    rx_item *items;
} rx_class;

typedef struct rx_inst { int op; int x, y; } rx_inst; /* CLASS: x = class; SPLIT x,y; JMP x; LOOK: x = sub end */

struct tok_regex {
    rx_inst  *code;  int n_code, cap_code;
    rx_class *cls;   int n_cls, cap_cls;
};

/* ===== Parser (pattern -> AST) ========================================== */

enum { N_CLASS, N_CAT, N_ALT, N_REP, N_LOOK_NEG, N_LOOK_POS, N_EOL, N_EMPTY };

typedef struct rx_node {
    int type;
    int a, b;                /* node indices; CAT/ALT: a then b; REP/LOOK: a */
    int cls, min, max;       /* max -1 = unbounded */
} rx_node;

typedef struct rx_parser {
    const char *p, *end;
    tok_regex  *re;
    rx_node    *nodes; int n_nodes, cap_nodes;
    const char *err;
    const char *pattern;
} rx_parser;

static int new_node(rx_parser *ps, int type)
{
    if (ps->n_nodes == ps->cap_nodes) {
        int cap = ps->cap_nodes ? ps->cap_nodes * 2 : 64;
        rx_node *n = realloc(ps->nodes, (size_t)cap * sizeof *n);
        if (!n) { ps->err = "out of memory"; return -1; }
        ps->nodes = n;
        ps->cap_nodes = cap;
    }
    rx_node *n = &ps->nodes[ps->n_nodes];
    memset(n, 0, sizeof *n);
    n->type = type;
    n->a = n->b = -1;
    return ps->n_nodes++;
}


static int new_class(rx_parser *ps, bool neg)
{
    tok_regex *re = ps->re;
    if (re->n_cls == re->cap_cls) {
        int cap = re->cap_cls ? re->cap_cls * 2 : 16;
        rx_class *c = realloc(re->cls, (size_t)cap * sizeof *c);
        if (!c) { ps->err = "out of memory"; return -1; }
        re->cls = c;
        re->cap_cls = cap;
    }
    rx_class *c = &re->cls[re->n_cls];
    c->neg = neg;
    c->n = 0;
    c->items = NULL;
    return re->n_cls++;
}

static bool class_add(rx_parser *ps, int ci, uint8_t kind, uint32_t lo, uint32_t hi)
{
    rx_class *c = &ps->re->cls[ci];
    rx_item *it = realloc(c->items, (size_t)(c->n + 1) * sizeof *it);
    if (!it) { ps->err = "out of memory"; return false; }
    c->items = it;
    it[c->n].kind = kind;
    it[c->n].lo = lo;
    it[c->n].hi = hi;
    c->n++;
    return true;
}

/* Adds a literal (both cases under (?i)). */
static bool class_add_lit(rx_parser *ps, int ci, uint32_t cp, bool icase)
{
    if (!class_add(ps, ci, 0, cp, cp)) return false;
    if (icase) {
        uint32_t l = uc_tolower(cp);
        if (l != cp) return class_add(ps, ci, 0, l, l);
        if (cp >= 'a' && cp <= 'z') return class_add(ps, ci, 0, cp - 32, cp - 32);
        /* non-ASCII upper case of a lower-case letter: scan the pairs */
        for (int i = 0; i < uc_n_lower; i++)
            if (uc_lower[i].to == cp && !class_add(ps, ci, 0, uc_lower[i].cp, uc_lower[i].cp)) return false;
    }
    return true;
}

static uint32_t next_cp(rx_parser *ps)
{
    int len;
    uint32_t cp = uc_decode((const uint8_t *)ps->p, (size_t)(ps->end - ps->p), &len);
    ps->p += len;
    return cp;
}

static uint16_t prop_flags(char c)
{
    switch (c) {
    case 'L': return UC_L;
    case 'N': return UC_N;
    case 'P': return UC_P;
    case 'S': return UC_S;
    case 'M': return UC_M;
    case 'Z': return UC_Z;
    default:  return 0;
    }
}

/* After a backslash: adds the escape to class ci. False + ps->err on an
 * escape we do not run. */
static bool parse_escape(rx_parser *ps, int ci, bool icase, bool in_class)
{
    if (ps->p >= ps->end) { ps->err = "pattern ends with '\\'"; return false; }
    char c = *ps->p++;
    switch (c) {
    case 'r': return class_add(ps, ci, 0, '\r', '\r');
    case 'n': return class_add(ps, ci, 0, '\n', '\n');
    case 't': return class_add(ps, ci, 0, '\t', '\t');
    case 'f': return class_add(ps, ci, 0, '\f', '\f');
    case 'v': return class_add(ps, ci, 0, '\v', '\v');
    case 's': return class_add(ps, ci, 2, 0, 0);
    case 'd': return class_add(ps, ci, 1, UC_N, 0); /* Oniguruma/Rust \d is Unicode Nd; see note in tok_pre_select */
    case 'p': {
        if (ps->end - ps->p < 3 || ps->p[0] != '{' || ps->p[2] != '}' || !prop_flags(ps->p[1])) {
            ps->err = "only \\p{L} \\p{N} \\p{P} \\p{S} \\p{M} \\p{Z} are supported";
            return false;
        }
        uint16_t f = prop_flags(ps->p[1]);
        ps->p += 3;
        return class_add(ps, ci, 1, f, 0);
    }
    case 'S': case 'P': case 'D': case 'w': case 'W': case 'b': case 'B':
        (void)in_class;
        ps->err = "negated escapes (\\S, \\P, \\D) and \\w \\b are only supported as (?!\\S)";
        return false;
    default:
        if ((unsigned char)c < 0x80 && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
            !(c >= '0' && c <= '9'))
            return class_add_lit(ps, ci, (uint32_t)(unsigned char)c, icase);
        ps->err = "unsupported escape";
        return false;
    }
}

static int parse_alt(rx_parser *ps, bool icase);

static int parse_bracket(rx_parser *ps, bool icase)
{
    bool neg = false;
    if (ps->p < ps->end && *ps->p == '^') { neg = true; ps->p++; }
    int ci = new_class(ps, neg);
    if (ci < 0) return -1;
    bool first = true;
    while (ps->p < ps->end && (*ps->p != ']' || first)) {
        first = false;
        uint32_t lo;
        if (*ps->p == '\\') {
            ps->p++;
            /* a lone escape; ranges from escapes are not used by our patterns */
            if (!parse_escape(ps, ci, icase, true)) return -1;
            continue;
        }
        lo = next_cp(ps);
        if (lo == UC_INVALID) { ps->err = "invalid UTF-8 in pattern"; return -1; }
        if (ps->end - ps->p >= 2 && ps->p[0] == '-' && ps->p[1] != ']') {
            ps->p++;
            uint32_t hi = next_cp(ps);
            if (hi == UC_INVALID || hi < lo) { ps->err = "bad range in class"; return -1; }
            if (!class_add(ps, ci, 0, lo, hi)) return -1;
            if (icase && lo <= 'z' && hi >= 'A') { ps->err = "(?i) with letter ranges"; return -1; }
        } else if (!class_add_lit(ps, ci, lo, icase)) {
            return -1;
        }
    }
    if (ps->p >= ps->end) { ps->err = "unterminated '['"; return -1; }
    ps->p++;
    int n = new_node(ps, N_CLASS);
    if (n >= 0) ps->nodes[n].cls = ci;
    return n;
}

static int parse_atom(rx_parser *ps, bool icase)
{
    char c = *ps->p;
    if (c == '(') {
        ps->p++;
        int type = -1;
        bool sub_icase = icase;
        if (ps->p < ps->end && *ps->p == '?') {
            ps->p++;
            if (ps->p < ps->end && *ps->p == ':') { ps->p++; }
            else if (ps->p < ps->end && *ps->p == '!') { ps->p++; type = N_LOOK_NEG; }
            else if (ps->p < ps->end && *ps->p == '=') { ps->p++; type = N_LOOK_POS; }
            else if (ps->end - ps->p >= 2 && ps->p[0] == 'i' && ps->p[1] == ':') { ps->p += 2; sub_icase = true; }
            else { ps->err = "unsupported group kind"; return -1; }
        }
        int inner = parse_alt(ps, sub_icase);
        if (inner < 0) return -1;
        if (ps->p >= ps->end || *ps->p != ')') { ps->err = "missing ')'"; return -1; }
        ps->p++;
        if (type < 0) return inner;
        int n = new_node(ps, type);
        if (n >= 0) ps->nodes[n].a = inner;
        return n;
    }
    if (c == '[') { ps->p++; return parse_bracket(ps, icase); }
    if (c == '$') { ps->p++; return new_node(ps, N_EOL); }
    if (c == '.' || c == '^' || c == '*' || c == '+' || c == '?' || c == '{' || c == '|' || c == ')') {
        ps->err = "unsupported or misplaced operator";
        return -1;
    }
    int ci = new_class(ps, false);
    if (ci < 0) return -1;
    if (c == '\\') {
        ps->p++;
        /* \S appears only in (?!\S); run it as a negated \s class */
        if (ps->p < ps->end && *ps->p == 'S') {
            ps->p++;
            ps->re->cls[ci].neg = true;
            if (!class_add(ps, ci, 2, 0, 0)) return -1;
        } else if (!parse_escape(ps, ci, icase, false)) {
            return -1;
        }
    } else {
        uint32_t cp = next_cp(ps);
        if (cp == UC_INVALID) { ps->err = "invalid UTF-8 in pattern"; return -1; }
        if (!class_add_lit(ps, ci, cp, icase)) return -1;
    }
    int n = new_node(ps, N_CLASS);
    if (n >= 0) ps->nodes[n].cls = ci;
    return n;
}

static int parse_repeat(rx_parser *ps, bool icase)
{
    int atom = parse_atom(ps, icase);
    if (atom < 0) return -1;
    while (ps->p < ps->end) {
        int min, max;
        char c = *ps->p;
        if (c == '?') { min = 0; max = 1; ps->p++; }
        else if (c == '*') { min = 0; max = -1; ps->p++; }
        else if (c == '+') { min = 1; max = -1; ps->p++; }
        else if (c == '{') {
            char *e;
            long lo = strtol(ps->p + 1, &e, 10), hi = lo;
            if (e == ps->p + 1) { ps->err = "bad {m,n}"; return -1; }
            if (*e == ',') { hi = strtol(e + 1, &e, 10); }
            if (*e != '}' || lo < 0 || hi < lo || hi > 64) { ps->err = "bad {m,n}"; return -1; }
            ps->p = e + 1;
            min = (int)lo;
            max = (int)hi;
        } else break;
        if (ps->p < ps->end && (*ps->p == '?' || *ps->p == '+')) {
            ps->err = "lazy and possessive quantifiers are not supported";
            return -1;
        }
        int n = new_node(ps, N_REP);
        if (n < 0) return -1;
        ps->nodes[n].a = atom;
        ps->nodes[n].min = min;
        ps->nodes[n].max = max;
        atom = n;
    }
    return atom;
}

static int parse_cat(rx_parser *ps, bool icase)
{
    int left = -1;
    while (ps->p < ps->end && *ps->p != '|' && *ps->p != ')') {
        int r = parse_repeat(ps, icase);
        if (r < 0) return -1;
        if (left < 0) { left = r; continue; }
        int n = new_node(ps, N_CAT);
        if (n < 0) return -1;
        ps->nodes[n].a = left;
        ps->nodes[n].b = r;
        left = n;
    }
    return left < 0 ? new_node(ps, N_EMPTY) : left;
}

static int parse_alt(rx_parser *ps, bool icase)
{
    int left = parse_cat(ps, icase);
    if (left < 0) return -1;
    while (ps->p < ps->end && *ps->p == '|') {
        ps->p++;
        int r = parse_cat(ps, icase);
        if (r < 0) return -1;
        int n = new_node(ps, N_ALT);
        if (n < 0) return -1;
        ps->nodes[n].a = left;
        ps->nodes[n].b = r;
        left = n;
    }
    return left;
}

/* ===== Code generation (AST -> backtracking program) ===================== */

static int emit(tok_regex *re, int op, int x, int y)
{
    if (re->n_code == re->cap_code) {
        int cap = re->cap_code ? re->cap_code * 2 : 64;
        rx_inst *c = realloc(re->code, (size_t)cap * sizeof *c);
        if (!c) return -1;
        re->code = c;
        re->cap_code = cap;
    }
    re->code[re->n_code] = (rx_inst){op, x, y};
    return re->n_code++;
}

static bool gen(tok_regex *re, rx_node *nodes, const rx_node *n)
{
    switch (n->type) {
    case N_EMPTY: return true;
    case N_CLASS: return emit(re, I_CLASS, n->cls, 0) >= 0;
    case N_EOL:   return emit(re, I_EOL, 0, 0) >= 0;
    case N_CAT:   return gen(re, nodes, &nodes[n->a]) && gen(re, nodes, &nodes[n->b]);
    case N_ALT: {
        int split = emit(re, I_SPLIT, 0, 0);
        if (split < 0 || !gen(re, nodes, &nodes[n->a])) return false;
        int jmp = emit(re, I_JMP, 0, 0);
        if (jmp < 0) return false;
        re->code[split].x = split + 1;
        re->code[split].y = re->n_code;
        if (!gen(re, nodes, &nodes[n->b])) return false;
        re->code[jmp].x = re->n_code;
        return true;
    }
    case N_LOOK_NEG:
    case N_LOOK_POS: {
        int look = emit(re, n->type == N_LOOK_NEG ? I_LOOK_NEG : I_LOOK_POS, 0, 0);
        if (look < 0 || !gen(re, nodes, &nodes[n->a]) || emit(re, I_MATCH, 0, 0) < 0) return false;
        re->code[look].x = re->n_code; /* continue after the sub-program */
        return true;
    }
    case N_REP: {
        const rx_node *a = &nodes[n->a];
        for (int i = 0; i < n->min; i++)
            if (!gen(re, nodes, a)) return false;
        if (n->max < 0) {
            int split = emit(re, I_SPLIT, 0, 0);
            if (split < 0 || !gen(re, nodes, a) || emit(re, I_JMP, split, 0) < 0) return false;
            re->code[split].x = split + 1;
            re->code[split].y = re->n_code;
        } else {
            int splits[64], ns = 0;
            for (int i = n->min; i < n->max; i++) {
                int split = emit(re, I_SPLIT, 0, 0);
                if (split < 0 || !gen(re, nodes, a)) return false;
                re->code[split].x = split + 1;
                splits[ns++] = split;
            }
            for (int i = 0; i < ns; i++) re->code[splits[i]].y = re->n_code;
        }
        return true;
    }
    }
    return false;
}

void tok_regex_destroy(tok_regex *re)
{
    if (!re) return;
    for (int i = 0; i < re->n_cls; i++) free(re->cls[i].items);
    free(re->cls);
    free(re->code);
    free(re);
}

vki_status tok_regex_compile(const char *pattern, size_t len, tok_regex **out)
{
    *out = NULL;
    tok_regex *re = calloc(1, sizeof *re);
    if (!re) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory compiling a regex");
    rx_parser ps = {.p = pattern, .end = pattern + len, .re = re, .pattern = pattern};
    int root = parse_alt(&ps, false);
    if (root >= 0 && ps.p != ps.end) { ps.err = "unbalanced ')'"; root = -1; }
    if (root >= 0 && (!gen(re, ps.nodes, &ps.nodes[root]) || emit(re, I_MATCH, 0, 0) < 0)) {
        ps.err = "out of memory";
        root = -1;
    }
    if (root < 0) {
        vki_status s = vki_fail(VKI_ERR_UNSUPPORTED,
                                "tokenizer: pre-tokenizer regex '%.*s': %s at byte %d",
                                (int)VKI_MIN(len, 300), pattern, ps.err ? ps.err : "syntax error",
                                (int)(ps.p - pattern));
        free(ps.nodes);
        tok_regex_destroy(re);
        return s;
    }
    free(ps.nodes);
    *out = re;
    return VKI_OK;
}

/* ===== Matching =========================================================== */

static bool class_match(const rx_class *c, uint32_t cp)
{
    bool hit = false;
    uint16_t f = cp == UC_INVALID ? 0 : uc_flags(cp);
    for (int i = 0; i < c->n && !hit; i++) {
        const rx_item *it = &c->items[i];
        if (it->kind == 0) hit = cp >= it->lo && cp <= it->hi;
        else if (it->kind == 1) hit = (f & it->lo) != 0;
        else hit = cp != UC_INVALID && uc_is_space(cp);
    }
    return hit != c->neg;
}

static bool stack_push(tok_scratch *s, int64_t *sp, int64_t pc, int64_t pos)
{
    if (*sp + 2 > s->stack_cap) {
        int64_t cap = s->stack_cap ? s->stack_cap * 2 : 1024;
        int64_t *st = realloc(s->stack, (size_t)cap * sizeof *st);
        if (!st) return false;
        s->stack = st;
        s->stack_cap = cap;
    }
    s->stack[(*sp)++] = pc;
    s->stack[(*sp)++] = pos;
    return true;
}

/* Runs the program from pc at pos within cps[..end). Returns the end of the
 * first match in priority order, -1 for none, -2 when out of memory. The
 * backtrack stack is shared: a lookahead runs above its caller's entries. */
static int64_t run(const tok_regex *re, int pc0, const uint32_t *cps, int64_t end, int64_t pos0,
                   tok_scratch *s, int64_t base)
{
    int64_t sp = base;
    if (!stack_push(s, &sp, pc0, pos0)) return -2;
    while (sp > base) {
        int64_t pos = s->stack[--sp];
        int pc = (int)s->stack[--sp];
        for (;;) {
            const rx_inst *in = &re->code[pc];
            if (in->op == I_CLASS) {
                if (pos < end && class_match(&re->cls[in->x], cps[pos])) { pc++; pos++; continue; }
                break;
            } else if (in->op == I_SPLIT) {
                if (!stack_push(s, &sp, in->y, pos)) return -2;
                pc = in->x;
            } else if (in->op == I_JMP) {
                pc = in->x;
            } else if (in->op == I_MATCH) {
                return pos;
            } else if (in->op == I_EOL) {
                if (pos != end) break;
                pc++;
            } else { /* lookahead: the sub-program runs to its own MATCH */
                int64_t r = run(re, pc + 1, cps, end, pos, s, sp);
                if (r == -2) return -2;
                if ((r >= 0) == (in->op == I_LOOK_NEG)) break;
                pc = in->x;
            }
        }
    }
    return -1;
}

static bool spans_push(tok_spans *l, int64_t a, int64_t b)
{
    if (l->n == l->cap) {
        int64_t cap = l->cap ? l->cap * 2 : 256;
        tok_span *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return false;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (tok_span){a, b};
    return true;
}

void tok_scratch_free(tok_scratch *s)
{
    free(s->stack);
    free(s->a.v);
    free(s->b.v);
    free(s->cps);
    free(s->offs);
    free(s->sym);
    free(s->heap);
    free(s->buf);
    free(s->na);
    free(s->nb);
    free(s->norm);
    tok_bpe_cache_free(s->cache);
    memset(s, 0, sizeof *s);
}

vki_status tok_pretokenize(tok_regex *const *res, int n_res, const uint32_t *cps, int64_t n,
                           tok_scratch *s)
{
    s->a.n = 0;
    if (n == 0) return VKI_OK;
    if (!spans_push(&s->a, 0, n)) goto oom;
    for (int r = 0; r < n_res; r++) {
        s->b.n = 0;
        for (int64_t k = 0; k < s->a.n; k++) {
            /* each piece is matched on its own: lookahead and $ see the end
             * of the piece, as with HF's sequence of Split pre-tokenizers */
            int64_t a = s->a.v[k].a, b = s->a.v[k].b, gap = a;
            for (int64_t p = a; p < b;) {
                int64_t e = run(res[r], 0, cps, b, p, s, 0);
                if (e == -2) goto oom;
                if (e > p) {
                    if (gap < p && !spans_push(&s->b, gap, p)) goto oom;
                    if (!spans_push(&s->b, p, e)) goto oom;
                    p = gap = e;
                } else {
                    p++; /* no match here (empty matches count as none) */
                }
            }
            if (gap < b && !spans_push(&s->b, gap, b)) goto oom;
        }
        tok_spans t = s->a;
        s->a = s->b;
        s->b = t;
    }
    return VKI_OK;
oom:
    return vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenizer: out of memory while pre-tokenizing %lld code points",
                    (long long)n);
}

/* ===== Pre-tokenizer families ============================================= */

#define RX_GPT2_BASE "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RX_GPT2 RX_GPT2_BASE "|\\s+"
#define RX_LLAMA3 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_QWEN2 "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* CJK ideographs, U+0800..U+4E00 and Hangul, as llama.cpp writes them */
#define RX_CJK "[\xe4\xb8\x80-\xe9\xbe\xa5\xe0\xa0\x80-\xe4\xb8\x80\xea\xb0\x80-\xed\x9f\xbf]+"
/* deepseek-llm (DeepSeek LLM 7B/67B tokenizer.json, llama.cpp's
 * DEEPSEEK_LLM): letters are an explicit list of cased-letter ranges, not
 * \p{L} (U+00B5, U+00C0-U+00D6, ... Greek, Cyrillic, Armenian capitals,
 * Georgian capitals, Cherokee, fullwidth A-Z a-z, Deseret, Osage, Old
 * Hungarian, Warang Citi, Adlam); punctuation is ASCII !-/ :-~ plus
 * fullwidth U+FF01-U+FF0F U+FF1A-U+FF5E, quotes U+2018-U+201F and
 * U+3000-U+3002. Written from the code points, as UTF-8 escapes. */
#define RX_DS_LETTERS \
    "A-Za-z\xc2\xb5\xc3\x80-\xc3\x96\xc3\x98-\xc3\xb6\xc3\xb8-\xc6\xba\xc6\xbc-\xc6\xbf\xc7\x84-\xca"\
    "\x93\xca\x95-\xca\xaf\xcd\xb0-\xcd\xb3\xcd\xb6-\xcd\xb7\xcd\xbb-\xcd\xbd\xcd\xbf\xce\x86\xce\x88"\
    "-\xce\x8a\xce\x8c\xce\x8e-\xce\xa1\xce\xa3-\xcf\xb5\xcf\xb7-\xd2\x81\xd2\x8a-\xd4\xaf\xd4\xb1-"\
    "\xd5\x96\xe1\x82\xa0-\xe1\x83\x85\xe1\x8e\xa0-\xe1\x8f\xb5\xe1\x8f\xb8-\xe1\x8f\xbd\xe1\xb2\x90-"\
    "\xe1\xb2\xba\xe1\xb2\xbd-\xe1\xb2\xbf\xe1\xb4\x80-\xe1\xb4\xab\xe1\xb5\xab-\xe1\xb5\xb7\xe1\xb5"\
    "\xb9-\xe1\xb6\x9a\xe1\xb8\x80-\xe1\xbc\x95\xe1\xbc\x98-\xe1\xbc\x9d\xe1\xbc\xa0-\xe1\xbd\x85\xe1"\
    "\xbd\x88-\xe1\xbd\x8d\xe1\xbd\x90-\xe1\xbd\x97\xe1\xbd\x99\xe1\xbd\x9b\xe1\xbd\x9d\xe1\xbd\x9f-"\
    "\xe1\xbd\xbd\xe1\xbe\x80-\xe1\xbe\xb4\xe1\xbe\xb6-\xe1\xbe\xbc\xe1\xbe\xbe\xe1\xbf\x82-\xe1\xbf"\
    "\x84\xe1\xbf\x86-\xe1\xbf\x8c\xe1\xbf\x90-\xe1\xbf\x93\xe1\xbf\x96-\xe1\xbf\x9b\xe1\xbf\xa0-\xe1"\
    "\xbf\xac\xe1\xbf\xb2-\xe1\xbf\xb4\xe1\xbf\xb6-\xe1\xbf\xbc\xe2\x84\x82\xe2\x84\x87\xe2\x84\x8a-"\
    "\xe2\x84\x93\xe2\x84\x95\xe2\x84\x99-\xe2\x84\x9d\xe2\x84\xa4\xe2\x84\xa6\xe2\x84\xa8\xe2\x84"\
    "\xaa-\xe2\x84\xad\xe2\x84\xaf-\xe2\x84\xb4\xe2\x84\xb9\xe2\x84\xbc-\xe2\x84\xbf\xe2\x85\x85-\xe2"\
    "\x85\x89\xe2\x85\x8e\xe2\x86\x83-\xe2\x86\x84\xe2\xb0\x80-\xe2\xb1\xbb\xe2\xb1\xbe-\xe2\xb3\xa4"\
    "\xe2\xb3\xab-\xe2\xb3\xae\xe2\xb3\xb2-\xe2\xb3\xb3\xea\x99\x80-\xea\x99\xad\xea\x9a\x80-\xea\x9a"\
    "\x9b\xea\x9c\xa2-\xea\x9d\xaf\xea\x9d\xb1-\xea\x9e\x87\xea\x9e\x8b-\xea\x9e\x8e\xea\xad\xb0-\xea"\
    "\xae\xbf\xef\xac\x80-\xef\xac\x86\xef\xac\x93-\xef\xac\x97\xef\xbc\xa1-\xef\xbc\xba\xef\xbd\x81-"\
    "\xef\xbd\x9a\xf0\x90\x90\x80-\xf0\x90\x91\x8f\xf0\x90\x92\xb0-\xf0\x90\x93\x93\xf0\x90\x93\x98-"\
    "\xf0\x90\x93\xbb\xf0\x90\xb2\x80-\xf0\x90\xb2\xb2\xf0\x90\xb3\x80-\xf0\x90\xb3\xb2\xf0\x91\xa2"\
    "\xa0-\xf0\x91\xa3\x9f\xf0\x9e\xa4\x80-\xf0\x9e\xa5\x83"
#define RX_DS_PUNCT "!-/:-~\xef\xbc\x81-\xef\xbc\x8f\xef\xbc\x9a-\xef\xbd\x9e\xe2\x80\x98-\xe2\x80\x9f\xe3\x80\x80-\xe3\x80\x82"

typedef struct pre_family {
    const char *names;           /* '|'-separated tokenizer.ggml.pre values */
    bool        ignore_merges;
    const char *rx[TOK_MAX_REGEX];
} pre_family;

/* The split patterns per tokenizer.ggml.pre, as llama.cpp (llama-vocab.cpp)
 * and the models' tokenizer.json files define them. */
static const pre_family families[] = {
    {"gpt-2|gpt2|mpt|olmo|jais|phi-2|roberta-bpe|jina-es|jina-de|jina-v1-en|jina-v2-es|jina-v2-de|poro-chat|gigachat|viking",
     false, {RX_GPT2}},
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|dbrx|smaug-bpe|bailingmoe|trillion|kimi-k2",
     true, {RX_LLAMA3}},
    {"qwen2|qwen3|stablelm2|hunyuan|deepseek-r1-qwen|megrez", false, {RX_QWEN2}},
    {"starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b", false, {"\\p{N}", RX_GPT2}},
    {"deepseek-coder", false, {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RX_CJK, "\\p{N}"}},
    {"deepseek-llm", false,
     {"[\r\n]", "\\s?[" RX_DS_LETTERS "]+", "\\s?[" RX_DS_PUNCT "]+", "\\s+$", RX_CJK, "\\p{N}+"}},
    {"falcon", false, {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RX_GPT2_BASE, "[0-9][0-9][0-9]"}},
    /* last: also the split of a GGUF without tokenizer.ggml.pre */
    {"default", false, {"[\\p{P}\\$\\+<=>\\^~\\|]+", RX_GPT2_BASE, "\\p{N}+", "[0-9][0-9][0-9]"}},
};

static bool name_in(const char *names, const char *s, size_t n)
{
    for (const char *p = names; *p;) {
        const char *e = strchr(p, '|');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && memcmp(p, s, n) == 0) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

static vki_status compile_list(vki_tokenizer *t, const char *const *rx, size_t n)
{
    for (size_t i = 0; i < n && rx[i]; i++) {
        if (t->n_re == TOK_MAX_REGEX)
            return vki_fail(VKI_ERR_UNSUPPORTED, "tokenizer: more than %d pre-tokenizer patterns", TOK_MAX_REGEX);
        VKI_TRY(tok_regex_compile(rx[i], strlen(rx[i]), &t->re[t->n_re]));
        t->n_re++;
    }
    return VKI_OK;
}

vki_status tok_pre_select(vki_tokenizer *t, const vki_model_file *f)
{
    vki_str pre = {NULL, 0};
    bool has_pre = vki_file_get_str(f, "tokenizer.ggml.pre", &pre);
    if (has_pre) {
        for (size_t i = 0; i < VKI_COUNT(families); i++) {
            if (!name_in(families[i].names, pre.p, pre.n)) continue;
            snprintf(t->pre_name, sizeof t->pre_name, "%.*s", (int)VKI_MIN(pre.n, 60), pre.p);
            t->ignore_merges = families[i].ignore_merges;
            return compile_list(t, families[i].rx, TOK_MAX_REGEX);
        }
    }
    /* an HF tokenizer.json: run the Split patterns it declares */
    const vki_kv *rx = vki_file_find_kv(f, "tokenizer.hf.pre_regex");
    if (rx && rx->type == VKI_KV_ARRAY && rx->v.arr.elem == VKI_KV_STRING && rx->v.arr.n > 0) {
        if (rx->v.arr.n > TOK_MAX_REGEX)
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: %llu pre-tokenizer patterns, at most %d supported",
                            vki_file_path(f), (unsigned long long)rx->v.arr.n, TOK_MAX_REGEX);
        snprintf(t->pre_name, sizeof t->pre_name, "hf-regex");
        for (uint64_t i = 0; i < rx->v.arr.n; i++) {
            vki_str s = rx->v.arr.items[i].v.s;
            vki_status st = tok_regex_compile(s.p, s.n, &t->re[t->n_re]);
            if (st != VKI_OK) return vki_fail_prefix(st, "%s", vki_file_path(f));
            t->n_re++;
            /* llama-3's tokenizer.json sets ignore_merges; its pattern is
             * how we know it (the loader maps no key for it) */
            if (s.n == strlen(RX_LLAMA3) && memcmp(s.p, RX_LLAMA3, s.n) == 0) t->ignore_merges = true;
        }
        bool im;
        if (vki_file_get_bool(f, "tokenizer.hf.ignore_merges", &im)) t->ignore_merges = im;
        return VKI_OK;
    }
    if (has_pre)
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: unknown pre-tokenizer tokenizer.ggml.pre = '%.*s' (known: gpt-2, llama3, qwen2, "
                        "deepseek-coder, deepseek-llm, falcon, starcoder, refact, mpt, default, ...)",
                        vki_file_path(f), (int)VKI_MIN(pre.n, 64), pre.p);
    if (vki_file_format_of(f) != VKI_FORMAT_GGUF)
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: BPE tokenizer without a pre-tokenizer regex; refusing to guess how "
                        "to split words", vki_file_path(f));
    /* A GGUF from before tokenizer.ggml.pre existed: llama.cpp splits it
     * with its default patterns and warns that output may suffer. Do the
     * same, loudly: the split may not be the model's own. */
    vki_warn("%s: BPE tokenizer without tokenizer.ggml.pre; using the default pre-tokenizer (as llama.cpp does), "
             "which may not be the model's own: tokens and output quality can differ. Regenerate the GGUF with a "
             "current convert_hf_to_gguf.py", vki_file_path(f));
    const pre_family *dflt = &families[VKI_COUNT(families) - 1];
    snprintf(t->pre_name, sizeof t->pre_name, "default (no tokenizer.ggml.pre)");
    return compile_list(t, dflt->rx, TOK_MAX_REGEX);
}
