/*
 * test_tok_pre.c: pre-tokenizer splits that no vocabulary in ../shared
 * covers. deepseek-llm (llama.cpp's DEEPSEEK_LLM: six patterns applied in
 * turn, each to every piece the previous ones left, matches and gaps both
 * kept): the expected pieces were computed by running those six patterns
 * with Python's re, piece by piece, on the same texts (\p{N} as the Nd, Nl
 * and No code points; $ as the end of the piece). The list shows the
 * family's quirks: its letters are a list of cased-letter ranges (no kana,
 * no U+02BC), and ASCII :-~ in the punctuation pattern includes the
 * letters, so " café" is cut into " caf" and "é".
 * Also: a BPE GGUF without tokenizer.ggml.pre loads with llama.cpp's
 * default split (a warning on stderr) and splits as pre = "default" does.
 * The vocabularies are written here: 256 byte-level symbols, one merge.
 */
#include <unistd.h>

#include "engine/tokenizer/tok_internal.h"
#include "engine/tokenizer/unicode.h"
#include "loader/gguf.h"
#include "tok_test_util.h"

typedef struct split_case {
    const char *text;
    const char *pieces[24]; /* NULL-terminated */
} split_case;

static const split_case deepseek_llm[] = {
    {"Hello, world! \xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c 123 abc\x0a\x0ax  ",
     {"Hello", ",", " world", "!", " ", "\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c", " ", "123", " abc", "\x0a", "\x0a", "x", "  ", NULL}},
    {"\xc3\x80\xc3\x89\xc3\x8e \xc2\xb5m \xe1\xbd\xbd caf\xc3\xa9 \xef\xac\x81ne \xef\xbc\xa8\xef\xbd\x85\xef\xbd\x8c\xef\xbd\x8c\xef\xbd\x8f\xef\xbc\x81 \xf0\x90\x90\x80\xf0\x90\x90\xa8",
     {"\xc3\x80\xc3\x89\xc3\x8e", " \xc2\xb5", "m", " ", "\xe1\xbd\xbd", " caf", "\xc3\xa9", " \xef\xac\x81", "ne", " \xef\xbc\xa8\xef\xbd\x85\xef\xbd\x8c\xef\xbd\x8c\xef\xbd\x8f", "\xef\xbc\x81", " \xf0\x90\x90\x80\xf0\x90\x90\xa8", NULL}},
    {"\xc3\x84rger\xe2\x80\x94sch\xc3\xb6n\xe2\x80\xa6 \xca\xbc""apostrophe \xe2\x80\x9cquoted\xe2\x80\x9d\xe3\x80\x82",
     {"\xc3\x84", "rger", "\xe2\x80\x94", "sch", "\xc3\xb6", "n", "\xe2\x80\xa6", " \xca\xbc", "apostrophe", " ", "\xe2\x80\x9c", "quoted", "\xe2\x80\x9d\xe3\x80\x82", NULL}},
    {"3.14159 \xd9\xa1\xd9\xa2\xd9\xa3 \xc2\xbd",
     {"3", ".", "14159", " ", "\xd9\xa1\xd9\xa2\xd9\xa3", " ", "\xc2\xbd", NULL}},
    {"  leading and trailing  ",
     {" ", " leading", " and", " trailing", "  ", NULL}},
    {"tab\x09here\x0d\x0a""end",
     {"tab", "\x09here", "\x0d", "\x0a", "end", NULL}},
    {"\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4 \xed\x85\x8d\xec\x8a\xa4\xed\x8a\xb8 \xe3\x81\xb2\xe3\x82\x89\xe3\x81\x8c\xe3\x81\xaa",
     {"\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4", " ", "\xed\x85\x8d\xec\x8a\xa4\xed\x8a\xb8", " ", "\xe3\x81\xb2\xe3\x82\x89\xe3\x81\x8c\xe3\x81\xaa", NULL}},
    {"don't stop_me now?!",
     {"don", "'", "t", " stop", "_", "me", " now", "?!", NULL}},
};

/* Writes a byte-level BPE vocabulary GGUF; pre NULL = no tokenizer.ggml.pre. */
static bool write_vocab(const char *path, const char *pre)
{
    char sym[257][8];
    const char *tokens[257];
    int32_t types[257];
    for (int b = 0; b < 256; b++) {
        sym[b][uc_encode(tok_byte_to_cp((uint8_t)b), sym[b])] = '\0';
        tokens[b] = sym[b];
        types[b] = 1;
    }
    snprintf(sym[256], sizeof sym[256], "ab");
    tokens[256] = sym[256];
    types[256] = 1;
    const char *merges[] = {"a b"};
    gguf_writer *w = gguf_writer_create(GGUF_DEFAULT_ALIGNMENT);
    vki_status s = w ? VKI_OK : VKI_ERR_OUT_OF_MEMORY;
    if (s == VKI_OK) s = gguf_write_str(w, "general.architecture", "llama");
    if (s == VKI_OK) s = gguf_write_str(w, "tokenizer.ggml.model", "gpt2");
    if (s == VKI_OK && pre) s = gguf_write_str(w, "tokenizer.ggml.pre", pre);
    if (s == VKI_OK) s = gguf_write_arr_str(w, "tokenizer.ggml.tokens", tokens, 257);
    if (s == VKI_OK) s = gguf_write_arr_i32(w, "tokenizer.ggml.token_type", types, 257);
    if (s == VKI_OK) s = gguf_write_arr_str(w, "tokenizer.ggml.merges", merges, 1);
    if (s == VKI_OK) s = gguf_writer_save(w, path);
    gguf_writer_destroy(w);
    CHECKF(s == VKI_OK, "writing %s: %s", path, vki_last_error());
    return s == VKI_OK;
}

/* The pieces the tokenizer's pre-tokenizer cuts text into, as "a|b|c". */
static char *pieces_of(const vki_tokenizer *t, const char *text)
{
    size_t len = strlen(text), n = 0;
    uint32_t *cps = malloc((len + 1) * sizeof *cps);
    size_t *offs = malloc((len + 1) * sizeof *offs);
    for (size_t i = 0; i < len;) {
        int l;
        cps[n] = uc_decode((const uint8_t *)text + i, len - i, &l);
        offs[n++] = i;
        i += (size_t)l;
    }
    offs[n] = len;
    tok_scratch sc = {0};
    char *out = calloc(2 * len + 2, 1);
    if (tok_pretokenize(t->re, t->n_re, cps, (int64_t)n, &sc) == VKI_OK) {
        for (int64_t k = 0; k < sc.a.n; k++) {
            if (k) strcat(out, "|");
            strncat(out, text + offs[sc.a.v[k].a], offs[sc.a.v[k].b] - offs[sc.a.v[k].a]);
        }
    }
    tok_scratch_free(&sc);
    free(cps);
    free(offs);
    return out;
}

static char *joined(const char *const *pieces)
{
    size_t n = 2;
    for (int i = 0; pieces[i]; i++) n += strlen(pieces[i]) + 1;
    char *s = calloc(n, 1);
    for (int i = 0; pieces[i]; i++) {
        if (i) strcat(s, "|");
        strcat(s, pieces[i]);
    }
    return s;
}

int main(void)
{
    char dir[] = "/tmp/vki_tok_pre_XXXXXX", path[256];
    if (!mkdtemp(dir)) test_skip("cannot make a temporary folder");

    snprintf(path, sizeof path, "%s/deepseek-llm.gguf", dir);
    vki_tokenizer *t = write_vocab(path, "deepseek-llm") ? tt_open(path, NULL) : NULL;
    CHECK(t != NULL);
    int n_pass = 0, n_cases = (int)VKI_COUNT(deepseek_llm);
    for (int c = 0; t && c < n_cases; c++) {
        char *got = pieces_of(t, deepseek_llm[c].text), *want = joined(deepseek_llm[c].pieces);
        CHECKF(!strcmp(got, want), "deepseek-llm case %d:\n  got  %s\n  want %s", c, got, want);
        n_pass += !strcmp(got, want);
        free(got);
        free(want);
    }
    printf("deepseek-llm: %d/%d texts split as its patterns do\n", n_pass, n_cases);
    /* and through the whole encoder: every byte survives the split */
    if (t) {
        const char *text = deepseek_llm[1].text;
        int32_t *ids = NULL, n = 0;
        CHECK(vki_tokenizer_encode(t, text, strlen(text), false, false, &ids, &n) == VKI_OK);
        tt_check_decode(t, text, strlen(text), ids, n, true, "deepseek-llm round trip");
        free(ids);
    }
    vki_tokenizer_destroy(t);
    unlink(path);

    /* no tokenizer.ggml.pre: llama.cpp's default split, said on stderr */
    char dpath[256];
    snprintf(path, sizeof path, "%s/no-pre.gguf", dir);
    snprintf(dpath, sizeof dpath, "%s/default.gguf", dir);
    vki_tokenizer *nt = write_vocab(path, NULL) ? tt_open(path, NULL) : NULL;
    vki_tokenizer *dt = write_vocab(dpath, "default") ? tt_open(dpath, NULL) : NULL;
    CHECKF(nt != NULL, "a BPE GGUF without tokenizer.ggml.pre is refused: %s", vki_last_error());
    if (nt && dt) {
        CHECKF(!strncmp(nt->pre_name, "default", 7), "pre_name '%s'", nt->pre_name);
        const char *texts[] = {"Hello, world! x=1234567 <a|b> ~$5", "don't 3.14 \xe4\xbd\xa0\xe5\xa5\xbd  end  "};
        for (size_t i = 0; i < VKI_COUNT(texts); i++) {
            char *a = pieces_of(nt, texts[i]), *b = pieces_of(dt, texts[i]);
            CHECKF(!strcmp(a, b), "no pre: %s\n  default: %s", a, b);
            free(a);
            free(b);
        }
    }
    vki_tokenizer_destroy(nt);
    vki_tokenizer_destroy(dt);
    unlink(path);
    unlink(dpath);
    rmdir(dir);
    return test_finish("test_tok_pre");
}
