/* progress.c: what a download shows on stderr: on a terminal one bar per
 * file redrawn at most 10 times a second (bytes, %, rate, ETA); otherwise
 * (logs, pipes) nothing while it runs and one summary line per file. */
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "pull_internal.h"
#include "util.h"

void progress_bytes(char *buf, size_t size, double n)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (n >= 1024.0 && u < 4) n /= 1024.0, u++;
    snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", n, unit[u]);
}

void progress_begin(progress *pr, const char *name, int64_t total, int64_t start, bool quiet)
{
    memset(pr, 0, sizeof *pr);
    pr->name = name;
    pr->total = total;
    pr->start = pr->done = start;
    pr->t0_ms = pr->last_ms = vki_time_ms();
    pr->quiet = quiet;
    pr->tty = !quiet && isatty(STDERR_FILENO);
}

static void draw(progress *pr, double now)
{
    char got[32], tot[32], rate[32], eta[32] = "--:--";
    double secs = (now - pr->t0_ms) / 1e3;
    double bps = secs > 0 ? (double)(pr->done - pr->start) / secs : 0;
    progress_bytes(got, sizeof got, (double)pr->done);
    progress_bytes(rate, sizeof rate, bps);
    if (pr->total > 0) {
        progress_bytes(tot, sizeof tot, (double)pr->total);
        if (bps > 0 && pr->total >= pr->done) {
            long left = (long)((double)(pr->total - pr->done) / bps + 0.5);
            if (left >= 3600) snprintf(eta, sizeof eta, "%ld:%02ld:%02ld", left / 3600, left / 60 % 60, left % 60);
            else snprintf(eta, sizeof eta, "%02ld:%02ld", left / 60, left % 60);
        }
        int w = 24, fill = (int)((double)w * (double)pr->done / (double)pr->total);
        if (fill > w) fill = w;
        fprintf(stderr, "\r\033[K%.40s [%.*s%*s] %3d%% %s/%s %s/s ETA %s", pr->name, fill,
                "########################", w - fill, "", (int)(100.0 * (double)pr->done / (double)pr->total), got,
                tot, rate, eta);
    } else {
        fprintf(stderr, "\r\033[K%.40s %s %s/s", pr->name, got, rate);
    }
    pr->drawn = true;
    pr->shown = pr->done;
}

void progress_update(progress *pr, int64_t done)
{
    pr->done = done;
    if (!pr->tty) return;
    double now = vki_time_ms();
    bool last = pr->total > 0 && done >= pr->total && pr->shown < pr->total; /* 100% once, at once */
    if (now - pr->last_ms < 100.0 && !last) return;
    pr->last_ms = now;
    draw(pr, now);
}

void progress_end(progress *pr)
{
    if (pr->tty && pr->drawn) {
        if (pr->shown != pr->done) draw(pr, vki_time_ms());
        fputc('\n', stderr);
    }
    pr->drawn = false;
}

void progress_note(progress *pr, const char *fmt, ...)
{
    if (pr && pr->quiet) return;
    if (pr && pr->drawn) {
        fputc('\n', stderr);
        pr->drawn = false;
    }
    va_list ap;
    va_start(ap, fmt);
    fputs("vkinfer: pull: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
