import Backend
import Foundation

/// A llama2.c checkpoint (.bin), mapped, with its weights exposed under Hugging Face names.
///
/// Layout (karpathy/llama2.c `legacy_export`, "version 0"): 7 little-endian int32
/// (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size
/// means the classifier is not tied to the embedding), then f32 arrays, each kind for all layers
/// together: token embedding [vocab][dim], attention rms [L][dim], wq [L][dim][dim],
/// wk [L][kv_dim][dim], wv [L][kv_dim][dim], wo [L][dim][dim], ffn rms [L][dim],
/// w1 [L][hidden][dim], w2 [L][dim][hidden], w3 [L][hidden][dim], final rms [dim], two unused
/// RoPE tables [seq_len][head_size/2] each, and the classifier [vocab][dim] when untied.
/// Matrices are [out][in], like nn.Linear and HF. The `version 1` export (magic "ak42", 256-byte
/// header, same arrays in another order, no RoPE tables) is read too.
///
/// RoPE layout: llama2.c rotates interleaved pairs (2i, 2i+1) of each head, so its wq/wk rows are
/// in that order and `ropeInterleaved` is true. Checked against the HF conversion of
/// stories260K: every HF q_proj/k_proj equals the .bin wq/wk with the rows of each head permuted
/// (HF row j·(d/2)+i = .bin row 2i+j, d = head size, j ∈ {0,1}) — the permutation of
/// transformers' convert_llama_weights_to_hf — and every other tensor is byte-identical. So the
/// .bin weights with interleaved RoPE compute exactly what the HF weights do with rotate-half.
/// `RopePermutation` maps rows between the two orders.
public final class Llama2cCheckpoint: Sendable {
    public let url: URL
    public let file: MappedFile
    public let config: ModelConfig
    public let tensors: [String: TensorInfo]
    /// True: the q/k weights are in llama2.c's interleaved-pair RoPE order (see above).
    public let ropeInterleaved: Bool
    /// 0 (legacy) or 1 (the "ak42" fp32 export).
    public let version: Int

    public init(url: URL) throws {
        self.url = url
        let file = try MappedFile(url)  // a local: the helpers below must not capture self
        self.file = file
        let bytes = file.bytes
        var r = ByteReader(bytes, url: url)

        // Version 1 starts with the magic "ak42" and a version int; version 0 has no magic.
        var version = 0
        if bytes.count >= 8, bytes.loadUnaligned(as: UInt32.self).littleEndian == 0x616B_3432 {
            _ = try r.u32("magic")
            let v = try r.i32("version")
            guard v == 1 else { throw r.error("llama2.c export version \(v) is not supported (only 0 and the fp32 version 1)", at: 4) }
            version = 1
        }
        self.version = version
        var header = [Int]()
        for name in ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"] {
            header.append(Int(try r.i32("header field \(name)")))
        }
        let (dim, hidden, layers, heads, kvHeads, signedVocab, seqLen) = (header[0], header[1], header[2], header[3], header[4], header[5], header[6])
        var shared = signedVocab > 0
        if version == 1 {
            shared = try r.u8("shared_classifier flag") != 0
            r.offset = 256
        }
        let vocab = abs(signedVocab)
        func bad(_ what: String) -> FormatError { FormatError(url, "header: \(what)") }
        for (name, v) in [("dim", dim), ("hidden_dim", hidden), ("n_layers", layers), ("n_heads", heads),
                          ("n_kv_heads", kvHeads), ("vocab_size", vocab), ("seq_len", seqLen)] {
            guard v > 0, v <= 1 << 24 else { throw bad("\(name) \(v) is out of range (not a llama2.c checkpoint?)") }
        }
        guard dim % heads == 0 else { throw bad("dim \(dim) is not a multiple of n_heads \(heads)") }
        guard heads % kvHeads == 0 else { throw bad("n_heads \(heads) is not a multiple of n_kv_heads \(kvHeads)") }
        let headSize = dim / heads
        guard headSize % 2 == 0 else { throw bad("head size \(headSize) is odd") }
        let kvDim = kvHeads * headSize

        self.config = try ModelConfig(
            architecture: .llama, hiddenSize: dim, intermediateSize: hidden, layerCount: layers, headCount: heads,
            kvHeadCount: kvHeads, headDim: headSize, vocabSize: vocab, contextLength: seqLen, rmsNormEps: 1e-5,
            ropeTheta: 10000, tieWordEmbeddings: shared, bosTokenID: 1, eosTokenIDs: [2]  // llama2.c's tokenizer: BOS 1, EOS 2
        ).validated(url.path)
        ropeInterleaved = true

        // Walk the arrays in file order; each is [count][shape...] f32. Sizes are overflow-checked
        // before anything is sliced, and the file must end exactly where the layout says.
        var found = [String: TensorInfo]()
        var offset = r.offset
        func array(_ what: String, count: Int, shape: [Int], names: (Int) -> String) throws {
            guard let each = checkedProduct(shape).flatMap({ checkedMul($0, 4) }),
                  let total = checkedMul(each, count), let end = checkedAdd(offset, total) else {
                throw FormatError(url, "\(what) size overflows (header \(header))")
            }
            guard end <= bytes.count else {
                throw FormatError(url, "truncated file: \(what) ends at byte \(end), the file has \(bytes.count) bytes (header \(header))")
            }
            for i in 0..<count {
                let start = offset + i * each
                let name = names(i)
                found[name] = TensorInfo(name: name, type: .element(.f32), shape: shape,
                                           data: UnsafeRawBufferPointer(rebasing: bytes[start..<start + each]), file: file)
            }
            offset = end
        }
        func skip(_ what: String, floats: Int) throws {
            guard let n = checkedMul(floats, 4), let end = checkedAdd(offset, n), end <= bytes.count else {
                throw FormatError(url, "truncated file: \(what) runs past the end of the \(bytes.count)-byte file")
            }
            offset = end
        }
        func layer(_ suffix: String) -> (Int) -> String { { "model.layers.\($0).\(suffix)" } }
        let embed = { (_: Int) in "model.embed_tokens.weight" }
        let attnNorm = ("attention rms weights", layer("input_layernorm.weight"))
        let ffnNorm = ("ffn rms weights", layer("post_attention_layernorm.weight"))
        let finalNorm = { (_: Int) in "model.norm.weight" }

        if version == 0 {
            try array("token embedding", count: 1, shape: [vocab, dim], names: embed)
            try array(attnNorm.0, count: layers, shape: [dim], names: attnNorm.1)
        } else {
            try array(attnNorm.0, count: layers, shape: [dim], names: attnNorm.1)
            try array(ffnNorm.0, count: layers, shape: [dim], names: ffnNorm.1)
            try array("final rms weight", count: 1, shape: [dim], names: finalNorm)
            try array("token embedding", count: 1, shape: [vocab, dim], names: embed)
        }
        try array("wq", count: layers, shape: [dim, dim], names: layer("self_attn.q_proj.weight"))
        try array("wk", count: layers, shape: [kvDim, dim], names: layer("self_attn.k_proj.weight"))
        try array("wv", count: layers, shape: [kvDim, dim], names: layer("self_attn.v_proj.weight"))
        try array("wo", count: layers, shape: [dim, dim], names: layer("self_attn.o_proj.weight"))
        if version == 0 { try array(ffnNorm.0, count: layers, shape: [dim], names: ffnNorm.1) }
        try array("w1", count: layers, shape: [hidden, dim], names: layer("mlp.gate_proj.weight"))
        try array("w2", count: layers, shape: [dim, hidden], names: layer("mlp.down_proj.weight"))
        try array("w3", count: layers, shape: [hidden, dim], names: layer("mlp.up_proj.weight"))
        if version == 0 {
            try array("final rms weight", count: 1, shape: [dim], names: finalNorm)
            // The old precomputed RoPE tables (cos and sin), unused: RoPE is computed on the fly.
            try skip("RoPE tables", floats: seqLen * (headSize / 2) * 2)
        }
        if !shared { try array("classifier", count: 1, shape: [vocab, dim], names: { _ in "lm_head.weight" }) }
        guard offset == bytes.count else {
            throw FormatError(url, "file has \(bytes.count) bytes but header \(header) describes \(offset)")
        }
        self.tensors = found
    }

    public func tensor(_ name: String) -> TensorInfo? { tensors[name] }

    public func requireTensor(_ name: String) throws -> TensorInfo {
        guard let t = tensors[name] else { throw FormatError(url, "missing tensor \(name)") }
        return t
    }
}

/// Row order of q/k projections under the two RoPE conventions. Within each head of size d,
/// interleaved RoPE (llama2.c, llama.cpp's llama GGUFs) rotates rows (2i, 2i+1); rotate-half
/// (HF, NeoX) rotates rows (i, i + d/2). The HF converters map one to the other by
/// rotateHalf row j·(d/2) + i ← interleaved row 2i + j.
public enum RopePermutation {
    /// The rotate-half row that holds interleaved row `row`.
    public static func rotateHalfRow(fromInterleaved row: Int, headDim: Int) -> Int {
        let head = row / headDim, r = row % headDim
        return head * headDim + (r % 2) * (headDim / 2) + r / 2
    }

    /// The interleaved row that holds rotate-half row `row`.
    public static func interleavedRow(fromRotateHalf row: Int, headDim: Int) -> Int {
        let head = row / headDim, r = row % headDim, half = headDim / 2
        return head * headDim + (r % half) * 2 + r / half
    }
}
