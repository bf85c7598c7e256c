/* main.c: `vkinfer`: dispatches to the subcommands in cli/cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct cli_command {
    const char *word;
    int (*fn)(int, char **);
    const char *help;
} cli_command;

static const cli_command commands[] = {
#define VKI_CMD(id, word) {word, cmd_##id, cmd_##id##_help},
#include "cli_commands.def"
#undef VKI_CMD
};

static void usage(FILE *f)
{
    fprintf(f, "usage: vkinfer COMMAND [OPTIONS]\n\n"
               "Local LLM and embedding inference on Vulkan GPUs and the CPU.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        /* The first line of a command's help is its one-line summary. */
        const char *h = commands[i].help, *nl = strchr(h, '\n');
        fprintf(f, "  %-14s %.*s\n", commands[i].word, nl ? (int)(nl - h) : (int)strlen(h), h);
    }
    fprintf(f, "\nvkinfer COMMAND --help shows a command's options. vkinfer --version prints the version.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (cli_is_help(argv[1]) || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("vkinfer %s\n", vki_version_string());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (!strcmp(argv[1], commands[i].word)) {
            for (int a = 2; a < argc; a++) {
                if (cli_is_help(argv[a])) {
                    fputs(commands[i].help, stdout);
                    return 0;
                }
            }
            return commands[i].fn(argc - 1, argv + 1);
        }
    }
    return cli_error("unknown command '%s' (vkinfer --help lists them)", argv[1]);
}
