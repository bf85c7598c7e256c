/*
 * json_schema.c: JSON Schema -> grammar text (gbnf.c's syntax). Each schema
 * becomes one rule; $ref targets are rules too, so recursive schemas stay
 * finite. What a keyword cannot be enforced by a grammar is refused by name
 * and place, never ignored. The language is a subset of the valid JSON
 * texts: where the schema allows more than we generate (additional
 * properties when properties are listed, key order, whitespace) we generate
 * less, never more. See README.md for the table.
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "engine/grammar/grammar.h"
#include "error.h"

#define WS_MAX        20    /* whitespace bytes between two tokens of JSON          */
#define INT_DIGITS    16    /* integer part digits; keeps integers within 2^53      */
#define FRAC_DIGITS   16
#define MAX_LENGTH    10000 /* largest maxLength / maxItems a grammar spells out    */
#define MAX_DEPTH     64    /* nesting of schemas (not of the JSON: $ref recursion is fine) */

/* ===== Text buffer ======================================================= */

typedef struct sb { char *p; size_t n, cap; bool oom; } sb;

static void sb_addn(sb *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) { b->oom = true; return; }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_add(sb *b, const char *s) { sb_addn(b, s, strlen(s)); }

static void sb_addf(sb *b, const char *fmt, ...) VKI_PRINTF(2, 3);
static void sb_addf(sb *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) { sb_addn(b, tmp, (size_t)n); return; }
    char *big = malloc((size_t)n + 1);
    if (!big) { b->oom = true; return; }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_addn(b, big, (size_t)n);
    free(big);
}

/* A grammar literal spelling bytes s[0..n) exactly. */
static void sb_lit(sb *b, const char *s, size_t n)
{
    sb_add(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') { char e[3] = {'\\', (char)c, 0}; sb_add(b, e); }
        else if (c < 0x20 || c == 0x7F) sb_addf(b, "\\x%02X", c);
        else sb_addn(b, (const char *)&c, 1);
    }
    sb_add(b, "\"");
}

/* ===== Compiler state ==================================================== */

typedef struct ref_ent { char *ref; char name[48]; } ref_ent;

typedef struct jsc {
    sb          out;        /* rules so far                                  */
    sb          unsup;      /* "kw (at path), ..." for the refusal            */
    int         n_unsup;
    vki_status  st;         /* first hard error (malformed schema)           */
    const cJSON *root;
    ref_ent    *refs;
    int         n_refs, cap_refs, n_rules, depth;
    bool        need_value, need_string, need_int, need_number, need_chars;
} jsc;

static void unsupported(jsc *c, const char *what, const char *path)
{
    if (c->n_unsup++ < 16) sb_addf(&c->unsup, "%s%s (at %s)", c->n_unsup > 1 ? ", " : "", what, path);
}

static bool bad(jsc *c, const char *path, const char *what)
{
    if (c->st == VKI_OK) c->st = vki_fail(VKI_ERR_INVALID_ARGUMENT, "json_schema: %s: %s", path, what);
    return false;
}

/* A fresh rule name; hint (a property name, a $defs key) makes it readable. */
static void rule_name(jsc *c, const char *hint, char name[48])
{
    int n = snprintf(name, 48, "s%d", c->n_rules++);
    if (hint && *hint && n < 24) {
        name[n++] = '-';
        for (const char *h = hint; *h && n < 32; h++)
            name[n++] = isalnum((unsigned char)*h) ? *h : '-';
        name[n] = '\0';
    }
}

static void path_push(char *dst, size_t cap, const char *path, const char *a, const char *b)
{
    snprintf(dst, cap, "%s/%s%s%s", path, a, b ? "/" : "", b ? b : "");
}

/* ===== Common rules ====================================================== */

static void common_rules(jsc *c)
{
    sb *o = &c->out;
    sb_addf(o, "ws ::= [ \\t\\n]{0,%d}\n", WS_MAX);
    if (c->need_value) {
        c->need_string = c->need_number = true;
        sb_add(o, "json-value ::= json-object | json-array | json-string | json-number | \"true\" | \"false\" | "
                  "\"null\"\n"
                  "json-object ::= \"{\" ws ( json-member ( ws \",\" ws json-member )* ws )? \"}\"\n"
                  "json-member ::= json-string ws \":\" ws json-value\n"
                  "json-array ::= \"[\" ws ( json-value ( ws \",\" ws json-value )* ws )? \"]\"\n");
    }
    if (c->need_string) {
        c->need_chars = true;
        sb_add(o, "json-string ::= \"\\\"\" json-char* \"\\\"\"\n");
    }
    if (c->need_chars)
        /* \u escapes of surrogates are left out: a pair decodes to one
         * character, which would break the character counts of min/maxLength */
        sb_add(o, "json-char ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" ( [0-9a-cA-CeEfF] "
                  "[0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2} ) )\n");
    if (c->need_number) {
        c->need_int = true;
        sb_addf(o, "json-number ::= json-int ( \".\" [0-9]{1,%d} )? ( [eE] [-+]? [0-9]{1,2} )?\n", FRAC_DIGITS);
    }
    if (c->need_int) sb_addf(o, "json-int ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,%d} )\n", INT_DIGITS - 1);
}

/* ===== Integers in a range =============================================== */

/* Decimal strings x, y of equal length, x <= y: every number between. */
static void digits_range(sb *e, const char *x, const char *y, size_t len)
{
    size_t p = 0;
    while (p < len && x[p] == y[p]) p++;
    if (p) sb_lit(e, x, p);
    if (p == len) return;
    x += p;
    y += p;
    len -= p;
    size_t rest = len - 1;
    bool x_zeros = true, y_nines = true;
    for (size_t i = 1; i < len; i++) {
        x_zeros &= x[i] == '0';
        y_nines &= y[i] == '9';
    }
    sb_add(e, " ( ");
    char lo = x_zeros ? x[0] : (char)(x[0] + 1), hi = y_nines ? y[0] : (char)(y[0] - 1);
    bool first = true;
    if (!x_zeros) {
        char nines[32];
        memset(nines, '9', rest);
        sb_addf(e, "\"%c\"", x[0]);
        digits_range(e, x + 1, nines, rest);
        first = false;
    }
    if (lo <= hi) {
        sb_addf(e, "%s[%c-%c]", first ? "" : " | ", lo, hi);
        if (rest) sb_addf(e, " [0-9]{%zu}", rest);
        first = false;
    }
    if (!y_nines) {
        char zeros[32];
        memset(zeros, '0', rest);
        sb_addf(e, "%s\"%c\"", first ? "" : " | ", y[0]);
        digits_range(e, zeros, y + 1, rest);
    }
    sb_add(e, " )");
}

/* Alternatives (joined by " | ") for the non-negative integers a..b. */
static void pos_range(sb *e, uint64_t a, uint64_t b, bool *first)
{
    uint64_t p10 = 1;
    for (int d = 1; d <= 19 && a <= b; d++, p10 *= 10) {
        uint64_t lo = d == 1 ? 0 : p10, hi = p10 * 10 - 1;
        if (hi < a) continue;
        if (lo < a) lo = a;
        if (hi > b) hi = b;
        if (lo > hi) continue;
        char xs[24], ys[24];
        snprintf(xs, sizeof xs, "%llu", (unsigned long long)lo);
        snprintf(ys, sizeof ys, "%llu", (unsigned long long)hi);
        sb_add(e, *first ? "( " : " | ( ");
        digits_range(e, xs, ys, strlen(xs));
        sb_add(e, " )");
        *first = false;
        if (hi == b) break;
    }
}

static void int_range(sb *e, int64_t lo, int64_t hi)
{
    bool first = true;
    sb_add(e, "( ");
    if (lo < 0) {
        sb_add(e, "\"-\" ( ");
        bool f2 = true;
        pos_range(e, hi < 0 ? (uint64_t)-hi : 1, (uint64_t)-lo, &f2);
        sb_add(e, " )");
        first = false;
    }
    if (hi >= 0) {
        if (!first) sb_add(e, " | ");
        bool f2 = true;
        pos_range(e, lo > 0 ? (uint64_t)lo : 0, (uint64_t)hi, &f2);
    }
    sb_add(e, " )");
}

/* ===== Schemas =========================================================== */

static bool gen(jsc *c, const cJSON *s, const char *path, const char *hint, char name[48]);

static const char *const annotations[] = {
    "title", "description", "$schema", "$id", "$comment", "default", "examples", "deprecated", "readOnly",
    "writeOnly", "$defs", "definitions", NULL};
static const char *const supported[] = {
    "type", "properties", "required", "additionalProperties", "items", "prefixItems", "enum", "const", "anyOf",
    "oneOf", "allOf", "minLength", "maxLength", "format", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "minItems", "maxItems", "$ref", NULL};

static bool in_list(const char *k, const char *const *l)
{
    for (; *l; l++)
        if (!strcmp(k, *l)) return true;
    return false;
}

/* Keywords that constrain something, other than those listed in `allowed`. */
static int count_other(const cJSON *s, const char *const *allowed)
{
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, s) if (!in_list(it->string, annotations) && !in_list(it->string, allowed)) n++;
    return n;
}

static bool get_count(jsc *c, const cJSON *s, const char *kw, const char *path, long *v)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(s, kw);
    if (!j) return true;
    if (!cJSON_IsNumber(j) || j->valuedouble < 0 || j->valuedouble != floor(j->valuedouble))
        return bad(c, path, "expected a non-negative integer");
    if (j->valuedouble > MAX_LENGTH) {
        char w[64];
        snprintf(w, sizeof w, "%s over %d", kw, MAX_LENGTH);
        unsupported(c, w, path);
        *v = MAX_LENGTH;
        return true;
    }
    *v = (long)j->valuedouble;
    return true;
}

/* A JSON literal (enum / const member) as grammar text. */
static bool literal(jsc *c, sb *e, const cJSON *v)
{
    char *t = cJSON_PrintUnformatted(v);
    if (!t) { c->out.oom = true; return false; }
    sb_lit(e, t, strlen(t));
    free(t);
    return true;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Rule `name` for exactly the texts v[lo..hi) (sorted, distinct) from byte d
 * on, as a trie: one alternative per next byte, so an enum of many values
 * keeps one parse alive instead of one per value. */
static void lit_trie(jsc *c, char **v, int lo, int hi, size_t d, const char *name)
{
    sb r = {0};
    sb_addf(&r, "%s ::= ", name);
    for (int i = lo, first = 1; i < hi; first = 0) {
        if (!first) sb_add(&r, " | ");
        if (!v[i][d]) { sb_add(&r, "\"\""); i++; continue; }
        int j = i + 1;
        while (j < hi && v[j][d] == v[i][d]) j++;
        size_t k = d + 1;
        for (bool same = true; same && v[i][k]; k += same) {
            for (int x = i + 1; x < j && same; x++) same = v[x][k] == v[i][k];
            if (!same) break;
        }
        sb_lit(&r, v[i] + d, k - d);
        if (j - i > 1 || v[i][k]) {
            char child[48];
            rule_name(c, "enum", child);
            sb_addf(&r, " %s", child);
            lit_trie(c, v, i, j, k, child);
        }
        i = j;
    }
    sb_add(&r, "\n");
    sb_add(&c->out, r.p ? r.p : "");
    if (r.oom) c->out.oom = true;
    free(r.p);
}

static bool gen_string(jsc *c, sb *e, const cJSON *s, const char *path)
{
    long mn = 0, mx = -1;
    if (!get_count(c, s, "minLength", path, &mn) || !get_count(c, s, "maxLength", path, &mx)) return false;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(s, "format");
    if (fmt) {
        if (!cJSON_IsString(fmt)) return bad(c, path, "format: expected a string");
        const char *f = fmt->valuestring;
        static const char *const date = "[0-9]{4} \"-\" ( ( \"0\" [13578] | \"1\" [02] ) \"-\" ( \"0\" [1-9] | "
                                        "[12] [0-9] | \"3\" [01] ) | ( \"0\" [469] | \"11\" ) \"-\" ( \"0\" [1-9] "
                                        "| [12] [0-9] | \"30\" ) | \"02-\" ( \"0\" [1-9] | \"1\" [0-9] | \"2\" "
                                        "[0-8] ) )";
        static const char *const time = "( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" "
                                        "[0-9]{1,6} )? ( \"Z\" | [+-] ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] "
                                        "[0-9] )";
        if (cJSON_GetObjectItemCaseSensitive(s, "minLength") || cJSON_GetObjectItemCaseSensitive(s, "maxLength"))
            unsupported(c, "minLength/maxLength with format", path);
        if (!strcmp(f, "date")) sb_addf(e, "\"\\\"\" %s \"\\\"\"", date);
        else if (!strcmp(f, "time")) sb_addf(e, "\"\\\"\" %s \"\\\"\"", time);
        else if (!strcmp(f, "date-time")) sb_addf(e, "\"\\\"\" %s \"T\" %s \"\\\"\"", date, time);
        else if (!strcmp(f, "uuid"))
            sb_add(e, "\"\\\"\" [0-9a-f]{8} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{4} \"-\" "
                      "[0-9a-f]{12} \"\\\"\"");
        else {
            char w[96];
            snprintf(w, sizeof w, "format \"%.40s\" (date, time, date-time and uuid are)", f);
            unsupported(c, w, path);
        }
        return true;
    }
    if (mx >= 0 && mx < mn) return bad(c, path, "maxLength < minLength");
    c->need_chars = true;
    if (!mn && mx < 0) {
        c->need_string = true;
        sb_add(e, "json-string");
    } else if (mx < 0) {
        sb_addf(e, "\"\\\"\" json-char{%ld,} \"\\\"\"", mn);
    } else {
        sb_addf(e, "\"\\\"\" json-char{%ld,%ld} \"\\\"\"", mn, mx);
    }
    return true;
}

/* The integer bounds of an integer schema; false after a refusal/error. */
static bool int_bounds(jsc *c, const cJSON *s, const char *path, bool *any, int64_t *lo, int64_t *hi)
{
    const double lim = 9999999999999999.0; /* INT_DIGITS nines */
    double l = -lim, h = lim;
    static const char *const kws[] = {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"};
    *any = false;
    for (int k = 0; k < 4; k++) {
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(s, kws[k]);
        if (!j) continue;
        if (cJSON_IsBool(j)) { unsupported(c, "boolean exclusiveMinimum/exclusiveMaximum (draft 4)", path); continue; }
        if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble)) return bad(c, path, "expected a number bound");
        double v = j->valuedouble;
        *any = true;
        if (k == 0) l = fmax(l, ceil(v));
        else if (k == 1) l = fmax(l, floor(v) + 1);
        else if (k == 2) h = fmin(h, floor(v));
        else h = fmin(h, ceil(v) - 1);
    }
    if (l > h) return bad(c, path, "no integer lies within the bounds (or they are beyond 16 digits)");
    *lo = (int64_t)l;
    *hi = (int64_t)h;
    return true;
}

static bool gen_object(jsc *c, sb *e, const cJSON *s, const char *path)
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required");
    const cJSON *addl = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
    char sub[512];
    if (props && !cJSON_IsObject(props)) return bad(c, path, "properties: expected an object");
    if (req && !cJSON_IsArray(req)) return bad(c, path, "required: expected an array");
    int np = props ? cJSON_GetArraySize(props) : 0;
    /* Extra members: allowed by a schema or `true`; when absent they are
     * generated only if no properties are listed (then the object is free
     * form); listing properties without additionalProperties gives those
     * only, a subset of what the schema allows. */
    bool extra = addl ? !cJSON_IsFalse(addl) : np == 0;
    char extra_val[48] = "json-value";
    if (addl && cJSON_IsObject(addl)) {
        path_push(sub, sizeof sub, path, "additionalProperties", NULL);
        if (!gen(c, addl, sub, "extra", extra_val)) return false;
    } else if (addl && !cJSON_IsBool(addl)) {
        return bad(c, path, "additionalProperties: expected a boolean or a schema");
    } else if (extra) {
        c->need_value = true;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, req) {
        if (!cJSON_IsString(it)) return bad(c, path, "required: expected strings");
        if (!cJSON_GetObjectItemCaseSensitive(props, it->valuestring) && !extra) {
            char w[160];
            snprintf(w, sizeof w, "required property \"%.64s\" is not in properties and no others are allowed",
                     it->valuestring);
            return bad(c, path, w);
        }
    }
    /* a required name that is not listed comes from the extra schema */
    char base[48];
    rule_name(c, "obj", base);
    int i = 0;
    char (*kv)[48] = calloc((size_t)np + 1, sizeof *kv);
    bool *is_req = calloc((size_t)np + 1, 1);
    if (!kv || !is_req) { free(kv); free(is_req); c->out.oom = true; return false; }
    cJSON_ArrayForEach(it, props) {
        char val[48];
        path_push(sub, sizeof sub, path, "properties", it->string);
        if (!gen(c, it, sub, it->string, val)) { free(kv); free(is_req); return false; }
        snprintf(kv[i], sizeof kv[i], "%.32s-kv%d", base, i);
        cJSON *key = cJSON_CreateString(it->string);
        if (!key) { free(kv); free(is_req); c->out.oom = true; return false; }
        sb_addf(&c->out, "%s ::= ", kv[i]);
        literal(c, &c->out, key);
        cJSON_Delete(key);
        sb_addf(&c->out, " ws \":\" ws %s\n", val);
        const cJSON *r;
        cJSON_ArrayForEach(r, req) if (cJSON_IsString(r) && !strcmp(r->valuestring, it->string)) is_req[i] = true;
        i++;
    }
    /* required names missing from properties take extra members: refuse
     * that mix (the grammar cannot make a free key be a given name) */
    cJSON_ArrayForEach(it, req) if (!cJSON_GetObjectItemCaseSensitive(props, it->valuestring))
        unsupported(c, "required name not listed in properties", path);
    if (extra) {
        /* keys of extra members: any string without escapes that is not a
         * listed name (a duplicate key would fail the listed schema) */
        c->need_chars = true;
        sb_addf(&c->out, "%s-xkv ::= \"\\\"\" %s-k0 ws \":\" ws %s\n", base, base, extra_val);
        sb_addf(&c->out, "%s-free ::= [^\"\\\\\\x00-\\x1F]* \"\\\"\"\n", base);
        /* k<q>: the rest of a key whose first characters are prefix q of
         * some listed names (a trie by code point): continue along a name,
         * leave the names with a character none continues with, or end
         * where no name ends */
        typedef struct pfx { const char *pre; size_t n; } pfx;
        int max_pf = 1;
        cJSON_ArrayForEach(it, props) max_pf += (int)strlen(it->string);
        pfx *pf = malloc(sizeof *pf * (size_t)max_pf);
        int npf = 0;
        if (!pf) { free(kv); free(is_req); c->out.oom = true; return false; }
        pf[npf++] = (pfx){"", 0};
        for (int q = 0; q < npf; q++) {
            sb excl = {0};
            bool terminal = false;
            sb_addf(&c->out, "%s-k%d ::= ", base, q);
            cJSON_ArrayForEach(it, props) {
                const char *nm = it->string;
                size_t ln = strlen(nm);
                if (ln < pf[q].n || memcmp(nm, pf[q].pre, pf[q].n)) continue;
                bool plain = true;
                for (size_t k = 0; k < ln; k++) plain &= nm[k] != '"' && nm[k] != '\\' && (unsigned char)nm[k] >= 0x20;
                if (!plain) continue; /* cannot equal a key spelt without escapes */
                if (ln == pf[q].n) { terminal = true; continue; }
                size_t cl = 1;
                while (pf[q].n + cl < ln && ((unsigned char)nm[pf[q].n + cl] & 0xC0) == 0x80) cl++;
                bool seen = false;
                for (int z = 0; z < npf && !seen; z++)
                    seen = pf[z].n == pf[q].n + cl && !memcmp(pf[z].pre, nm, pf[q].n + cl);
                if (seen || npf >= max_pf) continue;
                pf[npf] = (pfx){nm, pf[q].n + cl};
                sb_lit(&c->out, nm + pf[q].n, cl);
                sb_addf(&c->out, " %s-k%d | ", base, npf);
                npf++;
                const unsigned char *u = (const unsigned char *)nm + pf[q].n;
                uint32_t cp = cl == 1 ? u[0]
                            : cl == 2 ? (u[0] & 0x1Fu) << 6 | (u[1] & 0x3Fu)
                            : cl == 3 ? (u[0] & 0x0Fu) << 12 | (u[1] & 0x3Fu) << 6 | (u[2] & 0x3Fu)
                                      : (u[0] & 0x07u) << 18 | (u[1] & 0x3Fu) << 12 | (u[2] & 0x3Fu) << 6 | (u[3] & 0x3Fu);
                sb_addf(&excl, "\\U%08X", cp);
            }
            if (!terminal) sb_add(&c->out, "\"\\\"\" | ");
            sb_addf(&c->out, "[^\"\\\\\\x00-\\x1F%s] %s-free\n", excl.p ? excl.p : "", base);
            if (excl.oom) c->out.oom = true;
            free(excl.p);
        }
        free(pf);
    }
    /* t<i>-<c>: members i.. of the object, c = whether one came before */
    for (int k = np; k >= 0; k--)
        for (int cm = 0; cm < 2; cm++) {
            sb_addf(&c->out, "%s-t%d-%d ::= ", base, k, cm);
            const char *sep = cm ? "ws \",\" ws " : "";
            if (k == np) {
                if (extra) sb_addf(&c->out, "%s%s-xkv %s-t%d-1 | ", sep, base, base, np);
                sb_add(&c->out, cm ? "ws\n" : "\"\"\n");
            } else {
                sb_addf(&c->out, "%s%s %s-t%d-1", sep, kv[k], base, k + 1);
                if (!is_req[k]) sb_addf(&c->out, " | %s-t%d-%d", base, k + 1, cm);
                sb_add(&c->out, "\n");
            }
        }
    sb_addf(e, "\"{\" ws %s-t0-0 \"}\"", base);
    free(kv);
    free(is_req);
    return true;
}

static bool gen_array(jsc *c, sb *e, const cJSON *s, const char *path)
{
    long mn = 0, mx = -1;
    char sub[512];
    if (!get_count(c, s, "minItems", path, &mn) || !get_count(c, s, "maxItems", path, &mx)) return false;
    if (mx >= 0 && mx < mn) return bad(c, path, "maxItems < minItems");
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
    const cJSON *prefix = cJSON_GetObjectItemCaseSensitive(s, "prefixItems");
    if (prefix && !cJSON_IsArray(prefix)) return bad(c, path, "prefixItems: expected an array");
    if (items && cJSON_IsArray(items)) { unsupported(c, "items as an array (draft 4 tuples; use prefixItems)", path); return true; }
    int np = prefix ? cJSON_GetArraySize(prefix) : 0;
    char item[48] = "json-value";
    bool more = !(items && cJSON_IsFalse(items));
    if (items && cJSON_IsObject(items)) {
        path_push(sub, sizeof sub, path, "items", NULL);
        if (!gen(c, items, sub, "item", item)) return false;
    } else if (items && !cJSON_IsBool(items)) {
        return bad(c, path, "items: expected a schema");
    } else if (more) {
        c->need_value = true;
    }
    if (np == 0) {
        if (!more) { sb_add(e, "\"[\" ws \"]\""); return mn == 0 || bad(c, path, "items: false with minItems > 0"); }
        if (mx == 0) { sb_add(e, "\"[\" ws \"]\""); return true; }
        sb_addf(e, "\"[\" ws %s%s ( ws \",\" ws %s ){%ld,", mn ? "" : "( ", item, item, mn ? mn - 1 : 0);
        if (mx >= 0) sb_addf(e, "%ld", mx - 1);
        sb_addf(e, "} ws %s\"]\"", mn ? "" : ")? ");
        return true;
    }
    /* p<i>: items i.. after a prefix of i; p0 starts right after "[" ws */
    char base[48];
    rule_name(c, "tuple", base);
    char (*el)[48] = calloc((size_t)np, sizeof *el);
    if (!el) { c->out.oom = true; return false; }
    const cJSON *it;
    int i = 0;
    cJSON_ArrayForEach(it, prefix) {
        char idx[16];
        snprintf(idx, sizeof idx, "%d", i);
        path_push(sub, sizeof sub, path, "prefixItems", idx);
        if (!gen(c, it, sub, "item", el[i])) { free(el); return false; }
        i++;
    }
    if (mx >= 0 && mx < np) np = (int)mx; /* maxItems cuts the prefix short */
    for (int k = np; k >= 0; k--) {
        sb_addf(&c->out, "%s-p%d ::= ", base, k);
        const char *sep = k ? "ws \",\" ws " : "";
        if (k == np) {
            long rmin = mn > np ? mn - np : 0, rmax = mx >= 0 ? mx - np : -1;
            if (!more && rmin > 0) { free(el); return bad(c, path, "minItems exceeds prefixItems with items: false"); }
            if (more && rmax != 0) {
                sb_addf(&c->out, "( ws \",\" ws %s ){%ld,", item, rmin);
                if (rmax >= 0) sb_addf(&c->out, "%ld", rmax);
                sb_add(&c->out, "} ");
            }
            sb_add(&c->out, k ? "ws\n" : "\"\"\n");
            if (k == 0 && more && rmax != 0) {
                /* no prefix at all (maxItems 0 cut it): plain array */
                free(el);
                return bad(c, path, "maxItems 0 with prefixItems");
            }
        } else {
            sb_addf(&c->out, "%s%s %s-p%d", sep, el[k], base, k + 1);
            if (k >= mn) sb_add(&c->out, k ? " | ws" : " | \"\"");
            sb_add(&c->out, "\n");
        }
    }
    free(el);
    sb_addf(e, "\"[\" ws %s-p0 \"]\"", base);
    return true;
}

/* The value grammar for one type name under schema s. */
static bool gen_type(jsc *c, sb *e, const cJSON *s, const char *t, const char *path)
{
    if (!strcmp(t, "string")) return gen_string(c, e, s, path);
    if (!strcmp(t, "object")) return gen_object(c, e, s, path);
    if (!strcmp(t, "array")) return gen_array(c, e, s, path);
    if (!strcmp(t, "boolean")) { sb_add(e, "( \"true\" | \"false\" )"); return true; }
    if (!strcmp(t, "null")) { sb_add(e, "\"null\""); return true; }
    if (!strcmp(t, "integer")) {
        bool any;
        int64_t lo, hi;
        if (!int_bounds(c, s, path, &any, &lo, &hi)) return false;
        if (!any) { c->need_int = true; sb_add(e, "json-int"); }
        else int_range(e, lo, hi);
        return true;
    }
    if (!strcmp(t, "number")) {
        static const char *const kws[] = {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", NULL};
        for (int k = 0; kws[k]; k++)
            if (cJSON_GetObjectItemCaseSensitive(s, kws[k])) {
                char w[96];
                snprintf(w, sizeof w, "%s on type number (integer bounds are supported)", kws[k]);
                unsupported(c, w, path);
            }
        c->need_number = true;
        sb_add(e, "json-number");
        return true;
    }
    char w[96];
    snprintf(w, sizeof w, "type \"%.40s\"", t);
    return bad(c, path, w);
}

/* The keywords that belong to a type (for "type" left out: all of them). */
static bool has_any(const cJSON *s, const char *const *kws)
{
    for (; *kws; kws++)
        if (cJSON_GetObjectItemCaseSensitive(s, *kws)) return true;
    return false;
}

static const cJSON *resolve_ref(jsc *c, const char *ref, const char *path)
{
    if (ref[0] != '#') { unsupported(c, "$ref to another document", path); return NULL; }
    const cJSON *cur = c->root;
    const char *p = ref + 1;
    while (*p == '/') {
        p++;
        char tok[256];
        size_t n = 0;
        while (*p && *p != '/' && n + 1 < sizeof tok) {
            if (p[0] == '~' && p[1] == '0') { tok[n++] = '~'; p += 2; }
            else if (p[0] == '~' && p[1] == '1') { tok[n++] = '/'; p += 2; }
            else tok[n++] = *p++;
        }
        tok[n] = '\0';
        if (cJSON_IsArray(cur)) {
            char *end;
            long k = strtol(tok, &end, 10);
            cur = *end ? NULL : cJSON_GetArrayItem(cur, (int)k);
        } else {
            cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
        }
        if (!cur) { bad(c, path, "$ref points at nothing"); return NULL; }
    }
    if (*p) { unsupported(c, "$ref by anchor name", path); return NULL; }
    return cur;
}

static bool gen(jsc *c, const cJSON *s, const char *path, const char *hint, char name[48])
{
    if (c->depth > MAX_DEPTH) return bad(c, path, "schemas nested more than 64 deep");
    if (cJSON_IsTrue(s) || (cJSON_IsObject(s) && !count_other(s, supported) && !has_any(s, supported))) {
        c->need_value = true;
        snprintf(name, 48, "json-value");
        return true;
    }
    if (cJSON_IsFalse(s)) return bad(c, path, "the schema false matches nothing");
    if (!cJSON_IsObject(s)) return bad(c, path, "expected a schema (an object or a boolean)");
    const cJSON *it;
    cJSON_ArrayForEach(it, s) if (!in_list(it->string, annotations) && !in_list(it->string, supported)) {
        char w[96];
        snprintf(w, sizeof w, "%.64s", it->string);
        unsupported(c, w, path);
    }
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(s, "$ref");
    if (ref) {
        if (!cJSON_IsString(ref)) return bad(c, path, "$ref: expected a string");
        if (count_other(s, (const char *const[]){"$ref", NULL})) unsupported(c, "keywords beside $ref", path);
        for (int i = 0; i < c->n_refs; i++)
            if (!strcmp(c->refs[i].ref, ref->valuestring)) { memcpy(name, c->refs[i].name, 48); return true; }
        const cJSON *target = resolve_ref(c, ref->valuestring, path);
        if (!target) return c->st == VKI_OK;
        if (c->n_refs == c->cap_refs) {
            int cap = c->cap_refs ? c->cap_refs * 2 : 8;
            ref_ent *np = realloc(c->refs, sizeof *np * (size_t)cap);
            if (!np) { c->out.oom = true; return false; }
            c->refs = np;
            c->cap_refs = cap;
        }
        ref_ent *re = &c->refs[c->n_refs];
        size_t rl = strlen(ref->valuestring) + 1;
        re->ref = malloc(rl);
        if (re->ref) memcpy(re->ref, ref->valuestring, rl);
        if (!re->ref) { c->out.oom = true; return false; }
        const char *slash = strrchr(ref->valuestring, '/');
        rule_name(c, slash ? slash + 1 : "root", re->name);
        c->n_refs++;
        char body[48];
        memcpy(name, re->name, 48);
        /* the name exists before its body, so the body may refer to it */
        c->depth++;
        bool ok = gen(c, target, ref->valuestring, slash ? slash + 1 : "root", body);
        c->depth--;
        if (ok) sb_addf(&c->out, "%s ::= %s\n", name, body);
        return ok;
    }
    sb e = {0};
    bool ok = true;
    c->depth++;
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(s, "enum"), *cn = cJSON_GetObjectItemCaseSensitive(s, "const");
    const cJSON *any = cJSON_GetObjectItemCaseSensitive(s, "anyOf"), *one = cJSON_GetObjectItemCaseSensitive(s, "oneOf");
    const cJSON *all = cJSON_GetObjectItemCaseSensitive(s, "allOf");
    if (en || cn) {
        if (count_other(s, (const char *const[]){"enum", "const", "type", NULL}))
            unsupported(c, "keywords beside enum/const (other than type)", path);
        if (en && !cJSON_IsArray(en)) { ok = bad(c, path, "enum: expected an array"); goto out; }
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(s, "type");
        const cJSON *list = en ? en : NULL;
        int nv = 0, cap = en ? cJSON_GetArraySize(en) : 1;
        char **vals = calloc((size_t)cap + 1, sizeof *vals);
        if (!vals) { c->out.oom = true; ok = false; goto out; }
        for (const cJSON *v = list ? list->child : cn; v && nv < cap; v = list ? v->next : NULL) {
            /* a value of another type than `type` cannot validate: leave it out */
            bool fits = true;
            const char *vt = cJSON_IsString(v) ? "string" : cJSON_IsBool(v) ? "boolean" : cJSON_IsNull(v) ? "null"
                           : cJSON_IsArray(v) ? "array" : cJSON_IsObject(v) ? "object" : "number";
            bool is_int = cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble);
            if (cJSON_IsString(ty)) fits = !strcmp(ty->valuestring, vt) || (is_int && !strcmp(ty->valuestring, "integer"));
            else if (cJSON_IsArray(ty)) {
                const cJSON *t;
                fits = false;
                cJSON_ArrayForEach(t, ty) if (cJSON_IsString(t) && (!strcmp(t->valuestring, vt) ||
                                                                    (is_int && !strcmp(t->valuestring, "integer")))) fits = true;
            }
            if (cn && en && !cJSON_Compare(v, cn, true)) fits = false;
            if (!fits) continue;
            if (!(vals[nv] = cJSON_PrintUnformatted(v))) c->out.oom = true;
            else nv++;
        }
        qsort(vals, (size_t)nv, sizeof *vals, cmp_str);
        int nu = 0;
        for (int k = 0; k < nv; k++) {
            if (nu && !strcmp(vals[nu - 1], vals[k])) free(vals[k]);
            else vals[nu++] = vals[k];
        }
        if (nu) {
            char nm[48];
            rule_name(c, "enum", nm);
            lit_trie(c, vals, 0, nu, 0, nm);
            sb_add(&e, nm);
        }
        for (int k = 0; k < nu; k++) free(vals[k]);
        free(vals);
        if (!nu) { ok = bad(c, path, "no enum/const value fits the schema"); goto out; }
    } else if (any || one) {
        const cJSON *list = any ? any : one;
        if (any && one) unsupported(c, "anyOf together with oneOf", path);
        if (count_other(s, (const char *const[]){"anyOf", "oneOf", NULL}))
            unsupported(c, "keywords beside anyOf/oneOf", path);
        if (!cJSON_IsArray(list) || !cJSON_GetArraySize(list)) { ok = bad(c, path, "anyOf/oneOf: expected a non-empty array"); goto out; }
        int k = 0;
        cJSON_ArrayForEach(it, list) {
            char sub[512], idx[16], nm[48];
            snprintf(idx, sizeof idx, "%d", k);
            path_push(sub, sizeof sub, path, any ? "anyOf" : "oneOf", idx);
            if (!(ok = gen(c, it, sub, hint, nm))) goto out;
            sb_addf(&e, "%s%s", k++ ? " | " : "( ", nm);
        }
        sb_add(&e, " )");
    } else if (all) {
        /* one schema, the others empty: the common shape of wrappers */
        const cJSON *only = NULL;
        int n_real = 0;
        if (!cJSON_IsArray(all)) { ok = bad(c, path, "allOf: expected an array"); goto out; }
        cJSON_ArrayForEach(it, all) if (!(cJSON_IsTrue(it) || (cJSON_IsObject(it) && !count_other(it, (const char *const[]){NULL})))) {
            only = it;
            n_real++;
        }
        if (n_real > 1 || count_other(s, (const char *const[]){"allOf", NULL})) {
            unsupported(c, "allOf with more than one constraining schema", path);
            goto out;
        }
        char nm[48], sub[512];
        path_push(sub, sizeof sub, path, "allOf", NULL);
        if (!only) { c->need_value = true; sb_add(&e, "json-value"); }
        else if (!(ok = gen(c, only, sub, hint, nm))) goto out;
        else sb_add(&e, nm);
    } else {
        static const char *const all_types[] = {"object", "array", "string", "integer", "number", "boolean", "null", NULL};
        static const char *const obj_kw[] = {"properties", "required", "additionalProperties", NULL};
        static const char *const arr_kw[] = {"items", "prefixItems", "minItems", "maxItems", NULL};
        static const char *const str_kw[] = {"minLength", "maxLength", "format", NULL};
        static const char *const num_kw[] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", NULL};
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(s, "type");
        const char *types[8];
        int nt = 0;
        if (!ty) {
            /* no type: the types whose keywords appear, else every type */
            if (has_any(s, obj_kw)) types[nt++] = "object";
            if (has_any(s, arr_kw)) types[nt++] = "array";
            if (has_any(s, str_kw)) types[nt++] = "string";
            if (has_any(s, num_kw)) types[nt++] = "integer";
            if (!nt) for (int k = 0; all_types[k]; k++) types[nt++] = all_types[k];
        } else if (cJSON_IsString(ty)) {
            types[nt++] = ty->valuestring;
        } else if (cJSON_IsArray(ty) && cJSON_GetArraySize(ty) > 0 && cJSON_GetArraySize(ty) <= 7) {
            cJSON_ArrayForEach(it, ty) {
                if (!cJSON_IsString(it)) { ok = bad(c, path, "type: expected strings"); goto out; }
                types[nt++] = it->valuestring;
            }
        } else {
            ok = bad(c, path, "type: expected a string or a non-empty array of strings");
            goto out;
        }
        for (int k = 0; k < nt && ok; k++) {
            /* integer and number together: number covers both */
            if (!strcmp(types[k], "integer")) {
                bool dup = false;
                for (int q = 0; q < nt; q++) dup |= !strcmp(types[q], "number");
                if (dup) continue;
            }
            sb_add(&e, e.n ? " | " : "( ");
            ok = gen_type(c, &e, s, types[k], path);
        }
        sb_add(&e, " )");
    }
out:
    c->depth--;
    if (ok && c->st == VKI_OK) {
        rule_name(c, hint, name);
        sb_addf(&c->out, "%s ::= %s\n", name, e.p ? e.p : "\"\"");
    }
    if (e.oom) c->out.oom = true;
    free(e.p);
    return ok && c->st == VKI_OK;
}

/* ===== Entry points ====================================================== */

vki_status gram_from_json_schema(const char *schema, size_t len, char **grammar_text)
{
    *grammar_text = NULL;
    if (!schema) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "json_schema: no schema");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(schema, len, &end, false);
    if (!root) {
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "json_schema: not valid JSON near byte %zu",
                        end ? (size_t)(end - schema) : (size_t)0);
    }
    jsc c = {.st = VKI_OK, .root = root};
    char top[48];
    bool ok = gen(&c, root, "#", "root", top);
    vki_status st = VKI_OK;
    if (c.out.oom || c.unsup.oom) {
        st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "json_schema: out of memory");
    } else if (c.n_unsup) {
        st = vki_fail(VKI_ERR_UNSUPPORTED, "json_schema: unsupported: %s%s", c.unsup.p,
                      c.n_unsup > 16 ? ", ..." : "");
    } else if (!ok || c.st != VKI_OK) {
        st = c.st != VKI_OK ? c.st : vki_fail(VKI_ERR_INVALID_ARGUMENT, "json_schema: invalid schema");
    } else {
        /* root: optional leading whitespace (a first token may start with a
         * space), then the value and nothing after it */
        sb_addf(&c.out, "root ::= ws %s\n", top);
        common_rules(&c);
        if (c.out.oom) st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "json_schema: out of memory");
    }
    for (int i = 0; i < c.n_refs; i++) free(c.refs[i].ref);
    free(c.refs);
    free(c.unsup.p);
    cJSON_Delete(root);
    if (st != VKI_OK) {
        free(c.out.p);
        return st;
    }
    *grammar_text = c.out.p;
    return VKI_OK;
}

const char *gram_json_object_text(void)
{
    return "root ::= ws json-object\n"
           "ws ::= [ \\t\\n]{0,20}\n"
           "json-value ::= json-object | json-array | json-string | json-number | \"true\" | \"false\" | \"null\"\n"
           "json-object ::= \"{\" ws ( json-member ( ws \",\" ws json-member )* ws )? \"}\"\n"
           "json-member ::= json-string ws \":\" ws json-value\n"
           "json-array ::= \"[\" ws ( json-value ( ws \",\" ws json-value )* ws )? \"]\"\n"
           "json-string ::= \"\\\"\" json-char* \"\\\"\"\n"
           "json-char ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4} )\n"
           "json-number ::= json-int ( \".\" [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,2} )?\n"
           "json-int ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,15} )\n";
}
