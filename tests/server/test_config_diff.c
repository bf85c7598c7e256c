/* test_config_diff.c: server/config_diff.c alone: configs parsed from text
 * and diffed by id: added, removed, swapped (path), changed in place (each
 * live setting), replaced (kind, n_ctx, n_seq_max, breaker), unchanged;
 * entries being removed are skipped; server settings sorted into live and
 * needs-restart; the scheduler params built from a model's config. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/config_diff.h"
#include "test_util.h"

static void parse(srv_config *c, const char *text)
{
    char err[512];
    srv_config_init(c);
    vki_status st = srv_config_parse(c, "t.yaml", "", text, strlen(text), err, sizeof err);
    CHECKF(st == VKI_OK, "%s", err);
}

static const srv_diff_model *find(const srv_config_diff *d, const char *id)
{
    for (int32_t k = 0; k < d->n_models; k++)
        if (!strcmp(d->models[k].id, id)) return &d->models[k];
    return NULL;
}

static void expect(const srv_config_diff *d, const char *id, srv_diff_action a, const char *what)
{
    const srv_diff_model *m = find(d, id);
    CHECKF(m && m->action == a && (!what || !strcmp(m->what, what)), "%s: %s (%s), expected %s (%s)", id,
           m ? srv_diff_action_name(m->action) : "absent", m ? m->what : "", srv_diff_action_name(a),
           what ? what : "any");
}

int main(void)
{
    srv_config a, b;
    parse(&a, "server: {port: 8080, max_body: 1MiB}\n"
              "models:\n"
              "  - {id: same, path: s.gguf, kind: chat}\n"
              "  - {id: gone, path: g.gguf, kind: chat}\n"
              "  - {id: moved, path: m1.gguf, kind: chat}\n"
              "  - {id: tuned, path: t.gguf, kind: chat, keep_alive: 5m, fallback: [same]}\n"
              "  - {id: bigger, path: b.gguf, kind: chat, n_ctx: 256}\n"
              "  - {id: dying, path: d.gguf, kind: chat}\n");
    parse(&b, "server: {port: 9090, max_body: 2MiB, admin: true}\n"
              "models:\n"
              "  - {id: same, path: s.gguf, kind: chat}\n"
              "  - {id: moved, path: m2.gguf, kind: chat, pin: true}\n"
              "  - {id: tuned, path: t.gguf, kind: chat, keep_alive: 10m, fallback: [same, cpu], priority: batch}\n"
              "  - {id: bigger, path: b.gguf, kind: chat, n_ctx: 512}\n"
              "  - {id: dying, path: d.gguf, kind: chat}\n"
              "  - {id: fresh, path: f.gguf, kind: chat}\n");
    /* "dying" is being removed already: the new config's one is an add. */
    const bool live[] = {true, true, true, true, true, false};
    srv_config_diff d;
    CHECK(srv_config_diff_make(&a, live, &b, &d) == VKI_OK);
    CHECK(d.n_models == 7);
    expect(&d, "same", SRV_DIFF_UNCHANGED, "");
    expect(&d, "gone", SRV_DIFF_REMOVED, NULL);
    expect(&d, "moved", SRV_DIFF_SWAPPED, "path, pin");
    expect(&d, "tuned", SRV_DIFF_CHANGED, "keep_alive, priority, fallback");
    expect(&d, "bigger", SRV_DIFF_REPLACED, "n_ctx");
    expect(&d, "dying", SRV_DIFF_ADDED, NULL);
    expect(&d, "fresh", SRV_DIFF_ADDED, NULL);
    CHECKF(!strcmp(d.live, "server.max_body, server.admin"), "live: %s", d.live);
    CHECKF(!strcmp(d.needs_restart, "server.port"), "needs restart: %s", d.needs_restart);
    const srv_diff_model *m = find(&d, "moved");
    CHECK(m && m->old_i == 2 && m->new_i == 1);
    srv_config_diff_free(&d);

    /* The same config: all unchanged, no server setting named. */
    CHECK(srv_config_diff_make(&b, NULL, &b, &d) == VKI_OK);
    for (int32_t k = 0; k < d.n_models; k++) CHECK(d.models[k].action == SRV_DIFF_UNCHANGED);
    CHECK(!d.live[0] && !d.needs_restart[0]);
    srv_config_diff_free(&d);

    /* The scheduler's view of a model. */
    const char *chain[65];
    sched_model_params mp;
    svc_config_model_params(&b.svc, &b.svc.models[2], chain, &mp);
    CHECK(!strcmp(mp.id, "tuned") && mp.has_keep_alive && mp.keep_alive_ms == 600e3 && mp.fallback_cpu);
    CHECK(mp.fb.chain && !strcmp(mp.fb.chain[0], "same") && !mp.fb.chain[1] && mp.mp.n_seq_max == 4);
    srv_config_deinit(&a);
    srv_config_deinit(&b);
    return test_finish("test_config_diff");
}
