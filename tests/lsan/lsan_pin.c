/*
 * lsan_pin.c: a dlclose() that leaves the libraries named in VKI_LSAN_PIN
 * (colon-separated file names, e.g. "libvulkan_lvp.so") mapped until exit.
 * LD_PRELOADed into the sanitizer build's tests by tests/CMakeLists.txt; see
 * lsan.supp for why. Built without sanitizers, since it is also preloaded
 * into python3 and bash. Every other handle is closed as usual.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>

static int pinned(const char *path) {
    const char *list = getenv("VKI_LSAN_PIN");
    if (!list || !path) {
        return 0;
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && memcmp(p, base, n) == 0) {
            return 1;
        }
        p += len + (end != NULL);
    }
    return 0;
}

int dlclose(void *handle) {
    struct link_map *lm = NULL;
    if (dlinfo(handle, RTLD_DI_LINKMAP, &lm) == 0 && lm && pinned(lm->l_name)) {
        return 0; /* the reference is kept: the library stays mapped */
    }
    int (*next)(void *) = (int (*)(void *))dlsym(RTLD_NEXT, "dlclose");
    return next ? next(handle) : -1;
}
