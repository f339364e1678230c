import Foundation

/// A tuning count read from an environment variable (ROAST_SPLIT_K, ROAST_SUBMIT_EVERY): unset or
/// empty gives `defaultValue`, a whole number ≥ 0 that number, anything else a one-line error
/// naming the variable, what it counts and what 0 does.
func environmentCount(_ name: String, default defaultValue: Int, counting what: String, zero: String,
                      environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Int {
    guard let text = environment[name], !text.isEmpty else { return defaultValue }
    guard let n = Int(text), n >= 0 else { throw BackendError("\(name)=\(text): not a \(what) (0 \(zero))") }
    return n
}
