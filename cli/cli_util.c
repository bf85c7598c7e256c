/* cli_util.c: argument parsing and error printing shared by subcommands. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    fprintf(stderr, "vkinfer: %s\n", buf);
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
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':  fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (c < 0x20) fprintf(f, "\\u%04x", c);
            else fputc(c, f);
        }
    }
    fputc('"', f);
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
