/* tok_test_util.h: helpers the tokenizer tests share: open a tokenizer from
 * a ../shared path, compare id lists, check text -> ids -> text round trips
 * and streaming against whole detokenization. */
#ifndef VKI_TOK_TEST_UTIL_H
#define VKI_TOK_TEST_UTIL_H

#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer/tokenizer.h"
#include "error.h"
#include "util.h"
#include "test_util.h"

/* Opens `path` (GGUF, tokenizer.json or HF folder) and builds its
 * tokenizer; NULL after printing why. */
static inline vki_tokenizer *tt_open(const char *path, vki_model_file **file)
{
    vki_model_file *f = NULL;
    vki_tokenizer *t = NULL;
    vki_status s = vki_file_open(path, &f);
    if (s != VKI_OK) {
        fprintf(stderr, "open %s: %s: %s\n", path, vki_status_str(s), vki_last_error());
        return NULL;
    }
    s = vki_tokenizer_create(f, &t);
    if (s != VKI_OK) {
        fprintf(stderr, "tokenizer %s: %s: %s\n", path, vki_status_str(s), vki_last_error());
        vki_file_close(f);
        return NULL;
    }
    if (file) *file = f;
    else vki_file_close(f);
    return t;
}

static inline void tt_print_ids(const char *what, const int32_t *ids, int32_t n)
{
    fprintf(stderr, "  %s:", what);
    for (int32_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

/* Whole decode and streaming decode must agree; for SPM/BPE the decode
 * must give back the text. Returns false on a mismatch (already counted). */
static inline bool tt_check_decode(const vki_tokenizer *t, const char *text, size_t len, const int32_t *ids,
                                   int32_t n, bool expect_identity, const char *label)
{
    char *whole = NULL;
    size_t whole_len = 0;
    vki_status s = vki_tokenizer_decode(t, ids, n, false, &whole, &whole_len);
    CHECKF(s == VKI_OK, "%s: decode failed: %s", label, vki_last_error());
    if (s != VKI_OK) return false;
    bool ok = true;
    if (expect_identity && (whole_len != len || memcmp(whole, text, len) != 0)) {
        size_t at = 0;
        while (at < whole_len && at < len && whole[at] == text[at]) at++;
        CHECKF(false, "%s: round trip differs: %zu bytes back for %zu, first difference at byte %zu", label,
               whole_len, len, at);
        ok = false;
    }
    /* streaming: one id at a time into a growing buffer */
    size_t cap = whole_len + 64, k = 0;
    char *st = malloc(cap);
    vki_detok d;
    vki_detok_init(&d, t);
    for (int32_t i = 0; i < n; i++) {
        int32_t w = vki_detok_push(&d, ids[i], st + k, (int32_t)(cap - k));
        CHECKF(w >= 0, "%s: detok_push needed %d more bytes", label, -w);
        if (w < 0) break;
        k += (size_t)w;
    }
    int32_t w = vki_detok_finish(&d, st + k, (int32_t)(cap - k));
    if (w > 0) k += (size_t)w;
    if (k != whole_len || memcmp(st, whole, k) != 0) {
        CHECKF(false, "%s: streaming gave %zu bytes, whole decode %zu", label, k, whole_len);
        ok = false;
    }
    free(st);
    free(whole);
    return ok;
}

#endif
