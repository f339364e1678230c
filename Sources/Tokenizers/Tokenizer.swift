import Foundation

/// A BPE tokenizer (byte-level or sentencepiece-style) built from a `TokenizerSpec`.
///
/// Everything is keyed by bytes, never by `String`: `String ==` is canonical equivalence, so a
/// `[String: Int]` would merge the NFC and NFD spellings of a token. BPE symbols start from
/// bytes (byte-level) or Unicode scalars (sentencepiece), never from `Character`s.
public final class Tokenizer: Sendable {
    public let kind: TokenizerSpec.Kind
    public let bos: Int?
    public let eos: Int?
    /// Ids that end a generation: `eos` plus the end-of-turn / end-of-text tokens the source names.
    public let eosIDs: Set<Int>
    public let addBOS: Bool
    public let addEOS: Bool
    public let unk: Int?
    /// The raw Jinja chat template, if the source had one.
    public let chatTemplate: String?
    public let preTokenizer: PreTokenizer
    public let normalization: UnicodeNormalization
    public let addPrefixSpace: Bool
    public let prefixSpaceRule: PrefixSpaceRule

    /// id -> token string as stored in the vocabulary.
    private let tokens: [String]
    /// id -> the raw bytes the token stands for (what decoding emits).
    private let bytesOfToken: [[UInt8]]
    /// Stored token spelling (UTF-8) -> id, for `id(of:)`.
    private let idOfSpelling: [[UInt8]: Int]
    /// The BPE vocabulary: the bytes a token stands for (byte-level) or its stored UTF-8 spelling
    /// with "▁" (sentencepiece) -> id. Added tokens that BPE cannot produce are left out.
    private let vocab: [[UInt8]: Int]
    /// (left id << 32 | right id) -> merge rank and merged id.
    private let mergeTable: [UInt64: Merge]
    /// Sentencepiece scores (used when there are no merges).
    private let scores: [Float]?
    /// byte -> the id of its single-byte token (byte-level) or of `<0xNN>` (byte fallback); -1 if none.
    private let byteTokenIDs: [Int32]
    private let byteFallback: Bool
    private let fuseUnk: Bool
    private let ignoreMerges: Bool
    /// Special tokens bucketed by first byte, longest first, for longest-match splitting.
    private let specialsByFirstByte: [[(bytes: [UInt8], id: Int)]]
    private let specialIDs: Set<Int>
    /// Ids that `decode(skipSpecial: true)` drops.
    private let controlIDs: Set<Int>
    private let cache = WordCache()

    struct Merge { var rank: Int32; var id: Int32 }

    public var vocabularySize: Int { tokens.count }

    public init(spec: TokenizerSpec) throws {
        let n = spec.tokens.count
        guard n > 0 else { throw TokenizerError("the vocabulary is empty") }
        func checkID(_ id: Int?, _ what: String) throws {
            if let id, id < 0 || id >= n { throw TokenizerError("\(what) id \(id) is outside the vocabulary (size \(n))") }
        }
        try checkID(spec.bos, "bos")
        try checkID(spec.eos, "eos")
        try checkID(spec.unk, "unk")
        for (t, id) in spec.specialTokens { try checkID(id, "special token '\(t)'") }
        for id in spec.extraEOS { try checkID(id, "end-of-generation") }
        if let s = spec.scores, s.count != n {
            throw TokenizerError("\(s.count) scores for \(n) tokens")
        }

        kind = spec.kind
        bos = spec.bos
        eos = spec.eos
        addBOS = spec.addBOS
        addEOS = spec.addEOS
        unk = spec.unk
        chatTemplate = spec.chatTemplate
        preTokenizer = spec.preTokenizer
        normalization = spec.normalization
        addPrefixSpace = spec.addPrefixSpace
        prefixSpaceRule = spec.prefixSpaceRule
        byteFallback = spec.byteFallback
        fuseUnk = spec.fuseUnk
        ignoreMerges = spec.ignoreMerges
        tokens = spec.tokens
        scores = spec.merges.isEmpty ? spec.scores : nil

        specialIDs = Set(spec.specialTokens.values)
        controlIDs = spec.controlTokens ?? specialIDs
        var eosSet = spec.extraEOS
        if let e = spec.eos { eosSet.insert(e) }
        eosIDs = eosSet

        // Spellings, decoded bytes and the BPE vocabulary.
        var spelling: [[UInt8]: Int] = [:]
        spelling.reserveCapacity(n)
        var bytesTable: [[UInt8]] = []
        bytesTable.reserveCapacity(n)
        var bpeVocab: [[UInt8]: Int] = [:]
        bpeVocab.reserveCapacity(n)
        for (id, t) in spec.tokens.enumerated() {
            let utf8 = Array(t.utf8)
            if utf8.isEmpty { bytesTable.append([]); continue }  // a hole in the id space
            if spelling[utf8] == nil { spelling[utf8] = id }
            let isSpecial = specialIDs.contains(id)
            switch spec.kind {
            case .byteLevelBPE:
                // Added tokens are written raw ("<|im_start|>"); HF's ByteLevel decoder likewise
                // falls back to the raw text for a token with characters outside the mapping.
                if let raw = ByteLevel.decode(t) {
                    bytesTable.append(isSpecial ? utf8 : raw)
                    if !isSpecial, bpeVocab[raw] == nil { bpeVocab[raw] = id }
                } else {
                    bytesTable.append(utf8)
                }
            case .sentencePieceBPE:
                if let b = Tokenizer.byteFallbackValue(t) {
                    bytesTable.append([b])
                } else {
                    bytesTable.append(Tokenizer.unescapeMetaspace(utf8))
                }
                if !isSpecial, bpeVocab[utf8] == nil { bpeVocab[utf8] = id }
            }
        }
        idOfSpelling = spelling
        bytesOfToken = bytesTable
        vocab = bpeVocab

        // Single-byte tokens: the byte-level alphabet, or the <0xNN> fallback pieces.
        var byteIDs = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            switch spec.kind {
            case .byteLevelBPE:
                if let id = bpeVocab[[UInt8(b)]] { byteIDs[b] = Int32(id) }
            case .sentencePieceBPE:
                let hex = String(format: "<0x%02X>", b)
                if let id = spelling[Array(hex.utf8)] { byteIDs[b] = Int32(id) }
            }
        }
        byteTokenIDs = byteIDs

        // Merge rules -> (left, right) ids. A rule naming tokens the vocabulary lacks is skipped,
        // as llama.cpp does (HF refuses the file; neither can ever apply it).
        var table: [UInt64: Merge] = [:]
        table.reserveCapacity(spec.merges.count)
        func key(_ s: String) -> [UInt8]? {
            spec.kind == .byteLevelBPE ? ByteLevel.decode(s) : Array(s.utf8)
        }
        for (rank, m) in spec.merges.enumerated() {
            guard let a = key(m.0), let b = key(m.1),
                  let ia = bpeVocab[a], let ib = bpeVocab[b], let im = bpeVocab[a + b] else { continue }
            let k = UInt64(ia) << 32 | UInt64(ib)
            if table[k] == nil { table[k] = Merge(rank: Int32(rank), id: Int32(im)) }
        }
        mergeTable = table

        // Special tokens for splitting, longest first within each first-byte bucket.
        var buckets = [[(bytes: [UInt8], id: Int)]](repeating: [], count: 256)
        for (t, id) in spec.specialTokens {
            let b = Array(t.utf8)
            guard let first = b.first else { continue }
            buckets[Int(first)].append((b, id))
        }
        for i in 0..<256 { buckets[i].sort { $0.bytes.count > $1.bytes.count || ($0.bytes.count == $1.bytes.count && $0.id < $1.id) } }
        specialsByFirstByte = buckets
    }

    // MARK: - Lookups

    /// The id of a token by its stored spelling (e.g. "<|im_end|>", "Ġthe", "▁the").
    public func id(of token: String) -> Int? { idOfSpelling[Array(token.utf8)] }

    /// The stored spelling of a token.
    public func token(_ id: Int) -> String? { id >= 0 && id < tokens.count ? tokens[id] : nil }

    /// The raw bytes a token stands for (for streaming). Empty for an id outside the vocabulary.
    public func tokenBytes(_ id: Int) -> [UInt8] { id >= 0 && id < bytesOfToken.count ? bytesOfToken[id] : [] }

    /// Whether the id is a special/control token (dropped by `decode(skipSpecial: true)`).
    public func isSpecial(_ id: Int) -> Bool { controlIDs.contains(id) }

    /// The special/added tokens that are split out of text before BPE.
    public var specialTokenIDs: Set<Int> { specialIDs }

    // MARK: - Encoding

    /// Encodes text. Special tokens written in the text (e.g. "<|im_start|>") become their ids,
    /// as Hugging Face does by default; `parseSpecial: false` treats them as plain text.
    /// `addSpecialTokens` adds BOS (and EOS) when the tokenizer's configuration says so.
    public func encode(_ text: String, addSpecialTokens: Bool = false, parseSpecial: Bool = true) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(text.utf8.count / 3 + 2)
        if addSpecialTokens, addBOS, let bos { out.append(bos) }
        let bytes = Array(text.utf8)
        var segmentStart = 0
        var i = 0
        if parseSpecial {
            while i < bytes.count {
                var matched: (len: Int, id: Int)?
                for cand in specialsByFirstByte[Int(bytes[i])] where cand.bytes.count <= bytes.count - i {
                    var ok = true
                    for k in 1..<cand.bytes.count where bytes[i + k] != cand.bytes[k] { ok = false; break }
                    if ok { matched = (cand.bytes.count, cand.id); break }
                }
                if let m = matched {
                    if segmentStart < i { encodeSegment(bytes[segmentStart..<i], atTextStart: segmentStart == 0, into: &out) }
                    out.append(m.id)
                    i += m.len
                    segmentStart = i
                } else {
                    i += 1
                }
            }
        }
        if segmentStart < bytes.count { encodeSegment(bytes[segmentStart...], atTextStart: segmentStart == 0, into: &out) }
        if addSpecialTokens, addEOS, let eos { out.append(eos) }
        return out
    }

    /// Normalises, pre-tokenises and BPE-encodes text that holds no special tokens.
    /// (HF normalises each piece between special tokens separately; so do we.)
    private func encodeSegment(_ raw: ArraySlice<UInt8>, atTextStart: Bool, into out: inout [Int]) {
        var text = String(decoding: raw, as: UTF8.self)
        text = Tokenizer.normalize(text, normalization)
        var scalars = Array(text.unicodeScalars)
        if kind == .sentencePieceBPE {
            if scalars.isEmpty { return }
            // Sentencepiece: spaces are "▁", and one "▁" goes in front as the rule says.
            let startsWithSpace = scalars[0] == " " || scalars[0] == "\u{2581}"
            for k in scalars.indices where scalars[k] == " " { scalars[k] = "\u{2581}" }
            if addPrefixSpace {
                let prepend: Bool
                switch prefixSpaceRule {
                case .always: prepend = true
                case .metaspaceAlways: prepend = !startsWithSpace
                case .metaspaceFirst: prepend = !startsWithSpace && atTextStart
                }
                if prepend { scalars.insert("\u{2581}", at: 0) }
            }
        } else if addPrefixSpace, let first = scalars.first, first != " " {
            scalars.insert(" ", at: 0)  // HF ByteLevel(add_prefix_space: true), e.g. RoBERTa
        }
        let ends = preTokenizer.split(scalars)
        var start = 0
        var word: [UInt8] = []
        var scalarEnds: [Int] = []  // byte offset after each scalar of the word
        for end in ends {
            word.removeAll(keepingCapacity: true)
            scalarEnds.removeAll(keepingCapacity: true)
            for s in scalars[start..<end] {
                appendUTF8(s, to: &word)
                scalarEnds.append(word.count)
            }
            encodeWord(word, scalarEnds: scalarEnds, into: &out)
            start = end
        }
    }

    private func encodeWord(_ word: [UInt8], scalarEnds: [Int], into out: inout [Int]) {
        if ignoreMerges, let id = vocab[word] { out.append(id); return }
        let cacheable = word.count <= 128
        if cacheable, let hit = cache.get(word) { out.append(contentsOf: hit); return }
        let ids = bpe(word, scalarEnds: scalarEnds)
        if cacheable { cache.put(word, ids) }
        out.append(contentsOf: ids)
    }

    /// Byte-pair merging over one word. Symbols live in a linked list; candidate pairs sit in a
    /// min-heap keyed by (priority, position), and stale entries are skipped when popped, so a
    /// long word (a whole sentencepiece line) costs O(n log n), not O(n²).
    private func bpe(_ word: [UInt8], scalarEnds: [Int]) -> [Int] {
        // Initial symbols: bytes (byte-level) or scalars (sentencepiece).
        var syms: [Sym] = []
        switch kind {
        case .byteLevelBPE:
            syms.reserveCapacity(word.count)
            for (k, b) in word.enumerated() {
                syms.append(Sym(start: Int32(k), end: Int32(k + 1), id: byteTokenIDs[Int(b)]))
            }
        case .sentencePieceBPE:
            syms.reserveCapacity(scalarEnds.count)
            var s = 0
            for e in scalarEnds {
                let id = vocab[Array(word[s..<e])].map(Int32.init) ?? -1
                syms.append(Sym(start: Int32(s), end: Int32(e), id: id))
                s = e
            }
        }
        let count = syms.count
        if count == 0 { return [] }
        for k in 0..<count {
            syms[k].prev = Int32(k - 1)
            syms[k].next = k + 1 < count ? Int32(k + 1) : -1
        }

        var heap = PairHeap()
        func candidate(_ l: Int, _ r: Int) {
            let a = syms[l], b = syms[r]
            if let scores {
                // Score mode (sentencepiece / llama2.c): the merged text must be a vocabulary entry;
                // higher score merges first.
                guard let id = vocab[Array(word[Int(a.start)..<Int(b.end)])] else { return }
                heap.push(PairEntry(priority: -Double(scores[id]), left: Int32(l), right: Int32(r),
                                    leftEnd: a.end, rightEnd: b.end, id: Int32(id)))
            } else {
                guard a.id >= 0, b.id >= 0,
                      let m = mergeTable[UInt64(UInt32(a.id)) << 32 | UInt64(UInt32(b.id))] else { return }
                heap.push(PairEntry(priority: Double(m.rank), left: Int32(l), right: Int32(r),
                                    leftEnd: a.end, rightEnd: b.end, id: m.id))
            }
        }
        for k in 0..<(count - 1) { candidate(k, k + 1) }

        while let top = heap.pop() {
            let l = Int(top.left), r = Int(top.right)
            // Skip entries made stale by an earlier merge.
            guard syms[l].alive, syms[r].alive, syms[l].next == top.right,
                  syms[l].end == top.leftEnd, syms[r].end == top.rightEnd else { continue }
            syms[l].end = syms[r].end
            syms[l].id = top.id
            syms[r].alive = false
            let nn = syms[r].next
            syms[l].next = nn
            if nn >= 0 { syms[Int(nn)].prev = Int32(l) }
            if syms[l].prev >= 0 { candidate(Int(syms[l].prev), l) }
            if nn >= 0 { candidate(l, Int(nn)) }
        }

        // Emit; a symbol without an id falls back to <0xNN> bytes, else to unk.
        var out: [Int] = []
        out.reserveCapacity(count)
        var k = 0
        var lastWasUnk = false
        while k >= 0 && k < count {
            let s = syms[k]
            if s.id >= 0 {
                out.append(Int(s.id))
                lastWasUnk = false
            } else {
                let piece = word[Int(s.start)..<Int(s.end)]
                if byteFallback, piece.allSatisfy({ byteTokenIDs[Int($0)] >= 0 }) {
                    for b in piece { out.append(Int(byteTokenIDs[Int(b)])) }
                    lastWasUnk = false
                } else if let unk {
                    if !(fuseUnk && lastWasUnk) { out.append(unk) }
                    lastWasUnk = true
                }
                // With neither a fallback nor an unk token the piece is dropped.
            }
            k = Int(s.next)
        }
        return out
    }

    // MARK: - Decoding

    /// Decodes ids to text. Ids outside the vocabulary are ignored; invalid UTF-8 becomes U+FFFD.
    /// Sentencepiece tokenizers drop the one leading space their encoder added.
    public func decode(_ ids: [Int], skipSpecial: Bool = false) -> String {
        var bytes: [UInt8] = []
        for id in ids {
            if skipSpecial && controlIDs.contains(id) { continue }
            bytes.append(contentsOf: tokenBytes(id))
        }
        if stripsLeadingSpace, bytes.first == 0x20 { bytes.removeFirst() }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Empties the per-word BPE cache (for cold-cache timings).
    func clearCache() { cache.clear() }

    /// Whether decoding removes one leading space (sentencepiece "▁" prefix convention).
    public var stripsLeadingSpace: Bool { kind == .sentencePieceBPE && addPrefixSpace }

    // MARK: - Helpers

    static func normalize(_ text: String, _ form: UnicodeNormalization) -> String {
        if form == .none || text.utf8.allSatisfy({ $0 < 0x80 }) { return text }  // ASCII is invariant
        switch form {
        case .none: return text
        case .nfc: return text.precomposedStringWithCanonicalMapping
        case .nfd: return text.decomposedStringWithCanonicalMapping
        case .nfkc: return text.precomposedStringWithCompatibilityMapping
        case .nfkd: return text.decomposedStringWithCompatibilityMapping
        }
    }

    /// "<0xNN>" -> NN (HF ByteFallback decoder / llama2.c convention).
    static func byteFallbackValue(_ t: String) -> UInt8? {
        let u = Array(t.utf8)
        guard u.count == 6, u[0] == 0x3C, u[1] == 0x30, u[2] == 0x78, u[5] == 0x3E else { return nil }
        return UInt8(String(decoding: u[3..<5], as: UTF8.self), radix: 16)
    }

    /// "▁" (E2 96 81) -> " ".
    static func unescapeMetaspace(_ u: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(u.count)
        var k = 0
        while k < u.count {
            if k + 2 < u.count, u[k] == 0xE2, u[k + 1] == 0x96, u[k + 2] == 0x81 {
                out.append(0x20)
                k += 3
            } else {
                out.append(u[k])
                k += 1
            }
        }
        return out
    }
}

@inline(__always)
func appendUTF8(_ s: Unicode.Scalar, to out: inout [UInt8]) {
    let v = s.value
    if v < 0x80 {
        out.append(UInt8(v))
    } else if v < 0x800 {
        out.append(UInt8(0xC0 | (v >> 6)))
        out.append(UInt8(0x80 | (v & 0x3F)))
    } else if v < 0x10000 {
        out.append(UInt8(0xE0 | (v >> 12)))
        out.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
        out.append(UInt8(0x80 | (v & 0x3F)))
    } else {
        out.append(UInt8(0xF0 | (v >> 18)))
        out.append(UInt8(0x80 | ((v >> 12) & 0x3F)))
        out.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
        out.append(UInt8(0x80 | (v & 0x3F)))
    }
}

/// One BPE symbol: a byte range of the word and its token id (-1: not in the vocabulary).
private struct Sym {
    var start: Int32
    var end: Int32
    var id: Int32
    var prev: Int32 = -1
    var next: Int32 = -1
    var alive = true
    init(start: Int32, end: Int32, id: Int32) { self.start = start; self.end = end; self.id = id }
}

private struct PairEntry {
    var priority: Double  // merge rank, or -score
    var left: Int32
    var right: Int32
    var leftEnd: Int32
    var rightEnd: Int32
    var id: Int32

    /// Lower priority first; ties go to the leftmost pair (as HF and llama.cpp do).
    @inline(__always) static func before(_ a: PairEntry, _ b: PairEntry) -> Bool {
        a.priority < b.priority || (a.priority == b.priority && a.left < b.left)
    }
}

/// A binary min-heap of merge candidates.
private struct PairHeap {
    private var items: [PairEntry] = []

    mutating func push(_ e: PairEntry) {
        items.append(e)
        var c = items.count - 1
        while c > 0 {
            let p = (c - 1) / 2
            if PairEntry.before(items[c], items[p]) { items.swapAt(c, p); c = p } else { break }
        }
    }

    mutating func pop() -> PairEntry? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var p = 0
            let n = items.count
            while true {
                let l = 2 * p + 1, r = l + 1
                var m = p
                if l < n, PairEntry.before(items[l], items[m]) { m = l }
                if r < n, PairEntry.before(items[r], items[m]) { m = r }
                if m == p { break }
                items.swapAt(p, m)
                p = m
            }
        }
        return first
    }
}

/// Per-word BPE results, shared across threads behind a lock.
private final class WordCache: @unchecked Sendable {
    private let lock = NSLock()
    private var map: [[UInt8]: [Int]] = [:]
    private let limit = 100_000

    func get(_ k: [UInt8]) -> [Int]? {
        lock.lock(); defer { lock.unlock() }
        return map[k]
    }

    func clear() {
        lock.lock(); defer { lock.unlock() }
        map.removeAll()
    }

    func put(_ k: [UInt8], _ v: [Int]) {
        lock.lock(); defer { lock.unlock() }
        if map.count >= limit { map.removeAll(keepingCapacity: true) }  // crude bound on memory
        map[k] = v
    }
}
