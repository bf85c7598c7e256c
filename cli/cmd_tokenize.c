/* cmd_tokenize.c: `vkinfer tokenize`: text to token ids with the tokenizer
 * a model file declares (no weights are loaded). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "engine/tokenizer/tokenizer.h"

const char cmd_tokenize_help[] =
    "print the token ids of a text\n"
    "usage: vkinfer tokenize -m MODEL [--no-special] [--parse-special] [--json] (-p TEXT | -f FILE)\n"
    "  -m MODEL          a GGUF file, a tokenizer.json or an HF model folder\n"
    "  --no-special      add no BOS/EOS/[CLS]/[SEP]\n"
    "  --parse-special   recognise special-token text such as <s> inside the text\n"
    "  --json            print one JSON array\n";

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    size_t k;
    while (s && (k = fread(s + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            char *t = realloc(s, cap *= 2);
            if (!t) { free(s); s = NULL; }
            else s = t;
        }
    }
    fclose(f);
    *len = n;
    return s;
}

int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *text = NULL, *file = NULL;
    bool special = true, parse_special = false, json = false;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { fputs(cmd_tokenize_help, stdout); return 0; }
        else if (!strcmp(argv[i], "-m")) { if (!cli_arg_str(argc, argv, &i, &model)) return 1; }
        else if (!strcmp(argv[i], "-p")) { if (!cli_arg_str(argc, argv, &i, &text)) return 1; }
        else if (!strcmp(argv[i], "-f")) { if (!cli_arg_str(argc, argv, &i, &file)) return 1; }
        else if (!strcmp(argv[i], "--no-special")) special = false;
        else if (!strcmp(argv[i], "--parse-special")) parse_special = true;
        else if (!strcmp(argv[i], "--json")) json = true;
        else return cli_error("tokenize: unknown option '%s' (see vkinfer tokenize --help)", argv[i]);
    }
    if (!model) return cli_error("tokenize: -m MODEL is required");
    if (!text == !file) return cli_error("tokenize: give exactly one of -p TEXT and -f FILE");
    size_t len = 0;
    char *buf = NULL;
    if (file) {
        buf = read_all(file, &len);
        if (!buf) return cli_error("%s: cannot read the file", file);
    }
    vki_model_file *f = NULL;
    vki_tokenizer *t = NULL;
    int32_t *ids = NULL, n = 0;
    int rc = 1;
    if (!cli_open_tokenizer(model, &f, &t)) goto done;
    vki_status s = vki_tokenizer_encode(t, file ? buf : text, file ? len : strlen(text), special, parse_special, &ids, &n);
    if (s != VKI_OK) { rc = cli_status_error(s, "tokenize"); goto done; }
    if (json) putchar('[');
    for (int32_t i = 0; i < n; i++) printf(json ? "%s%d" : "%s%d", i ? (json ? ", " : " ") : "", ids[i]);
    puts(json ? "]" : "");
    rc = 0;
done:
    free(ids);
    vki_tokenizer_destroy(t);
    vki_file_close(f);
    free(buf);
    return rc;
}
