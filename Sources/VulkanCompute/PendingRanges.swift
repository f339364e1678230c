/// The byte ranges a batch has written (or read) since its last barrier, per arena, merged and
/// sorted: a hazard check is a binary search however many independent dispatches the batch holds,
/// and clearing keeps the storage, so a steady decode allocates nothing here.
struct PendingRanges {
    private struct Range {
        var arena: UInt
        var start: Int
        var end: Int
    }
    /// Sorted by (arena, start); ranges of one arena are disjoint and do not touch.
    private var ranges: [Range] = []

    var isEmpty: Bool { ranges.isEmpty }
    var count: Int { ranges.count }

    private static func key(_ s: BufferSlice) -> (UInt, Int, Int) {
        (UInt(bitPattern: s.arenaID), s.absoluteOffset, s.absoluteOffset + s.size)
    }

    /// The first index whose range is not before (arena, value) by `field`.
    private func firstIndex(arena: UInt, notBelow value: Int, by field: KeyPath<Range, Int>, strictly: Bool = false) -> Int {
        var lo = 0, hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2, r = ranges[mid]
            let below = r.arena < arena || (r.arena == arena && (strictly ? r[keyPath: field] <= value : r[keyPath: field] < value))
            if below { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// Whether any byte of `slice` lies in a pending range.
    func overlaps(_ slice: BufferSlice) -> Bool {
        let (a, s, e) = Self.key(slice)
        // The last range of the arena starting before `e` has the largest end of those; only it can reach past `s`.
        let i = firstIndex(arena: a, notBelow: e, by: \.start)
        guard i > 0 else { return false }
        let r = ranges[i - 1]
        return r.arena == a && r.end > s
    }

    mutating func insert(_ slice: BufferSlice) {
        guard slice.size > 0 else { return }
        var (a, s, e) = Self.key(slice)
        // Ranges of the arena that overlap or touch [s, e): from the first ending at or after s
        // to the last starting at or before e.
        let first = firstIndex(arena: a, notBelow: s, by: \.end)
        let past = firstIndex(arena: a, notBelow: e, by: \.start, strictly: true)
        if first < past {
            s = min(s, ranges[first].start)
            e = max(e, ranges[past - 1].end)
        }
        ranges.replaceSubrange(first..<past, with: CollectionOfOne(Range(arena: a, start: s, end: e)))
    }

    mutating func removeAll() { ranges.removeAll(keepingCapacity: true) }
}
