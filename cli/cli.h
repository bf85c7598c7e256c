/* cli.h: what every `vkinfer` subcommand shares: argument helpers and the
 * one-line error convention ("vkinfer: FILE: what is wrong", exit 1). */
#ifndef VKI_CLI_H
#define VKI_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "vkinfer.h"

#define VKI_CMD(id, word) int cmd_##id(int argc, char **argv); extern const char cmd_##id##_help[];
#include "cli_commands.def"
#undef VKI_CMD

/* Prints "vkinfer: <message>" on one line to stderr; returns 1 (the exit status). */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "vkinfer: <what>: <vki_last_error()>"; returns 1. */
int cli_status_error(vki_status s, const char *what);

/* True when argv[i] is -h or --help. */
bool cli_is_help(const char *arg);
/* Parses the value of option argv[*i] (advancing *i); prints an error and
 * returns false when it is missing or malformed. */
bool cli_arg_str(int argc, char **argv, int *i, const char **out);
bool cli_arg_int(int argc, char **argv, int *i, long lo, long hi, long *out);
bool cli_arg_float(int argc, char **argv, int *i, double *out);

/* Parses the value of --backend (cpu | vulkan | auto). */
bool cli_arg_backend(int argc, char **argv, int *i, vki_backend_kind *out);

/* Creates the engine and loads the model, with a progress bar when stderr is
 * a terminal, and says on stderr which backend `auto` picked. On failure
 * prints the one-line error, leaves both handles NULL (nothing to free) and
 * returns false. */
bool cli_load_model(const char *path, const vki_engine_params *ep, vki_model_params *mp,
                    vki_engine **eng, vki_model **model);

/* Writes s[0..len) as a JSON string literal (with quotes) to f. Like every
 * byte vkinfer prints it is valid UTF-8: each broken part of s becomes one
 * U+FFFD (the rule of engine/common/util.h, which the server follows too). */
void cli_json_string(FILE *f, const char *s, size_t len);
/* Writes s[0..len) to f as text, broken parts as U+FFFD (the same rule). */
void cli_write_text(FILE *f, const char *s, size_t len);

typedef struct vki_model_file vki_model_file;
typedef struct vki_tokenizer  vki_tokenizer;
/* Opens the tokenizer of a GGUF file, an HF folder or a tokenizer.json
 * (read with the files beside it). On failure prints the one-line error,
 * leaves both NULL and returns false. Close with vki_tokenizer_destroy
 * and vki_file_close. */
bool cli_open_tokenizer(const char *path, vki_model_file **file, vki_tokenizer **tok);

#endif
