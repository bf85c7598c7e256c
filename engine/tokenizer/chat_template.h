/*
 * chat_template.h: renders a conversation into the prompt text a chat model
 * expects. A model's own Jinja template (`tokenizer.chat_template`: GGUF,
 * or tokenizer_config.json / chat_template.jinja of an HF folder) is run by
 * the interpreter in engine/template/. Eight common families are also
 * rendered natively: when a family is named explicitly, and for files that
 * carry no template.
 */
#ifndef VKI_CHAT_TEMPLATE_H
#define VKI_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "engine/tokenizer/tokenizer.h"
#include "loader/model_file.h"

typedef enum vki_chat_family {
    VKI_CHAT_UNKNOWN = 0,
    VKI_CHAT_CHATML,   /* <|im_start|>role\n...<|im_end|>\n                      */
    VKI_CHAT_QWEN,     /* chatml + Qwen's default system prompt                   */
    VKI_CHAT_LLAMA2,   /* <s>[INST] <<SYS>>\n..\n<</SYS>>\n\n.. [/INST] .. </s>   */
    VKI_CHAT_LLAMA3,   /* <|start_header_id|>role<|end_header_id|>\n\n..<|eot_id|> */
    VKI_CHAT_MISTRAL,  /* <s>[INST] .. [/INST]..</s>                              */
    VKI_CHAT_PHI3,     /* <|role|>\n..<|end|>\n                                   */
    VKI_CHAT_GEMMA,    /* <start_of_turn>user\n..<end_of_turn>\n                  */
    VKI_CHAT_ZEPHYR,   /* <|role|>\n..</s>\n                                      */
} vki_chat_family;

typedef struct vki_chat_msg {
    const char *role;    /* "system", "user", "assistant" */
    const char *content;
} vki_chat_msg;

/* The family whose markers the template text carries; UNKNOWN when none. */
vki_chat_family vki_chat_detect(const char *tmpl, size_t len);
/* "chatml", "llama2", ... ; "unknown" for UNKNOWN. */
const char     *vki_chat_family_name(vki_chat_family fam);
/* Parses a family name (as vki_chat_family_name writes it); UNKNOWN if none. */
vki_chat_family vki_chat_family_from_name(const char *name);

/* Renders msgs[0..n) in family fam into a malloc'd NUL-terminated string.
 * bos/eos are the model's token texts (used by the families whose templates
 * write bos_token/eos_token; NULL = the family's usual text).
 * INVALID_ARGUMENT for an unknown role or an UNKNOWN family. */
vki_status vki_chat_render(vki_chat_family fam, const vki_chat_msg *msgs, size_t n,
                           bool add_generation_prompt, const char *bos, const char *eos, char **out);

/* vki_chat_render, and where the messages' content lies in *out: *spans
 * (malloc'd, caller frees; NULL when none) sorted, *n_spans of them. Pass
 * them to vki_tokenizer_encode_literal so the template's markers become
 * special tokens and content stays text, whatever it holds. */
vki_status vki_chat_render_spans(vki_chat_family fam, const vki_chat_msg *msgs, size_t n,
                                 bool add_generation_prompt, const char *bos, const char *eos, char **out,
                                 vki_text_span **spans, size_t *n_spans);

/* Renders with the template the model file declares: `name` (may be NULL)
 * names a family to use instead, else tokenizer.chat_template is rendered
 * by the Jinja interpreter (any role passes to it; see
 * vki_chat_apply_json). NOT_FOUND when the file has no template; BAD_FILE
 * when it does not parse; INVALID_ARGUMENT when it fails on this
 * conversation (raise_exception, ...), with "FILE: tokenizer.chat_template:
 * LINE:COLUMN: what" in vki_last_error(). */
vki_status vki_chat_apply(const vki_model_file *f, const char *name, const vki_chat_msg *msgs, size_t n,
                          bool add_generation_prompt, char **out);
/* vki_chat_apply with the content spans, as vki_chat_render_spans (spans and
 * n_spans may be NULL: not recorded). */
vki_status vki_chat_apply_spans(const vki_model_file *f, const char *name, const vki_chat_msg *msgs, size_t n,
                                bool add_generation_prompt, char **out, vki_text_span **spans, size_t *n_spans);

/* The conversation as JSON, the way the OpenAI API and transformers'
 * apply_chat_template hold it, for templates that read more than role and
 * content:
 *   messages  an array of objects: "role" (any string the template knows:
 *             system, user, assistant, tool, ...), "content" (a string, null,
 *             or an array of parts such as {"type": "text", "text": ...}),
 *             and whatever else the template reads: "tool_calls" (an array
 *             of {"id", "type": "function", "function": {"name",
 *             "arguments": object or string}}), "tool_call_id", "name",
 *             "reasoning_content", ...
 *   tools     NULL (the template sees None, as transformers passes it) or an
 *             array of {"type": "function", "function": {"name",
 *             "description", "parameters": JSON schema}}
 *   extra     NULL or an object of further template variables (e.g.
 *             {"enable_thinking": false}, "date_string", "documents"); they
 *             may override bos_token, eos_token, unk_token, pad_token,
 *             sep_token, cls_token, mask_token (the texts of the file's
 *             special tokens, where it has them) and documents (None), not
 *             messages, tools or add_generation_prompt.
 * Strings below each message's "content", "reasoning_content" and tool
 * calls' "arguments" are content: *spans (may be NULL) tells where their
 * bytes ended up, as vki_chat_render_spans does. Nothing is kept: the
 * caller owns the JSON and frees *out and *spans.
 * With `name` set, the family renders messages whose content is text (a
 * string, null or text parts, joined) and roles system/user/assistant;
 * tools are UNSUPPORTED there. Errors as vki_chat_apply. */
vki_status vki_chat_apply_json(const vki_model_file *f, const char *name, const cJSON *messages, const cJSON *tools,
                               const cJSON *extra, bool add_generation_prompt, char **out, vki_text_span **spans,
                               size_t *n_spans);

#endif
