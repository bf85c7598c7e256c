/*
 * bench_tokenize.c: tokenizer throughput: 1 MB of mixed text (llama.cpp's
 * tokenizer test texts repeated: English, code, CJK, emoji, whitespace
 * runs) per model, one warmup then 5 timed runs; prints the median MB/s.
 * -p times the plain forms the fast paths replaced (SPM in one queue, BPE
 * without the word cache; no special-token scan) for before/after figures.
 * A TEXTS file of 1 MB or more is used once, unrepeated.
 * usage: bench_tokenize [-p] TEXTS MODEL...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer/tok_internal.h"
#include "error.h"
#include "util.h"

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The plain forms: one SPM queue, BPE without its word cache. */
static vki_status encode_plain(const vki_tokenizer *t, const char *text, size_t len, int32_t **ids, int32_t *n)
{
    tok_ids out = {0};
    tok_scratch sc = {.no_cache = true};
    vki_status st;
    switch (vki_tokenizer_kind(t)) {
    case VKI_TOK_SPM: st = tok_spm_encode_whole(t, text, len, t->add_space_prefix, &out); break;
    case VKI_TOK_BPE: st = tok_bpe_encode(t, text, len, &sc, &out); break;
    default: st = tok_wpm_encode(t, text, len, &out); break;
    }
    tok_scratch_free(&sc);
    *ids = out.v;
    *n = out.n;
    return st;
}

int main(int argc, char **argv)
{
    bool plain = argc > 1 && strcmp(argv[1], "-p") == 0;
    argv += plain;
    argc -= plain;
    if (argc < 3) {
        fprintf(stderr, "usage: %s [-p] TEXTS MODEL...\n", argv[0]);
        return 2;
    }
    FILE *fp = fopen(argv[1], "rb");
    if (!fp) { fprintf(stderr, "%s: cannot open\n", argv[1]); return 1; }
    static char unit[1 << 20];
    size_t n_unit = fread(unit, 1, sizeof unit, fp);
    fclose(fp);
    if (n_unit == 0) { fprintf(stderr, "%s: empty\n", argv[1]); return 1; }
    const size_t total = 1u << 20;
    char *text = malloc(total);
    for (size_t i = 0; i < total; i++) text[i] = unit[i % n_unit];
    /* cut at a character boundary so the text stays valid UTF-8 */
    size_t len = total;
    while (len && ((unsigned char)text[len - 1] & 0xC0) == 0x80) len--;
    if (len && (unsigned char)text[len - 1] >= 0xC0) len--;
    printf("%s\n| model | kind | ids | MB/s (median of 5) |\n|---|---|---:|---:|\n",
           plain ? "plain forms (-p): SPM one queue, BPE no word cache" : "vki_tokenizer_encode");
    for (int m = 2; m < argc; m++) {
        vki_model_file *f = NULL;
        vki_tokenizer *t = NULL;
        if (vki_file_open(argv[m], &f) != VKI_OK || vki_tokenizer_create(f, &t) != VKI_OK) {
            fprintf(stderr, "%s: %s\n", argv[m], vki_last_error());
            vki_file_close(f);
            continue;
        }
        double ms[6];
        int32_t n = 0;
        for (int r = 0; r < 6; r++) {
            int32_t *ids = NULL;
            double t0 = vki_time_ms();
            vki_status st = plain ? encode_plain(t, text, len, &ids, &n)
                                  : vki_tokenizer_encode(t, text, len, false, false, &ids, &n);
            if (st != VKI_OK) {
                fprintf(stderr, "%s: %s\n", argv[m], vki_last_error());
                break;
            }
            ms[r] = vki_time_ms() - t0;
            free(ids);
        }
        qsort(ms + 1, 5, sizeof *ms, cmp_d); /* run 0 is the warmup */
        printf("| %s | %s | %d | %.2f |\n", argv[m], vki_tokenizer_kind_name(t), n, (double)len / (1 << 20) / (ms[3] / 1000.0));
        vki_tokenizer_destroy(t);
        vki_file_close(f);
    }
    free(text);
    return 0;
}
