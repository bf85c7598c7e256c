/*
 * test_tok_ugm.c: SentencePiece unigram (UGM) tokenization against reference
 * vectors made by sentencepiece and HF tokenizers (tools/spm/gen_ugm_vectors.py).
 *   test_tok_ugm (spm|hf MODEL VECTORS)...
 * MODEL is a GGUF or an HF folder; VECTORS is {"cases":[{"text", "ids",
 * "ids_with_special", "decode"}]}. spm vectors keep special-token text as
 * text (SentencePiece never parses it); hf vectors split it out, as HF's
 * added tokens do. Each case checks the ids without and with special tokens,
 * the whole decode against "decode", and streaming decode against the whole;
 * then 300 random byte strings must encode and decode without error.
 * The vocabularies are fetched at test time (test_tok_ugm.sh).
 */
#include <cjson/cJSON.h>

#include "tok_test_util.h"

static bool ids_equal(const cJSON *arr, const int32_t *ids, int32_t n)
{
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != n) return false;
    int32_t i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, arr) if (!cJSON_IsNumber(x) || (int32_t)x->valuedouble != ids[i++]) return false;
    return true;
}

static void print_want(const char *what, const cJSON *arr)
{
    fprintf(stderr, "  %s:", what);
    const cJSON *x;
    cJSON_ArrayForEach(x, arr) fprintf(stderr, " %d", (int)x->valuedouble);
    fputc('\n', stderr);
}

/* One encode compared with the reference; false (and the ids printed) when
 * they differ. *ids gets the result for the decode checks (caller frees). */
static bool check_ids(const vki_tokenizer *t, const char *text, bool add_special, bool parse_special,
                      const cJSON *want, const char *label, int32_t **ids, int32_t *n)
{
    *ids = NULL;
    *n = 0;
    vki_status s = vki_tokenizer_encode(t, text, strlen(text), add_special, parse_special, ids, n);
    if (s != VKI_OK) {
        CHECKF(false, "%s: encode failed: %s", label, vki_last_error());
        return false;
    }
    if (ids_equal(want, *ids, *n)) return true;
    CHECKF(false, "%s%s: ids differ for '%.200s'", label, add_special ? " (with special tokens)" : "", text);
    tt_print_ids("got ", *ids, *n);
    print_want("want", want);
    return false;
}

/* Random byte strings (invalid UTF-8, NULs, stray U+2581 bytes, spaces,
 * special-token text): encoding succeeds, ids are in range, and streaming
 * decode equals whole decode. */
static void check_random(const vki_tokenizer *t, const char *model)
{
    static const char *const bits[] = {" ", "  ", "\xe2\x96\x81", "\xe2\x96", "\x81", "a", "\xef\xbd\x81", "\xcc\x81",
                                       "\n", "\0", "</s>", "<unk>", "\xf0\x9f\x98\x80", "\xff", "\xe6\x97\xa5"};
    uint64_t rng = 0x5eed0c0ffee;
    for (int k = 0; k < 300; k++) {
        char buf[256];
        size_t n = 0, want = (size_t)(test_rand_u64(&rng) % 48);
        while (n < want) {
            uint64_t r = test_rand_u64(&rng);
            const char *b = bits[r % VKI_COUNT(bits)];
            size_t l = b[0] ? strlen(b) : 1;
            if (r >> 60 == 0) { buf[n++] = (char)(r >> 8); continue; }
            if (n + l > sizeof buf) break;
            memcpy(buf + n, b, l);
            n += l;
        }
        for (int ps = 0; ps < 2; ps++) {
            int32_t *ids = NULL, n_ids = 0;
            vki_status s = vki_tokenizer_encode(t, buf, n, ps, ps, &ids, &n_ids);
            CHECKF(s == VKI_OK, "%s: random text %d: encode failed: %s", model, k, vki_last_error());
            bool in_range = true;
            for (int32_t i = 0; i < n_ids; i++) in_range &= ids[i] >= 0 && ids[i] < vki_tokenizer_n_vocab(t);
            CHECKF(in_range, "%s: random text %d: an id outside the vocabulary", model, k);
            if (s == VKI_OK && in_range) tt_check_decode(t, buf, n, ids, n_ids, false, model);
            free(ids);
        }
    }
}

static int run_file(const char *mode, const char *model, const char *vectors, int *total, int *passed)
{
    const bool hf = !strcmp(mode, "hf");
    vki_tokenizer *t = tt_open(model, NULL);
    size_t len = 0;
    char *js = test_read_file(vectors, &len);
    cJSON *root = js ? cJSON_ParseWithLength(js, len) : NULL;
    CHECKF(t != NULL, "%s: no tokenizer", model);
    CHECKF(root != NULL, "%s: cannot read or parse", vectors);
    int n_cases = 0, n_pass = 0;
    if (t && root) {
        CHECKF(vki_tokenizer_kind(t) == VKI_TOK_UGM, "%s: kind is %s, expected ugm", model, vki_tokenizer_kind_name(t));
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "cases"))
        {
            const cJSON *text = cJSON_GetObjectItemCaseSensitive(c, "text");
            const cJSON *dec = cJSON_GetObjectItemCaseSensitive(c, "decode");
            char label[256];
            snprintf(label, sizeof label, "%s case %d", vectors, n_cases++);
            if (!cJSON_IsString(text) || !cJSON_IsString(dec)) {
                CHECKF(false, "%s: malformed case", label);
                continue;
            }
            int32_t *ids, *ids_sp, n, n_sp;
            bool ok = check_ids(t, text->valuestring, false, hf, cJSON_GetObjectItemCaseSensitive(c, "ids"), label,
                                &ids, &n);
            ok &= check_ids(t, text->valuestring, true, hf, cJSON_GetObjectItemCaseSensitive(c, "ids_with_special"),
                            label, &ids_sp, &n_sp);
            /* decoding the reference ids: whole == "decode", streaming == whole */
            if (ok) ok = tt_check_decode(t, dec->valuestring, strlen(dec->valuestring), ids, n, true, label);
            n_pass += ok;
            free(ids);
            free(ids_sp);
        }
        check_random(t, model);
    }
    printf("%s on %s: %d/%d cases match\n", vectors, model, n_pass, n_cases);
    CHECKF(n_cases >= 100, "%s: only %d cases read", vectors, n_cases);
    *total += n_cases;
    *passed += n_pass;
    cJSON_Delete(root);
    free(js);
    vki_tokenizer_destroy(t);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4 || (argc - 1) % 3 != 0) {
        fprintf(stderr, "usage: %s (spm|hf MODEL VECTORS)...\n", argv[0]);
        return 2;
    }
    int total = 0, passed = 0;
    for (int i = 1; i + 2 < argc; i += 3) run_file(argv[i], argv[i + 1], argv[i + 2], &total, &passed);
    printf("UGM vectors: %d/%d cases match\n", passed, total);
    return test_finish("test_tok_ugm");
}
