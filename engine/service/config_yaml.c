/*
 * config_yaml.c: reading a YAML configuration file through libyaml's
 * document API, so every node carries its line and column for the error
 * message ("FILE:LINE:COL: what was wrong, what was expected"): the file
 * itself, the walk over a mapping, and the typed getters (strings,
 * integers, sizes, durations) every section uses, the server's too.
 * Must not: know what any key means (service_config.c, server/config.c do).
 */
#include "engine/service/config_yaml.h"

#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "util.h"

bool svc_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    /* nan and inf parse as numbers; casting them to an integer is undefined */
    if (errno || end == s || !isfinite(v) || v < 0) return false;
    static const struct { const char *suffix; double mult; } units[] = {
        {"", 1},         {"B", 1},           {"k", 1e3},         {"K", 1e3},       {"KB", 1e3},
        {"KiB", 1024.0}, {"M", 1e6},         {"MB", 1e6},        {"MiB", 1048576.0}, {"G", 1e9},
        {"GB", 1e9},     {"GiB", 1073741824.0}, {"T", 1e12},     {"TB", 1e12},     {"TiB", 1099511627776.0},
    };
    while (*end == ' ') end++;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcmp(end, units[i].suffix)) {
            double b = v * units[i].mult;
            if (b > 1.8e19) return false;
            *out = (uint64_t)b;
            return true;
        }
    return false;
}

bool svc_parse_duration(const char *s, double *ms, bool *forever)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !isfinite(v)) return false;
    *forever = false;
    if (v < 0) {
        if (v != -1 || *end) return false;
        *forever = true;
        *ms = 0;
        return true;
    }
    static const struct { const char *suffix; double mult; } units[] = {
        {"", 1e3}, {"ms", 1}, {"s", 1e3}, {"m", 60e3}, {"h", 3600e3},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcmp(end, units[i].suffix)) {
            *ms = v * units[i].mult;
            return isfinite(*ms) && *ms < 1e15;
        }
    return false;
}

vki_status svc_cfg_fail(svc_cfg_ctx *x, const yaml_node_t *n, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(x->err, x->err_size, "%s:%zu:%zu: %s", x->file, n->start_mark.line + 1, n->start_mark.column + 1, msg);
    return VKI_ERR_BAD_FILE;
}

const char *svc_cfg_node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE: return "a scalar";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_MAPPING_NODE: return "a mapping";
    default: return "nothing";
    }
}

vki_status svc_cfg_string(svc_cfg_ctx *x, const yaml_node_t *n, const char *key, char **out)
{
    if (n->type != YAML_SCALAR_NODE || !svc_cfg_scalar(n)[0])
        return svc_cfg_fail(x, n, "%s: expected a non-empty string, found %s", key, svc_cfg_node_kind(n));
    char *s = strdup(svc_cfg_scalar(n));
    if (!s) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "config: out of memory");
    free(*out);
    *out = s;
    return VKI_OK;
}

vki_status svc_cfg_int(svc_cfg_ctx *x, const yaml_node_t *n, const char *key, long lo, long hi, long *out)
{
    if (n->type == YAML_SCALAR_NODE) {
        char *end;
        errno = 0;
        long v = strtol(svc_cfg_scalar(n), &end, 10);
        if (!errno && end != svc_cfg_scalar(n) && !*end && v >= lo && v <= hi) {
            *out = v;
            return VKI_OK;
        }
    }
    return svc_cfg_fail(x, n, "%s: expected an integer in [%ld, %ld], found '%s'", key, lo, hi,
                     n->type == YAML_SCALAR_NODE ? svc_cfg_scalar(n) : svc_cfg_node_kind(n));
}

vki_status svc_cfg_size(svc_cfg_ctx *x, const yaml_node_t *n, const char *key, uint64_t *out)
{
    if (n->type == YAML_SCALAR_NODE && svc_parse_size(svc_cfg_scalar(n), out)) return VKI_OK;
    return svc_cfg_fail(x, n, "%s: expected a size such as 1048576, 64KiB or 1MiB, found '%s'", key,
                     n->type == YAML_SCALAR_NODE ? svc_cfg_scalar(n) : svc_cfg_node_kind(n));
}

/* A duration in (0, max_ms], such as 10s or 500ms. */
vki_status svc_cfg_timeout(svc_cfg_ctx *x, const yaml_node_t *n, const char *key, double max_ms, double *out)
{
    bool forever = false;
    double ms = 0;
    if (n->type == YAML_SCALAR_NODE && svc_parse_duration(svc_cfg_scalar(n), &ms, &forever) && !forever && ms > 0 &&
        ms <= max_ms) {
        *out = ms;
        return VKI_OK;
    }
    return svc_cfg_fail(x, n, "%s: expected a duration in (0, %gs] such as 10s or 500ms, found '%s'", key, max_ms / 1e3,
                     n->type == YAML_SCALAR_NODE ? svc_cfg_scalar(n) : svc_cfg_node_kind(n));
}

vki_status svc_cfg_number(svc_cfg_ctx *x, const yaml_node_t *n, const char *key, double lo, double hi, double *out)
{
    char *end = NULL;
    const char *t = n->type == YAML_SCALAR_NODE ? svc_cfg_scalar(n) : "";
    double d = t[0] ? strtod(t, &end) : 0;
    if (!t[0] || *end || !(d >= lo && d <= hi))
        return svc_cfg_fail(x, n, "%s: expected a number in [%g, %g], found '%s'", key, lo, hi, t[0] ? t : svc_cfg_node_kind(n));
    *out = d;
    return VKI_OK;
}

vki_status svc_cfg_duration(svc_cfg_ctx *x, const yaml_node_t *n, const char *key, double *ms)
{
    bool forever = false;
    if (n->type != YAML_SCALAR_NODE || !svc_parse_duration(svc_cfg_scalar(n), ms, &forever) || forever || !(*ms > 0))
        return svc_cfg_fail(x, n, "%s: expected a duration > 0 such as 30s or 500ms, found '%s'", key,
                         n->type == YAML_SCALAR_NODE ? svc_cfg_scalar(n) : svc_cfg_node_kind(n));
    return VKI_OK;
}

/* Calls fn for each key of mapping n; `what` names the mapping in messages. */
vki_status svc_cfg_each_pair(svc_cfg_ctx *x, yaml_node_t *n, const char *what, svc_cfg_pair_fn fn, void *user)
{
    if (n->type != YAML_MAPPING_NODE) return svc_cfg_fail(x, n, "%s: expected a mapping, found %s", what, svc_cfg_node_kind(n));
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(x->doc, p->key), *v = yaml_document_get_node(x->doc, p->value);
        if (!k || !v) continue;
        if (k->type != YAML_SCALAR_NODE) return svc_cfg_fail(x, k, "%s: expected a key name, found %s", what, svc_cfg_node_kind(k));
        VKI_TRY(fn(x, svc_cfg_scalar(k), k, v, user));
    }
    return VKI_OK;
}

vki_status svc_cfg_parse_text(const char *name, const char *dir, const char *text, size_t len, svc_cfg_pair_fn top,
                              void *user, char *err, size_t err_size)
{
    svc_cfg_ctx x = {.file = name, .err = err, .err_size = err_size};
    snprintf(x.dir, sizeof x.dir, "%s", dir);
    yaml_parser_t p;
    yaml_document_t doc;
    vki_status s = VKI_OK;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, &doc)) {
        snprintf(err, err_size, "%s:%zu:%zu: %s%s%s", name, p.problem_mark.line + 1, p.problem_mark.column + 1,
                 p.problem ? p.problem : "malformed YAML", p.context ? " " : "", p.context ? p.context : "");
        yaml_parser_delete(&p);
        return VKI_ERR_BAD_FILE;
    }
    x.doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        snprintf(err, err_size, "%s:1:1: the file is empty (expected a mapping with server, device, models)", name);
        s = VKI_ERR_BAD_FILE;
    } else {
        s = svc_cfg_each_pair(&x, root, "the top level", top, user);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    return s;
}

vki_status svc_cfg_read_file(const char *path, char **text_out, size_t *len_out, char dir[4096], char *err,
                             size_t err_size)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_size, "%s: cannot open: %s", path, strerror(errno));
        return VKI_ERR_NOT_FOUND;
    }
    /* Config files are small: read whole, so parsing works from memory
     * (the fuzz target feeds the parser directly). */
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            char *nt = cap <= (64u << 20) ? realloc(text, cap) : NULL;
            if (!nt) {
                free(text);
                fclose(f);
                snprintf(err, err_size, "%s: too large or out of memory", path);
                return VKI_ERR_BAD_FILE;
            }
            text = nt;
        }
        size_t n = fread(text + len, 1, cap - len, f);
        len += n;
        if (n == 0) break;
    }
    bool failed = ferror(f);
    fclose(f);
    if (failed) {
        free(text);
        snprintf(err, err_size, "%s: read error", path);
        return VKI_ERR_BAD_FILE;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    snprintf(dir, 4096, "%s", dirname(tmp));
    *text_out = text;
    *len_out = len;
    return VKI_OK;
}
