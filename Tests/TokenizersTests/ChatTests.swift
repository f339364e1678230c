import Foundation
import XCTest
@testable import Tokenizers

final class ChatTests: XCTestCase {
    /// The SmolLM2 reference prompts: the model's own template (from the GGUF), rendered with
    /// add_generation_prompt=True and tokenised, must give transformers' input_ids exactly.
    func testSmolLM2ReferencePrompts() throws {
        let tok: Tokenizer
        do { tok = try Shared.smollm2.get() } catch {
            XCTFail("SmolLM2 GGUF unavailable (\(error)); run `make model`")
            return
        }
        let jinja = try XCTUnwrap(tok.chatTemplate, "the GGUF has tokenizer.chat_template")
        let template = ChatTemplate.detect(from: jinja, modelHint: "llama")
        XCTAssertEqual(template, .chatML(defaultSystem: "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
                                         thinking: nil))
        let data = try Data(contentsOf: fixtures.appendingPathComponent("smollm2/reference.json"))
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let cases = try XCTUnwrap(root["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 4)
        for c in cases {
            let prompt = try XCTUnwrap(c["prompt"] as? String)
            let want = try XCTUnwrap(c["input_ids"] as? [Int])
            let text = template.render([.user(prompt)], addGenerationPrompt: true)
            XCTAssertEqual(tok.encode(text), want, prompt)
            XCTAssertEqual(want.first, 1)  // <|im_start|>
        }
        // The rendered text itself.
        XCTAssertEqual(template.render([.user("Hi")], addGenerationPrompt: true),
                       "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
                       + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        // A given system message replaces the default.
        XCTAssertEqual(template.render([.system("Be brief."), .user("Hi")], addGenerationPrompt: false),
                       "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n")
    }

    /// Qwen3: no default system prompt; enable_thinking=false appends an empty think block.
    /// Both renderings are lines of the Qwen3 fixture, so their ids are checked too.
    func testQwen3() throws {
        let tok = try Shared.qwen3.get()
        let t = ChatTemplate.detect(from: tok.chatTemplate, modelHint: "Qwen3-0.6B")
        XCTAssertEqual(t, .chatML(defaultSystem: nil, thinking: true))
        let prompt = t.render([.user("hi")], addGenerationPrompt: true)
        XCTAssertEqual(prompt, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertEqual(t.render([.user("hi")], addGenerationPrompt: true, enableThinking: true), prompt)
        let noThink = t.render([.user("hi")], addGenerationPrompt: true, enableThinking: false)
        XCTAssertEqual(noThink, prompt + "<think>\n\n</think>\n\n")

        let lines = try loadJSONL("qwen3.jsonl")
        let chatLine = try XCTUnwrap(lines.first { $0.text == prompt })
        XCTAssertEqual(tok.encode(prompt), chatLine.ids)
        let thinkLine = try XCTUnwrap(lines.first { $0.text == "<think>\n\n</think>\n\n" })
        XCTAssertEqual(tok.encode(noThink), chatLine.ids + thinkLine.ids)
        XCTAssertEqual(tok.encode(noThink).suffix(4), [151_667, 271, 151_668, 271])
    }

    /// Qwen3's template drops the reasoning of earlier assistant turns and keeps the last one's.
    func testQwen3MultiTurnThinking() {
        let t = ChatTemplate.chatML(defaultSystem: nil, thinking: true)
        let history: [ChatMessage] = [
            .system("S"),
            .user("Q1"),
            .assistant("<think>\nr1\n</think>\n\nA1"),
            .user("Q2"),
            .assistant("<think>\nr2\n</think>\n\nA2"),
        ]
        XCTAssertEqual(t.render(history, addGenerationPrompt: false),
                       "<|im_start|>system\nS<|im_end|>\n"
                       + "<|im_start|>user\nQ1<|im_end|>\n"
                       + "<|im_start|>assistant\nA1<|im_end|>\n"
                       + "<|im_start|>user\nQ2<|im_end|>\n"
                       + "<|im_start|>assistant\n<think>\nr2\n</think>\n\nA2<|im_end|>\n")
    }

    func testDetection() {
        // Qwen2.5-style: the default system prompt is a literal in the template.
        let qwen25 = #"{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}{%- else %}{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}{%- endif %}"#
        XCTAssertEqual(ChatTemplate.detect(from: qwen25, modelHint: ""),
                       .chatML(defaultSystem: ChatTemplate.qwen25DefaultSystem, thinking: nil))
        XCTAssertEqual(ChatTemplate.detect(from: qwen25, modelHint: "").render([.user("x")], addGenerationPrompt: true),
                       "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
                       + "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n")
        // Qwen3-style: system only when given; a thinking switch.
        let qwen3 = #"{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}{%- endif %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\n\n</think>\n\n' }}{%- endif %}{%- endif %}"#
        XCTAssertEqual(ChatTemplate.detect(from: qwen3, modelHint: ""), .chatML(defaultSystem: nil, thinking: true))
        XCTAssertEqual(ChatTemplate.detect(from: "{{ bos_token }}<|start_header_id|>", modelHint: ""), .llama3(bos: "<|begin_of_text|>"))
        XCTAssertEqual(ChatTemplate.detect(from: "{{ bos_token + '[INST] ' }}", modelHint: ""), .llama2(bos: "<s>", eos: "</s>"))
        XCTAssertEqual(ChatTemplate.detect(from: "{{ messages }}", modelHint: "qwen3"), .plain)
        // No template: the hint decides.
        XCTAssertEqual(ChatTemplate.detect(from: nil, modelHint: "Qwen3-0.6B"), .chatML(defaultSystem: nil, thinking: true))
        XCTAssertEqual(ChatTemplate.detect(from: nil, modelHint: "Qwen2.5-0.5B-Instruct"),
                       .chatML(defaultSystem: ChatTemplate.qwen25DefaultSystem, thinking: nil))
        XCTAssertEqual(ChatTemplate.detect(from: nil, modelHint: "SmolLM2-135M-Instruct"),
                       .chatML(defaultSystem: ChatTemplate.smolLM2DefaultSystem, thinking: nil))
        XCTAssertEqual(ChatTemplate.detect(from: nil, modelHint: "stories260K"), .raw)
        XCTAssertEqual(ChatTemplate.detect(from: nil, modelHint: "something"), .plain)
    }

    func testFallbacks() {
        let msgs: [ChatMessage] = [.system("S"), .user("Q"), .assistant("A"), .user("Q2")]
        XCTAssertEqual(ChatTemplate.plain.render(msgs, addGenerationPrompt: true),
                       "System: S\nUser: Q\nAssistant: A\nUser: Q2\nAssistant:")
        XCTAssertEqual(ChatTemplate.raw.render([.user("Once upon")], addGenerationPrompt: true), "Once upon")
        XCTAssertEqual(ChatTemplate.llama2(bos: "<s>", eos: "</s>").render(msgs, addGenerationPrompt: true),
                       "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nQ [/INST] A </s><s>[INST] Q2 [/INST]")
        XCTAssertEqual(ChatTemplate.llama3(bos: "<|begin_of_text|>").render([.user(" Q ")], addGenerationPrompt: true),
                       "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nQ<|eot_id|>"
                       + "<|start_header_id|>assistant<|end_header_id|>\n\n")
        // A chatML template without a thinking switch ignores enableThinking.
        XCTAssertEqual(ChatTemplate.chatML(defaultSystem: nil, thinking: nil).render([.user("x")], addGenerationPrompt: true, enableThinking: false),
                       "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n")
    }
}
