/* http.c: the libcurl settings every pull request shares (timeouts, stall
 * limit, redirects, the token), parsing the hub's response headers, small
 * GETs with retries, and turning every failure into a message that says
 * what it means for the user. Owns no transfer state between calls. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "error.h"
#include "pull_internal.h"

void http_resp_reset(http_resp *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
    r->linked_size = r->range_start = r->range_total = r->content_length = r->retry_after_s = -1;
}

/* Copies a header value (trimmed, surrounding quotes dropped) into dst. */
static void header_value(char *dst, size_t size, const char *v, size_t n)
{
    while (n && isspace((unsigned char)*v)) v++, n--;
    while (n && isspace((unsigned char)v[n - 1])) n--;
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') v++, n -= 2;
    if (n >= size) n = size - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

/* Link: <https://hub/api/...?cursor=...>; rel="next" */
static void parse_link(http_resp *r, const char *v, size_t n)
{
    char buf[4096];
    header_value(buf, sizeof buf, v, n);
    for (char *p = buf; (p = strchr(p, '<'));) {
        char *end = strchr(p, '>');
        if (!end) return;
        char *next = strchr(end, ',');
        char *rel = strstr(end, "rel=\"next\"");
        if (rel && (!next || rel < next) && (size_t)(end - p - 1) < sizeof r->link_next) {
            memcpy(r->link_next, p + 1, (size_t)(end - p - 1));
            r->link_next[end - p - 1] = '\0';
            return;
        }
        p = end;
    }
}

static size_t on_header(char *data, size_t size, size_t nitems, void *user)
{
    http_resp *r = user;
    size_t n = size * nitems;
    /* A new status line starts the headers of another hop (a redirect):
     * only the last hop's headers describe the body, but the hub's
     * X-Linked-* come on the first (the redirect to its CDN), so keep those. */
    if (n > 5 && !strncmp(data, "HTTP/", 5)) {
        r->range_start = r->range_total = r->content_length = r->retry_after_s = -1;
        r->link_next[0] = '\0';
        return n;
    }
    const char *colon = memchr(data, ':', n);
    if (!colon) return n;
    size_t kl = (size_t)(colon - data), vl = n - kl - 1;
    const char *v = colon + 1;
    char tmp[128];
#define IS(name) (kl == sizeof name - 1 && !strncasecmp(data, name, kl))
    if (IS("x-error-code")) header_value(r->error_code, sizeof r->error_code, v, vl);
    else if (IS("x-error-message")) header_value(r->error_msg, sizeof r->error_msg, v, vl);
    else if (IS("x-linked-etag")) header_value(r->linked_etag, sizeof r->linked_etag, v, vl);
    else if (IS("link")) parse_link(r, v, vl);
    else if (IS("x-linked-size")) {
        header_value(tmp, sizeof tmp, v, vl);
        r->linked_size = strtoll(tmp, NULL, 10);
    } else if (IS("content-length")) {
        header_value(tmp, sizeof tmp, v, vl);
        r->content_length = strtoll(tmp, NULL, 10);
    } else if (IS("retry-after")) {
        header_value(tmp, sizeof tmp, v, vl);
        if (isdigit((unsigned char)tmp[0])) r->retry_after_s = strtoll(tmp, NULL, 10);
    } else if (IS("content-range")) {
        /* bytes 100-199/200, or bytes 100-199/ * */
        header_value(tmp, sizeof tmp, v, vl);
        long long a, b;
        char total[32];
        if (sscanf(tmp, "bytes %lld-%lld/%31s", &a, &b, total) == 3) {
            r->range_start = a;
            r->range_total = isdigit((unsigned char)total[0]) ? strtoll(total, NULL, 10) : -1;
        } else if (sscanf(tmp, "bytes */%lld", &a) == 1) { /* a 416's: the whole size */
            r->range_total = a;
        }
    }
#undef IS
    return n;
}

/* The host of a URL ("h" of "https://user@h:443/x"), into dst. */
static void url_host(const char *url, char *dst, size_t size)
{
    dst[0] = '\0';
    CURLU *u = curl_url();
    char *host = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK && curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
        snprintf(dst, size, "%s", host);
    curl_free(host);
    curl_url_cleanup(u);
}

void http_prepare(pull_ctx *ctx, const char *url, http_resp *r)
{
    CURL *c = ctx->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "vkinfer/" VKI_VERSION_STRING);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)ctx->p.connect_s);
    /* A stalled connection must fail (and be retried with resume), never hang. */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)ctx->p.stall_s);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (ctx->p.token && ctx->p.token[0]) {
        char host[256];
        url_host(url, host, sizeof host);
        /* Bearer auth through libcurl rather than a raw header: libcurl does
         * not send it on to another host after a redirect (the hub sends LFS
         * files to its CDN with a signed URL). */
        if (!strcasecmp(host, ctx->hub_host)) {
            curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
            curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, ctx->p.token);
        }
    }
}

static size_t on_body(char *data, size_t size, size_t nitems, void *user)
{
    http_resp *r = user;
    size_t n = size * nitems;
    if (r->len + n > (64u << 20)) return 0; /* listings are small; refuse a runaway answer */
    char *b = realloc(r->body, r->len + n + 1);
    if (!b) return 0;
    memcpy(b + r->len, data, n);
    r->body = b;
    r->len += n;
    b[r->len] = '\0';
    return n;
}

bool http_transient(CURLcode c, long status)
{
    switch (c) {
    case CURLE_OK:
        return status == 408 || status == 429 || status >= 500;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        return true;
    default:
        return false;
    }
}

double http_backoff_s(int32_t n, const http_resp *r)
{
    if (r && r->retry_after_s >= 0) return r->retry_after_s > 60 ? 60.0 : (double)r->retry_after_s;
    double s = 1.0;
    for (int32_t i = 1; i < n && s < 30.0; i++) s *= 2.0;
    return s > 30.0 ? 30.0 : s;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

vki_status http_get(pull_ctx *ctx, const char *url, http_resp *r)
{
    char cerr[CURL_ERROR_SIZE];
    for (int32_t attempt = 0;; attempt++) {
        http_resp_reset(r);
        http_prepare(ctx, url, r);
        cerr[0] = '\0';
        curl_easy_setopt(ctx->curl, CURLOPT_ERRORBUFFER, cerr);
        curl_easy_setopt(ctx->curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(ctx->curl, CURLOPT_WRITEDATA, r);
        curl_easy_setopt(ctx->curl, CURLOPT_HTTPHEADER, NULL);
        CURLcode c = curl_easy_perform(ctx->curl);
        curl_easy_getinfo(ctx->curl, CURLINFO_RESPONSE_CODE, &r->status);
        if (c == CURLE_OK && r->status >= 200 && r->status < 300) return VKI_OK;
        if (!http_transient(c, r->status) || attempt >= ctx->p.retries)
            return http_fail(ctx, url, c, r, cerr);
        double wait = http_backoff_s(attempt + 1, r);
        if (!ctx->p.quiet) {
            http_fail(ctx, url, c, r, cerr);
            fprintf(stderr, "vkinfer: pull: %s; retrying in %.0f s (%d of %d)\n", vki_last_error(), wait, attempt + 1,
                    ctx->p.retries);
        }
        sleep_s(wait);
    }
}

static const char *status_meaning(pull_ctx *ctx, const http_resp *r)
{
    bool token = ctx->p.token && ctx->p.token[0];
    const char *ec = r->error_code;
    switch (r->status) {
    case 400: return "bad request";
    case 401:
        if (!strcmp(ec, "GatedRepo")) return token ? "gated repository: this token has no access; accept the "
                                                     "model's terms on its hub page"
                                                   : "gated repository: give a token (--token or HF_TOKEN) "
                                                     "of an account that accepted its terms";
        /* The hub answers 401, not 404, for a repository that does not
         * exist when no token is sent, so as not to reveal private ones. */
        return token ? "unauthorized: the token was refused, or the repository does not exist"
                     : "unauthorized: the repository does not exist, or is private or gated "
                       "(give a token with --token or HF_TOKEN)";
    case 403:
        return token ? "forbidden: this token may not read it (a gated model whose terms are not accepted, "
                       "or a token without read access)"
                     : "forbidden: give a token with read access (--token or HF_TOKEN)";
    case 404:
        if (!strcmp(ec, "RepoNotFound")) return "repository not found";
        if (!strcmp(ec, "RevisionNotFound")) return "revision not found";
        if (!strcmp(ec, "EntryNotFound")) return "file not found in the repository";
        return "not found";
    case 408: return "request timeout";
    case 410: return "gone";
    case 416: return "range not satisfiable";
    case 429: return "too many requests: rate limited by the server";
    case 451: return "unavailable for legal reasons";
    case 500: return "internal server error";
    case 502: return "bad gateway";
    case 503: return "service unavailable";
    case 504: return "gateway timeout";
    default: return r->status >= 500 ? "server error" : "unexpected answer";
    }
}

vki_status http_fail(pull_ctx *ctx, const char *url, CURLcode c, const http_resp *r, const char *curl_err)
{
    const char *detail = curl_err && curl_err[0] ? curl_err : curl_easy_strerror(c);
    switch (c) {
    case CURLE_OK: {
        vki_status s = r->status == 404 ? VKI_ERR_NOT_FOUND
                     : r->status == 401 || r->status == 403 ? VKI_ERR_UNSUPPORTED
                     : VKI_ERR_INTERNAL;
        if (r->error_msg[0])
            return vki_fail(s, "%s: HTTP %ld %s (%s)", url, r->status, status_meaning(ctx, r), r->error_msg);
        return vki_fail(s, "%s: HTTP %ld %s", url, r->status, status_meaning(ctx, r));
    }
    case CURLE_COULDNT_RESOLVE_HOST:
        return vki_fail(VKI_ERR_NOT_FOUND, "%s: cannot resolve the host name (%s)", url, detail);
    case CURLE_COULDNT_CONNECT:
        return vki_fail(VKI_ERR_NOT_FOUND, "%s: cannot connect (%s)", url, detail);
    case CURLE_OPERATION_TIMEDOUT:
        /* curl's text says which: the connection (connect_s) or a stall (stall_s). */
        return vki_fail(VKI_ERR_TIMEOUT, "%s: timed out (%s)", url, detail);
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
        return vki_fail(VKI_ERR_INTERNAL, "%s: the connection was cut (%s)", url, detail);
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: the server's TLS certificate is not trusted (%s)", url, detail);
    case CURLE_TOO_MANY_REDIRECTS:
        return vki_fail(VKI_ERR_INTERNAL, "%s: too many redirects", url);
    case CURLE_UNSUPPORTED_PROTOCOL:
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: only http:// and https:// are supported (%s)", url, detail);
    case CURLE_URL_MALFORMAT:
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: malformed URL", url);
    default:
        return vki_fail(VKI_ERR_INTERNAL, "%s: %s", url, detail);
    }
}
