/// Streaming decoder: feed ids one at a time, get text out as soon as it is complete.
///
/// A token can end in the middle of a UTF-8 sequence (byte-level BPE splits emoji and CJK across
/// tokens; sentencepiece emits `<0xNN>` pieces), so the bytes of an unfinished sequence are held
/// back until the rest arrives. The concatenation of everything `push` and `flush` return equals
/// `tokenizer.decode(ids, skipSpecial:)` for the same ids.
public struct StreamingDecoder: Sendable {
    public let tokenizer: Tokenizer
    public let skipSpecial: Bool
    private var pending: [UInt8] = []
    private var atStart = true

    public init(tokenizer: Tokenizer, skipSpecial: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecial = skipSpecial
    }

    /// Adds one token; returns the text that became complete (possibly "").
    public mutating func push(_ id: Int) -> String {
        if skipSpecial && tokenizer.isSpecial(id) { return "" }
        pending.append(contentsOf: tokenizer.tokenBytes(id))
        if atStart, !pending.isEmpty {
            // Sentencepiece's decoder drops the one leading space of the whole text.
            if tokenizer.stripsLeadingSpace, pending.first == 0x20 { pending.removeFirst() }
            atStart = false
        }
        let cut = StreamingDecoder.completePrefixLength(pending)
        if cut == 0 { return "" }
        let text = String(decoding: pending[0..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    /// Returns whatever is held back (an unfinished sequence becomes U+FFFD) and resets, so the
    /// next `push` starts a new text.
    public mutating func flush() -> String {
        defer { pending.removeAll(); atStart = true }
        return String(decoding: pending, as: UTF8.self)
    }

    /// The length of the longest prefix that does not end inside a UTF-8 sequence that could
    /// still be completed by more bytes. Bytes that can never become valid are not held.
    static func completePrefixLength(_ b: [UInt8]) -> Int {
        let n = b.count
        // Look back over at most 3 bytes for the lead byte of the last sequence.
        var k = n - 1
        while k >= 0 && k >= n - 4 {
            let c = b[k]
            if c & 0xC0 != 0x80 {  // not a continuation byte
                let need: Int
                switch c {
                case 0xC2...0xDF: need = 2
                case 0xE0...0xEF: need = 3
                case 0xF0...0xF4: need = 4
                default: return n  // ASCII or an invalid lead: nothing to wait for
                }
                return n - k < need ? k : n
            }
            k -= 1
        }
        return n
    }
}
