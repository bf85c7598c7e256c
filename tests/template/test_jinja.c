/*
 * test_jinja.c: the Jinja interpreter on the cases of jinja_cases.json
 * (every construct chat templates use, errors with their line and column,
 * raise_exception's message, the limits, and which output bytes are
 * message content), whose expectations compare_jinja.py also checks
 * against jinja2; then the chat-template API on a real HF tokenizer folder
 * from ../shared (skipped when absent): content spans, tools, extra
 * variables, chat_template.jinja, and errors naming file, line and column.
 *   test_jinja CASES.json
 */
#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/template/jinja.h"
#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/tokenizer.h"
#include "test_util.h"

static void run_case(const cJSON *c)
{
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    const char *tmpl = cJSON_GetObjectItem(c, "template")->valuestring;
    const cJSON *ctx = cJSON_GetObjectItem(c, "context"), *want = cJSON_GetObjectItem(c, "want"),
                *err = cJSON_GetObjectItem(c, "error"), *lim = cJSON_GetObjectItem(c, "limits"),
                *spans = cJSON_GetObjectItem(c, "spans");
    jinja_limits L = jinja_default_limits();
    if (lim) {
        const cJSON *v;
        if ((v = cJSON_GetObjectItem(lim, "max_steps"))) L.max_steps = (uint64_t)v->valuedouble;
        if ((v = cJSON_GetObjectItem(lim, "max_depth"))) L.max_depth = v->valueint;
        if ((v = cJSON_GetObjectItem(lim, "max_output"))) L.max_output = (size_t)v->valuedouble;
        if ((v = cJSON_GetObjectItem(lim, "max_memory"))) L.max_memory = (size_t)v->valuedouble;
    }
    jinja_template *t = NULL;
    char *out = NULL;
    vki_text_span *sp = NULL;
    size_t n_sp = 0, len = 0;
    vki_status s = jinja_parse(tmpl, strlen(tmpl), "case", &t);
    if (s == VKI_OK) {
        CHECKF(t != NULL, "%s: parsed, no template", name);
        s = jinja_render(t, ctx, &L, &out, &len, &sp, &n_sp);
    } else {
        CHECKF(s == VKI_ERR_BAD_FILE && !t, "%s: parse failure is %s", name, vki_status_str(s));
    }
    if (err) {
        CHECKF(s != VKI_OK, "%s: rendered %s, expected an error with '%s'", name, out ? out : "", err->valuestring);
        CHECKF(s == VKI_OK || strstr(vki_last_error(), err->valuestring), "%s: error '%s' lacks '%s'", name,
               vki_last_error(), err->valuestring);
        CHECKF(s == VKI_OK || !strncmp(vki_last_error(), "case:", 5), "%s: error '%s' does not name the template", name,
               vki_last_error());
        CHECKF(!out && !sp, "%s: outputs left set after an error", name);
    } else {
        CHECKF(s == VKI_OK, "%s: %s", name, vki_last_error());
        if (s == VKI_OK && want) {
            CHECKF(len == strlen(want->valuestring) && !memcmp(out, want->valuestring, len),
                   "%s:\n--- got ---\n%s\n--- want ---\n%s", name, out, want->valuestring);
            CHECKF(out[len] == 0, "%s: not NUL-terminated", name);
        }
        if (s == VKI_OK && spans) {
            bool same = (size_t)cJSON_GetArraySize(spans) == n_sp;
            for (size_t i = 0; same && i < n_sp; i++) {
                const cJSON *p = cJSON_GetArrayItem(spans, (int)i);
                same = sp[i].off == (size_t)cJSON_GetArrayItem(p, 0)->valueint &&
                       sp[i].len == (size_t)cJSON_GetArrayItem(p, 1)->valueint;
            }
            CHECKF(same, "%s: %zu content spans, first [%zu, %zu)", name, n_sp, n_sp ? sp[0].off : 0,
                   n_sp ? sp[0].off + sp[0].len : 0);
        }
    }
    free(sp);
    free(out);
    jinja_template_destroy(t);
}

/* A copy of a tokenizer folder (tokenizer.json, tokenizer_config.json) with
 * the given chat_template.jinja. */
static bool make_folder(const char *src, const char *dir, const char *jinja)
{
    char a[4096], b[4096];
    if (mkdir(dir, 0700) != 0) return false;
    const char *files[] = {"tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 2; i++) {
        snprintf(a, sizeof a, "%s/%s", src, files[i]);
        snprintf(b, sizeof b, "%s/%s", dir, files[i]);
        if (symlink(a, b) != 0) return false;
    }
    snprintf(b, sizeof b, "%s/chat_template.jinja", dir);
    FILE *f = fopen(b, "w");
    if (!f) return false;
    fputs(jinja, f);
    fclose(f);
    return true;
}

static void remove_folder(const char *dir)
{
    char p[4096];
    const char *files[] = {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void chat_api(const char *dir)
{
    vki_model_file *f = NULL;
    CHECK(vki_file_open(dir, &f) == VKI_OK);
    if (!f) return;
    cJSON *msgs = cJSON_Parse("[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                              "{\"role\":\"user\",\"content\":\"a <|eot_id|> b\"},"
                              "{\"role\":\"tool\",\"content\":\"42\"}]");
    char *out = NULL;
    vki_text_span *sp = NULL;
    size_t n_sp = 0;
    /* the model's own template: Meta's Llama 3 (trims content, any role) */
    vki_status s = vki_chat_apply_json(f, NULL, msgs, NULL, NULL, true, &out, &sp, &n_sp);
    CHECKF(s == VKI_OK, "%s", vki_last_error());
    const char *want = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                       "<|start_header_id|>user<|end_header_id|>\n\na <|eot_id|> b<|eot_id|>"
                       "<|start_header_id|>tool<|end_header_id|>\n\n42<|eot_id|>"
                       "<|start_header_id|>assistant<|end_header_id|>\n\n";
    CHECKF(out && !strcmp(out, want), "llama3 rendering:\n%s", out ? out : "(none)");
    CHECKF(n_sp == 3, "%zu spans", n_sp);
    if (out && n_sp == 3) {
        CHECK(!strncmp(out + sp[0].off, "Be brief.", sp[0].len) && sp[0].len == 9);
        CHECK(!strncmp(out + sp[1].off, "a <|eot_id|> b", sp[1].len) && sp[1].len == 14);
        CHECK(!strncmp(out + sp[2].off, "42", sp[2].len) && sp[2].len == 2);
        /* encoded as the server does: the template's three <|eot_id|> are the
         * control token, the user's is text */
        vki_tokenizer *tok = NULL;
        int32_t *ids = NULL, n_ids = 0, *eot = NULL, n_eot = 0, *all = NULL, n_all = 0;
        CHECK(vki_tokenizer_create(f, &tok) == VKI_OK);
        if (tok && vki_tokenizer_encode(tok, "<|eot_id|>", 10, false, true, &eot, &n_eot) == VKI_OK && n_eot == 1 &&
            vki_tokenizer_encode_literal(tok, out, strlen(out), false, sp, n_sp, &ids, &n_ids) == VKI_OK &&
            vki_tokenizer_encode(tok, out, strlen(out), false, true, &all, &n_all) == VKI_OK) {
            int in_lit = 0, in_all = 0;
            for (int32_t i = 0; i < n_ids; i++) in_lit += ids[i] == eot[0];
            for (int32_t i = 0; i < n_all; i++) in_all += all[i] == eot[0];
            CHECKF(in_lit == 3 && in_all == 4, "<|eot_id|> as a token: %d with content spans, %d without", in_lit, in_all);
        } else {
            CHECKF(false, "encoding the rendering: %s", vki_last_error());
        }
        free(ids);
        free(eot);
        free(all);
        vki_tokenizer_destroy(tok);
    }
    free(out);
    free(sp);
    /* extra variables override the special tokens, not the conversation */
    cJSON *extra = cJSON_Parse("{\"bos_token\":\"<B>\"}"), *bad = cJSON_Parse("{\"messages\":[]}");
    s = vki_chat_apply_json(f, NULL, msgs, NULL, extra, false, &out, NULL, NULL);
    CHECKF(s == VKI_OK && out && !strncmp(out, "<B><|start_header_id|>", 22), "extra bos_token: %s", out ? out : vki_last_error());
    free(out);
    CHECK(vki_chat_apply_json(f, NULL, msgs, NULL, bad, false, &out, NULL, NULL) == VKI_ERR_INVALID_ARGUMENT && !out);
    /* a named family: text messages only, no tools */
    cJSON *tools = cJSON_Parse("[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{}}}]");
    CHECK(vki_chat_apply_json(f, "chatml", msgs, tools, NULL, true, &out, NULL, NULL) == VKI_ERR_UNSUPPORTED && !out);
    CHECK(vki_chat_apply_json(f, "chatml", msgs, NULL, NULL, true, &out, NULL, NULL) == VKI_ERR_INVALID_ARGUMENT);
    /* the vki_chat_msg form goes through the same template (this one
     * writes the assistant header whatever add_generation_prompt says) */
    const vki_chat_msg cm[] = {{"user", "hi"}};
    CHECK(vki_chat_apply(f, NULL, cm, 1, false, &out) == VKI_OK && out &&
          !strcmp(out, "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
                       "<|start_header_id|>assistant<|end_header_id|>\n\n"));
    free(out);
    vki_file_close(f);

    /* chat_template.jinja wins over tokenizer_config.json; tools reach it */
    char tmp[256];
    snprintf(tmp, sizeof tmp, "/tmp/vki-test-jinja-%d", (int)getpid());
    if (!make_folder(dir, tmp, "{{ documents is none }}{% for t in tools %}[{{ t.function.name }}]{% endfor %}"
                               "{% for m in messages %}{{ m.role }}:{{ m.content }};{% endfor %}\n")) {
        CHECKF(false, "cannot make %s", tmp);
        remove_folder(tmp);
    } else {
        CHECK(vki_file_open(tmp, &f) == VKI_OK);
        const vki_chat_msg one[] = {{"user", "x"}};
        if (f) {
            CHECK(vki_chat_apply_json(f, NULL, msgs, tools, NULL, true, &out, NULL, NULL) == VKI_OK && out &&
                  !strcmp(out, "True[f]system:Be brief.;user:a <|eot_id|> b;tool:42;"));
            free(out);
        }
        vki_file_close(f);
        remove_folder(tmp);
        /* a template that does not parse: file, line, column, what */
        if (make_folder(dir, tmp, "ok\n{% for m in messages %}\n{{ m.content | nosuch }}\n{% endfor %}")) {
            f = NULL;
            CHECK(vki_file_open(tmp, &f) == VKI_OK);
            if (f) {
                s = vki_chat_apply(f, NULL, one, 1, true, &out);
                CHECKF(s == VKI_ERR_BAD_FILE && !out && strstr(vki_last_error(), "tokenizer.chat_template:3:16: no filter named 'nosuch'"),
                       "%s: %s", vki_status_str(s), vki_last_error());
            }
            vki_file_close(f);
        }
        remove_folder(tmp);
        /* one that fails at run time carries raise_exception's message */
        if (make_folder(dir, tmp, "{{ raise_exception('Only user and assistant roles are supported!') }}")) {
            f = NULL;
            CHECK(vki_file_open(tmp, &f) == VKI_OK);
            if (f) {
                s = vki_chat_apply(f, NULL, one, 1, true, &out);
                CHECKF(s == VKI_ERR_INVALID_ARGUMENT && !out &&
                       strstr(vki_last_error(), "tokenizer.chat_template:1:4: Only user and assistant roles are supported!"),
                       "%s: %s", vki_status_str(s), vki_last_error());
            }
            vki_file_close(f);
        }
        remove_folder(tmp);
    }
    cJSON_Delete(tools);
    cJSON_Delete(bad);
    cJSON_Delete(extra);
    cJSON_Delete(msgs);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_jinja CASES.json\n");
        return 2;
    }
    size_t len;
    char *text = test_read_file(argv[1], &len);
    cJSON *cases = text ? cJSON_ParseWithLength(text, len) : NULL;
    CHECKF(cJSON_IsArray(cases), "%s: cannot read the cases", argv[1]);
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, cases) {
        run_case(c);
        n++;
    }
    printf("test_jinja: %d cases\n", n);
    /* argument checks */
    jinja_template *t = (jinja_template *)1;
    CHECK(jinja_parse(NULL, 0, "x", &t) == VKI_ERR_INVALID_ARGUMENT && !t);
    char *out = (char *)1;
    CHECK(jinja_render(NULL, NULL, NULL, &out, NULL, NULL, NULL) == VKI_ERR_INVALID_ARGUMENT && !out);
    jinja_template_destroy(NULL);
    cJSON_Delete(cases);
    free(text);
    /* the chat-template API needs a real tokenizer folder from ../shared */
    const char *shared = getenv("VKI_SHARED_DIR");
    char rel[4096], dir[PATH_MAX];
    snprintf(rel, sizeof rel, "%s/vocab/tok-llama3-hf", shared && shared[0] ? shared : "../shared");
    if (realpath(rel, dir)) chat_api(dir);
    else printf("test_jinja: %s is absent: the chat-template API checks are skipped\n", rel);
    return test_finish("test_jinja");
}
