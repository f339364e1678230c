import Backend
import Formats
import Foundation
import Model

/// Shard I of N of the extraction questions: the contiguous block I·Q/N ..< (I+1)·Q/N of the Q
/// questions, I counted from 0.
public struct ShardSpec: Sendable, Equatable {
    public let index: Int
    public let count: Int

    public init(index: Int, count: Int) throws {
        guard count >= 1, (0..<count).contains(index) else {
            throw SteeringError("shard \(index)/\(count): expected I/N with N ≥ 1 and 0 ≤ I < N")
        }
        self.index = index
        self.count = count
    }

    /// "I/N", as `--shard` takes it.
    public init(parsing text: String) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]) else {
            throw SteeringError("shard '\(text)': expected I/N, e.g. 0/4 for the first of four shards")
        }
        try self.init(index: i, count: n)
    }

    /// The questions of this shard among `total`.
    public func questions(of total: Int) -> Range<Int> { index * total / count ..< (index + 1) * total / count }
}

/// The file header of one shard (JSON in the safetensors metadata under `roast-shard`); the
/// tensors `layers.L.SITE.question_means` hold each question's mean Δ, one row per question.
struct ShardHeader: Codable {
    var format = ExtractionShard.format
    var shard: Int
    var shards: Int
    /// All the extraction questions, over every shard.
    var questions: Int
    /// The settings every shard of one extraction shares (model, method, site, layers, CSS, …).
    var vector: VectorMetadata
    var topKFraction: Double
    var stats: ExtractionStats
    /// Σ‖h‖ and token counts per layer ("0", "1", …) at the site.
    var normSums: [String: Double]
    var normCounts: [String: Int]
    /// The questions with partials, in order, and each one's weight and pair count (the same at
    /// every layer: each pair contributes to every layer).
    var partialQuestions: [Int]
    var partialWeights: [Float]
    var partialPairs: [Int]
}

/// One shard's partial results (`roast extract --shard I/N`): what `roast vector merge` needs to
/// compute the whole run's vector exactly as an unsharded extraction computes it.
public struct ExtractionShard: Sendable {
    public static let format = "roast-extraction-shard/1"
    public static let metadataKey = "roast-shard"
    public var spec: ShardSpec
    /// All the extraction questions, over every shard.
    public var questions: Int
    /// The vector's metadata, less what aggregation fills in.
    public var metadata: VectorMetadata
    public var topKFraction: Double
    /// The shard's partials (no pair records).
    public var partials: ExtractionPartials

    public init(spec: ShardSpec, questions: Int, metadata: VectorMetadata, topKFraction: Double, partials: ExtractionPartials) {
        self.spec = spec
        self.questions = questions
        self.metadata = metadata
        self.metadata.layers = partials.layers
        self.topKFraction = topKFraction
        self.partials = partials
        self.partials.records = []
    }

    static func tensorName(_ layer: Int, _ site: ActivationSite) -> String { "layers.\(layer).\(site.rawValue).question_means" }

    /// Writes atomically as `.safetensors`.
    public func write(to url: URL) throws {
        guard url.pathExtension == "safetensors" else { throw SteeringError("\(url.path): a shard file ends in .safetensors") }
        let layers = partials.layers
        let reference = partials.partials[layers[0]] ?? []
        for l in layers where (partials.partials[l] ?? []).map(\.question) != reference.map(\.question) {
            throw SteeringError("layer \(l) has partials for other questions than layer \(layers[0])")
        }
        let header = ShardHeader(shard: spec.index, shards: spec.count, questions: questions, vector: metadata, topKFraction: topKFraction,
                                 stats: partials.stats,
                                 normSums: Dictionary(uniqueKeysWithValues: partials.norms.sums.map { ("\($0.key)", $0.value) }),
                                 normCounts: Dictionary(uniqueKeysWithValues: partials.norms.counts.map { ("\($0.key)", $0.value) }),
                                 partialQuestions: reference.map(\.question), partialWeights: reference.map(\.weight), partialPairs: reference.map(\.pairs))
        var w = SafetensorsWriter()
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        w.metadata[Self.metadataKey] = String(decoding: try enc.encode(header), as: UTF8.self)
        if !reference.isEmpty {
            for l in layers {
                let rows = partials.partials[l]!
                try w.addTensor(Self.tensorName(l, metadata.site), floats: rows.flatMap(\.mean), shape: [rows.count, rows[0].mean.count])
            }
        }
        try w.write(to: url)
    }

    /// Reads and checks a shard file; whatever is wrong is named with the file.
    public static func read(_ url: URL) throws -> ExtractionShard {
        func fail(_ s: String) -> SteeringError { SteeringError("\(url.path): \(s)") }
        guard url.pathExtension == "safetensors" else { throw fail("a shard file ends in .safetensors") }
        let st = try SafetensorsModel(url: url)  // parses and bounds-checks the header; reads no data
        guard let json = st.metadata[metadataKey] else {
            throw fail(st.metadata["roast"] != nil ? "a steering vector, not an extraction shard (`roast extract --shard I/N` writes those)"
                                                   : "no '\(metadataKey)' metadata: not an extraction shard")
        }
        let h: ShardHeader = try SteeringVectorFile.decodeMetadata(json, url, what: "shard metadata")
        guard h.format == format else { throw fail("format '\(h.format)', expected '\(format)'") }
        let spec: ShardSpec
        do { spec = try ShardSpec(index: h.shard, count: h.shards) } catch { throw fail("\(error)") }
        guard h.questions >= h.shards else { throw fail("\(h.shards) shards of \(h.questions) questions: a shard holds at least one") }
        let width = try SteeringVectorFile.checkMetadata(h.vector, url)
        guard h.topKFraction > 0, h.topKFraction <= 1 else { throw fail("topKFraction \(h.topKFraction) is not in (0, 1]") }
        let range = spec.questions(of: h.questions)
        guard h.stats.questions == range.count else {
            throw fail("stats count \(h.stats.questions) questions; shard \(spec.index) of \(spec.count) over \(h.questions) has \(range.count)")
        }
        let q = h.partialQuestions
        guard h.partialWeights.count == q.count, h.partialPairs.count == q.count else {
            throw fail("\(q.count) partial questions but \(h.partialWeights.count) weights and \(h.partialPairs.count) pair counts")
        }
        if let bad = q.indices.first(where: { !range.contains(q[$0]) || ($0 > 0 && q[$0] <= q[$0 - 1]) }) {
            throw fail("partial question \(q[bad]) is out of order or outside the shard's questions \(range.lowerBound)..<\(range.upperBound)")
        }
        if let bad = h.partialWeights.first(where: { !$0.isFinite || $0 <= 0 }) { throw fail("partial weight \(bad): expected a positive number") }
        if let bad = h.partialPairs.first(where: { $0 <= 0 }) { throw fail("partial pair count \(bad): expected a positive number") }
        guard h.partialPairs.reduce(0, +) == h.stats.pairs else {
            throw fail("the partials hold \(h.partialPairs.reduce(0, +)) pairs; stats say \(h.stats.pairs)")
        }
        var norms = SiteNormTotals()
        for (key, sum) in h.normSums {
            guard let l = Int(key), h.vector.layers.contains(l) else { throw fail("normSums has key '\(key)', not one of the layers \(h.vector.layers)") }
            guard sum.isFinite, sum >= 0, let n = h.normCounts[key], n >= 0 else { throw fail("layer \(key): norm sum \(sum) with count \(h.normCounts[key].map(String.init) ?? "missing")") }
            norms.sums[l] = sum
            norms.counts[l] = n
        }
        guard h.normCounts.count == h.normSums.count else { throw fail("normCounts and normSums name different layers") }
        let expected = q.isEmpty ? [] : h.vector.layers.map { tensorName($0, h.vector.site) }
        if let extra = st.tensors.keys.sorted().first(where: { !expected.contains($0) }) {
            throw fail("tensor \(extra) is not one of the \(q.count == 0 ? "none expected (no partials)" : "layers the metadata lists (\(h.vector.layers))")")
        }
        var partials: [Int: [QuestionPartial]] = [:]
        for l in h.vector.layers {
            guard !q.isEmpty else { partials[l] = []; continue }
            let name = tensorName(l, h.vector.site)
            guard let t = st.tensors[name] else { throw fail("missing tensor \(name)") }
            guard t.shape == [q.count, width], t.type.elementType == .f32 else {
                throw fail("tensor \(name) is \(t.type) \(t.shape); expected f32 [\(q.count), \(width)] (questions × width)")
            }
            let values = Quantization.decode(t.data, as: .f32, count: q.count * width)
            if let i = values.firstIndex(where: { !$0.isFinite }) { throw fail("tensor \(name): value \(values[i]) at index \(i) is not finite") }
            partials[l] = q.indices.map { k in
                QuestionPartial(question: q[k], weight: h.partialWeights[k], pairs: h.partialPairs[k], mean: Array(values[k * width ..< (k + 1) * width]))
            }
        }
        return ExtractionShard(spec: spec, questions: h.questions, metadata: h.vector, topKFraction: h.topKFraction,
                               partials: ExtractionPartials(layers: h.vector.layers, partials: partials, stats: h.stats, norms: norms, records: []))
    }

    /// The whole extraction's vector from every one of its shards, given in any order: exactly
    /// what the unsharded extraction computes (the same partials, aggregated in question order).
    public static func merge(_ files: [URL]) throws -> (file: SteeringVectorFile, energy: [Int: (css: EnergyReport, topK: EnergyReport)]) {
        guard let firstURL = files.first else { throw SteeringError("no shard files to merge") }
        let shards = try files.map { try read($0) }
        let first = shards[0]
        let n = first.spec.count
        for (url, s) in zip(files, shards).dropFirst() {
            func differ(_ what: String, _ a: String, _ b: String) -> SteeringError {
                SteeringError("\(url.path): its \(what) is \(b), \(firstURL.path)'s is \(a); the shards of one extraction share every setting")
            }
            if s.spec.count != n { throw differ("shard count", "\(n)", "\(s.spec.count)") }
            if s.questions != first.questions { throw differ("question count", "\(first.questions)", "\(s.questions)") }
            if s.topKFraction != first.topKFraction { throw differ("top-K fraction", "\(first.topKFraction)", "\(s.topKFraction)") }
            if let (key, a, b) = try firstDifference(first.metadata, s.metadata) { throw differ(key, a, b) }
        }
        var byIndex: [Int: URL] = [:]
        for (url, s) in zip(files, shards) {
            if let other = byIndex[s.spec.index] {
                throw SteeringError("\(other.path) and \(url.path) are both shard \(s.spec.index) of \(n)")
            }
            byIndex[s.spec.index] = url
        }
        let missing = (0..<n).filter { byIndex[$0] == nil }
        guard missing.isEmpty else {
            throw SteeringError("shard\(missing.count > 1 ? "s" : "") \(missing.map(String.init).joined(separator: ", ")) of \(n) missing (given: \(byIndex.keys.sorted().map(String.init).joined(separator: ", ")))")
        }
        let ordered = shards.sorted { $0.spec.index < $1.spec.index }
        var whole = ExtractionPartials(layers: first.partials.layers, partials: [:], stats: ExtractionStats(), norms: SiteNormTotals(), records: [])
        for s in ordered {
            for l in whole.layers { whole.partials[l, default: []] += s.partials.partials[l] ?? [] }
            whole.stats = whole.stats + s.partials.stats
            whole.norms = whole.norms + s.partials.norms
        }
        var meta = first.metadata
        meta.shards = n
        meta.date = ISO8601DateFormatter().string(from: Date())
        return try Extractor.aggregate(whole, metadata: meta, topKFraction: first.topKFraction)
    }

    /// The first metadata field (sorted by name) two shards disagree on, the date aside.
    static func firstDifference(_ a: VectorMetadata, _ b: VectorMetadata) throws -> (String, String, String)? {
        func fields(_ m: VectorMetadata) throws -> [String: String] {
            var m = m
            m.date = ""
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            let object = try JSONSerialization.jsonObject(with: try enc.encode(m)) as? [String: Any] ?? [:]
            return try object.mapValues { value in
                String(decoding: try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed]), as: UTF8.self)
            }
        }
        let fa = try fields(a), fb = try fields(b)
        for key in Set(fa.keys).union(fb.keys).sorted() where fa[key] != fb[key] {
            return (key, fa[key] ?? "absent", fb[key] ?? "absent")
        }
        return nil
    }
}
