import Formats
import Foundation

/// One GSM8K problem as the file gives it.
public struct GSM8KProblem: Sendable, Equatable {
    public var question: String
    /// The worked solution, calculator annotations `<<…>>` removed, without the `#### N` line.
    public var solution: String
    /// The final answer N, commas removed.
    public var answer: String
}

/// GSM8K: grade-school word problems. Zero-shot chat prompt asking for step-by-step reasoning
/// and the final answer in `\boxed{}`; graded numerically (the boxed value, else the last number).
public struct GSM8KTask: ReasoningTask {
    public let name = "gsm8k"
    public var maxTokens = 256
    public let systemPrompt: String? = nil
    public let trainProblems: [GSM8KProblem]
    public let testProblems: [GSM8KProblem]

    public static let instruction = "Please reason step by step, and put your final answer within \\boxed{}."

    /// Reads the test and train files (`{"question","answer"}` per line, the answer ending in `#### N`).
    public init(test: URL, train: URL) throws {
        testProblems = try Self.read(test)
        trainProblems = try Self.read(train)
    }

    public static func read(_ url: URL) throws -> [GSM8KProblem] {
        try Datasets.jsonLines(url, what: "GSM8K").map { line, v in
            func bad(_ why: String) -> TaskError { TaskError("\(url.path):\(line): \(why)") }
            guard let q = v["question"]?.string, !q.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw bad("no \"question\" string")
            }
            guard let a = v["answer"]?.string else { throw bad("no \"answer\" string") }
            guard let r = a.range(of: "####", options: .backwards) else { throw bad("the answer does not end in '#### N'") }
            let final = a[r.upperBound...].trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: ",", with: "")
            guard Double(final) != nil else { throw bad("the final answer '\(final)' is not a number") }
            let solution = String(a[..<r.lowerBound]).replacingOccurrences(of: "<<[^>]*>>", with: "", options: .regularExpression)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            return GSM8KProblem(question: q, solution: solution, answer: final)
        }
    }

    func item(_ p: GSM8KProblem, id: String) -> TaskItem {
        TaskItem(id: id, prompt: "\(p.question)\n\(Self.instruction)",
                 goldResponse: (p.solution.isEmpty ? "" : p.solution + "\n") + "The answer is \\boxed{\(p.answer)}.",
                 goldValue: p.answer)
    }

    public func train() -> [TaskItem] { trainProblems.enumerated().map { item($0.element, id: "gsm8k-train-\($0.offset)") } }
    public func test() -> [TaskItem] { testProblems.enumerated().map { item($0.element, id: "gsm8k-test-\($0.offset)") } }

    public func grade(_ response: String, _ item: TaskItem) -> Bool { NumberGrader.matches(response, item.goldValue) }

    /// The gold solution with its final answer moved by 1–3 or off by a factor of ten.
    public func syntheticWrongResponse(_ item: TaskItem, rng: inout TaskRandom) -> String? {
        guard let g = Double(item.goldValue) else { return nil }
        let wrong: Double = Bool.random(using: &rng) ? g + Double(Int.random(in: 1...3, using: &rng)) * (Bool.random(using: &rng) ? 1 : -1) : g * 10
        let text = wrong.rounded() == wrong && abs(wrong) < 1e15 ? String(Int(wrong)) : String(wrong)
        guard let r = item.goldResponse.range(of: "\\boxed{", options: .backwards) else { return nil }
        return String(item.goldResponse[..<r.lowerBound]) + "\\boxed{\(text)}."
    }
}
