import Backend
import Formats
import Foundation
import Generation
import Model
import VulkanCompute

/// The device's measured ceilings: what a streaming kernel moves and what the matmul kernel
/// computes at best (`roast profile --calibrate`), so a profile row can say how far it is.
public struct DeviceCeilings: Codable, Sendable {
    public var device: String
    public var gbPerSecond: Double
    public var gflopPerSecond: Double
    public var date: String

    /// Where `--calibrate` keeps them: $XDG_CACHE_HOME (else ~/.cache)/roast/ceilings.json, one entry per device.
    public static var file: URL {
        let env = ProcessInfo.processInfo.environment
        let base = env["XDG_CACHE_HOME"].map { URL(fileURLWithPath: $0) }
            ?? URL(fileURLWithPath: NSHomeDirectory()).appendingPathComponent(".cache")
        return base.appendingPathComponent("roast/ceilings.json")
    }

    public static func load(device: String) -> DeviceCeilings? {
        guard let data = try? Data(contentsOf: file), let all = try? JSONDecoder().decode([DeviceCeilings].self, from: data) else { return nil }
        return all.last { $0.device == device }
    }

    public func save() throws {
        var all = (try? JSONDecoder().decode([DeviceCeilings].self, from: Data(contentsOf: Self.file))) ?? []
        all.removeAll { $0.device == device }
        all.append(self)
        try OutputFile.makeFolder(Self.file.deletingLastPathComponent())
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try OutputFile.write(enc.encode(all), to: Self.file)
    }

    /// A copy of up to 256 MiB (as much as one binding holds; 128 MiB on lavapipe) on the transfer
    /// path, and the engine's matmul on 8 columns × 4096 × 4096 in f32, q8_0 and q4_1 (the fastest
    /// of them is the ceiling: on lavapipe the quantised kernels read fewer texels per
    /// multiply-add); the best of 3 runs each.
    public static func measure(_ vk: VulkanBackend) throws -> DeviceCeilings {
        let bytes = min(256 << 20, vk.device.limits.maxStorageBufferRange) / 4096 * 4096
        let a = try vk.makeTensor(.u32, count: bytes / 4), out = try vk.makeTensor(.u32, count: bytes / 4)
        var copy = Double.infinity
        for _ in 0..<3 {
            _ = vk.takeProfile()
            try vk.stream.copy(vk.slice(a), to: vk.slice(out))
            try vk.synchronize()
            copy = min(copy, vk.takeProfile().map(\.nanoseconds).reduce(0, +))
        }
        let (m, nn, k) = (8, 4096, 4096)
        let x = try vk.makeTensor(.f32, count: m * k), y = try vk.makeTensor(.f32, count: m * nn)
        var mm = Double.infinity
        for format in [ElementType.f32, .q8_0, .q4_1] {
            let w = try vk.makeTensor(format, count: nn * k)
            for _ in 0..<3 {
                _ = vk.takeProfile()
                try vk.matmul(weight: w, input: x, output: y, m: m, n: nn, k: k, kernel: .auto)
                try vk.synchronize()
                mm = min(mm, vk.takeProfile().map(\.nanoseconds).reduce(0, +))
            }
        }
        return DeviceCeilings(device: vk.device.info.name, gbPerSecond: Double(2 * bytes) / copy,
                              gflopPerSecond: Double(2 * m * nn * k) / mm, date: ISO8601DateFormatter().string(from: Date()))
    }
}

/// One row of a profile table: a group of dispatches.
public struct ProfileRow: Codable, Sendable {
    public var name: String
    public var dispatches: Int
    public var milliseconds: Double
    /// Of the phase's GPU time.
    public var share: Double
    public var gbPerSecond: Double
    public var gflopPerSecond: Double
    /// Achieved / measured ceiling, when the device was calibrated.
    public var bandwidthFraction: Double?
    public var computeFraction: Double?
}

/// GPU milliseconds of one layer, by block.
public struct LayerTime: Codable, Sendable {
    public var layer: Int
    public var attention: Double
    public var mlp: Double
    /// Dispatches that carry a steering injection and exist apart from the MLP's matmuls (the
    /// SiLU·up of a model whose gate and up differ in format). 0 where the injection rides in a
    /// matmul's epilogue, as it does for most models: steering then adds no dispatch.
    public var steering: Double
}

/// Prefill or decode: GPU time per layer, per kernel kind, and the host's share.
public struct PhaseProfile: Codable, Sendable {
    public var phase: String
    public var tokens: Int
    public var wallSeconds: Double
    public var gpuSeconds: Double
    public var dispatches: Int
    public var layers: [LayerTime]
    /// Everything outside the layers: embedding, LM head, sampling.
    public var outside: [ProfileRow]
    public var kernels: [ProfileRow]
    /// Host time recording dispatches, in submit + fence wait, and the rest (sampling on the
    /// host, tokenizer, bookkeeping) = wall − recording − submit.
    public var hostRecordSeconds: Double
    public var hostSubmitSeconds: Double
    public var hostOtherSeconds: Double

    init(phase: String, tokens: Int, wall: Double, record: Double, submit: Double, timings: [DispatchTiming],
         layerCount: Int, ceilings: DeviceCeilings?) {
        self.phase = phase
        self.tokens = tokens
        wallSeconds = wall
        let total = timings.map(\.nanoseconds).reduce(0, +)
        gpuSeconds = total / 1e9
        dispatches = timings.count
        hostRecordSeconds = record
        hostSubmitSeconds = submit
        hostOtherSeconds = max(0, wall - record - submit)
        var layers = (0..<layerCount).map { LayerTime(layer: $0, attention: 0, mlp: 0, steering: 0) }
        var outsideGroups: [String: [DispatchTiming]] = [:]
        for t in timings {
            let parts = t.label.split(separator: " ")
            if parts.count == 3, parts[0] == "layer", let l = Int(parts[1]), l < layerCount {
                let ms = t.nanoseconds / 1e6
                switch parts[2] {
                case "attention": layers[l].attention += ms
                case "steering": layers[l].steering += ms
                default: layers[l].mlp += ms
                }
            } else {
                outsideGroups[t.label, default: []].append(t)
            }
        }
        self.layers = layers
        func row(_ name: String, _ ts: [DispatchTiming]) -> ProfileRow {
            let ns = ts.map(\.nanoseconds).reduce(0, +)
            let gb = ns > 0 ? ts.map(\.bytes).reduce(0, +) / ns : 0
            let gf = ns > 0 ? ts.map(\.flops).reduce(0, +) / ns : 0
            return ProfileRow(name: name, dispatches: ts.count, milliseconds: ns / 1e6, share: total > 0 ? ns / total : 0,
                              gbPerSecond: gb, gflopPerSecond: gf,
                              bandwidthFraction: ceilings.map { gb / $0.gbPerSecond }, computeFraction: ceilings.map { gf / $0.gflopPerSecond })
        }
        outside = outsideGroups.map { row($0.key, $0.value) }.sorted { $0.milliseconds > $1.milliseconds }
        kernels = Dictionary(grouping: timings, by: { Self.kind(of: $0.kernel) }).map { row($0.key, $0.value) }
            .sorted { $0.milliseconds > $1.milliseconds }
    }

    /// Kernel kinds of the profile: matmuls by weight format and kernel, attention, norm, RoPE,
    /// elementwise, KV-cache writes, gathers, sampling.
    static func kind(of kernel: String) -> String {
        let parts = kernel.split(separator: ".", maxSplits: 1).map(String.init)
        let format = parts.count > 1 ? parts[1] : ""
        switch parts[0] {
        case "matvec": return "matmul \(format) (vector kernel)"
        case "matmul": return "matmul \(format) (tiled kernel)"
        case "attention", "attention_combine": return "attention"
        case "rmsnorm": return "norm"
        case "rope": return "rope"
        case "add", "silu_mul": return "elementwise (add, SiLU·up, steering)"
        case "scatter_rows": return "kv cache writes"
        case "embedding": return "row gather (embedding, capture)"
        case "topk": return "sampling (top-k)"
        default: return kernel
        }
    }
}

public struct ProfileReport: Codable, Sendable {
    public var model: String
    public var device: String
    public var batch: Int
    public var steered: Bool
    public var ceilings: DeviceCeilings?
    public var prefill: PhaseProfile
    public var decode: PhaseProfile
}

public enum Profiler {
    /// Prefill of `promptTokens` random text tokens for each of `batch` sequences, then
    /// `genTokens` greedy decode steps, with GPU timestamps around every dispatch.
    public static func run(model: LanguageModel, promptTokens: Int, genTokens: Int, batch: Int,
                           steering: Generator.SteeringProvider? = nil) throws -> ProfileReport {
        guard let vk = model.backend as? VulkanBackend, vk.stream.profiling else {
            throw BackendError("profile needs the Vulkan backend with timestamps on")
        }
        guard promptTokens > 0, genTokens > 1, batch > 0 else { throw BackendError("profile needs ≥ 1 prompt token, ≥ 2 generated tokens, batch ≥ 1") }
        var rng = SplitMix64(seed: 1)
        let vocab = model.config.vocabSize
        let prompts = (0..<batch).map { _ in (0..<promptTokens).map { _ in Int.random(in: min(300, vocab / 2)..<vocab, using: &rng) } }
        let gen = Generator(model: model)
        gen.maxStepTokens = max(gen.maxStepTokens, promptTokens * batch)
        // Warm-up: pipelines and buffers are created outside the measured runs.
        let warm = [GenerationRequest(promptIDs: prompts[0], maxTokens: 2, stopAtEOS: false)]
        _ = try gen.generate(warm, steering: steering)
        _ = vk.takeProfile()

        func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
        var (t0, r0, s0) = (now(), vk.stream.recordSeconds, vk.stream.submitSeconds)
        var prefill: PhaseProfile?
        var seen = 0
        let layers = model.config.layerCount
        let ceilings = DeviceCeilings.load(device: vk.device.info.name)
        let requests = prompts.map { GenerationRequest(promptIDs: $0, maxTokens: genTokens, stopAtEOS: false) }
        _ = try gen.generate(requests, steering: steering, onToken: { _, _, _ in
            seen += 1
            // The first step's tokens arrive together, after the prefill was read back.
            if seen == batch {
                let t = now()
                prefill = PhaseProfile(phase: "prefill", tokens: promptTokens * batch, wall: t - t0,
                                       record: vk.stream.recordSeconds - r0, submit: vk.stream.submitSeconds - s0,
                                       timings: vk.takeProfile(), layerCount: layers, ceilings: ceilings)
                (t0, r0, s0) = (t, vk.stream.recordSeconds, vk.stream.submitSeconds)
            }
        })
        let decode = PhaseProfile(phase: "decode", tokens: (genTokens - 1) * batch, wall: now() - t0,
                                  record: vk.stream.recordSeconds - r0, submit: vk.stream.submitSeconds - s0,
                                  timings: vk.takeProfile(), layerCount: layers, ceilings: ceilings)
        return ProfileReport(model: URL(fileURLWithPath: model.path).lastPathComponent, device: "\(vk.device.info.name), \(vk.kernelsDescription)", batch: batch,
                             steered: steering != nil, ceilings: ceilings, prefill: prefill!, decode: decode)
    }

    /// A stacked bar per layer (attention, MLP, steering), prefill and decode side by side, in
    /// milliseconds per token of the phase.
    public static func svg(_ r: ProfileReport) -> String {
        let phases = [r.prefill, r.decode]
        let n = r.prefill.layers.count
        let barW = 14.0, gap = 4.0, left = 60.0, top = 50.0, height = 260.0
        let panelW = Double(n) * (barW + gap) + 70
        let width = left + 2 * panelW + 40
        let colors = [("attention", "#4C78A8"), ("mlp", "#F58518"), ("steering", "#54A24B")]
        func esc(_ s: String) -> String { s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;") }
        var out = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(top + height + 70))" font-family="sans-serif" font-size="11">
        <text x="\(left)" y="18" font-size="14">\(esc(r.model)) on \(esc(r.device)), batch \(r.batch)\(r.steered ? ", steered" : ""): GPU ms per token per layer</text>

        """
        for (p, phase) in phases.enumerated() {
            let x0 = left + Double(p) * panelW
            let per = Double(max(phase.tokens, 1))
            let maxV = max(phase.layers.map { ($0.attention + $0.mlp + $0.steering) / per }.max() ?? 0, 1e-9)
            out += "<text x=\"\(x0)\" y=\"\(top - 8)\" font-size=\"12\">\(phase.phase) (\(phase.tokens) tokens, \(String(format: "%.1f", phase.gpuSeconds * 1000)) ms GPU)</text>\n"
            out += "<line x1=\"\(x0)\" y1=\"\(top + height)\" x2=\"\(x0 + panelW - 70)\" y2=\"\(top + height)\" stroke=\"#333\"/>\n"
            for tick in 0...4 {
                let v = maxV * Double(tick) / 4, y = top + height - height * Double(tick) / 4
                out += "<text x=\"\(x0 - 4)\" y=\"\(y + 4)\" text-anchor=\"end\">\(String(format: "%.2f", v))</text>\n"
            }
            for l in phase.layers {
                var y = top + height
                let bx = x0 + Double(l.layer) * (barW + gap) + 4
                for (name, color) in colors {
                    let v = (name == "attention" ? l.attention : name == "mlp" ? l.mlp : l.steering) / per
                    let h = height * v / maxV
                    guard h > 0 else { continue }
                    y -= h
                    out += "<rect x=\"\(bx)\" y=\"\(y)\" width=\"\(barW)\" height=\"\(h)\" fill=\"\(color)\"><title>layer \(l.layer) \(name): \(String(format: "%.3f", v)) ms/token</title></rect>\n"
                }
                if l.layer % 5 == 0 {
                    out += "<text x=\"\(bx + barW / 2)\" y=\"\(top + height + 14)\" text-anchor=\"middle\">\(l.layer)</text>\n"
                }
            }
        }
        for (i, (name, color)) in colors.enumerated() {
            let x = left + Double(i) * 110
            out += "<rect x=\"\(x)\" y=\"\(top + height + 34)\" width=\"12\" height=\"12\" fill=\"\(color)\"/><text x=\"\(x + 16)\" y=\"\(top + height + 44)\">\(name)</text>\n"
        }
        out += "<text x=\"\(left)\" y=\"\(top + height + 64)\">layer →   (bars: GPU time per token of the phase; hover for values)</text>\n</svg>\n"
        return out
    }
}
