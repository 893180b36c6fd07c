import PivotModels
import PivotTensor

/// Prompt-to-Prompt's local blend (docs/ALGORITHMS.md §5): after each step (once `startStep` steps have
/// passed) every target latent keeps the source's latent outside a mask drawn from the cross-attention of
/// the chosen words. The maps are the conditional cross-attention at (h/4)·(w/4) tokens (16×16 for SD's
/// 64×64 latent; the size nearest 16×16 when a model has none that size, `mapTokens`), summed over heads,
/// layers and the steps so far, 3×3 max-pooled, upsampled (nearest) to the latent, divided by their
/// maximum and thresholded; mask = source words' mask ∪ target words' mask.
public final class LocalBlend {
    /// [prompt][token] ∈ {0, 1}: the tokens of the blend words in each prompt.
    public let wordTokens: [[Float]]
    public let threshold: Float
    public let startStep: Int
    public let preferredTokens: Int
    /// The latent's height and width.
    public let latent: LatentGrid
    /// Accumulated maps by query-token count: [prompt][n][m].
    private var sums: [Int: [[Float]]] = [:]
    /// The masks of the last step applied, one per target (latent height × width, row-major; true where the
    /// target keeps its own latent); nil before the blend first applied.
    public private(set) var lastMasks: [[Bool]]?

    public init(wordTokens: [[Float]], threshold: Float = 0.3, startStep: Int, latent: LatentGrid) {
        self.wordTokens = wordTokens
        self.threshold = threshold
        self.startStep = startStep
        self.latent = latent
        preferredTokens = latent.tokens(downsampledBy: 4)
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
        guard step + 1 > startStep, let n = mapTokens(among: Set(sums.keys), preferred: preferredTokens),
            let sum = sums[n]
        else { return }
        let grid = latent.grid(tokens: n), b = wordTokens.count, m = sum[0].count / n
        let (gh, gw) = (grid.height, grid.width)
        let (c, h, w) = (z.dim(1), z.dim(2), z.dim(3))
        var masks: [[Bool]] = []
        for prompt in 0..<b {
            var map = [Float](repeating: 0, count: n)
            for i in 0..<n { for t in 0..<m where wordTokens[prompt][t] != 0 { map[i] += sum[prompt][i * m + t] * wordTokens[prompt][t] } }
            var pooled = [Float](repeating: -.infinity, count: n)
            for y in 0..<gh {
                for x in 0..<gw {
                    for dy in -1...1 {
                        for dx in -1...1 {
                            let yy = y + dy, xx = x + dx
                            if yy >= 0, yy < gh, xx >= 0, xx < gw { pooled[y * gw + x] = max(pooled[y * gw + x], map[yy * gw + xx]) }
                        }
                    }
                }
            }
            var up = [Float](repeating: 0, count: h * w)
            for y in 0..<h { for x in 0..<w { up[y * w + x] = pooled[(y * gh / h) * gw + x * gw / w] } }
            let top = up.max() ?? 0
            masks.append(up.map { top > 0 && $0 / top > threshold })
        }
        lastMasks = (1..<b).map { prompt in (0..<(h * w)).map { masks[0][$0] || masks[prompt][$0] } }
        let planes = z.planes(of: h * w)  // [B · C] planes of h × w
        for prompt in 1..<b {
            for ch in 0..<c {
                let source = planes[ch], target = planes[prompt * c + ch]
                for k in 0..<(h * w) where !(masks[0][k] || masks[prompt][k]) { target[k] = source[k] }
            }
        }
    }
}

/// The height and width of a latent, and the token grids its attention layers see (the UNet halves both
/// sides at each level, rounding up as its stride-2 convolutions do).
public struct LatentGrid: Equatable, Sendable {
    public var height: Int
    public var width: Int

    public init(height: Int, width: Int) {
        precondition(height > 0 && width > 0, "LatentGrid: \(height)x\(width)")
        self.height = height
        self.width = width
    }

    /// A square latent.
    public init(side: Int) { self.init(height: side, width: side) }

    /// Query tokens of the attention layers at `factor`× downsampling (a power of 2).
    public func tokens(downsampledBy factor: Int) -> Int {
        let g = grid(factor: factor)
        return g.height * g.width
    }

    /// The grid at `factor`× downsampling (a power of 2).
    public func grid(factor: Int) -> (height: Int, width: Int) {
        var (h, w, f) = (height, width, factor)
        while f > 1 { (h, w, f) = ((h + 1) / 2, (w + 1) / 2, f / 2) }
        return (h, w)
    }

    /// The grid of an attention layer with `tokens` query tokens (the downsampling whose grid has that many
    /// tokens; a square root when none does).
    public func grid(tokens: Int) -> (height: Int, width: Int) {
        var factor = 1
        while factor <= max(height, width) {
            let g = grid(factor: factor)
            if g.height * g.width == tokens { return g }
            factor *= 2
        }
        let side = Int(Double(tokens).squareRoot())
        return (side, max(1, tokens / max(side, 1)))
    }
}
