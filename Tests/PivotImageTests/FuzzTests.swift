import Foundation
import PivotImage
import XCTest

/// Damaged files must decode or throw `ImageError`: never crash, hang or print. Cases are deterministic
/// (fixed seeds), so a failure reproduces.
final class FuzzTests: XCTestCase {
    private let sources = [
        "png_rgb8.png", "png_interlaced.png", "png_palette_trns.png", "png_rgba16.png", "png_grey2.png",
        "jpeg_rgb.jpg", "jpeg_progressive.jpg", "jpeg_orientation6.jpg", "jpeg_cmyk.jpg", "jpeg_grey.jpg",
        "tiff_rgb8_lzw.tif", "tiff_rgb16.tif", "tiff_rgb8_tiled.tif", "tiff_rgb8_jpeg.tif", "tiff_rgb8_planar.tif",
        "tiff_palette.tif", "tiff_rgba8.tif", "tiff_rgb8_deflate.tif",
        "formats/source.webp", "formats/source.heic", "formats/source.avif", "formats/p3.png", "formats/orientation6.png",
    ]

    private struct Outcome {
        var decoded = 0
        var failed = 0
    }

    /// Reads `bytes` from a file; checks that any decoded image is sane.
    private func attempt(_ bytes: [UInt8], at path: String, label: String, _ outcome: inout Outcome) throws {
        try writeFile(path, bytes)
        do {
            let image = try RGBImage.read(path)
            XCTAssertEqual(image.pixels.count, image.width * image.height * 3, label)
            XCTAssertTrue(image.pixels.allSatisfy { $0 >= 0 && $0 <= 1 }, label)
            outcome.decoded += 1
        } catch let error as ImageError {
            XCTAssertFalse(error.description.contains("\n"), label)
            XCTAssertTrue(error.description.hasPrefix(path + ": "), "\(label): \(error)")
            outcome.failed += 1
        }
    }

    /// Every prefix of every source (each length up to 160 bytes, then about 150 lengths spread over the
    /// rest) decodes or throws; cutting a file short must not read as a complete image for PNG and TIFF
    /// strips, and JPEGs cut before their end-of-image marker are errors too.
    func testTruncatedFiles() throws {
        let dir = try temporaryDirectory(self)
        var total = Outcome()
        for name in sources {
            let bytes = try Fixtures.bytes(name)
            var lengths = Array(0..<min(bytes.count, 160))
            lengths += stride(from: 160, to: bytes.count, by: max(1, (bytes.count - 160) / 150))
            var outcome = Outcome()
            for length in lengths {
                try attempt(Array(bytes.prefix(length)), at: dir + "/cut", label: "\(name)[..<\(length)]", &outcome)
            }
            XCTAssertGreaterThan(outcome.failed, lengths.count * 9 / 10, "\(name): most prefixes must be rejected")
            total.decoded += outcome.decoded
            total.failed += outcome.failed
        }
        XCTAssertGreaterThan(total.failed, 3000)
    }

    /// Random bytes overwritten (1 to 3 per case, 250 cases per source, fixed seeds) decode or throw.
    func testCorruptedBytes() throws {
        let dir = try temporaryDirectory(self)
        var total = Outcome()
        for (index, name) in sources.enumerated() {
            let bytes = try Fixtures.bytes(name)
            var generator = SplitMix64(seed: 0x5EED_0000 + UInt64(index))
            for trial in 0..<250 {
                var damaged = bytes
                for _ in 0..<Int.random(in: 1...3, using: &generator) {
                    let position = Int.random(in: 0..<damaged.count, using: &generator)
                    damaged[position] = UInt8.random(in: 0...255, using: &generator)
                }
                try attempt(damaged, at: dir + "/flip", label: "\(name) trial \(trial)", &total)
            }
        }
        XCTAssertEqual(total.decoded + total.failed, sources.count * 250)
        XCTAssertGreaterThan(total.failed, 0)
        XCTAssertGreaterThan(total.decoded, 0, "damage in pixel data still decodes")
    }

    /// Headers followed by garbage, and each format's magic followed by nothing useful.
    func testMagicWithGarbage() throws {
        let dir = try temporaryDirectory(self)
        var generator = SplitMix64(seed: 42)
        let magics: [[UInt8]] = [
            [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], [0xFF, 0xD8, 0xFF], [0xFF, 0xD8, 0xFF, 0xD9],
            [0x49, 0x49, 0x2A, 0x00], [0x4D, 0x4D, 0x00, 0x2A], [0x49, 0x49, 0x2B, 0x00],
        ]
        var outcome = Outcome()
        for (m, magic) in magics.enumerated() {
            for length in [0, 1, 8, 64, 1000] {
                let garbage = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
                try attempt(magic + garbage, at: dir + "/magic", label: "magic \(m) + \(length)", &outcome)
            }
        }
        XCTAssertEqual(outcome.failed, magics.count * 5)
    }
}
