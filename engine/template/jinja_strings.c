/*
 * jinja_strings.c: Python's str operations the filters and the methods
 * share (case mapping, strip, replace, split, splitlines), with Python's
 * semantics; case mapping covers ASCII only.
 */
#include <stdlib.h>
#include <string.h>

#include "jinja_builtins.h"


jv jj_change_case(jctx *x, const jstr *s, case_op op)
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
jv jj_strip(jctx *x, const jstr *s, const jstr *chars, int which)
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

jv jj_replace(jctx *x, const jstr *s, const jstr *old, const jstr *new, int64_t count)
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

bool jj_split(jctx *x, const jstr *s, const jstr *sep, int64_t maxsplit, jv *out)
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

/* jj_splitlines(): \n, \r\n, \r, \v, \f, \x1c-\x1e, U+0085, U+2028, U+2029 */
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

bool jj_splitlines(jctx *x, const jstr *s, jlist **out)
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
