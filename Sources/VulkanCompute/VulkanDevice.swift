import CVulkan
import Foundation

/// One logical Vulkan device with a compute queue: owns memory, kernels and streams.
/// Everything here knows nothing about language models.
public final class VulkanDevice: @unchecked Sendable {
    public let info: DeviceInfo
    public var limits: DeviceLimits { info.limits }
    let instance: VulkanInstance
    let physical: VkPhysicalDevice
    let handle: VkDevice
    let fns: DeviceFunctions
    let queue: VkQueue
    let queueFamily: UInt32
    let memoryTypes: MemoryTypes
    let lock = NSLock()
    var arenas: [MemoryArena] = []
    /// Arenas in the host's cached memory, for results the host reads every step (`allocate(_:readback:)`).
    var readbackArenas: [MemoryArena] = []
    var kernels: [KernelKey: Kernel] = [:]
    /// Views for texel-buffer bindings, by (arena, offset, size, format). Arenas live as long as the
    /// device, so a view stays valid whatever is later allocated in its range.
    var texelViews: [TexelViewKey: VkBufferView] = [:]
    var stagingBuffer: StagingBuffer?
    var readbackBuffer: StagingBuffer?
    let stagingLock = NSLock()
    /// Reads that went through `readbackBuffer` (a GPU copy into cached host memory).
    public internal(set) var stagedReads = 0
    /// Tests: treat every mapped arena as uncached, so lavapipe takes the discrete GPU's readback path.
    var uncachedReadsForTesting = false
    /// The f16 cooperative-matrix shapes enabled on this device (VK_NV_cooperative_matrix with
    /// shaderFloat16 and vulkanMemoryModel): the device's list, or none where it has none or
    /// `ROAST_COOPMAT=0` turned them off.
    public let cooperativeMatrix: [CooperativeMatrixShape]
    /// Every pipeline requires the reported subgroup size (`limits.subgroupSize`), with full
    /// subgroups where its workgroup divides into them: the device has VK_EXT_subgroup_size_control
    /// (`DeviceLimits.subgroupSizeControl`), which this device enabled.
    public let pinsSubgroupSize: Bool

    /// Whether the validation layer is on (tests and `ROAST_VALIDATION=1`).
    public var validationEnabled: Bool
    /// Validation-layer warnings and errors seen so far.
    public var validationMessages: [String] { instance.log.all }

    /// Lists every Vulkan device with its limits, in the order of preference.
    public static func list() throws -> [DeviceInfo] {
        let instance = try VulkanInstance(validation: false)
        return try instance.physicalDevices().enumerated().map { instance.info(of: $0.element, index: $0.offset) }
    }

    /// Opens device `index` (else `ROAST_DEVICE`, else the first discrete GPU, integrated GPU,
    /// then CPU device). `validation` defaults to `ROAST_VALIDATION=1`. `forceStaging` ignores
    /// host-mappable device memory, taking the discrete-GPU path (staging copies) anywhere.
    public init(index: Int? = nil, validation: Bool? = nil, forceStaging: Bool = false) throws {
        let env = ProcessInfo.processInfo.environment
        let validate = validation ?? (env["ROAST_VALIDATION"] == "1")
        let instance = try VulkanInstance(validation: validate)
        self.instance = instance
        validationEnabled = validate
        let devices = try instance.physicalDevices()
        guard !devices.isEmpty else {
            throw VulkanError("no Vulkan device found: install a driver (Debian/Ubuntu: apt-get install mesa-vulkan-drivers gives the CPU device lavapipe)")
        }
        let infos = devices.enumerated().map { instance.info(of: $0.element, index: $0.offset) }
        var chosen: Int
        if let i = index ?? env["ROAST_DEVICE"].flatMap({ Int($0) }) {
            guard infos.indices.contains(i) else {
                throw VulkanError("device \(i) does not exist: \(infos.count) Vulkan device(s), numbered 0–\(infos.count - 1) (see `roast devices`)")
            }
            chosen = i
        } else {
            chosen = infos.min { ($0.kind.preference, $0.index) < ($1.kind.preference, $1.index) }!.index
        }
        if env["ROAST_DEVICE"].map({ Int($0) == nil }) == true, index == nil {
            throw VulkanError("ROAST_DEVICE=\(env["ROAST_DEVICE"]!) is not a device number (see `roast devices`)")
        }
        let physical = devices[chosen]
        self.physical = physical
        info = infos[chosen]
        guard let family = instance.computeQueueFamily(physical) else {
            throw VulkanError("device \(infos[chosen].name) has no compute queue")
        }
        queueFamily = family.index
        var mem = VkPhysicalDeviceMemoryProperties()
        instance.fns.getPhysicalDeviceMemoryProperties(physical, &mem)
        var types = MemoryTypes(mem)
        if forceStaging { types.unifiedType = nil }
        memoryTypes = types

        // Matrix units: the extension and the two Vulkan 1.2 features the kernel's SPIR-V declares.
        let coop = env["ROAST_COOPMAT"] == "0" ? [] : infos[chosen].cooperativeMatrix
        cooperativeMatrix = coop
        // Subgroup size control: the host plans every kernel for the reported width, and the
        // decode attention kernel's workgroup is exactly one subgroup of it.
        pinsSubgroupSize = infos[chosen].limits.subgroupSizeControl
        let extensions = (coop.isEmpty ? [] : [VulkanInstance.cooperativeMatrixExtension])
            + (pinsSubgroupSize ? [VulkanInstance.subgroupSizeControlExtension] : [])
        // The features enabled, as a pNext chain: Vulkan 1.2's shaderFloat16 and vulkanMemoryModel
        // with the matrix units' own where there are matrix units, then the size control.
        let v12 = UnsafeMutablePointer<VkPhysicalDeviceVulkan12Features>.allocate(capacity: 1)
        let coopFeatures = UnsafeMutablePointer<VkPhysicalDeviceCooperativeMatrixFeaturesNV>.allocate(capacity: 1)
        let sizeControl = UnsafeMutablePointer<VkPhysicalDeviceSubgroupSizeControlFeaturesEXT>.allocate(capacity: 1)
        defer { v12.deallocate(); coopFeatures.deallocate(); sizeControl.deallocate() }
        var chain: UnsafeMutableRawPointer?
        if pinsSubgroupSize {
            sizeControl.initialize(to: VkPhysicalDeviceSubgroupSizeControlFeaturesEXT())
            sizeControl.pointee.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES_EXT
            sizeControl.pointee.subgroupSizeControl = VkBool32(VK_TRUE)
            sizeControl.pointee.computeFullSubgroups = VkBool32(VK_TRUE)
            chain = UnsafeMutableRawPointer(sizeControl)
        }
        if !coop.isEmpty {
            coopFeatures.initialize(to: VkPhysicalDeviceCooperativeMatrixFeaturesNV())
            coopFeatures.pointee.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV
            coopFeatures.pointee.cooperativeMatrix = VkBool32(VK_TRUE)
            coopFeatures.pointee.pNext = chain
            v12.initialize(to: VkPhysicalDeviceVulkan12Features())
            v12.pointee.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES
            v12.pointee.shaderFloat16 = VkBool32(VK_TRUE)
            v12.pointee.vulkanMemoryModel = VkBool32(VK_TRUE)
            v12.pointee.pNext = UnsafeMutableRawPointer(coopFeatures)
            chain = UnsafeMutableRawPointer(v12)
        }
        var priority: Float = 1
        var device: VkDevice?
        let result = withUnsafePointer(to: &priority) { prio in
            var q = VkDeviceQueueCreateInfo()
            q.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO
            q.queueFamilyIndex = family.index
            q.queueCount = 1
            q.pQueuePriorities = prio
            return withUnsafePointer(to: &q) { qp in
                withCStrings(extensions) { extPtrs in
                    var info = VkDeviceCreateInfo()
                    info.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO
                    info.queueCreateInfoCount = 1
                    info.pQueueCreateInfos = qp
                    info.enabledExtensionCount = UInt32(extensions.count)
                    info.ppEnabledExtensionNames = extPtrs
                    info.pNext = UnsafeRawPointer(chain)
                    return instance.fns.createDevice(physical, &info, nil, &device)
                }
            }
        }
        try VulkanError.check(result, "vkCreateDevice(\(infos[chosen].name))")
        handle = device!
        fns = try DeviceFunctions(instance.fns.getDeviceProcAddr, handle)
        var q: VkQueue?
        fns.getDeviceQueue(handle, family.index, 0, &q)
        queue = q!
    }

    deinit {
        _ = fns.deviceWaitIdle(handle)
        for k in kernels.values { k.destroy(fns, handle) }
        kernels.removeAll()
        for v in texelViews.values { fns.destroyBufferView(handle, v, nil) }
        stagingBuffer?.destroy(fns, handle)
        readbackBuffer?.destroy(fns, handle)
        for a in arenas + readbackArenas { a.destroy(fns, handle) }
        fns.destroyDevice(handle, nil)
    }

    /// The texel view of a slice in `format`, created on first use and cached.
    func texelView(_ s: BufferSlice, format: VkFormat) throws -> VkBufferView {
        let key = TexelViewKey(arena: s.arenaID, offset: s.absoluteOffset, size: s.size, format: format.rawValue)
        lock.lock()
        defer { lock.unlock() }
        if let v = texelViews[key] { return v }
        var info = VkBufferViewCreateInfo()
        info.sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO
        info.buffer = s.buffer
        info.format = format
        info.offset = VkDeviceSize(s.absoluteOffset)
        info.range = VkDeviceSize(s.size)
        var view: VkBufferView?
        try VulkanError.check(fns.createBufferView(handle, &info, nil, &view), "vkCreateBufferView(\(s.size) bytes)")
        texelViews[key] = view!
        return view!
    }

    /// Whether host reads and writes go through a staging buffer (device memory not mappable).
    public var usesStaging: Bool { memoryTypes.unifiedType == nil }

    /// Waits until the device has finished everything submitted.
    public func waitIdle() throws { try VulkanError.check(fns.deviceWaitIdle(handle), "vkDeviceWaitIdle") }
}

struct TexelViewKey: Hashable {
    let arena: ObjectIdentifier
    let offset: Int
    let size: Int
    let format: UInt32
}
