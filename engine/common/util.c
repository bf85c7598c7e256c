/* util.c: the non-inline parts of util.h. */
#define _POSIX_C_SOURCE 200809L
#include "util.h"

#include <time.h>

double vki_time_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The sequence at s[0..n): its length when valid, else minus the length of
 * its longest valid prefix (at least 1): the "maximal subpart" rule. *cut
 * says the prefix was valid and only the bytes ran out. */
static int utf8_seq(const unsigned char *s, size_t n, bool *cut)
{
    unsigned char c = s[0];
    int need;
    unsigned char lo = 0x80, hi = 0xBF;
    *cut = false;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90; /* no overlong forms */
        if (c == 0xF4) hi = 0x8F; /* nothing past U+10FFFF */
    } else {
        return -1;
    }
    int k = 1;
    for (; k <= need; k++) {
        if ((size_t)k >= n) {
            *cut = true;
            return -k;
        }
        unsigned char b = s[k];
        if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return -k;
    }
    return k;
}

int vki_utf8_next(const char *s, size_t n)
{
    bool cut;
    return utf8_seq((const unsigned char *)s, n, &cut);
}

size_t vki_utf8_sanitize(const char *in, size_t n, char *out)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t i = 0, o = 0;
    bool cut;
    while (i < n) {
        int k = utf8_seq(s + i, n - i, &cut);
        if (k > 0) {
            memcpy(out + o, s + i, (size_t)k);
            o += (size_t)k;
            i += (size_t)k;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += (size_t)-k;
        }
    }
    return o;
}

size_t vki_utf8_incomplete_tail(const char *in, size_t n)
{
    const unsigned char *s = (const unsigned char *)in;
    /* The only candidate is the last byte that is not a continuation byte,
     * at most 3 back (a character has at most 3 after its lead). */
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        if ((s[n - back] & 0xC0) == 0x80) continue;
        bool cut;
        int k = utf8_seq(s + n - back, back, &cut);
        return k < 0 && cut ? back : 0;
    }
    return 0;
}
