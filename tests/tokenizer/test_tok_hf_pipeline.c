/*
 * test_tok_hf_pipeline.c: HF tokenizer.json normalizers mapped and applied,
 * and unsupported normalizer / pre-tokenizer / decoder types refused at load.
 * Uses tiny generated tokenizer.json files: a byte-level BPE with the 256
 * byte symbols and no merges, so the ids spell the normalized bytes exactly,
 * and an SPM-style byte-fallback vocabulary. Expected texts were computed
 * with Python's unicodedata / str methods, as HF's normalizers define them.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <sys/stat.h>

#include "loader/file_impl.h"
#include "tok_test_util.h"

/* GPT-2's bytes_to_unicode(), written out independently of bpe.c */
static uint32_t byte_cp(int b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) return (uint32_t)b;
    int k = 0;
    for (int i = 0; i < b; i++)
        if (!((i >= 33 && i <= 126) || (i >= 161 && i <= 172) || i >= 174)) k++;
    return 256u + (uint32_t)k;
}

static void utf8(uint32_t cp, char *out)
{
    if (cp < 0x80) { out[0] = (char)cp; out[1] = 0; return; }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    out[2] = 0;
}

static char dir_root[4096];

/* Writes {model, normalizer, pre_tokenizer, decoder, added_tokens} as
 * DIR/<name>/tokenizer.json and returns the folder. kind: 'b' byte-level
 * BPE, 's' SPM-style BPE with byte fallback. */
static const char *write_tok(const char *name, char kind, const char *normalizer, const char *pre, const char *dec)
{
    static char path[4600];
    snprintf(path, sizeof path, "%s/%s", dir_root, name);
    mkdir(path, 0755);
    cJSON *j = cJSON_CreateObject();
    cJSON *m = cJSON_AddObjectToObject(j, "model");
    cJSON_AddStringToObject(m, "type", "BPE");
    cJSON *vocab = cJSON_AddObjectToObject(m, "vocab");
    cJSON_AddArrayToObject(m, "merges");
    int id = 0;
    if (kind == 'b') {
        for (int b = 0; b < 256; b++) {
            char s[4];
            utf8(byte_cp(b), s);
            cJSON_AddNumberToObject(vocab, s, id++);
        }
    } else {
        cJSON_AddBoolToObject(m, "byte_fallback", true);
        cJSON_AddStringToObject(m, "unk_token", "<unk>");
        cJSON_AddNumberToObject(vocab, "<unk>", id++);
        for (int b = 0; b < 256; b++) {
            char s[8];
            snprintf(s, sizeof s, "<0x%02X>", b);
            cJSON_AddNumberToObject(vocab, s, id++);
        }
        cJSON_AddNumberToObject(vocab, "\xe2\x96\x81", id++);
    }
    cJSON *added = cJSON_AddArrayToObject(j, "added_tokens");
    cJSON *at = cJSON_CreateObject();
    cJSON_AddNumberToObject(at, "id", id);
    cJSON_AddStringToObject(at, "content", "<|x|>");
    cJSON_AddBoolToObject(at, "special", true);
    cJSON_AddItemToArray(added, at);
    cJSON_AddItemToObject(j, "normalizer", normalizer ? cJSON_Parse(normalizer) : cJSON_CreateNull());
    cJSON_AddItemToObject(j, "pre_tokenizer", pre ? cJSON_Parse(pre) : cJSON_CreateNull());
    cJSON_AddItemToObject(j, "decoder", dec ? cJSON_Parse(dec) : cJSON_CreateNull());
    char *text = cJSON_PrintUnformatted(j);
    char file[4700];
    snprintf(file, sizeof file, "%s/tokenizer.json", path);
    FILE *fp = fopen(file, "wb");
    CHECKF(fp != NULL, "cannot write %s", file);
    if (fp) {
        fputs(text, fp);
        fclose(fp);
    }
    free(text);
    cJSON_Delete(j);
    return path;
}

/* Opens `dir`; returns the status and keeps the tokenizer in *out. */
static vki_status open_tok(const char *dir, vki_tokenizer **out)
{
    vki_model_file *f = NULL;
    *out = NULL;
    vki_status s = vki_file_open(dir, &f);
    if (s == VKI_OK) s = vki_tokenizer_create(f, out);
    vki_file_close(f);
    return s;
}

/* Encodes text with a byte-level tokenizer and returns the bytes its ids
 * stand for (id = position in the 256 byte symbols; the special = '|'). */
static char *bytes_of(vki_tokenizer *t, const char *text, size_t *n)
{
    int32_t *ids = NULL, k = 0;
    vki_status s = vki_tokenizer_encode(t, text, strlen(text), false, true, &ids, &k);
    CHECKF(s == VKI_OK, "encode: %s", vki_last_error());
    char *out = malloc((size_t)k + 1);
    for (int32_t i = 0; i < k; i++) out[i] = ids[i] == 256 ? '|' : (char)ids[i];
    out[k] = 0;
    *n = (size_t)k;
    free(ids);
    return out;
}

static void expect_bytes(vki_tokenizer *t, const char *text, const char *want, const char *label)
{
    size_t n;
    char *got = bytes_of(t, text, &n);
    bool ok = n == strlen(want) && memcmp(got, want, n) == 0;
    CHECKF(ok, "%s: normalized to '%.*s', expected '%s'", label, (int)n, got, want);
    free(got);
}

static void expect_refused(const char *name, char kind, const char *norm, const char *pre, const char *dec,
                           const char *needle)
{
    vki_tokenizer *t = NULL;
    vki_status s = open_tok(write_tok(name, kind, norm, pre, dec), &t);
    CHECKF(s == VKI_ERR_UNSUPPORTED, "%s: loads with status %s, expected UNSUPPORTED", name, vki_status_str(s));
    CHECKF(s != VKI_OK && strstr(vki_last_error(), needle), "%s: message '%s' does not name '%s'", name,
           vki_last_error(), needle);
    printf("%s: refused: %s\n", name, vki_last_error());
    vki_tokenizer_destroy(t);
}

/* A file whose tokenizer.hf.normalizer (GGUF or mapped) holds `step`:
 * the tokenizer must refuse it by name, not skip it. */
static void expect_step_refused(const char *dir, const char *step)
{
    vki_model_file *f = NULL;
    vki_tokenizer *t = NULL;
    CHECK(vki_file_open(dir, &f) == VKI_OK);
    if (!f) return;
    vki_kv kv = {.key = {"tokenizer.hf.normalizer", strlen("tokenizer.hf.normalizer")}, .type = VKI_KV_ARRAY};
    vki_kv item = {.type = VKI_KV_STRING, .v.s = {step, strlen(step)}};
    kv.v.arr.elem = VKI_KV_STRING;
    kv.v.arr.n = 1;
    kv.v.arr.items = &item;
    CHECK(ld_set_kv(f, &kv) == VKI_OK);
    vki_status s = vki_tokenizer_create(f, &t);
    CHECKF(s == VKI_ERR_UNSUPPORTED && strstr(vki_last_error(), "Nfkc2"),
           "step '%s': status %s, message '%s'", step, vki_status_str(s), vki_last_error());
    printf("metadata step refused: %s\n", vki_last_error());
    vki_tokenizer_destroy(t);
    vki_file_close(f);
}

int main(void)
{
    const char *bd = getenv("VKI_BUILD_DIR");
    snprintf(dir_root, sizeof dir_root, "%s/tok_hf_pipeline.tmp", bd ? bd : ".");
    if (mkdir(dir_root, 0755) != 0 && errno != EEXIST) test_skip("cannot create a scratch folder");
    const char *bytelevel = "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}";

    /* a pipeline of every literal step, applied per run between added tokens */
    vki_tokenizer *t = NULL;
    vki_status s = open_tok(write_tok("seq", 'b',
        "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFKC\"},{\"type\":\"Lowercase\"},"
        "{\"type\":\"Strip\",\"strip_left\":true,\"strip_right\":true},"
        "{\"type\":\"Replace\",\"pattern\":{\"String\":\"e\"},\"content\":\"3\"},"
        "{\"type\":\"Prepend\",\"prepend\":\"^\"}]}", bytelevel, "{\"type\":\"ByteLevel\"}"), &t);
    CHECKF(s == VKI_OK, "seq: %s", vki_last_error());
    if (t) {
        /* Python: NFKC, str.lower per character, strip, replace, prepend */
        expect_bytes(t, "  \xef\xbc\xa8\xef\xbc\xa5\xef\xbc\xac\xef\xbc\xac\xef\xbc\xaf Stra\xc3\x9f" "e \xef\xac\x81 \xc4\xb0"
                        "<|x|> A\xcc\x8a\xcc\x81 <|x|>\t ",
                     "^h3llo stra\xc3\x9f" "3 fi i\xcc\x87|^\xc7\xbb|", "seq");
        expect_bytes(t, "", "", "seq empty");
        vki_tokenizer_destroy(t);
    }
    /* NFD and NFC, Hangul and a composed Latin letter */
    s = open_tok(write_tok("nfd", 'b', "{\"type\":\"NFD\"}", bytelevel, NULL), &t);
    CHECKF(s == VKI_OK, "nfd: %s", vki_last_error());
    if (t) {
        expect_bytes(t, "\xed\x95\x9c\xea\xb8\x80 \xc3\x85",
                     "\xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab\xe1\x84\x80\xe1\x85\xb3\xe1\x86\xaf A\xcc\x8a", "nfd");
        vki_tokenizer_destroy(t);
    }
    s = open_tok(write_tok("nfc", 'b', "{\"type\":\"NFC\"}", bytelevel, NULL), &t);
    CHECKF(s == VKI_OK, "nfc: %s", vki_last_error());
    if (t) {
        expect_bytes(t, "\xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab\xe1\x84\x80\xe1\x85\xb3\xe1\x86\xaf A\xcc\x8a",
                     "\xed\x95\x9c\xea\xb8\x80 \xc3\x85", "nfc");
        /* invalid bytes pass through untouched and block nothing else */
        expect_bytes(t, "e\xcc\x81\xff" "e\xcc\x81", "\xc3\xa9\xff\xc3\xa9", "nfc invalid byte");
        vki_tokenizer_destroy(t);
    }
    /* SPM: Prepend '▁' and Replace ' ' -> '▁' are spm.c's own; NFKC is kept */
    s = open_tok(write_tok("spm", 's',
        "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFKC\"},{\"type\":\"Prepend\",\"prepend\":\"\xe2\x96\x81\"},"
        "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"}]}", NULL,
        "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\xe2\x96\x81\"},"
        "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \","
        "\"start\":1,\"stop\":0}]}"), &t);
    CHECKF(s == VKI_OK, "spm: %s", vki_last_error());
    if (t) {
        int32_t *ids = NULL, n = 0;
        CHECK(vki_tokenizer_encode(t, "\xef\xbc\xa1 b", 5, false, false, &ids, &n) == VKI_OK);
        /* NFKC('Ａ b') = 'A b' -> ▁ A ▁ b (bytes fall back to <0xNN> = 1 + byte) */
        int32_t want[] = {257, 1 + 'A', 257, 1 + 'b'};
        CHECKF(n == 4 && memcmp(ids, want, sizeof want) == 0, "spm: got %d ids", n);
        if (n) tt_print_ids("spm", ids, n);
        free(ids);
        vki_tokenizer_destroy(t);
    }

    /* refused, each with a message naming what */
    expect_step_refused(write_tok("meta", 'b', NULL, bytelevel, NULL), "Nfkc2");
    expect_refused("precompiled", 'b', "{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"\"}", bytelevel, NULL,
                   "Precompiled");
    expect_refused("replace_regex", 'b', "{\"type\":\"Replace\",\"pattern\":{\"Regex\":\" +\"},\"content\":\" \"}",
                   bytelevel, NULL, "Regex");
    expect_refused("nested_unknown", 'b', "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"},{\"type\":\"Nmt\"}]}",
                   bytelevel, NULL, "Nmt");
    expect_refused("bert_norm_on_bpe", 'b', "{\"type\":\"BertNormalizer\"}", bytelevel, NULL, "BertNormalizer");
    expect_refused("pre_whitespace", 'b', NULL, "{\"type\":\"Whitespace\"}", NULL, "Whitespace");
    expect_refused("split_removed", 'b', NULL,
                   "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},\"behavior\":\"Removed\",\"invert\":false}", NULL,
                   "Removed");
    expect_refused("bytelevel_prefix", 'b', NULL, "{\"type\":\"ByteLevel\",\"add_prefix_space\":true}", NULL,
                   "add_prefix_space");
    expect_refused("decoder_ctc", 'b', NULL, bytelevel, "{\"type\":\"CTC\"}", "CTC");
    expect_refused("spm_metaspace_split", 's', NULL,
                   "{\"type\":\"Metaspace\",\"replacement\":\"\xe2\x96\x81\",\"prepend_scheme\":\"always\"}", NULL,
                   "Metaspace");
    expect_refused("spm_no_escape", 's', NULL, NULL, NULL, "never map");
    return test_finish("tok_hf_pipeline");
}
