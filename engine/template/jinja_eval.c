/*
 * jinja_eval.c: renders a parsed template: scopes (a for-loop body is a
 * scope of its own, `if` is not, macros see the scope they were defined
 * in), expressions with Python's semantics and jinja2's Undefined, loop
 * controls, macros and call blocks, and the limits on steps, depth, memory
 * and output. Output keeps the content mask of the strings written.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "jinja_impl.h"

enum { FLOW_OK, FLOW_BREAK, FLOW_CONTINUE, FLOW_ERR };

static bool eval(jctx *x, const jnode *n, jframe *f, jv *out);
static int exec_body(jctx *x, const jnode_list *body, jframe *f, jbuf *out);

static bool step(jctx *x, const jnode *n)
{
    if (x->failed) return false;
    x->line = n->line;
    x->col = n->col;
    if (++x->steps > x->lim->max_steps) {
        jj_error(x, "the template ran more than %llu steps", (unsigned long long)x->lim->max_steps);
        x->status = VKI_ERR_UNSUPPORTED;
        return false;
    }
    return true;
}

static jv *lookup(jframe *f, const char *name)
{
    for (; f; f = f->parent) {
        jv *v = jd_gets(&f->vars, name);
        if (v) return v;
    }
    return NULL;
}

static bool set_var(jctx *x, jframe *f, const char *name, jv v) { return jd_set(x, &f->vars, jv_cstr(x, name), v); }

/* an Undefined whose use fails with "msg" */
static jv undef_msg(jctx *x, const char *fmt, const char *a, const char *b)
{
    char m[512];
    snprintf(m, sizeof m, fmt, a, b);
    char *c = jj_strndup(x->arena, m, strlen(m));
    return jv_undef(c);
}

/* jinja2's UndefinedError for using v */
static bool undef_error(jctx *x, jv v)
{
    return jj_error(x, "%s", v.u.undef ? v.u.undef : "undefined value");
}

static const char *obj_desc(jv v)
{
    switch (v.k) {
    case JV_DICT: return "dict object";
    case JV_LIST: return v.u.l->tuple ? "tuple object" : "list object";
    case JV_STR: return "str object";
    case JV_INT: return "int object";
    case JV_FLOAT: return "float object";
    case JV_BOOL: return "bool object";
    case JV_NS: return "jinja2.utils.Namespace object";
    default: return "object";
    }
}

static jv func(jctx *x, jfunc_kind k, const char *name, jv self)
{
    jfunc *fn = jj_alloc(x->arena, sizeof *fn);
    if (!fn) { jj_oom(x); return jv_undef(NULL); }
    fn->kind = k;
    fn->name = name;
    fn->self = self;
    jv v = {.k = JV_FUNC};
    v.u.fn = fn;
    return v;
}

static bool getattr_(jctx *x, jv obj, const char *name, jv *out)
{
    if (obj.k == JV_UNDEF) return undef_error(x, obj);
    if (obj.k == JV_NS) {
        jv *v = jd_gets(obj.u.d, name);
        *out = v ? *v : undef_msg(x, "'%s' has no attribute '%s'", obj_desc(obj), name);
        return !x->failed;
    }
    if (jj_has_method(obj, name)) {
        *out = func(x, JF_METHOD, name, obj);
        return !x->failed;
    }
    if (obj.k == JV_DICT) {
        jv *v = jd_gets(obj.u.d, name);
        if (v) { *out = *v; return true; }
    }
    if (obj.k == JV_NONE) *out = undef_msg(x, "'None' has no attribute '%s'%s", name, "");
    else *out = undef_msg(x, "'%s' has no attribute '%s'", obj_desc(obj), name);
    return !x->failed;
}

jv jj_substr(jctx *x, const jstr *s, size_t from, size_t n)
{
    return jv_str(x, s->p + from, n, s->mask ? s->mask + from : NULL);
}

static bool getitem(jctx *x, jv obj, jv key, jv *out)
{
    if (obj.k == JV_UNDEF) return undef_error(x, obj);
    if (obj.k == JV_DICT || obj.k == JV_NS) {
        jv *v = jd_get(obj.u.d, key);
        if (v) { *out = *v; return true; }
    } else if (obj.k == JV_LIST && obj.u.l->lazy) {
        return jj_error(x, "'%s' object is not subscriptable", jl_kind_name(obj.u.l));
    } else if ((obj.k == JV_LIST || obj.k == JV_STR) && jv_is_int_like(key)) {
        int64_t i = key.k == JV_INT ? key.u.i : key.u.b;
        if (obj.k == JV_LIST) {
            int64_t n = (int64_t)obj.u.l->n;
            if (i < 0) i += n;
            if (i >= 0 && i < n) { *out = obj.u.l->v[i]; return true; }
            *out = undef_msg(x, "%s has no element %s", obj.u.l->tuple ? "tuple object" : "list object", "");
            return true;
        }
        const jstr *s = obj.u.s;
        int64_t n = (int64_t)jj_u8_len(s->p, s->n);
        if (i < 0) i += n;
        if (i >= 0 && i < n) {
            size_t a = jj_u8_offset(s->p, s->n, (size_t)i), b = jj_u8_offset(s->p, s->n, (size_t)i + 1);
            *out = jj_substr(x, s, a, b - a);
            return !x->failed;
        }
        *out = undef_msg(x, "str object has no element %s%s", "", "");
        return true;
    }
    if (key.k == JV_STR) return getattr_(x, obj, key.u.s->p, out);
    jbuf b = {.limit = 256};
    jv_repr(x, key, &b);
    *out = undef_msg(x, "'%s' has no attribute %s", obj_desc(obj), b.p ? b.p : "");
    jbuf_free(&b);
    return !x->failed;
}

/* Python slice bounds for length n */
static void slice_bounds(int64_t n, bool has_a, int64_t a, bool has_b, int64_t b, int64_t st, int64_t *from, int64_t *to)
{
    if (st > 0) {
        if (!has_a) a = 0; else if (a < 0) { a += n; if (a < 0) a = 0; } else if (a > n) a = n;
        if (!has_b) b = n; else if (b < 0) { b += n; if (b < 0) b = 0; } else if (b > n) b = n;
    } else {
        if (!has_a) a = n - 1; else if (a < 0) { a += n; if (a < 0) a = -1; } else if (a >= n) a = n - 1;
        if (!has_b) b = -1; else if (b < 0) { b += n; if (b < 0) b = -1; } else if (b >= n) b = n - 1;
    }
    *from = a;
    *to = b;
}

static bool do_slice(jctx *x, jv obj, const jv *parts, const bool *has, jv *out)
{
    int64_t v[3] = {0, 0, 1};
    for (int k = 0; k < 3; k++) {
        if (!has[k]) continue;
        if (!jv_is_int_like(parts[k])) return jj_error(x, "slice indices must be integers or None");
        v[k] = parts[k].k == JV_INT ? parts[k].u.i : parts[k].u.b;
    }
    if (v[2] == 0) return jj_error(x, "slice step cannot be zero");
    if (obj.k == JV_UNDEF) return undef_error(x, obj);
    if (obj.k == JV_LIST) {
        int64_t a, b;
        slice_bounds((int64_t)obj.u.l->n, has[0], v[0], has[1], v[1], v[2], &a, &b);
        jv l = jv_list(x, 0);
        if (x->failed) return false;
        l.u.l->tuple = obj.u.l->tuple;
        for (int64_t i = a; v[2] > 0 ? i < b : i > b;) {
            if (!jl_push(x, l.u.l, obj.u.l->v[i])) return false;
            if (__builtin_add_overflow(i, v[2], &i)) break;
        }
        *out = l;
        return true;
    }
    if (obj.k == JV_STR) {
        const jstr *s = obj.u.s;
        int64_t n = (int64_t)jj_u8_len(s->p, s->n), a, b;
        slice_bounds(n, has[0], v[0], has[1], v[1], v[2], &a, &b);
        if (v[2] == 1) {
            if (b <= a) { *out = jv_cstr(x, ""); return !x->failed; }
            size_t pa = jj_u8_offset(s->p, s->n, (size_t)a), pb = jj_u8_offset(s->p, s->n, (size_t)b);
            *out = jj_substr(x, s, pa, pb - pa);
            return !x->failed;
        }
        jbuf bf = {.limit = x->lim->max_output};
        for (int64_t i = a; v[2] > 0 ? i < b : i > b;) {
            size_t pa = jj_u8_offset(s->p, s->n, (size_t)i), pb = jj_u8_offset(s->p, s->n, (size_t)i + 1);
            jbuf_put_str(&bf, s, pa, pb - pa);
            if (__builtin_add_overflow(i, v[2], &i)) break;
        }
        *out = jv_str_from_buf(x, &bf);
        return !x->failed;
    }
    return jj_error(x, "'%s' object is not subscriptable", jv_type_name(obj));
}

/* ----- arithmetic ----- */

/* Python's printf-style "fmt % args": %s %r %d %i %f %x %% with an optional
 * precision; args a tuple or one value */
bool jj_percent_format(jctx *x, const jstr *fmt, jv args, jv *out)
{
    const jv *av = &args;
    size_t an = 1, used = 0;
    if (args.k == JV_LIST && args.u.l->tuple) { av = args.u.l->v; an = args.u.l->n; }
    jbuf b = {.limit = x->lim->max_output};
    for (size_t i = 0; i < fmt->n; i++) {
        if (fmt->p[i] != '%') { jbuf_put_str(&b, fmt, i, 1); continue; }
        size_t j = i + 1;
        int prec = -1;
        if (j < fmt->n && fmt->p[j] == '.') {
            prec = 0;
            for (j++; j < fmt->n && fmt->p[j] >= '0' && fmt->p[j] <= '9' && prec < 100; j++) prec = prec * 10 + fmt->p[j] - '0';
        }
        char c = j < fmt->n ? fmt->p[j] : 0;
        if (c == '%') { jbuf_puts(&b, "%"); i = j; continue; }
        if (!strchr("srdifx", c) || !c) { jbuf_free(&b); return jj_error(x, "unsupported format character in '%%' formatting"); }
        if (used >= an) { jbuf_free(&b); return jj_error(x, "not enough arguments for format string"); }
        jv v = av[used++];
        char t[64];
        if (c == 's') { if (!jv_to_str(x, v, &b)) { jbuf_free(&b); return false; } }
        else if (c == 'r') { if (!jv_repr(x, v, &b)) { jbuf_free(&b); return false; } }
        else {
            if (!jv_is_number(v)) { jbuf_free(&b); return jj_error(x, "%%%c format: a real number is required, not %s", c, jv_type_name(v)); }
            if (c == 'f') snprintf(t, sizeof t, "%.*f", prec < 0 ? 6 : prec, jv_num(v));
            else {
                int64_t iv = jv_is_int_like(v) ? (v.k == JV_INT ? v.u.i : v.u.b) : (int64_t)jv_num(v);
                snprintf(t, sizeof t, c == 'x' ? "%llx" : "%lld", (long long)iv);
            }
            jbuf_puts(&b, t);
        }
        i = j;
    }
    if (used < an) { jbuf_free(&b); return jj_error(x, "not all arguments converted during string formatting"); }
    *out = jv_str_from_buf(x, &b);
    return !x->failed;
}
static bool binop(jctx *x, int op, jv a, jv b, jv *out)
{
    if (op == OP_CONCAT) {
        jbuf bf = {.limit = x->lim->max_output};
        if (!jv_to_str(x, a, &bf) || !jv_to_str(x, b, &bf)) { jbuf_free(&bf); return false; }
        *out = jv_str_from_buf(x, &bf);
        return !x->failed;
    }
    if (a.k == JV_UNDEF) return undef_error(x, a);
    if (b.k == JV_UNDEF) return undef_error(x, b);
    static const char *const sym[] = {"", "+", "-", "*", "/", "//", "%", "**"};
    if (jv_is_number(a) && jv_is_number(b)) {
        bool ints = jv_is_int_like(a) && jv_is_int_like(b);
        int64_t p = !ints ? 0 : a.k == JV_INT ? a.u.i : a.u.b, q = !ints ? 0 : b.k == JV_INT ? b.u.i : b.u.b;
        double fa = jv_num(a), fb = jv_num(b);
        switch (op) {
        case OP_ADD:
        case OP_SUB:
        case OP_MUL:
            if (ints) {
                int64_t r;
                bool ovf = op == OP_ADD ? __builtin_add_overflow(p, q, &r) : op == OP_SUB ? __builtin_sub_overflow(p, q, &r)
                                                                                          : __builtin_mul_overflow(p, q, &r);
                if (ovf) return jj_error(x, "integer arithmetic past 64 bits is not supported");
                *out = jv_int(r);
            } else {
                *out = jv_float(op == OP_ADD ? fa + fb : op == OP_SUB ? fa - fb : fa * fb);
            }
            return true;
        case OP_DIV:
            if (fb == 0) return jj_error(x, "division by zero");
            *out = jv_float(fa / fb);
            return true;
        case OP_FLOORDIV:
        case OP_MOD:
            if (ints ? q == 0 : fb == 0) return jj_error(x, op == OP_MOD ? "modulo by zero" : "integer division or modulo by zero");
            if (ints) {
                if (p == INT64_MIN && q == -1) return jj_error(x, "integer arithmetic past 64 bits is not supported");
                int64_t d = p / q, m = p % q;
                if (m != 0 && ((m < 0) != (q < 0))) { d--; m += q; }
                *out = jv_int(op == OP_MOD ? m : d);
            } else {
                double m = fmod(fa, fb);
                if (m != 0 && ((m < 0) != (fb < 0))) m += fb;
                *out = jv_float(op == OP_MOD ? m : floor(fa / fb));
            }
            return true;
        case OP_POW:
            if (ints && q >= 0) {
                /* by squaring: 1 ** 10**18 must not loop 10**18 times */
                int64_t r = 1, base = p, e = q;
                bool ovf = false;
                while (e > 0 && !ovf) {
                    if (e & 1) ovf |= __builtin_mul_overflow(r, base, &r);
                    e >>= 1;
                    if (e) ovf |= __builtin_mul_overflow(base, base, &base);
                }
                if (ovf) return jj_error(x, "integer arithmetic past 64 bits is not supported");
                *out = jv_int(r);
            } else {
                *out = jv_float(pow(fa, fb));
            }
            return true;
        }
    }
    if (op == OP_ADD && a.k == JV_STR && b.k == JV_STR) {
        /* Markup + str escapes the str, and so does str + Markup */
        bool markup = a.u.s->markup || b.u.s->markup;
        if (markup) {
            a = jj_html_escape(x, a);
            b = jj_html_escape(x, b);
            if (x->failed) return false;
        }
        jbuf bf = {.limit = x->lim->max_output};
        jbuf_put_str(&bf, a.u.s, 0, a.u.s->n);
        jbuf_put_str(&bf, b.u.s, 0, b.u.s->n);
        *out = jv_str_from_buf(x, &bf);
        if (markup && out->k == JV_STR) out->u.s->markup = true;
        return !x->failed;
    }
    if (op == OP_ADD && a.k == JV_LIST && b.k == JV_LIST && a.u.l->tuple == b.u.l->tuple) {
        jv l = jv_list(x, a.u.l->n + b.u.l->n);
        if (x->failed) return false;
        l.u.l->tuple = a.u.l->tuple;
        for (size_t i = 0; i < a.u.l->n; i++) jl_push(x, l.u.l, a.u.l->v[i]);
        for (size_t i = 0; i < b.u.l->n; i++) jl_push(x, l.u.l, b.u.l->v[i]);
        *out = l;
        return !x->failed;
    }
    if (op == OP_MUL && ((a.k == JV_STR || a.k == JV_LIST) && jv_is_int_like(b))) {
        int64_t k = b.k == JV_INT ? b.u.i : b.u.b;
        if (a.k == JV_STR) {
            jbuf bf = {.limit = x->lim->max_output};
            for (int64_t i = 0; a.u.s->n && i < k && !bf.over && !bf.oom; i++) jbuf_put_str(&bf, a.u.s, 0, a.u.s->n);
            *out = jv_str_from_buf(x, &bf);
            if (out->k == JV_STR) out->u.s->markup = a.u.s->markup;
            return !x->failed;
        }
        jv l = jv_list(x, 0);
        if (x->failed) return false;
        l.u.l->tuple = a.u.l->tuple;
        for (int64_t i = 0; a.u.l->n && i < k; i++)
            for (size_t j = 0; j < a.u.l->n; j++)
                if (!jl_push(x, l.u.l, a.u.l->v[j])) return false;
        *out = l;
        return true;
    }
    if (op == OP_MUL && (b.k == JV_STR || b.k == JV_LIST) && jv_is_int_like(a)) return binop(x, op, b, a, out);
    if (op == OP_MOD && a.k == JV_STR) return jj_percent_format(x, a.u.s, b, out);
    return jj_error(x, "unsupported operand type(s) for %s: '%s' and '%s'", sym[op], jv_type_name(a), jv_type_name(b));
}

static bool contains(jctx *x, jv hay, jv needle, bool *r)
{
    switch (hay.k) {
    case JV_STR:
        if (needle.k != JV_STR) return jj_error(x, "'in <string>' requires string as left operand, not %s", jv_type_name(needle));
        *r = needle.u.s->n == 0 || memmem(hay.u.s->p, hay.u.s->n, needle.u.s->p, needle.u.s->n) != NULL;
        return true;
    case JV_LIST:
        *r = false;
        for (size_t i = 0; i < hay.u.l->n && !*r; i++) *r = jv_eq(hay.u.l->v[i], needle);
        return true;
    case JV_DICT:
        *r = jd_get(hay.u.d, needle) != NULL;
        return true;
    case JV_UNDEF:
        *r = false;
        return true;
    default:
        return jj_error(x, "argument of type '%s' is not iterable", jv_type_name(hay));
    }
}

/* ----- calls ----- */
typedef struct args {
    jv          *pos;
    size_t       n;
    const char **kwn;
    jv          *kwv;
    size_t       n_kw;
} args;

static bool eval_args(jctx *x, const jnode *call, jframe *f, args *a)
{
    memset(a, 0, sizeof *a);
    a->n = call->args.n;
    a->n_kw = call->kwargs.n;
    a->pos = jj_alloc(x->arena, (a->n + 1) * sizeof *a->pos);
    a->kwv = jj_alloc(x->arena, (a->n_kw + 1) * sizeof *a->kwv);
    if (!a->pos || !a->kwv) return jj_oom(x);
    a->kwn = call->kwnames;
    for (size_t i = 0; i < a->n; i++) if (!eval(x, call->args.v[i], f, &a->pos[i])) return false;
    for (size_t i = 0; i < a->n_kw; i++) if (!eval(x, call->kwargs.v[i], f, &a->kwv[i])) return false;
    return true;
}

static bool call_macro(jctx *x, const jfunc *fn, const args *a, jv caller, jv *out)
{
    const jnode *m = fn->node;
    if (x->depth >= x->lim->max_depth) {
        jj_error(x, "macro calls nested deeper than %d", x->lim->max_depth);
        x->status = VKI_ERR_UNSUPPORTED;
        return false;
    }
    jframe fr = {.parent = fn->closure};
    size_t np = m->n_kwnames;
    jv varargs = jv_list(x, 0), kwargs = jv_dict(x, 0);
    if (x->failed) return false;
    for (size_t i = 0; i < np; i++) {
        jv v;
        bool have = false;
        if (i < a->n) { v = a->pos[i]; have = true; }
        for (size_t k = 0; k < a->n_kw; k++)
            if (!strcmp(a->kwn[k], m->kwnames[i])) {
                if (have) return jj_error(x, "macro '%s' got multiple values for argument '%s'", m->name, m->kwnames[i]);
                v = a->kwv[k];
                have = true;
            }
        if (!have) {
            if (m->args.v[i]) {
                /* defaults see the parameters bound so far */
                if (!eval(x, m->args.v[i], &fr, &v)) return false;
            } else {
                v = undef_msg(x, "parameter '%s' was not provided%s", m->kwnames[i], "");
            }
        }
        if (!set_var(x, &fr, m->kwnames[i], v)) return false;
    }
    for (size_t i = np; i < a->n; i++) if (!jl_push(x, varargs.u.l, a->pos[i])) return false;
    for (size_t k = 0; k < a->n_kw; k++) {
        bool param = false;
        for (size_t i = 0; i < np && !param; i++) param = !strcmp(a->kwn[k], m->kwnames[i]);
        if (!param && !jd_set(x, kwargs.u.d, jv_cstr(x, a->kwn[k]), a->kwv[k])) return false;
    }
    if (!set_var(x, &fr, "varargs", varargs) || !set_var(x, &fr, "kwargs", kwargs)) return false;
    if (caller.k == JV_FUNC && !set_var(x, &fr, "caller", caller)) return false;
    jbuf b = {.limit = x->lim->max_output};
    x->depth++;
    int flow = exec_body(x, &m->body, &fr, &b);
    x->depth--;
    if (flow == FLOW_ERR) { jbuf_free(&b); return false; }
    *out = jv_str_from_buf(x, &b);
    return !x->failed;
}

static bool call_value(jctx *x, jv fnv, const args *a, jv caller, jv *out)
{
    if (fnv.k == JV_UNDEF) return undef_error(x, fnv);
    if (fnv.k != JV_FUNC) return jj_error(x, "'%s' object is not callable", jv_type_name(fnv));
    const jfunc *fn = fnv.u.fn;
    switch (fn->kind) {
    case JF_MACRO: return call_macro(x, fn, a, caller, out);
    case JF_METHOD: return jj_method(x, fn->self, fn->name, a->pos, a->n, a->kwn, a->kwv, a->n_kw, out);
    case JF_GLOBAL: return jj_global(x, fn->name, a->pos, a->n, a->kwn, a->kwv, a->n_kw, out);
    case JF_CYCLE:
        if (!a->n) return jj_error(x, "no items for cycling given");
        *out = a->pos[(size_t)fn->self.u.i % a->n];
        return true;
    case JF_CALLER: {
        /* the body of a {% call %} block, with its parameters */
        const jnode *cb = fn->node;
        jframe fr = {.parent = fn->closure};
        for (size_t i = 0; i < cb->n_kwnames; i++) {
            jv v;
            if (i < a->n) v = a->pos[i];
            else if (cb->args.v[i]) { if (!eval(x, cb->args.v[i], &fr, &v)) return false; }
            else v = undef_msg(x, "parameter '%s' was not provided%s", cb->kwnames[i], "");
            if (!set_var(x, &fr, cb->kwnames[i], v)) return false;
        }
        if (x->depth >= x->lim->max_depth) return jj_error(x, "calls nested deeper than %d", x->lim->max_depth);
        jbuf b = {.limit = x->lim->max_output};
        x->depth++;
        int flow = exec_body(x, &cb->body, &fr, &b);
        x->depth--;
        if (flow == FLOW_ERR) { jbuf_free(&b); return false; }
        *out = jv_str_from_buf(x, &b);
        return !x->failed;
    }
    }
    return jj_error(x, "not callable");
}

static const char *const global_names[] = {"range", "namespace", "dict", "raise_exception", "strftime_now", "lipsum",
                                           "cycler", "joiner", NULL};

static bool apply_filter(jctx *x, const jnode *n, jv in, jframe *f, jv *out)
{
    if (n->unknown) return jj_error(x, "No filter named '%s' found.", n->name);
    args a;
    if (!eval_args(x, n, f, &a)) return false;
    return jj_filter(x, n->name, in, a.pos, a.n, a.kwn, a.kwv, a.n_kw, out);
}

/* a filter chain of a filter block or block set, applied to v */
static bool apply_chain(jctx *x, const jnode *n, jv v, jframe *f, jv *out)
{
    if (!n) { *out = v; return true; }
    jv in;
    if (!apply_chain(x, n->a, v, f, &in)) return false;
    return apply_filter(x, n, in, f, out);
}

static bool eval(jctx *x, const jnode *n, jframe *f, jv *out)
{
    if (!step(x, n)) return false;
    switch (n->k) {
    case E_LIT:
        *out = n->lit;
        return true;
    case E_NAME: {
        jv *v = lookup(f, n->name);
        if (v) { *out = *v; return true; }
        for (size_t i = 0; global_names[i]; i++)
            if (!strcmp(global_names[i], n->name)) {
                *out = func(x, JF_GLOBAL, global_names[i], jv_none());
                return !x->failed;
            }
        *out = undef_msg(x, "'%s' is undefined%s", n->name, "");
        return !x->failed;
    }
    case E_GETATTR: {
        jv o;
        if (!eval(x, n->a, f, &o)) return false;
        x->line = n->line;
        x->col = n->col;
        return getattr_(x, o, n->name, out);
    }
    case E_GETITEM: {
        jv o, k;
        if (!eval(x, n->a, f, &o) || !eval(x, n->b, f, &k)) return false;
        x->line = n->line;
        x->col = n->col;
        return getitem(x, o, k, out);
    }
    case E_SLICE: {
        jv o, parts[3] = {{0}};
        bool has[3] = {false, false, false};
        if (!eval(x, n->a, f, &o)) return false;
        for (int k = 0; k < 3; k++) {
            if (!n->args.v[k]) continue;
            if (!eval(x, n->args.v[k], f, &parts[k])) return false;
            has[k] = parts[k].k != JV_NONE;
        }
        x->line = n->line;
        x->col = n->col;
        return do_slice(x, o, parts, has, out);
    }
    case E_CALL: {
        jv fnv;
        args a;
        if (!eval(x, n->a, f, &fnv) || !eval_args(x, n, f, &a)) return false;
        x->line = n->line;
        x->col = n->col;
        return call_value(x, fnv, &a, jv_undef(NULL), out);
    }
    case E_FILTER: {
        jv in;
        if (!eval(x, n->a, f, &in)) return false;
        x->line = n->line;
        x->col = n->col;
        return apply_filter(x, n, in, f, out);
    }
    case E_TEST: {
        jv in;
        args a;
        bool r;
        if (n->unknown) return jj_error(x, "No test named '%s' found.", n->name);
        if (!eval(x, n->a, f, &in) || !eval_args(x, n, f, &a)) return false;
        x->line = n->line;
        x->col = n->col;
        if (!jj_test(x, n->name, in, a.pos, a.n, &r)) return false;
        *out = jv_bool(n->op ? !r : r);
        return true;
    }
    case E_NOT: {
        jv v;
        if (!eval(x, n->a, f, &v)) return false;
        *out = jv_bool(!jv_truthy(v));
        return true;
    }
    case E_NEG:
    case E_POS: {
        jv v;
        if (!eval(x, n->a, f, &v)) return false;
        if (v.k == JV_UNDEF) return undef_error(x, v);
        if (!jv_is_number(v)) return jj_error(x, "bad operand type for unary %s: '%s'", n->k == E_NEG ? "-" : "+", jv_type_name(v));
        if (n->k == E_POS) *out = v.k == JV_BOOL ? jv_int(v.u.b) : v;
        else if (v.k == JV_FLOAT) *out = jv_float(-v.u.f);
        else {
            int64_t i = v.k == JV_INT ? v.u.i : v.u.b;
            if (i == INT64_MIN) return jj_error(x, "integer arithmetic past 64 bits is not supported");
            *out = jv_int(-i);
        }
        return true;
    }
    case E_BIN: {
        jv a, b;
        if (!eval(x, n->a, f, &a) || !eval(x, n->b, f, &b)) return false;
        x->line = n->line;
        x->col = n->col;
        return binop(x, n->op, a, b, out);
    }
    case E_AND:
    case E_OR: {
        jv a;
        if (!eval(x, n->a, f, &a)) return false;
        if (jv_truthy(a) == (n->k == E_OR)) { *out = a; return true; }
        return eval(x, n->b, f, out);
    }
    case E_CMP: {
        jv l;
        if (!eval(x, n->a, f, &l)) return false;
        for (size_t i = 0; i < n->args.n; i++) {
            jv r;
            if (!eval(x, n->args.v[i], f, &r)) return false;
            x->line = n->line;
            x->col = n->col;
            bool ok;
            int c;
            switch (n->ops[i]) {
            case OP_EQ: ok = jv_eq(l, r); break;
            case OP_NE: ok = !jv_eq(l, r); break;
            case OP_IN: if (!contains(x, r, l, &ok)) return false; break;
            case OP_NOTIN: if (!contains(x, r, l, &ok)) return false; ok = !ok; break;
            default:
                if (l.k == JV_UNDEF) return undef_error(x, l);
                if (r.k == JV_UNDEF) return undef_error(x, r);
                if (!jv_cmp(x, l, r, &c)) return false;
                ok = n->ops[i] == OP_LT ? c < 0 : n->ops[i] == OP_LE ? c <= 0 : n->ops[i] == OP_GT ? c > 0 : c >= 0;
            }
            if (!ok) { *out = jv_bool(false); return true; }
            l = r;
        }
        *out = jv_bool(true);
        return true;
    }
    case E_COND: {
        jv c;
        if (!eval(x, n->b, f, &c)) return false;
        if (jv_truthy(c)) return eval(x, n->a, f, out);
        if (n->c) return eval(x, n->c, f, out);
        *out = undef_msg(x, "the inline if-expression evaluated to false and no else section was defined.%s%s", "", "");
        return !x->failed;
    }
    case E_LIST:
    case E_TUPLE: {
        jv l = jv_list(x, n->args.n);
        if (x->failed) return false;
        l.u.l->tuple = n->k == E_TUPLE;
        for (size_t i = 0; i < n->args.n; i++) {
            jv v;
            if (!eval(x, n->args.v[i], f, &v) || !jl_push(x, l.u.l, v)) return false;
        }
        *out = l;
        return true;
    }
    case E_DICT: {
        jv d = jv_dict(x, n->args.n);
        if (x->failed) return false;
        for (size_t i = 0; i < n->args.n; i++) {
            jv k, v;
            if (!eval(x, n->args.v[i], f, &k) || !eval(x, n->kwargs.v[i], f, &v)) return false;
            if (k.k == JV_LIST && !k.u.l->tuple) return jj_error(x, "unhashable type: 'list'");
            if (k.k == JV_DICT) return jj_error(x, "unhashable type: 'dict'");
            if (!jd_set(x, d.u.d, k, v)) return false;
        }
        *out = d;
        return true;
    }
    default:
        return jj_error(x, "internal: statement where an expression belongs");
    }
}

/* ----- statements ----- */
static bool assign(jctx *x, const jnode *target, jv v, jframe *f)
{
    if (target->k == E_NAME) return set_var(x, f, target->name, v);
    if (target->k == E_GETATTR) {
        jv *ns = lookup(f, target->a->name);
        if (!ns || ns->k != JV_NS) return jj_error(x, "cannot assign attribute on non-namespace object");
        return jd_set(x, ns->u.d, jv_cstr(x, target->name), v);
    }
    /* tuple unpacking */
    jlist *items;
    if (v.k == JV_UNDEF) return undef_error(x, v);
    if (!jj_iter(x, v, &items)) return false;
    if (items->n != target->args.n)
        return items->n > target->args.n ? jj_error(x, "too many values to unpack (expected %zu)", target->args.n)
                                         : jj_error(x, "not enough values to unpack (expected %zu, got %zu)", target->args.n, items->n);
    for (size_t i = 0; i < items->n; i++) if (!assign(x, target->args.v[i], items->v[i], f)) return false;
    return true;
}

static bool output(jctx *x, jv v, jbuf *out)
{
    if (!jv_to_str(x, v, out)) return false;
    if (out->oom) return jj_oom(x);
    if (out->over) {
        jj_error(x, "output larger than %zu bytes", out->limit);
        x->status = VKI_ERR_UNSUPPORTED;
        return false;
    }
    return true;
}

static int exec_for(jctx *x, const jnode *n, jframe *f, jbuf *out)
{
    jv seq;
    if (!eval(x, n->a, f, &seq)) return FLOW_ERR;
    jlist *items;
    if (!jj_iter(x, seq, &items)) return FLOW_ERR;
    if (n->c) {
        /* `for x in xs if cond`: the condition filters before loop.* counts */
        jv fl = jv_list(x, items->n);
        if (x->failed) return FLOW_ERR;
        for (size_t i = 0; i < items->n; i++) {
            jframe fr = {.parent = f};
            jv c;
            if (!assign(x, n->b, items->v[i], &fr) || !eval(x, n->c, &fr, &c)) return FLOW_ERR;
            if (jv_truthy(c) && !jl_push(x, fl.u.l, items->v[i])) return FLOW_ERR;
        }
        items = fl.u.l;
    }
    if (!items->n) return n->orelse.n ? exec_body(x, &n->orelse, f, out) : FLOW_OK;
    int64_t len = (int64_t)items->n;
    for (size_t i = 0; i < items->n; i++) {
        if (!step(x, n)) return FLOW_ERR;
        jframe fr = {.parent = f};
        jv loop = jv_dict(x, 16);
        if (x->failed) return FLOW_ERR;
        jdict *d = loop.u.d;
        int64_t k = (int64_t)i;
        int depth = 1; /* only recursive loops (not supported) go deeper */
        if (!jd_set(x, d, jv_cstr(x, "index0"), jv_int(k)) || !jd_set(x, d, jv_cstr(x, "index"), jv_int(k + 1)) ||
            !jd_set(x, d, jv_cstr(x, "revindex0"), jv_int(len - k - 1)) ||
            !jd_set(x, d, jv_cstr(x, "revindex"), jv_int(len - k)) || !jd_set(x, d, jv_cstr(x, "first"), jv_bool(i == 0)) ||
            !jd_set(x, d, jv_cstr(x, "last"), jv_bool(k == len - 1)) || !jd_set(x, d, jv_cstr(x, "length"), jv_int(len)) ||
            !jd_set(x, d, jv_cstr(x, "depth"), jv_int(depth)) || !jd_set(x, d, jv_cstr(x, "depth0"), jv_int(depth - 1)) ||
            !jd_set(x, d, jv_cstr(x, "cycle"), func(x, JF_CYCLE, "cycle", jv_int(k))))
            return FLOW_ERR;
        if (i > 0 && !jd_set(x, d, jv_cstr(x, "previtem"), items->v[i - 1])) return FLOW_ERR;
        if (i + 1 < items->n && !jd_set(x, d, jv_cstr(x, "nextitem"), items->v[i + 1])) return FLOW_ERR;
        loop.k = JV_NS; /* attribute access reads its fields; templates cannot assign to it */
        if (!set_var(x, &fr, "loop", loop) || !assign(x, n->b, items->v[i], &fr)) return FLOW_ERR;
        int flow = exec_body(x, &n->body, &fr, out);
        if (flow == FLOW_ERR) return FLOW_ERR;
        if (flow == FLOW_BREAK) break;
    }
    return FLOW_OK;
}

static int exec_node(jctx *x, const jnode *n, jframe *f, jbuf *out)
{
    if (!step(x, n)) return FLOW_ERR;
    switch (n->k) {
    case N_DATA:
        return output(x, n->lit, out) ? FLOW_OK : FLOW_ERR;
    case N_OUTPUT: {
        jv v;
        if (!eval(x, n->a, f, &v)) return FLOW_ERR;
        x->line = n->line;
        x->col = n->col;
        return output(x, v, out) ? FLOW_OK : FLOW_ERR;
    }
    case N_IF: {
        jv c;
        if (!eval(x, n->a, f, &c)) return FLOW_ERR;
        return exec_body(x, jv_truthy(c) ? &n->body : &n->orelse, f, out);
    }
    case N_FOR:
        return exec_for(x, n, f, out);
    case N_SET: {
        jv v;
        if (!eval(x, n->b, f, &v)) return FLOW_ERR;
        x->line = n->line;
        x->col = n->col;
        return assign(x, n->a, v, f) ? FLOW_OK : FLOW_ERR;
    }
    case N_SETBLOCK: {
        jbuf b = {.limit = x->lim->max_output};
        int flow = exec_body(x, &n->body, f, &b);
        if (flow == FLOW_ERR) { jbuf_free(&b); return FLOW_ERR; }
        jv v = jv_str_from_buf(x, &b), r;
        if (x->failed || !apply_chain(x, n->c, v, f, &r)) return FLOW_ERR;
        return assign(x, n->a, r, f) ? FLOW_OK : FLOW_ERR;
    }
    case N_MACRO: {
        jv m = func(x, JF_MACRO, n->name, jv_none());
        if (x->failed) return FLOW_ERR;
        m.u.fn->node = n;
        m.u.fn->closure = f;
        return set_var(x, f, n->name, m) ? FLOW_OK : FLOW_ERR;
    }
    case N_CALLBLOCK: {
        jv caller = func(x, JF_CALLER, "caller", jv_none()), fnv, r;
        if (x->failed) return FLOW_ERR;
        caller.u.fn->node = n;
        caller.u.fn->closure = f;
        args a;
        if (!eval(x, n->a->a, f, &fnv) || !eval_args(x, n->a, f, &a)) return FLOW_ERR;
        if (fnv.k != JV_FUNC || fnv.u.fn->kind != JF_MACRO) {
            if (fnv.k == JV_UNDEF) return undef_error(x, fnv), FLOW_ERR;
            return jj_error(x, "a call block needs a macro"), FLOW_ERR;
        }
        if (!call_macro(x, fnv.u.fn, &a, caller, &r)) return FLOW_ERR;
        return output(x, r, out) ? FLOW_OK : FLOW_ERR;
    }
    case N_FILTERBLOCK: {
        jbuf b = {.limit = x->lim->max_output};
        int flow = exec_body(x, &n->body, f, &b);
        if (flow == FLOW_ERR) { jbuf_free(&b); return FLOW_ERR; }
        jv v = jv_str_from_buf(x, &b), r;
        if (x->failed || !apply_chain(x, n->a, v, f, &r)) return FLOW_ERR;
        return output(x, r, out) ? FLOW_OK : FLOW_ERR;
    }
    case N_BREAK: return FLOW_BREAK;
    case N_CONTINUE: return FLOW_CONTINUE;
    case N_BODY: return exec_body(x, &n->body, f, out);
    case N_WITH: {
        jframe fr = {.parent = f};
        for (size_t i = 0; i < n->n_kwnames; i++) {
            jv v;
            if (!eval(x, n->args.v[i], f, &v) || !set_var(x, &fr, n->kwnames[i], v)) return FLOW_ERR;
        }
        return exec_body(x, &n->body, &fr, out);
    }
    default:
        jj_error(x, "internal: expression where a statement belongs");
        return FLOW_ERR;
    }
}

static int exec_body(jctx *x, const jnode_list *body, jframe *f, jbuf *out)
{
    for (size_t i = 0; i < body->n; i++) {
        int flow = exec_node(x, body->v[i], f, out);
        if (flow != FLOW_OK) return flow;
    }
    return FLOW_OK;
}

/* ----- entry points ----- */
jinja_limits jinja_default_limits(void)
{
    return (jinja_limits){.max_output = 4u << 20, .max_memory = 256u << 20, .max_steps = 50000000, .max_depth = 64};
}

vki_status jinja_parse(const char *src, size_t n, const char *where, jinja_template **out)
{
    *out = NULL;
    if (!src) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "jinja_parse: no template text");
    if (!where) where = "template";
    jinja_template *t = calloc(1, sizeof *t);
    if (!t) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", where);
    char err[512] = "";
    jtok *toks;
    size_t nt;
    jinja_limits lim = jinja_default_limits();
    t->where = jj_strndup(&t->arena, where, strlen(where));
    if (!t->where || !jj_lex(&t->arena, src, n, &toks, &nt, err, sizeof err) ||
        !jj_parse_tokens(&t->arena, toks, nt, lim.max_depth * 4, &t->body, err, sizeof err)) {
        bool oom = t->arena.over || !t->where;
        jinja_template_destroy(t);
        if (oom) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", where);
        return vki_fail(VKI_ERR_BAD_FILE, "%s:%s", where, err);
    }
    *out = t;
    return VKI_OK;
}

void jinja_template_destroy(jinja_template *t)
{
    if (!t) return;
    jj_arena_free(&t->arena);
    free(t);
}

static bool mask_spans(const jbuf *b, vki_text_span **spans, size_t *n_spans)
{
    *spans = NULL;
    *n_spans = 0;
    if (!b->mask) return true;
    size_t cap = 0;
    for (size_t i = 0; i < b->n;) {
        if (!b->mask[i]) { i++; continue; }
        size_t j = i;
        while (j < b->n && b->mask[j]) j++;
        if (*n_spans == cap) {
            cap = cap ? 2 * cap : 8;
            vki_text_span *s = realloc(*spans, cap * sizeof *s);
            if (!s) { free(*spans); *spans = NULL; *n_spans = 0; return false; }
            *spans = s;
        }
        (*spans)[(*n_spans)++] = (vki_text_span){.off = i, .len = j - i};
        i = j;
    }
    return true;
}

vki_status jinja_render(const jinja_template *t, const cJSON *ctx, const jinja_limits *lim, char **out, size_t *out_len,
                        vki_text_span **spans, size_t *n_spans)
{
    *out = NULL;
    if (out_len) *out_len = 0;
    if (spans) *spans = NULL;
    if (n_spans) *n_spans = 0;
    if (!t) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "jinja_render: no template");
    if (ctx && !cJSON_IsObject(ctx)) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: the context is not a JSON object", t->where);
    jinja_limits L = lim ? *lim : jinja_default_limits();
    jj_arena arena = {.limit = L.max_memory};
    jframe globals = {0};
    jctx x = {.arena = &arena, .lim = &L, .where = t->where, .globals = &globals, .line = 1, .col = 1};
    jbuf b = {.limit = L.max_output};
    const cJSON *e;
    if (ctx) cJSON_ArrayForEach(e, ctx) {
        jv v = jv_from_json(&x, e, !strcmp(e->string, "messages"));
        if (x.failed || !set_var(&x, &globals, e->string, v)) break;
    }
    if (!x.failed) exec_body(&x, &t->body, &globals, &b);
    if (!x.failed && (b.oom || b.over)) {
        if (b.oom) jj_oom(&x);
        else { jj_error(&x, "output larger than %zu bytes", L.max_output); x.status = VKI_ERR_UNSUPPORTED; }
    }
    jj_arena_free(&arena);
    if (x.failed) {
        jbuf_free(&b);
        return vki_fail(x.status ? x.status : VKI_ERR_INVALID_ARGUMENT, "%s", x.err);
    }
    if (spans && n_spans && !mask_spans(&b, spans, n_spans)) {
        jbuf_free(&b);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", t->where);
    }
    if (!b.p) {
        b.p = calloc(1, 1);
        if (!b.p) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", t->where);
    }
    *out = b.p;
    if (out_len) *out_len = b.n;
    free(b.mask);
    return VKI_OK;
}
