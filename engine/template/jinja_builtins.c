/*
 * jinja_builtins.c: jinja2's filters and tests, Python's str/list/dict
 * methods, and the globals transformers gives templates (range, namespace,
 * dict, raise_exception, strftime_now), with the immutable sandbox's refusal
 * of methods that change a list or dict. tojson is transformers' own
 * (json.dumps with ensure_ascii=False), not jinja2's HTML-safe one.
 * Case mapping (upper, lower, title, capitalize) covers ASCII only.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jinja_impl.h"

typedef struct fargs {
    const jv    *pos;
    size_t       n;
    const char **kwn;
    const jv    *kwv;
    size_t       n_kw;
} fargs;

/* argument `name` at position i (i < 0: keyword only); NULL when not given */
static const jv *arg(const fargs *a, int i, const char *name)
{
    if (i >= 0 && (size_t)i < a->n) return &a->pos[i];
    for (size_t k = 0; k < a->n_kw; k++)
        if (!strcmp(a->kwn[k], name)) return &a->kwv[k];
    return NULL;
}

static bool need_str(jctx *x, jv v, const char *what, const jstr **s)
{
    if (v.k != JV_STR) return jj_error(x, "%s: expected a string, got %s", what, jv_type_name(v));
    *s = v.u.s;
    return true;
}

static bool get_int(jctx *x, const jv *v, int64_t def, const char *what, int64_t *out)
{
    if (!v || v->k == JV_NONE) { *out = def; return true; }
    if (!jv_is_int_like(*v)) return jj_error(x, "%s: expected an integer, got %s", what, jv_type_name(*v));
    *out = v->k == JV_INT ? v->u.i : v->u.b;
    return true;
}

bool jj_iter(jctx *x, jv v, jlist **out)
{
    jv l;
    switch (v.k) {
    case JV_LIST: *out = v.u.l; return true;
    case JV_UNDEF:
        l = jv_list(x, 0);
        if (x->failed) return false;
        *out = l.u.l;
        return true;
    case JV_DICT:
        l = jv_list(x, v.u.d->n);
        if (x->failed) return false;
        for (size_t i = 0; i < v.u.d->n; i++) jl_push(x, l.u.l, v.u.d->k[i]);
        *out = l.u.l;
        return !x->failed;
    case JV_STR: {
        const jstr *s = v.u.s;
        l = jv_list(x, s->n);
        if (x->failed) return false;
        for (size_t i = 0; i < s->n;) {
            size_t j = i + 1;
            while (j < s->n && ((unsigned char)s->p[j] & 0xC0) == 0x80) j++;
            if (!jl_push(x, l.u.l, jj_substr(x, s, i, j - i))) return false;
            i = j;
        }
        *out = l.u.l;
        return !x->failed;
    }
    default:
        return jj_error(x, "'%s' object is not iterable", jv_type_name(v));
    }
}

/* ----- string helpers ----- */
typedef enum { CASE_UPPER, CASE_LOWER, CASE_TITLE, CASE_CAPITALIZE, CASE_PYTITLE } case_op;

static jv change_case(jctx *x, const jstr *s, case_op op)
{
    jbuf b = {.limit = x->lim->max_output};
    jbuf_put_str(&b, s, 0, s->n);
    if (b.oom || b.over || !b.p) return jv_str_from_buf(x, &b);
    bool start = true;
    for (size_t i = 0; i < b.n; i++) {
        char c = b.p[i];
        bool lower = c >= 'a' && c <= 'z', upper = c >= 'A' && c <= 'Z';
        switch (op) {
        case CASE_UPPER: if (lower) b.p[i] = (char)(c - 32); break;
        case CASE_LOWER: if (upper) b.p[i] = (char)(c + 32); break;
        case CASE_CAPITALIZE:
            if (i == 0 && lower) b.p[i] = (char)(c - 32);
            else if (i > 0 && upper) b.p[i] = (char)(c + 32);
            break;
        case CASE_PYTITLE:
            /* str.title(): a cased letter after an uncased character starts a word */
            if (start && lower) b.p[i] = (char)(c - 32);
            else if (!start && upper) b.p[i] = (char)(c + 32);
            start = !(lower || upper) && !((unsigned char)c >= 0x80);
            break;
        case CASE_TITLE:
            /* jinja2's title: a word starts after spaces, '-', '[', '(' or '{' */
            if (start && lower) b.p[i] = (char)(c - 32);
            else if (!start && upper) b.p[i] = (char)(c + 32);
            start = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' || c == '-' || c == '[' ||
                    c == '(' || c == '{';
            break;
        }
    }
    return jv_str_from_buf(x, &b);
}

/* str.strip family: chars NULL = whitespace; which: 1 left, 2 right, 3 both */
static jv strip(jctx *x, const jstr *s, const jstr *chars, int which)
{
    size_t a = 0, b = s->n, len;
    if (!chars) {
        if (which & 1) while (a < b && jj_is_space_at(s->p, s->n, a, &len)) a += len;
        if (which & 2) {
            /* find the end of the last non-space character */
            size_t i = a, keep = a;
            while (i < b) {
                if (jj_is_space_at(s->p, s->n, i, &len)) { i += len; continue; }
                i++;
                while (i < b && ((unsigned char)s->p[i] & 0xC0) == 0x80) i++;
                keep = i;
            }
            b = keep;
        }
    } else {
        /* chars is a set of code points */
        for (;;) {
            if (!(which & 1) || a >= b) break;
            size_t j = a + 1;
            while (j < b && ((unsigned char)s->p[j] & 0xC0) == 0x80) j++;
            if (!memmem(chars->p, chars->n, s->p + a, j - a)) break;
            a = j;
        }
        for (;;) {
            if (!(which & 2) || b <= a) break;
            size_t j = b - 1;
            while (j > a && ((unsigned char)s->p[j] & 0xC0) == 0x80) j--;
            if (!memmem(chars->p, chars->n, s->p + j, b - j)) break;
            b = j;
        }
    }
    return jj_substr(x, s, a, b - a);
}

static jv replace(jctx *x, const jstr *s, const jstr *old, const jstr *new, int64_t count)
{
    jbuf b = {.limit = x->lim->max_output};
    size_t i = 0;
    int64_t done = 0;
    if (old->n == 0) {
        /* Python inserts `new` around every character */
        size_t k = 0;
        while (true) {
            if (count >= 0 && done >= count) break;
            jbuf_put_str(&b, new, 0, new->n);
            done++;
            if (k >= s->n) { k = s->n + 1; break; }
            size_t j = k + 1;
            while (j < s->n && ((unsigned char)s->p[j] & 0xC0) == 0x80) j++;
            jbuf_put_str(&b, s, k, j - k);
            k = j;
        }
        if (k <= s->n) jbuf_put_str(&b, s, k, s->n - k);
        return jv_str_from_buf(x, &b);
    }
    while (i <= s->n) {
        const char *hit = (count < 0 || done < count) ? memmem(s->p + i, s->n - i, old->p, old->n) : NULL;
        if (!hit) break;
        size_t at = (size_t)(hit - s->p);
        jbuf_put_str(&b, s, i, at - i);
        /* the replacement is content when the text it replaces was */
        bool content = false;
        for (size_t k = 0; s->mask && k < old->n; k++) content |= s->mask[at + k] != 0;
        if (content) jbuf_put(&b, new->p, new->n, true);
        else jbuf_put_str(&b, new, 0, new->n);
        i = at + old->n;
        done++;
    }
    jbuf_put_str(&b, s, i, s->n - i);
    return jv_str_from_buf(x, &b);
}

static bool split(jctx *x, const jstr *s, const jstr *sep, int64_t maxsplit, jv *out)
{
    jv l = jv_list(x, 0);
    if (x->failed) return false;
    size_t len;
    if (!sep) {
        size_t i = 0;
        int64_t done = 0;
        while (i < s->n) {
            while (i < s->n && jj_is_space_at(s->p, s->n, i, &len)) i += len;
            if (i >= s->n) break;
            if (maxsplit >= 0 && done >= maxsplit) {
                /* the rest as it stands, trailing spaces included */
                if (!jl_push(x, l.u.l, jj_substr(x, s, i, s->n - i))) return false;
                break;
            }
            size_t j = i;
            while (j < s->n && !jj_is_space_at(s->p, s->n, j, &len)) j++;
            if (!jl_push(x, l.u.l, jj_substr(x, s, i, j - i))) return false;
            done++;
            i = j;
        }
    } else {
        if (!sep->n) return jj_error(x, "empty separator");
        size_t i = 0;
        int64_t done = 0;
        for (;;) {
            const char *hit = (maxsplit < 0 || done < maxsplit) ? memmem(s->p + i, s->n - i, sep->p, sep->n) : NULL;
            size_t at = hit ? (size_t)(hit - s->p) : s->n;
            if (!jl_push(x, l.u.l, jj_substr(x, s, i, at - i))) return false;
            if (!hit) break;
            i = at + sep->n;
            done++;
        }
    }
    *out = l;
    return !x->failed;
}

/* splitlines(): \n, \r\n, \r, \v, \f, \x1c-\x1e, U+0085, U+2028, U+2029 */
static size_t line_break_at(const jstr *s, size_t i)
{
    unsigned char c = (unsigned char)s->p[i];
    if (c == '\r') return i + 1 < s->n && s->p[i + 1] == '\n' ? 2 : 1;
    if (c == '\n' || c == '\v' || c == '\f' || c == 0x1c || c == 0x1d || c == 0x1e) return 1;
    if (c == 0xC2 && i + 1 < s->n && (unsigned char)s->p[i + 1] == 0x85) return 2;
    if (c == 0xE2 && i + 2 < s->n && (unsigned char)s->p[i + 1] == 0x80 &&
        ((unsigned char)s->p[i + 2] == 0xA8 || (unsigned char)s->p[i + 2] == 0xA9))
        return 3;
    return 0;
}

static bool splitlines(jctx *x, const jstr *s, jlist **out)
{
    jv l = jv_list(x, 0);
    if (x->failed) return false;
    size_t i = 0, start = 0;
    while (i < s->n) {
        size_t br = line_break_at(s, i);
        if (!br) { i++; continue; }
        if (!jl_push(x, l.u.l, jj_substr(x, s, start, i - start))) return false;
        i += br;
        start = i;
    }
    if (start < s->n && !jl_push(x, l.u.l, jj_substr(x, s, start, s->n - start))) return false;
    *out = l.u.l;
    return !x->failed;
}

static bool str_of(jctx *x, jv v, jv *out)
{
    *out = jv_as_str(x, v);
    return !x->failed;
}

/* attribute lookup with dots ("a.b" or "0") as jinja2's make_attrgetter */
static bool attr_path(jctx *x, jv v, const jstr *path, jv *out)
{
    size_t i = 0;
    while (i <= path->n) {
        const char *dot = memchr(path->p + i, '.', path->n - i);
        size_t e = dot ? (size_t)(dot - path->p) : path->n;
        char part[256];
        size_t pn = e - i < sizeof part - 1 ? e - i : sizeof part - 1;
        memcpy(part, path->p + i, pn);
        part[pn] = 0;
        bool digits = pn > 0;
        for (size_t k = 0; k < pn; k++) digits &= part[k] >= '0' && part[k] <= '9';
        if (v.k == JV_UNDEF) { *out = v; return true; }
        jv r = jv_undef(NULL);
        if (digits && v.k == JV_LIST) {
            size_t idx = (size_t)strtoull(part, NULL, 10);
            r = idx < v.u.l->n ? v.u.l->v[idx] : jv_undef("index out of range");
        } else if (v.k == JV_DICT || v.k == JV_NS) {
            jv *p = jd_gets(v.u.d, part);
            char *m = jj_alloc(x->arena, pn + 64);
            if (m) snprintf(m, pn + 64, "'dict object' has no attribute '%s'", part);
            r = p ? *p : jv_undef(m);
        } else {
            char *m = jj_alloc(x->arena, pn + 64);
            if (m) snprintf(m, pn + 64, "'%s object' has no attribute '%s'", jv_type_name(v), part);
            r = jv_undef(m);
        }
        v = r;
        if (!dot) break;
        i = e + 1;
    }
    *out = v;
    return true;
}

/* ----- sorting ----- */
typedef struct sort_ctx {
    jctx *x;
    bool  case_sensitive;
    bool  failed;
} sort_ctx;

static jv fold(jctx *x, jv v, bool case_sensitive)
{
    if (case_sensitive || v.k != JV_STR) return v;
    return change_case(x, v.u.s, CASE_LOWER);
}

/* stable insertion/merge sort by keys */
static bool sort_by(jctx *x, jv *items, jv *keys, size_t n, bool reverse)
{
    /* merge sort keeps equal items in order, as Python's sort does */
    if (n < 2) return true;
    jv *ti = jj_alloc(x->arena, n * sizeof *ti), *tk = jj_alloc(x->arena, n * sizeof *tk);
    if (!ti || !tk) return jj_oom(x);
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                int c;
                if (!jv_cmp(x, keys[j], keys[i], &c)) return false;
                bool take_right = reverse ? c > 0 : c < 0;
                if (take_right) { ti[k] = items[j]; tk[k++] = keys[j++]; }
                else { ti[k] = items[i]; tk[k++] = keys[i++]; }
            }
            while (i < mid) { ti[k] = items[i]; tk[k++] = keys[i++]; }
            while (j < hi) { ti[k] = items[j]; tk[k++] = keys[j++]; }
        }
        memcpy(items, ti, n * sizeof *ti);
        memcpy(keys, tk, n * sizeof *tk);
    }
    return true;
}

/* ----- filters ----- */
static const char *const filters[] = {
    "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape", "first",
    "float", "format", "indent", "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min", "reject",
    "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "sort", "string", "sum", "title",
    "tojson", "trim", "unique", "upper", "wordcount", NULL,
};

static const char *const tests[] = {
    "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "escaped", "even", "false", "float", "ge",
    "greaterthan", "gt", "in", "integer", "iterable", "le", "lessthan", "lower", "lt", "mapping", "ne", "none",
    "number", "odd", "sameas", "sequence", "string", "true", "undefined", "upper", "==", "!=", "<", "<=", ">",
    ">=", "filter", "test", NULL,
};

bool jj_is_filter(const char *name)
{
    for (size_t i = 0; filters[i]; i++) if (!strcmp(filters[i], name)) return true;
    return false;
}

bool jj_is_test(const char *name)
{
    for (size_t i = 0; tests[i]; i++) if (!strcmp(tests[i], name)) return true;
    return false;
}

static bool length_of(jctx *x, jv v, int64_t *n)
{
    switch (v.k) {
    case JV_STR: *n = (int64_t)jj_u8_len(v.u.s->p, v.u.s->n); return true;
    case JV_LIST:
        if (v.u.l->lazy == JL_GENERATOR || v.u.l->lazy == JL_ITERATOR)
            return jj_error(x, "object of type '%s' has no len()", jl_kind_name(v.u.l));
        *n = (int64_t)v.u.l->n;
        return true;
    case JV_DICT: *n = (int64_t)v.u.d->n; return true;
    case JV_UNDEF: *n = 0; return true;
    default: return jj_error(x, "object of type '%s' has no len()", jv_type_name(v));
    }
}

jv jj_html_escape(jctx *x, jv v)
{
    if (v.k == JV_STR && v.u.s->markup) return v;
    jv s = jv_as_str(x, v);
    if (x->failed) return jv_undef(NULL);
    jbuf b = {.limit = x->lim->max_output};
    const jstr *t = s.u.s;
    size_t run = 0;
    for (size_t i = 0; i < t->n; i++) {
        const char *e = t->p[i] == '&' ? "&amp;" : t->p[i] == '<' ? "&lt;" : t->p[i] == '>' ? "&gt;" : t->p[i] == '"' ? "&#34;"
                      : t->p[i] == '\'' ? "&#39;" : NULL;
        if (!e) { run++; continue; }
        jbuf_put_str(&b, t, i - run, run);
        run = 0;
        jbuf_put(&b, e, strlen(e), t->mask && t->mask[i]);
    }
    jbuf_put_str(&b, t, t->n - run, run);
    jv r = jv_str_from_buf(x, &b);
    if (r.k == JV_STR) r.u.s->markup = true;
    return r;
}

static jv lazy(jv l, jlist_kind k)
{
    if (l.k == JV_LIST) l.u.l->lazy = (uint8_t)k;
    return l;
}

static bool select_common(jctx *x, const char *name, jv in, const fargs *a, jv *out)
{
    bool attr = strstr(name, "attr") != NULL, rej = name[0] == 'r';
    jlist *items;
    jv l = lazy(jv_list(x, 0), JL_GENERATOR);
    if (x->failed) return false;
    *out = l;
    if (!jv_truthy(in)) return true; /* jinja2 yields nothing for a false value, None included */
    if (!jj_iter(x, in, &items)) return false;
    size_t first = 0;
    const jstr *path = NULL;
    if (attr) {
        if (a->n < 1 || a->pos[0].k != JV_STR) return jj_error(x, "%s: expected an attribute name", name);
        path = a->pos[0].u.s;
        first = 1;
    }
    const char *test = NULL;
    if (a->n > first) {
        if (a->pos[first].k != JV_STR) return jj_error(x, "%s: expected a test name", name);
        test = a->pos[first].u.s->p;
        if (!jj_is_test(test)) return jj_error(x, "no test named '%s'", test);
    }
    for (size_t i = 0; i < items->n; i++) {
        jv v = items->v[i];
        if (path && !attr_path(x, v, path, &v)) return false;
        bool r;
        if (test) {
            if (!jj_test(x, test, v, a->pos + first + 1, a->n - first - 1, &r)) return false;
        } else {
            r = jv_truthy(v);
        }
        if (r != rej && !jl_push(x, l.u.l, items->v[i])) return false;
    }
    *out = l;
    return true;
}

bool jj_filter(jctx *x, const char *name, jv in, const jv *pos, size_t n_pos, const char **kwn, const jv *kwv,
               size_t n_kw, jv *out)
{
    fargs A = {pos, n_pos, kwn, kwv, n_kw};
    const fargs *a = &A;
    const jstr *s;
    int64_t n = 0;
    /* filters that accept Undefined */
    if (!strcmp(name, "default") || !strcmp(name, "d")) {
        const jv *def = arg(a, 0, "default_value"), *boolean = arg(a, 1, "boolean");
        bool use = in.k == JV_UNDEF || (boolean && jv_truthy(*boolean) && !jv_truthy(in));
        *out = use ? (def ? *def : jv_cstr(x, "")) : in;
        return !x->failed;
    }
    if (!strcmp(name, "length") || !strcmp(name, "count")) {
        if (!length_of(x, in, &n)) return false;
        *out = jv_int(n);
        return true;
    }
    if (!strcmp(name, "string")) return str_of(x, in, out);
    if (!strcmp(name, "safe")) {
        if (!str_of(x, in, out)) return false;
        if (!out->u.s->markup) {
            *out = jv_str(x, out->u.s->p, out->u.s->n, out->u.s->mask);
            if (x->failed) return false;
            out->u.s->markup = true;
        }
        return true;
    }
    if (!strcmp(name, "e") || !strcmp(name, "escape")) { *out = jj_html_escape(x, in); return !x->failed; }
    if (!strcmp(name, "list")) {
        jlist *items;
        if (!jj_iter(x, in, &items)) return false;
        jv l = jv_list(x, items->n);
        if (x->failed) return false;
        for (size_t i = 0; i < items->n; i++) jl_push(x, l.u.l, items->v[i]);
        *out = l;
        return !x->failed;
    }
    if (!strcmp(name, "tojson")) {
        /* transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False) */
        const jv *ea = arg(a, 0, "ensure_ascii"), *ind = arg(a, 1, "indent"), *sep = arg(a, 2, "separators"),
                 *sk = arg(a, 3, "sort_keys");
        int indent = -1;
        if (ind && ind->k != JV_NONE) {
            if (!jv_is_int_like(*ind)) return jj_error(x, "tojson: indent must be an integer");
            int64_t iv = ind->k == JV_INT ? ind->u.i : ind->u.b;
            indent = iv < 0 ? 0 : iv > 64 ? 64 : (int)iv;
        }
        const char *item_sep = indent >= 0 ? "," : ", ", *key_sep = ": ";
        char *isep = NULL, *ksep = NULL;
        if (sep && sep->k != JV_NONE) {
            if (sep->k != JV_LIST || sep->u.l->n != 2 || sep->u.l->v[0].k != JV_STR || sep->u.l->v[1].k != JV_STR)
                return jj_error(x, "tojson: separators must be a pair of strings");
            isep = jj_strndup(x->arena, sep->u.l->v[0].u.s->p, sep->u.l->v[0].u.s->n);
            ksep = jj_strndup(x->arena, sep->u.l->v[1].u.s->p, sep->u.l->v[1].u.s->n);
            if (!isep || !ksep) return jj_oom(x);
            item_sep = isep;
            key_sep = ksep;
        }
        if (in.k == JV_UNDEF) return jj_error(x, "Object of type Undefined is not JSON serializable");
        jbuf b = {.limit = x->lim->max_output};
        if (!jv_to_json(x, in, &b, indent, 0, item_sep, key_sep, sk && jv_truthy(*sk), ea && jv_truthy(*ea))) {
            jbuf_free(&b);
            return false;
        }
        *out = jv_str_from_buf(x, &b);
        return !x->failed;
    }
    if (!strcmp(name, "items")) {
        if (in.k == JV_UNDEF) { *out = jv_list(x, 0); return !x->failed; }
        if (in.k != JV_DICT) return jj_error(x, "can only get item pairs from a mapping.");
        if (!jj_method(x, in, "items", NULL, 0, NULL, NULL, 0, out)) return false;
        *out = lazy(*out, JL_GENERATOR);
        return true;
    }
    if (!strcmp(name, "first") || !strcmp(name, "last")) {
        jlist *items;
        if (!jj_iter(x, in, &items)) return false;
        if (!items->n) { *out = jv_undef(name[0] == 'f' ? "No first item, sequence was empty." : "No last item, sequence was empty."); return true; }
        *out = items->v[name[0] == 'f' ? 0 : items->n - 1];
        return true;
    }
    if (!strcmp(name, "join")) {
        const jv *d = arg(a, 0, "d"), *at = arg(a, 1, "attribute");
        jlist *items;
        if (!jj_iter(x, in, &items)) return false;
        jv sep = d ? jv_as_str(x, *d) : jv_cstr(x, "");
        if (x->failed) return false;
        jbuf b = {.limit = x->lim->max_output};
        for (size_t i = 0; i < items->n; i++) {
            jv v = items->v[i];
            if (at && at->k == JV_STR && !attr_path(x, v, at->u.s, &v)) { jbuf_free(&b); return false; }
            if (i) jbuf_put_str(&b, sep.u.s, 0, sep.u.s->n);
            if (!jv_to_str(x, v, &b)) { jbuf_free(&b); return false; }
        }
        *out = jv_str_from_buf(x, &b);
        return !x->failed;
    }
    if (!strcmp(name, "map")) {
        jlist *items;
        jv l = lazy(jv_list(x, 0), JL_GENERATOR);
        if (x->failed) return false;
        *out = l;
        if (!jv_truthy(in)) return true;
        if (!jj_iter(x, in, &items)) return false;
        const jv *at = arg(a, -1, "attribute"), *def = arg(a, -1, "default");
        for (size_t i = 0; i < items->n; i++) {
            jv v = items->v[i], r;
            if (at) {
                if (at->k != JV_STR) return jj_error(x, "map: attribute must be a string");
                if (!attr_path(x, v, at->u.s, &r)) return false;
                if (r.k == JV_UNDEF && def) r = *def;
            } else {
                if (a->n < 1 || a->pos[0].k != JV_STR) return jj_error(x, "map: expected a filter name or attribute=");
                const char *fn = a->pos[0].u.s->p;
                if (!jj_is_filter(fn)) return jj_error(x, "no filter named '%s'", fn);
                if (!jj_filter(x, fn, v, a->pos + 1, a->n - 1, kwn, kwv, n_kw, &r)) return false;
            }
            if (!jl_push(x, l.u.l, r)) return false;
        }
        *out = l;
        return true;
    }
    if (!strcmp(name, "select") || !strcmp(name, "reject") || !strcmp(name, "selectattr") || !strcmp(name, "rejectattr"))
        return select_common(x, name, in, a, out);
    if (!strcmp(name, "sort") || !strcmp(name, "unique") || !strcmp(name, "max") || !strcmp(name, "min") ||
        !strcmp(name, "dictsort")) {
        bool dictsort = name[0] == 'd';
        const jv *rev = arg(a, dictsort ? 2 : 0, "reverse"), *cs = arg(a, dictsort ? 0 : 1, "case_sensitive"),
                 *at = arg(a, dictsort ? -1 : 2, "attribute"), *by = dictsort ? arg(a, 1, "by") : NULL;
        if (!strcmp(name, "unique") || !strcmp(name, "max") || !strcmp(name, "min")) {
            cs = arg(a, 0, "case_sensitive");
            at = arg(a, 1, "attribute");
            rev = NULL;
        }
        bool sens = cs && jv_truthy(*cs);
        jlist *items;
        if (dictsort) {
            if (in.k != JV_DICT) return jj_error(x, "You can only sort by either \"key\" or \"value\"");
            jv pairs;
            if (!jj_method(x, in, "items", NULL, 0, NULL, NULL, 0, &pairs)) return false;
            items = pairs.u.l;
        } else if (!jj_iter(x, in, &items)) {
            return false;
        }
        size_t cnt = items->n;
        jv *iv = jj_alloc(x->arena, (cnt + 1) * sizeof *iv), *kv = jj_alloc(x->arena, (cnt + 1) * sizeof *kv);
        if (!iv || !kv) return jj_oom(x);
        int by_value = by && by->k == JV_STR && !strcmp(by->u.s->p, "value");
        for (size_t i = 0; i < cnt; i++) {
            iv[i] = items->v[i];
            jv k = items->v[i];
            if (dictsort) k = k.u.l->v[by_value];
            else if (at && at->k == JV_STR && !attr_path(x, k, at->u.s, &k)) return false;
            kv[i] = fold(x, k, sens);
            if (x->failed) return false;
        }
        if (!strcmp(name, "unique")) {
            jv l = jv_list(x, cnt);
            if (x->failed) return false;
            jv seen = jv_list(x, cnt);
            for (size_t i = 0; i < cnt; i++) {
                bool dup = false;
                for (size_t j = 0; j < seen.u.l->n && !dup; j++) dup = jv_eq(seen.u.l->v[j], kv[i]);
                if (!dup && (!jl_push(x, seen.u.l, kv[i]) || !jl_push(x, l.u.l, iv[i]))) return false;
            }
            *out = lazy(l, JL_GENERATOR);
            return true;
        }
        if (!strcmp(name, "max") || !strcmp(name, "min")) {
            if (!cnt) { *out = jv_undef("No aggregated item, sequence was empty."); return true; }
            size_t best = 0;
            for (size_t i = 1; i < cnt; i++) {
                int c;
                if (!jv_cmp(x, kv[i], kv[best], &c)) return false;
                if (name[1] == 'a' ? c > 0 : c < 0) best = i;
            }
            *out = iv[best];
            return true;
        }
        if (!sort_by(x, iv, kv, cnt, rev && jv_truthy(*rev))) return false;
        jv l = jv_list(x, cnt);
        if (x->failed) return false;
        for (size_t i = 0; i < cnt; i++) jl_push(x, l.u.l, iv[i]);
        *out = l;
        return !x->failed;
    }
    if (!strcmp(name, "reverse")) {
        if (in.k == JV_STR) {
            jlist *chars;
            if (!jj_iter(x, in, &chars)) return false;
            jbuf b = {.limit = x->lim->max_output};
            for (size_t i = chars->n; i-- > 0;) jbuf_put_str(&b, chars->v[i].u.s, 0, chars->v[i].u.s->n);
            *out = jv_str_from_buf(x, &b);
            return !x->failed;
        }
        jlist *items;
        if (!jj_iter(x, in, &items)) return false;
        jv l = jv_list(x, items->n);
        if (x->failed) return false;
        for (size_t i = items->n; i-- > 0;) jl_push(x, l.u.l, items->v[i]);
        /* reversed() of a list is an iterator; of anything else, a list */
        *out = in.k == JV_LIST && !in.u.l->lazy && !in.u.l->tuple ? lazy(l, JL_ITERATOR) : l;
        return !x->failed;
    }
    if (!strcmp(name, "sum")) {
        const jv *at = arg(a, 0, "attribute"), *st = arg(a, 1, "start");
        jlist *items;
        if (!jj_iter(x, in, &items)) return false;
        jv acc = st ? *st : jv_int(0);
        for (size_t i = 0; i < items->n; i++) {
            jv v = items->v[i];
            if (at && at->k == JV_STR && !attr_path(x, v, at->u.s, &v)) return false;
            if (!jv_is_number(acc) || !jv_is_number(v))
                return jj_error(x, "unsupported operand type(s) for +: '%s' and '%s'", jv_type_name(acc), jv_type_name(v));
            if (jv_is_int_like(acc) && jv_is_int_like(v)) {
                int64_t r;
                if (__builtin_add_overflow(acc.k == JV_INT ? acc.u.i : acc.u.b, v.k == JV_INT ? v.u.i : v.u.b, &r))
                    return jj_error(x, "integer arithmetic past 64 bits is not supported");
                acc = jv_int(r);
            } else {
                acc = jv_float(jv_num(acc) + jv_num(v));
            }
        }
        *out = acc;
        return true;
    }
    if (!strcmp(name, "batch")) {
        const jv *cnt = arg(a, 0, "linecount"), *fill = arg(a, 1, "fill_with");
        int64_t k;
        if (!get_int(x, cnt, 1, "batch", &k)) return false;
        if (k <= 0) return jj_error(x, "batch: linecount must be positive");
        jlist *items;
        if (!jj_iter(x, in, &items)) return false;
        jv l = jv_list(x, 0), cur = jv_undef(NULL);
        if (x->failed) return false;
        for (size_t i = 0; i < items->n; i++) {
            if (cur.k != JV_LIST || (int64_t)cur.u.l->n == k) {
                cur = jv_list(x, (size_t)k);
                if (x->failed || !jl_push(x, l.u.l, cur)) return false;
            }
            if (!jl_push(x, cur.u.l, items->v[i])) return false;
        }
        if (fill && fill->k != JV_NONE && cur.k == JV_LIST)
            while ((int64_t)cur.u.l->n < k) if (!jl_push(x, cur.u.l, *fill)) return false;
        *out = lazy(l, JL_GENERATOR);
        return true;
    }
    if (!strcmp(name, "attr")) {
        if (a->n < 1 || a->pos[0].k != JV_STR) return jj_error(x, "attr: expected an attribute name");
        if (in.k == JV_DICT) {
            /* jinja2's attr filter reads attributes only, never items */
            *out = jv_undef("'dict object' has no attribute");
            return true;
        }
        return attr_path(x, in, a->pos[0].u.s, out);
    }
    if (!strcmp(name, "abs")) {
        if (in.k == JV_INT) { if (in.u.i == INT64_MIN) return jj_error(x, "integer arithmetic past 64 bits is not supported"); *out = jv_int(in.u.i < 0 ? -in.u.i : in.u.i); }
        else if (in.k == JV_BOOL) *out = jv_int(in.u.b);
        else if (in.k == JV_FLOAT) *out = jv_float(fabs(in.u.f));
        else return jj_error(x, "bad operand type for abs(): '%s'", jv_type_name(in));
        return true;
    }
    if (!strcmp(name, "round")) {
        const jv *pr = arg(a, 0, "precision"), *m = arg(a, 1, "method");
        int64_t p;
        if (!get_int(x, pr, 0, "round", &p)) return false;
        const char *method = m && m->k == JV_STR ? m->u.s->p : "common";
        if (strcmp(method, "common") && strcmp(method, "ceil") && strcmp(method, "floor"))
            return jj_error(x, "method must be common, ceil or floor");
        if (!jv_is_number(in)) return jj_error(x, "type %s doesn't define __round__ method", jv_type_name(in));
        if (jv_is_int_like(in) && !strcmp(method, "common")) { *out = jv_int(in.k == JV_INT ? in.u.i : in.u.b); return true; }
        double v = jv_num(in), sc = pow(10.0, (double)p);
        double r = !strcmp(method, "common") ? nearbyint(v * sc) / sc : !strcmp(method, "ceil") ? ceil(v * sc) / sc : floor(v * sc) / sc;
        *out = jv_float(r);
        return true;
    }
    if (!strcmp(name, "int")) {
        const jv *def = arg(a, 0, "default"), *base = arg(a, 1, "base");
        int64_t bs;
        if (!get_int(x, base, 10, "int", &bs)) return false;
        jv d = def ? *def : jv_int(0);
        if (jv_is_int_like(in)) { *out = jv_int(in.k == JV_INT ? in.u.i : in.u.b); return true; }
        if (in.k == JV_FLOAT) { *out = isfinite(in.u.f) && fabs(in.u.f) < 9.2e18 ? jv_int((int64_t)in.u.f) : d; return true; }
        if (in.k == JV_STR) {
            jv t = strip(x, in.u.s, NULL, 3);
            if (x->failed) return false;
            char *e;
            const char *p = t.u.s->p;
            if (t.u.s->n && bs >= 2 && bs <= 36) {
                long long v = strtoll(p, &e, (int)bs);
                if (*e == 0 && !strchr(p, ' ')) { *out = jv_int(v); return true; }
            }
            double f = t.u.s->n ? strtod(p, &e) : 0;
            if (t.u.s->n && *e == 0 && isfinite(f) && fabs(f) < 9.2e18) { *out = jv_int((int64_t)f); return true; }
        }
        *out = d;
        return true;
    }
    if (!strcmp(name, "float")) {
        const jv *def = arg(a, 0, "default");
        jv d = def ? *def : jv_float(0);
        if (jv_is_number(in)) { *out = jv_float(jv_num(in)); return true; }
        if (in.k == JV_STR) {
            jv t = strip(x, in.u.s, NULL, 3);
            if (x->failed) return false;
            char *e;
            double f = t.u.s->n ? strtod(t.u.s->p, &e) : 0;
            if (t.u.s->n && *e == 0) { *out = jv_float(f); return true; }
        }
        *out = d;
        return true;
    }
    /* string filters: str(value) first, as jinja2's soft_str */
    jv sv;
    if (!str_of(x, in, &sv)) return false;
    s = sv.u.s;
    if (!strcmp(name, "upper")) { *out = change_case(x, s, CASE_UPPER); return !x->failed; }
    if (!strcmp(name, "lower")) { *out = change_case(x, s, CASE_LOWER); return !x->failed; }
    if (!strcmp(name, "title")) { *out = change_case(x, s, CASE_TITLE); return !x->failed; }
    if (!strcmp(name, "capitalize")) { *out = change_case(x, s, CASE_CAPITALIZE); return !x->failed; }
    if (!strcmp(name, "format")) {
        /* jinja2: value % args (or % kwargs) */
        if (n_kw) {
            if (n_pos) return jj_error(x, "can't handle positional and keyword arguments at the same time");
            return jj_error(x, "format with keyword arguments is not supported");
        }
        jv t = jv_list(x, n_pos);
        if (x->failed) return false;
        t.u.l->tuple = true;
        for (size_t i = 0; i < n_pos; i++) jl_push(x, t.u.l, pos[i]);
        return !x->failed && jj_percent_format(x, s, t, out);
    }
    if (!strcmp(name, "trim")) {
        const jv *ch = arg(a, 0, "chars");
        const jstr *cs = NULL;
        if (ch && ch->k != JV_NONE && !need_str(x, *ch, "trim", &cs)) return false;
        *out = strip(x, s, cs, 3);
        return !x->failed;
    }
    if (!strcmp(name, "replace")) {
        const jv *o = arg(a, 0, "old"), *nw = arg(a, 1, "new"), *c = arg(a, 2, "count");
        const jstr *os, *ns;
        int64_t cnt;
        if (!o || !nw) return jj_error(x, "replace: expected old and new strings");
        jv ov = jv_as_str(x, *o), nv = jv_as_str(x, *nw);
        if (x->failed || !need_str(x, ov, "replace", &os) || !need_str(x, nv, "replace", &ns) || !get_int(x, c, -1, "replace", &cnt))
            return false;
        *out = replace(x, s, os, ns, cnt);
        return !x->failed;
    }
    if (!strcmp(name, "center")) {
        int64_t w;
        if (!get_int(x, arg(a, 0, "width"), 80, "center", &w)) return false;
        int64_t len = (int64_t)jj_u8_len(s->p, s->n);
        if (w > 1 << 20) return jj_error(x, "center: width too large");
        if (w <= len) { *out = sv; return true; }
        int64_t pad = w - len, left = pad / 2 + (pad & w & 1);
        jbuf b = {.limit = x->lim->max_output};
        for (int64_t i = 0; i < left; i++) jbuf_puts(&b, " ");
        jbuf_put_str(&b, s, 0, s->n);
        for (int64_t i = 0; i < pad - left; i++) jbuf_puts(&b, " ");
        *out = jv_str_from_buf(x, &b);
        return !x->failed;
    }
    if (!strcmp(name, "indent")) {
        const jv *w = arg(a, 0, "width"), *fi = arg(a, 1, "first"), *bl = arg(a, 2, "blank");
        jv ind;
        if (w && w->k == JV_STR) ind = *w;
        else {
            int64_t k;
            if (!get_int(x, w, 4, "indent", &k)) return false;
            if (k > 1 << 16) return jj_error(x, "indent: width too large");
            char *sp = jj_alloc(x->arena, (size_t)(k > 0 ? k : 0) + 1);
            if (!sp) return jj_oom(x);
            memset(sp, ' ', (size_t)(k > 0 ? k : 0));
            ind = jv_cstr(x, sp);
        }
        if (x->failed) return false;
        /* jinja2 appends "\n" before splitting lines */
        jbuf tmp = {.limit = x->lim->max_output};
        jbuf_put_str(&tmp, s, 0, s->n);
        jbuf_puts(&tmp, "\n");
        jv full = jv_str_from_buf(x, &tmp);
        jlist *lines;
        if (x->failed || !splitlines(x, full.u.s, &lines)) return false;
        jbuf b = {.limit = x->lim->max_output};
        if (fi && jv_truthy(*fi)) jbuf_put_str(&b, ind.u.s, 0, ind.u.s->n);
        bool blank = bl && jv_truthy(*bl);
        for (size_t i = 0; i < lines->n; i++) {
            const jstr *ln = lines->v[i].u.s;
            if (i) {
                jbuf_puts(&b, "\n");
                if (blank || ln->n) jbuf_put_str(&b, ind.u.s, 0, ind.u.s->n);
            }
            jbuf_put_str(&b, ln, 0, ln->n);
        }
        *out = jv_str_from_buf(x, &b);
        return !x->failed;
    }
    if (!strcmp(name, "wordcount")) {
        int64_t words = 0;
        bool in_word = false;
        for (size_t i = 0; i < s->n; i++) {
            unsigned char c = (unsigned char)s->p[i];
            bool w = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
            if (w && !in_word) words++;
            in_word = w;
        }
        *out = jv_int(words);
        return true;
    }
    return jj_error(x, "no filter named '%s'", name);
}

/* ----- tests ----- */
bool jj_test(jctx *x, const char *name, jv in, const jv *args, size_t n_args, bool *out)
{
    const jv *a0 = n_args ? &args[0] : NULL;
    if (!strcmp(name, "defined")) *out = in.k != JV_UNDEF;
    else if (!strcmp(name, "undefined")) *out = in.k == JV_UNDEF;
    else if (!strcmp(name, "none")) *out = in.k == JV_NONE;
    else if (!strcmp(name, "boolean")) *out = in.k == JV_BOOL;
    else if (!strcmp(name, "true")) *out = in.k == JV_BOOL && in.u.b;
    else if (!strcmp(name, "false")) *out = in.k == JV_BOOL && !in.u.b;
    else if (!strcmp(name, "integer")) *out = in.k == JV_INT;
    else if (!strcmp(name, "float")) *out = in.k == JV_FLOAT;
    else if (!strcmp(name, "number")) *out = jv_is_number(in);
    else if (!strcmp(name, "string")) *out = in.k == JV_STR;
    else if (!strcmp(name, "mapping")) *out = in.k == JV_DICT;
    else if (!strcmp(name, "iterable")) *out = in.k == JV_STR || in.k == JV_LIST || in.k == JV_DICT || in.k == JV_UNDEF;
    else if (!strcmp(name, "sequence")) *out = in.k == JV_STR || in.k == JV_LIST || in.k == JV_DICT;
    else if (!strcmp(name, "callable")) *out = in.k == JV_FUNC;
    else if (!strcmp(name, "escaped")) *out = false;
    else if (!strcmp(name, "filter")) *out = in.k == JV_STR && jj_is_filter(in.u.s->p);
    else if (!strcmp(name, "test")) *out = in.k == JV_STR && jj_is_test(in.u.s->p);
    else if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
        jv s = jv_as_str(x, in);
        if (x->failed) return false;
        bool lower = name[0] == 'l', cased = false, ok = true;
        for (size_t i = 0; i < s.u.s->n; i++) {
            char c = s.u.s->p[i];
            if (c >= 'a' && c <= 'z') { cased = true; if (!lower) ok = false; }
            if (c >= 'A' && c <= 'Z') { cased = true; if (lower) ok = false; }
        }
        *out = ok && cased;
    } else if (!strcmp(name, "odd") || !strcmp(name, "even") || !strcmp(name, "divisibleby")) {
        if (in.k == JV_UNDEF) return jj_error(x, "%s", in.u.undef ? in.u.undef : "undefined value");
        if (!jv_is_number(in)) return jj_error(x, "not all arguments converted during string formatting");
        int64_t d = 2;
        if (name[0] == 'd') {
            if (!a0 || !jv_is_int_like(*a0)) return jj_error(x, "divisibleby: expected an integer");
            d = a0->k == JV_INT ? a0->u.i : a0->u.b;
            if (d == 0) return jj_error(x, "integer division or modulo by zero");
        }
        if (in.k == JV_FLOAT) {
            double m = fmod(in.u.f, (double)d);
            *out = name[0] == 'o' ? m != 0 : m == 0;
        } else {
            int64_t v = in.k == JV_INT ? in.u.i : in.u.b;
            *out = name[0] == 'o' ? v % 2 != 0 : v % d == 0;
        }
    } else if (!strcmp(name, "sameas")) {
        if (!a0) return jj_error(x, "sameas: expected a value");
        /* identity: singletons compare equal, other values by reference */
        if (in.k != a0->k) *out = false;
        else if (in.k == JV_NONE || in.k == JV_UNDEF) *out = true;
        else if (in.k == JV_BOOL) *out = in.u.b == a0->u.b;
        else if (in.k == JV_INT) *out = in.u.i == a0->u.i && in.u.i >= -5 && in.u.i <= 256;
        else *out = in.u.l == a0->u.l;
    } else if (!strcmp(name, "in")) {
        if (!a0) return jj_error(x, "in: expected a container");
        jv hay = *a0;
        if (hay.k == JV_STR) {
            if (in.k != JV_STR) return jj_error(x, "'in <string>' requires string as left operand, not %s", jv_type_name(in));
            *out = !in.u.s->n || memmem(hay.u.s->p, hay.u.s->n, in.u.s->p, in.u.s->n);
        } else if (hay.k == JV_LIST) {
            *out = false;
            for (size_t i = 0; i < hay.u.l->n && !*out; i++) *out = jv_eq(hay.u.l->v[i], in);
        } else if (hay.k == JV_DICT) {
            *out = jd_get(hay.u.d, in) != NULL;
        } else if (hay.k == JV_UNDEF) {
            *out = false;
        } else {
            return jj_error(x, "argument of type '%s' is not iterable", jv_type_name(hay));
        }
    } else {
        if (!a0) return jj_error(x, "test '%s' needs an argument", name);
        int op = (!strcmp(name, "eq") || !strcmp(name, "equalto") || !strcmp(name, "==")) ? OP_EQ
               : (!strcmp(name, "ne") || !strcmp(name, "!=")) ? OP_NE
               : (!strcmp(name, "lt") || !strcmp(name, "lessthan") || !strcmp(name, "<")) ? OP_LT
               : (!strcmp(name, "le") || !strcmp(name, "<=")) ? OP_LE
               : (!strcmp(name, "gt") || !strcmp(name, "greaterthan") || !strcmp(name, ">")) ? OP_GT
               : (!strcmp(name, "ge") || !strcmp(name, ">=")) ? OP_GE : 0;
        if (!op) return jj_error(x, "no test named '%s'", name);
        if (op == OP_EQ) *out = jv_eq(in, *a0);
        else if (op == OP_NE) *out = !jv_eq(in, *a0);
        else {
            int c;
            if (in.k == JV_UNDEF) return jj_error(x, "%s", in.u.undef ? in.u.undef : "undefined value");
            if (!jv_cmp(x, in, *a0, &c)) return false;
            *out = op == OP_LT ? c < 0 : op == OP_LE ? c <= 0 : op == OP_GT ? c > 0 : c >= 0;
        }
    }
    return true;
}

/* ----- methods ----- */
static const char *const str_methods[] = {
    "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith", "endswith", "upper", "lower",
    "title", "capitalize", "replace", "find", "rfind", "index", "count", "join", "isdigit", "isalpha", "isalnum",
    "isspace", "islower", "isupper", "removeprefix", "removesuffix", "format", NULL,
};
static const char *const list_methods[] = {"count", "index", "append", "extend", "insert", "pop", "remove", "reverse",
                                           "sort", "clear", "copy", NULL};
static const char *const dict_methods[] = {"items", "keys", "values", "get", "copy", "pop", "popitem", "setdefault",
                                           "update", "clear", NULL};

static bool in_list(const char *const *l, const char *name)
{
    for (size_t i = 0; l[i]; i++) if (!strcmp(l[i], name)) return true;
    return false;
}

bool jj_has_method(jv self, const char *name)
{
    if (self.k == JV_STR) return in_list(str_methods, name);
    if (self.k == JV_LIST) return in_list(list_methods, name);
    if (self.k == JV_DICT) return in_list(dict_methods, name);
    return false;
}

static bool affix(jctx *x, const jstr *s, jv what, bool start, bool *out)
{
    if (what.k == JV_LIST && what.u.l->tuple) {
        *out = false;
        for (size_t i = 0; i < what.u.l->n && !*out; i++) if (!affix(x, s, what.u.l->v[i], start, out)) return false;
        return true;
    }
    if (what.k != JV_STR)
        return jj_error(x, "%s first arg must be str or a tuple of str, not %s", start ? "startswith" : "endswith", jv_type_name(what));
    const jstr *p = what.u.s;
    *out = p->n <= s->n && !memcmp(start ? s->p : s->p + s->n - p->n, p->p, p->n);
    return true;
}

/* "{} {0} {name}".format(...) */
static bool format(jctx *x, const jstr *s, const fargs *a, jv *out)
{
    jbuf b = {.limit = x->lim->max_output};
    size_t auto_i = 0;
    for (size_t i = 0; i < s->n; i++) {
        char c = s->p[i];
        if (c == '{' && i + 1 < s->n && s->p[i + 1] == '{') { jbuf_puts(&b, "{"); i++; continue; }
        if (c == '}' && i + 1 < s->n && s->p[i + 1] == '}') { jbuf_puts(&b, "}"); i++; continue; }
        if (c == '}') { jbuf_free(&b); return jj_error(x, "Single '}' encountered in format string"); }
        if (c != '{') { jbuf_put_str(&b, s, i, 1); continue; }
        const char *end = memchr(s->p + i, '}', s->n - i);
        if (!end) { jbuf_free(&b); return jj_error(x, "Single '{' encountered in format string"); }
        size_t fl = (size_t)(end - s->p) - i - 1;
        char field[128];
        if (fl >= sizeof field) { jbuf_free(&b); return jj_error(x, "format field too long"); }
        memcpy(field, s->p + i + 1, fl);
        field[fl] = 0;
        if (strchr(field, ':') || strchr(field, '!') || strchr(field, '.') || strchr(field, '[')) {
            jbuf_free(&b);
            return jj_error(x, "format specifications in str.format are not supported");
        }
        const jv *v = NULL;
        if (!fl) v = auto_i < a->n ? &a->pos[auto_i++] : NULL;
        else if (field[0] >= '0' && field[0] <= '9') { size_t k = (size_t)atoi(field); v = k < a->n ? &a->pos[k] : NULL; }
        else v = arg(a, -1, field);
        if (!v) { jbuf_free(&b); return jj_error(x, "Replacement index %s out of range for positional args tuple", field); }
        if (!jv_to_str(x, *v, &b)) { jbuf_free(&b); return false; }
        i = (size_t)(end - s->p);
    }
    *out = jv_str_from_buf(x, &b);
    return !x->failed;
}

bool jj_method(jctx *x, jv self, const char *name, const jv *pos, size_t n_pos, const char **kwn, const jv *kwv,
               size_t n_kw, jv *out)
{
    fargs A = {pos, n_pos, kwn, kwv, n_kw};
    const fargs *a = &A;
    if (self.k == JV_DICT) {
        if (!strcmp(name, "items") || !strcmp(name, "keys") || !strcmp(name, "values")) {
            jdict *d = self.u.d;
            jv l = jv_list(x, d->n);
            if (x->failed) return false;
            for (size_t i = 0; i < d->n; i++) {
                jv v = name[0] == 'k' ? d->k[i] : d->v[i];
                if (name[0] == 'i') {
                    v = jv_list(x, 2);
                    if (x->failed) return false;
                    v.u.l->tuple = true;
                    jl_push(x, v.u.l, d->k[i]);
                    jl_push(x, v.u.l, d->v[i]);
                }
                if (!jl_push(x, l.u.l, v)) return false;
            }
            *out = lazy(l, name[0] == 'i' ? JL_ITEMS : name[0] == 'k' ? JL_KEYS : JL_VALUES);
            return true;
        }
        if (!strcmp(name, "get")) {
            const jv *k = arg(a, 0, "key"), *def = arg(a, 1, "default");
            if (!k) return jj_error(x, "get expected at least 1 argument, got 0");
            jv *v = jd_get(self.u.d, *k);
            *out = v ? *v : def ? *def : jv_none();
            return true;
        }
        if (!strcmp(name, "copy")) {
            jv d = jv_dict(x, self.u.d->n);
            for (size_t i = 0; !x->failed && i < self.u.d->n; i++) jd_set(x, d.u.d, self.u.d->k[i], self.u.d->v[i]);
            *out = d;
            return !x->failed;
        }
        return jj_error(x, "access to attribute '%s' of 'dict' object is unsafe.", name);
    }
    if (self.k == JV_LIST) {
        if (!strcmp(name, "count") || !strcmp(name, "index")) {
            if (n_pos < 1) return jj_error(x, "%s expected an argument", name);
            int64_t c = 0;
            for (size_t i = 0; i < self.u.l->n; i++)
                if (jv_eq(self.u.l->v[i], pos[0])) {
                    if (name[0] == 'i') { *out = jv_int((int64_t)i); return true; }
                    c++;
                }
            if (name[0] == 'i') return jj_error(x, "value is not in list");
            *out = jv_int(c);
            return true;
        }
        if (!strcmp(name, "copy")) {
            jv l = jv_list(x, self.u.l->n);
            for (size_t i = 0; !x->failed && i < self.u.l->n; i++) jl_push(x, l.u.l, self.u.l->v[i]);
            *out = l;
            return !x->failed;
        }
        return jj_error(x, "access to attribute '%s' of '%s' object is unsafe.", name, jv_type_name(self));
    }
    if (self.k != JV_STR) return jj_error(x, "'%s' object has no attribute '%s'", jv_type_name(self), name);
    const jstr *s = self.u.s, *t;
    if (!strcmp(name, "strip") || !strcmp(name, "lstrip") || !strcmp(name, "rstrip")) {
        const jv *ch = arg(a, 0, "chars");
        const jstr *cs = NULL;
        if (ch && ch->k != JV_NONE && !need_str(x, *ch, name, &cs)) return false;
        *out = strip(x, s, cs, name[0] == 'l' ? 1 : name[0] == 'r' ? 2 : 3);
        return !x->failed;
    }
    if (!strcmp(name, "split") || !strcmp(name, "rsplit")) {
        const jv *sep = arg(a, 0, "sep"), *mx = arg(a, 1, "maxsplit");
        const jstr *ss = NULL;
        int64_t m = -1;
        if (sep && sep->k != JV_NONE && !need_str(x, *sep, name, &ss)) return false;
        if (!get_int(x, mx, -1, name, &m)) return false;
        if (name[0] == 'r' && m >= 0) return jj_error(x, "rsplit with maxsplit is not supported");
        return split(x, s, ss, m, out);
    }
    if (!strcmp(name, "splitlines")) {
        jlist *l;
        if (!splitlines(x, s, &l)) return false;
        out->k = JV_LIST;
        out->u.l = l;
        return true;
    }
    if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
        if (n_pos < 1) return jj_error(x, "%s expected an argument", name);
        if (n_pos > 1) return jj_error(x, "%s with start/end positions is not supported", name);
        bool r;
        if (!affix(x, s, pos[0], name[0] == 's', &r)) return false;
        *out = jv_bool(r);
        return true;
    }
    if (!strcmp(name, "upper")) { *out = change_case(x, s, CASE_UPPER); return !x->failed; }
    if (!strcmp(name, "lower")) { *out = change_case(x, s, CASE_LOWER); return !x->failed; }
    if (!strcmp(name, "title")) { *out = change_case(x, s, CASE_PYTITLE); return !x->failed; }
    if (!strcmp(name, "capitalize")) { *out = change_case(x, s, CASE_CAPITALIZE); return !x->failed; }
    if (!strcmp(name, "replace")) {
        const jstr *o, *nw;
        int64_t c;
        if (n_pos < 2 || !need_str(x, pos[0], "replace", &o) || !need_str(x, pos[1], "replace", &nw))
            return x->failed ? false : jj_error(x, "replace expected 2 string arguments");
        if (!get_int(x, arg(a, 2, "count"), -1, "replace", &c)) return false;
        *out = replace(x, s, o, nw, c);
        return !x->failed;
    }
    if (!strcmp(name, "find") || !strcmp(name, "rfind") || !strcmp(name, "index") || !strcmp(name, "count")) {
        if (n_pos != 1 || !need_str(x, pos[0], name, &t))
            return x->failed ? false : jj_error(x, "%s expected 1 string argument", name);
        if (!strcmp(name, "count")) {
            int64_t c = 0;
            if (!t->n) c = (int64_t)jj_u8_len(s->p, s->n) + 1;
            else for (const char *p = s->p; (p = memmem(p, s->n - (size_t)(p - s->p), t->p, t->n)); p += t->n) c++;
            *out = jv_int(c);
            return true;
        }
        const char *hit = NULL;
        if (name[0] == 'r') {
            for (size_t i = s->n + 1; i-- > 0;)
                if (i + t->n <= s->n && !memcmp(s->p + i, t->p, t->n)) { hit = s->p + i; break; }
        } else {
            hit = t->n ? memmem(s->p, s->n, t->p, t->n) : s->p;
        }
        if (!hit && name[0] == 'i') return jj_error(x, "substring not found");
        *out = jv_int(hit ? (int64_t)jj_u8_len(s->p, (size_t)(hit - s->p)) : -1);
        return true;
    }
    if (!strcmp(name, "join")) {
        if (n_pos != 1) return jj_error(x, "join expected 1 argument");
        jlist *items;
        if (!jj_iter(x, pos[0], &items)) return false;
        jbuf b = {.limit = x->lim->max_output};
        for (size_t i = 0; i < items->n; i++) {
            if (items->v[i].k != JV_STR) {
                jbuf_free(&b);
                return jj_error(x, "sequence item %zu: expected str instance, %s found", i, jv_type_name(items->v[i]));
            }
            if (i) jbuf_put_str(&b, s, 0, s->n);
            jbuf_put_str(&b, items->v[i].u.s, 0, items->v[i].u.s->n);
        }
        *out = jv_str_from_buf(x, &b);
        return !x->failed;
    }
    if (!strcmp(name, "removeprefix") || !strcmp(name, "removesuffix")) {
        if (n_pos != 1 || !need_str(x, pos[0], name, &t)) return x->failed ? false : jj_error(x, "%s expected 1 argument", name);
        bool pre = name[6] == 'p';
        bool has = t->n <= s->n && !memcmp(pre ? s->p : s->p + s->n - t->n, t->p, t->n);
        *out = has ? jj_substr(x, s, pre ? t->n : 0, s->n - t->n) : self;
        return !x->failed;
    }
    if (!strcmp(name, "format")) return format(x, s, a, out);
    if (!strncmp(name, "is", 2)) {
        bool r = s->n > 0, cased = false;
        for (size_t i = 0; i < s->n; i++) {
            unsigned char c = (unsigned char)s->p[i];
            bool dig = c >= '0' && c <= '9', lo = c >= 'a' && c <= 'z', up = c >= 'A' && c <= 'Z';
            size_t len;
            if (!strcmp(name, "isdigit")) r &= dig;
            else if (!strcmp(name, "isalpha")) r &= lo || up || c >= 0x80;
            else if (!strcmp(name, "isalnum")) r &= lo || up || dig || c >= 0x80;
            else if (!strcmp(name, "isspace")) { if (jj_is_space_at(s->p, s->n, i, &len)) i += len - 1; else r = false; }
            else if (!strcmp(name, "islower")) { if (up) r = false; cased |= lo; }
            else if (!strcmp(name, "isupper")) { if (lo) r = false; cased |= up; }
        }
        if (!strcmp(name, "islower") || !strcmp(name, "isupper")) r = r && cased;
        *out = jv_bool(r);
        return true;
    }
    return jj_error(x, "'str' object has no attribute '%s'", name);
}

/* ----- globals ----- */
bool jj_global(jctx *x, const char *name, const jv *pos, size_t n_pos, const char **kwn, const jv *kwv, size_t n_kw,
               jv *out)
{
    if (!strcmp(name, "range")) {
        int64_t v[3] = {0, 0, 1};
        if (n_pos < 1 || n_pos > 3 || n_kw) return jj_error(x, "range expected 1 to 3 integer arguments");
        for (size_t i = 0; i < n_pos; i++) {
            if (!jv_is_int_like(pos[i])) return jj_error(x, "'%s' object cannot be interpreted as an integer", jv_type_name(pos[i]));
            v[n_pos == 1 ? 1 : i] = pos[i].k == JV_INT ? pos[i].u.i : pos[i].u.b;
        }
        if (v[2] == 0) return jj_error(x, "range() arg 3 must not be zero");
        double cnt = v[2] > 0 ? ceil(((double)v[1] - (double)v[0]) / (double)v[2]) : ceil(((double)v[0] - (double)v[1]) / (double)-v[2]);
        if (cnt < 0) cnt = 0;
        /* the sandbox's MAX_RANGE */
        if (cnt > 100000) return jj_error(x, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
        jv l = jv_list(x, (size_t)cnt);
        if (x->failed) return false;
        for (int64_t i = v[0]; v[2] > 0 ? i < v[1] : i > v[1];) {
            if (!jl_push(x, l.u.l, jv_int(i))) return false;
            if (__builtin_add_overflow(i, v[2], &i)) break;
        }
        *out = l;
        return true;
    }
    if (!strcmp(name, "namespace") || !strcmp(name, "dict")) {
        jv d = jv_dict(x, n_kw);
        if (x->failed) return false;
        if (n_pos > 1 || (n_pos == 1 && pos[0].k != JV_DICT)) return jj_error(x, "%s: expected keyword arguments or one mapping", name);
        if (n_pos == 1)
            for (size_t i = 0; i < pos[0].u.d->n; i++)
                if (!jd_set(x, d.u.d, pos[0].u.d->k[i], pos[0].u.d->v[i])) return false;
        for (size_t i = 0; i < n_kw; i++) if (!jd_set(x, d.u.d, jv_cstr(x, kwn[i]), kwv[i])) return false;
        if (name[0] == 'n') d.k = JV_NS;
        *out = d;
        return true;
    }
    if (!strcmp(name, "raise_exception")) {
        jv m = n_pos ? jv_as_str(x, pos[0]) : jv_cstr(x, "");
        if (x->failed) return false;
        return jj_error(x, "%s", m.u.s->p);
    }
    if (!strcmp(name, "strftime_now")) {
        if (n_pos != 1 || pos[0].k != JV_STR) return jj_error(x, "strftime_now expected a format string");
        time_t now = time(NULL);
        struct tm tm;
        char buf[512];
        if (!localtime_r(&now, &tm)) return jj_error(x, "strftime_now: no local time");
        size_t k = strftime(buf, sizeof buf, pos[0].u.s->p, &tm);
        *out = jv_str(x, buf, k, NULL);
        return !x->failed;
    }
    return jj_error(x, "'%s' is not supported", name);
}
