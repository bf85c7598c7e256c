/*
 * test_lsan_leak.c MODE: leaks on purpose, for check_leak.sh, which runs it
 * under the sanitizer build's LSan settings and passes only when the leak
 * fails it. "heap": Vulkan comes up and down cleanly (the driver is loaded
 * and unloaded as in the other tests), then 4242 bytes leak from
 * leak_on_purpose. "vulkan": a VkBuffer is never destroyed (memory the
 * driver allocates for us); exits 3 when there is no Vulkan device.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vulkan/vulkan.h>

/* Creates an instance and a device; with leak_buffer, a buffer never destroyed.
 * Returns 0, or 3 when there is no Vulkan device. */
static int vulkan_up_down(int leak_buffer) {
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .apiVersion = VK_API_VERSION_1_2};
    VkInstanceCreateInfo ici = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app};
    VkInstance inst;
    if (vkCreateInstance(&ici, NULL, &inst) != VK_SUCCESS) {
        printf("test_lsan_leak: no Vulkan instance\n");
        return 3;
    }
    int rc = 3;
    uint32_t n = 1;
    VkPhysicalDevice pd;
    VkResult r = vkEnumeratePhysicalDevices(inst, &n, &pd);
    if ((r == VK_SUCCESS || r == VK_INCOMPLETE) && n > 0) {
        float prio = 1.0f;
        VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                       .queueCount = 1, .pQueuePriorities = &prio};
        VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                                  .queueCreateInfoCount = 1, .pQueueCreateInfos = &qci};
        VkDevice dev;
        if (vkCreateDevice(pd, &dci, NULL, &dev) == VK_SUCCESS) {
            if (leak_buffer) {
                VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = 4096,
                                          .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT};
                VkBuffer buf; /* never destroyed: the leak */
                if (vkCreateBuffer(dev, &bci, NULL, &buf) != VK_SUCCESS) {
                    printf("test_lsan_leak: vkCreateBuffer failed\n");
                }
            }
            vkDestroyDevice(dev, NULL);
            VkPhysicalDeviceProperties props;
            vkGetPhysicalDeviceProperties(pd, &props);
            printf("test_lsan_leak: Vulkan up and down on %s\n", props.deviceName);
            rc = 0;
        }
    }
    if (rc) {
        printf("test_lsan_leak: no Vulkan device\n");
    }
    vkDestroyInstance(inst, NULL);
    return rc;
}

/* noinline: the report must name this function. */
__attribute__((noinline)) static char *leak_on_purpose(void) {
    char *p = malloc(4242);
    if (p) {
        memset(p, 1, 4242);
    }
    return p;
}

static char *volatile sink;

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "vulkan") == 0) {
        return vulkan_up_down(1);
    }
    if (strcmp(mode, "heap") != 0) {
        fprintf(stderr, "usage: test_lsan_leak heap|vulkan\n");
        return 2;
    }
    vulkan_up_down(0);
    sink = leak_on_purpose();
    sink = NULL; /* the only pointer is gone: a direct leak of 4242 bytes */
    return 0;
}
