/* cmd_version.c: `vkinfer version`. */
#include "cli.h"

const char cmd_version_help[] =
    "print the version of vkinfer and of the library it runs on\n"
    "usage: vkinfer version\n";

int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("vkinfer %s (library %s)\n", VKI_VERSION_STRING, vki_version_string());
    return 0;
}
