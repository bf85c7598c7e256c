/*
 * grammar.h: constrained decoding. A grammar (GBNF-like text, or compiled
 * from a JSON Schema) becomes rules over byte classes; a matcher follows the
 * output byte by byte as a set of pushdown stacks and tells which tokens of
 * the vocabulary may come next (a bit mask over token ids).
 * Owns: compiled grammars, the vocabulary trie, matcher state and its mask
 * cache. Must not: sample, touch logits beyond masking, or know HTTP.
 *
 * Grammar text (a subset of llama.cpp's GBNF, read by gbnf.c):
 *   rule ::= alt | alt ...     one rule per definition; `root` is the start
 *   "lit"  [a-z\u00e9]  [^"\\]  .        literals, classes (UTF-8 code
 *                                        points), negation, any character
 *   ( ... )  x?  x*  x+  x{m}  x{m,}  x{m,n}   groups and repetition
 *   # comment to end of line; escapes \n \r \t \\ \" \] \- \xHH \uHHHH \UHHHHHHHH
 * Left-recursive rules are refused (the matcher would expand them forever).
 */
#ifndef VKI_GRAMMAR_H
#define VKI_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/tokenizer/tokenizer.h"
#include "vkinfer.h"

/* ===== Grammars ======================================================== */

typedef struct gram_grammar gram_grammar;

/* Parses grammar text (len bytes, need not be NUL-terminated) whose start rule
 * is `root`. INVALID_ARGUMENT with line:column and what was expected,
 * undefined or left-recursive rules; OUT_OF_MEMORY. */
vki_status gram_parse(const char *text, size_t len, gram_grammar **out);
void       gram_destroy(gram_grammar *g);
int32_t    gram_n_rules(const gram_grammar *g);

/* Converts a JSON Schema (text) into grammar text (malloc'd, NUL-terminated,
 * caller frees) whose language is JSON values valid against the schema: see
 * engine/grammar/README.md for the keywords and what each enforces.
 * UNSUPPORTED naming every unsupported keyword with its JSON pointer;
 * INVALID_ARGUMENT for text that is not JSON or a schema that is malformed;
 * OUT_OF_MEMORY. */
vki_status gram_from_json_schema(const char *schema, size_t len, char **grammar_text);

/* The grammar text accepting any JSON object ({"type":"object"} with any
 * members): response_format json_object. A static string. */
const char *gram_json_object_text(void);

/* The grammar a generate request asks for (gp->grammar or gp->json_schema):
 * *out = NULL when it asks for none. INVALID_ARGUMENT (both set, malformed),
 * UNSUPPORTED (schema keywords), OUT_OF_MEMORY. */
vki_status gram_from_params(const vki_generate_params *gp, gram_grammar **out);

/* ===== Vocabulary ====================================================== */

/* The token texts of one tokenizer in a byte trie. Immutable once built, so
 * one may serve many matchers on many threads. */
typedef struct gram_vocab gram_vocab;

vki_status gram_vocab_create(const vki_tokenizer *tok, gram_vocab **out);
/* The same from texts[i][0..lens[i]) (lens[i] <= 0: no text) and eog[i]
 * (may be NULL); the texts are copied. For tests and callers with their own
 * vocabulary. */
vki_status gram_vocab_create_from_texts(int32_t n_vocab, const char *const *texts, const int32_t *lens,
                                        const bool *eog, gram_vocab **out);
void       gram_vocab_destroy(gram_vocab *v);

/* ===== Matcher ========================================================= */

typedef struct gram_matcher gram_matcher;

/* A matcher at the start of g's language. Borrows g and v: both must outlive
 * it. OUT_OF_MEMORY. */
vki_status gram_matcher_create(const gram_grammar *g, const gram_vocab *v, gram_matcher **out);
void       gram_matcher_destroy(gram_matcher *m);

/* Which tokens may come next: bit i of mask[i / 32] is set for token i
 * (n_vocab bits). End-of-generation tokens are allowed only when the text so
 * far is a complete sentence; tokens with no text never. The mask is valid
 * until the next call on m. INVALID_ARGUMENT when the grammar became too
 * ambiguous (too many stacks). */
vki_status gram_matcher_mask(gram_matcher *m, const uint32_t **mask);

/* Follows the bytes of one token. INVALID_ARGUMENT when the grammar does not
 * allow them (the matcher is then unchanged). */
vki_status gram_matcher_accept_token(gram_matcher *m, int32_t id);
vki_status gram_matcher_accept_bytes(gram_matcher *m, const char *s, size_t n);

/* The text so far is a complete sentence. */
bool gram_matcher_can_end(const gram_matcher *m);
/* It is complete and nothing may follow: generation should end now. */
bool gram_matcher_must_end(const gram_matcher *m);

/* Mask lookups served from the cache / computed by walking the trie (bench). */
void gram_matcher_counts(const gram_matcher *m, uint64_t *cached, uint64_t *walked);

#endif
