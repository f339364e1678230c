import Backend

/// What the ops a forward step records depend on besides the contents of its input buffers (ids,
/// positions, cache rows, RoPE table, logit rows, steering scales), which the step writes anew
/// each time. Two steps with equal keys record the same ops on the same tensors: a decode step,
/// token after token. Tensors are compared by identity and held, so none can be freed and another
/// take its place under an equal key.
struct StepRecordingKey {
    let model: LanguageModel
    let scratch: ForwardScratch
    /// Bumped whenever the scratch reallocates its buffers.
    let scratchGeneration: Int
    let tokens: Int
    let logitRows: Int
    let sequenceRuns: Int
    /// Backend.attentionBucket of the step's context bound.
    let attentionBucket: Int
    /// Per steered layer (ascending) and site (act, residual): the tensors and the mode.
    let steering: [(layer: Int, tensors: [Tensor?], multiplicative: [Bool])]

    init(model: LanguageModel, scratch: ForwardScratch, tokens: Int, logitRows: Int, sequenceRuns: Int, attentionBucket: Int, steering: [Int: LayerSteering]) {
        self.model = model
        self.scratch = scratch
        scratchGeneration = scratch.generation
        self.tokens = tokens
        self.logitRows = logitRows
        self.sequenceRuns = sequenceRuns
        self.attentionBucket = attentionBucket
        self.steering = steering.keys.sorted().map { l in
            let sites = [steering[l]!.act, steering[l]!.residual]
            return (l, sites.flatMap { [$0?.scales, $0?.vector, $0?.vectorRows] }, sites.map { $0?.multiplicative ?? false })
        }
    }

    func matches(_ o: StepRecordingKey) -> Bool {
        model === o.model && scratch === o.scratch && scratchGeneration == o.scratchGeneration && tokens == o.tokens && logitRows == o.logitRows
            && sequenceRuns == o.sequenceRuns && attentionBucket == o.attentionBucket && steering.count == o.steering.count
            && zip(steering, o.steering).allSatisfy { a, b in
                a.layer == b.layer && a.multiplicative == b.multiplicative && a.tensors.count == b.tensors.count
                    && zip(a.tensors, b.tensors).allSatisfy { $0 === $1 }
            }
    }
}

/// A cache's last step key and, once a step repeated it, that step's kept ops. A key is kept
/// only on its second step in a row, so one-off steps (prompts) never fill the backend's caches.
struct StepRecording {
    var key: StepRecordingKey
    var ops: ReusableOps?
    /// The backend kept nothing for this key (it cannot, or its descriptor-set cache is full):
    /// later steps with the key record as usual without trying again.
    var unkeepable = false
}
