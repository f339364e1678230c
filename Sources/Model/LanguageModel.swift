import Backend
import Formats
import Foundation
import Tokenizers

/// A decoder-only transformer (Llama, Qwen2, Qwen3) resident on one backend, with its tokenizer.
/// The forward pass is written once, over the `Backend` protocol.
public final class LanguageModel {
    public let config: ModelConfig
    public let backend: Backend
    /// Nil for a weights-only folder (no tokenizer.json): ids in, ids out.
    public let tokenizer: Tokenizer?
    /// Where the model came from (path) and its format.
    public let path: String
    public let format: String
    /// GGUF llama files store Q/K rows permuted for interleaved RoPE; everything else rotates halves.
    public let ropeLayout: RopeLayout
    /// Bytes of weights resident on the backend.
    public let weightBytes: Int
    /// Identity of the weights: a hash of the file's header (names, shapes, types, offsets).
    public let weightsFingerprint: String
    /// The chat template to render prompts with.
    public var chatTemplate: ChatTemplate

    let embed: Tensor
    let lmHead: Tensor
    let outputNorm: Tensor
    let layers: [LayerWeights]
    let inverseFrequencies: Tensor
    /// The same on the host, for the step's RoPE table.
    let inverseFrequencyValues: [Float]
    /// Keeps the mapped file alive while tensors are uploaded lazily (none today) and for info.
    private let keepAlive: AnyObject

    /// Loads a Hugging Face folder (config.json, *.safetensors, tokenizer.json), a `.gguf` file or a
    /// llama2.c `.bin` checkpoint (with `tokenizer.bin` beside it).
    /// `fuseProjections: false` keeps q/k/v and gate/up as separate matmuls in the file's row
    /// order, as when their formats differ: for checking the fused kernels against the plain ones
    /// and measuring what fusing gains.
    public convenience init(path: String, backend: Backend, fuseProjections: Bool = true) throws {
        try self.init(files: try ModelFiles(path: path), backend: backend, fuseProjections: fuseProjections)
    }

    public init(files: ModelFiles, backend: Backend, fuseProjections: Bool = true) throws {
        path = files.path
        config = files.config
        tokenizer = files.tokenizer
        ropeLayout = files.ropeLayout
        format = files.format
        keepAlive = files.keepAlive
        self.backend = backend
        let source = files.source
        let url = URL(fileURLWithPath: path)
        chatTemplate = ChatTemplate.detect(from: tokenizer?.chatTemplate, modelHint: url.lastPathComponent)
        weightsFingerprint = Self.fingerprint(source)

        let c = config
        var loader = WeightLoader(source: source, backend: backend, fuse: fuseProjections)
        let (h, hq, hkv, d, inter) = (c.hiddenSize, c.headCount, c.kvHeadCount, c.headDim, c.intermediateSize)
        embed = try loader.matrix(.embed, rows: c.vocabSize, cols: h)
        outputNorm = try loader.vector(.outputNorm, count: h)
        lmHead = c.tieWordEmbeddings || source.info(.lmHead) == nil ? embed : try loader.matrix(.lmHead, rows: c.vocabSize, cols: h)
        layers = try (0..<c.layerCount).map { l in
            let (input, qNorm, kNorm) = try loader.attentionInput(layer: l, heads: hq, kvHeads: hkv, headDim: d, hidden: h,
                                                                  qkNorm: c.qkNorm, rotateHalf: files.ropeLayout == .rotateHalf)
            return LayerWeights(
                attnNorm: try loader.vector(.attnNorm, layer: l, count: h),
                ffnNorm: try loader.vector(.ffnNorm, layer: l, count: h),
                attentionInput: input,
                o: try loader.matrix(.o, layer: l, rows: h, cols: hq * d),
                qNorm: qNorm, kNorm: kNorm,
                mlpInput: try loader.gateUp(layer: l, rows: inter, cols: h),
                down: try loader.matrix(.down, layer: l, rows: h, cols: inter))
        }
        let ropeFactors = try source.tensors["rope_freqs.weight"].map { t -> [Float] in
            guard case .element(let e) = t.type else { throw ModelError("\(files.path): rope_freqs.weight has type \(t.type)") }
            return Quantization.decode(t.data, as: e, count: t.elementCount)
        }
        inverseFrequencyValues = try RoPE.inverseFrequencies(config: c, factors: ropeFactors)
        inverseFrequencies = try backend.makeTensor(floats: inverseFrequencyValues)
        weightBytes = loader.bytesUploaded
        try backend.synchronize()
    }

    /// The tokenizer, or an error saying the model has none.
    public func requireTokenizer() throws -> Tokenizer {
        guard let t = tokenizer else { throw ModelError("\(path): no tokenizer (tokenizer.json) beside the weights: give token ids instead of text") }
        return t
    }

    /// FNV-1a over every tensor's name, type, shape and byte count.
    static func fingerprint(_ s: WeightSource) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for name in s.tensors.keys.sorted() {
            let t = s.tensors[name]!
            for byte in "\(name)|\(t.type)|\(t.shape)|\(t.data.count);".utf8 {
                hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
            }
        }
        return String(hash, radix: 16)
    }
}

/// Rotary embedding frequencies θ^(−2i/d), computed in double, with the configured scaling.
public enum RoPE {
    /// `factors`: per-dimension divisors (GGUF `rope_freqs.weight`) for `.frequencyFactors`.
    public static func inverseFrequencies(config c: ModelConfig, factors: [Float]? = nil) throws -> [Float] {
        let d = c.headDim
        let base = (0..<d / 2).map { 1 / pow(Double(c.ropeTheta), Double(2 * $0) / Double(d)) }
        guard let s = c.ropeScaling else { return base.map { Float($0) } }
        switch s.kind {
        case .linear:
            return base.map { Float($0 / Double(s.factor)) }
        case .frequencyFactors:
            guard let f = factors, f.count == d / 2 else {
                throw ModelError("rope scaling by frequency factors needs rope_freqs.weight with \(d / 2) values")
            }
            return zip(base, f).map { Float($0 / Double($1)) }
        case .llama3:
            // transformers' _compute_llama3_parameters.
            let factor = Double(s.factor), low = Double(s.lowFreqFactor ?? 1), high = Double(s.highFreqFactor ?? 4)
            let old = Double(s.originalMaxPositionEmbeddings ?? 8192)
            let lowWavelen = old / low, highWavelen = old / high
            return base.map { f in
                let wavelen = 2 * Double.pi / f
                if wavelen < highWavelen { return Float(f) }
                if wavelen > lowWavelen { return Float(f / factor) }
                let smooth = (old / wavelen - low) / (high - low)
                return Float((1 - smooth) * f / factor + smooth * f)
            }
        }
    }
}

/// A model's files opened and checked, nothing uploaded yet: configuration, tensors (mapped),
/// tokenizer.
public struct ModelFiles {
    public let path: String
    public let config: ModelConfig
    public let tokenizer: Tokenizer?
    public let ropeLayout: RopeLayout
    public let format: String
    let source: WeightSource
    let keepAlive: AnyObject

    public init(path: String) throws {
        let url = URL(fileURLWithPath: path)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ModelError("\(path): no such file or folder")
        }
        self.path = path
        if isDir.boolValue || url.pathExtension == "safetensors" {
            let folder = isDir.boolValue ? url : url.deletingLastPathComponent()
            config = try ModelConfig.fromHF(configJSON: folder.appendingPathComponent("config.json"))
            let st = try SafetensorsModel(url: url)
            source = WeightSource(path: path, tensors: st.tensors, gguf: false)
            let tj = folder.appendingPathComponent("tokenizer.json")
            tokenizer = FileManager.default.fileExists(atPath: tj.path) ? try Tokenizer.load(tokenizerJSON: tj) : nil
            ropeLayout = .rotateHalf
            format = "safetensors"
            keepAlive = st
        } else if url.pathExtension == "gguf" {
            let g = try GGUFFile(url: url)
            config = try ModelConfig.fromGGUF(g)
            source = WeightSource(path: path, tensors: Dictionary(g.tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a }), gguf: true)
            tokenizer = try Tokenizer.load(gguf: g)
            // llama.cpp's converter permutes llama Q/K rows for interleaved RoPE; qwen2/3 keep rotate-half.
            ropeLayout = config.architecture == .llama ? .interleaved : .rotateHalf
            format = "gguf"
            keepAlive = g
        } else if url.pathExtension == "bin" {
            let c = try Llama2cCheckpoint(url: url)
            config = c.config
            source = WeightSource(path: path, tensors: c.tensors, gguf: false)
            tokenizer = try Tokenizer.load(llama2cTokenizer: try Self.llama2cTokenizerURL(next: url, vocab: c.config.vocabSize),
                                           vocabSize: c.config.vocabSize)
            ropeLayout = c.ropeInterleaved ? .interleaved : .rotateHalf
            format = "llama2.c"
            keepAlive = c
        } else {
            throw ModelError("\(path): not a model (expected a Hugging Face folder, a .gguf file or a llama2.c .bin)")
        }
    }

    /// Only the tokenizer: also accepts a bare tokenizer.json, and reads no weights.
    public static func tokenizer(path: String) throws -> Tokenizer {
        let url = URL(fileURLWithPath: path)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw ModelError("\(path): no such file or folder") }
        if isDir.boolValue { return try Tokenizer.load(tokenizerJSON: url.appendingPathComponent("tokenizer.json")) }
        switch url.pathExtension {
        case "json": return try Tokenizer.load(tokenizerJSON: url)
        case "gguf": return try Tokenizer.load(gguf: try GGUFFile(url: url))
        default:
            guard let t = try ModelFiles(path: path).tokenizer else { throw ModelError("\(path): the model has no tokenizer") }
            return t
        }
    }

    static func llama2cTokenizerURL(next model: URL, vocab: Int) throws -> URL {
        let dir = model.deletingLastPathComponent()
        for name in ["tokenizer.bin", "tok\(vocab).bin"] where FileManager.default.fileExists(atPath: dir.appendingPathComponent(name).path) {
            return dir.appendingPathComponent(name)
        }
        throw ModelError("\(model.path): no tokenizer.bin or tok\(vocab).bin beside the checkpoint")
    }


}
