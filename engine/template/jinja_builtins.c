/*
 * jinja_builtins.c: jinja2's filters and tests. tojson is transformers' own
 * (json.dumps with ensure_ascii=False), not jinja2's HTML-safe one. Python's
 * str/list/dict methods and the globals are in jinja_methods.c, the string
 * operations both use in jinja_strings.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jinja_builtins.h"

bool jj_need_str(jctx *x, jv v, const char *what, const jstr **s)
{
    if (v.k != JV_STR) return jj_error(x, "%s: expected a string, got %s", what, jv_type_name(v));
    *s = v.u.s;
    return true;
}

bool jj_get_int(jctx *x, const jv *v, int64_t def, const char *what, int64_t *out)
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
    return jj_change_case(x, v.u.s, CASE_LOWER);
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

jv jj_lazy(jv l, jlist_kind k)
{
    if (l.k == JV_LIST) l.u.l->lazy = (uint8_t)k;
    return l;
}

static bool select_common(jctx *x, const char *name, jv in, const fargs *a, jv *out)
{
    bool attr = strstr(name, "attr") != NULL, rej = name[0] == 'r';
    jlist *items;
    jv l = jj_lazy(jv_list(x, 0), JL_GENERATOR);
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
        const jv *def = jj_arg(a, 0, "default_value"), *boolean = jj_arg(a, 1, "boolean");
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
        const jv *ea = jj_arg(a, 0, "ensure_ascii"), *ind = jj_arg(a, 1, "indent"), *sep = jj_arg(a, 2, "separators"),
                 *sk = jj_arg(a, 3, "sort_keys");
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
        *out = jj_lazy(*out, JL_GENERATOR);
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
        const jv *d = jj_arg(a, 0, "d"), *at = jj_arg(a, 1, "attribute");
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
        jv l = jj_lazy(jv_list(x, 0), JL_GENERATOR);
        if (x->failed) return false;
        *out = l;
        if (!jv_truthy(in)) return true;
        if (!jj_iter(x, in, &items)) return false;
        const jv *at = jj_arg(a, -1, "attribute"), *def = jj_arg(a, -1, "default");
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
        const jv *rev = jj_arg(a, dictsort ? 2 : 0, "reverse"), *cs = jj_arg(a, dictsort ? 0 : 1, "case_sensitive"),
                 *at = jj_arg(a, dictsort ? -1 : 2, "attribute"), *by = dictsort ? jj_arg(a, 1, "by") : NULL;
        if (!strcmp(name, "unique") || !strcmp(name, "max") || !strcmp(name, "min")) {
            cs = jj_arg(a, 0, "case_sensitive");
            at = jj_arg(a, 1, "attribute");
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
            *out = jj_lazy(l, JL_GENERATOR);
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
        *out = in.k == JV_LIST && !in.u.l->lazy && !in.u.l->tuple ? jj_lazy(l, JL_ITERATOR) : l;
        return !x->failed;
    }
    if (!strcmp(name, "sum")) {
        const jv *at = jj_arg(a, 0, "attribute"), *st = jj_arg(a, 1, "start");
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
        const jv *cnt = jj_arg(a, 0, "linecount"), *fill = jj_arg(a, 1, "fill_with");
        int64_t k;
        if (!jj_get_int(x, cnt, 1, "batch", &k)) return false;
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
        *out = jj_lazy(l, JL_GENERATOR);
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
        const jv *pr = jj_arg(a, 0, "precision"), *m = jj_arg(a, 1, "method");
        int64_t p;
        if (!jj_get_int(x, pr, 0, "round", &p)) return false;
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
        const jv *def = jj_arg(a, 0, "default"), *base = jj_arg(a, 1, "base");
        int64_t bs;
        if (!jj_get_int(x, base, 10, "int", &bs)) return false;
        jv d = def ? *def : jv_int(0);
        if (jv_is_int_like(in)) { *out = jv_int(in.k == JV_INT ? in.u.i : in.u.b); return true; }
        if (in.k == JV_FLOAT) { *out = isfinite(in.u.f) && fabs(in.u.f) < 9.2e18 ? jv_int((int64_t)in.u.f) : d; return true; }
        if (in.k == JV_STR) {
            jv t = jj_strip(x, in.u.s, NULL, 3);
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
        const jv *def = jj_arg(a, 0, "default");
        jv d = def ? *def : jv_float(0);
        if (jv_is_number(in)) { *out = jv_float(jv_num(in)); return true; }
        if (in.k == JV_STR) {
            jv t = jj_strip(x, in.u.s, NULL, 3);
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
    if (!strcmp(name, "upper")) { *out = jj_change_case(x, s, CASE_UPPER); return !x->failed; }
    if (!strcmp(name, "lower")) { *out = jj_change_case(x, s, CASE_LOWER); return !x->failed; }
    if (!strcmp(name, "title")) { *out = jj_change_case(x, s, CASE_TITLE); return !x->failed; }
    if (!strcmp(name, "capitalize")) { *out = jj_change_case(x, s, CASE_CAPITALIZE); return !x->failed; }
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
        const jv *ch = jj_arg(a, 0, "chars");
        const jstr *cs = NULL;
        if (ch && ch->k != JV_NONE && !jj_need_str(x, *ch, "trim", &cs)) return false;
        *out = jj_strip(x, s, cs, 3);
        return !x->failed;
    }
    if (!strcmp(name, "replace")) {
        const jv *o = jj_arg(a, 0, "old"), *nw = jj_arg(a, 1, "new"), *c = jj_arg(a, 2, "count");
        const jstr *os, *ns;
        int64_t cnt;
        if (!o || !nw) return jj_error(x, "replace: expected old and new strings");
        jv ov = jv_as_str(x, *o), nv = jv_as_str(x, *nw);
        if (x->failed || !jj_need_str(x, ov, "replace", &os) || !jj_need_str(x, nv, "replace", &ns) || !jj_get_int(x, c, -1, "replace", &cnt))
            return false;
        *out = jj_replace(x, s, os, ns, cnt);
        return !x->failed;
    }
    if (!strcmp(name, "center")) {
        int64_t w;
        if (!jj_get_int(x, jj_arg(a, 0, "width"), 80, "center", &w)) return false;
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
        const jv *w = jj_arg(a, 0, "width"), *fi = jj_arg(a, 1, "first"), *bl = jj_arg(a, 2, "blank");
        jv ind;
        if (w && w->k == JV_STR) ind = *w;
        else {
            int64_t k;
            if (!jj_get_int(x, w, 4, "indent", &k)) return false;
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
        if (x->failed || !jj_splitlines(x, full.u.s, &lines)) return false;
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
