/*
 * jinja_builtins.h: what the builtins' files (jinja_builtins.c: filters
 * and tests; jinja_methods.c: Python's str/list/dict methods and the
 * globals; jinja_strings.c: the string operations both use) share.
 * Internal to engine/template.
 */
#ifndef VKI_JINJA_BUILTINS_H
#define VKI_JINJA_BUILTINS_H

#include "jinja_impl.h"

/* A call's arguments: positional, then keyword names and values. */
typedef struct fargs {
    const jv    *pos;
    size_t       n;
    const char **kwn;
    const jv    *kwv;
    size_t       n_kw;
} fargs;

/* argument `name` at position i (i < 0: keyword only); NULL when not given */
static inline const jv *jj_arg(const fargs *a, int i, const char *name)
{
    if (i >= 0 && (size_t)i < a->n) return &a->pos[i];
    for (size_t k = 0; k < a->n_kw; k++)
        if (!strcmp(a->kwn[k], name)) return &a->kwv[k];
    return NULL;
}

/* v as a string, else an error naming `what` */
bool jj_need_str(jctx *x, jv v, const char *what, const jstr **s);
/* v as an integer (def when absent or None), else an error naming `what` */
bool jj_get_int(jctx *x, const jv *v, int64_t def, const char *what, int64_t *out);
/* Marks a list as the lazy kind jinja2 returns (a generator, map, ...). */
jv jj_lazy(jv l, jlist_kind k);

/* ----- Python str operations (jinja_strings.c); case mapping is ASCII only ----- */
typedef enum { CASE_UPPER, CASE_LOWER, CASE_TITLE, CASE_CAPITALIZE, CASE_PYTITLE } case_op;
jv   jj_change_case(jctx *x, const jstr *s, case_op op);
/* chars NULL strips whitespace; which: 1 left, 2 right, 3 both */
jv   jj_strip(jctx *x, const jstr *s, const jstr *chars, int which);
jv   jj_replace(jctx *x, const jstr *s, const jstr *old, const jstr *new, int64_t count);
bool jj_split(jctx *x, const jstr *s, const jstr *sep, int64_t maxsplit, jv *out);
bool jj_splitlines(jctx *x, const jstr *s, jlist **out);

#endif
