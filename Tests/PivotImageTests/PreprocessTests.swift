import Foundation
import PivotImage
import PivotTensor
import XCTest

final class PreprocessTests: XCTestCase {
    /// Pillow's `resize(..., BICUBIC)` on 8-bit images, reproduced byte for byte: downscaling (anti-aliased),
    /// upscaling, one axis only, and mixed.
    func testResizeMatchesPillowBICUBIC() throws {
        let cases = Fixtures.list("resize")
        XCTAssertEqual(cases.count, 18)
        for entry in cases {
            let source = try RGBImage.read(Fixtures.path(try XCTUnwrap(entry["source"] as? String)))
            let expected = try RGBImage.read(Fixtures.path(try XCTUnwrap(entry["expected"] as? String)))
            let w = try XCTUnwrap(entry["width"] as? Int), h = try XCTUnwrap(entry["height"] as? Int)
            let resized = source.resized(width: w, height: h)
            XCTAssertEqual([resized.width, resized.height], [w, h])
            XCTAssertEqual(resized.bitDepth, 8)
            let worst = zip(resized.quantized(), expected.quantized()).map { abs(Int($0) - Int($1)) }.max() ?? 99
            XCTAssertLessThanOrEqual(worst, 1, "\(entry): within 1/255 of Pillow")
            XCTAssertEqual(resized.quantized(), expected.quantized(), "\(entry): identical to Pillow")
        }
    }

    /// Non-8-bit images take the float path; it matches Pillow's float ("F" mode) resize.
    func testFloatResizeMatchesPillowFloatMode() throws {
        let source = try XCTUnwrap(Fixtures.expected["float_source"] as? [String: Any])
        let values = try XCTUnwrap(source["values"] as? [Double]).map(Float.init)
        let image = RGBImage(
            width: try XCTUnwrap(source["width"] as? Int), height: try XCTUnwrap(source["height"] as? Int),
            pixels: values)
        for entry in Fixtures.list("float_resize") {
            let w = try XCTUnwrap(entry["width"] as? Int), h = try XCTUnwrap(entry["height"] as? Int)
            let expected = try XCTUnwrap(entry["values"] as? [Double]).map(Float.init)
            let resized = image.resized(width: w, height: h)
            XCTAssertEqual(resized.bitDepth, 32)
            XCTAssertLessThanOrEqual(maxDifference(resized.pixels, expected), 2e-6, "\(w)x\(h)")
        }
        // An 8-bit image sent through the float path stays within 1/255 of Pillow's 8-bit result.
        let photo = try RGBImage.read(Fixtures.path("resize_source.png"))
        let asFloat = RGBImage(width: photo.width, height: photo.height, pixels: photo.pixels, bitDepth: 32)
        let pillow = try RGBImage.read(Fixtures.path("resize_source_16x16.png"))
        XCTAssertLessThanOrEqual(maxDifference(asFloat.resized(width: 16, height: 16).pixels, pillow.pixels), 1 / 255 + 1e-6)
    }

    /// The reference's load_512 (user crop, centred square crop with offset (long − short) / 2, Pillow
    /// resize), reproduced exactly.
    func testPreprocessMatchesReferenceLoad512() throws {
        let cases = Fixtures.list("preprocess")
        XCTAssertEqual(cases.count, 4)
        for entry in cases {
            let source = try RGBImage.read(Fixtures.path(try XCTUnwrap(entry["source"] as? String)))
            let expected = try RGBImage.read(Fixtures.path(try XCTUnwrap(entry["expected"] as? String)))
            let side = try XCTUnwrap(entry["side"] as? Int)
            let crop = (entry["crop"] as? [Int]).map { CropBox(left: $0[0], top: $0[1], right: $0[2], bottom: $0[3]) }
            let result = try preprocess(source, side: side, crop: crop)
            XCTAssertEqual([result.width, result.height], [side, side])
            XCTAssertEqual(result.quantized(), expected.quantized(), "\(entry)")
        }
    }

    func testCenterCropGeometry() {
        XCTAssertEqual(centerCropBox(width: 37, height: 23, aspectWidth: 1, aspectHeight: 1), CropBox(left: 7, top: 0, right: 30, bottom: 23))
        XCTAssertEqual(centerCropBox(width: 10, height: 15, aspectWidth: 1, aspectHeight: 1), CropBox(left: 0, top: 2, right: 10, bottom: 12))
        XCTAssertEqual(centerCropBox(width: 8, height: 8, aspectWidth: 1, aspectHeight: 1), CropBox(left: 0, top: 0, right: 8, bottom: 8))
        XCTAssertEqual(centerCropBox(width: 100, height: 100, aspectWidth: 3, aspectHeight: 2), CropBox(left: 0, top: 17, right: 100, bottom: 83))
        XCTAssertEqual(CropBox(marginsLeft: 3, top: 2, right: 7, bottom: 3, width: 37, height: 23), CropBox(left: 3, top: 2, right: 30, bottom: 20))
    }

    func testCropBoxErrors() throws {
        let image = RGBImage(width: 6, height: 4, bytes: [UInt8](repeating: 9, count: 72))
        let bad = [
            CropBox(left: 2, top: 0, right: 2, bottom: 4), CropBox(left: 0, top: 3, right: 6, bottom: 1),
            CropBox(left: -1, top: 0, right: 4, bottom: 4), CropBox(left: 0, top: 0, right: 7, bottom: 4),
            CropBox(left: 0, top: 0, right: 6, bottom: 5),
        ]
        for box in bad {
            let error = imageError { _ = try preprocess(image, side: 4, crop: box) }
            XCTAssertEqual(error?.kind, .invalidArgument, "\(box)")
            XCTAssertTrue(error?.description.contains("\(box)") ?? false)
        }
        XCTAssertTrue(imageError { _ = try image.cropped(to: bad[3]) }?.description.contains("outside the 6x4 image") ?? false)
        XCTAssertEqual(imageError { _ = try preprocess(image, side: 0) }?.kind, .invalidArgument)
        let whole = try image.cropped(to: CropBox(left: 0, top: 0, right: 6, bottom: 4))
        XCTAssertEqual(whole, image)
        let part = try image.cropped(to: CropBox(left: 1, top: 1, right: 3, bottom: 4))
        XCTAssertEqual([part.width, part.height, part.bitDepth], [2, 3, 8])
        let wide = try preprocess(image, size: (width: 3, height: 1))
        XCTAssertEqual([wide.width, wide.height], [3, 1])
    }

    /// toTensor gives x/127.5 − 1 for 8-bit values, bit for bit, in [1, 3, H, W] layout; fromTensor inverts it
    /// and quantizes back to the same bytes.
    func testTensorConversions() throws {
        let bytes = (0..<4 * 2 * 3).map { UInt8($0 * 11 % 256) }
        let image = RGBImage(width: 4, height: 2, bytes: bytes)
        let tensor = toTensor(image)
        XCTAssertEqual(tensor.shape, [1, 3, 2, 4])
        let values = tensor.scalars
        for y in 0..<2 {
            for x in 0..<4 {
                for c in 0..<3 {
                    XCTAssertEqual(values[c * 8 + y * 4 + x], Float(bytes[(y * 4 + x) * 3 + c]) / 127.5 - 1)
                }
            }
        }
        let back = fromTensor(tensor, index: 0)
        XCTAssertEqual(back.quantized(), bytes)
        XCTAssertEqual(back.bitDepth, 32)

        // Batch index, clamping and NaN.
        var batch = [Float](repeating: 0.25, count: 2 * 3 * 1 * 2)
        batch[6] = 3
        batch[7] = -5
        batch[8] = .nan
        let second = fromTensor(Tensor(shape: [2, 3, 1, 2], values: batch), index: 1)
        XCTAssertEqual(second.pixels, [1, 0, 0.625, 0, 0.625, 0.625])

        // 16-bit images map with 2v − 1.
        let deep = RGBImage(width: 1, height: 1, samples16: [0, 32768, 65535])
        XCTAssertEqual(toTensor(deep).scalars, [-1, 2 * (Float(32768) / 65535) - 1, 1])
    }
}

/// Labels under pictures and grids of them (for `--attention-maps`).
final class LabelledGridTests: XCTestCase {
    func testLabelBandAndGridLayout() {
        let red = RGBImage(width: 20, height: 10, pixels: Array(repeating: [1, 0, 0], count: 200).flatMap { $0 })
        let labelled = red.labelled("ab")
        XCTAssertEqual(labelled.width, 20)
        XCTAssertEqual(labelled.height, 10 + BitmapFont.height(scale: 1) + 2)
        XCTAssertEqual(Array(labelled.pixels.prefix(600)), red.pixels, "the picture is kept above the band")
        XCTAssertTrue(labelled.pixels.dropFirst(600).contains(0), "the label is drawn in black")
        XCTAssertEqual(red.labelled("a much too long label for twenty pixels").width, 20)

        let grid = RGBImage.grid([red, red, red], columns: 2, gap: 3)
        XCTAssertEqual(grid.width, 2 * 20 + 3)
        XCTAssertEqual(grid.height, 2 * 10 + 3)
        XCTAssertEqual(Array(grid.pixels[0..<3]), [1, 0, 0])
        XCTAssertEqual(Array(grid.pixels[(20 * 3)..<(21 * 3)]), [1, 1, 1], "the gap is white")
        let lastCell = ((13 * grid.width) + 23) * 3
        XCTAssertEqual(Array(grid.pixels[lastCell..<(lastCell + 3)]), [1, 1, 1], "the missing fourth cell is white")
        let third = ((13 * grid.width) + 0) * 3
        XCTAssertEqual(Array(grid.pixels[third..<(third + 3)]), [1, 0, 0])
    }
}
