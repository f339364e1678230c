/// The names of the same weights in GGUF (llama.cpp) and Hugging Face files, so the engine can
/// ask for "layer 3's q projection" whichever file it has. Only the names: for llama-architecture
/// GGUFs the q/k rows are also in another order (see `GGUFFile.ropeInterleaved`).
public enum TensorNames {
    /// The weights of one transformer block.
    public enum LayerTensor: String, CaseIterable, Sendable {
        case attnNorm, q, k, v, o, qNorm, kNorm, ffnNorm, gate, up, down

        /// The name inside `blk.N.` (GGUF).
        public var gguf: String {
            switch self {
            case .attnNorm: "attn_norm"
            case .q: "attn_q"
            case .k: "attn_k"
            case .v: "attn_v"
            case .o: "attn_output"
            case .qNorm: "attn_q_norm"
            case .kNorm: "attn_k_norm"
            case .ffnNorm: "ffn_norm"
            case .gate: "ffn_gate"
            case .up: "ffn_up"
            case .down: "ffn_down"
            }
        }

        /// The name inside `model.layers.N.` (HF).
        public var hf: String {
            switch self {
            case .attnNorm: "input_layernorm"
            case .q: "self_attn.q_proj"
            case .k: "self_attn.k_proj"
            case .v: "self_attn.v_proj"
            case .o: "self_attn.o_proj"
            case .qNorm: "self_attn.q_norm"
            case .kNorm: "self_attn.k_norm"
            case .ffnNorm: "post_attention_layernorm"
            case .gate: "mlp.gate_proj"
            case .up: "mlp.up_proj"
            case .down: "mlp.down_proj"
            }
        }
    }

    /// The tensors outside the blocks.
    public enum GlobalTensor: String, CaseIterable, Sendable {
        case embedding, outputNorm, output

        public var gguf: String {
            switch self {
            case .embedding: "token_embd.weight"
            case .outputNorm: "output_norm.weight"
            case .output: "output.weight"
            }
        }

        public var hf: String {
            switch self {
            case .embedding: "model.embed_tokens.weight"
            case .outputNorm: "model.norm.weight"
            case .output: "lm_head.weight"
            }
        }
    }

    /// "blk.3.attn_q.weight" (or ".bias").
    public static func gguf(_ t: LayerTensor, layer: Int, bias: Bool = false) -> String {
        "blk.\(layer).\(t.gguf).\(bias ? "bias" : "weight")"
    }

    /// "model.layers.3.self_attn.q_proj.weight" (or ".bias").
    public static func hf(_ t: LayerTensor, layer: Int, bias: Bool = false) -> String {
        "model.layers.\(layer).\(t.hf).\(bias ? "bias" : "weight")"
    }

    private static let ggufToHF: [String: String] = Dictionary(uniqueKeysWithValues: LayerTensor.allCases.map { ($0.gguf, $0.hf) })
    private static let hfToGGUF: [String: String] = Dictionary(uniqueKeysWithValues: LayerTensor.allCases.map { ($0.hf, $0.gguf) })

    /// The HF name of a GGUF tensor name, or nil for names with no HF twin (rope_freqs.weight).
    public static func hfName(forGGUF name: String) -> String? {
        if let g = GlobalTensor.allCases.first(where: { $0.gguf == name }) { return g.hf }
        guard let (layer, inner, suffix) = split(name, prefix: "blk."), let h = ggufToHF[inner] else { return nil }
        return "model.layers.\(layer).\(h).\(suffix)"
    }

    /// The GGUF name of an HF tensor name, or nil for names outside the mapping.
    public static func ggufName(forHF name: String) -> String? {
        if let g = GlobalTensor.allCases.first(where: { $0.hf == name }) { return g.gguf }
        guard let (layer, inner, suffix) = split(name, prefix: "model.layers."), let g = hfToGGUF[inner] else { return nil }
        return "blk.\(layer).\(g).\(suffix)"
    }

    /// "<prefix>N.<inner>.weight|bias" → (N, inner, suffix).
    private static func split(_ name: String, prefix: String) -> (Int, String, String)? {
        guard name.hasPrefix(prefix) else { return nil }
        let rest = name.dropFirst(prefix.count)
        guard let dot = rest.firstIndex(of: "."), let layer = Int(rest[..<dot]), layer >= 0 else { return nil }
        let tail = rest[rest.index(after: dot)...]
        for suffix in ["weight", "bias"] where tail.hasSuffix("." + suffix) {
            return (layer, String(tail.dropLast(suffix.count + 1)), suffix)
        }
        return nil
    }
}
