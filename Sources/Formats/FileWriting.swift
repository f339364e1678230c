import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Writing output files: atomically (a temporary file renamed into place, so a failure leaves any
/// existing file untouched), and every failure one line naming the path.
public enum OutputFile {
    /// Writes `data` to `url` atomically.
    public static func write(_ data: Data, to url: URL) throws {
        try checkFolder(of: url)
        do { try data.write(to: url, options: .atomic) } catch {
            throw FormatError(url, "cannot write: \(reason(error))")
        }
    }

    /// Creates `url` as a folder (and its parents) unless it exists; fails naming it.
    public static func makeFolder(_ url: URL) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw FormatError(url, "cannot create the folder: a file of that name exists") }
            return
        }
        do { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) } catch {
            throw FormatError(url, "cannot create the folder: \(reason(error))")
        }
    }

    /// The folder a file goes in must exist: Foundation's own message would not say which.
    static func checkFolder(of url: URL) throws {
        let folder = url.deletingLastPathComponent()
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDir) else {
            throw FormatError(url, "cannot write: the folder \(folder.path) does not exist")
        }
        guard isDir.boolValue else { throw FormatError(url, "cannot write: \(folder.path) is not a folder") }
    }

    /// The POSIX reason behind a Foundation file error where there is one, else its text.
    public static func reason(_ error: Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
        if ns.domain == NSCocoaErrorDomain, let posix = cocoaToPOSIX[ns.code] { return String(cString: strerror(posix)) }
        return "error \(ns.code) (\(ns.domain))"
    }

    /// Foundation's file error codes (NSFileReadNoSuchFileError, …) by the POSIX error they stand for.
    static let cocoaToPOSIX: [Int: Int32] = [4: ENOENT, 260: ENOENT, 257: EACCES, 513: EACCES, 640: ENOSPC, 642: EROFS, 516: EEXIST]
}
