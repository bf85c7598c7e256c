/*
 * tool_calls.h: OpenAI tool calling without HTTP: which call format a chat
 * template speaks, the model's text read back into calls, how much of a
 * stream may go out before a call could begin, the grammar that forces a
 * call, and the generic (Hermes-style) rendering for templates that know no
 * tools. server/tools.c joins it to the requests.
 * Owns: nothing beyond what it returns. Must not: send, render templates.
 */
#ifndef VKI_SRV_TOOL_CALLS_H
#define VKI_SRV_TOOL_CALLS_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "vkinfer.h"

typedef enum srv_tool_format {
    SRV_TOOLS_GENERIC = 0, /* our own rendering: <tool_call>{"name","arguments"}</tool_call>        */
    SRV_TOOLS_HERMES,      /* the template's own, same calls (Hermes, Qwen 2/2.5/3)                 */
    SRV_TOOLS_LLAMA3,      /* [<|python_tag|>]{"name": .., "parameters": {..}} (Llama 3.1+)          */
    SRV_TOOLS_MISTRAL,     /* [TOOL_CALLS] [{"name": .., "arguments": {..}}, ...]                    */
    SRV_TOOLS_MISTRAL_ARGS,/* [TOOL_CALLS]name[ARGS]{..} per call (Mistral Small 3.2, Devstral, ...)  */
} srv_tool_format;

/* The format a template's text speaks; GENERIC for NULL, for a template that
 * never mentions tools and for one whose call markers we do not know (then
 * the generic rendering is used instead of the template's tool support). */
srv_tool_format srv_tool_format_detect(const char *tmpl, size_t len);
const char     *srv_tool_format_name(srv_tool_format fmt);

typedef struct srv_tool_call {
    char *name;
    char *arguments; /* JSON text of an object */
} srv_tool_call;

/* Reads calls out of a whole output. Returns how many (*calls malloc'd,
 * free with srv_tool_calls_free); 0 when the text is not calls in fmt (a
 * malformed one included: the output is then plain text) and *content_len =
 * len. With calls, *content_len is the length of the text before the first
 * (trailing whitespace left out). -1: out of memory. */
int  srv_tool_parse(srv_tool_format fmt, const char *text, size_t len, size_t *content_len, srv_tool_call **calls);
void srv_tool_calls_free(srv_tool_call *calls, int n);

/* Of a stream's text so far, how many leading bytes are surely content: the
 * rest may be (the start of) a call and is held back until the end. Never
 * less than an earlier answer for the same growing text. */
size_t srv_tool_safe_prefix(srv_tool_format fmt, const char *text, size_t len);

/* Grammar text (malloc'd; NULL with vki_last_error set) whose language is
 * one call in fmt to any of the functions of `tools` (a validated OpenAI
 * tools array), or only to `name` when it is not NULL; its arguments follow
 * the function's parameters schema. One call only: a forced output must
 * end, and a random or weak model would repeat calls to the length limit.
 * Status in *st: UNSUPPORTED naming schema keywords we cannot enforce,
 * INVALID_ARGUMENT, OUT_OF_MEMORY. */
char *srv_tool_grammar(srv_tool_format fmt, const cJSON *tools, const char *name, vki_status *st);

/* The messages rewritten for a template that knows no tools (malloc'd
 * array; NULL when out of memory): the tool definitions go into the system
 * message (a first one gets them appended, else one is added), an
 * assistant's tool_calls become <tool_call> blocks in its content, a "tool"
 * message becomes a user message holding <tool_response> blocks. Only roles
 * system/user/assistant and string content remain. tools may be NULL. */
cJSON *srv_tool_generic_messages(const cJSON *messages, const cJSON *tools);

/* The messages as templates read them: arguments given as a JSON string
 * (OpenAI's wire form) become the object they hold, as transformers'
 * templates expect. A deep copy; NULL when out of memory. */
cJSON *srv_tool_template_messages(const cJSON *messages);

#endif
