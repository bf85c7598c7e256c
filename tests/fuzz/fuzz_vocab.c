/* fuzz_vocab.c: see fuzz_vocab.h. The in-process vocabularies are written
 * as tokenizer.json text and go through the loader's HF mapping, as a
 * downloaded tokenizer would; they hold the special tokens the chat
 * families write, so control-token text in hostile input has something to
 * match. */
#include "fuzz_vocab.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "loader/file_impl.h"

#define MAX_VOCABS 24

static fz_vocab vocabs[MAX_VOCABS];
static int32_t n_vocabs, n_small;
static bool built;

/* ----- tokenizer.json text ----- */

typedef struct jbuf { char *p; size_t n, cap; } jbuf;

static void jput(jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jput(jbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        b->cap = 2 * b->cap + (size_t)k + 256;
        b->p = realloc(b->p, b->cap);
        if (!b->p) __builtin_trap();
    }
}

/* GPT-2's byte -> code point table (bytes_to_unicode), as UTF-8. */
static void byte_symbol(int b, char out[4])
{
    uint32_t cp = (uint32_t)b;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)) {
        int k = 0;
        for (int i = 0; i < b; i++)
            if (!((i >= 33 && i <= 126) || (i >= 161 && i <= 172) || i >= 174)) k++;
        cp = 256u + (uint32_t)k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = 0;
    }
}

/* A JSON string body for s: quotes and backslashes escaped. */
static void jstr(jbuf *b, const char *s)
{
    jput(b, "\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') jput(b, "\\%c", *s);
        else jput(b, "%c", *s);
    }
    jput(b, "\"");
}

/* The special tokens every in-process vocabulary adds after its own ids:
 * the markers of the chat families and two generic ones. */
static const char *const specials[] = {
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|start_header_id|>",
    "<|end_header_id|>", "<|eot_id|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>",
    "<start_of_turn>", "<end_of_turn>", "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>",
};

static void added_tokens(jbuf *b, int first_id, const char *const *own, int n_own)
{
    jput(b, ",\"added_tokens\":[");
    int id = first_id;
    for (int i = 0; i < n_own; i++) {
        jput(b, "%s{\"id\":%d,\"content\":", i ? "," : "", i);
        jstr(b, own[i]);
        jput(b, ",\"special\":true}");
    }
    for (size_t i = 0; i < sizeof specials / sizeof *specials; i++) {
        jput(b, "%s{\"id\":%d,\"content\":", n_own || i ? "," : "", id++);
        jstr(b, specials[i]);
        jput(b, ",\"special\":true}");
    }
    jput(b, "]");
}

static void vocab_specials(jbuf *b, int first_id)
{
    for (size_t i = 0; i < sizeof specials / sizeof *specials; i++) {
        jput(b, ",");
        jstr(b, specials[i]);
        jput(b, ":%d", first_id + (int)i);
    }
}

/* Byte-level BPE (GPT-2 / llama-3 style): the 256 byte symbols, a few
 * merges, the specials; <|endoftext|> is its end of text. */
static char *json_bpe(void)
{
    static const char *const merges[][3] = {
        {"\xc4\xa0", "t", "\xc4\xa0t"}, {"h", "e", "he"}, {"\xc4\xa0t", "he", "\xc4\xa0the"}, {"i", "n", "in"},
        {"e", "r", "er"}, {"\xc4\xa0", "a", "\xc4\xa0\x61"}, {"o", "n", "on"}, {"\xc4\xa0", "\xc4\xa0", "\xc4\xa0\xc4\xa0"},
        {"\xc3", "\xa9", "\xc3\xa9"}, {"Ċ", "Ċ", "ĊĊ"},
    };
    jbuf b = {0};
    jput(&b, "{\"model\":{\"type\":\"BPE\",\"vocab\":{");
    int id = 0;
    for (int c = 0; c < 256; c++) {
        char s[4];
        byte_symbol(c, s);
        jput(&b, "%s", c ? "," : "");
        jstr(&b, s);
        jput(&b, ":%d", id++);
    }
    for (size_t m = 0; m < sizeof merges / sizeof *merges; m++) {
        jput(&b, ",");
        jstr(&b, merges[m][2]);
        jput(&b, ":%d", id++);
    }
    vocab_specials(&b, id);
    jput(&b, "},\"merges\":[");
    for (size_t m = 0; m < sizeof merges / sizeof *merges; m++) {
        char pair[32];
        snprintf(pair, sizeof pair, "%s %s", merges[m][0], merges[m][1]);
        jput(&b, "%s", m ? "," : "");
        jstr(&b, pair);
    }
    jput(&b, "]}");
    added_tokens(&b, id, NULL, 0);
    jput(&b, ",\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}"
             ",\"decoder\":{\"type\":\"ByteLevel\"}}");
    return b.p;
}

/* SPM-style BPE with byte fallback (llama-2 / mistral style). */
static char *json_spm(void)
{
    static const char *const merges[][3] = {
        {"\xe2\x96\x81", "t", "\xe2\x96\x81t"}, {"h", "e", "he"}, {"\xe2\x96\x81t", "he", "\xe2\x96\x81the"},
        {"i", "n", "in"}, {"\xe2\x96\x81", "a", "\xe2\x96\x81\x61"}, {"o", "n", "on"},
    };
    static const char *const own[] = {"<unk>", "<s>", "</s>"};
    jbuf b = {0};
    jput(&b, "{\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"unk_token\":\"<unk>\",\"fuse_unk\":true,"
             "\"vocab\":{\"<unk>\":0,\"<s>\":1,\"</s>\":2");
    int id = 3;
    for (int c = 0; c < 256; c++) jput(&b, ",\"<0x%02X>\":%d", c, id++);
    jput(&b, ",\"\xe2\x96\x81\":%d", id++);
    for (char c = 'a'; c <= 'z'; c++) jput(&b, ",\"%c\":%d", c, id++);
    jput(&b, ",\"\xc3\xa9\":%d", id++);
    for (size_t m = 0; m < sizeof merges / sizeof *merges; m++) {
        jput(&b, ",");
        jstr(&b, merges[m][2]);
        jput(&b, ":%d", id++);
    }
    vocab_specials(&b, id);
    jput(&b, "},\"merges\":[");
    for (size_t m = 0; m < sizeof merges / sizeof *merges; m++) {
        char pair[32];
        snprintf(pair, sizeof pair, "%s %s", merges[m][0], merges[m][1]);
        jput(&b, "%s", m ? "," : "");
        jstr(&b, pair);
    }
    jput(&b, "]}");
    added_tokens(&b, id, own, 3);
    jput(&b, ",\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xe2\x96\x81\"},"
             "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"}]}"
             ",\"pre_tokenizer\":null"
             ",\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":"
             "\"\xe2\x96\x81\"},\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\","
             "\"content\":\" \",\"start\":1,\"stop\":0}]}}");
    return b.p;
}

/* WordPiece (BERT style): letters, digits, ## continuations, punctuation. */
static char *json_wpm(void)
{
    static const char *const own[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    static const char *const words[] = {"the", "##s", "##ing", "un", "##able", "\xc3\xa9t\xc3\xa9", "##\xc3\xa9",
                                        "\xe4\xb8\xad", "!", ".", ",", "?", "'", "-", "(", ")"};
    jbuf b = {0};
    jput(&b, "{\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\",\"continuing_subword_prefix\":\"##\","
             "\"max_input_chars_per_word\":100,\"vocab\":{\"[PAD]\":0,\"[UNK]\":1,\"[CLS]\":2,\"[SEP]\":3,\"[MASK]\":4");
    int id = 5;
    for (char c = 'a'; c <= 'z'; c++) jput(&b, ",\"%c\":%d,\"##%c\":%d", c, id, c, id + 1), id += 2;
    for (char c = '0'; c <= '9'; c++) jput(&b, ",\"%c\":%d,\"##%c\":%d", c, id, c, id + 1), id += 2;
    for (size_t w = 0; w < sizeof words / sizeof *words; w++) {
        jput(&b, ",");
        jstr(&b, words[w]);
        jput(&b, ":%d", id++);
    }
    vocab_specials(&b, id);
    jput(&b, "}}");
    added_tokens(&b, id, own, 5);
    jput(&b, ",\"normalizer\":{\"type\":\"BertNormalizer\",\"clean_text\":true,\"handle_chinese_chars\":true,"
             "\"strip_accents\":null,\"lowercase\":true},\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"},"
             "\"decoder\":{\"type\":\"WordPiece\",\"prefix\":\"##\",\"cleanup\":true}}");
    return b.p;
}

/* SentencePiece unigram (T5 / XLM-R style) with byte pieces. */
static char *json_ugm(void)
{
    static const char *const own[] = {"<unk>", "<s>", "</s>"};
    static const char *const pieces[] = {"\xe2\x96\x81", "\xe2\x96\x81the", "\xe2\x96\x81\x61", "he", "in", "er",
                                         "on", "\xe2\x96\x81t", "\xc3\xa9", "\xe4\xb8\xad"};
    jbuf b = {0};
    jput(&b, "{\"model\":{\"type\":\"Unigram\",\"unk_id\":0,\"byte_fallback\":true,\"vocab\":"
             "[[\"<unk>\",0.0],[\"<s>\",0.0],[\"</s>\",0.0]");
    int id = 3;
    for (size_t p = 0; p < sizeof pieces / sizeof *pieces; p++) {
        jput(&b, ",[");
        jstr(&b, pieces[p]);
        jput(&b, ",%.2f]", -2.0 - 0.25 * (double)p);
        id++;
    }
    for (char c = 'a'; c <= 'z'; c++, id++) jput(&b, ",[\"%c\",%.2f]", c, -6.0 - 0.01 * (c - 'a'));
    for (int c = 0; c < 256; c++, id++) jput(&b, ",[\"<0x%02X>\",-20.0]", c);
    for (size_t i = 0; i < sizeof specials / sizeof *specials; i++) {
        jput(&b, ",[");
        jstr(&b, specials[i]);
        jput(&b, ",0.0]");
    }
    jput(&b, "]}");
    added_tokens(&b, id, own, 3);
    jput(&b, ",\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"Regex\":\" {2,}\"},\"content\":\" \"},"
             "\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\xe2\x96\x81\",\"prepend_scheme\":\"always\","
             "\"split\":true},\"decoder\":{\"type\":\"Metaspace\",\"replacement\":\"\xe2\x96\x81\","
             "\"prepend_scheme\":\"always\",\"split\":true}}");
    return b.p;
}

/* ----- building ----- */

static void add_json(const char *name, char *json, bool exact)
{
    vki_model_file *f = ld_file_new(name);
    vki_tokenizer *t = NULL;
    vki_status s = f ? hf_map_tokenizer(f, "tokenizer.json", json, strlen(json), NULL, 0) : VKI_ERR_OUT_OF_MEMORY;
    if (s == VKI_OK) s = vki_tokenizer_create(f, &t);
    if (s != VKI_OK) {
        fprintf(stderr, "fuzz_vocab: the in-process %s vocabulary does not build: %s\n", name, vki_last_error());
        __builtin_trap();
    }
    free(json);
    vocabs[n_vocabs++] = (fz_vocab){.name = name, .tok = t, .file = f, .exact = exact};
}

static void add_path(const char *path, bool exact)
{
    FILE *probe = fopen(path, "rb");
    if (!probe) return;
    fclose(probe);
    vki_model_file *f = NULL;
    vki_tokenizer *t = NULL;
    if (vki_file_open(path, &f) != VKI_OK || vki_tokenizer_create(f, &t) != VKI_OK) {
        fprintf(stderr, "fuzz_vocab: %s does not build a tokenizer: %s\n", path, vki_last_error());
        __builtin_trap();
    }
    vocabs[n_vocabs++] = (fz_vocab){.name = path, .tok = t, .file = f, .exact = exact};
}

static void build(void)
{
    add_json("bpe", json_bpe(), true);
    add_json("spm", json_spm(), true);
    add_json("wordpiece", json_wpm(), false);
    add_json("ugm", json_ugm(), false);
#ifdef VKI_FUZZ_MODEL
    add_path(VKI_FUZZ_MODEL, false);
#endif
    n_small = 0;
    for (int32_t i = 0; i < n_vocabs; i++)
        if (vki_tokenizer_n_vocab(vocabs[i].tok) <= 4096) n_small++;
#ifdef VKI_FUZZ_SHARED
    /* the larger real vocabularies, when ../shared is there; "+": byte-exact */
    static const char *const shared[] = {
        "+models/stories260K.gguf", "+vocab/llamacpp/ggml-vocab-llama-spm.gguf", "+vocab/llamacpp/ggml-vocab-gpt-2.gguf",
        "+vocab/tok-llama3-hf", "vocab/llamacpp/ggml-vocab-phi-3.gguf", "vocab/llamacpp/ggml-vocab-bert-bge.gguf",
        "vocab/llamacpp/ggml-vocab-deepseek-coder.gguf", "vocab/tok-bert-base-uncased",
    };
    for (size_t i = 0; i < sizeof shared / sizeof *shared && n_vocabs < MAX_VOCABS; i++) {
        char path[4096];
        bool exact = shared[i][0] == '+';
        snprintf(path, sizeof path, "%s/%s", VKI_FUZZ_SHARED, shared[i] + exact);
        int32_t before = n_vocabs;
        add_path(path, exact);
        if (n_vocabs > before) vocabs[n_vocabs - 1].name = strdup(path);
    }
#endif
    built = true;
}

/* libFuzzer calls this once before the first input (the replay driver
 * does not: fz_vocabs builds on first use), so the start-up is not taken
 * for a slow input. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (!built) build();
    return 0;
}

int32_t fz_vocabs(const fz_vocab **out, bool small_only)
{
    if (!built) build();
    *out = vocabs;
    return small_only ? n_small : n_vocabs;
}

bool fz_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!k || i + k > n) return false;
        uint32_t cp = k == 1 ? c : k == 2 ? c & 0x1F : k == 3 ? c & 0x0F : c & 0x07;
        for (size_t j = 1; j < k; j++) {
            if ((p[i + j] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (p[i + j] & 0x3F);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += k;
    }
    return true;
}
