import Backend
import Foundation
import Model
@testable import Steering
import Tasks
import VulkanCompute
import XCTest

/// Arithmetic prompts with a grader that passes answers of even length: the stories model gets
/// mixed grades, so questions have several pairs, and some use a fallback.
struct EvenLengthTask: ReasoningTask {
    var base = ArithmeticTask(seed: 3, trainCount: 6, testCount: 2)
    var name: String { "even-length" }
    var maxTokens: Int { 6 }
    var systemPrompt: String? { nil }
    func train() throws -> [TaskItem] { base.train() }
    func test() throws -> [TaskItem] { base.test() }
    func grade(_ response: String, _ item: TaskItem) -> Bool { response.count % 2 == 0 }
    func syntheticWrongResponse(_ item: TaskItem, rng: inout TaskRandom) -> String? { base.syntheticWrongResponse(item, rng: &rng) }
}

/// `--save-pairs` / `--pairs-file`: what is written, that it gives back the same vectors bit for
/// bit, and that a bad file is refused naming its line.
final class PairsFileTests: XCTestCase {
    func stories(_ b: Backend) throws -> LanguageModel {
        try LanguageModel(path: fixtures.appendingPathComponent("models/stories260K-hf").path, backend: b)
    }

    func temporary(_ name: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("roast-pairs-\(UUID().uuidString)-\(name)")
    }

    func testSavedPairsGiveTheSameVectorsBitForBit() throws {
        for backend in [CPUBackend(), try VulkanBackend(device: VulkanDevice(validation: false))] as [Backend] {
            let m = try stories(backend)
            let task = EvenLengthTask()
            for (method, pairs) in [(ExtractionMethod.roast, PairSource.rollouts), (.caa, .teacherForced)] {
                var o = ExtractionOptions(layers: try LayerSelection("0,2,4"))
                o.method = method
                o.pairs = pairs
                o.rollout.rollouts = 3
                let first = try Extractor.extract(model: m, task: task, items: try task.train(), options: o)
                let url = temporary("\(method).jsonl")
                defer { try? FileManager.default.removeItem(at: url) }
                try PairsFile.write(first.records, to: url)
                let read = try PairsFile.read(url, vocabSize: m.config.vocabSize)
                XCTAssertEqual(read, first.records, "the file reads back as written")
                XCTAssertEqual(read.count, first.stats.pairs)
                var stats = PairsFile.stats(read)
                stats.questions = first.stats.questions  // skipped questions leave no line
                stats.questionsSkipped = first.stats.questionsSkipped
                XCTAssertEqual(stats, first.stats)
                o.savedPairs = read
                let again = try Extractor.extract(model: m, task: task, items: [], options: o)
                for l in [0, 2, 4] {
                    XCTAssertEqual(again.file.vectors[l]!.map(\.bitPattern), first.file.vectors[l]!.map(\.bitPattern),
                                   "\(method) layer \(l) on \(type(of: backend))")
                }
                XCTAssertEqual(again.file.metadata.pairs, "file")
                XCTAssertEqual(again.file.metadata.siteNorms, first.file.metadata.siteNorms, "the same tokens measured")
                XCTAssertEqual(Set(first.file.metadata.siteNorms!.keys), ["0", "2", "4"])
                XCTAssertTrue(first.file.doses!.allSatisfy { $0.activationNorm > 0 && $0.vectorNorm > 0 })
                if method == .roast {
                    XCTAssertGreaterThan(read.count, Set(read.map(\.question)).count, "mixed grades give several pairs a question")
                    for r in read {
                        XCTAssertEqual(r.grades.count, 3)
                        XCTAssertTrue(r.positive.correct && !r.negative.correct)
                        XCTAssertEqual(r.weight, r.positive.source == "gold" ? 0.5 : 1)
                        XCTAssertEqual(r.fallback.contains("gold"), !r.grades.contains(true))
                        XCTAssertEqual(r.fallback.contains("synthetic"), !r.grades.contains(false))
                    }
                } else {
                    XCTAssertTrue(read.allSatisfy { $0.positive.source == "gold" && $0.negative.source == "synthetic" && $0.grades.isEmpty })
                }
            }
        }
    }

    func testBadPairsFilesAreNamedByLine() throws {
        let good = #"{"fallback":"none","grades":[],"negative":{"candidate":1,"correct":false,"ids":[5],"source":"synthetic"},"positive":{"candidate":0,"correct":true,"ids":[6],"source":"gold"},"prompt":[1,2],"question":0,"question_id":"a","weight":1}"#
        func line(_ edit: (inout String) -> Void) -> String {
            var s = good
            edit(&s)
            return s
        }
        let cases: [(String, String)] = [
            (good + "\n{\"question\": ", "f.jsonl:2: not a JSON line"),
            (good + "\n[1]", "f.jsonl:2: an array, expected a pair object"),
            (line { $0 = $0.replacingOccurrences(of: #""weight":1"#, with: #""weight":"x""#) }, "f.jsonl:1: field 'weight': expected a number"),
            (line { $0 = $0.replacingOccurrences(of: #","question_id":"a""#, with: "") }, "f.jsonl:1: missing field 'question_id'"),
            (line { $0 = $0.replacingOccurrences(of: #""ids":[6]"#, with: #""ids":[600]"#) }, "f.jsonl:1: positive.ids holds token id 600, outside this model's vocabulary of 512"),
            (line { $0 = $0.replacingOccurrences(of: #""prompt":[1,2]"#, with: #""prompt":[]"#) }, "f.jsonl:1: prompt is empty"),
            (line { $0 = $0.replacingOccurrences(of: #""weight":1"#, with: #""weight":0"#) }, "f.jsonl:1: weight 0.0: expected a positive number"),
            (good + "\n" + line { $0 = $0.replacingOccurrences(of: #""prompt":[1,2]"#, with: #""prompt":[1,3]"#) }, "f.jsonl:2: the prompt differs from question 0's on line 1"),
            (good + "\n" + line { $0 = $0.replacingOccurrences(of: #""ids":[5]"#, with: #""ids":[7]"#) }, "f.jsonl:2: candidate 1 of question 0 has other ids"),
            (good + "\n" + line { $0 = $0.replacingOccurrences(of: #""question":0"#, with: #""question":1"#) } + "\n" + good,
             "f.jsonl:3: question 0 continues here after other questions (its pairs start on line 1)"),
            ("\n \n", "f.jsonl: the pairs file holds no lines"),
        ]
        let dir = temporary("bad")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("f.jsonl")
        try Data(good.utf8).write(to: url)
        XCTAssertEqual(try PairsFile.read(url, vocabSize: 512).count, 1)
        for (text, expected) in cases {
            try Data(text.utf8).write(to: url)
            XCTAssertThrowsError(try PairsFile.read(url, vocabSize: 512), expected) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains(expected), "\(message) should contain \(expected)")
                XCTAssertFalse(message.contains("\n"), "one line: \(message)")
            }
        }
        XCTAssertThrowsError(try PairsFile.read(dir.appendingPathComponent("none.jsonl"), vocabSize: 512)) {
            XCTAssertTrue("\($0)".contains("none.jsonl: cannot read the pairs file"), "\($0)")
        }
    }
}
