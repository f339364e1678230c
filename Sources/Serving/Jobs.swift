import Foundation
import Generation
import Model
import Steering

/// Request fields → a checked job, or an `APIError` naming the field.
extension ServingEngine {
    /// `defaultMaxTokens`: 16 for completions (as OpenAI's), what fits for chat.
    public func job(promptIDs: [Int], fields f: SamplingFields, defaultMaxTokens: Int?) throws -> Job {
        guard !promptIDs.isEmpty else { throw APIError(400, "the prompt is empty", param: "prompt") }
        let room = capacity - promptIDs.count
        guard room >= 1 else {
            throw APIError(400, "the prompt is \(promptIDs.count) tokens; the server's context is \(capacity)", param: "prompt")
        }
        let maxTokens = f.max_tokens ?? min(defaultMaxTokens ?? room, room)
        guard maxTokens >= 0 else { throw APIError(400, "max_tokens must be ≥ 0, got \(maxTokens)", param: "max_tokens") }
        guard maxTokens <= room else {
            throw APIError(400, "a prompt of \(promptIDs.count) tokens + max_tokens \(maxTokens) exceeds the server's context of \(capacity)",
                           param: "max_tokens")
        }
        let sampling = SamplingParameters(temperature: f.temperature ?? 1, topK: f.top_k ?? 0, topP: f.top_p ?? 1,
                                          seed: f.seed ?? UInt64.random(in: 0...UInt64.max))
        for (value, name) in [(sampling.temperature, "temperature"), (sampling.topP, "top_p")] where !value.isFinite {
            throw APIError(400, "\(name) must be a finite number", param: name)
        }
        do { try sampling.validate() } catch {
            let param = f.top_k.map { $0 < 0 } == true ? "top_k" : ((f.top_p.map { !($0 > 0 && $0 <= 1) } ?? false) ? "top_p" : "temperature")
            throw APIError(400, "\(error)", param: param)
        }
        let stops = f.stop?.strings ?? []
        guard stops.count <= 4, stops.allSatisfy({ !$0.isEmpty }) else { throw APIError(400, "stop takes up to 4 non-empty strings", param: "stop") }
        let request = GenerationRequest(promptIDs: promptIDs, maxTokens: maxTokens, sampling: sampling, stopStrings: stops)
        return Job(request: request, intervention: try intervention(f.steering ?? []))
    }

    /// The steering list as one intervention (several are summed, as `generate --steer` sums files).
    func intervention(_ specs: [SteeringSpec]) throws -> Intervention? {
        let list = try specs.enumerated().map { i, s in try intervention(s, param: "steering[\(i)]") }
        do { return try Intervention.combine(list) } catch { throw APIError(400, "\(error)", param: "steering") }
    }

    private func intervention(_ s: SteeringSpec, param: String) throws -> Intervention {
        let config = model.config
        if let alpha = s.alpha, !(alpha.isFinite && abs(alpha) <= VectorLimits.maxMagnitude) {
            throw APIError(400, "alpha \(alpha) is not a finite number of magnitude ≤ \(VectorLimits.maxMagnitude)", param: param + ".alpha")
        }
        var iv: Intervention
        switch (s.vector, s.values) {
        case (let name?, nil):
            guard let file = vectors[name] else {
                let known = vectors.keys.sorted().joined(separator: ", ")
                throw APIError(400, "unknown vector '\(name)' (loaded: \(known.isEmpty ? "none" : known))", param: param + ".vector")
            }
            iv = file.intervention(alpha: s.alpha, scope: s.scope ?? .generated)
        case (nil, let values?):
            guard let site = s.site else { throw APIError(400, "an inline vector needs its site (act or residual)", param: param + ".site") }
            var byLayer: [Int: [Float]] = [:]
            for (key, v) in values {
                guard let layer = Int(key), layer >= 0, layer < config.layerCount else {
                    throw APIError(400, "'\(key)' is not a layer of this model (0…\(config.layerCount - 1))", param: param + ".values")
                }
                guard v.count == site.width(config) else {
                    throw APIError(400, "layer \(layer) has \(v.count) values; this model's \(site.rawValue) site is \(site.width(config)) wide",
                                   param: param + ".values")
                }
                guard v.allSatisfy({ $0.isFinite && abs($0) <= VectorLimits.maxMagnitude }) else {
                    throw APIError(400, "layer \(layer) holds a value that is not finite or beyond \(VectorLimits.maxMagnitude)", param: param + ".values")
                }
                byLayer[layer] = v
            }
            guard !byLayer.isEmpty else { throw APIError(400, "an inline vector needs at least one layer", param: param + ".values") }
            iv = Intervention(site: site, vectors: byLayer, alpha: s.alpha ?? 1, scope: s.scope ?? .generated)
        default:
            throw APIError(400, "give either a vector name or inline values", param: param)
        }
        if let text = s.layers {
            let layers: [Int]
            do { layers = try LayerSelection(text).resolve(layerCount: config.layerCount) } catch {
                throw APIError(400, "\(error)", param: param + ".layers")
            }
            let missing = layers.filter { iv.vectors[$0] == nil }
            guard missing.isEmpty else {
                throw APIError(400, "layers \(missing.map(String.init).joined(separator: ", ")) have no direction in this vector", param: param + ".layers")
            }
            iv.vectors = iv.vectors.filter { layers.contains($0.key) }
        }
        return iv
    }
}
