/* fuzz_tokenizer.c: libFuzzer target for encode and decode on hostile text
 * (invalid UTF-8, NULs, control-token text, long repeats) over every
 * tokenizer kind (fuzz_vocab.h). Checks: an encode error says why; ids are
 * in the vocabulary; streaming and whole decoding agree; byte-exact
 * vocabularies give the text back; with literal spans no special token
 * comes from inside a span.
 * Input: [vocab] [flags] [span bytes if literal] text...
 * flags: 1 add_special, 2 parse_special, 4 literal spans, 8 repeat the
 * text up to 256 bytes, past WordPiece's 100-character words
 * (tok_adversarial runs 1 MB repeats). A repeat costs the fuzzer its
 * speed: every byte passes hundreds of traced comparisons. 8 KiB repeats
 * in half the inputs held it at ~70 inputs per CPU second, 1 KiB at ~1200,
 * nine tenths of its time in the repeated inputs, though the tokenizers
 * are linear in the text (3.7 and 4.3 us a byte at 8 and 64 KiB).
 * Unrepeated inputs up to -max_len 1024 (run.sh) still reach the buffers'
 * first growth at 256 and 1024 entries. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fuzz_vocab.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(c)                                                                        \
    do {                                                                                   \
        if (!(c)) {                                                                        \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);           \
            __builtin_trap();                                                              \
        }                                                                                  \
    } while (0)
#define MAX_SPANS 4
#define REPEAT_TO 256u

/* Decodes ids whole and one at a time; both must agree. Returns the whole
 * text (malloc'd). */
static char *decode_both(const vki_tokenizer *t, const int32_t *ids, int32_t n, bool special, size_t *len)
{
    char *whole = NULL;
    FZ_CHECK(vki_tokenizer_decode(t, ids, n, special, &whole, len) == VKI_OK);
    FZ_CHECK(whole[*len] == '\0');
    if (special) return whole;
    size_t cap = *len + 64, k = 0;
    char *st = malloc(cap);
    vki_detok d;
    vki_detok_init(&d, t);
    for (int32_t i = 0; i < n; i++) {
        int32_t w = vki_detok_push(&d, ids[i], st + k, (int32_t)(cap - k));
        FZ_CHECK(w >= 0); /* the whole text is as long as the streamed one */
        k += (size_t)w;
    }
    int32_t w = vki_detok_finish(&d, st + k, (int32_t)(cap - k));
    FZ_CHECK(w >= 0);
    k += (size_t)w;
    /* the same bytes, except that an unfinished UTF-8 sequence at the end
     * is one U+FFFD when streamed (vki_detok_finish) */
    size_t tail = vki_utf8_incomplete_tail(whole, *len), body = *len - tail;
    FZ_CHECK(k == body + (tail ? 3 : 0) && !memcmp(st, whole, body));
    FZ_CHECK(!tail || !memcmp(st + body, "\xef\xbf\xbd", 3));
    free(st);
    return whole;
}

/* Whether id is a special token: text only when specials are rendered. */
static bool is_special(const vki_tokenizer *t, int32_t id)
{
    char buf[256];
    return vki_tokenizer_piece(t, id, buf, sizeof buf, false) == 0 && vki_tokenizer_piece(t, id, buf, sizeof buf, true) != 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const fz_vocab *v;
    int32_t nv = fz_vocabs(&v, false);
    if (size < 2) return 0;
    const fz_vocab *voc = &v[data[0] % nv];
    const vki_tokenizer *t = voc->tok;
    uint8_t flags = data[1];
    bool add_special = flags & 1, parse_special = flags & 2, literal = flags & 4;
    data += 2;
    size -= 2;
    uint8_t span_bytes[2 * MAX_SPANS] = {0};
    if (literal) {
        size_t k = size < sizeof span_bytes ? size : sizeof span_bytes;
        memcpy(span_bytes, data, k);
        data += k;
        size -= k;
    }
    size_t len = size;
    char *text = malloc(len ? len : 1);
    if (len) memcpy(text, data, len);
    if ((flags & 8) && size && size < REPEAT_TO) {
        len = REPEAT_TO / size * size;
        text = realloc(text, len);
        for (size_t at = size; at < len; at += size) memcpy(text + at, data, size);
    }

    /* spans over the text, in order, from the span bytes as fractions */
    vki_text_span spans[MAX_SPANS];
    size_t n_spans = 0, pos = 0;
    for (int i = 0; literal && i < MAX_SPANS && pos < len; i++) {
        size_t gap = (size_t)span_bytes[2 * i] * (len - pos) / 256;
        size_t sl = ((size_t)span_bytes[2 * i + 1] + 1) * (len - pos - gap) / 256;
        spans[n_spans++] = (vki_text_span){.off = pos + gap, .len = sl};
        pos += gap + sl;
    }

    int32_t *ids = NULL, n = 0;
    vki_clear_error();
    vki_status s = literal ? vki_tokenizer_encode_literal(t, text, len, add_special, spans, n_spans, &ids, &n)
                           : vki_tokenizer_encode(t, text, len, add_special, parse_special, &ids, &n);
    if (s != VKI_OK) {
        FZ_CHECK(vki_last_error()[0]); /* a refusal says why */
        FZ_CHECK(!ids);
        free(text);
        return 0;
    }
    int32_t n_vocab = vki_tokenizer_n_vocab(t);
    for (int32_t i = 0; i < n; i++) FZ_CHECK(ids[i] >= 0 && ids[i] < n_vocab);

    size_t out_len = 0;
    char *out = decode_both(t, ids, n, false, &out_len);
    /* Byte-exact vocabularies give every byte back when no special token
     * was added or parsed; SPM's, except for a U+2581 in the text, which
     * its decoder turns into the space it stands for (as sentencepiece). */
    bool spm_lossy = vki_tokenizer_kind(t) != VKI_TOK_BPE && memmem(text, len, "\xe2\x96\x81", 3);
    if (voc->exact && !add_special && !parse_special && !literal && !spm_lossy)
        FZ_CHECK(out_len == len && !memcmp(out, text, len));
    free(out);

    /* The in-process byte-level BPE has no normalizer: with specials
     * rendered, its ids spell the text exactly, so each special token's
     * place is known and must lie outside the literal spans. */
    if (!strcmp(voc->name, "bpe") && !add_special) {
        out = decode_both(t, ids, n, true, &out_len);
        FZ_CHECK(out_len == len && !memcmp(out, text, len));
        free(out);
        if (literal) {
            size_t off = 0;
            for (int32_t i = 0; i < n; i++) {
                char piece[256];
                int32_t pl = vki_tokenizer_piece(t, ids[i], piece, sizeof piece, true);
                FZ_CHECK(pl >= 0);
                if (is_special(t, ids[i]))
                    for (size_t k = 0; k < n_spans; k++)
                        FZ_CHECK(off + (size_t)pl <= spans[k].off || off >= spans[k].off + spans[k].len);
                off += (size_t)pl;
            }
            FZ_CHECK(off == len);
        }
    }
    free(ids);
    free(text);
    return 0;
}
