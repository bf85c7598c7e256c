/*
 * config_diff.h: what a new configuration changes against the running one
 * (hot reload, server/reload.c): each model by id (added, removed, a new
 * file, settings that apply in place, settings that need the model made
 * anew) and the server settings that only a restart applies; and the
 * scheduler's parameters for a configured model. Pure: compares two
 * srv_configs, applies nothing, opens no file.
 */
#ifndef VKI_SRV_CONFIG_DIFF_H
#define VKI_SRV_CONFIG_DIFF_H

#include "engine/sched/sched.h"
#include "server/config.h"

typedef enum srv_diff_action {
    SRV_DIFF_UNCHANGED = 0,
    SRV_DIFF_ADDED,    /* only in the new config                                    */
    SRV_DIFF_REMOVED,  /* only in the old one: drains, then unloads                  */
    SRV_DIFF_SWAPPED,  /* path changed: sched_reload_model (live settings applied too) */
    SRV_DIFF_CHANGED,  /* only live settings changed: applied in place               */
    SRV_DIFF_REPLACED, /* kind, n_ctx, n_seq_max, breaker or test_fail changed: the
                          old model is removed (drains) and a new one added           */
} srv_diff_action;

const char *srv_diff_action_name(srv_diff_action a); /* "added", "removed", ... */

typedef struct srv_diff_model {
    const char     *id;      /* borrowed from the configs                         */
    srv_diff_action action;
    int32_t         old_i;   /* index in the old config; -1 when added            */
    int32_t         new_i;   /* index in the new config; -1 when removed          */
    char            what[256]; /* the settings that changed, "pin, keep_alive"     */
} srv_diff_model;

typedef struct srv_config_diff {
    srv_diff_model *models;  /* the old config's order, then the added ones       */
    int32_t         n_models;
    char            live[256];          /* server settings applied now: "server.max_body"  */
    char            needs_restart[512]; /* and those a restart applies: "server.port, ..." */
} srv_config_diff;

/* Compares old (the running models; old_live[i] false = skip entry i, one
 * being removed; NULL = all) with neu. OUT_OF_MEMORY only. */
vki_status srv_config_diff_make(const srv_config *old, const bool *old_live, const srv_config *neu,
                                srv_config_diff *out);
void       srv_config_diff_free(srv_config_diff *d);

#endif
