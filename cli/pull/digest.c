/* digest.c: the checksums a hub publishes, computed while a file streams
 * in: SHA-256 (LFS files: the tree's lfs.oid, X-Linked-Etag) and git's
 * blob SHA-1 (other files: the tree's oid). OpenSSL's libcrypto does the
 * hashing; this file only frames it. */
#include <ctype.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "pull_internal.h"

vki_status digest_init(digest *d, int64_t git_size)
{
    memset(d, 0, sizeof *d);
    EVP_MD_CTX *s = EVP_MD_CTX_new(), *g = git_size >= 0 ? EVP_MD_CTX_new() : NULL;
    if (!s || (git_size >= 0 && !g) || !EVP_DigestInit_ex(s, EVP_sha256(), NULL) ||
        (g && !EVP_DigestInit_ex(g, EVP_sha1(), NULL))) {
        EVP_MD_CTX_free(s);
        EVP_MD_CTX_free(g);
        return vki_fail(VKI_ERR_INTERNAL, "pull: cannot set up SHA-256 (libcrypto)");
    }
    if (g) {
        char head[40];
        int n = snprintf(head, sizeof head, "blob %lld", (long long)git_size);
        EVP_DigestUpdate(g, head, (size_t)n + 1); /* with its NUL */
    }
    d->sha256 = s;
    d->git = g;
    return VKI_OK;
}

void digest_update(digest *d, const void *data, size_t n)
{
    EVP_DigestUpdate(d->sha256, data, n);
    if (d->git) EVP_DigestUpdate(d->git, data, n);
}

bool digest_file(digest *d, FILE *f, int64_t n)
{
    enum { CHUNK = 1 << 20 };
    char *buf = malloc(CHUNK);
    if (!buf || fseeko(f, 0, SEEK_SET) != 0) {
        free(buf);
        return false;
    }
    while (n > 0) {
        size_t got = fread(buf, 1, n < CHUNK ? (size_t)n : CHUNK, f);
        if (got == 0) break;
        digest_update(d, buf, got);
        n -= (int64_t)got;
    }
    free(buf);
    return n == 0;
}

static void to_hex(const unsigned char *b, unsigned n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        out[2 * i] = hx[b[i] >> 4];
        out[2 * i + 1] = hx[b[i] & 15];
    }
    out[2 * n] = '\0';
}

void digest_final(digest *d, char sha256[65], char sha1[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_DigestFinal_ex(d->sha256, md, &n);
    to_hex(md, n, sha256);
    sha1[0] = '\0';
    if (d->git) {
        EVP_DigestFinal_ex(d->git, md, &n);
        to_hex(md, n, sha1);
    }
}

void digest_deinit(digest *d)
{
    EVP_MD_CTX_free(d->sha256);
    EVP_MD_CTX_free(d->git);
    d->sha256 = d->git = NULL;
}

bool digest_is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < 2 * n; i++)
        if (!isxdigit((unsigned char)s[i])) return false;
    return s[2 * n] == '\0';
}
