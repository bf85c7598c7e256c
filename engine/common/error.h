/*
 * error.h: the thread-local error message behind vki_last_error() and the
 * one helper every module uses to fail: vki_fail(status, fmt, ...); and
 * vki_warn for what succeeds with a caveat.
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

/* Warnings: something works, but maybe not as its user expects (a GGUF
 * without tokenizer.ggml.pre). They go to stderr as "vkinfer: warning: ..."
 * unless a program routes them elsewhere (the server writes them into its
 * log, so --log-format json stays one JSON object per line). */
typedef void (*vki_warn_fn)(const char *msg, void *user);
void vki_warn(const char *fmt, ...) VKI_PRINTF(1, 2);
/* Routes every later warning to fn (NULL: stderr again). Process-wide:
 * set it before starting threads that may warn, clear it after they end. */
void vki_set_warn_handler(vki_warn_fn fn, void *user);

_Noreturn void vki_assert_fail(const char *expr, const char *file, int line);

#define VKI_ASSERT(x) ((x) ? (void)0 : vki_assert_fail(#x, __FILE__, __LINE__))

/* Propagates a failing status. */
#define VKI_TRY(expr) do { vki_status vki_try_s_ = (expr); if (vki_try_s_ != VKI_OK) return vki_try_s_; } while (0)

#endif
