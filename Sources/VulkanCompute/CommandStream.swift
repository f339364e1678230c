import CVulkan
import Foundation

/// GPU time of one recorded dispatch (from the previous timestamp to the one after it).
public struct DispatchTiming: Sendable {
    public let label: String
    public let kernel: String
    public let nanoseconds: Double
    /// What the dispatch must move and compute, as its recorder stated (0 when not stated).
    public let bytes: Double
    public let flops: Double

    public init(label: String, kernel: String, nanoseconds: Double, bytes: Double = 0, flops: Double = 0) {
        self.label = label
        self.kernel = kernel
        self.nanoseconds = nanoseconds
        self.bytes = bytes
        self.flops = flops
    }
}

/// Bytes a dispatch must read and write, and the floating-point operations it must do.
public struct DispatchWork: Sendable {
    public var bytes: Double
    public var flops: Double
    public init(bytes: Double = 0, flops: Double = 0) {
        self.bytes = bytes
        self.flops = flops
    }
}

/// Records a batch of dispatches, placing a barrier only where a dispatch reads or overwrites a
/// range an earlier dispatch of the batch wrote (or overwrites one it read). `submit()` runs the
/// batch, waits for it and makes the stream ready for the next one.
///
/// A long batch goes to the queue in chunks while the host records the rest: the first command
/// buffer after `submitEvery` dispatches, each later one after twice as many as the one before
/// (at most 8 × `submitEvery`), so the device starts early and the host's recording of a decode
/// step overlaps the device's work instead of preceding it. A barrier's first scope takes in every
/// command submitted earlier to the queue, so the hazard tracking spans the chunks unchanged.
///
/// Between `beginCapture()` and `endCapture()` the commands go into a command buffer the stream
/// can queue again with `replay(_:)` (RecordedCommands): command-buffer reuse for a decode step.
public final class CommandStream {
    public let device: VulkanDevice
    public let profiling: Bool
    /// Dispatches in a batch's first command buffer before it is queued without waiting; 0 records
    /// the whole batch into one command buffer, queued by `submit()`.
    public let submitEvery: Int
    private let pool: VkCommandPool
    private let fence: VkFence
    private var cmd: VkCommandBuffer?
    /// A command buffer is open for recording.
    private var recording = false
    /// A batch has begun (pools reset), and may have chunks queued and not yet waited for.
    private var batchOpen = false
    private var chunkDispatches = 0
    private var chunkLimit = 0
    /// Fences of the chunks queued in this batch, and spares for the next chunks.
    private var queuedFences: [VkFence] = []
    private var spareFences: [VkFence] = []
    /// Command buffers queued without waiting since the stream was made.
    public private(set) var chunksQueued = 0
    /// Recording into a RecordedCommands (beginCapture … endCapture); `captureSpoilt` once a
    /// dispatch had to bind a descriptor set that lives only as long as the batch.
    private var capturing = false
    private var captureSpoilt = false
    private var capturePool: VkCommandPool?
    private var captureStart = (dispatches: 0, barriers: 0)
    /// Recorded commands queued in the open batch, kept alive until its fences have signalled.
    private var queuedRecordings: [RecordedCommands] = []
    /// Captures kept for replay, and replays queued, since the stream was made.
    public private(set) var captures = 0
    public private(set) var replays = 0
    private var descriptorPools: [VkDescriptorPool] = []
    private var poolIndex = 0
    private var setsInPool = 0
    private static let setsPerPool = 256
    private static let maxBindings = 10
    /// Descriptor sets written once and reused by every later dispatch of the same kernel on the
    /// same buffer ranges (a decode step binds the same ranges token after token), from pools that
    /// are never reset. Arenas live as long as the device, so a cached range never dangles.
    private var cachedSets: [DescriptorSetKey: VkDescriptorSet] = [:]
    /// Keys seen once: a set is cached on its second use, so one-off ranges (a step's fresh
    /// tensors) do not fill the cache.
    private var seenOnce: Set<DescriptorSetKey> = []
    private var cachePools: [VkDescriptorPool] = []
    private var setsInCachePool = 0
    /// At most this many cached sets; past it, sets come from the per-batch pools again.
    var maxCachedSets = 8192
    /// Descriptor sets allocated and written since the stream was made (a cache hit writes none).
    public private(set) var descriptorSetsWritten = 0
    private var pendingWrites = PendingRanges()
    private var pendingReads = PendingRanges()
    private var retained: [DeviceAllocation] = []
    private var queryPools: [VkQueryPool] = []
    /// One per timestamp after query 0: a dispatch's, or a chunk's start (`marker`), whose time is
    /// nobody's, so the wait for the host to queue a chunk is not charged to its first dispatch.
    private var labels: [(label: String, kernel: String, work: DispatchWork, marker: Bool)] = []
    /// Host seconds spent recording dispatches and in submit (submit + fence wait), since the
    /// stream was made: the CPU side of a profile.
    public private(set) var recordSeconds = 0.0
    public private(set) var submitSeconds = 0.0
    /// Of `submitSeconds`, the time blocked on fences: wall time minus this is what the host spent
    /// working, whether or not its recording overlapped the device.
    public private(set) var waitSeconds = 0.0
    private static let queriesPerPool: UInt32 = 1024
    public private(set) var timings: [DispatchTiming] = []
    /// Dispatches and barriers recorded since the stream was made (for tests and profiling).
    public private(set) var dispatchCount = 0
    public private(set) var barrierCount = 0

    public init(device: VulkanDevice, profiling: Bool = false, submitEvery: Int = 0) throws {
        self.device = device
        self.profiling = profiling && device.limits.timestamps
        self.submitEvery = max(0, submitEvery)
        (pool, fence) = try device.makeCommandPoolAndFence()
    }

    deinit {
        let d = device
        if recording { _ = d.fns.endCommandBuffer(cmd) }
        if !queuedFences.isEmpty { try? d.wait(for: queuedFences) }
        for f in [fence] + queuedFences + spareFences { d.fns.destroyFence(d.handle, f, nil) }
        d.fns.destroyCommandPool(d.handle, pool, nil)
        if let cp = capturePool { d.fns.destroyCommandPool(d.handle, cp, nil) }
        for p in descriptorPools + cachePools { d.fns.destroyDescriptorPool(d.handle, p, nil) }
        for q in queryPools { d.fns.destroyQueryPool(d.handle, q, nil) }
    }

    /// Opens a command buffer: the batch's first (resetting the pools the last batch used, which
    /// `submit()` waited for), or the next chunk's.
    private func begin() throws {
        if recording { return }
        let fns = device.fns
        let firstChunk = !batchOpen
        if firstChunk { try openBatch() }
        var ai = VkCommandBufferAllocateInfo()
        ai.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO
        ai.commandPool = capturing ? capturePool : pool
        ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY
        ai.commandBufferCount = 1
        try VulkanError.check(fns.allocateCommandBuffers(device.handle, &ai, &cmd), "vkAllocateCommandBuffers")
        var bi = VkCommandBufferBeginInfo()
        bi.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO
        // A capture is queued again later: not one-time.
        bi.flags = capturing ? 0 : VkCommandBufferUsageFlags(VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT.rawValue)
        try VulkanError.check(fns.beginCommandBuffer(cmd, &bi), "vkBeginCommandBuffer")
        recording = true
        chunkDispatches = 0
        if profiling { try writeTimestamp(label: firstChunk ? nil : ("", "", DispatchWork(), true)) }
    }

    /// Resets the pools the last batch used (`submit()` waited for it).
    private func openBatch() throws {
        let fns = device.fns
        try VulkanError.check(fns.resetCommandPool(device.handle, pool, 0), "vkResetCommandPool")
        for p in descriptorPools { try VulkanError.check(fns.resetDescriptorPool(device.handle, p, 0), "vkResetDescriptorPool") }
        poolIndex = 0
        setsInPool = 0
        labels = []
        chunkLimit = submitEvery
        batchOpen = true
    }

    /// Queues the open command buffer without waiting once it holds the chunk's dispatches (a
    /// capture stays one command buffer).
    private func queueChunkIfDue() throws {
        chunkDispatches += 1
        guard submitEvery > 0, chunkDispatches >= chunkLimit, !capturing else { return }
        do {
            try VulkanError.check(device.fns.endCommandBuffer(cmd), "vkEndCommandBuffer")
            recording = false
            try queue(cmd!)
        } catch {
            abandonBatch()
            throw error
        }
        chunkLimit = min(2 * chunkLimit, 8 * submitEvery)
    }

    /// After a chunk failed to queue: wait for the chunks already queued, then drop the whole
    /// batch, so that no later `submit()` runs the rest of it and reports success.
    private func abandonBatch() {
        if recording { _ = device.fns.endCommandBuffer(cmd) }
        if !queuedFences.isEmpty {
            // (Device lost, most likely, if the wait fails.) Let the device stop before anything
            // the queued chunks use is freed.
            if (try? device.wait(for: queuedFences)) != nil { spareFences += queuedFences } else { _ = try? device.waitIdle() }
        }
        queuedFences = []
        if capturing, let cp = capturePool { device.fns.destroyCommandPool(device.handle, cp, nil) }
        capturePool = nil
        recording = false
        batchOpen = false
        capturing = false
        pendingWrites.removeAll()
        pendingReads.removeAll()
        retained.removeAll()
        queuedRecordings.removeAll()
        labels = []
    }

    /// Query 0 is the batch start; query i+1 follows dispatch i. Pools are reset on first use.
    private func writeTimestamp(label: (String, String, DispatchWork, Bool)?) throws {
        let q = label == nil ? 0 : labels.count + 1
        let poolNo = q / Int(Self.queriesPerPool)
        let local = UInt32(q % Int(Self.queriesPerPool))
        if poolNo >= queryPools.count {
            var qi = VkQueryPoolCreateInfo()
            qi.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO
            qi.queryType = VK_QUERY_TYPE_TIMESTAMP
            qi.queryCount = Self.queriesPerPool
            var pool: VkQueryPool?
            try VulkanError.check(device.fns.createQueryPool(device.handle, &qi, nil, &pool), "vkCreateQueryPool")
            queryPools.append(pool!)
        }
        if local == 0 { device.fns.cmdResetQueryPool(cmd, queryPools[poolNo], 0, Self.queriesPerPool) }
        device.fns.cmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queryPools[poolNo], local)
        if let l = label { labels.append(l) }
    }

    private func makeDescriptorPool() throws -> VkDescriptorPool {
        var sizes = [VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER].map {
            VkDescriptorPoolSize(type: $0, descriptorCount: UInt32(Self.setsPerPool * Self.maxBindings))
        }
        var pi = VkDescriptorPoolCreateInfo()
        pi.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO
        pi.maxSets = UInt32(Self.setsPerPool)
        pi.poolSizeCount = UInt32(sizes.count)
        var p: VkDescriptorPool?
        try sizes.withUnsafeMutableBufferPointer { sp in
            pi.pPoolSizes = UnsafePointer(sp.baseAddress)
            try VulkanError.check(device.fns.createDescriptorPool(device.handle, &pi, nil, &p), "vkCreateDescriptorPool")
        }
        return p!
    }

    private func allocateSet(_ kernel: Kernel, from pool: VkDescriptorPool) throws -> VkDescriptorSet {
        var set: VkDescriptorSet?
        var layout: VkDescriptorSetLayout? = kernel.setLayout
        try withUnsafePointer(to: &layout) { lp in
            var ai = VkDescriptorSetAllocateInfo()
            ai.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO
            ai.descriptorPool = pool
            ai.descriptorSetCount = 1
            ai.pSetLayouts = lp
            try VulkanError.check(device.fns.allocateDescriptorSets(device.handle, &ai, &set), "vkAllocateDescriptorSets")
        }
        descriptorSetsWritten += 1
        return set!
    }

    /// A set for this batch only, from the pools `begin()` resets.
    private func batchDescriptorSet(for kernel: Kernel) throws -> VkDescriptorSet {
        if poolIndex == descriptorPools.count || setsInPool == Self.setsPerPool {
            if setsInPool == Self.setsPerPool { poolIndex += 1; setsInPool = 0 }
            if poolIndex == descriptorPools.count { descriptorPools.append(try makeDescriptorPool()) }
        }
        setsInPool += 1
        return try allocateSet(kernel, from: descriptorPools[poolIndex])
    }

    /// A written descriptor set for (kernel, bindings): the cached one, or a new one, cached only
    /// once it is written (a failed write leaves nothing half-made in the cache).
    private func descriptorSet(for kernel: Kernel, _ bindings: [BufferSlice]) throws -> VkDescriptorSet {
        var words = [Int]()
        words.reserveCapacity(1 + 3 * bindings.count)
        words.append(Int(bitPattern: UInt(bitPattern: ObjectIdentifier(kernel))))
        for b in bindings { words += [Int(bitPattern: UInt(bitPattern: b.arenaID)), b.absoluteOffset, b.size] }
        let key = DescriptorSetKey(words: words)
        if let set = cachedSets[key] { return set }
        // A capture caches every set it binds: it must outlive the batch.
        guard cachedSets.count < maxCachedSets, seenOnce.contains(key) || capturing else {
            if capturing { captureSpoilt = true }
            if seenOnce.count >= 2 * maxCachedSets { seenOnce.removeAll() }
            seenOnce.insert(key)
            let set = try batchDescriptorSet(for: kernel)
            try writeDescriptors(set, kernel, bindings)
            return set
        }
        if cachePools.isEmpty || setsInCachePool == Self.setsPerPool {
            cachePools.append(try makeDescriptorPool())
            setsInCachePool = 0
        }
        setsInCachePool += 1
        let set = try allocateSet(kernel, from: cachePools[cachePools.count - 1])
        try writeDescriptors(set, kernel, bindings)
        cachedSets[key] = set
        seenOnce.remove(key)
        return set
    }

    /// Points the set's bindings at the slices (texel buffers through their cached views).
    private func writeDescriptors(_ set: VkDescriptorSet, _ kernel: Kernel, _ bindings: [BufferSlice]) throws {
        let infos = bindings.map { VkDescriptorBufferInfo(buffer: $0.buffer, offset: VkDeviceSize($0.absoluteOffset), range: VkDeviceSize($0.size)) }
        let views: [VkBufferView?] = try zip(bindings, kernel.access).map {
            $1.isTexelBuffer ? try device.texelView($0, format: $1.texelFormat) : nil
        }
        infos.withUnsafeBufferPointer { ip in
            views.withUnsafeBufferPointer { vp in
                var writes = kernel.access.enumerated().map { i, access -> VkWriteDescriptorSet in
                    var w = VkWriteDescriptorSet()
                    w.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET
                    w.dstSet = set
                    w.dstBinding = UInt32(i)
                    w.descriptorCount = 1
                    w.descriptorType = access.descriptorType
                    if access.isTexelBuffer { w.pTexelBufferView = vp.baseAddress! + i } else { w.pBufferInfo = ip.baseAddress! + i }
                    return w
                }
                device.fns.updateDescriptorSets(device.handle, UInt32(writes.count), &writes, 0, nil)
            }
        }
    }

    /// Records one dispatch. Every check happens here, before anything reaches the device.
    public func dispatch<P: PushConstants>(_ kernel: Kernel, _ bindings: [BufferSlice], push: P,
                                           groups: (Int, Int, Int), label: String = "", work: DispatchWork = DispatchWork()) throws {
        let t0 = DispatchTime.now().uptimeNanoseconds
        defer { recordSeconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 }
        guard bindings.count == kernel.access.count else {
            throw VulkanError("kernel \(kernel.name): \(bindings.count) buffers bound, it takes \(kernel.access.count)")
        }
        guard P.self == kernel.pushType else {
            throw VulkanError("kernel \(kernel.name): push constants \(P.self) given, it takes \(kernel.pushType)")
        }
        let maxGroups = device.limits.maxComputeWorkGroupCount
        for (n, m) in zip([groups.0, groups.1, groups.2], maxGroups) where n < 0 || n > m {
            throw VulkanError("kernel \(kernel.name): \(groups) workgroups exceed the device's limit \(maxGroups)")
        }
        let lim = device.limits
        for (i, (b, access)) in zip(bindings, kernel.access).enumerated() {
            guard b.allocation.device === device else { throw VulkanError("kernel \(kernel.name): binding \(i) belongs to another device") }
            let texels = access.isTexelBuffer
            let maxBytes = texels ? lim.maxTexelBufferElements * access.texelBytes : lim.maxStorageBufferRange
            let align = texels ? lim.minTexelBufferOffsetAlignment : lim.minStorageBufferOffsetAlignment
            guard b.size > 0, b.size <= maxBytes, !texels || b.size % access.texelBytes == 0 else {
                throw VulkanError("kernel \(kernel.name): binding \(i) is \(b.size) bytes; the device binds 1…\(maxBytes)\(texels ? " in whole \(access.texelBytes)-byte texels" : "")")
            }
            guard b.absoluteOffset % align == 0 else {
                throw VulkanError("kernel \(kernel.name): binding \(i) offset \(b.absoluteOffset) is not a multiple of \(align)")
            }
        }
        if groups.0 == 0 || groups.1 == 0 || groups.2 == 0 { return }
        try begin()
        let fns = device.fns

        // Barrier only on a real dependency: RAW / WAW against pending writes, WAR against reads.
        let hazard = zip(bindings, kernel.access).contains { slice, access in
            pendingWrites.overlaps(slice) || (access.writes && pendingReads.overlaps(slice))
        }
        if hazard { barrier() }
        for (slice, access) in zip(bindings, kernel.access) {
            if access.writes { pendingWrites.insert(slice) }
            if access.reads { pendingReads.insert(slice) }
            retained.append(slice.allocation)
        }

        let set = try descriptorSet(for: kernel, bindings)
        fns.cmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, kernel.pipeline)
        var s: VkDescriptorSet? = set
        fns.cmdBindDescriptorSets(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, kernel.layout, 0, 1, &s, 0, nil)
        if kernel.pushConstantBytes > 0 {
            withUnsafeBytes(of: push) { pb in
                fns.cmdPushConstants(cmd, kernel.layout, VkShaderStageFlags(VK_SHADER_STAGE_COMPUTE_BIT.rawValue), 0, UInt32(pb.count), pb.baseAddress)
            }
        }
        fns.cmdDispatch(cmd, UInt32(groups.0), UInt32(groups.1), UInt32(groups.2))
        dispatchCount += 1
        if profiling { try writeTimestamp(label: (label.isEmpty ? kernel.name : label, kernel.name, work, false)) }
        try queueChunkIfDue()
    }

    // MARK: command-buffer reuse

    /// Starts recording the commands that follow into a RecordedCommands, to be ended by
    /// `endCapture()`. They run in this batch as usual. Only from an idle stream (no batch open:
    /// then nothing is pending and the host's writes before each queueing are visible) and not
    /// while profiling (a replay has no timestamps); returns false and captures nothing otherwise.
    public func beginCapture() throws -> Bool {
        guard !profiling, !batchOpen, !capturing else { return false }
        capturePool = try device.makeCommandPool()
        capturing = true
        captureSpoilt = false
        captureStart = (dispatchCount, barrierCount)
        do { try begin() } catch {
            capturing = false
            device.fns.destroyCommandPool(device.handle, capturePool, nil)
            capturePool = nil
            throw error
        }
        return true
    }

    /// Ends the capture and queues its commands (this batch's run of them); returns them for
    /// `replay`, or nil where they cannot be run again (a descriptor set had to come from the
    /// batch's pools: the cache is full) or nothing was being captured.
    public func endCapture() throws -> RecordedCommands? {
        guard capturing, let cp = capturePool else { return nil }
        capturing = false
        capturePool = nil
        let recorded = RecordedCommands(device: device, stream: self, pool: cp, commands: cmd!, retained: retained,
                                        finalWrites: pendingWrites, finalReads: pendingReads,
                                        dispatches: dispatchCount - captureStart.dispatches, barriers: barrierCount - captureStart.barriers)
        // From here the pool is the recording's: it is destroyed with it, whatever happens next.
        queuedRecordings.append(recorded)
        recording = false
        do {
            try VulkanError.check(device.fns.endCommandBuffer(cmd), "vkEndCommandBuffer")
            try queue(recorded.commands)
        } catch {
            abandonBatch()
            throw error
        }
        if captureSpoilt { return nil }
        captures += 1
        return recorded
    }

    /// Queues recorded commands again. A batch that is open is run first (a replay starts from an
    /// idle stream, as its capture did); afterwards the batch is open, with the recording's
    /// hazard state, so what is recorded next orders itself after it.
    public func replay(_ recorded: RecordedCommands) throws {
        guard recorded.stream === self else { throw VulkanError("replay of commands another stream recorded") }
        guard !capturing else { throw VulkanError("replay during a capture") }
        if batchOpen { try submit() }
        try openBatch()
        queuedRecordings.append(recorded)
        do { try queue(recorded.commands) } catch {
            abandonBatch()
            throw error
        }
        pendingWrites = recorded.finalWrites
        pendingReads = recorded.finalReads
        dispatchCount += recorded.dispatches
        barrierCount += recorded.barriers
        replays += 1
    }

    /// Queues a command buffer of the open batch with a fence of its own, without waiting.
    private func queue(_ commands: VkCommandBuffer) throws {
        let f = try spareFences.popLast() ?? device.makeFence()
        do { try device.submit(commands, fence: f) } catch { spareFences.append(f); throw error }
        queuedFences.append(f)
        chunksQueued += 1
    }

    /// Fills a slice with a repeated 32-bit word (zeroing, poisoning).
    public func fill(_ slice: BufferSlice, word: UInt32) throws {
        guard slice.size % 4 == 0, slice.absoluteOffset % 4 == 0 else { throw VulkanError("fill: slice not 4-byte aligned") }
        try begin()
        if pendingWrites.overlaps(slice) || pendingReads.overlaps(slice) { barrier() }
        pendingWrites.insert(slice)
        retained.append(slice.allocation)
        device.fns.cmdFillBuffer(cmd, slice.buffer, VkDeviceSize(slice.absoluteOffset), VkDeviceSize(slice.size), word)
    }

    /// Copies `source` into `destination` (same size) on the transfer path; with profiling on it
    /// is timed like a dispatch, labelled `label`, kernel "copy".
    public func copy(_ source: BufferSlice, to destination: BufferSlice, label: String = "copy") throws {
        guard source.size == destination.size, source.size > 0 else {
            throw VulkanError("copy: \(source.size) bytes into a \(destination.size)-byte slice")
        }
        guard source.allocation.device === device, destination.allocation.device === device else {
            throw VulkanError("copy: a slice belongs to another device")
        }
        try begin()
        if pendingWrites.overlaps(source) || pendingWrites.overlaps(destination) || pendingReads.overlaps(destination) { barrier() }
        pendingReads.insert(source)
        pendingWrites.insert(destination)
        retained += [source.allocation, destination.allocation]
        var region = VkBufferCopy(srcOffset: VkDeviceSize(source.absoluteOffset), dstOffset: VkDeviceSize(destination.absoluteOffset),
                                  size: VkDeviceSize(source.size))
        device.fns.cmdCopyBuffer(cmd, source.buffer, destination.buffer, 1, &region)
        if profiling { try writeTimestamp(label: (label, "copy", DispatchWork(bytes: Double(2 * source.size)), false)) }
    }

    private func barrier() {
        let stages = VkPipelineStageFlags(VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT.rawValue | VK_PIPELINE_STAGE_TRANSFER_BIT.rawValue)
        var mb = VkMemoryBarrier()
        mb.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER
        mb.srcAccessMask = VkAccessFlags(VK_ACCESS_SHADER_WRITE_BIT.rawValue | VK_ACCESS_TRANSFER_WRITE_BIT.rawValue)
        mb.dstAccessMask = VkAccessFlags(VK_ACCESS_SHADER_READ_BIT.rawValue | VK_ACCESS_SHADER_WRITE_BIT.rawValue |
                                         VK_ACCESS_TRANSFER_READ_BIT.rawValue | VK_ACCESS_TRANSFER_WRITE_BIT.rawValue)
        device.fns.cmdPipelineBarrier(cmd, stages, stages, 0, 1, &mb, 0, nil, 0, nil)
        pendingWrites.removeAll()
        pendingReads.removeAll()
        barrierCount += 1
    }

    /// Runs what was recorded and waits for it; afterwards the host sees every write.
    /// With profiling on, `timings` then holds one entry per dispatch of this batch.
    public func submit() throws {
        guard batchOpen else { timings = []; return }
        if capturing { _ = try endCapture() }
        try begin()  // the last chunk, perhaps only the host barrier
        let t0 = DispatchTime.now().uptimeNanoseconds
        defer { submitSeconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 }
        let fns = device.fns
        // Make shader writes visible to host reads after the fence.
        let src = VkPipelineStageFlags(VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT.rawValue | VK_PIPELINE_STAGE_TRANSFER_BIT.rawValue)
        var mb = VkMemoryBarrier()
        mb.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER
        mb.srcAccessMask = VkAccessFlags(VK_ACCESS_SHADER_WRITE_BIT.rawValue | VK_ACCESS_TRANSFER_WRITE_BIT.rawValue)
        mb.dstAccessMask = VkAccessFlags(VK_ACCESS_HOST_READ_BIT.rawValue)
        fns.cmdPipelineBarrier(cmd, src, VkPipelineStageFlags(VK_PIPELINE_STAGE_HOST_BIT.rawValue), 0, 1, &mb, 0, nil, 0, nil)
        try VulkanError.check(fns.endCommandBuffer(cmd), "vkEndCommandBuffer")
        recording = false
        batchOpen = false
        pendingWrites.removeAll()
        pendingReads.removeAll()
        defer { retained.removeAll(); queuedRecordings.removeAll() }
        let queued = queuedFences
        queuedFences = []
        defer { spareFences += queued }
        do { try device.submit(cmd!, fence: fence) } catch {
            try? device.wait(for: queued)  // the chunks still use what `retained` keeps alive
            throw error
        }
        let w0 = DispatchTime.now().uptimeNanoseconds
        defer { waitSeconds += Double(DispatchTime.now().uptimeNanoseconds - w0) / 1e9 }
        do { try device.wait(for: queued + [fence]) } catch {
            // (Device lost, most likely.) Let the device stop before the defers free what the
            // chunks use and recycle their fences.
            _ = try? device.waitIdle()
            _ = try? device.wait(for: queued + [fence])
            throw error
        }
        timings = profiling ? try readTimings() : []
    }

    private func readTimings() throws -> [DispatchTiming] {
        let total = labels.count + 1
        var ticks = [UInt64](repeating: 0, count: total)
        var done = 0
        for (p, pool) in queryPools.enumerated() where done < total {
            let first = p * Int(Self.queriesPerPool)
            let n = min(Int(Self.queriesPerPool), total - first)
            guard n > 0 else { break }
            try ticks.withUnsafeMutableBytes { tb in
                let flags = VkQueryResultFlags(VK_QUERY_RESULT_64_BIT.rawValue | VK_QUERY_RESULT_WAIT_BIT.rawValue)
                try VulkanError.check(device.fns.getQueryPoolResults(device.handle, pool, 0, UInt32(n), n * 8,
                                                                     tb.baseAddress! + first * 8, 8, flags), "vkGetQueryPoolResults")
            }
            done += n
        }
        let period = device.limits.timestampPeriodNs
        return labels.enumerated().compactMap { i, l in
            l.marker ? nil : DispatchTiming(label: l.label, kernel: l.kernel, nanoseconds: Double(ticks[i + 1] &- ticks[i]) * period,
                                            bytes: l.work.bytes, flops: l.work.flops)
        }
    }
}

/// What a descriptor set binds: the kernel (its set layout), then each binding's arena, offset
/// and size, in one array (one allocation a dispatch).
struct DescriptorSetKey: Hashable {
    let words: [Int]
}
