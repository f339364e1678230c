// Pre-tokenisation: splitting text into words, by Unicode scalars.
//
// The regexes of HF tokenizers (Oniguruma) are reproduced by small hand-written scanners instead
// of NSRegularExpression: that one works on UTF-16, its `\s` and `\p{..}` differ in places, and it
// is slow on Linux. Each scanner follows the regex's alternatives in order, including the
// backtracking of `\s+(?!\S)` and `\s*[\r\n]+`, so the words are exactly the regex matches.

/// The GPT-2 byte <-> unicode mapping: printable bytes map to themselves, the rest to U+0100.. .
enum ByteLevel {
    /// byte -> the unicode scalar that spells it in a byte-level vocabulary.
    static let byteToScalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var n: UInt32 = 0
        for b in 0..<256 {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            if printable {
                table[b] = Unicode.Scalar(UInt32(b))!
            } else {
                table[b] = Unicode.Scalar(256 + n)!
                n += 1
            }
        }
        return table
    }()

    /// scalar value -> byte, for the 256 scalars above.
    static let scalarToByte: [UInt32: UInt8] = {
        var d: [UInt32: UInt8] = [:]
        for (b, s) in byteToScalar.enumerated() { d[s.value] = UInt8(b) }
        return d
    }()

    /// The raw bytes a byte-level vocabulary string stands for, or nil if it holds a character
    /// outside the mapping (then it is not a byte-level token, e.g. an added token).
    static func decode(_ token: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.unicodeScalars.count)
        for s in token.unicodeScalars {
            guard let b = scalarToByte[s.value] else { return nil }
            out.append(b)
        }
        return out
    }
}

/// The character classes the regexes care about.
enum ScalarClass: UInt8 {
    case letter    // \p{L}
    case number    // \p{N}
    case space     // \s other than \r \n
    case newline   // \r or \n (also \s)
    case other     // none of the above

    @inline(__always) var isSpace: Bool { self == .space || self == .newline }

    static let ascii: [ScalarClass] = (0..<128).map { classify(Unicode.Scalar(UInt8($0))) }

    @inline(__always) static func of(_ s: Unicode.Scalar) -> ScalarClass {
        s.value < 128 ? ascii[Int(s.value)] : classify(s)
    }

    static func classify(_ s: Unicode.Scalar) -> ScalarClass {
        if s == "\r" || s == "\n" { return .newline }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return .number
        default:
            // Oniguruma's Unicode `\s`: U+0009-000D, U+0085 and the Z* separators, i.e. White_Space.
            return s.properties.isWhitespace ? .space : .other
        }
    }
}

extension PreTokenizer {
    /// Splits `scalars` into words; returns the end index of each word (words are contiguous).
    func split(_ scalars: [Unicode.Scalar]) -> [Int] {
        let n = scalars.count
        if n == 0 { return [] }
        if self == .none { return [n] }
        let cls = scalars.map(ScalarClass.of)
        var ends: [Int] = []
        ends.reserveCapacity(n / 3 + 1)
        switch self {
        case .none:
            break
        case .gpt2:
            var i = 0
            while i < n { i = Self.scanGPT2(scalars, cls, i, n); ends.append(i) }
        case .smollm:
            // HF Digits(individual_digits: true) first: every \p{N} is its own piece; the GPT-2
            // regex then runs inside each piece separately (so " " before a digit stays alone).
            var start = 0
            while start < n {
                if cls[start] == .number { start += 1; ends.append(start); continue }
                var pieceEnd = start
                while pieceEnd < n, cls[pieceEnd] != .number { pieceEnd += 1 }
                var i = start
                while i < pieceEnd { i = Self.scanGPT2(scalars, cls, i, pieceEnd); ends.append(i) }
                start = pieceEnd
            }
        case .qwen2:
            var i = 0
            while i < n { i = Self.scanQwen(scalars, cls, i, n, maxDigits: 1); ends.append(i) }
        case .llama3:
            var i = 0
            while i < n { i = Self.scanQwen(scalars, cls, i, n, maxDigits: 3); ends.append(i) }
        }
        return ends
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d` at i (optionally case-insensitive); returns the match end.
    @inline(__always)
    private static func contraction(_ s: [Unicode.Scalar], _ i: Int, _ n: Int, ignoreCase: Bool) -> Int? {
        guard s[i] == "'", i + 1 < n else { return nil }
        func low(_ c: Unicode.Scalar) -> UInt32 {
            guard ignoreCase else { return c.value }
            if c.value >= 0x41 && c.value <= 0x5A { return c.value + 32 }
            if c.value == 0x17F { return 0x73 }  // ſ case-folds to s
            return c.value
        }
        let a = low(s[i + 1])
        if a == 0x73 || a == 0x74 || a == 0x6D || a == 0x64 { return i + 2 }  // s t m d
        guard i + 2 < n else { return nil }
        let b = low(s[i + 2])
        if (a == 0x72 && b == 0x65) || (a == 0x76 && b == 0x65) || (a == 0x6C && b == 0x6C) { return i + 3 }  // re ve ll
        return nil
    }

    /// Whitespace tail shared by both regexes: `\s+(?!\S)|\s+`, at a whitespace scalar i.
    @inline(__always)
    private static func whitespaceRun(_ cls: [ScalarClass], _ i: Int, _ n: Int) -> Int {
        var j = i
        while j < n, cls[j].isSpace { j += 1 }
        if j == n { return n }          // \s+ up to the end: (?!\S) holds
        if j - i >= 2 { return j - 1 }  // leave the last space to prefix the next word
        return j                        // a single space before a non-space: plain \s+
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    private static func scanGPT2(_ s: [Unicode.Scalar], _ cls: [ScalarClass], _ i: Int, _ n: Int) -> Int {
        if let e = contraction(s, i, n, ignoreCase: false) { return e }
        var j = i
        if s[i] == " ", i + 1 < n, !cls[i + 1].isSpace { j = i + 1 }
        let c = cls[j]
        if c == .letter || c == .number || c == .other {
            var k = j + 1
            while k < n, cls[k] == c { k += 1 }
            return k
        }
        return whitespaceRun(cls, i, n)
    }

    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,maxDigits}|
    ///  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    private static func scanQwen(_ s: [Unicode.Scalar], _ cls: [ScalarClass], _ i: Int, _ n: Int,
                                 maxDigits: Int) -> Int {
        if let e = contraction(s, i, n, ignoreCase: true) { return e }
        let c = cls[i]
        // [^\r\n\p{L}\p{N}]?\p{L}+
        var j = -1
        if c == .letter { j = i } else if c != .newline && c != .number && i + 1 < n && cls[i + 1] == .letter { j = i + 1 }
        if j >= 0 {
            var k = j + 1
            while k < n, cls[k] == .letter { k += 1 }
            return k
        }
        // \p{N}{1,maxDigits}
        if c == .number {
            var k = i + 1
            while k < n, k - i < maxDigits, cls[k] == .number { k += 1 }
            return k
        }
        // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        j = i
        if s[i] == " ", i + 1 < n, cls[i + 1] == .other { j = i + 1 }
        if cls[j] == .other {
            var k = j + 1
            while k < n, cls[k] == .other { k += 1 }
            while k < n, cls[k] == .newline { k += 1 }
            return k
        }
        // \s*[\r\n]+ : the whitespace run up to and including its last \r or \n.
        var k = i
        var lastNewline = -1
        while k < n, cls[k].isSpace {
            if cls[k] == .newline { lastNewline = k }
            k += 1
        }
        if lastNewline >= 0 { return lastNewline + 1 }
        return whitespaceRun(cls, i, n)
    }
}
