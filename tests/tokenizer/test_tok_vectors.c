/*
 * test_tok_vectors.c: every tokenizer test vector in ../shared, id for id.
 *   inp MODEL BASE         llama.cpp vectors: BASE.inp texts, BASE.out ids (no specials)
 *   json MODEL FILE...     {"cases":[{"text","ids"[,"ids_with_special"]}]} (HF / SPM reference)
 * Also checks text -> ids -> text (SPM, byte-level BPE) and that streaming
 * detokenization equals whole detokenization.
 */
#include <cjson/cJSON.h>

#include "tok_test_util.h"

static int n_cases, n_pass;

/* parse_special: Hugging Face's tokenizers always split out added special
 * tokens found in text, so vectors made with it are compared that way. */
static void check_case(const vki_tokenizer *t, const char *text, size_t len, const int32_t *want, int32_t n_want,
                       bool add_special, bool parse_special, const char *label)
{
    int32_t *ids = NULL, n = 0;
    vki_status s = vki_tokenizer_encode(t, text, len, add_special, parse_special, &ids, &n);
    n_cases++;
    CHECKF(s == VKI_OK, "%s: encode failed: %s", label, vki_last_error());
    if (s != VKI_OK) return;
    bool same = n == n_want && (n == 0 || memcmp(ids, want, (size_t)n * sizeof *ids) == 0);
    if (!same) {
        CHECKF(false, "%s: ids differ for text '%.*s'", label, (int)VKI_MIN(len, 200), text);
        tt_print_ids("got ", ids, n);
        tt_print_ids("want", want, n_want);
    }
    bool rt = vki_tokenizer_kind(t) != VKI_TOK_WPM && !add_special;
    if (rt && parse_special) {
        /* Special tokens decode to nothing without `special`: the identity
         * holds only for texts in which none was recognised. */
        int32_t *plain = NULL, n_plain = 0;
        if (vki_tokenizer_encode(t, text, len, false, false, &plain, &n_plain) == VKI_OK)
            rt = n_plain == n && memcmp(plain, ids, (size_t)n * sizeof *ids) == 0;
        free(plain);
    }
    if (same && tt_check_decode(t, text, len, ids, n, rt, label)) n_pass++;
    free(ids);
}

static int run_inp(const char *model, const char *base)
{
    char path[4096];
    vki_tokenizer *t = tt_open(test_shared_path(model), NULL);
    CHECK(t != NULL);
    if (!t) return test_finish(base);
    snprintf(path, sizeof path, "%s.inp", base);
    size_t inp_len, out_len;
    char *inp = test_read_file(test_shared_path(path), &inp_len);
    snprintf(path, sizeof path, "%s.out", base);
    char *out = test_read_file(test_shared_path(path), &out_len);
    CHECK(inp && out);
    static const char sep[] = "\n__ggml_vocab_test__\n";
    char *p = inp, *o = out;
    int idx = 0;
    int32_t want[4096];
    while (p && o && *o) {
        char *e = strstr(p, sep);
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (!e && len == 0) break; /* the file ends with an empty entry */
        char *eol = strchr(o, '\n');
        if (eol) *eol = 0;
        int32_t n = 0;
        for (char *q = o; *q;) {
            char *end;
            long v = strtol(q, &end, 10);
            if (end == q) break;
            if (n < 4096) want[n++] = (int32_t)v;
            q = end;
        }
        char label[256];
        snprintf(label, sizeof label, "%s case %d", base, idx++);
        check_case(t, p, len, want, n, false, false, label);
        o = eol ? eol + 1 : o + strlen(o);
        p = e ? e + strlen(sep) : NULL;
    }
    printf("%s: %d/%d cases pass (%s, pre '%s')\n", base, n_pass, n_cases, vki_tokenizer_kind_name(t), t ? "" : "");
    CHECKF(n_cases > 20, "only %d cases read", n_cases);
    free(inp);
    free(out);
    vki_tokenizer_destroy(t);
    return test_finish(base);
}

static bool ids_of(const cJSON *arr, int32_t **out, int32_t *n)
{
    if (!cJSON_IsArray(arr)) return false;
    *n = cJSON_GetArraySize(arr);
    *out = malloc(sizeof **out * (size_t)(*n + 1));
    int32_t i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, arr) (*out)[i++] = (int32_t)x->valuedouble;
    return true;
}

static int run_json(const char *model, int n_files, char **files)
{
    vki_tokenizer *t = tt_open(test_shared_path(model), NULL);
    CHECK(t != NULL);
    size_t ml = strlen(model);
    bool hf = !(ml > 5 && strcmp(model + ml - 5, ".gguf") == 0);
    for (int fi = 0; t && fi < n_files; fi++) {
        size_t len;
        char *js = test_read_file(test_shared_path(files[fi]), &len);
        cJSON *root = js ? cJSON_ParseWithLength(js, len) : NULL;
        CHECKF(root != NULL, "cannot parse %s", files[fi]);
        const cJSON *c;
        int idx = 0;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases"))
        {
            const cJSON *text = cJSON_GetObjectItem(c, "text");
            int32_t *want = NULL, n = 0;
            char label[512];
            snprintf(label, sizeof label, "%s case %d", files[fi], idx++);
            if (!cJSON_IsString(text) || !ids_of(cJSON_GetObjectItem(c, "ids"), &want, &n)) {
                CHECKF(false, "%s: malformed case", label);
                continue;
            }
            check_case(t, text->valuestring, strlen(text->valuestring), want, n, false, hf, label);
            free(want);
            if (ids_of(cJSON_GetObjectItem(c, "ids_with_special"), &want, &n)) {
                strncat(label, " (with special tokens)", sizeof label - strlen(label) - 1);
                check_case(t, text->valuestring, strlen(text->valuestring), want, n, true, hf, label);
                free(want);
            }
        }
        cJSON_Delete(root);
        free(js);
    }
    printf("%s: %d/%d cases pass\n", model, n_pass, n_cases);
    CHECKF(n_cases > 20, "only %d cases read", n_cases);
    vki_tokenizer_destroy(t);
    return test_finish(model);
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "inp") == 0) return run_inp(argv[2], argv[3]);
    if (argc >= 4 && strcmp(argv[1], "json") == 0) return run_json(argv[2], argc - 3, argv + 3);
    fprintf(stderr, "usage: %s inp MODEL BASE | json MODEL FILE...\n", argv[0]);
    return 2;
}
