import Formats
import Foundation

/// The files of `roast eval --out DIR`: results.json, results.md and a self-contained report.html
/// with inline SVG plots. Every file is written atomically.
public enum EvalReport {
    public static func write(_ r: EvalResults, to dir: URL) throws {
        try OutputFile.makeFolder(dir)
        try OutputFile.write(json(r), to: dir.appendingPathComponent("results.json"))
        try OutputFile.write(Data(markdown(r).utf8), to: dir.appendingPathComponent("results.md"))
        try OutputFile.write(Data(html(r).utf8), to: dir.appendingPathComponent("report.html"))
    }

    public static func json<T: Encodable>(_ value: T) throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try enc.encode(value)
    }

    static func pct(_ s: Stat) -> String {
        s.n > 1 ? String(format: "%.1f ± %.1f", 100 * s.mean, 100 * s.std) : String(format: "%.1f", 100 * s.mean)
    }

    static func alphas(_ m: MethodSummary) -> String {
        m.alphas.isEmpty ? "–" : m.alphas.map { String(format: "%g", $0) }.joined(separator: ", ")
    }

    /// The results table: test metrics in %, mean ± std over seeds, and the α each seed chose on
    /// dev (and the placement, where it was chosen too: several layer sets, or SADI's joint K).
    public static func markdown(_ r: EvalResults) -> String {
        let placements = r.settings.layerSets.count > 1 || r.runs.contains { $0.chosenLayers?.contains(" top-") == true }
        let proto = r.settings.evalProtocol == .orbit ? " under --protocol orbit" : ""
        var lines = ["# roast eval: \(r.task) on \(r.model)\(proto)", "",
                     "\(r.testItems) test questions, seeds \(r.settings.seeds.map(String.init).joined(separator: ", ")), \(r.device). Test metrics in %, mean ± std over seeds; α chosen on dev (training questions).", "",
                     "| method | " + r.metrics.joined(separator: " | ") + " | α chosen per seed |" + (placements ? " layers chosen per seed |" : "") + " ‖α·v‖ / ‖h‖ per seed |",
                     "| --- | " + r.metrics.map { _ in "---:" }.joined(separator: " | ") + " | --- |" + (placements ? " --- |" : "") + " --- |"]
        for m in r.summary {
            let layers = r.runs.filter { $0.method == m.method }.compactMap(\.chosenLayers)
            lines.append("| \(m.method) | " + r.metrics.map { pct(m.metrics[$0] ?? Stat([])) }.joined(separator: " | ") + " | \(alphas(m)) |"
                         + (placements ? " \(layers.isEmpty ? "–" : layers.joined(separator: "; ")) |" : "") + " \(doseRatios(r, m.method)) |")
        }
        lines += ["", "‖α·v‖ / ‖h‖: the step at the chosen α against the mean activation norm at the site (last prompt token and response tokens of the extraction pairs), mean over the chosen layers\(r.settings.alphaRelative ? "; α is relative (--alpha-relative), so it equals α" : "")."]
        return lines.joined(separator: "\n") + "\n"
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// One colour per method, the same in every plot of a report: the bar chart gives bar i
    /// palette colour i, and the bars are the summary's methods in order.
    static func color(of method: String, in r: EvalResults) -> String {
        SVGPlot.colors[(r.summary.firstIndex { $0.method == method } ?? 0) % SVGPlot.colors.count]
    }

    /// Mean and std over seeds of the headline dev metric at each α (best layer set per α).
    static func alphaCurves(_ r: EvalResults) -> [SVGPlot.Series] {
        let metric = r.metrics[0]
        return r.summary.compactMap { m in
            let runs = r.runs.filter { $0.method == m.method && $0.chosenAlpha != nil }
            guard !runs.isEmpty else { return nil }
            let alphas = Array(Set(runs.flatMap { $0.dev.map(\.alpha) })).sorted()
            let points = alphas.map { a -> SVGPlot.Point in
                let s = Stat(runs.compactMap { run in run.dev.filter { $0.alpha == a }.compactMap { $0.metrics[metric] }.max() })
                return SVGPlot.Point(x: String(format: "%g", a), y: 100 * s.mean, error: 100 * s.std)
            }
            return SVGPlot.Series(name: m.method, points: points, color: color(of: m.method, in: r))
        }
    }

    /// Each layer steered alone (dev), with the unsteered dev score as a flat reference.
    static func perLayer(_ r: EvalResults) -> [SVGPlot.Series] {
        let metric = r.metrics[0]
        var out: [SVGPlot.Series] = r.runs.compactMap { run in
            guard let pl = run.perLayer, !pl.isEmpty else { return nil }
            return SVGPlot.Series(name: "\(run.method) (seed \(run.seed), α \(String(format: "%g", pl[0].alpha)))",
                                  points: pl.map { SVGPlot.Point(x: "\($0.layer)", y: 100 * ($0.metrics[metric] ?? 0), error: 0) },
                                  color: color(of: run.method, in: r))
        }
        if let run = r.runs.first(where: { $0.perLayer?.isEmpty == false }),
           let base = run.dev.first(where: { $0.alpha == 0 })?.metrics[metric] {
            // Drawn first and dashed, so a method that scores the same at every layer stays visible.
            out.insert(SVGPlot.Series(name: "no steering (seed \(run.seed))",
                                      points: run.perLayer!.map { SVGPlot.Point(x: "\($0.layer)", y: 100 * base, error: 0) },
                                      reference: true), at: 0)
        }
        return out
    }

    /// Energy of μ kept per layer (mean over seeds): each CSS variant, and the top-K mask of μ.
    static func energy(_ r: EvalResults) -> [SVGPlot.Series] {
        var out: [SVGPlot.Series] = []
        var topK: [Int: [Double]] = [:]
        for m in r.summary {
            let runs = r.runs.filter { $0.method == m.method && $0.energy != nil }
            guard !runs.isEmpty, m.method.hasPrefix("roast") else { continue }
            let layers = runs[0].energy!.map(\.layer)
            out.append(SVGPlot.Series(name: "\(m.method): CSS \(r.settings.methods.first { $0.name == m.method }?.css.rawValue ?? "")",
                                      points: layers.map { l in
                                          let s = Stat(runs.compactMap { $0.energy?.first { $0.layer == l }.map { Double($0.css.energyKept) } })
                                          return SVGPlot.Point(x: "\(l)", y: 100 * s.mean, error: 100 * s.std)
                                      }, color: color(of: m.method, in: r)))
            for run in runs { for e in run.energy! { topK[e.layer, default: []].append(Double(e.topK.energyKept)) } }
        }
        if !topK.isEmpty {
            let k = String(format: "%g", 100 * r.settings.topKFraction)
            let used = Set(out.compactMap(\.color))
            out.append(SVGPlot.Series(name: "top-K mask of μ (K = \(k) % of dims)", points: topK.keys.sorted().map {
                let s = Stat(topK[$0]!)
                return SVGPlot.Point(x: "\($0)", y: 100 * s.mean, error: 100 * s.std)
            }, color: SVGPlot.colors.first { !used.contains($0) }))
        }
        return out
    }

    public static func html(_ r: EvalResults) -> String {
        let metric = r.metrics[0]
        var table = "<table><tr><th>method</th>" + r.metrics.map { "<th>\($0) (%)</th>" }.joined() + "<th>α chosen per seed</th><th>‖α·v‖ / ‖h‖ per seed</th></tr>"
        for m in r.summary {
            table += "<tr><td>\(escape(m.method))</td>" + r.metrics.map { "<td>\(pct(m.metrics[$0] ?? Stat([])))</td>" }.joined()
                + "<td>\(alphas(m))</td><td>\(escape(doseRatios(r, m.method)))</td></tr>"
        }
        table += "</table>"
        let bars = SVGPlot.bars(title: "Test \(metric) by method (mean ± std over seeds)", yLabel: "\(metric) %",
                                bars: r.summary.map { ($0.method, 100 * ($0.metrics[metric]?.mean ?? 0), 100 * ($0.metrics[metric]?.std ?? 0)) })
        let curves = alphaCurves(r), layers = perLayer(r), energy = energy(r)
        func figure(_ svg: String?, _ missing: String) -> String { svg ?? "<p class=note>\(missing)</p>" }
        var examples = ""
        for run in r.runs where run.seed == r.settings.seeds.first {
            examples += "<details><summary>\(escape(run.method)), seed \(run.seed): first test answers</summary><table><tr><th>question</th><th>gold</th><th>answer</th><th></th></tr>"
            for it in run.items.prefix(8) {
                examples += "<tr><td>\(escape(String(it.prompt.prefix(300))))</td><td>\(escape(it.gold))</td><td><pre>\(escape(String(it.response.prefix(600))))</pre></td><td>\(it.correct ? "✓" : "✗")</td></tr>"
            }
            examples += "</table></details>"
        }
        let settings = String(decoding: (try? json(r.settings)) ?? Data(), as: UTF8.self)
        return """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>roast eval: \(escape(r.task))</title>
        <style>
        body { font: 14px/1.45 system-ui, sans-serif; max-width: 980px; margin: 2em auto; color: #222; }
        table { border-collapse: collapse; margin: 1em 0; } td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
        pre { white-space: pre-wrap; margin: 0; font-size: 12px; } .note { color: #777; } figure { margin: 1.5em 0; }
        </style></head><body>
        <h1>roast eval: \(escape(r.task))</h1>
        <p>Model <b>\(escape(r.model))</b> on \(escape(r.device)); \(r.testItems) test questions; seeds \(r.settings.seeds.map(String.init).joined(separator: ", ")); \(r.date); this invocation took \(String(format: "%.0f", r.seconds)) s (answers already in the run's cache.jsonl are read back, not computed again).
        α and the layer set are chosen on a dev split of the training questions; the test split is never used to choose.</p>
        <h2>Results (test)</h2>\(table)
        <figure>\(bars)</figure>
        <h2>Accuracy vs α (dev split, mean ± std over seeds)</h2>
        <figure>\(figure(curves.isEmpty ? nil : SVGPlot.lines(title: "Dev \(metric) vs α", xLabel: "α", yLabel: "\(metric) %", series: curves), "No steered method ran."))</figure>
        <h2>Dose: ‖α·v‖ against the activation</h2>
        <p>Mean ‖h‖ at the site over the extraction pairs' last prompt tokens and response tokens, ‖v‖ as applied at α = 1, and ‖α·v‖ / ‖h‖ at each α of the sweep (the chosen α in bold). For SADI's h + α·(m ⊙ h) the step is at most α·‖h‖.</p>
        \(doseTable(r) ?? "<p class=note>No vector with recorded activation norms in this run.</p>")
        <h2>Per-layer effect (dev, one layer steered at a time)</h2>
        <figure>\(figure(layers.isEmpty ? nil : SVGPlot.lines(title: "Dev \(metric) steering one layer", xLabel: "layer", yLabel: "\(metric) %", series: layers), "Not measured in this run (needs a steered method and per-layer effect on)."))</figure>
        <h2>CSS vs top-K: energy of μ kept</h2>
        <figure>\(figure(energy.isEmpty ? nil : SVGPlot.lines(title: "Energy of μ kept (cos²(β, μ))", xLabel: "layer", yLabel: "energy kept %", series: energy), "No ROAST vector in this run."))</figure>
        <h2>Answers</h2>\(examples)
        <h2>Settings</h2><pre>\(escape(settings))</pre>
        </body></html>
        """
    }
}

/// Small self-contained SVG charts: lines with error bars over categorical x, and bars.
public enum SVGPlot {
    public struct Point: Sendable {
        public var x: String
        public var y: Double
        public var error: Double
    }

    public struct Series: Sendable {
        public var name: String
        public var points: [Point]
        /// A reference level (e.g. the unsteered score): a dashed grey line without markers.
        public var reference = false
        /// A fixed colour (a method's colour across plots); nil takes the next palette colour.
        public var color: String? = nil
    }

    /// No grey: grey is the reference line's.
    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#393b79", "#bcbd22", "#17becf", "#637939", "#ad494a"]
    static let (width, height, left, right, top, bottom) = (800.0, 340.0, 60.0, 260.0, 34.0, 46.0)

    static func f(_ v: Double) -> String { String(format: "%.1f", v) }

    /// A y axis (percent) from 0 to a round top above every value (+ error), at least 10 and
    /// at most 100.
    static func axis(_ maxValue: Double) -> Double {
        let m = min(max(maxValue, 10), 100)
        let step = pow(10, floor(log10(m)))
        for k in [1.0, 2, 2.5, 5, 10] where k * step >= m { return k * step }
        return 10 * step
    }

    /// `extraBottom` makes room under the plot for slanted tick labels.
    static func frame(title: String, xLabel: String, yLabel: String, yMax: Double, body: String, extraBottom: Double = 0) -> String {
        let plotW = width - left - right, plotH = height - top - bottom
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height + extraBottom))\" font-family=\"sans-serif\" font-size=\"11\">"
        s += "<text x=\"\(f(left))\" y=\"18\" font-size=\"13\" font-weight=\"bold\">\(EvalReport.escape(title))</text>"
        for i in 0...4 {
            let v = yMax * Double(i) / 4, y = top + plotH * (1 - Double(i) / 4)
            s += "<line x1=\"\(f(left))\" x2=\"\(f(left + plotW))\" y1=\"\(f(y))\" y2=\"\(f(y))\" stroke=\"#e5e5e5\"/>"
            s += "<text x=\"\(f(left - 6))\" y=\"\(f(y + 4))\" text-anchor=\"end\">\(String(format: "%g", (v * 10).rounded() / 10))</text>"
        }
        s += "<line x1=\"\(f(left))\" x2=\"\(f(left))\" y1=\"\(f(top))\" y2=\"\(f(top + plotH))\" stroke=\"#444\"/>"
        s += "<line x1=\"\(f(left))\" x2=\"\(f(left + plotW))\" y1=\"\(f(top + plotH))\" y2=\"\(f(top + plotH))\" stroke=\"#444\"/>"
        s += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height + extraBottom - 8))\" text-anchor=\"middle\">\(EvalReport.escape(xLabel))</text>"
        s += "<text transform=\"translate(14,\(f(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">\(EvalReport.escape(yLabel))</text>"
        return s + body + "</svg>"
    }

    /// Lines over the union of the series' x labels, in first-seen order, with ± error bars.
    public static func lines(title: String, xLabel: String, yLabel: String, series: [Series]) -> String {
        var xs: [String] = []
        for s in series { for p in s.points where !xs.contains(p.x) { xs.append(p.x) } }
        let yMax = axis(series.flatMap { $0.points.map { $0.y + $0.error } }.max() ?? 1)
        let plotW = width - left - right, plotH = height - top - bottom
        func px(_ x: String) -> Double { left + plotW * (xs.count > 1 ? (Double(xs.firstIndex(of: x)!) + 0.5) / Double(xs.count) : 0.5) }
        // Methods that score alike would hide one another: each is shifted a few pixels sideways.
        let plotted = series.filter { !$0.reference }.count
        var rank = 0
        func py(_ y: Double) -> Double { top + plotH * (1 - min(max(y / yMax, 0), 1)) }
        var body = ""
        for x in xs { body += "<text x=\"\(f(px(x)))\" y=\"\(f(top + plotH + 15))\" text-anchor=\"middle\">\(EvalReport.escape(x))</text>" }
        for (i, s) in series.enumerated() {
            let c = s.reference ? "#777" : s.color ?? colors[rank % colors.count]
            let dx = s.reference ? 0 : 3 * (Double(rank) - Double(plotted - 1) / 2)
            if !s.reference { rank += 1 }
            let path = s.points.map { "\(f(px($0.x) + dx)),\(f(py($0.y)))" }.joined(separator: " ")
            body += "<polyline fill=\"none\" stroke=\"\(c)\" stroke-width=\"2\"\(s.reference ? " stroke-dasharray=\"6 4\"" : "") points=\"\(path)\"/>"
            for p in s.points where !s.reference {
                let x = px(p.x) + dx
                if p.error > 0 {
                    body += "<line x1=\"\(f(x))\" x2=\"\(f(x))\" y1=\"\(f(py(p.y - p.error)))\" y2=\"\(f(py(p.y + p.error)))\" stroke=\"\(c)\"/>"
                }
                body += "<circle cx=\"\(f(x))\" cy=\"\(f(py(p.y)))\" r=\"3\" fill=\"\(c)\"><title>\(EvalReport.escape(s.name)) \(EvalReport.escape(p.x)): \(String(format: "%.2f ± %.2f", p.y, p.error))</title></circle>"
            }
            let ly = top + 8 + Double(i) * 16
            body += "<rect x=\"\(f(width - right + 12))\" y=\"\(f(ly - 8))\" width=\"12\" height=\"3\" fill=\"\(c)\"/>"
            body += "<text x=\"\(f(width - right + 30))\" y=\"\(f(ly - 3))\">\(EvalReport.escape(String(s.name.prefix(42))))</text>"
        }
        return frame(title: title, xLabel: xLabel, yLabel: yLabel, yMax: yMax, body: body)
    }

    /// One bar per label with a ± error bar.
    public static func bars(title: String, yLabel: String, bars: [(label: String, value: Double, error: Double)]) -> String {
        let yMax = axis(bars.map { $0.value + $0.error }.max() ?? 1)
        let plotW = width - left - right, plotH = height - top - bottom
        let slot = plotW / Double(max(bars.count, 1))
        // Labels wider than their slot (~6 px a character at 11 px) are slanted 30° so they do
        // not run into each other, and the picture grows to hold them.
        let longest = Double(bars.map { min($0.label.count, 28) }.max() ?? 0)
        let slanted = longest * 6 > slot * 0.95
        let extra = slanted ? max(0, longest * 6 * 0.5 + 8 - (bottom - 18)) : 0
        func py(_ y: Double) -> Double { top + plotH * (1 - min(max(y / yMax, 0), 1)) }
        var body = ""
        for (i, b) in bars.enumerated() {
            let x = left + slot * Double(i) + slot * 0.2, w = slot * 0.6, c = colors[i % colors.count]
            body += "<rect x=\"\(f(x))\" y=\"\(f(py(b.value)))\" width=\"\(f(w))\" height=\"\(f(top + plotH - py(b.value)))\" fill=\"\(c)\"><title>\(EvalReport.escape(b.label)): \(String(format: "%.2f ± %.2f", b.value, b.error))</title></rect>"
            if b.error > 0 {
                body += "<line x1=\"\(f(x + w / 2))\" x2=\"\(f(x + w / 2))\" y1=\"\(f(py(b.value - b.error)))\" y2=\"\(f(py(b.value + b.error)))\" stroke=\"#222\"/>"
            }
            let label = EvalReport.escape(String(b.label.prefix(28))), lx = f(x + w / 2), ly = f(top + plotH + 15)
            body += slanted
                ? "<text x=\"\(lx)\" y=\"\(ly)\" text-anchor=\"end\" transform=\"rotate(-30 \(lx) \(ly))\">\(label)</text>"
                : "<text x=\"\(lx)\" y=\"\(ly)\" text-anchor=\"middle\">\(label)</text>"
            body += "<text x=\"\(f(x + w / 2))\" y=\"\(f(py(b.value + b.error) - 4))\" text-anchor=\"middle\">\(String(format: "%.1f", b.value))</text>"
        }
        return frame(title: title, xLabel: "", yLabel: yLabel, yMax: yMax, body: body, extraBottom: extra)
    }
}
