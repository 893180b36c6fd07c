import Foundation

/// One merge rule as read from a file: the pair and where it came from (for errors).
struct MergeRule {
    var left: String
    var right: String
    /// 1-based line in a merges file, or the index in a tokenizer.json merges list.
    var line: Int
}

/// Byte-level BPE with CLIP's `</w>` word ends: `tokenizers`' `BPE` model the way transformers'
/// CLIPTokenizer configures it (no continuing-subword prefix, no dropout, unknown characters not fused).
struct BPEModel: Sendable {
    /// Token → id, as in vocab.json.
    let vocab: [String: Int]
    /// id → token (the last token listed for an id wins).
    let tokens: [Int: String]
    /// (left id, right id) → (rank, merged id).
    private let merges: [UInt64: Merge]
    /// Id of each byte's character alone, and with `</w>` (nil where the vocabulary lacks it).
    private let byteIds: [Int?]
    private let byteEndIds: [Int?]

    private struct Merge {
        var rank: Int
        var id: Int
    }

    static let endOfWord = "</w>"

    /// Builds the model; every merge's two parts and their concatenation must be in the vocabulary.
    init(vocab: [String: Int], merges rules: [MergeRule], file: String) throws {
        var tokens: [Int: String] = [:]
        tokens.reserveCapacity(vocab.count)
        for (token, id) in vocab { tokens[id] = token }
        var merges: [UInt64: Merge] = [:]
        merges.reserveCapacity(rules.count)
        for (rank, rule) in rules.enumerated() {
            guard let a = vocab[rule.left] else {
                throw TokenizerError.mergeNotInVocabulary(file: file, line: rule.line, token: rule.left)
            }
            guard let b = vocab[rule.right] else {
                throw TokenizerError.mergeNotInVocabulary(file: file, line: rule.line, token: rule.right)
            }
            guard let merged = vocab[rule.left + rule.right] else {
                throw TokenizerError.mergeNotInVocabulary(file: file, line: rule.line, token: rule.left + rule.right)
            }
            merges[Self.key(a, b)] = Merge(rank: rank, id: merged)
        }
        self.vocab = vocab
        self.tokens = tokens
        self.merges = merges
        byteIds = ByteLevel.characters.map { vocab[String($0)] }
        byteEndIds = ByteLevel.characters.map { vocab[String($0) + Self.endOfWord] }
    }

    /// CLIP's vocabulary derived from its merges the way CLIP builds it: the 256 byte characters,
    /// the same with `</w>`, every merge joined, then `<|startoftext|>` and `<|endoftext|>`.
    static func clip(merges rules: [MergeRule], file: String) throws -> BPEModel {
        var ordered: [String] = ByteLevel.vocabularyOrder.map { String(ByteLevel.characters[$0]) }
        ordered += ordered.map { $0 + endOfWord }
        ordered += rules.map { $0.left + $0.right }
        ordered += ["<|startoftext|>", "<|endoftext|>"]
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(ordered.count)
        for (id, token) in ordered.enumerated() { vocab[token] = id }
        return try BPEModel(vocab: vocab, merges: rules, file: file)
    }

    private static func key(_ a: Int, _ b: Int) -> UInt64 {
        UInt64(UInt32(truncatingIfNeeded: a)) << 32 | UInt64(UInt32(truncatingIfNeeded: b))
    }

    /// Ids of one pre-tokenized word given as UTF-8 bytes. A character missing from the vocabulary
    /// becomes `unknown` (one per character), or is dropped when there is no unknown id.
    func encode<Bytes: Collection>(word: Bytes, unknown: Int?) -> [Int] where Bytes.Element == UInt8 {
        var symbols: [Int] = []
        symbols.reserveCapacity(word.count)
        let last = word.count - 1
        for (k, byte) in word.enumerated() {
            if let id = (k == last ? byteEndIds : byteIds)[Int(byte)] {
                symbols.append(id)
            } else if let unknown {
                symbols.append(unknown)
            }
        }
        // Repeatedly merge the adjacent pair of lowest rank, leftmost first (what tokenizers'
        // priority queue does).
        while symbols.count > 1 {
            var best = -1
            var bestRank = Int.max
            var bestId = 0
            for i in 0..<(symbols.count - 1) {
                if let m = merges[Self.key(symbols[i], symbols[i + 1])], m.rank < bestRank {
                    best = i
                    bestRank = m.rank
                    bestId = m.id
                }
            }
            if best < 0 { break }
            symbols[best] = bestId
            symbols.remove(at: best + 1)
        }
        return symbols
    }
}

/// Parses merges.txt the way `tokenizers` does: lines starting with `#version` are skipped, every
/// other line must be exactly two tokens separated by one space.
func parseMerges(_ data: Data, file: String) throws -> [MergeRule] {
    var rules: [MergeRule] = []
    rules.reserveCapacity(50_000)
    let bytes = [UInt8](data)
    var start = 0
    var lineNumber = 0
    let version = Array("#version".utf8)
    while start < bytes.count {
        var end = start
        while end < bytes.count, bytes[end] != 0x0A { end += 1 }
        let next = end + 1
        lineNumber += 1
        if end > start, bytes[end - 1] == 0x0D, end < bytes.count { end -= 1 }
        let line = bytes[start..<end]
        start = next
        if line.starts(with: version) { continue }
        guard let space = line.firstIndex(of: 0x20), !line[(space + 1)...].contains(0x20) else {
            throw TokenizerError.badMergeLine(file: file, line: lineNumber, text: String(decoding: line, as: UTF8.self))
        }
        guard let left = String(utf8Bytes: line[..<space]),
            let right = String(utf8Bytes: line[(space + 1)...])
        else {
            throw TokenizerError.malformed(file: file, reason: "line \(lineNumber) is not UTF-8")
        }
        rules.append(MergeRule(left: left, right: right, line: lineNumber))
    }
    return rules
}

private extension String {
    init?<Bytes: Collection>(utf8Bytes bytes: Bytes) where Bytes.Element == UInt8 {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var view = String.UnicodeScalarView()
        loop: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let s): view.append(s)
            case .emptyInput: break loop
            case .error: return nil
            }
        }
        self = String(view)
    }
}
