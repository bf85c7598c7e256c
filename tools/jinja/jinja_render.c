/* jinja_render.c: `vkinfer-jinja-render TEMPLATE CONTEXT.json [--spans]`:
 * prints the template rendered with the context's variables (messages,
 * tools, add_generation_prompt, bos_token, ...). With --spans, each content
 * span follows on stderr as "span OFF LEN". Exit 0 rendered, 1 usage or
 * file errors, 2 the template failed to render (the message on stderr as
 * "render error: ..."), 3 it failed to parse ("parse error: ..."). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/template/jinja.h"

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *p = NULL;
    size_t len = 0, cap = 0, k;
    char chunk[65536];
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + k + 1 > cap) {
            cap = (len + k + 1) * 2;
            char *q = realloc(p, cap);
            if (!q) { free(p); fclose(f); return NULL; }
            p = q;
        }
        memcpy(p + len, chunk, k);
        len += k;
    }
    fclose(f);
    if (!p && !(p = calloc(1, 1))) return NULL;
    p[len] = 0;
    *n = len;
    return p;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: vkinfer-jinja-render TEMPLATE CONTEXT.json [--spans]\n");
        return 1;
    }
    bool want_spans = argc > 3 && !strcmp(argv[3], "--spans");
    size_t tn, cn;
    char *tmpl = slurp(argv[1], &tn), *ctxs = slurp(argv[2], &cn);
    if (!tmpl || !ctxs) {
        fprintf(stderr, "cannot read %s\n", !tmpl ? argv[1] : argv[2]);
        free(tmpl);
        free(ctxs);
        return 1;
    }
    cJSON *ctx = cJSON_ParseWithLength(ctxs, cn);
    int rc = 1;
    jinja_template *t = NULL;
    char *out = NULL;
    vki_text_span *spans = NULL;
    size_t n_spans = 0, len = 0;
    if (!cJSON_IsObject(ctx)) {
        fprintf(stderr, "%s: not a JSON object\n", argv[2]);
        goto done;
    }
    if (jinja_parse(tmpl, tn, argv[1], &t) != VKI_OK) {
        fprintf(stderr, "parse error: %s\n", vki_last_error());
        rc = 3;
        goto done;
    }
    if (jinja_render(t, ctx, NULL, &out, &len, want_spans ? &spans : NULL, want_spans ? &n_spans : NULL) != VKI_OK) {
        fprintf(stderr, "render error: %s\n", vki_last_error());
        rc = 2;
        goto done;
    }
    fwrite(out, 1, len, stdout);
    for (size_t i = 0; i < n_spans; i++) fprintf(stderr, "span %zu %zu\n", spans[i].off, spans[i].len);
    rc = 0;
done:
    free(spans);
    free(out);
    jinja_template_destroy(t);
    cJSON_Delete(ctx);
    free(tmpl);
    free(ctxs);
    return rc;
}
