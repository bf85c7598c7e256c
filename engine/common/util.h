/*
 * util.h: small helpers shared by every layer: checked size arithmetic,
 * half/bfloat16 conversion, a monotonic clock, the UTF-8 rule. No state.
 */
#ifndef VKI_UTIL_H
#define VKI_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define VKI_MIN(a, b) ((a) < (b) ? (a) : (b))
#define VKI_MAX(a, b) ((a) > (b) ? (a) : (b))
#define VKI_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* a*b into *out; false on overflow (stb's mul2sizes_valid, for size_t). */
static inline bool vki_mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    if (a != 0 && b > UINT64_MAX / a) return false;
    *out = a * b;
    return true;
}

static inline bool vki_add_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    if (b > UINT64_MAX - a) return false;
    *out = a + b;
    return true;
}

static inline uint64_t vki_align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

static inline float vki_fp16_to_fp32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do { mant <<= 1; e++; } while (!(mant & 0x400));
            mant &= 0x3ff;
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Round to nearest even, as the hardware converters do. */
static inline uint16_t vki_fp32_to_fp16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
    if (absx >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7c00);
    if (absx < 0x38800000u) { /* result is subnormal or zero */
        if (absx < 0x33000000u) return (uint16_t)sign;
        uint32_t e = absx >> 23;
        uint32_t m = (absx & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = ((absx >> 13) - ((127 - 15) << 10));
    uint32_t rem = absx & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
    return (uint16_t)(sign | r);
}

static inline float vki_bf16_to_fp32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline uint16_t vki_fp32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet nan */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* Milliseconds from a monotonic clock. */
double vki_time_ms(void);

/* ----- UTF-8: the one rule for every byte vkinfer prints ------------------
 * Model output is bytes (byte-fallback and byte-level tokens), but what we
 * print (JSON, SSE, streamed text, logs) must be valid UTF-8. The rule,
 * everywhere: a broken sequence becomes one U+FFFD per "maximal subpart"
 * (Unicode 3.9, as Python's errors="replace" and browsers do); while text
 * streams, a tail that is a valid start of a character still missing bytes
 * is held back until the next bytes complete it (vki_utf8_incomplete_tail),
 * so a character split across tokens arrives whole, never as U+FFFD. */

/* The sequence at s[0..n) (n > 0): its length (1-4) when it is a valid
 * character, else minus the length of the broken part that one U+FFFD
 * replaces (at least 1). */
int    vki_utf8_next(const char *s, size_t n);
/* Copies in[0..n) to out as valid UTF-8 by the rule above. out must hold
 * 3*n bytes; returns the bytes written (no NUL). */
size_t vki_utf8_sanitize(const char *in, size_t n, char *out);
/* Bytes at the end of s[0..n) that begin a character and could still be
 * completed by more bytes (0 when the end is complete, or broken for good). */
size_t vki_utf8_incomplete_tail(const char *s, size_t n);

#endif
