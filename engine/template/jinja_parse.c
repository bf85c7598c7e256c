/*
 * jinja_parse.c: tokens -> syntax tree, with jinja2's grammar and operator
 * precedence (or < and < not < comparisons < + - < ~ < * / // % < ** <
 * unary - + < filters, tests, calls). Tags jinja2 has but chat templates
 * never need (extends, include, import, block) are syntax errors here.
 */
#include <stdio.h>
#include <string.h>

#include "jinja_impl.h"

typedef struct parser {
    jj_arena   *a;
    const jtok *t;
    size_t      n, i;
    int         depth, max_depth;
    char       *err;
    size_t      errlen;
    bool        failed;
} parser;

static bool perr(parser *P, const jtok *t, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool perr(parser *P, const jtok *t, const char *fmt, ...)
{
    if (P->failed) return false;
    P->failed = true;
    int k = snprintf(P->err, P->errlen, "%d:%d: ", t->line, t->col);
    if (k < 0 || (size_t)k >= P->errlen) return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(P->err + k, P->errlen - (size_t)k, fmt, ap);
    va_end(ap);
    return false;
}

static const jtok *cur(parser *P) { return &P->t[P->i < P->n ? P->i : P->n - 1]; }
static const jtok *next(parser *P) { const jtok *t = cur(P); if (P->i < P->n - 1) P->i++; return t; }
static bool is_op(parser *P, const char *op) { const jtok *t = cur(P); return t->k == TK_OP && !strcmp(t->p, op); }
static bool is_name(parser *P, const char *nm) { const jtok *t = cur(P); return t->k == TK_NAME && !strcmp(t->p, nm); }
static bool peek_op(parser *P, size_t ahead, const char *op)
{
    if (P->i + ahead >= P->n) return false;
    const jtok *t = &P->t[P->i + ahead];
    return t->k == TK_OP && !strcmp(t->p, op);
}

static const char *tok_desc(const jtok *t)
{
    switch (t->k) {
    case TK_EOF: return "end of template";
    case TK_DATA: return "template data";
    case TK_VAR_BEGIN: return "'{{'";
    case TK_VAR_END: return "end of print statement";
    case TK_BLOCK_BEGIN: return "'{%'";
    case TK_BLOCK_END: return "end of statement block";
    case TK_STRING: return "string";
    case TK_INT: return "integer";
    case TK_FLOAT: return "float";
    default: return t->p;
    }
}

static bool expect_op(parser *P, const char *op)
{
    if (is_op(P, op)) { next(P); return true; }
    return perr(P, cur(P), "expected '%s', got %s", op, tok_desc(cur(P)));
}

static bool expect_k(parser *P, jtok_kind k, const char *what)
{
    if (cur(P)->k == k) { next(P); return true; }
    return perr(P, cur(P), "expected %s, got %s", what, tok_desc(cur(P)));
}

static jnode *node(parser *P, jnode_kind k, const jtok *at)
{
    jnode *n = jj_alloc(P->a, sizeof *n);
    if (!n) { perr(P, at, "out of memory"); return NULL; }
    n->k = k;
    n->line = at->line;
    n->col = at->col;
    return n;
}

static bool push(parser *P, jnode_list *l, jnode *n)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 4;
        jnode **v = jj_alloc(P->a, cap * sizeof *v);
        if (!v) return perr(P, cur(P), "out of memory");
        if (l->n) memcpy(v, l->v, l->n * sizeof *v);
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = n;
    return true;
}

static bool push_name(parser *P, jnode *n, const char *name)
{
    const char **v = jj_alloc(P->a, (n->n_kwnames + 1) * sizeof *v);
    if (!v) return perr(P, cur(P), "out of memory");
    if (n->n_kwnames) memcpy(v, n->kwnames, n->n_kwnames * sizeof *v);
    v[n->n_kwnames++] = name;
    n->kwnames = v;
    return true;
}

static bool enter(parser *P)
{
    if (++P->depth > P->max_depth) return perr(P, cur(P), "expression or statement nested deeper than %d", P->max_depth);
    return true;
}

static jnode *parse_expr(parser *P, bool with_cond);
static jnode *parse_or(parser *P);
static jnode *parse_unary(parser *P, bool with_filter);

/* a, b, c (a tuple when there is a comma) */
static jnode *parse_tuple(parser *P, bool with_cond)
{
    const jtok *at = cur(P);
    jnode *first = parse_expr(P, with_cond);
    if (!first || !is_op(P, ",")) return first;
    jnode *t = node(P, E_TUPLE, at);
    if (!t || !push(P, &t->args, first)) return NULL;
    while (is_op(P, ",")) {
        next(P);
        const jtok *c = cur(P);
        if (c->k == TK_VAR_END || c->k == TK_BLOCK_END || (c->k == TK_OP && (!strcmp(c->p, ")") || !strcmp(c->p, "]"))) ||
            (c->k == TK_NAME && !strcmp(c->p, "in")))
            break;
        jnode *e = parse_expr(P, with_cond);
        if (!e || !push(P, &t->args, e)) return NULL;
    }
    return t;
}

/* (args, kw=args) after the '(' was consumed */
static bool parse_args(parser *P, jnode *call)
{
    while (!is_op(P, ")")) {
        if (call->args.n + call->kwargs.n && !expect_op(P, ",")) return false;
        if (is_op(P, ")")) break;
        if (is_op(P, "*") || is_op(P, "**")) return perr(P, cur(P), "*args and **kwargs in calls are not supported");
        if (cur(P)->k == TK_NAME && peek_op(P, 1, "=")) {
            const char *nm = next(P)->p;
            next(P);
            jnode *v = parse_expr(P, true);
            if (!v || !push_name(P, call, nm) || !push(P, &call->kwargs, v)) return false;
        } else {
            if (call->kwargs.n) return perr(P, cur(P), "positional argument after a keyword argument");
            jnode *v = parse_expr(P, true);
            if (!v || !push(P, &call->args, v)) return false;
        }
    }
    next(P);
    return true;
}

static jnode *parse_primary(parser *P)
{
    const jtok *t = cur(P);
    jnode *n;
    switch (t->k) {
    case TK_NAME:
        next(P);
        n = node(P, E_LIT, t);
        if (!n) return NULL;
        if (!strcmp(t->p, "true") || !strcmp(t->p, "True")) n->lit = jv_bool(true);
        else if (!strcmp(t->p, "false") || !strcmp(t->p, "False")) n->lit = jv_bool(false);
        else if (!strcmp(t->p, "none") || !strcmp(t->p, "None")) n->lit = jv_none();
        else { n->k = E_NAME; n->name = t->p; }
        return n;
    case TK_STRING: {
        n = node(P, E_LIT, t);
        if (!n) return NULL;
        /* adjacent literals join, as in Python */
        size_t len = 0, k = P->i;
        while (k < P->n && P->t[k].k == TK_STRING) len += P->t[k++].n;
        char *p = jj_alloc(P->a, len + 1);
        jstr *s = jj_alloc(P->a, sizeof *s);
        if (!p || !s) { perr(P, t, "out of memory"); return NULL; }
        len = 0;
        while (cur(P)->k == TK_STRING) { memcpy(p + len, cur(P)->p, cur(P)->n); len += cur(P)->n; next(P); }
        s->p = p;
        s->n = len;
        n->lit.k = JV_STR;
        n->lit.u.s = s;
        return n;
    }
    case TK_INT:
    case TK_FLOAT:
        next(P);
        n = node(P, E_LIT, t);
        if (n) n->lit = t->k == TK_INT ? jv_int(t->i) : jv_float(t->f);
        return n;
    case TK_OP:
        if (!strcmp(t->p, "(")) {
            next(P);
            if (is_op(P, ")")) { next(P); return node(P, E_TUPLE, t); }
            jnode *e = parse_expr(P, true);
            if (!e) return NULL;
            if (is_op(P, ",")) {
                jnode *tu = node(P, E_TUPLE, t);
                if (!tu || !push(P, &tu->args, e)) return NULL;
                while (is_op(P, ",")) {
                    next(P);
                    if (is_op(P, ")")) break;
                    jnode *x = parse_expr(P, true);
                    if (!x || !push(P, &tu->args, x)) return NULL;
                }
                e = tu;
            }
            return expect_op(P, ")") ? e : NULL;
        }
        if (!strcmp(t->p, "[")) {
            next(P);
            n = node(P, E_LIST, t);
            if (!n) return NULL;
            while (!is_op(P, "]")) {
                if (n->args.n && !expect_op(P, ",")) return NULL;
                if (is_op(P, "]")) break;
                jnode *x = parse_expr(P, true);
                if (!x || !push(P, &n->args, x)) return NULL;
            }
            next(P);
            return n;
        }
        if (!strcmp(t->p, "{")) {
            next(P);
            n = node(P, E_DICT, t);
            if (!n) return NULL;
            while (!is_op(P, "}")) {
                if (n->args.n && !expect_op(P, ",")) return NULL;
                if (is_op(P, "}")) break;
                jnode *k = parse_expr(P, true);
                if (!k || !expect_op(P, ":")) return NULL;
                jnode *v = parse_expr(P, true);
                if (!v || !push(P, &n->args, k) || !push(P, &n->kwargs, v)) return NULL;
            }
            next(P);
            return n;
        }
        break;
    default:
        break;
    }
    perr(P, t, "unexpected %s", tok_desc(t));
    return NULL;
}

static jnode *parse_postfix(parser *P, jnode *n)
{
    while (n) {
        const jtok *t = cur(P);
        if (is_op(P, ".")) {
            next(P);
            const jtok *a = next(P);
            jnode *g;
            if (a->k == TK_NAME) {
                g = node(P, E_GETATTR, t);
                if (g) g->name = a->p;
            } else if (a->k == TK_INT) {
                g = node(P, E_GETITEM, t);
                jnode *idx = g ? node(P, E_LIT, a) : NULL;
                if (idx) { idx->lit = jv_int(a->i); g->b = idx; }
                else g = NULL;
            } else {
                perr(P, a, "expected a name after '.', got %s", tok_desc(a));
                return NULL;
            }
            if (!g) return NULL;
            g->a = n;
            n = g;
        } else if (is_op(P, "[")) {
            next(P);
            jnode *parts[3] = {NULL, NULL, NULL};
            int np = 0;
            bool slice = false;
            for (;;) {
                if (is_op(P, ":")) {
                    slice = true;
                    next(P);
                    if (++np > 2) { perr(P, t, "too many ':' in a slice"); return NULL; }
                    continue;
                }
                if (is_op(P, "]")) break;
                if (parts[np]) { perr(P, cur(P), "expected ':' or ']', got %s", tok_desc(cur(P))); return NULL; }
                parts[np] = parse_tuple(P, true);
                if (!parts[np]) return NULL;
            }
            next(P);
            jnode *g = node(P, slice ? E_SLICE : E_GETITEM, t);
            if (!g) return NULL;
            g->a = n;
            if (slice) {
                for (int k = 0; k < 3; k++) if (!push(P, &g->args, parts[k])) return NULL;
            } else {
                if (!parts[0]) { perr(P, t, "expected an index in '[]'"); return NULL; }
                g->b = parts[0];
            }
            n = g;
        } else if (is_op(P, "(")) {
            next(P);
            jnode *c = node(P, E_CALL, t);
            if (!c) return NULL;
            /* errors of a call point at what is called */
            c->line = n->line;
            c->col = n->col;
            c->a = n;
            if (!parse_args(P, c)) return NULL;
            n = c;
        } else {
            break;
        }
    }
    return n;
}

static jnode *parse_filter(parser *P, jnode *in, bool allow_call)
{
    const jtok *t = cur(P);
    if (t->k != TK_NAME) { perr(P, t, "expected a filter name, got %s", tok_desc(t)); return NULL; }
    next(P);
    jnode *f = node(P, E_FILTER, t);
    if (!f) return NULL;
    f->unknown = !jj_is_filter(t->p);
    f->name = t->p;
    f->a = in;
    if (allow_call && is_op(P, "(")) {
        next(P);
        if (!parse_args(P, f)) return NULL;
    }
    return f;
}

static jnode *parse_filter_expr(parser *P, jnode *n)
{
    while (n) {
        if (is_op(P, "|")) {
            next(P);
            n = parse_filter(P, n, true);
        } else if (is_name(P, "is")) {
            next(P);
            bool neg = false;
            if (is_name(P, "not")) { next(P); neg = true; }
            const jtok *nm = cur(P);
            if (nm->k != TK_NAME) { perr(P, nm, "expected a test name, got %s", tok_desc(nm)); return NULL; }
            next(P);
            jnode *x = node(P, E_TEST, nm);
            if (!x) return NULL;
            x->unknown = !jj_is_test(nm->p);
            x->name = nm->p;
            x->a = n;
            x->op = neg;
            const jtok *c = cur(P);
            if (is_op(P, "(")) {
                next(P);
                if (!parse_args(P, x)) return NULL;
            } else if ((c->k == TK_NAME && strcmp(c->p, "else") && strcmp(c->p, "or") && strcmp(c->p, "and")) ||
                       c->k == TK_STRING || c->k == TK_INT || c->k == TK_FLOAT ||
                       (c->k == TK_OP && (!strcmp(c->p, "[") || !strcmp(c->p, "{")))) {
                if (c->k == TK_NAME && !strcmp(c->p, "is")) { perr(P, c, "you cannot chain multiple tests with is"); return NULL; }
                jnode *arg = parse_postfix(P, parse_primary(P));
                if (!arg || !push(P, &x->args, arg)) return NULL;
            }
            n = x;
        } else if (is_op(P, "(")) {
            n = parse_postfix(P, n);
        } else {
            break;
        }
    }
    return n;
}

static jnode *parse_unary(parser *P, bool with_filter)
{
    if (!enter(P)) return NULL;
    const jtok *t = cur(P);
    jnode *n;
    if (is_op(P, "-") || is_op(P, "+")) {
        next(P);
        n = node(P, t->p[0] == '-' ? E_NEG : E_POS, t);
        if (n && !(n->a = parse_unary(P, false))) n = NULL;
    } else {
        n = parse_primary(P);
    }
    n = parse_postfix(P, n);
    if (with_filter) n = parse_filter_expr(P, n);
    P->depth--;
    return n;
}

static jnode *binary(parser *P, int op, const jtok *t, jnode *l, jnode *r)
{
    if (!l || !r) return NULL;
    jnode *n = node(P, E_BIN, t);
    if (!n) return NULL;
    n->op = op;
    n->a = l;
    n->b = r;
    return n;
}

static jnode *parse_pow(parser *P)
{
    jnode *l = parse_unary(P, true);
    while (l && is_op(P, "**")) {
        const jtok *t = next(P);
        l = binary(P, OP_POW, t, l, parse_unary(P, true));
    }
    return l;
}

static jnode *parse_math2(parser *P)
{
    jnode *l = parse_pow(P);
    while (l) {
        int op = is_op(P, "*") ? OP_MUL : is_op(P, "/") ? OP_DIV : is_op(P, "//") ? OP_FLOORDIV : is_op(P, "%") ? OP_MOD : 0;
        if (!op) break;
        const jtok *t = next(P);
        l = binary(P, op, t, l, parse_pow(P));
    }
    return l;
}

static jnode *parse_concat(parser *P)
{
    jnode *l = parse_math2(P);
    while (l && is_op(P, "~")) {
        const jtok *t = next(P);
        l = binary(P, OP_CONCAT, t, l, parse_math2(P));
    }
    return l;
}

static jnode *parse_math1(parser *P)
{
    jnode *l = parse_concat(P);
    while (l) {
        int op = is_op(P, "+") ? OP_ADD : is_op(P, "-") ? OP_SUB : 0;
        if (!op) break;
        const jtok *t = next(P);
        l = binary(P, op, t, l, parse_concat(P));
    }
    return l;
}

static jnode *parse_compare(parser *P)
{
    const jtok *at = cur(P);
    jnode *l = parse_math1(P);
    if (!l) return NULL;
    jnode *c = NULL;
    for (;;) {
        int op = 0;
        if (is_op(P, "==")) op = OP_EQ;
        else if (is_op(P, "!=")) op = OP_NE;
        else if (is_op(P, "<")) op = OP_LT;
        else if (is_op(P, "<=")) op = OP_LE;
        else if (is_op(P, ">")) op = OP_GT;
        else if (is_op(P, ">=")) op = OP_GE;
        else if (is_name(P, "in")) op = OP_IN;
        else if (is_name(P, "not") && P->i + 1 < P->n && P->t[P->i + 1].k == TK_NAME && !strcmp(P->t[P->i + 1].p, "in")) {
            next(P);
            op = OP_NOTIN;
        }
        if (!op) break;
        next(P);
        if (!c) {
            c = node(P, E_CMP, at);
            if (!c) return NULL;
            c->a = l;
        }
        int *ops = jj_alloc(P->a, (c->args.n + 1) * sizeof *ops);
        if (!ops) { perr(P, at, "out of memory"); return NULL; }
        if (c->args.n) memcpy(ops, c->ops, c->args.n * sizeof *ops);
        ops[c->args.n] = op;
        c->ops = ops;
        jnode *r = parse_math1(P);
        if (!r || !push(P, &c->args, r)) return NULL;
    }
    return c ? c : l;
}

static jnode *parse_not(parser *P)
{
    if (is_name(P, "not")) {
        const jtok *t = next(P);
        if (!enter(P)) return NULL;
        jnode *n = node(P, E_NOT, t);
        if (n && !(n->a = parse_not(P))) n = NULL;
        P->depth--;
        return n;
    }
    return parse_compare(P);
}

static jnode *parse_and(parser *P)
{
    jnode *l = parse_not(P);
    while (l && is_name(P, "and")) {
        const jtok *t = next(P);
        jnode *r = parse_not(P);
        jnode *n = r ? node(P, E_AND, t) : NULL;
        if (!n) return NULL;
        n->a = l;
        n->b = r;
        l = n;
    }
    return l;
}

static jnode *parse_or(parser *P)
{
    jnode *l = parse_and(P);
    while (l && is_name(P, "or")) {
        const jtok *t = next(P);
        jnode *r = parse_and(P);
        jnode *n = r ? node(P, E_OR, t) : NULL;
        if (!n) return NULL;
        n->a = l;
        n->b = r;
        l = n;
    }
    return l;
}

static jnode *parse_expr(parser *P, bool with_cond)
{
    if (!enter(P)) return NULL;
    jnode *e = parse_or(P);
    while (e && with_cond && is_name(P, "if")) {
        const jtok *t = next(P);
        jnode *c = node(P, E_COND, t);
        if (!c) return NULL;
        c->a = e;
        if (!(c->b = parse_or(P))) return NULL;
        if (is_name(P, "else")) {
            next(P);
            if (!(c->c = parse_expr(P, true))) return NULL;
        }
        e = c;
    }
    P->depth--;
    return e;
}

/* ----- statements ----- */

static bool parse_body(parser *P, jnode_list *out, const char *const *ends, const char **which);

/* the closing tag of an end list ("endif" of elif, else, endif) */
static size_t n_ends_last(const char *const *ends)
{
    size_t k = 0;
    while (ends[k + 1]) k++;
    return k;
}

/* name, or a, b / (a, b) for for-loops and set */
static jnode *parse_target(parser *P, bool allow_attr)
{
    const jtok *t = cur(P);
    bool paren = is_op(P, "(");
    if (paren) next(P);
    jnode *tu = NULL, *first = NULL;
    for (;;) {
        const jtok *nm = cur(P);
        if (nm->k != TK_NAME) { perr(P, nm, "expected a name to assign to, got %s", tok_desc(nm)); return NULL; }
        next(P);
        jnode *n = node(P, E_NAME, nm);
        if (!n) return NULL;
        n->name = nm->p;
        if (allow_attr && !tu && !paren && is_op(P, ".")) {
            next(P);
            const jtok *at = next(P);
            if (at->k != TK_NAME) { perr(P, at, "expected an attribute name, got %s", tok_desc(at)); return NULL; }
            jnode *g = node(P, E_GETATTR, nm);
            if (!g) return NULL;
            g->a = n;
            g->name = at->p;
            return g;
        }
        if (!first) first = n;
        else if (!push(P, &tu->args, n)) return NULL;
        if (!is_op(P, ",")) break;
        next(P);
        if (!tu) {
            if (!(tu = node(P, E_TUPLE, t)) || !push(P, &tu->args, first)) return NULL;
        }
        if (paren && is_op(P, ")")) break;
    }
    if (paren && !expect_op(P, ")")) return NULL;
    return tu ? tu : first;
}

static bool end_block(parser *P) { return expect_k(P, TK_BLOCK_END, "end of statement block"); }

static bool parse_params(parser *P, jnode *n)
{
    if (!expect_op(P, "(")) return false;
    while (!is_op(P, ")")) {
        if (n->n_kwnames && !expect_op(P, ",")) return false;
        const jtok *nm = cur(P);
        if (nm->k != TK_NAME) return perr(P, nm, "expected a parameter name, got %s", tok_desc(nm));
        next(P);
        jnode *def = NULL;
        if (is_op(P, "=")) {
            next(P);
            if (!(def = parse_expr(P, true))) return false;
        }
        if (!push_name(P, n, nm->p) || !push(P, &n->args, def)) return false;
    }
    next(P);
    return true;
}

static jnode *parse_stmt(parser *P)
{
    const jtok *t = cur(P);
    if (t->k != TK_NAME) { perr(P, t, "expected a statement name, got %s", tok_desc(t)); return NULL; }
    const char *nm = t->p;
    next(P);
    jnode *n;
    const char *which;
    if (!strcmp(nm, "if")) {
        n = node(P, N_IF, t);
        if (!n || !(n->a = parse_tuple(P, true)) || !end_block(P)) return NULL;
        jnode *at = n;
        static const char *const ends[] = {"elif", "else", "endif", NULL};
        for (;;) {
            if (!parse_body(P, &at->body, ends, &which)) return NULL;
            if (!strcmp(which, "elif")) {
                jnode *e = node(P, N_IF, cur(P));
                if (!e || !(e->a = parse_tuple(P, true)) || !end_block(P) || !push(P, &at->orelse, e)) return NULL;
                at = e;
                continue;
            }
            if (!strcmp(which, "else")) {
                static const char *const ends2[] = {"endif", NULL};
                if (!end_block(P) || !parse_body(P, &at->orelse, ends2, &which)) return NULL;
            }
            break;
        }
        return end_block(P) ? n : NULL;
    }
    if (!strcmp(nm, "for")) {
        n = node(P, N_FOR, t);
        if (!n || !(n->b = parse_target(P, false))) return NULL;
        if (!is_name(P, "in")) { perr(P, cur(P), "expected 'in', got %s", tok_desc(cur(P))); return NULL; }
        next(P);
        if (!(n->a = parse_tuple(P, false))) return NULL;
        if (is_name(P, "if")) {
            next(P);
            if (!(n->c = parse_expr(P, true))) return NULL;
        }
        if (is_name(P, "recursive")) { perr(P, cur(P), "recursive for-loops are not supported"); return NULL; }
        static const char *const ends[] = {"else", "endfor", NULL};
        if (!end_block(P) || !parse_body(P, &n->body, ends, &which)) return NULL;
        if (!strcmp(which, "else")) {
            static const char *const ends2[] = {"endfor", NULL};
            if (!end_block(P) || !parse_body(P, &n->orelse, ends2, &which)) return NULL;
        }
        return end_block(P) ? n : NULL;
    }
    if (!strcmp(nm, "set")) {
        jnode *target = parse_target(P, true);
        if (!target) return NULL;
        if (is_op(P, "=")) {
            next(P);
            n = node(P, N_SET, t);
            if (!n || !(n->b = parse_tuple(P, true)) || !end_block(P)) return NULL;
            n->a = target;
            return n;
        }
        n = node(P, N_SETBLOCK, t);
        if (!n) return NULL;
        n->a = target;
        if (target->k != E_NAME) { perr(P, t, "a block set assigns one name"); return NULL; }
        /* {% set x | filter %} ... {% endset %} */
        jnode *chain = NULL;
        while (is_op(P, "|")) {
            next(P);
            if (!(chain = parse_filter(P, chain, true))) return NULL;
        }
        n->c = chain;
        static const char *const ends[] = {"endset", NULL};
        if (!end_block(P) || !parse_body(P, &n->body, ends, &which) || !end_block(P)) return NULL;
        return n;
    }
    if (!strcmp(nm, "macro")) {
        n = node(P, N_MACRO, t);
        const jtok *mn = cur(P);
        if (!n) return NULL;
        if (mn->k != TK_NAME) { perr(P, mn, "expected a macro name, got %s", tok_desc(mn)); return NULL; }
        next(P);
        n->name = mn->p;
        static const char *const ends[] = {"endmacro", NULL};
        if (!parse_params(P, n) || !end_block(P) || !parse_body(P, &n->body, ends, &which)) return NULL;
        if (cur(P)->k == TK_NAME) next(P); /* {% endmacro name %} */
        return end_block(P) ? n : NULL;
    }
    if (!strcmp(nm, "call")) {
        n = node(P, N_CALLBLOCK, t);
        if (!n) return NULL;
        if (is_op(P, "(") && !parse_params(P, n)) return NULL;
        if (!(n->a = parse_expr(P, true))) return NULL;
        if (n->a->k != E_CALL) { perr(P, t, "expected a call after 'call'"); return NULL; }
        static const char *const ends[] = {"endcall", NULL};
        if (!end_block(P) || !parse_body(P, &n->body, ends, &which) || !end_block(P)) return NULL;
        return n;
    }
    if (!strcmp(nm, "filter")) {
        n = node(P, N_FILTERBLOCK, t);
        if (!n) return NULL;
        jnode *chain = NULL;
        do {
            if (chain) next(P);
            if (!(chain = parse_filter(P, chain, true))) return NULL;
        } while (is_op(P, "|"));
        n->a = chain;
        static const char *const ends[] = {"endfilter", NULL};
        if (!end_block(P) || !parse_body(P, &n->body, ends, &which) || !end_block(P)) return NULL;
        return n;
    }
    if (!strcmp(nm, "break") || !strcmp(nm, "continue")) {
        n = node(P, nm[0] == 'b' ? N_BREAK : N_CONTINUE, t);
        return n && end_block(P) ? n : NULL;
    }
    if (!strcmp(nm, "generation")) {
        /* transformers' AssistantTracker: marks the assistant's text; renders as its body */
        n = node(P, N_BODY, t);
        static const char *const ends[] = {"endgeneration", NULL};
        if (!n || !end_block(P) || !parse_body(P, &n->body, ends, &which) || !end_block(P)) return NULL;
        return n;
    }
    if (!strcmp(nm, "with")) {
        n = node(P, N_WITH, t);
        if (!n) return NULL;
        while (cur(P)->k != TK_BLOCK_END) {
            if (n->n_kwnames && !expect_op(P, ",")) return NULL;
            const jtok *v = cur(P);
            if (v->k != TK_NAME) { perr(P, v, "expected a name, got %s", tok_desc(v)); return NULL; }
            next(P);
            jnode *e;
            if (!expect_op(P, "=") || !(e = parse_expr(P, true)) || !push_name(P, n, v->p) || !push(P, &n->args, e))
                return NULL;
        }
        static const char *const ends[] = {"endwith", NULL};
        if (!end_block(P) || !parse_body(P, &n->body, ends, &which) || !end_block(P)) return NULL;
        return n;
    }
    perr(P, t, "unknown tag '%s'", nm);
    return NULL;
}

/* Statements and data up to a tag named in ends (NULL: up to the end of
 * the template); *which gets that tag's name, the parser sits after it. */
static bool parse_body(parser *P, jnode_list *out, const char *const *ends, const char **which)
{
    if (!enter(P)) return false;
    for (;;) {
        const jtok *t = cur(P);
        if (t->k == TK_EOF) {
            if (ends) return perr(P, t, "unexpected end of template: expected '%s'", ends[n_ends_last(ends)]);
            break;
        }
        if (t->k == TK_DATA) {
            jnode *d = node(P, N_DATA, t);
            jstr *s = jj_alloc(P->a, sizeof *s);
            if (!d || !s) return perr(P, t, "out of memory");
            s->p = t->p;
            s->n = t->n;
            d->lit.k = JV_STR;
            d->lit.u.s = s;
            if (!push(P, out, d)) return false;
            next(P);
        } else if (t->k == TK_VAR_BEGIN) {
            next(P);
            jnode *o = node(P, N_OUTPUT, t);
            if (!o || !(o->a = parse_tuple(P, true)) || !expect_k(P, TK_VAR_END, "'}}'") || !push(P, out, o)) return false;
        } else if (t->k == TK_BLOCK_BEGIN) {
            next(P);
            const jtok *nm = cur(P);
            if (nm->k == TK_NAME && ends) {
                for (size_t k = 0; ends[k]; k++)
                    if (!strcmp(nm->p, ends[k])) {
                        next(P);
                        *which = ends[k];
                        P->depth--;
                        return true;
                    }
            }
            if (nm->k == TK_NAME && (!strncmp(nm->p, "end", 3) || !strcmp(nm->p, "else") || !strcmp(nm->p, "elif")))
                return perr(P, nm, "unexpected '%s'%s%s%s", nm->p, ends ? " (expected '" : "",
                            ends ? ends[n_ends_last(ends)] : "", ends ? "')" : "");
            jnode *s = parse_stmt(P);
            if (!s || !push(P, out, s)) return false;
        } else {
            return perr(P, t, "unexpected %s", tok_desc(t));
        }
    }
    P->depth--;
    return true;
}

/* jinja2 fails at compile time on a filter or test it does not have,
 * except inside an if-statement or a conditional expression (a "soft"
 * frame), where only reaching it fails; loop, macro and block bodies are
 * frames of their own and not soft. */
static bool check_unknown(parser *P, const jnode *n, bool soft);

static bool check_list(parser *P, const jnode_list *l, bool soft)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i] && !check_unknown(P, l->v[i], soft)) return false;
    return true;
}

static bool check_unknown(parser *P, const jnode *n, bool soft)
{
    if (!n) return true;
    if (++P->depth > P->max_depth * 4) return perr(P, &(jtok){.line = n->line, .col = n->col}, "nested too deeply");
    bool ok;
    if (n->unknown && !soft)
        ok = perr(P, &(jtok){.line = n->line, .col = n->col}, "no %s named '%s'", n->k == E_FILTER ? "filter" : "test", n->name);
    else if (n->k == N_IF || n->k == E_COND)
        ok = check_unknown(P, n->a, true) && check_unknown(P, n->b, true) && check_unknown(P, n->c, true) &&
             check_list(P, &n->body, true) && check_list(P, &n->orelse, true);
    else if (n->k == N_FOR)
        ok = check_unknown(P, n->a, soft) && check_unknown(P, n->c, false) && check_list(P, &n->body, false) &&
             check_list(P, &n->orelse, false);
    else if (n->k == N_MACRO || n->k == N_SETBLOCK || n->k == N_FILTERBLOCK || n->k == N_CALLBLOCK || n->k == N_WITH)
        ok = check_unknown(P, n->a, soft) && check_unknown(P, n->c, soft) && check_list(P, &n->args, soft) &&
             check_list(P, &n->body, false);
    else
        ok = check_unknown(P, n->a, soft) && check_unknown(P, n->b, soft) && check_unknown(P, n->c, soft) &&
             check_list(P, &n->args, soft) && check_list(P, &n->kwargs, soft) && check_list(P, &n->body, soft) &&
             check_list(P, &n->orelse, soft);
    P->depth--;
    return ok;
}

bool jj_parse_tokens(jj_arena *a, const jtok *toks, size_t n, int max_depth, jnode_list *body, char *err, size_t errlen)
{
    parser P = {.a = a, .t = toks, .n = n, .max_depth = max_depth, .err = err, .errlen = errlen};
    const char *which;
    return parse_body(&P, body, NULL, &which) && check_list(&P, body, false);
}
