import CVulkan
import Foundation

/// What kind of device a physical device is, in the order `VulkanDevice` prefers them.
public enum DeviceKind: String, Codable, Sendable {
    case discrete, integrated, virtual, cpu, other

    var preference: Int {
        switch self { case .discrete: 0; case .integrated: 1; case .virtual: 2; case .cpu: 3; case .other: 4 }
    }

    init(_ t: VkPhysicalDeviceType) {
        switch t {
        case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: self = .discrete
        case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: self = .integrated
        case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: self = .virtual
        case VK_PHYSICAL_DEVICE_TYPE_CPU: self = .cpu
        default: self = .other
        }
    }
}

/// Limits read from the device; nothing in the engine assumes them.
public struct DeviceLimits: Codable, Sendable {
    public var maxStorageBufferRange: Int
    public var minStorageBufferOffsetAlignment: Int
    /// Texel buffers (the `texels` bindings): the most 32-bit texels one view covers, and the
    /// alignment of a view's offset.
    public var maxTexelBufferElements: Int
    public var minTexelBufferOffsetAlignment: Int
    public var maxComputeSharedMemorySize: Int
    public var maxComputeWorkGroupCount: [Int]
    public var maxComputeWorkGroupSize: [Int]
    public var maxComputeWorkGroupInvocations: Int
    public var maxPushConstantsSize: Int
    /// The subgroup size the driver reports, which the host plans with (workgroups of whole
    /// subgroups, lanes per row). Where the driver may run compute shaders at other widths
    /// (Intel's SIMD8/16/32, AMD's wave32/64: minSubgroupSize < maxSubgroupSize), every pipeline
    /// requires this size through VK_EXT_subgroup_size_control (`subgroupSizeControl`).
    public var subgroupSize: Int
    /// The widths the driver may choose (both `subgroupSize` without VK_EXT_subgroup_size_control).
    public var minSubgroupSize: Int = 0
    public var maxSubgroupSize: Int = 0
    /// The device lets a compute pipeline require a subgroup size and full subgroups
    /// (VK_EXT_subgroup_size_control with its two features and compute among its stages).
    public var subgroupSizeControl = false
    /// The most subgroups one workgroup may hold under a required size.
    public var maxComputeWorkgroupSubgroups: Int = 0
    /// subgroupAdd and friends in compute shaders.
    public var subgroupArithmetic: Bool
    /// subgroupShuffle in compute shaders.
    public var subgroupShuffle: Bool
    public var timestamps: Bool
    public var timestampPeriodNs: Double
    /// Device-local memory the host can map directly (lavapipe, unified memory, ReBAR).
    public var hostVisibleDeviceLocal: Bool
    /// That memory is read by the CPU through its caches; where not (a discrete GPU's BAR), large
    /// reads go through a copy into cached host memory (VulkanDevice.read).
    public var hostCachedDeviceLocal: Bool
    public var deviceLocalBytes: Int
}

/// A matrix-unit shape a device lists for f16 × f16 + f32 → f32 at subgroup scope
/// (VK_NV_cooperative_matrix): an m × k matrix times a k × n one.
public struct CooperativeMatrixShape: Codable, Sendable, Hashable, CustomStringConvertible {
    public var m: Int
    public var n: Int
    public var k: Int
    public init(m: Int, n: Int, k: Int) { (self.m, self.n, self.k) = (m, n, k) }
    public var description: String { "\(m)×\(n)×\(k)" }
}

public struct DeviceInfo: Codable, Sendable {
    public var index: Int
    public var name: String
    public var kind: DeviceKind
    /// PCI vendor id (0x10DE NVIDIA, 0x1002 AMD, 0x8086 Intel, 0x10005 Mesa's software devices).
    public var vendorID: UInt32
    public var apiVersion: String
    public var limits: DeviceLimits
    /// The f16 cooperative-matrix shapes compute shaders can use: empty unless the device has
    /// VK_NV_cooperative_matrix for compute with the shaderFloat16 and vulkanMemoryModel features
    /// the kernel needs (Shaders/matmul_coopmat.comp).
    public var cooperativeMatrix: [CooperativeMatrixShape] = []
}

/// Messages of the Khronos validation layer, collected from its callback thread.
final class ValidationLog: @unchecked Sendable {
    private let lock = NSLock()
    private var messages: [String] = []
    func append(_ m: String) { lock.lock(); messages.append(m); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return messages }
}

/// A Vulkan instance (optionally with the validation layer and its messenger).
final class VulkanInstance {
    let handle: VkInstance
    let fns: InstanceFunctions
    let log = ValidationLog()
    private var messenger: VkDebugUtilsMessengerEXT?

    init(validation: Bool) throws {
        let loader = try VulkanLoader.shared.get()
        let enumerateLayers: PFN_vkEnumerateInstanceLayerProperties =
            try loader.load(nil, "vkEnumerateInstanceLayerProperties")
        let createInstance: PFN_vkCreateInstance = try loader.load(nil, "vkCreateInstance")
        var layers: [String] = []
        var extensions: [String] = []
        if validation {
            var count: UInt32 = 0
            _ = enumerateLayers(&count, nil)
            var props = [VkLayerProperties](repeating: VkLayerProperties(), count: Int(count))
            _ = enumerateLayers(&count, &props)
            let names = props.map { p in withUnsafeBytes(of: p.layerName) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) } }
            guard names.contains("VK_LAYER_KHRONOS_validation") else {
                throw VulkanError("validation requested but VK_LAYER_KHRONOS_validation is not installed (Debian/Ubuntu: apt-get install vulkan-validationlayers)")
            }
            layers = ["VK_LAYER_KHRONOS_validation"]
            extensions = ["VK_EXT_debug_utils"]
        }
        var instance: VkInstance?
        let result: VkResult = withCStrings(layers) { layerPtrs in
            withCStrings(extensions) { extPtrs in
                "roast".withCString { appName in
                    var app = VkApplicationInfo()
                    app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO
                    app.pApplicationName = appName
                    app.pEngineName = appName
                    app.apiVersion = roast_vk_make_api_version(0, 1, 2, 0)
                    return withUnsafePointer(to: &app) { appPtr in
                        var info = VkInstanceCreateInfo()
                        info.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO
                        info.pApplicationInfo = appPtr
                        info.enabledLayerCount = UInt32(layers.count)
                        info.ppEnabledLayerNames = layerPtrs
                        info.enabledExtensionCount = UInt32(extensions.count)
                        info.ppEnabledExtensionNames = extPtrs
                        return createInstance(&info, nil, &instance)
                    }
                }
            }
        }
        if result == VK_ERROR_INCOMPATIBLE_DRIVER || result == VK_ERROR_INITIALIZATION_FAILED {
            throw VulkanError("no Vulkan driver found: install one (Debian/Ubuntu: apt-get install mesa-vulkan-drivers for the CPU driver lavapipe)")
        }
        try VulkanError.check(result, "vkCreateInstance")
        handle = instance!
        fns = try InstanceFunctions(loader, handle, debugUtils: validation)
        if validation { try installMessenger() }
    }

    private func installMessenger() throws {
        var info = VkDebugUtilsMessengerCreateInfoEXT()
        info.sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT
        info.messageSeverity = VkDebugUtilsMessageSeverityFlagsEXT(
            VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT.rawValue | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT.rawValue)
        info.messageType = VkDebugUtilsMessageTypeFlagsEXT(
            VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT.rawValue | VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT.rawValue)
        info.pfnUserCallback = { severity, _, data, user in
            let text = data.flatMap { $0.pointee.pMessage.map { String(cString: $0) } } ?? "(no message)"
            let log = Unmanaged<ValidationLog>.fromOpaque(user!).takeUnretainedValue()
            let level = severity == VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT ? "error" : "warning"
            log.append("validation \(level): \(text)")
            return VkBool32(VK_FALSE)
        }
        info.pUserData = Unmanaged.passUnretained(log).toOpaque()
        var m: VkDebugUtilsMessengerEXT?
        try VulkanError.check(fns.createDebugUtilsMessenger!(handle, &info, nil, &m), "vkCreateDebugUtilsMessengerEXT")
        messenger = m
    }

    func physicalDevices() throws -> [VkPhysicalDevice] {
        var count: UInt32 = 0
        try VulkanError.check(fns.enumeratePhysicalDevices(handle, &count, nil), "vkEnumeratePhysicalDevices")
        var devices = [VkPhysicalDevice?](repeating: nil, count: Int(count))
        try VulkanError.check(fns.enumeratePhysicalDevices(handle, &count, &devices), "vkEnumeratePhysicalDevices")
        return devices.compactMap { $0 }
    }

    func info(of pd: VkPhysicalDevice, index: Int) -> DeviceInfo {
        var subgroup = VkPhysicalDeviceSubgroupProperties()
        subgroup.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES
        let p = properties(pd, chaining: &subgroup)
        let l = p.limits
        let name = withUnsafeBytes(of: p.deviceName) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        var mem = VkPhysicalDeviceMemoryProperties()
        fns.getPhysicalDeviceMemoryProperties(pd, &mem)
        let memory = MemoryTypes(mem)
        let queue = computeQueueFamily(pd)
        let limits = DeviceLimits(
            maxStorageBufferRange: Int(l.maxStorageBufferRange),
            minStorageBufferOffsetAlignment: Int(l.minStorageBufferOffsetAlignment),
            maxTexelBufferElements: Int(l.maxTexelBufferElements),
            minTexelBufferOffsetAlignment: Int(l.minTexelBufferOffsetAlignment),
            maxComputeSharedMemorySize: Int(l.maxComputeSharedMemorySize),
            maxComputeWorkGroupCount: [Int(l.maxComputeWorkGroupCount.0), Int(l.maxComputeWorkGroupCount.1), Int(l.maxComputeWorkGroupCount.2)],
            maxComputeWorkGroupSize: [Int(l.maxComputeWorkGroupSize.0), Int(l.maxComputeWorkGroupSize.1), Int(l.maxComputeWorkGroupSize.2)],
            maxComputeWorkGroupInvocations: Int(l.maxComputeWorkGroupInvocations),
            maxPushConstantsSize: Int(l.maxPushConstantsSize),
            subgroupSize: Int(subgroup.subgroupSize),
            subgroupArithmetic: subgroup.supportedOperations & VkSubgroupFeatureFlags(VK_SUBGROUP_FEATURE_ARITHMETIC_BIT.rawValue) != 0
                && subgroup.supportedStages & VkShaderStageFlags(VK_SHADER_STAGE_COMPUTE_BIT.rawValue) != 0,
            subgroupShuffle: subgroup.supportedOperations & VkSubgroupFeatureFlags(VK_SUBGROUP_FEATURE_SHUFFLE_BIT.rawValue) != 0
                && subgroup.supportedStages & VkShaderStageFlags(VK_SHADER_STAGE_COMPUTE_BIT.rawValue) != 0,
            timestamps: (queue?.timestampValidBits ?? 0) > 0,
            timestampPeriodNs: Double(l.timestampPeriod),
            hostVisibleDeviceLocal: memory.unifiedType != nil,
            hostCachedDeviceLocal: memory.unifiedType.map(memory.isCached) ?? false,
            deviceLocalBytes: memory.deviceLocalBytes)
        var limitsWithSizes = limits
        subgroupSizes(pd, into: &limitsWithSizes)
        let v = p.apiVersion
        return DeviceInfo(index: index, name: name, kind: DeviceKind(p.deviceType), vendorID: p.vendorID,
                          apiVersion: "\(roast_vk_api_version_major(v)).\(roast_vk_api_version_minor(v)).\(roast_vk_api_version_patch(v))",
                          limits: limitsWithSizes, cooperativeMatrix: cooperativeMatrixShapes(pd, apiVersion: v))
    }

    /// vkGetPhysicalDeviceProperties2 with one extension struct (its sType set) chained and filled.
    func properties<T>(_ pd: VkPhysicalDevice, chaining ext: inout T) -> VkPhysicalDeviceProperties {
        var props2 = VkPhysicalDeviceProperties2()
        props2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2
        withUnsafeMutablePointer(to: &ext) { e in
            props2.pNext = UnsafeMutableRawPointer(e)
            fns.getPhysicalDeviceProperties2(pd, &props2)
        }
        return props2.properties
    }

    /// vkGetPhysicalDeviceFeatures2 with one extension struct (its sType set, and its own pNext
    /// chain if any) chained and filled.
    func features<T>(_ pd: VkPhysicalDevice, chaining ext: inout T) {
        var features = VkPhysicalDeviceFeatures2()
        features.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2
        withUnsafeMutablePointer(to: &ext) { e in
            features.pNext = UnsafeMutableRawPointer(e)
            fns.getPhysicalDeviceFeatures2(pd, &features)
        }
    }

    func extensionNames(_ pd: VkPhysicalDevice) -> Set<String> {
        var count: UInt32 = 0
        guard fns.enumerateDeviceExtensionProperties(pd, nil, &count, nil) == VK_SUCCESS else { return [] }
        var props = [VkExtensionProperties](repeating: VkExtensionProperties(), count: Int(count))
        guard fns.enumerateDeviceExtensionProperties(pd, nil, &count, &props) == VK_SUCCESS else { return [] }
        return Set(props.prefix(Int(count)).map { p in
            withUnsafeBytes(of: p.extensionName) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        })
    }

    static let subgroupSizeControlExtension = "VK_EXT_subgroup_size_control"

    /// The subgroup widths the driver may pick, and whether a pipeline can require one
    /// (VK_EXT_subgroup_size_control: its properties, its two features, compute among its stages).
    func subgroupSizes(_ pd: VkPhysicalDevice, into l: inout DeviceLimits) {
        (l.minSubgroupSize, l.maxSubgroupSize) = (l.subgroupSize, l.subgroupSize)
        guard extensionNames(pd).contains(Self.subgroupSizeControlExtension) else { return }
        var props = VkPhysicalDeviceSubgroupSizeControlPropertiesEXT()
        props.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES_EXT
        _ = properties(pd, chaining: &props)
        var control = VkPhysicalDeviceSubgroupSizeControlFeaturesEXT()
        control.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES_EXT
        features(pd, chaining: &control)
        guard props.minSubgroupSize > 0, props.minSubgroupSize <= props.maxSubgroupSize else { return }
        (l.minSubgroupSize, l.maxSubgroupSize) = (Int(props.minSubgroupSize), Int(props.maxSubgroupSize))
        l.maxComputeWorkgroupSubgroups = Int(props.maxComputeWorkgroupSubgroups)
        l.subgroupSizeControl = control.subgroupSizeControl != 0 && control.computeFullSubgroups != 0
            && props.requiredSubgroupSizeStages & VkShaderStageFlags(VK_SHADER_STAGE_COMPUTE_BIT.rawValue) != 0
            && (l.minSubgroupSize...l.maxSubgroupSize).contains(l.subgroupSize)
    }

    static let cooperativeMatrixExtension = "VK_NV_cooperative_matrix"

    /// The f16 · f16 + f32 subgroup shapes of VK_NV_cooperative_matrix, where compute shaders can
    /// use them together with 16-bit floats and the Vulkan memory model (both Vulkan 1.2 features).
    func cooperativeMatrixShapes(_ pd: VkPhysicalDevice, apiVersion: UInt32) -> [CooperativeMatrixShape] {
        guard roast_vk_api_version_major(apiVersion) > 1 || roast_vk_api_version_minor(apiVersion) >= 2,
              let listShapes = fns.getPhysicalDeviceCooperativeMatrixPropertiesNV,
              extensionNames(pd).contains(Self.cooperativeMatrixExtension) else { return [] }
        var coop = VkPhysicalDeviceCooperativeMatrixFeaturesNV()
        coop.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV
        var v12 = VkPhysicalDeviceVulkan12Features()
        v12.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES
        withUnsafeMutablePointer(to: &coop) { cp in
            v12.pNext = UnsafeMutableRawPointer(cp)
            features(pd, chaining: &v12)
        }
        var stages = VkPhysicalDeviceCooperativeMatrixPropertiesNV()
        stages.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_PROPERTIES_NV
        _ = properties(pd, chaining: &stages)
        guard coop.cooperativeMatrix != 0, v12.shaderFloat16 != 0, v12.vulkanMemoryModel != 0,
              stages.cooperativeMatrixSupportedStages & VkShaderStageFlags(VK_SHADER_STAGE_COMPUTE_BIT.rawValue) != 0 else { return [] }
        var count: UInt32 = 0
        guard listShapes(pd, &count, nil) == VK_SUCCESS, count > 0 else { return [] }
        var blank = VkCooperativeMatrixPropertiesNV()
        blank.sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV
        var shapes = [VkCooperativeMatrixPropertiesNV](repeating: blank, count: Int(count))
        guard listShapes(pd, &count, &shapes) == VK_SUCCESS else { return [] }
        let f16 = VK_COMPONENT_TYPE_FLOAT16_NV, f32 = VK_COMPONENT_TYPE_FLOAT32_NV
        return shapes.prefix(Int(count))
            .filter { $0.AType == f16 && $0.BType == f16 && $0.CType == f32 && $0.DType == f32 && $0.scope == VK_SCOPE_SUBGROUP_NV }
            .map { CooperativeMatrixShape(m: Int($0.MSize), n: Int($0.NSize), k: Int($0.KSize)) }
    }

    func computeQueueFamily(_ pd: VkPhysicalDevice) -> (index: UInt32, timestampValidBits: UInt32)? {
        var count: UInt32 = 0
        fns.getPhysicalDeviceQueueFamilyProperties(pd, &count, nil)
        var families = [VkQueueFamilyProperties](repeating: VkQueueFamilyProperties(), count: Int(count))
        fns.getPhysicalDeviceQueueFamilyProperties(pd, &count, &families)
        let compute = VkQueueFlags(VK_QUEUE_COMPUTE_BIT.rawValue)
        // Prefer a compute-only family (async compute on discrete GPUs), else any with compute.
        let graphics = VkQueueFlags(VK_QUEUE_GRAPHICS_BIT.rawValue)
        let order = families.indices.sorted { (families[$0].queueFlags & graphics) < (families[$1].queueFlags & graphics) }
        for i in order where families[i].queueFlags & compute != 0 {
            return (UInt32(i), families[i].timestampValidBits)
        }
        return nil
    }

    deinit {
        if let m = messenger { fns.destroyDebugUtilsMessenger?(handle, m, nil) }
        fns.destroyInstance(handle, nil)
    }
}

/// Memory type choices: unified (device-local + host-visible + coherent) where the device has a
/// large one, else device-local plus host-visible staging.
struct MemoryTypes {
    var unifiedType: UInt32?
    var deviceLocalType: UInt32?
    var hostType: UInt32?
    /// Host memory the CPU reads through its caches (HOST_CACHED): where readbacks land on a
    /// discrete GPU, whose mapped device-local memory the CPU reads uncached, across PCIe.
    var readbackType: UInt32?
    /// Each type's VkMemoryPropertyFlags.
    var flags: [UInt32] = []
    var deviceLocalBytes = 0

    /// Whether the CPU reads memory of type `i` through its caches.
    func isCached(_ i: UInt32) -> Bool {
        Int(i) < flags.count && flags[Int(i)] & VK_MEMORY_PROPERTY_HOST_CACHED_BIT.rawValue != 0
    }

    init(_ m: VkPhysicalDeviceMemoryProperties) {
        let types = withUnsafeBytes(of: m.memoryTypes) { Array($0.bindMemory(to: VkMemoryType.self).prefix(Int(m.memoryTypeCount))) }
        let heaps = withUnsafeBytes(of: m.memoryHeaps) { Array($0.bindMemory(to: VkMemoryHeap.self).prefix(Int(m.memoryHeapCount))) }
        let DL = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT.rawValue
        let HV = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT.rawValue
        let HC = VK_MEMORY_PROPERTY_HOST_COHERENT_BIT.rawValue
        let CA = VK_MEMORY_PROPERTY_HOST_CACHED_BIT.rawValue
        flags = types.map { $0.propertyFlags }
        deviceLocalBytes = heaps.filter { $0.flags & VkMemoryHeapFlags(VK_MEMORY_HEAP_DEVICE_LOCAL_BIT.rawValue) != 0 }
            .map { Int($0.size) }.max() ?? 0
        for (i, t) in types.enumerated() {
            let f = t.propertyFlags
            let heapSize = Int(heaps[Int(t.heapIndex)].size)
            // A small DL+HV heap is the 256 MiB BAR window of a discrete GPU without ReBAR.
            if unifiedType == nil, f & (DL | HV | HC) == (DL | HV | HC), heapSize >= max(deviceLocalBytes / 2, 1 << 30) {
                unifiedType = UInt32(i)
            }
            if deviceLocalType == nil, f & DL != 0 { deviceLocalType = UInt32(i) }
            if hostType == nil, f & (HV | HC) == (HV | HC) { hostType = UInt32(i) }
            if readbackType == nil, f & (HV | HC | CA) == (HV | HC | CA) { readbackType = UInt32(i) }
        }
    }
}

/// Deterministic C strings for the length of `body`.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
    let owned = strings.map { strdup($0) }
    defer { owned.forEach { free($0) } }
    let ptrs = owned.map { UnsafePointer<CChar>($0) }
    return ptrs.withUnsafeBufferPointer { body($0.baseAddress) }
}
