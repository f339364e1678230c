import Model
import Steering

/// Which protocol `roast eval` follows.
public enum EvalProtocol: String, Codable, Sendable, CaseIterable {
    /// This project's: one site and layer set for every method, α = 0 a candidate (steering must
    /// beat the unsteered model on dev), ties to the smaller α, steering from the last prompt token on.
    case strict
    /// The authors' code (TomySu404/ORBIT, docs/ORBIT-READING.md): their rollout length, order
    /// of grouped normalisation, α grids, 100 extraction questions, CAA and SADI as their baseline
    /// scripts run them, α = 0 never a candidate, the last prompt token steered only. Dev still
    /// comes from training questions: tuning on test is the one point not copied.
    case orbit
}

/// How one method is extracted, tuned and applied under a protocol.
public struct MethodPlan: Sendable, Equatable {
    public var site: ActivationSite
    public var extraction: ExtractionMethod
    public var groupOrder: GroupOrder
    /// Candidate layer sets (tuned on dev with α).
    public var layerSets: [String]
    /// α candidates on dev; 0 is added first when `zeroIsCandidate`.
    public var alphas: [Float]
    public var zeroIsCandidate: Bool
    /// A tie on dev goes to the later candidate (theirs: `score >= best`) instead of the earlier.
    public var tiesGoToLater: Bool
    public var scope: SteeringScope
    /// SADI's joint top-K sizes: each K is a mask over all layers together, built from the mean
    /// difference, applied multiplicatively; nil: the vector file is applied as it is.
    public var jointTopK: [Int]?
}

extension EvalSettings {
    /// The authors' settings: `run.sh`'s 128-token rollouts of 8 samples (their config's count),
    /// 100 extraction questions, every layer at `mlp.act_fn`, and the union of their two strength
    /// grids (main.py at the run.sh commit, and the newest).
    public static func orbit() -> EvalSettings {
        var s = EvalSettings()
        s.evalProtocol = .orbit
        s.extractQuestions = 100
        s.rollouts = 8
        s.rolloutTokens = 128
        s.alphas = [0.001, 0.01, 0.02, 0.05, 0.08, 0.2, 0.5, 1, 2, 3, 5, 10]
        s.layerSets = ["all"]
        s.site = .act
        // Every layer alone on dev would be 30+ more passes per method; the authors have no such plot.
        s.perLayerEffect = false
        return s
    }

    /// CAA's layers in their script, 10, 15 and 20 (set for the 36-layer Qwen3-8B); a model with
    /// 20 layers or fewer gets the same fractions of its depth.
    public static func orbitCAALayers(layerCount: Int) -> String {
        let layers = layerCount > 20 ? [10, 15, 20] : Set([10, 15, 20].map { min(layerCount - 1, Int((Double(layerCount * $0) / 36).rounded())) }).sorted()
        return layers.map(String.init).joined(separator: ",")
    }

    /// The plan of a method under this protocol.
    public func plan(_ spec: MethodSpec, layerCount: Int) -> MethodPlan {
        let roastMethod: ExtractionMethod = spec.kind == .caa ? .caa : spec.kind == .sadi ? .sadi : .roast
        switch evalProtocol {
        case .strict:
            return MethodPlan(site: spec.site ?? site, extraction: roastMethod, groupOrder: spec.groupOrder ?? .l2ThenCSS,
                              layerSets: layerSets, alphas: alphas, zeroIsCandidate: true, tiesGoToLater: false,
                              scope: .generated, jointTopK: nil)
        case .orbit:
            switch spec.kind {
            case .caa:
                // run_caa.py: the decoder-layer output, the raw mean difference × {1, 2, 5, 10},
                // the first strict maximum on dev, added to generated tokens only.
                return MethodPlan(site: .residual, extraction: .caa, groupOrder: .l2ThenCSS,
                                  layerSets: [Self.orbitCAALayers(layerCount: layerCount)], alphas: caaMultipliers,
                                  zeroIsCandidate: false, tiesGoToLater: false, scope: .decode, jointTopK: nil)
            case .sadi:
                // SADI: h_i ← s·h_i on the joint top-K of |μ| at mlp.act_fn over every layer, the
                // last prompt token; our h + α·(m ⊙ h) is that with α = s − 1.
                return MethodPlan(site: .act, extraction: .caa, groupOrder: .l2ThenCSS, layerSets: ["all"],
                                  alphas: sadiStrengths.map { $0 - 1 }, zeroIsCandidate: false, tiesGoToLater: true,
                                  scope: .lastPrompt, jointTopK: sadiCounts)
            default:
                return MethodPlan(site: spec.site ?? site, extraction: roastMethod, groupOrder: spec.groupOrder ?? .cssPerQuestion,
                                  layerSets: layerSets, alphas: alphas, zeroIsCandidate: false, tiesGoToLater: true,
                                  scope: .lastPrompt, jointTopK: nil)
            }
        }
    }
}

/// One dev candidate's score; `choose` picks the winner by the plan's rule.
struct DevScore {
    var index: Int
    var alpha: Float
    var score: Double
}

extension MethodPlan {
    /// The α candidates in the order tried (0 first when it is one).
    func candidates(fixed: Float?) -> [Float] {
        fixed.map { [$0] } ?? (zeroIsCandidate ? [0] : []) + alphas.filter { $0 != 0 }
    }

    /// The best dev score; ties go to the earlier candidate, or the later under `tiesGoToLater`.
    func choose(_ scores: [DevScore]) -> DevScore? {
        scores.reduce(nil) { best, s in
            guard let b = best else { return s }
            return s.score > b.score || (tiesGoToLater && s.score == b.score) ? s : b
        }
    }
}
