/* fuzz_driver.c: a main() for the fuzz targets in ordinary builds: runs
 * LLVMFuzzerTestOneInput once on every file named (directories are walked
 * one level), so the corpus is replayed by ctest on every build. It names
 * the slowest input: a target's speed in a campaign is set by its slow
 * inputs, and a slow one is often a slow path in the code under test. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "test_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* a target's one-time set-up, as libFuzzer calls it, so that the first
 * input is not taken for the slowest */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static double slowest_ms;
static char   slowest[4096];

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts); /* CPU time: the box is shared */
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int run_file(const char *path)
{
    size_t n = 0;
    char *buf = test_read_file(path, &n);
    if (!buf) {
        fprintf(stderr, "cannot read %s\n", path);
        return 1;
    }
    /* an exact-size copy so ASan catches a read one past the end */
    uint8_t *exact = malloc(n ? n : 1);
    memcpy(exact, buf, n);
    free(buf);
    double t0 = now_ms();
    LLVMFuzzerTestOneInput(exact, n);
    double ms = now_ms() - t0;
    if (ms > slowest_ms) {
        slowest_ms = ms;
        snprintf(slowest, sizeof slowest, "%s", path);
    }
    free(exact);
    return 0;
}

int main(int argc, char **argv)
{
    int files = 0, bad = 0;
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "missing %s\n", argv[i]);
            bad++;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            bad += run_file(argv[i]);
            files++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            bad += run_file(path);
            files++;
        }
        if (d) closedir(d);
    }
    printf("%d inputs replayed\n", files);
    if (files) printf("slowest: %s (%.1f CPU ms)\n", slowest, slowest_ms);
    CHECK(files > 0);
    CHECK(bad == 0);
    return test_finish("fuzz replay");
}
