/*
 * bench_tokenize.c: tokenizer throughput: 1 MB of mixed text (llama.cpp's
 * tokenizer test texts repeated: English, code, CJK, emoji, whitespace
 * runs) per model, one warmup then 5 timed runs; prints the median MB/s.
 * usage: bench_tokenize TEXTS.inp MODEL...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer/tokenizer.h"
#include "error.h"
#include "util.h"

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s TEXTS.inp MODEL...\n", argv[0]);
        return 2;
    }
    FILE *fp = fopen(argv[1], "rb");
    if (!fp) { fprintf(stderr, "%s: cannot open\n", argv[1]); return 1; }
    char unit[1 << 16];
    size_t n_unit = fread(unit, 1, sizeof unit, fp);
    fclose(fp);
    const size_t total = 1u << 20;
    char *text = malloc(total);
    for (size_t i = 0; i < total; i++) text[i] = unit[i % n_unit];
    /* cut at a character boundary so the text stays valid UTF-8 */
    size_t len = total;
    while (len && ((unsigned char)text[len - 1] & 0xC0) == 0x80) len--;
    if (len && (unsigned char)text[len - 1] >= 0xC0) len--;
    printf("| model | kind | ids | MB/s (median of 5) |\n|---|---|---:|---:|\n");
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
            if (vki_tokenizer_encode(t, text, len, false, false, &ids, &n) != VKI_OK) {
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
