/*
 * ops_attn.c: ATTN on the CPU backend. Work items are (query row, KV head,
 * key range): the query heads that share a KV head (grouped-query
 * attention) walk its keys together, a block at a time, so a block of K
 * and V rows comes from memory once and serves every head of the group
 * while it sits in L1. One head at a time over all the keys read each K/V
 * row once per head of the group, from L2 at best: a 1.1B decode 1950
 * positions deep spent 814 us a layer in ATTN, against 286 us for the same
 * op alone with its K/V in cache. When (row, KV head) pairs are too few for
 * the threads (decode on many cores), the keys are split into ranges whose
 * partial softmax states are merged afterwards. Where the ISA has a lanes
 * kernel (attn_tile: one query vector per lane) and the heads and rows
 * fill half its lanes, an item is a tile of rows instead of one row.
 * Must not: change what a head sees (causal limit, window, softcap) with
 * the grouping: those depend on the query row only.
 */
#include <math.h>
#include <string.h>

#include "cpu.h"
#include "error.h"
#include "util.h"

#define ATTN_BLOCK 64 /* keys scored per softmax step                       */
#define ATTN_HEADS 16 /* query heads of a group walked together, at most     */
#define ATTN_SPLIT_MIN 256 /* keys per range, at least, when keys are split */

typedef struct attn_task {
    const bk_op       *op;
    const cpu_kernels *kern;
    int64_t            hd, nh, nkvh, group, n_split, split_len;
    int64_t            tile_rows; /* > 0: the lanes kernel, this many query rows an item */
    float             *scratch; /* per thread: acc[ATTN_HEADS][hd], sc[ATTN_HEADS][ATTN_BLOCK] */
    size_t             scratch_stride;
    float             *part;    /* n_split > 1: per (row, head, range): max, sum, acc[hd] */
    cpu_chunks         ch;      /* items: (row, KV head, range), range fastest */
} attn_task;

static size_t part_stride(const attn_task *t) { return (size_t)t->hd + 2; }

static float *part_at(const attn_task *t, int64_t i, int64_t h, int64_t s)
{
    return t->part + ((size_t)((i * t->nh + h) * t->n_split + s)) * part_stride(t);
}

/* Row (i, h) of a {hd, heads, rows} tensor: the queries or the output. */
static float *head_row(const bk_tensor *t, int64_t i, int64_t h)
{
    return (float *)((uint8_t *)cpu_tensor_data(t) + (uint64_t)i * t->nb[2] + (uint64_t)h * t->nb[1]);
}

/* The end of (row i, head h) over range s: its running max m, sum of exps l
 * and unnormalized sum of p * V (acc, element e at acc[e * stride]) become
 * the output row, or range s's partial state when the keys are split. */
static void head_out(const attn_task *t, int64_t i, int64_t h, int64_t s, float m, float l, const float *acc,
                     size_t stride)
{
    if (t->n_split > 1) {
        float *p = part_at(t, i, h, s);
        p[0] = m;
        p[1] = l;
        for (int64_t e = 0; e < t->hd; e++) p[2 + e] = acc[(size_t)e * stride];
    } else {
        float *o = head_row(t->op->dst, i, h);
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        for (int64_t e = 0; e < t->hd; e++) o[e] = acc[(size_t)e * stride] * inv;
    }
}

/* Scores of keys [j0, j0 + nb) against query q, scaled and capped, into
 * sc; returns their maximum. */
static float block_scores(const attn_task *t, const float *q, const uint8_t *kr0, int nb, float *sc)
{
    const bk_tensor *k = t->op->src[1];
    const bool k16 = k->type == VKI_TYPE_F16;
    const float scale = t->op->fp[0], cap = t->op->fp[1], inv_cap = cap > 0.0f ? 1.0f / cap : 0.0f;
    if (t->kern->dot_rows) {
        t->kern->dot_rows(t->hd, kr0, k->nb[2], nb, k16, q, sc);
    } else {
        for (int jj = 0; jj < nb; jj++) {
            const void *kr = kr0 + (uint64_t)jj * k->nb[2];
            sc[jj] = k16 ? t->kern->dot_f16(t->hd, kr, q) : t->kern->dot_f32(t->hd, kr, q);
        }
    }
    float bm = -INFINITY;
    for (int jj = 0; jj < nb; jj++) {
        sc[jj] *= scale;
        if (cap > 0.0f) sc[jj] = cap * tanhf(sc[jj] * inv_cap);
        bm = sc[jj] > bm ? sc[jj] : bm; /* fmaxf is a libm call here */
    }
    return bm;
}

/* acc += sum over the block of p[jj] * V row jj. */
static void block_values(const attn_task *t, float *acc, const uint8_t *vr0, int nb, const float *p)
{
    const bk_tensor *v = t->op->src[2];
    const bool v16 = v->type == VKI_TYPE_F16;
    if (t->kern->mad_rows) {
        t->kern->mad_rows(t->hd, acc, vr0, v->nb[2], nb, v16, p);
    } else {
        for (int jj = 0; jj < nb; jj++) {
            const void *vr = vr0 + (uint64_t)jj * v->nb[2];
            if (v16) t->kern->mad_f16(t->hd, acc, vr, p[jj]);
            else t->kern->mad_f32(t->hd, acc, vr, p[jj]);
        }
    }
}

/* Heads [h0, h0 + G) of query row i over keys [a, b) (online softmax per
 * head), then the output rows, or the partial state of range s. */
static void attn_heads(const attn_task *t, int64_t i, int64_t h0, int G, int64_t a, int64_t b, int64_t s, float *acc,
                       float *sc)
{
    const bk_op *op = t->op;
    const bk_tensor *k = op->src[1], *v = op->src[2];
    const int64_t hd = t->hd, kh = h0 / t->group;
    const uint8_t *kb = (const uint8_t *)cpu_tensor_data(k) + (uint64_t)kh * k->nb[1];
    const uint8_t *vb = (const uint8_t *)cpu_tensor_data(v) + (uint64_t)kh * v->nb[1];
    const float *qr[ATTN_HEADS];
    float mx[ATTN_HEADS], sum[ATTN_HEADS];
    for (int g = 0; g < G; g++) {
        qr[g] = head_row(op->src[0], i, h0 + g);
        mx[g] = -INFINITY;
        sum[g] = 0.0f;
    }
    memset(acc, 0, (size_t)G * (size_t)hd * sizeof(float));
    for (int64_t j0 = a; j0 < b; j0 += ATTN_BLOCK) {
        const int nb = (int)VKI_MIN(ATTN_BLOCK, b - j0);
        const uint8_t *kr0 = kb + (uint64_t)j0 * k->nb[2], *vr0 = vb + (uint64_t)j0 * v->nb[2];
        for (int g = 0; g < G; g++) {
            float *sg = sc + (size_t)g * ATTN_BLOCK, *ag = acc + (size_t)g * (size_t)hd;
            const float bm = block_scores(t, qr[g], kr0, nb, sg);
            /* One rescale of the running sum when the block raises the max. */
            if (bm > mx[g]) {
                if (mx[g] != -INFINITY) {
                    const float corr = expf(mx[g] - bm);
                    t->kern->scale_f32(hd, ag, corr);
                    sum[g] *= corr;
                }
                mx[g] = bm;
            }
            sum[g] += t->kern->exp_sum_f32(nb, sg, mx[g]);
            block_values(t, ag, vr0, nb, sg);
        }
    }
    for (int g = 0; g < G; g++) head_out(t, i, h0 + g, s, mx[g], sum[g], acc + (size_t)g * (size_t)hd, 1);
}

/* The keys query row i sees within range s: up to its position when
 * causal, the window's last W positions; empty: a == b. */
static void row_keys(const attn_task *t, int64_t i, int64_t s, int64_t *a, int64_t *b)
{
    const bk_op *op = t->op;
    const int64_t nkv = op->src[1]->ne[2];
    *a = op->ip[2] > 0 ? VKI_MAX(0, (int64_t)op->ip[1] + i - op->ip[2] + 1) : 0;
    *b = op->ip[0] ? VKI_MIN(nkv, (int64_t)op->ip[1] + i + 1) : nkv;
    if (t->n_split > 1) {
        *a = VKI_MAX(*a, s * t->split_len);
        *b = VKI_MIN(*b, (s + 1) * t->split_len);
    }
    if (*b < *a) *b = *a; /* nothing visible: max -inf, sum 0 */
}

/* Rows [r0, r0 + tile_rows) x the heads of KV head kh in the lanes. */
static void tile_item(const attn_task *t, int64_t r0, int64_t kh, int64_t s, float *scratch)
{
    const bk_op *op = t->op;
    const bk_tensor *q = op->src[0], *k = op->src[1], *v = op->src[2];
    const int64_t hd = t->hd, n_q = q->ne[2];
    const int lanes = t->kern->attn_lanes;
    float *out_m = scratch + CPU_ATTN_TILE_SCRATCH(hd), *out_l = out_m + 16, *out_o = out_l + 16;
    cpu_attn_tile at = {.hd = hd, .k = (const uint8_t *)cpu_tensor_data(k) + (uint64_t)kh * k->nb[1],
                        .v = (const uint8_t *)cpu_tensor_data(v) + (uint64_t)kh * v->nb[1], .ks = k->nb[2],
                        .vs = v->nb[2], .k16 = k->type == VKI_TYPE_F16, .v16 = v->type == VKI_TYPE_F16,
                        .a = INT64_MAX, .b = 0, .scale = op->fp[0], .out_m = out_m, .out_l = out_l,
                        .out_o = out_o, .scratch = scratch};
    for (int64_t i = r0; i < VKI_MIN(n_q, r0 + t->tile_rows); i++) {
        int64_t a, b;
        row_keys(t, i, s, &a, &b);
        for (int64_t g = 0; g < t->group; g++, at.nqv++) {
            at.q[at.nqv] = head_row(q, i, kh * t->group + g);
            at.lo[at.nqv] = (int32_t)a;
            at.hi[at.nqv] = (int32_t)b;
        }
        if (b > a) {
            at.a = VKI_MIN(at.a, a);
            at.b = VKI_MAX(at.b, b);
        }
    }
    for (int l = at.nqv; l < 16; l++) at.lo[l] = at.hi[l] = 0;
    if (at.b <= at.a) at.a = at.b = 0;
    t->kern->attn_tile(&at);
    for (int l = 0; l < at.nqv; l++)
        head_out(t, r0 + l / t->group, kh * t->group + l % t->group, s, out_m[l], out_l[l], out_o + l, (size_t)lanes);
}

static void attn_work(void *arg, int ith, int nth)
{
    attn_task *t = arg;
    (void)nth;
    float *acc = t->scratch + (size_t)ith * t->scratch_stride;
    float *sc = acc + (size_t)ATTN_HEADS * (size_t)t->hd;
    int64_t item;
    for (cpu_chunk_it it = {0, 0}; cpu_chunk_each(&t->ch, &it, &item);) {
        const int64_t s = item % t->n_split, ikh = item / t->n_split, kh = ikh % t->nkvh, i = ikh / t->nkvh;
        if (t->tile_rows) {
            tile_item(t, i * t->tile_rows, kh, s, acc);
            continue;
        }
        int64_t a, b;
        row_keys(t, i, s, &a, &b);
        for (int64_t h0 = kh * t->group; h0 < (kh + 1) * t->group; h0 += ATTN_HEADS)
            attn_heads(t, i, h0, (int)VKI_MIN(ATTN_HEADS, (kh + 1) * t->group - h0), a, b, s, acc, sc);
    }
}

/* The ranges' partial states of each (row, head) into its output row. */
static void attn_merge(void *arg, int ith, int nth)
{
    attn_task *t = arg;
    const bk_tensor *d = t->op->dst;
    (void)ith, (void)nth;
    int64_t p;
    for (cpu_chunk_it it = {0, 0}; cpu_chunk_each(&t->ch, &it, &p);) {
        const int64_t i = p / t->nh, h = p % t->nh;
        float m = -INFINITY, l = 0.0f;
        for (int64_t s = 0; s < t->n_split; s++) m = VKI_MAX(m, part_at(t, i, h, s)[0]);
        float *o = head_row(d, i, h);
        memset(o, 0, (size_t)t->hd * sizeof(float));
        if (m == -INFINITY) continue; /* no key visible: zeros, as unsplit */
        for (int64_t s = 0; s < t->n_split; s++) {
            const float *ps = part_at(t, i, h, s);
            if (ps[0] == -INFINITY) continue;
            const float w = expf(ps[0] - m);
            l += ps[1] * w;
            for (int64_t e = 0; e < t->hd; e++) o[e] += ps[2 + e] * w;
        }
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        for (int64_t e = 0; e < t->hd; e++) o[e] *= inv;
    }
}

vki_status cpu_op_attn(cpu_ctx *c, const bk_op *op)
{
    const bk_tensor *q = op->src[0], *k = op->src[1];
    attn_task t = {.op = op, .kern = c->kern, .hd = q->ne[0], .nh = q->ne[1], .nkvh = k->ne[1], .n_split = 1};
    t.group = t.nh / t.nkvh;
    const int64_t n_q = q->ne[2], nkv = k->ne[2];
    /* The lanes kernel once half its lanes fill: a prompt's rows times
     * a KV head's query heads, or decode's one row when 8+ heads share a
     * KV head (1.1B decode, 2048 deep, in cache: 257 -> 180 us; at 4 lanes
     * the one-query helpers win). */
    const int lanes = c->kern->attn_lanes;
    if (c->kern->attn_tile && t.hd % 16 == 0 && t.group <= lanes && lanes % t.group == 0 &&
        2 * n_q * t.group >= lanes && op->fp[1] == 0.0f)
        t.tile_rows = lanes / t.group;
    const int64_t pairs = (t.tile_rows ? (n_q + t.tile_rows - 1) / t.tile_rows : n_q) * t.nkvh;
    const int64_t work = t.nh * n_q * nkv * t.hd;
    const bool alone = work < 16384 || c->n_threads == 1;
    /* Too few (row, KV head) pairs to keep the threads busy: split the keys. */
    if (!alone && pairs < 2 * (int64_t)c->n_threads) {
        int64_t want = (2 * (int64_t)c->n_threads + pairs - 1) / pairs;
        t.n_split = VKI_MAX(1, VKI_MIN(want, nkv / ATTN_SPLIT_MIN));
        t.split_len = vki_align_up((nkv + t.n_split - 1) / t.n_split, ATTN_BLOCK);
        t.n_split = (nkv + t.split_len - 1) / t.split_len;
    }
    t.scratch_stride = (size_t)vki_align_up(
        t.tile_rows ? CPU_ATTN_TILE_SCRATCH(t.hd) + 32 + 16 * (uint64_t)t.hd : (uint64_t)ATTN_HEADS * (uint64_t)(t.hd + ATTN_BLOCK),
        16);
    const size_t scratch = (size_t)c->n_threads * t.scratch_stride * sizeof(float);
    const size_t parts = t.n_split > 1 ? (size_t)(n_q * t.nh * t.n_split) * part_stride(&t) * sizeof(float) : 0;
    uint8_t *s = cpu_scratch_get(c, scratch + parts);
    if (!s) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "ATTN: no memory for %zu bytes of scratch", scratch + parts);
    t.scratch = (float *)s;
    t.part = parts ? (float *)(s + scratch) : NULL;
    cpu_chunks_init(&t.ch, pairs * t.n_split, alone ? 1 : c->n_threads, 1);
    if (alone) attn_work(&t, 0, 1);
    else cpu_pool_run(c->pool, attn_work, &t);
    if (t.n_split > 1) {
        cpu_chunks_init(&t.ch, n_q * t.nh, c->n_threads, 1);
        cpu_pool_run(c->pool, attn_merge, &t);
    }
    return VKI_OK;
}
