/// Token bookkeeping of Prompt-to-Prompt (docs/ALGORITHMS.md §5): which tokens a word owns, the word-swap
/// mapper and the refinement alignment. Token positions count BOS as 0; matrices are `length`×`length`
/// (77 for SD), row = source token, column = target token.
public enum PromptAlignment {
    /// The token positions (BOS = 0) of each space-separated word, given each word's token count.
    public static func wordPositions(tokenCounts: [Int]) -> [[Int]] {
        var next = 1
        return tokenCounts.map { n in
            defer { next += n }
            return Array(next..<(next + n))
        }
    }

    /// The word-swap mapper M (source → target), as the reference builds it: words that differ map their
    /// tokens onto the target word's tokens (one to one when the counts agree, else each source token
    /// spreads 1/k over the target's k tokens); words before the last swap map position to position in
    /// step; after it, position p maps to p. Both prompts must have the same number of words.
    public static func wordSwapMapper(source: [[Int]], target: [[Int]], swapped: [Int], length: Int) -> [[Float]] {
        precondition(source.count == target.count, "wordSwapMapper: word counts differ")
        var m = Array(repeating: Array(repeating: Float(0), count: length), count: length)
        let swaps = swapped.sorted()
        var i = 0, j = 0, next = 0
        while i < length && j < length {
            if next < swaps.count, let first = source[swaps[next]].first, first == i {
                let s = source[swaps[next]], t = target[swaps[next]]
                if s.count == t.count {
                    for (a, b) in zip(s, t) { m[a][b] = 1 }
                } else {
                    for a in s { for b in t { m[a][b] = 1 / Float(t.count) } }
                }
                i += s.count
                j += t.count
                next += 1
            } else if next < swaps.count {
                m[i][j] = 1
                i += 1
                j += 1
            } else {
                m[j][j] = 1
                i += 1
                j += 1
            }
        }
        return m
    }

    /// Global alignment (Needleman–Wunsch; match 1, mismatch −1, gap 0; ties prefer a gap in the source,
    /// then in the target, then the diagonal, as the reference does) of the source and target token ids
    /// (BOS … EOS, unpadded). For every target position < `length` it returns the source position it copies
    /// and α: 1 where the target token is aligned to a source token, 0 where it is new. Positions past the
    /// target's EOS keep their own position with α = 1.
    public static func refinement(source: [Int], target: [Int], length: Int) -> (map: [Int], alpha: [Float]) {
        let n = source.count, m = target.count
        var score = Array(repeating: Array(repeating: 0, count: m + 1), count: n + 1)
        // 1: gap in the source (move left), 2: gap in the target (move up), 3: diagonal.
        var move = Array(repeating: Array(repeating: UInt8(0), count: m + 1), count: n + 1)
        for i in 0...n { move[i][0] = 2 }
        for j in 0...m { move[0][j] = 1 }
        for i in stride(from: 1, through: n, by: 1) {
            for j in stride(from: 1, through: m, by: 1) {
                let left = score[i][j - 1], up = score[i - 1][j]
                let diag = score[i - 1][j - 1] + (source[i - 1] == target[j - 1] ? 1 : -1)
                let best = max(left, up, diag)
                score[i][j] = best
                move[i][j] = best == left ? 1 : best == up ? 2 : 3
            }
        }
        var map = Array(0..<length), alpha = Array(repeating: Float(1), count: length)
        var i = n, j = m
        while i > 0 && j > 0 {
            switch move[i][j] {
            case 3:
                if j - 1 < length {
                    map[j - 1] = i - 1
                    alpha[j - 1] = 1
                }
                i -= 1
                j -= 1
            case 1:
                if j - 1 < length {
                    map[j - 1] = 0
                    alpha[j - 1] = 0
                }
                j -= 1
            default:
                i -= 1
            }
        }
        while j > 0 {
            if j - 1 < length {
                map[j - 1] = 0
                alpha[j - 1] = 0
            }
            j -= 1
        }
        return (map, alpha)
    }
}
