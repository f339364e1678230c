import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole file mapped read-only into memory. Weights are never copied: tensors point into this
/// mapping, and the kernel pages them in on demand. Unmapped when the last reference goes away
/// (every `TensorInfo` taken from a file keeps a reference to it).
public final class MappedFile: @unchecked Sendable {  // immutable after init; the mapping is read-only
    public let url: URL
    public let bytes: UnsafeRawBufferPointer

    public init(_ url: URL) throws {
        self.url = url
        let fd = open(url.path, O_RDONLY)
        guard fd >= 0 else {
            throw FormatError(url, "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw FormatError(url, "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw FormatError(url, "not a regular file")
        }
        let size = Int(st.st_size)
        guard size > 0 else {
            // mmap of length 0 fails; an empty file is simply an empty buffer (parsers reject it).
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw FormatError(url, "cannot map \(size) bytes: \(String(cString: strerror(errno)))")
        }
        bytes = UnsafeRawBufferPointer(start: p, count: size)
    }

    deinit {
        if let base = bytes.baseAddress {
            munmap(UnsafeMutableRawPointer(mutating: base), bytes.count)
        }
    }
}
