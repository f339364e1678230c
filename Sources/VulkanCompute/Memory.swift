import CVulkan
import Foundation

/// One VkDeviceMemory with one VkBuffer over all of it, carved into sub-allocations (first fit,
/// coalescing on release). Tensors live in these; descriptors bind (offset, range) windows.
final class MemoryArena {
    unowned let device: VulkanDevice
    let buffer: VkBuffer
    let memory: VkDeviceMemory
    let size: Int
    let mapped: UnsafeMutableRawPointer?
    /// Mapped, and read by the CPU through its caches (lavapipe, most integrated GPUs); a
    /// discrete GPU's mapped device-local memory is not: reads cross PCIe uncached.
    let cachedReads: Bool
    /// In the host's cached memory on purpose (`VulkanDevice.allocate(_:readback:)`).
    var readback = false
    private var free: [(offset: Int, size: Int)]

    init(device: VulkanDevice, size: Int, memoryType: UInt32, hostVisible: Bool,
         usage: UInt32 = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT.rawValue | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT.rawValue | VK_BUFFER_USAGE_TRANSFER_SRC_BIT.rawValue | VK_BUFFER_USAGE_TRANSFER_DST_BIT.rawValue) throws {
        self.device = device
        self.size = size
        let fns = device.fns
        var info = VkBufferCreateInfo()
        info.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO
        info.size = VkDeviceSize(size)
        info.usage = VkBufferUsageFlags(usage)
        info.sharingMode = VK_SHARING_MODE_EXCLUSIVE
        var b: VkBuffer?
        try VulkanError.check(fns.createBuffer(device.handle, &info, nil, &b), "vkCreateBuffer(\(size) bytes)")
        var req = VkMemoryRequirements()
        fns.getBufferMemoryRequirements(device.handle, b!, &req)
        guard req.memoryTypeBits & (1 << memoryType) != 0 else {
            fns.destroyBuffer(device.handle, b!, nil)
            throw VulkanError("no suitable memory type for storage buffers on \(device.info.name)")
        }
        var alloc = VkMemoryAllocateInfo()
        alloc.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO
        alloc.allocationSize = req.size
        alloc.memoryTypeIndex = memoryType
        var m: VkDeviceMemory?
        let r = fns.allocateMemory(device.handle, &alloc, nil, &m)
        if r.rawValue < 0 { fns.destroyBuffer(device.handle, b!, nil) }
        try VulkanError.check(r, "vkAllocateMemory(\(size) bytes)")
        try VulkanError.check(fns.bindBufferMemory(device.handle, b!, m!, 0), "vkBindBufferMemory")
        var ptr: UnsafeMutableRawPointer?
        if hostVisible {
            try VulkanError.check(fns.mapMemory(device.handle, m!, 0, VkDeviceSize(VK_WHOLE_SIZE), 0, &ptr), "vkMapMemory")
        }
        buffer = b!
        memory = m!
        mapped = ptr
        cachedReads = ptr != nil && device.memoryTypes.isCached(memoryType)
        free = [(0, size)]
    }

    func allocate(_ bytes: Int, alignment: Int) -> Int? {
        for (i, block) in free.enumerated() {
            let start = (block.offset + alignment - 1) / alignment * alignment
            let end = start + bytes
            guard end <= block.offset + block.size else { continue }
            var pieces: [(offset: Int, size: Int)] = []
            if start > block.offset { pieces.append((block.offset, start - block.offset)) }
            if end < block.offset + block.size { pieces.append((end, block.offset + block.size - end)) }
            free.replaceSubrange(i...i, with: pieces)
            return start
        }
        return nil
    }

    func release(offset: Int, size: Int) {
        let i = free.firstIndex { $0.offset > offset } ?? free.count
        free.insert((offset, size), at: i)
        // Coalesce with the neighbours.
        if i + 1 < free.count, free[i].offset + free[i].size == free[i + 1].offset {
            free[i].size += free[i + 1].size
            free.remove(at: i + 1)
        }
        if i > 0, free[i - 1].offset + free[i - 1].size == free[i].offset {
            free[i - 1].size += free[i].size
            free.remove(at: i)
        }
    }

    var isEmpty: Bool { free.count == 1 && free[0].size == size }

    /// Called from the device's deinit, where `device` can no longer be loaded.
    func destroy(_ fns: DeviceFunctions, _ handle: VkDevice) {
        if mapped != nil { fns.unmapMemory(handle, memory) }
        fns.destroyBuffer(handle, buffer, nil)
        fns.freeMemory(handle, memory, nil)
    }
}

/// A sub-allocation of device memory. Keeps its device alive; returns its range when released.
public final class DeviceAllocation: @unchecked Sendable {
    public let device: VulkanDevice
    let arena: MemoryArena
    /// Byte offset inside the arena's VkBuffer.
    let offset: Int
    public let size: Int

    init(device: VulkanDevice, arena: MemoryArena, offset: Int, size: Int) {
        self.device = device
        self.arena = arena
        self.offset = offset
        self.size = size
    }

    deinit {
        device.lock.lock()
        arena.release(offset: offset, size: max(size, 4))
        device.lock.unlock()
    }

    /// The whole allocation as a bindable slice.
    public var slice: BufferSlice { BufferSlice(allocation: self, offset: 0, size: size) }
}

/// A byte range of an allocation: what a kernel binding points at.
public struct BufferSlice: @unchecked Sendable {
    public let allocation: DeviceAllocation
    public let offset: Int
    public let size: Int

    public init(allocation: DeviceAllocation, offset: Int, size: Int) {
        precondition(offset >= 0 && size >= 0 && offset + size <= allocation.size, "slice out of its allocation")
        self.allocation = allocation
        self.offset = offset
        self.size = size
    }

    public func subslice(offset: Int, size: Int) -> BufferSlice {
        BufferSlice(allocation: allocation, offset: self.offset + offset, size: size)
    }

    var buffer: VkBuffer { allocation.arena.buffer }
    var absoluteOffset: Int { allocation.offset + offset }
    var arenaID: ObjectIdentifier { ObjectIdentifier(allocation.arena) }

    func overlaps(_ o: BufferSlice) -> Bool {
        arenaID == o.arenaID && absoluteOffset < o.absoluteOffset + o.size && o.absoluteOffset < absoluteOffset + size
    }
}

/// Rows [first, first + count) of a row-major tensor that fit one binding window.
public struct RowChunk: Equatable, Sendable {
    public let first: Int
    public let count: Int
}

/// Splits `rows` rows of `rowBytes` each into chunks whose byte size stays within `limit` and
/// whose byte offsets are multiples of `alignment`: how tensors larger than
/// maxStorageBufferRange are bound.
public func rowChunks(rows: Int, rowBytes: Int, limit: Int, alignment: Int) -> [RowChunk] {
    precondition(rowBytes > 0 && rowBytes <= limit, "one row (\(rowBytes) bytes) exceeds the binding limit \(limit)")
    if rows * rowBytes <= limit { return [RowChunk(first: 0, count: rows)] }
    // Rows per chunk: a multiple of the smallest row count whose bytes are aligned.
    var step = 1
    while (step * rowBytes) % alignment != 0 { step += 1 }
    let perChunk = (limit / rowBytes) / step * step
    precondition(perChunk > 0, "cannot split rows of \(rowBytes) bytes into aligned windows of \(limit) bytes")
    return stride(from: 0, to: rows, by: perChunk).map { RowChunk(first: $0, count: min(perChunk, rows - $0)) }
}

extension VulkanDevice {
    static let arenaBytes = 256 << 20

    /// Device memory held in arenas (allocated from the driver, used or not).
    public var allocatedBytes: Int {
        lock.lock()
        defer { lock.unlock() }
        return (arenas + readbackArenas).map(\.size).reduce(0, +)
    }

    static let readbackArenaBytes = 4 << 20

    /// Allocates `bytes` of device memory (host-mapped where the device allows it).
    /// The size is rounded up to whole 16-byte quads, so that any allocation can be bound as a
    /// texel buffer of uvec4 / vec4.
    /// `readback`: in the host's cached memory instead, where the device has such a type, for
    /// small results the host reads every step (a sampler's top-k): kernels write them across
    /// the bus as they finish, and the host reads them with a copy of its own, where device
    /// memory would need a GPU copy, a submit and a wait, or slow uncached reads.
    public func allocate(_ bytes: Int, readback: Bool = false) throws -> DeviceAllocation {
        let bytes = (max(bytes, 4) + 15) & ~15
        let alignment = max(limits.minStorageBufferOffsetAlignment, 16)
        lock.lock()
        defer { lock.unlock() }
        if readback, let type = memoryTypes.readbackType {
            for arena in readbackArenas {
                if let off = arena.allocate(bytes, alignment: alignment) {
                    return DeviceAllocation(device: self, arena: arena, offset: off, size: bytes)
                }
            }
            let arena = try MemoryArena(device: self, size: max(Self.readbackArenaBytes, (bytes + alignment + 0xFFFF) & ~0xFFFF),
                                        memoryType: type, hostVisible: true)
            arena.readback = true
            readbackArenas.append(arena)
            let off = arena.allocate(bytes, alignment: alignment)!
            return DeviceAllocation(device: self, arena: arena, offset: off, size: bytes)
        }
        for arena in arenas {
            if let off = arena.allocate(bytes, alignment: alignment) {
                return DeviceAllocation(device: self, arena: arena, offset: off, size: bytes)
            }
        }
        let unified = memoryTypes.unifiedType
        guard let type = unified ?? memoryTypes.deviceLocalType else {
            throw VulkanError("device \(info.name) offers no device-local memory type")
        }
        let arenaSize = max(Self.arenaBytes, (bytes + alignment + 0xFFFF) & ~0xFFFF)
        let arena = try MemoryArena(device: self, size: arenaSize, memoryType: type, hostVisible: unified != nil)
        arenas.append(arena)
        let off = arena.allocate(bytes, alignment: alignment)!
        return DeviceAllocation(device: self, arena: arena, offset: off, size: bytes)
    }

    /// Copies host bytes into a slice (directly when mapped, else through a staging buffer).
    /// Not ordered against a CommandStream's recorded or queued work: submit it first
    /// (VulkanBackend does).
    public func write(_ bytes: UnsafeRawBufferPointer, to slice: BufferSlice) throws {
        precondition(bytes.count <= slice.size, "write of \(bytes.count) bytes into a \(slice.size)-byte slice")
        if bytes.isEmpty { return }
        if let base = slice.allocation.arena.mapped {
            (base + slice.absoluteOffset).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            return
        }
        try stagingCopy(slice: slice, count: bytes.count, upload: true) { staged, done, n in
            staged.copyMemory(from: bytes.baseAddress! + done, byteCount: n)
        }
    }

    /// Reads of mapped memory the CPU does not cache stay direct up to this many bytes (a decode
    /// step's sampled top-k), where a copy's submit and wait would cost more than the reads.
    static let uncachedDirectReadBytes = 4096

    /// Copies a slice's bytes to the host: straight from mapped memory the CPU caches (or a
    /// few bytes of any mapped memory), else through a GPU copy into cached host memory.
    /// Not ordered against a CommandStream's recorded or queued work: submit it first.
    public func read(_ slice: BufferSlice, into bytes: UnsafeMutableRawBufferPointer) throws {
        precondition(bytes.count <= slice.size, "read of \(bytes.count) bytes from a \(slice.size)-byte slice")
        if bytes.isEmpty { return }
        let arena = slice.allocation.arena
        if let base = arena.mapped,
           arena.readback || (arena.cachedReads && !uncachedReadsForTesting) || bytes.count <= Self.uncachedDirectReadBytes {
            bytes.baseAddress!.copyMemory(from: base + slice.absoluteOffset, byteCount: bytes.count)
            return
        }
        try stagingCopy(slice: slice, count: bytes.count, upload: false) { staged, done, n in
            (bytes.baseAddress! + done).copyMemory(from: staged, byteCount: n)
        }
    }

    private func stagingCopy(slice: BufferSlice, count: Int, upload: Bool,
                             _ move: (UnsafeMutableRawPointer, Int, Int) -> Void) throws {
        // One thread at a time on the staging buffers' command pools (the device lock is taken
        // inside, by the submit).
        stagingLock.lock()
        defer { stagingLock.unlock() }
        // Uploads through write-combined host memory, readbacks through cached host memory.
        if upload, stagingBuffer == nil {
            guard let type = memoryTypes.hostType else { throw VulkanError("device \(info.name) has no host-visible memory") }
            stagingBuffer = try StagingBuffer(device: self, memoryType: type)
        }
        if !upload, readbackBuffer == nil {
            guard let type = memoryTypes.readbackType ?? memoryTypes.hostType else {
                throw VulkanError("device \(info.name) has no host-visible memory")
            }
            readbackBuffer = try StagingBuffer(device: self, memoryType: type)
        }
        let staging = upload ? stagingBuffer! : readbackBuffer!
        if !upload { stagedReads += 1 }
        var done = 0
        while done < count {
            let n = min(staging.size, count - done)
            if upload { move(staging.arena.mapped!, done, n) }
            try staging.copy(upload: upload, slice: slice, offset: done, count: n)
            if !upload { move(staging.arena.mapped!, done, n) }
            done += n
        }
    }
}

/// Host-visible memory plus a one-shot command buffer: uploads on devices without mappable
/// device-local memory (discrete GPUs without ReBAR), and readbacks, in cached host memory, from
/// memory the CPU would read uncached (a discrete GPU's mapped device-local memory).
final class StagingBuffer {
    let arena: MemoryArena
    let size = 64 << 20
    let pool: VkCommandPool
    let fence: VkFence
    unowned let device: VulkanDevice

    init(device: VulkanDevice, memoryType: UInt32) throws {
        self.device = device
        arena = try MemoryArena(device: device, size: size, memoryType: memoryType, hostVisible: true)
        (pool, fence) = try device.makeCommandPoolAndFence()
    }

    func copy(upload: Bool, slice: BufferSlice, offset: Int, count: Int) throws {
        let fns = device.fns
        var cmd: VkCommandBuffer?
        var ai = VkCommandBufferAllocateInfo()
        ai.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO
        ai.commandPool = pool
        ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY
        ai.commandBufferCount = 1
        try VulkanError.check(fns.resetCommandPool(device.handle, pool, 0), "vkResetCommandPool")
        try VulkanError.check(fns.allocateCommandBuffers(device.handle, &ai, &cmd), "vkAllocateCommandBuffers")
        var bi = VkCommandBufferBeginInfo()
        bi.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO
        bi.flags = VkCommandBufferUsageFlags(VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT.rawValue)
        try VulkanError.check(fns.beginCommandBuffer(cmd, &bi), "vkBeginCommandBuffer")
        // Order the copy after earlier batches' shader and transfer writes (the fence waits do not
        // make device writes visible to later device reads), and after it make its writes
        // visible: to the host (a readback; a fence alone does not) or to later kernels (an upload).
        let earlier = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT.rawValue | VK_PIPELINE_STAGE_TRANSFER_BIT.rawValue
        let earlierWrites = VK_ACCESS_SHADER_WRITE_BIT.rawValue | VK_ACCESS_TRANSFER_WRITE_BIT.rawValue
        memoryBarrier(cmd, from: earlier, earlierWrites, to: VK_PIPELINE_STAGE_TRANSFER_BIT.rawValue,
                      VK_ACCESS_TRANSFER_READ_BIT.rawValue | VK_ACCESS_TRANSFER_WRITE_BIT.rawValue)
        var region = VkBufferCopy()
        region.size = VkDeviceSize(count)
        if upload {
            region.dstOffset = VkDeviceSize(slice.absoluteOffset + offset)
            fns.cmdCopyBuffer(cmd, arena.buffer, slice.buffer, 1, &region)
            memoryBarrier(cmd, from: VK_PIPELINE_STAGE_TRANSFER_BIT.rawValue, VK_ACCESS_TRANSFER_WRITE_BIT.rawValue, to: earlier,
                          VK_ACCESS_SHADER_READ_BIT.rawValue | VK_ACCESS_TRANSFER_READ_BIT.rawValue)
        } else {
            region.srcOffset = VkDeviceSize(slice.absoluteOffset + offset)
            fns.cmdCopyBuffer(cmd, slice.buffer, arena.buffer, 1, &region)
            memoryBarrier(cmd, from: VK_PIPELINE_STAGE_TRANSFER_BIT.rawValue, VK_ACCESS_TRANSFER_WRITE_BIT.rawValue,
                          to: VK_PIPELINE_STAGE_HOST_BIT.rawValue, VK_ACCESS_HOST_READ_BIT.rawValue)
        }
        try VulkanError.check(fns.endCommandBuffer(cmd), "vkEndCommandBuffer")
        try device.submitAndWait(cmd!, fence: fence)
    }

    private func memoryBarrier(_ cmd: VkCommandBuffer?, from srcStages: UInt32, _ srcAccess: UInt32, to dstStages: UInt32, _ dstAccess: UInt32) {
        var mb = VkMemoryBarrier()
        mb.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER
        mb.srcAccessMask = VkAccessFlags(srcAccess)
        mb.dstAccessMask = VkAccessFlags(dstAccess)
        device.fns.cmdPipelineBarrier(cmd, VkPipelineStageFlags(srcStages), VkPipelineStageFlags(dstStages), 0, 1, &mb, 0, nil, 0, nil)
    }

    func destroy(_ fns: DeviceFunctions, _ handle: VkDevice) {
        arena.destroy(fns, handle)
        fns.destroyFence(handle, fence, nil)
        fns.destroyCommandPool(handle, pool, nil)
    }
}

extension VulkanDevice {
    func makeCommandPoolAndFence() throws -> (VkCommandPool, VkFence) {
        let pool = try makeCommandPool()
        do { return (pool, try makeFence()) } catch {
            fns.destroyCommandPool(handle, pool, nil)
            throw error
        }
    }

    func makeCommandPool() throws -> VkCommandPool {
        var pi = VkCommandPoolCreateInfo()
        pi.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO
        pi.queueFamilyIndex = queueFamily
        var pool: VkCommandPool?
        try VulkanError.check(fns.createCommandPool(handle, &pi, nil, &pool), "vkCreateCommandPool")
        return pool!
    }

    func submitAndWait(_ cmd: VkCommandBuffer, fence: VkFence) throws {
        try submit(cmd, fence: fence)
        try wait(for: [fence])
    }

    /// Queues `cmd`; `fence` signals when it has run.
    func submit(_ cmd: VkCommandBuffer, fence: VkFence) throws {
        var c: VkCommandBuffer? = cmd
        let r: VkResult = withUnsafePointer(to: &c) { cp in
            var si = VkSubmitInfo()
            si.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO
            si.commandBufferCount = 1
            si.pCommandBuffers = cp
            lock.lock()
            defer { lock.unlock() }
            return fns.queueSubmit(queue, 1, &si, fence)
        }
        try VulkanError.check(r, "vkQueueSubmit")
    }

    /// Waits until every fence has signalled, then resets them for reuse.
    func wait(for fences: [VkFence]) throws {
        guard !fences.isEmpty else { return }
        var fs: [VkFence?] = fences
        try VulkanError.check(fns.waitForFences(handle, UInt32(fs.count), &fs, VkBool32(VK_TRUE), UInt64.max), "vkWaitForFences")
        try VulkanError.check(fns.resetFences(handle, UInt32(fs.count), &fs), "vkResetFences")
    }

    func makeFence() throws -> VkFence {
        var fi = VkFenceCreateInfo()
        fi.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO
        var fence: VkFence?
        try VulkanError.check(fns.createFence(handle, &fi, nil, &fence), "vkCreateFence")
        return fence!
    }
}
