/*
 * config_yaml.h: the YAML reading every configuration section shares (the
 * library's, engine/service/service_config.c, and the server's
 * `server` section, server/config.c): one parse of the file, typed getters
 * whose errors read "FILE:LINE:COL: key: expected ..., found ...".
 * Internal: libyaml types do not reach vkinfer.h.
 */
#ifndef VKI_CONFIG_YAML_H
#define VKI_CONFIG_YAML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "error.h"
#include "vkinfer.h"

typedef struct svc_cfg_ctx {
    const char      *file;
    yaml_document_t *doc;
    char            *err;
    size_t           err_size;
    char             dir[4096]; /* the file's folder, for relative paths */
} svc_cfg_ctx;

/* Writes "FILE:LINE:COL: <message>" for node n to the error buffer and
 * returns VKI_ERR_BAD_FILE. */
vki_status  svc_cfg_fail(svc_cfg_ctx *x, const yaml_node_t *n, const char *fmt, ...) VKI_PRINTF(3, 4);
const char *svc_cfg_node_kind(const yaml_node_t *n); /* "a scalar", "a list", ... */
static inline const char *svc_cfg_scalar(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

/* Typed values; `key` names the value in the message. */
vki_status svc_cfg_string(svc_cfg_ctx *x, const yaml_node_t *n, const char *key, char **out); /* non-empty, copied */
vki_status svc_cfg_int(svc_cfg_ctx *x, const yaml_node_t *n, const char *key, long lo, long hi, long *out);
vki_status svc_cfg_size(svc_cfg_ctx *x, const yaml_node_t *n, const char *key, uint64_t *out);
vki_status svc_cfg_timeout(svc_cfg_ctx *x, const yaml_node_t *n, const char *key, double max_ms, double *out);
vki_status svc_cfg_number(svc_cfg_ctx *x, const yaml_node_t *n, const char *key, double lo, double hi, double *out);
vki_status svc_cfg_duration(svc_cfg_ctx *x, const yaml_node_t *n, const char *key, double *ms); /* > 0 */

typedef vki_status (*svc_cfg_pair_fn)(svc_cfg_ctx *x, const char *key, yaml_node_t *k, yaml_node_t *v, void *user);
/* Calls fn for each key of mapping n; `what` names the mapping in messages. */
vki_status svc_cfg_each_pair(svc_cfg_ctx *x, yaml_node_t *n, const char *what, svc_cfg_pair_fn fn, void *user);

/* Parses text[len] (name for messages, dir for relative paths) and calls
 * top for each top-level key. On failure err holds the message. */
vki_status svc_cfg_parse_text(const char *name, const char *dir, const char *text, size_t len, svc_cfg_pair_fn top,
                              void *user, char *err, size_t err_size);
/* Reads a whole file (malloc'd into *text) and its folder into dir.
 * NOT_FOUND (cannot open), BAD_FILE (read error, over 64 MiB). */
vki_status svc_cfg_read_file(const char *path, char **text, size_t *len, char dir[4096], char *err, size_t err_size);

/* Parses a keep_alive: "-1" (forever: *forever true), "0", "30s", "10m",
 * "1h", "500ms", or a plain number of seconds; false if none of these. */
bool svc_parse_duration(const char *s, double *ms, bool *forever);
/* Parses "123", "64KiB", "1MiB", "2GiB", "1.5GB" into bytes; false if not a size. */
bool svc_parse_size(const char *s, uint64_t *out);

#endif
