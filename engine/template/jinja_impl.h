/*
 * jinja_impl.h: what the Jinja interpreter's files share: the arena, values,
 * tokens, the syntax tree and the evaluator's state. Not for use outside
 * engine/template/.
 */
#ifndef VKI_JINJA_IMPL_H
#define VKI_JINJA_IMPL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jinja.h"

/* ----- arena: everything of one parse or one rendering, freed at once ----- */
typedef struct jj_chunk jj_chunk;
typedef struct jj_arena {
    jj_chunk *head;
    size_t    used, limit; /* bytes handed out; 0 = no limit */
    bool      over;        /* an allocation failed or passed limit */
} jj_arena;

void *jj_alloc(jj_arena *a, size_t n); /* zeroed; NULL on failure */
void  jj_arena_free(jj_arena *a);
char *jj_strndup(jj_arena *a, const char *s, size_t n);

/* ----- values ----- */
typedef enum jv_kind {
    JV_UNDEF, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST, JV_DICT, JV_NS, JV_FUNC,
} jv_kind;

/* A string, immutable once made. mask[i] != 0: byte i came from message
 * content; mask NULL: no byte did. */
typedef struct jstr {
    const char    *p;
    size_t         n;
    const uint8_t *mask;
    bool           markup; /* markupsafe's Markup (|safe, |escape): `+` escapes plain strings */
} jstr;

typedef struct jv jv;
typedef struct jlist jlist;
typedef struct jdict jdict;
typedef struct jfunc jfunc;

struct jv {
    uint8_t k; /* jv_kind */
    union {
        bool        b;
        int64_t     i;
        double      f;
        jstr       *s;
        jlist      *l;
        jdict      *d; /* JV_DICT and JV_NS */
        jfunc      *fn;
        const char *undef; /* JV_UNDEF: what is missing, for the error */
    } u;
};

/* Python's lazy results as jinja2 has them: a generator (map, select, ...)
 * is always true, has no len() and no JSON form; a dict view (items(),
 * keys(), values()) has a len() but no JSON form either. */
typedef enum { JL_LIST, JL_GENERATOR, JL_ITERATOR, JL_ITEMS, JL_KEYS, JL_VALUES } jlist_kind;

struct jlist {
    jv    *v;
    size_t n, cap;
    bool   tuple;
    uint8_t lazy; /* jlist_kind */
};

/* insertion-ordered; keys compared by value */
struct jdict {
    jv    *k, *v;
    size_t n, cap;
};

struct jnode;
typedef enum jfunc_kind { JF_MACRO, JF_METHOD, JF_GLOBAL, JF_CYCLE, JF_CALLER } jfunc_kind;
struct jfunc {
    jfunc_kind          kind;
    const char         *name; /* method / global name */
    jv                  self; /* bound object (method), items (cycle) */
    const struct jnode *node; /* macro or call block */
    struct jframe      *closure;
};

static inline jv jv_undef(const char *why) { jv v = {.k = JV_UNDEF}; v.u.undef = why; return v; }
static inline jv jv_none(void) { jv v = {.k = JV_NONE}; return v; }
static inline jv jv_bool(bool b) { jv v = {.k = JV_BOOL}; v.u.b = b; return v; }
static inline jv jv_int(int64_t i) { jv v = {.k = JV_INT}; v.u.i = i; return v; }
static inline jv jv_float(double f) { jv v = {.k = JV_FLOAT}; v.u.f = f; return v; }

/* ----- output / string builder (text and its content mask) ----- */
typedef struct jbuf {
    char    *p;
    uint8_t *mask; /* allocated on the first content byte */
    size_t   n, cap;
    size_t   limit; /* 0 = none */
    bool     oom, over;
} jbuf;

void jbuf_put(jbuf *b, const char *s, size_t n, bool content);
void jbuf_puts(jbuf *b, const char *s);
/* bytes of s from..from+n with their mask */
void jbuf_put_str(jbuf *b, const jstr *s, size_t from, size_t n);
void jbuf_free(jbuf *b);

/* ----- tokens and syntax tree ----- */
typedef enum jtok_kind {
    TK_EOF, TK_DATA, TK_VAR_BEGIN, TK_VAR_END, TK_BLOCK_BEGIN, TK_BLOCK_END,
    TK_NAME, TK_STRING, TK_INT, TK_FLOAT, TK_OP,
} jtok_kind;

typedef struct jtok {
    jtok_kind   k;
    int         line, col;
    const char *p; /* DATA, NAME, STRING (unescaped), OP text; NUL-terminated */
    size_t      n;
    int64_t     i;
    double      f;
} jtok;

typedef enum jnode_kind {
    /* statements */
    N_DATA, N_OUTPUT, N_IF, N_FOR, N_SET, N_SETBLOCK, N_MACRO, N_CALLBLOCK, N_FILTERBLOCK, N_BREAK,
    N_CONTINUE, N_BODY, N_WITH,
    /* expressions */
    E_LIT, E_NAME, E_GETATTR, E_GETITEM, E_SLICE, E_CALL, E_FILTER, E_TEST, E_NOT, E_NEG, E_POS, E_BIN,
    E_AND, E_OR, E_CMP, E_COND, E_LIST, E_TUPLE, E_DICT,
} jnode_kind;

typedef struct jnode_list {
    struct jnode **v;
    size_t         n, cap;
} jnode_list;

typedef struct jnode {
    jnode_kind   k;
    int          line, col;
    int          op;      /* E_BIN operator, E_TEST negated, N_FOR has-filter */
    const char  *name;    /* names, attributes, filters, tests, macros */
    jv           lit;     /* E_LIT */
    struct jnode *a, *b, *c;
    jnode_list          args;    /* call/filter args, list items, dict keys, E_CMP operands, macro defaults */
    jnode_list          kwargs;  /* keyword argument values, dict values */
    const char **kwnames; /* names of kwargs; macro parameters; for targets */
    size_t       n_kwnames;
    int         *ops;     /* E_CMP operators */
    jnode_list          body, orelse;
    bool         unknown; /* a filter or test jinja2 does not have: an error unless only reached conditionally */
} jnode;

struct jinja_template {
    jj_arena    arena;
    jnode_list         body;
    const char *where;
};

/* comparison operators (E_CMP) and binary operators (E_BIN) */
enum { OP_EQ = 1, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN };
enum { OP_ADD = 1, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_CONCAT };

/* lexes the whole template; *err gets "LINE:COL: what" */
bool jj_lex(jj_arena *a, const char *src, size_t n, jtok **toks, size_t *n_toks, char *err, size_t errlen);
bool jj_parse_tokens(jj_arena *a, const jtok *toks, size_t n, int max_depth, jnode_list *body, char *err, size_t errlen);
bool jj_is_filter(const char *name);
bool jj_is_test(const char *name);

/* ----- evaluator state ----- */
typedef struct jframe {
    struct jframe *parent;
    jdict          vars;
} jframe;

typedef struct jctx {
    jj_arena          *arena;
    const jinja_limits *lim;
    const char        *where;
    uint64_t           steps;
    int                depth;
    bool               failed;
    vki_status         status;
    char               err[1024];
    jframe            *globals;
    int                line, col; /* of the node being evaluated */
} jctx;

bool jj_error(jctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* out of memory, or the memory limit */
bool jj_oom(jctx *x);

/* values (jinja_value.c) */
jv    jv_str(jctx *x, const char *p, size_t n, const uint8_t *mask);
jv    jv_cstr(jctx *x, const char *s);
jv    jv_str_from_buf(jctx *x, jbuf *b); /* takes the bytes (copies into the arena) */
jv    jv_list(jctx *x, size_t cap);
jv    jv_dict(jctx *x, size_t cap);
bool  jl_push(jctx *x, jlist *l, jv v);
bool  jd_set(jctx *x, jdict *d, jv k, jv v);
jv   *jd_get(const jdict *d, jv k);
jv   *jd_gets(const jdict *d, const char *k);
bool  jv_truthy(jv v);
bool  jv_eq(jv a, jv b);
/* -1/0/1; false when the two cannot be ordered (jinja2 raises) */
bool  jv_cmp(jctx *x, jv a, jv b, int *r);
const char *jv_type_name(jv v);
/* str(v) / repr(v) into b, as Python writes them */
bool  jv_to_str(jctx *x, jv v, jbuf *b);
bool  jv_repr(jctx *x, jv v, jbuf *b);
/* str(v) as a value: strings keep their mask */
jv    jv_as_str(jctx *x, jv v);
bool  jv_to_json(jctx *x, jv v, jbuf *b, int indent, int depth, const char *item_sep, const char *key_sep,
                 bool sort_keys, bool ensure_ascii);
jv    jv_from_json(jctx *x, const cJSON *j, bool content);
void  jj_fmt_double(double d, char *out, size_t n);
bool  jv_is_int_like(jv v); /* int or bool */
bool  jv_is_number(jv v);
double jv_num(jv v);

/* utf-8 helpers */
size_t jj_u8_len(const char *p, size_t n);            /* code points */
size_t jj_u8_offset(const char *p, size_t n, size_t cp); /* byte offset of code point cp (n if past) */
bool   jj_is_space_at(const char *p, size_t n, size_t i, size_t *len); /* Python str.isspace for the char at i */

/* builtins (jinja_builtins.c, jinja_methods.c) */
bool jj_filter(jctx *x, const char *name, jv in, const jv *args, size_t n_args, const char **kwn, const jv *kwv,
               size_t n_kw, jv *out);
bool jj_test(jctx *x, const char *name, jv in, const jv *args, size_t n_args, bool *out);
bool jj_method(jctx *x, jv self, const char *name, const jv *args, size_t n_args, const char **kwn, const jv *kwv,
               size_t n_kw, jv *out);
bool jj_has_method(jv self, const char *name);
bool jj_global(jctx *x, const char *name, const jv *args, size_t n_args, const char **kwn, const jv *kwv, size_t n_kw,
               jv *out);
/* iterate: a list of items (dict: keys; string: characters) */
bool jj_iter(jctx *x, jv v, jlist **out);
jv   jj_substr(jctx *x, const jstr *s, size_t from, size_t n);
jv   jj_html_escape(jctx *x, jv v);
/* Python's "fmt % args" (args a tuple or one value) */
bool jj_percent_format(jctx *x, const jstr *fmt, jv args, jv *out); /* markupsafe.escape: Markup stays as it is */
const char *jl_kind_name(const jlist *l);

#endif
