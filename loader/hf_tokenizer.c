/*
 * hf_tokenizer.c: tokenizer.json (+ tokenizer_config.json) mapped onto the
 * GGUF tokenizer keys its conversion would carry.
 *
 * tokenizer.json (+ tokenizer_config.json) -> tokenizer.ggml.model: "llama"
 *   for SPM-style BPE (byte_fallback), "t5" for Unigram (charsmap and
 *   whitespace keys: see map_unigram), "gpt2" for byte-level BPE, "bert"
 *   for WordPiece; .tokens (by id, holes filled with
 *   "[PAD<id>]"), .scores (Unigram scores; for SPM-style BPE -(merge rank + 1)
 *   for merge results and -1e9 for the rest, so that bigram-by-score merging
 *   reproduces BPE order), .token_type (1 normal, 2 unknown, 3 control for
 *   special added tokens, 4 user-defined for other added tokens, 6 byte
 *   "<0xNN>"), .merges ("left right" strings, gpt2 only), .bos/.eos/
 *   .unknown/.padding/.cls/.seperator/.mask _token_id (from the named tokens
 *   in tokenizer_config.json; bert gets cls/sep/unk/pad/mask only),
 *   .add_bos_token/.add_eos_token (tokenizer_config.json, else the
 *   TemplateProcessing post-processor), .add_space_prefix (llama: a Prepend
 *   "▁" normalizer or Metaspace prepend), .lowercase (bert normalizer),
 *   tokenizer.chat_template (an HF folder's chat_template.jinja, read in
 *   safetensors.c, replaces it), tokenizer.hf.pre_regex (the pre-tokenizer's
 *   Split regexes, Digits and ByteLevel-with-regex as patterns, in order),
 *   tokenizer.hf.ignore_merges (model.ignore_merges), tokenizer.ggml.pre =
 *   "gpt-2" for a bare ByteLevel pre-tokenizer, and tokenizer.hf.normalizer
 *   (the normalizer's steps; format in engine/tokenizer/normalize.c; SPM's
 *   Prepend '▁' and Replace ' ' -> '▁' are the tokenizer's own behaviour and
 *   are not listed). Normalizer, pre-tokenizer and decoder types that are not
 *   mapped are refused with UNSUPPORTED, never skipped.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "loader/file_impl.h"
#include "loader/hf_kv.h"
#include "util.h"

#define HF_MAX_VOCAB (1 << 24)
/* Unnamed ids allowed beyond as many as are named (see the vocabulary size). */
#define HF_MAX_HOLES 1024

/* ===== tokenizer.json ==================================================== */

/* String -> id hash over the vocabulary: merges and special tokens look ids
 * up by text, and a linear cJSON lookup would make that quadratic. */
typedef struct tok_map { uint64_t cap; int32_t *slot; const char **text; } tok_map;

static uint64_t fnv(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static int32_t tok_find(const tok_map *m, const char *s)
{
    if (!m->cap || !s) return -1;
    for (uint64_t h = fnv(s) & (m->cap - 1);; h = (h + 1) & (m->cap - 1)) {
        int32_t v = m->slot[h];
        if (v < 0) return -1;
        if (!strcmp(m->text[v], s)) return v;
    }
}

static void tok_put(tok_map *m, const char *s, int32_t id)
{
    uint64_t h = fnv(s) & (m->cap - 1);
    while (m->slot[h] >= 0) h = (h + 1) & (m->cap - 1);
    m->slot[h] = id;
}

/* The text of a special token named in tokenizer_config.json: a string or
 * an object {"content": ...}. */
static const char *special_text(const cJSON *cfg, const char *name)
{
    const cJSON *j = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, name) : NULL;
    if (cJSON_IsString(j)) return j->valuestring;
    if (cJSON_IsObject(j)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "content");
        if (cJSON_IsString(c)) return c->valuestring;
    }
    return NULL;
}

/* ----- normalizer, pre-tokenizer, decoder: mapped or refused -------------
 * Every component type is either mapped onto metadata the tokenizer applies
 * or refused with UNSUPPORTED: a tokenizer that silently skipped a step would
 * give different ids than the model was trained with. */

typedef struct pipe_map {
    const char *src;
    bool        spm, wordpiece, gpt2;  /* the family (tokenizer.ggml.model)   */
    bool        escaped;               /* SPM: the ' ' -> '▁' step was seen   */
    int         lowercase;             /* BertNormalizer lowercase, -1 = none */
    bool        bert_pre;              /* a BertPreTokenizer was seen         */
    bool        bytelevel_regex;       /* a ByteLevel with use_regex           */
    int         n_rx;
    const char *rx[16];                /* Split regexes in order (gpt2)       */
    char        steps[64][256];        /* tokenizer.hf.normalizer entries     */
    int         n_steps;
} pipe_map;

/* GPT-2's split pattern, as HF's ByteLevel pre-tokenizer runs it */
static const char rx_bytelevel[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static const char *jtype(const cJSON *j)
{
    const cJSON *t = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "type") : NULL;
    return cJSON_IsString(t) ? t->valuestring : NULL;
}

static const char *jstr(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static vki_status add_step(pipe_map *m, const char *a, const char *b, const char *c)
{
    if (m->n_steps == 64)
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: more than 64 normalizer steps", m->src);
    if (strchr(b ? b : "", 0x1f) || strchr(c ? c : "", 0x1f))
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: a %s normalizer argument holds U+001F, which the mapping reserves",
                        m->src, a);
    int n = snprintf(m->steps[m->n_steps], sizeof m->steps[0], "%s%s%s%s%s", a, b ? "\x1f" : "", b ? b : "",
                     c ? "\x1f" : "", c ? c : "");
    if (n < 0 || (size_t)n >= sizeof m->steps[0])
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: %s normalizer arguments longer than %zu bytes", m->src, a,
                        sizeof m->steps[0] - 16);
    m->n_steps++;
    return VKI_OK;
}

static vki_status map_normalizer(pipe_map *m, const cJSON *j)
{
    if (!j || cJSON_IsNull(j)) return VKI_OK;
    const char *type = jtype(j);
    if (!type) return vki_fail(VKI_ERR_BAD_FILE, "%s: normalizer without a \"type\"", m->src);
    if (!strcmp(type, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "normalizers")) VKI_TRY(map_normalizer(m, e));
        return VKI_OK;
    }
    /* the forms, lowercase and accent stripping commute with SPM's
     * ' ' -> '▁' escape (none of them touches either character) */
    if (!strcmp(type, "NFC") || !strcmp(type, "NFD") || !strcmp(type, "NFKC") || !strcmp(type, "NFKD") ||
        !strcmp(type, "Lowercase") || !strcmp(type, "StripAccents"))
        return add_step(m, type, NULL, NULL);
    if (!strcmp(type, "BertNormalizer")) {
        /* wordpiece.c runs BERT's normalizer with clean_text and
         * handle_chinese_chars on and accents stripped iff lowercase */
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(j, "clean_text");
        const cJSON *hc = cJSON_GetObjectItemCaseSensitive(j, "handle_chinese_chars");
        const cJSON *sa = cJSON_GetObjectItemCaseSensitive(j, "strip_accents");
        const cJSON *lc = cJSON_GetObjectItemCaseSensitive(j, "lowercase");
        const bool lower = !cJSON_IsFalse(lc);
        if (!m->wordpiece || cJSON_IsFalse(ct) || cJSON_IsFalse(hc) || (cJSON_IsBool(sa) && cJSON_IsTrue(sa) != lower))
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: BertNormalizer is supported for WordPiece with clean_text, "
                            "handle_chinese_chars and strip_accents null or equal to lowercase", m->src);
        m->lowercase = lower;
        return VKI_OK;
    }
    if (!strcmp(type, "Strip")) {
        if (m->escaped)
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: a Strip normalizer after the ' ' -> '\xe2\x96\x81' escape", m->src);
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(j, "strip_left");
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "strip_right");
        return add_step(m, "Strip", cJSON_IsTrue(l) ? "1" : "0", cJSON_IsTrue(r) ? "1" : "0");
    }
    if (!strcmp(type, "Replace")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(j, "pattern");
        const char *lit = jstr(pat, "String"), *content = jstr(j, "content");
        if (!lit || !content || !lit[0])
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: Replace normalizer with a %s pattern; only a non-empty literal "
                            "{\"String\": ...} is supported", m->src, jstr(pat, "Regex") ? "Regex" : "missing");
        if (m->spm && !strcmp(lit, " ") && !strcmp(content, "\xe2\x96\x81")) {
            m->escaped = true; /* spm.c escapes spaces itself */
            return VKI_OK;
        }
        if (m->escaped)
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: a Replace normalizer after the ' ' -> '\xe2\x96\x81' escape", m->src);
        return add_step(m, "Replace", lit, content);
    }
    if (!strcmp(type, "Prepend")) {
        const char *pre = jstr(j, "prepend");
        if (!pre) return vki_fail(VKI_ERR_BAD_FILE, "%s: Prepend normalizer without \"prepend\"", m->src);
        /* SPM's dummy prefix: tokenizer.ggml.add_space_prefix */
        if (m->spm && !strcmp(pre, "\xe2\x96\x81")) return VKI_OK;
        if (m->escaped)
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: a Prepend normalizer after the ' ' -> '\xe2\x96\x81' escape", m->src);
        return add_step(m, "Prepend", pre, NULL);
    }
    return vki_fail(VKI_ERR_UNSUPPORTED, "%s: normalizer type '%.40s' is not supported (Sequence, NFC, NFD, NFKC, NFKD, "
                    "Lowercase, StripAccents, Strip, Replace with a literal, Prepend, BertNormalizer are)", m->src, type);
}

static vki_status map_pretok(pipe_map *m, const cJSON *j)
{
    if (!j || cJSON_IsNull(j)) return VKI_OK;
    const char *type = jtype(j);
    if (!type) return vki_fail(VKI_ERR_BAD_FILE, "%s: pre_tokenizer without a \"type\"", m->src);
    if (!strcmp(type, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "pretokenizers")) VKI_TRY(map_pretok(m, e));
        return VKI_OK;
    }
    const char *rx = NULL;
    if (m->gpt2 && !strcmp(type, "Split")) {
        const char *beh = jstr(j, "behavior");
        rx = jstr(cJSON_GetObjectItemCaseSensitive(j, "pattern"), "Regex");
        if (!rx || (beh && strcmp(beh, "Isolated")) || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "invert")))
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: Split pre-tokenizer with %s, behavior '%.20s'%s; only a Regex "
                            "pattern, Isolated, not inverted is supported", m->src, rx ? "a Regex" : "a String pattern",
                            beh ? beh : "?", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "invert")) ? ", inverted" : "");
    } else if (m->gpt2 && !strcmp(type, "Digits")) {
        rx = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "individual_digits")) ? "\\p{N}" : "\\p{N}+";
    } else if (m->gpt2 && !strcmp(type, "ByteLevel")) {
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "add_prefix_space")))
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: ByteLevel pre-tokenizer with add_prefix_space is not supported",
                            m->src);
        const cJSON *ur = cJSON_GetObjectItemCaseSensitive(j, "use_regex");
        if (ur && !cJSON_IsTrue(ur)) return VKI_OK;
        m->bytelevel_regex = true;
        rx = rx_bytelevel;
    } else if (m->spm && !strcmp(type, "Metaspace")) {
        /* llama's SPM treats '▁' runs like any text; a Metaspace that
         * splits words at '▁' (its default) would change the ids */
        const char *rep = jstr(j, "replacement");
        if ((rep && strcmp(rep, "\xe2\x96\x81")) || !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "split")))
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: Metaspace pre-tokenizer that splits at '\xe2\x96\x81' (split "
                            "absent or true) or replaces with another character is not supported", m->src);
        m->escaped = true;
        return VKI_OK;
    } else if (m->wordpiece && !strcmp(type, "BertPreTokenizer")) {
        m->bert_pre = true;
        return VKI_OK;
    } else {
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: pre-tokenizer type '%.40s' is not supported for a %s vocabulary "
                        "(byte-level BPE: Split, Digits, ByteLevel; SPM: Metaspace; WordPiece: BertPreTokenizer)",
                        m->src, type, m->spm ? "SPM" : m->wordpiece ? "WordPiece" : "byte-level BPE");
    }
    if (m->n_rx == (int)VKI_COUNT(m->rx))
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: more than %d pre-tokenizer patterns", m->src, (int)VKI_COUNT(m->rx));
    m->rx[m->n_rx++] = rx;
    return VKI_OK;
}

static vki_status check_decoder(pipe_map *m, const cJSON *j)
{
    if (!j || cJSON_IsNull(j)) return VKI_OK;
    const char *type = jtype(j);
    if (!type) return vki_fail(VKI_ERR_BAD_FILE, "%s: decoder without a \"type\"", m->src);
    if (!strcmp(type, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "decoders")) VKI_TRY(check_decoder(m, e));
        return VKI_OK;
    }
    if (m->gpt2 && !strcmp(type, "ByteLevel")) return VKI_OK;
    if (m->wordpiece && !strcmp(type, "WordPiece")) {
        const char *pre = jstr(j, "prefix");
        if (!pre || !strcmp(pre, "##")) return VKI_OK;
    }
    if (m->spm) {
        if (!strcmp(type, "Metaspace") || !strcmp(type, "ByteFallback") || !strcmp(type, "Fuse")) return VKI_OK;
        const char *lit = jstr(cJSON_GetObjectItemCaseSensitive(j, "pattern"), "String");
        if (!strcmp(type, "Replace") && lit && !strcmp(lit, "\xe2\x96\x81") && jstr(j, "content") &&
            !strcmp(jstr(j, "content"), " "))
            return VKI_OK;
        /* the leading space of the dummy prefix: tokenizer.c strips it */
        const cJSON *start = cJSON_GetObjectItemCaseSensitive(j, "start");
        const cJSON *stop = cJSON_GetObjectItemCaseSensitive(j, "stop");
        if (!strcmp(type, "Strip") && jstr(j, "content") && !strcmp(jstr(j, "content"), " ") && cJSON_IsNumber(start) &&
            start->valuedouble <= 1 && cJSON_IsNumber(stop) && stop->valuedouble == 0)
            return VKI_OK;
    }
    return vki_fail(VKI_ERR_UNSUPPORTED, "%s: decoder '%.40s' (with these settings) is not supported for a %s vocabulary",
                    m->src, type, m->spm ? "SPM" : m->wordpiece ? "WordPiece" : "byte-level BPE");
}

/* True when a normalizer or pre-tokenizer prepends "▁" (SPM's space prefix). */
static bool prepends_space(const cJSON *j)
{
    if (!j) return false;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
    if (cJSON_IsString(type)) {
        if (!strcmp(type->valuestring, "Prepend")) return true;
        if (!strcmp(type->valuestring, "Metaspace")) {
            const cJSON *ps = cJSON_GetObjectItemCaseSensitive(j, "prepend_scheme");
            const cJSON *ap = cJSON_GetObjectItemCaseSensitive(j, "add_prefix_space");
            return cJSON_IsTrue(ap) || (cJSON_IsString(ps) && strcmp(ps->valuestring, "never"));
        }
    }
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "normalizers");
    if (!list) list = cJSON_GetObjectItemCaseSensitive(j, "pretokenizers");
    const cJSON *e;
    cJSON_ArrayForEach(e, list) if (prepends_space(e)) return true;
    return false;
}

/* add_bos/add_eos from a TemplateProcessing post-processor's "single". */
static void template_adds(const cJSON *pp, const char *bos, const char *eos, int *add_bos, int *add_eos)
{
    const cJSON *type = pp ? cJSON_GetObjectItemCaseSensitive(pp, "type") : NULL;
    if (!cJSON_IsString(type)) return;
    if (!strcmp(type->valuestring, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(pp, "processors")) template_adds(e, bos, eos, add_bos, add_eos);
        return;
    }
    if (strcmp(type->valuestring, "TemplateProcessing")) return;
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
    const int n = cJSON_GetArraySize(single);
    if (n == 0) return;
    const cJSON *first = cJSON_GetArrayItem(single, 0), *last = cJSON_GetArrayItem(single, n - 1);
    const cJSON *fs = cJSON_GetObjectItemCaseSensitive(first, "SpecialToken");
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(last, "SpecialToken");
    const cJSON *fid = fs ? cJSON_GetObjectItemCaseSensitive(fs, "id") : NULL;
    const cJSON *lid = ls ? cJSON_GetObjectItemCaseSensitive(ls, "id") : NULL;
    *add_bos = cJSON_IsString(fid) && bos && !strcmp(fid->valuestring, bos);
    *add_eos = cJSON_IsString(lid) && eos && !strcmp(lid->valuestring, eos);
}

/* ----- Unigram: the charsmap and HF's whitespace rules ------------------
 * A Unigram tokenizer.json becomes tokenizer.ggml.model = "t5" (ugm.c).
 * The normalizer is [Precompiled] [steps normalize.c runs] [Replace(Regex
 * " {2,}" -> " " or "▁")]; the pre-tokenizer is Metaspace, optionally after
 * WhitespaceSplit. Written as tokenizer.ggml.precompiled_charsmap and
 * tokenizer.hf.ugm_prepend/_whitespace_split/_collapse_spaces/
 * _metaspace_split; anything else is refused. */

static int b64_val(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

static vki_status put_charsmap(vki_model_file *f, const char *src, const char *b64)
{
    size_t n = strlen(b64);
    while (n && b64[n - 1] == '=') n--;
    vki_kv kv;
    if (!hf_new_array(f, VKI_KV_U8, n * 3 / 4, &kv) && n * 3 / 4)
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory for the charsmap", src);
    uint32_t acc = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val(b64[i]);
        if (v < 0)
            return vki_fail(VKI_ERR_BAD_FILE, "%s: Precompiled precompiled_charsmap: byte %zu ('%c') is not base64", src,
                            i, b64[i]);
        acc = acc << 6 | (uint32_t)v;
        if (i % 4 == 3 || i + 1 == n) {
            /* a group of 4 characters is 3 bytes; a tail of 2 or 3 is 1 or 2 */
            int chars = (int)(i % 4) + 1, bytes = chars == 4 ? 3 : chars - 1;
            acc <<= 6 * (4 - chars);
            for (int b = 0; b < bytes && k < kv.v.arr.n; b++) kv.v.arr.items[k++].v.u = (acc >> (16 - 8 * b)) & 0xff;
            acc = 0;
        }
    }
    kv.v.arr.n = k;
    return hf_put(f, "tokenizer.ggml.precompiled_charsmap", kv);
}

typedef struct ugm_map {
    const cJSON *charsmap;     /* the Precompiled step (first), or NULL */
    const cJSON *steps[64];    /* steps between it and the collapse      */
    int          n_steps;
    bool         collapse;     /* a trailing Replace(" {2,}")            */
} ugm_map;

static vki_status ugm_flatten(ugm_map *u, const char *src, const cJSON *j)
{
    if (!j || cJSON_IsNull(j)) return VKI_OK;
    const char *type = jtype(j);
    if (!type) return vki_fail(VKI_ERR_BAD_FILE, "%s: normalizer without a \"type\"", src);
    if (!strcmp(type, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "normalizers")) VKI_TRY(ugm_flatten(u, src, e));
        return VKI_OK;
    }
    if (u->collapse)
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: Unigram normalizer '%.40s' after the Replace(\" {2,}\") collapse; "
                        "only Precompiled, then other steps, then the collapse are supported", src, type);
    if (!strcmp(type, "Precompiled")) {
        if (u->charsmap || u->n_steps)
            return vki_fail(VKI_ERR_UNSUPPORTED, "%s: a Precompiled normalizer that is not the first step", src);
        u->charsmap = j;
        return VKI_OK;
    }
    const char *rx = jstr(cJSON_GetObjectItemCaseSensitive(j, "pattern"), "Regex"), *content = jstr(j, "content");
    if (!strcmp(type, "Replace") && rx && !strcmp(rx, " {2,}") && content &&
        (!strcmp(content, " ") || !strcmp(content, "\xe2\x96\x81"))) {
        /* runs of spaces become one; as ' ' or as '▁' alike, since
         * Metaspace escapes ' ' before it looks at the first character */
        u->collapse = true;
        return VKI_OK;
    }
    if (u->n_steps == (int)VKI_COUNT(u->steps))
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: more than %d normalizer steps", src, (int)VKI_COUNT(u->steps));
    u->steps[u->n_steps++] = j;
    return VKI_OK;
}

/* Metaspace's settings: replacement '▁', prepend_scheme (or the older
 * add_prefix_space), split (default true). */
static vki_status ugm_metaspace(vki_model_file *f, const char *src, const cJSON *j, bool *prefix)
{
    const char *rep = jstr(j, "replacement"), *ps = jstr(j, "prepend_scheme");
    const cJSON *ap = cJSON_GetObjectItemCaseSensitive(j, "add_prefix_space");
    const cJSON *split = cJSON_GetObjectItemCaseSensitive(j, "split");
    if (rep && strcmp(rep, "\xe2\x96\x81"))
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: Metaspace replacement '%.16s' (only '\xe2\x96\x81' is supported)",
                        src, rep);
    const char *scheme = ps ? ps : (!ap || cJSON_IsTrue(ap)) ? "always" : "never";
    if (strcmp(scheme, "always") && strcmp(scheme, "first") && strcmp(scheme, "never"))
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: Metaspace prepend_scheme '%.16s' (always, first, never are "
                        "supported)", src, scheme);
    *prefix = strcmp(scheme, "never") != 0;
    VKI_TRY(hf_put_str(f, "tokenizer.hf.ugm_prepend", scheme, strlen(scheme)));
    return hf_put_bool(f, "tokenizer.hf.ugm_metaspace_split", !cJSON_IsFalse(split));
}

static vki_status map_unigram(vki_model_file *f, pipe_map *pm, const cJSON *root)
{
    const char *src = pm->src;
    ugm_map *u = calloc(1, sizeof *u);
    if (!u) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", src);
    vki_status s = ugm_flatten(u, src, cJSON_GetObjectItemCaseSensitive(root, "normalizer"));
    if (s == VKI_OK && u->charsmap) {
        const char *b64 = jstr(u->charsmap, "precompiled_charsmap");
        if (!b64) s = vki_fail(VKI_ERR_BAD_FILE, "%s: Precompiled normalizer without precompiled_charsmap", src);
        else if (b64[0]) s = put_charsmap(f, src, b64);
    }
    /* the steps between run as normalize.c steps (mapped as for any model) */
    for (int i = 0; s == VKI_OK && i < u->n_steps; i++) s = map_normalizer(pm, u->steps[i]);
    if (s == VKI_OK && pm->escaped)
        s = vki_fail(VKI_ERR_UNSUPPORTED, "%s: a Unigram normalizer that replaces ' ' with '\xe2\x96\x81' before the "
                     "Metaspace pre-tokenizer", src);
    if (s == VKI_OK) s = hf_put_bool(f, "tokenizer.hf.ugm_collapse_spaces", u->collapse);
    free(u);
    if (s != VKI_OK) return s;

    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), *meta = pre;
    bool ws_split = false, prefix = false;
    const char *type = jtype(pre);
    if (type && !strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
        const int n = cJSON_GetArraySize(list);
        const char *t0 = jtype(cJSON_GetArrayItem(list, 0));
        ws_split = n == 2 && t0 && !strcmp(t0, "WhitespaceSplit");
        meta = n == 1 ? cJSON_GetArrayItem(list, 0) : n == 2 && ws_split ? cJSON_GetArrayItem(list, 1) : NULL;
    }
    type = jtype(meta);
    if (!type || strcmp(type, "Metaspace"))
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: a Unigram pre-tokenizer other than Metaspace or [WhitespaceSplit, "
                        "Metaspace] ('%.40s') is not supported", src, jtype(pre) ? jtype(pre) : "none");
    VKI_TRY(ugm_metaspace(f, src, meta, &prefix));
    VKI_TRY(hf_put_bool(f, "tokenizer.hf.ugm_whitespace_split", ws_split));
    /* decoders: Metaspace, or Replace/ByteFallback/Fuse/Strip (SPM's set) */
    VKI_TRY(check_decoder(pm, cJSON_GetObjectItemCaseSensitive(root, "decoder")));
    return hf_put_bool(f, "tokenizer.ggml.add_space_prefix", prefix);
}

typedef struct tok_build {
    vki_model_file *f;
    const char     *src;
    int32_t         n;       /* vocabulary size (max id + 1)            */
    const char    **text;    /* [n] token text (cJSON-owned or arena)   */
    int32_t        *type;    /* [n] GGUF token types                    */
    float          *score;   /* [n]                                     */
    tok_map         map;
} tok_build;

static vki_status set_token(tok_build *b, int64_t id, const char *text)
{
    if (id < 0 || id >= b->n)
        return vki_fail(VKI_ERR_BAD_FILE, "%s: token '%.64s' has id %lld outside 0..%d", b->src, text, (long long)id,
                        b->n - 1);
    if (b->text[id] && strcmp(b->text[id], text))
        return vki_fail(VKI_ERR_BAD_FILE, "%s: id %lld names both '%.64s' and '%.64s'", b->src, (long long)id,
                        b->text[id], text);
    b->text[id] = text;
    return VKI_OK;
}

static vki_status write_tokens(tok_build *b, const char *model)
{
    vki_model_file *f = b->f;
    vki_kv toks, types, scores;
    if (!hf_new_array(f, VKI_KV_STRING, (uint64_t)b->n, &toks) || !hf_new_array(f, VKI_KV_I32, (uint64_t)b->n, &types) ||
        !hf_new_array(f, VKI_KV_F32, (uint64_t)b->n, &scores))
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory for %d tokens", b->src, b->n);
    for (int32_t i = 0; i < b->n; i++) {
        char pad[32];
        const char *t = b->text[i];
        if (!t) {
            snprintf(pad, sizeof pad, "[PAD%d]", i);
            t = pad;
        }
        size_t n = strlen(t);
        char *c = ld_strdup(&f->arena, t, n);
        if (!c) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", b->src);
        toks.v.arr.items[i].v.s = (vki_str){c, n};
        types.v.arr.items[i].v.i = b->text[i] ? b->type[i] : 5; /* holes: unused */
        scores.v.arr.items[i].v.f = b->score[i];
    }
    VKI_TRY(hf_put_str(f, "tokenizer.ggml.model", model, strlen(model)));
    VKI_TRY(hf_put(f, "tokenizer.ggml.tokens", toks));
    VKI_TRY(hf_put(f, "tokenizer.ggml.token_type", types));
    if (!strcmp(model, "llama") || !strcmp(model, "t5")) VKI_TRY(hf_put(f, "tokenizer.ggml.scores", scores));
    return VKI_OK;
}

vki_status hf_map_tokenizer(vki_model_file *f, const char *src, const char *text, size_t len,
                            const char *config_text, size_t config_len)
{
    cJSON *root = cJSON_ParseWithLength(text, len);
    cJSON *cfg = config_text ? cJSON_ParseWithLength(config_text, config_len) : NULL;
    tok_build b = {.f = f, .src = src};
    char **merge_buf = NULL;
    uint64_t n_merge_buf = 0;
    pipe_map *pm = NULL;
    vki_status s = VKI_OK;
    const cJSON *model = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "model") : NULL;
    const cJSON *mtype = model ? cJSON_GetObjectItemCaseSensitive(model, "type") : NULL;
    const cJSON *vocab = model ? cJSON_GetObjectItemCaseSensitive(model, "vocab") : NULL;
    if (!cJSON_IsString(mtype) || !vocab) {
        s = vki_fail(VKI_ERR_BAD_FILE, "%s: no model.type and model.vocab", src);
        goto done;
    }
    const bool unigram = !strcmp(mtype->valuestring, "Unigram");
    const bool wordpiece = !strcmp(mtype->valuestring, "WordPiece");
    const bool bpe = !strcmp(mtype->valuestring, "BPE");
    if (!unigram && !wordpiece && !bpe) {
        s = vki_fail(VKI_ERR_UNSUPPORTED, "%s: tokenizer model type '%.32s' is not supported", src, mtype->valuestring);
        goto done;
    }
    if (unigram ? !cJSON_IsArray(vocab) : !cJSON_IsObject(vocab)) {
        s = vki_fail(VKI_ERR_BAD_FILE, "%s: model.vocab has the wrong JSON type for %s", src, mtype->valuestring);
        goto done;
    }
    /* vocabulary size: the largest id over vocab and added_tokens, + 1 */
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    int64_t max_id = -1, id;
    const cJSON *e;
    int64_t count = 0;
    cJSON_ArrayForEach(e, vocab) {
        count++;
        if (unigram) max_id = count - 1;
        else if (!hf_jint(e, 0, HF_MAX_VOCAB - 1, &id)) {
            s = vki_fail(VKI_ERR_BAD_FILE, "%s: token '%.64s' has no valid id", src, e->string ? e->string : "");
            goto done;
        } else if (id > max_id) max_id = id;
    }
    cJSON_ArrayForEach(e, added) {
        count++;
        if (hf_jint(cJSON_GetObjectItemCaseSensitive(e, "id"), 0, HF_MAX_VOCAB - 1, &id) && id > max_id) max_id = id;
    }
    if (max_id < 0 || max_id >= HF_MAX_VOCAB) {
        s = vki_fail(VKI_ERR_BAD_FILE, "%s: empty vocabulary", src);
        goto done;
    }
    /* Holes (ids no token names) are filled, but a few bytes naming id
     * 16777215 must not cost gigabytes (fuzz_hf_json spent its time there):
     * real vocabularies are dense, so at least half the ids must be named. */
    if (max_id + 1 > 2 * count + HF_MAX_HOLES) {
        s = vki_fail(VKI_ERR_BAD_FILE, "%s: ids up to %lld for %lld tokens: a vocabulary that is mostly holes",
                     src, (long long)max_id, (long long)count);
        goto done;
    }
    b.n = (int32_t)max_id + 1;
    b.text = calloc((size_t)b.n, sizeof *b.text);
    b.type = calloc((size_t)b.n, sizeof *b.type);
    b.score = calloc((size_t)b.n, sizeof *b.score);
    b.map.cap = 64;
    while (b.map.cap < (uint64_t)b.n * 2) b.map.cap *= 2;
    b.map.slot = malloc(b.map.cap * sizeof *b.map.slot);
    if (!b.text || !b.type || !b.score || !b.map.slot) {
        s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory for %d tokens", src, b.n);
        goto done;
    }
    memset(b.map.slot, 0xff, b.map.cap * sizeof *b.map.slot);
    b.map.text = b.text;
    int64_t i = 0;
    cJSON_ArrayForEach(e, vocab) {
        const char *t;
        float sc = 0.0f;
        if (unigram) {
            const cJSON *p = cJSON_GetArrayItem(e, 0), *q = cJSON_GetArrayItem(e, 1);
            if (!cJSON_IsString(p) || !cJSON_IsNumber(q)) {
                s = vki_fail(VKI_ERR_BAD_FILE, "%s: Unigram vocab entry %lld is not [piece, score]", src, (long long)i);
                goto done;
            }
            t = p->valuestring;
            sc = (float)q->valuedouble;
            id = i;
        } else {
            t = e->string;
            id = (int64_t)e->valuedouble;
        }
        if ((s = set_token(&b, id, t)) != VKI_OK) goto done;
        b.type[id] = 1;
        b.score[id] = sc;
        i++;
    }
    cJSON_ArrayForEach(e, added) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!cJSON_IsString(c) || !hf_jint(cJSON_GetObjectItemCaseSensitive(e, "id"), 0, HF_MAX_VOCAB - 1, &id)) {
            s = vki_fail(VKI_ERR_BAD_FILE, "%s: added_tokens entry without content or id", src);
            goto done;
        }
        if ((s = set_token(&b, id, c->valuestring)) != VKI_OK) goto done;
        b.type[id] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special")) ? 3 : 4;
    }
    for (int32_t k = 0; k < b.n; k++)
        if (b.text[k] && tok_find(&b.map, b.text[k]) < 0) tok_put(&b.map, b.text[k], k);

    const cJSON *bf = cJSON_GetObjectItemCaseSensitive(model, "byte_fallback");
    const bool spm = unigram || (bpe && cJSON_IsTrue(bf));
    const char *gmodel = wordpiece ? "bert" : unigram ? "t5" : spm ? "llama" : "gpt2";

    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (cJSON_IsString(unk) && (id = tok_find(&b.map, unk->valuestring)) >= 0) b.type[id] = 2;
    if (unigram && hf_jint(cJSON_GetObjectItemCaseSensitive(model, "unk_id"), 0, b.n - 1, &id)) b.type[id] = 2;
    if (spm) {
        for (int32_t k = 0; k < b.n; k++) {
            const char *t = b.text[k];
            if (t && strlen(t) == 6 && !strncmp(t, "<0x", 3) && t[5] == '>') b.type[k] = 6;
        }
    }

    /* merges: "a b" strings or ["a", "b"] pairs */
    const cJSON *merges = bpe ? cJSON_GetObjectItemCaseSensitive(model, "merges") : NULL;
    const int n_merges = cJSON_GetArraySize(merges);
    if (bpe) {
        if (spm) {
            for (int32_t k = 0; k < b.n; k++) b.score[k] = -1e9f;
        } else {
            merge_buf = calloc((size_t)VKI_MAX(n_merges, 1), sizeof *merge_buf);
            if (!merge_buf) {
                s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory for merges", src);
                goto done;
            }
        }
        int r = 0;
        char *joined = NULL;
        cJSON_ArrayForEach(e, merges) {
            const char *l, *rt;
            char *sp = NULL;
            if (cJSON_IsString(e)) {
                sp = strchr(e->valuestring + (e->valuestring[0] ? 1 : 0), ' ');
                if (!sp) {
                    s = vki_fail(VKI_ERR_BAD_FILE, "%s: merge %d ('%.64s') has no space", src, r, e->valuestring);
                    break;
                }
                l = e->valuestring;
                rt = sp + 1;
            } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                       cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
                l = cJSON_GetArrayItem(e, 0)->valuestring;
                rt = cJSON_GetArrayItem(e, 1)->valuestring;
            } else {
                s = vki_fail(VKI_ERR_BAD_FILE, "%s: merge %d is neither \"a b\" nor [a, b]", src, r);
                break;
            }
            const size_t nl = sp ? (size_t)(sp - l) : strlen(l), nr = strlen(rt);
            joined = malloc(nl + nr + 2);
            if (!joined) {
                s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory for merges", src);
                break;
            }
            if (spm) {
                memcpy(joined, l, nl);
                memcpy(joined + nl, rt, nr + 1);
                int32_t t = tok_find(&b.map, joined);
                if (t >= 0 && b.score[t] == -1e9f) b.score[t] = -(float)(r + 1);
                free(joined);
            } else {
                memcpy(joined, l, nl);
                joined[nl] = ' ';
                memcpy(joined + nl + 1, rt, nr + 1);
                merge_buf[n_merge_buf++] = joined;
            }
            joined = NULL;
            r++;
        }
        if (s != VKI_OK) goto done;
        if (!spm) {
            vki_kv mk;
            if (!hf_new_array(f, VKI_KV_STRING, n_merge_buf, &mk) && n_merge_buf) {
                s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory for merges", src);
                goto done;
            }
            for (uint64_t k = 0; k < n_merge_buf; k++) {
                size_t n = strlen(merge_buf[k]);
                char *c = ld_strdup(&f->arena, merge_buf[k], n);
                if (!c) {
                    s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", src);
                    goto done;
                }
                mk.v.arr.items[k].v.s = (vki_str){c, n};
            }
            if ((s = hf_put(f, "tokenizer.ggml.merges", mk)) != VKI_OK) goto done;
        }
        const cJSON *im = cJSON_GetObjectItemCaseSensitive(model, "ignore_merges");
        if (cJSON_IsBool(im) && (s = hf_put_bool(f, "tokenizer.hf.ignore_merges", cJSON_IsTrue(im))) != VKI_OK) goto done;
    }
    if ((s = write_tokens(&b, gmodel)) != VKI_OK) goto done;

    /* special tokens */
    static const struct { const char *cfg, *key; bool bert; bool other; } specials[] = {
        {"bos_token", "tokenizer.ggml.bos_token_id", false, true},
        {"eos_token", "tokenizer.ggml.eos_token_id", false, true},
        {"unk_token", "tokenizer.ggml.unknown_token_id", true, true},
        {"pad_token", "tokenizer.ggml.padding_token_id", true, true},
        {"cls_token", "tokenizer.ggml.cls_token_id", true, false},
        {"sep_token", "tokenizer.ggml.seperator_token_id", true, false},
        {"mask_token", "tokenizer.ggml.mask_token_id", true, false},
    };
    for (size_t k = 0; k < VKI_COUNT(specials); k++) {
        if (wordpiece ? !specials[k].bert : !specials[k].other) continue;
        const char *t = special_text(cfg, specials[k].cfg);
        if (!t && !strcmp(specials[k].cfg, "unk_token") && cJSON_IsString(unk)) t = unk->valuestring;
        int32_t tid = tok_find(&b.map, t);
        if (tid >= 0 && (s = hf_put_u32(f, specials[k].key, (uint32_t)tid)) != VKI_OK) goto done;
    }
    /* HF adds exactly what the post-processor says: nothing unless told */
    int add_bos = 0, add_eos = 0;
    template_adds(cJSON_GetObjectItemCaseSensitive(root, "post_processor"), special_text(cfg, "bos_token"),
                  special_text(cfg, "eos_token"), &add_bos, &add_eos);
    const cJSON *ab = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token") : NULL;
    const cJSON *ae = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token") : NULL;
    if (cJSON_IsBool(ab)) add_bos = cJSON_IsTrue(ab);
    if (cJSON_IsBool(ae)) add_eos = cJSON_IsTrue(ae);
    if (!wordpiece) {
        if (add_bos >= 0 && (s = hf_put_bool(f, "tokenizer.ggml.add_bos_token", add_bos)) != VKI_OK) goto done;
        if (add_eos >= 0 && (s = hf_put_bool(f, "tokenizer.ggml.add_eos_token", add_eos)) != VKI_OK) goto done;
    }
    if (spm && !unigram) {
        bool prefix = prepends_space(cJSON_GetObjectItemCaseSensitive(root, "normalizer")) ||
                      prepends_space(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"));
        if ((s = hf_put_bool(f, "tokenizer.ggml.add_space_prefix", prefix)) != VKI_OK) goto done;
    }
    /* chat template: a string, or a list of {name, template} (take "default") */
    const cJSON *ct = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "chat_template") : NULL;
    if (cJSON_IsArray(ct)) {
        const cJSON *pick = NULL;
        cJSON_ArrayForEach(e, ct) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
            if (cJSON_IsString(nm) && !strcmp(nm->valuestring, "default")) pick = e;
        }
        ct = pick ? cJSON_GetObjectItemCaseSensitive(pick, "template") : NULL;
    }
    if (cJSON_IsString(ct) && (s = hf_put_str(f, "tokenizer.chat_template", ct->valuestring, strlen(ct->valuestring))) != VKI_OK)
        goto done;
    /* normalizer, pre-tokenizer, decoder */
    pm = calloc(1, sizeof *pm);
    if (!pm) {
        s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", src);
        goto done;
    }
    *pm = (pipe_map){.src = src, .spm = spm, .wordpiece = wordpiece, .gpt2 = bpe && !spm, .lowercase = -1};
    if (unigram) {
        if ((s = map_unigram(f, pm, root)) != VKI_OK) goto done;
    } else if ((s = map_normalizer(pm, cJSON_GetObjectItemCaseSensitive(root, "normalizer"))) != VKI_OK ||
        (s = map_pretok(pm, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"))) != VKI_OK ||
        (s = check_decoder(pm, cJSON_GetObjectItemCaseSensitive(root, "decoder"))) != VKI_OK)
        goto done;
    if (spm && !unigram && !pm->escaped) {
        s = vki_fail(VKI_ERR_UNSUPPORTED, "%s: an SPM-style vocabulary whose normalizer and pre-tokenizer never map "
                     "' ' to '\xe2\x96\x81' is not supported", src);
        goto done;
    }
    if (wordpiece && !pm->bert_pre) {
        s = vki_fail(VKI_ERR_UNSUPPORTED, "%s: a WordPiece tokenizer without BertPreTokenizer is not supported", src);
        goto done;
    }
    if (pm->lowercase >= 0 && (s = hf_put_bool(f, "tokenizer.ggml.lowercase", pm->lowercase)) != VKI_OK) goto done;
    if (pm->n_steps > 0) {
        vki_kv a;
        if (!hf_new_array(f, VKI_KV_STRING, (uint64_t)pm->n_steps, &a)) {
            s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", src);
            goto done;
        }
        for (int k = 0; k < pm->n_steps; k++) {
            size_t n = strlen(pm->steps[k]);
            char *c = ld_strdup(&f->arena, pm->steps[k], n);
            if (!c) {
                s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", src);
                goto done;
            }
            a.v.arr.items[k].v.s = (vki_str){c, n};
        }
        if ((s = hf_put(f, "tokenizer.hf.normalizer", a)) != VKI_OK) goto done;
    }
    /* a bare ByteLevel is GPT-2's family; anything else runs its patterns */
    if (pm->gpt2 && pm->n_rx == 1 && pm->bytelevel_regex) {
        if ((s = hf_put_str(f, "tokenizer.ggml.pre", "gpt-2", 5)) != VKI_OK) goto done;
    } else if (pm->gpt2 && pm->n_rx > 0) {
        vki_kv a;
        if (!hf_new_array(f, VKI_KV_STRING, (uint64_t)pm->n_rx, &a)) {
            s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", src);
            goto done;
        }
        for (int k = 0; k < pm->n_rx; k++) {
            char *c = ld_strdup(&f->arena, pm->rx[k], strlen(pm->rx[k]));
            if (!c) {
                s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", src);
                goto done;
            }
            a.v.arr.items[k].v.s = (vki_str){c, strlen(c)};
        }
        if ((s = hf_put(f, "tokenizer.hf.pre_regex", a)) != VKI_OK) goto done;
    }
done:
    free(pm);
    for (uint64_t k = 0; k < n_merge_buf; k++) free(merge_buf[k]);
    free(merge_buf);
    free(b.text);
    free(b.type);
    free(b.score);
    free(b.map.slot);
    cJSON_Delete(cfg);
    cJSON_Delete(root);
    return s;
}
