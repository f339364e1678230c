import Backend
import Foundation
@testable import Generation
import Model
import VulkanCompute
import XCTest

/// Sampling over the whole vocabulary from the device's softmax head (the row's maximum, its
/// normaliser and the entries near the maximum) must pick the token the whole row picks, or say
/// it cannot.
final class SamplerTests: XCTestCase {
    /// Rows peaked and flat, with ties, NaN and −inf entries, at several temperatures and top-p:
    /// wherever `sampleHead` answers, it is `sample` over the whole row with the same draw.
    func testHeadSamplingPicksWhatTheWholeRowPicks() {
        var rng = SplitMix64(seed: 19)
        var answered = 0, declined = 0
        for (scale, length) in [(12 as Float, 1000), (4, 1000), (0.5, 1000), (8, 40)] {
            for rowNumber in 0..<4 {
                var row = rng.floats(length, scale: scale)
                if rowNumber == 1 { row = row.map { ($0 * 2).rounded() / 2 } }  // ties everywhere
                if rowNumber == 2 {
                    for i in stride(from: 3, to: length, by: 9) { row[i] = .nan }
                    for i in stride(from: 5, to: length, by: 11) { row[i] = -.infinity }
                }
                let candidates = row.enumerated().map { (logit: $0.element, id: $0.offset) }
                let real = candidates.filter { !$0.logit.isNaN }.sorted { $0.logit != $1.logit ? $0.logit > $1.logit : $0.id < $1.id }
                // A head is a prefix of the ranking: the top 64 here, ties cut or not.
                let head = Array(real.prefix(64))
                let rowMax = real[0].logit
                for temperature: Float in [0.5, 0.8, 1.5] {
                    // The normaliser summed as the whole-row sampler sums it (in its order), so
                    // the two agree to the last bit and any difference is a real one.
                    let normaliser = real.reduce(0.0) { $0 + Double(exp(($1.logit - rowMax) / temperature)) }
                    for topP: Float in [0.5, 0.9, 1] {
                        let p = SamplingParameters(temperature: temperature, topP: topP)
                        for _ in 0..<100 {
                            let u = Sampler.unit(&rng)
                            guard let id = Sampler.sampleHead(head, rowMax: rowMax, normaliser: Float(normaliser), p, u: u) else {
                                declined += 1
                                continue
                            }
                            answered += 1
                            XCTAssertEqual(id, Sampler.sample(candidates, p, u: u), "scale \(scale) row \(rowNumber) T \(temperature) p \(topP) u \(u)")
                        }
                    }
                }
            }
        }
        // Both ways were taken: peaked rows answer from the head, flat ones read the row.
        XCTAssertGreaterThan(answered, 5000)
        XCTAssertGreaterThan(declined, 1000)
    }

    /// Whole rows (a vocabulary's worth) sampled without a top-k are not sorted whole, and pick
    /// what sorting them picks: flat and peaked rows, ties, NaN and −inf entries, with and
    /// without top-p, and greedy.
    func testWholeRowsPickWhatSortingThemPicks() {
        var rng = SplitMix64(seed: 23)
        var unsorted = 0
        for scale: Float in [0.3, 3, 12] {
            var row = rng.floats(20_000, scale: scale)
            for i in stride(from: 0, to: row.count, by: 97) { row[i] = .nan }
            for i in stride(from: 5, to: row.count, by: 101) { row[i] = -.infinity }
            for i in stride(from: 7, to: row.count, by: 13) { row[i] = (row[i] * 4).rounded() / 4 }  // ties
            let candidates = row.enumerated().map { (logit: $0.element, id: $0.offset) }
            XCTAssertEqual(Sampler.sample(candidates, .greedy, u: 0), Sampler.sortingChoice(candidates, .greedy) { 0 }, "greedy, scale \(scale)")
            for temperature: Float in [0.7, 1.5] {
                for topP: Float in [0.9, 1] {
                    let p = SamplingParameters(temperature: temperature, topP: topP)
                    for _ in 0..<40 {
                        let u = Sampler.unit(&rng)
                        XCTAssertEqual(Sampler.sample(candidates, p, u: u), Sampler.sortingChoice(candidates, p) { u },
                                       "scale \(scale) T \(temperature) p \(topP) u \(u)")
                        if Sampler.drawUnsorted(candidates, rowMax: row.filter { !$0.isNaN }.max()!, p, u: u) != nil { unsorted += 1 }
                    }
                }
            }
        }
        XCTAssertEqual(unsorted, 3 * 2 * 2 * 40, "every draw was answered without sorting the row")
    }

    /// What the head cannot decide it declines: a nucleus wider than the head, a draw in the
    /// tail, a non-finite or inconsistent normaliser, greedy or top-k rows.
    func testHeadSamplingDeclines() {
        let head: [Sampler.Candidate] = [(logit: 2, id: 7), (logit: 1, id: 3)]
        let z = Float(1 + exp(-1.0) + 100)  // a long tail beyond these two entries
        let p = SamplingParameters(temperature: 1, topP: 1)
        XCTAssertEqual(Sampler.sampleHead(head, rowMax: 2, normaliser: z, p, u: 0.001), 7)
        XCTAssertEqual(Sampler.sampleHead(head, rowMax: 2, normaliser: z, p, u: 0.0101), 3)
        XCTAssertNil(Sampler.sampleHead(head, rowMax: 2, normaliser: z, p, u: 0.5), "a draw in the tail")
        XCTAssertNil(Sampler.sampleHead(head, rowMax: 2, normaliser: z, SamplingParameters(temperature: 1, topP: 0.5), u: 0.001),
                     "the nucleus reaches past the head")
        XCTAssertEqual(Sampler.sampleHead(head, rowMax: 2, normaliser: Float(1 + exp(-1.0)), SamplingParameters(temperature: 1, topP: 0.5),
                                          u: 0.99), 7, "a nucleus of the first entry alone")
        XCTAssertNil(Sampler.sampleHead(head, rowMax: 3, normaliser: z, p, u: 0.001), "a maximum that is not the head's")
        XCTAssertNil(Sampler.sampleHead(head, rowMax: 2, normaliser: .nan, p, u: 0.001))
        XCTAssertNil(Sampler.sampleHead(head, rowMax: 2, normaliser: 0, p, u: 0.001))
        XCTAssertNil(Sampler.sampleHead(head, rowMax: .infinity, normaliser: z, p, u: 0.001))
        XCTAssertNil(Sampler.sampleHead(head, rowMax: 2, normaliser: z, .greedy, u: 0.001))
        XCTAssertNil(Sampler.sampleHead(head, rowMax: 2, normaliser: z, SamplingParameters(temperature: 1, topK: 2), u: 0.001))
        XCTAssertNil(Sampler.sampleHead([], rowMax: 2, normaliser: z, p, u: 0.001))
    }

    /// End to end on both kernel families and the CPU reference: rollouts sampled over the whole
    /// vocabulary are the tokens a loop reading every logit row back and sampling on the host
    /// gives; the device's head answered most rows at T 0.8, and at T 8 (a flat row, a head
    /// past its capacity or a draw past the head) some rows came back.
    func testWholeVocabularySamplingMatchesReadingTheRows() throws {
        let path = fixtures.appendingPathComponent("models/stories260K-hf").path
        for backend in try backends() {
            let m = try LanguageModel(path: path, backend: backend)
            for temperature: Float in [0.8, 8] {
                let p = SamplingParameters(temperature: temperature, topP: 0.95, seed: 5)
                let prompts = [[1, 403, 407], [1, 317, 269, 368]]
                let gen = Generator(model: m)
                let got = try gen.generate(prompts.map { GenerationRequest(promptIDs: $0, maxTokens: 12, sampling: p, stopAtEOS: false) })
                for (index, prompt) in prompts.enumerated() {
                    // Generator's stream for request `index`, and the whole row every step.
                    var rng = SplitMix64(seed: p.seed &+ UInt64(index) &* 0x9E37_79B9)
                    var ids = prompt, want: [Int] = []
                    for _ in 0..<12 {
                        let last = try m.logits(ids: ids).last!
                        let id = Sampler.sample(last.enumerated().map { (logit: $0.element, id: $0.offset) }, p, rng: &rng)
                        want.append(id)
                        ids.append(id)
                    }
                    XCTAssertEqual(got[index].ids, want, "\(backend.name) T \(temperature) prompt \(index)")
                }
                let (head, back) = (gen.wideRowsFromHead, gen.wideRowsReadBack)
                XCTAssertEqual(head + back, 24, "\(backend.name): every row counted once")
                // stories260K at T 0.8 puts most of its mass in a few tokens; at 8 it is flat.
                if temperature < 1 { XCTAssertGreaterThan(head, 12, "\(backend.name) T \(temperature)") }
                else { XCTAssertGreaterThan(back, 0, "\(backend.name) T \(temperature)") }
            }
        }
    }
}
