/* fuzz_jinja.c: libFuzzer target for the Jinja chat-template interpreter:
 * the input is a template, then optionally a NUL byte and a JSON context
 * (a fixed conversation when absent or not an object). Parse errors, render
 * errors and the limits are all fine; a crash, a leak or undefined
 * behaviour is not. Limits are small so that each input stays quick: a
 * loop to 200000 steps took 25 ms and a 1.6 MB string product 400 ms under
 * the sanitizers (the campaign ran at a few hundred inputs a second); the
 * limit checks are the same code at any size. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "engine/template/jinja.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char default_ctx[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"sys\"}, {\"role\": \"user\", \"content\": \"hi <|x|>\"},"
    "{\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"type\": \"function\", \"function\":"
    "{\"name\": \"f\", \"arguments\": {\"a\": 1}}}]}, {\"role\": \"tool\", \"content\": [{\"type\": \"text\","
    "\"text\": \"42\"}]}], \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}],"
    "\"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    const char *z = memchr(p, 0, size);
    size_t tn = z ? (size_t)(z - p) : size;
    cJSON *ctx = z ? cJSON_ParseWithLength(z + 1, size - tn - 1) : NULL;
    if (!cJSON_IsObject(ctx)) {
        cJSON_Delete(ctx);
        ctx = cJSON_Parse(default_ctx);
    }
    jinja_template *t = NULL;
    if (jinja_parse(p, tn, "fuzz", &t) == VKI_OK) {
        jinja_limits lim = jinja_default_limits();
        lim.max_steps = 20000;
        lim.max_output = 64 << 10;
        lim.max_memory = 1 << 20;
        lim.max_depth = 32;
        char *out = NULL;
        vki_text_span *spans = NULL;
        size_t n = 0, len = 0;
        if (jinja_render(t, ctx, &lim, &out, &len, &spans, &n) == VKI_OK) {
            /* the spans lie inside the output, in order */
            size_t end = 0;
            for (size_t i = 0; i < n; i++) {
                if (spans[i].off < end || spans[i].off + spans[i].len > len || !spans[i].len) abort();
                end = spans[i].off + spans[i].len;
            }
        }
        free(out);
        free(spans);
        jinja_template_destroy(t);
    }
    cJSON_Delete(ctx);
    return 0;
}
