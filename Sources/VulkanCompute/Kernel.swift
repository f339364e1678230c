import CVulkan

/// How a kernel uses each of its bindings; drives barrier placement and the descriptor type.
public enum BindingAccess: Sendable {
    /// Storage buffers.
    case read, write, readWrite
    /// Read-only, bound as a uniform texel buffer of 32-bit words (`usamplerBuffer`, R32_UINT)
    /// and read with texelFetch. lavapipe fetches texels with vector gathers, where it reads a
    /// storage buffer lane by lane; weights are bound this way.
    case texels
    /// Read-only, a uniform texel buffer of vec4 (`samplerBuffer`, R32G32B32A32_SFLOAT): four
    /// floats in one fetch. The bound size must be a whole number of 16-byte texels.
    case quads
    /// Read-only, a uniform texel buffer of uvec4 (`usamplerBuffer`, R32G32B32A32_UINT): four
    /// words in one fetch, which lavapipe loads as one 16-byte read per lane.
    case wordQuads
    var reads: Bool { self != .write }
    var writes: Bool { self == .write || self == .readWrite }
    var isTexelBuffer: Bool { self == .texels || self == .quads || self == .wordQuads }
    /// The bytes of one texel of a texel-buffer binding.
    public var texelBytes: Int { self == .quads || self == .wordQuads ? 16 : 4 }
    var texelFormat: VkFormat {
        switch self {
        case .quads: VK_FORMAT_R32G32B32A32_SFLOAT
        case .wordQuads: VK_FORMAT_R32G32B32A32_UINT
        default: VK_FORMAT_R32_UINT
        }
    }
    var descriptorType: VkDescriptorType {
        isTexelBuffer ? VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER
    }
}

struct KernelKey: Hashable {
    let name: String
    let specialization: [UInt32]
}

/// A compute pipeline built from SPIR-V: storage buffers at set 0, bindings 0…n-1, push
/// constants of one `PushConstants` struct, specialization constants 0…m-1 of 32 bits each.
public final class Kernel: @unchecked Sendable {
    public let name: String
    public let access: [BindingAccess]
    /// The push-constant struct this kernel takes, and its size in bytes.
    public let pushType: any PushConstants.Type
    public let pushConstantBytes: Int
    public let specialization: [UInt32]
    let pipeline: VkPipeline
    let layout: VkPipelineLayout
    let setLayout: VkDescriptorSetLayout

    init(name: String, access: [BindingAccess], pushType: any PushConstants.Type, pushConstantBytes: Int, specialization: [UInt32],
         pipeline: VkPipeline, layout: VkPipelineLayout, setLayout: VkDescriptorSetLayout) {
        self.name = name
        self.access = access
        self.pushType = pushType
        self.pushConstantBytes = pushConstantBytes
        self.specialization = specialization
        self.pipeline = pipeline
        self.layout = layout
        self.setLayout = setLayout
    }

    func destroy(_ fns: DeviceFunctions, _ handle: VkDevice) {
        fns.destroyPipeline(handle, pipeline, nil)
        fns.destroyPipelineLayout(handle, layout, nil)
        fns.destroyDescriptorSetLayout(handle, setLayout, nil)
    }
}

extension VulkanDevice {
    /// The names of the kernels built so far (which path an op took, for tests and diagnostics).
    public var builtKernelNames: Set<String> {
        lock.lock()
        defer { lock.unlock() }
        return Set(kernels.keys.map(\.name))
    }

    /// The pipeline for (`name`, `specialization`), created on first use and cached. `push` is the
    /// struct mirroring the shader's push-constant block; a size mismatch throws here.
    public func kernel<P: PushConstants>(name: String, spirv: [UInt32], access: [BindingAccess], push: P.Type,
                                         specialization: [UInt32] = []) throws -> Kernel {
        let key = KernelKey(name: name, specialization: specialization)
        lock.lock()
        defer { lock.unlock() }
        if let k = kernels[key] {
            guard k.pushType == P.self else { throw VulkanError("kernel \(name): built for push constants \(k.pushType), asked for \(P.self)") }
            return k
        }
        let bytes = MemoryLayout<P>.size
        let shaderBytes = try PushBlock(spirv: spirv)?.size ?? 0
        guard bytes == shaderBytes else {
            throw VulkanError("kernel \(name): \(P.self) is \(bytes) bytes, the shader's push-constant block \(shaderBytes)")
        }
        guard bytes <= limits.maxPushConstantsSize else {
            throw VulkanError("kernel \(name): \(bytes) bytes of push constants exceed the device's \(limits.maxPushConstantsSize)")
        }
        let k = try buildKernel(name: name, spirv: spirv, access: access, pushType: P.self, pushBytes: bytes, specialization: specialization)
        kernels[key] = k
        return k
    }

    /// Whether a pipeline of this module requires the reported subgroup size, and with full
    /// subgroups (true: its workgroup is a whole number of them). Nil, the driver's choice, where
    /// the device cannot pin a size or the workgroup would hold more subgroups than it allows.
    func subgroupPinning(spirv: [UInt32], specialization: [UInt32]) -> Bool? {
        let size = limits.subgroupSize
        guard pinsSubgroupSize, let width = workgroupWidth(spirv: spirv, specialization: specialization),
              width <= size * limits.maxComputeWorkgroupSubgroups else { return nil }
        return width % size == 0
    }

    private func buildKernel(name: String, spirv: [UInt32], access: [BindingAccess], pushType: any PushConstants.Type, pushBytes: Int,
                             specialization: [UInt32]) throws -> Kernel {
        var bindings = access.enumerated().map { i, a -> VkDescriptorSetLayoutBinding in
            var b = VkDescriptorSetLayoutBinding()
            b.binding = UInt32(i)
            b.descriptorType = a.descriptorType
            b.descriptorCount = 1
            b.stageFlags = VkShaderStageFlags(VK_SHADER_STAGE_COMPUTE_BIT.rawValue)
            return b
        }
        var setLayout: VkDescriptorSetLayout?
        try bindings.withUnsafeMutableBufferPointer { bp in
            var info = VkDescriptorSetLayoutCreateInfo()
            info.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO
            info.bindingCount = UInt32(bp.count)
            info.pBindings = UnsafePointer(bp.baseAddress)
            try VulkanError.check(fns.createDescriptorSetLayout(handle, &info, nil, &setLayout), "vkCreateDescriptorSetLayout(\(name))")
        }
        var range = VkPushConstantRange()
        range.stageFlags = VkShaderStageFlags(VK_SHADER_STAGE_COMPUTE_BIT.rawValue)
        range.size = UInt32(pushBytes)
        var layout: VkPipelineLayout?
        var sl: VkDescriptorSetLayout? = setLayout
        try withUnsafePointer(to: &sl) { slp in
            try withUnsafePointer(to: &range) { rp in
                var info = VkPipelineLayoutCreateInfo()
                info.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO
                info.setLayoutCount = 1
                info.pSetLayouts = slp
                info.pushConstantRangeCount = pushBytes > 0 ? 1 : 0
                info.pPushConstantRanges = rp
                try VulkanError.check(fns.createPipelineLayout(handle, &info, nil, &layout), "vkCreatePipelineLayout(\(name))")
            }
        }
        var module: VkShaderModule?
        try spirv.withUnsafeBufferPointer { code in
            var info = VkShaderModuleCreateInfo()
            info.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO
            info.codeSize = code.count * 4
            info.pCode = code.baseAddress
            try VulkanError.check(fns.createShaderModule(handle, &info, nil, &module), "vkCreateShaderModule(\(name))")
        }
        defer { fns.destroyShaderModule(handle, module, nil) }
        var entries = specialization.indices.map { i -> VkSpecializationMapEntry in
            VkSpecializationMapEntry(constantID: UInt32(i), offset: UInt32(i * 4), size: 4)
        }
        var data = specialization
        var pipeline: VkPipeline?
        let result: VkResult = "main".withCString { entry in
            entries.withUnsafeMutableBufferPointer { ep in
                data.withUnsafeMutableBytes { dp in
                    var spec = VkSpecializationInfo()
                    spec.mapEntryCount = UInt32(ep.count)
                    spec.pMapEntries = UnsafePointer(ep.baseAddress)
                    spec.dataSize = dp.count
                    spec.pData = UnsafeRawPointer(dp.baseAddress)
                    return withUnsafePointer(to: &spec) { specPtr in
                        var stage = VkPipelineShaderStageCreateInfo()
                        stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO
                        stage.stage = VK_SHADER_STAGE_COMPUTE_BIT
                        stage.module = module
                        stage.pName = entry
                        stage.pSpecializationInfo = specialization.isEmpty ? nil : specPtr
                        var required = VkPipelineShaderStageRequiredSubgroupSizeCreateInfoEXT()
                        required.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO_EXT
                        required.requiredSubgroupSize = UInt32(limits.subgroupSize)
                        return withUnsafePointer(to: &required) { req in
                            if let full = subgroupPinning(spirv: spirv, specialization: specialization) {
                                stage.pNext = UnsafeRawPointer(req)
                                if full {
                                    stage.flags = VkPipelineShaderStageCreateFlags(VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT_EXT.rawValue)
                                }
                            }
                            var info = VkComputePipelineCreateInfo()
                            info.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO
                            info.stage = stage
                            info.layout = layout
                            return fns.createComputePipelines(handle, nil, 1, &info, nil, &pipeline)
                        }
                    }
                }
            }
        }
        try VulkanError.check(result, "vkCreateComputePipelines(\(name))")
        return Kernel(name: name, access: access, pushType: pushType, pushConstantBytes: pushBytes, specialization: specialization,
                      pipeline: pipeline!, layout: layout!, setLayout: setLayout!)
    }
}
