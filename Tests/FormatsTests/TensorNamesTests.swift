import XCTest
@testable import Formats

final class TensorNamesTests: XCTestCase {
    func testMapping() {
        let pairs = [
            ("token_embd.weight", "model.embed_tokens.weight"), ("output_norm.weight", "model.norm.weight"),
            ("output.weight", "lm_head.weight"), ("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight"),
            ("blk.12.attn_k.bias", "model.layers.12.self_attn.k_proj.bias"), ("blk.3.attn_v.weight", "model.layers.3.self_attn.v_proj.weight"),
            ("blk.3.attn_output.weight", "model.layers.3.self_attn.o_proj.weight"),
            ("blk.3.attn_q_norm.weight", "model.layers.3.self_attn.q_norm.weight"),
            ("blk.3.attn_k_norm.weight", "model.layers.3.self_attn.k_norm.weight"),
            ("blk.3.ffn_gate.weight", "model.layers.3.mlp.gate_proj.weight"), ("blk.3.ffn_up.weight", "model.layers.3.mlp.up_proj.weight"),
            ("blk.3.ffn_down.weight", "model.layers.3.mlp.down_proj.weight"), ("blk.3.attn_norm.weight", "model.layers.3.input_layernorm.weight"),
            ("blk.3.ffn_norm.weight", "model.layers.3.post_attention_layernorm.weight"),
        ]
        for (g, h) in pairs {
            XCTAssertEqual(TensorNames.hfName(forGGUF: g), h)
            XCTAssertEqual(TensorNames.ggufName(forHF: h), g)
        }
        for t in TensorNames.LayerTensor.allCases {
            XCTAssertEqual(TensorNames.hfName(forGGUF: TensorNames.gguf(t, layer: 7)), TensorNames.hf(t, layer: 7))
            XCTAssertEqual(TensorNames.ggufName(forHF: TensorNames.hf(t, layer: 7, bias: true)), TensorNames.gguf(t, layer: 7, bias: true))
        }
        for bad in ["rope_freqs.weight", "blk.x.attn_q.weight", "blk.1.attn_q", "blk.1.nope.weight", "blk.-1.attn_q.weight", ""] {
            XCTAssertNil(TensorNames.hfName(forGGUF: bad), bad)
        }
        XCTAssertNil(TensorNames.ggufName(forHF: "model.layers.0.mlp.act_fn.weight"))
    }
}
