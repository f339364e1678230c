import Foundation
import Model
import Steering
import Tasks

/// Greedy answers to a task's questions, batched, optionally steered, graded; nothing kept on
/// disk (`roast demo`; `roast eval` runs the same benchmark with a resumable cache).
public struct Evaluator {
    public let model: LanguageModel
    public let task: ReasoningTask
    public var batchSize = 16

    public init(model: LanguageModel, task: ReasoningTask) {
        self.model = model
        self.task = task
    }

    public func answer(_ items: [TaskItem], intervention: Intervention? = nil, progress: (Int, Int) -> Void = { _, _ in }) throws -> [ItemRecord] {
        let task = self.task
        let benchmark = GenerationBenchmark(name: task.name) { _ in task }
        return try benchmark.evaluate(items, seed: 0, condition: Condition(intervention: intervention),
                                      context: EvalContext(model: model, cache: AnswerCache(), batchSize: batchSize), progress: progress)
    }

    public static func accuracy(_ answers: [ItemRecord]) -> Double {
        answers.isEmpty ? 0 : Double(answers.filter(\.correct).count) / Double(answers.count)
    }
}
