import Foundation
import VulkanCompute

/// Which shapes of the matrix kernels a device runs. Both families compute the same ops with the
/// same CPU twin; `roast verify` checks both on any device.
public enum KernelFamily: String, CaseIterable, Sendable, Codable {
    /// CPU devices (lavapipe): weights through texel buffers, one invocation per weight row, the
    /// tiled kernel only where the vector one cannot go (Shaders/matvec.comp, matmul.comp).
    case lavapipe
    /// GPUs: a subgroup per pair of weight rows with K split across lanes and reduced with
    /// subgroupAdd (matvec_gpu.comp, up to 8 columns), and a 64 × 64 shared-memory tiled kernel
    /// with 4 × 4 register blocks for prefill and batches (matmul_gpu.comp).
    case gpu

    /// The environment variable that overrides the automatic choice (`--kernels` overrides both).
    public static let environmentVariable = "ROAST_KERNELS"

    /// The family a device gets by default: `gpu` for discrete, integrated and virtual GPUs that
    /// have subgroup arithmetic in compute shaders, `lavapipe` for CPU devices and the rest.
    public static func automatic(for info: DeviceInfo) -> KernelFamily {
        switch info.kind {
        case .discrete, .integrated, .virtual: info.limits.subgroupArithmetic ? .gpu : .lavapipe
        case .cpu, .other: .lavapipe
        }
    }

    /// The family to use: `requested`, else the environment's, else the automatic one. A family
    /// the device cannot run, or an unknown name in the environment, is an error.
    public static func resolve(_ requested: KernelFamily?, for info: DeviceInfo,
                               environment: [String: String] = ProcessInfo.processInfo.environment) throws -> KernelFamily {
        var family = automatic(for: info)
        if let requested {
            family = requested
        } else if let name = environment[environmentVariable], !name.isEmpty {
            guard let f = KernelFamily(rawValue: name) else {
                throw BackendError("\(environmentVariable)=\(name): not a kernel family (\(allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            family = f
        }
        if family == .gpu, !info.limits.subgroupArithmetic {
            throw BackendError("kernel family gpu: device \(info.name) lacks subgroup arithmetic in compute shaders")
        }
        return family
    }
}
