import Foundation

/// How the CLIP pre-tokenizer regex sees one scalar: `\s`, `\p{L}`, `\p{N}` or anything else.
enum ScalarClass {
    case space, letter, number, other
}

extension Unicode.Scalar {
    /// The class Oniguruma gives this scalar in `tokenizers` 0.23: Unicode 16 tables, so scalars
    /// assigned later (Unicode 17+) are unassigned there, i.e. `other`.
    var clipClass: ScalarClass {
        if value < 0x80 {
            switch value {
            case 0x09...0x0D, 0x20: return .space
            case 0x41...0x5A, 0x61...0x7A: return .letter
            case 0x30...0x39: return .number
            default: return .other
            }
        }
        guard let age = properties.age, age.major <= 16 else { return .other }
        if properties.isWhitespace { return .space }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }

    /// Rust regex `\s` (Unicode White_Space), used by added tokens' `lstrip`/`rstrip`.
    var isRegexSpace: Bool { properties.isWhitespace }

    /// Rust regex `\w`: Alphabetic, marks, decimal digits, connector punctuation, join controls.
    var isRegexWord: Bool {
        if properties.isAlphabetic || properties.isJoinControl { return true }
        switch properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }
}

/// U+0F73, U+0F75, U+0F81 and their canonical decompositions (never recomposed by NFC).
private let tibetanVowels: [UInt32: [Unicode.Scalar]] = [
    0x0F73: ["\u{0F71}", "\u{0F72}"], 0x0F75: ["\u{0F71}", "\u{0F74}"], 0x0F81: ["\u{0F71}", "\u{0F80}"],
]

/// NFC as `tokenizers` computes it, with the Unicode 9.0 data of its `unicode-normalization-alignments`
/// crate: scalars assigned later are opaque there (no combining class, no composition), so they
/// split the text and NFC applies to the runs between them.
func composeLikeTokenizers(_ text: ArraySlice<Unicode.Scalar>) -> [Unicode.Scalar] {
    if text.allSatisfy({ $0.value < 0x300 }) { return Array(text) }  // already NFC: nothing below U+0300 combines
    var out: [Unicode.Scalar] = []
    out.reserveCapacity(text.count)
    var run = String.UnicodeScalarView()
    func flush() {
        if run.isEmpty { return }
        for s in String(run).precomposedStringWithCanonicalMapping.unicodeScalars {
            // Foundation leaves a Hangul LV syllable and a following trailing consonant apart.
            if (0x11A8...0x11C2).contains(s.value), let last = out.last,
                (0xAC00...0xD7A3).contains(last.value), (last.value - 0xAC00) % 28 == 0
            {
                out[out.count - 1] = Unicode.Scalar(last.value + s.value - 0x11A7)!
            } else {
                out.append(s)
            }
        }
        run = String.UnicodeScalarView()
    }
    for s in text {
        if let marks = tibetanVowels[s.value] {
            // Starters that decompose to non-starters: Foundation does not reorder them against
            // the marks before them, so hand it the (equivalent) decomposition.
            run.append(contentsOf: marks)
        } else if let age = s.properties.age, age.major < 9 || (age.major == 9 && age.minor == 0) {
            run.append(s)
        } else {
            flush()
            out.append(s)
        }
    }
    flush()
    return out
}

/// transformers' CLIPTokenizer normalizer: `Sequence([NFC, Replace(\s+, " "), Lowercase])`.
/// Lowercase maps each scalar on its own (full mappings such as İ → i̇, no final-sigma context).
func normalizeCLIP(_ text: ArraySlice<Unicode.Scalar>) -> [Unicode.Scalar] {
    let composed = composeLikeTokenizers(text)
    var out: [Unicode.Scalar] = []
    out.reserveCapacity(composed.count)
    var inSpace = false
    for s in composed {
        if s.value < 0x80 ? (s.value == 0x20 || (0x09...0x0D).contains(s.value)) : s.properties.isWhitespace {
            if !inSpace { out.append(" ") }
            inSpace = true
            continue
        }
        inSpace = false
        if s.value < 0x80 {
            out.append(s.value >= 0x41 && s.value <= 0x5A ? Unicode.Scalar(s.value + 32)! : s)
        } else if s.properties.changesWhenLowercased {
            out.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars)
        } else {
            out.append(s)
        }
    }
    return out
}

private let specialPieces: [[Unicode.Scalar]] = ["<|startoftext|>", "<|endoftext|>"].map { Array($0.unicodeScalars) }
private let apostrophe: Unicode.Scalar = "'"

/// Splits normalized text the way the CLIP pre-tokenizer does: the regex
/// `<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`
/// keeps its matches and drops the rest (whitespace), then the ByteLevel pre-tokenizer splits
/// again with GPT-2's regex, which only changes the two special-token matches (into `<|`, the
/// letters, `|>`). Returns ranges into `text`.
func preTokenizeCLIP(_ text: [Unicode.Scalar]) -> [Range<Int>] {
    var pieces: [Range<Int>] = []
    var i = 0
    let n = text.count
    func matches(_ literal: [Unicode.Scalar], at i: Int) -> Bool {
        i + literal.count <= n && text[i..<(i + literal.count)].elementsEqual(literal)
    }
    while i < n {
        let c = text[i]
        if let special = specialPieces.first(where: { matches($0, at: i) }) {
            let end = i + special.count
            pieces += [i..<(i + 2), (i + 2)..<(end - 2), (end - 2)..<end]
            i = end
            continue
        }
        if c == apostrophe, i + 1 < n {
            let next = text[i + 1]
            var length = 0
            switch next {
            case "s", "t", "m", "d": length = 2
            case "r", "v": length = i + 2 < n && text[i + 2] == "e" ? 3 : 0
            case "l": length = i + 2 < n && text[i + 2] == "l" ? 3 : 0
            default: length = 0
            }
            if length > 0 {
                pieces.append(i..<(i + length))
                i += length
                continue
            }
        }
        let kind = c.clipClass
        switch kind {
        case .space:
            i += 1
        case .number:
            pieces.append(i..<(i + 1))
            i += 1
        case .letter, .other:
            var j = i + 1
            while j < n, text[j].clipClass == kind { j += 1 }
            pieces.append(i..<j)
            i = j
        }
    }
    return pieces
}

/// CLIP's (GPT-2's) reversible byte ↔ character table: printable Latin-1 bytes map to themselves,
/// the other 68 bytes to U+0100 onwards, in byte order.
enum ByteLevel {
    /// The character of each byte, indexed by byte.
    static let characters: [Character] = {
        var table = [Character](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) {
                table[b] = Character(Unicode.Scalar(UInt32(b))!)
            } else {
                table[b] = Character(Unicode.Scalar(next)!)
                next += 1
            }
        }
        return table
    }()

    /// The bytes in CLIP's vocabulary order: the printable ones first, then the rest.
    static let vocabularyOrder: [Int] = {
        let printable = (0..<256).filter { characters[$0].unicodeScalars.first?.value == UInt32($0) }
        return printable + (0..<256).filter { !printable.contains($0) }
    }()

    /// Byte of each table character, by scalar value.
    static let bytes: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for (b, c) in characters.enumerated() { if let s = c.unicodeScalars.first { map[s.value] = UInt8(b) } }
        return map
    }()

    /// ByteLevel decoding of one token: its characters' bytes, or its own UTF-8 when a
    /// character is outside the table (added tokens).
    static func decode(_ token: String) -> [UInt8] {
        var out: [UInt8] = []
        for s in token.unicodeScalars {
            guard let b = bytes[s.value] else { return Array(token.utf8) }
            out.append(b)
        }
        return out
    }
}
