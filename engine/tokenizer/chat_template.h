/*
 * chat_template.h: renders a conversation into the prompt text a chat model
 * expects. The family is recognised from the model's Jinja template text
 * (`tokenizer.chat_template`) or named explicitly; an unrecognised template
 * is an error, never a guess. We render the families natively (no Jinja).
 */
#ifndef VKI_CHAT_TEMPLATE_H
#define VKI_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

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
 * overrides, else tokenizer.chat_template is recognised. NOT_FOUND when the
 * file has no template, UNSUPPORTED when it is not one we know. */
vki_status vki_chat_apply(const vki_model_file *f, const char *name, const vki_chat_msg *msgs, size_t n,
                          bool add_generation_prompt, char **out);
/* vki_chat_apply with the content spans, as vki_chat_render_spans (spans and
 * n_spans may be NULL: not recorded). */
vki_status vki_chat_apply_spans(const vki_model_file *f, const char *name, const vki_chat_msg *msgs, size_t n,
                                bool add_generation_prompt, char **out, vki_text_span **spans, size_t *n_spans);

#endif
