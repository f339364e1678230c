import ArgumentParser
import Backend
import Foundation
import Generation
import Model
import Roast
import VulkanCompute

struct Profile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "GPU time per kernel and per layer for prefill and decode (timestamps around every dispatch).")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Prompt tokens.") var promptTokens = 64
    @Option(help: "Generated tokens.") var genTokens = 8
    @Option(help: "Sequences decoded together.") var batch = 1
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let model = try modelOptions.load(profiling: true)
        guard let vk = model.backend as? VulkanBackend else { throw ValidationError("profile needs --backend vulkan") }
        var rng = SplitMix64(seed: 1)
        let prompts = (0..<batch).map { _ in (0..<promptTokens).map { _ in Int.random(in: 300..<model.config.vocabSize, using: &rng) } }
        let gen = Generator(model: model)
        _ = try gen.generate([GenerationRequest(promptIDs: prompts[0], maxTokens: 1, stopAtEOS: false)])
        _ = vk.takeProfile()
        let t0 = Date()
        _ = try gen.generate(prompts.map { GenerationRequest(promptIDs: $0, maxTokens: genTokens, stopAtEOS: false) })
        let wall = Date().timeIntervalSince(t0)
        let timings = vk.takeProfile()
        var byKernel: [String: (Double, Int)] = [:]
        for t in timings { byKernel[t.kernel, default: (0, 0)].0 += t.nanoseconds; byKernel[t.kernel, default: (0, 0)].1 += 1 }
        let total = timings.map(\.nanoseconds).reduce(0, +)
        print("wall \(String(format: "%.2f", wall)) s, GPU \(String(format: "%.2f", total / 1e9)) s, \(timings.count) dispatches")
        printTable(["kernel", "dispatches", "ms", "share", "µs/dispatch"], byKernel.sorted { $0.value.0 > $1.value.0 }.map { k, v in
            [k, "\(v.1)", String(format: "%.1f", v.0 / 1e6), String(format: "%.1f%%", 100 * v.0 / total), String(format: "%.1f", v.0 / 1e3 / Double(v.1))]
        })
    }
}
