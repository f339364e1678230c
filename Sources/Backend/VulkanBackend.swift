import Foundation
import Shaders
import VulkanCompute

/// Records the SPIR-V kernels of `Shaders/` into one command stream; `synchronize()` submits the
/// batch and waits. Host writes and reads flush what is pending first, so the order of effects
/// is the same as on the CPU backend.
public final class VulkanBackend: Backend {
    public var name: String { "vulkan (\(family.rawValue) kernels)" }
    public let device: VulkanDevice
    public let stream: CommandStream
    /// The widest window one descriptor may bind; tensors beyond it are bound in row chunks.
    /// Defaults to the device's maxStorageBufferRange (at most 2 GiB); tests lower it to exercise chunking.
    public var bindingLimit: Int
    /// The most texels one texel-buffer binding may hold (the device's maxTexelBufferElements);
    /// lavapipe's vector kernel reads weights through texel buffers, so its windows are capped by
    /// this too. On a GPU that is the tighter cap: NVIDIA's 2^27 texels are 512 MiB of 4-byte words,
    /// against a 2 GiB storage window. Tests lower it to exercise chunking.
    public var texelLimit: Int
    /// Label given to the next dispatches in profiles (e.g. "layer 3 attention").
    public var profileLabel = ""
    /// The matrix kernels' family (KernelFamily): `kernels` if given, else $ROAST_KERNELS, else
    /// the device's default.
    public let family: KernelFamily
    static let workgroup: UInt32 = 64
    private var scratch: [String: Tensor] = [:]
    /// The matrix-unit shape of the cooperative-matrix kernel (Shaders/matmul_coopmat.comp): nil on
    /// the lavapipe family, on devices without f16 matrix units of a shape the kernel takes, and
    /// where the kernel disagreed with the CPU twin when the backend opened.
    public internal(set) var cooperativeShape: CooperativeMatrixShape?
    /// Why the cooperative-matrix kernel is off although the device has matrix units (the probe's finding).
    public private(set) var cooperativeProblem: String?
    /// Verification only: `.cooperative` matmuls run matmul_coopmat_emulated.comp, the same kernel
    /// with the matrix operations in plain GLSL (16 × 16 × 16), on a device without matrix units,
    /// so lavapipe checks the kernel's tiling, staging, rounding and epilogue. `.auto` never takes it.
    public internal(set) var cooperativeEmulated = false
    /// The gpu family's tiled matmuls split K over more workgroups when their grid has fewer than
    /// this many tiles (SplitK); 0 never splits, neither there nor in the vector kernel's shared
    /// row groups (vectorSplit). $ROAST_SPLIT_K, else SplitK.defaultTargetGroups.
    public var splitKTargetGroups: Int

    /// The environment variable for CommandStream.submitEvery: the dispatches of a batch's first
    /// command buffer, queued while the host records the rest (later ones twice as long, up to
    /// 8 ×); 0 records each batch whole before queueing it.
    public static let submitEveryVariable = "ROAST_SUBMIT_EVERY"
    /// On a GPU: a decode step of a 0.5B model is ~250 dispatches, and chunks of 16, 32, 64, 128,
    /// 128 keep five queue submissions a token and let the device start after the first 16. On a
    /// CPU device the "device" is the same cores the host records on: chunks there cost lavapipe
    /// ~10 % of decode (docs/PERFORMANCE.md), so a batch goes whole.
    public static func defaultSubmitEvery(for kind: DeviceKind) -> Int {
        switch kind {
        case .discrete, .integrated, .virtual: 16
        case .cpu, .other: 0
        }
    }

    public static func submitEvery(for kind: DeviceKind,
                                   environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Int {
        try environmentCount(submitEveryVariable, default: defaultSubmitEvery(for: kind), counting: "dispatch count",
                             zero: "queues each batch whole", environment: environment)
    }

    /// The environment variable for `reusesCommands`: 0 records every step anew, 1 (the default) keeps
    /// a step's commands for the steps that repeat it.
    public static let reuseCommandsVariable = "ROAST_REUSE_COMMANDS"
    /// Whether `beginReusableOps()` captures (CommandStream.beginCapture): a decode step's command
    /// buffer is then recorded once and queued again for the tokens after it.
    public var reusesCommands: Bool

    public static func reuseCommands(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Bool {
        switch environment[reuseCommandsVariable] ?? "" {
        case "", "1": true
        case "0": false
        case let text: throw BackendError("\(reuseCommandsVariable)=\(text): 1 keeps a decode step's commands for the next tokens, 0 records every step anew")
        }
    }

    /// `submitEvery`: CommandStream.submitEvery, else $ROAST_SUBMIT_EVERY, else the device kind's default.
    /// `reuseCommands`: else $ROAST_REUSE_COMMANDS, else on.
    public init(device: VulkanDevice, profiling: Bool = false, kernels: KernelFamily? = nil, submitEvery: Int? = nil,
                reuseCommands: Bool? = nil) throws {
        self.device = device
        let l = device.limits
        guard device.pinsSubgroupSize || l.minSubgroupSize == l.maxSubgroupSize else {
            // The kernels are planned for the reported width; the decode attention kernel's
            // workgroup is one subgroup of it, and would compute from a part of each head.
            throw BackendError("device \(device.info.name) runs compute subgroups of \(l.minSubgroupSize)–\(l.maxSubgroupSize) lanes and cannot "
                               + "require its reported \(l.subgroupSize) (VK_EXT_subgroup_size_control): the kernels need that width")
        }
        reusesCommands = try reuseCommands ?? Self.reuseCommands()
        family = try KernelFamily.resolve(kernels, for: device.info)
        stream = try CommandStream(device: device, profiling: profiling, submitEvery: try submitEvery ?? Self.submitEvery(for: device.info.kind))
        splitKTargetGroups = try SplitK.targetGroups()
        // At most 2 GiB a binding: the shaders index weights by element in 32-bit uints, and a
        // q4_k window of 4 GiB (a GPU's maxStorageBufferRange) holds 7.6 G elements.
        bindingLimit = min(device.limits.maxStorageBufferRange, 1 << 31)
        texelLimit = device.limits.maxTexelBufferElements
        if family == .gpu, let shape = Self.cooperativeShape(device.cooperativeMatrix, subgroupSize: device.limits.subgroupSize) {
            cooperativeShape = shape
            if let problem = probeCooperative() { disableCooperative(problem) }
        }
    }

    /// Turns the matrix units off for this backend's life, saying why on stderr: prefill and
    /// batches then tile on the ALUs (matmul_gpu.comp).
    func disableCooperative(_ problem: String) {
        cooperativeShape = nil
        cooperativeProblem = problem
        FileHandle.standardError.write(Data("roast: \(problem); prefill uses matmul_gpu instead\n".utf8))
    }

    // MARK: memory

    public func makeTensor(_ type: ElementType, count: Int) throws -> Tensor {
        guard count > 0 else { throw BackendError("tensor of \(count) elements") }
        // Whole 16-byte words: kernels read activations as vec4.
        let alloc = try device.allocate((type.byteCount(count) + 15) & ~15)
        return Tensor(type: type, count: count, storage: alloc, backend: self)
    }

    /// In the host's cached memory (a discrete GPU writes it across the bus, the host reads it
    /// without a GPU copy and its wait).
    public func makeReadbackTensor(_ type: ElementType, count: Int) throws -> Tensor {
        guard count > 0 else { throw BackendError("tensor of \(count) elements") }
        let alloc = try device.allocate((type.byteCount(count) + 15) & ~15, readback: true)
        return Tensor(type: type, count: count, storage: alloc, backend: self)
    }

    public func slice(_ t: Tensor) -> BufferSlice {
        // A tensor of another backend here is a bug in the caller, named rather than a bare cast failure.
        guard let a = t.storage as? DeviceAllocation else { preconditionFailure("the Vulkan backend was given a tensor of another backend") }
        return a.slice
    }

    public func write(_ t: Tensor, bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count <= t.byteCount else { throw BackendError("write of \(bytes.count) bytes into a \(t.byteCount)-byte tensor") }
        if stream.dispatchCount > 0 { try synchronize() }
        try device.write(bytes, to: slice(t))
    }

    public func readBytes(_ t: Tensor) throws -> [UInt8] {
        try synchronize()
        var out = [UInt8](repeating: 0, count: t.byteCount)
        try out.withUnsafeMutableBytes { try device.read(slice(t), into: $0) }
        return out
    }

    /// With profiling on: every dispatch's GPU time since the last `takeProfile()`.
    public private(set) var profile: [DispatchTiming] = []

    public func synchronize() throws {
        try stream.submit()
        if stream.profiling { profile += stream.timings }
    }

    public func takeProfile() -> [DispatchTiming] {
        defer { profile = [] }
        return profile
    }

    // MARK: reuse of recorded work

    public func beginReusableOps() throws -> Bool { try reusesCommands && stream.beginCapture() }

    public func endReusableOps() throws -> ReusableOps? { try stream.endCapture() }

    public func replay(_ ops: ReusableOps) throws {
        guard let recorded = ops as? RecordedCommands else { throw BackendError("replay of ops \(type(of: ops)) that no Vulkan stream kept") }
        try stream.replay(recorded)
    }

    /// The attention kernels' grids and push constants depend on the context bound only through
    /// its number of 256-position chunks.
    public func attentionBucket(contextBound: Int) -> Int { (contextBound + Self.attentionChunk - 1) / Self.attentionChunk }

    /// A scratch tensor of at least `count` elements, reused across ops (the stream's hazard
    /// tracking orders the reuse).
    private func scratchTensor(_ key: String, _ type: ElementType, count: Int) throws -> Tensor {
        if let t = scratch[key], t.count >= count { return t }
        let t = try makeTensor(type, count: count)
        scratch[key] = t
        return t
    }

    // MARK: kernels

    /// Rows per matvec invocation, sharing each X quad it fetches: 8 at any column count (at one
    /// column 4 rows were 8 % slower and 16 no better; at eight columns 2 and 4 rows were 34 % and
    /// 9 % slower, 1 × 3072 × 576 q4_1); docs/KERNELS.md has the figures.
    func matvecRows(columns: Int) -> Int { 8 }
    /// 64 rows per matvec workgroup, in whole subgroups.
    func matvecWorkgroup(rows: Int) -> UInt32 { UInt32(max(64 / rows, device.limits.subgroupSize)) }

    private func kernel<P: PushConstants>(_ name: String, _ spirv: [UInt32], _ access: [BindingAccess], push: P.Type,
                                          format: ElementType? = nil, workgroup: UInt32 = VulkanBackend.workgroup) throws -> Kernel {
        let spec = [workgroup] + (format.map { [$0.shaderFormat] } ?? [])
        let specName = format.map { "\(name).\($0.rawValue)" } ?? name
        return try device.kernel(name: specName, spirv: spirv, access: access, push: push, specialization: spec)
    }

    /// `bytes` and `flops`: what the op must move and compute (for the profile's GB/s and GFLOP/s).
    private func dispatch<P: PushConstants>(_ k: Kernel, _ tensors: [BufferSlice], _ push: P, _ groups: (Int, Int, Int),
                                            bytes: Int = 0, flops: Int = 0) throws {
        try stream.dispatch(k, tensors, push: push, groups: groups, label: profileLabel.isEmpty ? k.name : profileLabel,
                            work: DispatchWork(bytes: Double(bytes), flops: Double(flops)))
    }

    /// x × y grid covering `rows` workgroups within the 65,535-per-dimension limit.
    private func rowGrid(_ rows: Int) -> (Int, Int, Int) {
        let x = min(rows, 65535)
        return (x, (rows + x - 1) / x, 1)
    }

    private func groups(_ n: Int) -> Int { (n + Int(Self.workgroup) - 1) / Int(Self.workgroup) }

    /// Row windows of a [rows × width] weight tensor that each fit one binding: a storage buffer,
    /// or with `texelBytes` a texel buffer of texels that wide.
    func weightChunks(_ w: Tensor, rows: Int, width: Int, texelBytes: Int? = nil) throws -> [(RowChunk, BufferSlice)] {
        let rowBytes = w.type.byteCount(width)
        let limit = texelBytes.map { min(bindingLimit, texelLimit * $0) } ?? bindingLimit
        guard rowBytes <= limit else { throw BackendError("a \(width)-wide \(w.type.rawValue) row exceeds the device's binding limit") }
        let align = max(device.limits.minStorageBufferOffsetAlignment, device.limits.minTexelBufferOffsetAlignment)
        let whole = slice(w)
        return rowChunks(rows: rows, rowBytes: rowBytes, limit: limit, alignment: align).map { c in
            let start = c.first * rowBytes
            let size = min((c.count * rowBytes + 15) & ~15, whole.size - start)
            return (c, whole.subslice(offset: start, size: size))
        }
    }

    /// The vector kernel (up to 8 columns per dispatch, larger M in column groups of 8) serves
    /// K a multiple of 4 (X is read in quads). Lavapipe's (Shaders/matvec.comp, one invocation per
    /// weight row) also needs the column groups of X and Y to start on the device's texel
    /// alignment; the GPU family's (matvec_gpu.comp) binds them as storage buffers. The tiled
    /// kernel takes every other shape.
    func vectorKernelFits(m: Int, n: Int, k: Int) -> Bool {
        let lim = device.limits
        let align = family == .gpu ? lim.minStorageBufferOffsetAlignment
            : max(lim.minTexelBufferOffsetAlignment, lim.minStorageBufferOffsetAlignment)
        return k % 4 == 0
            && (m <= 8 || ((8 * k * 4) % align == 0 && (8 * n * 4) % align == 0))
    }

    /// Whether `.auto` takes the vector kernel: on lavapipe wherever it fits (it is the faster one
    /// there at any M); on a GPU only up to 8 columns (decode), never column group by column group.
    func autoPicksVector(m: Int, n: Int, k: Int) -> Bool {
        vectorKernelFits(m: m, n: n, k: k) && (family == .lavapipe || m <= 8)
    }

    public func matmul(weight w: Tensor, input xIn: Tensor, output y: Tensor, m: Int, n: Int, k: Int, kernel kind: MatmulKernel,
                       inputNorm: InputNorm?, epilogue: MatmulEpilogue) throws {
        try OpCheck.matmul(w, xIn, y, m: m, n: n, k: k, kernel: kind, inputNorm: inputNorm, epilogue: epilogue, backend: self)
        let ldy = epilogue.width(n: n)
        if kind == .vector, !vectorKernelFits(m: m, n: ldy, k: k) {
            throw BackendError("matmul: the matrix × vector kernel needs k a multiple of 4 (got \(k)) and column groups on the device's buffer alignment")
        }
        let vector = kind == .vector || (kind == .auto && autoPicksVector(m: m, n: ldy, k: k))
        // The vector kernel normalises a single column on the way in (the norm's work is then
        // shared by the rows it computes). With more columns each row group would redo the norm of
        // all of them, so the norm runs apart, once, as it does before the tiled kernel.
        let fusedNorm = vector && m == 1 ? inputNorm : nil
        var x = xIn
        if let norm = inputNorm, fusedNorm == nil {
            x = try scratchTensor("matmul.input-norm", .f32, count: m * k)
            try rmsNorm(input: xIn, weight: norm.weight, output: x, rows: m, width: k, eps: norm.eps)
        }
        let epi = epilogueBindings(epilogue, output: y)
        // What the epilogue reads and writes beyond the product: the residual, the k and v rows.
        let outBytes = 4 * m * (epi.code == .residual ? 2 * n : n)
        let chunks = try weightChunks(w, rows: n, width: k, texelBytes: vector && family == .lavapipe ? Self.matvecWeightAccess(w.type).texelBytes : nil)
        if epi.code.pairsRows, chunks.contains(where: { $0.0.first % 2 != 0 || $0.0.count % 2 != 0 }) {
            throw BackendError("matmul: the weight's binding windows split a pair of rows the epilogue combines")
        }
        if kind == .cooperative, cooperativeShape == nil, !cooperativeEmulated {
            throw BackendError("matmul: the cooperative-matrix kernel needs the gpu kernel family on a device with f16 matrix units "
                               + "(VK_NV_cooperative_matrix, subgroups of 32)\(cooperativeProblem.map { "; \($0)" } ?? "")")
        }
        // Matrix units for every M past the vector kernel's, except f32 weights (their precision
        // would be cut to f16 on the way in): those, and devices without the units, tile on the ALUs.
        let units = kind == .cooperative || (kind == .auto && !vector && w.type != .f32) ? cooperativeShape : nil
        guard !vector else {
            try vectorMatmul(w, x, y, m: m, n: n, k: k, ldy: ldy, epi: epi, norm: fusedNorm, chunks: chunks, outBytes: outBytes)
            return
        }
        let split = tiledSplit(m: m, n: n, k: k, type: w.type)
        let kern: Kernel
        do {
            kern = try tiledKernel(w.type, epilogue: epi.code, split: split != nil, units: units, emulated: units == nil && kind == .cooperative)
        } catch let error where units != nil && kind == .auto {
            // The probe compiled one variant; a driver refusing another (a format, an epilogue,
            // split-K) turns the matrix units off as a failed probe does, and the ALUs take over.
            disableCooperative("the driver did not build the cooperative-matrix matmul for \(w.type.rawValue) weights: \(error)")
            kern = try tiledKernel(w.type, epilogue: epi.code, split: split != nil, units: nil, emulated: false)
        }
        let tile = family == .gpu ? 64 : 32
        let work = { (rows: Int) in (bytes: w.type.byteCount(rows * k) + 4 * m * k + outBytes * rows / n, flops: 2 * m * rows * k) }
        guard let split else {
            for (chunk, ws) in chunks {
                let push = epi.push(k: k, n: chunk.count, m: m, yOffset: chunk.first, ldy: ldy, columnBase: 0, eps: 0)
                let (bytes, flops) = work(chunk.count)
                try dispatch(kern, [ws, slice(x), slice(y)] + epi.slices, push, ((chunk.count + tile - 1) / tile, (m + tile - 1) / tile, 1),
                             bytes: bytes, flops: flops)
            }
            return
        }
        // Split-K: the slices' partial sums, [slices][m][n], then their sum through the epilogue.
        let partial = slice(try scratchTensor("matmul.split-k", .f32, count: split.slices * m * n))
        let unused = Array(repeating: partial, count: Self.epilogueAccess.count)
        for (chunk, ws) in chunks {
            var push = MatmulPush(K: UInt32(k), N: UInt32(chunk.count), M: UInt32(m), yOffset: UInt32(chunk.first), ldy: UInt32(n), steer: 0,
                                  mBase: 0, captureGate: 0, kvWidth: 0, headDim: 0, attnFlags: 0, eps: 0)
            push.kSlice = UInt32(split.kSlice)
            let (bytes, flops) = work(chunk.count)
            try dispatch(kern, [ws, slice(x), partial] + unused, push, ((chunk.count + tile - 1) / tile, (m + tile - 1) / tile, split.slices),
                         bytes: bytes - outBytes * chunk.count / n + 4 * split.slices * m * chunk.count, flops: flops)
        }
        var push = epi.push(k: k, n: n, m: m, yOffset: 0, ldy: ldy, columnBase: 0, eps: 0)
        push.slices = UInt32(split.slices)
        let reduce = try device.kernel(name: "matmul_reduce.\(epi.code)", spirv: SPIRV.matmul_reduce,
                                       access: [.read, .read, .write] + Self.epilogueAccess, push: MatmulPush.self,
                                       specialization: [256, 0, 0, 0, epi.code.rawValue])
        try dispatch(reduce, [partial, partial, slice(y)] + epi.slices, push, (((n + 1) / 2 + 255) / 256, m, 1),
                     bytes: 4 * split.slices * m * n + outBytes, flops: split.slices * m * n)
    }

    /// The tiled kernel's pipeline: on the matrix units (`units`), emulated (verification), on the
    /// gpu family's ALUs, or lavapipe's.
    private func tiledKernel(_ type: ElementType, epilogue: EpilogueCode, split: Bool, units: CooperativeMatrixShape?, emulated: Bool) throws -> Kernel {
        let name: String, spirv: [UInt32], invocations: UInt32, shape: [UInt32]
        if units != nil || emulated {
            let cm = units ?? CooperativeMatrixShape(m: 16, n: 16, k: 16) // the emulation's
            (name, spirv) = units == nil ? ("matmul_coopmat_emulated", SPIRV.matmul_coopmat_emulated) : ("matmul_coopmat", SPIRV.matmul_coopmat)
            (invocations, shape) = (128, [UInt32(cm.m), UInt32(cm.n), UInt32(cm.k)])
        } else {
            (name, spirv) = family == .gpu ? ("matmul_gpu", SPIRV.matmul_gpu) : ("matmul", SPIRV.matmul)
            (invocations, shape) = (family == .gpu ? 256 : Self.workgroup, [])
        }
        // Specialization ids: 0 workgroup, 1 format, 4 epilogue, 7 split-K, 10–12 the matrix shape.
        let spec: [UInt32] = [invocations, type.shaderFormat, 0, 0, split ? EpilogueCode.store.rawValue : epilogue.rawValue,
                              0, 0, split ? 1 : 0] + (shape.isEmpty ? [] : [0, 0] + shape)
        return try device.kernel(name: "\(name)\(split ? ".split" : "").\(type.rawValue)", spirv: spirv,
                                 access: [.read, .read, .write] + Self.epilogueAccess, push: MatmulPush.self, specialization: spec)
    }

    /// The split-K a tiled matmul of this shape takes (the gpu family's, below its target grid).
    public func tiledSplit(m: Int, n: Int, k: Int, type: ElementType) -> SplitK? {
        family == .gpu ? SplitK.plan(m: m, n: n, k: k, blockElements: type.blockElements, targetGroups: splitKTargetGroups) : nil
    }

    /// The vector kernel in column groups of up to 8.
    private func vectorMatmul(_ w: Tensor, _ x: Tensor, _ y: Tensor, m: Int, n: Int, k: Int, ldy: Int, epi: EpilogueBindings,
                              norm fusedNorm: InputNorm?, chunks: [(RowChunk, BufferSlice)], outBytes: Int) throws {
        let (xs, ys) = (slice(x), slice(y))
        for m0 in stride(from: 0, to: m, by: 8) {
            let cols = min(8, m - m0)
            let (kern, rowsPerGroup) = try vectorKernel(w.type, rows: n, k: k, columns: cols, epilogue: epi.code, norm: fusedNorm != nil)
            let xg = xs.subslice(offset: m0 * k * 4, size: cols * k * 4)
            // Binding 9: the input norm's weight, as quads (X's group where there is none).
            let normWeight = fusedNorm.map { slice($0.weight).subslice(offset: 0, size: k * 4) } ?? xg
            let yg = ys.subslice(offset: m0 * ldy * 4, size: cols * ldy * 4)
            for (chunk, ws) in chunks {
                let push = epi.push(k: k, n: chunk.count, m: cols, yOffset: chunk.first, ldy: ldy, columnBase: m0, eps: fusedNorm?.eps ?? 0)
                try dispatch(kern, [ws, xg, yg] + epi.slices + [normWeight], push, rowGrid((chunk.count + rowsPerGroup - 1) / rowsPerGroup),
                             bytes: w.type.byteCount(chunk.count * k) + 4 * cols * k + outBytes * cols * chunk.count / (m * n),
                             flops: 2 * cols * chunk.count * k)
            }
        }
    }

    /// Subgroups per workgroup of the GPU family's vector kernel.
    static let gpuMatvecSubgroups = 4
    /// Weight rows a subgroup takes at a time (even: the pair epilogues): 4 for one or two columns,
    /// so more loads are in flight when each row's K is short, 2 with more columns (registers).
    static func gpuMatvecRows(columns: Int) -> Int { columns <= 2 ? 4 : 2 }

    /// The subgroups the gpu family's vector kernel aims for before several share a row group:
    /// about 32 per multiprocessor of a 132-SM GPU, so enough loads are in flight to stream the
    /// weights at the memory's bandwidth.
    static let gpuMatvecTargetSubgroups = 4096

    /// Subgroups per row group of matvec_gpu.comp (its KSPLIT): 1 where the rows alone give the
    /// target; else 2 or 4, while every lane still walks at least two 16-element runs of K.
    static func gpuMatvecKSplit(rows n: Int, k: Int, columns: Int, subgroupSize: Int, target: Int = gpuMatvecTargetSubgroups) -> Int {
        let groups = (n + gpuMatvecRows(columns: columns) - 1) / gpuMatvecRows(columns: columns)
        var split = 1
        for s in [2, 4] where groups * split < target && k / 16 >= 2 * s * subgroupSize { split = s }
        return split
    }

    /// The split the vector kernel takes for an [n × k] weight (1 on the lavapipe family, or with
    /// split-K turned off).
    public func vectorSplit(rows n: Int, k: Int, columns: Int) -> Int {
        family == .gpu && splitKTargetGroups > 0
            ? Self.gpuMatvecKSplit(rows: n, k: k, columns: columns, subgroupSize: device.limits.subgroupSize) : 1
    }

    /// The family's matrix × vector pipeline for `columns` ≤ 8 of an [n × k] weight, and the weight
    /// rows each workgroup covers.
    private func vectorKernel(_ type: ElementType, rows n: Int, k: Int, columns: Int, epilogue: EpilogueCode, norm: Bool) throws -> (Kernel, Int) {
        let access = Self.epilogueAccess + [family == .gpu ? BindingAccess.read : .quads]
        if family == .gpu {
            let sg = device.limits.subgroupSize
            let perSubgroup = Self.gpuMatvecRows(columns: columns)
            let split = vectorSplit(rows: n, k: k, columns: columns)
            let rows = Self.gpuMatvecSubgroups / split * perSubgroup
            let kern = try device.kernel(name: "matvec_gpu.\(type.rawValue)", spirv: SPIRV.matvec_gpu, access: [.read, .read, .write] + access,
                                         push: MatmulPush.self,
                                         specialization: [UInt32(Self.gpuMatvecSubgroups * sg), type.shaderFormat, UInt32(columns),
                                                          UInt32(perSubgroup), epilogue.rawValue, norm ? 1 : 0, UInt32(rows), UInt32(split)])
            return (kern, rows)
        }
        let rows = matvecRows(columns: columns)
        let wg = matvecWorkgroup(rows: rows)
        let kern = try device.kernel(name: "matvec.\(type.rawValue)", spirv: SPIRV.matvec, access: [Self.matvecWeightAccess(type), .quads, .write] + access,
                                     push: MatmulPush.self,
                                     specialization: [wg, type.shaderFormat, UInt32(columns), UInt32(rows), epilogue.rawValue, norm ? 1 : 0])
        return (kern, Int(wg) * rows)
    }

    /// How lavapipe's vector kernel binds a weight: q4_1 and q8_0 as uvec4 texels (see
    /// Shaders/matvec.comp), the rest as words.
    static func matvecWeightAccess(_ type: ElementType) -> BindingAccess { type == .q4_1 || type == .q8_0 ? .wordQuads : .texels }

    /// Bindings 3–8 of the matmul kernels (Shaders/include/epilogue.glsl): R, S, V, G, the row
    /// indices and the values.
    static let epilogueAccess: [BindingAccess] = [.read, .read, .read, .write, .read, .write]

    /// An epilogue's specialization code, bindings 3–8 (any valid buffer where unread) and push fields.
    struct EpilogueBindings {
        var code: EpilogueCode
        var slices: [BufferSlice]
        var steer: UInt32 = 0, captureGate = false, kvWidth = 0, headDim = 0, attnFlags = AttentionInputFlags()

        func push(k: Int, n: Int, m: Int, yOffset: Int, ldy: Int, columnBase: Int, eps: Float) -> MatmulPush {
            MatmulPush(K: UInt32(k), N: UInt32(n), M: UInt32(m), yOffset: UInt32(yOffset), ldy: UInt32(ldy), steer: steer,
                       mBase: UInt32(columnBase), captureGate: captureGate ? 1 : 0, kvWidth: UInt32(kvWidth), headDim: UInt32(headDim),
                       attnFlags: attnFlags.rawValue, eps: eps)
        }
    }

    func epilogueBindings(_ e: MatmulEpilogue, output y: Tensor) -> EpilogueBindings {
        let any = slice(y)
        switch e {
        case .store:
            return EpilogueBindings(code: .store, slices: Array(repeating: any, count: 6))
        case .addResidual(let r, let st):
            return EpilogueBindings(code: .residual, slices: [slice(r)] + steeringSlices(st, fallback: any)
                                        + [any, st?.vectorRows.map(slice) ?? any, any],
                                    steer: st?.steerWord ?? 0)
        case .siluGate(let st, let gate):
            return EpilogueBindings(code: .siluGate, slices: [any] + steeringSlices(st, fallback: any)
                                        + [slice(gate ?? y), st?.vectorRows.map(slice) ?? any, any],
                                    steer: st?.steerWord ?? 0, captureGate: gate != nil)
        case .attentionInputs(let a):
            var flags = AttentionInputFlags()
            if a.bias != nil { flags.insert(.bias) }
            if a.ropeTable != nil { flags.insert(.rope) }
            if a.rows != nil { flags.insert(.rows) }
            return EpilogueBindings(code: .attentionInput, slices: [a.bias.map(slice) ?? any, a.ropeTable.map(slice) ?? any, any, slice(a.keys),
                                                                    a.rows.map(slice) ?? any, slice(a.values)],
                                    kvWidth: a.kvWidth, headDim: a.headDim, attnFlags: flags)
        }
    }

    public func embedding(table w: Tensor, ids: Tensor, output: Tensor, tokens: Int, rows: Int, width: Int) throws {
        try OpCheck.embedding(w, ids, output, tokens: tokens, rows: rows, width: width, backend: self)
        guard tokens <= 65535 else { throw BackendError("embedding: \(tokens) tokens exceed 65,535 per dispatch") }
        let kern = try kernel("embedding", SPIRV.embedding, [.read, .read, .write], push: EmbeddingPush.self, format: w.type)
        for (chunk, ws) in try weightChunks(w, rows: rows, width: width) {
            let push = EmbeddingPush(K: UInt32(width), T: UInt32(tokens), rowStart: UInt32(chunk.first), rowCount: UInt32(chunk.count))
            try dispatch(kern, [ws, slice(ids), slice(output)], push, (groups(width), tokens, 1),
                         bytes: tokens * (w.type.byteCount(width) + 4 * width))
        }
    }

    public func scatterRows(input: Tensor, rows dst: Tensor, output: Tensor, tokens: Int, width: Int) throws {
        try OpCheck.rowwise("scatterRows", [(input, "input", tokens * width), (output, "output", width)], rows: tokens, width: width,
                            steering: nil, backend: self)
        try OpCheck.tensor(dst, "rows", of: "scatterRows", types: [.u32], atLeast: tokens, backend: self)
        let kern = try kernel("scatter_rows", SPIRV.scatter_rows, [.read, .read, .write], push: ScatterRowsPush.self)
        try dispatch(kern, [slice(input), slice(dst), slice(output)], ScatterRowsPush(W: UInt32(width), T: UInt32(tokens)), (groups(width), tokens, 1),
                     bytes: 8 * tokens * width)
    }

    public func rmsNorm(input x: Tensor, weight: Tensor, output: Tensor, rows: Int, width: Int, eps: Float) throws {
        try OpCheck.rowwise("rmsNorm", [(x, "input", rows * width), (weight, "weight", width), (output, "output", rows * width)],
                            rows: rows, width: width, steering: nil, backend: self)
        let kern = try kernel("rmsnorm", SPIRV.rmsnorm, [.read, .read, .write], push: RMSNormPush.self)
        try dispatch(kern, [slice(x), slice(weight), slice(output)], RMSNormPush(D: UInt32(width), R: UInt32(rows), eps: eps), rowGrid(rows),
                     bytes: 4 * (2 * rows * width + width), flops: 4 * rows * width)
    }

    public func rope(_ x: Tensor, positions: Tensor, inverseFrequencies: Tensor, tokens: Int, heads: Int, headDim: Int,
                     rotaryDim: Int, layout: RopeLayout) throws {
        try OpCheck.rope(x, positions, inverseFrequencies, tokens: tokens, heads: heads, headDim: headDim, rotaryDim: rotaryDim, backend: self)
        let kern = try kernel("rope", SPIRV.rope, [.readWrite, .read, .read], push: RopePush.self)
        let push = RopePush(T: UInt32(tokens), H: UInt32(heads), D: UInt32(headDim), rotDim: UInt32(rotaryDim), layout_: layout.rawValue)
        try dispatch(kern, [slice(x), slice(positions), slice(inverseFrequencies)], push, (groups(heads * rotaryDim / 2), tokens, 1),
                     bytes: 8 * tokens * heads * headDim, flops: 6 * tokens * heads * rotaryDim / 2)
    }

    /// attention.comp reads keys and values as vec4 texels (both families' decode), so a layer's
    /// tensor is capped by the texel count as well as the binding window.
    public var maxAttentionKVBytes: Int { min(bindingLimit, texelLimit * BindingAccess.quads.texelBytes) }

    static let attentionChunk = 256
    static let attentionQueryTile = 4

    public func attention(query q: Tensor, keys: Tensor, values: Tensor, sequenceOf seq: Tensor, positions: Tensor, output: Tensor,
                          tokens: Int, heads: Int, kvHeads: Int, headDim: Int, sequences: Int, capacity: Int,
                          contextBound: Int, scale: Float, sequenceRuns: Int) throws {
        try OpCheck.attention(q: q, k: keys, v: values, seq: seq, pos: positions, out: output, tokens: tokens, heads: heads,
                              kvHeads: kvHeads, headDim: headDim, sequences: sequences, capacity: capacity,
                              contextBound: contextBound, backend: self)
        guard tokens <= 65535 else { throw BackendError("attention: \(tokens) tokens exceed 65,535 per dispatch") }
        let chunks = (contextBound + Self.attentionChunk - 1) / Self.attentionChunk
        let part = try scratchTensor("attention.partial", .f32, count: tokens * heads * chunks * (headDim + 2))
        let direct = chunks == 1
        let push = AttentionPush(T: UInt32(tokens), Hq: UInt32(heads), Hkv: UInt32(kvHeads), D: UInt32(headDim), C: UInt32(capacity),
                                 nChunks: UInt32(chunks), scale: scale, direct: direct ? 1 : 0)
        let bindings = [slice(q), slice(keys), slice(values), slice(seq), slice(positions), slice(direct ? output : part)]
        if family == .gpu, sequenceRuns % Self.flashQueryTile == 0, tokens >= Self.flashQueryTile, headDim % 4 == 0,
           let keyTile = flashKeyTile(headDim: headDim) {
            // A prefill on a GPU: 16 queries share each shared-memory tile of keys and values.
            let flash = try device.kernel(name: "attention_flash", spirv: SPIRV.attention_flash, access: [.read, .read, .read, .read, .read, .write],
                                          push: AttentionPush.self, specialization: [UInt32(headDim / 4), UInt32(keyTile)])
            try dispatch(flash, bindings, push, (chunks, heads, (tokens + Self.flashQueryTile - 1) / Self.flashQueryTile),
                         // Q once; K and V once per 16-query tile and head.
                         bytes: 4 * tokens * heads * headDim + 8 * contextBound * headDim * heads * ((tokens + Self.flashQueryTile - 1) / Self.flashQueryTile),
                         flops: 4 * tokens * heads * contextBound * headDim)
            if !direct { try combineAttention(part: part, output: output, tokens: tokens, heads: heads, headDim: headDim, chunks: chunks) }
            return
        }
        // Up to four queries per workgroup share the key and value reads: four tokens where the
        // caller promises runs of one sequence (a prefill), else the query heads of one KV head
        // (grouped-query attention; a decode step's tokens are each of another sequence).
        let tile = sequenceRuns % Self.attentionQueryTile == 0 && tokens >= Self.attentionQueryTile ? Self.attentionQueryTile : 1
        let headsPerGroup = tile > 1 ? 1 : Self.queryHeadsPerWorkgroup(groupSize: heads / kvHeads)
        // One subgroup per workgroup; each lane owns ceil(headDim / 4 / subgroup) quads (≤ 8).
        let sg = device.limits.subgroupSize
        guard device.limits.subgroupArithmetic else {
            throw BackendError("attention: device \(device.info.name) lacks subgroup arithmetic in compute shaders, which the attention kernel needs")
        }
        guard headDim % 4 == 0 else { throw BackendError("attention: headDim \(headDim) is not a multiple of 4, which the kernel reads in quads") }
        let perLane = (headDim / 4 + sg - 1) / sg
        guard perLane <= 8 else {
            throw BackendError("attention: headDim \(headDim) needs \(perLane) quads per lane on a \(sg)-lane subgroup; the kernel holds 8")
        }
        let partial = try device.kernel(name: "attention", spirv: SPIRV.attention, access: [.quads, .quads, .quads, .read, .read, .write],
                                        push: AttentionPush.self, specialization: [UInt32(sg), UInt32(perLane), UInt32(tile), UInt32(headsPerGroup)])
        // Each query reads keys and values up to the context bound (an upper bound on what it sees).
        try dispatch(partial, bindings, push,
                     (chunks, heads / headsPerGroup, (tokens + tile - 1) / tile), bytes: 4 * tokens * (heads * headDim + 2 * contextBound * kvHeads * headDim),
                     flops: 4 * tokens * heads * contextBound * headDim)
        // One chunk: the partial kernel wrote the output. Else the chunks' states are combined.
        if !direct { try combineAttention(part: part, output: output, tokens: tokens, heads: heads, headDim: headDim, chunks: chunks) }
    }

    /// Merges the chunks' partial softmax states into the output.
    private func combineAttention(part: Tensor, output: Tensor, tokens: Int, heads: Int, headDim: Int, chunks: Int) throws {
        let combine = try kernel("attention_combine", SPIRV.attention_combine, [.read, .write], push: AttentionCombinePush.self)
        try dispatch(combine, [slice(part), slice(output)], AttentionCombinePush(T: UInt32(tokens), Hq: UInt32(heads), D: UInt32(headDim), nChunks: UInt32(chunks)), (heads, tokens, 1),
                     bytes: 4 * tokens * heads * (chunks * (headDim + 2) + headDim), flops: 3 * tokens * heads * chunks * headDim)
    }

    /// Queries per workgroup of attention_flash.comp.
    static let flashQueryTile = 16

    /// The most key positions per shared tile (16, 8 or 4) whose Q, K, V and score tiles fit the
    /// device's shared memory; nil when not even 4 do (the subgroup kernel runs instead).
    func flashKeyTile(headDim: Int) -> Int? {
        let bq = Self.flashQueryTile
        return [16, 8, 4].first { bk in 4 * headDim * (bq + 2 * bk) + 4 * bq * bk + 4 * bq <= device.limits.maxComputeSharedMemorySize }
    }

    /// The most query heads of one KV head (at most four, dividing the group) a workgroup runs together.
    static func queryHeadsPerWorkgroup(groupSize: Int) -> Int {
        (1...min(attentionQueryTile, max(groupSize, 1))).last { groupSize % $0 == 0 } ?? 1
    }

    /// The steering bindings of the fused kernels: the scales and the vector (or table), or any
    /// valid buffer when off.
    private func steeringSlices(_ s: Steering?, fallback: BufferSlice) -> [BufferSlice] {
        guard let s else { return [fallback, fallback] }
        // The vector bound to its exact size: the shaders clamp table rows to its length().
        return [slice(s.scales), slice(s.vector).subslice(offset: 0, size: 4 * s.vector.count)]
    }

    public func siluMul(gate: Tensor, up: Tensor, output: Tensor, rows: Int, width: Int, steering: Steering?) throws {
        let n = rows * width
        try OpCheck.rowwise("siluMul", [(gate, "gate", n), (up, "up", n), (output, "output", n)], rows: rows, width: width,
                            steering: steering, backend: self)
        guard rows <= 65535 else { throw BackendError("siluMul: \(rows) rows exceed 65,535 per dispatch") }
        let kern = try kernel("silu_mul", SPIRV.silu_mul, [.read, .read, .write, .read, .read, .read], push: SiluMulPush.self)
        let bindings = [slice(gate), slice(up), slice(output)] + steeringSlices(steering, fallback: slice(gate))
            + [steering?.vectorRows.map(slice) ?? slice(gate)]
        try dispatch(kern, bindings, SiluMulPush(I: UInt32(width), R: UInt32(rows), steer: steering?.steerWord ?? 0), (groups(width), rows, 1),
                     bytes: 4 * n * 3, flops: 6 * n)
    }

    public func add(_ a: Tensor, _ b: Tensor?, output: Tensor, rows: Int, width: Int, steering: Steering?) throws {
        let n = rows * width
        try OpCheck.rowwise("add", [(a, "a", n), (output, "output", n)] + (b.map { [($0, "b", n)] } ?? []),
                            rows: rows, width: width, steering: steering, backend: self)
        guard rows <= 65535 else { throw BackendError("add: \(rows) rows exceed 65,535 per dispatch") }
        let kern = try kernel("add", SPIRV.add, [.read, .read, .write, .read, .read, .read], push: AddPush.self)
        let bindings = [slice(a), slice(b ?? a), slice(output)] + steeringSlices(steering, fallback: slice(a))
            + [steering?.vectorRows.map(slice) ?? slice(a)]
        try dispatch(kern, bindings, AddPush(W: UInt32(width), R: UInt32(rows), hasB: b == nil ? 0 : 1, steer: steering?.steerWord ?? 0),
                     (groups(width), rows, 1),
                     bytes: 4 * n * (b == nil ? 2 : 3), flops: n * (steering == nil ? 1 : 3))
    }

    static let topKChunk = 4096

    public func topK(_ values: Tensor, rows: Int, length: Int, k: Int, outValues: Tensor, outIndices: Tensor) throws {
        try OpCheck.topK(values, rows: rows, length: length, k: k, outV: outValues, outI: outIndices, backend: self)
        guard rows <= 65535 else { throw BackendError("topK: \(rows) rows exceed 65,535 per dispatch") }
        // The gpu family's kernel keeps 16 entries per invocation in registers and reduces with
        // subgroup operations (Shaders/topk_gpu.comp); lavapipe's, 64 per invocation in a private
        // sorted list. Same contract and chunks.
        let kern = family == .gpu
            ? try kernel("topk_gpu", SPIRV.topk_gpu, [.read, .read, .write, .write], push: TopKPush.self, workgroup: 256)
            : try kernel("topk", SPIRV.topk, [.read, .read, .write, .write], push: TopKPush.self)
        // Each pass keeps k candidates per 4096-entry chunk; repeat until one chunk remains.
        var (inV, inI, len, hasIdx) = (slice(values), slice(values), length, UInt32(0))
        var pass = 0
        while true {
            let chunks = (len + Self.topKChunk - 1) / Self.topKChunk
            let last = chunks == 1
            let outV = last ? slice(outValues) : slice(try scratchTensor("topk.v\(pass % 2)", .f32, count: rows * chunks * k))
            let outI = last ? slice(outIndices) : slice(try scratchTensor("topk.i\(pass % 2)", .u32, count: rows * chunks * k))
            let push = TopKPush(L: UInt32(len), R: UInt32(rows), k: UInt32(k), ldv: UInt32(len), nChunks: UInt32(chunks), hasIdx: hasIdx)
            try dispatch(kern, [inV, inI, outV, outI], push, (chunks, rows, 1), bytes: 4 * rows * (len * (hasIdx == 1 ? 2 : 1) + 2 * chunks * k))
            if last { return }
            (inV, inI, len, hasIdx) = (outV, outI, chunks * k, 1)
            pass += 1
        }
    }

    public func softmaxHead(_ values: Tensor, rows: Int, length: Int, inverseTemperatures: Tensor, maxWindow: Int, capacity: Int,
                            output: Tensor) throws {
        try OpCheck.softmaxHead(values, rows: rows, length: length, inverseTemperatures: inverseTemperatures, maxWindow: maxWindow,
                                capacity: capacity, output: output, backend: self)
        // One workgroup per row reads it three times (the second and third from cache); shared
        // by both families: a reduction, a histogram and a filter, with no rounds of barriers.
        let kern = try kernel("softmax_head", SPIRV.softmax_head, [.read, .read, .write], push: SoftmaxHeadPush.self, workgroup: 256)
        let push = SoftmaxHeadPush(L: UInt32(length), R: UInt32(rows), cap: UInt32(capacity), bins: UInt32(maxWindow))
        try dispatch(kern, [slice(values), slice(inverseTemperatures), slice(output)], push, rowGrid(rows),
                     bytes: 4 * rows * (3 * length + 1 + SoftmaxHead.words(capacity: capacity)), flops: 4 * rows * length)
    }
}

extension RecordedCommands: ReusableOps {}
