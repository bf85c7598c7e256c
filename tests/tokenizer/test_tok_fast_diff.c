/*
 * test_tok_fast_diff.c: the fast paths against the plain forms they
 * replaced, id for id: SPM segmented vs one queue (tok_spm_encode_whole,
 * with and without the dummy prefix), BPE with vs without the per-call word
 * cache. Random texts built from vocabulary pieces, space runs, newlines,
 * CJK, emoji, combining marks, digits and invalid bytes; also the llama.cpp
 * test texts one by one and all together.
 * usage: test_tok_fast_diff MODEL...
 */
#include "engine/tokenizer/tok_internal.h"
#include "tok_test_util.h"

static int n_texts, n_diff;

static void compare(const vki_tokenizer *t, const char *text, size_t len, const char *label)
{
    const bool spm = vki_tokenizer_kind(t) == VKI_TOK_SPM;
    for (int prefix = 0; prefix < (spm ? 2 : 1); prefix++) {
        tok_ids a = {0}, b = {0};
        vki_status sa, sb;
        if (spm) {
            sa = tok_spm_encode(t, text, len, prefix, &a);
            sb = tok_spm_encode_whole(t, text, len, prefix, &b);
        } else {
            tok_scratch cached = {0}, plain = {.no_cache = true};
            sa = tok_bpe_encode(t, text, len, &cached, &a);
            sb = tok_bpe_encode(t, text, len, &plain, &b);
            tok_scratch_free(&cached);
            tok_scratch_free(&plain);
        }
        n_texts++;
        CHECKF(sa == VKI_OK && sb == VKI_OK, "%s: encode failed: %s", label, vki_last_error());
        bool same = a.n == b.n && (a.n == 0 || memcmp(a.v, b.v, (size_t)a.n * sizeof *a.v) == 0);
        if (!same && n_diff++ < 5) {
            CHECKF(false, "%s (prefix %d): fast and plain encodings differ for '%.*s'", label, prefix,
                   (int)VKI_MIN(len, 120), text);
            tt_print_ids("fast ", a.v, a.n);
            tt_print_ids("plain", b.v, b.n);
        } else if (!same) {
            CHECK(false);
        }
        free(a.v);
        free(b.v);
    }
}

/* A random text of up to `max` bytes; pool > 0 draws the vocabulary pieces
 * from only that many tokens, so that words repeat (the BPE cache). */
static size_t random_text(const vki_tokenizer *t, uint64_t *rng, char *out, size_t max, uint64_t pool)
{
    static const char *const extra[] = {
        " ", "  ", "   ", "      ", "\n", "\n\n", "\t", " \n ", "\xe2\x96\x81", "\xe4\xb8\xad\xe6\x96\x87",
        "\xf0\x9f\x98\x80", "\xf0\x9f\xa6\x99", "e\xcc\x81", "\xc3\xa9", "\xd0\x9f\xd1\x80\xd0\xb8", "123", "4567",
        "(", ")", "{", "}", "...", "!!", "\xff", "\xc3", "\xe2\x82", "\0", "<s>", "</s>", "<0x41>", "'", "\"",
        "\xea\xb0\x80", "\xd8\xa7\xd9\x84",
    };
    size_t n = 0;
    size_t want = 1 + test_rand_u64(rng) % max;
    while (n < want) {
        const char *p;
        size_t l;
        if (test_rand_u64(rng) % 3 == 0) {
            p = extra[test_rand_u64(rng) % VKI_COUNT(extra)];
            l = p[0] ? strlen(p) : 1;
        } else {
            uint64_t nv = (uint64_t)vki_tokenizer_n_vocab(t);
            int32_t id = (int32_t)(pool ? (test_rand_u64(rng) % pool) * 977 % nv : test_rand_u64(rng) % nv);
            p = tok_text(t, id);
            l = t->tokens[id].len;
        }
        if (n + l > max) break;
        /* a vocabulary piece's '▁' stands for a space in text */
        for (size_t i = 0; i < l;) {
            if (i + 3 <= l && memcmp(p + i, "\xe2\x96\x81", 3) == 0 && test_rand_u64(rng) % 4) {
                out[n++] = ' ';
                i += 3;
            } else {
                out[n++] = p[i++];
            }
        }
    }
    return n;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL...\n", argv[0]);
        return 2;
    }
    uint64_t rng = 0x5eed5eedull;
    char *buf = malloc(4096);
    for (int m = 1; m < argc; m++) {
        vki_tokenizer *t = tt_open(test_shared_path(argv[m]), NULL);
        CHECK(t != NULL);
        if (!t) continue;
        CHECKF(vki_tokenizer_kind(t) != VKI_TOK_WPM, "%s: WordPiece has no fast path to compare", argv[m]);
        int before = n_texts;
        for (int i = 0; i < 3000; i++) {
            size_t len = random_text(t, &rng, buf, i < 2000 ? 200 : 4000, i < 2500 ? 0 : 40);
            char label[256];
            snprintf(label, sizeof label, "%s random %d", argv[m], i);
            compare(t, buf, len, label);
        }
        /* the llama.cpp texts one by one and as one text */
        size_t inp_len;
        char *inp = test_read_file(test_shared_path("vocab/llamacpp/ggml-vocab-llama-spm.gguf.inp"), &inp_len);
        CHECK(inp != NULL);
        if (inp) {
            compare(t, inp, inp_len, "all llama.cpp texts");
            static const char sep[] = "\n__ggml_vocab_test__\n";
            for (char *p = inp; p;) {
                char *e = strstr(p, sep);
                size_t len = e ? (size_t)(e - p) : strlen(p);
                compare(t, p, len, "llama.cpp text");
                p = e ? e + strlen(sep) : NULL;
            }
            free(inp);
        }
        printf("%s: %d encodings compared\n", argv[m], n_texts - before);
        vki_tokenizer_destroy(t);
    }
    free(buf);
    printf("%d texts, %d differ\n", n_texts, n_diff);
    return test_finish("tok_fast_diff");
}
