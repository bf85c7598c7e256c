/* cmd_chat_template.c: `vkinfer chat-template`: renders a JSON list of
 * messages with the chat template a model declares (or one named). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "engine/tokenizer/chat_template.h"

const char cmd_chat_template_help[] =
    "print the prompt a chat model sees for a list of messages\n"
    "usage: vkinfer chat-template -m MODEL -f MESSAGES.json [--template NAME] [--no-generation-prompt]\n"
    "  -m MODEL           a GGUF file, a tokenizer.json or an HF model folder\n"
    "  -f MESSAGES.json   [{\"role\": \"user\", \"content\": \"...\"}, ...]\n"
    "  --template NAME    chatml, qwen, llama2, llama3, mistral, phi3, gemma, zephyr\n"
    "                     (default: recognised from the model's template)\n";

int cmd_chat_template(int argc, char **argv)
{
    const char *model = NULL, *path = NULL, *name = NULL;
    bool gen = true;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) { fputs(cmd_chat_template_help, stdout); return 0; }
        else if (!strcmp(argv[i], "-m")) { if (!cli_arg_str(argc, argv, &i, &model)) return 1; }
        else if (!strcmp(argv[i], "-f")) { if (!cli_arg_str(argc, argv, &i, &path)) return 1; }
        else if (!strcmp(argv[i], "--template")) { if (!cli_arg_str(argc, argv, &i, &name)) return 1; }
        else if (!strcmp(argv[i], "--no-generation-prompt")) gen = false;
        else return cli_error("chat-template: unknown option '%s' (see vkinfer chat-template --help)", argv[i]);
    }
    if (!model || !path) return cli_error("chat-template: -m MODEL and -f MESSAGES.json are required");
    FILE *fp = fopen(path, "rb");
    if (!fp) return cli_error("%s: cannot open the file", path);
    char *js = NULL;
    size_t len = 0, cap = 0, k;
    char chunk[4096];
    while ((k = fread(chunk, 1, sizeof chunk, fp)) > 0) {
        if (len + k > cap) {
            cap = (len + k) * 2;
            char *t = realloc(js, cap);
            if (!t) { free(js); fclose(fp); return cli_error("chat-template: out of memory"); }
            js = t;
        }
        memcpy(js + len, chunk, k);
        len += k;
    }
    fclose(fp);
    cJSON *root = cJSON_ParseWithLength(js ? js : "", len);
    vki_chat_msg *msgs = NULL;
    vki_model_file *f = NULL;
    char *out = NULL;
    int rc = 1, n = 0;
    if (!cJSON_IsArray(root)) { rc = cli_error("%s: expected a JSON array of {role, content} objects", path); goto done; }
    msgs = calloc((size_t)cJSON_GetArraySize(root) + 1, sizeof *msgs);
    if (!msgs) { rc = cli_error("chat-template: out of memory"); goto done; }
    const cJSON *m;
    cJSON_ArrayForEach(m, root)
    {
        const cJSON *r = cJSON_GetObjectItem(m, "role"), *c = cJSON_GetObjectItem(m, "content");
        if (!cJSON_IsString(r) || !cJSON_IsString(c)) {
            rc = cli_error("%s: message %d needs string fields \"role\" and \"content\"", path, n);
            goto done;
        }
        msgs[n].role = r->valuestring;
        msgs[n].content = c->valuestring;
        n++;
    }
    vki_status s = vki_file_open(model, &f);
    if (s != VKI_OK) { rc = cli_status_error(s, model); goto done; }
    s = vki_chat_apply(f, name, msgs, (size_t)n, gen, &out);
    if (s != VKI_OK) { rc = cli_status_error(s, "chat-template"); goto done; }
    fputs(out, stdout);
    rc = 0;
done:
    free(out);
    vki_file_close(f);
    free(msgs);
    cJSON_Delete(root);
    free(js);
    return rc;
}
