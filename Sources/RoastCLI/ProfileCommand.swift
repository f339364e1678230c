import ArgumentParser
import Backend
import Formats
import Foundation
import Generation
import Model
import Roast
import VulkanCompute

struct Profile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "GPU time per layer and per kernel kind for prefill and decode (timestamps around every dispatch).",
        discussion: """
        Runs a prefill of --prompt-tokens random text tokens for each of --batch sequences, then --gen-tokens greedy \
        decode steps. Per layer: the attention block, the MLP block and any dispatch that exists only to carry a \
        steering injection (--steer; none where the injection rides in the MLP matmuls' epilogues, as it does \
        for most models, so a steered profile records the unsteered dispatches). Per kernel kind: time, share, achieved GB/s and GFLOP/s (from the bytes and FLOPs each \
        dispatch must move and compute) and, once `roast profile --calibrate` has measured the device's ceilings \
        (a large copy and a large matmul), those as a fraction of the ceiling. Host time (recording, submit + \
        wait, the rest) is shown separately; it is that of recording every step, since a profiled step carries \
        timestamps (outside a profile, decode steps replay their kept command buffers: `roast bench` shows that \
        host share). --svg writes a stacked bar per layer, prefill and decode side by side.
        """)

    @Option(help: "A Hugging Face folder, a .gguf file or a llama2.c .bin (not needed with --calibrate alone).") var model: String?
    @OptionGroup var deviceOptions: DeviceOptions
    @Option(help: "Prompt tokens per sequence.") var promptTokens = 64
    @Option(help: "Generated tokens per sequence (≥ 2; the first comes from the prefill).") var genTokens = 8
    @Option(help: "Sequences decoded together.") var batch = 1
    @Option(help: "A steering-vector file to profile steered generation; repeat to sum several.") var steer: [String] = []
    @Option(help: "Steering strength α (default: the file's).") var alpha: Float?
    @Flag(help: "Measure the device's ceilings (a large copy and a large matmul) and keep them for later profiles.") var calibrate = false
    @Flag(help: "Print JSON.") var json = false
    @Option(help: "Write an SVG of the per-layer picture to this file.") var svg: String?

    func run() throws {
        let vk = try deviceOptions.vulkanBackend(profiling: true)
        guard vk.stream.profiling else { throw ValidationError("device \(vk.device.info.name) has no timestamps: nothing to profile") }
        if calibrate {
            let c = try DeviceCeilings.measure(vk)
            try c.save()
            stderr("ceilings of \(c.device): \(String(format: "%.1f", c.gbPerSecond)) GB/s streaming, \(String(format: "%.1f", c.gflopPerSecond)) GFLOP/s matmul → \(DeviceCeilings.file.path)")
        }
        guard let path = model else {
            if calibrate { return }
            throw ValidationError("--model is required (unless --calibrate alone)")
        }
        let vectors = try SteeringFiles.read(steer)
        let m = try LanguageModel(path: path, backend: vk)
        let injector = try SteeringFiles.injector(vectors, alpha: alpha, scope: .generated, model: m)
        let report = try Profiler.run(model: m, promptTokens: promptTokens, genTokens: genTokens, batch: batch,
                                      steering: injector?.provider)
        if let svg { try OutputFile.write(Data(Profiler.svg(report).utf8), to: URL(fileURLWithPath: svg)) }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try enc.encode(report), as: UTF8.self))
            return
        }
        print("\(report.model) on \(report.device), batch \(batch)\(report.steered ? ", steered" : "")")
        if let c = report.ceilings {
            print("ceilings (roast profile --calibrate, \(c.date)): \(String(format: "%.1f", c.gbPerSecond)) GB/s, \(String(format: "%.1f", c.gflopPerSecond)) GFLOP/s")
        } else {
            print("no ceilings for this device yet: run `roast profile --calibrate` for the fraction columns")
        }
        for phase in [report.prefill, report.decode] { show(phase) }
    }

    func show(_ p: PhaseProfile) {
        let per = Double(max(p.tokens, 1))
        print("\n\(p.phase): \(p.tokens) tokens, wall \(f(p.wallSeconds * 1000)) ms (\(f(per / p.wallSeconds)) tok/s), GPU \(f(p.gpuSeconds * 1000)) ms, \(p.dispatches) dispatches")
        print("host: recording \(f(p.hostRecordSeconds * 1000)) ms, submit + wait \(f(p.hostSubmitSeconds * 1000)) ms, other (sampling, tokenizer, bookkeeping) \(f(p.hostOtherSeconds * 1000)) ms")
        let gpu = p.gpuSeconds * 1000
        let layerRows = p.layers.map { l -> [String] in
            let t = l.attention + l.mlp + l.steering
            return ["\(l.layer)", f(l.attention / per), f(l.mlp / per), f(l.steering / per), f(t / per), pct(t / gpu)]
        }
        printTable(["layer", "attention ms/tok", "mlp ms/tok", "steering ms/tok", "total ms/tok", "share"], layerRows)
        print("")
        printTable(["outside the layers", "dispatches", "ms", "share"], p.outside.map { [$0.name, "\($0.dispatches)", f($0.milliseconds), pct($0.share)] })
        print("")
        printTable(["kernel kind", "dispatches", "ms", "share", "µs/dispatch", "GB/s", "GFLOP/s", "of BW", "of FLOP"], p.kernels.map { r in
            [r.name, "\(r.dispatches)", f(r.milliseconds), pct(r.share), f(r.milliseconds * 1000 / Double(max(r.dispatches, 1))),
             f(r.gbPerSecond), f(r.gflopPerSecond), r.bandwidthFraction.map(pct) ?? "-", r.computeFraction.map(pct) ?? "-"]
        })
    }

    func f(_ x: Double) -> String { String(format: x >= 100 ? "%.0f" : x >= 10 ? "%.1f" : "%.2f", x) }
    func pct(_ x: Double) -> String { String(format: "%.1f%%", 100 * x) }
}
