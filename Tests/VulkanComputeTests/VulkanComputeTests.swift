import Shaders
@testable import VulkanCompute
import XCTest

/// The runtime on the machine's Vulkan device (lavapipe in CI) with the Khronos validation layer
/// on; every test fails if the layer reports anything.
final class VulkanComputeTests: XCTestCase {
    var device: VulkanDevice!

    override func setUpWithError() throws {
        device = try VulkanDevice(validation: true)
    }

    override func tearDownWithError() throws {
        XCTAssertEqual(device.validationMessages, [], "validation layer reported problems")
        device = nil
    }

    /// `add.comp`'s push block (the Backend module has its own copy; this module sits below it).
    struct AddPush: PushConstants {
        var W: UInt32, R: UInt32, hasB: UInt32, steer: UInt32
        init(_ w: Int) { (W, R, hasB, steer) = (UInt32(w), 1, 1, 0) }
    }
    struct WrongPush: PushConstants { var a: UInt32, b: UInt32 }

    /// `add.comp`: out = a + b (+ s·v), bindings a, b, out, s, v, vector rows; push W, R, hasB, steer.
    func addKernel(_ d: VulkanDevice) throws -> Kernel {
        try d.kernel(name: "add", spirv: SPIRV.add, access: [.read, .read, .write, .read, .read, .read], push: AddPush.self,
                     specialization: [64])
    }

    func buffer(_ d: VulkanDevice, _ values: [Float]) throws -> BufferSlice {
        let a = try d.allocate(values.count * 4)
        try values.withUnsafeBytes { try d.write($0, to: a.slice) }
        return a.slice
    }

    func read(_ d: VulkanDevice, _ s: BufferSlice, _ n: Int) throws -> [Float] {
        var out = [Float](repeating: 0, count: n)
        try out.withUnsafeMutableBytes { try d.read(s, into: $0) }
        return out
    }

    func testLimitsAreReadFromTheDevice() throws {
        let l = device.limits
        XCTAssertGreaterThanOrEqual(l.maxStorageBufferRange, 1 << 27 - 1)
        XCTAssertGreaterThan(l.subgroupSize, 0)
        XCTAssertGreaterThanOrEqual(l.maxComputeSharedMemorySize, 16384)
        XCTAssertEqual(l.maxComputeWorkGroupCount.count, 3)
        XCTAssertGreaterThanOrEqual(l.maxPushConstantsSize, 128)
        let listed = try VulkanDevice.list()
        XCTAssertTrue(listed.contains { $0.name == device.info.name })
    }

    /// Where the driver lets a pipeline require a subgroup size (lavapipe does), every kernel
    /// requires the reported one, with full subgroups where its workgroup holds whole ones; the
    /// validation layer (tearDown) checks the request, and the kernel sees that width.
    func testKernelsRequireTheReportedSubgroupSize() throws {
        let l = device.limits
        XCTAssertLessThanOrEqual(l.minSubgroupSize, l.subgroupSize)
        XCTAssertGreaterThanOrEqual(l.maxSubgroupSize, l.subgroupSize)
        XCTAssertTrue(device.pinsSubgroupSize, "lavapipe has VK_EXT_subgroup_size_control")
        XCTAssertEqual(device.pinsSubgroupSize, l.subgroupSizeControl)
        XCTAssertEqual(device.subgroupPinning(spirv: SPIRV.add, specialization: [UInt32(4 * l.subgroupSize)]), true)
        XCTAssertEqual(device.subgroupPinning(spirv: SPIRV.add, specialization: [UInt32(l.subgroupSize + 1)]), false)
        XCTAssertNil(device.subgroupPinning(spirv: SPIRV.add, specialization: [UInt32(l.subgroupSize * (l.maxComputeWorkgroupSubgroups + 1))]))
        // A kernel built with full subgroups runs and adds (the layer checks its creation).
        let k = try device.kernel(name: "add", spirv: SPIRV.add, access: [.read, .read, .write, .read, .read, .read], push: AddPush.self,
                                  specialization: [UInt32(2 * l.subgroupSize)])
        let n = 5 * l.subgroupSize
        let a = try buffer(device, (0..<n).map(Float.init)), b = try buffer(device, [Float](repeating: 1, count: n))
        let out = try device.allocate(n * 4).slice
        let stream = try CommandStream(device: device)
        try stream.dispatch(k, [a, b, out, a, a, a], push: AddPush(n), groups: ((n + 2 * l.subgroupSize - 1) / (2 * l.subgroupSize), 1, 1))
        try stream.submit()
        XCTAssertEqual(try read(device, out, n), (0..<n).map { Float($0) + 1 })
    }

    func testBarriersOnlyWhereDataDepends() throws {
        let k = try addKernel(device)
        let n = 100
        let a = try buffer(device, (0..<n).map(Float.init)), b = try buffer(device, [Float](repeating: 1, count: n))
        let x = try buffer(device, [Float](repeating: 0, count: n)), y = try buffer(device, [Float](repeating: 0, count: n))
        let z = try buffer(device, [Float](repeating: 0, count: n))
        let stream = try CommandStream(device: device)
        let push = AddPush(n)
        try stream.dispatch(k, [a, b, x, a, a, a], push: push, groups: (2, 1, 1))    // x = a + b
        try stream.dispatch(k, [a, b, y, a, a, a], push: push, groups: (2, 1, 1))    // y = a + b: independent
        XCTAssertEqual(stream.barrierCount, 0)
        try stream.dispatch(k, [x, y, z, a, a, a], push: push, groups: (2, 1, 1))    // z = x + y: reads x, y
        XCTAssertEqual(stream.barrierCount, 1)
        try stream.dispatch(k, [b, b, a, a, a, a], push: push, groups: (2, 1, 1))    // a = 2b: overwrites what was read
        XCTAssertEqual(stream.barrierCount, 2)
        try stream.submit()
        XCTAssertEqual(try read(device, z, n), (0..<n).map { 2 * Float($0) + 2 })
        XCTAssertEqual(try read(device, a, n), [Float](repeating: 2, count: n))
    }

    /// A descriptor set is cached on the second use of (kernel, bound ranges) and reused in later
    /// batches without writing; other ranges get their own set, and reused sets bind the right data.
    func testDescriptorSetsAreWrittenOnceAndReused() throws {
        let k = try addKernel(device)
        let n = 64
        let a = try buffer(device, (0..<n).map(Float.init)), b = try buffer(device, [Float](repeating: 1, count: n))
        let x = try buffer(device, [Float](repeating: 0, count: n))
        let stream = try CommandStream(device: device)
        for step in 1...4 {
            try stream.dispatch(k, [a, b, x, a, a, a], push: AddPush(n), groups: (1, 1, 1))    // x = a + b
            try stream.dispatch(k, [x, b, a, a, a, a], push: AddPush(n), groups: (1, 1, 1))    // a = x + b
            try stream.submit()
            XCTAssertEqual(stream.descriptorSetsWritten, step == 1 ? 2 : 4, "step \(step): a batch set, then a cached one, then none")
            XCTAssertEqual(try read(device, a, n), (0..<n).map { Float($0 + 2 * step) })
        }
        try stream.dispatch(k, [a, b, x.subslice(offset: 0, size: 128), a, a, a], push: AddPush(32), groups: (1, 1, 1))
        try stream.submit()
        XCTAssertEqual(stream.descriptorSetsWritten, 5)
    }

    /// `copy` (the calibration's bandwidth probe): ordered after the dispatch that writes its
    /// source, timed like a dispatch, and refused for slices of different sizes.
    func testCopyFollowsTheDispatchThatWritesItsSource() throws {
        let k = try addKernel(device)
        let n = 100
        let a = try buffer(device, (0..<n).map(Float.init)), b = try buffer(device, [Float](repeating: 1, count: n))
        let x = try buffer(device, [Float](repeating: 0, count: n)), y = try buffer(device, [Float](repeating: -1, count: n))
        let stream = try CommandStream(device: device, profiling: true)
        try stream.dispatch(k, [a, b, x, a, a, a], push: AddPush(n), groups: (2, 1, 1))    // x = a + b
        try stream.copy(x, to: y)
        XCTAssertEqual(stream.barrierCount, 1)
        try stream.submit()
        XCTAssertEqual(try read(device, y, n), (0..<n).map { Float($0) + 1 })
        if device.limits.timestamps {
            XCTAssertEqual(stream.timings.map(\.kernel), ["add", "copy"])
            XCTAssertEqual(stream.timings.last?.bytes, Double(2 * n * 4))
        }
        let small = try device.allocate(16).slice
        XCTAssertThrowsError(try stream.copy(x, to: small))
    }

    func testStagingPathOnADeviceWithoutMappableMemory() throws {
        let d = try VulkanDevice(validation: true, forceStaging: true)
        XCTAssertTrue(d.usesStaging)
        let k = try addKernel(d)
        let n = 1000
        let a = try buffer(d, (0..<n).map { Float($0) * 0.5 }), out = try buffer(d, [Float](repeating: .nan, count: n))
        let stream = try CommandStream(device: d)
        try stream.dispatch(k, [a, a, out, a, a, a], push: AddPush(n), groups: (16, 1, 1))
        try stream.submit()
        XCTAssertEqual(try read(d, out, n), (0..<n).map { Float($0) })
        XCTAssertEqual(d.validationMessages, [])
    }

    /// A discrete GPU's mapped device-local memory is read uncached across PCIe: reads past a few
    /// KiB go through a GPU copy into cached host memory instead (forced here on lavapipe, whose
    /// memory is cached), and come back the same; small reads stay direct.
    func testLargeReadsOfUncachedMemoryGoThroughCachedHostMemory() throws {
        let d = try VulkanDevice(validation: true)
        let n = 300_000
        let values = (0..<n).map { Float($0) * 0.25 - 7 }
        let a = try buffer(d, values)
        XCTAssertEqual(try read(d, a, n), values)
        XCTAssertEqual(d.stagedReads, 0, "lavapipe's memory is cached: read directly")
        d.uncachedReadsForTesting = true
        XCTAssertEqual(try read(d, a, n), values)
        XCTAssertEqual(d.stagedReads, 1)
        XCTAssertEqual(try read(d, a.subslice(offset: 4 * 1000, size: 4 * 500), 500), Array(values[1000..<1500]))
        XCTAssertEqual(d.stagedReads, 1, "2,000 bytes: read directly")
        // Past the 64 MiB staging buffer: two copies.
        let big = try d.allocate(65 << 20)
        let pattern = (0..<(big.size / 4)).map { UInt32(truncatingIfNeeded: $0 &* 2_654_435_761) }
        try pattern.withUnsafeBytes { try d.write($0, to: big.slice) }
        var back = [UInt32](repeating: 0, count: pattern.count)
        try back.withUnsafeMutableBytes { try d.read(big.slice, into: $0) }
        XCTAssertTrue(back == pattern)
        XCTAssertEqual(d.stagedReads, 2)
        XCTAssertEqual(d.validationMessages, [])
    }

    /// Readback allocations sit in the host's cached memory: a kernel writes them, and the host
    /// reads them directly even where device memory would need a GPU copy (forced here).
    func testReadbackAllocationsAreWrittenByKernelsAndReadDirectly() throws {
        let d = try VulkanDevice(validation: true)
        let k = try addKernel(d)
        let n = 20_000
        let a = try buffer(d, (0..<n).map { Float($0) })
        let out = try d.allocate(4 * n, readback: true)
        XCTAssertTrue(out.arena.readback)
        XCTAssertTrue(d.readbackArenas.contains { $0 === out.arena })
        let stream = try CommandStream(device: d)
        try stream.dispatch(k, [a, a, out.slice, a, a, a], push: AddPush(n), groups: ((n + 63) / 64, 1, 1))
        try stream.submit()
        d.uncachedReadsForTesting = true
        XCTAssertEqual(try read(d, out.slice, n), (0..<n).map { Float(2 * $0) })
        XCTAssertEqual(d.stagedReads, 0, "80,000 bytes read without a GPU copy")
        XCTAssertGreaterThanOrEqual(d.allocatedBytes, VulkanDevice.readbackArenaBytes)
        XCTAssertEqual(d.validationMessages, [])
    }

    func testMistakesAreCaughtBeforeDispatch() throws {
        let k = try addKernel(device)
        let a = try buffer(device, [1, 2, 3, 4])
        let stream = try CommandStream(device: device)
        XCTAssertThrowsError(try stream.dispatch(k, [a, a, a], push: AddPush(4), groups: (1, 1, 1))) {
            XCTAssertTrue("\($0)".contains("3 buffers bound, it takes 6"), "\($0)")
        }
        XCTAssertThrowsError(try stream.dispatch(k, [a, a, a, a, a, a], push: WrongPush(a: 4, b: 1), groups: (1, 1, 1))) {
            XCTAssertTrue("\($0)".contains("push constants WrongPush given, it takes AddPush"), "\($0)")
        }
        XCTAssertThrowsError(try stream.dispatch(k, [a, a, a, a, a, a], push: AddPush(4), groups: (device.limits.maxComputeWorkGroupCount[0] + 1, 1, 1)))
        let other = try VulkanDevice(validation: false)
        let foreign = try other.allocate(16).slice
        XCTAssertThrowsError(try stream.dispatch(k, [a, a, foreign, a, a, a], push: AddPush(4), groups: (1, 1, 1)))
        XCTAssertThrowsError(try device.kernel(name: "wrong-push", spirv: SPIRV.add, access: [.read], push: WrongPush.self)) {
            XCTAssertTrue("\($0)".contains("WrongPush is 8 bytes, the shader's push-constant block 16"), "\($0)")
        }
        XCTAssertEqual(stream.dispatchCount, 0)
    }

    func testTimestampsLabelEveryDispatch() throws {
        guard device.limits.timestamps else { return XCTAssertFalse(try CommandStream(device: device, profiling: true).profiling) }
        let k = try addKernel(device)
        let a = try buffer(device, [Float](repeating: 1, count: 4096))
        let stream = try CommandStream(device: device, profiling: true)
        for i in 0..<3 {
            try stream.dispatch(k, [a, a, a, a, a, a], push: AddPush(4096), groups: (64, 1, 1), label: "step \(i)")
        }
        try stream.submit()
        XCTAssertEqual(stream.timings.map(\.label), ["step 0", "step 1", "step 2"])
        XCTAssertTrue(stream.timings.allSatisfy { $0.nanoseconds > 0 && $0.nanoseconds < 1e10 })
        XCTAssertEqual(try read(device, a, 1), [8])
    }

    /// A batch queued in chunks while it is recorded (submitEvery 2: chunks of 2, 4, 8, 16, 16…):
    /// a chain of dependent dispatches across the chunks gives the same result as one command
    /// buffer, the profile still has one timing per dispatch in order, and a batch that ends on a
    /// chunk boundary still waits for all of it.
    func testChunkedBatchesKeepOrderAndTimings() throws {
        let k = try addKernel(device)
        let n = 64
        let b = try buffer(device, [Float](repeating: 1, count: n))
        let stream = try CommandStream(device: device, profiling: true, submitEvery: 2)
        for (steps, chunks) in [(40, 4), (2, 1), (1, 0)] {
            let x = try buffer(device, [Float](repeating: 0, count: n))
            let queuedBefore = stream.chunksQueued
            for i in 0..<steps {
                try stream.dispatch(k, [x, b, x, b, b, b], push: AddPush(n), groups: (1, 1, 1), label: "step \(i)")    // x += 1
            }
            try stream.submit()
            XCTAssertEqual(stream.chunksQueued - queuedBefore, chunks, "\(steps) dispatches")
            XCTAssertEqual(try read(device, x, n), [Float](repeating: Float(steps), count: n), "\(steps) dispatches")
            if device.limits.timestamps {
                XCTAssertEqual(stream.timings.map(\.label), (0..<steps).map { "step \($0)" })
                XCTAssertTrue(stream.timings.allSatisfy { $0.nanoseconds >= 0 && $0.nanoseconds < 1e10 })
            }
        }
        XCTAssertEqual(stream.submitEvery, 2)
        XCTAssertEqual(try CommandStream(device: device, submitEvery: -3).submitEvery, 0)
    }

    /// Command-buffer reuse: commands captured once run again on new contents of their buffers,
    /// in order with what is recorded after them (the replay's last writes are pending hazards),
    /// and a dropped recording frees its command buffer without disturbing the stream's own.
    func testRecordedCommandsReplayOnNewContents() throws {
        let k = try addKernel(device)
        let n = 64
        for submitEvery in [0, 2] {
            let stream = try CommandStream(device: device, submitEvery: submitEvery)
            let x = try buffer(device, [Float](repeating: 0, count: n)), b = try buffer(device, [Float](repeating: 1, count: n))
            let y = try buffer(device, [Float](repeating: 0, count: n)), z = try buffer(device, [Float](repeating: 0, count: n))
            // The step: x += b twice, y = x + b; then z = y + b recorded after it, outside the capture.
            func step() throws {
                try stream.dispatch(k, [x, b, x, b, b, b], push: AddPush(n), groups: (1, 1, 1))
                try stream.dispatch(k, [x, b, x, b, b, b], push: AddPush(n), groups: (1, 1, 1))
                try stream.dispatch(k, [x, b, y, b, b, b], push: AddPush(n), groups: (1, 1, 1))
            }
            func after() throws { try stream.dispatch(k, [y, b, z, b, b, b], push: AddPush(n), groups: (1, 1, 1)) }
            try step()
            try stream.submit()
            XCTAssertEqual(try read(device, z, n), [Float](repeating: 0, count: n))
            XCTAssertTrue(try stream.beginCapture())
            XCTAssertFalse(try stream.beginCapture(), "one capture at a time")
            try step()
            var recorded: RecordedCommands! = try XCTUnwrap(try stream.endCapture())
            XCTAssertEqual([recorded.dispatches, recorded.barriers], [3, 2])
            try after()
            try stream.submit()
            XCTAssertEqual(try read(device, x, n), [Float](repeating: 4, count: n))
            XCTAssertEqual(try read(device, z, n), [Float](repeating: 6, count: n))
            for (start, round) in [(Float(10), 0), (-3, 1), (0.5, 2)] {
                try [Float](repeating: start, count: n).withUnsafeBytes { try device.write($0, to: x) }
                let (dispatches, barriers) = (stream.dispatchCount, stream.barrierCount)
                try stream.replay(recorded)
                XCTAssertEqual(stream.dispatchCount - dispatches, 3)
                try after()
                XCTAssertEqual(stream.barrierCount - barriers, 3, "the replay's barriers, and one before z reads its y")
                try stream.submit()
                XCTAssertEqual(try read(device, y, n), [Float](repeating: start + 3, count: n), "round \(round)")
                XCTAssertEqual(try read(device, z, n), [Float](repeating: start + 4, count: n), "round \(round)")
            }
            // A replay with a batch open runs that batch first.
            try [Float](repeating: 0, count: n).withUnsafeBytes { try device.write($0, to: x) }
            try stream.dispatch(k, [x, b, x, b, b, b], push: AddPush(n), groups: (1, 1, 1))
            try stream.replay(recorded)
            try stream.submit()
            XCTAssertEqual(try read(device, y, n), [Float](repeating: 4, count: n))
            XCTAssertEqual([stream.captures, stream.replays], [1, 4])
            // Misuse is refused, not run.
            XCTAssertFalse(try CommandStream(device: device, profiling: true).beginCapture() && device.limits.timestamps,
                           "a profiling stream captures nothing")
            XCTAssertThrowsError(try CommandStream(device: device).replay(recorded)) { XCTAssertTrue("\($0)".contains("another stream"), "\($0)") }
            try stream.dispatch(k, [x, b, x, b, b, b], push: AddPush(n), groups: (1, 1, 1))
            XCTAssertFalse(try stream.beginCapture(), "not with a batch open")
            try stream.submit()
            XCTAssertTrue(try stream.beginCapture())
            XCTAssertThrowsError(try stream.replay(recorded)) { XCTAssertTrue("\($0)".contains("during a capture"), "\($0)") }
            try step()
            try stream.submit()  // ends the capture; its commands ran, and are not kept
            XCTAssertNil(try stream.endCapture())
            // Dropping the recording, then plain batches and another capture.
            weak var dropped = recorded
            recorded = nil
            XCTAssertNil(dropped, "nothing but its owner holds a recording once its batches have run")
            for _ in 0..<3 {
                try step()
                try stream.submit()
            }
            XCTAssertTrue(try stream.beginCapture())
            try step()
            XCTAssertNotNil(try stream.endCapture())
            try stream.submit()
            // With the descriptor-set cache full, a capture still runs its commands but keeps none
            // (its sets would be reset with the batch's pools).
            let full = try CommandStream(device: device, submitEvery: submitEvery)
            full.maxCachedSets = 0
            try [Float](repeating: 0, count: n).withUnsafeBytes { try device.write($0, to: x) }
            XCTAssertTrue(try full.beginCapture())
            try full.dispatch(k, [x, b, x, b, b, b], push: AddPush(n), groups: (1, 1, 1))
            XCTAssertNil(try full.endCapture())
            try full.submit()
            XCTAssertEqual(try read(device, x, n), [Float](repeating: 1, count: n))
            XCTAssertEqual([full.captures, full.replays], [0, 0])
        }
    }

    /// The hazard tracker's merged ranges against a plain list of slices: random inserts and
    /// queries over two arenas (a second arena forced by an allocation past the first's size).
    func testPendingRangesAgreeWithAPlainList() throws {
        let small = try device.allocate(4096), big = try device.allocate(VulkanDevice.arenaBytes + 4096)
        XCTAssertNotEqual(small.slice.arenaID, big.slice.arenaID)
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            var ranges = PendingRanges(), plain: [BufferSlice] = []
            func random() -> BufferSlice {
                let a = Bool.random(using: &rng) ? small : big
                let offset = Int.random(in: 0..<512, using: &rng), size = Int.random(in: 1...64, using: &rng)
                return a.slice.subslice(offset: offset, size: size)
            }
            for _ in 0..<40 {
                let q = random()
                XCTAssertEqual(ranges.overlaps(q), plain.contains { $0.overlaps(q) }, "\(q.offset)+\(q.size) against \(plain.map { ($0.offset, $0.size) })")
                let w = random()
                ranges.insert(w)
                plain.append(w)
            }
            XCTAssertLessThanOrEqual(ranges.count, plain.count)
            ranges.removeAll()
            XCTAssertTrue(ranges.isEmpty)
            XCTAssertFalse(ranges.overlaps(plain[0]))
        }
    }

    func testSubAllocationReusesFreedRanges() throws {
        var first: DeviceAllocation? = try device.allocate(1 << 20)
        let offset = first!.offset
        let arenas = device.arenas.count
        first = nil
        let second = try device.allocate(1 << 19)
        let third = try device.allocate(1 << 19)
        XCTAssertEqual(second.offset, offset)
        XCTAssertEqual(third.offset, offset + (1 << 19))
        XCTAssertEqual(device.arenas.count, arenas)
        XCTAssertEqual(third.offset % device.limits.minStorageBufferOffsetAlignment, 0)
    }

    func testRowChunksCoverEveryRowWithinTheLimit() {
        let chunks = rowChunks(rows: 1000, rowBytes: 34 * 3, limit: 4096, alignment: 16)
        XCTAssertEqual(chunks.map(\.count).reduce(0, +), 1000)
        XCTAssertEqual(chunks.first?.first, 0)
        for (c, next) in zip(chunks, chunks.dropFirst()) { XCTAssertEqual(c.first + c.count, next.first) }
        for c in chunks {
            XCTAssertLessThanOrEqual(c.count * 102, 4096)
            XCTAssertEqual(c.first * 102 % 16, 0)
        }
        XCTAssertEqual(rowChunks(rows: 10, rowBytes: 8, limit: 4096, alignment: 16), [RowChunk(first: 0, count: 10)])
    }

    func testMissingLoaderNamesThePackage() {
        guard case .failure(let e) = VulkanLoader.open(["/nonexistent/libvulkan.so.1"]) else { return XCTFail("opened a missing loader") }
        XCTAssertTrue(e.description.contains("apt-get install libvulkan1"), e.description)
    }

    func testMissingDeviceNumberIsAnError() {
        XCTAssertThrowsError(try VulkanDevice(index: 99, validation: false)) {
            XCTAssertTrue("\($0)".contains("device 99 does not exist"), "\($0)")
        }
    }
}
