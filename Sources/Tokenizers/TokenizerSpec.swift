import Foundation

/// A thrown tokenizer error: one line, naming the file (when there is one) and what is wrong.
public struct TokenizerError: Error, CustomStringConvertible, LocalizedError, Sendable {
    public let file: String?
    public let message: String

    public init(file: String? = nil, _ message: String) {
        self.file = file
        self.message = message
    }

    public var description: String {
        // Keep it on one line whatever the message held.
        let m = message.replacingOccurrences(of: "\n", with: " ")
        if let file { return "\(file): \(m)" }
        return m
    }

    public var errorDescription: String? { description }
}

/// How text is split into words before BPE. Each case is one hand-written scanner over Unicode
/// scalars (never `Character`) that reproduces the regex the model's tokenizer uses.
public enum PreTokenizer: String, Sendable, CaseIterable {
    /// No split: the whole text (between special tokens) is one word. Sentencepiece models.
    case none
    /// GPT-2 byte-level regex:
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    case gpt2
    /// Qwen2/Qwen3 (and cl100k-like) regex:
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    case qwen2
    /// Llama-3: the Qwen2 regex with `\p{N}{1,3}` (digits in groups of up to three).
    case llama3
    /// SmolLM / StarCoder: every digit split out on its own (HF `Digits(individual_digits)`),
    /// then the GPT-2 regex on what is left.
    case smollm
}

/// When the sentencepiece "▁" prefix is added (`TokenizerSpec.addPrefixSpace`).
public enum PrefixSpaceRule: String, Sendable {
    /// Before every piece of text (between special tokens), unconditionally: sentencepiece's
    /// `add_dummy_prefix`, llama.cpp, llama2.c, the HF `Prepend("▁")` normaliser taken literally.
    case always
    /// HF `Metaspace(prepend_scheme: "always")`: before every piece unless it already starts with
    /// a space. What transformers' Llama tokenizer does for `legacy: true` tokenizers.
    case metaspaceAlways
    /// HF `Metaspace(prepend_scheme: "first")`: only before the piece at the very start of the
    /// text, unless it already starts with a space (transformers, `legacy: false`).
    case metaspaceFirst
}

/// Unicode normalisation applied to text (outside special tokens) before pre-tokenisation.
public enum UnicodeNormalization: String, Sendable {
    case none, nfc, nfd, nfkc, nfkd
}

/// A neutral description of a BPE tokenizer, so that any source (tokenizer.json, GGUF metadata,
/// a llama2.c tokenizer.bin) can build a `Tokenizer`.
public struct TokenizerSpec: Sendable {
    public enum Kind: String, Sendable {
        /// GPT-2 / Qwen / SmolLM: every byte is mapped to a printable unicode character and the
        /// vocabulary is written in those characters; BPE starts from bytes.
        case byteLevelBPE
        /// Llama-2 / sentencepiece style: spaces become "▁", BPE starts from Unicode scalars,
        /// scalars missing from the vocabulary fall back to `<0xNN>` byte tokens.
        case sentencePieceBPE
    }

    public var kind: Kind
    /// id -> token string as stored in the vocabulary (byte-level tokens in their mapped spelling).
    public var tokens: [String]
    /// Merge rules in rank order (first = merged first). May be empty for sentencePieceBPE when
    /// `scores` are given.
    public var merges: [(String, String)]
    /// Sentencepiece / llama2.c scores, one per token. Used when `merges` is empty: the adjacent
    /// pair whose concatenation is the vocabulary entry with the highest score merges first.
    public var scores: [Float]?
    /// Added / control tokens split out of the text before anything else (longest match first).
    public var specialTokens: [String: Int]
    /// The ids `decode(skipSpecial: true)` drops (HF `special: true`, GGUF control tokens).
    /// When nil, every id in `specialTokens` counts as special.
    public var controlTokens: Set<Int>?
    public var preTokenizer: PreTokenizer
    public var normalization: UnicodeNormalization
    public var bos: Int?
    public var eos: Int?
    public var addBOS: Bool
    public var addEOS: Bool
    /// Extra end-of-generation ids (e.g. `<|endoftext|>` next to `<|im_end|>`).
    public var extraEOS: Set<Int>
    public var unk: Int?
    public var byteFallback: Bool
    /// Consecutive unknown pieces collapse into one `unk` (HF `fuse_unk`).
    public var fuseUnk: Bool
    /// Sentencepiece: prepend "▁" to the text (HF `Prepend("▁")` normalizer / Metaspace
    /// `prepend_scheme`), and strip one leading space when decoding.
    public var addPrefixSpace: Bool
    /// Which of the conventions above `addPrefixSpace` follows.
    public var prefixSpaceRule: PrefixSpaceRule
    /// HF `ignore_merges` (Llama-3): a word that is itself in the vocabulary is emitted whole.
    public var ignoreMerges: Bool
    /// The raw Jinja chat template, if the source had one.
    public var chatTemplate: String?

    public init(kind: Kind, tokens: [String], merges: [(String, String)] = [], scores: [Float]? = nil,
                specialTokens: [String: Int] = [:], controlTokens: Set<Int>? = nil,
                preTokenizer: PreTokenizer, normalization: UnicodeNormalization = .none,
                bos: Int? = nil, eos: Int? = nil, addBOS: Bool = false, addEOS: Bool = false,
                extraEOS: Set<Int> = [], unk: Int? = nil, byteFallback: Bool = false, fuseUnk: Bool = false,
                addPrefixSpace: Bool = false, prefixSpaceRule: PrefixSpaceRule = .always, ignoreMerges: Bool = false, chatTemplate: String? = nil) {
        self.kind = kind
        self.tokens = tokens
        self.merges = merges
        self.scores = scores
        self.specialTokens = specialTokens
        self.controlTokens = controlTokens
        self.preTokenizer = preTokenizer
        self.normalization = normalization
        self.bos = bos
        self.eos = eos
        self.addBOS = addBOS
        self.addEOS = addEOS
        self.extraEOS = extraEOS
        self.unk = unk
        self.byteFallback = byteFallback
        self.fuseUnk = fuseUnk
        self.addPrefixSpace = addPrefixSpace
        self.prefixSpaceRule = prefixSpaceRule
        self.ignoreMerges = ignoreMerges
        self.chatTemplate = chatTemplate
    }
}
