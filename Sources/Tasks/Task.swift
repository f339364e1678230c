import Backend
import Foundation

/// One question of a task.
public struct TaskItem: Sendable, Codable, Equatable {
    public var id: String
    /// The user message the model sees.
    public var prompt: String
    /// A correct answer, written as the model should answer (teacher forcing, fallbacks).
    public var goldResponse: String
    /// What the grader compares against (a number, a letter).
    public var goldValue: String
    public init(id: String, prompt: String, goldResponse: String, goldValue: String) {
        self.id = id
        self.prompt = prompt
        self.goldResponse = goldResponse
        self.goldValue = goldValue
    }
}

public struct TaskError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ d: String) { description = d }
}

/// How a question becomes the model's input.
public enum PromptFormat: String, Sendable, Codable {
    /// The model's chat template, the question as the user's message.
    case chat
    /// The question text as it is, no template (the authors' "generation" format).
    case plain
}

/// A task: its questions, how an answer is graded, and a plausible wrong answer.
public protocol ReasoningTask: Sendable {
    var name: String { get }
    /// Generation budget of one answer.
    var maxTokens: Int { get }
    var systemPrompt: String? { get }
    var promptFormat: PromptFormat { get }
    /// Training questions (steering vectors are estimated on these; α is tuned on a dev split of them).
    func train() throws -> [TaskItem]
    /// Held-out test questions.
    func test() throws -> [TaskItem]
    /// Whether a response is correct. Empty or ungradable responses are wrong, never an error.
    func grade(_ response: String, _ item: TaskItem) -> Bool
    /// A wrong answer for the "no incorrect rollout" fallback and for CAA's negatives.
    func syntheticWrongResponse(_ item: TaskItem, rng: inout TaskRandom) -> String?
}

extension ReasoningTask {
    public var promptFormat: PromptFormat { .chat }
}

/// Question generation, shuffles and wrong answers: seeded and portable.
public typealias TaskRandom = SplitMix64

/// Reading numbers out of model answers.
public enum NumberGrader {
    /// The value inside the last `\boxed{…}`, else the last number in the text. Commas, `$` and a
    /// trailing `.0` are tolerated.
    public static func extract(_ text: String) -> Double? {
        if let r = text.range(of: "\\boxed{", options: .backwards) {
            let inner = text[r.upperBound...].prefix { $0 != "}" }
            if let v = lastNumber(String(inner)) { return v }
        }
        return lastNumber(text)
    }

    /// The last number in the text: optional sign, digits with thousands commas, optional decimals.
    public static func lastNumber(_ text: String) -> Double? {
        let scalars = Array(text.unicodeScalars)
        var i = scalars.count - 1
        while i >= 0 {
            guard CharacterSet.decimalDigits.contains(scalars[i]), scalars[i].isASCII else { i -= 1; continue }
            var end = i + 1, start = i
            while start > 0, scalars[start - 1].isASCII,
                  CharacterSet.decimalDigits.contains(scalars[start - 1]) || scalars[start - 1] == "," || scalars[start - 1] == "." {
                start -= 1
            }
            while start < end, scalars[start] == "," || scalars[start] == "." { start += 1 }
            while end > start, scalars[end - 1] == "," || scalars[end - 1] == "." { end -= 1 }
            var s = String(String.UnicodeScalarView(scalars[start..<end])).replacingOccurrences(of: ",", with: "")
            if start > 0, scalars[start - 1] == "-" { s = "-" + s }
            if let v = Double(s) { return v }
            i = start - 1
        }
        return nil
    }

    public static func matches(_ text: String, _ gold: String) -> Bool {
        guard let g = Double(gold.replacingOccurrences(of: ",", with: "")), let v = extract(text) else { return false }
        return abs(v - g) < 1e-6 * max(1, abs(g))
    }
}

/// The built-in task: one- and two-digit addition and subtraction, asked in plain words, made
/// from a seed. Train and test questions are disjoint.
public struct ArithmeticTask: ReasoningTask {
    public let name = "arithmetic"
    public let maxTokens = 32
    public let systemPrompt: String? = nil
    public var seed: UInt64
    public var trainCount: Int
    public var testCount: Int

    public init(seed: UInt64 = 1234, trainCount: Int = 64, testCount: Int = 100) {
        self.seed = seed
        self.trainCount = trainCount
        self.testCount = testCount
    }

    static let templates = [
        "What is %@ %@ %@?", "Compute %@ %@ %@.", "How much is %@ %@ %@?", "Calculate %@ %@ %@. Give just the number.",
    ]

    func generate() -> [TaskItem] {
        var rng = TaskRandom(seed: seed)
        var seen = Set<String>()
        var items: [TaskItem] = []
        while items.count < trainCount + testCount {
            let a = Int.random(in: 1...99, using: &rng), b = Int.random(in: 1...99, using: &rng)
            let plus = Bool.random(using: &rng)
            let key = "\(a)\(plus ? "+" : "-")\(b)"
            guard seen.insert(key).inserted else { continue }
            let value = plus ? a + b : a - b
            let word = plus ? "plus" : "minus"
            let t = Self.templates[Int.random(in: 0..<Self.templates.count, using: &rng)]
            let prompt = String(format: t, "\(a)", word, "\(b)")
            items.append(TaskItem(id: "arith-\(items.count)", prompt: prompt,
                                  goldResponse: "\(a) \(plus ? "+" : "-") \(b) = \(value). The answer is \(value).",
                                  goldValue: "\(value)"))
        }
        return items
    }

    public func train() -> [TaskItem] { Array(generate().prefix(trainCount)) }
    public func test() -> [TaskItem] { Array(generate().suffix(testCount)) }

    public func grade(_ response: String, _ item: TaskItem) -> Bool { NumberGrader.matches(response, item.goldValue) }

    /// gold ± k, k in 1…3.
    public func syntheticWrongResponse(_ item: TaskItem, rng: inout TaskRandom) -> String? {
        guard let g = Int(item.goldValue) else { return nil }
        let k = Int.random(in: 1...3, using: &rng) * (Bool.random(using: &rng) ? 1 : -1)
        let parts = item.goldResponse.components(separatedBy: " = ").first ?? ""
        return "\(parts) = \(g + k). The answer is \(g + k)."
    }
}
