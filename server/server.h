/*
 * server.h: the HTTP face: an OpenAI-compatible server over a scheduler
 * (libmicrohttpd: a fixed pool of polling threads that never wait, the
 * waits being suspended connections; JSON through cJSON).
 * Routes: GET /health, GET /v1/models, POST /v1/completions,
 * POST /v1/chat/completions, POST /v1/embeddings, GET /metrics,
 * GET /v1/system/status and the status page at / and /ui.
 * Must not: run kernels (everything goes through engine/sched/).
 */
#ifndef VKI_SERVER_H
#define VKI_SERVER_H

#include <stdint.h>

#include "engine/sched/sched.h"
#include "server/config.h"
#include "server/log.h"

typedef struct srv_server srv_server;
typedef struct srv_events srv_events; /* server/events.h */

/* Starts listening on cfg->host:cfg->port (0 = a free port) and serving
 * requests for the models in `s`, which holds cfg's models in cfg's order
 * (per-model settings are looked up by index). Each answered request gets
 * a line in `log` (NULL = none). cfg, s and log are borrowed and must
 * outlive the server. Writes the problem to err on failure (port taken, bad
 * host, no key in the api_key_env variable). */
vki_status srv_start(const srv_config *cfg, scheduler *s, srv_log *log, srv_server **out, char *err,
                     size_t err_size);
/* The recent-events ring /v1/system/status shows (borrowed; it must
 * outlive the server). Set right after srv_start; NULL = none. */
void       srv_set_events(srv_server *srv, srv_events *ev);
/* The port the server listens on. */
uint16_t   srv_port(const srv_server *srv);
/* The start of a graceful stop: stops accepting connections (new ones are
 * refused) and answers any new request on an open connection 503
 * shutting_down, closing it; what is in flight carries on. Idempotent. */
void       srv_quiesce(srv_server *srv);
/* Requests received and not yet answered to their end (streams included). */
int32_t    srv_in_flight(const srv_server *srv);
/* Quiesces, cancels what is still in flight (sched_shutdown), whose clients
 * get an error answer (an SSE error event then data: [DONE] for streams, a
 * JSON 503 shutting_down otherwise) written within a few seconds, then
 * closes every connection and frees the server. NULL is a no-op. */
void       srv_stop(srv_server *srv);

#endif
