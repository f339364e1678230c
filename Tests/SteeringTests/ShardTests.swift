import Backend
import Formats
import Foundation
import Model
@testable import Steering
import Tasks
import VulkanCompute
import XCTest

/// `roast extract --shard I/N` and `roast vector merge`: three local shards give the unsharded
/// vector exactly, for every CSS mode, with grouping on and off, for ROAST, CAA and SADI; and bad
/// shard sets are refused naming the file.
final class ShardTests: XCTestCase {
    func stories(_ b: Backend) throws -> LanguageModel {
        try LanguageModel(path: fixtures.appendingPathComponent("models/stories260K-hf").path, backend: b)
    }

    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("roast-shards-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    func testShardRangesCoverTheQuestionsOnce() throws {
        for total in [3, 6, 7, 100] {
            for n in 1...min(total, 5) {
                let ranges = try (0..<n).map { try ShardSpec(index: $0, count: n).questions(of: total) }
                XCTAssertEqual(ranges.flatMap { Array($0) }, Array(0..<total), "\(n) shards of \(total)")
                XCTAssertTrue(ranges.allSatisfy { !$0.isEmpty })
            }
        }
        XCTAssertEqual(try ShardSpec(parsing: "2/3"), try ShardSpec(index: 2, count: 3))
        for bad in ["3/3", "-1/2", "1/0", "a/b", "1", "1/2/3", ""] {
            XCTAssertThrowsError(try ShardSpec(parsing: bad), bad)
        }
    }

    /// Three shards' files merged equal the unsharded extraction: the same rollouts, pairs,
    /// statistics and, bit for bit, the same vectors.
    func testThreeShardsMergeToTheUnshardedVector() throws {
        for backend in [CPUBackend(), try VulkanBackend(device: VulkanDevice(validation: false))] as [Backend] {
            let m = try stories(backend)
            let task = EvenLengthTask()
            let items = try task.train()
            let dir = try temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: dir) }
            for (method, pairs) in [(ExtractionMethod.roast, PairSource.rollouts), (.caa, .teacherForced), (.sadi, .teacherForced)] {
                var o = ExtractionOptions(layers: try LayerSelection("0,2,4"))
                o.method = method
                o.pairs = pairs
                o.rollout.rollouts = 2  // few enough that some questions need a fallback
                let whole = try Extractor.collect(model: m, task: task, items: items, options: o)
                let specs = try (0..<3).map { try ShardSpec(index: $0, count: 3) }
                let parts = try specs.map { spec in
                    var so = o
                    so.firstQuestion = spec.questions(of: items.count).lowerBound
                    return try Extractor.collect(model: m, task: task, items: Array(items[spec.questions(of: items.count)]), options: so)
                }
                let label = "\(method) on \(backend.name)"
                XCTAssertEqual(parts.flatMap(\.records), whole.records, "\(label): a shard samples the rollouts the whole run samples")
                XCTAssertEqual(parts.map(\.stats).reduce(ExtractionStats(), +), whole.stats, label)
                if method == .roast {
                    XCTAssertGreaterThan(whole.stats.goldFallbacks + whole.stats.syntheticFallbacks, 0, "fallbacks are exercised")
                    // The two orders of grouped normalisation give different vectors from the same partials.
                    var po = o
                    po.groupOrder = .cssPerQuestion
                    let paper = try Extractor.aggregate(whole, metadata: Extractor.metadata(model: m, task: task, options: o), topKFraction: o.topKFraction).file
                    let code = try Extractor.aggregate(whole, metadata: Extractor.metadata(model: m, task: task, options: po), topKFraction: o.topKFraction).file
                    XCTAssertNotEqual(paper.vectors[0], code.vectors[0])
                    XCTAssertEqual(Aggregation.cssPerQuestion(whole.partials[0]!, mode: .max, topK: 1), code.vectors[0])
                }
                let settings: [(CSSMode, Bool, GroupOrder)] = method == .roast
                    ? CSSMode.allCases.flatMap { c in [(c, true, .l2ThenCSS), (c, true, .cssPerQuestion), (c, false, .l2ThenCSS)] } : [(.max, true, .l2ThenCSS)]
                for (css, grouping, order) in settings {
                    o.css = css
                    o.grouping = grouping
                    o.groupOrder = order
                    let meta = Extractor.metadata(model: m, task: task, options: o)
                    let expected = try Extractor.aggregate(whole, metadata: meta, topKFraction: o.topKFraction).file
                    let urls = try zip(specs, parts).map { spec, part in
                        let url = dir.appendingPathComponent("\(method)-\(css)-\(grouping)-\(spec.index).safetensors")
                        try ExtractionShard(spec: spec, questions: items.count, metadata: meta, topKFraction: o.topKFraction, partials: part).write(to: url)
                        return url
                    }
                    let merged = try ExtractionShard.merge([urls[2], urls[0], urls[1]]).file  // any order
                    let what = "\(label), css \(css), grouping \(grouping) \(order)"
                    XCTAssertEqual(meta.groupOrder, method == .roast && order == .cssPerQuestion ? "css-per-question" : nil)
                    XCTAssertEqual(Set(merged.vectors.keys), [0, 2, 4])
                    for l in [0, 2, 4] {
                        XCTAssertEqual(merged.vectors[l]!.map(\.bitPattern), expected.vectors[l]!.map(\.bitPattern), "\(what) layer \(l)")
                    }
                    XCTAssertEqual(merged.metadata.shards, 3)
                    XCTAssertEqual(merged.metadata.stats, expected.metadata.stats, what)
                    XCTAssertEqual(merged.metadata.energy, expected.metadata.energy, what)
                    XCTAssertEqual(Set(merged.metadata.siteNorms!.keys), ["0", "2", "4"])
                    for (l, norm) in expected.metadata.siteNorms! {
                        XCTAssertEqual(merged.metadata.siteNorms![l]!, norm, accuracy: norm * 1e-6, "\(what) norm of layer \(l)")
                    }
                    var a = merged.metadata, b = expected.metadata
                    (a.date, a.shards, a.siteNorms, b.date, b.siteNorms) = ("", nil, nil, "", nil)
                    XCTAssertEqual(a, b, "\(what): the metadata says what the unsharded file says")
                    // The merged file is a vector file like any other.
                    let out = dir.appendingPathComponent("merged.safetensors")
                    try merged.write(to: out)
                    XCTAssertEqual(try SteeringVectorFile.read(out).vectors, merged.vectors)
                }
            }
        }
    }

    /// A set of shards that is not one whole extraction, or a file that is not a shard, is refused
    /// with one line naming the file and what is wrong.
    func testBadShardSetsAreRefused() throws {
        let m = try stories(CPUBackend())
        let task = EvenLengthTask()
        let items = try task.train()
        var o = ExtractionOptions(layers: try LayerSelection("0,1"))
        o.method = .caa
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        func shard(_ i: Int, of n: Int, css: CSSMode = .max, name: String? = nil) throws -> URL {
            let spec = try ShardSpec(index: i, count: n)
            var so = o
            so.firstQuestion = spec.questions(of: items.count).lowerBound
            so.css = css
            so.method = css == .max ? .caa : .roast
            let part = try Extractor.collect(model: m, task: task, items: Array(items[spec.questions(of: items.count)]), options: so)
            let url = dir.appendingPathComponent(name ?? "part-\(i)-of-\(n).safetensors")
            try ExtractionShard(spec: spec, questions: items.count, metadata: Extractor.metadata(model: m, task: task, options: so),
                                topKFraction: o.topKFraction, partials: part).write(to: url)
            return url
        }
        let p0 = try shard(0, of: 3), p1 = try shard(1, of: 3), p2 = try shard(2, of: 3)
        XCTAssertNoThrow(try ExtractionShard.merge([p0, p1, p2]))
        let vector = dir.appendingPathComponent("v.safetensors")
        try ExtractionShard.merge([p0, p1, p2]).file.write(to: vector)
        let other = try shard(1, of: 3, css: .l2, name: "roast-1.safetensors")
        let twoOf2 = try shard(1, of: 2)
        let garbage = dir.appendingPathComponent("garbage.safetensors")
        try Data("not a safetensors file".utf8).write(to: garbage)
        let cases: [([URL], String)] = [
            ([p0, p2], "shard 1 of 3 missing (given: 0, 2)"),
            ([p0, p1, p1, p2], "part-1-of-3.safetensors and \(p1.path) are both shard 1 of 3"),
            ([p0, other, p2], "roast-1.safetensors: its css is \"l2\""),
            ([p0, twoOf2, p2], "part-1-of-2.safetensors: its shard count is 2"),
            ([p0, vector, p2], "v.safetensors: a steering vector, not an extraction shard"),
            ([p0, garbage], "garbage.safetensors"),
            ([], "no shard files"),
        ]
        for (files, expected) in cases {
            XCTAssertThrowsError(try ExtractionShard.merge(files), expected) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains(expected), "\(message) should contain \(expected)")
                XCTAssertFalse(message.contains("\n"), "one line: \(message)")
            }
        }
        XCTAssertThrowsError(try SteeringVectorFile.read(p0)) { XCTAssertTrue("\($0)".contains("an extraction shard, not a vector"), "\($0)") }
        // A header whose numbers disagree with each other is refused before any tensor is read.
        let st = try SafetensorsRewrite(p0)
        for (edit, expected) in [
            ({ (h: inout ShardHeader) in h.stats.pairs += 1 }, "stats say"),
            ({ (h: inout ShardHeader) in h.partialQuestions = h.partialQuestions.reversed() }, "out of order"),
            ({ (h: inout ShardHeader) in h.partialWeights[0] = -1 }, "partial weight -1.0"),
            ({ (h: inout ShardHeader) in h.shard = 3 }, "shard 3/3"),
            ({ (h: inout ShardHeader) in h.questions = 2 }, "3 shards of 2 questions"),
        ] as [((inout ShardHeader) -> Void, String)] {
            let url = dir.appendingPathComponent("edited.safetensors")
            try st.write(to: url, edit: edit)
            XCTAssertThrowsError(try ExtractionShard.read(url), expected) { XCTAssertTrue("\($0)".contains(expected), "\($0) should contain \(expected)") }
        }
    }
}

/// A shard file with its header edited (the tensors kept).
struct SafetensorsRewrite {
    let header: ShardHeader
    let tensors: [(String, [Float], [Int])]

    init(_ url: URL) throws {
        let st = try SafetensorsModel(url: url)
        header = try JSONDecoder().decode(ShardHeader.self, from: Data(st.metadata[ExtractionShard.metadataKey]!.utf8))
        tensors = st.tensors.keys.sorted().map { name in
            let t = st.tensors[name]!
            return (name, Quantization.decode(t.data, as: .f32, count: t.shape.reduce(1, *)), t.shape)
        }
    }

    func write(to url: URL, edit: (inout ShardHeader) -> Void) throws {
        var h = header
        edit(&h)
        var w = SafetensorsWriter()
        w.metadata[ExtractionShard.metadataKey] = String(decoding: try JSONEncoder().encode(h), as: UTF8.self)
        for (name, values, shape) in tensors { try w.addTensor(name, floats: values, shape: shape) }
        try w.write(to: url)
    }
}
