import Foundation

/// A token matched in the text before BPE (special tokens, a pad token like `!`, textual-inversion
/// tokens), with the flags of `tokenizers`' `AddedToken`.
struct AddedToken: Equatable {
    var content: String
    var singleWord = false
    var lstrip = false
    var rstrip = false
    /// Matched in the normalized text (lower-cased, whitespace collapsed) rather than the raw prompt.
    var normalized: Bool
    var special: Bool

    /// `AddedToken(content, special=...)`: `normalized` defaults to `not special`.
    init(_ content: String, special: Bool, normalized: Bool? = nil) {
        self.content = content
        self.special = special
        self.normalized = normalized ?? !special
    }
}

/// `tokenizers`' AddedVocabulary: ids of added tokens, and the two sets of patterns that split the
/// text before normalization (tokens with `normalized: false`) and after it (the rest).
struct AddedVocabulary {
    private(set) var byId: [Int: AddedToken] = [:]
    private(set) var idByContent: [String: Int] = [:]
    private var rawPatterns = PatternSet()
    private var normalizedPatterns = PatternSet()

    /// Adds a token or updates the flags of one with the same content (the last added wins); a
    /// content already in the model keeps the model's id, a new one gets the next id.
    /// Returns nil for an empty token.
    @discardableResult
    mutating func add(_ token: AddedToken, model: BPEModel) -> Int? {
        guard !token.content.isEmpty else { return nil }
        if let id = idByContent[token.content], byId[id] == token { return id }
        let id = idByContent[token.content] ?? model.vocab[token.content] ?? nextId(model)
        idByContent[token.content] = id
        byId[id] = token
        rebuildPatterns()
        return id
    }

    private func nextId(_ model: BPEModel) -> Int {
        guard let top = byId.keys.max() else { return model.vocab.count }
        return top >= model.vocab.count || model.vocab.isEmpty ? top + 1 : model.vocab.count
    }

    private mutating func rebuildPatterns() {
        rawPatterns = PatternSet()
        normalizedPatterns = PatternSet()
        for (id, token) in byId.sorted(by: { $0.key < $1.key }) {
            let scalars = Array(token.content.unicodeScalars)
            if token.normalized {
                normalizedPatterns.insert(normalizeCLIP(scalars[...]), id: id, token: token)
            } else {
                rawPatterns.insert(scalars, id: id, token: token)
            }
        }
    }

    /// A piece of a prompt after the added tokens were taken out: an added token's id, or
    /// normalized text still to pre-tokenize.
    enum Piece {
        case token(Int)
        case text([Unicode.Scalar])
    }

    /// Takes the raw-matched tokens out of the prompt, normalizes what is left piece by piece, then
    /// takes out the normalized-matched tokens (tokenizers' `extract_and_normalize`).
    func extract(_ prompt: [Unicode.Scalar]) -> [Piece] {
        var pieces: [Piece] = []
        for split in rawPatterns.split(prompt[...]) {
            if let id = split.id {
                pieces.append(.token(id))
                continue
            }
            let normalized = normalizeCLIP(prompt[split.range])
            for inner in normalizedPatterns.split(normalized[...]) {
                if let id = inner.id {
                    pieces.append(.token(id))
                } else if !inner.range.isEmpty {
                    pieces.append(.text(Array(normalized[inner.range])))
                }
            }
        }
        return pieces
    }
}

/// Patterns matched leftmost-longest, with `single_word`, `lstrip` and `rstrip` applied the way
/// `tokenizers`' `find_matches` applies them.
private struct PatternSet {
    private var patterns: [(scalars: [Unicode.Scalar], id: Int, token: AddedToken)] = []
    private var byFirst: [Unicode.Scalar: [Int]] = [:]

    mutating func insert(_ scalars: [Unicode.Scalar], id: Int, token: AddedToken) {
        guard let first = scalars.first else { return }
        if patterns.contains(where: { $0.scalars == scalars }) { return }  // the lower id keeps it
        byFirst[first, default: []].append(patterns.count)
        patterns.append((scalars, id, token))
    }

    /// The longest pattern starting at `start`, if any.
    private func longest(in text: ArraySlice<Unicode.Scalar>, at start: Int) -> (length: Int, index: Int)? {
        guard let candidates = byFirst[text[start]] else { return nil }
        var best: (length: Int, index: Int)?
        for index in candidates {
            let p = patterns[index].scalars
            guard start + p.count <= text.endIndex, p.count > (best?.length ?? 0) else { continue }
            if text[start..<(start + p.count)].elementsEqual(p) { best = (p.count, index) }
        }
        return best
    }

    /// Splits `text` into added tokens (with an id) and the text between them (without one); the
    /// splits cover the text. An empty text is one empty split.
    func split(_ text: ArraySlice<Unicode.Scalar>) -> [(id: Int?, range: Range<Int>)] {
        let lower = text.startIndex, upper = text.endIndex
        guard !text.isEmpty, !patterns.isEmpty else { return [(nil, lower..<upper)] }
        var splits: [(id: Int?, range: Range<Int>)] = []
        var offset = lower
        var position = lower
        while position < upper {
            guard let (length, index) = longest(in: text, at: position) else {
                position += 1
                continue
            }
            var start = position
            var stop = position + length
            position = stop
            let token = patterns[index].token
            if token.singleWord {
                let wordBefore = start > lower && text[start - 1].isRegexWord
                let wordAfter = stop < upper && text[stop].isRegexWord
                if wordBefore || wordAfter { continue }
            }
            if token.lstrip {
                var newStart = start
                while newStart > lower, text[newStart - 1].isRegexSpace { newStart -= 1 }
                start = max(newStart, offset)
            }
            if token.rstrip {
                while stop < upper, text[stop].isRegexSpace { stop += 1 }
            }
            if offset < start { splits.append((nil, offset..<start)) }
            splits.append((patterns[index].id, start..<stop))
            offset = stop
        }
        if offset != upper { splits.append((nil, offset..<upper)) }
        return splits
    }
}
