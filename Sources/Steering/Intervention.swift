import Backend
import Formats
import Foundation
import Generation
import Model

/// Where a steering vector is added (defined by the model, which captures and injects there).
public typealias SteeringSite = ActivationSite

/// Which tokens are steered.
public enum SteeringScope: String, Sendable, Codable, CaseIterable {
    /// The last prompt token and every generated token (the default).
    case generated
    /// Every prompt token, no generated token.
    case prefill
    /// Every prompt and generated token.
    case all
    /// The last prompt token only: the authors' `--prefill_only` (their hook steers the last
    /// position of the first forward pass and skips the decode steps).
    case lastPrompt = "last-prompt"
    /// Generated tokens only, never the prompt: the authors' CAA hook (`seq_len > 1` returns early).
    case decode
}

/// A set of layers, written `first:N`, `last:N`, `all`, a range `a-b` or a list `0,3,5`.
public struct LayerSelection: Sendable, Codable, Equatable, CustomStringConvertible {
    public let text: String

    public init(_ text: String) throws {
        self.text = text.trimmingCharacters(in: .whitespaces)
        _ = try resolve(layerCount: 1, check: false)  // syntax only
    }

    public var description: String { text }

    /// The layer indices for a model with `layerCount` layers.
    public func resolve(layerCount: Int, check: Bool = true) throws -> [Int] {
        func bad() -> Error { SteeringError("layers '\(text)': expected first:N, last:N, all, a range a-b or a list 0,3,5") }
        var out: [Int]
        if text == "all" {
            out = Array(0..<layerCount)
        } else if let n = text.split(separator: ":").last.flatMap({ Int($0) }), text.hasPrefix("first:") || text.hasPrefix("last:") {
            guard n > 0 else { throw bad() }
            out = text.hasPrefix("first:") ? Array(0..<min(n, layerCount)) : Array(max(0, layerCount - n)..<layerCount)
            if check, n > layerCount { throw SteeringError("layers '\(text)': the model has \(layerCount) layers") }
        } else if text.contains("-"), !text.contains(",") {
            let parts = text.split(separator: "-").map { Int($0) }
            guard parts.count == 2, let a = parts[0], let b = parts[1], a >= 0, a <= b else { throw bad() }
            out = Array(a...b)
        } else {
            let parts = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !parts.isEmpty, parts.allSatisfy({ $0 != nil && $0! >= 0 }) else { throw bad() }
            out = parts.map { $0! }
        }
        if check, let m = out.first(where: { $0 >= layerCount }) {
            throw SteeringError("layers '\(text)': layer \(m) does not exist (the model has \(layerCount))")
        }
        return Array(Set(out)).sorted()
    }
}

public struct SteeringError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ d: String) { description = d }
}

/// What to inject: one or more vectors (summed), the site, layers, α and scope.
public struct Intervention: Sendable {
    public var site: SteeringSite
    /// Per-layer direction (width of the site). Several vectors are summed layer by layer.
    public var vectors: [Int: [Float]]
    public var alpha: Float
    public var scope: SteeringScope
    /// SADI: the vectors are binary masks m and the update is h + α·(m ⊙ h), not h + α·v.
    public var multiplicative: Bool

    public init(site: SteeringSite, vectors: [Int: [Float]], alpha: Float, scope: SteeringScope = .generated, multiplicative: Bool = false) {
        self.site = site
        self.vectors = vectors
        self.alpha = alpha
        self.scope = scope
        self.multiplicative = multiplicative
    }

    /// Sums interventions at the same site (their α folded into the vectors).
    public static func combine(_ list: [Intervention]) throws -> Intervention? {
        guard let first = list.first else { return nil }
        if list.count == 1 { return first }
        guard list.allSatisfy({ $0.site == first.site && $0.scope == first.scope && !$0.multiplicative }) else {
            throw SteeringError("vectors to combine must share a site and a scope, and be additive (a SADI mask stands alone)")
        }
        var sum: [Int: [Float]] = [:]
        for iv in list {
            for (l, v) in iv.vectors {
                let scaled = v.map { $0 * iv.alpha }
                sum[l] = sum[l].map { zip($0, scaled).map { $0 + $1 } } ?? scaled
            }
        }
        return Intervention(site: first.site, vectors: sum, alpha: 1, scope: first.scope)
    }
}

extension Intervention {
    /// Refuses vectors the model cannot take: a layer it lacks, a width other than the site's, a
    /// non-finite value.
    func check(against config: ModelConfig) throws {
        let width = site.width(config)
        for (l, v) in vectors {
            guard l >= 0, l < config.layerCount else {
                throw SteeringError("the vector steers layer \(l); the model has \(config.layerCount) layers")
            }
            guard v.count == width else {
                throw SteeringError("the vector for layer \(l) has \(v.count) values; the \(site.rawValue) site of this model is \(width) wide")
            }
            guard v.allSatisfy(\.isFinite) else { throw SteeringError("the vector for layer \(l) holds NaN or infinity") }
        }
    }
}

extension SteeringScope {
    /// Whether row t of a step, whose request's prompt is `promptLength` long, is steered.
    func contains(_ step: ForwardStep, row t: Int, promptLength: Int) -> Bool {
        let isPrompt = step.positions[t] < promptLength
        switch self {
        case .all: return true
        case .prefill: return isPrompt
        case .generated: return !isPrompt || step.positions[t] == promptLength - 1
        case .lastPrompt: return step.positions[t] == promptLength - 1
        case .decode: return !isPrompt
        }
    }
}

/// Turns an intervention into the per-step steering of the forward pass: the vectors uploaded
/// once, and for each step the row scales (α on the rows in scope, 0 elsewhere).
public final class SteeringInjector {
    let model: LanguageModel
    let intervention: Intervention
    let tensors: [Int: Tensor]
    private let stepTensors: StepTensors
    public init(model: LanguageModel, intervention: Intervention) throws {
        self.model = model
        self.intervention = intervention
        stepTensors = StepTensors(backend: model.backend)
        try intervention.check(against: model.config)
        tensors = try intervention.vectors.mapValues { try model.backend.makeTensor(floats: $0) }
    }

    /// Whether row t of a step, whose request's prompt is `promptLength` long, is in scope.
    func inScope(_ step: ForwardStep, row t: Int, promptLength: Int) -> Bool {
        intervention.scope.contains(step, row: t, promptLength: promptLength)
    }

    /// The steering of one step; `promptLengths[t]` is the prompt length of row t's request.
    public func steering(for step: ForwardStep, promptLengths: [Int]) throws -> [Int: LayerSteering] {
        guard promptLengths.count == step.ids.count else {
            throw SteeringError("steering for a step of \(step.ids.count) rows was given \(promptLengths.count) prompt lengths")
        }
        let scales = step.ids.indices.map { inScope(step, row: $0, promptLength: promptLengths[$0]) ? intervention.alpha : 0 }
        if scales.allSatisfy({ $0 == 0 }) { return [:] }
        let s = try stepTensors.tensor(scales)
        var out: [Int: LayerSteering] = [:]
        for (l, v) in tensors {
            let st = Steering(scales: s, vector: v, multiplicative: intervention.multiplicative)
            out[l] = intervention.site == .act ? LayerSteering(act: st) : LayerSteering(residual: st)
        }
        return out
    }

    /// Steering for `ContinuationScorer.score`: every sequence's prompt is `promptLength` long.
    public func scoringSteering(_ step: ForwardStep, promptLength: Int) throws -> [Int: LayerSteering] {
        try steering(for: step, promptLengths: Array(repeating: promptLength, count: step.ids.count))
    }

    /// A provider for `Generator.generate`.
    public var provider: Generator.SteeringProvider {
        { [self] step, rows in try steering(for: step, promptLengths: rows.promptLengths) }
    }
}
