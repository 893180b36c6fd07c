import PivotModels
import PivotTensor

/// Prompt-to-Prompt's local blend (docs/ALGORITHMS.md §5): after each step (once `startStep` steps have
/// passed) every target latent keeps the source's latent outside a mask drawn from the cross-attention of
/// the chosen words. The maps are the conditional cross-attention at `(side/4)²` tokens (16×16 for SD's
/// 64×64 latent; the smallest down/up resolution when a model has none that size), summed over heads,
/// layers and the steps so far, 3×3 max-pooled, upsampled (nearest) to the latent, divided by their
/// maximum and thresholded; mask = source words' mask ∪ target words' mask.
public final class LocalBlend {
    /// [prompt][token] ∈ {0, 1}: the tokens of the blend words in each prompt.
    public let wordTokens: [[Float]]
    public let threshold: Float
    public let startStep: Int
    public let preferredTokens: Int
    /// Accumulated maps by query-token count: [prompt][n][m].
    private var sums: [Int: [[Float]]] = [:]

    public init(wordTokens: [[Float]], threshold: Float = 0.3, startStep: Int, latentSide: Int) {
        self.wordTokens = wordTokens
        self.threshold = threshold
        self.startStep = startStep
        preferredTokens = (latentSide / 4) * (latentSide / 4)
    }

    /// Adds the conditional half of a cross-attention layer's probabilities [2B, heads, N, M].
    func accumulate(_ p: Tensor, site: AttentionSite) {
        guard site.isCross, site.place != .mid else { return }
        let b = wordTokens.count, heads = p.dim(1), n = p.dim(2), m = p.dim(3)
        guard p.dim(0) == 2 * b else { return }
        var sum = sums[n] ?? Array(repeating: Array(repeating: 0, count: n * m), count: b)
        let planes = p.planes(of: n * m)  // [2B · heads] planes of N × M
        for prompt in 0..<b {
            for h in 0..<heads {
                let src = planes[(b + prompt) * heads + h]
                for k in 0..<(n * m) { sum[prompt][k] += src[k] }
            }
        }
        sums[n] = sum
    }

    /// Applies the blend to latents [B, C, h, w] after step `step` (0-based).
    public func apply(_ z: inout Tensor, afterStep step: Int) {
        guard step + 1 > startStep, let n = sums[preferredTokens] != nil ? preferredTokens : sums.keys.min(),
            let sum = sums[n]
        else { return }
        let side = Int(Double(n).squareRoot()), b = wordTokens.count, m = sum[0].count / n
        let (c, h, w) = (z.dim(1), z.dim(2), z.dim(3))
        var masks: [[Bool]] = []
        for prompt in 0..<b {
            var map = [Float](repeating: 0, count: n)
            for i in 0..<n { for t in 0..<m where wordTokens[prompt][t] != 0 { map[i] += sum[prompt][i * m + t] * wordTokens[prompt][t] } }
            var pooled = [Float](repeating: -.infinity, count: n)
            for y in 0..<side {
                for x in 0..<side {
                    for dy in -1...1 {
                        for dx in -1...1 {
                            let yy = y + dy, xx = x + dx
                            if yy >= 0, yy < side, xx >= 0, xx < side { pooled[y * side + x] = max(pooled[y * side + x], map[yy * side + xx]) }
                        }
                    }
                }
            }
            var up = [Float](repeating: 0, count: h * w)
            for y in 0..<h { for x in 0..<w { up[y * w + x] = pooled[(y * side / h) * side + x * side / w] } }
            let top = up.max() ?? 0
            masks.append(up.map { top > 0 && $0 / top > threshold })
        }
        let planes = z.planes(of: h * w)  // [B · C] planes of h × w
        for prompt in 1..<b {
            for ch in 0..<c {
                let source = planes[ch], target = planes[prompt * c + ch]
                for k in 0..<(h * w) where !(masks[0][k] || masks[prompt][k]) { target[k] = source[k] }
            }
        }
    }
}
