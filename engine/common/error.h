/*
 * error.h: the thread-local error message behind vki_last_error() and the
 * one helper every module uses to fail: vki_fail(status, fmt, ...).
 * VKI_ASSERT is for broken internal invariants only, never for input.
 */
#ifndef VKI_ERROR_H
#define VKI_ERROR_H

#include "vkinfer.h"

#if defined(__GNUC__)
#define VKI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define VKI_PRINTF(a, b)
#endif

/* Records the message for vki_last_error() and returns s, so that a failure
 * reads `return vki_fail(VKI_ERR_BAD_FILE, "%s: tensor '%s' ...", path, name);`. */
vki_status vki_fail(vki_status s, const char *fmt, ...) VKI_PRINTF(2, 3);

/* Prefixes the current message: "ctx: <old message>". Returns s. */
vki_status vki_fail_prefix(vki_status s, const char *fmt, ...) VKI_PRINTF(2, 3);

void vki_clear_error(void);

_Noreturn void vki_assert_fail(const char *expr, const char *file, int line);

#define VKI_ASSERT(x) ((x) ? (void)0 : vki_assert_fail(#x, __FILE__, __LINE__))

/* Propagates a failing status. */
#define VKI_TRY(expr) do { vki_status vki_try_s_ = (expr); if (vki_try_s_ != VKI_OK) return vki_try_s_; } while (0)

#endif
