/*
 * jinja_value.c: the interpreter's values as Python holds them (None, bool,
 * int, float, str, list/tuple, dict, namespace), in an arena per rendering:
 * construction, truth, equality and ordering, str()/repr() and json.dumps()
 * as Python writes them, and conversion from cJSON. Strings carry a mask of
 * the bytes that came from message content.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_impl.h"

/* ----- arena ----- */
struct jj_chunk {
    jj_chunk *next;
    size_t    used, cap;
    _Alignas(16) unsigned char mem[];
};

void *jj_alloc(jj_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!n) n = 16;
    if (a->limit && a->used + n > a->limit) { a->over = true; return NULL; }
    jj_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        c = malloc(sizeof *c + cap);
        if (!c) { a->over = true; return NULL; }
        c->cap = cap;
        c->used = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->mem + c->used;
    c->used += n;
    a->used += n;
    memset(p, 0, n);
    return p;
}

void jj_arena_free(jj_arena *a)
{
    for (jj_chunk *c = a->head, *nx; c; c = nx) {
        nx = c->next;
        free(c);
    }
    a->head = NULL;
    a->used = 0;
}

char *jj_strndup(jj_arena *a, const char *s, size_t n)
{
    char *p = jj_alloc(a, n + 1);
    if (p) {
        if (n) memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

/* ----- builder ----- */
static bool jbuf_grow(jbuf *b, size_t add)
{
    if (b->oom || b->over) return false;
    if (b->limit && b->n + add > b->limit) { b->over = true; return false; }
    if (b->n + add + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + add + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) { b->oom = true; return false; }
    b->p = p;
    if (b->mask) {
        uint8_t *m = realloc(b->mask, cap);
        if (!m) { b->oom = true; return false; }
        memset(m + b->cap, 0, cap - b->cap);
        b->mask = m;
    }
    b->cap = cap;
    return true;
}

static bool jbuf_mask_on(jbuf *b)
{
    if (b->mask) return true;
    b->mask = calloc(b->cap ? b->cap : 1, 1);
    if (!b->mask) b->oom = true;
    return b->mask != NULL;
}

void jbuf_put(jbuf *b, const char *s, size_t n, bool content)
{
    if (!jbuf_grow(b, n)) return;
    if (n) memcpy(b->p + b->n, s, n);
    if (content && n && jbuf_mask_on(b)) memset(b->mask + b->n, 1, n);
    b->n += n;
    b->p[b->n] = 0;
}

void jbuf_puts(jbuf *b, const char *s) { jbuf_put(b, s, strlen(s), false); }

void jbuf_put_str(jbuf *b, const jstr *s, size_t from, size_t n)
{
    if (!jbuf_grow(b, n)) return;
    if (n) memcpy(b->p + b->n, s->p + from, n);
    if (s->mask && n) {
        bool any = false;
        for (size_t i = 0; i < n && !any; i++) any = s->mask[from + i] != 0;
        if (any && jbuf_mask_on(b)) memcpy(b->mask + b->n, s->mask + from, n);
    }
    b->n += n;
    b->p[b->n] = 0;
}

void jbuf_free(jbuf *b)
{
    free(b->p);
    free(b->mask);
    memset(b, 0, sizeof *b);
}

/* ----- errors ----- */
bool jj_error(jctx *x, const char *fmt, ...)
{
    if (x->failed) return false;
    x->failed = true;
    x->status = VKI_ERR_INVALID_ARGUMENT;
    int k = snprintf(x->err, sizeof x->err, "%s:%d:%d: ", x->where, x->line, x->col);
    if (k < 0 || (size_t)k >= sizeof x->err) return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->err + k, sizeof x->err - (size_t)k, fmt, ap);
    va_end(ap);
    return false;
}

bool jj_oom(jctx *x)
{
    if (x->failed) return false;
    bool limit = x->arena->limit && x->arena->used + 65536 > x->arena->limit;
    jj_error(x, limit ? "the rendering needs more than %zu bytes of memory" : "out of memory (%zu bytes in use)",
             limit ? x->arena->limit : x->arena->used);
    x->status = limit ? VKI_ERR_UNSUPPORTED : VKI_ERR_OUT_OF_MEMORY;
    return false;
}

/* ----- constructors ----- */
jv jv_str(jctx *x, const char *p, size_t n, const uint8_t *mask)
{
    jstr *s = jj_alloc(x->arena, sizeof *s);
    char *c = s ? jj_strndup(x->arena, p, n) : NULL;
    if (!c) { jj_oom(x); return jv_undef(NULL); }
    s->p = c;
    s->n = n;
    if (mask) {
        bool any = false;
        for (size_t i = 0; i < n && !any; i++) any = mask[i] != 0;
        if (any) {
            uint8_t *m = jj_alloc(x->arena, n);
            if (!m) { jj_oom(x); return jv_undef(NULL); }
            memcpy(m, mask, n);
            s->mask = m;
        }
    }
    jv v = {.k = JV_STR};
    v.u.s = s;
    return v;
}

jv jv_cstr(jctx *x, const char *s) { return jv_str(x, s, strlen(s), NULL); }

jv jv_str_from_buf(jctx *x, jbuf *b)
{
    if (b->oom) { jbuf_free(b); jj_oom(x); return jv_undef(NULL); }
    if (b->over) { jbuf_free(b); jj_error(x, "output larger than %zu bytes", x->lim->max_output); x->status = VKI_ERR_UNSUPPORTED; return jv_undef(NULL); }
    jv v = jv_str(x, b->p ? b->p : "", b->n, b->mask);
    jbuf_free(b);
    return v;
}

jv jv_list(jctx *x, size_t cap)
{
    jlist *l = jj_alloc(x->arena, sizeof *l);
    if (l && cap) {
        l->v = jj_alloc(x->arena, cap * sizeof *l->v);
        l->cap = cap;
        if (!l->v) l = NULL;
    }
    if (!l) { jj_oom(x); return jv_undef(NULL); }
    jv v = {.k = JV_LIST};
    v.u.l = l;
    return v;
}

jv jv_dict(jctx *x, size_t cap)
{
    jdict *d = jj_alloc(x->arena, sizeof *d);
    if (d && cap) {
        d->k = jj_alloc(x->arena, cap * sizeof *d->k);
        d->v = jj_alloc(x->arena, cap * sizeof *d->v);
        d->cap = cap;
        if (!d->k || !d->v) d = NULL;
    }
    if (!d) { jj_oom(x); return jv_undef(NULL); }
    jv v = {.k = JV_DICT};
    v.u.d = d;
    return v;
}

bool jl_push(jctx *x, jlist *l, jv v)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 4;
        jv *nv = jj_alloc(x->arena, cap * sizeof *nv);
        if (!nv) return jj_oom(x);
        if (l->n) memcpy(nv, l->v, l->n * sizeof *nv);
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = v;
    return true;
}

jv *jd_get(const jdict *d, jv k)
{
    for (size_t i = 0; i < d->n; i++)
        if (jv_eq(d->k[i], k)) return &d->v[i];
    return NULL;
}

jv *jd_gets(const jdict *d, const char *k)
{
    size_t n = strlen(k);
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].k == JV_STR && d->k[i].u.s->n == n && !memcmp(d->k[i].u.s->p, k, n)) return &d->v[i];
    return NULL;
}

bool jd_set(jctx *x, jdict *d, jv k, jv v)
{
    jv *at = jd_get(d, k);
    if (at) { *at = v; return true; }
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 4;
        jv *nk = jj_alloc(x->arena, cap * sizeof *nk), *nv = jj_alloc(x->arena, cap * sizeof *nv);
        if (!nk || !nv) return jj_oom(x);
        if (d->n) {
            memcpy(nk, d->k, d->n * sizeof *nk);
            memcpy(nv, d->v, d->n * sizeof *nv);
        }
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = k;
    d->v[d->n++] = v;
    return true;
}

/* ----- truth, equality, order ----- */
bool jv_truthy(jv v)
{
    switch (v.k) {
    case JV_BOOL: return v.u.b;
    case JV_INT: return v.u.i != 0;
    case JV_FLOAT: return v.u.f != 0;
    case JV_STR: return v.u.s->n != 0;
    case JV_LIST: return v.u.l->n != 0 || v.u.l->lazy == JL_GENERATOR || v.u.l->lazy == JL_ITERATOR;
    case JV_DICT: return v.u.d->n != 0;
    case JV_NS: case JV_FUNC: return true;
    default: return false;
    }
}

bool jv_is_int_like(jv v) { return v.k == JV_INT || v.k == JV_BOOL; }
bool jv_is_number(jv v) { return v.k == JV_INT || v.k == JV_BOOL || v.k == JV_FLOAT; }
double jv_num(jv v) { return v.k == JV_FLOAT ? v.u.f : v.k == JV_INT ? (double)v.u.i : v.k == JV_BOOL ? v.u.b : 0; }

bool jv_eq(jv a, jv b)
{
    if (jv_is_number(a) && jv_is_number(b)) {
        if (jv_is_int_like(a) && jv_is_int_like(b)) return (a.k == JV_INT ? a.u.i : a.u.b) == (b.k == JV_INT ? b.u.i : b.u.b);
        return jv_num(a) == jv_num(b);
    }
    if (a.k != b.k) return false;
    switch (a.k) {
    case JV_UNDEF: case JV_NONE: return true;
    case JV_STR: return a.u.s->n == b.u.s->n && !memcmp(a.u.s->p, b.u.s->p, a.u.s->n);
    case JV_LIST:
        if (a.u.l->lazy || b.u.l->lazy) return a.u.l == b.u.l;
        if (a.u.l->tuple != b.u.l->tuple || a.u.l->n != b.u.l->n) return false;
        for (size_t i = 0; i < a.u.l->n; i++) if (!jv_eq(a.u.l->v[i], b.u.l->v[i])) return false;
        return true;
    case JV_DICT:
        if (a.u.d->n != b.u.d->n) return false;
        for (size_t i = 0; i < a.u.d->n; i++) {
            jv *o = jd_get(b.u.d, a.u.d->k[i]);
            if (!o || !jv_eq(a.u.d->v[i], *o)) return false;
        }
        return true;
    default: return a.u.d == b.u.d;
    }
}

const char *jl_kind_name(const jlist *l)
{
    static const char *const names[] = {"list", "generator", "list_reverseiterator", "dict_items", "dict_keys", "dict_values"};
    return l->lazy ? names[l->lazy] : l->tuple ? "tuple" : "list";
}

const char *jv_type_name(jv v)
{
    switch (v.k) {
    case JV_UNDEF: return "Undefined";
    case JV_NONE: return "NoneType";
    case JV_BOOL: return "bool";
    case JV_INT: return "int";
    case JV_FLOAT: return "float";
    case JV_STR: return "str";
    case JV_LIST: return jl_kind_name(v.u.l);
    case JV_DICT: return "dict";
    case JV_NS: return "Namespace";
    default: return v.u.fn->kind == JF_MACRO ? "Macro" : "function";
    }
}

bool jv_cmp(jctx *x, jv a, jv b, int *r)
{
    if (jv_is_number(a) && jv_is_number(b)) {
        if (jv_is_int_like(a) && jv_is_int_like(b)) {
            int64_t p = a.k == JV_INT ? a.u.i : a.u.b, q = b.k == JV_INT ? b.u.i : b.u.b;
            *r = p < q ? -1 : p > q;
        } else {
            double p = jv_num(a), q = jv_num(b);
            *r = p < q ? -1 : p > q;
        }
        return true;
    }
    if (a.k == JV_STR && b.k == JV_STR) {
        size_t n = a.u.s->n < b.u.s->n ? a.u.s->n : b.u.s->n;
        int c = memcmp(a.u.s->p, b.u.s->p, n);
        *r = c < 0 ? -1 : c > 0 ? 1 : a.u.s->n < b.u.s->n ? -1 : a.u.s->n > b.u.s->n;
        return true;
    }
    if (a.k == JV_LIST && b.k == JV_LIST && a.u.l->tuple == b.u.l->tuple) {
        for (size_t i = 0; i < a.u.l->n && i < b.u.l->n; i++) {
            if (jv_eq(a.u.l->v[i], b.u.l->v[i])) continue;
            return jv_cmp(x, a.u.l->v[i], b.u.l->v[i], r);
        }
        *r = a.u.l->n < b.u.l->n ? -1 : a.u.l->n > b.u.l->n;
        return true;
    }
    return jj_error(x, "'<' not supported between instances of '%s' and '%s'", jv_type_name(a), jv_type_name(b));
}

/* ----- text forms ----- */
void jj_fmt_double(double d, char *out, size_t n)
{
    if (isnan(d)) { snprintf(out, n, "nan"); return; }
    if (isinf(d)) { snprintf(out, n, d < 0 ? "-inf" : "inf"); return; }
    if (d == 0) { snprintf(out, n, signbit(d) ? "-0.0" : "0.0"); return; }
    char e[64];
    int p;
    for (p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, d);
        if (strtod(e, NULL) == d) break;
    }
    /* e = [-]D[.DDD]e[+-]XX: digits and exponent */
    char digits[32];
    size_t nd = 0;
    const char *q = e;
    bool neg = *q == '-';
    if (neg) q++;
    for (; *q && *q != 'e'; q++) if (*q != '.') digits[nd++] = *q;
    int exp = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    char o[64];
    size_t k = 0;
    if (neg) o[k++] = '-';
    if (exp >= -4 && exp < 16) {
        if (exp < 0) {
            o[k++] = '0';
            o[k++] = '.';
            for (int z = 0; z < -exp - 1; z++) o[k++] = '0';
            for (size_t i = 0; i < nd; i++) o[k++] = digits[i];
        } else {
            for (int i = 0; i <= exp; i++) o[k++] = (size_t)i < nd ? digits[i] : '0';
            o[k++] = '.';
            if ((size_t)exp + 1 < nd) for (size_t i = (size_t)exp + 1; i < nd; i++) o[k++] = digits[i];
            else o[k++] = '0';
        }
        o[k] = 0;
    } else {
        o[k++] = digits[0];
        if (nd > 1) {
            o[k++] = '.';
            for (size_t i = 1; i < nd; i++) o[k++] = digits[i];
        }
        snprintf(o + k, sizeof o - k, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    }
    snprintf(out, n, "%s", o);
}

static void put_i64(jbuf *b, int64_t i)
{
    char t[32];
    snprintf(t, sizeof t, "%lld", (long long)i);
    jbuf_puts(b, t);
}

/* the escape repr() writes for a non-printable character at p, and its
 * byte length; 0 when it is printable */
static size_t unprintable(const char *p, size_t n, char *out, size_t outn)
{
    const unsigned char *u = (const unsigned char *)p;
    uint32_t cp;
    size_t len;
    if (u[0] < 0xE0 && n >= 2) { cp = ((u[0] & 31u) << 6) | (u[1] & 63u); len = 2; }
    else if (u[0] >= 0xE0 && n >= 3) { cp = ((u[0] & 15u) << 12) | ((u[1] & 63u) << 6) | (u[2] & 63u); len = 3; }
    else return 0;
    bool np = (cp >= 0x80 && cp <= 0xA0) || cp == 0xAD || (cp >= 0x2000 && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F) ||
              (cp >= 0x205F && cp <= 0x206F) || cp == 0x3000 || cp == 0x1680;
    if (!np) return 0;
    if (cp <= 0xFF) snprintf(out, outn, "\\x%02x", cp);
    else snprintf(out, outn, "\\u%04x", cp);
    return len;
}

static void repr_str(const jstr *s, jbuf *b)
{
    bool sq = memchr(s->p, '\'', s->n) != NULL, dq = memchr(s->p, '"', s->n) != NULL;
    char q = sq && !dq ? '"' : '\'';
    jbuf_put(b, &q, 1, false);
    size_t run = 0;
    for (size_t i = 0; i < s->n; i++) {
        unsigned char c = (unsigned char)s->p[i];
        const char *esc = NULL;
        char hex[16];
        size_t len;
        if (c == '\\') esc = "\\\\";
        else if (c == (unsigned char)q) esc = q == '\'' ? "\\'" : "\\\"";
        else if (c == '\n') esc = "\\n";
        else if (c == '\r') esc = "\\r";
        else if (c == '\t') esc = "\\t";
        else if (c < 0x20 || c == 0x7f) { snprintf(hex, sizeof hex, "\\x%02x", c); esc = hex; }
        else if (c >= 0xC2 && c <= 0xE3 && (len = unprintable(s->p + i, s->n - i, hex, sizeof hex))) {
            /* what Python's str.isprintable() refuses: C1 controls, odd spaces, format characters */
            jbuf_put_str(b, s, i - run, run);
            run = 0;
            jbuf_put(b, hex, strlen(hex), s->mask && s->mask[i]);
            i += len - 1;
            continue;
        }
        if (esc) {
            jbuf_put_str(b, s, i - run, run);
            run = 0;
            jbuf_put(b, esc, strlen(esc), s->mask && s->mask[i]);
        } else {
            run++;
        }
    }
    jbuf_put_str(b, s, s->n - run, run);
    jbuf_put(b, &q, 1, false);
}

static bool to_text(jctx *x, jv v, jbuf *b, bool repr, int depth)
{
    char t[64];
    if (depth > 200) return jj_error(x, "value nested too deeply to print");
    switch (v.k) {
    case JV_UNDEF: if (repr) jbuf_puts(b, "Undefined"); break;
    case JV_NONE: jbuf_puts(b, "None"); break;
    case JV_BOOL: jbuf_puts(b, v.u.b ? "True" : "False"); break;
    case JV_INT: put_i64(b, v.u.i); break;
    case JV_FLOAT: jj_fmt_double(v.u.f, t, sizeof t); jbuf_puts(b, t); break;
    case JV_STR:
        if (repr) repr_str(v.u.s, b);
        else jbuf_put_str(b, v.u.s, 0, v.u.s->n);
        break;
    case JV_LIST:
        if (v.u.l->lazy) {
            /* Python prints an address here; nothing to match */
            jbuf_puts(b, "<");
            jbuf_puts(b, jl_kind_name(v.u.l));
            jbuf_puts(b, " object>");
            break;
        }
        jbuf_puts(b, v.u.l->tuple ? "(" : "[");
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i) jbuf_puts(b, ", ");
            if (!to_text(x, v.u.l->v[i], b, true, depth + 1)) return false;
        }
        if (v.u.l->tuple && v.u.l->n == 1) jbuf_puts(b, ",");
        jbuf_puts(b, v.u.l->tuple ? ")" : "]");
        break;
    case JV_DICT:
    case JV_NS:
        jbuf_puts(b, v.k == JV_NS ? "<Namespace {" : "{");
        for (size_t i = 0; i < v.u.d->n; i++) {
            if (i) jbuf_puts(b, ", ");
            if (!to_text(x, v.u.d->k[i], b, true, depth + 1)) return false;
            jbuf_puts(b, ": ");
            if (!to_text(x, v.u.d->v[i], b, true, depth + 1)) return false;
        }
        jbuf_puts(b, v.k == JV_NS ? "}>" : "}");
        break;
    case JV_FUNC:
        jbuf_puts(b, "<function ");
        jbuf_puts(b, v.u.fn->name ? v.u.fn->name : "?");
        jbuf_puts(b, ">");
        break;
    }
    return true;
}

bool jv_to_str(jctx *x, jv v, jbuf *b) { return to_text(x, v, b, false, 0); }
bool jv_repr(jctx *x, jv v, jbuf *b) { return to_text(x, v, b, true, 0); }

jv jv_as_str(jctx *x, jv v)
{
    if (v.k == JV_STR) return v;
    jbuf b = {.limit = x->lim->max_output};
    if (!jv_to_str(x, v, &b)) { jbuf_free(&b); return jv_undef(NULL); }
    return jv_str_from_buf(x, &b);
}

/* ----- json.dumps ----- */
static void json_str(const jstr *s, jbuf *b, bool ensure_ascii)
{
    jbuf_put(b, "\"", 1, false);
    size_t run = 0;
    for (size_t i = 0; i < s->n; i++) {
        unsigned char c = (unsigned char)s->p[i];
        char esc[16];
        const char *e = NULL;
        size_t len = 1;
        if (c == '"') e = "\\\"";
        else if (c == '\\') e = "\\\\";
        else if (c == '\n') e = "\\n";
        else if (c == '\r') e = "\\r";
        else if (c == '\t') e = "\\t";
        else if (c == '\b') e = "\\b";
        else if (c == '\f') e = "\\f";
        else if (c < 0x20 || (ensure_ascii && c == 0x7f)) { snprintf(esc, sizeof esc, "\\u%04x", c); e = esc; }
        else if (ensure_ascii && c >= 0x80) {
            uint32_t cp;
            if (c >= 0xF0 && i + 3 < s->n) { cp = ((c & 7u) << 18) | ((s->p[i + 1] & 63u) << 12) | ((s->p[i + 2] & 63u) << 6) | (s->p[i + 3] & 63u); len = 4; }
            else if (c >= 0xE0 && i + 2 < s->n) { cp = ((c & 15u) << 12) | ((s->p[i + 1] & 63u) << 6) | (s->p[i + 2] & 63u); len = 3; }
            else if (c >= 0xC0 && i + 1 < s->n) { cp = ((c & 31u) << 6) | (s->p[i + 1] & 63u); len = 2; }
            else cp = 0xFFFD;
            if (cp >= 0x10000) {
                cp -= 0x10000;
                snprintf(esc, sizeof esc, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
            } else {
                snprintf(esc, sizeof esc, "\\u%04x", cp);
            }
            e = esc;
        }
        if (e) {
            jbuf_put_str(b, s, i - run, run);
            run = 0;
            jbuf_put(b, e, strlen(e), s->mask && s->mask[i]);
            i += len - 1;
        } else {
            run++;
        }
    }
    jbuf_put_str(b, s, s->n - run, run);
    jbuf_put(b, "\"", 1, false);
}

static void json_nl(jbuf *b, int indent, int depth)
{
    jbuf_puts(b, "\n");
    for (int i = 0; i < indent * depth; i++) jbuf_puts(b, " ");
}

static int key_order(const void *p, const void *q)
{
    const jv *a = p, *c = q;
    size_t n = a->u.s->n < c->u.s->n ? a->u.s->n : c->u.s->n;
    int r = memcmp(a->u.s->p, c->u.s->p, n);
    return r ? r : (a->u.s->n > c->u.s->n) - (a->u.s->n < c->u.s->n);
}

bool jv_to_json(jctx *x, jv v, jbuf *b, int indent, int depth, const char *item_sep, const char *key_sep,
                bool sort_keys, bool ensure_ascii)
{
    char t[64];
    if (depth > 200) return jj_error(x, "value nested too deeply for tojson");
    switch (v.k) {
    case JV_NONE: jbuf_puts(b, "null"); return true;
    case JV_BOOL: jbuf_puts(b, v.u.b ? "true" : "false"); return true;
    case JV_INT: put_i64(b, v.u.i); return true;
    case JV_FLOAT:
        if (isnan(v.u.f)) jbuf_puts(b, "NaN");
        else if (isinf(v.u.f)) jbuf_puts(b, v.u.f < 0 ? "-Infinity" : "Infinity");
        else { jj_fmt_double(v.u.f, t, sizeof t); jbuf_puts(b, t); }
        return true;
    case JV_STR: json_str(v.u.s, b, ensure_ascii); return true;
    case JV_LIST:
        if (v.u.l->lazy) return jj_error(x, "Object of type %s is not JSON serializable", jl_kind_name(v.u.l));
        if (!v.u.l->n) { jbuf_puts(b, "[]"); return true; }
        jbuf_puts(b, "[");
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i) jbuf_puts(b, item_sep);
            if (indent >= 0) json_nl(b, indent, depth + 1);
            if (!jv_to_json(x, v.u.l->v[i], b, indent, depth + 1, item_sep, key_sep, sort_keys, ensure_ascii)) return false;
        }
        if (indent >= 0) json_nl(b, indent, depth);
        jbuf_puts(b, "]");
        return true;
    case JV_DICT: {
        if (!v.u.d->n) { jbuf_puts(b, "{}"); return true; }
        /* keys as JSON text first: Python converts them before sorting */
        size_t n = v.u.d->n;
        jv *keys = jj_alloc(x->arena, n * sizeof *keys);
        size_t *idx = jj_alloc(x->arena, n * sizeof *idx);
        if (!keys || !idx) return jj_oom(x);
        for (size_t i = 0; i < n; i++) {
            jv k = v.u.d->k[i];
            if (k.k == JV_STR) keys[i] = k;
            else if (k.k == JV_NONE) keys[i] = jv_cstr(x, "null");
            else if (k.k == JV_BOOL) keys[i] = jv_cstr(x, k.u.b ? "true" : "false");
            else if (k.k == JV_INT || k.k == JV_FLOAT) keys[i] = jv_as_str(x, k);
            else return jj_error(x, "keys must be str, int, float, bool or None, not %s", jv_type_name(k));
            if (x->failed) return false;
        }
        if (sort_keys) {
            /* stable: sort (key, index) pairs by key */
            jv *pairs = jj_alloc(x->arena, n * 2 * sizeof *pairs);
            if (!pairs) return jj_oom(x);
            for (size_t i = 0; i < n; i++) idx[i] = i;
            for (size_t i = 1; i < n; i++)
                for (size_t j = i; j > 0 && key_order(&keys[idx[j - 1]], &keys[idx[j]]) > 0; j--) {
                    size_t s = idx[j];
                    idx[j] = idx[j - 1];
                    idx[j - 1] = s;
                }
        } else {
            for (size_t i = 0; i < n; i++) idx[i] = i;
        }
        jbuf_puts(b, "{");
        for (size_t i = 0; i < n; i++) {
            if (i) jbuf_puts(b, item_sep);
            if (indent >= 0) json_nl(b, indent, depth + 1);
            json_str(keys[idx[i]].u.s, b, ensure_ascii);
            jbuf_puts(b, key_sep);
            if (!jv_to_json(x, v.u.d->v[idx[i]], b, indent, depth + 1, item_sep, key_sep, sort_keys, ensure_ascii)) return false;
        }
        if (indent >= 0) json_nl(b, indent, depth);
        jbuf_puts(b, "}");
        return true;
    }
    default:
        return jj_error(x, "Object of type %s is not JSON serializable", jv_type_name(v));
    }
}

/* mode 0: plain; 1: every string is content; 2: a messages list, where the
 * subtrees under content, reasoning_content and arguments are content */
static jv from_json(jctx *x, const cJSON *j, int mode, int depth)
{
    if (depth > 200) { jj_error(x, "context JSON nested too deeply"); return jv_undef(NULL); }
    if (cJSON_IsNull(j)) return jv_none();
    if (cJSON_IsBool(j)) return jv_bool(cJSON_IsTrue(j));
    if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (d == floor(d) && fabs(d) < 9.007199254740992e15) return jv_int((int64_t)d);
        return jv_float(d);
    }
    if (cJSON_IsString(j)) {
        size_t n = strlen(j->valuestring);
        jv v = jv_str(x, j->valuestring, n, NULL);
        if (mode == 1 && n && v.k == JV_STR) {
            uint8_t *m = jj_alloc(x->arena, n);
            if (!m) { jj_oom(x); return jv_undef(NULL); }
            memset(m, 1, n);
            v.u.s->mask = m;
        }
        return v;
    }
    if (cJSON_IsArray(j)) {
        jv l = jv_list(x, (size_t)cJSON_GetArraySize(j));
        const cJSON *e;
        cJSON_ArrayForEach(e, j) {
            if (x->failed || !jl_push(x, l.u.l, from_json(x, e, mode, depth + 1))) return jv_undef(NULL);
        }
        return l;
    }
    if (cJSON_IsObject(j)) {
        jv d = jv_dict(x, (size_t)cJSON_GetArraySize(j));
        const cJSON *e;
        cJSON_ArrayForEach(e, j) {
            int m = mode;
            if (mode == 2 && (!strcmp(e->string, "content") || !strcmp(e->string, "reasoning_content") ||
                              !strcmp(e->string, "arguments")))
                m = 1;
            jv k = jv_cstr(x, e->string);
            jv v = from_json(x, e, m, depth + 1);
            if (x->failed || !jd_set(x, d.u.d, k, v)) return jv_undef(NULL);
        }
        return d;
    }
    jj_error(x, "context JSON holds a value of unknown type");
    return jv_undef(NULL);
}

jv jv_from_json(jctx *x, const cJSON *j, bool content) { return from_json(x, j, content ? 2 : 0, 0); }

/* ----- UTF-8 ----- */
size_t jj_u8_len(const char *p, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)p[i] & 0xC0) != 0x80;
    return c;
}

size_t jj_u8_offset(const char *p, size_t n, size_t cp)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        if (((unsigned char)p[i] & 0xC0) != 0x80) {
            if (c == cp) return i;
            c++;
        }
    }
    return n;
}

bool jj_is_space_at(const char *s, size_t n, size_t i, size_t *len)
{
    unsigned char c = (unsigned char)s[i];
    *len = 1;
    if ((c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20)) return true;
    if (c < 0x80) return false;
    uint32_t cp;
    if (c >= 0xE0 && c < 0xF0 && i + 2 < n) { cp = ((c & 15u) << 12) | ((s[i + 1] & 63u) << 6) | (s[i + 2] & 63u); *len = 3; }
    else if (c >= 0xC0 && c < 0xE0 && i + 1 < n) { cp = ((c & 31u) << 6) | (s[i + 1] & 63u); *len = 2; }
    else return false;
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}
