import ArgumentParser
import Foundation
import Roast

extension FuzzFormat: ExpressibleByArgument {}

struct Fuzz: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Feed seeded mutations of an input file to the engine's loaders and count what they do.",
        discussion: """
        Each case damages a valid input (bit flips, boundary bytes, truncation, huge length and count fields, \
        inserted or removed bytes; for JSON: values of the wrong type or absurd size, members removed, repeated or \
        renamed) and runs the loaders a user's file would meet. A case passes when the input is rejected with a \
        one-line error, or accepted and usable. It fails on a message of several lines or with Swift's own error \
        text, on an accepted input that is not usable, or when a case's peak memory rises past 64 MiB + 16 × the \
        input's size. A trap ends the run: the last case printed with --verbose is the culprit. The same seed \
        gives the same cases. Exits 1 on any failure.

        Formats:
        \(FuzzFormat.allCases.map { "  \($0.rawValue): \($0.summary)" }.joined(separator: "\n"))
        """)

    @Option(help: "The format to fuzz, or all (default).") var format: String = "all"
    @Option(help: "Cases per format.") var cases = 500
    @Option(help: "Seed of the mutations.") var seed: UInt64 = 1
    @Option(help: "A valid file to mutate instead of the built-in one (one format only).") var input: String?
    @Flag(help: "Print one JSON object per format.") var json = false
    @Flag(help: "Print every case's outcome to stderr (the error, or accepted).") var verbose = false

    func validate() throws {
        guard cases >= 1 else { throw ValidationError("--cases must be at least 1") }
        guard format == "all" || FuzzFormat(rawValue: format) != nil else {
            throw ValidationError("--format: '\(format)' is not one of all, \(FuzzFormat.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if input != nil, format == "all" { throw ValidationError("--input needs one --format") }
    }

    func run() throws {
        let formats = FuzzFormat(rawValue: format).map { [$0] } ?? FuzzFormat.allCases
        var reports: [FuzzReport] = []
        for f in formats {
            let r = try FuzzCampaign.run(f, cases: cases, seed: seed, input: input.map { URL(fileURLWithPath: $0) },
                                       onFailure: { stderr("fuzz \(f.rawValue): FAILED \($0)") },
                                       onCase: verbose ? { stderr("fuzz \(f.rawValue) case \($0): \($1)") } : nil)
            if json { try printJSON(r) }
            reports.append(r)
        }
        if !json {
            printTable(["format", "cases", "rejected", "accepted", "failures", "peak MiB / case", "seconds"], reports.map { r in
                [r.format, "\(r.cases)", "\(r.rejected)", "\(r.accepted)", "\(r.failures.count)",
                 r.peakGrowthMiB.map { String(format: "%.1f", $0) } ?? "-", String(format: "%.1f", r.seconds)]
            })
        }
        if reports.contains(where: { !$0.failures.isEmpty }) { throw ExitCode(1) }
    }
}
