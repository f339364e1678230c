import Foundation

/// A progress bar on stderr: `[=====>     ] 12/64 label · extra · ETA 1m23s`. Redrawn in place on
/// a terminal; elsewhere (CI logs) one line per 10 %.
public final class ProgressBar {
    let label: String
    let total: Int
    let start = Date()
    let interactive = isatty(2) != 0
    var lastDecile = -1
    public var enabled = true

    public init(_ label: String, total: Int) {
        self.label = label
        self.total = max(total, 1)
    }

    public func update(_ done: Int, _ extra: String = "") {
        guard enabled else { return }
        let elapsed = Date().timeIntervalSince(start)
        let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : 0
        let width = 24
        let filled = min(width, width * done / total)
        let bar = String(repeating: "=", count: filled) + (filled < width ? ">" : "") + String(repeating: " ", count: max(0, width - filled - 1))
        let line = "\(label) [\(bar)] \(done)/\(total)\(extra.isEmpty ? "" : " · \(extra)") · \(done < total ? "ETA \(Self.duration(eta))" : "done in \(Self.duration(elapsed))")"
        if interactive {
            FileHandle.standardError.write("\r\u{1B}[2K\(line)\(done >= total ? "\n" : "")".data(using: .utf8)!)
        } else {
            let decile = done * 10 / total
            if decile != lastDecile || done >= total {
                lastDecile = decile
                FileHandle.standardError.write("\(line)\n".data(using: .utf8)!)
            }
        }
    }

    public static func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 60 ? "\(t / 60)m\(String(format: "%02d", t % 60))s" : "\(t)s"
    }
}
