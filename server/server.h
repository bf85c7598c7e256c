/*
 * server.h: the HTTP face: an OpenAI-compatible server over a scheduler
 * (libmicrohttpd: a fixed pool of polling threads that never wait, the
 * waits being suspended connections; JSON through cJSON).
 * Routes: GET /health, GET /v1/models, POST /v1/completions,
 * POST /v1/chat/completions, POST /v1/embeddings, GET /metrics,
 * GET /v1/system/status and the status page at / and /ui.
 * POST /admin/reload, POST /admin/models/{id}/reload (hot reload: reload.c).
 * Must not: run kernels or schedule (everything goes through the service
 * API, vkinfer.h's vki_service; the routes engine/service/README.md lists still
 * reach engine/sched/ for what that API does not carry yet).
 */
#ifndef VKI_SERVER_H
#define VKI_SERVER_H

#include <stdint.h>

#include "engine/sched/sched.h"
#include "server/config.h"
#include "server/log.h"

typedef struct srv_server srv_server;
typedef struct srv_events srv_events; /* server/events.h */

/* Where a hot reload reads the configuration: fills out (initialised by
 * the caller) as at start (the file, then the command line's overrides,
 * srv_config_resolve), sets *file to the config file's path (for
 * FILE:LINE:COL; NULL = none) and returns VKI_OK, or writes the problem to
 * err ("FILE:LINE:COL: ...") and returns an error. */
typedef vki_status (*srv_config_fn)(void *user, srv_config *out, const char **file, char *err, size_t err_size);

/* Starts listening on cfg->host:cfg->port (0 = a free port) and serving
 * requests for the models in `svc`, which holds cfg's models in cfg's order
 * (per-model settings are looked up by index). Each answered request gets
 * a line in `log` (NULL = none). cfg, svc and log are borrowed and must
 * outlive the server. Writes the problem to err on failure (port taken, bad
 * host, no key in the api_key_env variable). */
vki_status srv_start(const srv_config *cfg, vki_service *svc, srv_log *log, srv_server **out, char *err,
                     size_t err_size);
/* The recent-events ring /v1/system/status shows (borrowed; it must
 * outlive the server). Set right after srv_start; NULL = none. */
void       srv_set_events(srv_server *srv, srv_events *ev);
/* Sets where srv_reload reads the configuration (none: reloads are refused). */
void       srv_set_config_source(srv_server *srv, srv_config_fn fn, void *user);
/* Hot reload (SIGHUP, POST /admin/reload): reads the configuration, and
 * when all of it is valid applies the difference to the running server:
 * models added, removed (they drain, then unload), swapped to a new file,
 * updated in place or made anew; server settings that only a restart
 * applies are listed, not applied. Otherwise nothing changes. Logs what it
 * did. *report (may be NULL; free()) gets the JSON answer of POST
 * /admin/reload, or {"error": ...}. Thread-safe; one reload at a time.
 * BAD_FILE (refused), OUT_OF_MEMORY. */
vki_status srv_reload(srv_server *srv, char **report);
/* The settings the server runs with now (the last reload's). Valid until srv_stop. */
const srv_config *srv_config_now(const srv_server *srv);
/* The port the server listens on. */
uint16_t   srv_port(const srv_server *srv);
/* The start of a graceful stop: stops accepting connections (new ones are
 * refused) and answers any new request on an open connection 503
 * shutting_down, closing it; what is in flight carries on. Idempotent. */
void       srv_quiesce(srv_server *srv);
/* Requests received and not yet answered to their end (streams included). */
int32_t    srv_in_flight(const srv_server *srv);
/* Quiesces, cancels what is still in flight (vki_service_shutdown), whose clients
 * get an error answer (an SSE error event then data: [DONE] for streams, a
 * JSON 503 shutting_down otherwise) written within a few seconds, then
 * closes every connection and frees the server. NULL is a no-op. */
void       srv_stop(srv_server *srv);

#endif
