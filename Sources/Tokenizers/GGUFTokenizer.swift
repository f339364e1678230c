import Formats
import Foundation

extension Tokenizer {
    /// The tokenizer embedded in a GGUF file (`tokenizer.ggml.*` metadata).
    public static func load(gguf g: GGUFFile) throws -> Tokenizer {
        do { return try Tokenizer(spec: specFromGGUF(g)) } catch let e as TokenizerError {
            throw TokenizerError(file: g.url.path, e.message)
        }
    }

    /// The spec of the embedded tokenizer, for callers that adjust it first.
    public static func specFromGGUF(_ g: GGUFFile) throws -> TokenizerSpec {
        let m = g.metadata
        guard let model = m["tokenizer.ggml.model"]?.string, let tokens = m["tokenizer.ggml.tokens"]?.strings else {
            throw TokenizerError(file: g.url.path, "no tokenizer in the GGUF metadata (tokenizer.ggml.model / tokenizer.ggml.tokens)")
        }
        let extraEOS = ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"].compactMap { m[$0]?.int }
        return try specFromGGUFMetadata(
            model: model, pre: m["tokenizer.ggml.pre"]?.string, tokens: tokens,
            merges: m["tokenizer.ggml.merges"]?.strings ?? [], scores: m["tokenizer.ggml.scores"]?.floats,
            tokenTypes: m["tokenizer.ggml.token_type"]?.ints.map { $0.map { Int32(truncatingIfNeeded: $0) } },
            bos: m["tokenizer.ggml.bos_token_id"]?.int, eos: m["tokenizer.ggml.eos_token_id"]?.int,
            addBOS: m["tokenizer.ggml.add_bos_token"]?.bool, chatTemplate: m["tokenizer.chat_template"]?.string,
            addSpacePrefix: m["tokenizer.ggml.add_space_prefix"]?.bool, unk: m["tokenizer.ggml.unknown_token_id"]?.int,
            extraEOS: extraEOS)
    }
}
