/* cmd_serve.c: `vkinfer serve`: the OpenAI-compatible HTTP server (server/)
 * over the service (vkinfer.h's vki_service, engine/service/), from -m MODEL and/or a YAML config.
 * A -m model must open (header and tokenizer) or the server does not start;
 * then models load in the background and the URL is printed at once, with
 * examples for the kinds of model served. The log (server/log.h) goes to
 * stderr. SIGINT or SIGTERM stops it gracefully: no new connections, the
 * requests in flight get up to the drain timeout to finish (a second signal
 * ends the wait), the rest end with an error answer, all freed; exit 0.
 * SIGHUP re-reads the config file and applies it (server/reload.c), as
 * POST /admin/reload does; the command line's options still win. */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

const char cmd_serve_help[] =
    "serve models over HTTP (OpenAI-compatible: /v1/completions, /v1/chat/completions, /v1/embeddings)\n"
    "usage: vkinfer serve (-m MODEL | --config FILE) [options]\n"
    "  -m, --model PATH      a model to serve (repeatable; GGUF, .safetensors or HF folder; hf://ORG/REPO[:FILE]\n"
    "                        or an https:// URL is pulled first, as `vkinfer pull` does)\n"
    "  --id NAME             the id of the preceding -m model (default: its file name)\n"
    "  --config FILE         YAML config: server{host,port,api_key_env,max_body,max_queue,log_format,\n"
    "                        health_degraded_status,admin,...}, device{prefer,vram_budget,quantum,quantum_loads,\n"
    "                        drain,chunk_tokens,aging}, warmup{enabled,interval,threshold,state_dir},\n"
    "                        scheduler{embedding_cache},\n"
    "                        models[{id,path,kind,priority,n_ctx,n_seq_max,keep_alive,pin,fallback,\n"
    "                        prefix_reuse}]\n"
    "  --host H              listen address (default 127.0.0.1)\n"
    "  --port P              port (default 8080; 0 = any free port, printed)\n"
    "  --backend B           cpu | vulkan | auto (default auto)\n"
    "  --threads N           CPU threads (default: all cores)\n"
    "  --parallel N          sequences decoded together per chat model (default 4)\n"
    "  -c, --ctx N           context length per sequence (default: the model's, at most 4096)\n"
    "  --max-queue N         queued requests per model before 429 (default 64)\n"
    "  --api-key-env VAR     require \"Authorization: Bearer $VAR\" on every route but /health\n"
    "  --chat-template NAME  chat template family for the -m models (default: the model's own)\n"
    "  --log-format F        text (default) or json: one line per model state change and per request,\n"
    "                        on stderr\n"
    "  --state-dir DIR       where the usage history for warm-up is kept (default $XDG_STATE_HOME/vkinfer,\n"
    "                        else ~/.local/state/vkinfer; \"\" = none)\n"
    "  --no-warmup           load models on demand only (no loads ahead of predicted use)\n"
    "  --embedding-cache SIZE  embedding result cache (\"64MiB\"; default 0 = off): repeated inputs are\n"
    "                        answered from it, byte-identical, without queueing\n"
    "  --drain-timeout S     on SIGTERM/SIGINT, seconds in-flight requests may take to finish before\n"
    "                        they are ended with an error (default 30; 0 = at once)\n"
    "Routes: GET /health, GET /v1/models, POST /v1/completions, POST /v1/chat/completions,\n"
    "POST /v1/embeddings, GET /metrics (Prometheus), POST /admin/reload, POST /admin/models/ID/reload\n"
    "(the admin routes need the API key, or server.admin: true when there is none), POST /generate\n"
    "(the legacy model service's route: plain text).\n"
    "Hot reload: SIGHUP or POST /admin/reload re-read --config: models added, removed (drained first),\n"
    "swapped to a new path, settings applied; a bad file is refused whole and the running set stays.\n";

#ifdef VKI_HAVE_SERVER
#include "engine/tokenizer/tokenizer.h"
#include "error.h"
#include "server/events.h"
#include "server/config_diff.h"
#include "server/server.h"
#include "util.h"

#ifdef VKI_HAVE_PULL
#include "pull.h"
#endif

/* Models given as hf://ORG/REPO[:FILE] or a URL (with -m or as a config's
 * path) are pulled into the models folder first (VKI_HUB_URL, HF_TOKEN as
 * for `vkinfer pull`), then served from there. A pull that fails stops the
 * start: serving without a model the user named is not what they asked. */
static bool pull_remote_models(srv_config *c)
{
    for (int32_t i = 0; i < c->svc.n_models; i++) {
        if (!strstr(c->svc.models[i].path, "://")) continue;
#ifdef VKI_HAVE_PULL
        char *local = NULL;
        pull_params pp = pull_default_params();
        pp.trust_present = true; /* no re-hash of gigabytes at every start */
        vki_status s = pull_model(c->svc.models[i].path, &pp, &local);
        if (s != VKI_OK) {
            cli_status_error(s, "serve");
            return false;
        }
        free(c->svc.models[i].path);
        c->svc.models[i].path = local;
#else
        cli_error("serve: %s: this vkinfer was built without libcurl/libcrypto, so it cannot pull models "
                  "(see scripts/deps.sh)", c->svc.models[i].path);
        return false;
#endif
    }
    return true;
}

static void ignore_warning(const char *msg, void *user)
{
    (void)msg;
    (void)user;
}

/* mkdir -p, private: the history says when each model is used. */
static bool make_dirs(char *path)
{
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p) continue;
        char c = *p;
        *p = '\0';
        bool ok = mkdir(path, 0700) == 0 || errno == EEXIST;
        *p = c;
        if (!ok) return false;
        if (!c) return true;
    }
}

/* The warm-up history file, its folder created; NULL when none is kept
 * (state_dir "", no home) or the folder cannot be made (logged: the server
 * runs on, loading on demand as before). */
static char *state_history_path(const srv_config *cfg, srv_log *log)
{
    char dir[4096];
    const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    if (cfg->svc.state_dir) snprintf(dir, sizeof dir, "%s", cfg->svc.state_dir);
    else if (xdg && xdg[0] == '/') snprintf(dir, sizeof dir, "%s/vkinfer", xdg);
    else if (home && home[0] == '/') snprintf(dir, sizeof dir, "%s/.local/state/vkinfer", home);
    else dir[0] = '\0';
    if (!dir[0]) return NULL;
    if (!make_dirs(dir)) {
        srv_log_event(log, "warmup", "cannot create %s (%s): no usage history is kept", dir, strerror(errno));
        return NULL;
    }
    size_t n = strlen(dir) + sizeof "/usage.json";
    char *path = malloc(n);
    if (path) snprintf(path, n, "%s/usage.json", dir);
    return path;
}

/* The URL, then curl examples for each kind of model served (the first of
 * each kind), so every example works as printed. */
/* What the service's on_state feeds: the log and the status page's events. */
typedef struct state_sinks {
    srv_log    *log;
    srv_events *events;
} state_sinks;

static void on_state(const vki_service_model_info *info, void *user)
{
    const state_sinks *k = user;
    srv_log_model(info, k->log);
    srv_events_on_state(info, k->events);
}

static void print_banner(const srv_config *cfg, unsigned port)
{
    const char *host = strchr(cfg->host, ':') ? "[::1]" : strcmp(cfg->host, "0.0.0.0") ? cfg->host : "127.0.0.1";
    char auth[160] = "";
    if (cfg->api_key_env) snprintf(auth, sizeof auth, " -H \"Authorization: Bearer $%.100s\"", cfg->api_key_env);
    printf("vkinfer: serving on http://%s:%u (models load in the background; GET /health says when ready)\n", host,
           port);
    const srv_model_cfg *chat = NULL, *emb = NULL;
    for (int32_t i = 0; i < cfg->svc.n_models; i++) {
        const srv_model_cfg *m = &cfg->svc.models[i];
        if (m->kind == VKI_MODEL_KIND_EMBEDDING && !emb) emb = m;
        if (m->kind == VKI_MODEL_KIND_CHAT && !chat) chat = m;
    }
    const char *const fmt = "  curl http://%s:%u%s -H 'Content-Type: application/json'%s \\\n    -d '{\"model\":\"%s\",%s}'\n";
    if (chat) {
        printf(fmt, host, port, "/v1/completions", auth, chat->id, "\"prompt\":\"Once upon a time\",\"max_tokens\":32");
        printf(fmt, host, port, "/v1/chat/completions", auth, chat->id,
               "\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}],\"max_tokens\":32");
    }
    if (emb) printf(fmt, host, port, "/v1/embeddings", auth, emb->id, "\"input\":\"hello world\"");
    fflush(stdout);
}

/* The command line, kept for each (re)reading of the config: it wins over
 * the file every time. */
typedef struct serve_opts {
    const char      *config_path, *tmpl;
    srv_config       cli; /* models from -m, kept apart until the file is read */
    int32_t          port, n_par, n_ctx, max_queue, threads;
    bool             backend_set, no_warmup, log_format_set;
    char            *host, *key_env, *state_dir;
    vki_backend_kind backend;
    double           drain_s;
    srv_log_format   log_format;
    uint64_t         emb_cache;     /* --embedding-cache, when emb_cache_set */
    bool             emb_cache_set;
} serve_opts;

static vki_status dup_into(char **field, const char *v)
{
    char *d = strdup(v);
    if (!d) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "serve: out of memory");
    free(*field);
    *field = d;
    return VKI_OK;
}

/* The config file (if any), then the -m models and the options over it. */
static vki_status read_config(const serve_opts *o, srv_config *cfg, char *err, size_t err_size)
{
    vki_status st = VKI_OK;
    if (o->config_path && (st = srv_config_load(cfg, o->config_path, err, err_size)) != VKI_OK) return st;
    /* The file's hf:// and URL models; the command line's were pulled once
     * at start. A reload that names a new one downloads it here. */
    if (!pull_remote_models(cfg)) {
        snprintf(err, err_size, "%s: a model could not be pulled (the reason is above)", o->config_path);
        return VKI_ERR_NOT_FOUND;
    }
    for (int32_t i = 0; i < o->cli.svc.n_models; i++) {
        if (svc_config_add_model(&cfg->svc, o->cli.svc.models[i].id, o->cli.svc.models[i].path) != VKI_OK) goto oom;
        srv_model_cfg *m = &cfg->svc.models[cfg->svc.n_models - 1];
        if (o->tmpl && !(m->chat_template = strdup(o->tmpl))) goto oom;
    }
    if ((o->host && dup_into(&cfg->host, o->host)) || (o->key_env && dup_into(&cfg->api_key_env, o->key_env)) ||
        (o->state_dir && dup_into(&cfg->svc.state_dir, o->state_dir)))
        goto oom;
    if (o->no_warmup) cfg->svc.warmup = false;
    if (o->port >= 0) cfg->port = o->port;
    if (o->backend_set) cfg->svc.prefer = o->backend;
    if (o->threads) cfg->svc.n_threads = o->threads;
    if (o->max_queue) cfg->svc.max_queue = o->max_queue;
    if (o->log_format_set) cfg->log_format = o->log_format;
    if (o->drain_s >= 0) cfg->drain_timeout_ms = o->drain_s * 1e3;
    if (o->emb_cache_set) cfg->svc.emb_cache_bytes = o->emb_cache;
    for (int32_t i = 0; i < cfg->svc.n_models; i++) {
        if (o->n_par) cfg->svc.models[i].n_seq_max = (uint32_t)o->n_par;
        if (o->n_ctx) cfg->svc.models[i].n_ctx = (uint32_t)o->n_ctx;
    }
    return VKI_OK;
oom:
    snprintf(err, err_size, "out of memory");
    return VKI_ERR_OUT_OF_MEMORY;
}

/* srv_config_fn: what a hot reload reads (server/reload.c). */
static vki_status reload_source(void *user, srv_config *out, const char **file, char *err, size_t err_size)
{
    const serve_opts *o = user;
    *file = o->config_path;
    vki_status st = read_config(o, out, err, err_size);
    if (st == VKI_OK) st = srv_config_resolve(out, err, err_size);
    return st;
}

int cmd_serve(int argc, char **argv)
{
    srv_config cfg;
    srv_config_init(&cfg);
    const char *sv;
    long lv;
    int rc = 1;
    /* SIGHUP's default is to exit: held from the start (before any thread),
     * it waits for the sigwait below, which reloads. */
    sigset_t hup;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &hup, NULL);
    serve_opts o = {.port = -1, .backend = VKI_BACKEND_AUTO, .drain_s = -1, .log_format = SRV_LOG_TEXT};
    srv_config *const cli = &o.cli;
    srv_log log = {0};
    vki_service *svc = NULL;
    srv_events *events = NULL;
    state_sinks sinks = {.log = &log};
    srv_server *srv = NULL;
    char err[1024];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!cli_arg_str(argc, argv, &i, &sv)) goto out;
            if (svc_config_add_model(&cli->svc, NULL, sv) != VKI_OK) goto oom;
        } else if (!strcmp(a, "--id")) {
            if (!cli_arg_str(argc, argv, &i, &sv)) goto out;
            if (!cli->svc.n_models) {
                cli_error("serve: --id names the preceding -m model; give -m first");
                goto out;
            }
            char *id = strdup(sv);
            if (!id) goto oom;
            free(cli->svc.models[cli->svc.n_models - 1].id);
            cli->svc.models[cli->svc.n_models - 1].id = id;
        } else if (!strcmp(a, "--config")) {
            if (!cli_arg_str(argc, argv, &i, &o.config_path)) goto out;
        } else if (!strcmp(a, "--host")) {
            if (!cli_arg_str(argc, argv, &i, &sv)) goto out;
            if (dup_into(&o.host, sv) != VKI_OK) goto oom;
        } else if (!strcmp(a, "--port")) {
            if (!cli_arg_int(argc, argv, &i, 0, 65535, &lv)) goto out;
            o.port = (int32_t)lv;
        } else if (!strcmp(a, "--backend")) {
            if (!cli_arg_backend(argc, argv, &i, &o.backend)) goto out;
            o.backend_set = true;
        } else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
            if (!cli_arg_int(argc, argv, &i, 1, 1024, &lv)) goto out;
            o.threads = (int32_t)lv;
        } else if (!strcmp(a, "--parallel") || !strcmp(a, "-np")) {
            if (!cli_arg_int(argc, argv, &i, 1, 256, &lv)) goto out;
            o.n_par = (int32_t)lv;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
            if (!cli_arg_int(argc, argv, &i, 0, 1 << 20, &lv)) goto out;
            o.n_ctx = (int32_t)lv;
        } else if (!strcmp(a, "--max-queue")) {
            if (!cli_arg_int(argc, argv, &i, 1, 1 << 20, &lv)) goto out;
            o.max_queue = (int32_t)lv;
        } else if (!strcmp(a, "--api-key-env")) {
            if (!cli_arg_str(argc, argv, &i, &sv)) goto out;
            if (dup_into(&o.key_env, sv) != VKI_OK) goto oom;
        } else if (!strcmp(a, "--drain-timeout")) {
            if (!cli_arg_int(argc, argv, &i, 0, 3600, &lv)) goto out;
            o.drain_s = (double)lv;
        } else if (!strcmp(a, "--embedding-cache")) {
            if (!cli_arg_str(argc, argv, &i, &sv)) goto out;
            if (!svc_parse_size(sv, &o.emb_cache) || o.emb_cache > (1ull << 40)) {
                cli_error("option --embedding-cache: '%s' is not a size such as 64MiB, at most 1TiB (0 = off)", sv);
                goto out;
            }
            o.emb_cache_set = true;
        } else if (!strcmp(a, "--chat-template")) {
            if (!cli_arg_str(argc, argv, &i, &o.tmpl)) goto out;
        } else if (!strcmp(a, "--state-dir")) {
            if (!cli_arg_str(argc, argv, &i, &sv)) goto out;
            if (dup_into(&o.state_dir, sv) != VKI_OK) goto oom;
        } else if (!strcmp(a, "--no-warmup")) {
            o.no_warmup = true;
        } else if (!strcmp(a, "--log-format")) {
            if (!cli_arg_str(argc, argv, &i, &sv)) goto out;
            if (!srv_parse_log_format(sv, &o.log_format)) {
                cli_error("option --log-format: '%s' is not text or json", sv);
                goto out;
            }
            o.log_format_set = true;
        } else {
            cli_error("serve: unknown option '%s' (see vkinfer serve --help)", a);
            goto out;
        }
    }
    if (!pull_remote_models(cli)) goto out;
    if (read_config(&o, &cfg, err, sizeof err) != VKI_OK) {
        cli_error("%s", err);
        goto out;
    }
    srv_log_init(&log, stderr, cfg.log_format);
    /* A model named on the command line that cannot even be opened is a
     * mistake to report now, not a failed model to serve around (a config
     * file's models keep the others serving; the log says which failed).
     * Its warnings wait for the scheduler, which opens it again. */
    vki_set_warn_handler(ignore_warning, NULL);
    for (int32_t i = 0; i < cli->svc.n_models; i++) {
        vki_model_file *f = NULL;
        vki_tokenizer *t = NULL;
        if (!cli_open_tokenizer(cli->svc.models[i].path, &f, &t)) goto out;
        vki_tokenizer_destroy(t);
        vki_file_close(f);
    }
    vki_set_warn_handler(srv_log_warning, &log); /* the tokenizers' warnings become log lines */
    if (srv_config_resolve(&cfg, err, sizeof err) != VKI_OK) {
        cli_error("serve: %s", err);
        goto out;
    }

    /* glibc gives each thread that allocates its own arena (up to 8 per
     * core), each keeping its freed memory: with the HTTP pool, the
     * scheduler's workers and the compute threads that held hundreds of MB
     * under load for nothing. Two arenas keep it bounded; the threads
     * allocate little on hot paths. Before any thread starts. */
    mallopt(M_ARENA_MAX, 2);

    /* Signals are taken by sigwait below: block them before any thread starts. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP); /* a reload, on this thread (never the default: exit) */
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* The service takes the file's sections (svc_config_create); what it
     * cannot read from there comes from here: the hooks and the usage
     * history's path (made here, where a failure is logged). */
    vki_service_params sp = vki_service_default_params();
    if (!(events = srv_events_create(0))) goto oom;
    sinks.events = events;
    sp.on_state = on_state;
    sp.on_state_user = &sinks;
    sp.on_warm = srv_log_warm;
    sp.on_warm_user = &log;
    char *history = state_history_path(&cfg, &log);
    sp.warm_state_path = history;
    vki_status cst = svc_config_create(&cfg.svc, &sp, &svc);
    free(history);
    if (cst != VKI_OK) {
        cli_status_error(VKI_ERR_INVALID_ARGUMENT, "serve");
        goto out;
    }
    srv_events_attach(events, svc);
    if (srv_start(&cfg, svc, &log, &srv, err, sizeof err) != VKI_OK) {
        cli_error("serve: %s", err);
        goto out;
    }
    srv_set_events(srv, events);
    srv_set_config_source(srv, reload_source, &o);
    print_banner(&cfg, srv_port(srv));
    srv_log_event(&log, "listening", "port %u, %d model%s", srv_port(srv), cfg.svc.n_models, cfg.svc.n_models == 1 ? "" : "s");
    int sig = 0;
    while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP) {
        srv_log_event(&log, "reload", "SIGHUP: re-reading %s", o.config_path ? o.config_path : "the command line");
        srv_reload(srv, NULL); /* it logs what it did, or why it refused */
    }
    /* Graceful: stop accepting, let what is in flight finish within the
     * drain timeout (a second signal cuts it short), then srv_stop ends the
     * rest with an error answer. */
    srv_quiesce(srv);
    int32_t n = srv_in_flight(srv);
    srv_log_event(&log, "stopping", "%s: no new connections; %d request%s in flight, up to %.0f s to finish",
                  sig == SIGINT ? "SIGINT" : "SIGTERM", n, n == 1 ? "" : "s", srv_config_now(srv)->drain_timeout_ms / 1e3);
    const double t_sig = vki_time_ms();
    double until = t_sig + srv_config_now(srv)->drain_timeout_ms;
    while ((n = srv_in_flight(srv)) > 0 && vki_time_ms() < until) {
        struct timespec ts = {0, 50 * 1000000L};
        int got = sigtimedwait(&sigs, NULL, &ts);
        if (got == SIGHUP) {
            srv_log_event(&log, "reload", "SIGHUP ignored: the server is stopping");
        } else if (got > 0) {
            srv_log_event(&log, "stopping", "second signal: the drain ends now");
            break;
        }
    }
    if (n > 0) srv_log_event(&log, "stopping", "%d request%s still in flight: ended with an error", n, n == 1 ? "" : "s");
    /* Where a slow stop spent its time: the HTTP side (error answers
     * written, connections closed), then the models and their threads. */
    const double t_http = vki_time_ms();
    srv_stop(srv);
    srv = NULL;
    const double t_svc = vki_time_ms();
    vki_service_destroy(svc);
    svc = NULL;
    srv_log_event(&log, "stopped", "%.2f s after the signal (drain %.2f s, connections closed in %.2f s, models "
                  "unloaded in %.2f s)", (vki_time_ms() - t_sig) / 1e3, (t_http - t_sig) / 1e3, (t_svc - t_http) / 1e3,
                  (vki_time_ms() - t_svc) / 1e3);
    rc = 0;
    goto out;
oom:
    cli_error("serve: out of memory");
out:
    srv_stop(srv);
    vki_service_destroy(svc); /* the last state changes are logged: then the log goes */
    srv_events_destroy(events);
    vki_set_warn_handler(NULL, NULL);
    srv_log_deinit(&log);
    srv_config_deinit(&cfg);
    srv_config_deinit(cli);
    free(o.host);
    free(o.key_env);
    free(o.state_dir);
    return rc;
}
#else
int cmd_serve(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_error("serve: this vkinfer was built without libmicrohttpd/libyaml (see scripts/deps.sh)");
}
#endif
