import Formats
import Foundation
import Generation
import Hummingbird
import Model
import Steering
import Tokenizers

/// The HTTP side of `roast serve`: OpenAI-style routes over a `ServingEngine`.
///
/// - `POST /v1/completions`, `POST /v1/chat/completions` (with `"stream": true`: server-sent
///   events, `data: {chunk}` lines and a final `data: [DONE]`), each with the `steering` extension;
/// - `GET /v1/models`, `GET /v1/vectors`, `GET /health`, `GET /metrics` (Prometheus text).
/// A bad request gets a 4xx with `{"error": {"message", "type", "param"}}`; the server keeps serving.
public enum RoastServer {
    /// Bodies past this are refused (an inline vector for every layer of a large model fits).
    public static let maxBodyBytes = 64 << 20

    public static func router(engine: ServingEngine) -> Router<BasicRequestContext> {
        let router = Router()
        router.get("health") { _, _ in json(["status": "ok"]) }
        router.get("v1/models") { _, _ in
            json(ModelList(data: [.init(id: engine.modelName, created: Int(Date().timeIntervalSince1970))]))
        }
        router.get("v1/vectors") { _, _ in
            json(VectorList(data: engine.vectors.keys.sorted().map { VectorList.Entry(name: $0, metadata: engine.vectors[$0]!.metadata) }))
        }
        router.get("metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(string: engine.metrics.text(queueDepth: engine.queueDepth))))
        }
        router.post("v1/completions") { request, _ in
            await respond {
                let body: CompletionRequest = try await decode(request)
                let tok = try engine.model.requireTokenizer()
                let ids = tok.encode(body.prompt, addSpecialTokens: true)
                let job = try engine.job(promptIDs: ids, fields: body.fields, defaultMaxTokens: 16)
                return try await run(engine, job, stream: body.fields.stream ?? false, chat: false)
            }
        }
        router.post("v1/chat/completions") { request, _ in
            await respond {
                let body: ChatRequest = try await decode(request)
                guard !body.messages.isEmpty else { throw APIError(400, "messages is empty", param: "messages") }
                for (i, m) in body.messages.enumerated() where !["system", "user", "assistant"].contains(m.role) {
                    throw APIError(400, "role '\(m.role)' is not system, user or assistant", param: "messages[\(i)].role")
                }
                let tok = try engine.model.requireTokenizer()
                let text = engine.model.chatTemplate.render(body.messages.map { ChatMessage(role: $0.role, content: $0.content) },
                                                            addGenerationPrompt: true)
                let job = try engine.job(promptIDs: tok.encode(text, addSpecialTokens: false), fields: body.fields, defaultMaxTokens: nil)
                return try await run(engine, job, stream: body.fields.stream ?? false, chat: true)
            }
        }
        return router
    }

    /// Runs `body`; an `APIError` (or any other error) becomes its JSON error response.
    static func respond(_ body: () async throws -> Response) async -> Response {
        do { return try await body() } catch let e as APIError {
            return json(e.body, status: .init(code: e.status))
        } catch {
            return json(APIError(500, "\(error)").body, status: .internalServerError)
        }
    }

    static func decode<T: Decodable>(_ request: Request) async throws -> T {
        let buffer: ByteBuffer
        do { buffer = try await request.body.collect(upTo: maxBodyBytes) } catch {
            throw APIError(413, "the request body exceeds \(maxBodyBytes >> 20) MiB")
        }
        let data = Data(buffer.readableBytesView)
        do { return try JSONDecoder().decode(T.self, from: data) } catch {
            throw APIError(400, "malformed request body: \(DecodingErrorText.describe(error))", param: parameter(of: error))
        }
    }

    /// The field a decoding error is about, as a dotted path.
    static func parameter(of error: Error) -> String? {
        let path: [CodingKey]
        switch error as? DecodingError {
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c): path = c.codingPath
        case .keyNotFound(let key, let c): path = c.codingPath + [key]
        default: return nil
        }
        guard !path.isEmpty else { return nil }
        return path.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().trimmingCharacters(in: CharacterSet(charactersIn: "."))
    }

    static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let data = (try? enc.encode(value)) ?? Data(#"{"error":{"message":"response encoding failed","type":"server_error"}}"#.utf8)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func encodeLine<T: Encodable>(_ value: T) -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return String(decoding: (try? enc.encode(value)) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// Runs a job: the whole answer as one JSON body, or server-sent events as tokens arrive.
    static func run(_ engine: ServingEngine, _ job: ServingEngine.Job, stream: Bool, chat: Bool) async throws -> Response {
        let id = (chat ? "chatcmpl-" : "cmpl-") + UUID().uuidString.lowercased()
        let created = Int(Date().timeIntervalSince1970)
        let model = engine.modelName
        let promptTokens = job.request.promptIDs.count
        let submission = engine.submit(job)
        let events = submission.events
        if !stream {
            // Returning early (the client went away, an error) cancels the request.
            defer { submission.cancel() }
            var text = ""
            for await event in events {
                switch event {
                case .text(let piece): text += piece
                case .failed(let reason): throw APIError(500, reason)
                case .finished(let r):
                    let usage = Usage(prompt_tokens: promptTokens, completion_tokens: r.ids.count, total_tokens: promptTokens + r.ids.count)
                    let reason = finishReason(r)
                    if chat {
                        return json(ChatResponse(id: id, object: "chat.completion", created: created, model: model,
                                                 choices: [ChatChoice(message: ChatMessageBody(role: "assistant", content: r.text), finish_reason: reason)],
                                                 usage: usage))
                    }
                    return json(CompletionResponse(id: id, created: created, model: model,
                                                   choices: [CompletionChoice(text: r.text, finish_reason: reason)], usage: usage))
                }
            }
            throw APIError(500, "the request ended without an answer")
        }
        let body = ResponseBody { writer in
            // A failed write (the client went away) ends this closure: the request is cancelled.
            defer { submission.cancel() }
            func send(_ line: String) async throws { try await writer.write(ByteBuffer(string: "data: \(line)\n\n")) }
            func chunk(_ text: String?, _ reason: String?, role: String? = nil) -> String {
                chat ? encodeLine(ChatResponse(id: id, object: "chat.completion.chunk", created: created, model: model,
                                               choices: [ChatChoice(delta: ChatDelta(role: role, content: text), finish_reason: reason)]))
                    : encodeLine(CompletionResponse(id: id, created: created, model: model,
                                                    choices: [CompletionChoice(text: text ?? "", finish_reason: reason)]))
            }
            if chat { try await send(chunk(nil, nil, role: "assistant")) }
            // A stop string may end inside a later piece, and the answer ends before it: hold back
            // as many characters as the longest stop string could still cover.
            let holdBack = max((job.request.stopStrings.map(\.count).max() ?? 1) - 1, 0)
            var pending = "", sent = ""
            for await event in events {
                switch event {
                case .text(let piece):
                    pending += piece
                    if pending.count > holdBack {
                        let out = String(pending.prefix(pending.count - holdBack))
                        pending.removeFirst(out.count)
                        sent += out
                        try await send(chunk(out, nil))
                    }
                case .failed(let reason):
                    try await send(encodeLine(APIError(500, reason).body))
                case .finished(let r):
                    let rest = r.text.hasPrefix(sent) ? String(r.text.dropFirst(sent.count)) : ""
                    if !rest.isEmpty { try await send(chunk(rest, nil)) }
                    try await send(chunk(nil, finishReason(r)))
                }
            }
            try await send("[DONE]")
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }

    static func finishReason(_ r: GenerationResult) -> String {
        switch r.finishReason {
        case .eos, .stop: "stop"
        case .length: "length"
        }
    }

    struct ModelList: Encodable {
        struct Entry: Encodable {
            var id: String
            var object = "model"
            var created: Int
            var owned_by = "roast"
        }
        var object = "list"
        var data: [Entry]
    }

    struct VectorList: Encodable {
        struct Entry: Encodable {
            var name: String
            var metadata: VectorMetadata
        }
        var object = "list"
        var data: [Entry]
    }

    static func json(_ dict: [String: String]) -> Response { json(dict, status: .ok) }
}
