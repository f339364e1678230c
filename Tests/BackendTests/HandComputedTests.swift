@testable import Backend
import VulkanCompute
import XCTest

/// Both backends against values worked out by hand.
final class HandComputedTests: XCTestCase {
    /// `make test` installs lavapipe, so a missing device is a failure, not a skip.
    nonisolated(unsafe) static let vulkan = Result { try VulkanBackend(device: VulkanDevice(validation: true)) }
    var backends: [Backend] {
        get throws { [CPUBackend(), try Self.vulkan.get()] }
    }

    override func tearDown() {
        XCTAssertEqual((try? Self.vulkan.get())?.device.validationMessages ?? [], [])
    }

    func assertClose(_ a: [Float], _ b: [Float], tol: Float = 1e-6, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        for (x, y) in zip(a, b) where !(abs(x - y) <= tol) {
            return XCTFail("\(what): \(a) ≠ \(b)", file: file, line: line)
        }
    }

    func testQ4_1BlockDecodes() {
        // d = 0.5, m = -1, qs[j] = j | (15 - j) << 4.
        var block: [UInt8] = [0x00, 0x38, 0x00, 0xBC]
        block += (0..<16).map { UInt8($0) | UInt8(15 - $0) << 4 }
        let decoded = block.withUnsafeBytes { Quantization.decode($0, as: .q4_1, count: 32) }
        let low: [Float] = (0..<16).map { 0.5 * Float($0) - 1 }
        let high: [Float] = (0..<16).map { 0.5 * Float(15 - $0) - 1 }
        let expected = low + high
        XCTAssertEqual(decoded, expected)
    }

    func testQ8_0AndHalfFormatsDecode() {
        let q8: [UInt8] = [0x00, 0x34] + (0..<32).map { UInt8(bitPattern: Int8($0 - 16)) }
        XCTAssertEqual(q8.withUnsafeBytes { Quantization.decode($0, as: .q8_0, count: 32) }, (0..<32).map { 0.25 * Float($0 - 16) })
        let halfs: [UInt8] = [0x00, 0x3C, 0x00, 0xC1]  // 1.0, -2.5 in f16
        XCTAssertEqual(halfs.withUnsafeBytes { Quantization.decode($0, as: .f16, count: 2) }, [1, -2.5])
        let bf: [UInt8] = [0x80, 0x3F, 0x20, 0xC0]  // 1.0, -2.5 in bf16
        XCTAssertEqual(bf.withUnsafeBytes { Quantization.decode($0, as: .bf16, count: 2) }, [1, -2.5])
        XCTAssertEqual(Quantization.bf16Bits(1.00390625), 0x3F80)  // ties to even
    }

    func testEncodersRoundTripWithinTheFormatsPrecision() {
        var rng = SystemRandomNumberGenerator()
        let x = (0..<256).map { _ in Float.random(in: -2...2, using: &rng) }
        for (type, tol) in [(ElementType.f16, Float(1e-3)), (.bf16, 1e-2), (.q8_0, 2.0 / 127), (.q4_1, 4.0 / 15)] {
            let back = Quantization.encode(x, as: type).withUnsafeBytes { Quantization.decode($0, as: type, count: x.count) }
            assertClose(back, x, tol: tol, "\(type) round trip")
        }
    }

    func testSoftmaxOfAKnownRow() {
        assertClose(CPUBackend.softmax([1, 2, 3]), [0.09003057, 0.24472847, 0.66524096], "softmax")
        assertClose(CPUBackend.softmax([1000, 1000]), [0.5, 0.5], "softmax needs the max subtracted")
    }

    func testRopeOfAKnownVector() throws {
        // head dim 4, θ = 10,000: inverse frequencies [1, 0.01]; position 1.
        let inv: [Float] = [1, 0.01]
        let (c1, s1, c2, s2) = (cos(Float(1)), sin(Float(1)), cos(Float(0.01)), sin(Float(0.01)))
        for b in try backends {
            for (layout, expected) in [(RopeLayout.rotateHalf, [c1, -s2, s1, c2]), (.interleaved, [c1, s1, -s2, c2])] {
                let x = try b.makeTensor(floats: layout == .rotateHalf ? [1, 0, 0, 1] : [1, 0, 0, 1])
                try b.rope(x, positions: try b.makeTensor(uints: [1]), inverseFrequencies: try b.makeTensor(floats: inv),
                           tokens: 1, heads: 1, headDim: 4, rotaryDim: 4, layout: layout)
                assertClose(try b.readFloats(x), expected, "\(b.name) rope \(layout)")
            }
        }
    }

    func testRMSNormAttentionSiluTopKByHand() throws {
        for b in try backends {
            let out = try b.makeTensor(.f32, count: 2)
            try b.rmsNorm(input: try b.makeTensor(floats: [3, 4]), weight: try b.makeTensor(floats: [1, 2]), output: out,
                          rows: 1, width: 2, eps: 0)
            assertClose(try b.readFloats(out), [0.8485281, 2.2627417], "\(b.name) rmsnorm")

            // One query at position 1 over K = [[1,0],[0,1]], V = [[1,2],[3,4]]: weights [0.75, 0.25].
            let att = try b.makeTensor(.f32, count: 2)
            try b.attention(query: try b.makeTensor(floats: [log(3), 0]), keys: try b.makeTensor(floats: [1, 0, 0, 1]),
                            values: try b.makeTensor(floats: [1, 2, 3, 4]), sequenceOf: try b.makeTensor(uints: [0]),
                            positions: try b.makeTensor(uints: [1]), output: att, tokens: 1, heads: 1, kvHeads: 1, headDim: 2,
                            sequences: 1, capacity: 2, contextBound: 2, scale: 1)
            assertClose(try b.readFloats(att), [1.5, 2.5], "\(b.name) attention")

            let act = try b.makeTensor(.f32, count: 2)
            let steer = Steering(scales: try b.makeTensor(floats: [0, 0.5]), vector: try b.makeTensor(floats: [1]))
            try b.siluMul(gate: try b.makeTensor(floats: [1, 1]), up: try b.makeTensor(floats: [2, 2]), output: act,
                          rows: 2, width: 1, steering: steer)
            assertClose(try b.readFloats(act), [1.4621172, 2.4621172], "\(b.name) silu·up with steering on row 1 only")

            let tv = try b.makeTensor(.f32, count: 3), ti = try b.makeTensor(.u32, count: 3)
            try b.topK(try b.makeTensor(floats: [3, .nan, 7, 7, -1]), rows: 1, length: 5, k: 3, outValues: tv, outIndices: ti)
            XCTAssertEqual(try b.readFloats(tv), [7, 7, 3], b.name)
            XCTAssertEqual(try b.readUInts(ti), [2, 3, 0], b.name)
        }
    }

    func testSteeringTouchesOnlyTheRowsInScope() throws {
        for b in try backends {
            let h: [Float] = [1, 2, 3, 4, 5, 6]
            let x = try b.makeTensor(floats: h)
            let steer = Steering(scales: try b.makeTensor(floats: [0, 0.2, 0]), vector: try b.makeTensor(floats: [10, -10]))
            try b.add(x, nil, output: x, rows: 3, width: 2, steering: steer)
            XCTAssertEqual(try b.readFloats(x), [1, 2, 5, 2, 5, 6], "\(b.name): rows 0 and 2 must stay bit-identical")
        }
    }

    func testBadShapesFailBeforeAnyDispatch() throws {
        let v = try Self.vulkan.get()
        try v.synchronize()
        let before = v.stream.dispatchCount
        for b in try backends {
            let w = try b.makeTensor(.q4_1, count: 64, bytes: [UInt8](repeating: 0, count: 40))
            let x = try b.makeTensor(floats: [Float](repeating: 1, count: 64))
            let y = try b.makeTensor(.f32, count: 4)
            XCTAssertThrowsError(try b.matmul(weight: w, input: x, output: y, m: 1, n: 4, k: 64, kernel: .auto)) {
                XCTAssertTrue("\($0)".contains("weight has 64 elements, needs 256"), "\($0)")
            }
            XCTAssertThrowsError(try b.matmul(weight: w, input: x, output: y, m: 1, n: 2, k: 33, kernel: .auto)) {
                XCTAssertTrue("\($0)".contains("multiple of 32"), "\($0)")
            }
            XCTAssertThrowsError(try b.matmul(weight: w, input: x, output: y, m: 9, n: 1, k: 32, kernel: .vector))
            XCTAssertThrowsError(try b.rmsNorm(input: x, weight: w, output: x, rows: 1, width: 64, eps: 1e-5)) {
                XCTAssertTrue("\($0)".contains("weight is q4_1"), "\($0)")
            }
            XCTAssertThrowsError(try b.attention(query: x, keys: x, values: x, sequenceOf: y, positions: y, output: x, tokens: 1,
                                                 heads: 3, kvHeads: 2, headDim: 4, sequences: 1, capacity: 4, contextBound: 4, scale: 1))
            XCTAssertThrowsError(try b.topK(x, rows: 1, length: 64, k: 65, outValues: x, outIndices: y))
        }
        XCTAssertEqual(v.stream.dispatchCount, before)
    }
}
