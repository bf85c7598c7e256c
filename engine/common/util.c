/* util.c: the non-inline parts of util.h. */
#define _POSIX_C_SOURCE 200809L
#include "util.h"

#include <time.h>

double vki_time_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}
