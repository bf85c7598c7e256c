/* test_util.c: see test_util.h. */
#include "test_util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>

int vki_test_failures = 0;

void test_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("SKIPPED: ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
    exit(77);
}

const char *test_shared_path(const char *rel)
{
    static _Thread_local char buf[8][4096];
    static _Thread_local int next;
    const char *dir = getenv("VKI_SHARED_DIR");
    if (!dir || !dir[0]) dir = "../shared";
    char *out = buf[next++ % 8];
    snprintf(out, sizeof buf[0], "%s/%s", dir, rel);
    struct stat st;
    if (stat(out, &st) != 0)
        test_skip("%s is absent (set VKI_SHARED_DIR to the shared data folder)", out);
    return out;
}

char *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = '\0';
    if (len) *len = (size_t)n;
    return buf;
}

int test_finish(const char *name)
{
    if (vki_test_failures) {
        printf("%s: FAILED (%d checks)\n", name, vki_test_failures);
        return 1;
    }
    printf("%s: passed\n", name);
    return 0;
}

uint64_t test_rand_u64(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9E3779B97F4A7C15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

float test_rand_f32(uint64_t *s, float lo, float hi)
{
    return lo + (hi - lo) * (float)((test_rand_u64(s) >> 40) * (1.0 / 16777216.0));
}
