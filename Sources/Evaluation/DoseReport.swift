import Foundation
import Steering

/// The dose columns and table of the reports: ‖α·v‖ against the mean activation norm ‖h‖.
extension EvalReport {
    /// Mean over the chosen layers of ‖α·v‖ / ‖h‖ at the chosen α; nil without norms.
    static func doseRatio(_ run: RunResult) -> Double? {
        guard let d = run.doses, !d.isEmpty, let a = run.chosenAlpha else { return nil }
        return d.map { Double($0.ratio(alpha: a)) }.reduce(0, +) / Double(d.count)
    }

    /// "0.12, 0, 0.3" over seeds ("≤ " marks SADI's bound), or "–".
    static func doseRatios(_ r: EvalResults, _ method: String) -> String {
        let runs = r.runs.filter { $0.method == method }
        let values = runs.compactMap { run in doseRatio(run).map { (run.doses![0].multiplicative ? "≤ " : "") + String(format: "%.3g", $0) } }
        return values.isEmpty ? "–" : values.joined(separator: ", ")
    }

    /// Per steered run and layer: mean ‖h‖, ‖v‖ and ‖α·v‖ / ‖h‖ at every α of the sweep.
    static func doseTable(_ r: EvalResults) -> String? {
        let runs = r.runs.filter { $0.doses?.isEmpty == false }
        guard !runs.isEmpty else { return nil }
        let alphas = Array(Set(runs.flatMap { $0.dev.map(\.alpha) })).sorted()
        var t = "<table><tr><th>method</th><th>seed</th><th>layer</th><th>mean ‖h‖</th><th>‖v‖</th>"
            + alphas.map { "<th>α \(String(format: "%g", $0))</th>" }.joined() + "</tr>"
        for run in runs {
            for d in run.doses! {
                t += "<tr><td>\(escape(run.method))</td><td>\(run.seed)</td><td>\(d.layer)</td><td>\(String(format: "%.3g", d.activationNorm))</td>"
                    + "<td>\(d.multiplicative ? "mask" : String(format: "%.3g", d.vectorNorm))</td>"
                    + alphas.map { a in
                        let cell = (d.multiplicative ? "≤ " : "") + String(format: "%.3g", d.ratio(alpha: a))
                        return a == run.chosenAlpha ? "<td><b>\(cell)</b></td>" : "<td>\(cell)</td>"
                    }.joined() + "</tr>"
            }
        }
        return t + "</table>"
    }
}
