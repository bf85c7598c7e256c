/* download.c: one file from URL to DIR/REL, safely: the bytes go to
 * REL.part, a later try or run resumes it with a Range request (a server
 * that answers 200 instead restarts it from zero), the whole file's
 * digests are checked against what the hub published, and only then is it
 * renamed into place, so a file under its final name is always complete.
 * A checksum mismatch deletes the .part (resuming it would keep the bad
 * bytes); every other failure keeps it for the next try. The .part is
 * flock'ed while bytes go into it: one writer per file. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "pull_internal.h"
#include "util.h"

int64_t download_free_bytes(pull_ctx *ctx, const char *dir)
{
    struct statvfs vs;
    int64_t free_b = statvfs(dir, &vs) == 0 ? (int64_t)vs.f_bavail * (int64_t)vs.f_frsize : INT64_MAX;
    if (ctx->free_limit >= 0 && ctx->free_limit - ctx->written < free_b) free_b = ctx->free_limit - ctx->written;
    return free_b;
}

/* mkdir -p for the folders of path (not its last segment). */
static bool make_parents(const char *path)
{
    char buf[4096];
    if (strlen(path) >= sizeof buf) return false;
    strcpy(buf, path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        bool ok = mkdir(buf, 0755) == 0 || errno == EEXIST;
        *p = '/';
        if (!ok) return false;
    }
    return true;
}

typedef struct dl_try {
    pull_ctx        *ctx;
    const pull_item *it;
    const char      *dir;
    FILE            *f;
    digest           d;
    progress         pr;
    http_resp        r;
    int64_t          offset;   /* bytes of the .part kept when this try began */
    int64_t          written;  /* bytes appended by this try */
    bool             started;  /* the answer's headers were checked */
    bool             body;     /* a 2xx answer whose body is the file */
    vki_status       fail;     /* set by the callbacks: why they stopped the transfer */
} dl_try;

/* The first bytes of an answer: is it the file, from where, and does it fit? */
static bool check_start(dl_try *t)
{
    long status = 0;
    curl_easy_getinfo(t->ctx->curl, CURLINFO_RESPONSE_CODE, &status);
    t->started = true;
    if (status < 200 || status >= 300) return true; /* an error page: read to the end, then report the status */
    t->body = true;
    const char *rel = t->it->rel;
    if (status == 206 && t->r.range_start != t->offset) {
        t->fail = vki_fail(VKI_ERR_INTERNAL, "%s: asked for bytes from %lld, the server sent them from %lld", t->it->url,
                           (long long)t->offset, (long long)t->r.range_start);
        return false;
    }
    if (status != 206 && t->offset > 0) {
        progress_note(&t->pr, "%s: the server ignored the Range request (HTTP %ld): starting over", rel, status);
        if (ftruncate(fileno(t->f), 0) != 0) {
            t->fail = vki_fail(VKI_ERR_INTERNAL, "%s.part: cannot truncate: %s", rel, strerror(errno));
            return false;
        }
        digest_deinit(&t->d);
        if ((t->fail = digest_init(&t->d, t->it->sha1[0] ? t->it->size : -1)) != VKI_OK) return false;
        t->offset = 0;
        t->pr.start = t->pr.done = 0;
    }
    int64_t total = status == 206 ? t->r.range_total : t->r.content_length >= 0 ? t->offset + t->r.content_length : -1;
    if (t->it->size >= 0 && total >= 0 && total != t->it->size) {
        t->fail = vki_fail(VKI_ERR_BAD_FILE, "%s: the server sends %lld bytes, the hub's listing says %lld", t->it->url,
                           (long long)total, (long long)t->it->size);
        return false;
    }
    if (total >= 0) {
        t->pr.total = total;
        int64_t free_b = download_free_bytes(t->ctx, t->dir);
        if (total - t->offset > free_b) {
            char need[32], have[32];
            progress_bytes(need, sizeof need, (double)(total - t->offset));
            progress_bytes(have, sizeof have, (double)free_b);
            t->fail = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: not enough disk space in %s: %s needed, %s free", rel, t->dir,
                               need, have);
            return false;
        }
    }
    return true;
}

static size_t on_data(char *data, size_t size, size_t nitems, void *user)
{
    dl_try *t = user;
    size_t n = size * nitems;
    if (!t->started && !check_start(t)) return 0;
    if (!t->body) return n;
    if (fwrite(data, 1, n, t->f) != n) {
        int e = errno;
        t->fail = vki_fail(e == ENOSPC ? VKI_ERR_OUT_OF_MEMORY : VKI_ERR_INTERNAL, "%s.part: write failed: %s%s",
                           t->it->rel, strerror(e), e == ENOSPC ? " (the disk is full; the .part is kept for a resume)" : "");
        return 0;
    }
    digest_update(&t->d, data, n);
    t->written += (int64_t)n;
    t->ctx->written += (int64_t)n;
    return n;
}

static int on_xfer(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    dl_try *t = user;
    if (t->body) progress_update(&t->pr, t->offset + (int64_t)dlnow);
    return 0;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* The digests of a complete file against what was published; on a
 * mismatch the message names both. sha256_got receives the computed one. */
static vki_status verify(const pull_item *it, const char *linked_etag, digest *d, char sha256_got[65])
{
    char sha1_got[41];
    digest_final(d, sha256_got, sha1_got);
    const char *want = it->sha256[0] ? it->sha256 : digest_is_hex(linked_etag, 32) ? linked_etag : NULL;
    if (want && strcasecmp(want, sha256_got))
        return vki_fail(VKI_ERR_BAD_FILE, "%s: checksum mismatch: the server publishes sha256 %s, the downloaded file "
                        "has sha256 %s", it->rel, want, sha256_got);
    if (it->sha1[0] && strcasecmp(it->sha1, sha1_got))
        return vki_fail(VKI_ERR_BAD_FILE, "%s: checksum mismatch: the hub publishes git blob sha1 %s, the downloaded "
                        "file has %s", it->rel, it->sha1, sha1_got);
    return VKI_OK;
}

/* A file already under its final name is kept when its size and digests
 * match what is published (with trust_present, its size; a plain URL
 * without a published checksum: kept as it is). */
static bool already_there(pull_ctx *ctx, const pull_item *it, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return false;
    if (it->size >= 0 && st.st_size != it->size) return false;
    if (!it->sha256[0] && !it->sha1[0]) return true; /* nothing to check it against: delete it to fetch again */
    if (ctx->p.trust_present && it->size >= 0) return true;
    FILE *f = fopen(path, "rb");
    digest d;
    char got[65];
    bool ok = f && digest_init(&d, it->sha1[0] ? st.st_size : -1) == VKI_OK;
    if (ok) {
        ok = digest_file(&d, f, st.st_size) && verify(it, "", &d, got) == VKI_OK;
        digest_deinit(&d);
    }
    if (f) fclose(f);
    return ok;
}

/* One try: appends to the open .part from t->offset. */
static CURLcode run_try(dl_try *t, char *cerr)
{
    CURL *c = t->ctx->curl;
    http_resp_reset(&t->r);
    http_prepare(t->ctx, t->it->url, &t->r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_xfer);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, t);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    char range[48];
    if (t->offset > 0) {
        snprintf(range, sizeof range, "%lld-", (long long)t->offset);
        curl_easy_setopt(c, CURLOPT_RANGE, range);
    }
    cerr[0] = '\0';
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &t->r.status);
    /* An empty file has no body for on_data to see its answer by. */
    if (rc == CURLE_OK && !t->started) check_start(t);
    return rc;
}

/* Opens REL.part for this try: t->offset is what it holds (a .part longer
 * than the listed size is not this file: emptied), its bytes fed to the digest. */
static vki_status open_part(dl_try *t, const char *part)
{
    if (!(t->f = fopen(part, "a+b"))) return vki_fail(VKI_ERR_INTERNAL, "%s: cannot open: %s", part, strerror(errno));
    /* Two pulls appending to one .part (two `serve -m hf://...` started
     * together) would interleave their bytes: the second waits its turn. */
    if (flock(fileno(t->f), LOCK_EX | LOCK_NB) != 0)
        return vki_fail(VKI_ERR_QUEUE_FULL, "%s: another vkinfer is downloading it now; try again when it is done",
                        part);
    struct stat st;
    t->offset = fstat(fileno(t->f), &st) == 0 ? st.st_size : 0;
    if (t->it->size >= 0 && t->offset > t->it->size) t->offset = ftruncate(fileno(t->f), 0) == 0 ? 0 : -1;
    VKI_TRY(digest_init(&t->d, t->it->sha1[0] ? t->it->size : -1));
    if (t->offset < 0 || !digest_file(&t->d, t->f, t->offset) || fseeko(t->f, 0, SEEK_END) != 0)
        return vki_fail(VKI_ERR_INTERNAL, "%s: cannot read back: %s", part, strerror(errno));
    return VKI_OK;
}

/* The whole file is in the .part: check it, rename it into place, say so.
 * A mismatch deletes the .part. */
static vki_status finish(dl_try *t, const char *path, const char *part, double t0_ms, int64_t fetched)
{
    char got[65];
    const pull_item *it = t->it;
    vki_status s = verify(it, t->r.linked_etag, &t->d, got);
    if (s != VKI_OK) {
        unlink(part);
        char msg[1024];
        snprintf(msg, sizeof msg, "%s; the partial file was deleted", vki_last_error());
        return vki_fail(s, "%s", msg);
    }
    if (rename(part, path) != 0)
        return vki_fail(VKI_ERR_INTERNAL, "%s: cannot rename into place: %s", path, strerror(errno));
    if (!t->ctx->p.quiet) {
        char sz[32], rate[32];
        double secs = (vki_time_ms() - t0_ms) / 1e3;
        progress_bytes(sz, sizeof sz, (double)(t->offset + t->written));
        progress_bytes(rate, sizeof rate, secs > 0 ? (double)fetched / secs : 0);
        fprintf(stderr, "vkinfer: pull: %s: %s, %.1f s, %s/s, sha256 %s%s\n", it->rel, sz, secs, rate, got,
                it->sha256[0] || digest_is_hex(t->r.linked_etag, 32) ? " (verified)"
                : it->sha1[0]                                        ? " (git sha1 verified)"
                                                                     : " (no checksum published)");
    }
    return VKI_OK;
}

vki_status download_item(pull_ctx *ctx, const pull_item *it, const char *dir)
{
    char path[4096], part[4200], cerr[CURL_ERROR_SIZE];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, it->rel) >= sizeof path)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s/%s: path too long", dir, it->rel);
    snprintf(part, sizeof part, "%s.part", path);
    if (already_there(ctx, it, path)) {
        if (!ctx->p.quiet) fprintf(stderr, "vkinfer: pull: %s: already present and complete\n", it->rel);
        return VKI_OK;
    }
    if (!make_parents(path)) return vki_fail(VKI_ERR_INTERNAL, "%s: cannot create its folder: %s", path, strerror(errno));
    dl_try t = {.ctx = ctx, .it = it, .dir = dir};
    http_resp_reset(&t.r);
    vki_status s = VKI_OK;
    double t0 = vki_time_ms();
    int64_t fetched = 0;
    for (int32_t attempt = 0; s == VKI_OK; attempt++) {
        http_resp_reset(&t.r);
        t.written = 0;
        t.started = t.body = false;
        t.fail = VKI_OK;
        if ((s = open_part(&t, part)) != VKI_OK) break;
        CURLcode rc = CURLE_OK;
        progress_begin(&t.pr, it->rel, it->size, t.offset, ctx->p.quiet);
        if (it->size > 0 && t.offset == it->size) {
            t.body = true; /* complete from an earlier run that stopped before the rename */
        } else {
            if (t.offset > 0) progress_note(&t.pr, "%s: resuming at byte %lld", it->rel, (long long)t.offset);
            rc = run_try(&t, cerr);
        }
        progress_end(&t.pr);
        fetched += t.written;
        if ((fflush(t.f) != 0 || fsync(fileno(t.f)) != 0) && t.fail == VKI_OK)
            t.fail = vki_fail(errno == ENOSPC ? VKI_ERR_OUT_OF_MEMORY : VKI_ERR_INTERNAL, "%s: write failed: %s", part,
                              strerror(errno));
        /* "416, bytes * /SIZE" with SIZE = the .part: it already is the whole
         * file (a URL's size is not known ahead). */
        if (rc == CURLE_OK && t.r.status == 416 && t.offset > 0 && t.r.range_total == t.offset) t.body = true;
        if (t.fail != VKI_OK) {
            s = t.fail;
            if (s == VKI_ERR_BAD_FILE) unlink(part);
        } else if (rc == CURLE_OK && t.body) {
            s = finish(&t, path, part, t0, fetched);
            break;
        } else if (rc == CURLE_OK && t.r.status == 416 && t.offset > 0) {
            /* The .part is longer than the file is now: start it over. */
            if (ftruncate(fileno(t.f), 0) != 0)
                s = vki_fail(VKI_ERR_INTERNAL, "%s: cannot truncate: %s", part, strerror(errno));
        } else if (!http_transient(rc, t.r.status) || attempt >= ctx->p.retries) {
            s = http_fail(ctx, it->url, rc, &t.r, cerr);
            if (attempt > 0) {
                char msg[1024];
                snprintf(msg, sizeof msg, "%s (after %d tries)", vki_last_error(), attempt + 1);
                vki_fail(s, "%s", msg);
            }
        } else {
            double wait = http_backoff_s(attempt + 1, &t.r);
            http_fail(ctx, it->url, rc, &t.r, cerr);
            progress_note(&t.pr, "%s; retrying in %.0f s with resume (%d of %d)", vki_last_error(), wait, attempt + 1,
                          ctx->p.retries);
            sleep_s(wait);
        }
        digest_deinit(&t.d);
        fclose(t.f);
        t.f = NULL;
    }
    digest_deinit(&t.d);
    if (t.f) fclose(t.f);
    http_resp_reset(&t.r);
    struct stat st;
    if (s != VKI_OK && stat(part, &st) == 0 && st.st_size == 0) unlink(part); /* nothing to resume */
    return s;
}
