/* cmd_detokenize.c: `vkinfer detokenize`: token ids back to text with the
 * tokenizer a model file declares (no weights are loaded). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "engine/tokenizer/tokenizer.h"

const char cmd_detokenize_help[] =
    "print the text of token ids\n"
    "usage: vkinfer detokenize -m MODEL [--special] ID...\n"
    "  -m MODEL    a GGUF file, a tokenizer.json or an HF model folder\n"
    "  --special   render special tokens (<s>, <|eot_id|>, ...) as text\n";

int cmd_detokenize(int argc, char **argv)
{
    const char *model = NULL;
    bool special = false;
    int32_t *ids = calloc((size_t)argc + 1, sizeof *ids);
    int32_t n = 0;
    if (!ids) return cli_error("detokenize: out of memory");
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { fputs(cmd_detokenize_help, stdout); free(ids); return 0; }
        else if (!strcmp(argv[i], "-m")) { if (!cli_arg_str(argc, argv, &i, &model)) { free(ids); return 1; } }
        else if (!strcmp(argv[i], "--special")) special = true;
        else {
            char *end;
            errno = 0;
            long v = strtol(argv[i], &end, 10);
            if (*argv[i] == 0 || *end || errno || v < 0 || v > INT32_MAX) {
                free(ids);
                return cli_error("detokenize: '%s' is not a token id", argv[i]);
            }
            ids[n++] = (int32_t)v;
        }
    }
    if (!model) { free(ids); return cli_error("detokenize: -m MODEL is required"); }
    vki_model_file *f = NULL;
    vki_tokenizer *t = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = 1;
    if (!cli_open_tokenizer(model, &f, &t)) goto done;
    vki_status s = vki_tokenizer_decode(t, ids, n, special, &text, &len);
    if (s != VKI_OK) { rc = cli_status_error(s, "detokenize"); goto done; }
    /* ids can end inside a character or hold stray byte tokens: the text
     * printed is valid UTF-8 all the same (broken parts as U+FFFD) */
    cli_write_text(stdout, text, len);
    putchar('\n');
    rc = 0;
done:
    free(text);
    vki_tokenizer_destroy(t);
    vki_file_close(f);
    free(ids);
    return rc;
}
