/*
 * vkinfer_bench.c: vkinfer-bench, throughput the way llama-bench measures
 * it: prompt processing (pp N: N tokens in one batched pass) and generation
 * (tg N: N single-token passes from an empty cache), median and min-max over
 * -r repeats after a warmup; embedding models: texts/s and tokens/s at batch
 * 1, 8, 32. Excluded: loading, tokenization and sampling (forward passes and
 * the logits read-back only). --membw adds a STREAM-like triad and tg as a
 * share of the bandwidth bound. Results on stdout, progress on stderr.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/backend.h"
#include "engine/models/model.h"
#include "error.h"
#include "util.h"

#include "git_commit.h" /* VKI_GIT_COMMIT, written at build time */

static const char usage[] =
    "usage: vkinfer-bench -m MODEL [options]\n"
    "  -m, --model PATH   model file (repeatable)\n"
    "  -p N               prompt tokens for pp (default 512; 0 = skip)\n"
    "  -n N               generated tokens for tg (default 128; 0 = skip)\n"
    "  -d N               depth: pp and tg run after N tokens already in the cache\n"
    "                     (filled untimed before each repeat; default 0)\n"
    "  -r N               repeats after one warmup (default 5)\n"
    "  --backend B        cpu | vulkan (default cpu)\n"
    "  --threads N        CPU threads (default: all cores)\n"
    "  --embd-len N       tokens per text for embedding models (default 32)\n"
    "  --parallel N       also tg with N sequences decoded together, one token each\n"
    "                     per step (continuous batching, as the server runs it);\n"
    "                     reports the aggregate tokens/s\n"
    "  --membw            measure memory bandwidth (triad) and report tg against its bound\n"
    "  --json, -o FMT     output: md (default), csv, json\n";

typedef struct result {
    char   model[128], type[32], backend[96], test[32];
    double size_bytes, params;
    int    threads;
    double med, min, max;   /* t/s                                     */
    double med2;            /* tokens/s for embedding tests, else 0    */
    double bound;           /* tg: bandwidth bound t/s, else 0         */
} result;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void summarize(double *v, int n, double *med, double *mn, double *mx)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    *med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    *mn = v[0];
    *mx = v[n - 1];
}

/* ===== Memory bandwidth: STREAM triad a = b + s*c ========================= */

typedef struct triad_job { double *a, *b, *c; size_t n0, n1; } triad_job;

static void *triad_run(void *arg)
{
    triad_job *j = arg;
    for (size_t i = j->n0; i < j->n1; i++) j->a[i] = j->b[i] + 3.0 * j->c[i];
    return NULL;
}

/* Read-only: what a decode mat-vec does (weights are only read). Integer
 * sums in four lanes so the loop is not an fp add chain; the result lands
 * in a so the reads cannot be dropped. */
static void *read_run(void *arg)
{
    triad_job *j = arg;
    const uint64_t *b = (const uint64_t *)j->b, *c = (const uint64_t *)j->c;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = j->n0;
    for (; i + 4 <= j->n1; i += 4) {
        s0 += b[i] ^ c[i];
        s1 += b[i + 1] ^ c[i + 1];
        s2 += b[i + 2] ^ c[i + 2];
        s3 += b[i + 3] ^ c[i + 3];
    }
    for (; i < j->n1; i++) s0 += b[i] ^ c[i];
    uint64_t s = s0 + s1 + s2 + s3;
    memcpy(&j->a[j->n0], &s, sizeof s);
    return NULL;
}

/* Triad GB/s (STREAM's count: 24 bytes an element, write-allocate
 * traffic not counted) and, in *read_gbs, the read-only rate. */
static double measure_membw(int n_threads, double *read_gbs)
{
    const size_t n = 32u << 20; /* 3 x 256 MiB: far beyond any cache */
    double *a = malloc(n * 8), *b = malloc(n * 8), *c = malloc(n * 8);
    if (!a || !b || !c) {
        free(a);
        free(b);
        free(c);
        return 0;
    }
    pthread_t th[64];
    triad_job jobs[64];
    if (n_threads > 64) n_threads = 64;
    for (int t = 0; t < n_threads; t++) {
        jobs[t] = (triad_job){a, b, c, n * (size_t)t / (size_t)n_threads, n * (size_t)(t + 1) / (size_t)n_threads};
        /* first touch by the thread that will use the pages */
        memset(a + jobs[t].n0, 0, (jobs[t].n1 - jobs[t].n0) * 8);
        for (size_t i = jobs[t].n0; i < jobs[t].n1; i++) b[i] = 1.0, c[i] = 2.0;
    }
    double best = 0;
    for (int rep = 0; rep < 6; rep++) {
        double t0 = vki_time_ms();
        for (int t = 0; t < n_threads; t++) pthread_create(&th[t], NULL, triad_run, &jobs[t]);
        for (int t = 0; t < n_threads; t++) pthread_join(th[t], NULL);
        double gbs = 3.0 * (double)n * 8.0 / ((vki_time_ms() - t0) * 1e6);
        if (rep > 0 && gbs > best) best = gbs; /* rep 0 is the warmup */
    }
    *read_gbs = 0;
    for (int rep = 0; rep < 6; rep++) {
        double t0 = vki_time_ms();
        for (int t = 0; t < n_threads; t++) pthread_create(&th[t], NULL, read_run, &jobs[t]);
        for (int t = 0; t < n_threads; t++) pthread_join(th[t], NULL);
        double gbs = 2.0 * (double)n * 8.0 / ((vki_time_ms() - t0) * 1e6);
        if (rep > 0 && gbs > *read_gbs) *read_gbs = gbs;
    }
    volatile double sink = a[n / 2];
    (void)sink;
    free(a);
    free(b);
    free(c);
    return best;
}

/* ===== Benchmarks ======================================================== */

static uint64_t rng = 0x1234567;
static int32_t rand_token(int32_t n_vocab)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (int32_t)(rng % (uint64_t)(n_vocab > 3 ? n_vocab - 3 : 1)) + (n_vocab > 3 ? 3 : 0);
}

/* The type most of the weight bytes have ("Q4_0"), from the file. */
static void main_type(const vki_model_file *f, char *out, size_t size)
{
    uint64_t bytes[VKI_TYPE_COUNT] = {0};
    for (int64_t i = 0; i < vki_file_n_tensors(f); i++) {
        const vki_tensor_info *t = vki_file_tensor(f, i);
        if (t->n_dims >= 2 && (int)t->type < VKI_TYPE_COUNT) bytes[t->type] += t->bytes;
    }
    int best = 0;
    for (int t = 1; t < VKI_TYPE_COUNT; t++)
        if (bytes[t] > bytes[best]) best = t;
    snprintf(out, size, "%s", vki_type_name(best));
}

/* Weight bytes read per generated token: all weights, except that only one
 * row of the token embedding is read when the output head is separate. */
static double bytes_per_token(const vki_model_file *f)
{
    double total = 0;
    for (int64_t i = 0; i < vki_file_n_tensors(f); i++) total += (double)vki_file_tensor(f, i)->bytes;
    const vki_tensor_info *te = vki_file_find_tensor(f, "token_embd.weight");
    if (te && vki_file_find_tensor(f, "output.weight")) total -= (double)te->bytes;
    return total;
}

/* pp: one pass of n_tok prompt tokens. tg: n_tok steps of one token for
 * each of n_par sequences (one llama_decode with n_par spans per step);
 * t/s counts the tokens of all sequences. depth > 0: each repeat first
 * fills every sequence's cache with depth tokens, untimed (a chat turn
 * deep into a conversation: attention reads depth more positions). */
static vki_status bench_decoder(mdl_model *m, const char *test, int n_tok, bool pp, int n_par, int depth, int reps,
                                result *r)
{
    const int32_t nv = mdl_get_hparams(m)->n_vocab;
    int32_t *ctx_toks = NULL;
    int32_t *toks = malloc(sizeof *toks * (size_t)(n_tok > 0 ? n_tok : 1) * (size_t)n_par);
    float *logits = malloc(sizeof *logits * (size_t)nv * (size_t)n_par);
    mdl_span *sp = malloc(sizeof *sp * (size_t)n_par);
    double *tps = malloc(sizeof *tps * (size_t)reps);
    vki_status s = VKI_OK;
    if (!toks || !logits || !sp || !tps) {
        s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "bench: out of memory");
        goto done;
    }
    for (int i = 0; i < n_tok * n_par; i++) toks[i] = rand_token(nv);
    if (depth > 0) {
        if (!(ctx_toks = malloc(sizeof *ctx_toks * (size_t)depth))) {
            s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "bench: out of memory");
            goto done;
        }
        for (int i = 0; i < depth; i++) ctx_toks[i] = rand_token(nv);
    }
    for (int rep = -1; rep < reps; rep++) { /* rep -1: warmup */
        for (int q = 0; q < n_par; q++) {
            mdl_kv_seq_clear(m, q);
            if (depth > 0) {
                sp[0] = (mdl_span){.seq = q, .n_tokens = depth, .tokens = ctx_toks};
                if ((s = llama_decode(m, sp, 1, logits)) != VKI_OK) goto done;
            }
        }
        double t0 = vki_time_ms();
        if (pp) {
            sp[0] = (mdl_span){.seq = 0, .n_tokens = n_tok, .tokens = toks};
            if ((s = llama_decode(m, sp, 1, logits)) != VKI_OK) goto done;
        } else {
            for (int i = 0; i < (rep < 0 ? VKI_MIN(n_tok, 8) : n_tok); i++) {
                for (int q = 0; q < n_par; q++)
                    sp[q] = (mdl_span){.seq = q, .n_tokens = 1, .tokens = &toks[(size_t)q * (size_t)n_tok + (size_t)i]};
                if ((s = llama_decode(m, sp, n_par, logits)) != VKI_OK) goto done;
            }
        }
        double ms = vki_time_ms() - t0;
        if (rep >= 0) tps[rep] = (double)n_tok * (pp ? 1 : n_par) * 1000.0 / ms;
        fprintf(stderr, ".");
    }
    snprintf(r->test, sizeof r->test, "%s", test);
    summarize(tps, reps, &r->med, &r->min, &r->max);
done:
    free(ctx_toks);
    free(toks);
    free(logits);
    free(sp);
    free(tps);
    return s;
}

static vki_status bench_encoder(mdl_model *m, int batch, int len, int reps, result *r)
{
    const int32_t nv = mdl_get_hparams(m)->n_vocab, E = mdl_get_hparams(m)->n_embd;
    len = VKI_MIN(len, VKI_MIN(mdl_n_ctx(m), mdl_n_batch(m)));
    int32_t *toks = malloc(sizeof *toks * (size_t)batch * (size_t)len);
    int32_t **ids = malloc(sizeof *ids * (size_t)batch), *n_ids = malloc(sizeof *n_ids * (size_t)batch);
    float *out = malloc(sizeof *out * (size_t)batch * (size_t)E);
    double *tps = malloc(sizeof *tps * (size_t)reps);
    vki_status s = VKI_OK;
    if (!toks || !ids || !n_ids || !out || !tps) {
        s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "bench: out of memory");
        goto done;
    }
    for (int b = 0; b < batch; b++) {
        ids[b] = toks + (size_t)b * (size_t)len;
        n_ids[b] = len;
        for (int i = 0; i < len; i++) ids[b][i] = rand_token(nv);
    }
    for (int rep = -1; rep < reps; rep++) {
        double t0 = vki_time_ms();
        if ((s = mdl_embed(m, (const int32_t *const *)ids, n_ids, batch, mdl_get_hparams(m)->pooling, true, out)) !=
            VKI_OK)
            goto done;
        double ms = vki_time_ms() - t0;
        if (rep >= 0) tps[rep] = batch * 1000.0 / ms;
        fprintf(stderr, ".");
    }
    snprintf(r->test, sizeof r->test, "embd b%d x%d", batch, len);
    summarize(tps, reps, &r->med, &r->min, &r->max);
    r->med2 = r->med * len;
done:
    free(toks);
    free(ids);
    free(n_ids);
    free(out);
    free(tps);
    return s;
}

/* ===== Output ============================================================ */

static void fmt_size(double b, char *out, size_t n)
{
    if (b >= 1 << 30) snprintf(out, n, "%.2f GiB", b / (1 << 30));
    else snprintf(out, n, "%.2f MiB", b / (1 << 20));
}

static void fmt_params(double p, char *out, size_t n)
{
    if (p >= 1e9) snprintf(out, n, "%.2f B", p / 1e9);
    else if (p >= 1e6) snprintf(out, n, "%.2f M", p / 1e6);
    else snprintf(out, n, "%.2f K", p / 1e3);
}

/* membw: --membw's triad rate (0: not measured), read_gbs its read-only one. */
static void print_results(const result *rs, int n, const char *fmt, double membw, double read_gbs)
{
    if (!strcmp(fmt, "json")) {
        printf("{\"build_commit\":\"%s\",\"membw_gbs\":%.2f,\"read_gbs\":%.2f,\"results\":[", VKI_GIT_COMMIT, membw,
               read_gbs);
        for (int i = 0; i < n; i++) {
            const result *r = &rs[i];
            printf("%s{\"model\":\"%s\",\"size_bytes\":%.0f,\"params\":%.0f,\"type\":\"%s\",\"backend\":\"%s\","
                   "\"threads\":%d,\"test\":\"%s\",\"ts_median\":%.3f,\"ts_min\":%.3f,\"ts_max\":%.3f",
                   i ? "," : "", r->model, r->size_bytes, r->params, r->type, r->backend, r->threads, r->test, r->med,
                   r->min, r->max);
            if (r->med2 > 0) printf(",\"tokens_per_s\":%.3f", r->med2);
            if (r->bound > 0) printf(",\"bw_bound_ts\":%.3f,\"share_of_bound\":%.4f", r->bound, r->med / r->bound);
            putchar('}');
        }
        puts("]}");
        return;
    }
    if (!strcmp(fmt, "csv")) {
        puts("model,size_bytes,params,type,backend,threads,test,ts_median,ts_min,ts_max,tokens_per_s,bw_bound_ts,build_commit");
        for (int i = 0; i < n; i++) {
            const result *r = &rs[i];
            printf("\"%s\",%.0f,%.0f,%s,\"%s\",%d,%s,%.3f,%.3f,%.3f,%.3f,%.3f,%s\n", r->model, r->size_bytes, r->params,
                   r->type, r->backend, r->threads, r->test, r->med, r->min, r->max, r->med2, r->bound, VKI_GIT_COMMIT);
        }
        return;
    }
    printf("| model | size | params | type | backend | threads | test | t/s (median) | min – max |%s\n",
           membw > 0 ? " share of bw bound |" : "");
    printf("|---|---:|---:|---|---|---:|---|---:|---:|%s\n", membw > 0 ? "---:|" : "");
    for (int i = 0; i < n; i++) {
        const result *r = &rs[i];
        char sz[32], pa[32], extra[64] = "";
        fmt_size(r->size_bytes, sz, sizeof sz);
        fmt_params(r->params, pa, sizeof pa);
        if (r->med2 > 0) snprintf(extra, sizeof extra, " (%.0f tok/s)", r->med2);
        printf("| %s | %s | %s | %s | %s | %d | %s | %.2f%s | %.2f – %.2f |", r->model, sz, pa, r->type, r->backend,
               r->threads, r->test, r->med, extra, r->min, r->max);
        if (membw > 0) {
            if (r->bound > 0) printf(" %.0f%% of %.0f |", 100.0 * r->med / r->bound, r->bound);
            else printf(" |");
        }
        putchar('\n');
    }
    printf("\nbuild %s", VKI_GIT_COMMIT);
    if (membw > 0)
        printf("; triad bandwidth %.1f GB/s (read-only %.1f GB/s); "
               "bound = triad bandwidth / weight bytes read per token", membw, read_gbs);
    printf("; loading, tokenization and sampling excluded\n");
}

int main(int argc, char **argv)
{
    const char *models[16];
    int n_models = 0, n_pp = 512, n_tg = 128, n_depth = 0, reps = 5, threads = 0, embd_len = 32, n_par = 1;
    bool membw_on = false;
    const char *fmt = "md";
    vki_backend_kind kind = VKI_BACKEND_CPU;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && v && n_models < 16) {
            models[n_models++] = v;
            i++;
        } else if (!strcmp(a, "-p") && v) {
            n_pp = atoi(v);
            i++;
        } else if (!strcmp(a, "-n") && v) {
            n_tg = atoi(v);
            i++;
        } else if (!strcmp(a, "-d") && v) {
            n_depth = atoi(v);
            i++;
        } else if (!strcmp(a, "-r") && v) {
            reps = atoi(v);
            i++;
        } else if ((!strcmp(a, "--threads") || !strcmp(a, "-t")) && v) {
            threads = atoi(v);
            i++;
        } else if (!strcmp(a, "--parallel") && v) {
            n_par = atoi(v);
            i++;
        } else if (!strcmp(a, "--embd-len") && v) {
            embd_len = atoi(v);
            i++;
        } else if (!strcmp(a, "--backend") && v) {
            if (!strcmp(v, "vulkan")) kind = VKI_BACKEND_VULKAN;
            else if (!strcmp(v, "cpu")) kind = VKI_BACKEND_CPU;
            else {
                fprintf(stderr, "vkinfer-bench: --backend '%s' is not cpu or vulkan\n", v);
                return 1;
            }
            i++;
        } else if (!strcmp(a, "--membw")) {
            membw_on = true;
        } else if (!strcmp(a, "--json")) {
            fmt = "json";
        } else if (!strcmp(a, "-o") && v) {
            fmt = v;
            i++;
        } else {
            fprintf(stderr, "vkinfer-bench: unknown or incomplete option '%s'\n%s", a, usage);
            return 1;
        }
    }
    if (reps < 1 || n_pp < 0 || n_tg < 0 || n_depth < 0 || embd_len < 3 || threads < 0 || n_par < 1 || n_par > 64 ||
        (strcmp(fmt, "md") && strcmp(fmt, "csv") && strcmp(fmt, "json"))) {
        fprintf(stderr, "vkinfer-bench: bad option value\n%s", usage);
        return 1;
    }
    double membw = 0, read_gbs = 0;
    if (membw_on) {
        fprintf(stderr, "measuring memory bandwidth...\n");
        membw = measure_membw(threads ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN), &read_gbs);
    }
    if (!n_models && !membw_on) {
        fputs(usage, stderr);
        return 1;
    }
    result rs[64];
    int n_rs = 0, rc = 0;
    for (int mi = 0; mi < n_models; mi++) {
        vki_model_file *f = NULL;
        bk_backend *be = NULL;
        mdl_model *m = NULL;
        bk_vk_params vp = {.device = -1};
        vki_status s = vki_file_open(models[mi], &f);
        if (s == VKI_OK) s = kind == VKI_BACKEND_VULKAN ? bk_vk_create(&vp, &be) : bk_cpu_create(threads, &be);
        if (s == VKI_OK) {
            mdl_load_params lp = {.n_batch = (uint32_t)VKI_MAX(VKI_MAX(n_pp, n_par), VKI_MAX(VKI_MIN(n_depth, 512), 1)),
                                  .n_ctx = (uint32_t)(n_depth + VKI_MAX(n_pp, n_tg) + 8), .n_seq_max = (uint32_t)n_par};
            s = mdl_load(f, be, &lp, &m);
        }
        if (s != VKI_OK) {
            fprintf(stderr, "vkinfer-bench: %s: %s\n", models[mi], vki_last_error());
            rc = 1;
            goto next;
        }
        result base = {0};
        const char *slash = strrchr(models[mi], '/');
        snprintf(base.model, sizeof base.model, "%s", slash ? slash + 1 : models[mi]);
        main_type(f, base.type, sizeof base.type);
        snprintf(base.backend, sizeof base.backend, "%s", bk_name(be));
        base.size_bytes = (double)mdl_weight_bytes(m);
        base.params = (double)mdl_n_params(m);
        base.threads = threads ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN); /* 0 = all cores */
        fprintf(stderr, "%s", base.model);
        if (mdl_is_embedding(m)) {
            const int batches[3] = {1, 8, 32};
            for (int b = 0; b < 3 && s == VKI_OK && n_rs < 64; b++) {
                rs[n_rs] = base;
                if ((s = bench_encoder(m, batches[b], embd_len, reps, &rs[n_rs])) == VKI_OK) n_rs++;
            }
        } else {
            char test[32], dtag[20] = "";
            if (n_depth > 0) snprintf(dtag, sizeof dtag, " @ d%d", n_depth); /* llama-bench's name */
            if (n_pp > 0 && n_rs < 64) {
                rs[n_rs] = base;
                snprintf(test, sizeof test, "pp%d%s", n_pp, dtag);
                if ((s = bench_decoder(m, test, n_pp, true, 1, n_depth, reps, &rs[n_rs])) == VKI_OK) n_rs++;
            }
            if (n_tg > 0 && s == VKI_OK && n_rs < 64) {
                rs[n_rs] = base;
                snprintf(test, sizeof test, "tg%d%s", n_tg, dtag);
                if ((s = bench_decoder(m, test, n_tg, false, 1, n_depth, reps, &rs[n_rs])) == VKI_OK) {
                    if (membw > 0) rs[n_rs].bound = membw * 1e9 / bytes_per_token(f);
                    n_rs++;
                }
            }
            if (n_tg > 0 && n_par > 1 && s == VKI_OK && n_rs < 64) {
                rs[n_rs] = base;
                snprintf(test, sizeof test, "tg%d x%d seq%s", n_tg, n_par, dtag);
                if ((s = bench_decoder(m, test, n_tg, false, n_par, n_depth, reps, &rs[n_rs])) == VKI_OK) n_rs++;
            }
        }
        fputc('\n', stderr);
        if (s != VKI_OK) {
            fprintf(stderr, "vkinfer-bench: %s: %s\n", models[mi], vki_last_error());
            rc = 1;
        }
    next:
        mdl_destroy(m);
        bk_destroy(be);
        vki_file_close(f);
    }
    if (membw_on && !n_models) printf("triad bandwidth: %.1f GB/s (%d threads)\n", membw, threads ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN));
    else print_results(rs, n_rs, fmt, membw, read_gbs);
    return rc;
}
