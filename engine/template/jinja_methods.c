/*
 * jinja_methods.c: Python's str, list and dict methods on template values
 * (with the immutable sandbox's refusal of methods that change a list or
 * dict) and the globals transformers gives templates (range, namespace,
 * dict, raise_exception, strftime_now).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jinja_builtins.h"

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
        else v = jj_arg(a, -1, field);
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
            *out = jj_lazy(l, name[0] == 'i' ? JL_ITEMS : name[0] == 'k' ? JL_KEYS : JL_VALUES);
            return true;
        }
        if (!strcmp(name, "get")) {
            const jv *k = jj_arg(a, 0, "key"), *def = jj_arg(a, 1, "default");
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
        const jv *ch = jj_arg(a, 0, "chars");
        const jstr *cs = NULL;
        if (ch && ch->k != JV_NONE && !jj_need_str(x, *ch, name, &cs)) return false;
        *out = jj_strip(x, s, cs, name[0] == 'l' ? 1 : name[0] == 'r' ? 2 : 3);
        return !x->failed;
    }
    if (!strcmp(name, "split") || !strcmp(name, "rsplit")) {
        const jv *sep = jj_arg(a, 0, "sep"), *mx = jj_arg(a, 1, "maxsplit");
        const jstr *ss = NULL;
        int64_t m = -1;
        if (sep && sep->k != JV_NONE && !jj_need_str(x, *sep, name, &ss)) return false;
        if (!jj_get_int(x, mx, -1, name, &m)) return false;
        if (name[0] == 'r' && m >= 0) return jj_error(x, "rsplit with maxsplit is not supported");
        return jj_split(x, s, ss, m, out);
    }
    if (!strcmp(name, "splitlines")) {
        jlist *l;
        if (!jj_splitlines(x, s, &l)) return false;
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
    if (!strcmp(name, "upper")) { *out = jj_change_case(x, s, CASE_UPPER); return !x->failed; }
    if (!strcmp(name, "lower")) { *out = jj_change_case(x, s, CASE_LOWER); return !x->failed; }
    if (!strcmp(name, "title")) { *out = jj_change_case(x, s, CASE_PYTITLE); return !x->failed; }
    if (!strcmp(name, "capitalize")) { *out = jj_change_case(x, s, CASE_CAPITALIZE); return !x->failed; }
    if (!strcmp(name, "replace")) {
        const jstr *o, *nw;
        int64_t c;
        if (n_pos < 2 || !jj_need_str(x, pos[0], "replace", &o) || !jj_need_str(x, pos[1], "replace", &nw))
            return x->failed ? false : jj_error(x, "replace expected 2 string arguments");
        if (!jj_get_int(x, jj_arg(a, 2, "count"), -1, "replace", &c)) return false;
        *out = jj_replace(x, s, o, nw, c);
        return !x->failed;
    }
    if (!strcmp(name, "find") || !strcmp(name, "rfind") || !strcmp(name, "index") || !strcmp(name, "count")) {
        if (n_pos != 1 || !jj_need_str(x, pos[0], name, &t))
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
        if (n_pos != 1 || !jj_need_str(x, pos[0], name, &t)) return x->failed ? false : jj_error(x, "%s expected 1 argument", name);
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
