import Backend
import Formats
import Foundation
@testable import Roast
import Steering
import XCTest

/// A fresh temporary folder, removed when the test ends.
func temporaryFolder(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("FuzzTests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// Runs `body`, requiring an error whose one-line message contains every fragment.
func assertRefused<T>(_ fragments: String..., line: UInt = #line, _ body: () throws -> T) {
    do {
        _ = try body()
        XCTFail("expected an error containing \(fragments)", line: line)
    } catch {
        let m = "\(error)"
        XCTAssertFalse(m.contains("\n"), "not one line: \(m)", line: line)
        XCTAssertNil(FuzzCampaign.messageProblem(m), m, line: line)
        for f in fragments { XCTAssertTrue(m.contains(f), "message lacks \"\(f)\": \(m)", line: line) }
    }
}

func metadataJSON(site: String = "residual", hidden: Int = 8, layers: [Int] = [0, 2], layerCount: Int = 4, alpha: String = "0.2") -> String {
    """
    {"format":"roast-steering-vector/1","architecture":"llama","hiddenSize":\(hidden),"intermediateSize":16,"layerCount":\(layerCount),\
    "site":"\(site)","layers":\(layers),"method":"roast","defaultAlpha":\(alpha),"date":"2026-12-04T00:00:00Z"}
    """
}

/// A safetensors vector whose header declares `tensors` (name, element count) of F32, laid out
/// back to back; the data is a hole (a sparse file), so a 4 GiB claim costs no disk.
func sparseVector(_ url: URL, metadata: String, tensors: [(String, Int)]) throws {
    var entries = ["\"__metadata__\":{\"roast\":\(String(decoding: try JSONEncoder().encode(metadata), as: UTF8.self))}"]
    var offset = 0
    for (name, n) in tensors {
        entries.append("\"\(name)\":{\"dtype\":\"F32\",\"shape\":[\(n)],\"data_offsets\":[\(offset),\(offset + 4 * n)]}")
        offset += 4 * n
    }
    var header = Array("{\(entries.joined(separator: ","))}".utf8)
    while header.count % 8 != 0 { header.append(0x20) }
    try Data(withUnsafeBytes(of: UInt64(header.count).littleEndian, Array.init) + header).write(to: url)
    let h = try FileHandle(forWritingTo: url)
    try h.truncate(atOffset: UInt64(8 + header.count + offset))
    try h.close()
}

/// A control vector with `direction.N` tensors of `width` F32 (data a hole) and the given metadata.
func sparseControlVector(_ url: URL, layers: [Int], width: Int, layerCount: Int32?) throws {
    func str(_ s: String) -> [UInt8] { withUnsafeBytes(of: UInt64(s.utf8.count).littleEndian, Array.init) + Array(s.utf8) }
    func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
    var kvs = str("general.architecture") + le(UInt32(8)) + str("controlvector")
    if let layerCount { kvs += str("controlvector.layer_count") + le(UInt32(5)) + le(layerCount) }
    var out = Array("GGUF".utf8) + le(UInt32(3)) + le(UInt64(layers.count)) + le(UInt64(layerCount == nil ? 1 : 2)) + kvs
    for (i, l) in layers.enumerated() {
        out += str("direction.\(l)") + le(UInt32(1)) + le(UInt64(width)) + le(UInt32(0)) + le(UInt64(i * 4 * width))
    }
    while out.count % 32 != 0 { out.append(0) }
    try Data(out).write(to: url)
    let h = try FileHandle(forWritingTo: url)
    try h.truncate(atOffset: UInt64(out.count + 4 * width * layers.count))
    try h.close()
}

/// Vector files are checked against their own metadata before any value is read.
final class VectorFileTests: XCTestCase {
    static let fourGiB = 1 << 30  // f32 elements

    /// Peak memory added by `body`, in bytes (Linux; 0 elsewhere).
    func peakGrowth(_ body: () -> Void) -> Int {
        let before = Memory.resetPeak()
        body()
        guard let before, let peak = Memory.peak() else { return 0 }
        return peak - before
    }

    func testFourGiBTensorFailsFastWithLowMemory() throws {
        let dir = try temporaryFolder(self)
        let cases: [(URL, [String])] = try [
            // The campaign's file: a 4 GiB layers.0 and no layers.2.
            ({ let u = dir.appendingPathComponent("a.safetensors"); try sparseVector(u, metadata: metadataJSON(), tensors: [("layers.0.residual", Self.fourGiB)]); return u }(),
             ["layer 0 has 1073741824 values; the site is 8 wide"]),
            // Metadata that claims the width too: bounded by the limits.
            ({ let u = dir.appendingPathComponent("b.safetensors"); try sparseVector(u, metadata: metadataJSON(hidden: Self.fourGiB, layers: [0]), tensors: [("layers.0.residual", Self.fourGiB)]); return u }(),
             ["the residual site is 1073741824 wide; a vector is 1 to 1048576 wide"]),
            // A tensor the metadata does not list.
            ({ let u = dir.appendingPathComponent("c.safetensors"); try sparseVector(u, metadata: metadataJSON(layers: [0]), tensors: [("layers.0.residual", 8), ("junk", Self.fourGiB)]); return u }(),
             ["tensor junk is not one of the layers"]),
            ({ let u = dir.appendingPathComponent("d.gguf"); try sparseControlVector(u, layers: [1], width: Self.fourGiB, layerCount: 1); return u }(),
             ["the residual site is 1073741824 wide"]),
        ]
        for (url, fragments) in cases {
            let start = Date()
            let growth = peakGrowth { assertRefused(fragments.joined()) { try SteeringVectorFile.read(url) } }
            XCTAssertLessThan(growth, 16 << 20, "\(url.lastPathComponent): peak memory rose by \(growth >> 20) MiB")
            XCTAssertLessThan(Date().timeIntervalSince(start), 1, url.lastPathComponent)
        }
    }

    func testNonFiniteOrAbsurdValuesAndAlphaAreRefused() throws {
        let dir = try temporaryFolder(self)
        let meta = try JSONDecoder().decode(VectorMetadata.self, from: Data(metadataJSON(layers: [1, 2]).utf8))
        for (bad, fragment) in [(Float(3.4e38), "3.4e+38"), (.infinity, "inf"), (.nan, "nan"), (-2e6, "-2000000.0")] {
            let url = dir.appendingPathComponent("v.safetensors")
            var w = SafetensorsWriter()
            w.metadata["roast"] = String(decoding: try JSONEncoder().encode(meta), as: UTF8.self)
            try w.addTensor("layers.1.residual", floats: [Float](repeating: 0.5, count: 8), shape: [8])
            try w.addTensor("layers.2.residual", floats: [0, 0, 0, bad, 0, 0, 0, 0], shape: [8])
            try w.write(to: url)
            assertRefused("layer 2: value \(fragment) at index 3") { try SteeringVectorFile.read(url) }
        }
        for alpha in ["1e30", "-1e7"] {
            let url = dir.appendingPathComponent("a.gguf")
            var m = try JSONDecoder().decode(VectorMetadata.self, from: Data(metadataJSON(layers: [1], alpha: alpha).utf8))
            m.site = .residual
            var w = GGUFWriter()
            w.set("general.architecture", .string("controlvector"))
            w.set("roast.metadata", .string(String(decoding: try JSONEncoder().encode(m), as: UTF8.self)))
            try w.addTensor("direction.1", floats: [Float](repeating: 0.5, count: 8), shape: [8])
            try w.write(to: url)
            assertRefused("defaultAlpha", "is not a finite number") { try SteeringVectorFile.read(url) }
        }
    }

    func testControlVectorLayerCountAndGapsAreRefused() throws {
        let dir = try temporaryFolder(self)
        let url = dir.appendingPathComponent("cv.gguf")
        try sparseControlVector(url, layers: [1, 2, 3], width: 8, layerCount: 3)
        XCTAssertEqual(try SteeringVectorFile.read(url).vectors.keys.sorted(), [1, 2, 3])
        try sparseControlVector(url, layers: [1, 2, 3], width: 8, layerCount: 5)
        assertRefused("controlvector.layer_count is 5, but the file holds 3 direction.N tensors") { try SteeringVectorFile.read(url) }
        try sparseControlVector(url, layers: [1, 2, 4, 5], width: 8, layerCount: 4)
        assertRefused("missing tensor direction.3 between direction.1 and direction.5") { try SteeringVectorFile.read(url) }
        try sparseControlVector(url, layers: [1, 3], width: 8, layerCount: nil)
        assertRefused("missing tensor direction.2") { try SteeringVectorFile.read(url) }
    }

    func testMetadataErrorsNameTheField() throws {
        let dir = try temporaryFolder(self)
        let url = dir.appendingPathComponent("m.safetensors")
        try sparseVector(url, metadata: metadataJSON(alpha: "\"strong\""), tensors: [("layers.0.residual", 8)])
        assertRefused("field 'defaultAlpha': expected a number, found a string \"strong\"") { try SteeringVectorFile.read(url) }
        try sparseVector(url, metadata: metadataJSON().replacingOccurrences(of: "\"layerCount\":4,", with: ""), tensors: [("layers.0.residual", 8)])
        assertRefused("missing field 'layerCount'") { try SteeringVectorFile.read(url) }
        try sparseVector(url, metadata: metadataJSON().replacingOccurrences(of: "[0, 2]", with: "[0, \"two\"]"), tensors: [("layers.0.residual", 8)])
        assertRefused("field 'layers[1]': expected an integer, found a string \"two\"") { try SteeringVectorFile.read(url) }
        try sparseVector(url, metadata: String(metadataJSON().dropLast(1)), tensors: [("layers.0.residual", 8)])
        assertRefused("the vector metadata is not valid JSON: unexpected end") { try SteeringVectorFile.read(url) }
        try sparseVector(url, metadata: metadataJSON().replacingOccurrences(of: "\"residual\"", with: "\"mlp\""), tensors: [("layers.0.residual", 8)])
        assertRefused("field 'site': the value a string \"mlp\" is not allowed") { try SteeringVectorFile.read(url) }
    }
}
