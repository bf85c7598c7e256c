/*
 * fields.c: the request fields every model route reads the same way:
 * which model (and that it is of the route's kind), "priority" and
 * "timeout". Moved out of http.c.
 */
#include "server/srv_internal.h"
#include "util.h"

int32_t srv_pick_model(srv_conn *cn, const cJSON *body, vki_model_kind kind, enum MHD_Result *ret)
{
    vki_service *svc = cn->srv->svc;
    const cJSON *jm = cJSON_GetObjectItemCaseSensitive(body, "model");
    int32_t i = -1;
    if (jm && !cJSON_IsNull(jm)) {
        if (!cJSON_IsString(jm)) {
            *ret = srv_send_error(cn, 400, "invalid_field", 0, "model: expected a string");
            return -1;
        }
        i = vki_service_model_find(svc, jm->valuestring);
        if (i < 0) {
            *ret = srv_send_error(cn, 404, "model_not_found", 0, "model '%s' does not exist (GET /v1/models lists them)",
                                  jm->valuestring);
            return -1;
        }
    } else {
        vki_service_model_info info;
        for (int32_t k = 0; k < vki_service_model_count(svc) && i < 0; k++) {
            vki_service_get_model_info(svc, k, &info);
            if (info.kind == kind && !info.removing) i = k;
        }
        if (i < 0) {
            *ret = srv_send_error(cn, 400, "invalid_field", 0, "model: required (no %s model is configured)",
                                  vki_model_kind_name(kind));
            return -1;
        }
    }
    vki_service_model_info info;
    vki_service_get_model_info(svc, i, &info);
    cn->log.model = info.id;
    if (info.kind != kind) {
        *ret = srv_send_error(cn, 400, "wrong_model_kind", 0, "model '%s' is a%s %s model; %s needs a%s %s model", info.id,
                              info.kind == VKI_MODEL_KIND_EMBEDDING ? "n" : "", vki_model_kind_name(info.kind),
                              srv_route_path[cn->route], kind == VKI_MODEL_KIND_EMBEDDING ? "n" : "",
                              vki_model_kind_name(kind));
        return -1;
    }
    /* A failed model, or one still opening its file, is the service's to
     * judge when the job tries it: another model may serve the request. */
    return i;
}

bool srv_parse_common(srv_conn *cn, const cJSON *body, int32_t model, vki_priority route_default, vki_priority *prio,
                      double *deadline_ms, enum MHD_Result *ret)
{
    const srv_config *cfg = cn->srv->cfg;
    *prio = route_default;
    if (model < cfg->svc.n_models && cfg->svc.models[model].has_priority) *prio = cfg->svc.models[model].priority;
    const cJSON *jp = cJSON_GetObjectItemCaseSensitive(body, "priority");
    if (jp && !cJSON_IsNull(jp) && (!cJSON_IsString(jp) || !vki_priority_from_name(jp->valuestring, prio))) {
        *ret = srv_send_error(cn, 400, "invalid_field", 0, "priority: expected \"interactive\", \"normal\" or "
                              "\"batch\" (or a service name: \"chat\", \"npc\", \"search\", \"summary\")");
        return false;
    }
    *deadline_ms = 0;
    const cJSON *jt = cJSON_GetObjectItemCaseSensitive(body, "timeout");
    if (jt && !cJSON_IsNull(jt)) {
        if (!cJSON_IsNumber(jt) || !(jt->valuedouble > 0) || jt->valuedouble > 1e7) {
            *ret = srv_send_error(cn, 400, "invalid_field", 0, "timeout: expected seconds, a number > 0");
            return false;
        }
        *deadline_ms = vki_time_ms() + jt->valuedouble * 1e3;
    }
    return true;
}
