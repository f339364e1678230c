import Formats
import Foundation
import Tasks

/// One response of a contrast pair. `candidate` numbers the question's responses: its rollouts
/// 0..<n, then the gold answer n, then the synthetic wrong answer n + 1 (n = 0 when teacher forced).
public struct PairResponse: Sendable, Codable, Equatable {
    public var candidate: Int
    /// "rollout", "gold" or "synthetic".
    public var source: String
    /// Its grade (the gold answer is correct and the synthetic one wrong by construction).
    public var correct: Bool
    /// Token ids after the prompt (EOS dropped).
    public var ids: [Int]
    /// The text, for a reader; ignored when the file is read back.
    public var text: String?
}

/// One contrast pair as `roast extract --save-pairs` writes it: everything needed to read its
/// activations again, and to audit where it came from.
public struct PairRecord: Sendable, Codable, Equatable {
    /// Index of the question among the extraction questions (grouped normalisation groups by it).
    public var question: Int
    public var questionID: String
    /// The templated prompt's token ids.
    public var prompt: [Int]
    public var positive: PairResponse
    public var negative: PairResponse
    public var weight: Float
    /// The grades of the question's rollouts in order (empty when teacher forced).
    public var grades: [Bool]
    /// "none", "gold" (no correct rollout), "synthetic" (no incorrect rollout) or "gold+synthetic".
    public var fallback: String

    enum CodingKeys: String, CodingKey {
        case question, questionID = "question_id", prompt, positive, negative, weight, grades, fallback
    }

    static func fallback(gold: Bool, synthetic: Bool) -> String {
        switch (gold, synthetic) {
        case (false, false): "none"
        case (true, false): "gold"
        case (false, true): "synthetic"
        case (true, true): "gold+synthetic"
        }
    }
}

/// Reading and writing pairs files (JSON lines, one pair a line, in extraction order).
public enum PairsFile {
    /// Writes the records atomically, one sorted-key JSON object a line.
    public static func write(_ records: [PairRecord], to url: URL) throws {
        try OutputFile.write(try JSONLines.encode(records), to: url)
    }

    /// Reads and checks a pairs file: a bad line is named by file and line, with what is wrong.
    /// `vocabSize`: every token id must be below it (the model the pairs are read with).
    public static func read(_ url: URL, vocabSize: Int) throws -> [PairRecord] {
        var records: [PairRecord] = []
        var seen: [Int: (line: Int, prompt: [Int], candidates: [Int: [Int]])] = [:]
        var last: Int?
        for (line, value) in try Datasets.jsonLines(url, what: "pairs") {
            func fail(_ s: String) -> SteeringError { SteeringError("\(url.path):\(line): \(s)") }
            guard case .object = value else { throw fail("\(value.typeName), expected a pair object") }
            let r: PairRecord
            do { r = try JSONDecoder().decode(PairRecord.self, from: Data(value.text.utf8)) } catch {
                throw fail(DecodingErrorText.describe(error, json: value))
            }
            guard r.question >= 0 else { throw fail("question \(r.question) is negative") }
            guard r.weight.isFinite, r.weight > 0 else { throw fail("weight \(r.weight): expected a positive number") }
            for (name, ids) in [("prompt", r.prompt), ("positive.ids", r.positive.ids), ("negative.ids", r.negative.ids)] {
                guard !ids.isEmpty else { throw fail("\(name) is empty") }
                if let bad = ids.first(where: { $0 < 0 || $0 >= vocabSize }) {
                    throw fail("\(name) holds token id \(bad), outside this model's vocabulary of \(vocabSize)")
                }
            }
            guard r.positive.candidate != r.negative.candidate else { throw fail("the positive and negative are the same candidate \(r.positive.candidate)") }
            guard r.positive.candidate >= 0, r.negative.candidate >= 0 else { throw fail("a candidate index is negative") }
            // A question's pairs are consecutive and share its prompt; a candidate keeps its ids.
            if r.question != last, let earlier = seen[r.question] {
                throw fail("question \(r.question) continues here after other questions (its pairs start on line \(earlier.line)); a question's pairs must be consecutive")
            }
            var q = seen[r.question] ?? (line, r.prompt, [:])
            guard q.prompt == r.prompt else { throw fail("the prompt differs from question \(r.question)'s on line \(q.line)") }
            for resp in [r.positive, r.negative] {
                if let ids = q.candidates[resp.candidate], ids != resp.ids {
                    throw fail("candidate \(resp.candidate) of question \(r.question) has other ids than on an earlier line")
                }
                q.candidates[resp.candidate] = resp.ids
            }
            seen[r.question] = q
            last = r.question
            records.append(r)
        }
        return records
    }

    /// What extraction would report for these pairs (questions skipped are not in a pairs file).
    public static func stats(_ records: [PairRecord]) -> ExtractionStats {
        var s = ExtractionStats()
        var counted = Set<Int>()
        for r in records {
            s.pairs += 1
            guard counted.insert(r.question).inserted else { continue }
            s.questions += 1
            s.questionsUsed += 1
            s.rollouts += r.grades.count
            s.correctRollouts += r.grades.filter { $0 }.count
            if r.fallback.contains("gold") { s.goldFallbacks += 1 }
            if r.fallback.contains("synthetic") { s.syntheticFallbacks += 1 }
        }
        return s
    }
}

/// Turns pair records into activation contrasts: each question's distinct responses teacher
/// forced together (in candidate order, so a saved file reads exactly the batches the original
/// run read), Δ = a(positive) − a(negative) at the last response token.
public struct PairActivations {
    public let forcing: TeacherForcing
    /// Measures the site's activation norms on the way (the dose of `LayerDose`).
    public let meter: SiteNormMeter?

    public init(forcing: TeacherForcing, meter: SiteNormMeter? = nil) {
        self.forcing = forcing
        self.meter = meter
    }

    /// The contrasts of one question's records, per layer, in record order.
    public func contrasts(_ records: ArraySlice<PairRecord>) throws -> [Int: [ContrastPair]] {
        guard let first = records.first else { return [:] }
        var byCandidate: [Int: [Int]] = [:]
        for r in records {
            byCandidate[r.positive.candidate] = r.positive.ids
            byCandidate[r.negative.candidate] = r.negative.ids
        }
        let order = byCandidate.keys.sorted()
        let acts = try forcing.lastTokenActivations(prompt: first.prompt, responses: order.map { byCandidate[$0]! }, meter: meter)
        let at = Dictionary(uniqueKeysWithValues: zip(order, acts))
        var out: [Int: [ContrastPair]] = [:]
        for r in records {
            let (pos, neg) = (at[r.positive.candidate]!, at[r.negative.candidate]!)
            for l in forcing.layers {
                out[l, default: []].append(ContrastPair(question: r.question, delta: zip(pos[l]!, neg[l]!).map { $0 - $1 }, weight: r.weight))
            }
        }
        return out
    }

    /// The contrasts of every record, question by question; `progress(done, total, pairs)`.
    public func contrasts(all records: [PairRecord], progress: (Int, Int, Int) -> Void = { _, _, _ in }) throws -> [Int: [ContrastPair]] {
        var out: [Int: [ContrastPair]] = [:]
        var start = records.startIndex
        let questions = Set(records.map(\.question)).count
        var done = 0
        while start < records.endIndex {
            let end = records[start...].firstIndex { $0.question != records[start].question } ?? records.endIndex
            for (l, p) in try contrasts(records[start..<end]) { out[l, default: []] += p }
            done += 1
            progress(done, questions, end)
            start = end
        }
        return out
    }
}
