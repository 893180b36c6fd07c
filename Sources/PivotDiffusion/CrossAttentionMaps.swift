import Foundation
import PivotModels
import PivotTensor

/// One prompt's cross-attention per token, gathered during an edit the way Prompt-to-Prompt's
/// `show_cross_attention` inspects it: the conditional cross-attention of prompt `prompt` (0 = source) at
/// (h/4)·(w/4) query tokens (16×16 for SD's 64×64 latent; when the model has no layer that size, the down/up
/// size nearest P2P's 16×16, see `mapTokens(among:preferred:)`), from the down and up blocks, averaged over
/// heads, layers and steps.
public final class CrossAttentionMaps {
    public let prompt: Int
    public let prompts: Int
    public let preferredTokens: Int
    public let latent: LatentGrid
    /// Sums by query-token count: [n · m], and how many head-maps went into each.
    private var sums: [Int: [Float]] = [:]
    private var counts: [Int: Int] = [:]

    public init(prompt: Int = 0, prompts: Int, latent: LatentGrid) {
        self.prompt = prompt
        self.prompts = prompts
        self.latent = latent
        preferredTokens = latent.tokens(downsampledBy: 4)
    }

    /// Adds prompt `prompt`'s conditional half of a cross-attention layer's probabilities [2B, heads, N, M].
    public func accumulate(_ p: Tensor, site: AttentionSite) {
        guard site.isCross, site.place != .mid, p.dim(0) == 2 * prompts else { return }
        let heads = p.dim(1), n = p.dim(2), m = p.dim(3)
        var sum = sums[n] ?? [Float](repeating: 0, count: n * m)
        let planes = p.planes(of: n * m)  // [2B · heads] planes of N × M
        sum.withUnsafeMutableBufferPointer { s in
            for h in 0..<heads {
                let src = planes[(prompts + prompt) * heads + h]
                for k in 0..<(n * m) { s[k] += src[k] }
            }
        }
        sums[n] = sum
        counts[n, default: 0] += heads
    }

    /// The averaged maps: `height` × `width` values per token (token-major: `values[token][y · width + x]`),
    /// or nil before any cross-attention was seen.
    public func averaged() -> (height: Int, width: Int, values: [[Float]])? {
        guard let n = mapTokens(among: Set(sums.keys), preferred: preferredTokens), let sum = sums[n],
            let count = counts[n], count > 0
        else { return nil }
        let m = sum.count / n, grid = latent.grid(tokens: n)
        let values = (0..<m).map { t in (0..<n).map { sum[$0 * m + t] / Float(count) } }
        return (grid.height, grid.width, values)
    }
}

/// The query-token count whose cross-attention maps Prompt-to-Prompt reads (local blend, attention pictures):
/// `preferred` ((h/4)·(w/4), 16×16 on SD's 64×64 latent, the reference's choice) when some layer has it, else
/// the available count nearest 16×16 = 256 (by ratio; the larger on a tie), so that a small model whose latent
/// is itself 16×16 reads its 16×16 maps, as P2P does on SD. Nil when `available` is empty.
public func mapTokens(among available: Set<Int>, preferred: Int) -> Int? {
    if available.contains(preferred) { return preferred }
    func distance(_ n: Int) -> Double { abs(log(Double(n) / 256)) }
    return available.max { a, b in
        let (da, db) = (distance(a), distance(b))
        return da != db ? da > db : a < b
    }
}

/// Runs several attention controllers as one (in order); a layer's probabilities are materialised when
/// any of them wants it.
public final class ControllerChain: AttentionController {
    public let controllers: [AttentionController]

    public init(_ controllers: [AttentionController]) { self.controllers = controllers }

    public func wants(_ site: AttentionSite) -> Bool { controllers.contains { $0.wants(site) } }

    public func edit(_ probabilities: Tensor, at site: AttentionSite) {
        for c in controllers where c.wants(site) { c.edit(probabilities, at: site) }
    }

    public func beginStep(_ index: Int) { for c in controllers { c.beginStep(index) } }
}

extension CrossAttentionMaps: AttentionController {
    public func wants(_ site: AttentionSite) -> Bool { site.isCross && site.place != .mid }
    public func edit(_ probabilities: Tensor, at site: AttentionSite) { accumulate(probabilities, site: site) }
}
