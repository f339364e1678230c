import Backend
import Foundation
import Model

/// A continuous batch that requests join and leave between steps: `slots` sequences share every
/// forward step (the weights are read once per step for all of them); a submitted request waits
/// for a free slot, its prompt is prefilled in the same step as the others' next tokens, and a
/// finished or cancelled request frees its slot for the next one. `Generator.generate` runs one
/// to completion over a fixed list; a server submits and cancels between steps.
public final class GenerationBatch {
    let generator: Generator
    var model: LanguageModel { generator.model }
    /// Tokens each sequence may hold (prompt + generated).
    public let capacity: Int
    let cache: KVCache
    private var slots: [Slot]
    private var states: [Int: SequenceState] = [:]
    private var queue: [Int] = []
    private var nextTicket = 0

    /// One cache row of sequences: the request it holds and the tokens whose K/V it holds.
    struct Slot {
        var request: Int?
        var tokens: [Int] = []
        var promptLength = 0
        /// Positions of `tokens` already computed into the cache.
        var computed = 0
    }

    public init(generator: Generator, slots: Int, capacity: Int) throws {
        guard slots >= 1 else { throw GenerationError("a batch needs at least one sequence slot, got \(slots)") }
        guard capacity >= 2, capacity <= generator.model.config.contextLength else {
            throw GenerationError("sequence capacity \(capacity) is outside 2…\(generator.model.config.contextLength), the model's context")
        }
        self.generator = generator
        self.capacity = capacity
        cache = try KVCache(model: generator.model, sequences: slots, capacity: capacity)
        self.slots = Array(repeating: Slot(), count: slots)
    }

    /// Refuses a request a sequence of `capacity` tokens cannot hold, or with bad sampling.
    static func check(_ r: GenerationRequest, capacity: Int, context: Int) throws {
        try r.sampling.validate()
        guard !r.promptIDs.isEmpty else { throw GenerationError("empty prompt") }
        guard r.maxTokens >= 0 else { throw GenerationError("max tokens must be ≥ 0") }
        guard r.promptIDs.count + r.maxTokens <= capacity else {
            let limit = capacity == context ? "the model's context of \(context)" : "the batch's sequence capacity of \(capacity)"
            throw GenerationError("prompt of \(r.promptIDs.count) tokens + \(r.maxTokens) new tokens exceeds \(limit)")
        }
    }

    /// Queues a request and returns its ticket (0, 1, 2, … in submission order; the steering
    /// provider and the handlers name requests by it). Its sampling stream is seeded with its
    /// seed and, unless `seedIndex` is given, its ticket.
    public func submit(_ request: GenerationRequest, seedIndex: Int? = nil) throws -> Int {
        try Self.check(request, capacity: capacity, context: model.config.contextLength)
        let ticket = nextTicket
        nextTicket += 1
        var state = SequenceState(request: request, index: seedIndex ?? ticket, tokenizer: model.tokenizer, eos: Set(model.config.eosTokenIDs))
        state.ticket = ticket
        states[ticket] = state
        queue.append(ticket)
        return ticket
    }

    /// Drops a request, queued or running; its slot is free for the next step. Nothing is reported for it.
    public func cancel(_ ticket: Int) {
        queue.removeAll { $0 == ticket }
        for s in slots.indices where slots[s].request == ticket { slots[s].request = nil }
        states[ticket] = nil
    }

    /// No request queued or running.
    public var isIdle: Bool { queue.isEmpty && slots.allSatisfy { $0.request == nil } }
    /// Requests waiting for a slot, and sequences running.
    public var queued: Int { queue.count }
    public var running: Int { slots.filter { $0.request != nil }.count }

    /// Admits what fits, runs one forward step over every running sequence, and samples the next
    /// token of each sequence whose prompt is complete. `onToken` and `onFinish` get tickets.
    public func step(steering: Generator.SteeringProvider? = nil, onToken: Generator.TokenHandler? = nil,
                     onFinish: Generator.FinishHandler) throws {
        try admit(finish: onFinish)
        let live = slots.indices.filter { slots[$0].request != nil }
        if live.isEmpty { return }
        // Every decoding sequence's next token first, then prompt tokens up to the step's limit.
        var step = ForwardStep(ids: [], sequences: [], positions: [], logitRows: [])
        var rows = Generator.StepRows(requests: [], promptLengths: []), picks: [(slot: Int, row: Int)] = []
        var room = max(generator.maxStepTokens - live.filter { slots[$0].computed >= slots[$0].promptLength }.count, 1)
        for s in live {
            let slot = slots[s]
            let decoding = slot.computed >= slot.promptLength
            let n = decoding ? 1 : min(slot.tokens.count - slot.computed, room)
            if n == 0 { continue }
            if !decoding { room -= n }
            for p in slot.computed..<slot.computed + n {
                step.ids.append(slot.tokens[p])
                step.sequences.append(s)
                step.positions.append(p)
                rows.promptLengths.append(slot.promptLength)
                rows.requests.append(slot.request!)
            }
            slots[s].computed += n
            if slots[s].computed == slot.tokens.count {
                picks.append((s, step.ids.count - 1))
                step.logitRows.append(step.ids.count - 1)
            }
        }
        // A step holding only part of a prompt still needs one logit row; its result is unused.
        let unused = step.logitRows.isEmpty
        if unused { step.logitRows = [0] }
        let logits = try model.forward(step, cache: cache, steering: try steering?(step, rows) ?? [:], scratch: generator.scratch)
        if unused { return }
        let owners = picks.map { slots[$0.slot].request! }
        let next = try generator.pick(logits, rows: picks.count, rowOf: Array(picks.indices), states: owners.map { states[$0]! },
                                      update: { i, s in states[owners[i]] = s })
        for ((s, _), (ticket, id)) in zip(picks, zip(owners, next)) {
            states[ticket]!.accept(id, onToken: onToken)
            if states[ticket]!.finished {
                slots[s].request = nil
                try finish(ticket, onFinish)
            } else {
                slots[s].tokens.append(id)
            }
        }
    }

    private func finish(_ ticket: Int, _ onFinish: Generator.FinishHandler) throws {
        let r = states.removeValue(forKey: ticket)!.result()
        try onFinish(ticket, r)
    }

    /// Fills free slots from the queue, in order. A new request copies the longest prompt head it
    /// shares with a slot's computed tokens (at least `minSharedHead`, and leaving it one token of
    /// its own, whose logits it needs). If a slot still prefilling shares a longer head, the queue
    /// waits a step for it, so rollouts of one prompt prefill it once.
    private func admit(finish onFinish: Generator.FinishHandler) throws {
        while let i = queue.first {
            if states[i]!.finished {  // asked for no tokens
                queue.removeFirst()
                try finish(i, onFinish)
                continue
            }
            guard let free = slots.indices.first(where: { slots[$0].request == nil }) else { return }
            let prompt = states[i]!.request.promptIDs
            func shared(_ d: Slot, upTo limit: Int) -> Int {
                let n = min(limit, prompt.count - 1, d.promptLength - 1)
                var k = 0
                while k < n, d.tokens[k] == prompt[k] { k += 1 }
                return k
            }
            // Prefer the free slot itself (no copy) among equals.
            let order = [free] + slots.indices.filter { $0 != free }
            let best = order.map { (slot: $0, length: shared(slots[$0], upTo: slots[$0].computed)) }.max { $0.length < $1.length }!
            let pending = slots.indices.filter { slots[$0].request != nil && slots[$0].computed < slots[$0].promptLength }
            if pending.contains(where: { shared(slots[$0], upTo: slots[$0].promptLength) >= max(best.length, 0) + generator.minSharedHead }) { return }
            let copied = best.length >= generator.minSharedHead ? best.length : 0
            if copied > 0, best.slot != free {
                try model.copyCache(cache, from: best.slot, to: [free], length: copied)
            }
            slots[free] = Slot(request: i, tokens: prompt, promptLength: prompt.count, computed: copied)
            queue.removeFirst()
        }
    }
}
