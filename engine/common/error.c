/* error.c: thread-local error messages, warnings and status names. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VKI_ERR_MAX 1024

static _Thread_local char g_err[VKI_ERR_MAX];

const char *vki_last_error(void) { return g_err; }

void vki_clear_error(void) { g_err[0] = '\0'; }

vki_status vki_fail(vki_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return s;
}

vki_status vki_fail_prefix(vki_status s, const char *fmt, ...)
{
    char prefix[VKI_ERR_MAX], old[VKI_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_err, sizeof old);
    snprintf(g_err, sizeof g_err, "%.400s: %.600s", prefix, old);
    return s;
}

static vki_warn_fn g_warn_fn;
static void       *g_warn_user;

void vki_set_warn_handler(vki_warn_fn fn, void *user)
{
    g_warn_fn = fn;
    g_warn_user = user;
}

void vki_warn(const char *fmt, ...)
{
    char msg[VKI_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g_warn_fn) g_warn_fn(msg, g_warn_user);
    else fprintf(stderr, "vkinfer: warning: %s\n", msg);
}

void vki_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "vkinfer: internal error: assertion '%s' failed at %s:%d\n", expr, file, line);
    abort();
}

const char *vki_status_str(vki_status s)
{
    switch (s) {
    case VKI_OK:                       return "ok";
    case VKI_ERR_INVALID_ARGUMENT:     return "invalid argument";
    case VKI_ERR_NOT_FOUND:            return "not found";
    case VKI_ERR_BAD_FILE:             return "bad file";
    case VKI_ERR_UNSUPPORTED:          return "unsupported";
    case VKI_ERR_OUT_OF_MEMORY:        return "out of memory";
    case VKI_ERR_OUT_OF_DEVICE_MEMORY: return "out of device memory";
    case VKI_ERR_DEVICE_LOST:          return "device lost";
    case VKI_ERR_QUEUE_FULL:           return "queue full";
    case VKI_ERR_CANCELLED:            return "cancelled";
    case VKI_ERR_TIMEOUT:              return "timeout";
    case VKI_ERR_INTERNAL:             return "internal error";
    }
    return "unknown status";
}

int vki_version_number(void) { return VKI_VERSION_NUMBER; }
const char *vki_version_string(void) { return VKI_VERSION_STRING; }
