import Backend
import Foundation

/// Weights in Hugging Face safetensors: one file, a folder with model.safetensors, or a folder
/// (or the index file itself) with model.safetensors.index.json naming the shards. Every shard is
/// mapped; tensors point into the mappings.
public final class SafetensorsModel: Sendable {
    public let url: URL
    public let tensors: [String: TensorInfo]
    /// `__metadata__` of the file(s); for a sharded model also the index's "metadata".
    public let metadata: [String: String]
    public let files: [MappedFile]

    static let dtypes: [String: ElementType] = ["F32": .f32, "F16": .f16, "BF16": .bf16]
    /// Dtypes the format defines that the engine does not take (so the error can say which).
    static let knownOtherDtypes: Set<String> = ["F64", "I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8", "BOOL",
                                                "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64"]

    public init(url: URL) throws {
        self.url = url
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw FormatError(url, "no such file or folder")
        }
        var index: URL?
        var single: URL?
        if isDir.boolValue {
            let one = url.appendingPathComponent("model.safetensors")
            let idx = url.appendingPathComponent("model.safetensors.index.json")
            if FileManager.default.fileExists(atPath: one.path) { single = one }
            else if FileManager.default.fileExists(atPath: idx.path) { index = idx }
            else { throw FormatError(url, "no model.safetensors or model.safetensors.index.json in this folder") }
        } else if url.lastPathComponent.hasSuffix(".json") {
            index = url
        } else {
            single = url
        }

        if let single {
            let (file, tensors, metadata) = try Self.readFile(single)
            self.files = [file]
            self.tensors = tensors
            self.metadata = metadata
            return
        }

        // Sharded: the index maps each tensor to a shard file in the same folder.
        let indexURL = index!
        let json = try JSON.parse(file: indexURL, what: "the shard index")
        guard let weightMap = json["weight_map"]?.members else {
            throw FormatError(indexURL, "missing \"weight_map\" object")
        }
        var metadata = [String: String]()
        for (k, v) in json["metadata"]?.members ?? [] {
            metadata[k] = v.string ?? v.int.map(String.init) ?? v.double.map { "\($0)" } ?? v.brief
        }
        var shardNames = [String: [String]]()  // shard file → tensors the index puts there
        for (name, v) in weightMap {
            guard let shard = v.string else {
                throw FormatError(indexURL, "weight_map entry for tensor \(printable(name)) is \(v.brief), not a file name")
            }
            // Shards live beside the index: refuse paths that would leave the folder.
            guard !shard.isEmpty, !shard.contains("/"), !shard.contains("\\"), shard != "..", shard != "." else {
                throw FormatError(indexURL, "weight_map entry for tensor \(printable(name)) names shard \(printable(shard)), which is not a file in this folder")
            }
            shardNames[shard, default: []].append(name)
        }
        let folder = indexURL.deletingLastPathComponent()
        var files = [MappedFile]()
        var tensors = [String: TensorInfo]()
        for shard in shardNames.keys.sorted() {
            let shardURL = folder.appendingPathComponent(shard)
            guard FileManager.default.fileExists(atPath: shardURL.path) else {
                throw FormatError(indexURL, "shard \(shard) listed in weight_map does not exist")
            }
            let (file, shardTensors, shardMeta) = try Self.readFile(shardURL)
            files.append(file)
            for name in shardNames[shard]! where shardTensors[name] == nil {
                throw FormatError(shardURL, "missing tensor \(name) (the index puts it in this shard)")
            }
            for (name, t) in shardTensors {
                guard tensors.updateValue(t, forKey: name) == nil else {
                    throw FormatError(shardURL, "tensor \(printable(name)) is also in another shard")
                }
            }
            metadata.merge(shardMeta) { old, _ in old }
        }
        self.files = files
        self.tensors = tensors
        self.metadata = metadata
    }

    public func tensor(_ name: String) -> TensorInfo? { tensors[name] }

    public func requireTensor(_ name: String) throws -> TensorInfo {
        guard let t = tensors[name] else { throw FormatError(url, "missing tensor \(name)") }
        return t
    }

    /// One .safetensors file: u64 header length, JSON header, data. Every entry is checked
    /// against the file before any TensorInfo is made.
    static func readFile(_ url: URL) throws -> (MappedFile, [String: TensorInfo], [String: String]) {
        let file = try MappedFile(url)
        let bytes = file.bytes
        var r = ByteReader(bytes, url: url)
        let headerLength = try r.u64("header length")
        guard headerLength <= UInt64(r.remaining) else {
            throw FormatError(url, "header length \(headerLength) runs past the end of the \(bytes.count)-byte file at byte 0")
        }
        let headerBytes = try r.take(Int(headerLength), "header")
        let dataStart = r.offset
        let dataSize = bytes.count - dataStart
        let header = try JSON.parse(headerBytes, url: url, what: "the header", base: 8)
        guard let entries = header.members else { throw FormatError(url, "the header is \(header.brief), not a JSON object") }

        var metadata = [String: String]()
        var tensors = [String: TensorInfo](minimumCapacity: entries.count)
        var ranges = [(name: String, range: Range<Int>)]()
        for (name, entry) in entries {
            if name == "__metadata__" {
                guard let m = entry.members else { throw FormatError(url, "__metadata__ is \(entry.brief), not an object") }
                for (k, v) in m {
                    guard let s = v.string else { throw FormatError(url, "__metadata__ value for \(printable(k)) is \(v.brief), not a string") }
                    metadata[k] = s
                }
                continue
            }
            let tn = "tensor \(printable(name))"
            // Names become dictionary keys: a repeated (or canonically equal) name is a damaged header.
            guard tensors[name] == nil else { throw FormatError(url, "duplicate \(tn) in the header") }
            guard let dtypeValue = entry["dtype"] else { throw FormatError(url, "\(tn): missing dtype") }
            guard let dtype = dtypeValue.string else { throw FormatError(url, "\(tn): dtype is \(dtypeValue.brief), not a string") }
            guard let type = dtypes[dtype] else {
                let what = knownOtherDtypes.contains(dtype) ? "dtype \(dtype), which is not supported" : "unknown dtype \(printable(dtype))"
                throw FormatError(url, "\(tn) has \(what) (only F32, F16, BF16)")
            }
            guard let shapeValues = entry["shape"]?.array else { throw FormatError(url, "\(tn): missing or malformed shape") }
            var shape = [Int]()
            for v in shapeValues {
                guard let d = v.int, d >= 0 else { throw FormatError(url, "\(tn): shape entry \(v.brief) is not a non-negative integer") }
                shape.append(d)
            }
            guard let offsets = entry["data_offsets"]?.array, offsets.count == 2,
                  let begin = offsets[0].int, let end = offsets[1].int else {
                throw FormatError(url, "\(tn): data_offsets must be two integers [begin, end]")
            }
            guard begin >= 0, begin <= end else {
                throw FormatError(url, "\(tn): data_offsets [\(begin), \(end)] are not an increasing pair of non-negative offsets")
            }
            guard end <= dataSize else {
                throw FormatError(url, "\(tn): data_offsets [\(begin), \(end)] run past the end of the data (\(dataSize) bytes after the \(dataStart)-byte header)")
            }
            guard let elements = checkedProduct(shape), let size = checkedMul(elements, type.blockBytes) else {
                throw FormatError(url, "\(tn): shape \(shape) overflows")
            }
            guard size == end - begin else {
                throw FormatError(url, "\(tn): shape \(shape) of \(dtype) is \(size) bytes but data_offsets [\(begin), \(end)] span \(end - begin)")
            }
            let start = dataStart + begin
            // Tensors are handed out as raw pointers that callers may bind to Float/UInt16:
            // they must be naturally aligned in the mapping (writers pad the header to 8).
            guard start % type.blockBytes == 0 else {
                throw FormatError(url, "\(tn): data at byte \(start) is not aligned to its \(type.blockBytes)-byte elements")
            }
            let data = UnsafeRawBufferPointer(rebasing: bytes[start..<start + size])
            tensors[name] = TensorInfo(name: name, type: .element(type), shape: shape, data: data, file: file)
            ranges.append((name, start..<start + size))
        }
        if let (a, b) = firstOverlap(ranges) {
            throw FormatError(url, "tensor \(printable(a)) and tensor \(printable(b)) overlap")
        }
        return (file, tensors, metadata)
    }
}

/// Writes a single .safetensors file (F32 / F16 / BF16): used for steering-vector files and tests.
public struct SafetensorsWriter {
    public var metadata: [String: String] = [:]
    private var tensors: [(name: String, type: ElementType, shape: [Int], data: [UInt8])] = []

    public init() {}

    public mutating func addTensor(_ name: String, type: ElementType, shape: [Int], bytes: [UInt8]) throws {
        guard let dtype = SafetensorsModel.dtypes.first(where: { $0.value == type })?.key else {
            throw FormatError("SafetensorsWriter: tensor \(name): type \(type.rawValue) is not F32, F16 or BF16")
        }
        guard name != "__metadata__", !tensors.contains(where: { $0.name == name }) else {
            throw FormatError("SafetensorsWriter: duplicate or reserved tensor name \(name) (\(dtype))")
        }
        guard let n = checkedProduct(shape), n * type.blockBytes == bytes.count else {
            throw FormatError("SafetensorsWriter: tensor \(name): shape \(shape) of \(dtype) needs \(checkedProduct(shape).map { $0 * type.blockBytes } ?? -1) bytes, given \(bytes.count)")
        }
        tensors.append((name, type, shape, bytes))
    }

    public mutating func addTensor(_ name: String, floats: [Float], shape: [Int]) throws {
        var bytes = [UInt8]()
        bytes.reserveCapacity(floats.count * 4)
        for f in floats { withUnsafeBytes(of: f.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        try addTensor(name, type: .f32, shape: shape, bytes: bytes)
    }

    public func serialize() throws -> Data {
        func quote(_ s: String) throws -> String { String(decoding: try JSONEncoder().encode(s), as: UTF8.self) }
        var parts = [String]()
        if !metadata.isEmpty {
            let kv = try metadata.keys.sorted().map { "\(try quote($0)):\(try quote(metadata[$0]!))" }
            parts.append("\"__metadata__\":{\(kv.joined(separator: ","))}")
        }
        // Wider elements first (as the safetensors library does), so every tensor stays aligned.
        let ordered = tensors.enumerated().sorted { ($1.element.type.blockBytes, $0.offset) < ($0.element.type.blockBytes, $1.offset) }.map(\.element)
        var offset = 0
        for t in ordered {
            let dtype = SafetensorsModel.dtypes.first(where: { $0.value == t.type })!.key
            let shape = t.shape.map(String.init).joined(separator: ",")
            parts.append("\(try quote(t.name)):{\"dtype\":\"\(dtype)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + t.data.count)]}")
            offset += t.data.count
        }
        var header = Array("{\(parts.joined(separator: ","))}".utf8)
        // Pad with spaces so the data (and every f32 tensor in it) starts 8-byte aligned.
        while (8 + header.count) % 8 != 0 { header.append(0x20) }
        var out = Data()
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: header)
        for t in ordered { out.append(contentsOf: t.data) }
        return out
    }

    public func write(to url: URL) throws {
        try OutputFile.write(serialize(), to: url)
    }
}
