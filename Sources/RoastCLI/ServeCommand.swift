import ArgumentParser
import Foundation
import Hummingbird
import Model
import Serving
import Steering

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the model over OpenAI-style HTTP, with steering chosen per request.",
        discussion: """
        Routes: POST /v1/completions and /v1/chat/completions ("stream": true for server-sent events), GET /v1/models, \
        GET /v1/vectors (the --vectors files and their metadata), GET /health, GET /metrics (Prometheus text). \
        Requests share one continuous batch of --max-batch sequences; each may carry its own steering in the extension \
        field "steering": [{"vector": NAME, "alpha": A, "layers": "0-4", "scope": "generated"}], or an inline vector \
        {"values": {"LAYER": [...]}, "site": "act"}. No field means no steering. Example:
          curl -s localhost:8080/v1/chat/completions -d '{"messages":[{"role":"user","content":"2+2?"}],"max_tokens":32,\
        "temperature":0,"steering":[{"vector":"roast-gsm8k","alpha":0.5}]}'
        """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Address to listen on (127.0.0.1: this machine only).") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port, printed at start).") var port = 8080
    @Option(help: "A folder of steering vectors (.safetensors, control-vector .gguf), named by file name without extension.")
    var vectors: String?
    @Option(help: "Sequences decoded together.") var maxBatch = 8
    @Option(help: "Tokens one sequence may hold, prompt + max_tokens (default: the model's context, at most 4096).") var context: Int?

    func validate() throws {
        guard maxBatch >= 1 else { throw ValidationError("--max-batch must be at least 1") }
        guard (1...65535).contains(port) || port == 0 else { throw ValidationError("--port must be 0…65535, got \(port)") }
        if let context, context < 2 { throw ValidationError("--context must be at least 2") }
    }

    func run() throws {
        let files = try vectors.map { try ServedVectors.read(folder: URL(fileURLWithPath: $0)) } ?? [:]
        let model = try modelOptions.load()
        for (name, f) in files {
            do { try f.check(against: model) } catch { throw ValidationError("--vectors: \(name): \(error)") }
        }
        let capacity = min(context ?? min(model.config.contextLength, 4096), model.config.contextLength)
        let engine = try ServingEngine(model: model, modelName: URL(fileURLWithPath: model.path).lastPathComponent, vectors: files,
                                       maxBatch: maxBatch, capacity: capacity)
        engine.start()
        let app = Application(router: RoastServer.router(engine: engine), configuration: .init(address: .hostname(host, port: port)),
                              onServerRunning: { channel in
                                  stderr("roast serve: \(engine.modelName) on http://\(host):\(channel.localAddress?.port ?? port), "
                                         + "\(files.count) vector(s), batch \(engine.maxBatch), context \(capacity)")
                              })
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var failure: Error?
        Task {
            do { try await app.runService() } catch { failure = error }
            done.signal()
        }
        done.wait()
        engine.stop()
        if let failure { throw failure }
    }
}
