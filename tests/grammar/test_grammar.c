/*
 * test_grammar.c: the grammar engine without a model: grammar text that is
 * refused and why, strings each grammar accepts and rejects (UTF-8 classes,
 * repetition bounds), the token mask against a brute-force reference on a
 * small vocabulary (multi-byte tokens, characters split across tokens), and
 * the JSON Schema compiler: accepted and rejected documents, and refusals
 * that name the keyword.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/grammar/grammar.h"
#include "test_util.h"

/* ===== Helpers =========================================================== */

static gram_vocab *g_bytes; /* 256 one-byte tokens + token 256 = EOS */

static bool accepts_text(const char *grammar, const char *s, size_t n)
{
    gram_grammar *g = NULL;
    gram_matcher *m = NULL;
    if (gram_parse(grammar, strlen(grammar), &g) != VKI_OK) {
        fprintf(stderr, "parse failed: %s\n%s\n", vki_last_error(), grammar);
        return false;
    }
    bool ok = gram_matcher_create(g, g_bytes, &m) == VKI_OK && gram_matcher_accept_bytes(m, s, n) == VKI_OK &&
              gram_matcher_can_end(m);
    gram_matcher_destroy(m);
    gram_destroy(g);
    return ok;
}

static bool accepts(const char *grammar, const char *s) { return accepts_text(grammar, s, strlen(s)); }

static bool refused(const char *grammar, const char *needle)
{
    gram_grammar *g = NULL;
    vki_status st = gram_parse(grammar, strlen(grammar), &g);
    gram_destroy(g);
    bool ok = st == VKI_ERR_INVALID_ARGUMENT && strstr(vki_last_error(), needle);
    if (!ok) fprintf(stderr, "expected a refusal with '%s' for:\n%s\ngot %d: %s\n", needle, grammar, st, vki_last_error());
    return ok;
}

static char *schema_grammar(const char *schema)
{
    char *t = NULL;
    if (gram_from_json_schema(schema, strlen(schema), &t) != VKI_OK) {
        fprintf(stderr, "schema refused: %s\n  %s\n", vki_last_error(), schema);
        return NULL;
    }
    return t;
}

static bool schema_accepts(const char *schema, const char *doc)
{
    char *t = schema_grammar(schema);
    bool ok = t && accepts(t, doc);
    free(t);
    return ok;
}

static bool schema_refused(const char *schema, vki_status want, const char *needle)
{
    char *t = NULL;
    vki_status st = gram_from_json_schema(schema, strlen(schema), &t);
    free(t);
    bool ok = st == want && strstr(vki_last_error(), needle);
    if (!ok) fprintf(stderr, "expected %d '%s' for %s; got %d: %s\n", want, needle, schema, st, vki_last_error());
    return ok;
}

/* ===== Grammar text ====================================================== */

static void test_parse_errors(void)
{
    CHECK(refused("root ::= foo", "'foo'"));
    CHECK(refused("start ::= \"a\"", "no rule named 'root'"));
    CHECK(refused("root ::= root \"a\" | \"b\"", "left-recursive"));
    CHECK(refused("root ::= x \"a\"\nx ::= \"\" | root", "left-recursive"));
    CHECK(refused("root ::= (\"a\"?)*", "left-recursive"));
    CHECK(refused("root ::= \"abc", "unterminated literal"));
    CHECK(refused("root ::= [a-", "character class"));
    CHECK(refused("root ::= [z-a]", "backwards"));
    CHECK(refused("root ::= (\"a\"", "unclosed"));
    CHECK(refused("root ::= \"a\"{3,2}", "n < m"));
    CHECK(refused("root ::= \"a\"{20000}", "over 10000"));
    CHECK(refused("root ::= \"a\"\nroot ::= \"b\"", "defined twice"));
    CHECK(refused("root ::= \"\\q\"", "unknown escape"));
    CHECK(refused("root := \"a\"", "'::='"));
}

static void test_accept_reject(void)
{
    const char *g1 = "root ::= \"a\" [b-d]+ (\"x\" | \"yz\")? # comment\n";
    CHECK(accepts(g1, "ab"));
    CHECK(accepts(g1, "abcdx"));
    CHECK(accepts(g1, "adyz"));
    CHECK(!accepts(g1, "a"));
    CHECK(!accepts(g1, "abx y"));
    CHECK(!accepts(g1, "aby"));

    const char *g2 = "root ::= \"<\" [a-z]{2,4} \">\"";
    CHECK(!accepts(g2, "<a>"));
    CHECK(accepts(g2, "<ab>"));
    CHECK(accepts(g2, "<abcd>"));
    CHECK(!accepts(g2, "<abcde>"));
    const char *g3 = "root ::= [0-9]{3,}";
    CHECK(!accepts(g3, "12"));
    CHECK(accepts(g3, "123456789"));
    const char *g4 = "root ::= \"x\"{2}";
    CHECK(accepts(g4, "xx"));
    CHECK(!accepts(g4, "x"));
    CHECK(!accepts(g4, "xxx"));

    /* classes over code points, lowered to UTF-8 bytes */
    const char *g5 = "root ::= [\\u00e0-\\u00ff\\u4e00-\\u9fff\\U0001F600-\\U0001F64F]+";
    CHECK(accepts(g5, "\xc3\xa9"));              /* é */
    CHECK(accepts(g5, "\xe4\xb8\xad\xe6\x96\x87")); /* 中文 */
    CHECK(accepts(g5, "\xf0\x9f\x98\x80"));      /* 😀 */
    CHECK(!accepts(g5, "e"));
    CHECK(!accepts(g5, "\xc3\x9f\xc3\xa9"));     /* ß is below U+00E0 */
    CHECK(!accepts(g5, "\xf0\x9f\x99\x90"));     /* U+1F650 */
    const char *g6 = "root ::= [^\"\\\\]*";
    CHECK(accepts(g6, "any \xe2\x82\xac thing"));
    CHECK(!accepts(g6, "no \" quote"));
    CHECK(!accepts(g6, "\xed\xa0\x80"));          /* a surrogate is not a character */
    CHECK(!accepts(g6, "\xc0\xaf"));              /* overlong */
    CHECK(!accepts(g6, "\xe2\x82"));              /* unfinished character cannot end */
    const char *g7 = "root ::= . .";
    CHECK(accepts(g7, "a\xf4\x8f\xbf\xbf"));
    CHECK(!accepts(g7, "a\xf4\x90\x80\x80"));     /* past U+10FFFF */
    const char *g8 = "root ::= \"caf\\u00e9\" \"\\x41\"";
    CHECK(accepts(g8, "caf\xc3\xa9" "A"));
    /* nullable rules, nested groups and line continuation after | */
    const char *g9 = "root ::= a b a\na ::= \"\" | \"a\"\nb ::= (\"(\" b \")\")? |\n  \"b\"";
    CHECK(accepts(g9, ""));
    CHECK(accepts(g9, "a((()))a"));
    CHECK(accepts(g9, "ab"));
    CHECK(!accepts(g9, "(()"));
}

/* The matcher keeps one stack per distinct parse (found by hash): equal
 * ones are merged, distinct ones kept apart up to 1024, then it refuses. */
static void test_ambiguity(void)
{
    char s[64];
    memset(s, 'a', 40);
    strcpy(s + 40, "b");
    /* four ways to read each "a" are one parse, not 4^40 */
    CHECK(accepts("root ::= (\"a\" | \"a\" | \"a\" | \"a\")* \"b\"", s));
    /* after n "a", each of the 2^n closing sequences is alive and distinct */
    const char *g = "root ::= x\nx ::= \"a\" x \"b\" | \"a\" x \"c\" | \"\"";
    CHECK(accepts(g, "aaaaaaaaaabccbcbbbcc")); /* 1024 parses */
    CHECK(accepts(g, "aaaaaaaaaacccccccccc"));
    CHECK(!accepts(g, "aaaaaaaaaabccbcbbbc"));
    CHECK(!accepts(g, "aaaaaaaaaabccbcbbbccb"));
    gram_grammar *gr = NULL;
    gram_matcher *m = NULL;
    CHECK(gram_parse(g, strlen(g), &gr) == VKI_OK && gram_matcher_create(gr, g_bytes, &m) == VKI_OK);
    CHECK(m && gram_matcher_accept_bytes(m, "aaaaaaaaaa", 10) == VKI_OK);
    CHECK(m && gram_matcher_accept_bytes(m, "a", 1) == VKI_ERR_INVALID_ARGUMENT &&
          strstr(vki_last_error(), "too ambiguous"));
    /* a refused byte leaves the state as it was */
    CHECK(m && gram_matcher_accept_bytes(m, "cbcbcbcbcb", 10) == VKI_OK && gram_matcher_can_end(m));
    gram_matcher_destroy(m);
    gram_destroy(gr);

    /* stacked *, + and ? are one operator: the same language, one parse */
    CHECK(accepts("root ::= \"a\"++", "aaa") && !accepts("root ::= \"a\"++", ""));
    CHECK(accepts("root ::= \"a\"+?", "") && accepts("root ::= \"a\"+?", "aa"));
    CHECK(accepts("root ::= \"a\"?+ \"b\"", "b") && accepts("root ::= \"a\"?+ \"b\"", "aaab"));
    CHECK(accepts("root ::= \"a\"??", "") && accepts("root ::= \"a\"??", "a") && !accepts("root ::= \"a\"??", "aa"));
    CHECK(accepts("root ::= \"ab\"+*", "") && accepts("root ::= \"ab\"+*", "abab") && !accepts("root ::= \"ab\"+*", "aba"));
    CHECK(!accepts("root ::= \"a\"+{2}", "a") && accepts("root ::= \"a\"+{2}", "aa") && accepts("root ::= \"a\"+{2}", "aaaa"));
    CHECK(accepts("root ::= (\"a\" \"b\"?)*+ \"c\"", "aabababc"));
    /* twenty of them were past the matcher's bounds at the first byte */
    char t[201];
    memset(t, 'a', 200);
    t[200] = 0;
    CHECK(accepts("root ::= \"a\"++++++++++++++++++++", t));
}

/* ===== Masks ============================================================= */

/* A small vocabulary with multi-byte pieces, pieces that straddle grammar
 * elements, and pieces holding half of a UTF-8 character. */
static const char *const k_pieces[] = {
    "{", "}", "\"", "\":", "\",", "a", "ab", "abc", "b", "1", "12", "123", "0", ",", ", ", " ", "  ", "\n", ":",
    "[", "]", "[]", "{}", "true", "tr", "ue", "false", "null", "nu", "ll", "-", ".", "e", "\xc3", "\xa9",
    "\xc3\xa9", "\xe4\xb8", "\xad", "x\"", "\"a", "\\", "\\n", "\\u", "00", "e9", "\"}", "}]", "\t", "ab\"",
    "\xe2\x82\xac", "}}",
};

static gram_vocab *small_vocab(int32_t *n_out)
{
    int32_t n = (int32_t)(sizeof k_pieces / sizeof *k_pieces) + 2;
    const char **t = calloc((size_t)n, sizeof *t);
    int32_t *l = calloc((size_t)n, sizeof *l);
    bool *eog = calloc((size_t)n, 1);
    for (int32_t i = 0; i < n - 2; i++) {
        t[i] = k_pieces[i];
        l[i] = (int32_t)strlen(k_pieces[i]);
    }
    t[n - 2] = "";  /* a control token: no text */
    eog[n - 1] = true;
    t[n - 1] = "";
    gram_vocab *v = NULL;
    CHECK(gram_vocab_create_from_texts(n, t, l, eog, &v) == VKI_OK);
    free(t);
    free(l);
    free(eog);
    *n_out = n;
    return v;
}

/* The mask must equal "token i's bytes are accepted from this state". */
static void check_mask(const gram_grammar *g, gram_vocab *v, int32_t nv, const char *prefix, size_t np)
{
    gram_matcher *m = NULL;
    CHECK(gram_matcher_create(g, v, &m) == VKI_OK);
    CHECK(gram_matcher_accept_bytes(m, prefix, np) == VKI_OK);
    const uint32_t *mask = NULL;
    CHECK(gram_matcher_mask(m, &mask) == VKI_OK);
    uint32_t *copy = malloc(sizeof *copy * (size_t)((nv + 31) / 32));
    memcpy(copy, mask, sizeof *copy * (size_t)((nv + 31) / 32));
    bool can_end = gram_matcher_can_end(m);
    for (int32_t i = 0; i < nv; i++) {
        bool in = (copy[i >> 5] >> (i & 31)) & 1u;
        bool want;
        if (i == nv - 1) want = can_end;
        else if (i == nv - 2) want = false;
        else {
            gram_matcher *m2 = NULL;
            CHECK(gram_matcher_create(g, v, &m2) == VKI_OK);
            want = gram_matcher_accept_bytes(m2, prefix, np) == VKI_OK &&
                   gram_matcher_accept_bytes(m2, k_pieces[i], strlen(k_pieces[i])) == VKI_OK;
            gram_matcher_destroy(m2);
        }
        CHECKF(in == want, "token %d (\"%s\") after \"%.*s\": mask %d, reference %d", i,
               i < nv - 2 ? k_pieces[i] : "", (int)np, prefix, in, want);
    }
    /* the same state again is served from the cache, with the same mask */
    uint64_t cached0, cached1;
    gram_matcher_counts(m, &cached0, NULL);
    CHECK(gram_matcher_mask(m, &mask) == VKI_OK);
    gram_matcher_counts(m, &cached1, NULL);
    CHECK(cached1 == cached0 + 1);
    CHECK(!memcmp(copy, mask, sizeof *copy * (size_t)((nv + 31) / 32)));
    free(copy);
    gram_matcher_destroy(m);
}

static void test_masks(void)
{
    int32_t nv;
    gram_vocab *v = small_vocab(&nv);
    const char *doc = "{\"ab\": [12, -1.5e9, true, null], \"b\": \"x\xc3\xa9\xe4\xb8\xad\\n\\u00e9\"}";
    gram_grammar *g = NULL;
    const char *gt = gram_json_object_text();
    CHECK(gram_parse(gt, strlen(gt), &g) == VKI_OK);
    for (size_t k = 0; g && k <= strlen(doc); k++) check_mask(g, v, nv, doc, k);
    gram_destroy(g);

    /* after a complete value nothing but the end may follow */
    char *t = schema_grammar("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"boolean\"}},\"required\":[\"a\"],"
                             "\"additionalProperties\":false}");
    g = NULL;
    CHECK(t && gram_parse(t, strlen(t), &g) == VKI_OK);
    if (g) {
        gram_matcher *m = NULL;
        CHECK(gram_matcher_create(g, v, &m) == VKI_OK);
        CHECK(gram_matcher_accept_bytes(m, " {\"a\":true", 10) == VKI_OK);
        CHECK(!gram_matcher_can_end(m) && !gram_matcher_must_end(m));
        CHECK(gram_matcher_accept_bytes(m, "x", 1) != VKI_OK); /* refused, state unchanged */
        CHECK(gram_matcher_accept_token(m, nv - 1) != VKI_OK);  /* EOS too early */
        CHECK(gram_matcher_accept_bytes(m, "}", 1) == VKI_OK);
        CHECK(gram_matcher_must_end(m));
        const uint32_t *mask;
        CHECK(gram_matcher_mask(m, &mask) == VKI_OK);
        for (int32_t i = 0; i < nv; i++) CHECK(((mask[i >> 5] >> (i & 31)) & 1u) == (i == nv - 1));
        CHECK(gram_matcher_accept_token(m, nv - 1) == VKI_OK);
        gram_matcher_destroy(m);
        for (size_t k = 0; k < 12; k++) check_mask(g, v, nv, " {\"a\": false}", k);
    }
    gram_destroy(g);
    free(t);
    gram_vocab_destroy(v);
}

/* ===== JSON Schema ======================================================= */

static void test_schema_accept(void)
{
    const char *person = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":5},"
                         "\"age\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":130},"
                         "\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"a\",\"b\",1,null]},\"maxItems\":2}},"
                         "\"required\":[\"name\",\"age\"],\"additionalProperties\":false}";
    CHECK(schema_accepts(person, "{\"name\":\"bob\",\"age\":42}"));
    CHECK(schema_accepts(person, "{ \"name\" : \"\xc3\xa9t\xc3\xa9\" ,\n \"age\": 130, \"tags\": [\"a\", null] }"));
    CHECK(!schema_accepts(person, "{\"name\":\"bob\"}"));                 /* age required */
    CHECK(!schema_accepts(person, "{\"name\":\"bobbie\",\"age\":1}"));     /* maxLength */
    CHECK(!schema_accepts(person, "{\"name\":\"b\",\"age\":131}"));        /* maximum */
    CHECK(!schema_accepts(person, "{\"name\":\"b\",\"age\":-1}"));         /* minimum */
    CHECK(!schema_accepts(person, "{\"name\":\"b\",\"age\":01}"));         /* leading zero */
    CHECK(!schema_accepts(person, "{\"name\":\"b\",\"age\":1,\"tags\":[1,1,1]}"));
    CHECK(!schema_accepts(person, "{\"name\":\"b\",\"age\":1,\"x\":1}"));  /* no extras */
    CHECK(!schema_accepts(person, "{\"age\":1,\"name\":\"b\"}"));          /* declared order */
    CHECK(!schema_accepts(person, "{\"name\":\"b\",\"age\":1}   "));       /* nothing after the value */

    const char *ranges = "{\"type\":\"array\",\"prefixItems\":[{\"type\":\"integer\",\"minimum\":-25,\"maximum\":-3},"
                         "{\"type\":\"integer\",\"exclusiveMinimum\":99,\"exclusiveMaximum\":1001}],\"items\":false}";
    for (int a = -30; a <= 0; a++)
        for (int b = 95; b <= 1005; b += 13) {
            char doc[64];
            snprintf(doc, sizeof doc, "[%d,%d]", a, b);
            CHECKF(schema_accepts(ranges, doc) == (a >= -25 && a <= -3 && b >= 100 && b <= 1000), "%s", doc);
        }
    CHECK(schema_accepts(ranges, "[-3]"));
    CHECK(schema_accepts(ranges, "[]"));
    CHECK(!schema_accepts(ranges, "[-3,100,1]"));

    const char *rec = "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},"
                      "\"next\":{\"anyOf\":[{\"$ref\":\"#/$defs/node\"},{\"type\":\"null\"}]}},"
                      "\"required\":[\"v\",\"next\"],\"additionalProperties\":false}},\"$ref\":\"#/$defs/node\"}";
    CHECK(schema_accepts(rec, "{\"v\":1,\"next\":{\"v\":-2,\"next\":{\"v\":3,\"next\":null}}}"));
    CHECK(!schema_accepts(rec, "{\"v\":1,\"next\":{\"v\":2}}"));

    const char *extra = "{\"type\":\"object\",\"properties\":{\"ab\":{\"type\":\"integer\"},\"a\":{\"type\":\"null\"}},"
                        "\"additionalProperties\":{\"type\":\"boolean\"}}";
    CHECK(schema_accepts(extra, "{\"ab\":1,\"abc\":true,\"b\":false,\"\":true}"));
    CHECK(schema_accepts(extra, "{\"x\":true}"));
    CHECK(!schema_accepts(extra, "{\"ab\":1,\"ab\":true}"));   /* an extra key may not repeat a listed one */
    CHECK(!schema_accepts(extra, "{\"a\":true}"));
    CHECK(!schema_accepts(extra, "{\"x\":1}"));

    const char *types = "{\"type\":[\"string\",\"null\",\"number\"],\"minLength\":2}";
    CHECK(schema_accepts(types, "null"));
    CHECK(schema_accepts(types, "\"ab\""));
    CHECK(schema_accepts(types, "-0.5E+7"));
    CHECK(!schema_accepts(types, "\"a\""));
    CHECK(!schema_accepts(types, "true"));

    CHECK(schema_accepts("{\"const\":{\"k\":[1,\"\\u00e9\"]}}", "{\"k\":[1,\"\xc3\xa9\"]}"));
    CHECK(schema_accepts("{\"type\":\"string\",\"format\":\"date\"}", "\"2024-02-28\""));
    CHECK(!schema_accepts("{\"type\":\"string\",\"format\":\"date\"}", "\"2024-02-30\""));
    CHECK(schema_accepts("{\"type\":\"string\",\"format\":\"uuid\"}", "\"123e4567-e89b-12d3-a456-426614174000\""));
    CHECK(schema_accepts("{\"type\":\"string\",\"format\":\"date-time\"}", "\"2024-01-31T23:59:60Z\"") == false);
    CHECK(schema_accepts("{\"type\":\"string\",\"format\":\"date-time\"}", "\"2024-01-31T23:59:59.5+01:00\""));
    CHECK(schema_accepts("{\"type\":\"array\",\"items\":{\"type\":\"boolean\"},\"minItems\":2,\"maxItems\":3}",
                         "[true,false,true]"));
    CHECK(!schema_accepts("{\"type\":\"array\",\"items\":{\"type\":\"boolean\"},\"minItems\":2}", "[true]"));
    CHECK(schema_accepts("{\"allOf\":[{\"type\":\"boolean\"},{\"description\":\"x\"}],\"title\":\"t\"}", "false"));
    CHECK(schema_accepts("{\"oneOf\":[{\"type\":\"boolean\"},{\"type\":\"integer\"}]}", "7"));
    CHECK(schema_accepts("true", "[{\"a\":[]},1,\"x\"]"));
    CHECK(schema_accepts("{\"type\":\"object\"}", "{\"any\":{\"thing\":[1]}}"));
    CHECK(schema_accepts("{\"type\":\"string\"}", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00FF\""));
    CHECK(!schema_accepts("{\"type\":\"string\"}", "\"\\ud800\""));   /* lone surrogate escape */
    CHECK(!schema_accepts("{\"type\":\"string\"}", "\"tab\there\""));  /* raw control character */
    CHECK(schema_accepts("{\"type\":\"string\",\"maxLength\":1}", "\"\xf0\x9f\x98\x80\""));
}

/* 3,000 values sharing prefixes: one parse stays alive (a list of
 * alternatives would pass the matcher's limit of live stacks). */
static void test_big_enum(void)
{
    size_t cap = 3000 * 16 + 64, n = 0;
    char *sch = malloc(cap);
    n += (size_t)snprintf(sch + n, cap - n, "{\"enum\":[");
    for (int i = 0; i < 3000; i++) n += (size_t)snprintf(sch + n, cap - n, "%s\"v%d\"", i ? "," : "", i * 7);
    snprintf(sch + n, cap - n, "]}");
    CHECK(schema_accepts(sch, "\"v0\""));
    CHECK(schema_accepts(sch, "\"v20993\""));
    CHECK(schema_accepts(sch, "\"v70\""));
    CHECK(!schema_accepts(sch, "\"v71\""));
    CHECK(!schema_accepts(sch, "\"v\""));
    free(sch);
}

static void test_schema_refusals(void)
{
    CHECK(schema_refused("{\"type\":\"string\",\"pattern\":\"^a$\"}", VKI_ERR_UNSUPPORTED, "pattern (at #)"));
    CHECK(schema_refused("{\"properties\":{\"x\":{\"type\":\"number\",\"multipleOf\":2}}}", VKI_ERR_UNSUPPORTED,
                         "multipleOf (at #/properties/x)"));
    CHECK(schema_refused("{\"not\":{},\"uniqueItems\":true}", VKI_ERR_UNSUPPORTED, "uniqueItems"));
    CHECK(schema_refused("{\"type\":\"number\",\"minimum\":0.5}", VKI_ERR_UNSUPPORTED, "minimum on type number"));
    CHECK(schema_refused("{\"type\":\"string\",\"format\":\"email\"}", VKI_ERR_UNSUPPORTED, "format \"email\""));
    CHECK(schema_refused("{\"$ref\":\"other.json#/x\"}", VKI_ERR_UNSUPPORTED, "another document"));
    CHECK(schema_refused("{\"allOf\":[{\"type\":\"string\"},{\"maxLength\":2}]}", VKI_ERR_UNSUPPORTED, "allOf"));
    CHECK(schema_refused("{\"type\":\"object\"", VKI_ERR_INVALID_ARGUMENT, "not valid JSON"));
    CHECK(schema_refused("{\"type\":\"strung\"}", VKI_ERR_INVALID_ARGUMENT, "type \"strung\""));
    CHECK(schema_refused("{\"$ref\":\"#/$defs/none\"}", VKI_ERR_INVALID_ARGUMENT, "points at nothing"));
    CHECK(schema_refused("{\"type\":\"integer\",\"minimum\":5,\"maximum\":4}", VKI_ERR_INVALID_ARGUMENT, "no integer"));
    CHECK(schema_refused("{\"type\":\"string\",\"minLength\":3,\"maxLength\":2}", VKI_ERR_INVALID_ARGUMENT,
                         "maxLength < minLength"));
    CHECK(schema_refused("false", VKI_ERR_INVALID_ARGUMENT, "matches nothing"));
    CHECK(schema_refused("{\"enum\":[1,2],\"type\":\"string\"}", VKI_ERR_INVALID_ARGUMENT, "no enum"));
    /* a request sets one of grammar / json_schema */
    vki_generate_params gp = vki_generate_default_params();
    gp.grammar = "root ::= \"a\"";
    gp.json_schema = "{}";
    gram_grammar *both = NULL;
    CHECK(gram_from_params(&gp, &both) == VKI_ERR_INVALID_ARGUMENT && !both && strstr(vki_last_error(), "not both"));
    gp.grammar = NULL;
    gp.json_schema = "{\"type\":\"string\",\"pattern\":\"x\"}";
    CHECK(gram_from_params(&gp, &both) == VKI_ERR_UNSUPPORTED && strstr(vki_last_error(), "pattern"));
    gp.json_schema = NULL;
    CHECK(gram_from_params(&gp, &both) == VKI_OK && !both);
    /* a left-recursive $ref cycle is refused by the grammar parser */
    char *t = schema_grammar("{\"$defs\":{\"a\":{\"anyOf\":[{\"$ref\":\"#/$defs/a\"},{\"type\":\"null\"}]}},"
                             "\"$ref\":\"#/$defs/a\"}");
    gram_grammar *g = NULL;
    CHECK(t && gram_parse(t, strlen(t), &g) == VKI_ERR_INVALID_ARGUMENT && strstr(vki_last_error(), "left-recursive"));
    gram_destroy(g);
    free(t);
}

int main(void)
{
    const char *texts[257];
    int32_t lens[257];
    bool eog[257] = {0};
    char bytes[256];
    for (int i = 0; i < 256; i++) {
        bytes[i] = (char)i;
        texts[i] = &bytes[i];
        lens[i] = 1;
    }
    texts[256] = "";
    lens[256] = 0;
    eog[256] = true;
    if (gram_vocab_create_from_texts(257, texts, lens, eog, &g_bytes) != VKI_OK) {
        fprintf(stderr, "vocab: %s\n", vki_last_error());
        return 1;
    }
    test_parse_errors();
    test_accept_reject();
    test_ambiguity();
    test_masks();
    test_schema_accept();
    test_schema_refusals();
    test_big_enum();
    gram_vocab_destroy(g_bytes);
    return test_finish("test_grammar");
}
