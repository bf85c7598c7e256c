/* test_quants.c: the reference dequantizers on hand-built blocks whose values
 * are worked out from the GGUF block layouts, and quantize -> dequantize
 * round trips of random data for every type with per-type error bounds. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "loader/types.h"
#include "test_util.h"
#include "util.h"

#define ONE 0x3C00  /* 1.0 in binary16  */
#define HALF 0x3800 /* 0.5 in binary16  */

static void expect(const char *what, const float *got, const float *want, int n)
{
    int bad = 0;
    for (int i = 0; i < n && bad < 4; i++) {
        if (got[i] != want[i]) {
            CHECKF(false, "%s: element %d is %g, expected %g", what, i, got[i], want[i]);
            bad++;
        }
    }
}

static void test_q4_0(void)
{
    block_q4_0 b = {.d = ONE};
    for (int j = 0; j < 16; j++) b.qs[j] = (uint8_t)(j | (15 - j) << 4);
    float y[32], want[32];
    for (int j = 0; j < 16; j++) {
        want[j] = (float)(j - 8);       /* low nibbles: first half  */
        want[j + 16] = (float)(7 - j);  /* high nibbles: second half */
    }
    CHECK(vki_dequantize_row(VKI_TYPE_Q4_0, &b, y, 32));
    expect("Q4_0", y, want, 32);
}

static void test_q4_1(void)
{
    block_q4_1 b = {.d = HALF, .m = ONE};
    for (int j = 0; j < 16; j++) b.qs[j] = (uint8_t)(j | (15 - j) << 4);
    float y[32], want[32];
    for (int j = 0; j < 16; j++) {
        want[j] = 0.5f * (float)j + 1.0f;
        want[j + 16] = 0.5f * (float)(15 - j) + 1.0f;
    }
    CHECK(vki_dequantize_row(VKI_TYPE_Q4_1, &b, y, 32));
    expect("Q4_1", y, want, 32);
}

static void test_q5(void)
{
    /* qh = 0xAAAAAAAA little-endian: the fifth bit is set for odd elements */
    block_q5_0 b = {.d = ONE, .qh = {0xAA, 0xAA, 0xAA, 0xAA}};
    block_q5_1 c = {.d = ONE, .m = HALF, .qh = {0xAA, 0xAA, 0xAA, 0xAA}};
    for (int j = 0; j < 16; j++) b.qs[j] = c.qs[j] = (uint8_t)(j | (15 - j) << 4);
    float y[32], want[32], want1[32];
    for (int j = 0; j < 16; j++) {
        const int lo = j | ((j & 1) ? 16 : 0), hi = (15 - j) | (((j + 16) & 1) ? 16 : 0);
        want[j] = (float)(lo - 16);
        want[j + 16] = (float)(hi - 16);
        want1[j] = (float)lo + 0.5f;
        want1[j + 16] = (float)hi + 0.5f;
    }
    CHECK(vki_dequantize_row(VKI_TYPE_Q5_0, &b, y, 32));
    expect("Q5_0", y, want, 32);
    CHECK(vki_dequantize_row(VKI_TYPE_Q5_1, &c, y, 32));
    expect("Q5_1", y, want1, 32);
}

static void test_q8(void)
{
    block_q8_0 b = {.d = HALF};
    block_q8_1 c = {.d = HALF};
    block_q8_K k = {.d = 0.25f};
    float y[256], want[256];
    for (int j = 0; j < 32; j++) {
        b.qs[j] = c.qs[j] = (int8_t)(j - 16);
        want[j] = 0.5f * (float)(j - 16);
    }
    CHECK(vki_dequantize_row(VKI_TYPE_Q8_0, &b, y, 32));
    expect("Q8_0", y, want, 32);
    CHECK(vki_dequantize_row(VKI_TYPE_Q8_1, &c, y, 32));
    expect("Q8_1", y, want, 32);
    for (int j = 0; j < 256; j++) {
        k.qs[j] = (int8_t)(j - 128);
        want[j] = 0.25f * (float)(j - 128);
    }
    CHECK(vki_dequantize_row(VKI_TYPE_Q8_K, &k, y, 256));
    expect("Q8_K", y, want, 256);
}

static void test_q2_K(void)
{
    block_q2_K b = {.d = ONE, .dmin = HALF};
    for (int s = 0; s < 16; s++) b.scales[s] = (uint8_t)(s | (15 - s) << 4); /* scale s, min 15 - s */
    memset(b.qs, 0xE4, sizeof b.qs); /* 2-bit plane j holds the value j */
    float y[256], want[256];
    for (int e = 0; e < 256; e++) {
        const int s = e / 16, plane = (e % 128) / 32;
        want[e] = (float)s * (float)plane - 0.5f * (float)(15 - s);
    }
    CHECK(vki_dequantize_row(VKI_TYPE_Q2_K, &b, y, 256));
    expect("Q2_K", y, want, 256);
}

static void test_q3_K(void)
{
    /* sub-block s gets scale s - 8, stored as 6 bits v = s + 24: low nibbles
     * of v(s) and v(s + 8) share scales[s]; the high bits (1 for s < 8, 2
     * after) sit in scales[8..11] at bit 2 * (s / 4) */
    block_q3_K b = {.d = ONE};
    for (int s = 0; s < 8; s++) b.scales[s] = (uint8_t)((8 + s) | s << 4);
    for (int i = 0; i < 4; i++) b.scales[8 + i] = 0xA5;
    memset(b.qs, 0xE4, sizeof b.qs);
    for (int l = 0; l < 16; l++) b.hmask[l] = 0x0F; /* high bit set for the first 128 (h = 0 half) */
    float y[256], want[256];
    for (int e = 0; e < 256; e++) {
        const int s = e / 16, c = e / 128, plane = (e % 128) / 32, h = (e % 32) / 16;
        const bool hbit = c == 0 && h == 0;
        want[e] = (float)(s - 8) * (float)(plane - (hbit ? 0 : 4));
    }
    CHECK(vki_dequantize_row(VKI_TYPE_Q3_K, &b, y, 256));
    expect("Q3_K", y, want, 256);
}

/* Scales {1,2,3,4,17,18,19,20} and mins {0,1,2,3,33,34,35,36} packed as
 * get_scale_min_k4 reads them, worked out by hand. */
static const uint8_t k4_scales[12] = {0x41, 0x42, 0x43, 0x44, 0x80, 0x81, 0x82, 0x83, 0x11, 0x22, 0x33, 0x44};
static const int k4_sc[8] = {1, 2, 3, 4, 17, 18, 19, 20}, k4_m[8] = {0, 1, 2, 3, 33, 34, 35, 36};

static void test_q4_K_q5_K(void)
{
    block_q4_K b = {.d = ONE, .dmin = HALF};
    block_q5_K c = {.d = ONE, .dmin = HALF};
    memcpy(b.scales, k4_scales, 12);
    memcpy(c.scales, k4_scales, 12);
    memset(b.qs, 0x53, sizeof b.qs); /* low nibble 3, high nibble 5 */
    memset(c.qs, 0x53, sizeof c.qs);
    memset(c.qh, 0x99, sizeof c.qh); /* fifth bit for sub-blocks 0, 3, 4, 7 */
    float y[256], want[256], want5[256];
    for (int e = 0; e < 256; e++) {
        const int sb = e / 32, q = (sb % 2) ? 5 : 3;
        want[e] = (float)k4_sc[sb] * (float)q - 0.5f * (float)k4_m[sb];
        const int q5 = q + ((0x99 >> sb) & 1 ? 16 : 0);
        want5[e] = (float)k4_sc[sb] * (float)q5 - 0.5f * (float)k4_m[sb];
    }
    CHECK(vki_dequantize_row(VKI_TYPE_Q4_K, &b, y, 256));
    expect("Q4_K", y, want, 256);
    CHECK(vki_dequantize_row(VKI_TYPE_Q5_K, &c, y, 256));
    expect("Q5_K", y, want5, 256);
}

static void test_q6_K(void)
{
    block_q6_K b = {.d = HALF};
    for (int s = 0; s < 16; s++) b.scales[s] = (int8_t)(s - 8);
    memset(b.ql, 0x21, sizeof b.ql); /* low nibble 1, high nibble 2 */
    memset(b.qh, 0xE4, sizeof b.qh); /* 2-bit field k holds k        */
    /* element l + 32k of each 128: k = 0 -> 1 | 0<<4, 1 -> 1 | 1<<4,
     * 2 -> 2 | 2<<4, 3 -> 2 | 3<<4, each minus 32 */
    static const int q[4] = {1 - 32, 17 - 32, 34 - 32, 50 - 32};
    float y[256], want[256];
    for (int e = 0; e < 256; e++) want[e] = 0.5f * (float)(e / 16 - 8) * (float)q[(e % 128) / 32];
    CHECK(vki_dequantize_row(VKI_TYPE_Q6_K, &b, y, 256));
    expect("Q6_K", y, want, 256);
}

static void test_plain(void)
{
    const uint16_t h[4] = {ONE, HALF, 0xC000 /* -2 */, 0x0001 /* smallest subnormal */};
    const uint16_t bf[2] = {0x3F80 /* 1 */, 0xC040 /* -3 */};
    const int16_t i16[2] = {-300, 7};
    float y[4];
    CHECK(vki_dequantize_row(VKI_TYPE_F16, h, y, 4));
    CHECK(y[0] == 1.0f && y[1] == 0.5f && y[2] == -2.0f && y[3] == ldexpf(1.0f, -24));
    CHECK(vki_dequantize_row(VKI_TYPE_BF16, bf, y, 2));
    CHECK(y[0] == 1.0f && y[1] == -3.0f);
    CHECK(vki_dequantize_row(VKI_TYPE_I16, i16, y, 2));
    CHECK(y[0] == -300.0f && y[1] == 7.0f);
    /* unsupported and partial blocks are refused, never misread */
    uint8_t junk[256] = {0};
    CHECK(!vki_dequantize_row(VKI_TYPE_IQ2_XXS, junk, y, 256));
    CHECK(!vki_dequantize_row(VKI_TYPE_Q4_0, junk, y, 31));
    CHECK(!vki_dequantize_row((vki_type)77, junk, y, 1));
    CHECK(vki_row_bytes(VKI_TYPE_Q4_K, 512) == 2 * 144);
    CHECK(vki_row_bytes(VKI_TYPE_Q4_K, 100) == 0);
    CHECK(vki_row_bytes(VKI_TYPE_F16, 3) == 6);
    CHECK(!strcmp(vki_type_name(VKI_TYPE_Q6_K), "Q6_K"));
    CHECK(!strcmp(vki_type_name(77), "type 77"));
    CHECK(!strcmp(vki_type_name(4), "Q4_2 (retired)"));
    CHECK(!vki_type_get(VKI_TYPE_IQ4_XS)->supported && vki_type_get(VKI_TYPE_IQ4_XS)->type_size == 136);
}

/* quantize -> dequantize of random data: normalised mean squared error per
 * type under a bound a little above what round-to-nearest gives */
static void test_round_trip(void)
{
    static const struct { vki_type t; double max_nmse; } cases[] = {
        {VKI_TYPE_F32, 0.0},     {VKI_TYPE_F16, 1e-6},    {VKI_TYPE_BF16, 2e-5},   {VKI_TYPE_Q8_0, 5e-5},
        {VKI_TYPE_Q8_1, 5e-5},   {VKI_TYPE_Q8_K, 5e-5},   {VKI_TYPE_Q6_K, 5e-4},   {VKI_TYPE_Q5_0, 2e-3},
        {VKI_TYPE_Q5_1, 2e-3},   {VKI_TYPE_Q5_K, 2e-3},   {VKI_TYPE_Q4_0, 8e-3},   {VKI_TYPE_Q4_1, 8e-3},
        {VKI_TYPE_Q4_K, 8e-3},   {VKI_TYPE_Q3_K, 4e-2},   {VKI_TYPE_Q2_K, 1.2e-1},
    };
    enum { N = 4096 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    uint8_t *q = malloc(N * 8);
    uint64_t rng = 42;
    for (int i = 0; i < N; i++) x[i] = test_rand_f32(&rng, -1.0f, 1.0f) * (1.0f + (float)(i % 97) / 10.0f);
    for (size_t c = 0; c < VKI_COUNT(cases); c++) {
        const vki_type t = cases[c].t;
        memset(y, 0, N * sizeof *y);
        CHECKF(vki_quantize_row(t, x, q, N), "%s: quantize", vki_type_name(t));
        CHECKF(vki_dequantize_row(t, q, y, N), "%s: dequantize", vki_type_name(t));
        double err = 0.0, ref = 0.0;
        for (int i = 0; i < N; i++) {
            err += (double)(x[i] - y[i]) * (x[i] - y[i]);
            ref += (double)x[i] * x[i];
        }
        const double nmse = err / ref;
        printf("  %-5s nmse %.3g (bound %.3g)\n", vki_type_name(t), nmse, cases[c].max_nmse);
        CHECKF(nmse <= cases[c].max_nmse, "%s: nmse %g exceeds %g", vki_type_name(t), nmse, cases[c].max_nmse);
        /* all-zero input must stay exactly zero (no NaN from a zero scale) */
        float z[256] = {0}, zy[256];
        CHECK(vki_quantize_row(t, z, q, 256));
        CHECK(vki_dequantize_row(t, q, zy, 256));
        for (int i = 0; i < 256; i++) CHECKF(zy[i] == 0.0f, "%s: zero input gave %g", vki_type_name(t), zy[i]);
    }
    CHECK(!vki_quantize_row(VKI_TYPE_IQ2_XXS, x, q, 256));
    free(x);
    free(y);
    free(q);
}

int main(void)
{
    test_q4_0();
    test_q4_1();
    test_q5();
    test_q8();
    test_q2_K();
    test_q3_K();
    test_q4_K_q5_K();
    test_q6_K();
    test_plain();
    test_round_trip();
    return test_finish("test_quants");
}
