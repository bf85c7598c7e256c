/*
 * test_tok_adversarial.c: hostile inputs give ids or a clear error, never a
 * crash or a hang: invalid UTF-8, 1 MB of one character, NUL bytes, UTF-8
 * encoded lone surrogates, overlong forms, truncated sequences. Where the
 * tokenizer keeps bytes (SPM byte fallback, byte-level BPE) the ids must
 * also decode back to the exact input bytes.
 */
#include "tok_test_util.h"

typedef struct adv_case { const char *name; char *text; size_t len; } adv_case;

static char *repeat(const char *unit, size_t unit_len, size_t total, size_t *len)
{
    size_t n = total / unit_len;
    char *s = malloc(n * unit_len + 1);
    for (size_t i = 0; i < n; i++) memcpy(s + i * unit_len, unit, unit_len);
    s[n * unit_len] = 0;
    *len = n * unit_len;
    return s;
}

static char *dup_bytes(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

#define MB (1u << 20)

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL...\n", argv[0]);
        return 2;
    }
    adv_case cases[32];
    int nc = 0;
#define BYTES(nm, lit) do { cases[nc].name = nm; cases[nc].len = sizeof(lit) - 1; \
    cases[nc].text = dup_bytes(lit, sizeof(lit) - 1); nc++; } while (0)
#define REP(nm, unit, total) do { cases[nc].name = nm; \
    cases[nc].text = repeat(unit, sizeof(unit) - 1, total, &cases[nc].len); nc++; } while (0)
    BYTES("invalid bytes", "ab\xff\xfe cd \x80\x81\xc0 e\xf8\x88\x80\x80\x80");
    BYTES("lone surrogates", "x \xed\xa0\x80 y \xed\xbf\xbf z");
    BYTES("overlong slash", "\xc0\xaf\xe0\x80\xaf\xf0\x80\x80\xaf");
    BYTES("beyond U+10FFFF", "\xf4\x90\x80\x80 \xf7\xbf\xbf\xbf");
    BYTES("truncated sequences", "caf\xc3 na\xe2\x82 end\xf0\x9f\x98 x");
    BYTES("NUL bytes", "a\0b\0\0 c \0");
    BYTES("only NUL", "\0");
    BYTES("specials as text", "<s></s><|im_start|>[CLS]<unk><0x41>");
    REP("1 MB of 'a'", "a", MB);
    REP("1 MB of spaces", " ", MB);
    REP("1 MB of newlines", "\n", MB);
    REP("1 MB of U+00E9", "\xc3\xa9", MB);
    REP("1 MB of digits", "7", MB);
    REP("1 MB of 0xFF", "\xff", MB);
    REP("1 MB of space+newline", " \n", MB);
    REP("1 MB of '!'", "!", MB);

    for (int m = 1; m < argc; m++) {
        /* "+path": a vocabulary whose decode must give back every byte
         * (others may hold user-defined tokens that render as their text) */
        bool exact = argv[m][0] == '+';
        const char *rel = argv[m] + exact;
        vki_tokenizer *t = tt_open(test_shared_path(rel), NULL);
        CHECK(t != NULL);
        if (!t) continue;
        bool wpm = vki_tokenizer_kind(t) == VKI_TOK_WPM;
        for (int c = 0; c < nc; c++) {
            char label[256];
            snprintf(label, sizeof label, "%s: %s", rel, cases[c].name);
            for (int sp = 0; sp < 2; sp++) {
                int32_t *ids = NULL, n = 0;
                double t0 = vki_time_ms();
                vki_status s = vki_tokenizer_encode(t, cases[c].text, cases[c].len, false, sp, &ids, &n);
                double ms = vki_time_ms() - t0;
                /* an error is acceptable only with a message */
                CHECKF(s == VKI_OK || vki_last_error()[0], "%s: failed without a message", label);
                if (s != VKI_OK) {
                    printf("%s: error (%s)\n", label, vki_last_error());
                    continue;
                }
                bool in_range = true;
                for (int32_t i = 0; i < n; i++) in_range &= ids[i] >= 0 && ids[i] < vki_tokenizer_n_vocab(t);
                CHECKF(in_range, "%s: id out of range", label);
                /* WordPiece drops whitespace, controls and invalid bytes */
                CHECKF(wpm || cases[c].len == 0 || n > 0, "%s: no ids for %zu bytes", label, cases[c].len);
                if (sp == 0) {
                    printf("%s: %d ids in %.1f ms\n", label, n, ms);
                    /* round trip is exact when the tokenizer keeps bytes and
                     * no special text was recognised */
                    tt_check_decode(t, cases[c].text, cases[c].len, ids, n, exact, label);
                }
                free(ids);
            }
        }
        vki_tokenizer_destroy(t);
    }
    for (int c = 0; c < nc; c++) free(cases[c].text);
    return test_finish("tok_adversarial");
}
