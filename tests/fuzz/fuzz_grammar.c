/* fuzz_grammar.c: libFuzzer target for engine/grammar: the first byte picks
 * the input kind (even: a JSON Schema, compiled to grammar text first; odd:
 * grammar text), the rest is the text. A grammar that parses then drives a
 * matcher over a small vocabulary for up to 64 steps (mask, lowest allowed
 * token, accept), so the stacks, the trie walk and the cache run too. */
#include <stdlib.h>
#include <string.h>

#include "engine/grammar/grammar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const pieces[] = {"{", "}", "\"", "\":", ",", " ", "a", "ab", "1", "12", "-", ".", "e", "[", "]",
                                     "true", "null", "\\", "u", "0", "\xc3", "\xa9", "\xe4\xb8\xad", "\n", "x\"",
                                     "\"}", "}]", "9", "f", "Z"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    char *compiled = NULL;
    if (!(data[0] & 1)) {
        if (gram_from_json_schema(text, len, &compiled) != VKI_OK) return 0;
        text = compiled;
        len = strlen(compiled);
    }
    gram_grammar *g = NULL;
    if (gram_parse(text, len, &g) == VKI_OK) {
        enum { N = sizeof pieces / sizeof *pieces + 1 };
        const char *t[N];
        int32_t l[N];
        bool eog[N] = {0};
        for (int i = 0; i < N - 1; i++) {
            t[i] = pieces[i];
            l[i] = (int32_t)strlen(pieces[i]);
        }
        t[N - 1] = "";
        l[N - 1] = 0;
        eog[N - 1] = true;
        gram_vocab *v = NULL;
        gram_matcher *m = NULL;
        if (gram_vocab_create_from_texts(N, t, l, eog, &v) == VKI_OK && gram_matcher_create(g, v, &m) == VKI_OK) {
            for (int step = 0; step < 64 && !gram_matcher_must_end(m); step++) {
                const uint32_t *mask;
                if (gram_matcher_mask(m, &mask) != VKI_OK) break;
                int32_t pick = -1;
                for (int32_t i = 0; i < N && pick < 0; i++)
                    if ((mask[i >> 5] >> (i & 31)) & 1u) pick = i;
                if (pick < 0 || pick == N - 1) break;
                if (gram_matcher_accept_token(m, pick) != VKI_OK) abort(); /* the mask allowed it */
            }
        }
        gram_matcher_destroy(m);
        gram_vocab_destroy(v);
    }
    gram_destroy(g);
    free(compiled);
    return 0;
}
