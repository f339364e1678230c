import Backend
import Foundation

/// The per-step tensors of steering (row scales, vector-table indices), made once per content and
/// handed out again while it repeats: a decode step's steering is the same token after token, and
/// the forward pass replays its kept ops only for a step that binds the same tensors (Model's
/// StepReplay). A tensor here is never written after it is made, so sharing it is safe.
final class StepTensors {
    private let backend: Backend
    private var floats: [[Float]: Tensor] = [:]
    private var uints: [[UInt32]: Tensor] = [:]
    private let lock = NSLock()
    /// Past this many kept tensors of a kind (prompts of many lengths), the kind starts over.
    static let limit = 64

    init(backend: Backend) { self.backend = backend }

    func tensor(_ values: [Float]) throws -> Tensor {
        try kept(values, in: &floats) { try backend.makeTensor(floats: values) }
    }

    func tensor(_ values: [UInt32]) throws -> Tensor {
        try kept(values, in: &uints) { try backend.makeTensor(uints: values) }
    }

    private func kept<V: Hashable>(_ values: V, in table: inout [V: Tensor], make: () throws -> Tensor) throws -> Tensor {
        lock.lock()
        defer { lock.unlock() }
        if let t = table[values] { return t }
        if table.count >= Self.limit { table.removeAll() }
        let t = try make()
        table[values] = t
        return t
    }
}
