import Foundation
import PivotText
import XCTest

/// The normalizer and pre-tokenizer agree with `tokenizers` scalar by scalar (Fixtures/unicode.json,
/// probed from tokenizers 0.23 over every code point).
final class UnicodeTests: XCTestCase {
    struct Tables: Decodable {
        /// [first, last, class] with class S (`\s`), L (`\p{L}`), N (`\p{N}`) or O (other).
        var classes: [[Value]]
        /// Code point → normalizer output, where it differs from the code point.
        var normalized: [String: String]
        /// [input, normalizer output]: mark sequences, decomposable characters, Hangul jamo.
        var sequences: [[String]]
    }

    enum Value: Decodable {
        case int(Int)
        case string(String)
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let i = try? c.decode(Int.self) { self = .int(i) } else { self = .string(try c.decode(String.self)) }
        }
        var int: Int {
            if case .int(let i) = self { return i }
            return -1
        }
        var string: String {
            if case .string(let s) = self { return s }
            return ""
        }
    }

    static let tables: Tables = try! JSONDecoder().decode(Tables.self, from: Data(contentsOf: Fixtures.root.appendingPathComponent("unicode.json")))

    /// Every code point of planes 0–3 and 14 (where nearly all assigned scalars are), and the ends
    /// and middle of each class range elsewhere.
    static func codePoints(_ first: Int, _ last: Int) -> [Int] {
        var points: [Int] = []
        for (a, b) in [(0, 0x3FFFF), (0xE0000, 0xE0FFF)] where first <= b && last >= a {
            points += Array(max(first, a)...min(last, b))
        }
        points += [first, (first + last) / 2, last]
        return points.filter { !(0xD800...0xDFFF).contains($0) }
    }

    static func string(_ scalars: Unicode.Scalar...) -> String {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }

    func testPreTokenizerClassesMatchOniguruma() {
        var checked = 0, failures = 0
        for range in Self.tables.classes {
            let (first, last, kind) = (range[0].int, range[1].int, range[2].string)
            for cp in Self.codePoints(first, last) {
                let c = Unicode.Scalar(UInt32(cp))!
                let s = Self.string(c)
                let ok: Bool
                switch kind {
                case "S": ok = CLIPTokenizer.preTokenize(s).isEmpty
                case "L": ok = CLIPTokenizer.preTokenize(Self.string("a", c)) == [Self.string("a", c)]
                case "N": ok = CLIPTokenizer.preTokenize(Self.string(c, c)) == [s, s]
                default: ok = CLIPTokenizer.preTokenize(Self.string("a", c, c)) == ["a", Self.string(c, c)]
                }
                checked += 1
                if !ok {
                    failures += 1
                    if failures <= 10 { XCTFail(String(format: "U+%04X should be class %@", cp, kind)) }
                }
            }
        }
        XCTAssertGreaterThan(checked, 260_000)
        XCTAssertEqual(failures, 0)
    }

    func testNormalizerMatchesTokenizers() {
        var failures = 0
        func check(_ cp: Int) {
            let s = Self.string(Unicode.Scalar(UInt32(cp))!)
            let want = Self.tables.normalized[String(cp)] ?? s
            let got = CLIPTokenizer.normalize(s)
            if !got.unicodeScalars.elementsEqual(want.unicodeScalars) {
                failures += 1
                if failures <= 10 {
                    XCTFail(String(format: "U+%04X normalizes to %@, want %@", cp, got.debugDescription, want.debugDescription))
                }
            }
        }
        XCTAssertGreaterThan(Self.tables.normalized.count, 2000)
        for key in Self.tables.normalized.keys { check(Int(key)!) }
        for cp in Self.codePoints(0, 0x10FFFF) where Self.tables.normalized[String(cp)] == nil { check(cp) }
        XCTAssertEqual(failures, 0)
    }

    /// Canonical reordering and composition as tokenizers does them (its NFC has Unicode 9 data).
    func testNormalizerOnSequences() {
        XCTAssertGreaterThan(Self.tables.sequences.count, 1000)
        var failures = 0
        for pair in Self.tables.sequences {
            let got = CLIPTokenizer.normalize(pair[0])
            if !got.unicodeScalars.elementsEqual(pair[1].unicodeScalars) {
                failures += 1
                let hex = { (s: String) in s.unicodeScalars.map { String($0.value, radix: 16) }.joined(separator: " ") }
                if failures <= 10 { XCTFail("\(hex(pair[0])) normalizes to \(hex(got)), want \(hex(pair[1]))") }
            }
        }
        XCTAssertEqual(failures, 0)
    }

    func testPreTokenizerPieces() {
        XCTAssertEqual(
            CLIPTokenizer.preTokenize("it's a dog's life!!! 2023"),
            ["it", "'s", "a", "dog", "'s", "life", "!!!", "2", "0", "2", "3"])
        XCTAssertEqual(CLIPTokenizer.preTokenize("'sun ''s !'s"), ["'s", "un", "''", "s", "!'", "s"])
        XCTAssertEqual(CLIPTokenizer.preTokenize("<|endoftext|>!!"), ["<|", "endoftext", "|>", "!!"])
        XCTAssertEqual(CLIPTokenizer.preTokenize("!!<|endoftext|>"), ["!!<|", "endoftext", "|>"])
        XCTAssertEqual(
            CLIPTokenizer.preTokenize("you're we've i'll he'd i'm"),
            ["you", "'re", "we", "'ve", "i", "'ll", "he", "'d", "i", "'m"])
    }
}
