import Backend
import Foundation
import VulkanCompute
import XCTest

final class ScratchBench: XCTestCase {
    func testRowsPerInvocation() throws {
        let vk = try VulkanBackend(device: VulkanDevice())
        let (n, k) = (1536, 576)
        var rng = SystemRandomNumberGenerator()
        let w = try vk.makeTensor(.q4_1, count: n * k, bytes: Quantization.encode((0..<n * k).map { _ in Float.random(in: -1...1, using: &rng) }, as: .q4_1))
        let x = try vk.makeTensor(floats: (0..<k).map { _ in Float.random(in: -1...1, using: &rng) })
        let y = try vk.makeTensor(.f32, count: n)
        var best: [String: Double] = [:]
        for _ in 0..<12 {
            for r in ["4", "8", "16"] {
                setenv("ROWS1", r, 1)
                try vk.synchronize()
                let t0 = Date()
                for _ in 0..<20 { try vk.matmul(weight: w, input: x, output: y, m: 1, n: n, k: k, kernel: .vector) }
                try vk.synchronize()
                let dt = Date().timeIntervalSince(t0) / 20 * 1e6
                best[r] = min(best[r] ?? .infinity, dt)
            }
        }
        print("ROWS µs/dispatch (min of 12 × 20, one command buffer each):", best.sorted { $0.key < $1.key })
    }
}
