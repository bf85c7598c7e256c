/* fuzz_chat.c: libFuzzer target for the native chat-template renderer and
 * the family detection (engine/tokenizer/chat_template.c) with hostile
 * messages, templates and bos/eos texts. Checks: a refusal says why; the
 * content spans are ordered, inside the text and each a message's content;
 * rendering with and without spans gives the same text; and, tokenized with
 * the spans as literal (a byte-exact BPE holding every family's markers),
 * no special token comes from inside a message. The Jinja interpreter has
 * its own target.
 * Input: [mode] then NUL-separated parts: template text, bos text, eos
 * text, then one part per message: [role byte] content (role byte % 5:
 * system, user, assistant, tool, none). mode & 15: 0 the
 * family detected from the file's template, 1-8 that family rendered
 * directly, 9 the template part as a family name; 16 add the generation
 * prompt; 32 no bos/eos texts; 64 the file names bos/eos token ids. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer/chat_template.h"
#include "error.h"
#include "fuzz_vocab.h"
#include "loader/file_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(c)                                                                        \
    do {                                                                                   \
        if (!(c)) {                                                                        \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);           \
            __builtin_trap();                                                              \
        }                                                                                  \
    } while (0)
#define MAX_MSGS 16

/* Whether [off, off+len) of out holds one of the messages' contents, whole
 * or trimmed of ASCII whitespace at both ends (as Jinja's |trim). */
static bool is_content(const char *out, vki_text_span sp, const vki_chat_msg *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *c = m[i].content;
        size_t cl = strlen(c);
        if (cl == sp.len && !memcmp(out + sp.off, c, cl)) return true;
        while (cl && strchr(" \n\t\r", c[cl - 1])) cl--;
        while (cl && strchr(" \n\t\r", *c)) c++, cl--;
        if (cl == sp.len && !memcmp(out + sp.off, c, cl)) return true;
    }
    return false;
}

static void check_tokens(const char *out, const vki_text_span *spans, size_t n_spans)
{
    const fz_vocab *v;
    fz_vocabs(&v, false);
    const vki_tokenizer *t = v[0].tok; /* the in-process byte-level BPE */
    size_t len = strlen(out);
    int32_t *ids = NULL, n = 0;
    FZ_CHECK(vki_tokenizer_encode_literal(t, out, len, false, spans, n_spans, &ids, &n) == VKI_OK);
    size_t off = 0;
    for (int32_t i = 0; i < n; i++) {
        char piece[256];
        int32_t pl = vki_tokenizer_piece(t, ids[i], piece, sizeof piece, true);
        FZ_CHECK(pl >= 0 && off + (size_t)pl <= len && !memcmp(out + off, piece, (size_t)pl));
        bool special = vki_tokenizer_piece(t, ids[i], piece, sizeof piece, false) == 0 && pl > 0;
        if (special)
            for (size_t k = 0; k < n_spans; k++)
                FZ_CHECK(off + (size_t)pl <= spans[k].off || off >= spans[k].off + spans[k].len);
        off += (size_t)pl;
    }
    FZ_CHECK(off == len);
    free(ids);
}

/* A file holding only what vki_chat_apply_spans reads: the template (not
 * NUL-terminated, as in a GGUF mapping) and maybe the bos/eos ids with a
 * token table holding their texts. */
static vki_model_file *chat_file(const char *tmpl, size_t tlen, const char *bos, const char *eos, bool ids)
{
    vki_model_file *f = ld_file_new("fuzz-chat.gguf");
    FZ_CHECK(f);
    vki_kv kv = {.key = {"tokenizer.chat_template", 23}, .type = VKI_KV_STRING, .v.s = {tmpl, tlen}};
    FZ_CHECK(ld_set_kv(f, &kv) == VKI_OK);
    if (ids) {
        vki_kv *items = ld_alloc(&f->arena, 2 * sizeof *items);
        FZ_CHECK(items);
        items[0] = (vki_kv){.type = VKI_KV_STRING, .v.s = {bos, strlen(bos)}};
        items[1] = (vki_kv){.type = VKI_KV_STRING, .v.s = {eos, strlen(eos)}};
        kv = (vki_kv){.key = {"tokenizer.ggml.tokens", 21}, .type = VKI_KV_ARRAY,
                      .v.arr = {.elem = VKI_KV_STRING, .n = 2, .items = items}};
        FZ_CHECK(ld_set_kv(f, &kv) == VKI_OK);
        kv = (vki_kv){.key = {"tokenizer.ggml.bos_token_id", 27}, .type = VKI_KV_U32, .v.u = 0};
        FZ_CHECK(ld_set_kv(f, &kv) == VKI_OK);
        kv = (vki_kv){.key = {"tokenizer.ggml.eos_token_id", 27}, .type = VKI_KV_U32, .v.u = 1};
        FZ_CHECK(ld_set_kv(f, &kv) == VKI_OK);
    }
    return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t mode = data[0];
    /* an exact-size copy with a NUL after it: parts are C strings */
    char *buf = malloc(size);
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    const char *part[3 + MAX_MSGS];
    size_t part_len[3 + MAX_MSGS];
    int n_parts = 0;
    for (char *p = buf, *end = buf + size - 1; n_parts < 3 + MAX_MSGS && p <= end; p += strlen(p) + 1) {
        part_len[n_parts] = strlen(p);
        part[n_parts++] = p;
    }
    while (n_parts < 3) part_len[n_parts] = 0, part[n_parts++] = "";
    static const char *const roles[] = {"system", "user", "assistant", "tool", NULL};
    vki_chat_msg msgs[MAX_MSGS];
    size_t n = 0;
    for (int i = 3; i < n_parts; i++) {
        uint8_t r = part_len[i] ? (uint8_t)part[i][0] : 0;
        msgs[n].role = roles[r % 5];
        msgs[n].content = part_len[i] ? part[i] + 1 : "";
        n++;
    }
    bool gen_prompt = mode & 16;
    const char *bos = mode & 32 ? NULL : part[1], *eos = mode & 32 ? NULL : part[2];
    /* the template as a GGUF mapping holds it: bytes with no NUL after */
    char *tmpl = malloc(part_len[0] ? part_len[0] : 1);
    memcpy(tmpl, part[0], part_len[0]);

    vki_chat_family fam = vki_chat_detect(tmpl, part_len[0]);
    FZ_CHECK(fam >= VKI_CHAT_UNKNOWN && fam <= VKI_CHAT_ZEPHYR);
    FZ_CHECK(vki_chat_family_from_name(vki_chat_family_name(fam)) == fam);

    char *out = NULL, *plain = NULL;
    vki_text_span *spans = NULL;
    size_t n_spans = 0;
    vki_status s;
    vki_clear_error();
    int how = mode & 15;
    if (how >= 1 && how <= 8) {
        s = vki_chat_render_spans((vki_chat_family)how, msgs, n, gen_prompt, bos, eos, &out, &spans, &n_spans);
        vki_status s2 = vki_chat_render((vki_chat_family)how, msgs, n, gen_prompt, bos, eos, &plain);
        FZ_CHECK(s2 == s);
    } else {
        vki_model_file *f = chat_file(tmpl, part_len[0], part[1], part[2], mode & 64);
        const char *name = how == 9 ? part[0] : NULL;
        s = vki_chat_apply_spans(f, name, msgs, n, gen_prompt, &out, &spans, &n_spans);
        vki_status s2 = vki_chat_apply(f, name, msgs, n, gen_prompt, &plain);
        FZ_CHECK(s2 == s);
        /* Without a name the file's template is rendered as Jinja
         * (engine/template), whatever family its markers suggest: any
         * outcome is fine as long as it is clean (checked below). */
        vki_file_close(f);
    }
    if (s != VKI_OK) {
        FZ_CHECK(vki_last_error()[0]);
        FZ_CHECK(!out && !spans && !n_spans && !plain);
    } else {
        FZ_CHECK(out && plain && !strcmp(out, plain));
        size_t len = strlen(out), at = 0;
        /* at most one span a message from the native renderer; a Jinja
         * template may print a message's content more than once */
        if (how >= 1 && how <= 9) FZ_CHECK(n_spans <= n);
        for (size_t k = 0; k < n_spans; k++) {
            FZ_CHECK(spans[k].len > 0 && spans[k].off >= at && spans[k].off + spans[k].len <= len);
            /* The native renderer's spans are whole messages; a Jinja
             * template may cut or join content, so there only the bounds
             * hold (fuzz_jinja checks its spans byte by byte). */
            if (how >= 1 && how <= 9) FZ_CHECK(is_content(out, spans[k], msgs, n));
            at = spans[k].off + spans[k].len;
        }
        check_tokens(out, spans, n_spans);
    }
    free(out);
    free(plain);
    free(spans);
    free(tmpl);
    free(buf);
    return 0;
}
