import Backend
import Formats
import Foundation

/// What a weight is for, independent of how a file names it.
enum WeightRole {
    case embed, outputNorm, lmHead
    case attnNorm, q, k, v, o, qBias, kBias, vBias, qNorm, kNorm, ffnNorm, gate, up, down

    /// The Hugging Face name (safetensors, and llama2.c checkpoints as the Formats layer exposes them).
    func hfName(layer: Int) -> String {
        let p = "model.layers.\(layer)."
        switch self {
        case .embed: return "model.embed_tokens.weight"
        case .outputNorm: return "model.norm.weight"
        case .lmHead: return "lm_head.weight"
        case .attnNorm: return p + "input_layernorm.weight"
        case .q: return p + "self_attn.q_proj.weight"
        case .k: return p + "self_attn.k_proj.weight"
        case .v: return p + "self_attn.v_proj.weight"
        case .o: return p + "self_attn.o_proj.weight"
        case .qBias: return p + "self_attn.q_proj.bias"
        case .kBias: return p + "self_attn.k_proj.bias"
        case .vBias: return p + "self_attn.v_proj.bias"
        case .qNorm: return p + "self_attn.q_norm.weight"
        case .kNorm: return p + "self_attn.k_norm.weight"
        case .ffnNorm: return p + "post_attention_layernorm.weight"
        case .gate: return p + "mlp.gate_proj.weight"
        case .up: return p + "mlp.up_proj.weight"
        case .down: return p + "mlp.down_proj.weight"
        }
    }

    /// The llama.cpp GGUF name.
    func ggufName(layer: Int) -> String {
        let p = "blk.\(layer)."
        switch self {
        case .embed: return "token_embd.weight"
        case .outputNorm: return "output_norm.weight"
        case .lmHead: return "output.weight"
        case .attnNorm: return p + "attn_norm.weight"
        case .q: return p + "attn_q.weight"
        case .k: return p + "attn_k.weight"
        case .v: return p + "attn_v.weight"
        case .o: return p + "attn_output.weight"
        case .qBias: return p + "attn_q.bias"
        case .kBias: return p + "attn_k.bias"
        case .vBias: return p + "attn_v.bias"
        case .qNorm: return p + "attn_q_norm.weight"
        case .kNorm: return p + "attn_k_norm.weight"
        case .ffnNorm: return p + "ffn_norm.weight"
        case .gate: return p + "ffn_gate.weight"
        case .up: return p + "ffn_up.weight"
        case .down: return p + "ffn_down.weight"
        }
    }
}

/// A model file's tensors under one naming scheme.
struct WeightSource {
    let path: String
    let tensors: [String: TensorInfo]
    let gguf: Bool

    func info(_ role: WeightRole, layer: Int = 0) -> TensorInfo? {
        tensors[gguf ? role.ggufName(layer: layer) : role.hfName(layer: layer)]
    }

    func require(_ role: WeightRole, layer: Int = 0) throws -> TensorInfo {
        guard let t = info(role, layer: layer) else {
            throw ModelError("\(path): missing tensor \(gguf ? role.ggufName(layer: layer) : role.hfName(layer: layer))")
        }
        return t
    }
}

public struct ModelError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ d: String) { description = d }
}

/// The tensors of one decoder layer, resident on the backend.
struct LayerWeights {
    let attnNorm: Tensor, ffnNorm: Tensor
    let q: Tensor, k: Tensor, v: Tensor, o: Tensor
    let qBias: Tensor?, kBias: Tensor?, vBias: Tensor?
    let qNorm: Tensor?, kNorm: Tensor?
    /// The MLP's gate and up projections: one tensor with their rows interleaved (row 2j gate j,
    /// row 2j + 1 up j) for the fused SiLU-gate matmul where both have one format, else apart.
    let mlpInput: MLPInput
    let down: Tensor
}

enum MLPInput {
    case interleaved(Tensor)
    case separate(gate: Tensor, up: Tensor)
}

/// Uploads tensors from a mapped file, checking each one's shape against the configuration.
struct WeightLoader {
    let source: WeightSource
    let backend: Backend
    var bytesUploaded = 0

    private func elementType(_ t: TensorInfo) throws -> ElementType {
        guard case .element(let e) = t.type, e != .u32 else {
            throw ModelError("\(source.path): tensor \(t.name) has type \(t.type), which the kernels do not decode")
        }
        return e
    }

    private func checkShape(_ t: TensorInfo, _ shape: [Int]) throws {
        guard t.shape == shape else {
            throw ModelError("\(source.path): tensor \(t.name) has shape \(t.shape), the configuration needs \(shape)")
        }
    }

    /// A matrix [rows × cols] uploaded in its file format (decoded in the shaders).
    mutating func matrix(_ role: WeightRole, layer: Int = 0, rows: Int, cols: Int) throws -> Tensor {
        let t = try source.require(role, layer: layer)
        try checkShape(t, [rows, cols])
        let type = try elementType(t)
        guard cols % type.blockElements == 0 else {
            throw ModelError("\(source.path): tensor \(t.name) is \(type.rawValue) with rows of \(cols), not whole blocks")
        }
        let tensor = try backend.makeTensor(type, count: rows * cols)
        try backend.write(tensor, bytes: UnsafeRawBufferPointer(rebasing: t.data.prefix(type.byteCount(rows * cols))))
        bytesUploaded += tensor.byteCount
        return tensor
    }

    /// The gate and up matrices [rows × cols] as one tensor with their rows interleaved, when they
    /// share a format; else the two apart.
    mutating func gateUp(layer: Int, rows: Int, cols: Int) throws -> MLPInput {
        let g = try source.require(.gate, layer: layer), u = try source.require(.up, layer: layer)
        guard g.type == u.type else {
            return .separate(gate: try matrix(.gate, layer: layer, rows: rows, cols: cols), up: try matrix(.up, layer: layer, rows: rows, cols: cols))
        }
        for t in [g, u] { try checkShape(t, [rows, cols]) }
        let type = try elementType(g)
        guard cols % type.blockElements == 0 else {
            throw ModelError("\(source.path): tensor \(g.name) is \(type.rawValue) with rows of \(cols), not whole blocks")
        }
        let rowBytes = type.byteCount(cols)
        for t in [g, u] where t.data.count < rows * rowBytes {
            throw ModelError("\(source.path): tensor \(t.name) holds \(t.data.count) bytes, its shape needs \(rows * rowBytes)")
        }
        var bytes = [UInt8](repeating: 0, count: 2 * rows * rowBytes)
        bytes.withUnsafeMutableBytes { out in
            for (i, t) in [g, u].enumerated() {
                for r in 0..<rows {
                    let src = UnsafeRawBufferPointer(rebasing: t.data[r * rowBytes..<(r + 1) * rowBytes])
                    UnsafeMutableRawBufferPointer(rebasing: out[(2 * r + i) * rowBytes..<(2 * r + i + 1) * rowBytes]).copyMemory(from: src)
                }
            }
        }
        let tensor = try backend.makeTensor(type, count: 2 * rows * cols, bytes: bytes)
        bytesUploaded += tensor.byteCount
        return .interleaved(tensor)
    }

    /// A vector (norm weight, bias) decoded to f32, which the row-wise kernels take.
    mutating func vector(_ role: WeightRole, layer: Int = 0, count: Int) throws -> Tensor {
        try vector(try source.require(role, layer: layer), count: count)
    }

    mutating func optionalVector(_ role: WeightRole, layer: Int, count: Int) throws -> Tensor? {
        guard let t = source.info(role, layer: layer) else { return nil }
        return try vector(t, count: count)
    }

    private mutating func vector(_ t: TensorInfo, count: Int) throws -> Tensor {
        try checkShape(t, [count])
        let floats = Quantization.decode(t.data, as: try elementType(t), count: count)
        bytesUploaded += count * 4
        return try backend.makeTensor(floats: floats)
    }
}
