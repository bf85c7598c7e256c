/*
 * jinja_lex.c: template text -> tokens, with jinja2's whitespace rules as
 * transformers sets them: trim_blocks (a block or comment tag eats the one
 * newline after it), lstrip_blocks (spaces before a block or comment tag
 * alone on its line go), `-` / `+` on tags, one trailing newline dropped and
 * line breaks normalised to "\n" (keep_trailing_newline off).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_impl.h"

typedef struct lexer {
    jj_arena   *a;
    const char *s;
    size_t      n, pos;
    jtok       *t;
    size_t      nt, cap;
    char       *err;
    size_t      errlen;
    /* line/column cache: line of byte `lpos`, start of that line */
    size_t      lpos, lstart;
    int         line;
    bool        failed;
} lexer;

static void locate(lexer *L, size_t pos, int *line, int *col)
{
    if (pos < L->lpos) { L->lpos = 0; L->lstart = 0; L->line = 1; }
    for (; L->lpos < pos; L->lpos++)
        if (L->s[L->lpos] == '\n') { L->line++; L->lstart = L->lpos + 1; }
    *line = L->line;
    /* columns count code points, as jinja2 (Python) would */
    *col = (int)jj_u8_len(L->s + L->lstart, pos - L->lstart) + 1;
}

static bool fail(lexer *L, size_t pos, const char *what)
{
    int line, col;
    locate(L, pos, &line, &col);
    if (!L->failed) snprintf(L->err, L->errlen, "%d:%d: %s", line, col, what);
    L->failed = true;
    return false;
}

static jtok *emit(lexer *L, jtok_kind k, size_t pos, const char *p, size_t n)
{
    if (L->nt == L->cap) {
        size_t cap = L->cap ? 2 * L->cap : 256;
        jtok *t = jj_alloc(L->a, cap * sizeof *t);
        if (!t) { fail(L, pos, "out of memory"); return NULL; }
        if (L->nt) memcpy(t, L->t, L->nt * sizeof *t);
        L->t = t;
        L->cap = cap;
    }
    jtok *t = &L->t[L->nt++];
    memset(t, 0, sizeof *t);
    t->k = k;
    locate(L, pos, &t->line, &t->col);
    if (p) {
        char *c = jj_strndup(L->a, p, n);
        if (!c) { fail(L, pos, "out of memory"); L->nt--; return NULL; }
        t->p = c;
        t->n = n;
    }
    return t;
}

static bool ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* length of Python whitespace at s[i] (0 if none) */
static size_t space_at(const char *s, size_t n, size_t i)
{
    size_t len;
    return jj_is_space_at(s, n, i, &len) ? len : 0;
}

static size_t rstrip_len(const char *s, size_t n)
{
    /* walk forward remembering the end of the last non-space character */
    size_t i = 0, keep = 0;
    while (i < n) {
        size_t l = space_at(s, n, i);
        if (l) { i += l; continue; }
        i++;
        while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
        keep = i;
    }
    return keep;
}

static size_t skip_spaces(const char *s, size_t n, size_t i)
{
    size_t l;
    while (i < n && (l = space_at(s, n, i))) i += l;
    return i;
}

static bool starts(const lexer *L, size_t i, const char *w)
{
    size_t m = strlen(w);
    return i + m <= L->n && memcmp(L->s + i, w, m) == 0;
}

/* Python's unicode-escape decoding of a string literal's body */
static bool unescape(lexer *L, size_t pos, const char *s, size_t n, char **out, size_t *outn)
{
    char *o = jj_alloc(L->a, n + 1);
    if (!o) return fail(L, pos, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 == n) { o[k++] = s[i]; continue; }
        char c = s[++i];
        uint32_t cp = 0;
        int digits = 0;
        switch (c) {
        case '\n': break;
        case '\\': o[k++] = '\\'; break;
        case '\'': o[k++] = '\''; break;
        case '"': o[k++] = '"'; break;
        case 'a': o[k++] = '\a'; break;
        case 'b': o[k++] = '\b'; break;
        case 'f': o[k++] = '\f'; break;
        case 'n': o[k++] = '\n'; break;
        case 'r': o[k++] = '\r'; break;
        case 't': o[k++] = '\t'; break;
        case 'v': o[k++] = '\v'; break;
        case 'x': digits = 2; break;
        case 'u': digits = 4; break;
        case 'U': digits = 8; break;
        default:
            if (c >= '0' && c <= '7') {
                int m = 0;
                while (m < 3 && i < n && s[i] >= '0' && s[i] <= '7') { cp = cp * 8 + (uint32_t)(s[i] - '0'); i++; m++; }
                i--;
                digits = -1;
            } else {
                o[k++] = '\\';
                o[k++] = c;
            }
        }
        if (digits > 0) {
            for (int d = 0; d < digits; d++) {
                if (i + 1 >= n) return fail(L, pos, "truncated \\x, \\u or \\U escape in a string");
                char h = s[++i];
                int v = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
                if (v < 0) return fail(L, pos, "bad \\x, \\u or \\U escape in a string");
                cp = cp * 16 + (uint32_t)v;
            }
        }
        if (digits) {
            if (cp > 0x10FFFF) return fail(L, pos, "escape past U+10FFFF in a string");
            /* surrogates cannot be written as UTF-8 */
            if (cp >= 0xD800 && cp <= 0xDFFF) return fail(L, pos, "a surrogate escape in a string is not supported");
            if (cp < 0x80) o[k++] = (char)cp;
            else if (cp < 0x800) { o[k++] = (char)(0xC0 | (cp >> 6)); o[k++] = (char)(0x80 | (cp & 63)); }
            else if (cp < 0x10000) {
                o[k++] = (char)(0xE0 | (cp >> 12));
                o[k++] = (char)(0x80 | ((cp >> 6) & 63));
                o[k++] = (char)(0x80 | (cp & 63));
            } else {
                o[k++] = (char)(0xF0 | (cp >> 18));
                o[k++] = (char)(0x80 | ((cp >> 12) & 63));
                o[k++] = (char)(0x80 | ((cp >> 6) & 63));
                o[k++] = (char)(0x80 | (cp & 63));
            }
        }
    }
    o[k] = 0;
    *out = o;
    *outn = k;
    return true;
}

static const char *const ops2[] = {"//", "**", "==", "!=", "<=", ">="};

/* Tokens of one {{ }} or {% %} tag from L->pos; returns at the end tag. */
static bool lex_tag(lexer *L, bool block)
{
    int depth = 0;
    for (;;) {
        while (L->pos < L->n && ws(L->s[L->pos])) L->pos++;
        size_t p = L->pos;
        if (p >= L->n) return fail(L, p, block ? "unexpected end of template: missing '%}'" : "unexpected end of template: missing '}}'");
        const char *s = L->s + p;
        if (depth == 0) {
            const char *e = block ? "%}" : "}}";
            if ((s[0] == '-' || s[0] == '+') && starts(L, p + 1, e) && (block || s[0] == '-')) {
                if (!emit(L, block ? TK_BLOCK_END : TK_VAR_END, p, NULL, 0)) return false;
                L->pos = p + 3;
                if (s[0] == '-') L->pos = skip_spaces(L->s, L->n, L->pos);
                return true;
            }
            if (starts(L, p, e)) {
                if (!emit(L, block ? TK_BLOCK_END : TK_VAR_END, p, NULL, 0)) return false;
                L->pos = p + 2;
                if (block && L->pos < L->n && L->s[L->pos] == '\n') L->pos++; /* trim_blocks */
                return true;
            }
        }
        char c = s[0];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
            size_t e = p;
            while (e < L->n && ((L->s[e] >= 'a' && L->s[e] <= 'z') || (L->s[e] >= 'A' && L->s[e] <= 'Z') ||
                                (L->s[e] >= '0' && L->s[e] <= '9') || L->s[e] == '_'))
                e++;
            if (!emit(L, TK_NAME, p, s, e - p)) return false;
            L->pos = e;
        } else if (c >= '0' && c <= '9') {
            size_t e = p;
            char num[128];
            size_t k = 0;
            bool flt = false;
            while (e < L->n && ((L->s[e] >= '0' && L->s[e] <= '9') || (L->s[e] == '_' && e + 1 < L->n && L->s[e + 1] >= '0' && L->s[e + 1] <= '9'))) {
                if (L->s[e] != '_' && k < sizeof num - 1) num[k++] = L->s[e];
                e++;
            }
            if (e + 1 < L->n && L->s[e] == '.' && L->s[e + 1] >= '0' && L->s[e + 1] <= '9') {
                flt = true;
                num[k++] = '.';
                e++;
                while (e < L->n && ((L->s[e] >= '0' && L->s[e] <= '9') || (L->s[e] == '_' && e + 1 < L->n && L->s[e + 1] >= '0' && L->s[e + 1] <= '9'))) {
                    if (L->s[e] != '_' && k < sizeof num - 1) num[k++] = L->s[e];
                    e++;
                }
            }
            if (e < L->n && (L->s[e] == 'e' || L->s[e] == 'E')) {
                size_t f = e + 1;
                if (f < L->n && (L->s[f] == '+' || L->s[f] == '-')) f++;
                if (f < L->n && L->s[f] >= '0' && L->s[f] <= '9') {
                    flt = true;
                    if (k < sizeof num - 1) num[k++] = 'e';
                    for (size_t g = e + 1; g < f; g++) if (k < sizeof num - 1) num[k++] = L->s[g];
                    e = f;
                    while (e < L->n && L->s[e] >= '0' && L->s[e] <= '9') { if (k < sizeof num - 1) num[k++] = L->s[e]; e++; }
                }
            }
            if (k >= sizeof num - 1) return fail(L, p, "number literal too long");
            num[k] = 0;
            jtok *t = emit(L, flt ? TK_FLOAT : TK_INT, p, NULL, 0);
            if (!t) return false;
            if (flt) t->f = strtod(num, NULL);
            else {
                char *end;
                unsigned long long v = strtoull(num, &end, 10);
                if (k > 19 || v > (unsigned long long)INT64_MAX) return fail(L, p, "integer literal out of the 64-bit range");
                t->i = (int64_t)v;
            }
            L->pos = e;
        } else if (c == '\'' || c == '"') {
            size_t e = p + 1;
            while (e < L->n && L->s[e] != c) e += L->s[e] == '\\' ? 2 : 1;
            if (e >= L->n) return fail(L, p, "unterminated string");
            char *u = NULL;
            size_t un = 0;
            if (!unescape(L, p, s + 1, e - p - 1, &u, &un)) return false;
            jtok *t = emit(L, TK_STRING, p, NULL, 0);
            if (!t) return false;
            t->p = u;
            t->n = un;
            L->pos = e + 1;
        } else {
            size_t len = 0;
            for (size_t k = 0; k < sizeof ops2 / sizeof *ops2; k++)
                if (starts(L, p, ops2[k])) len = 2;
            if (!len && c && strchr("+-*/%~<>=.,:|()[]{}", c)) len = 1;
            if (!len) {
                char m[64];
                snprintf(m, sizeof m, "unexpected char '%c'", (c > 32 && c < 127) ? c : '?');
                return fail(L, p, m);
            }
            if (c == '(' || c == '[' || c == '{') depth++;
            if (c == ')' || c == ']' || c == '}') {
                if (depth == 0) {
                    char m[64];
                    snprintf(m, sizeof m, "unexpected '%c'", c);
                    return fail(L, p, m);
                }
                depth--;
            }
            if (!emit(L, TK_OP, p, s, len)) return false;
            L->pos = p + len;
        }
    }
}

/* splitlines() + "\n".join(): every line break becomes "\n", and one at the
 * very end goes */
static char *normalise(jj_arena *a, const char *src, size_t n, size_t *outn)
{
    char *o = jj_alloc(a, n + 1);
    if (!o) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '\r') {
            if (i + 1 < n && src[i + 1] == '\n') i++;
            o[k++] = '\n';
        } else if (c == '\n' || c == '\v' || c == '\f' || c == 0x1c || c == 0x1d || c == 0x1e) {
            o[k++] = '\n';
        } else if (c == 0xC2 && i + 1 < n && (unsigned char)src[i + 1] == 0x85) {
            o[k++] = '\n';
            i++;
        } else if (c == 0xE2 && i + 2 < n && (unsigned char)src[i + 1] == 0x80 &&
                   ((unsigned char)src[i + 2] == 0xA8 || (unsigned char)src[i + 2] == 0xA9)) {
            o[k++] = '\n';
            i += 2;
        } else {
            o[k++] = (char)c;
        }
    }
    if (k && o[k - 1] == '\n') k--;
    o[k] = 0;
    *outn = k;
    return o;
}

bool jj_lex(jj_arena *a, const char *src, size_t srcn, jtok **toks, size_t *n_toks, char *err, size_t errlen)
{
    lexer L = {.a = a, .err = err, .errlen = errlen, .line = 1};
    L.s = normalise(a, src, srcn, &L.n);
    if (!L.s) { snprintf(err, errlen, "1:1: out of memory"); return false; }
    bool line_starting = true;
    while (L.pos < L.n) {
        size_t i = L.pos, open = L.n;
        for (; i + 1 < L.n; i++)
            if (L.s[i] == '{' && (L.s[i + 1] == '{' || L.s[i + 1] == '%' || L.s[i + 1] == '#')) { open = i; break; }
        size_t dn = open - L.pos;
        if (open == L.n) {
            if (dn && !emit(&L, TK_DATA, L.pos, L.s + L.pos, dn)) return false;
            break;
        }
        char kind = L.s[open + 1];
        size_t after = open + 2;
        char sign = after < L.n && (L.s[after] == '-' || L.s[after] == '+') ? L.s[after] : 0;
        const char *d = L.s + L.pos;
        if (sign == '-') {
            dn = rstrip_len(d, dn);
        } else if (sign != '+' && kind != '{') {
            /* lstrip_blocks: only whitespace between the line start and the tag */
            size_t l = dn;
            while (l > 0 && d[l - 1] != '\n') l--;
            if (l > 0 || line_starting) {
                size_t j = skip_spaces(d, dn, l);
                bool all = j == dn;
                for (size_t q = l; all && q < dn; q++) if (d[q] == '\n') all = false;
                if (all) dn = l;
            }
        }
        if (dn && !emit(&L, TK_DATA, L.pos, d, dn)) return false;
        if (sign && !(sign == '+' && kind == '{')) after++;
        if (kind == '#') {
            size_t e = after;
            while (e + 1 < L.n && !(L.s[e] == '#' && L.s[e + 1] == '}')) e++;
            if (e + 1 >= L.n) return fail(&L, open, "missing end of comment tag");
            L.pos = e + 2;
            if (e > after && L.s[e - 1] == '-') L.pos = skip_spaces(L.s, L.n, L.pos);
            else if (!(e > after && L.s[e - 1] == '+') && L.pos < L.n && L.s[L.pos] == '\n') L.pos++;
            line_starting = L.s[L.pos - 1] == '\n';
            continue;
        }
        /* {% raw %} ... {% endraw %}: the text between is data as it stands */
        if (kind == '%') {
            size_t q = after;
            while (q < L.n && ws(L.s[q])) q++;
            if (starts(&L, q, "raw") && (q + 3 >= L.n || !((L.s[q + 3] >= 'a' && L.s[q + 3] <= 'z') || L.s[q + 3] == '_' ||
                                                          (L.s[q + 3] >= '0' && L.s[q + 3] <= '9') || (L.s[q + 3] >= 'A' && L.s[q + 3] <= 'Z')))) {
                q += 3;
                while (q < L.n && ws(L.s[q])) q++;
                bool minus = q < L.n && L.s[q] == '-';
                if (minus) q++;
                if (!starts(&L, q, "%}")) return fail(&L, q, "expected '%}' after 'raw'");
                q += 2;
                if (minus) q = skip_spaces(L.s, L.n, q);
                /* find {%[-+]? endraw [-+]?%} */
                size_t body = q, end = L.n, close = 0;
                char esign = 0, csign = 0;
                for (size_t r = q; r + 1 < L.n; r++) {
                    if (L.s[r] != '{' || L.s[r + 1] != '%') continue;
                    size_t t = r + 2;
                    char s1 = t < L.n && (L.s[t] == '-' || L.s[t] == '+') ? L.s[t] : 0;
                    if (s1) t++;
                    while (t < L.n && ws(L.s[t])) t++;
                    if (!starts(&L, t, "endraw")) continue;
                    t += 6;
                    while (t < L.n && ws(L.s[t])) t++;
                    char s2 = t < L.n && (L.s[t] == '-' || L.s[t] == '+') ? L.s[t] : 0;
                    if (s2) t++;
                    if (!starts(&L, t, "%}")) continue;
                    end = r;
                    close = t + 2;
                    esign = s1;
                    csign = s2;
                    break;
                }
                if (end == L.n) return fail(&L, open, "missing '{% endraw %}'");
                size_t bn = end - body;
                if (esign == '-') bn = rstrip_len(L.s + body, bn);
                if (bn && !emit(&L, TK_DATA, body, L.s + body, bn)) return false;
                L.pos = close;
                if (csign == '-') L.pos = skip_spaces(L.s, L.n, L.pos);
                else if (csign != '+' && L.pos < L.n && L.s[L.pos] == '\n') L.pos++;
                line_starting = L.s[L.pos - 1] == '\n';
                continue;
            }
        }
        if (!emit(&L, kind == '%' ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, open, NULL, 0)) return false;
        L.pos = after;
        if (!lex_tag(&L, kind == '%')) return false;
        line_starting = L.s[L.pos - 1] == '\n';
    }
    if (!emit(&L, TK_EOF, L.n, NULL, 0)) return false;
    *toks = L.t;
    *n_toks = L.nt;
    return true;
}
