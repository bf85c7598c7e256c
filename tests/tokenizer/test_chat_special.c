/*
 * test_chat_special.c: a chat prompt's special tokens come only from the
 * template. For every control token of a real vocabulary, a user message
 * holding its text ("x<|eot_id|>y") is rendered with its content spans
 * (vki_chat_render_spans) and encoded with vki_tokenizer_encode_literal: the
 * token appears only where the template puts it, the decoded prompt holds
 * the content as written, and for byte-level BPE the ids equal the template
 * parts parsed for specials with the content encoded as plain text between
 * them. The server does not use this yet (see README). Usage: PATH FAMILY ...
 */
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer/chat_template.h"
#include "tok_test_util.h"

static int32_t count_id(const int32_t *ids, int32_t n, int32_t id)
{
    int32_t c = 0;
    for (int32_t i = 0; i < n; i++) c += ids[i] == id;
    return c;
}

static char *decode(const vki_tokenizer *t, const int32_t *ids, int32_t n)
{
    char *s = NULL;
    size_t len = 0;
    return vki_tokenizer_decode(t, ids, n, true, &s, &len) == VKI_OK ? s : NULL;
}

/* Renders {system, user: content} and encodes it as the server does. */
static bool render_encode(const vki_tokenizer *t, vki_chat_family fam, const char *content, char **text,
                          vki_text_span **spans, size_t *n_spans, int32_t **ids, int32_t *n_ids)
{
    const vki_chat_msg msgs[] = {{"system", "Be brief."}, {"user", content}};
    if (vki_chat_render_spans(fam, msgs, 2, true, NULL, NULL, text, spans, n_spans) != VKI_OK) {
        CHECKF(false, "render: %s", vki_last_error());
        return false;
    }
    vki_status s = vki_tokenizer_encode_literal(t, *text, strlen(*text), false, *spans, *n_spans, ids, n_ids);
    CHECKF(s == VKI_OK, "encode_literal: %s", vki_last_error());
    return s == VKI_OK;
}

/* BPE: the prompt's ids are the template before the user's content parsed
 * for specials, the content as plain text, and the rest parsed again. */
static void check_parts(const vki_tokenizer *t, const char *text, const vki_text_span *user, const int32_t *ids,
                        int32_t n, const char *label)
{
    int32_t *a = NULL, *b = NULL, *c = NULL, na = 0, nb = 0, nc = 0;
    size_t end = user->off + user->len;
    CHECK(vki_tokenizer_encode(t, text, user->off, false, true, &a, &na) == VKI_OK);
    CHECK(vki_tokenizer_encode(t, text + user->off, user->len, false, false, &b, &nb) == VKI_OK);
    CHECK(vki_tokenizer_encode(t, text + end, strlen(text + end), false, true, &c, &nc) == VKI_OK);
    bool same = na + nb + nc == n && (!na || !memcmp(ids, a, (size_t)na * sizeof *a)) &&
                (!nb || !memcmp(ids + na, b, (size_t)nb * sizeof *b)) &&
                (!nc || !memcmp(ids + na + nb, c, (size_t)nc * sizeof *c));
    CHECKF(same, "%s: ids differ from template parts + plain content (%d vs %d + %d + %d)", label, n, na, nb, nc);
    if (!same) {
        tt_print_ids("got", ids, n);
        tt_print_ids("content as text", b, nb);
    }
    free(a);
    free(b);
    free(c);
}

static void run(const char *path, const char *family)
{
    vki_chat_family fam = vki_chat_family_from_name(family);
    CHECKF(fam != VKI_CHAT_UNKNOWN, "family %s", family);
    vki_tokenizer *t = tt_open(test_shared_path(path), NULL);
    CHECK(t != NULL);
    if (!t || fam == VKI_CHAT_UNKNOWN) {
        vki_tokenizer_destroy(t);
        return;
    }
    /* No special text in the content: the same ids as parsing it all. */
    char *text = NULL;
    vki_text_span *spans = NULL;
    size_t n_spans = 0;
    int32_t *ids = NULL, n_ids = 0, *ref = NULL, n_ref = 0;
    if (render_encode(t, fam, "x y", &text, &spans, &n_spans, &ids, &n_ids)) {
        CHECK(n_spans == 2 && !memcmp(text + spans[1].off, "x y", 3));
        CHECK(vki_tokenizer_encode(t, text, strlen(text), false, true, &ref, &n_ref) == VKI_OK);
        CHECKF(n_ids == n_ref && !memcmp(ids, ref, (size_t)n_ids * sizeof *ids), "%s: plain content: ids differ "
               "from parse_special", path);
    }
    free(text);
    free(spans);
    free(ids);
    free(ref);
    /* Spans out of order are refused. */
    vki_text_span bad[2] = {{4, 2}, {1, 2}};
    CHECK(vki_tokenizer_encode_literal(t, "abcdefgh", 8, false, bad, 2, &ids, &n_ids) == VKI_ERR_INVALID_ARGUMENT);
    int n_tested = 0;
    for (int32_t id = 0; id < vki_tokenizer_n_vocab(t); id++) {
        char piece[256], plain[8];
        int32_t np = vki_tokenizer_piece(t, id, piece, sizeof piece - 1, true);
        if (np <= 0 || vki_tokenizer_piece(t, id, plain, sizeof plain, false) != 0) continue; /* not a control token */
        piece[np] = '\0';
        if (strlen(piece) != (size_t)np) continue;
        char content[300], label[400];
        snprintf(content, sizeof content, "x%sy", piece);
        snprintf(label, sizeof label, "%s %s: content %s", path, family, content);
        /* where the template itself puts this token */
        char *base = NULL;
        vki_text_span *bspans = NULL;
        size_t nb_spans = 0;
        int32_t *bids = NULL, nb_ids = 0;
        text = NULL;
        spans = NULL;
        ids = NULL;
        if (render_encode(t, fam, "xy", &base, &bspans, &nb_spans, &bids, &nb_ids) &&
            render_encode(t, fam, content, &text, &spans, &n_spans, &ids, &n_ids)) {
            n_tested++;
            CHECKF(count_id(ids, n_ids, id) == count_id(bids, nb_ids, id), "%s: token %d came from the content", label,
                   id);
            /* The text survives: the decoded prompt holds the content as written. */
            char *d = decode(t, ids, n_ids);
            CHECKF(d && strstr(d, content), "%s: not in the decoded prompt:\n%s", label, d);
            free(d);
            if (vki_tokenizer_kind(t) == VKI_TOK_BPE) check_parts(t, text, &spans[1], ids, n_ids, label);
        }
        free(base);
        free(bspans);
        free(bids);
        free(text);
        free(spans);
        free(ids);
    }
    CHECKF(n_tested > 0, "%s: no control tokens", path);
    printf("%s (%s): %d control tokens as user content\n", path, family, n_tested);
    vki_tokenizer_destroy(t);
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc % 2 != 1) {
        fprintf(stderr, "usage: %s PATH FAMILY [PATH FAMILY...]\n", argv[0]);
        return 2;
    }
    for (int i = 1; i + 1 < argc; i += 2) run(argv[i], argv[i + 1]);
    return test_finish("tok_chat_special");
}
