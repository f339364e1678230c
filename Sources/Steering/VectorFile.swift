import Backend
import Formats
import Foundation
import Model

/// Who a vector belongs to and how it was made; stored as JSON in the file's metadata.
public struct VectorMetadata: Codable, Sendable, Equatable {
    public var format = "roast-steering-vector/1"
    public var architecture: String
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    /// Hash of the weights' header (names, types, shapes, sizes), to recognise the model.
    public var weightsFingerprint: String?
    public var model: String?
    public var site: ActivationSite
    public var layers: [Int]
    public var method: String
    public var css: String?
    public var grouping: Bool?
    /// "css-per-question" when grouped normalisation followed the authors' code; absent: the paper's order.
    public var groupOrder: String?
    /// "multiplicative" for SADI masks (h + α·(m ⊙ h)); absent means additive (h + α·v).
    public var intervention: String?
    public var defaultAlpha: Float
    public var task: String?
    public var rollouts: Int?
    /// "rollouts" or "teacher-forced": where the contrast pairs came from.
    public var pairs: String?
    public var seed: UInt64?
    public var date: String
    public var stats: ExtractionStats?
    public var energy: [String: EnergyReport]?
    /// Mean ‖h‖ at the site per layer ("0", "1", …), over the extraction pairs' last prompt
    /// tokens and response tokens: what ‖α·v‖ is measured against.
    public var siteNorms: [String: Float]?
    /// Merged from this many extraction shards (`roast vector merge`); absent when made whole.
    public var shards: Int?

    public init(model m: LanguageModel, site: ActivationSite, layers: [Int], method: String, defaultAlpha: Float) {
        architecture = m.config.architecture.rawValue
        hiddenSize = m.config.hiddenSize
        intermediateSize = m.config.intermediateSize
        layerCount = m.config.layerCount
        weightsFingerprint = m.weightsFingerprint
        model = URL(fileURLWithPath: m.path).lastPathComponent
        self.site = site
        self.layers = layers
        self.method = method
        self.defaultAlpha = defaultAlpha
        date = ISO8601DateFormatter().string(from: Date())
    }
}

/// A steering vector per layer, read from and written to `.safetensors` (with metadata) or the
/// llama.cpp control-vector `.gguf` (residual site only).
public struct SteeringVectorFile: Sendable {
    public var metadata: VectorMetadata
    public var vectors: [Int: [Float]]

    public init(metadata: VectorMetadata, vectors: [Int: [Float]]) {
        self.metadata = metadata
        self.vectors = vectors
    }

    static func tensorName(_ layer: Int, _ site: ActivationSite) -> String { "layers.\(layer).\(site.rawValue)" }

    /// Writes atomically; the extension picks the format.
    public func write(to url: URL) throws {
        switch url.pathExtension {
        case "safetensors":
            var w = SafetensorsWriter()
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            w.metadata["roast"] = String(decoding: try enc.encode(metadata), as: UTF8.self)
            for (l, v) in vectors.sorted(by: { $0.key < $1.key }) {
                try w.addTensor(Self.tensorName(l, metadata.site), floats: v, shape: [v.count])
            }
            try w.write(to: url)
        case "gguf":
            try controlVector().write(to: url)
        default:
            throw SteeringError("\(url.path): a vector file ends in .safetensors or .gguf")
        }
    }

    /// The llama.cpp control vector: arch `controlvector`, tensors `direction.N` added to the
    /// output of block N (0-based, as llama.cpp applies them; it rejects N = 0).
    func controlVector() throws -> GGUFWriter {
        guard metadata.intervention != "multiplicative" else {
            throw SteeringError("a SADI mask is multiplicative; llama.cpp control vectors are additive")
        }
        guard metadata.site == .residual else {
            throw SteeringError("llama.cpp control vectors steer the residual stream; this vector is for the \(metadata.site.rawValue) site (extract with --site residual)")
        }
        if vectors[0] != nil {
            throw SteeringError("llama.cpp control vectors cannot steer layer 0 (it rejects direction.0); extract for layers ≥ 1")
        }
        var w = GGUFWriter()
        w.set("general.architecture", .string("controlvector"))
        w.set("controlvector.model_hint", .string(metadata.architecture))
        w.set("controlvector.layer_count", .int32(Int32(vectors.count)))
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        w.set("roast.metadata", .string(String(decoding: try enc.encode(metadata), as: UTF8.self)))
        for (l, v) in vectors.sorted(by: { $0.key < $1.key }) {
            try w.addTensor("direction.\(l)", floats: v, shape: [v.count])
        }
        return w
    }

    /// Refuses a vector whose architecture, width, site or layers do not fit the model.
    /// The intervention this file describes, at strength `alpha`.
    public func intervention(alpha: Float? = nil, scope: SteeringScope = .generated) -> Intervention {
        Intervention(site: metadata.site, vectors: vectors, alpha: alpha ?? metadata.defaultAlpha, scope: scope,
                     multiplicative: metadata.intervention == "multiplicative")
    }

    public func check(against m: LanguageModel) throws {
        let c = m.config
        if metadata.architecture != "unknown", metadata.architecture != c.architecture.rawValue {
            throw SteeringError("the vector was made for a \(metadata.architecture) model; this model is \(c.architecture.rawValue)")
        }
        let width = metadata.site.width(c)
        for (l, v) in vectors {
            guard l < c.layerCount else { throw SteeringError("the vector steers layer \(l); the model has \(c.layerCount) layers") }
            guard v.count == width else {
                throw SteeringError("the vector's layer \(l) has \(v.count) values; this model's \(metadata.site.rawValue) site is \(width) wide")
            }
        }
    }
}

extension VectorMetadata {
    /// For foreign control vectors, which carry no identity beyond their width.
    init(architecture: String, width: Int, layers: [Int]) {
        self.architecture = architecture
        hiddenSize = width
        intermediateSize = 0
        layerCount = (layers.max() ?? 0) + 1
        site = .residual
        self.layers = layers
        method = "imported control vector"
        defaultAlpha = 1
        date = ISO8601DateFormatter().string(from: Date())
    }
}
