import Foundation
import PivotImage
import XCTest

final class ReadTests: XCTestCase {
    /// Every PNG, JPEG and TIFF variant decodes to the values the fixture script derived from its source
    /// arrays (alpha composited on white, orientation applied): exactly for lossless files, within a few
    /// levels of Pillow's own decode for JPEG-compressed ones.
    func testEveryVariantDecodesToExpectedValues() throws {
        let cases = Fixtures.decoded
        XCTAssertGreaterThan(cases.count, 35, "expected.json lists the variants")
        for entry in cases {
            let image = try RGBImage.read(Fixtures.path(entry.name))
            XCTAssertEqual(image.width, entry.width, entry.name)
            XCTAssertEqual(image.height, entry.height, entry.name)
            XCTAssertEqual(image.bitDepth, entry.depth, entry.name)
            let scale = Float(entry.depth == 16 ? 65535 : 255)
            let expected = entry.values.map { Float($0) / scale }
            let tolerance = Float(entry.tolerance) / scale + 1e-7
            XCTAssertLessThanOrEqual(maxDifference(image.pixels, expected), tolerance, entry.name)
            XCTAssertTrue(image.pixels.allSatisfy { (0...1).contains($0) }, entry.name)
        }
    }

    /// 16-bit files keep all 16 bits: each value is exactly k/65535 for the stored k, including values that
    /// differ only in the low byte.
    func testSixteenBitPrecisionIsKept() throws {
        for entry in Fixtures.decoded where entry.depth == 16 {
            let image = try RGBImage.read(Fixtures.path(entry.name))
            let recovered = image.pixels.map { Int(($0 * 65535).rounded()) }
            XCTAssertEqual(recovered, entry.values, entry.name)
            XCTAssertTrue(entry.values.contains { $0 % 257 != 0 }, "\(entry.name) exercises the low byte")
        }
    }

    /// Transparent pixels become white, opaque ones keep their colour, half-transparent ones blend.
    func testAlphaIsCompositedOnWhite() throws {
        let image = try RGBImage.read(Fixtures.path("png_rgba8.png"))
        let entry = try XCTUnwrap(Fixtures.decoded.first { $0.name == "png_rgba8.png" })
        let transparent = image.pixel(x: 0, y: 0)
        XCTAssertEqual([transparent.r, transparent.g, transparent.b], [1, 1, 1])
        let half = image.pixel(x: 2, y: 0)
        XCTAssertEqual(half.r, Float(entry.values[6]) / 255)
        XCTAssertGreaterThanOrEqual(half.r, 0.5 - 1e-6, "a 50% blend with white is at least one half")
        let palette = try RGBImage.read(Fixtures.path("png_palette_trns.png"))
        XCTAssertEqual(palette.bitDepth, 8)
        let tiff = try RGBImage.read(Fixtures.path("tiff_rgba8.tif"))
        XCTAssertEqual(tiff.pixel(x: 0, y: 0).g, 1)
    }

    /// The eight EXIF orientations all display as the same 24x16 picture of coloured blocks; without
    /// orientation the stored (transformed) layout comes back.
    func testEXIFOrientations() throws {
        let display = try XCTUnwrap(Fixtures.expected["jpeg_display"] as? [Int]).map { Float($0) / 255 }
        for k in 1...8 {
            let name = "jpeg_orientation\(k).jpg"
            let image = try RGBImage.read(Fixtures.path(name))
            XCTAssertEqual(image.width, 24, name)
            XCTAssertEqual(image.height, 16, name)
            XCTAssertLessThanOrEqual(maxDifference(image.pixels, display), 4 / 255, name)
            let stored = try RGBImage.read(Fixtures.path(name), applyOrientation: false)
            XCTAssertEqual(stored.width, k >= 5 ? 16 : 24, name)
            XCTAssertEqual(stored.oriented(k), image, name)
        }
        let tiff = try RGBImage.read(Fixtures.path("tiff_orientation6.tif"), applyOrientation: false)
        XCTAssertEqual([tiff.width, tiff.height], [5, 3])
    }

    /// Orientation transforms compose as expected: 6 then 8 is the identity, 3 twice is the identity,
    /// 5 is its own inverse.
    func testOrientationAlgebra() {
        let bytes = (0..<4 * 3 * 3).map { UInt8($0 * 7 % 256) }
        let image = RGBImage(width: 4, height: 3, bytes: bytes)
        XCTAssertEqual(image.oriented(6).oriented(8), image)
        XCTAssertEqual(image.oriented(3).oriented(3), image)
        XCTAssertEqual(image.oriented(5).oriented(5), image)
        XCTAssertEqual(image.oriented(1), image)
        XCTAssertEqual(image.oriented(0), image)
        let rotated = image.oriented(6)
        XCTAssertEqual([rotated.width, rotated.height], [3, 4])
        // Rotating clockwise puts the bottom-left stored pixel at the top-left.
        XCTAssertEqual(rotated.pixel(x: 0, y: 0).r, image.pixel(x: 0, y: 2).r)
    }

    /// A file is recognised by its content, whatever its name says.
    func testContentSniffingIgnoresExtension() throws {
        let dir = try temporaryDirectory(self)
        try writeFile(dir + "/actually-png.jpg", Fixtures.bytes("png_rgb8.png"))
        try writeFile(dir + "/actually-jpeg.tiff", Fixtures.bytes("jpeg_rgb.jpg"))
        try writeFile(dir + "/no-extension", Fixtures.bytes("tiff_rgb8_lzw.tif"))
        XCTAssertEqual(try ImageFormat.sniff(dir + "/actually-png.jpg"), .png)
        XCTAssertEqual(try RGBImage.read(dir + "/actually-png.jpg"), try RGBImage.read(Fixtures.path("png_rgb8.png")))
        XCTAssertEqual(try RGBImage.read(dir + "/actually-jpeg.tiff"), try RGBImage.read(Fixtures.path("jpeg_rgb.jpg")))
        XCTAssertEqual(try RGBImage.read(dir + "/no-extension"), try RGBImage.read(Fixtures.path("tiff_rgb8.tif")))
    }

    func testMissingDirectoryEmptyAndUnknownFilesThrowOneLineErrors() throws {
        let dir = try temporaryDirectory(self)
        try writeFile(dir + "/empty.png", [])
        try writeFile(dir + "/text.png", Array("hello, not an image\n".utf8))
        try writeFile(dir + "/anim.gif", Array("GIF89a".utf8) + [UInt8](repeating: 0, count: 20))
        let cases: [(String, ImageError.Kind, String)] = [
            (dir + "/missing.png", .notFound, "no such file"),
            (dir, .notARegularFile, "directory"),
            (dir + "/empty.png", .empty, "empty"),
            (dir + "/text.png", .unknownFormat, "not a PNG, JPEG, TIFF, WebP or HEIF image"),
            (dir + "/anim.gif", .unknownFormat, "GIF"),
        ]
        for (path, kind, phrase) in cases {
            let error = imageError { _ = try RGBImage.read(path) }
            XCTAssertEqual(error?.kind, kind, path)
            XCTAssertEqual(error?.path, path)
            XCTAssertTrue(error?.description.hasPrefix(path + ": ") ?? false, "\(String(describing: error))")
            XCTAssertTrue(error?.description.contains(phrase) ?? false, "\(String(describing: error))")
        }
    }

    /// Over-limit and unsupported files fail before any large allocation, with the file's name.
    func testTooLargeAndUnsupportedFiles() throws {
        let errors = try XCTUnwrap(Fixtures.expected["errors"] as? [String: String])
        XCTAssertEqual(errors.count, 5)
        for (name, kind) in errors.sorted(by: { $0.key < $1.key }) {
            let error = imageError { _ = try RGBImage.read(Fixtures.path(name)) }
            XCTAssertEqual(error?.kind.rawValue, kind, name)
            XCTAssertTrue(error?.description.contains(name) ?? false, name)
        }
        // Custom limits apply too.
        let small = ImageLimits(maxSide: 4, maxPixels: 100)
        XCTAssertEqual(imageError { _ = try RGBImage.read(Fixtures.path("png_rgb8.png"), limits: small) }?.kind, .tooLarge)
        XCTAssertEqual(imageError { _ = try RGBImage.read(Fixtures.path("jpeg_rgb.jpg"), limits: small) }?.kind, .tooLarge)
        XCTAssertEqual(imageError { _ = try RGBImage.read(Fixtures.path("tiff_rgb16.tif"), limits: small) }?.kind, .tooLarge)
    }

    func testTruncatedFilesAreCorrupt() throws {
        let dir = try temporaryDirectory(self)
        for name in ["png_rgb8.png", "jpeg_rgb.jpg", "jpeg_progressive.jpg", "tiff_rgb8_lzw.tif", "tiff_rgb16.tif"] {
            let bytes = try Fixtures.bytes(name)
            let path = dir + "/cut-" + name
            try writeFile(path, Array(bytes.prefix(bytes.count * 2 / 3)))
            let error = imageError { _ = try RGBImage.read(path) }
            XCTAssertEqual(error?.kind, .corrupt, "\(name): \(String(describing: error))")
        }
    }

    /// A JPEG cut short is corrupt even when only its end-of-image marker is missing, as in Pillow (which
    /// reports "image file is truncated"); libjpeg's grey fill for the missing part is never returned.
    func testJPEGWithoutEndMarkerIsTruncated() throws {
        let dir = try temporaryDirectory(self)
        let bytes = try Fixtures.bytes("jpeg_rgb.jpg")
        XCTAssertEqual(Array(bytes.suffix(2)), [0xFF, 0xD9])
        for (name, cut) in [("no-eoi.jpg", 2), ("cut.jpg", 12)] {
            try writeFile(dir + "/" + name, Array(bytes.dropLast(cut)))
            let error = imageError { _ = try RGBImage.read(dir + "/" + name) }
            XCTAssertEqual(error?.kind, .corrupt, name)
            XCTAssertTrue(error?.description.contains("truncated") ?? false, "\(String(describing: error))")
        }
        try writeFile(dir + "/trailing.jpg", bytes + Array("trailing garbage".utf8))
        XCTAssertEqual(try RGBImage.read(dir + "/trailing.jpg"), try RGBImage.read(Fixtures.path("jpeg_rgb.jpg")))
    }

    func testExtensionMapping() {
        XCTAssertEqual(ImageFormat(pathExtension: "a/b/photo.PNG"), .png)
        XCTAssertEqual(ImageFormat(pathExtension: "x.JpEg"), .jpeg)
        XCTAssertEqual(ImageFormat(pathExtension: "x.jpg"), .jpeg)
        XCTAssertEqual(ImageFormat(pathExtension: "x.tif"), .tiff)
        XCTAssertEqual(ImageFormat(pathExtension: "x.TIFF"), .tiff)
        XCTAssertEqual(ImageFormat(pathExtension: "x.webp"), .webp)
        XCTAssertEqual(ImageFormat(pathExtension: "IMG_0001.HEIC"), .heif)
        XCTAssertEqual(ImageFormat(pathExtension: "x.avif"), .heif)
        XCTAssertEqual(ImageFormat(pathExtension: "x.heif")?.isWritable, false)
        XCTAssertNil(ImageFormat(pathExtension: "x.gif"))
        XCTAssertNil(ImageFormat(pathExtension: ".png"))
        XCTAssertNil(ImageFormat(pathExtension: "dir.png/file"))
    }
}
