import CVulkan
import Foundation

/// The Vulkan loader, opened with dlopen so that a machine without it gets a one-line error.
final class VulkanLoader: @unchecked Sendable {
    let getInstanceProcAddr: PFN_vkGetInstanceProcAddr

    /// `ROAST_VULKAN_LOADER` names a loader to use instead of the system's.
    static let shared: Result<VulkanLoader, VulkanError> = open(
        ProcessInfo.processInfo.environment["ROAST_VULKAN_LOADER"].map { [$0] }
            ?? ["libvulkan.so.1", "libvulkan.so", "libvulkan.1.dylib", "libMoltenVK.dylib"])

    static func open(_ names: [String]) -> Result<VulkanLoader, VulkanError> {
        for name in names {
            guard let handle = roast_dlopen(name), let sym = roast_dlsym(handle, "vkGetInstanceProcAddr") else { continue }
            return .success(VulkanLoader(getInstanceProcAddr: unsafeBitCast(sym, to: PFN_vkGetInstanceProcAddr.self)))
        }
        return .failure(VulkanError("Vulkan loader \(names[0]) not found: install it (Debian/Ubuntu: apt-get install libvulkan1 mesa-vulkan-drivers)"))
    }

    private init(getInstanceProcAddr: @escaping PFN_vkGetInstanceProcAddr) {
        self.getInstanceProcAddr = getInstanceProcAddr
    }

    func load<T>(_ instance: VkInstance?, _ name: String, as: T.Type = T.self) throws -> T {
        guard let f = getInstanceProcAddr(instance, name) else {
            throw VulkanError("the Vulkan loader has no entry point \(name)")
        }
        return unsafeBitCast(f, to: T.self)
    }
}

/// Instance-level entry points.
struct InstanceFunctions {
    let destroyInstance: PFN_vkDestroyInstance
    let enumeratePhysicalDevices: PFN_vkEnumeratePhysicalDevices
    let getPhysicalDeviceProperties: PFN_vkGetPhysicalDeviceProperties
    let getPhysicalDeviceProperties2: PFN_vkGetPhysicalDeviceProperties2
    let getPhysicalDeviceMemoryProperties: PFN_vkGetPhysicalDeviceMemoryProperties
    let getPhysicalDeviceQueueFamilyProperties: PFN_vkGetPhysicalDeviceQueueFamilyProperties
    let getPhysicalDeviceFeatures2: PFN_vkGetPhysicalDeviceFeatures2
    let enumerateDeviceExtensionProperties: PFN_vkEnumerateDeviceExtensionProperties
    /// VK_NV_cooperative_matrix's shape list (nil where no driver has the extension).
    let getPhysicalDeviceCooperativeMatrixPropertiesNV: PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV?
    let createDevice: PFN_vkCreateDevice
    let getDeviceProcAddr: PFN_vkGetDeviceProcAddr
    let createDebugUtilsMessenger: PFN_vkCreateDebugUtilsMessengerEXT?
    let destroyDebugUtilsMessenger: PFN_vkDestroyDebugUtilsMessengerEXT?

    init(_ l: VulkanLoader, _ i: VkInstance, debugUtils: Bool) throws {
        destroyInstance = try l.load(i, "vkDestroyInstance")
        enumeratePhysicalDevices = try l.load(i, "vkEnumeratePhysicalDevices")
        getPhysicalDeviceProperties = try l.load(i, "vkGetPhysicalDeviceProperties")
        getPhysicalDeviceProperties2 = try l.load(i, "vkGetPhysicalDeviceProperties2")
        getPhysicalDeviceMemoryProperties = try l.load(i, "vkGetPhysicalDeviceMemoryProperties")
        getPhysicalDeviceQueueFamilyProperties = try l.load(i, "vkGetPhysicalDeviceQueueFamilyProperties")
        getPhysicalDeviceFeatures2 = try l.load(i, "vkGetPhysicalDeviceFeatures2")
        enumerateDeviceExtensionProperties = try l.load(i, "vkEnumerateDeviceExtensionProperties")
        getPhysicalDeviceCooperativeMatrixPropertiesNV = try? l.load(i, "vkGetPhysicalDeviceCooperativeMatrixPropertiesNV")
        createDevice = try l.load(i, "vkCreateDevice")
        getDeviceProcAddr = try l.load(i, "vkGetDeviceProcAddr")
        createDebugUtilsMessenger = debugUtils ? try l.load(i, "vkCreateDebugUtilsMessengerEXT") : nil
        destroyDebugUtilsMessenger = debugUtils ? try l.load(i, "vkDestroyDebugUtilsMessengerEXT") : nil
    }
}

/// Device-level entry points, fetched once per device (skips the loader's dispatch).
struct DeviceFunctions {
    let destroyDevice: PFN_vkDestroyDevice
    let getDeviceQueue: PFN_vkGetDeviceQueue
    let deviceWaitIdle: PFN_vkDeviceWaitIdle
    let createBuffer: PFN_vkCreateBuffer
    let createBufferView: PFN_vkCreateBufferView
    let destroyBufferView: PFN_vkDestroyBufferView
    let destroyBuffer: PFN_vkDestroyBuffer
    let getBufferMemoryRequirements: PFN_vkGetBufferMemoryRequirements
    let allocateMemory: PFN_vkAllocateMemory
    let freeMemory: PFN_vkFreeMemory
    let bindBufferMemory: PFN_vkBindBufferMemory
    let mapMemory: PFN_vkMapMemory
    let unmapMemory: PFN_vkUnmapMemory
    let flushMappedMemoryRanges: PFN_vkFlushMappedMemoryRanges
    let invalidateMappedMemoryRanges: PFN_vkInvalidateMappedMemoryRanges
    let createShaderModule: PFN_vkCreateShaderModule
    let destroyShaderModule: PFN_vkDestroyShaderModule
    let createDescriptorSetLayout: PFN_vkCreateDescriptorSetLayout
    let destroyDescriptorSetLayout: PFN_vkDestroyDescriptorSetLayout
    let createPipelineLayout: PFN_vkCreatePipelineLayout
    let destroyPipelineLayout: PFN_vkDestroyPipelineLayout
    let createComputePipelines: PFN_vkCreateComputePipelines
    let destroyPipeline: PFN_vkDestroyPipeline
    let createDescriptorPool: PFN_vkCreateDescriptorPool
    let destroyDescriptorPool: PFN_vkDestroyDescriptorPool
    let resetDescriptorPool: PFN_vkResetDescriptorPool
    let allocateDescriptorSets: PFN_vkAllocateDescriptorSets
    let updateDescriptorSets: PFN_vkUpdateDescriptorSets
    let createCommandPool: PFN_vkCreateCommandPool
    let destroyCommandPool: PFN_vkDestroyCommandPool
    let allocateCommandBuffers: PFN_vkAllocateCommandBuffers
    let beginCommandBuffer: PFN_vkBeginCommandBuffer
    let endCommandBuffer: PFN_vkEndCommandBuffer
    let resetCommandPool: PFN_vkResetCommandPool
    let cmdBindPipeline: PFN_vkCmdBindPipeline
    let cmdBindDescriptorSets: PFN_vkCmdBindDescriptorSets
    let cmdPushConstants: PFN_vkCmdPushConstants
    let cmdDispatch: PFN_vkCmdDispatch
    let cmdPipelineBarrier: PFN_vkCmdPipelineBarrier
    let cmdCopyBuffer: PFN_vkCmdCopyBuffer
    let cmdFillBuffer: PFN_vkCmdFillBuffer
    let cmdWriteTimestamp: PFN_vkCmdWriteTimestamp
    let cmdResetQueryPool: PFN_vkCmdResetQueryPool
    let createQueryPool: PFN_vkCreateQueryPool
    let destroyQueryPool: PFN_vkDestroyQueryPool
    let getQueryPoolResults: PFN_vkGetQueryPoolResults
    let createFence: PFN_vkCreateFence
    let destroyFence: PFN_vkDestroyFence
    let waitForFences: PFN_vkWaitForFences
    let resetFences: PFN_vkResetFences
    let queueSubmit: PFN_vkQueueSubmit

    init(_ get: PFN_vkGetDeviceProcAddr, _ d: VkDevice) throws {
        func f<T>(_ name: String) throws -> T {
            guard let p = get(d, name) else { throw VulkanError("the Vulkan device has no entry point \(name)") }
            return unsafeBitCast(p, to: T.self)
        }
        destroyDevice = try f("vkDestroyDevice")
        getDeviceQueue = try f("vkGetDeviceQueue")
        deviceWaitIdle = try f("vkDeviceWaitIdle")
        createBuffer = try f("vkCreateBuffer")
        createBufferView = try f("vkCreateBufferView")
        destroyBufferView = try f("vkDestroyBufferView")
        destroyBuffer = try f("vkDestroyBuffer")
        getBufferMemoryRequirements = try f("vkGetBufferMemoryRequirements")
        allocateMemory = try f("vkAllocateMemory")
        freeMemory = try f("vkFreeMemory")
        bindBufferMemory = try f("vkBindBufferMemory")
        mapMemory = try f("vkMapMemory")
        unmapMemory = try f("vkUnmapMemory")
        flushMappedMemoryRanges = try f("vkFlushMappedMemoryRanges")
        invalidateMappedMemoryRanges = try f("vkInvalidateMappedMemoryRanges")
        createShaderModule = try f("vkCreateShaderModule")
        destroyShaderModule = try f("vkDestroyShaderModule")
        createDescriptorSetLayout = try f("vkCreateDescriptorSetLayout")
        destroyDescriptorSetLayout = try f("vkDestroyDescriptorSetLayout")
        createPipelineLayout = try f("vkCreatePipelineLayout")
        destroyPipelineLayout = try f("vkDestroyPipelineLayout")
        createComputePipelines = try f("vkCreateComputePipelines")
        destroyPipeline = try f("vkDestroyPipeline")
        createDescriptorPool = try f("vkCreateDescriptorPool")
        destroyDescriptorPool = try f("vkDestroyDescriptorPool")
        resetDescriptorPool = try f("vkResetDescriptorPool")
        allocateDescriptorSets = try f("vkAllocateDescriptorSets")
        updateDescriptorSets = try f("vkUpdateDescriptorSets")
        createCommandPool = try f("vkCreateCommandPool")
        destroyCommandPool = try f("vkDestroyCommandPool")
        allocateCommandBuffers = try f("vkAllocateCommandBuffers")
        beginCommandBuffer = try f("vkBeginCommandBuffer")
        endCommandBuffer = try f("vkEndCommandBuffer")
        resetCommandPool = try f("vkResetCommandPool")
        cmdBindPipeline = try f("vkCmdBindPipeline")
        cmdBindDescriptorSets = try f("vkCmdBindDescriptorSets")
        cmdPushConstants = try f("vkCmdPushConstants")
        cmdDispatch = try f("vkCmdDispatch")
        cmdPipelineBarrier = try f("vkCmdPipelineBarrier")
        cmdCopyBuffer = try f("vkCmdCopyBuffer")
        cmdFillBuffer = try f("vkCmdFillBuffer")
        cmdWriteTimestamp = try f("vkCmdWriteTimestamp")
        cmdResetQueryPool = try f("vkCmdResetQueryPool")
        createQueryPool = try f("vkCreateQueryPool")
        destroyQueryPool = try f("vkDestroyQueryPool")
        getQueryPoolResults = try f("vkGetQueryPoolResults")
        createFence = try f("vkCreateFence")
        destroyFence = try f("vkDestroyFence")
        waitForFences = try f("vkWaitForFences")
        resetFences = try f("vkResetFences")
        queueSubmit = try f("vkQueueSubmit")
    }
}
