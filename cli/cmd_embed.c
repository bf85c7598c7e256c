/* cmd_embed.c: `vkinfer embed`: embeddings of texts with a BERT-family
 * model, as lines of numbers or one JSON object {"dim":N,"embeddings":[...]}. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char cmd_embed_help[] =
    "embed texts with a BERT-family model\n"
    "usage: vkinfer embed -m MODEL [options] TEXT...\n"
    "  -m, --model PATH      GGUF file, .safetensors or HF folder\n"
    "  --pooling mean|cls|last  override the model's pooling (<arch>.pooling_type)\n"
    "  --no-normalize        skip the L2 normalisation\n"
    "  --backend B           cpu | vulkan | auto (default auto: Vulkan if a device works, else CPU)\n"
    "  --threads N           CPU threads (default: all cores)\n"
    "  --json                print {\"dim\":N,\"embeddings\":[[...],...]}\n";

int cmd_embed(int argc, char **argv)
{
    const char *model_path = NULL, *sv;
    const char **texts = calloc((size_t)argc, sizeof *texts);
    int32_t n_texts = 0;
    vki_embed_params xp = vki_embed_default_params();
    vki_model_params mp = vki_model_default_params();
    vki_engine_params ep = vki_engine_default_params();
    bool json = false;
    long lv;
    if (!texts) return cli_error("out of memory");
    vki_engine *eng = NULL;
    vki_model *model = NULL;
    float *out = NULL;
    int rc = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            fputs(cmd_embed_help, stdout);
            rc = 0;
            goto done;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!cli_arg_str(argc, argv, &i, &model_path)) goto done;
        } else if (!strcmp(a, "--pooling")) {
            if (!cli_arg_str(argc, argv, &i, &sv)) goto done;
            if (!strcmp(sv, "mean")) xp.pooling = VKI_POOLING_MEAN;
            else if (!strcmp(sv, "cls")) xp.pooling = VKI_POOLING_CLS;
            else if (!strcmp(sv, "last")) xp.pooling = VKI_POOLING_LAST;
            else {
                cli_error("option --pooling: '%s' is not mean, cls or last", sv);
                goto done;
            }
        } else if (!strcmp(a, "--no-normalize")) {
            xp.normalize = false;
        } else if (!strcmp(a, "--backend")) {
            if (!cli_arg_backend(argc, argv, &i, &mp.backend)) goto done;
        } else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
            if (!cli_arg_int(argc, argv, &i, 1, 1024, &lv)) goto done;
            ep.n_threads = (int32_t)lv;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--")) {
            while (++i < argc) texts[n_texts++] = argv[i];
        } else if (a[0] == '-' && a[1]) {
            cli_error("embed: unknown option '%s' (see vkinfer embed --help)", a);
            goto done;
        } else {
            texts[n_texts++] = a;
        }
    }
    if (!model_path) {
        cli_error("embed: -m MODEL is required (see vkinfer embed --help)");
        goto done;
    }
    if (n_texts == 0) {
        cli_error("embed: give at least one TEXT");
        goto done;
    }
    vki_status s;
    if (!cli_load_model(model_path, &ep, &mp, &eng, &model)) goto done;
    if (!vki_model_is_embedding(model)) {
        cli_error("%s: this is a generation model (%s); use vkinfer run", model_path, vki_model_arch(model));
        goto done;
    }
    const int32_t dim = vki_model_n_embd(model);
    out = malloc(sizeof *out * (size_t)dim * (size_t)n_texts);
    if (!out) {
        cli_error("out of memory");
        goto done;
    }
    if ((s = vki_embed(model, texts, n_texts, &xp, out)) != VKI_OK) {
        cli_status_error(s, "embed");
        goto done;
    }
    if (json) printf("{\"dim\":%d,\"embeddings\":[", dim);
    for (int32_t t = 0; t < n_texts; t++) {
        if (json) printf("%s[", t ? "," : "");
        for (int32_t j = 0; j < dim; j++)
            printf(json ? "%s%.8g" : "%s%.8g", j ? (json ? "," : " ") : "", out[(size_t)t * (size_t)dim + (size_t)j]);
        fputs(json ? "]" : "\n", stdout);
    }
    if (json) puts("]}");
    rc = 0;
done:
    free(out);
    vki_model_destroy(model);
    vki_engine_destroy(eng);
    free(texts);
    return rc;
}
