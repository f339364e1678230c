import Backend
import Formats
import Foundation
import Steering

/// The small valid inputs the fuzzer mutates when it is given no file: one per format, made
/// here with the engine's own writers, so `roast fuzz` needs nothing on disk.
enum FuzzSeeds {
    /// 32 pieces shared by the llama2.c and GGUF tokenizers (spaces as "▁" where noted).
    static let pieces = ["<unk>", "<s>", "</s>", " ", "a", "b", "c", "d", "e", "h", "i", "l", "n", "o", "r", "s", "t", "w",
                         " t", "th", " the", "he", "in", "er", "an", " a", "at", "on", "en", "es", "or", "is"]

    static func floats(_ n: Int, _ rng: inout SplitMix64) -> [Float] { rng.floats(n, scale: 0.5) }
    static func bytes(_ f: [Float]) -> [UInt8] { f.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) } }

    /// llama.cpp-style GGUF: llama arch, 1 layer, width 32, tokenizer metadata, tensors in
    /// q8_0, q4_1, f16 and f32.
    static func ggufModel() throws -> [UInt8] {
        var rng = SplitMix64(seed: 1)
        var w = GGUFWriter()
        for (k, v) in [("block_count", 1), ("embedding_length", 32), ("feed_forward_length", 64), ("context_length", 16),
                       ("attention.head_count", 4), ("attention.head_count_kv", 2)] { w.set("llama.\(k)", .uint32(UInt32(v))) }
        w.set("general.architecture", .string("llama"))
        w.set("llama.attention.layer_norm_rms_epsilon", .float32(1e-5))
        w.set("llama.rope.freq_base", .float32(10000))
        w.set("tokenizer.ggml.model", .string("llama"))
        w.set("tokenizer.ggml.tokens", .array(pieces.map { .string($0.replacingOccurrences(of: " ", with: "\u{2581}")) }))
        w.set("tokenizer.ggml.scores", .array(pieces.indices.map { .float32(-Float($0)) }))
        w.set("tokenizer.ggml.token_type", .array(pieces.indices.map { .int32($0 == 0 ? 2 : $0 < 3 ? 3 : 1) }))
        w.set("tokenizer.ggml.bos_token_id", .uint32(1))
        w.set("tokenizer.ggml.eos_token_id", .uint32(2))
        try w.addTensor("token_embd.weight", type: .element(.q8_0), shape: [32, 32], bytes: Quantization.encode(floats(1024, &rng), as: .q8_0))
        try w.addTensor("output.weight", type: .element(.f16), shape: [32, 32], bytes: floats(1024, &rng).flatMap { withUnsafeBytes(of: Quantization.halfBits($0).littleEndian, Array.init) })
        try w.addTensor("output_norm.weight", floats: floats(32, &rng), shape: [32])
        try w.addTensor("blk.0.attn_norm.weight", floats: floats(32, &rng), shape: [32])
        try w.addTensor("blk.0.ffn_norm.weight", floats: floats(32, &rng), shape: [32])
        try w.addTensor("blk.0.attn_q.weight", type: .element(.q4_1), shape: [32, 32], bytes: Quantization.encode(floats(1024, &rng), as: .q4_1))
        for (name, rows, cols) in [("attn_k", 16, 32), ("attn_v", 16, 32), ("attn_output", 32, 32), ("ffn_gate", 64, 32), ("ffn_up", 64, 32), ("ffn_down", 32, 64)] {
            try w.addTensor("blk.0.\(name).weight", floats: floats(rows * cols, &rng), shape: [rows, cols])
        }
        return Array(try w.serialize())
    }

    /// A Hugging Face llama: model.safetensors (f32, bf16, f16) with `hfConfig` beside it.
    static func safetensorsModel() throws -> [UInt8] {
        var rng = SplitMix64(seed: 2)
        var w = SafetensorsWriter()
        w.metadata = ["format": "pt"]
        let p = "model.layers.0."
        try w.addTensor("model.embed_tokens.weight", floats: floats(32 * 8, &rng), shape: [32, 8])
        try w.addTensor("model.norm.weight", type: .bf16, shape: [8], bytes: floats(8, &rng).flatMap { withUnsafeBytes(of: Quantization.bf16Bits($0).littleEndian, Array.init) })
        try w.addTensor(p + "input_layernorm.weight", floats: floats(8, &rng), shape: [8])
        try w.addTensor(p + "post_attention_layernorm.weight", floats: floats(8, &rng), shape: [8])
        try w.addTensor(p + "self_attn.q_proj.weight", type: .f16, shape: [8, 8], bytes: floats(64, &rng).flatMap { withUnsafeBytes(of: Quantization.halfBits($0).littleEndian, Array.init) })
        for (name, rows, cols) in [("self_attn.k_proj", 4, 8), ("self_attn.v_proj", 4, 8), ("self_attn.o_proj", 8, 8),
                                   ("mlp.gate_proj", 16, 8), ("mlp.up_proj", 16, 8), ("mlp.down_proj", 8, 16)] {
            try w.addTensor(p + name + ".weight", floats: floats(rows * cols, &rng), shape: [rows, cols])
        }
        return Array(try w.serialize())
    }

    static let hfConfig = """
        {"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":8,"intermediate_size":16,
        "num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,"vocab_size":32,
        "max_position_embeddings":16,"rms_norm_eps":1e-5,"rope_theta":10000.0,"tie_word_embeddings":true,
        "bos_token_id":1,"eos_token_id":2,"hidden_act":"silu"}
        """

    /// A llama2.c v0 checkpoint: dim 8, hidden 16, 1 layer, 2 heads (1 KV head), vocab 32, seq 16.
    static func llama2cCheckpoint() -> [UInt8] {
        var rng = SplitMix64(seed: 3)
        let header = [8, 16, 1, 2, 1, 32, 16].flatMap { withUnsafeBytes(of: Int32($0).littleEndian, Array.init) }
        // embeddings, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, freq_cis real + imag
        let count = 256 + 8 + 64 + 32 + 32 + 64 + 8 + 128 + 128 + 128 + 8 + 32 + 32
        return header + bytes(floats(count, &rng))
    }

    /// A llama2.c tokenizer.bin of `pieces` (BOS and EOS as llama2.c writes them).
    static func llama2cTokenizer() -> [UInt8] {
        var out = withUnsafeBytes(of: Int32(8).littleEndian, Array.init)
        for (i, p) in pieces.enumerated() {
            let text = i == 1 ? "\n<s>\n" : i == 2 ? "\n</s>\n" : p
            out += withUnsafeBytes(of: (-Float(i)).bitPattern.littleEndian, Array.init)
            out += withUnsafeBytes(of: Int32(text.utf8.count).littleEndian, Array.init) + Array(text.utf8)
        }
        return out
    }

    static let qwenConfig = """
        {"architectures":["Qwen3ForCausalLM"],"model_type":"qwen3","hidden_size":64,"intermediate_size":160,
        "num_hidden_layers":3,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":32,"vocab_size":1000,
        "max_position_embeddings":256,"rms_norm_eps":1e-06,"rope_theta":1000000.0,"tie_word_embeddings":true,
        "attention_bias":false,"eos_token_id":999,"bos_token_id":null,"hidden_act":"silu",
        "rope_scaling":null,"sliding_window":null,"use_sliding_window":false}
        """

    /// A sentencepiece-style BPE tokenizer.json (Metaspace normaliser, the Llama decoder).
    static func tokenizerJSON() -> [UInt8] {
        let sp = pieces.map { $0.replacingOccurrences(of: " ", with: "\u{2581}") }
        let vocab = JSON.object(sp.enumerated().map { (key: $0.element, value: .int($0.offset)) })
        let merges: [JSON] = ["\u{2581} t", "t h", "h e", "\u{2581}t he", "i n", "e r", "a n", "\u{2581} a", "a t", "o n", "e n",
                              "e s", "o r", "i s"].map { .string($0) }
        let type = { (t: String) -> JSON.Member in (key: "type", value: .string(t)) }
        let doc = JSON.object([
            (key: "version", value: .string("1.0")),
            (key: "added_tokens", value: .array((0..<3).map { .object([(key: "id", value: .int($0)), (key: "content", value: .string(sp[$0])), (key: "special", value: .bool(true))]) })),
            (key: "normalizer", value: .object([type("Sequence"), (key: "normalizers", value: .array([
                .object([type("Prepend"), (key: "prepend", value: .string("\u{2581}"))]),
                .object([type("Replace"), (key: "pattern", value: .object([(key: "String", value: .string(" "))])), (key: "content", value: .string("\u{2581}"))]),
            ]))])),
            (key: "pre_tokenizer", value: .null),
            (key: "decoder", value: .object([type("Sequence"), (key: "decoders", value: .array([
                .object([type("Replace"), (key: "pattern", value: .object([(key: "String", value: .string("\u{2581}"))])), (key: "content", value: .string(" "))]),
                .object([type("ByteFallback")]), .object([type("Fuse")]),
                .object([type("Strip"), (key: "content", value: .string(" ")), (key: "start", value: .int(1)), (key: "stop", value: .int(0))]),
            ]))])),
            (key: "model", value: .object([type("BPE"), (key: "unk_token", value: .string("<unk>")), (key: "byte_fallback", value: .bool(false)),
                                           (key: "fuse_unk", value: .bool(true)), (key: "vocab", value: vocab), (key: "merges", value: .array(merges))])),
        ])
        return Array(doc.text.utf8)
    }

    static let vectorMetadata = """
        {"format":"roast-steering-vector/1","architecture":"llama","hiddenSize":8,"intermediateSize":16,"layerCount":2,
        "site":"act","layers":[0,1],"method":"roast","defaultAlpha":0.2,"date":"2026-12-04T00:00:00Z"}
        """

    /// A ROAST vector file (act site, two layers).
    static func vectorSafetensors() throws -> [UInt8] {
        var rng = SplitMix64(seed: 4)
        let meta = try JSONDecoder().decode(VectorMetadata.self, from: Data(vectorMetadata.utf8))
        let file = SteeringVectorFile(metadata: meta, vectors: [0: floats(16, &rng), 1: floats(16, &rng)])
        return try written(file, "seed.safetensors")
    }

    /// A control vector as llama.cpp and repeng write it: no ROAST metadata, direction.1...3.
    static func vectorGGUF() throws -> [UInt8] {
        var rng = SplitMix64(seed: 5)
        var w = GGUFWriter()
        w.set("general.architecture", .string("controlvector"))
        w.set("controlvector.model_hint", .string("llama"))
        w.set("controlvector.layer_count", .int32(3))
        for l in 1...3 { try w.addTensor("direction.\(l)", floats: floats(8, &rng), shape: [8]) }
        return Array(try w.serialize())
    }

    static func written(_ file: SteeringVectorFile, _ name: String) throws -> [UInt8] {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("roast-fuzz-\(UUID().uuidString)-\(name)")
        defer { try? FileManager.default.removeItem(at: url) }
        try file.write(to: url)
        return Array(try Data(contentsOf: url))
    }

    static let gsm8k = """
        {"question": "Tom has 3 apples and buys 4 more. How many apples does he have?", "answer": "3 + 4 = <<3+4=7>>7\\n#### 7"}
        {"question": "A box holds 12 eggs. How many eggs are in 5 boxes?", "answer": "12 * 5 = <<12*5=60>>60\\n#### 60"}
        {"question": "Sara read 1,200 pages in 4 days. How many pages a day?", "answer": "1200 / 4 = 300\\n#### 300"}

        """
}
