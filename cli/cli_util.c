/* cli_util.c: argument parsing, error printing, valid-UTF-8 output and
 * tokenizer opening shared by subcommands. */
#include "cli.h"

#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/tokenizer/tokenizer.h"
#include "util.h"

int cli_error(const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    /* One line, whatever the message held. */
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    fputs("vkinfer: ", stderr);
    cli_write_text(stderr, buf, strlen(buf)); /* paths and file contents may hold any bytes */
    fputc('\n', stderr);
    return 1;
}

int cli_status_error(vki_status s, const char *what)
{
    const char *msg = vki_last_error();
    if (!msg[0]) msg = vki_status_str(s);
    if (what && what[0] && strncmp(msg, what, strlen(what)) != 0)
        return cli_error("%s: %s", what, msg);
    return cli_error("%s", msg);
}

bool cli_is_help(const char *arg) { return !strcmp(arg, "-h") || !strcmp(arg, "--help"); }

bool cli_arg_str(int argc, char **argv, int *i, const char **out)
{
    if (*i + 1 >= argc) {
        cli_error("option %s needs a value", argv[*i]);
        return false;
    }
    *out = argv[++*i];
    return true;
}

bool cli_arg_int(int argc, char **argv, int *i, long lo, long hi, long *out)
{
    const char *s;
    if (!cli_arg_str(argc, argv, i, &s)) return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        cli_error("option %s: '%s' is not an integer in [%ld, %ld]", argv[*i - 1], s, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

bool cli_arg_float(int argc, char **argv, int *i, double *out)
{
    const char *s;
    if (!cli_arg_str(argc, argv, i, &s)) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end) {
        cli_error("option %s: '%s' is not a number", argv[*i - 1], s);
        return false;
    }
    *out = v;
    return true;
}

void cli_json_string(FILE *f, const char *s, size_t len)
{
    fputc('"', f);
    for (size_t i = 0; i < len;) {
        int k = vki_utf8_next(s + i, len - i);
        if (k < 0) { /* a broken part: one U+FFFD, as everywhere we print */
            fputs("\xEF\xBF\xBD", f);
            i += (size_t)-k;
            continue;
        }
        unsigned char c = (unsigned char)s[i];
        if (k > 1) fwrite(s + i, 1, (size_t)k, f);
        else if (c == '"') fputs("\\\"", f);
        else if (c == '\\') fputs("\\\\", f);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\r') fputs("\\r", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c < 0x20 || c == 0x7f) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
        i += (size_t)k;
    }
    fputc('"', f);
}

void cli_write_text(FILE *f, const char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        int k = vki_utf8_next(s + i, len - i);
        if (k < 0) {
            fputs("\xEF\xBF\xBD", f);
            i += (size_t)-k;
        } else {
            fwrite(s + i, 1, (size_t)k, f);
            i += (size_t)k;
        }
    }
}

bool cli_open_tokenizer(const char *path, vki_model_file **file, vki_tokenizer **tok)
{
    *file = NULL;
    *tok = NULL;
    /* The loader reads a lone .json as a safetensors index; a tokenizer.json
     * is read through its folder, as a tokenizer-only folder (with the
     * tokenizer_config.json beside it, which says BOS/EOS and the template). */
    const char *open_as = path;
    char dir[4096];
    size_t n = strlen(path);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (!strcmp(base, "tokenizer.json") && n < sizeof dir && access(path, R_OK) == 0) {
        memcpy(dir, path, n + 1);
        open_as = dirname(dir);
    }
    vki_status s = vki_file_open(open_as, file);
    if (s == VKI_OK && (s = vki_tokenizer_create(*file, tok)) != VKI_OK) {
        vki_file_close(*file);
        *file = NULL;
    }
    if (s != VKI_OK) {
        cli_status_error(s, path);
        return false;
    }
    return true;
}

bool cli_arg_backend(int argc, char **argv, int *i, vki_backend_kind *out)
{
    const char *s;
    if (!cli_arg_str(argc, argv, i, &s)) return false;
    if (!strcmp(s, "cpu")) *out = VKI_BACKEND_CPU;
    else if (!strcmp(s, "vulkan")) *out = VKI_BACKEND_VULKAN;
    else if (!strcmp(s, "auto")) *out = VKI_BACKEND_AUTO;
    else {
        cli_error("option --backend: '%s' is not cpu, vulkan or auto", s);
        return false;
    }
    return true;
}

static bool on_progress(float p, void *user)
{
    (void)user;
    int w = 40, done = (int)(p * (float)w + 0.5f);
    fprintf(stderr, "\rloading [%.*s%*s] %3d%%", done, "########################################", w - done, "",
            (int)(p * 100.0f + 0.5f));
    if (p >= 1.0f) fputc('\n', stderr);
    return true;
}

bool cli_load_model(const char *path, const vki_engine_params *ep, vki_model_params *mp,
                    vki_engine **eng, vki_model **model)
{
    vki_status s;
    *model = NULL;
    if ((s = vki_engine_create(ep, eng)) != VKI_OK) {
        cli_status_error(s, "engine");
        return false;
    }
    if (isatty(STDERR_FILENO)) mp->progress = on_progress;
    if ((s = vki_model_load(*eng, path, mp, model)) != VKI_OK) {
        cli_status_error(s, path);
        vki_engine_destroy(*eng);
        *eng = NULL;
        return false;
    }
    if (mp->backend == VKI_BACKEND_AUTO) fprintf(stderr, "vkinfer: backend: %s\n", vki_model_backend_name(*model));
    return true;
}
