import Backend
import Foundation
import Generation
import Model
import Steering
import Tasks

/// One graded answer.
public struct GradedAnswer: Sendable, Codable {
    public var id: String
    public var prompt: String
    public var response: String
    public var gold: String
    public var correct: Bool
}

/// Greedy answers to a task's questions, batched, optionally steered.
public struct Evaluator {
    public let model: LanguageModel
    public let task: ReasoningTask
    public var batchSize = 16

    public init(model: LanguageModel, task: ReasoningTask) {
        self.model = model
        self.task = task
    }

    public func answer(_ items: [TaskItem], intervention: Intervention? = nil, progress: (Int, Int) -> Void = { _, _ in }) throws -> [GradedAnswer] {
        let gen = Generator(model: model)
        let injector = try intervention.map { try SteeringInjector(model: model, intervention: $0) }
        var out: [GradedAnswer] = []
        for start in stride(from: 0, to: items.count, by: batchSize) {
            let batch = Array(items[start..<min(start + batchSize, items.count)])
            let requests = try batch.map { GenerationRequest(promptIDs: try RolloutContrast.promptIDs(model, task, $0), maxTokens: task.maxTokens) }
            let results = try gen.generate(requests, steering: injector?.provider(for: requests))
            for (item, r) in zip(batch, results) {
                out.append(GradedAnswer(id: item.id, prompt: item.prompt, response: r.text, gold: item.goldValue, correct: task.grade(r.text, item)))
            }
            progress(out.count, items.count)
        }
        return out
    }

    public static func accuracy(_ answers: [GradedAnswer]) -> Double {
        answers.isEmpty ? 0 : Double(answers.filter(\.correct).count) / Double(answers.count)
    }
}
