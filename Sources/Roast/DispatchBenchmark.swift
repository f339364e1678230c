import Backend
import Foundation

/// What one tiny dispatch costs on a device: many 64-element adds recorded into one command
/// buffer, once independent (no barriers) and once chained (a barrier before each).
public struct DispatchOverhead: Codable, Sendable {
    public var device: String
    public var dispatches: Int
    /// Wall time per dispatch, recording excluded: submit → fence.
    public var independentMicroseconds: Double
    public var chainedMicroseconds: Double
    /// Host time to record one dispatch (descriptor set, push constants, hazard check).
    public var recordMicroseconds: Double
}

public enum DispatchBenchmark {
    public static func run(device: VulkanBackend, dispatches: Int = 2000, repeats: Int = 3) throws -> DispatchOverhead {
        let width = 64
        let src = try device.makeTensor(floats: [Float](repeating: 1, count: width))
        let outs = try (0..<dispatches).map { _ in try device.makeTensor(.f32, count: width) }
        let chain = try device.makeTensor(floats: [Float](repeating: 0, count: width))
        func time(_ body: () throws -> Void) rethrows -> Double {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1000
        }
        var best = (independent: Double.infinity, chained: Double.infinity, record: Double.infinity)
        for _ in 0..<repeats {
            let record = try time { for o in outs { try device.add(src, src, output: o, rows: 1, width: width, steering: nil) } }
            let independent = try time { try device.synchronize() }
            _ = try time { for _ in 0..<dispatches { try device.add(chain, src, output: chain, rows: 1, width: width, steering: nil) } }
            let chained = try time { try device.synchronize() }
            best = (min(best.independent, independent), min(best.chained, chained), min(best.record, record))
        }
        let n = Double(dispatches)
        return DispatchOverhead(device: "\(device.device.info.name), \(device.family.rawValue) kernels", dispatches: dispatches, independentMicroseconds: best.independent / n,
                                chainedMicroseconds: best.chained / n, recordMicroseconds: best.record / n)
    }
}
