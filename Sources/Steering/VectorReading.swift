import Backend
import Formats
import Foundation

/// What a vector file may declare. Everything is checked against the header and the metadata
/// before one value is decoded, so a forged header cannot make the reader allocate more than
/// `maxElements` floats (256 MiB), however big the tensors it claims.
public enum VectorLimits {
    /// Widest site accepted (the widest real MLP, Llama 3 405B's, is 53,248).
    public static let maxWidth = 1 << 20
    public static let maxLayers = 1024
    /// Layers × width.
    public static let maxElements = 1 << 26
    /// Largest |value| of a vector and of α: real vectors (CSS-scaled, or mean differences of
    /// activations) stay far below; beyond it the steered model only produces overflow.
    public static let maxMagnitude: Float = 1e6
}

extension SteeringVectorFile {
    public static func read(_ url: URL) throws -> SteeringVectorFile {
        switch url.pathExtension {
        case "safetensors": return try readSafetensors(url)
        case "gguf": return try readControlVector(url)
        default: throw SteeringError("\(url.path): a vector file ends in .safetensors or .gguf")
        }
    }

    static func readSafetensors(_ url: URL) throws -> SteeringVectorFile {
        let st = try SafetensorsModel(url: url)  // parses and bounds-checks the header; reads no data
        guard let json = st.metadata["roast"] else {
            if st.metadata[ExtractionShard.metadataKey] != nil {
                throw SteeringError("\(url.path): an extraction shard, not a vector: merge the shards with `roast vector merge`")
            }
            throw SteeringError("\(url.path): no 'roast' metadata: not a ROAST vector file")
        }
        let meta: VectorMetadata = try decodeMetadata(json, url)
        let width = try checkMetadata(meta, url)
        let expected = Set(meta.layers.map { tensorName($0, meta.site) })
        if let extra = st.tensors.keys.sorted().first(where: { !expected.contains($0) }) {
            throw SteeringError("\(url.path): tensor \(extra) is not one of the layers the metadata lists (\(meta.layers))")
        }
        let tensors = try meta.layers.map { l -> (Int, TensorInfo) in
            let name = tensorName(l, meta.site)
            guard let t = st.tensors[name] else { throw SteeringError("\(url.path): missing tensor \(name)") }
            try checkShape(t, layer: l, width: width, url)
            return (l, t)
        }
        return SteeringVectorFile(metadata: meta, vectors: try decode(tensors, url))
    }

    static func readControlVector(_ url: URL) throws -> SteeringVectorFile {
        let g = try GGUFFile(url: url)  // parses and bounds-checks the header; reads no data
        guard g.metadata["general.architecture"]?.string == "controlvector" else {
            throw SteeringError("\(url.path): not a control vector (general.architecture is not 'controlvector')")
        }
        var byLayer: [Int: TensorInfo] = [:]
        for t in g.tensors {
            guard t.name.hasPrefix("direction."), let l = Int(t.name.dropFirst("direction.".count)), l >= 1, l < VectorLimits.maxLayers else {
                throw SteeringError("\(url.path): tensor \(t.name) is not direction.N for a layer N in 1..<\(VectorLimits.maxLayers)")
            }
            byLayer[l] = t
        }
        let layers = byLayer.keys.sorted()
        guard let first = layers.first else { throw SteeringError("\(url.path): no direction.N tensors") }
        let width = byLayer[first]!.shape.first ?? 1  // a scalar: refused by checkShape below
        if let declared = g.metadata["controlvector.layer_count"] {
            guard let n = declared.int, n == layers.count else {
                throw SteeringError("\(url.path): controlvector.layer_count is \(declared.int.map(String.init) ?? "not an integer"), but the file holds \(layers.count) direction.N tensors")
            }
        }
        var meta: VectorMetadata
        if let json = g.metadata["roast.metadata"]?.string {
            meta = try decodeMetadata(json, url) as VectorMetadata
            guard meta.site == .residual else { throw SteeringError("\(url.path): a control vector steers the residual site; its metadata says \(meta.site.rawValue)") }
            if let missing = meta.layers.first(where: { byLayer[$0] == nil }) {
                throw SteeringError("\(url.path): missing tensor direction.\(missing) (the metadata lists layers \(meta.layers))")
            }
            if let extra = layers.first(where: { !meta.layers.contains($0) }) {
                throw SteeringError("\(url.path): tensor direction.\(extra) is not one of the layers the metadata lists (\(meta.layers))")
            }
        } else {
            // llama.cpp or repeng: consecutive layers; a gap is a layer lost, not a choice.
            if let gap = (first...layers.last!).first(where: { byLayer[$0] == nil }) {
                throw SteeringError("\(url.path): missing tensor direction.\(gap) between direction.\(first) and direction.\(layers.last!)")
            }
            let hint = g.metadata["controlvector.model_hint"]?.string ?? "unknown"
            meta = VectorMetadata(architecture: hint, width: width, layers: layers)
        }
        let checkedWidth = try checkMetadata(meta, url)
        let tensors = try layers.map { l -> (Int, TensorInfo) in
            try checkShape(byLayer[l]!, layer: l, width: checkedWidth, url)
            return (l, byLayer[l]!)
        }
        return SteeringVectorFile(metadata: meta, vectors: try decode(tensors, url))
    }

    /// The metadata JSON; a bad field is named with what was expected and what was found.
    static func decodeMetadata<T: Decodable>(_ json: String, _ url: URL, what: String = "vector metadata") throws -> T {
        let doc: JSON
        do { doc = try Data(json.utf8).withUnsafeBytes { try JSON.parse($0) } } catch let e as JSON.SyntaxError {
            throw SteeringError("\(url.path): the \(what) is not valid JSON: \(e)")
        }
        do { return try JSONDecoder().decode(T.self, from: Data(json.utf8)) } catch {
            throw SteeringError("\(url.path): the \(what) is not valid: \(DecodingErrorText.describe(error, json: doc))")
        }
    }

    /// Checks the metadata's own claims (layers, width, α) against the limits; returns the site's width.
    static func checkMetadata(_ m: VectorMetadata, _ url: URL) throws -> Int {
        func fail(_ s: String) -> SteeringError { SteeringError("\(url.path): \(s)") }
        let width = m.site == .act ? m.intermediateSize : m.hiddenSize
        guard width >= 1, width <= VectorLimits.maxWidth else {
            throw fail("the \(m.site.rawValue) site is \(width) wide; a vector is 1 to \(VectorLimits.maxWidth) wide")
        }
        guard m.layerCount >= 1, m.layerCount <= VectorLimits.maxLayers else {
            throw fail("layerCount \(m.layerCount) is not in 1...\(VectorLimits.maxLayers)")
        }
        guard !m.layers.isEmpty, Set(m.layers).count == m.layers.count else { throw fail("the metadata's layers \(m.layers) are empty or repeat") }
        if let bad = m.layers.first(where: { $0 < 0 || $0 >= m.layerCount }) {
            throw fail("layer \(bad) is outside the model's \(m.layerCount) layers")
        }
        guard m.layers.count * width <= VectorLimits.maxElements else {
            throw fail("\(m.layers.count) layers × \(width) values exceed the limit of \(VectorLimits.maxElements)")
        }
        guard m.defaultAlpha.isFinite, abs(m.defaultAlpha) <= VectorLimits.maxMagnitude else {
            throw fail("defaultAlpha \(m.defaultAlpha) is not a finite number of magnitude ≤ \(VectorLimits.maxMagnitude)")
        }
        return width
    }

    static func checkShape(_ t: TensorInfo, layer: Int, width: Int, _ url: URL) throws {
        guard t.shape.count == 1, case .element(let e) = t.type, [.f32, .f16, .bf16].contains(e) else {
            throw SteeringError("\(url.path): layer \(layer): tensor \(t.name) is not a 1-D float vector (shape \(t.shape), type \(t.type))")
        }
        guard t.shape[0] == width else {
            throw SteeringError("\(url.path): layer \(layer) has \(t.shape[0]) values; the site is \(width) wide")
        }
    }

    /// Decodes the checked tensors straight from the mapping, refusing non-finite or absurd values.
    static func decode(_ tensors: [(Int, TensorInfo)], _ url: URL) throws -> [Int: [Float]] {
        var out: [Int: [Float]] = [:]
        for (l, t) in tensors {
            let v = Quantization.decode(t.data, as: t.type.elementType!, count: t.shape[0])
            if let i = v.firstIndex(where: { !$0.isFinite || abs($0) > VectorLimits.maxMagnitude }) {
                throw SteeringError("\(url.path): layer \(l): value \(v[i]) at index \(i) is not a finite number of magnitude ≤ \(VectorLimits.maxMagnitude)")
            }
            out[l] = v
        }
        return out
    }
}
