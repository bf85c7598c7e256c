/*
 * reload.c: hot reload. srv_reload re-reads the configuration (through the
 * source cmd_serve gave), validates all of it, diffs it against the running
 * one (config_diff.c) and applies it to the service: models added,
 * removed (they drain first), swapped to a new file, updated in place, or
 * made anew; then publishes the new per-model settings for the routes. Also
 * the /admin routes (POST /admin/reload, POST /admin/models/{id}/reload).
 * Owns: every configuration a reload published, kept until srv_stop (a
 * request may still read an older one: they are small, and never freed
 * while the server runs).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "loader/model_file.h"
#include "server/config_diff.h"
#include "server/srv_internal.h"
#include "util.h"

/* A configuration a reload parsed (owns the strings) and the index-aligned
 * view of it that was published (borrows them). */
struct srv_retired_cfg {
    srv_config             *parsed, *published;
    struct srv_retired_cfg *next;
};

void srv_set_config_source(srv_server *srv, srv_config_fn fn, void *user)
{
    pthread_mutex_lock(&srv->reload_mu);
    srv->cfg_fn = fn;
    srv->cfg_user = user;
    pthread_mutex_unlock(&srv->reload_mu);
}

const srv_config *srv_config_now(const srv_server *srv) { return srv->cfg; }

void srv_reload_free(srv_server *srv)
{
    struct srv_retired_cfg *r = srv->retired;
    while (r) {
        struct srv_retired_cfg *next = r->next;
        free(r->published->svc.models);
        free(r->published);
        srv_config_deinit(r->parsed);
        free(r->parsed);
        free(r);
        r = next;
    }
    srv->retired = NULL;
}

/* The report: {added, removed, swapped, changed, replaced, unchanged, live,
 * needs_restart, notes, errors}, every list present. */
typedef struct report {
    cJSON *root, *lists[6], *live, *restart, *notes, *errors;
} report;

static bool report_init(report *r)
{
    static const srv_diff_action order[6] = {SRV_DIFF_ADDED,   SRV_DIFF_REMOVED,  SRV_DIFF_SWAPPED,
                                             SRV_DIFF_CHANGED, SRV_DIFF_REPLACED, SRV_DIFF_UNCHANGED};
    memset(r, 0, sizeof *r);
    if (!(r->root = cJSON_CreateObject())) return false;
    for (int k = 0; k < 6; k++) r->lists[order[k]] = cJSON_AddArrayToObject(r->root, srv_diff_action_name(order[k]));
    r->live = cJSON_AddArrayToObject(r->root, "live");
    r->restart = cJSON_AddArrayToObject(r->root, "needs_restart");
    r->notes = cJSON_AddArrayToObject(r->root, "notes");
    r->errors = cJSON_AddArrayToObject(r->root, "errors");
    return r->errors != NULL;
}

/* Splits "a, b" into the array. */
static void add_names(cJSON *arr, const char *list)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ') t++;
        cJSON_AddItemToArray(arr, cJSON_CreateString(t));
    }
}

static void note(srv_server *srv, report *r, bool error, const char *fmt, ...) VKI_PRINTF(4, 5);
static void note(srv_server *srv, report *r, bool error, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON_AddItemToArray(error ? r->errors : r->notes, cJSON_CreateString(msg));
    srv_log_event(srv->log, "reload", "%s%s", error ? "error: " : "", msg);
}

/* "FILE:LINE:COL: " of model m, or "" when it did not come from a file. */
static void where(const char *file, const srv_model_cfg *m, char *out, size_t size)
{
    if (file && m->line > 0) snprintf(out, size, "%s:%d:%d: ", file, (int)m->line, (int)m->col);
    else out[0] = '\0';
}

/* Every file the new config asks to open must open: a reload that would
 * only fail later, model by model, is refused as a whole now. */
static bool check_files(const srv_config *neu, const srv_config_diff *d, const char *file, char *err, size_t size)
{
    for (int32_t k = 0; k < d->n_models; k++) {
        const srv_diff_model *dm = &d->models[k];
        if (dm->action != SRV_DIFF_ADDED && dm->action != SRV_DIFF_SWAPPED && dm->action != SRV_DIFF_REPLACED) continue;
        const srv_model_cfg *m = &neu->svc.models[dm->new_i];
        vki_model_file *f = NULL;
        vki_status st = vki_file_open(m->path, &f);
        if (st == VKI_OK) {
            vki_file_close(f);
            continue;
        }
        char at[300];
        where(file, m, at, sizeof at);
        snprintf(err, size, "%smodel '%s': path '%s' cannot be opened: %s", at, m->id, m->path, vki_last_error());
        return false;
    }
    return true;
}

/* The view the routes read: entry i is the service's model i (removed
 * ones keep their last settings), then the models about to be added, in the
 * order they will be added; server settings as running, except those that
 * apply live. Borrows every string. */
static srv_config *publish_view(const srv_config *old, const srv_config *neu, const srv_config_diff *d, int32_t n_sched)
{
    int32_t n_add = 0;
    for (int32_t k = 0; k < d->n_models; k++)
        n_add += d->models[k].action == SRV_DIFF_ADDED || d->models[k].action == SRV_DIFF_REPLACED;
    srv_config *p = calloc(1, sizeof *p);
    srv_model_cfg *models = calloc((size_t)(n_sched + n_add) + 1, sizeof *models);
    if (!p || !models) {
        free(p);
        free(models);
        return NULL;
    }
    *p = *old;
    p->svc.models = models;
    p->max_body = neu->max_body;
    p->header_timeout_ms = neu->header_timeout_ms;
    p->body_timeout_ms = neu->body_timeout_ms;
    p->drain_timeout_ms = neu->drain_timeout_ms;
    p->health_degraded_status = neu->health_degraded_status;
    p->admin = neu->admin;
    for (int32_t i = 0; i < n_sched && i < old->svc.n_models; i++) models[i] = old->svc.models[i];
    int32_t at = n_sched;
    for (int32_t k = 0; k < d->n_models; k++) {
        const srv_diff_model *dm = &d->models[k];
        if (dm->action == SRV_DIFF_SWAPPED || dm->action == SRV_DIFF_CHANGED || dm->action == SRV_DIFF_UNCHANGED)
            models[dm->old_i] = neu->svc.models[dm->new_i];
        if (dm->action == SRV_DIFF_ADDED || dm->action == SRV_DIFF_REPLACED) models[at++] = neu->svc.models[dm->new_i];
    }
    p->svc.n_models = at;
    return p;
}

/* Applies d (old entries are the service's model indices). Writes what happened to r. */
static void apply(srv_server *srv, const srv_config *neu, const srv_config_diff *d, srv_config *view, int32_t n_sched,
                  report *r)
{
    vki_service *svc = srv->svc;
    for (int32_t k = 0; k < d->n_models; k++) {
        const srv_diff_model *dm = &d->models[k];
        const srv_model_cfg *m;
        cJSON_AddItemToArray(r->lists[dm->action], cJSON_CreateString(dm->id));
        switch (dm->action) {
        case SRV_DIFF_UNCHANGED:
        case SRV_DIFF_ADDED: break;
        case SRV_DIFF_REMOVED:
            if (vki_service_remove_model(svc, dm->old_i) != VKI_OK) note(srv, r, true, "%s: remove: %s", dm->id, vki_last_error());
            else note(srv, r, false, "%s: removed: new requests get 404, accepted ones finish, then it unloads", dm->id);
            break;
        case SRV_DIFF_CHANGED:
        case SRV_DIFF_SWAPPED:
            m = &neu->svc.models[dm->new_i];
            if (svc_config_update_model(svc, dm->old_i, &view->svc, m) != VKI_OK)
                note(srv, r, true, "%s: update: %s", dm->id, vki_last_error());
            if (dm->action == SRV_DIFF_CHANGED) {
                note(srv, r, false, "%s: %s changed, applied in place", dm->id, dm->what);
            } else if (vki_service_reload_model(svc, dm->old_i, m->path) != VKI_OK) {
                note(srv, r, true, "%s: swap to %s: %s (still serving the old file)", dm->id, m->path, vki_last_error());
            } else {
                note(srv, r, false, "%s: %s changed: swapping to %s (beside the old one when memory allows, else "
                                    "after it drains)", dm->id, dm->what, m->path);
            }
            break;
        case SRV_DIFF_REPLACED:
            if (vki_service_remove_model(svc, dm->old_i) != VKI_OK)
                note(srv, r, true, "%s: remove: %s", dm->id, vki_last_error());
            else
                note(srv, r, false, "%s: %s changed, which a running model cannot take: the old one drains and "
                                    "unloads, a new one is added", dm->id, dm->what);
            break;
        }
    }
    /* The view is published before the adds: a request that finds a new
     * index finds its settings too. */
    atomic_store(&srv->cfg, view);
    int32_t expect = n_sched;
    for (int32_t k = 0; k < d->n_models; k++) {
        const srv_diff_model *dm = &d->models[k];
        if (dm->action != SRV_DIFF_ADDED && dm->action != SRV_DIFF_REPLACED) continue;
        const srv_model_cfg *m = &neu->svc.models[dm->new_i];
        if (vki_service_model_count(svc) != expect) {
            note(srv, r, true, "%s: not added (an earlier add failed)", dm->id);
            continue;
        }
        if (svc_config_add_model_to(svc, &view->svc, m) != VKI_OK) {
            note(srv, r, true, "%s: add: %s", dm->id, vki_last_error());
            continue;
        }
        expect++;
        if (dm->action == SRV_DIFF_ADDED) note(srv, r, false, "%s: added from %s", dm->id, m->path);
    }
}

/* The body of srv_reload, srv->reload_mu held. */
static unsigned reload_locked(srv_server *srv, report *r)
{
    char err[2048];
    if (!srv->cfg_fn) {
        note(srv, r, true, "this server has no configuration source to re-read");
        return 400;
    }
    srv_config *neu = calloc(1, sizeof *neu);
    if (!neu) return 500;
    srv_config_init(neu);
    const char *file = NULL;
    err[0] = '\0';
    vki_status st = srv->cfg_fn(srv->cfg_user, neu, &file, err, sizeof err);
    const srv_config *old = srv->cfg;
    vki_service *svc = srv->svc;
    const int32_t n_sched = vki_service_model_count(svc);
    bool *live = calloc((size_t)n_sched + 1, sizeof *live);
    srv_config_diff d = {0};
    srv_config *view = NULL;
    unsigned code = 200;
    for (int32_t i = 0; live && i < n_sched; i++) {
        vki_service_model_info info;
        vki_service_get_model_info(svc, i, &info);
        live[i] = !info.removing && i < old->svc.n_models;
    }
    if (st != VKI_OK) {
        code = 400;
    } else if (!live || srv_config_diff_make(old, live, neu, &d) != VKI_OK) {
        snprintf(err, sizeof err, "out of memory");
        code = 500;
    } else if (!check_files(neu, &d, file, err, sizeof err)) {
        code = 400;
    } else {
        int32_t n_add = 0;
        for (int32_t k = 0; k < d.n_models; k++)
            n_add += d.models[k].action == SRV_DIFF_ADDED || d.models[k].action == SRV_DIFF_REPLACED;
        if (n_sched + n_add > VKI_SERVICE_MAX_MODELS) {
            snprintf(err, sizeof err, "%d more models would pass the %d a server holds over its life (removed "
                     "models keep their slot): restart it", n_add, VKI_SERVICE_MAX_MODELS);
            code = 400;
        } else if (!(view = publish_view(old, neu, &d, n_sched))) {
            snprintf(err, sizeof err, "out of memory");
            code = 500;
        }
    }
    struct srv_retired_cfg *keep = view ? calloc(1, sizeof *keep) : NULL;
    if (view && !keep) {
        snprintf(err, sizeof err, "out of memory");
        code = 500;
    }
    if (code != 200) {
        /* Refused as a whole: nothing was applied, the running set stays. */
        cJSON_AddStringToObject(r->root, "error", err[0] ? err : "the configuration cannot be read");
        srv_log_event(srv->log, "reload", "refused, the running configuration stays: %s", err);
        free(view ? view->svc.models : NULL);
        free(view);
        srv_config_deinit(neu);
        free(neu);
    } else {
        apply(srv, neu, &d, view, n_sched, r);
        add_names(r->live, d.live);
        add_names(r->restart, d.needs_restart);
        if (d.live[0]) note(srv, r, false, "applied now: %s", d.live);
        if (d.needs_restart[0]) note(srv, r, false, "needs restart (not applied): %s", d.needs_restart);
        *keep = (struct srv_retired_cfg){.parsed = neu, .published = view, .next = srv->retired};
        srv->retired = keep;
        srv_log_event(srv->log, "reload", "done: %d added, %d removed, %d swapped, %d changed, %d replaced, "
                      "%d unchanged", cJSON_GetArraySize(r->lists[SRV_DIFF_ADDED]),
                      cJSON_GetArraySize(r->lists[SRV_DIFF_REMOVED]), cJSON_GetArraySize(r->lists[SRV_DIFF_SWAPPED]),
                      cJSON_GetArraySize(r->lists[SRV_DIFF_CHANGED]), cJSON_GetArraySize(r->lists[SRV_DIFF_REPLACED]),
                      cJSON_GetArraySize(r->lists[SRV_DIFF_UNCHANGED]));
    }
    srv_config_diff_free(&d);
    free(live);
    return code;
}

static unsigned reload_report(srv_server *srv, cJSON **out)
{
    report r;
    *out = NULL;
    if (!report_init(&r)) {
        cJSON_Delete(r.root);
        return 500;
    }
    pthread_mutex_lock(&srv->reload_mu);
    unsigned code = reload_locked(srv, &r);
    pthread_mutex_unlock(&srv->reload_mu);
    *out = r.root;
    return code;
}

vki_status srv_reload(srv_server *srv, char **report_json)
{
    cJSON *rep = NULL;
    unsigned code = reload_report(srv, &rep);
    if (report_json) *report_json = rep ? srv_json_print(rep) : NULL;
    cJSON_Delete(rep);
    return code == 200 ? VKI_OK : code == 400 ? VKI_ERR_BAD_FILE : VKI_ERR_OUT_OF_MEMORY;
}

/* ===== The /admin routes ================================================== */

/* POST /admin/models/{id}/reload, body {"path": ...} or empty: the same
 * file again (it was replaced on disk) or another one. */
static enum MHD_Result reload_one(srv_conn *cn, const char *id)
{
    srv_server *srv = cn->srv;
    char path[4096] = "";
    if (cn->body.n) {
        cJSON *body = cJSON_ParseWithLength(cn->body.p, cn->body.n);
        const cJSON *jp = cJSON_GetObjectItemCaseSensitive(body, "path");
        bool ok = cJSON_IsObject(body) && (!jp || cJSON_IsNull(jp) || (cJSON_IsString(jp) && jp->valuestring[0]));
        for (const cJSON *it = body ? body->child : NULL; ok && it; it = it->next)
            ok = !strcmp(it->string, "path");
        if (ok && cJSON_IsString(jp)) snprintf(path, sizeof path, "%s", jp->valuestring);
        cJSON_Delete(body);
        if (!ok)
            return srv_send_error(cn, 400, "invalid_json", 0, "expected an empty body or {\"path\": \"FILE\"}");
    }
    pthread_mutex_lock(&srv->reload_mu);
    int32_t i = vki_service_model_find(srv->svc, id);
    vki_service_model_info info;
    vki_service_get_model_info(srv->svc, i, &info);
    if (i < 0) {
        pthread_mutex_unlock(&srv->reload_mu);
        return srv_send_error(cn, 404, "model_not_found", 0, "model '%.256s' does not exist", id);
    }
    if (!path[0]) snprintf(path, sizeof path, "%s", info.path);
    vki_model_file *f = NULL;
    vki_status st = vki_file_open(path, &f);
    vki_file_close(f);
    if (st == VKI_OK) st = vki_service_reload_model(srv->svc, i, path);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", vki_last_error());
    pthread_mutex_unlock(&srv->reload_mu);
    if (st != VKI_OK) {
        srv_log_event(srv->log, "reload", "model %s from %s refused: %s", id, path, msg);
        const bool busy = st == VKI_ERR_INVALID_ARGUMENT || st == VKI_ERR_UNSUPPORTED;
        return srv_send_error(cn, busy ? 409 : 400, busy ? "reload_refused" : "bad_model_file", 0, "%s", msg);
    }
    srv_log_event(srv->log, "reload", "model %s: swapping from %s to %s", id, info.path, path);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "from", info.path);
    cJSON_AddStringToObject(o, "path", path);
    cJSON_AddBoolToObject(o, "reloading", true);
    cJSON_AddNumberToObject(o, "generation", (double)info.generation + 1);
    return srv_send_json(cn, 202, o);
}

enum MHD_Result srv_route_admin(srv_conn *cn)
{
    srv_server *srv = cn->srv;
    /* With a key, dispatch has checked it; without one, only a config that
     * says so opens the admin routes (anyone who can connect could reload). */
    if (!srv->api_key && !srv->cfg->admin)
        return srv_send_error(cn, 403, "admin_disabled", 0, "the /admin routes need an API key (server.api_key_env) "
                              "or server.admin: true in the config");
    if (cn->model_id[0]) return reload_one(cn, cn->model_id);
    cJSON *rep = NULL;
    unsigned code = reload_report(srv, &rep);
    if (!rep) return srv_send_error(cn, 500, "out_of_memory", 0, "out of memory");
    if (code != 200) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(rep, "error");
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", cJSON_IsString(e) ? e->valuestring : "reload failed");
        cJSON_Delete(rep);
        return srv_send_error(cn, code, code == 400 ? "invalid_config" : "internal_error", 0, "%s", msg);
    }
    return srv_send_json(cn, 200, rep);
}
