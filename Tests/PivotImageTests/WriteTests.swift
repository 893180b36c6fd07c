import Foundation
import PivotImage
import XCTest

final class WriteTests: XCTestCase {
    private func sample(width: Int = 7, height: Int = 5) -> RGBImage {
        let bytes = (0..<width * height * 3).map { UInt8(($0 * 37 + 11) % 256) }
        return RGBImage(width: width, height: height, bytes: bytes)
    }

    /// PNG and TIFF round trips are exact, JPEG ones close; the extension picks the format in any case.
    func testRoundTrips() throws {
        let dir = try temporaryDirectory(self)
        let image = sample()
        for name in ["out.png", "OUT2.PNG", "out.tif", "out.TIFF"] {
            try image.write(dir + "/" + name)
            XCTAssertEqual(try RGBImage.read(dir + "/" + name), image, name)
        }
        XCTAssertEqual(try ImageFormat.sniff(dir + "/OUT2.PNG"), .png)
        XCTAssertEqual(try ImageFormat.sniff(dir + "/out.TIFF"), .tiff)

        // A smooth picture survives JPEG at quality 95 within a few levels.
        var smooth = [UInt8]()
        for y in 0..<16 { for x in 0..<16 { smooth += [UInt8(x * 15), UInt8(y * 15), UInt8(128)] } }
        let picture = RGBImage(width: 16, height: 16, bytes: smooth)
        for name in ["out.jpg", "out.JPEG"] {
            try picture.write(dir + "/" + name)
            let back = try RGBImage.read(dir + "/" + name)
            XCTAssertEqual(try ImageFormat.sniff(dir + "/" + name), .jpeg)
            XCTAssertLessThanOrEqual(maxDifference(back.pixels, picture.pixels), 6 / 255, name)
        }
        try picture.writeJPEG(dir + "/low.jpg", quality: 10, fullChroma: false)
        let low = try RGBImage.read(dir + "/low.jpg")
        XCTAssertGreaterThan(maxDifference(low.pixels, picture.pixels), 0, "quality 10 is lossy")
        let sizes = try ["out.jpg", "low.jpg"].map { try FileManager.default.attributesOfItem(atPath: dir + "/" + $0)[.size] as? Int ?? 0 }
        XCTAssertLessThan(sizes[1], sizes[0], "lower quality, smaller file")
    }

    /// Text chunks come back through libpng (tEXt for ASCII, iTXt for other text), and chunks Pillow wrote
    /// (tEXt, zTXt, iTXt) read back too. Pillow's reading of pivot's chunks is checked by the fixture script
    /// on pivot_text.png.
    func testPNGTextChunks() throws {
        let dir = try temporaryDirectory(self)
        let pairs = try XCTUnwrap(Fixtures.expected["pivot_text"] as? [[String]]).map { ($0[0], $0[1]) }
        XCTAssertEqual(pairs.count, 3)
        try sample().writePNG(dir + "/text.png", text: pairs)
        let back = try readPNGText(dir + "/text.png")
        XCTAssertEqual(back.map(\.key), pairs.map(\.0))
        XCTAssertEqual(back.map(\.value), pairs.map(\.1))
        let raw = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir + "/text.png")))
        XCTAssertNotNil(raw.firstRange(of: Array("tEXtprompt".utf8)), "ASCII text is a tEXt chunk")
        XCTAssertNotNil(raw.firstRange(of: Array("iTXtcaption".utf8)), "non-ASCII text is an iTXt chunk")
        if let out = ProcessInfo.processInfo.environment["PIVOT_IMAGE_FIXTURE_OUT"] {
            try sample().writePNG(out + "/pivot_text.png", text: pairs)
        }
        // The committed file pivot wrote (and Pillow verified) still reads back.
        let committed = try readPNGText(Fixtures.path("pivot_text.png"))
        XCTAssertEqual(committed.map(\.value), pairs.map(\.1))

        let pillow = try readPNGText(Fixtures.path("pillow_text.png"))
        let expected = try XCTUnwrap((Fixtures.expected["text"] as? [String: [[String]]])?["pillow_text.png"])
        XCTAssertEqual(pillow.map(\.key), expected.map { $0[0] })
        XCTAssertEqual(pillow.map(\.value), expected.map { $0[1] })

        for key in ["", " lead", "trail ", "dou  ble", "tab\there", String(repeating: "k", count: 80), "Grüße"] {
            XCTAssertEqual(imageError { try sample().writePNG(dir + "/bad.png", text: [(key, "v")]) }?.kind, .invalidArgument, key)
        }
        XCTAssertEqual(imageError { try sample().writePNG(dir + "/bad.png", text: [("k", "a\0b")]) }?.kind, .invalidArgument)
        XCTAssertEqual(directoryListing(dir), ["text.png"], "failed writes leave nothing behind")
        XCTAssertEqual(imageError { _ = try readPNGText(Fixtures.path("jpeg_rgb.jpg")) }?.kind, .unsupported)
    }

    /// A write replaces the destination in one step and leaves no temporary file.
    func testAtomicReplaceLeavesNoTemporaryFiles() throws {
        let dir = try temporaryDirectory(self)
        let path = dir + "/result.png"
        try writeFile(path, Array("old contents".utf8))
        try sample().write(path)
        XCTAssertEqual(try RGBImage.read(path), sample())
        try sample(width: 3, height: 2).write(path)
        XCTAssertEqual(try RGBImage.read(path).width, 3)
        try sample().write(dir + "/result.jpg", jpegQuality: 80)
        try sample().write(dir + "/result.tiff")
        XCTAssertEqual(directoryListing(dir), ["result.jpg", "result.png", "result.tiff"])
    }

    /// Writing over an input photo (by the same path, another spelling, a symlink or a hard link) is refused
    /// and the input is untouched; other paths in the same folder are fine.
    func testInputsAreNeverOverwritten() throws {
        let dir = try temporaryDirectory(self)
        let input = dir + "/photo.png"
        try sample().write(input)
        let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: input)))
        try FileManager.default.createSymbolicLink(atPath: dir + "/link.png", withDestinationPath: input)
        XCTAssertEqual(link(input, dir + "/hard.png"), 0)
        let edited = sample(width: 2, height: 2)
        for target in [input, dir + "/./photo.png", dir + "/link.png", dir + "/hard.png"] {
            let error = imageError { try edited.write(target, protecting: [input]) }
            XCTAssertEqual(error?.kind, .protectedInput, target)
            XCTAssertTrue(error?.description.contains("input") ?? false)
        }
        XCTAssertEqual(try [UInt8](Data(contentsOf: URL(fileURLWithPath: input))), original)
        try edited.write(dir + "/edited.png", protecting: [input, dir + "/missing.png"])
        XCTAssertEqual(directoryListing(dir), ["edited.png", "hard.png", "link.png", "photo.png"])
    }

    func testWriteErrors() throws {
        let dir = try temporaryDirectory(self)
        let image = sample()
        let unknown = imageError { try image.write(dir + "/out.gif") }
        XCTAssertEqual(unknown?.kind, .unknownFormat)
        XCTAssertTrue(unknown?.description.contains(".png") ?? false)
        XCTAssertEqual(imageError { try image.write(dir + "/noextension") }?.kind, .unknownFormat)
        XCTAssertEqual(imageError { try image.write(dir + "/missing/out.png") }?.kind, .writeFailed)
        XCTAssertEqual(imageError { try image.writeJPEG(dir + "/q.jpg", quality: 0) }?.kind, .invalidArgument)
        XCTAssertEqual(imageError { try image.writeJPEG(dir + "/q.jpg", quality: 101) }?.kind, .invalidArgument)
        try FileManager.default.createDirectory(atPath: dir + "/folder.png", withIntermediateDirectories: false)
        XCTAssertEqual(imageError { try image.write(dir + "/folder.png") }?.kind, .writeFailed)
        XCTAssertEqual(directoryListing(dir), ["folder.png"])
    }

    /// quantized() rounds like diffusers' numpy_to_pil: clamp, multiply by 255 in Float, round half to even.
    func testQuantizedRounding() {
        let values: [Float] = [0, 1, -0.2, 1.7, .nan, 0.5, 2.5 / 255, 3.5 / 255, 127.49 / 255]
        let image = RGBImage(width: 3, height: 1, pixels: values)
        let expected: [UInt8] = values.map { v in
            let c = v.isNaN ? 0 : min(max(v, 0), 1)
            return UInt8((c * 255).rounded(.toNearestOrEven))
        }
        XCTAssertEqual(image.quantized(), expected)
        XCTAssertEqual(Array(image.quantized().prefix(6)), [0, 255, 0, 255, 0, 128])
        let bytes = (0...255).map { UInt8($0) } + [0, 0, 0, 0, 0]
        XCTAssertEqual(RGBImage(width: 87, height: 1, bytes: Array(bytes.prefix(261))).quantized(), Array(bytes.prefix(261)))
    }
}
