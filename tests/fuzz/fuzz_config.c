/* fuzz_config.c: libFuzzer target for the server's YAML configuration
 * (server/config.c): any input gives a config or a message, never a crash
 * or a leak. */
#include <stdint.h>
#include <string.h>

#include "server/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    srv_config c;
    srv_config_init(&c);
    char err[512];
    err[0] = '\0';
    if (srv_config_parse(&c, "fuzz.yaml", "/nonexistent", (const char *)data, size, err, sizeof err) != VKI_OK &&
        !err[0])
        __builtin_trap(); /* every failure must say why */
    srv_config_deinit(&c);
    return 0;
}
