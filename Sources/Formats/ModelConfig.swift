import Foundation

/// How RoPE frequencies are rescaled for long context.
public struct RopeScaling: Sendable, Equatable, Codable {
    public enum Kind: String, Codable, Sendable {
        /// Llama 3.1+: frequencies between the low/high wavelength bounds are blended.
        case llama3
        /// Positions divided by `factor`.
        case linear
        /// Per-dimension frequency divisors stored in the GGUF tensor `rope_freqs.weight`
        /// (llama.cpp bakes llama3 scaling into it; the parameters are then not in the metadata).
        case frequencyFactors
    }
    public var kind: Kind
    public var factor: Float
    /// llama3 only.
    public var lowFreqFactor: Float?
    public var highFreqFactor: Float?
    public var originalMaxPositionEmbeddings: Int?

    public init(kind: Kind, factor: Float, lowFreqFactor: Float? = nil, highFreqFactor: Float? = nil, originalMaxPositionEmbeddings: Int? = nil) {
        self.kind = kind
        self.factor = factor
        self.lowFreqFactor = lowFreqFactor
        self.highFreqFactor = highFreqFactor
        self.originalMaxPositionEmbeddings = originalMaxPositionEmbeddings
    }
}

/// The shape of a decoder-only model, the same whichever file it came from.
public struct ModelConfig: Sendable, Equatable, Codable {
    public enum Architecture: String, Codable, Sendable { case llama, qwen2, qwen3 }
    public var architecture: Architecture
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headDim: Int
    public var vocabSize: Int
    public var contextLength: Int
    public var rmsNormEps: Float
    public var ropeTheta: Float
    public var ropeScaling: RopeScaling?
    public var tieWordEmbeddings: Bool
    /// Biases on q/k/v projections (qwen2).
    public var attentionBias: Bool
    /// RMS norm on each head's q and k before RoPE (qwen3).
    public var qkNorm: Bool
    public var bosTokenID: Int?
    public var eosTokenIDs: [Int]

    public init(architecture: Architecture, hiddenSize: Int, intermediateSize: Int, layerCount: Int, headCount: Int,
                kvHeadCount: Int, headDim: Int, vocabSize: Int, contextLength: Int, rmsNormEps: Float, ropeTheta: Float,
                ropeScaling: RopeScaling? = nil, tieWordEmbeddings: Bool, attentionBias: Bool = false, qkNorm: Bool = false,
                bosTokenID: Int? = nil, eosTokenIDs: [Int] = []) {
        self.architecture = architecture
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.headDim = headDim
        self.vocabSize = vocabSize
        self.contextLength = contextLength
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.ropeScaling = ropeScaling
        self.tieWordEmbeddings = tieWordEmbeddings
        self.attentionBias = attentionBias
        self.qkNorm = qkNorm
        self.bosTokenID = bosTokenID
        self.eosTokenIDs = eosTokenIDs
    }

    /// Width of all query heads together, and of the key/value heads.
    public var qDim: Int { headCount * headDim }
    public var kvDim: Int { kvHeadCount * headDim }

    /// Checks the numbers make a model the engine can run; `source` prefixes the error.
    func validated(_ source: String) throws -> ModelConfig {
        func check(_ ok: Bool, _ what: @autoclosure () -> String) throws {
            if !ok { throw FormatError("\(source): \(what())") }
        }
        let limit = 1 << 24  // far beyond any real model; keeps products of these in range
        for (name, v) in [("hidden size", hiddenSize), ("intermediate size", intermediateSize), ("layer count", layerCount),
                          ("head count", headCount), ("KV head count", kvHeadCount), ("head dim", headDim),
                          ("vocab size", vocabSize), ("context length", contextLength)] {
            try check(v > 0 && v <= limit, "\(name) \(v) is out of range")
        }
        try check(headCount % kvHeadCount == 0, "head count \(headCount) is not a multiple of the KV head count \(kvHeadCount)")
        try check(headDim % 2 == 0, "head dim \(headDim) is odd (RoPE rotates pairs)")
        try check(rmsNormEps > 0 && rmsNormEps.isFinite, "rms norm eps \(rmsNormEps) is not positive")
        try check(ropeTheta > 0 && ropeTheta.isFinite, "rope theta \(ropeTheta) is not positive")
        if let s = ropeScaling { try check(s.factor > 0 && s.factor.isFinite, "rope scaling factor \(s.factor) is not positive") }
        for id in (bosTokenID.map { [$0] } ?? []) + eosTokenIDs {
            try check(id >= 0 && id < vocabSize, "special token id \(id) is outside the vocabulary of \(vocabSize)")
        }
        return self
    }

    // MARK: Hugging Face config.json

    /// Reads a Hugging Face config.json (llama, mistral without sliding window, qwen2, qwen3).
    /// Optional fields take the defaults transformers gives them.
    public static func fromHF(configJSON url: URL) throws -> ModelConfig {
        let json = try JSON.parse(file: url, what: "config")
        guard json.members != nil else { throw FormatError(url, "config is \(json.brief), not a JSON object") }
        func fail(_ what: String) -> FormatError { FormatError(url, what) }
        func value(_ key: String) -> JSON? {
            guard let v = json[key], !v.isNull else { return nil }
            return v
        }
        func int(_ key: String) throws -> Int? {
            guard let v = value(key) else { return nil }
            guard let i = v.int else { throw fail("field \(key) is \(v.brief), not an integer") }
            return i
        }
        func requireInt(_ key: String) throws -> Int {
            guard let i = try int(key) else { throw fail("missing field \(key)") }
            return i
        }
        func double(_ v: JSON?, _ key: String) throws -> Double? {
            guard let v, !v.isNull else { return nil }
            guard let d = v.double else { throw fail("field \(key) is \(v.brief), not a number") }
            return d
        }
        func bool(_ key: String, default d: Bool) throws -> Bool {
            guard let v = value(key) else { return d }
            guard let b = v.bool else { throw fail("field \(key) is \(v.brief), not true/false") }
            return b
        }

        guard let modelTypeValue = value("model_type") else { throw fail("missing field model_type") }
        guard let modelType = modelTypeValue.string else { throw fail("field model_type is \(modelTypeValue.brief), not a string") }
        let arch: Architecture
        switch modelType {
        case "llama": arch = .llama
        case "qwen2": arch = .qwen2
        case "qwen3": arch = .qwen3
        case "mistral":
            // Mistral is llama unless it really uses its sliding window.
            let ctx = try int("max_position_embeddings") ?? Int.max
            if let w = try int("sliding_window"), w < ctx {
                throw fail("model_type mistral with sliding_window \(w) is not supported (only full attention)")
            }
            arch = .llama
        default:
            throw fail("unsupported model_type \(printable(modelType)) (llama, mistral, qwen2, qwen3)")
        }
        if let act = value("hidden_act") ?? value("hidden_activation"), act.string != "silu" {
            throw fail("unsupported hidden_act \(act.brief) (only silu)")
        }
        // Variants the forward pass does not implement: refuse rather than run a different model.
        if try bool("use_sliding_window", default: false) {
            throw fail("use_sliding_window true is not supported (only full attention)")
        }
        if try bool("mlp_bias", default: false) { throw fail("mlp_bias true is not supported") }
        // llama / qwen3 attention_bias puts biases on q, k, v AND o; only qwen2's q/k/v biases are supported.
        if arch != .qwen2, try bool("attention_bias", default: false) {
            throw fail("attention_bias true for \(modelType) (biases on q/k/v/o) is not supported")
        }

        let hidden = try requireInt("hidden_size")
        let heads = try requireInt("num_attention_heads")
        guard heads > 0 else { throw fail("field num_attention_heads is \(heads)") }

        // rope_theta: top level (transformers 4) or inside rope_parameters / rope_scaling (5).
        let ropeBlock = value("rope_parameters") ?? value("rope_scaling")
        if let b = ropeBlock, b.members == nil { throw fail("rope parameters are \(b.brief), not an object") }
        let theta = try double(value("rope_theta"), "rope_theta") ?? double(ropeBlock?["rope_theta"], "rope_theta") ?? 10000

        var scaling: RopeScaling?
        if let b = ropeBlock, let type = (b["rope_type"] ?? b["type"])?.string, type != "default" {
            let factor = try double(b["factor"], "rope factor")
            switch type {
            case "linear":
                guard let factor else { throw fail("linear rope scaling without a factor") }
                scaling = RopeScaling(kind: .linear, factor: Float(factor))
            case "llama3":
                guard let factor, let low = try double(b["low_freq_factor"], "low_freq_factor"),
                      let high = try double(b["high_freq_factor"], "high_freq_factor"),
                      let orig = b["original_max_position_embeddings"]?.int else {
                    throw fail("llama3 rope scaling needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings")
                }
                scaling = RopeScaling(kind: .llama3, factor: Float(factor), lowFreqFactor: Float(low), highFreqFactor: Float(high),
                                      originalMaxPositionEmbeddings: orig)
            default:
                throw fail("unsupported rope scaling type \(printable(type)) (default, linear, llama3)")
            }
        }

        let eos: [Int]
        switch value("eos_token_id") {
        case nil: eos = []
        case .some(.array(let a)):
            eos = try a.map { guard let i = $0.int else { throw fail("field eos_token_id holds \($0.brief), not an integer") }; return i }
        case .some(let v):
            guard let i = v.int else { throw fail("field eos_token_id is \(v.brief), not an integer or list") }
            eos = [i]
        }

        let config = ModelConfig(
            architecture: arch,
            hiddenSize: hidden,
            intermediateSize: try requireInt("intermediate_size"),
            layerCount: try requireInt("num_hidden_layers"),
            headCount: heads,
            kvHeadCount: try int("num_key_value_heads") ?? heads,
            headDim: try int("head_dim") ?? hidden / heads,
            vocabSize: try requireInt("vocab_size"),
            contextLength: try requireInt("max_position_embeddings"),
            rmsNormEps: Float(try double(value("rms_norm_eps"), "rms_norm_eps") ?? 1e-6),
            ropeTheta: Float(theta),
            ropeScaling: scaling,
            tieWordEmbeddings: try bool("tie_word_embeddings", default: false),
            // Qwen2 always has q/k/v biases (its config has no switch for them).
            attentionBias: arch == .qwen2,
            qkNorm: arch == .qwen3,
            bosTokenID: try int("bos_token_id"),
            eosTokenIDs: eos)
        return try config.validated(url.path)
    }

    // MARK: GGUF

    /// Reads the model shape from GGUF metadata (llama.cpp's key names) and the tensors present.
    public static func fromGGUF(_ f: GGUFFile) throws -> ModelConfig {
        func fail(_ what: String) -> FormatError { FormatError(f.url, what) }
        guard let archName = f.architecture else { throw fail("missing metadata key general.architecture") }
        guard let arch = Architecture(rawValue: archName) else {
            throw fail("unsupported general.architecture \(printable(archName)) (llama, qwen2, qwen3)")
        }
        func int(_ key: String) throws -> Int? {
            guard let v = f.metadata["\(archName).\(key)"] else { return nil }
            guard let i = v.int else { throw fail("metadata \(archName).\(key) is \(v), not an integer") }
            return i
        }
        func requireInt(_ key: String) throws -> Int {
            guard let i = try int(key) else { throw fail("missing metadata key \(archName).\(key)") }
            return i
        }
        func number(_ key: String) throws -> Double? {
            guard let v = f.metadata["\(archName).\(key)"] else { return nil }
            guard let d = v.float else { throw fail("metadata \(archName).\(key) is \(v), not a number") }
            return d
        }
        func tokenID(_ key: String) throws -> Int? {
            guard let v = f.metadata["tokenizer.ggml.\(key)"] else { return nil }
            guard let i = v.int else { throw fail("metadata tokenizer.ggml.\(key) is \(v), not an integer") }
            return i
        }

        let hidden = try requireInt("embedding_length")
        let heads = try requireInt("attention.head_count")
        guard heads > 0 else { throw fail("metadata \(archName).attention.head_count is \(heads)") }

        // Vocabulary: the tokenizer's token list, else the declared size, else the embedding rows.
        var vocab: Int
        if let tokens = f.metadata["tokenizer.ggml.tokens"]?.array { vocab = tokens.count }
        else if let v = try int("vocab_size") { vocab = v }
        else if let e = f.tensor("token_embd.weight"), e.shape.count == 2 { vocab = e.shape[0] }
        else { throw fail("cannot tell the vocabulary size: no tokenizer.ggml.tokens, \(archName).vocab_size or token_embd.weight") }
        if vocab <= 0 { vocab = 0 }

        var scaling: RopeScaling?
        if let type = f.metadata["\(archName).rope.scaling.type"]?.string, type != "none" {
            guard type == "linear" else { throw fail("unsupported \(archName).rope.scaling.type \(printable(type)) (none, linear)") }
            guard let factor = try number("rope.scaling.factor") else { throw fail("linear rope scaling without \(archName).rope.scaling.factor") }
            scaling = RopeScaling(kind: .linear, factor: Float(factor))
        }
        if f.tensor("rope_freqs.weight") != nil {
            guard scaling == nil else { throw fail("both rope.scaling.type and a rope_freqs.weight tensor") }
            scaling = RopeScaling(kind: .frequencyFactors, factor: 1)
        }

        if f.tensor("blk.0.attn_output.bias") != nil { throw fail("tensor blk.0.attn_output.bias: output-projection biases are not supported") }
        guard let eps = try number("attention.layer_norm_rms_epsilon") else {
            throw fail("missing metadata key \(archName).attention.layer_norm_rms_epsilon")
        }

        // End of generation: eos, and the chat end-of-turn / end-of-message tokens when distinct.
        var eos = [Int]()
        for key in ["eos_token_id", "eot_token_id", "eom_token_id"] {
            if let id = try tokenID(key), !eos.contains(id) { eos.append(id) }
        }

        let config = ModelConfig(
            architecture: arch,
            hiddenSize: hidden,
            intermediateSize: try requireInt("feed_forward_length"),
            layerCount: try requireInt("block_count"),
            headCount: heads,
            kvHeadCount: try int("attention.head_count_kv") ?? heads,
            headDim: try int("attention.key_length") ?? hidden / heads,
            vocabSize: vocab,
            contextLength: try requireInt("context_length"),
            rmsNormEps: Float(eps),
            ropeTheta: Float(try number("rope.freq_base") ?? 10000),
            ropeScaling: scaling,
            tieWordEmbeddings: f.tensor("output.weight") == nil,
            attentionBias: f.tensor("blk.0.attn_q.bias") != nil,
            qkNorm: f.tensor("blk.0.attn_q_norm.weight") != nil,
            bosTokenID: try tokenID("bos_token_id"),
            eosTokenIDs: eos)
        return try config.validated(f.url.path)
    }
}
