/* cmd_devices.c: `vkinfer devices`: the Vulkan devices, their memory, limits
 * and features, and which one `--backend auto` would pick. */
#include <string.h>
#include <stdlib.h>

#include "cli.h"
#include "engine/vulkan/backend_vk.h"

const char cmd_devices_help[] =
    "list the Vulkan devices with memory, limits and features\n"
    "usage: vkinfer devices [--json]\n"
    "  --json   print one JSON object {\"devices\": [...], \"best\": index}\n";

static int best_index(const bk_vk_device_info *d, int n)
{
    int best = -1;
    for (int i = 0; i < n; i++)
        if (best < 0 || d[i].score > d[best].score || (d[i].score == d[best].score && d[i].budget > d[best].budget))
            best = i;
    return best;
}

static double gib(uint64_t b) { return (double)b / (1024.0 * 1024.0 * 1024.0); }

static void print_json(const bk_vk_device_info *d, int n, int best)
{
    printf("{\"devices\": [");
    for (int i = 0; i < n; i++) {
        printf("%s{\"index\": %d, \"name\": ", i ? ", " : "", d[i].index);
        cli_json_string(stdout, d[i].name, strlen(d[i].name));
        printf(", \"type\": \"%s\", \"driver\": ", d[i].type);
        cli_json_string(stdout, d[i].driver, strlen(d[i].driver));
        printf(", \"api_version\": \"%u.%u.%u\", \"heaps\": [", d[i].api_version >> 22, (d[i].api_version >> 12) & 0x3ff,
               d[i].api_version & 0xfff);
        for (int h = 0; h < d[i].n_heaps; h++)
            printf("%s{\"size\": %llu, \"device_local\": %s}", h ? ", " : "", (unsigned long long)d[i].heap_size[h],
                   d[i].heap_device_local[h] ? "true" : "false");
        printf("], \"budget\": %llu, \"memory_budget_ext\": %s, \"subgroup_size\": %u, \"subgroup_arithmetic\": %s, "
               "\"fp16\": %s, \"int8\": %s, \"integer_dot\": %s, \"coopmat\": %s, \"transfer_queue\": %s, "
               "\"timestamps\": %s, "
               "\"max_storage_buffer_range\": %llu, \"max_memory_allocation_size\": %llu}",
               (unsigned long long)d[i].budget, d[i].has_memory_budget ? "true" : "false", d[i].subgroup_size,
               d[i].subgroup_arithmetic ? "true" : "false", d[i].fp16 ? "true" : "false", d[i].int8 ? "true" : "false",
               d[i].integer_dot ? "true" : "false", d[i].coopmat ? "true" : "false",
               d[i].transfer_queue ? "true" : "false", d[i].timestamps ? "true" : "false",
               (unsigned long long)d[i].max_storage_buffer_range, (unsigned long long)d[i].max_memory_allocation_size);
    }
    printf("], \"best\": %d}\n", best);
}

int cmd_devices(int argc, char **argv)
{
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(cmd_devices_help, stdout);
            return 0;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else {
            return cli_error("devices: unknown option '%s' (see vkinfer devices --help)", argv[i]);
        }
    }
    bk_vk_device_info *d = NULL;
    int n = 0;
    vki_status st = bk_vk_list_devices(&d, &n);
    if (st != VKI_OK) return cli_status_error(st, "devices: no Vulkan");
    if (n == 0) {
        free(d);
        return cli_error("devices: no Vulkan devices found (is a Vulkan driver installed?)");
    }
    int best = best_index(d, n);
    if (json) {
        print_json(d, n, best);
    } else {
        for (int i = 0; i < n; i++) {
            printf("%d: %s (%s)%s\n", i, d[i].name, d[i].type, i == best ? "  <- auto" : "");
            printf("   driver: %s, Vulkan %u.%u.%u\n", d[i].driver, d[i].api_version >> 22,
                   (d[i].api_version >> 12) & 0x3ff, d[i].api_version & 0xfff);
            for (int h = 0; h < d[i].n_heaps; h++)
                printf("   heap %d: %.2f GiB%s\n", h, gib(d[i].heap_size[h]), d[i].heap_device_local[h] ? " device-local" : "");
            printf("   budget: %.2f GiB (%s)\n", gib(d[i].budget),
                   d[i].has_memory_budget ? "VK_EXT_memory_budget" : "heap size");
            printf("   subgroup %u%s, fp16 %s, int8 %s, integer dot %s, coopmat %s\n", d[i].subgroup_size,
                   d[i].subgroup_arithmetic ? " (arithmetic)" : "", d[i].fp16 ? "yes" : "no", d[i].int8 ? "yes" : "no",
                   d[i].integer_dot ? "yes" : "no",
                   d[i].coopmat_f16 ? "yes (16x16x16 f16)" : d[i].coopmat ? "yes (no 16x16x16 f16 shape or features)" : "no");
            printf("   transfer queue %s, timestamps %s\n", d[i].transfer_queue ? "yes (uploads use it)" : "no",
                   d[i].timestamps ? "yes" : "no");
            printf("   maxStorageBufferRange %.0f MiB, maxMemoryAllocationSize %.2f GiB, shared memory %u KiB\n",
                   (double)d[i].max_storage_buffer_range / 1048576.0, gib(d[i].max_memory_allocation_size),
                   d[i].max_shared_memory / 1024);
        }
    }
    free(d);
    return 0;
}
