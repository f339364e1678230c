import Foundation

// Chat templates, rendered the way Hugging Face's Jinja templates render them, without a Jinja
// engine: the template source is only inspected to recognise its family and pick up its
// parameters (default system prompt, thinking switch). Families:
//
//   chatML  Qwen2 / Qwen2.5 / Qwen3, SmolLM2: "<|im_start|>role\ncontent<|im_end|>\n" per message,
//           "<|im_start|>assistant\n" as the generation prompt.
//   llama3  Llama-3.0 instruct headers (3.1+'s "Cutting Knowledge Date" system block is not reproduced).
//   llama2  Llama-2 chat "[INST] ... [/INST]" (the template writes BOS/EOS as text).
//   plain   the fallback for an unknown or missing template: "User: ...\nAssistant:" lines.
//   raw     message contents concatenated, for base models (e.g. the llama2.c stories models).

public struct ChatMessage: Sendable, Equatable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }

    public static func system(_ c: String) -> ChatMessage { ChatMessage(role: "system", content: c) }
    public static func user(_ c: String) -> ChatMessage { ChatMessage(role: "user", content: c) }
    public static func assistant(_ c: String) -> ChatMessage { ChatMessage(role: "assistant", content: c) }
}

public enum ChatTemplate: Sendable, Equatable {
    /// ChatML. `defaultSystem` is inserted when the first message is not a system message
    /// (SmolLM2, Qwen2.5). `thinking` is nil for templates without a thinking switch; otherwise it
    /// is the template's default for `enable_thinking` (Qwen3: true) and turns on Qwen3's handling
    /// of `<think>` blocks.
    case chatML(defaultSystem: String?, thinking: Bool?)
    /// Llama-3 instruct: "<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>", BOS first.
    case llama3(bos: String)
    /// Llama-2 chat: "<s>[INST] <<SYS>>\nsys\n<</SYS>>\n\nuser [/INST] answer </s>".
    case llama2(bos: String, eos: String)
    /// Fallback: "System: …\nUser: …\nAssistant: …\n" and "Assistant:" as the generation prompt.
    case plain
    /// The contents one after another, nothing added (base language models).
    case raw

    public static let smolLM2DefaultSystem = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    public static let qwen25DefaultSystem = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    public static let qwen2DefaultSystem = "You are a helpful assistant."

    /// Recognises the family of a Jinja chat template. Without a template, `modelHint` (a model
    /// name or architecture, e.g. "qwen3", "SmolLM2-135M-Instruct") picks the family's defaults.
    public static func detect(from jinja: String?, modelHint: String) -> ChatTemplate {
        if let j = jinja, !j.isEmpty {
            if j.contains("<|im_start|>") {
                return .chatML(defaultSystem: literalDefaultSystem(j),
                               thinking: j.contains("enable_thinking") ? true : nil)
            }
            if j.contains("<|start_header_id|>") { return .llama3(bos: "<|begin_of_text|>") }
            if j.contains("[INST]") { return .llama2(bos: "<s>", eos: "</s>") }
            return .plain
        }
        let h = modelHint.lowercased()
        if h.contains("qwen3") { return .chatML(defaultSystem: nil, thinking: true) }
        if h.contains("qwen2.5") || h.contains("qwen2_5") || h.contains("qwen25") {
            return .chatML(defaultSystem: qwen25DefaultSystem, thinking: nil)
        }
        if h.contains("qwen") { return .chatML(defaultSystem: qwen2DefaultSystem, thinking: nil) }
        if h.contains("smollm") { return .chatML(defaultSystem: smolLM2DefaultSystem, thinking: nil) }
        if h.contains("llama-3") || h.contains("llama3") { return .llama3(bos: "<|begin_of_text|>") }
        if (h.contains("llama-2") || h.contains("llama2")) && h.contains("chat") { return .llama2(bos: "<s>", eos: "</s>") }
        if h.contains("stories") || (h.contains("tinyllama") && !h.contains("chat")) { return .raw }
        return .plain
    }

    /// Finds a literal default system prompt: a string literal `'<|im_start|>system\n…<|im_end|>`
    /// whose body is plain text (not `' + messages[0]['content'] + '`).
    static func literalDefaultSystem(_ j: String) -> String? {
        let scalars = Array(j.unicodeScalars)
        let marker = Array("<|im_start|>system".unicodeScalars)
        let end = Array("<|im_end|>".unicodeScalars)
        var i = 0
        while i + marker.count <= scalars.count {
            if Array(scalars[i..<(i + marker.count)]) == marker {
                var k = i + marker.count
                // The newline is either a real one or the escape "\n" inside the Jinja string.
                if k < scalars.count, scalars[k] == "\n" {
                    k += 1
                } else if k + 1 < scalars.count, scalars[k] == "\\", scalars[k + 1] == "n" {
                    k += 2
                } else { i += 1; continue }
                var body = String.UnicodeScalarView()
                var m = k
                while m < scalars.count, scalars[m] != "'", scalars[m] != "\"", scalars[m] != "{", scalars[m] != "}" {
                    if m + end.count <= scalars.count, Array(scalars[m..<(m + end.count)]) == end {
                        if m > k { return String(body) }
                        break
                    }
                    body.append(scalars[m])
                    m += 1
                }
            }
            i += 1
        }
        return nil
    }

    /// Renders the conversation. `enableThinking` overrides the template's default (only
    /// templates with a thinking switch use it: false appends Qwen3's empty think block).
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool, enableThinking: Bool? = nil) -> String {
        switch self {
        case .chatML(let defaultSystem, let thinking):
            return Self.renderChatML(messages, defaultSystem: defaultSystem, thinking: thinking,
                                     addGenerationPrompt: addGenerationPrompt, enableThinking: enableThinking)
        case .llama3(let bos):
            var out = ""
            for (k, m) in messages.enumerated() {
                if k == 0 { out += bos }
                out += "<|start_header_id|>\(m.role)<|end_header_id|>\n\n" + Self.trim(m.content) + "<|eot_id|>"
            }
            if addGenerationPrompt { out += "<|start_header_id|>assistant<|end_header_id|>\n\n" }
            return out
        case .llama2(let bos, let eos):
            var rest = messages
            var system: String?
            if let f = rest.first, f.role == "system" { system = f.content; rest.removeFirst() }
            var out = ""
            for (k, m) in rest.enumerated() {
                var content = m.content
                if k == 0, let system { content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content }
                if m.role == "user" {
                    out += bos + "[INST] " + Self.trim(content) + " [/INST]"
                } else if m.role == "assistant" {
                    out += " " + Self.trim(content) + " " + eos
                }
            }
            return out  // the Llama-2 template has no separate generation prompt
        case .plain:
            var out = ""
            for m in messages { out += Self.capitalized(m.role) + ": " + m.content + "\n" }
            if addGenerationPrompt { out += "Assistant:" }
            return out
        case .raw:
            return messages.map(\.content).joined()
        }
    }

    private static func renderChatML(_ messages: [ChatMessage], defaultSystem: String?, thinking: Bool?,
                                     addGenerationPrompt: Bool, enableThinking: Bool?) -> String {
        var out = ""
        func turn(_ role: String, _ content: String) { out += "<|im_start|>" + role + "\n" + content + "<|im_end|>\n" }
        if let defaultSystem, let first = messages.first, first.role != "system" { turn("system", defaultSystem) }
        guard thinking != nil else {
            for m in messages { turn(m.role, m.content) }
            if addGenerationPrompt { out += "<|im_start|>assistant\n" }
            return out
        }
        // Qwen3: reasoning in earlier assistant turns is dropped; assistant turns after the last
        // real user query keep theirs inside a <think> block.
        var lastQuery = messages.count - 1
        for k in stride(from: messages.count - 1, through: 0, by: -1) where messages[k].role == "user" {
            let c = messages[k].content
            if !(c.hasPrefix("<tool_response>") && c.hasSuffix("</tool_response>")) { lastQuery = k; break }
        }
        for (k, m) in messages.enumerated() {
            if m.role == "assistant" {
                var content = m.content
                var reasoning = ""
                if let close = content.range(of: "</think>") {
                    let before = String(content[..<close.lowerBound])
                    reasoning = String(trimEnd(before, "\n").components(separatedBy: "<think>").last ?? "")
                    reasoning = trimStart(reasoning, "\n")
                    content = trimStart(content.components(separatedBy: "</think>").last ?? "", "\n")
                }
                if k > lastQuery && (k == messages.count - 1 || !reasoning.isEmpty) {
                    out += "<|im_start|>assistant\n<think>\n" + trimStart(trimEnd(reasoning, "\n"), "\n")
                        + "\n</think>\n\n" + trimStart(content, "\n")
                } else {
                    out += "<|im_start|>assistant\n" + content
                }
                out += "<|im_end|>\n"
            } else {
                turn(m.role, m.content)
            }
        }
        if addGenerationPrompt {
            out += "<|im_start|>assistant\n"
            if (enableThinking ?? thinking ?? true) == false { out += "<think>\n\n</think>\n\n" }
        }
        return out
    }

    // Jinja's strip()/lstrip('\n')/rstrip('\n'), on Unicode scalars.
    private static func trim(_ s: String) -> String {
        var v = Substring(s).unicodeScalars
        while let f = v.first, f.properties.isWhitespace { v.removeFirst() }
        while let l = v.last, l.properties.isWhitespace { v.removeLast() }
        return String(v)
    }

    private static func trimStart(_ s: String, _ c: Unicode.Scalar) -> String {
        var v = Substring(s).unicodeScalars
        while v.first == c { v.removeFirst() }
        return String(v)
    }

    private static func trimEnd(_ s: String, _ c: Unicode.Scalar) -> String {
        var v = Substring(s).unicodeScalars
        while v.last == c { v.removeLast() }
        return String(v)
    }

    private static func capitalized(_ role: String) -> String {
        guard let f = role.first else { return role }
        return f.uppercased() + role.dropFirst()
    }
}
