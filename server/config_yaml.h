/*
 * config_yaml.h: what config.c hands the parsers of its other sections
 * (config_routes.c): the document and where messages go. Internal to the
 * config files. Must not: be included outside server/config*.c.
 */
#ifndef VKI_SRV_CONFIG_YAML_H
#define VKI_SRV_CONFIG_YAML_H

#include <yaml.h>

#include "server/config.h"

typedef struct srv_cfg_yaml {
    const char      *file;
    yaml_document_t *doc;
    char            *err;
    size_t           err_size;
} srv_cfg_yaml;

/* routes: [...] and router: {model, threshold}. VKI_ERR_BAD_FILE with
 * "FILE:LINE:COL: ..." in y->err. */
vki_status srv_config_parse_routes(srv_config *c, const srv_cfg_yaml *y, yaml_node_t *v);
vki_status srv_config_parse_router(srv_config *c, const srv_cfg_yaml *y, yaml_node_t *v);

#endif
