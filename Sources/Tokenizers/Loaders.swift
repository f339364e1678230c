import Formats
import Foundation

// Building a `TokenizerSpec` from the three sources the engine meets: a Hugging Face
// tokenizer.json (+ tokenizer_config.json / generation_config.json beside it), GGUF metadata,
// and a llama2.c tokenizer.bin.

extension Tokenizer {
    // MARK: - Hugging Face tokenizer.json

    /// Loads an HF `tokenizer.json`. A `tokenizer_config.json` beside it (if present) supplies
    /// bos/eos/add_bos_token and the chat template; a `generation_config.json` adds its
    /// `eos_token_id`s to `eosIDs`.
    public static func load(tokenizerJSON url: URL) throws -> Tokenizer {
        let spec = try specFromTokenizerJSON(url)
        do { return try Tokenizer(spec: spec) } catch let e as TokenizerError {
            throw TokenizerError(file: url.path, e.message)
        }
    }

    /// The spec `load(tokenizerJSON:)` builds, for callers that want to adjust it first.
    public static func specFromTokenizerJSON(_ url: URL) throws -> TokenizerSpec {
        let file = url.path
        func fail(_ m: String) -> TokenizerError { TokenizerError(file: file, m) }
        let root = try readJSON(url)
        guard case .object = root else { throw fail("top level is \(root.typeName), expected an object") }

        // model: BPE with vocab and merges.
        guard let model = root["model"] else { throw fail("missing 'model'") }
        guard case .object = model else { throw fail("'model' is \(model.typeName), expected an object") }
        if let t = model["type"], !t.isNull {
            guard let ts = t.string else { throw fail("'model.type' is \(t.typeName), expected a string") }
            guard ts == "BPE" else { throw fail("unsupported model type '\(ts)' (only BPE is supported)") }
        }
        guard let vocabValue = model["vocab"] else { throw fail("missing 'model.vocab'") }
        guard let vocabMembers = vocabValue.members else {
            throw fail("'model.vocab' is \(vocabValue.typeName), expected an object of token -> id")
        }
        guard let mergesValue = model["merges"] else { throw fail("missing 'model.merges'") }
        guard let mergeItems = mergesValue.array else {
            throw fail("'model.merges' is \(mergesValue.typeName), expected an array")
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let v = model[key]?.string, !v.isEmpty { throw fail("unsupported 'model.\(key)' '\(v)'") }
        }

        // Collect ids; the id space also covers added tokens (Qwen's sit past the BPE vocabulary).
        let maxID = 4_000_000  // far above any real vocabulary; keeps a bad id from allocating gigabytes
        var entries: [(String, Int)] = []
        entries.reserveCapacity(vocabMembers.count)
        var holder: [Int: String] = [:]  // id → its token, to catch an id given twice
        for (token, value) in vocabMembers {
            guard value.double != nil else {
                throw fail("'model.vocab' entry '\(token)' is \(value.typeName), expected an integer id")
            }
            guard let id = value.int, id >= 0, id < maxID else {
                throw fail("'model.vocab' entry '\(token)' has id \(value.brief), expected an integer in 0..<\(maxID)")
            }
            if let other = holder.updateValue(token, forKey: id) {
                throw fail("'model.vocab' gives id \(id) to both \(other.debugDescription) and \(token.debugDescription)")
            }
            entries.append((token, id))
        }
        guard !entries.isEmpty else { throw fail("'model.vocab' is empty") }
        var added: [(content: String, id: Int, special: Bool)] = []
        if let a = root["added_tokens"], !a.isNull {
            guard let items = a.array else { throw fail("'added_tokens' is \(a.typeName), expected an array") }
            for (k, item) in items.enumerated() {
                guard let content = item["content"]?.string else { throw fail("added_tokens[\(k)] has no string 'content'") }
                guard let id = item["id"]?.int, id >= 0, id < maxID else { throw fail("added_tokens[\(k)] has no valid integer 'id'") }
                added.append((content, id, try flag(item, "special", "added_tokens[\(k)]", false, fail)))
            }
        }
        let size = max(entries.map { $0.1 }.max() ?? -1, added.map { $0.id }.max() ?? -1) + 1
        guard size > 0 else { throw fail("'model.vocab' is empty") }
        // Ids are dense in real files; a stray huge id would allocate a mostly empty table.
        let defined = entries.count + added.count
        guard size <= 2 * defined + 1024 else { throw fail("token ids run up to \(size - 1), but only \(defined) tokens are defined") }
        var tokens = [String](repeating: "", count: size)
        for (t, id) in entries { tokens[id] = t }
        for a in added { tokens[a.id] = a.content }

        // A merge must join two vocabulary tokens into a third, as the tokenizers library requires.
        let spelled = Set(entries.map { Array($0.0.utf8) })
        func known(_ k: Int, _ parts: String...) throws {
            for p in parts where !spelled.contains(Array(p.utf8)) {
                throw fail("merges[\(k)] names \(p.debugDescription), which is not in 'model.vocab'")
            }
        }
        var merges: [(String, String)] = []
        merges.reserveCapacity(mergeItems.count)
        for (k, item) in mergeItems.enumerated() {
            switch item {
            case .string(let s):
                // Old format "a b": the tokens themselves never hold a plain space.
                let parts = s.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw fail("merges[\(k)] '\(s)' is not of the form 'a b'") }
                try known(k, String(parts[0]), String(parts[1]), String(parts[0]) + String(parts[1]))
                merges.append((String(parts[0]), String(parts[1])))
            case .array(let pair):
                guard pair.count == 2, let a = pair[0].string, let b = pair[1].string else {
                    throw fail("merges[\(k)] is not a pair of strings")
                }
                try known(k, a, b, a + b)
                merges.append((a, b))
            default:
                throw fail("merges[\(k)] is \(item.typeName), expected a string 'a b' or a pair")
            }
        }

        // Pre-tokenizer and normaliser decide the kind.
        let pre = try parsePreTokenizer(root["pre_tokenizer"], fail)
        try checkDecoder(root["decoder"], "decoder", fail)
        let usesByteLevel = containsType(root["pre_tokenizer"], "ByteLevel") || containsType(root["decoder"], "ByteLevel")
        let kind: TokenizerSpec.Kind = usesByteLevel ? .byteLevelBPE : .sentencePieceBPE
        var normalization = UnicodeNormalization.none
        var prependMetaspace = false
        try parseNormalizer(root["normalizer"], &normalization, &prependMetaspace, fail)
        // The "▁" prefix follows transformers, which rebuilds sentencepiece-style (Llama)
        // tokenizers around a Metaspace pre-tokenizer: no "▁" is added to text that already
        // starts with a space, and with `legacy: false` only at the very start of the text. The
        // `tokenizers` library run on a `Prepend("▁")` normaliser would add it unconditionally;
        // the reference ids (stories260K.jsonl: "  leading spaces") show transformers' behaviour.
        var prefixRule = PrefixSpaceRule.metaspaceAlways
        if case .metaspace(let prepend, let firstOnly) = pre.special {
            prependMetaspace = prependMetaspace || prepend
            if firstOnly { prefixRule = .metaspaceFirst }
        }

        var spec = TokenizerSpec(kind: kind, tokens: tokens, merges: merges, preTokenizer: pre.kind,
                                 normalization: normalization)
        spec.addPrefixSpace = kind == .sentencePieceBPE ? prependMetaspace : pre.byteLevelPrefixSpace
        spec.prefixSpaceRule = prefixRule
        spec.byteFallback = try flag(model, "byte_fallback", "model", false, fail)
        spec.fuseUnk = try flag(model, "fuse_unk", "model", false, fail)
        spec.ignoreMerges = try flag(model, "ignore_merges", "model", false, fail)
        var spellings: [[UInt8]: Int] = [:]
        for (id, t) in tokens.enumerated() where !t.isEmpty && spellings[Array(t.utf8)] == nil { spellings[Array(t.utf8)] = id }
        func idOf(_ s: String?) -> Int? { s.flatMap { spellings[Array($0.utf8)] } }
        if let u = model["unk_token"]?.string { spec.unk = idOf(u) }
        for a in added { spec.specialTokens[a.content] = a.id }
        spec.controlTokens = Set(added.filter { $0.special }.map { $0.id })

        // BOS from the post-processor template ("<s> $A"), overridden by tokenizer_config.json.
        if let single = root["post_processor"]?["single"]?.array ?? firstTemplate(root["post_processor"]) {
            if let first = single.first?["SpecialToken"]?["id"]?.string, let id = idOf(first) {
                spec.bos = id
                spec.addBOS = true
            }
            if single.count > 1, let last = single.last?["SpecialToken"]?["id"]?.string, let id = idOf(last) {
                spec.eos = id
                spec.addEOS = true
            }
        }

        let dir = url.deletingLastPathComponent()
        let configURL = dir.appendingPathComponent("tokenizer_config.json")
        if FileManager.default.fileExists(atPath: configURL.path) {
            let config = try readJSON(configURL)
            let cfile = configURL.path
            guard case .object = config else { throw TokenizerError(file: cfile, "top level is \(config.typeName), expected an object") }
            func tokenName(_ key: String) throws -> (present: Bool, name: String?) {
                guard let v = config[key] else { return (false, nil) }
                switch v {
                case .null: return (true, nil)
                case .string(let s): return (true, s)
                case .object: return (true, v["content"]?.string)
                default: throw TokenizerError(file: cfile, "'\(key)' is \(v.typeName), expected a string, object or null")
                }
            }
            let b = try tokenName("bos_token")
            if b.present {
                spec.bos = idOf(b.name)
                if spec.bos == nil { spec.addBOS = false }
            }
            let e = try tokenName("eos_token")
            if e.present { spec.eos = idOf(e.name) ?? spec.eos }
            if config["legacy"]?.bool == false, spec.kind == .sentencePieceBPE { spec.prefixSpaceRule = .metaspaceFirst }
            if let v = config["add_bos_token"]?.bool { spec.addBOS = v && spec.bos != nil }
            if let v = config["add_eos_token"]?.bool { spec.addEOS = v && spec.eos != nil }
            if let t = config["chat_template"] {
                if let s = t.string {
                    spec.chatTemplate = s
                } else if let list = t.array {
                    // [{name, template}]: prefer "default".
                    let named = list.compactMap { item -> (String, String)? in
                        guard let n = item["name"]?.string, let tt = item["template"]?.string else { return nil }
                        return (n, tt)
                    }
                    spec.chatTemplate = named.first { $0.0 == "default" }?.1 ?? named.first?.1
                }
            }
        }
        // A separate chat_template.jinja (newer transformers) wins when there is none inline.
        let jinjaURL = dir.appendingPathComponent("chat_template.jinja")
        if spec.chatTemplate == nil, let s = try? String(contentsOf: jinjaURL, encoding: .utf8) { spec.chatTemplate = s }

        var extra: Set<Int> = []
        let genURL = dir.appendingPathComponent("generation_config.json")
        if FileManager.default.fileExists(atPath: genURL.path), let gen = try? readJSON(genURL) {
            if let one = gen["eos_token_id"]?.int { extra.insert(one) }
            for v in gen["eos_token_id"]?.array ?? [] { if let i = v.int { extra.insert(i) } }
        }
        extra.formUnion(endOfTurnIDs(spec.specialTokens))
        spec.extraEOS = extra.filter { $0 >= 0 && $0 < tokens.count }
        if spec.eos == nil { spec.eos = defaultEOS(spec.specialTokens) }
        return spec
    }

    // MARK: - llama2.c tokenizer.bin

    /// Loads a llama2.c `tokenizer.bin`: int32 max_token_length, then per token float32 score,
    /// int32 length and the bytes. Tokens are sentencepiece pieces with "▁" already turned into
    /// spaces; BOS = 1 ("\n<s>\n"), EOS = 2, byte tokens `<0xNN>` at 3...258.
    ///
    /// llama2.c's encoder differs from HF's by design: it merges by the highest *score* of the
    /// merged piece (no merge list), always adds the dummy-prefix space, and never parses
    /// special tokens written in the text. This loader reproduces that algorithm.
    public static func load(llama2cTokenizer url: URL, vocabSize: Int) throws -> Tokenizer {
        let file = url.path
        func fail(_ m: String) -> TokenizerError { TokenizerError(file: file, m) }
        guard vocabSize > 0 else { throw fail("vocabulary size \(vocabSize) must be positive") }
        let data: [UInt8]
        do { data = [UInt8](try Data(contentsOf: url)) } catch { throw fail("cannot read the file: \(OutputFile.reason(error))") }
        var p = 0
        func int32() throws -> Int32 {
            guard p + 4 <= data.count else { throw fail("truncated at byte \(p)") }
            let v = UInt32(data[p]) | UInt32(data[p + 1]) << 8 | UInt32(data[p + 2]) << 16 | UInt32(data[p + 3]) << 24
            p += 4
            return Int32(bitPattern: v)
        }
        let maxLen = try int32()
        guard maxLen > 0 else { throw fail("max_token_length \(maxLen) is not positive") }
        var tokens: [String] = []
        var scores: [Float] = []
        tokens.reserveCapacity(min(vocabSize, data.count / 8))  // a bogus size cannot allocate much
        for i in 0..<vocabSize {
            guard p + 8 <= data.count else { throw fail("truncated: only \(i) of \(vocabSize) tokens") }
            let score = Float(bitPattern: UInt32(bitPattern: try int32()))
            let len = Int(try int32())
            guard len >= 0, len <= data.count - p else { throw fail("token \(i): length \(len) runs past the end of the file") }
            var t = String(decoding: data[p..<(p + len)], as: UTF8.self)
            p += len
            if t == "\n<s>\n" { t = "<s>" } else if t == "\n</s>\n" { t = "</s>" }
            t = t.replacingOccurrences(of: " ", with: "\u{2581}")
            tokens.append(t)
            scores.append(score)
        }
        var spec = TokenizerSpec(kind: .sentencePieceBPE, tokens: tokens, scores: scores, preTokenizer: .none)
        spec.controlTokens = Set([1, 2].filter { $0 < vocabSize })
        spec.bos = vocabSize > 1 ? 1 : nil
        spec.eos = vocabSize > 2 ? 2 : nil
        spec.unk = 0
        spec.addBOS = spec.bos != nil
        spec.byteFallback = true
        spec.addPrefixSpace = true
        spec.prefixSpaceRule = .always  // llama2.c always adds the dummy prefix
        do { return try Tokenizer(spec: spec) } catch let e as TokenizerError { throw fail(e.message) }
    }

    // MARK: - GGUF metadata

    /// Builds a tokenizer from the `tokenizer.ggml.*` GGUF keys. `model` is
    /// `tokenizer.ggml.model` ("gpt2" = byte-level BPE, "llama" = sentencepiece with scores),
    /// `pre` is `tokenizer.ggml.pre`, `merges` are "a b" strings. Token type 3 (control) and
    /// 4 (user-defined) are split out of the text first; type 2 is the unknown token.
    public static func fromGGUFMetadata(model: String, pre: String?, tokens: [String], merges: [String],
                                        scores: [Float]?, tokenTypes: [Int32]?, bos: Int?, eos: Int?,
                                        addBOS: Bool?, chatTemplate: String?,
                                        addSpacePrefix: Bool? = nil, unk: Int? = nil,
                                        extraEOS: [Int] = []) throws -> Tokenizer {
        let spec = try specFromGGUFMetadata(model: model, pre: pre, tokens: tokens, merges: merges, scores: scores,
                                            tokenTypes: tokenTypes, bos: bos, eos: eos, addBOS: addBOS,
                                            chatTemplate: chatTemplate, addSpacePrefix: addSpacePrefix,
                                            unk: unk, extraEOS: extraEOS)
        do { return try Tokenizer(spec: spec) } catch let e as TokenizerError {
            throw TokenizerError(file: "GGUF metadata", e.message)
        }
    }

    /// The spec `fromGGUFMetadata` builds, for callers that want to adjust it first (e.g. set
    /// `preTokenizer = .smollm` for llama.cpp's digit splitting, see below).
    public static func specFromGGUFMetadata(model: String, pre: String?, tokens: [String], merges: [String],
                                            scores: [Float]?, tokenTypes: [Int32]?, bos: Int?, eos: Int?,
                                            addBOS: Bool?, chatTemplate: String?,
                                            addSpacePrefix: Bool? = nil, unk: Int? = nil,
                                            extraEOS: [Int] = []) throws -> TokenizerSpec {
        func fail(_ m: String) -> TokenizerError { TokenizerError(file: "GGUF metadata", m) }
        guard !tokens.isEmpty else { throw fail("tokenizer.ggml.tokens is empty") }
        if let tt = tokenTypes, tt.count != tokens.count {
            throw fail("tokenizer.ggml.token_type has \(tt.count) entries for \(tokens.count) tokens")
        }
        var spec: TokenizerSpec
        switch model {
        case "gpt2":
            let preTok: PreTokenizer
            switch pre ?? "default" {
            case "default", "gpt2", "gpt-2", "phi-2", "olmo", "jais", "roberta-bpe": preTok = .gpt2
            case "smollm", "starcoder", "refact":
                // These tokenizers split every digit out first (HF `Digits`, llama.cpp's "\p{N}"
                // pass). transformers, loading the tokenizer from a GGUF, uses the plain GPT-2
                // regex instead, and the project's reference ids (smollm2.jsonl, the SmolLM2
                // reference run) were made that way, so we follow it. The two differ only for a
                // run of 2+ whitespace before a digit ("and  2": GPT-2 gives "Ġ","Ġ2" ->
                // [Ġ,Ġ,2]; with digit splitting "ĠĠ","2"). Set `.smollm` on the spec for the
                // llama.cpp / original tokenizer.json behaviour.
                preTok = .gpt2
            case "qwen2", "deepseek-r1-qwen", "qwen", "qwen3": preTok = .qwen2
            case "llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral": preTok = .llama3
            default:
                throw fail("unsupported tokenizer.ggml.pre '\(pre ?? "")' (supported: default, gpt2, smollm, starcoder, qwen2, llama3, llama-bpe)")
            }
            var pairs: [(String, String)] = []
            pairs.reserveCapacity(merges.count)
            for (k, m) in merges.enumerated() {
                let parts = m.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw fail("tokenizer.ggml.merges[\(k)] '\(m)' is not of the form 'a b'") }
                pairs.append((String(parts[0]), String(parts[1])))
            }
            spec = TokenizerSpec(kind: .byteLevelBPE, tokens: tokens, merges: pairs, preTokenizer: preTok)
            spec.addBOS = addBOS ?? false
            spec.ignoreMerges = preTok == .llama3
        case "llama":
            guard let scores else { throw fail("tokenizer.ggml.model 'llama' needs tokenizer.ggml.scores") }
            guard scores.count == tokens.count else {
                throw fail("tokenizer.ggml.scores has \(scores.count) entries for \(tokens.count) tokens")
            }
            spec = TokenizerSpec(kind: .sentencePieceBPE, tokens: tokens, scores: scores, preTokenizer: .none)
            spec.addBOS = addBOS ?? true
            spec.byteFallback = true
            spec.addPrefixSpace = addSpacePrefix ?? true
            spec.prefixSpaceRule = .always  // llama.cpp: a space before every text fragment
        default:
            throw fail("unsupported tokenizer.ggml.model '\(model)' (supported: gpt2, llama)")
        }
        var control = Set<Int>()
        if let tt = tokenTypes {
            for (id, t) in tt.enumerated() {
                if t == 3 || t == 4 { spec.specialTokens[tokens[id]] = id }
                if t == 3 { control.insert(id) }
                if t == 2 && spec.unk == nil { spec.unk = id }
            }
        } else {
            // No types: treat "<|...|>" tokens as control tokens.
            for (id, t) in tokens.enumerated() where t.hasPrefix("<|") && t.hasSuffix("|>") && t.count > 4 {
                spec.specialTokens[t] = id
                control.insert(id)
            }
        }
        spec.controlTokens = control
        if let unk { spec.unk = unk }
        spec.bos = bos
        spec.eos = eos ?? defaultEOS(spec.specialTokens)
        if spec.bos == nil { spec.addBOS = false }
        spec.extraEOS = Set(extraEOS).union(endOfTurnIDs(spec.specialTokens)).filter { $0 >= 0 && $0 < tokens.count }
        spec.chatTemplate = chatTemplate
        return spec
    }

    // MARK: - Helpers

    /// Tokens that end a turn or a text in the common chat formats.
    static let endOfTurnNames = ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<end_of_turn>", "<|end|>", "</s>"]

    static func endOfTurnIDs(_ specials: [String: Int]) -> Set<Int> {
        Set(endOfTurnNames.compactMap { specials[$0] })
    }

    static func defaultEOS(_ specials: [String: Int]) -> Int? {
        for name in ["</s>", "<|endoftext|>", "<|end_of_text|>", "<|eot_id|>", "<|im_end|>"] {
            if let id = specials[name] { return id }
        }
        return nil
    }

    /// A JSON file, any failure a one-line TokenizerError "<path>: not valid JSON: <why> at byte N".
    static func readJSON(_ url: URL) throws -> JSON {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw TokenizerError(file: url.path, "cannot read the file: \(OutputFile.reason(error))")
        }
        do { return try data.withUnsafeBytes { try JSON.parse($0) } } catch let e as JSON.SyntaxError {
            throw TokenizerError(file: url.path, "not valid JSON: \(e)")
        }
    }

    private static func containsType(_ v: JSON?, _ type: String) -> Bool {
        guard let v else { return false }
        if v["type"]?.string == type { return true }
        for key in ["pretokenizers", "decoders", "normalizers"] {
            for item in v[key]?.array ?? [] where containsType(item, type) { return true }
        }
        return false
    }

    private static func firstTemplate(_ pp: JSON?) -> [JSON]? {
        // A Sequence post-processor holding a TemplateProcessing.
        for item in pp?["processors"]?.array ?? [] {
            if let s = item["single"]?.array { return s }
        }
        return nil
    }

    private enum PreSpecial { case none, metaspace(prepend: Bool, firstOnly: Bool) }

    private static let gpt2Regex = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    private static let qwen2Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    private static let llama3Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// Maps the tokenizer.json pre_tokenizer onto one of the known scanners; anything else is an
    /// error rather than a silently different tokenisation.
    private static func parsePreTokenizer(_ v: JSON?, _ fail: (String) -> TokenizerError) throws
        -> (kind: PreTokenizer, special: PreSpecial, byteLevelPrefixSpace: Bool) {
        guard let v, !v.isNull else { return (.none, .none, false) }
        var steps: [JSON] = []
        if v["type"]?.string == "Sequence" {
            guard let items = v["pretokenizers"]?.array else { throw fail("'pre_tokenizer' Sequence has no 'pretokenizers' array") }
            steps = items
        } else {
            steps = [v]
        }
        var regex: PreTokenizer?
        var digits = false
        var byteLevelRegex = false
        var prefixSpace = false
        var special = PreSpecial.none
        for s in steps {
            let type = s["type"]?.string ?? "?"
            switch type {
            case "ByteLevel":
                if try flag(s, "use_regex", "pre_tokenizer", true, fail) { byteLevelRegex = true }
                prefixSpace = try flag(s, "add_prefix_space", "pre_tokenizer", false, fail)
            case "Split":
                guard let pattern = s["pattern"]?["Regex"]?.string else { throw fail("unsupported 'pre_tokenizer' Split without a Regex pattern") }
                let behavior = s["behavior"]?.string ?? "Isolated"
                guard behavior == "Isolated", !(try flag(s, "invert", "pre_tokenizer", false, fail)) else {
                    throw fail("unsupported 'pre_tokenizer' Split behavior '\(behavior)'")
                }
                switch pattern {
                case qwen2Regex: regex = .qwen2
                case llama3Regex: regex = .llama3
                case gpt2Regex: regex = .gpt2
                default: throw fail("unsupported 'pre_tokenizer' Split regex \(pattern.debugDescription)")
                }
            case "Digits":
                guard try flag(s, "individual_digits", "pre_tokenizer", false, fail) else { throw fail("unsupported 'pre_tokenizer' Digits without individual_digits") }
                digits = true
            case "Metaspace":
                if try flag(s, "split", "pre_tokenizer", false, fail) { throw fail("unsupported 'pre_tokenizer' Metaspace with split: true") }
                let scheme = s["prepend_scheme"]?.string
                let prepend = try scheme.map { $0 != "never" } ?? flag(s, "add_prefix_space", "pre_tokenizer", true, fail)
                special = .metaspace(prepend: prepend, firstOnly: scheme == "first")
            default:
                throw fail("unsupported 'pre_tokenizer' type '\(type)'")
            }
        }
        if byteLevelRegex {
            if regex != nil { throw fail("unsupported 'pre_tokenizer': a Split regex followed by ByteLevel(use_regex: true)") }
            regex = .gpt2
        }
        if digits {
            guard regex == .gpt2 else { throw fail("unsupported 'pre_tokenizer': Digits without the GPT-2 regex") }
            regex = .smollm
        }
        return (regex ?? .none, special, prefixSpace)
    }

    /// A boolean field: absent or null gives `default`; any other type is an error naming it.
    static func flag(_ v: JSON, _ key: String, _ path: String, _ default: Bool, _ fail: (String) -> TokenizerError) throws -> Bool {
        guard let x = v[key], !x.isNull else { return `default` }
        guard let b = x.bool else { throw fail("'\(path).\(key)' is \(x.typeName) \(x.brief), expected a boolean") }
        return b
    }

    /// The decoders the engine reproduces (its own decoding follows the tokenizer's kind); any
    /// other type would decode differently, so it is refused.
    private static func checkDecoder(_ v: JSON?, _ path: String, _ fail: (String) -> TokenizerError) throws {
        guard let v, !v.isNull else { return }
        guard case .object = v else { throw fail("'\(path)' is \(v.typeName), expected an object") }
        guard let type = v["type"]?.string else { throw fail("'\(path)' has no string 'type'") }
        switch type {
        case "Sequence":
            guard let items = v["decoders"]?.array else { throw fail("'\(path)' Sequence has no 'decoders' array") }
            for (i, item) in items.enumerated() { try checkDecoder(item, "\(path).decoders[\(i)]", fail) }
        case "ByteLevel", "Metaspace":
            for key in ["add_prefix_space", "trim_offsets", "use_regex", "split"] { _ = try flag(v, key, path, false, fail) }
        case "Replace", "ByteFallback", "Fuse", "Strip": break
        default: throw fail("unsupported '\(path)' type \(type.debugDescription) (supported: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence)")
        }
    }

    private static func parseNormalizer(_ v: JSON?, _ form: inout UnicodeNormalization, _ prepend: inout Bool,
                                        _ fail: (String) -> TokenizerError) throws {
        guard let v, !v.isNull else { return }
        let type = v["type"]?.string ?? "?"
        switch type {
        case "Sequence":
            for item in v["normalizers"]?.array ?? [] { try parseNormalizer(item, &form, &prepend, fail) }
        case "NFC": form = .nfc
        case "NFD": form = .nfd
        case "NFKC": form = .nfkc
        case "NFKD": form = .nfkd
        case "Prepend":
            guard v["prepend"]?.string == "\u{2581}" else { throw fail("unsupported 'normalizer' Prepend of something other than '▁'") }
            prepend = true
        case "Replace":
            // Only the sentencepiece " " -> "▁", which the sentencepiece kind does anyway.
            guard v["pattern"]?["String"]?.string == " ", v["content"]?.string == "\u{2581}" else {
                throw fail("unsupported 'normalizer' Replace (only ' ' -> '▁')")
            }
        default:
            throw fail("unsupported 'normalizer' type '\(type)'")
        }
    }
}
