/* fuzz_stop.c: libFuzzer target for the generate path's text: streaming
 * detokenization and stop strings held back until ruled out
 * (engine/gen_seq.c, which vki_generate and the scheduler both step).
 * Random token streams (forced through greedy sampling) meet random stop
 * lists; checked against a plain reference (decode everything, cut at the
 * first stop that completes, in the text as shown, broken bytes as
 * U+FFFD): every chunk is valid UTF-8, the chunks
 * together are the reference text, no stop string reaches the output, and
 * generation ends at the token the reference ends at, for the reason it
 * gives.
 * Input: [vocab] [flags] [n_stops] ([len] bytes)... then token ids as
 * little-endian u16 (mod the vocabulary). flags: 1 ignore_eos, 2 the
 * prompt is more than BOS, 4 a context that ends the stream early. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gen_seq.h"
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
#define MAX_STOPS 4
#define MAX_TOKENS 256

typedef struct tbuf { char *p; size_t n, cap; } tbuf;

static void tput(tbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = 2 * b->cap + n + 64;
        b->p = realloc(b->p, b->cap);
        FZ_CHECK(b->p);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

/* The reference detokenizer's output for one push (id >= 0) or the flush:
 * raw into b, and as the text shows it (U+FFFD for broken bytes) into shown. */
static void ref_push(tbuf *b, tbuf *shown, vki_detok *d, int32_t id)
{
    char buf[512], fixed[3 * 512];
    int32_t w = id >= 0 ? vki_detok_push(d, id, buf, sizeof buf) : vki_detok_finish(d, buf, sizeof buf);
    FZ_CHECK(w >= 0); /* no piece of these vocabularies is near 512 bytes */
    tput(b, buf, (size_t)w);
    tput(shown, fixed, vki_utf8_sanitize(buf, (size_t)w, fixed));
}

/* Where the earliest stop string starts in s[0..n), or -1, looking only at
 * starts from `from` on: written apart from gen_seq.c's own search. */
static ptrdiff_t first_stop(const char *s, size_t from, size_t n, char stops[][256], int n_stops)
{
    for (size_t p = from; p < n; p++)
        for (int i = 0; i < n_stops; i++) {
            size_t sl = strlen(stops[i]);
            if (sl && sl <= n - p && !memcmp(s + p, stops[i], sl)) return (ptrdiff_t)p;
        }
    return -1;
}

static bool contains(const char *s, size_t n, const char *what)
{
    size_t m = strlen(what);
    for (size_t p = 0; m && p + m <= n; p++)
        if (!memcmp(s + p, what, m)) return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const fz_vocab *v;
    int32_t nv = fz_vocabs(&v, true);
    if (size < 3) return 0;
    const vki_tokenizer *t = v[data[0] % nv].tok;
    uint8_t flags = data[1];
    int n_stops = data[2] % (MAX_STOPS + 1);
    data += 3;
    size -= 3;
    char stops[MAX_STOPS][256];
    const char *stop_list[MAX_STOPS + 1];
    for (int i = 0; i < n_stops; i++) {
        size_t sl = size ? data[0] % 9 : 0;
        if (size) data++, size--;
        if (sl > size) sl = size;
        memcpy(stops[i], data, sl);
        stops[i][sl] = '\0'; /* a NUL inside ends the string, as in C */
        stop_list[i] = stops[i];
        data += sl;
        size -= sl;
    }
    stop_list[n_stops] = NULL;
    int32_t n_vocab = vki_tokenizer_n_vocab(t), n_tok = (int32_t)VKI_MIN(size / 2, MAX_TOKENS);
    if (n_tok < 1) return 0;
    int32_t *ids = malloc((size_t)n_tok * sizeof *ids);
    for (int32_t i = 0; i < n_tok; i++) ids[i] = (int32_t)((data[2 * i] | data[2 * i + 1] << 8) % n_vocab);

    int32_t bos = vki_tokenizer_bos(t);
    int32_t prompt[2] = {bos >= 0 ? bos : 0, ids[0]};
    int32_t n_prompt = flags & 2 ? 2 : 1;
    int32_t n_ctx = n_prompt + n_tok + 1;
    if (flags & 4) n_ctx = n_prompt + 1 + n_tok / 2;
    vki_generate_params gp = vki_generate_default_params();
    gp.temperature = 0; /* greedy: the one raised logit is the token */
    gp.n_predict = n_tok;
    gp.stop = n_stops ? stop_list : NULL;
    gp.ignore_eos = flags & 1;
    gen_seq g;
    bool stops_valid = true;
    for (int i = 0; i < n_stops; i++) stops_valid &= fz_utf8_valid(stops[i], strlen(stops[i]));
    vki_status s = gen_seq_init(&g, t, &gp, prompt, n_prompt, n_vocab, n_ctx);
    if (!stops_valid) {
        /* a broken stop string could only match inside a character */
        FZ_CHECK(s == VKI_ERR_INVALID_ARGUMENT);
        free(ids);
        return 0;
    }
    FZ_CHECK(s == VKI_OK);

    /* the reference: the same detokenizer state gen_seq_init sets up */
    vki_detok rd;
    vki_detok_init(&rd, t);
    if (n_prompt > 1 || prompt[0] != bos) rd.n_pushed = n_prompt;
    tbuf raw = {0}, ref = {0}, got = {0};
    tput(&raw, "", 0);
    tput(&ref, "", 0);
    tput(&got, "", 0);
    float *logits = calloc((size_t)n_vocab, sizeof *logits);
    ptrdiff_t ref_at = -1;
    bool ref_eog = false;
    int32_t steps = 0;
    for (int32_t i = 0; i < n_tok; i++) {
        memset(logits, 0, (size_t)n_vocab * sizeof *logits);
        logits[ids[i]] = 1.0f;
        vki_token_event ev;
        bool last = false;
        int32_t kv_len = n_prompt + i;
        FZ_CHECK(gen_seq_step(&g, logits, kv_len, &ev, &last) == VKI_OK);
        FZ_CHECK(ev.id == ids[i]);
        FZ_CHECK(fz_utf8_valid(g.out.p, g.out.n));
        tput(&got, g.out.p, g.out.n);
        steps++;

        size_t ref_before = ref.n;
        bool eog = !gp.ignore_eos && vki_tokenizer_is_eog(t, ids[i]);
        bool ref_last = eog || i + 1 >= n_tok || kv_len >= n_ctx;
        if (!eog) ref_push(&raw, &ref, &rd, ids[i]);
        if (ref_last) ref_push(&raw, &ref, &rd, -1);
        /* no stop was complete before this token: one now ends in its text */
        ref_at = first_stop(ref.p, ref_before > 8 ? ref_before - 8 : 0, ref.n, stops, n_stops);
        ref_eog = eog;
        FZ_CHECK(last == (ref_last || ref_at >= 0)); /* it ends where the reference ends */
        if (last) break;
    }
    FZ_CHECK(g.st.n_generated == steps);
    FZ_CHECK(g.st.stopped_by_string == (ref_at >= 0));
    FZ_CHECK(g.st.stopped_by_eos == ref_eog);
    /* shown piece by piece is the whole raw text shown at once: the
     * detokenizer never split a character between pushes */
    char *whole = malloc(3 * raw.n + 1);
    FZ_CHECK(vki_utf8_sanitize(raw.p, raw.n, whole) == ref.n && !memcmp(whole, ref.p, ref.n));
    size_t keep = ref_at >= 0 ? (size_t)ref_at : ref.n;
    FZ_CHECK(got.n == keep && !memcmp(got.p, ref.p, keep));
    for (int i = 0; i < n_stops; i++) FZ_CHECK(!contains(got.p, got.n, stops[i]));

    free(whole);
    free(raw.p);
    free(logits);
    free(ref.p);
    free(got.p);
    free(ids);
    gen_seq_deinit(&g);
    return 0;
}
