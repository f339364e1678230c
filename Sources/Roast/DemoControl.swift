import Evaluation
import Foundation
import Steering
import Tasks

/// One row of the demo's control table: a vector at a relative dose ρ (‖α·v‖ = ρ · mean ‖h‖ at
/// every layer) and what it did to the answers.
public struct ControlPoint: Codable, Sendable, Equatable {
    public var vector: String
    public var rho: Float
    /// Answers that write `\boxed{`.
    public var boxed: Double
    /// Answers that differ from the unsteered ones.
    public var changed: Double
}

extension Demo {
    /// The positive control of `docs/EVALUATION.md` at a glance: arithmetic questions graded on
    /// whether the answer writes `\boxed{}`. CAA's vector contrasts the boxed and unboxed answer
    /// (teacher forced, residual stream of the middle layers); the random control has CAA's norms
    /// and random directions; the demo's own ROAST vector is the third. Every vector takes the
    /// same relative step, so the rows compare directions, not sizes.
    func controlDoseResponse(demoVector: SteeringVectorFile) throws -> [ControlPoint] {
        let o = options
        let task = BoxedControlTask(seed: o.seed, trainCount: 4, testCount: o.controlQuestions)
        var extraction = ExtractionOptions(layers: try LayerSelection(EvalSettings.orbitCAALayers(layerCount: model.config.layerCount)))
        extraction.method = .caa
        extraction.site = .residual
        extraction.rollout.seed = o.seed
        let caa = try Extractor.extract(model: model, task: task, items: task.train(), options: extraction).file
        let vectors = [("caa (box vs no box)", caa), ("random (CAA's norms)", caa.randomDirections(seed: o.seed)),
                       ("roast (the demo's vector)", demoVector)]
        let evaluator = Evaluator(model: model, task: task), items = task.test()
        let bar = ProgressBar("control", total: (1 + vectors.count * o.controlDoses.count) * items.count)
        var done = 0
        func answer(_ iv: Intervention?) throws -> [ItemRecord] {
            let r = try evaluator.answer(items, intervention: iv) { d, _ in bar.update(done + d) }
            done += items.count
            return r
        }
        let base = try answer(nil)
        var points = [ControlPoint(vector: "none", rho: 0, boxed: Evaluator.accuracy(base), changed: 0)]
        for (name, file) in vectors {
            for rho in o.controlDoses {
                let r = try answer(try file.intervention(relativeAlpha: rho))
                let changed = zip(r, base).filter { $0.response != $1.response }.count
                points.append(ControlPoint(vector: name, rho: rho, boxed: Evaluator.accuracy(r), changed: Double(changed) / Double(items.count)))
            }
        }
        return points
    }
}
