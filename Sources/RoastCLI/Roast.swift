import ArgumentParser
#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Backend
import Foundation
import Model
import Roast
import VulkanCompute

@main
struct RoastCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "roast",
        abstract: "A Vulkan activation-steering engine for language models (ROAST).",
        discussion: """
        Kernels are GLSL compute shaders compiled to SPIR-V; each has a CPU twin in plain Swift. \
        Any Vulkan device works, including the CPU through Mesa lavapipe. \
        Environment: ROAST_DEVICE=N picks a device, ROAST_KERNELS=lavapipe|gpu a kernel family, ROAST_COOPMAT=0 keeps \
        the gpu family's prefill off the matrix units (VK_NV_cooperative_matrix), ROAST_SPLIT_K=N sets the workgroups below which \
        the gpu family splits a matmul's K (default 256, 0 never), ROAST_SUBMIT_EVERY=N queues a batch to the device in \
        chunks, the first after N dispatches (default 16 on a GPU, 0 on a CPU device: whole batches), ROAST_REUSE_COMMANDS=0 \
        records every decode step anew instead of replaying its kept command buffer, ROAST_VALIDATION=1 turns on the Khronos validation layer.
        """,
        subcommands: [DemoCommand.self, Generate.self, Serve.self, Extract.self, VectorCommand.self, Tokenize.self, Forward.self, Fuzz.self,
                      Devices.self, Verify.self, Bench.self, Profile.self, Eval.self])

    /// Line-buffered stdout, so progress and tables reach a log file as they are printed.
    static func main() {
        setvbuf(stdout, nil, _IOLBF, 0)
        main(nil)
    }
}

/// Options shared by the commands that open a device.
struct DeviceOptions: ParsableArguments {
    @Option(name: .long, help: "Vulkan device number from `roast devices` (default: ROAST_DEVICE, else the first discrete GPU, integrated GPU, then CPU).")
    var device: Int?

    @Flag(name: .long, help: "Enable the Khronos validation layer and fail on any message it reports.")
    var validation = false

    @Option(name: .long, help: ArgumentHelp(
        "Matrix-kernel family: lavapipe (CPU devices: one invocation per weight row, texel-buffer weights) or gpu (subgroup matrix × vector, shared-memory tiled prefill, on the matrix units where the device has them).",
        discussion: "Default: ROAST_KERNELS, else gpu on discrete and integrated GPUs with subgroup arithmetic, lavapipe otherwise."))
    var kernels: KernelFamily?

    func open() throws -> VulkanDevice {
        try VulkanDevice(index: device, validation: validation ? true : nil)
    }

    func vulkanBackend(profiling: Bool = false) throws -> VulkanBackend {
        try VulkanBackend(device: open(), profiling: profiling, kernels: kernels)
    }
}

extension KernelFamily: ExpressibleByArgument {}

/// Prints rows under a header, columns padded to their widest cell.
func printTable(_ header: [String], _ rows: [[String]]) {
    let widths = header.indices.map { i in ([header[i]] + rows.map { $0[i] }).map(\.count).max()! }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
    }
    print(line(header))
    print(line(widths.map { String(repeating: "-", count: $0) }))
    rows.forEach { print(line($0)) }
}

/// A failure while running a command: printed as one line, exit status 1 (no usage text).
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

func printJSON<T: Encodable>(_ value: T) throws {
    let enc = JSONEncoder()
    enc.outputFormatting = [.sortedKeys]
    do { print(String(decoding: try enc.encode(value), as: UTF8.self)) } catch EncodingError.invalidValue(let v, let c) {
        throw CLIError("cannot print \(v) as JSON at \(c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()): JSON has no such number")
    }
}

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the Vulkan devices and the limits the engine reads from them.")

    @Flag(help: "Print JSON instead of a table.") var json = false

    func run() throws {
        let list = try VulkanDevice.list()
        if json { return try printJSON(list) }
        printTable(["#", "name", "kind", "kernels", "api", "max binding", "shared mem", "subgroup", "max groups", "timestamps", "mappable VRAM", "matrix units"],
                   list.map { d in
                       let l = d.limits
                       let kernels = (try? KernelFamily.resolve(nil, for: d).rawValue) ?? "none"
                       return ["\(d.index)", d.name, d.kind.rawValue, kernels, d.apiVersion, "\(l.maxStorageBufferRange >> 20) MiB",
                               "\(l.maxComputeSharedMemorySize >> 10) KiB",
                               l.minSubgroupSize == l.maxSubgroupSize ? "\(l.subgroupSize)"
                                   : "\(l.subgroupSize) (\(l.minSubgroupSize)–\(l.maxSubgroupSize)\(l.subgroupSizeControl ? ", pinned" : ", cannot pin"))",
                               l.maxComputeWorkGroupCount.map(String.init).joined(separator: "×"),
                               l.timestamps ? "yes (\(l.timestampPeriodNs) ns)" : "no", l.hostVisibleDeviceLocal ? (l.hostCachedDeviceLocal ? "yes, cached" : "yes, uncached") : "no",
                               d.cooperativeMatrix.isEmpty ? "no" : "f16 " + d.cooperativeMatrix.map(\.description).joined(separator: ", ")]
                   })
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every kernel on the device against its CPU twin on fresh random inputs.",
        discussion: """
        Each weight format (f32, f16, bf16, q8_0, q4_1, q4_0, q4_k, q6_k) and both matmul kernels; odd sizes; sizes whose long \
        dimension exceeds 65,535 (lavapipe's loop limit) and tensors past the device's binding limit. \
        Outputs are poisoned with NaN first. Limits: NMSE ≤ 1e-7 elementwise, ≤ 5e-4 matmul and attention; \
        any NaN fails. Both kernel families (lavapipe and gpu) run on any device unless --kernels picks one, so a \
        CPU-only machine proves the GPU family correct. Exits non-zero on any failure.
        """)

    @OptionGroup var deviceOptions: DeviceOptions
    @Flag(help: "Print one JSON object per case (kernel, format, shape, nmse, max_abs_err, pass).") var json = false
    @Option(help: "Seed of the random inputs.") var seed: UInt64 = 42
    @Flag(help: "Skip the cases with tensors of hundreds of MiB.") var skipLarge = false
    @Option(help: "Cases run at once, each worker with a device and a CPU twin of its own (default: a quarter of the cores, 1 to 8).")
    var workers: Int?

    func run() throws {
        let info = try deviceOptions.open().info
        let workers = workers ?? min(8, max(1, ProcessInfo.processInfo.activeProcessorCount / 4))
        guard workers >= 1 else { throw ValidationError("--workers must be at least 1, got \(workers)") }
        let opened = OpenedDevices()
        var results: [VerifyResult] = []
        let json = json
        for family in deviceOptions.kernels.map({ [$0] }) ?? KernelFamily.allCases {
            if !json { stderr("verifying the \(family.rawValue) kernels on \(info.name) (\(info.kind.rawValue)), \(workers) worker(s)") }
            let options = deviceOptions
            results += try KernelVerifier.run(workers: workers, seed: seed, includeLarge: !skipLarge, makeDevice: {
                let device = try options.open()
                opened.add(device)
                return try VulkanBackend(device: device, kernels: family)
            }, progress: { r in
                if json { try? printJSON(r) }
            })
        }
        let validation = opened.validationMessages
        let device = (name: info.name, validationEnabled: deviceOptions.validation || ProcessInfo.processInfo.environment["ROAST_VALIDATION"] == "1")
        if !json {
            printTable(["kernels", "kernel", "format", "shape", "NMSE", "max abs err", "limit", "result"], results.map { r in
                [r.family ?? "", r.kernel, r.format, r.shape, String(format: "%.2e", r.nmse), String(format: "%.2e", r.max_abs_err),
                 String(format: "%.0e", r.limit), r.pass ? "pass" : "FAIL" + (r.note.map { " (\($0))" } ?? "")]
            })
            let failed = results.filter { !$0.pass }.count
            print("\(results.count - failed) passed, \(failed) failed on \(device.name)")
            if device.validationEnabled { print("validation layer: \(validation.count) message(s)") }
        }
        for m in validation.prefix(10) { FileHandle.standardError.write("\(m)\n".data(using: .utf8)!) }
        if results.contains(where: { !$0.pass }) || !validation.isEmpty { throw ExitCode(1) }
    }
}

/// The devices verify's workers opened, kept for their validation messages.
final class OpenedDevices: @unchecked Sendable {
    private let lock = NSLock()
    private var devices: [VulkanDevice] = []
    func add(_ d: VulkanDevice) { lock.withLock { devices.append(d) } }
    var validationMessages: [String] { lock.withLock { devices.flatMap(\.validationMessages) } }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure speed: the cost of one dispatch, and with --model prefill and decode throughput.",
        discussion: """
        Without --model: 2,000 tiny dispatches recorded into one command buffer, with and without barriers. \
        With --model: prefill tokens/s for a --prompt-tokens prompt, greedy decode tokens/s at batch 1, the summed \
        throughput at each --batch size, the steering overhead (decode at batch 1 with a random vector at 5 layers, \
        α 0.2, at the act and the residual site), decode at the first --batch size sampled as ROAST's rollouts are \
        (temperature 0.8, top-p 0.9, the whole vocabulary) with the share of rows whose logits came back, peak \
        host memory and device memory. Figures go in \
        docs/PERFORMANCE.md.
        """)

    @Option(help: "A model to benchmark (folder, .gguf or .bin).") var model: String?
    @Option(help: "vulkan (default) or cpu.") var backend: BackendKind = .vulkan
    @OptionGroup var deviceOptions: DeviceOptions
    @Option(help: "Prompt length of the prefill measurement.") var promptTokens = 512
    @Option(help: "Tokens decoded per sequence.") var genTokens = 128
    @Option(help: "Batch sizes of the batched decode measurements, comma-separated.") var batch = "8,32"
    @Option(help: "Dispatches per batch (without --model).") var dispatches = 2000
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        if let model {
            let b: Backend = backend == .cpu ? CPUBackend() : try deviceOptions.vulkanBackend()
            let m = try LanguageModel(path: model, backend: b)
            let sizes = batch.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !sizes.isEmpty, sizes.allSatisfy({ ($0 ?? 0) > 0 }) else { throw ValidationError("--batch: expected sizes like 8,32, got '\(batch)'") }
            let r = try ModelBenchmark.run(model: m, promptTokens: promptTokens, decodeTokens: genTokens, batches: sizes.map { $0! }) { step in
                if !json { stderr("bench: \(step)") }
            }
            if json { return try printJSON(r) }
            print("model: \(r.model) (\(String(format: "%.1f", r.weightMiB)) MiB of weights) on \(r.device)")
            var rows: [[String]] = [
                ["prefill, \(r.prefillTokens)-token prompt", String(format: "%.1f tok/s", r.prefillTokensPerSecond)],
                ["decode, batch 1, \(r.decodeTokens) tokens", String(format: "%.2f tok/s", r.decodeTokensPerSecondBatch1)],
            ]
            if let h = r.decodeHostBatch1 {
                rows.append(["  host busy per token (wall less fence waits)", String(format: "%.3f ms", h.busyMillisecondsPerToken)])
                rows.append(["  of which recording \(String(format: "%.0f", h.dispatchesPerToken)) dispatches", String(format: "%.3f ms", h.recordMillisecondsPerToken)])
                rows.append(["  steps replayed from kept commands", String(format: "%.0f %%", 100 * min(h.replayedStepsPerToken, 1))])
            }
            rows += r.batched.map { ["decode, batch \($0.batch), summed over sequences", String(format: "%.2f tok/s", $0.tokensPerSecond)] }
            rows += r.steered.map {
                ["decode, batch 1, steered at \($0.layers) layers (\($0.site))",
                 String(format: "%.2f tok/s (overhead %+.1f%%)", $0.tokensPerSecond, 100 * $0.overhead)
                    + ($0.host.map { String(format: ", host %.3f ms/token", $0.busyMillisecondsPerToken) } ?? "")]
            }
            if let s = r.sampled {
                rows.append(["decode, batch \(s.batch), sampled (temperature \(s.temperature), top-p \(s.topP)), summed",
                             String(format: "%.2f tok/s", s.tokensPerSecond)
                                + (s.host.map { String(format: ", host %.3f ms/token", $0.busyMillisecondsPerToken) } ?? "")])
                rows.append(["  rows whose logits came back (draw beyond the softmax head)", String(format: "%.1f %%", 100 * s.rowsReadBack)])
            }
            rows.append(["peak host memory (VmHWM)", String(format: "%.0f MiB", r.peakHostMiB)])
            rows.append(["device memory allocated", r.deviceMiB.map { String(format: "%.0f MiB", $0) } ?? "-"])
            printTable(["measure", "value"], rows)
            return
        }
        let backend = try deviceOptions.vulkanBackend()
        let r = try DispatchBenchmark.run(device: backend, dispatches: dispatches)
        if json { return try printJSON(r) }
        print("device: \(r.device)")
        printTable(["measure", "µs per dispatch"], [
            ["independent dispatches (no barrier), submit → fence", String(format: "%.1f", r.independentMicroseconds)],
            ["chained dispatches (barrier before each), submit → fence", String(format: "%.1f", r.chainedMicroseconds)],
            ["host recording", String(format: "%.1f", r.recordMicroseconds)],
        ])
    }
}

