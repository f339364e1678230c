import Backend
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Generation
import Hummingbird
import Model
@testable import Serving
import Steering
import VulkanCompute
import XCTest

/// `roast serve` over loopback with a real HTTP client (URLSession), on the stories260K fixture
/// and lavapipe.
final class ServingTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../Fixtures").standardized
    var model: LanguageModel!
    var engine: ServingEngine!
    var server: Task<Void, Error>!
    var base: URL!
    var vectorFile: SteeringVectorFile!

    override func setUp() async throws {
        model = try LanguageModel(path: Self.fixtures.appendingPathComponent("models/stories260K-hf").path,
                                  backend: VulkanBackend(device: VulkanDevice(validation: true)))
        var rng = SplitMix64(seed: 9)
        let layers = [0, 2]
        var meta = VectorMetadata(model: model, site: .act, layers: layers, method: "test", defaultAlpha: 2)
        meta.date = "2026-12-04"
        vectorFile = SteeringVectorFile(metadata: meta, vectors: Dictionary(uniqueKeysWithValues: layers.map {
            ($0, (0..<model.config.intermediateSize).map { _ in Float.random(in: -1...1, using: &rng) })
        }))
        engine = try ServingEngine(model: model, modelName: "stories260K", vectors: ["story": vectorFile], maxBatch: 4, capacity: 256)
        engine.start()
        let app = Application(router: RoastServer.router(engine: engine), configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in Ports.shared.set(channel.localAddress?.port ?? 0) })
        Ports.shared.set(nil)
        server = Task { try await app.run() }
        let deadline = Date().addingTimeInterval(20)
        while Ports.shared.get() == nil, Date() < deadline { try await Task.sleep(nanoseconds: 20_000_000) }
        base = URL(string: "http://127.0.0.1:\(try XCTUnwrap(Ports.shared.get()))")!
    }

    override func tearDown() async throws {
        server?.cancel()
        engine?.stop()
        XCTAssertEqual((model?.backend as? VulkanBackend)?.device.validationMessages ?? [], [])
    }

    func call(_ path: String, _ body: String? = nil) async throws -> (status: Int, body: Data) {
        try await Self.call(base, path, body)
    }

    static func call(_ base: URL, _ path: String, _ body: String? = nil) async throws -> (status: Int, body: Data) {
        var request = URLRequest(url: base.appendingPathComponent(path))
        request.timeoutInterval = 120
        if let body {
            request.httpMethod = "POST"
            request.httpBody = Data(body.utf8)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as! HTTPURLResponse).statusCode, data)
    }

    func object(_ data: Data) throws -> [String: Any] { try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any]) }

    func text(_ data: Data) throws -> String { try Self.text(data) }

    static func text(_ data: Data) throws -> String {
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let choices = try XCTUnwrap(object["choices"] as? [[String: Any]])
        return try XCTUnwrap(choices.first?["text"] as? String)
    }

    /// What the engine alone gives for a prompt, greedy, with or without the vector.
    func alone(_ prompt: String, tokens: Int, steered: Bool) throws -> String {
        let ids = try model.requireTokenizer().encode(prompt, addSpecialTokens: true)
        let request = GenerationRequest(promptIDs: ids, maxTokens: tokens, sampling: .greedy)
        let injector = try steered ? SteeringInjector(model: model, intervention: vectorFile.intervention()) : nil
        return try Generator(model: model).generate([request], steering: injector?.provider)[0].text
    }

    func testRoutesAnswerAndPerRequestSteeringMatchesGenerate() async throws {
        var r = try await call("health")
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(try object(r.body)["status"] as? String, "ok")
        r = try await call("v1/models")
        XCTAssertEqual(((try object(r.body)["data"] as? [[String: Any]])?.first?["id"]) as? String, "stories260K")
        r = try await call("v1/vectors")
        let vectors = try XCTUnwrap(try object(r.body)["data"] as? [[String: Any]])
        XCTAssertEqual(vectors.first?["name"] as? String, "story")
        XCTAssertEqual((vectors.first?["metadata"] as? [String: Any])?["site"] as? String, "act")

        let prompt = "Once upon a time"
        let plain = try await call("v1/completions", #"{"prompt": "\#(prompt)", "max_tokens": 12, "temperature": 0}"#)
        XCTAssertEqual(plain.status, 200, String(decoding: plain.body, as: UTF8.self))
        XCTAssertEqual(try text(plain.body), try alone(prompt, tokens: 12, steered: false))
        let steered = try await call("v1/completions", #"{"prompt": "\#(prompt)", "max_tokens": 12, "temperature": 0, "steering": [{"vector": "story"}]}"#)
        XCTAssertEqual(try text(steered.body), try alone(prompt, tokens: 12, steered: true))
        XCTAssertNotEqual(try text(steered.body), try text(plain.body), "the vector at α 2 changed nothing")
        let usage = try XCTUnwrap(try object(plain.body)["usage"] as? [String: Int])
        XCTAssertEqual(usage["completion_tokens"], 12)

        // Streaming: server-sent events whose pieces add up to the same text, then [DONE].
        let stream = try await call("v1/completions", #"{"prompt": "\#(prompt)", "max_tokens": 12, "temperature": 0, "stream": true}"#)
        let lines = String(decoding: stream.body, as: UTF8.self).components(separatedBy: "\n\n").filter { !$0.isEmpty }
        XCTAssertEqual(lines.last, "data: [DONE]")
        XCTAssertTrue(lines.allSatisfy { $0.hasPrefix("data: ") })
        let pieces = try lines.dropLast().map { try text(Data($0.dropFirst(6).utf8)) }
        XCTAssertEqual(pieces.joined(), try text(plain.body))
        XCTAssertGreaterThan(pieces.filter { !$0.isEmpty }.count, 2, "the answer should arrive in pieces")

        let chat = try await call("v1/chat/completions", #"{"messages": [{"role": "user", "content": "Tom had a dog."}], "max_tokens": 5, "temperature": 0}"#)
        XCTAssertEqual(chat.status, 200)
        let choice = try XCTUnwrap((try object(chat.body)["choices"] as? [[String: Any]])?.first)
        XCTAssertEqual((choice["message"] as? [String: Any])?["role"] as? String, "assistant")
        XCTAssertEqual(try object(chat.body)["object"] as? String, "chat.completion")

        let metrics = String(decoding: try await call("metrics").body, as: UTF8.self)
        XCTAssertTrue(metrics.contains("roast_requests_total 4"), metrics)
        XCTAssertTrue(metrics.contains("roast_time_to_first_token_seconds_count 4"), metrics)
    }

    func testBadRequestsGetA4xxNamingTheFieldAndTheServerKeepsServing() async throws {
        let cases: [(body: String, status: Int, param: String?, says: String)] = [
            (#"{"prompt": "a""#, 400, nil, "malformed request body"),
            (#"{"prompt": "a", "max_tokens": "many"}"#, 400, "max_tokens", "expected"),
            (#"{"max_tokens": 3}"#, 400, "prompt", "prompt"),
            (#"{"prompt": "a", "max_tokens": -1}"#, 400, "max_tokens", "max_tokens must be ≥ 0"),
            (#"{"prompt": "a", "max_tokens": 300}"#, 400, "max_tokens", "exceeds the server's context of 256"),
            (#"{"prompt": "a", "temperature": -1}"#, 400, "temperature", "temperature"),
            (#"{"prompt": "a", "steering": [{"vector": "nope"}]}"#, 400, "steering[0].vector", "unknown vector 'nope' (loaded: story)"),
            (#"{"prompt": "a", "steering": [{"vector": "story", "alpha": 1e30}]}"#, 400, "steering[0].alpha", "not a finite number"),
            (#"{"prompt": "a", "steering": [{"values": {"0": [1, 2]}, "site": "residual"}]}"#, 400, "steering[0].values", "wide"),
            (#"{"prompt": "a", "steering": [{"values": {"0": [1]}}]}"#, 400, "steering[0].site", "site"),
            (#"{"prompt": "a", "steering": [{"vector": "story", "layers": "1"}]}"#, 400, "steering[0].layers", "no direction"),
        ]
        for c in cases {
            let r = try await call("v1/completions", c.body)
            XCTAssertEqual(r.status, c.status, c.body)
            let error = try XCTUnwrap(try object(r.body)["error"] as? [String: Any], c.body)
            XCTAssertTrue((error["message"] as? String ?? "").contains(c.says), "\(c.body): \(error)")
            XCTAssertEqual(error["param"] as? String, c.param, c.body)
            XCTAssertFalse((error["message"] as? String ?? "").contains("\n"), "one line: \(error)")
        }
        let chat = try await call("v1/chat/completions", #"{"messages": [{"role": "robot", "content": "x"}]}"#)
        XCTAssertEqual(chat.status, 400)
        let ok = try await call("v1/completions", #"{"prompt": "Lily", "max_tokens": 3, "temperature": 0}"#)
        XCTAssertEqual(ok.status, 200, "the server keeps serving")
    }

    /// A bounded load test on loopback: 64 concurrent clients, half steered; every request is
    /// answered once, with the answer it gets alone; p50 / p99 latency and tokens/s are printed.
    func testSixtyFourConcurrentMixedClients() async throws {
        let prompts = ["Once upon a time", "Lily went to the park", "The cat"]
        var want: [String: String] = [:]
        for p in prompts { for s in [false, true] { want["\(p)|\(s)"] = try alone(p, tokens: 8, steered: s) } }
        let start = Date()
        let base: URL = base
        let results = try await withThrowingTaskGroup(of: (Int, String, Double).self) { group in
            for i in 0..<64 {
                let p = prompts[i % 3], steer = i % 2 == 1
                let body = #"{"prompt": "\#(p)", "max_tokens": 8, "temperature": 0\#(steer ? #", "steering": [{"vector": "story"}]"# : "")}"#
                group.addTask {
                    let t0 = Date()
                    let r = try await Self.call(base, "v1/completions", body)
                    XCTAssertEqual(r.status, 200)
                    return (i, try Self.text(r.body), Date().timeIntervalSince(t0))
                }
            }
            var all: [(Int, String, Double)] = []
            for try await r in group { all.append(r) }
            return all
        }
        let seconds = Date().timeIntervalSince(start)
        XCTAssertEqual(results.map(\.0).sorted(), Array(0..<64), "each request answered exactly once")
        for (i, text, _) in results {
            XCTAssertEqual(text, want["\(prompts[i % 3])|\(i % 2 == 1)"], "request \(i)")
        }
        let latency = results.map(\.2).sorted()
        print(String(format: "serve load test: 64 clients, p50 %.2f s, p99 %.2f s, %.1f tokens/s", latency[31], latency[63], Double(64 * 8) / seconds))
        let metrics = String(decoding: try await call("metrics").body, as: UTF8.self)
        XCTAssertTrue(metrics.contains("roast_requests_total 64"), metrics)
        XCTAssertTrue(metrics.contains("roast_requests_in_flight 0"), metrics)
    }

    /// A client that goes away mid-stream: its request is cancelled and its slot freed, and the
    /// engine goes on serving.
    func testDroppedStreamCancelsTheRequest() async throws {
        let ids = try model.requireTokenizer().encode("Once upon a time", addSpecialTokens: true)
        let job = ServingEngine.Job(request: GenerationRequest(promptIDs: ids, maxTokens: 200, sampling: .greedy, stopAtEOS: false), intervention: nil)
        let submission = engine.submit(job)
        var seen = 0
        for await event in submission.events {
            if case .text = event { seen += 1 }
            if seen == 3 { break }
        }
        submission.cancel()  // the client went away
        let deadline = Date().addingTimeInterval(30)
        var metrics = ""
        repeat {
            try await Task.sleep(nanoseconds: 50_000_000)
            metrics = engine.metrics.text(queueDepth: engine.queueDepth)
        } while !metrics.contains("roast_requests_cancelled_total 1") && Date() < deadline
        XCTAssertTrue(metrics.contains("roast_requests_cancelled_total 1"), metrics)
        XCTAssertTrue(metrics.contains("roast_requests_in_flight 0"), metrics)
        XCTAssertFalse(metrics.contains("roast_generated_tokens_total 200"), metrics)
        let r = try await call("v1/completions", #"{"prompt": "Lily", "max_tokens": 3, "temperature": 0}"#)
        XCTAssertEqual(r.status, 200)
    }
}

/// The port the server bound, handed from its start callback to the test.
final class Ports: @unchecked Sendable {
    static let shared = Ports()
    private let lock = NSLock()
    private var port: Int?
    func set(_ p: Int?) { lock.withLock { port = p } }
    func get() -> Int? { lock.withLock { port } }
}
