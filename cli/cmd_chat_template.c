/* cmd_chat_template.c: `vkinfer chat-template`: renders a conversation
 * (a JSON list of messages, or an object with messages, tools and further
 * template variables) with the chat template a model declares (or one
 * named). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "engine/tokenizer/chat_template.h"

const char cmd_chat_template_help[] =
    "print the prompt a chat model sees for a list of messages\n"
    "usage: vkinfer chat-template -m MODEL -f MESSAGES.json [--template NAME] [--no-generation-prompt]\n"
    "  -m MODEL           a GGUF file, a tokenizer.json or an HF model folder\n"
    "  -f MESSAGES.json   [{\"role\": \"user\", \"content\": \"...\"}, ...], or\n"
    "                     {\"messages\": [...], \"tools\": [...], \"add_generation_prompt\": false,\n"
    "                     other template variables}\n"
    "  --template NAME    chatml, qwen, llama2, llama3, mistral, phi3, gemma, zephyr\n"
    "                     (default: the model's own Jinja template)\n";

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
    cJSON *root = cJSON_ParseWithLength(js ? js : "", len), *extra = NULL;
    vki_model_file *f = NULL;
    char *out = NULL;
    int rc = 1;
    const cJSON *msgs = root, *tools = NULL;
    if (cJSON_IsObject(root)) {
        msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
        tools = cJSON_GetObjectItemCaseSensitive(root, "tools");
        const cJSON *agp = cJSON_GetObjectItemCaseSensitive(root, "add_generation_prompt");
        if (agp && !cJSON_IsBool(agp)) { rc = cli_error("%s: add_generation_prompt: expected true or false", path); goto done; }
        if (agp) gen = cJSON_IsTrue(agp);
        /* everything else is a template variable */
        extra = cJSON_Duplicate(root, true);
        if (!extra) { rc = cli_error("chat-template: out of memory"); goto done; }
        cJSON_DeleteItemFromObjectCaseSensitive(extra, "messages");
        cJSON_DeleteItemFromObjectCaseSensitive(extra, "tools");
        cJSON_DeleteItemFromObjectCaseSensitive(extra, "add_generation_prompt");
    }
    if (!cJSON_IsArray(msgs)) {
        rc = cli_error("%s: expected a JSON array of messages or an object with \"messages\"", path);
        goto done;
    }
    vki_status s = vki_file_open(model, &f);
    if (s != VKI_OK) { rc = cli_status_error(s, model); goto done; }
    s = vki_chat_apply_json(f, name, msgs, tools, extra, gen, &out, NULL, NULL);
    if (s != VKI_OK) { rc = cli_status_error(s, "chat-template"); goto done; }
    fputs(out, stdout);
    rc = 0;
done:
    free(out);
    vki_file_close(f);
    cJSON_Delete(extra);
    cJSON_Delete(root);
    free(js);
    return rc;
}
