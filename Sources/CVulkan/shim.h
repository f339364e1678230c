#ifndef ROAST_CVULKAN_SHIM_H
#define ROAST_CVULKAN_SHIM_H
// Prototypes are off: every entry point is fetched through vkGetInstanceProcAddr from a
// loader opened with dlopen (see VulkanCompute/Loader.swift).
#define VK_NO_PROTOTYPES 1
#include <vulkan/vulkan.h>
#include <dlfcn.h>

// Vulkan's function-like macros, which Swift cannot import.
static inline uint32_t roast_vk_make_api_version(uint32_t variant, uint32_t major, uint32_t minor, uint32_t patch) {
    return VK_MAKE_API_VERSION(variant, major, minor, patch);
}
static inline uint32_t roast_vk_api_version_major(uint32_t v) { return VK_API_VERSION_MAJOR(v); }
static inline uint32_t roast_vk_api_version_minor(uint32_t v) { return VK_API_VERSION_MINOR(v); }
static inline uint32_t roast_vk_api_version_patch(uint32_t v) { return VK_API_VERSION_PATCH(v); }

static inline void *roast_dlopen(const char *name) { return dlopen(name, RTLD_NOW | RTLD_LOCAL); }
static inline void *roast_dlsym(void *handle, const char *name) { return dlsym(handle, name); }
#endif
