/* test_util.h: the tiny harness every C test uses: checks that count
 * failures, a skip that says why, the shared data directory, and random
 * numbers that repeat run to run. */
#ifndef VKI_TEST_UTIL_H
#define VKI_TEST_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

extern int vki_test_failures;

#define CHECK(cond) do { if (!(cond)) { vki_test_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECKF(cond, ...) do { if (!(cond)) { vki_test_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

/* Exits with 77 (ctest: skipped) after printing why. */
_Noreturn void test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Path under ../shared (VKI_SHARED_DIR); skips the test when the file is absent. */
const char *test_shared_path(const char *rel);
/* Reads a whole file (NUL-terminated); NULL when it cannot. Caller frees. */
char *test_read_file(const char *path, size_t *len);
/* Prints the summary line and returns the exit status. */
int test_finish(const char *name);

/* xorshift64*: deterministic across platforms. */
uint64_t test_rand_u64(uint64_t *state);
float    test_rand_f32(uint64_t *state, float lo, float hi);

#endif
