/*
 * json_floats.c: float32 to JSON text (json_floats.h). The value is taken
 * exactly as a double and scaled so its nine leading digits are an
 * integer; the scaling's one rounding (a double ulp, 1e-16 relative) can
 * move that integer by one, and even then nine digits (spacing at most
 * 1e-8 of the value) stay within half a float ulp (at least 3e-8 of the
 * value) of v, so the text still reads back as v: test_json_floats checks
 * every exponent and a few million random floats against strtof.
 */
#include "server/json_floats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double pow10i(int e)
{
    static const double p[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                               1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    double r = 1.0;
    while (e > 22) r *= 1e22, e -= 22;
    return r * p[e];
}

size_t srv_fmt_float(char out[SRV_FLOAT_CHARS + 1], float v)
{
    if (!isfinite(v)) {
        memcpy(out, "null", 5);
        return 4;
    }
    size_t n = 0;
    if (signbit(v)) out[n++] = '-';
    double a = fabs((double)v);
    if (a == 0.0) {
        out[n++] = '0';
        out[n] = '\0';
        return n;
    }
    /* a = m * 10^(e - 8) with m of nine digits */
    int e = (int)floor(log10(a));
    double s = e <= 8 ? a * pow10i(8 - e) : a / pow10i(e - 8);
    uint64_t m = (uint64_t)llround(s);
    if (m >= 1000000000u) m = (m + 5) / 10, e++;
    else if (m < 100000000u) m *= 10, e--; /* log10 rounded up across a power of ten */
    char d[9];
    int nd = 9;
    for (int i = 8; i >= 0; i--) d[i] = (char)('0' + m % 10), m /= 10;
    while (nd > 1 && d[nd - 1] == '0') nd--;
    if (e >= -5 && e < 9) {
        if (e < 0) { /* 0.000ddd */
            out[n++] = '0';
            out[n++] = '.';
            for (int i = 0; i < -e - 1; i++) out[n++] = '0';
            for (int i = 0; i < nd; i++) out[n++] = d[i];
        } else {
            for (int i = 0; i <= e; i++) out[n++] = i < nd ? d[i] : '0';
            if (nd > e + 1) {
                out[n++] = '.';
                for (int i = e + 1; i < nd; i++) out[n++] = d[i];
            }
        }
    } else {
        out[n++] = d[0];
        if (nd > 1) {
            out[n++] = '.';
            for (int i = 1; i < nd; i++) out[n++] = d[i];
        }
        out[n++] = 'e';
        int x = e;
        if (x < 0) out[n++] = '-', x = -x;
        if (x >= 10) out[n++] = (char)('0' + x / 10);
        out[n++] = (char)('0' + x % 10);
    }
    out[n] = '\0';
    return n;
}

char *srv_json_float_array(const float *v, int32_t n)
{
    size_t cap = (size_t)(n > 0 ? n : 0) * (SRV_FLOAT_CHARS + 1) + 3, len = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    s[len++] = '[';
    for (int32_t i = 0; i < n; i++) {
        if (i) s[len++] = ',';
        len += srv_fmt_float(s + len, v[i]);
    }
    s[len++] = ']';
    s[len] = '\0';
    return s;
}
