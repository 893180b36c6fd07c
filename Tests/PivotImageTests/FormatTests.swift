import Foundation
import PivotImage
import XCTest

/// WebP, HEIC and AVIF reading, WebP writing, ICC profiles converted to sRGB and PNG eXIf orientation
/// (fixtures by scripts/fixtures/make_format_fixtures.py).
final class FormatTests: XCTestCase {
    func image(_ name: String) throws -> RGBImage { try RGBImage(contentsOf: Fixtures.path("formats/" + name)) }

    /// Largest difference in 8-bit levels, and the mean.
    func difference(_ a: RGBImage, _ b: RGBImage) -> (max: Int, mean: Double) {
        let x = a.quantized(), y = b.quantized()
        let d = zip(x, y).map { abs(Int($0) - Int($1)) }
        return (d.max() ?? 0, Double(d.reduce(0, +)) / Double(max(d.count, 1)))
    }

    func testWebPHEICAndAVIFDecodeToTheSource() throws {
        let source = try image("source.png")
        XCTAssertEqual([source.width, source.height], [48, 32])
        XCTAssertEqual(try ImageFormat.sniff(Fixtures.path("formats/source.webp")), .webp)
        XCTAssertEqual(try ImageFormat.sniff(Fixtures.path("formats/source.heic")), .heif)
        XCTAssertEqual(try ImageFormat.sniff(Fixtures.path("formats/source.avif")), .heif)
        let webp = try image("source.webp")
        XCTAssertEqual(webp.pixels, source.pixels, "lossless WebP is the source exactly")
        for name in ["source.heic", "source.avif"] {
            let decoded = try image(name)
            XCTAssertEqual([decoded.width, decoded.height], [48, 32], name)
            let (worst, mean) = difference(decoded, source)
            print("\(name): max \(worst), mean \(String(format: "%.2f", mean)) levels from the source")
            // heif-enc -L codes a YCbCr conversion losslessly: within a few levels of the source.
            XCTAssertLessThanOrEqual(mean, 2, name)
            XCTAssertLessThanOrEqual(worst, 8, name)
        }
    }

    /// A Display P3 photo comes out in sRGB as Little CMS converts it (Pillow's ImageCms, perceptual).
    func testICCProfileIsConvertedToSRGB() throws {
        let p3 = try image("p3.png"), expected = try image("p3-as-srgb.png"), untagged = try image("source.png")
        let (worst, _) = difference(p3, expected)
        XCTAssertLessThanOrEqual(worst, 1, "P3 → sRGB as lcms converts it")
        // The same profile in WebP (ICCP chunk), TIFF (ICC tag) and JPEG (APP2; lossy at quality 100).
        for (name, tolerance) in [("p3.webp", 1), ("p3.tif", 1), ("p3.jpg", 8)] {
            XCTAssertLessThanOrEqual(difference(try image(name), expected).max, tolerance, name)
        }
        XCTAssertGreaterThan(difference(p3, untagged).max, 10, "the profile must change the saturated red")
    }

    /// HEIF's rotation (`irot`) is applied on decoding.
    func testHEIFRotationIsApplied() throws {
        let rotated = try image("rotated.heic"), source = try image("source.png")
        XCTAssertEqual([rotated.width, rotated.height], [48, 32])
        let (worst, mean) = difference(rotated, source)
        XCTAssertLessThanOrEqual(mean, 2)
        XCTAssertLessThanOrEqual(worst, 8)
    }

    func testPNGExifOrientation() throws {
        let oriented = try image("orientation6.png"), source = try image("source.png")
        XCTAssertEqual([oriented.width, oriented.height], [48, 32])
        XCTAssertEqual(oriented.pixels, source.pixels)
        let stored = try RGBImage(contentsOf: Fixtures.path("formats/orientation6.png"), applyOrientation: false)
        XCTAssertEqual([stored.width, stored.height], [32, 48])
    }

    func testWebPRoundTrip() throws {
        let source = try image("source.png")
        let path = NSTemporaryDirectory() + "pivot-\(UUID().uuidString).webp"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try source.write(path)
        XCTAssertEqual(try ImageFormat.sniff(path), .webp)
        XCTAssertEqual(try RGBImage(contentsOf: path).pixels, source.pixels, "pivot writes WebP losslessly")
        XCTAssertThrowsError(try source.write(NSTemporaryDirectory() + "pivot-\(UUID().uuidString).heic")) { error in
            XCTAssertTrue("\(error)".contains("read-only"), "\(error)")
        }
    }

    /// Malformed files in each new format: one-line errors naming the file, never a trap.
    func testMalformedFilesAreOneLineErrors() throws {
        for name in ["truncated.webp", "truncated.heic", "garbage.avif"] {
            let path = Fixtures.path("formats/" + name)
            XCTAssertThrowsError(try RGBImage(contentsOf: path), name) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains(name), message)
                XCTAssertFalse(message.contains("\n"), message)
            }
        }
    }

    /// 16-bit photos stay 16-bit: PNG and TIFF round trips keep every sample.
    func testSixteenBitRoundTrip() throws {
        let source = try RGBImage(contentsOf: Fixtures.path("png_rgb16.png"))
        XCTAssertEqual(source.bitDepth, 16)
        for ext in ["png", "tif"] {
            let path = NSTemporaryDirectory() + "pivot-16-\(UUID().uuidString).\(ext)"
            defer { try? FileManager.default.removeItem(atPath: path) }
            try source.write(path)
            let back = try RGBImage(contentsOf: path)
            XCTAssertEqual(back.bitDepth, 16, ext)
            XCTAssertEqual(back.pixels, source.pixels, ext)
        }
    }

    /// Outputs say they are sRGB: an sRGB chunk in PNG, an sRGB ICC profile in JPEG (APP2) and TIFF; and
    /// reading them back changes nothing (an sRGB profile is not converted).
    func testOutputsAreTaggedSRGB() throws {
        let source = try image("source.png")
        func contains(_ bytes: [UInt8], _ text: String) -> Bool {
            let needle = Array(text.utf8)
            return bytes.count >= needle.count && (0...(bytes.count - needle.count)).contains { Array(bytes[$0..<$0 + needle.count]) == needle }
        }
        for (ext, marker) in [("png", "sRGB"), ("jpg", "ICC_PROFILE"), ("tif", "acsp"), ("webp", "ICCP")] {
            let path = NSTemporaryDirectory() + "pivot-srgb-\(UUID().uuidString).\(ext)"
            defer { try? FileManager.default.removeItem(atPath: path) }
            try source.write(path)
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            XCTAssertTrue(contains(bytes, marker), "\(ext) has no \(marker)")
            if ext != "jpg" { XCTAssertEqual(try RGBImage(contentsOf: path).pixels, source.pixels, ext) }
        }
    }
}
