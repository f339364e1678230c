import Foundation

/// Split-K for the gpu family's tiled kernels (Shaders/matmul_gpu.comp, matmul_coopmat.comp).
///
/// Their grid is one workgroup per 64 × 64 output tile, and each walks all of K. A batch of 32
/// rollouts through a 0.5B model's 896-row projections is 14 tiles, each 896 or 4,864 deep, on a
/// GPU with 132 multiprocessors: most of the device idles while a few workgroups step K one 32-deep
/// slice at a time. Split-K gives workgroup z only K slice z and stores raw partial sums;
/// matmul_reduce.comp adds the slices and applies the epilogue. It costs writing and reading
/// slices × M × N floats, which stay in L2 at the shapes where it is taken.
public struct SplitK: Equatable, Sendable, CustomStringConvertible {
    /// How many K slices (grid z), at least 2.
    public let slices: Int
    /// K elements per slice (the last may be shorter): whole 32-deep K steps, and whole blocks of
    /// the weight's format, so each slice starts on a block (a K-quant's on a 256-super-block).
    public let kSlice: Int

    public var description: String { "\(slices) × \(kSlice)" }

    /// The output tile of both tiled gpu kernels.
    static let tile = 64
    /// A slice is at least this deep: shallower ones would move more partial sums than weights.
    static let minimumSlice = 256
    /// At most this many slices: past it the reduce's reads outgrow what the split gains.
    static let maximumSlices = 16
    /// The workgroups the gpu family aims for when it splits: about two per multiprocessor of a
    /// large GPU (Vulkan does not report the count; an H200 has 132).
    public static let defaultTargetGroups = 256
    /// The environment variable that sets the target (0: never split K, in the tiled kernels or
    /// in the vector kernel's several subgroups per row, VulkanBackend.vectorSplit).
    public static let environmentVariable = "ROAST_SPLIT_K"

    /// The split of an [M × K] · [N × K]ᵀ product whose grid of tiles is below `targetGroups`, or
    /// nil where the grid already fills the device, K is too short to split, or the target is 0.
    public static func plan(m: Int, n: Int, k: Int, blockElements: Int, targetGroups: Int) -> SplitK? {
        let tiles = ((n + tile - 1) / tile) * ((m + tile - 1) / tile)
        guard targetGroups > 0, tiles > 0, tiles < targetGroups else { return nil }
        let granule = max(32, blockElements)
        let wanted = min((targetGroups + tiles - 1) / tiles, maximumSlices, k / max(minimumSlice, granule))
        guard wanted >= 2 else { return nil }
        let kSlice = ((k + wanted - 1) / wanted + granule - 1) / granule * granule
        let slices = (k + kSlice - 1) / kSlice
        return slices >= 2 ? SplitK(slices: slices, kSlice: kSlice) : nil
    }

    /// The target from the environment: unset or empty gives the default; a count ≥ 0 that count.
    public static func targetGroups(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Int {
        try environmentCount(environmentVariable, default: defaultTargetGroups, counting: "workgroup count",
                             zero: "turns split-K off", environment: environment)
    }
}
