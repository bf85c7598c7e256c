/*
 * test_normalize.c: NFD/NFC/NFKD/NFKC against Python's unicodedata
 * (data/normalize_vectors.txt, made by gen_normalize_vectors.py) with the
 * NormalizationTest.txt invariants per line, then the conformance properties
 * over every code point (idempotence, NFC(NFD(x)) == NFC(x), ...), and a
 * hostile run of 200k alternating combining marks (must stay linear and
 * stably ordered).
 * usage: test_normalize VECTORS.txt
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer/tok_internal.h"
#include "test_util.h"
#include "util.h"

typedef struct cpv { uint32_t v[256]; size_t n; } cpv;

static uint32_t *buf;
static size_t buf_cap;

/* form(in) into *out; false on failure (counted) */
static bool norm(tok_norm_kind form, const uint32_t *in, size_t n, cpv *out)
{
    size_t m = 0;
    vki_status s = tok_normalize_cps(form, in, n, &buf, &buf_cap, &m);
    CHECKF(s == VKI_OK, "normalize failed: %s", vki_last_error());
    if (s != VKI_OK || m > 256) { out->n = 0; return false; }
    memcpy(out->v, buf, m * sizeof *buf);
    out->n = m;
    return true;
}

static bool same(const cpv *a, const cpv *b)
{
    return a->n == b->n && memcmp(a->v, b->v, a->n * sizeof *a->v) == 0;
}

static void print_cps(const char *what, const cpv *c)
{
    fprintf(stderr, "  %s:", what);
    for (size_t i = 0; i < c->n; i++) fprintf(stderr, " %04X", c->v[i]);
    fputc('\n', stderr);
}

static const char *const form_name[] = {"", "NFD", "NFC", "NFKD", "NFKC"};

static int n_checks, n_fail;

static void expect(tok_norm_kind form, const cpv *in, const cpv *want, int line, int col)
{
    cpv got;
    n_checks++;
    if (norm(form, in->v, in->n, &got) && same(&got, want)) return;
    if (n_fail++ < 10) {
        CHECKF(false, "line %d: %s(column %d) differs from unicodedata", line, form_name[form], col);
        print_cps("in  ", in);
        print_cps("got ", &got);
        print_cps("want", want);
    } else {
        CHECK(false);
    }
}

static bool parse_cps(char *s, cpv *out)
{
    out->n = 0;
    for (char *p = s;;) {
        while (*p == ' ') p++;
        if (!*p) break;
        char *e;
        unsigned long v = strtoul(p, &e, 16);
        if (e == p || out->n == 256) return false;
        out->v[out->n++] = (uint32_t)v;
        p = e;
    }
    return out->n > 0;
}

static void run_vectors(const char *path)
{
    size_t len;
    char *text = test_read_file(path, &len);
    CHECKF(text != NULL, "cannot read %s", path);
    if (!text) return;
    char *line = text, *next;
    int ln = 0, n_lines = 0;
    for (; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        ln++;
        if (line[0] == '#') {
            char want[32];
            CHECKF(sscanf(line, "# unicode %31s", want) == 1 && strcmp(want, uc_unicode_version) == 0,
                   "%s is for '%s', the tables are Unicode %s", path, line, uc_unicode_version);
            continue;
        }
        cpv c[5];
        char *col = line;
        int k = 0;
        for (; k < 5 && col; k++) {
            char *semi = strchr(col, ';');
            if (semi) *semi = 0;
            if (!parse_cps(col, &c[k])) break;
            col = semi ? semi + 1 : NULL;
        }
        CHECKF(k == 5, "line %d: malformed", ln);
        if (k != 5) continue;
        n_lines++;
        /* the NormalizationTest.txt invariants; columns c1..c5 = c[0..4] */
        for (int i = 0; i < 3; i++) expect(TN_NFC, &c[i], &c[1], ln, i + 1);
        for (int i = 3; i < 5; i++) expect(TN_NFC, &c[i], &c[3], ln, i + 1);
        for (int i = 0; i < 3; i++) expect(TN_NFD, &c[i], &c[2], ln, i + 1);
        for (int i = 3; i < 5; i++) expect(TN_NFD, &c[i], &c[4], ln, i + 1);
        for (int i = 0; i < 5; i++) expect(TN_NFKC, &c[i], &c[3], ln, i + 1);
        for (int i = 0; i < 5; i++) expect(TN_NFKD, &c[i], &c[4], ln, i + 1);
    }
    printf("vectors: %d lines, %d checks, %d differ\n", n_lines, n_checks, n_fail);
    CHECKF(n_lines > 1000, "only %d vector lines", n_lines);
    free(text);
}

/* Properties that hold for every code point, with no reference needed. */
static void run_properties(void)
{
    int bad = 0;
    long n_cp = 0;
    for (uint32_t cp = 0; cp < 0x110000; cp++) {
        if (cp >= 0xD800 && cp < 0xE000) continue;
        n_cp++;
        cpv d, c, kd, kc, x;
        if (!norm(TN_NFD, &cp, 1, &d) || !norm(TN_NFC, &cp, 1, &c) || !norm(TN_NFKD, &cp, 1, &kd) ||
            !norm(TN_NFKC, &cp, 1, &kc))
            return;
        bool ok = true;
        ok &= norm(TN_NFD, d.v, d.n, &x) && same(&x, &d);       /* idempotence */
        ok &= norm(TN_NFC, c.v, c.n, &x) && same(&x, &c);
        ok &= norm(TN_NFKD, kd.v, kd.n, &x) && same(&x, &kd);
        ok &= norm(TN_NFKC, kc.v, kc.n, &x) && same(&x, &kc);
        ok &= norm(TN_NFC, d.v, d.n, &x) && same(&x, &c);       /* NFC(NFD(x)) == NFC(x) */
        ok &= norm(TN_NFD, c.v, c.n, &x) && same(&x, &d);       /* NFD(NFC(x)) == NFD(x) */
        ok &= norm(TN_NFKC, kd.v, kd.n, &x) && same(&x, &kc);   /* NFKC(NFKD(x)) == NFKC(x) */
        ok &= norm(TN_NFKD, c.v, c.n, &x) && same(&x, &kd);     /* NFKD(NFC(x)) == NFKD(x) */
        /* decompositions hold no composable starter pair and are ordered */
        for (size_t i = 1; i < d.n; i++) ok &= !(uc_ccc(d.v[i]) && uc_ccc(d.v[i - 1]) > uc_ccc(d.v[i]));
        if (!ok && bad++ < 10) CHECKF(false, "U+%04X breaks a normalization property", cp);
    }
    printf("properties: %ld code points, %d fail\n", n_cp, bad);
    CHECK(bad == 0);
}

/* 200k marks alternating ccc 230 (U+0301) and 220 (U+0316) after 'a':
 * the canonical order puts every 220 first, keeping their relative order. */
static void run_hostile(void)
{
    const size_t n = 200001;
    uint32_t *in = malloc(n * sizeof *in);
    in[0] = 'a';
    for (size_t i = 1; i < n; i++) in[i] = (i & 1) ? 0x301 : 0x316;
    size_t m = 0;
    double t0 = vki_time_ms();
    vki_status s = tok_normalize_cps(TN_NFC, in, n, &buf, &buf_cap, &m);
    double ms = vki_time_ms() - t0;
    CHECK(s == VKI_OK);
    /* 'a' + U+0316 does not compose; the first U+0301 is not blocked by
     * the lower-class marks before it and makes U+00E1; the rest stay */
    CHECKF(m == n - 1, "hostile run: %zu code points back, expected %zu", m, n - 1);
    bool ordered = m == n - 1 && buf[0] == 0xE1;
    for (size_t i = 1; ordered && i < m; i++) ordered = buf[i] == (i <= n / 2 ? 0x316u : 0x301u);
    CHECKF(ordered, "hostile run is not in canonical order");
    printf("hostile: 200k alternating marks in %.1f ms\n", ms);
    free(in);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s VECTORS.txt\n", argv[0]);
        return 2;
    }
    run_vectors(argv[1]);
    run_properties();
    run_hostile();
    free(buf);
    return test_finish("normalize");
}
