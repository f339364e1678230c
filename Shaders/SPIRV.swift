import Foundation

/// The SPIR-V of every kernel in this folder, compiled at build time by the CompileShaders
/// plugin: one `public static let <file name>: [UInt32]` per `.comp` file.
public enum SPIRV {
    static func decode(_ base64: String) -> [UInt32] {
        let data = Data(base64Encoded: base64)!
        return data.withUnsafeBytes { raw in
            (0..<(data.count / 4)).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self) }
        }
    }
}
