/*
 * schema_run.c: generates one answer per JSON Schema with vki_generate on a
 * model, all in one process (the model loads once), for test_schema_fuzz.py,
 * which validates the answers with an independent validator.
 * Usage: schema_run MODEL SCHEMAS.jsonl OUT.jsonl [MAX_TOKENS]
 * Each input line is a schema; each output line is
 * {"i", "status", "error", "text", "n_generated", "stopped_by_eos"}.
 * Sampling is stochastic (temperature 1, no filters) with seed = line number,
 * so the random-weight model wanders through the whole language.
 */
#define _POSIX_C_SOURCE 200809L /* getline */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "vkinfer.h"

typedef struct out_text { char *p; size_t n, cap; } out_text;

static bool on_token(const vki_token_event *ev, void *user)
{
    out_text *t = user;
    size_t k = strlen(ev->text);
    if (t->n + k + 1 > t->cap) {
        size_t cap = (t->n + k + 1) * 2;
        char *np = realloc(t->p, cap);
        if (!np) return false;
        t->p = np;
        t->cap = cap;
    }
    memcpy(t->p + t->n, ev->text, k + 1);
    t->n += k;
    return true;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: schema_run MODEL SCHEMAS.jsonl OUT.jsonl [MAX_TOKENS]\n");
        return 2;
    }
    int max_tokens = argc > 4 ? atoi(argv[4]) : 512;
    FILE *in = fopen(argv[2], "r"), *out = fopen(argv[3], "w");
    if (!in || !out) {
        fprintf(stderr, "schema_run: cannot open %s or %s\n", argv[2], argv[3]);
        return 1;
    }
    vki_engine_params ep = vki_engine_default_params();
    ep.n_threads = 1;
    vki_engine *eng = NULL;
    vki_model *md = NULL;
    vki_model_params mp = vki_model_default_params();
    mp.backend = VKI_BACKEND_CPU;
    mp.n_ctx = (uint32_t)max_tokens + 64;
    if (vki_engine_create(&ep, &eng) != VKI_OK || vki_model_load(eng, argv[1], &mp, &md) != VKI_OK) {
        fprintf(stderr, "schema_run: %s\n", vki_last_error());
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int i = 0;
    while ((len = getline(&line, &cap, in)) > 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (!len) continue;
        vki_generate_params gp = vki_generate_default_params();
        gp.temperature = 1.0f;
        gp.top_k = 0;
        gp.top_p = 1.0f;
        gp.min_p = 0.0f;
        gp.seed = (uint64_t)i + 1;
        gp.n_predict = max_tokens;
        gp.json_schema = line;
        out_text t = {0};
        vki_generate_stats st;
        vki_status s = vki_generate(md, "Answer in JSON:", &gp, on_token, &t, &st);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "i", i);
        cJSON_AddStringToObject(o, "status", vki_status_str(s));
        cJSON_AddStringToObject(o, "error", s == VKI_OK ? "" : vki_last_error());
        cJSON_AddStringToObject(o, "text", t.p ? t.p : "");
        cJSON_AddNumberToObject(o, "n_generated", st.n_generated);
        cJSON_AddBoolToObject(o, "stopped_by_eos", st.stopped_by_eos);
        char *js = cJSON_PrintUnformatted(o);
        fprintf(out, "%s\n", js ? js : "{}");
        free(js);
        cJSON_Delete(o);
        free(t.p);
        i++;
    }
    free(line);
    fclose(in);
    fclose(out);
    vki_model_destroy(md);
    vki_engine_destroy(eng);
    return 0;
}
