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

    /// Decodes `block` (one block of `type`, `k` elements) with the CPU twin and, stored twice so
    /// the second copy sits at the other 4-byte alignment when the block size is 2 mod 4, with the
    /// shaders: the embedding gather (element decoder) and both matmul kernels against unit
    /// vectors (run decoder). Every path must give exactly `expected`.
    func assertBlockDecodes(_ type: ElementType, _ block: [UInt8], k: Int, _ expected: [Float],
                            file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(block.count, type.blockBytes, file: file, line: line)
        XCTAssertEqual(block.withUnsafeBytes { Quantization.decode($0, as: type, count: k) }, expected, "\(type) CPU decode",
                       file: file, line: line)
        for b in try backends {
            let w = try b.makeTensor(type, count: 2 * k, bytes: block + block)
            let out = try b.makeTensor(.f32, count: 2 * k)
            try b.embedding(table: w, ids: try b.makeTensor(uints: [1, 0]), output: out, tokens: 2, rows: 2, width: k)
            XCTAssertEqual(try b.readFloats(out), expected + expected, "\(b.name) \(type) embedding", file: file, line: line)

            // Y[m, n] = W[n, m] for the identity X (tiled kernel, every element of both rows).
            var identity = [Float](repeating: 0, count: k * k)
            for i in 0..<k { identity[i * k + i] = 1 }
            let y = try b.makeTensor(.f32, count: 2 * k)
            try b.matmul(weight: w, input: try b.makeTensor(floats: identity), output: y, m: k, n: 2, k: k, kernel: .tiled)
            let interleaved = expected.flatMap { [$0, $0] }
            XCTAssertEqual(try b.readFloats(y), interleaved, "\(b.name) \(type) tiled matmul", file: file, line: line)

            // Eight unit vectors through the matrix × vector kernel.
            let picks = [0, 1, k / 2 - 1, k / 2, k / 2 + 1, k - 17, k - 16, k - 1]
            var units = [Float](repeating: 0, count: 8 * k)
            for (j, p) in picks.enumerated() { units[j * k + p] = 1 }
            let yv = try b.makeTensor(.f32, count: 16)
            try b.matmul(weight: w, input: try b.makeTensor(floats: units), output: yv, m: 8, n: 2, k: k, kernel: .vector)
            XCTAssertEqual(try b.readFloats(yv), picks.flatMap { [expected[$0], expected[$0]] }, "\(b.name) \(type) matvec",
                           file: file, line: line)
        }
    }

    func testQ4_0BlockDecodes() throws {
        // d = 0.5, qs[j] = j | (15 - j) << 4: element j < 16 is 0.5·(j − 8), element 16 + j is 0.5·(7 − j).
        let block: [UInt8] = [0x00, 0x38] + (0..<16).map { UInt8($0) | UInt8(15 - $0) << 4 }
        let expected: [Float] = (0..<16).map { 0.5 * Float($0 - 8) } + (0..<16).map { 0.5 * Float(7 - $0) }
        XCTAssertEqual(expected[0], -4)
        XCTAssertEqual(expected[31], -4)
        XCTAssertEqual(expected[16], 3.5)
        try assertBlockDecodes(.q4_0, block, k: 32, expected)
    }

    func testQ4_KSuperBlockDecodes() throws {
        // d = 0.5, dmin = 0.25; sub-block scales sc = [1, 2, 3, 4, 17, 33, 50, 63] and
        // mins m = [0, 1, 2, 3, 20, 40, 5, 63], packed by hand as get_scale_min_k4 reads them:
        //   bytes 0–3:  sc[j] | (sc[j+4] >> 4) << 6   = 1|1<<6, 2|2<<6, 3|3<<6, 4|3<<6
        //   bytes 4–7:  m[j]  | (m[j+4] >> 4) << 6    = 0|1<<6, 1|2<<6, 2|0<<6, 3|3<<6
        //   bytes 8–11: (sc[j+4] & 15) | (m[j+4] & 15) << 4 = 1|4<<4, 1|8<<4, 2|5<<4, 15|15<<4
        // qs[i] = (i % 16) | (15 − i % 16) << 4; sub-block 2p + h reads qs[32p …] (h = 0 low, 1 high nibbles).
        let scales: [UInt8] = [0x41, 0x82, 0xC3, 0xC4, 0x40, 0x81, 0x02, 0xC3, 0x41, 0x81, 0x52, 0xFF]
        let qs: [UInt8] = (0..<128).map { UInt8($0 % 16) | UInt8(15 - $0 % 16) << 4 }
        let block: [UInt8] = [0x00, 0x38, 0x00, 0x34] + scales + qs
        let sc: [Float] = [1, 2, 3, 4, 17, 33, 50, 63], mn: [Float] = [0, 1, 2, 3, 20, 40, 5, 63]
        let expected: [Float] = (0..<256).map { (e: Int) -> Float in
            let p = e / 64, h = e / 32 % 2
            let q: UInt8 = qs[32 * p + e % 32]
            let nib = Float(h == 0 ? q & 15 : q >> 4)
            return 0.5 * sc[2 * p + h] * nib - 0.25 * mn[2 * p + h]
        }
        // Worked by hand: element 33 = sub-block 1, high nibble of qs[1] = 14: 0.5·2·14 − 0.25·1;
        // 130 = sub-block 4, low nibble of qs[66] = 2: 0.5·17·2 − 0.25·20; 180 = sub-block 5, high
        // nibble of qs[84] = 11: 0.5·33·11 − 0.25·40; 200 = sub-block 6, low nibble of qs[104] = 8;
        // 255 = sub-block 7, high nibble of qs[127] = 0.
        XCTAssertEqual([0, 33, 130, 180, 191, 200, 255].map { expected[$0] }, [0, 13.75, 12, 171.5, -10, 198.75, -15.75])
        try assertBlockDecodes(.q4_k, block, k: 256, expected)
    }

    func testQ6_KSuperBlockDecodes() throws {
        // ql[i] = i, qh[i] = 37·i mod 256, scales[g] = ±(g + 1) (negative for odd g), d = 0.5.
        // Element e: h = e / 128, q = e % 128 / 32, l = e % 32; nibble of ql[64h + 32(q & 1) + l]
        // (low for q < 2), 2 bits 2q of qh[32h + l] on top, minus 32, times d · scales[8h + l/16 + 2q].
        let ql: [UInt8] = (0..<128).map { UInt8($0) }
        let qh: [UInt8] = (0..<64).map { UInt8(($0 * 37) & 0xFF) }
        let sc: [Int8] = (0..<16).map { (g: Int) -> Int8 in Int8(g % 2 == 0 ? g + 1 : -(g + 1)) }
        let scBytes: [UInt8] = sc.map { UInt8(bitPattern: $0) }
        let block: [UInt8] = ql + qh + scBytes + [0x00, 0x38]
        let expected: [Float] = (0..<256).map { (e: Int) -> Float in
            let h = e / 128, q = e % 128 / 32, l = e % 32
            let lq: UInt8 = ql[64 * h + 32 * (q & 1) + l]
            let nib = Int(q < 2 ? lq & 15 : lq >> 4)
            let hi = Int(qh[32 * h + l] >> UInt8(2 * q)) & 3
            let scale = Float(sc[8 * h + l / 16 + 2 * q])
            return 0.5 * scale * Float((nib | (hi << 4)) - 32)
        }
        // Worked by hand: e = 40: ql[40] = 0x28 → 8, qh[8] = 40 → bits 2–3 = 2: 40 − 32 = 8, scale 3;
        // e = 120: ql[56] = 0x38 → high 3, qh[24] = 120 → bits 6–7 = 1: 19 − 32, scale −8;
        // e = 150: ql[86] = 0x56 → 6, qh[54] = 206 → bits 0–1 = 2: 38 − 32, scale −10;
        // e = 255: ql[127] = 0x7F → high 7, qh[63] = 27 → bits 6–7 = 0: 7 − 32, scale −16.
        XCTAssertEqual([0, 40, 120, 150, 255].map { expected[$0] }, [-16, 12, 52, -30, 200])
        try assertBlockDecodes(.q6_k, block, k: 256, expected)
    }

    func testKQuantsNeedWholeSuperBlocks() throws {
        let v = try Self.vulkan.get()
        try v.synchronize()
        let before = v.stream.dispatchCount
        for b in try backends {
            for type in [ElementType.q4_k, .q6_k] {
                let w = try b.makeTensor(type, count: 512, bytes: [UInt8](repeating: 0, count: 2 * type.blockBytes))
                let x = try b.makeTensor(floats: [Float](repeating: 1, count: 512))
                let y = try b.makeTensor(.f32, count: 8)
                XCTAssertThrowsError(try b.matmul(weight: w, input: x, output: y, m: 1, n: 4, k: 128, kernel: .auto)) {
                    XCTAssertTrue("\($0)".contains("multiple of 256"), "\($0)")
                }
                XCTAssertThrowsError(try b.embedding(table: w, ids: try b.makeTensor(uints: [0]), output: x, tokens: 1, rows: 2,
                                                     width: 96)) {
                    XCTAssertTrue("\($0)".contains("multiple of 256"), "\($0)")
                }
            }
        }
        XCTAssertEqual(v.stream.dispatchCount, before)
    }

    func testEncodersRoundTripWithinTheFormatsPrecision() {
        var rng = SystemRandomNumberGenerator()
        let x = (0..<512).map { _ in Float.random(in: -2...2, using: &rng) }
        for (type, tol) in [(ElementType.f16, Float(1e-3)), (.bf16, 1e-2), (.q8_0, 2.0 / 127), (.q4_1, 4.0 / 15),
                            (.q4_0, 2.0 / 8 + 1e-2), (.q4_k, 0.2), (.q6_k, 0.1)] {
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

            // One query at position 1 over K = [[1,0,0,0],[0,1,0,0]], V = [[1,2,5,6],[3,4,7,8]]:
            // weights [0.75, 0.25].
            let att = try b.makeTensor(.f32, count: 4)
            try b.attention(query: try b.makeTensor(floats: [log(3), 0, 0, 0]), keys: try b.makeTensor(floats: [1, 0, 0, 0, 0, 1, 0, 0]),
                            values: try b.makeTensor(floats: [1, 2, 5, 6, 3, 4, 7, 8]), sequenceOf: try b.makeTensor(uints: [0]),
                            positions: try b.makeTensor(uints: [1]), output: att, tokens: 1, heads: 1, kvHeads: 1, headDim: 4,
                            sequences: 1, capacity: 2, contextBound: 2, scale: 1)
            assertClose(try b.readFloats(att), [1.5, 2.5, 5.5, 6.5], "\(b.name) attention")
            // The Vulkan kernel reads heads in quads: a head of 2 dimensions is refused, not misread.
            if b is VulkanBackend {
                let x = try b.makeTensor(floats: [1, 0, 0, 1]), ids = try b.makeTensor(uints: [0])
                XCTAssertThrowsError(try b.attention(query: x, keys: x, values: x, sequenceOf: ids, positions: ids, output: x, tokens: 1,
                                                     heads: 1, kvHeads: 1, headDim: 2, sequences: 1, capacity: 2, contextBound: 1, scale: 1)) {
                    XCTAssertTrue("\($0)".contains("multiple of 4"), "\($0)")
                }
            }

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

    /// Row [0, ln 2, NaN, −inf] at temperature 1: M = ln 2, S = e^(−ln 2) + 1 = 1.5, and both
    /// real entries in the first nat ((ln 2 − 0) · 1 ≈ 0.69); at temperature ½: S = e^(−2 ln 2) +
    /// 1 = 1.25, and 0 in the second nat (≈ 1.39). A row of NaN and −inf only: (−inf, 0), no head.
    func testSoftmaxHeadByHand() throws {
        for b in try backends {
            let row: [Float] = [0, log(2), .nan, -.infinity]
            let values = try b.makeTensor(floats: row + row + [.nan, -.infinity, .nan, -.infinity])
            let temperatures = try b.makeTensor(floats: [1, 2, 1])
            let out = try b.makeTensor(.u32, count: 3 * SoftmaxHead.words(capacity: 2))
            try b.softmaxHead(values, rows: 3, length: 4, inverseTemperatures: temperatures, maxWindow: 4, capacity: 2, output: out)
            var h = SoftmaxHead.decode(try b.readUInts(out), rows: 3, capacity: 2)
            assertClose([h[0].rowMax, h[1].rowMax, h[0].normaliser, h[1].normaliser], [log(2), log(2), 1.5, 1.25], "\(b.name) stats")
            XCTAssertEqual(h.map(\.count), [2, 2, 0], b.name)
            XCTAssertEqual(h.map(\.window), [4, 4, 4], b.name)
            XCTAssertEqual(h[1].entries.map(\.index), [1, 0], "\(b.name) ranked")
            XCTAssertEqual([h[2].rowMax, h[2].normaliser], [-.infinity, 0], "\(b.name) a row with no real entry")
            // Room for one entry: row 0's first nat holds two (no head, its count says why);
            // row 1's head narrows to its first nat.
            let small = try b.makeTensor(.u32, count: 2 * SoftmaxHead.words(capacity: 1))
            try b.softmaxHead(values, rows: 2, length: 4, inverseTemperatures: temperatures, maxWindow: 4, capacity: 1, output: small)
            h = SoftmaxHead.decode(try b.readUInts(small), rows: 2, capacity: 1)
            XCTAssertEqual(h.map(\.count), [2, 1], b.name)
            XCTAssertEqual(h.map(\.window), [0, 1], b.name)
            XCTAssertEqual(h.map(\.isComplete), [false, true], b.name)
            XCTAssertEqual(h[1].entries, [SoftmaxHead.Entry(value: log(2), index: 1)], b.name)
            XCTAssertThrowsError(try b.softmaxHead(values, rows: 4, length: 4, inverseTemperatures: try b.makeTensor(floats: [1, 1, 1, 1]),
                                                   maxWindow: 4, capacity: 2, output: out)) {
                XCTAssertTrue("\($0)".contains("values"), "\($0)")
            }
            XCTAssertThrowsError(try b.softmaxHead(values, rows: 1, length: 4, inverseTemperatures: temperatures, maxWindow: 33, capacity: 2,
                                                   output: out)) {
                XCTAssertTrue("\($0)".contains("exceeds 32"), "\($0)")
            }
        }
    }

    func testMultiplicativeMaskSteeringByHand() throws {
        for b in try backends {
            // SADI: h + δ·(m ⊙ h), δ = 0 on row 0, 0.5 on row 1, mask (1, 0).
            let x = try b.makeTensor(floats: [1, 2, 3, 4])
            let mask = Steering(scales: try b.makeTensor(floats: [0, 0.5]), vector: try b.makeTensor(floats: [1, 0]), multiplicative: true)
            try b.add(x, nil, output: x, rows: 2, width: 2, steering: mask)
            XCTAssertEqual(try b.readFloats(x), [1, 2, 4.5, 4], b.name)
            let act = try b.makeTensor(.f32, count: 2)
            let m1 = Steering(scales: try b.makeTensor(floats: [0, 0.5]), vector: try b.makeTensor(floats: [1]), multiplicative: true)
            try b.siluMul(gate: try b.makeTensor(floats: [1, 1]), up: try b.makeTensor(floats: [2, 2]), output: act, rows: 2, width: 1, steering: m1)
            assertClose(try b.readFloats(act), [1.4621172, 2.1931758], "\(b.name) silu·up with a multiplicative mask")
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

    /// Each row its own vector from a table (`vectorRows`): the add, SiLU·up and the residual
    /// epilogue of both matmul kernels, on both backends; bad tables are refused.
    func testPerRowVectorTableByHand() throws {
        for b in try backends {
            let table = try b.makeTensor(floats: [10, 20, 30, 40]), rows = try b.makeTensor(uints: [1, 0, 1])
            let steer = Steering(scales: try b.makeTensor(floats: [1, 0.5, 0]), vector: table, vectorRows: rows)
            let want: [Float] = [31, 42, 8, 14, 5, 6] // row 0 + 1·(30, 40), row 1 + 0.5·(10, 20), row 2 untouched
            let x = try b.makeTensor(floats: [1, 2, 3, 4, 5, 6])
            try b.add(x, nil, output: x, rows: 3, width: 2, steering: steer)
            XCTAssertEqual(try b.readFloats(x), want, "\(b.name) add")
            for kind in [MatmulKernel.vector, .tiled] {
                // W picks the first two of four inputs: y = r + x[0..<2] + steering.
                let w = try b.makeTensor(floats: [1, 0, 0, 0, 0, 1, 0, 0]), r = try b.makeTensor(floats: [0, 0, 0, 0, 0, 0])
                let xin = try b.makeTensor(floats: [1, 2, 0, 0, 3, 4, 0, 0, 5, 6, 0, 0])
                try b.matmul(weight: w, input: xin, output: r, m: 3, n: 2, k: 4, kernel: kind,
                             epilogue: .addResidual(r, steering: steer))
                XCTAssertEqual(try b.readFloats(r), want, "\(b.name) \(kind) residual epilogue")
            }
            let act = try b.makeTensor(.f32, count: 3)
            let one = Steering(scales: try b.makeTensor(floats: [1, 1, 0]), vector: try b.makeTensor(floats: [0.5, -1]), vectorRows: rows)
            try b.siluMul(gate: try b.makeTensor(floats: [0, 0, 0]), up: try b.makeTensor(floats: [2, 2, 2]), output: act, rows: 3, width: 1,
                          steering: one)
            XCTAssertEqual(try b.readFloats(act), [-2, 1, 0], "\(b.name) silu·up: (silu(0) + v[row]) · 2")
            let ragged = Steering(scales: try b.makeTensor(floats: [1, 1, 1]), vector: try b.makeTensor(floats: [1, 2, 3]), vectorRows: rows)
            XCTAssertThrowsError(try b.add(x, nil, output: x, rows: 3, width: 2, steering: ragged)) {
                XCTAssertTrue("\($0)".contains("not whole rows of 2"), "\($0)")
            }
        }
        let cpu = CPUBackend()
        let past = Steering(scales: try cpu.makeTensor(floats: [1]), vector: try cpu.makeTensor(floats: [1, 2]), vectorRows: try cpu.makeTensor(uints: [2]))
        let y = try cpu.makeTensor(floats: [0, 0])
        XCTAssertThrowsError(try cpu.add(y, nil, output: y, rows: 1, width: 2, steering: past)) {
            XCTAssertEqual("\($0)", "steering: row 0 asks for vector 2 of a table of 1")
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
