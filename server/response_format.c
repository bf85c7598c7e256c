/*
 * response_format.c: OpenAI's `response_format` on chat and completions:
 * {"type":"text"}, {"type":"json_object"} (any JSON object) and
 * {"type":"json_schema","json_schema":{"name","schema","strict","description"}}
 * become a grammar on the generate request. A schema is checked here, so a
 * keyword we cannot enforce is a 400 that names it before anything runs.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/grammar/grammar.h"
#include "server/srv_internal.h"

static bool only_keys(srv_conn *cn, const cJSON *o, const char *where, const char *const *keys,
                      enum MHD_Result *ret)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, o) {
        size_t k = 0;
        while (keys[k] && strcmp(keys[k], it->string)) k++;
        if (!keys[k]) {
            *ret = srv_send_error(cn, 400, "unsupported_field", 0, "%s.%.64s: not a field it takes", where,
                                  it->string);
            return false;
        }
    }
    return true;
}

bool srv_response_format(srv_conn *cn, const cJSON *body, vki_generate_params *gp, char **grammar,
                         enum MHD_Result *ret)
{
    *grammar = NULL;
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(body, "response_format");
    if (!rf || cJSON_IsNull(rf)) return true;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rf, "type");
    if (!cJSON_IsObject(rf) || !cJSON_IsString(type)) {
        *ret = srv_send_error(cn, 400, "invalid_field", 0, "response_format: expected {\"type\": \"text\" | "
                              "\"json_object\" | \"json_schema\", ...}");
        return false;
    }
    if (!strcmp(type->valuestring, "text") || !strcmp(type->valuestring, "json_object")) {
        if (!only_keys(cn, rf, "response_format", (const char *const[]){"type", NULL}, ret)) return false;
        if (type->valuestring[0] == 'j') gp->grammar = gram_json_object_text();
        return true;
    }
    if (strcmp(type->valuestring, "json_schema")) {
        *ret = srv_send_error(cn, 400, "invalid_field", 0, "response_format.type: \"%.32s\" is not text, "
                              "json_object or json_schema", type->valuestring);
        return false;
    }
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
    if (!only_keys(cn, rf, "response_format", (const char *const[]){"type", "json_schema", NULL}, ret)) return false;
    if (!cJSON_IsObject(js)) {
        *ret = srv_send_error(cn, 400, "invalid_field", 0, "response_format.json_schema: expected an object with "
                              "name and schema");
        return false;
    }
    if (!only_keys(cn, js, "response_format.json_schema",
                   (const char *const[]){"name", "schema", "strict", "description", NULL}, ret))
        return false;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(js, "name");
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(js, "schema");
    const cJSON *strict = cJSON_GetObjectItemCaseSensitive(js, "strict");
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(js, "description");
    /* OpenAI: a name of a-z, A-Z, 0-9, '_' and '-', at most 64 */
    bool name_ok = cJSON_IsString(name) && name->valuestring[0] && strlen(name->valuestring) <= 64;
    for (const char *p = name_ok ? name->valuestring : ""; *p && name_ok; p++)
        name_ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
                  *p == '-';
    if (!name_ok) {
        *ret = srv_send_error(cn, 400, "invalid_field", 0, "response_format.json_schema.name: expected 1 to 64 "
                              "characters of a-z, A-Z, 0-9, _ and -");
        return false;
    }
    if ((strict && !cJSON_IsNull(strict) && !cJSON_IsBool(strict)) || (desc && !cJSON_IsNull(desc) && !cJSON_IsString(desc))) {
        *ret = srv_send_error(cn, 400, "invalid_field", 0, "response_format.json_schema: strict must be a boolean "
                              "and description a string");
        return false;
    }
    /* strict or not, the schema is enforced (strict only asks for it); no
     * schema means any JSON value */
    char *text = schema && !cJSON_IsNull(schema) ? cJSON_PrintUnformatted(schema) : NULL;
    if (schema && !cJSON_IsNull(schema) && !text) {
        *ret = srv_send_error(cn, 503, "out_of_memory", 0, "out of memory");
        return false;
    }
    vki_status s = gram_from_json_schema(text ? text : "{}", strlen(text ? text : "{}"), grammar);
    free(text);
    if (s != VKI_OK) {
        *ret = srv_send_error(cn, s == VKI_ERR_OUT_OF_MEMORY ? 503 : 400,
                              s == VKI_ERR_UNSUPPORTED ? "unsupported_field" : "invalid_field", 0,
                              "response_format.json_schema.schema: %s", vki_last_error());
        return false;
    }
    gp->grammar = *grammar;
    return true;
}
