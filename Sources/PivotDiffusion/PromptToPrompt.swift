import PivotModels
import PivotTensor

/// How the targets' cross-attention derives from the source's (docs/ALGORITHMS.md §5).
public enum CrossAttentionEdit {
    /// Word swap: new = einsum('hpw,wn->hpn', base, M) with one mapper per target.
    case replace(mappers: [[[Float]]])
    /// Refinement: new = base[:, :, map]·α + target·(1 − α), per target.
    case refine(maps: [[Int]], alphas: [[Float]])
    /// No structural edit (reweighting only).
    case none
}

/// Prompt-to-Prompt's attention controller for an edit batch [uncond × B, cond × B] (prompt 0 = source).
/// It edits only the conditional half: targets' cross-attention is replaced from the source's while
/// `crossReplace[b][step][token]` is 1, then reweighted by `equalizer[b][token]`; targets' self-attention is
/// the source's for steps in `selfReplace` at layers of at most `selfReplaceMaxTokens` query tokens.
///
/// With a `LocalBlend`, the (edited) conditional cross-attention is also accumulated for the blend mask,
/// as the reference stores it after editing.
public final class PromptToPromptController: AttentionController {
    public let prompts: Int
    public let edit: CrossAttentionEdit
    /// [target][step][token] ∈ {0, 1}, steps 0…T (T + 1 rows as in the reference).
    public let crossReplace: [[[Float]]]
    /// [target][token] scale, nil for no reweighting.
    public let equalizer: [[Float]]?
    public let selfReplace: Range<Int>
    public let selfReplaceMaxTokens: Int
    /// Optional local blend, applied by the edit loop after each step.
    public var localBlend: LocalBlend?
    /// The denoising step now running (0-based); the edit loop advances it through `beginStep`.
    public private(set) var step = 0
    /// The non-zero entries of each word-swap mapper (a mapper is nearly a permutation).
    private let mapperEntries: [[(from: Int, to: Int, weight: Float)]]

    public init(
        prompts: Int, edit: CrossAttentionEdit, crossReplace: [[[Float]]], equalizer: [[Float]]?,
        selfReplace: Range<Int>, selfReplaceMaxTokens: Int
    ) {
        self.prompts = prompts
        self.edit = edit
        self.crossReplace = crossReplace
        self.equalizer = equalizer
        self.selfReplace = selfReplace
        self.selfReplaceMaxTokens = selfReplaceMaxTokens
        if case .replace(let mappers) = edit {
            mapperEntries = mappers.map { map in
                map.indices.flatMap { w in map[w].indices.filter { map[w][$0] != 0 }.map { (w, $0, map[w][$0]) } }
            }
        } else {
            mapperEntries = []
        }
    }

    /// The reference's step windows: a fraction f of T steps covers steps [0, int(f·(T + 1))) for cross
    /// attention and a pair (s0, s1) covers [int(T·s0), int(T·s1)) for self-attention.
    public static func crossSchedule(fraction: Double, steps: Int, tokens: Int, perToken: [Int: Double] = [:]) -> [[Float]] {
        (0...steps).map { i in
            (0..<tokens).map { tok in
                let f = perToken[tok] ?? fraction
                return i < Int(f * Double(steps + 1)) ? 1 : 0
            }
        }
    }

    public static func selfSchedule(start: Double, end: Double, steps: Int) -> Range<Int> {
        Int(Double(steps) * start)..<max(Int(Double(steps) * start), Int(Double(steps) * end))
    }

    public func beginStep(_ index: Int) { step = index }

    public func wants(_ site: AttentionSite) -> Bool {
        site.isCross || (selfReplace.contains(step) && site.queryTokens <= selfReplaceMaxTokens)
    }

    public func edit(_ p: Tensor, at site: AttentionSite) {
        let b = prompts, heads = p.dim(1), n = p.dim(2), m = p.dim(3)
        guard p.dim(0) == 2 * b, b > 1 else { return }
        let planes = p.planes(of: heads * n * m)  // one plane per prompt and half: [2B] × heads·N·M
        let base = planes[b]  // the source's conditional probabilities
        if !site.isCross {
            for t in 1..<b { _ = planes[b + t].update(fromContentsOf: base) }
            return
        }
        defer { localBlend?.accumulate(p, site: site) }
        for t in 1..<b {
            let target = planes[b + t]
            let alpha = crossReplace[t - 1][min(step, crossReplace[t - 1].count - 1)]
            guard alpha.contains(where: { $0 > 0 }) else { continue }
            let edited = editedBase(base, target: target, index: t - 1, rows: heads * n, m: m)
            let scale = equalizer?[t - 1] ?? [Float](repeating: 1, count: m)
            edited.withUnsafeBufferPointer { e in  // buffers: no per-element array checks in this hot loop
                for r in 0..<(heads * n) {
                    for c in 0..<m { target[r * m + c] = e[r * m + c] * scale[c] * alpha[c] + target[r * m + c] * (1 - alpha[c]) }
                }
            }
        }
    }

    /// The source's probabilities moved onto target `index`'s tokens (rows × m): the mapper product for a
    /// word swap, base[:, map]·α + target·(1 − α) for a refinement, the source itself otherwise.
    func editedBase(
        _ base: UnsafeMutableBufferPointer<Float>, target: UnsafeMutableBufferPointer<Float>, index t: Int,
        rows: Int, m: Int
    ) -> [Float] {
        var out = [Float](repeating: 0, count: rows * m)
        switch edit {
        case .replace:
            let entries = mapperEntries[t]
            out.withUnsafeMutableBufferPointer { o in
                for r in 0..<rows {
                    let row = r * m
                    for e in entries { o[row + e.to] += base[row + e.from] * e.weight }
                }
            }
        case .refine(let maps, let alphas):
            let map = maps[t], a = alphas[t]
            for r in 0..<rows {
                for c in 0..<m { out[r * m + c] = base[r * m + map[c]] * a[c] + target[r * m + c] * (1 - a[c]) }
            }
        case .none:
            for k in 0..<(rows * m) { out[k] = base[k] }
        }
        return out
    }
}
