/// Shape and type checks shared by every backend, run before an op does anything.
enum OpCheck {
    static func tensor(_ t: Tensor, _ role: String, of op: String, types: [ElementType], atLeast count: Int, backend: AnyObject) throws {
        guard t.backendID == ObjectIdentifier(backend) else {
            throw BackendError("\(op): \(role) belongs to another backend")
        }
        guard types.contains(t.type) else {
            throw BackendError("\(op): \(role) is \(t.type.rawValue), expected \(types.map(\.rawValue).joined(separator: " or "))")
        }
        guard t.count >= count else {
            throw BackendError("\(op): \(role) has \(t.count) elements, needs \(count)")
        }
    }

    static func positive(_ values: [(String, Int)], of op: String) throws {
        for (name, v) in values where v <= 0 { throw BackendError("\(op): \(name) must be positive, got \(v)") }
    }

    static func matmul(_ w: Tensor, _ x: Tensor, _ y: Tensor, m: Int, n: Int, k: Int, kernel: MatmulKernel,
                       inputNorm: InputNorm?, epilogue: MatmulEpilogue, backend: AnyObject) throws {
        if let norm = inputNorm { try tensor(norm.weight, "input norm weight", of: "matmul", types: [.f32], atLeast: k, backend: backend) }
        try positive([("m", m), ("n", n), ("k", k)], of: "matmul")
        if k % w.type.blockElements != 0 {
            throw BackendError("matmul: \(w.type.rawValue) weights come in blocks of \(w.type.blockElements), so k must be a multiple of \(w.type.blockElements), got \(k)")
        }
        let width = epilogue.width(n: n)
        try tensor(w, "weight", of: "matmul", types: ElementType.weightFormats, atLeast: n * k, backend: backend)
        try tensor(x, "input", of: "matmul", types: [.f32], atLeast: m * k, backend: backend)
        try tensor(y, "output", of: "matmul", types: [.f32], atLeast: m * width, backend: backend)
        switch epilogue {
        case .store: break
        case .addResidual(let r, let steering):
            try rowwise("matmul (residual add)", [(r, "residual", m * n)], rows: m, width: n, steering: steering, backend: backend)
        case .siluGate(let steering, let gate):
            guard n % 2 == 0 else { throw BackendError("matmul (SiLU gate): \(n) rows are not gate/up pairs") }
            try rowwise("matmul (SiLU gate)", gate.map { [($0, "gate output", m * width)] } ?? [], rows: m, width: width,
                        steering: steering, backend: backend)
        case .attentionInputs(let a):
            let op = "matmul (attention inputs)"
            try positive([("queryWidth", a.queryWidth), ("kvWidth", a.kvWidth), ("headDim", a.headDim)], of: op)
            guard n == a.queryWidth + 2 * a.kvWidth else {
                throw BackendError("\(op): \(n) rows are not q (\(a.queryWidth)) + k and v (\(a.kvWidth) each)")
            }
            guard a.headDim % 4 == 0, a.queryWidth % a.headDim == 0, a.kvWidth % a.headDim == 0 else {
                throw BackendError("\(op): widths \(a.queryWidth) / \(a.kvWidth) are not whole heads of \(a.headDim), a multiple of 4")
            }
            if let b = a.bias { try tensor(b, "bias", of: op, types: [.f32], atLeast: n, backend: backend) }
            if let t = a.ropeTable { try tensor(t, "RoPE table", of: op, types: [.f32], atLeast: m * a.headDim, backend: backend) }
            if let r = a.rows {
                try tensor(r, "rows", of: op, types: [.u32], atLeast: m, backend: backend)
                try tensor(a.keys, "keys", of: op, types: [.f32], atLeast: a.kvWidth, backend: backend)
                try tensor(a.values, "values", of: op, types: [.f32], atLeast: a.kvWidth, backend: backend)
            } else {
                try tensor(a.keys, "keys", of: op, types: [.f32], atLeast: m * a.kvWidth, backend: backend)
                try tensor(a.values, "values", of: op, types: [.f32], atLeast: m * a.kvWidth, backend: backend)
            }
        }
    }

    static func embedding(_ w: Tensor, _ ids: Tensor, _ out: Tensor, tokens: Int, rows: Int, width: Int, backend: AnyObject) throws {
        try positive([("tokens", tokens), ("rows", rows), ("width", width)], of: "embedding")
        if width % w.type.blockElements != 0 {
            throw BackendError("embedding: \(w.type.rawValue) tables come in blocks of \(w.type.blockElements), so the width must be a multiple of \(w.type.blockElements), got \(width)")
        }
        try tensor(w, "table", of: "embedding", types: ElementType.weightFormats, atLeast: rows * width, backend: backend)
        try tensor(ids, "ids", of: "embedding", types: [.u32], atLeast: tokens, backend: backend)
        try tensor(out, "output", of: "embedding", types: [.f32], atLeast: tokens * width, backend: backend)
    }

    static func rowwise(_ op: String, _ tensors: [(Tensor, String, Int)], rows: Int, width: Int, steering: Steering?, backend: AnyObject) throws {
        try positive([("rows", rows), ("width", width)], of: op)
        for (t, role, count) in tensors { try tensor(t, role, of: op, types: [.f32], atLeast: count, backend: backend) }
        if let s = steering {
            try tensor(s.scales, "steering scales", of: op, types: [.f32], atLeast: rows, backend: backend)
            try tensor(s.vector, "steering vector", of: op, types: [.f32], atLeast: width, backend: backend)
            if let vr = s.vectorRows {
                try tensor(vr, "steering vector rows", of: op, types: [.u32], atLeast: rows, backend: backend)
                guard s.vector.count % width == 0 else {
                    throw BackendError("\(op): a steering table of \(s.vector.count) values is not whole rows of \(width)")
                }
            }
        }
    }

    static func rope(_ x: Tensor, _ pos: Tensor, _ inv: Tensor, tokens: Int, heads: Int, headDim: Int, rotaryDim: Int, backend: AnyObject) throws {
        try positive([("tokens", tokens), ("heads", heads), ("headDim", headDim), ("rotaryDim", rotaryDim)], of: "rope")
        guard rotaryDim % 2 == 0, rotaryDim <= headDim else {
            throw BackendError("rope: rotaryDim \(rotaryDim) must be even and ≤ headDim \(headDim)")
        }
        try tensor(x, "x", of: "rope", types: [.f32], atLeast: tokens * heads * headDim, backend: backend)
        try tensor(pos, "positions", of: "rope", types: [.u32], atLeast: tokens, backend: backend)
        try tensor(inv, "inverse frequencies", of: "rope", types: [.f32], atLeast: rotaryDim / 2, backend: backend)
    }

    static let maxHeadDim = 256

    static func attention(q: Tensor, k: Tensor, v: Tensor, seq: Tensor, pos: Tensor, out: Tensor, tokens: Int, heads: Int,
                          kvHeads: Int, headDim: Int, sequences: Int, capacity: Int, contextBound: Int, backend: AnyObject) throws {
        try positive([("tokens", tokens), ("heads", heads), ("kvHeads", kvHeads), ("headDim", headDim),
                      ("sequences", sequences), ("capacity", capacity), ("contextBound", contextBound)], of: "attention")
        guard heads % kvHeads == 0 else { throw BackendError("attention: \(heads) query heads are not a multiple of \(kvHeads) KV heads") }
        guard headDim <= maxHeadDim else { throw BackendError("attention: headDim \(headDim) exceeds \(maxHeadDim)") }
        guard contextBound <= capacity else { throw BackendError("attention: context \(contextBound) exceeds the cache capacity \(capacity)") }
        let cache = sequences * capacity * kvHeads * headDim
        try tensor(q, "query", of: "attention", types: [.f32], atLeast: tokens * heads * headDim, backend: backend)
        try tensor(k, "key cache", of: "attention", types: [.f32], atLeast: cache, backend: backend)
        try tensor(v, "value cache", of: "attention", types: [.f32], atLeast: cache, backend: backend)
        try tensor(seq, "sequence ids", of: "attention", types: [.u32], atLeast: tokens, backend: backend)
        try tensor(pos, "positions", of: "attention", types: [.u32], atLeast: tokens, backend: backend)
        try tensor(out, "output", of: "attention", types: [.f32], atLeast: tokens * heads * headDim, backend: backend)
    }

    static let maxTopK = 64

    static func topK(_ v: Tensor, rows: Int, length: Int, k: Int, outV: Tensor, outI: Tensor, backend: AnyObject) throws {
        try positive([("rows", rows), ("length", length), ("k", k)], of: "topK")
        guard k <= maxTopK else { throw BackendError("topK: k = \(k) exceeds \(maxTopK)") }
        try tensor(v, "values", of: "topK", types: [.f32], atLeast: rows * length, backend: backend)
        try tensor(outV, "output values", of: "topK", types: [.f32], atLeast: rows * k, backend: backend)
        try tensor(outI, "output indices", of: "topK", types: [.u32], atLeast: rows * k, backend: backend)
    }

    static func softmaxHead(_ v: Tensor, rows: Int, length: Int, inverseTemperatures t: Tensor, maxWindow: Int, capacity: Int,
                            output: Tensor, backend: AnyObject) throws {
        try positive([("rows", rows), ("length", length), ("capacity", capacity), ("maxWindow", maxWindow)], of: "softmaxHead")
        guard maxWindow <= SoftmaxHead.maxWindow else {
            throw BackendError("softmaxHead: a window of \(maxWindow) nats exceeds \(SoftmaxHead.maxWindow)")
        }
        try tensor(v, "values", of: "softmaxHead", types: [.f32], atLeast: rows * length, backend: backend)
        try tensor(t, "inverse temperatures", of: "softmaxHead", types: [.f32], atLeast: rows, backend: backend)
        try tensor(output, "output", of: "softmaxHead", types: [.u32], atLeast: rows * SoftmaxHead.words(capacity: capacity), backend: backend)
    }
}
