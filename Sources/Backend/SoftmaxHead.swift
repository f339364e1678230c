/// One row of `Backend.softmaxHead`'s output: what a sampler needs of a logit row at a
/// temperature T without the row itself (docs/KERNELS.md, `softmax_head.comp`).
public struct SoftmaxHead: Equatable, Sendable {
    /// The row's largest non-NaN entry (−inf if none).
    public var rowMax: Float
    /// Σ exp((x − rowMax) / T) over the row's non-NaN entries.
    public var normaliser: Float
    /// How many entries the head holds; when even the first nat held more than the capacity,
    /// that count, and no entries (then the head is not usable).
    public var count: Int
    /// The head's width in nats: its entries are those with ⌊(rowMax − x) / T⌋ < window (0 when
    /// the first nat overflowed the capacity).
    public var window: Int
    /// The head's entries, ranked: value desc, index asc.
    public var entries: [Entry]

    public struct Entry: Equatable, Sendable {
        public var value: Float
        public var index: Int
    }

    /// The widest window a kernel takes (its shared histogram's size).
    public static let maxWindow = 32

    /// The output words of one row: four of stats, then (value bits, index) pairs.
    public static func words(capacity: Int) -> Int { 4 + 2 * capacity }

    /// The head came back (it fitted the capacity).
    public var isComplete: Bool { window > 0 && count == entries.count }

    /// Rows `0..<rows` of an output written with `capacity`.
    public static func decode(_ words: [UInt32], rows: Int, capacity: Int) -> [SoftmaxHead] {
        let stride = Self.words(capacity: capacity)
        return (0..<rows).map { r -> SoftmaxHead in
            let base = r * stride, count = Int(words[base + 2])
            var entries: [Entry] = []
            for slot in 0..<(words[base + 3] == 0 ? 0 : min(count, capacity)) {
                let at = base + 4 + 2 * slot
                entries.append(Entry(value: Float(bitPattern: words[at]), index: Int(words[at + 1])))
            }
            entries.sort { $0.value != $1.value ? $0.value > $1.value : $0.index < $1.index }
            return SoftmaxHead(rowMax: Float(bitPattern: words[base]), normaliser: Float(bitPattern: words[base + 1]), count: count,
                               window: Int(words[base + 3]), entries: entries)
        }
    }
}
