/*
 * config.c: the server's configuration: its defaults, the YAML file's
 * `server` section, and the hand-over of `routes` and `router` to
 * config_routes.c. The library parses the file once and hands these
 * sections over (engine/service/service_config.c reads the others).
 * Must not: read the library's sections.
 */
#include "server/config.h"
#include "server/config_yaml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "util.h"

void srv_config_init(srv_config *c)
{
    memset(c, 0, sizeof *c);
    svc_config_init(&c->svc);
    c->host = strdup("127.0.0.1");
    c->port = 8080;
    c->max_body = 1u << 20;
    c->max_conns = 512;
    c->max_conns_per_ip = 64;
    c->header_timeout_ms = 10e3;
    c->body_timeout_ms = 60e3;
    c->drain_timeout_ms = 30e3;
    c->health_degraded_status = 200;
}

void srv_config_deinit(srv_config *c)
{
    if (!c) return;
    svc_config_deinit(&c->svc);
    free(c->host);
    free(c->api_key_env);
    srv_config_free_routes(c);
    memset(c, 0, sizeof *c);
}

bool srv_parse_log_format(const char *s, srv_log_format *out)
{
    if (!strcmp(s, "text")) *out = SRV_LOG_TEXT;
    else if (!strcmp(s, "json")) *out = SRV_LOG_JSON;
    else return false;
    return true;
}

static vki_status server_pair(svc_cfg_ctx *x, const char *key, yaml_node_t *k, yaml_node_t *v, void *user)
{
    srv_config *c = user;
    long lv;
    uint64_t sz;
    if (!strcmp(key, "host")) return svc_cfg_string(x, v, "server.host", &c->host);
    if (!strcmp(key, "api_key_env")) return svc_cfg_string(x, v, "server.api_key_env", &c->api_key_env);
    if (!strcmp(key, "port")) {
        VKI_TRY(svc_cfg_int(x, v, "server.port", 0, 65535, &lv));
        c->port = (int32_t)lv;
    } else if (!strcmp(key, "max_queue")) {
        VKI_TRY(svc_cfg_int(x, v, "server.max_queue", 1, 1 << 20, &lv));
        c->svc.max_queue = (int32_t)lv;
    } else if (!strcmp(key, "threads")) {
        VKI_TRY(svc_cfg_int(x, v, "server.threads", 0, 1024, &lv));
        c->svc.n_threads = (int32_t)lv;
    } else if (!strcmp(key, "log_format")) {
        const char *f = v->type == YAML_SCALAR_NODE ? svc_cfg_scalar(v) : "";
        if (!srv_parse_log_format(f, &c->log_format))
            return svc_cfg_fail(x, v, "server.log_format: expected text or json, found '%s'", f[0] ? f : svc_cfg_node_kind(v));
    } else if (!strcmp(key, "max_body")) {
        VKI_TRY(svc_cfg_size(x, v, "server.max_body", &sz));
        if (sz < 64 || sz > (1u << 30))
            return svc_cfg_fail(x, v, "server.max_body: expected 64 bytes to 1GiB, found '%s'", svc_cfg_scalar(v));
        c->max_body = (size_t)sz;
    } else if (!strcmp(key, "max_connections")) {
        VKI_TRY(svc_cfg_int(x, v, "server.max_connections", 1, 60000, &lv));
        c->max_conns = (int32_t)lv;
    } else if (!strcmp(key, "max_connections_per_ip")) {
        VKI_TRY(svc_cfg_int(x, v, "server.max_connections_per_ip", 1, 60000, &lv));
        c->max_conns_per_ip = (int32_t)lv;
    } else if (!strcmp(key, "admin")) {
        const char *t = v->type == YAML_SCALAR_NODE ? svc_cfg_scalar(v) : "";
        if (!strcmp(t, "true")) c->admin = true;
        else if (!strcmp(t, "false")) c->admin = false;
        else return svc_cfg_fail(x, v, "server.admin: expected true or false, found '%s'", t[0] ? t : svc_cfg_node_kind(v));
    } else if (!strcmp(key, "health_degraded_status")) {
        /* 200 (serving, with the detail) or an error code for balancers that only read codes */
        VKI_TRY(svc_cfg_int(x, v, "server.health_degraded_status", 200, 599, &lv));
        c->health_degraded_status = (int32_t)lv;
    } else if (!strcmp(key, "header_timeout")) {
        VKI_TRY(svc_cfg_timeout(x, v, "server.header_timeout", 3600e3, &c->header_timeout_ms));
    } else if (!strcmp(key, "body_timeout")) {
        VKI_TRY(svc_cfg_timeout(x, v, "server.body_timeout", 3600e3, &c->body_timeout_ms));
    } else if (!strcmp(key, "drain_timeout")) {
        /* 0 is allowed here: cancel what is in flight at once */
        bool forever = false;
        double ms = -1;
        if (v->type != YAML_SCALAR_NODE || !svc_parse_duration(svc_cfg_scalar(v), &ms, &forever) || forever || !(ms >= 0) ||
            ms > 3600e3)
            return svc_cfg_fail(x, v, "server.drain_timeout: expected a duration in [0, 3600s] such as 30s, found '%s'",
                             v->type == YAML_SCALAR_NODE ? svc_cfg_scalar(v) : svc_cfg_node_kind(v));
        c->drain_timeout_ms = ms;
    } else {
        return svc_cfg_fail(x, k, "server: unknown key '%s' (expected host, port, api_key_env, max_body, max_queue, "
                               "threads, log_format, max_connections, max_connections_per_ip, header_timeout, "
                               "body_timeout, drain_timeout, health_degraded_status, admin)", key);
    }
    return VKI_OK;
}

/* The library's hook: the sections of the file that are the server's. */
static vki_status server_sections(svc_cfg_ctx *x, const char *key, yaml_node_t *k, yaml_node_t *v, void *user)
{
    srv_config *c = user;
    if (!strcmp(key, "server")) return svc_cfg_each_pair(x, v, "server", server_pair, c);
    srv_cfg_yaml y = {.file = x->file, .doc = x->doc, .err = x->err, .err_size = x->err_size};
    return !strcmp(key, "routes") ? srv_config_parse_routes(c, &y, v) : srv_config_parse_router(c, &y, v);
}

vki_status srv_config_parse(srv_config *c, const char *name, const char *dir, const char *text, size_t len, char *err,
                            size_t err_size)
{
    return svc_config_parse(&c->svc, name, dir, text, len, server_sections, c, err, err_size);
}

vki_status srv_config_load(srv_config *c, const char *path, char *err, size_t err_size)
{
    return svc_config_load(&c->svc, path, server_sections, c, err, err_size);
}

vki_status srv_config_resolve(srv_config *c, char *err, size_t err_size)
{
    VKI_TRY(svc_config_resolve(&c->svc, err, err_size));
    return srv_config_check_routes(c, err, err_size);
}
