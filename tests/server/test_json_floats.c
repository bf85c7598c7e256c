/*
 * test_json_floats.c: server/json_floats.c alone. Every text reads back
 * (strtof) as the exact float it came from: zeros, both signs, the
 * subnormals, FLT_MAX, every binary exponent with random mantissas, and
 * values next to powers of ten, where the digit count turns over; plus
 * the notation switch, the non-finite values and the array's form.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "server/json_floats.h"
#include "test_util.h"

static int n_bad;

static uint32_t bits_of(float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    return u;
}

static void roundtrip(float v)
{
    char buf[SRV_FLOAT_CHARS + 1];
    size_t n = srv_fmt_float(buf, v);
    char *end;
    float back = strtof(buf, &end);
    bool ok = n == strlen(buf) && n <= SRV_FLOAT_CHARS && *end == '\0' && memcmp(&back, &v, 4) == 0;
    if (!ok && n_bad++ < 10) CHECKF(ok, "%.9g (bits %08x) -> '%s' -> %.9g", v, (unsigned)bits_of(v), buf, back);
}

static void same(float v, const char *want)
{
    char buf[SRV_FLOAT_CHARS + 1];
    srv_fmt_float(buf, v);
    CHECKF(strcmp(buf, want) == 0, "%.9g: '%s', want '%s'", v, buf, want);
}

int main(void)
{
    roundtrip(0.0f);
    roundtrip(-0.0f);
    roundtrip(FLT_MAX);
    roundtrip(-FLT_MAX);
    roundtrip(FLT_MIN);
    roundtrip(FLT_TRUE_MIN);
    uint64_t rng = 12345;
    /* every bit pattern class: each exponent (subnormals included) with
     * 20000 random mantissas, both signs */
    for (uint32_t ex = 0; ex < 255; ex++)
        for (int i = 0; i < 20000; i++) {
            uint32_t bits = (uint32_t)test_rand_u64(&rng), u = (bits & 0x807FFFFFu) | ex << 23;
            float v;
            memcpy(&v, &u, 4);
            roundtrip(v);
        }
    /* both sides of each power of ten, a few ulps either way */
    for (int e = -45; e <= 38; e++) {
        float p = (float)pow(10.0, e);
        for (int k = 0; k < 8; k++) {
            roundtrip(p);
            roundtrip(-p);
            p = nextafterf(p, 0.0f);
        }
        p = (float)pow(10.0, e);
        for (int k = 0; k < 8; k++) p = nextafterf(p, INFINITY), roundtrip(p);
    }
    CHECKF(n_bad == 0, "%d values did not read back", n_bad);

    same(0.0f, "0");
    same(-0.0f, "-0");
    same(1.0f, "1");
    same(-2.5f, "-2.5");
    same(100.0f, "100");
    same(0.5f, "0.5");
    same(0.1f, "0.100000001");
    same(1e-5f, "9.99999975e-6");
    same(2e-5f, "0.0000199999995");
    same(123456792.0f, "123456792");
    same(1e9f, "1e9");
    same(3e-7f, "3.00000011e-7");
    same(NAN, "null");
    same(INFINITY, "null");
    same(-INFINITY, "null");

    float v[4] = {0.25f, -1.0f, NAN, 3.0f};
    char *s = srv_json_float_array(v, 4);
    CHECK(s && strcmp(s, "[0.25,-1,null,3]") == 0);
    free(s);
    s = srv_json_float_array(v, 0);
    CHECK(s && strcmp(s, "[]") == 0);
    free(s);
    return test_finish("test_json_floats");
}
