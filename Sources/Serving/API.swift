import Foundation
import Generation
import Model
import Steering

// The OpenAI-style request and response bodies of `roast serve` (snake_case, as the OpenAI API
// and its clients spell them), and the `steering` extension field.

/// One entry of a request's `steering` list: a vector loaded with `--vectors` by name, or an
/// inline one (`values`: layer → direction, with its `site`). Absent fields take the file's
/// defaults (α, layers) or the engine's (scope: generated).
public struct SteeringSpec: Codable, Sendable {
    public var vector: String?
    public var values: [String: [Float]]?
    public var site: ActivationSite?
    public var alpha: Float?
    public var layers: String?
    public var scope: SteeringScope?
    public init(vector: String? = nil, values: [String: [Float]]? = nil, site: ActivationSite? = nil, alpha: Float? = nil,
                layers: String? = nil, scope: SteeringScope? = nil) {
        (self.vector, self.values, self.site, self.alpha, self.layers, self.scope) = (vector, values, site, alpha, layers, scope)
    }
}

/// `stop`: one string or a list of them.
public struct StopField: Codable, Sendable {
    public var strings: [String]
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let one = try? c.decode(String.self) { strings = [one] } else { strings = try c.decode([String].self) }
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(strings)
    }
}

/// The sampling and steering fields `/v1/completions` and `/v1/chat/completions` share.
public struct SamplingFields: Codable, Sendable {
    public var max_tokens: Int?
    public var temperature: Float?
    public var top_p: Float?
    public var top_k: Int?
    public var stop: StopField?
    public var seed: UInt64?
    public var stream: Bool?
    public var steering: [SteeringSpec]?
}

public struct CompletionRequest: Codable, Sendable {
    public var model: String?
    public var prompt: String
    public var fields: SamplingFields
    enum Keys: String, CodingKey { case model, prompt }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        model = try c.decodeIfPresent(String.self, forKey: .model)
        prompt = try c.decode(String.self, forKey: .prompt)
        fields = try SamplingFields(from: decoder)
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encodeIfPresent(model, forKey: .model)
        try c.encode(prompt, forKey: .prompt)
        try fields.encode(to: encoder)
    }
}

public struct ChatMessageBody: Codable, Sendable {
    public var role: String
    public var content: String
}

public struct ChatRequest: Codable, Sendable {
    public var model: String?
    public var messages: [ChatMessageBody]
    public var fields: SamplingFields
    enum Keys: String, CodingKey { case model, messages }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        model = try c.decodeIfPresent(String.self, forKey: .model)
        messages = try c.decode([ChatMessageBody].self, forKey: .messages)
        fields = try SamplingFields(from: decoder)
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encodeIfPresent(model, forKey: .model)
        try c.encode(messages, forKey: .messages)
        try fields.encode(to: encoder)
    }
}

struct Usage: Codable {
    var prompt_tokens: Int
    var completion_tokens: Int
    var total_tokens: Int
}

struct CompletionChoice: Codable {
    var index = 0
    var text: String
    var finish_reason: String?
}

struct CompletionResponse: Codable {
    var id: String
    var object = "text_completion"
    var created: Int
    var model: String
    var choices: [CompletionChoice]
    var usage: Usage?
}

struct ChatChoice: Codable {
    var index = 0
    var message: ChatMessageBody?
    var delta: ChatDelta?
    var finish_reason: String?
}

struct ChatDelta: Codable {
    var role: String?
    var content: String?
}

struct ChatResponse: Codable {
    var id: String
    var object: String
    var created: Int
    var model: String
    var choices: [ChatChoice]
    var usage: Usage?
}

/// A request the server refuses: the HTTP status, a one-line message and the field it names.
public struct APIError: Error, CustomStringConvertible {
    public var status: Int
    public var message: String
    public var param: String?
    public init(_ status: Int = 400, _ message: String, param: String? = nil) {
        (self.status, self.message, self.param) = (status, message, param)
    }
    public var description: String { message }

    struct Body: Codable {
        struct Inner: Codable {
            var message: String
            var type: String
            var param: String?
        }
        var error: Inner
    }
    var body: Body {
        Body(error: .init(message: message, type: status >= 500 ? "server_error" : "invalid_request_error", param: param))
    }
}
