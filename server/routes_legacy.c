/*
 * routes_legacy.c: POST /generate, the route of the model service vkinfer
 * replaces, so the services that call it work unchanged: {prompt,
 * service_type, priority, stream, session_id} and the sampling fields of
 * /v1/completions, answered with the text alone (routes_gen.c's PLAIN
 * shape). service_type picks the priority class; session_id goes into the
 * request's log line and nowhere else (the service keeps no state).
 * Must not: copy the generation machinery (it is routes_gen.c's).
 */
#include <stdio.h>
#include <string.h>

#include "server/srv_internal.h"

/* The old service's callers, by the class their requests run in. */
static const struct {
    const char  *name;
    vki_priority prio;
} service_types[] = {
    {"chat", VKI_PRIORITY_INTERACTIVE},
    {"npc", VKI_PRIORITY_NORMAL},
    {"summary", VKI_PRIORITY_BATCH},
};

/* session_id: a string or an integer, printed as is into the log line, so
 * only visible ASCII without quotes or backslashes, at most 128 bytes. */
static bool session_field(srv_conn *cn, const cJSON *body, enum MHD_Result *ret)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(body, "session_id");
    if (!j || cJSON_IsNull(j)) return true;
    char *out = cn->log.session;
    const size_t cap = sizeof cn->log.session;
    /* the range first: converting a double past long long's range is undefined */
    if (cJSON_IsNumber(j) && j->valuedouble >= -9.0e15 && j->valuedouble <= 9.0e15 &&
        j->valuedouble == (double)(long long)j->valuedouble) {
        snprintf(out, cap, "%lld", (long long)j->valuedouble);
        return true;
    }
    bool ok = cJSON_IsString(j) && j->valuestring[0] && strlen(j->valuestring) < cap;
    for (const char *c = ok ? j->valuestring : ""; ok && *c; c++) ok = *c > ' ' && *c < 127 && *c != '"' && *c != '\\';
    if (!ok) {
        *ret = srv_send_error(cn, 400, "invalid_field", 0, "session_id: expected an integer or a string of 1 to %zu "
                              "visible ASCII characters (no spaces, quotes or backslashes)", cap - 1);
        return false;
    }
    snprintf(out, cap, "%s", j->valuestring);
    return true;
}

bool srv_parse_generate_legacy(srv_conn *cn, const cJSON *body, int *prio, enum MHD_Result *ret)
{
    *prio = -1;
    /* Unknown fields first: a misspelt one is named, not ignored. */
    if (!srv_check_fields(cn, body, srv_gen_plain_fields, ret)) return false;
    if (!session_field(cn, body, ret)) return false;
    const cJSON *jp = cJSON_GetObjectItemCaseSensitive(body, "prompt");
    if (!cJSON_IsString(jp) || !jp->valuestring[0]) {
        *ret = srv_send_error(cn, 400, "invalid_field", 0, "prompt: expected a non-empty string");
        return false;
    }
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(body, "service_type");
    if (js && !cJSON_IsNull(js)) {
        for (size_t k = 0; cJSON_IsString(js) && k < sizeof service_types / sizeof service_types[0]; k++)
            if (!strcmp(js->valuestring, service_types[k].name)) *prio = (int)service_types[k].prio;
        if (*prio < 0) {
            *ret = srv_send_error(cn, 400, "invalid_field", 0, "service_type: expected \"chat\" (interactive), "
                                  "\"npc\" (normal) or \"summary\" (batch)");
            return false;
        }
    }
    return true;
}

enum MHD_Result srv_route_generate_legacy(srv_conn *cn, const cJSON *body)
{
    enum MHD_Result ret = MHD_NO;
    int prio;
    if (!srv_parse_generate_legacy(cn, body, &prio, &ret)) return ret;
    return srv_route_generate_as(cn, body, SRV_GEN_PLAIN, prio);
}
