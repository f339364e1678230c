import Foundation

/// The positive control: a behaviour that steering should move and a grader can check
/// mechanically. The questions are the arithmetic task's, asked plainly; an answer "passes" when
/// it writes `\boxed{…}` at all (right or wrong), which the default model does about never
/// zero-shot. The gold answer boxes its result; the synthetic negative is the same answer
/// unboxed, so CAA's contrast is the box and nothing else.
public struct BoxedControlTask: ReasoningTask {
    public let name = "boxed"
    public let maxTokens = 32
    public let systemPrompt: String? = nil
    public var base: ArithmeticTask

    public init(seed: UInt64 = 1234, trainCount: Int = 200, testCount: Int = 100) {
        base = ArithmeticTask(seed: seed, trainCount: trainCount, testCount: testCount)
    }

    /// The arithmetic item with its answer boxed: "74 - 16 = 58. The answer is \boxed{58}."
    static func boxed(_ item: TaskItem) -> TaskItem {
        var b = item
        b.id = item.id.replacingOccurrences(of: "arith-", with: "boxed-")
        b.goldResponse = item.goldResponse.replacingOccurrences(of: "The answer is \(item.goldValue).", with: "The answer is \\boxed{\(item.goldValue)}.")
        return b
    }

    public func train() -> [TaskItem] { base.train().map(Self.boxed) }
    public func test() -> [TaskItem] { base.test().map(Self.boxed) }

    public func grade(_ response: String, _ item: TaskItem) -> Bool { response.contains("\\boxed{") }

    /// The gold answer without the box.
    public func syntheticWrongResponse(_ item: TaskItem, rng: inout TaskRandom) -> String? {
        item.goldResponse.replacingOccurrences(of: "\\boxed{\(item.goldValue)}", with: item.goldValue)
    }
}

/// The second positive control: choosing a given letter. TruthfulQA questions in the authors'
/// letter format (`TruthfulQAOrbitTask`: plain prompt ending "Answer:"); an answer passes when its
/// first line starts with the target letter, right or wrong, which the default model, answering
/// "A" almost always, rarely does. The gold answer is the target letter, the synthetic negative
/// another letter, so CAA's contrast is the letter choice and nothing else.
public struct LetterControlTask: ReasoningTask {
    public let name = "letter"
    public var maxTokens = 16
    public let systemPrompt: String? = nil
    public let promptFormat = PromptFormat.plain
    public var base: TruthfulQAOrbitTask
    public var target: String

    public init(rows: [TruthfulQARow], seed: UInt64, trainCount: Int = 100, target: String = "D") {
        base = TruthfulQAOrbitTask(rows: rows, seed: seed, trainCount: trainCount)
        self.target = target
    }

    func retarget(_ item: TaskItem) -> TaskItem {
        TaskItem(id: item.id.replacingOccurrences(of: "truthfulqa-csv-", with: "letter-"), prompt: item.prompt,
                 goldResponse: " " + target, goldValue: target)
    }

    public func train() -> [TaskItem] { base.train().map(retarget) }
    public func test() -> [TaskItem] { base.test().map(retarget) }

    public func grade(_ response: String, _ item: TaskItem) -> Bool { OrbitGrader.matches(response, target) }

    public func syntheticWrongResponse(_ item: TaskItem, rng: inout TaskRandom) -> String? {
        let others = TruthfulQAOrbitTask.letters.filter { $0 != target }
        return " " + others[Int(rng.next() % UInt64(others.count))]
    }
}
