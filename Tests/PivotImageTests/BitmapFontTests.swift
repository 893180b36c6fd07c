@testable import PivotImage
import XCTest

final class BitmapFontTests: XCTestCase {
    /// A canvas of `width` × `height` RGB pixels, all set to `value`.
    private func canvas(_ width: Int, _ height: Int, _ value: Float = 1) -> [Float] {
        [Float](repeating: value, count: width * height * 3)
    }

    /// Pixels (x, y) whose three channels are exactly `color`.
    private func painted(_ pixels: [Float], width: Int, color: (Float, Float, Float)) -> Set<[Int]> {
        var result = Set<[Int]>()
        for i in stride(from: 0, to: pixels.count, by: 3)
        where pixels[i] == color.0 && pixels[i + 1] == color.1 && pixels[i + 2] == color.2 {
            result.insert([(i / 3) % width, (i / 3) / width])
        }
        return result
    }

    /// Renders `text` into a canvas of ones.
    private func render(_ text: String, width: Int, height: Int, x: Int, y: Int, scale: Int = 1) -> [Float] {
        var pixels = canvas(width, height)
        BitmapFont.draw(text, into: &pixels, width: width, height: height, x: x, y: y, scale: scale)
        return pixels
    }

    private var printable: [Character] { (32...126).map { Character(Unicode.Scalar(UInt8($0))) } }

    func testMetrics() {
        XCTAssertEqual(BitmapFont.glyphWidth, 5)
        XCTAssertEqual(BitmapFont.glyphHeight, 7)
        XCTAssertEqual(BitmapFont.advance, 6)
        XCTAssertEqual(BitmapFont.width(of: "", scale: 1), 0)
        XCTAssertEqual(BitmapFont.width(of: "", scale: 3), 0)
        XCTAssertEqual(BitmapFont.width(of: "A", scale: 1), 5)
        XCTAssertEqual(BitmapFont.width(of: "AB", scale: 1), 11)
        XCTAssertEqual(BitmapFont.width(of: "cat", scale: 1), 17)
        XCTAssertEqual(BitmapFont.width(of: "AB", scale: 3), 33)
        XCTAssertEqual(BitmapFont.width(of: "é日", scale: 2), 22, "one glyph per Character")
        XCTAssertEqual(BitmapFont.height(scale: 1), 7)
        XCTAssertEqual(BitmapFont.height(scale: 4), 28)
        XCTAssertEqual(BitmapFont.width(of: "A", scale: 0), 0)
        XCTAssertEqual(BitmapFont.height(scale: -1), 0)
        XCTAssertEqual(BitmapFont.width(of: "AB", scale: Int.max), Int.max, "saturates instead of trapping")
    }

    func testDrawsExactlyTheGlyphOfA() {
        // 'A' written out independently of the font table.
        let rows = [".###.", "#...#", "#...#", "#...#", "#####", "#...#", "#...#"]
        let color: (Float, Float, Float) = (1, 0, 0.5)
        var pixels = canvas(10, 10)
        BitmapFont.draw("A", into: &pixels, width: 10, height: 10, x: 2, y: 1, color: color)
        var expected = Set<[Int]>()
        for (r, row) in rows.enumerated() {
            for (c, ch) in row.enumerated() where ch == "#" { expected.insert([2 + c, 1 + r]) }
        }
        XCTAssertEqual(painted(pixels, width: 10, color: color), expected)
        for y in 0..<10 {
            for x in 0..<10 where !expected.contains([x, y]) {
                let i = (y * 10 + x) * 3
                XCTAssertEqual(Array(pixels[i..<i + 3]), [1, 1, 1], "pixel (\(x), \(y)) must stay white")
            }
        }
        // And the stored bitmask agrees with that picture.
        let masks = rows.map {
            UInt8(
                $0.replacingOccurrences(of: "#", with: "1")
                    .replacingOccurrences(of: ".", with: "0"), radix: 2)
        }
        XCTAssertEqual(Array(BitmapFont.bitmap(of: "A")), masks)
    }

    func testScaleTwoQuadruplesTheArea() {
        for text in ["A", "g", "Hi!", "@"] {
            let one = painted(render(text, width: 40, height: 20, x: 1, y: 1), width: 40, color: (0, 0, 0))
            let two = painted(render(text, width: 40, height: 20, x: 1, y: 1, scale: 2), width: 40, color: (0, 0, 0))
            XCTAssertFalse(one.isEmpty)
            XCTAssertEqual(two.count, 4 * one.count, text)
            // Each font pixel (x, y) becomes the 2×2 square at (2x - 1, 2y - 1) relative to the origin (1, 1).
            var expected = Set<[Int]>()
            for p in one {
                let (x, y): (Int, Int) = (2 * p[0] - 1, 2 * p[1] - 1)
                for dy in 0..<2 { for dx in 0..<2 { expected.insert([x + dx, y + dy]) } }
            }
            XCTAssertEqual(two, expected, text)
        }
    }

    func testClippingMatchesAWindowOfALargerCanvas() {
        // Drawing into a 10×10 canvas at (x, y) must equal the 10×10 window at (pad, pad) of a big canvas
        // drawn at (x + pad, y + pad): in-bounds pixels right, nothing else touched.
        let pad = 40
        let cases: [(String, Int, Int, Int)] = [
            ("Hello", 7, 6, 1), ("Wg", 8, 8, 2), ("xyz", -3, -4, 1), ("MW", -7, 2, 2),
            ("#@", 4, -9, 3), ("Q", -4, -6, 1), ("long text", -20, 3, 1),
        ]
        for (text, x, y, scale) in cases {
            let small = render(text, width: 10, height: 10, x: x, y: y, scale: scale)
            let bigWidth = 10 + 2 * pad
            let big = render(text, width: bigWidth, height: bigWidth, x: x + pad, y: y + pad, scale: scale)
            var window = [Float]()
            for row in pad..<pad + 10 {
                window += big[(row * bigWidth + pad) * 3..<(row * bigWidth + pad + 10) * 3]
            }
            XCTAssertEqual(small, window, "\(text) at (\(x), \(y)) scale \(scale)")
            XCTAssertFalse(painted(small, width: 10, color: (0, 0, 0)).isEmpty, "\(text) should be partly visible")
        }
    }

    func testOutOfRangeArgumentsDoNothingAndDoNotTrap() {
        let white = canvas(10, 10)
        let calls: [(Int, Int, Int)] = [
            (10, 0, 1), (0, 10, 1), (-30, 0, 1), (0, -7, 1), (Int.max, Int.max, 1), (Int.min, Int.min, 1),
            (Int.max, 0, 3), (Int.min, 0, 2), (0, 0, 0), (0, 0, -2),
        ]
        for (x, y, scale) in calls {
            XCTAssertEqual(render("Hello", width: 10, height: 10, x: x, y: y, scale: scale), white, "(\(x), \(y)) ×\(scale)")
        }
        // A huge scale clips to the canvas: the top-left font pixel of 'T' covers it entirely.
        let huge = render("T", width: 10, height: 10, x: 0, y: 0, scale: Int.max)
        XCTAssertEqual(huge, canvas(10, 10, 0))
        // A buffer too small for the stated size, or an empty canvas, is left alone.
        var short = [Float](repeating: 1, count: 10)
        BitmapFont.draw("A", into: &short, width: 10, height: 10, x: 0, y: 0)
        XCTAssertEqual(short, [Float](repeating: 1, count: 10))
        var empty = [Float]()
        BitmapFont.draw("A", into: &empty, width: 0, height: 0, x: 0, y: 0)
        BitmapFont.draw("A", into: &empty, width: Int.max, height: Int.max, x: 0, y: 0)
        XCTAssertEqual(empty, [])
    }

    func testEveryPrintableGlyphIsDrawnAndDistinct() {
        XCTAssertEqual(BitmapFont.bitmaps.count, 95 * BitmapFont.glyphHeight)
        XCTAssertTrue(BitmapFont.bitmaps.allSatisfy { $0 < 32 }, "rows are five bits wide")
        var seen = [[UInt8]: Character]()
        for ch in printable {
            let glyph = Array(BitmapFont.bitmap(of: ch))
            XCTAssertEqual(glyph.count, 7)
            XCTAssertEqual(glyph.allSatisfy { $0 == 0 }, ch == " ", "glyph of '\(ch)'")
            if let other = seen[glyph] { XCTFail("'\(ch)' looks like '\(other)'") }
            seen[glyph] = ch
            // Drawing agrees with the table.
            let drawn = painted(render(String(ch), width: 5, height: 7, x: 0, y: 0), width: 5, color: (0, 0, 0))
            XCTAssertEqual(drawn.count, glyph.reduce(0) { $0 + $1.nonzeroBitCount }, "'\(ch)'")
        }
        XCTAssertEqual(seen.count, 95)
        for ch in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" {
            let lower = Character(ch.lowercased())
            XCTAssertNotEqual(Array(BitmapFont.bitmap(of: ch)), Array(BitmapFont.bitmap(of: lower)), "\(ch)")
        }
    }

    func testCharactersOutsideASCIIDrawAsQuestionMark() {
        let question = render("?", width: 8, height: 9, x: 1, y: 1)
        XCTAssertNotEqual(question, canvas(8, 9))
        for text in ["é", "e\u{301}", "日", "€", "\u{7F}", "\n", "\t", "\u{0}", "👍🏽"] {
            XCTAssertEqual(render(text, width: 8, height: 9, x: 1, y: 1), question, text.debugDescription)
        }
        XCTAssertEqual(
            render("a日b", width: 20, height: 9, x: 1, y: 1),
            render("a?b", width: 20, height: 9, x: 1, y: 1))
    }

    func testGlyphsAdvanceBySixColumns() {
        let pair = render("AB", width: 13, height: 9, x: 1, y: 1)
        var expected = render("A", width: 13, height: 9, x: 1, y: 1)
        BitmapFont.draw("B", into: &expected, width: 13, height: 9, x: 7, y: 1)
        XCTAssertEqual(pair, expected)
        // The spacing column between them stays untouched.
        for y in 0..<9 { XCTAssertEqual(pair[(y * 13 + 6) * 3], 1) }
    }
}
