/*
 * unicode.h: the Unicode facts the tokenizers need: lenient UTF-8 decoding,
 * general-category flags (\p{L}, \p{N}, ...), White_Space, simple lowercase,
 * canonical and compatibility decomposition, combining classes, canonical
 * composition (the pieces of NFD/NFC/NFKD/NFKC; normalize.c strings them
 * together) and the CJK ranges BERT splits on.
 * Owns: lookups over the generated tables in unicode_tables.c (Unicode 14).
 * Must not: allocate or keep state.
 */
#ifndef VKI_TOK_UNICODE_H
#define VKI_TOK_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* category flags; tools/unicode/gen_tables.py uses the same bits */
enum {
    UC_L = 1, UC_N = 2, UC_P = 4, UC_S = 8, UC_M = 16, UC_MN = 32,
    UC_ZS = 64, UC_CC = 128, UC_CF = 256, UC_Z = 512,
};

typedef struct uc_run    { uint32_t start; uint16_t flags; } uc_run;
typedef struct uc_pair   { uint32_t cp, to; } uc_pair;
typedef struct uc_decomp { uint32_t cp; uint32_t off; uint32_t n; } uc_decomp;
typedef struct uc_ccc_run { uint32_t start; uint8_t ccc; } uc_ccc_run;
typedef struct uc_comp   { uint32_t a, b, c; } uc_comp; /* a + b compose to c */

extern const char      uc_unicode_version[];
extern const uc_run    uc_runs[];
extern const int       uc_n_runs;
extern const uc_pair   uc_lower[];
extern const int       uc_n_lower;
extern const uint32_t  uc_nfd_data[];
extern const uc_decomp uc_nfd_index[];
extern const int       uc_n_nfd;
extern const uint32_t   uc_nfkd_data[];
extern const uc_decomp  uc_nfkd_index[]; /* only where NFKD differs from NFD */
extern const int        uc_n_nfkd;
extern const uc_ccc_run uc_ccc_runs[];
extern const int        uc_n_ccc_runs;
extern const uc_comp    uc_comp_pairs[];  /* sorted by (a, b); no Hangul */
extern const int        uc_n_comp;

/* Marks a byte that is not part of valid UTF-8 (an overlong form, a
 * surrogate, a stray continuation byte, a truncated sequence). It has no
 * category flags, so it is "other" to every pre-tokenizer, and the tokenizer
 * keeps the original byte. */
#define UC_INVALID 0xFFFFFFFFu

/* Decodes one code point at s[0..n) (n >= 1); *len gets the bytes used (1
 * for an invalid byte, which yields UC_INVALID). */
uint32_t uc_decode(const uint8_t *s, size_t n, int *len);
/* Encodes cp (< 0x110000) into out[4]; returns the byte count. */
int      uc_encode(uint32_t cp, char *out);
/* Length of a UTF-8 sequence from its first byte (1 for invalid leads). */
int      uc_seq_len(uint8_t b);

uint16_t uc_flags(uint32_t cp);
bool     uc_is_space(uint32_t cp);   /* the White_Space property (regex \s) */
uint32_t uc_tolower(uint32_t cp);    /* simple lowercase mapping */
bool     uc_is_cjk(uint32_t cp);     /* BERT's "Chinese character" ranges */
/* Canonical decomposition of cp into out (at most 4 + Hangul 3); returns the
 * count; 1 and out[0] = cp when cp does not decompose. */
int      uc_nfd(uint32_t cp, uint32_t out[8]);

/* The longest full decomposition of one code point (U+FDFA, NFKD). */
#define UC_MAX_DECOMP 18
/* Full canonical (compat false) or compatibility (compat true) decomposition
 * of cp, Hangul by arithmetic; returns the count (1 and out[0] = cp when cp
 * does not decompose). Values >= 0x110000 (UC_INVALID, byte markers) pass
 * through unchanged. */
int      uc_decompose(uint32_t cp, bool compat, uint32_t out[UC_MAX_DECOMP]);
/* Canonical combining class (0 for starters and for values >= 0x110000). */
uint8_t  uc_ccc(uint32_t cp);
/* The primary composite of a + b (Hangul LV/LVT included), 0 when none. */
uint32_t uc_compose(uint32_t a, uint32_t b);

#endif
