import VulkanCompute

/// The gpu family's tensor-core path (Shaders/matmul_coopmat.comp): which matrix-unit shape it
/// runs with, and the probe that keeps it off a device where it would compute something wrong.
extension VulkanBackend {
    /// The kernels in use, as bench and profile name them: "gpu kernels, f16 matrix units 16×16×16".
    public var kernelsDescription: String {
        "\(family.rawValue) kernels" + (cooperativeShape.map { ", f16 matrix units \($0)" } ?? "")
    }

    /// The shape the kernel takes from the device's list: its 128 invocations are 4 subgroups of
    /// 32 tiling a 64 × 64 output in 32 × 32 quarters, stepping K by 32, so each dimension must
    /// divide 32; 16 × 16 × 16 first (the shape every NVIDIA GPU with matrix units lists), then
    /// the largest. Nil without subgroups of 32 or a fitting shape.
    static func cooperativeShape(_ shapes: [CooperativeMatrixShape], subgroupSize: Int) -> CooperativeMatrixShape? {
        guard subgroupSize == 32 else { return nil }
        let fitting = shapes.filter { s in [s.m, s.n, s.k].allSatisfy { $0 >= 8 && 32 % $0 == 0 } }
        if let square = fitting.first(where: { $0.m == 16 && $0.n == 16 && $0.k == 16 }) { return square }
        return fitting.max { ($0.m * $0.n * $0.k, $0.k) < ($1.m * $1.n * $1.k, $1.k) }
    }

    /// Turns on the emulated cooperative kernel for `.cooperative` matmuls (gpu family, no matrix
    /// units); returns whether `.cooperative` now runs (emulated or on the units).
    @discardableResult
    public func emulateCooperativeMatrix() -> Bool {
        if family == .gpu, cooperativeShape == nil { cooperativeEmulated = true }
        return cooperativeShape != nil || cooperativeEmulated
    }

    /// The NMSE the probe accepts: the f16 rounding of both operands costs ~1e-7; a wrong layout,
    /// a missed tile or an unwritten output costs ≥ 1e-2.
    static let cooperativeProbeLimit = 5e-4

    /// The probe's shapes (n, k, m): 80 rows × 96 K × 70 columns crosses a partial n tile, a
    /// partial m tile and three K steps; 70 × 1,056 × 20 is a grid of two tiles, which split-K
    /// cuts into slices (the SPLIT = 1 variant and matmul_reduce.comp, as batched decode runs them).
    static let cooperativeProbeShapes = [(n: 80, k: 96, m: 70), (n: 70, k: 1056, m: 20)]

    /// Runs the cooperative kernel on random q8_0 weights against the CPU twin, in each of the
    /// probe's shapes, the output poisoned with NaN first. Returns what went wrong, or nil.
    func probeCooperative() -> String? {
        var rng = SplitMix64(seed: 0xC00F)
        let cpu = CPUBackend()
        do {
            for (n, k, m) in Self.cooperativeProbeShapes {
                let w = rng.floats(n * k), x = rng.floats(m * k)
                let bytes = Quantization.encode(w, as: .q8_0)
                let wd = try makeTensor(.q8_0, count: n * k, bytes: bytes), wc = try cpu.makeTensor(.q8_0, count: n * k, bytes: bytes)
                let yd = try makeTensor(floats: [Float](repeating: .nan, count: m * n)), yc = try cpu.makeTensor(.f32, count: m * n)
                try matmul(weight: wd, input: try makeTensor(floats: x), output: yd, m: m, n: n, k: k, kernel: .cooperative)
                try cpu.matmul(weight: wc, input: try cpu.makeTensor(floats: x), output: yc, m: m, n: n, k: k, kernel: .cooperative)
                let (got, want) = (try readFloats(yd), try cpu.readFloats(yc))
                var num = 0.0, den = 0.0
                for (a, b) in zip(got, want) {
                    num += (Double(a) - Double(b)) * (Double(a) - Double(b))
                    den += Double(b) * Double(b)
                }
                let nmse = num / max(den, .leastNormalMagnitude)
                if !(nmse <= Self.cooperativeProbeLimit) {
                    return "the cooperative-matrix matmul (\(cooperativeShape.map(\.description) ?? "?")) disagrees with the CPU twin on "
                        + "\(device.info.name) at \(n) × \(k) × \(m) (NMSE \(nmse.isNaN ? "NaN" : String(nmse)) > \(Self.cooperativeProbeLimit))"
                }
            }
            return nil
        } catch {
            return "the cooperative-matrix matmul failed on \(device.info.name): \(error)"
        }
    }
}
