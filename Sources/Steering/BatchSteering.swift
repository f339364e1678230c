import Backend
import Foundation
import Generation
import Model

/// Steering where each request of a batch brings its own intervention, or none (a server's
/// continuous batch): the rows of one step may carry different vectors. For each (layer, site)
/// that some request steers, the distinct vectors are uploaded once as a table [V × width]; a
/// step gets per-row scales (the request's α where it steers that layer and the row is in its
/// scope, else 0) and per-row table indices (`Steering.vectorRows`). An unsteered row's scale is
/// 0, so its activations are exactly those of an unsteered run.
public final class BatchSteeringInjector {
    struct Key: Hashable {
        let layer: Int
        let site: SteeringSite
    }
    struct Table {
        let tensor: Tensor
        /// The table row of each request that steers this key.
        let rowOf: [Int: Int]
        let multiplicative: Bool
    }

    let model: LanguageModel
    let interventions: [Int: Intervention]
    let tables: [Key: Table]
    private let stepTensors: StepTensors

    /// `interventions[i]`: request i's intervention (i as in `Generator.generate`'s list, or a
    /// `GenerationBatch` ticket); a request without one is not steered.
    /// One (layer, site) applies one mode per step, so additive vectors and SADI masks may not
    /// share one.
    public convenience init(model: LanguageModel, interventions: [Intervention?]) throws {
        var byRequest: [Int: Intervention] = [:]
        for (i, iv) in interventions.enumerated() { byRequest[i] = iv }
        try self.init(model: model, byRequest: byRequest)
    }

    public init(model: LanguageModel, byRequest interventions: [Int: Intervention]) throws {
        self.model = model
        self.interventions = interventions
        stepTensors = StepTensors(backend: model.backend)
        var rows: [Key: [[Float]]] = [:], rowOf: [Key: [Int: Int]] = [:], mode: [Key: (request: Int, multiplicative: Bool)] = [:]
        for (i, iv) in interventions.sorted(by: { $0.key < $1.key }) {
            do { try iv.check(against: model.config) } catch { throw SteeringError("request \(i): \(error)") }
            for (layer, v) in iv.vectors {
                let key = Key(layer: layer, site: iv.site)
                if let m = mode[key], m.multiplicative != iv.multiplicative {
                    throw SteeringError("requests \(m.request) and \(i) steer layer \(layer) at the \(iv.site.rawValue) site, one with a vector and one with a mask: a step applies one kind there")
                }
                mode[key] = mode[key] ?? (i, iv.multiplicative)
                // Requests with the same vector share its table row.
                if let r = rows[key, default: []].firstIndex(of: v) {
                    rowOf[key, default: [:]][i] = r
                } else {
                    rowOf[key, default: [:]][i] = rows[key, default: []].count
                    rows[key, default: []].append(v)
                }
            }
        }
        var tables: [Key: Table] = [:]
        for (key, vs) in rows {
            tables[key] = Table(tensor: try model.backend.makeTensor(floats: Array(vs.joined())), rowOf: rowOf[key]!,
                                multiplicative: mode[key]!.multiplicative)
        }
        self.tables = tables
    }

    /// The steering of one step.
    public func steering(for step: ForwardStep, rows: Generator.StepRows) throws -> [Int: LayerSteering] {
        guard rows.requests.count == step.ids.count, rows.promptLengths.count == step.ids.count else {
            throw SteeringError("steering for a step of \(step.ids.count) rows was given \(rows.requests.count) requests")
        }
        var out: [Int: LayerSteering] = [:]
        for (key, table) in tables.sorted(by: { ($0.key.layer, $0.key.site.rawValue) < ($1.key.layer, $1.key.site.rawValue) }) {
            var scales = [Float](repeating: 0, count: step.ids.count), index = [UInt32](repeating: 0, count: step.ids.count)
            for t in step.ids.indices {
                let request = rows.requests[t]
                guard let r = table.rowOf[request], let iv = interventions[request],
                      iv.scope.contains(step, row: t, promptLength: rows.promptLengths[t]) else { continue }
                scales[t] = iv.alpha
                index[t] = UInt32(r)
            }
            if scales.allSatisfy({ $0 == 0 }) { continue }
            // Equal contents share one tensor, within a step (most layers share their scales) and
            // across the steps that repeat them.
            let s = try stepTensors.tensor(scales), x = try stepTensors.tensor(index)
            let st = Steering(scales: s, vector: table.tensor, vectorRows: x, multiplicative: table.multiplicative)
            var layer = out[key.layer] ?? LayerSteering()
            if key.site == .act { layer.act = st } else { layer.residual = st }
            out[key.layer] = layer
        }
        return out
    }

    /// A provider for `Generator.generate`.
    public var provider: Generator.SteeringProvider {
        { [self] step, rows in try steering(for: step, rows: rows) }
    }
}
