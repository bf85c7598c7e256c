/*
 * jinja.h: a Jinja interpreter for the subset chat templates use, configured
 * as Hugging Face transformers configures jinja2 (trim_blocks, lstrip_blocks,
 * loop controls, an immutable sandbox, its tojson, raise_exception and
 * strftime_now). It parses a template once and renders it with a JSON
 * context; it must not read files or reach anything outside its arguments.
 * The rendering reports which output bytes came from message content
 * (content-as-text contract, see vki_tokenizer_encode_literal).
 */
#ifndef VKI_JINJA_H
#define VKI_JINJA_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/tokenizer/tokenizer.h"
#include "vkinfer.h"

typedef struct jinja_template jinja_template;

/* Bounds that make a hostile template fail instead of running away. */
typedef struct jinja_limits {
    size_t   max_output; /* bytes of rendered text                          */
    size_t   max_memory; /* bytes the values of one rendering may allocate  */
    uint64_t max_steps;  /* expression and statement evaluations            */
    int      max_depth;  /* nested macro calls, and parser nesting          */
} jinja_limits;

/* 4 MiB of output, 256 MiB of values, 50 million steps, depth 64. */
jinja_limits jinja_default_limits(void);

/* Parses src[0..n) (UTF-8). `where` names the template in messages (a file
 * path, or "tokenizer.chat_template"). On a syntax error returns BAD_FILE
 * with vki_last_error() "WHERE:LINE:COLUMN: what" and *out NULL. Unknown
 * filters and tests are syntax errors, as in jinja2. The template is
 * read-only afterwards: one may be rendered by several threads at once. */
vki_status jinja_parse(const char *src, size_t n, const char *where, jinja_template **out);
void       jinja_template_destroy(jinja_template *t);

/* Renders with the variables of `ctx` (a JSON object; NULL = none). Its key
 * "messages" is the conversation: the strings below each message's
 * "content", "reasoning_content" and tool calls' "arguments" are message
 * content, and *spans (may be NULL: not recorded) receives where their bytes
 * lie in *out, sorted, not overlapping (malloc'd; caller frees both). Bytes
 * derived from content (sliced, trimmed, replaced around, JSON-escaped) stay
 * content; text a template writes itself never is.
 * JSON numbers with no fractional part are integers (1.0 reads as 1).
 * Returns VKI_OK; INVALID_ARGUMENT when the template fails ("WHERE:LINE:
 * COLUMN: what", including raise_exception's message as jinja2 words it);
 * OUT_OF_MEMORY; or UNSUPPORTED past one of *lim (NULL = defaults). */
vki_status jinja_render(const jinja_template *t, const cJSON *ctx, const jinja_limits *lim, char **out,
                        size_t *out_len, vki_text_span **spans, size_t *n_spans);

#endif
