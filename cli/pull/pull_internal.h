/* pull_internal.h: what the pieces of cli/pull/ share: the session (one
 * curl handle, the resolved settings), HTTP answers and their errors
 * (http.c), the list of files to fetch (hub.c), digests (digest.c),
 * progress (progress.c) and one file's download (download.c). */
#ifndef VKI_PULL_INTERNAL_H
#define VKI_PULL_INTERNAL_H

#include <curl/curl.h>
#include <stdio.h>

#include "pull.h"

/* ---- session ---- */

typedef struct pull_ctx {
    CURL       *curl;
    pull_params p;             /* strings below are owned here, the rest copied */
    char        dir[4096];     /* models folder */
    char        hub[1024];     /* base URL, no trailing '/' */
    char        hub_host[256]; /* the token goes to this host only */
    int64_t     written;       /* bytes written this session (the test limit shrinks by them) */
    int64_t     free_limit;    /* VKI_PULL_TEST_FREE_BYTES, -1 = none (test hook: "the disk has N bytes free") */
} pull_ctx;

/* ---- http.c ---- */

typedef struct http_resp {
    long    status;            /* HTTP status of the last hop; 0 = no answer */
    char   *body;              /* http_get only: malloc'd, NUL-terminated */
    size_t  len;
    char    link_next[2048];   /* Link: <...>; rel="next" (tree listing pages) */
    char    error_code[64];    /* X-Error-Code (RepoNotFound, EntryNotFound, RevisionNotFound, GatedRepo) */
    char    error_msg[256];    /* X-Error-Message */
    char    linked_etag[96];   /* X-Linked-Etag: an LFS file's sha256, quotes removed */
    int64_t linked_size;       /* X-Linked-Size, -1 = none */
    int64_t range_start;       /* Content-Range: bytes START-..., -1 = none */
    int64_t range_total;       /* Content-Range: .../TOTAL, -1 = none or '*' */
    int64_t content_length;    /* this answer's body length, -1 = unknown */
    int64_t retry_after_s;     /* Retry-After (429/503), -1 = none */
} http_resp;

void http_resp_reset(http_resp *r);

/* Prepares ctx->curl for url: timeouts, redirects, the token (only when the
 * URL's host is the hub's; libcurl keeps it off redirects to other hosts),
 * header parsing into r. Body handling is the caller's. */
void http_prepare(pull_ctx *ctx, const char *url, http_resp *r);

/* GET url into r->body, with retries for transient failures. Non-2xx:
 * the mapped error (http_fail). */
vki_status http_get(pull_ctx *ctx, const char *url, http_resp *r);

/* Whether a failed try is worth another: connection errors, timeouts, a
 * cut transfer, 408, 429 and 5xx. */
bool http_transient(CURLcode c, long status);

/* Records the error for a failed transfer: what curl or the status code
 * means for a user (401: a token is needed, 403: gated, 404: which of repo,
 * revision or file, 5xx: the server's fault), with the server's message. */
vki_status http_fail(pull_ctx *ctx, const char *url, CURLcode c, const http_resp *r, const char *curl_err);

/* Seconds to wait before try n (1-based): Retry-After when given, else 1, 2, 4, ... at most 30. */
double http_backoff_s(int32_t n, const http_resp *r);

/* ---- digest.c ---- */

typedef struct digest {
    void *sha256;               /* EVP_MD_CTX * */
    void *git;                  /* EVP_MD_CTX *, git's blob SHA-1 ("blob SIZE\0" + bytes); NULL when unused */
} digest;

/* git_size >= 0: also the git blob SHA-1 of a file of that size (what the
 * hub publishes for files not in LFS). */
vki_status digest_init(digest *d, int64_t git_size);
void       digest_update(digest *d, const void *data, size_t n);
/* Feeds the first n bytes of f (from its start); false on a read error. */
bool       digest_file(digest *d, FILE *f, int64_t n);
/* Lower-case hex; sha1 is "" when unused. Resets d. */
void       digest_final(digest *d, char sha256[65], char sha1[41]);
void       digest_deinit(digest *d);
/* True when s is 2*n hex digits. */
bool       digest_is_hex(const char *s, size_t n);

/* ---- progress.c ---- */

typedef struct progress {
    const char *name;
    int64_t     total;          /* -1 unknown */
    int64_t     start;          /* bytes already there when this try began */
    int64_t     done;
    int64_t     shown;          /* done when last drawn */
    double      t0_ms, last_ms;
    bool        tty, quiet, drawn;
} progress;

void progress_begin(progress *pr, const char *name, int64_t total, int64_t start, bool quiet);
void progress_update(progress *pr, int64_t done);
/* Ends the bar (a newline on a TTY). */
void progress_end(progress *pr);
/* A line on stderr, unless quiet (the bar, if drawn, ends first). */
void progress_note(progress *pr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "12.3 MiB" */
void progress_bytes(char *buf, size_t size, double n);

/* ---- hub.c: what to fetch ---- */

typedef struct pull_item {
    char   *url;
    char   *rel;                /* path under the destination folder */
    int64_t size;               /* -1 unknown (plain URL) */
    char    sha256[65];         /* expected, "" = take X-Linked-Etag or none */
    char    sha1[41];           /* expected git blob SHA-1, "" = none */
} pull_item;

typedef struct pull_plan {
    pull_item *items;
    int32_t    n;
    char      *dest_dir;        /* folder the items' rel paths are under */
    char      *result;          /* what vkinfer loads: a file or dest_dir */
} pull_plan;

void       plan_free(pull_plan *pl);
/* hf://ORG/REPO[:FILE]: lists the repo (GET /api/models/REPO/tree/REV,
 * every page) and picks the files (one GGUF, or a safetensors folder). */
vki_status hub_plan(pull_ctx *ctx, const char *spec, pull_plan *pl);
/* http(s)://...: one file, named after the URL's last path segment. */
vki_status url_plan(pull_ctx *ctx, const char *url, pull_plan *pl);
/* A path from a listing, safe to join under a folder: relative, no "..",
 * no empty or "." segments, no control characters. */
bool       hub_safe_path(const char *rel);

/* ---- download.c ---- */

/* Fetches one item to DIR/REL via DIR/REL.part (resumed with Range when
 * there), checks its size and digests, then renames it into place. A file
 * already complete is kept (its digest is checked first). */
vki_status download_item(pull_ctx *ctx, const pull_item *it, const char *dir);

/* Bytes free for dest (statvfs, or the test limit). */
int64_t    download_free_bytes(pull_ctx *ctx, const char *dir);

#endif
