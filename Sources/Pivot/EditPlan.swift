import Foundation
import PivotIO
import PivotLoading
import PivotDiffusion
import PivotText

/// What `pivot edit` asks of Prompt-to-Prompt, before it is turned into a controller.
public struct EditOptions: Sendable {
    public enum Mode: String, Sendable { case auto, replace, refine }

    public var mode = Mode.auto
    /// Fraction of the steps (plus one, as the reference counts) with cross-attention replaced.
    public var crossReplace = 0.8
    /// Per-word fractions (words of the target prompts).
    public var crossReplaceWords: [String: Double] = [:]
    /// Self-attention injection window, as fractions of the steps.
    public var selfReplace = (start: 0.0, end: 0.4)
    /// Attention scale per word of the target prompts.
    public var reweight: [String: Float] = [:]
    /// Local-blend words (found in the source or the targets) and the mask threshold.
    public var blend: [String] = []
    public var blendThreshold: Float = 0.3

    public init() {}
}

/// Errors in an edit's prompts or options (one line each); settings are named by key (see
/// `SettingsNamingError`).
public enum EditError: SettingsNamingError {
    /// A word a setting (`cross_replace`, `reweight`) names is in none of the target prompts.
    case wordNotFound(String, setting: String)
    /// A word-swap (`mode` replace) between prompts of different word counts.
    case wordCountsDiffer(source: Int, target: Int)
    case cannotSplitWords(String)
    case badValue(String)

    public func description(naming: (String) -> String) -> String {
        switch self {
        case .wordNotFound(let w, let setting):
            return setting == "blend"
                ? "\(naming(setting)): the word '\(w)' is in neither the source nor the target prompts"
                : "\(naming(setting)): the word '\(w)' is in none of the target prompts"
        case .wordCountsDiffer(let s, let t):
            return "\(naming("mode")) replace needs the same number of words (source has \(s), target has \(t)); use \(naming("mode")) refine"
        case .cannotSplitWords(let p): return "cannot match the words of \"\(p)\" to its tokens"
        case .badValue(let why): return why
        }
    }
}

extension StableDiffusion {
    /// The Prompt-to-Prompt controller for `source` and `targets` over `steps` steps of a square latent.
    public func promptToPrompt(
        source: String, targets: [String], steps: Int, latentSide: Int,
        options o: EditOptions
    ) throws -> PromptToPromptController {
        try promptToPrompt(source: source, targets: targets, steps: steps, latent: LatentGrid(side: latentSide), options: o)
    }

    /// The Prompt-to-Prompt controller for `source` and `targets` over `steps` steps of a latent of size
    /// `latent` (self-attention injection at layers of at most (h/2)·(w/2) tokens: 32×32 for SD's 64×64).
    public func promptToPrompt(
        source: String, targets: [String], steps: Int, latent: LatentGrid,
        options o: EditOptions
    ) throws -> PromptToPromptController {
        let length = tokenizer.maxLength
        let src = try words(source)
        let tgts = try targets.map { try words($0) }
        let useReplace: Bool
        switch o.mode {
        case .replace:
            for t in tgts where t.words.count != src.words.count {
                throw EditError.wordCountsDiffer(source: src.words.count, target: t.words.count)
            }
            useReplace = true
        case .refine: useReplace = false
        case .auto: useReplace = tgts.allSatisfy { $0.words.count == src.words.count }
        }
        let edit: CrossAttentionEdit
        if useReplace {
            edit = .replace(
                mappers: tgts.map { t in
                    let swapped = (0..<t.words.count).filter { t.words[$0] != src.words[$0] }
                    return PromptAlignment.wordSwapMapper(source: src.positions, target: t.positions, swapped: swapped, length: length)
                })
        } else {
            let refs = tgts.map { PromptAlignment.refinement(source: src.ids, target: $0.ids, length: length) }
            edit = .refine(maps: refs.map(\.map), alphas: refs.map(\.alpha))
        }
        for (setting, names) in [("cross_replace", Array(o.crossReplaceWords.keys)), ("reweight", Array(o.reweight.keys))] {
            for w in names.sorted() where !tgts.contains(where: { $0.positions(of: w) != nil }) {
                throw EditError.wordNotFound(w, setting: setting)
            }
        }
        let all = [src] + tgts
        for w in o.blend where !all.contains(where: { $0.positions(of: w) != nil }) {
            throw EditError.wordNotFound(w, setting: "blend")
        }
        guard (0...1).contains(o.crossReplace), (0...1).contains(o.blendThreshold), o.selfReplace.start >= 0, o.selfReplace.end <= 1,
            o.selfReplace.start <= o.selfReplace.end
        else {
            throw SettingError("cross_replace", "self_replace", "blend_threshold", problem: "take fractions between 0 and 1")
        }
        let cross = tgts.map { t -> [[Float]] in
            var perToken: [Int: Double] = [:]
            for (w, f) in o.crossReplaceWords { for p in t.positions(of: w) ?? [] { perToken[p] = f } }
            return PromptToPromptController.crossSchedule(fraction: o.crossReplace, steps: steps, tokens: length, perToken: perToken)
        }
        let equalizer: [[Float]]? =
            o.reweight.isEmpty
            ? nil
            : tgts.map { t in
                var scale = [Float](repeating: 1, count: length)
                for (w, s) in o.reweight { for p in t.positions(of: w) ?? [] { scale[p] = s } }
                return scale
            }
        let controller = PromptToPromptController(
            prompts: 1 + targets.count, edit: edit, crossReplace: cross, equalizer: equalizer,
            selfReplace: PromptToPromptController.selfSchedule(start: o.selfReplace.start, end: o.selfReplace.end, steps: steps),
            selfReplaceMaxTokens: latent.tokens(downsampledBy: 2))
        if !o.blend.isEmpty {
            let tokens = all.map { prompt -> [Float] in
                var row = [Float](repeating: 0, count: length)
                for w in o.blend { for p in prompt.positions(of: w) ?? [] { row[p] = 1 } }
                return row
            }
            controller.localBlend = LocalBlend(
                wordTokens: tokens, threshold: o.blendThreshold,
                startStep: Int(0.2 * Double(steps)), latent: latent)
        }
        return controller
    }

    /// A prompt's words as edits name them (split at spaces: what `reweight`, `cross_replace` and `blend` take),
    /// each with the tokenizer's tokens for it (a multi-vector textual-inversion token stays one word).
    /// Throws an `EditError` for a prompt an edit could not take (too long, or words that cannot be matched to
    /// their tokens).
    public func promptWords(_ prompt: String) throws -> [(word: String, tokens: [String])] {
        let w = try words(prompt)
        return zip(w.words, w.positions).map { word, positions in
            (word, positions.map { w.ids.indices.contains($0) ? tokenizer.token(for: w.ids[$0]) ?? "" : "" })
        }
    }

    /// A prompt's space-separated words, their token positions (BOS = 0) and its unpadded ids.
    struct Words {
        var words: [String]
        var positions: [[Int]]
        var ids: [Int]

        func positions(of word: String) -> [Int]? {
            let hits = words.indices.filter { words[$0].lowercased() == word.lowercased() }.flatMap { positions[$0] }
            return hits.isEmpty ? nil : hits
        }
    }

    func words(_ prompt: String) throws -> Words {
        let words = prompt.split(separator: " ").map(String.init)
        // A multi-vector textual-inversion token stays one word, of all its vectors' tokens.
        let counts = words.map { tokenizer.contentIds(tokenizer.expandingMultiVectorTokens($0)).count }
        let content = tokenizer.contentIds(tokenizer.expandingMultiVectorTokens(prompt))
        guard content.count <= tokenizer.maxLength - 2 else {
            throw EditError.badValue("the prompt \"\(prompt)\" has \(content.count) tokens; edits need at most \(tokenizer.maxLength - 2)")
        }
        guard counts.reduce(0, +) == content.count else { throw EditError.cannotSplitWords(prompt) }
        return Words(
            words: words, positions: PromptAlignment.wordPositions(tokenCounts: counts),
            ids: [tokenizer.bos] + content + [tokenizer.eos])
    }
}
