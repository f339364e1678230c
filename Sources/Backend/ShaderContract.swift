import Shaders
import VulkanCompute

// The host side of the host–shader contract: one push-constant struct per kernel block (fields in
// the order and with the names of the GLSL `layout(push_constant)` block; BackendTests checks
// every name, type and offset against the SPIR-V), and the enums whose numbers the shaders share
// through Shaders/include/contract.glsl (checked against that file by the same tests).

/// The `steer` push constant of the fused kernels (GLSL STEER_*).
enum SteerMode: UInt32, CaseIterable {
    case none = 0, additive = 1, multiplicative = 2
}

/// The EPILOGUE specialization constant of the matmul kernels (GLSL EPI_*).
enum EpilogueCode: UInt32, CaseIterable {
    case store = 0, residual = 1, siluGate = 2, attentionInput = 3
    /// Epilogues that combine rows 2j and 2j + 1 (a gate and its up; a RoPE pair).
    var pairsRows: Bool { self == .siluGate || self == .attentionInput }
}

/// The attnFlags push constant of EPI_ATTN_INPUT (GLSL ATTN_*).
struct AttentionInputFlags: OptionSet {
    let rawValue: UInt32
    static let bias = AttentionInputFlags(rawValue: 1)
    static let rope = AttentionInputFlags(rawValue: 2)
    static let rows = AttentionInputFlags(rawValue: 4)
}

/// The STEER_TABLE flag on a SteerMode: `v` is a table, row r uses table row vrows[r].
let steerTableFlag: UInt32 = 4

extension Steering {
    var steerMode: SteerMode { multiplicative ? .multiplicative : .additive }
    /// The `steer` push constant: the mode, and the table flag when rows pick their vector.
    var steerWord: UInt32 { steerMode.rawValue | (vectorRows == nil ? 0 : steerTableFlag) }
}

enum ShaderContract {
    /// Every constant of Shaders/include/contract.glsl, from the Swift side.
    static var glslConstants: [String: UInt32] {
        var c: [String: UInt32] = [:]
        for f in ElementType.weightFormats { c["FMT_" + f.rawValue.uppercased()] = f.shaderFormat }
        for s in SteerMode.allCases {
            c[["STEER_NONE", "STEER_ADD", "STEER_MUL"][Int(s.rawValue)]] = s.rawValue
        }
        c["STEER_TABLE"] = steerTableFlag
        for (name, e) in [("EPI_STORE", EpilogueCode.store), ("EPI_RESIDUAL", .residual), ("EPI_SILU_GATE", .siluGate),
                          ("EPI_ATTN_INPUT", .attentionInput)] { c[name] = e.rawValue }
        for (name, f) in [("ATTN_BIAS", AttentionInputFlags.bias), ("ATTN_ROPE", .rope), ("ATTN_ROWS", .rows)] { c[name] = f.rawValue }
        for (name, l) in [("ROPE_ROTATE_HALF", RopeLayout.rotateHalf), ("ROPE_INTERLEAVED", .interleaved)] { c[name] = l.rawValue }
        return c
    }
}

// MARK: push-constant blocks

/// matvec.comp, matmul.comp, matvec_gpu.comp, matmul_gpu.comp, matmul_coopmat.comp: Y[m, yOffset + n] = Σ_k W[n, k]·X[m, k];
/// matmul_reduce.comp: the sum of a split-K product's slices, through the epilogue.
struct MatmulPush: PushConstants {
    var K: UInt32
    var N: UInt32
    var M: UInt32
    var yOffset: UInt32
    /// Output row stride (epilogue.glsl).
    var ldy: UInt32
    var steer: UInt32
    /// The first column of this dispatch in the whole step.
    var mBase: UInt32
    var captureGate: UInt32
    var kvWidth: UInt32
    var headDim: UInt32
    var attnFlags: UInt32
    /// The fused input norm's epsilon (vector kernels).
    var eps: Float
    /// Split-K (the tiled kernels' SPLIT = 1): K elements per slice; slice z is workgroup z.
    var kSlice: UInt32 = 0
    /// matmul_reduce.comp: the partial sums it adds per output.
    var slices: UInt32 = 0
}

/// embedding.comp.
struct EmbeddingPush: PushConstants {
    var K: UInt32
    var T: UInt32
    var rowStart: UInt32
    var rowCount: UInt32
}

/// scatter_rows.comp.
struct ScatterRowsPush: PushConstants {
    var W: UInt32
    var T: UInt32
}

/// rmsnorm.comp.
struct RMSNormPush: PushConstants {
    var D: UInt32
    var R: UInt32
    var eps: Float
}

/// rope.comp.
struct RopePush: PushConstants {
    var T: UInt32
    var H: UInt32
    var D: UInt32
    var rotDim: UInt32
    var layout_: UInt32
}

/// attention.comp and attention_flash.comp (the same block).
struct AttentionPush: PushConstants {
    var T: UInt32
    var Hq: UInt32
    var Hkv: UInt32
    var D: UInt32
    /// KV-cache capacity per sequence.
    var C: UInt32
    var nChunks: UInt32
    var scale: Float
    /// 1: one chunk, the kernel writes the normalised output itself.
    var direct: UInt32
}

/// attention_combine.comp.
struct AttentionCombinePush: PushConstants {
    var T: UInt32
    var Hq: UInt32
    var D: UInt32
    var nChunks: UInt32
}

/// silu_mul.comp.
struct SiluMulPush: PushConstants {
    var I: UInt32
    var R: UInt32
    var steer: UInt32
}

/// add.comp.
struct AddPush: PushConstants {
    var W: UInt32
    var R: UInt32
    var hasB: UInt32
    var steer: UInt32
}

/// topk.comp, topk_gpu.comp.
struct TopKPush: PushConstants {
    var L: UInt32
    var R: UInt32
    var k: UInt32
    var ldv: UInt32
    var nChunks: UInt32
    var hasIdx: UInt32
}

/// softmax_head.comp.
struct SoftmaxHeadPush: PushConstants {
    var L: UInt32
    var R: UInt32
    var cap: UInt32
    var bins: UInt32
}

/// Each kernel's SPIR-V with the push struct the host gives it (for the contract tests).
enum PushContracts {
    static var all: [(kernel: String, spirv: [UInt32], push: any PushConstants)] {
        let mm = MatmulPush(K: 0, N: 0, M: 0, yOffset: 0, ldy: 0, steer: 0, mBase: 0, captureGate: 0, kvWidth: 0, headDim: 0,
                            attnFlags: 0, eps: 0)
        return [
            ("matvec", SPIRV.matvec, mm), ("matmul", SPIRV.matmul, mm),
            ("matvec_gpu", SPIRV.matvec_gpu, mm), ("matmul_gpu", SPIRV.matmul_gpu, mm), ("matmul_coopmat", SPIRV.matmul_coopmat, mm),
            ("matmul_coopmat_emulated", SPIRV.matmul_coopmat_emulated, mm), ("matmul_reduce", SPIRV.matmul_reduce, mm),
            ("embedding", SPIRV.embedding, EmbeddingPush(K: 0, T: 0, rowStart: 0, rowCount: 0)),
            ("scatter_rows", SPIRV.scatter_rows, ScatterRowsPush(W: 0, T: 0)),
            ("rmsnorm", SPIRV.rmsnorm, RMSNormPush(D: 0, R: 0, eps: 0)),
            ("rope", SPIRV.rope, RopePush(T: 0, H: 0, D: 0, rotDim: 0, layout_: 0)),
            ("attention", SPIRV.attention, AttentionPush(T: 0, Hq: 0, Hkv: 0, D: 0, C: 0, nChunks: 0, scale: 0, direct: 0)),
            ("attention_flash", SPIRV.attention_flash, AttentionPush(T: 0, Hq: 0, Hkv: 0, D: 0, C: 0, nChunks: 0, scale: 0, direct: 0)),
            ("attention_combine", SPIRV.attention_combine, AttentionCombinePush(T: 0, Hq: 0, D: 0, nChunks: 0)),
            ("silu_mul", SPIRV.silu_mul, SiluMulPush(I: 0, R: 0, steer: 0)),
            ("add", SPIRV.add, AddPush(W: 0, R: 0, hasB: 0, steer: 0)),
            ("topk", SPIRV.topk, TopKPush(L: 0, R: 0, k: 0, ldv: 0, nChunks: 0, hasIdx: 0)),
            ("topk_gpu", SPIRV.topk_gpu, TopKPush(L: 0, R: 0, k: 0, ldv: 0, nChunks: 0, hasIdx: 0)),
            ("softmax_head", SPIRV.softmax_head, SoftmaxHeadPush(L: 0, R: 0, cap: 0, bins: 0)),
        ]
    }
}
