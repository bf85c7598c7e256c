/*
 * unicode.c: UTF-8 decoding and lookups over the generated tables
 * (unicode_tables.c). Lenient decoding: invalid bytes become UC_INVALID one
 * byte at a time so that callers can keep the original bytes.
 */
#include "unicode.h"

int uc_seq_len(uint8_t b)
{
    if (b < 0x80) return 1;
    if ((b & 0xE0) == 0xC0) return 2;
    if ((b & 0xF0) == 0xE0) return 3;
    if ((b & 0xF8) == 0xF0) return 4;
    return 1;
}

uint32_t uc_decode(const uint8_t *s, size_t n, int *len)
{
    uint8_t b = s[0];
    *len = 1;
    if (b < 0x80) return b;
    int need;
    uint32_t cp, min;
    if ((b & 0xE0) == 0xC0)      { need = 1; cp = b & 0x1F; min = 0x80; }
    else if ((b & 0xF0) == 0xE0) { need = 2; cp = b & 0x0F; min = 0x800; }
    else if ((b & 0xF8) == 0xF0) { need = 3; cp = b & 0x07; min = 0x10000; }
    else return UC_INVALID;
    if ((size_t)need >= n) return UC_INVALID;
    for (int i = 1; i <= need; i++) {
        if ((s[i] & 0xC0) != 0x80) return UC_INVALID;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    /* overlong forms, UTF-16 surrogates and values past U+10FFFF are not
     * UTF-8 (RFC 3629) */
    if (cp < min || (cp >= 0xD800 && cp < 0xE000) || cp > 0x10FFFF) return UC_INVALID;
    *len = need + 1;
    return cp;
}

int uc_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ASCII is most of most texts: answer it without the binary search. */
static uint16_t ascii_flags(uint32_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return UC_L;
    if (c >= '0' && c <= '9') return UC_N;
    if (c == ' ') return UC_Z | UC_ZS;
    if (c < 0x20 || c == 0x7F) return UC_CC;
    if (c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' || c == '`' ||
        c == '|' || c == '~')
        return UC_S;
    return UC_P;
}

uint16_t uc_flags(uint32_t cp)
{
    if (cp < 0x80) return ascii_flags(cp);
    if (cp >= 0x110000) return 0;
    int lo = 0, hi = uc_n_runs - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (uc_runs[mid].start <= cp) lo = mid;
        else hi = mid - 1;
    }
    return uc_runs[lo].flags;
}

bool uc_is_space(uint32_t cp)
{
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

uint32_t uc_tolower(uint32_t cp)
{
    if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    int lo = 0, hi = uc_n_lower - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (uc_lower[mid].cp == cp) return uc_lower[mid].to;
        if (uc_lower[mid].cp < cp) lo = mid + 1;
        else hi = mid - 1;
    }
    return cp;
}

bool uc_is_cjk(uint32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

int uc_nfd(uint32_t cp, uint32_t out[8])
{
    /* Hangul syllables decompose by arithmetic (Unicode 3.12) */
    if (cp >= 0xAC00 && cp <= 0xD7A3) {
        uint32_t s = cp - 0xAC00;
        out[0] = 0x1100 + s / 588;
        out[1] = 0x1161 + (s % 588) / 28;
        if (s % 28 == 0) return 2;
        out[2] = 0x11A7 + s % 28;
        return 3;
    }
    if (cp < 0xC0) { out[0] = cp; return 1; }
    int lo = 0, hi = uc_n_nfd - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (uc_nfd_index[mid].cp == cp) {
            uint32_t n = uc_nfd_index[mid].n > 8 ? 8 : uc_nfd_index[mid].n;
            for (uint32_t i = 0; i < n; i++) out[i] = uc_nfd_data[uc_nfd_index[mid].off + i];
            return (int)n;
        }
        if (uc_nfd_index[mid].cp < cp) lo = mid + 1;
        else hi = mid - 1;
    }
    out[0] = cp;
    return 1;
}

static int lookup_decomp(const uc_decomp *index, int n_index, const uint32_t *data, uint32_t cp,
                         uint32_t out[UC_MAX_DECOMP])
{
    int lo = 0, hi = n_index - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (index[mid].cp == cp) {
            uint32_t n = index[mid].n > UC_MAX_DECOMP ? UC_MAX_DECOMP : index[mid].n;
            for (uint32_t i = 0; i < n; i++) out[i] = data[index[mid].off + i];
            return (int)n;
        }
        if (index[mid].cp < cp) lo = mid + 1;
        else hi = mid - 1;
    }
    return 0;
}

int uc_decompose(uint32_t cp, bool compat, uint32_t out[UC_MAX_DECOMP])
{
    /* below U+00A0 nothing decomposes, canonically or otherwise */
    if (cp < 0xA0 || cp >= 0x110000) { out[0] = cp; return 1; }
    if (cp >= 0xAC00 && cp <= 0xD7A3) {
        uint32_t s = cp - 0xAC00;
        out[0] = 0x1100 + s / 588;
        out[1] = 0x1161 + (s % 588) / 28;
        if (s % 28 == 0) return 2;
        out[2] = 0x11A7 + s % 28;
        return 3;
    }
    int n = compat ? lookup_decomp(uc_nfkd_index, uc_n_nfkd, uc_nfkd_data, cp, out) : 0;
    if (!n) n = lookup_decomp(uc_nfd_index, uc_n_nfd, uc_nfd_data, cp, out);
    if (!n) { out[0] = cp; n = 1; }
    return n;
}

uint8_t uc_ccc(uint32_t cp)
{
    if (cp < 0x300 || cp >= 0x110000) return 0;
    int lo = 0, hi = uc_n_ccc_runs - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (uc_ccc_runs[mid].start <= cp) lo = mid;
        else hi = mid - 1;
    }
    return uc_ccc_runs[lo].ccc;
}

uint32_t uc_compose(uint32_t a, uint32_t b)
{
    /* Hangul (Unicode 3.12): L + V -> LV, LV + T -> LVT */
    if (a >= 0x1100 && a < 0x1113 && b >= 0x1161 && b < 0x1176)
        return 0xAC00 + ((a - 0x1100) * 21 + (b - 0x1161)) * 28;
    if (a >= 0xAC00 && a <= 0xD7A3 && (a - 0xAC00) % 28 == 0 && b > 0x11A7 && b < 0x11C3)
        return a + (b - 0x11A7);
    if (b < 0x300) return 0; /* no non-Hangul pair has its second part below U+0300 */
    uint64_t key = (uint64_t)a << 21 | b;
    int lo = 0, hi = uc_n_comp - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        uint64_t k = (uint64_t)uc_comp_pairs[mid].a << 21 | uc_comp_pairs[mid].b;
        if (k == key) return uc_comp_pairs[mid].c;
        if (k < key) lo = mid + 1;
        else hi = mid - 1;
    }
    return 0;
}
