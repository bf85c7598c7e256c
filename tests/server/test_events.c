/*
 * test_events.c: server/events.c alone: the ring keeps the newest events
 * in order and drops the oldest, a reader gets what came after its last
 * seq, long texts are cut, several threads push without losing one, and
 * the on_state hook turns state changes into one event each (load, CPU
 * fallback, unload with the scheduler's reason, failure, breaker trip)
 * and ignores changes that are not events.
 */
#include <pthread.h>
#include <string.h>

#include "server/events.h"
#include "test_util.h"

static void test_ring(void)
{
    srv_events *ev = srv_events_create(4);
    CHECK(ev);
    srv_event out[8];
    CHECK(srv_events_get(ev, 0, out, 8) == 0);
    for (int i = 1; i <= 6; i++) srv_events_push(ev, "load", "m", "n=%d", i);
    int32_t n = srv_events_get(ev, 0, out, 8);
    CHECKF(n == 4, "n %d", n);
    for (int i = 0; i < n; i++) {
        char want[16];
        snprintf(want, sizeof want, "n=%d", i + 3);
        CHECKF(out[i].seq == (uint64_t)(i + 3) && !strcmp(out[i].detail, want), "%d: seq %llu %s", i,
               (unsigned long long)out[i].seq, out[i].detail);
        CHECK(out[i].t_s > 1.6e9 && !strcmp(out[i].kind, "load") && !strcmp(out[i].model, "m"));
    }
    n = srv_events_get(ev, 5, out, 8);
    CHECK(n == 1 && out[0].seq == 6);
    n = srv_events_get(ev, 0, out, 2); /* the newest two, oldest first */
    CHECK(n == 2 && out[0].seq == 5 && out[1].seq == 6);
    CHECK(srv_events_get(ev, 6, out, 8) == 0);
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    srv_events_push(ev, "a-kind-name-longer-than-its-field", big, "%s", big);
    n = srv_events_get(ev, 6, out, 8);
    CHECK(n == 1 && strlen(out[0].detail) == sizeof out[0].detail - 1 && strlen(out[0].kind) == 15 &&
          strlen(out[0].model) == sizeof out[0].model - 1);
    srv_events_destroy(ev);
    srv_events_push(NULL, "load", "m", "x");
    CHECK(srv_events_get(NULL, 0, out, 8) == 0);
    srv_events_destroy(NULL);
}

static void *pusher(void *arg)
{
    for (int i = 0; i < 5000; i++) srv_events_push(arg, "load", "t", "%d", i);
    return NULL;
}

static void test_threads(void)
{
    srv_events *ev = srv_events_create(0);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, pusher, ev);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    srv_event out[128];
    int32_t n = srv_events_get(ev, 0, out, 128);
    CHECK(n == 128 && out[127].seq == 20000);
    for (int i = 1; i < n; i++) CHECK(out[i].seq == out[i - 1].seq + 1);
    srv_events_destroy(ev);
}

static vki_service_model_info info(const char *id, vki_model_state st)
{
    vki_service_model_info i = {.id = id, .state = st};
    snprintf(i.backend, sizeof i.backend, "cpu (avx2)");
    return i;
}

static void test_hook(void)
{
    srv_events *ev = srv_events_create(16);
    srv_event out[16];
    vki_service_model_info a = info("a", VKI_MODEL_LOADING);
    srv_events_on_state(&a, ev);
    CHECK(srv_events_get(ev, 0, out, 16) == 0); /* loading is not an event: its end is */
    a = info("a", VKI_MODEL_RESIDENT_CPU);
    a.bytes = 3u << 20;
    a.load_ms = 12;
    srv_events_on_state(&a, ev);
    int32_t n = srv_events_get(ev, 0, out, 16);
    CHECK(n == 1 && !strcmp(out[0].kind, "load") && !strcmp(out[0].model, "a") && strstr(out[0].detail, "3 MiB") &&
          strstr(out[0].detail, "cpu (avx2)"));
    /* the same state again (an error text changed): nothing */
    snprintf(a.message, sizeof a.message, "x");
    srv_events_on_state(&a, ev);
    CHECK(srv_events_get(ev, 1, out, 16) == 0);
    /* a breaker trip unloads the model: two events, the trip and the unload with its reason */
    a = info("a", VKI_MODEL_UNLOADED);
    a.breaker = VKI_BREAKER_OPEN;
    a.breaker_trips = 1;
    a.breaker_failures = 5;
    snprintf(a.message, sizeof a.message, "unloaded: its circuit breaker opened");
    srv_events_on_state(&a, ev);
    n = srv_events_get(ev, 1, out, 16);
    CHECKF(n == 2 && !strcmp(out[0].kind, "breaker_trip") && !strcmp(out[1].kind, "unload") &&
           strstr(out[1].detail, "circuit breaker"), "n %d", n);
    /* a refused load (unloaded -> unloaded) is not an unload */
    srv_events_on_state(&a, ev);
    CHECK(srv_events_get(ev, 3, out, 16) == 0);
    vki_service_model_info b = info("b", VKI_MODEL_FAILED);
    snprintf(b.message, sizeof b.message, "NOT_FOUND: no such file");
    srv_events_on_state(&b, ev);
    n = srv_events_get(ev, 3, out, 16);
    CHECK(n == 1 && !strcmp(out[0].kind, "failed") && !strcmp(out[0].model, "b") && strstr(out[0].detail, "NOT_FOUND"));
    srv_events_on_state(NULL, ev);
    srv_events_on_state(&b, NULL);
    srv_events_destroy(ev);
}

int main(void)
{
    test_ring();
    test_threads();
    test_hook();
    return test_finish("test_events");
}
