import Foundation
import PivotImage
import XCTest

/// The demo model in samples/ really edits (samples/models/shapes, trained from scratch on the shapes world by
/// scripts/demo/train_shapes.py): the README's first edit turns the red circle blue and keeps the white background.
final class DemoModelTests: XCTestCase, CLIRunning {
    var root: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    func testRedCircleBecomesBlueOnTheSameBackground() throws {
        let model = root + "/samples/models/shapes", photo = root + "/samples/shapes/red-circle.png"
        try XCTSkipUnless(FileManager.default.fileExists(atPath: model + "/model_index.json"), "no demo model")
        let tmp = NSTemporaryDirectory() + "pivot-demo-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let run = try pivot([
            "edit", photo, "--model", model, "--source", "a red circle on a white background",
            "--target", "a blue circle on a white background", "--method", "direct", "--steps", "20",
            "-o", tmp + "/out.png", "--quiet", "--no-cache",
        ])
        XCTAssertEqual(run.status, 0, run.err)
        let source = try RGBImage(contentsOf: photo), edited = try RGBImage(contentsOf: tmp + "/out.png")
        XCTAssertEqual(edited.width, source.width)
        var object = (r: 0.0, g: 0.0, b: 0.0, n: 0.0), se = 0.0, background = 0.0
        for i in 0..<(source.width * source.height) {
            let (r0, g0, b0) = (source.pixels[3 * i], source.pixels[3 * i + 1], source.pixels[3 * i + 2])
            let (r1, g1, b1) = (Double(edited.pixels[3 * i]), Double(edited.pixels[3 * i + 1]), Double(edited.pixels[3 * i + 2]))
            if r0 > 0.6 && g0 < 0.3 && b0 < 0.3 {
                object = (object.r + r1, object.g + g1, object.b + b1, object.n + 1)
            } else if r0 > 0.9 && g0 > 0.9 && b0 > 0.9 {
                se += (r1 - Double(r0)) * (r1 - Double(r0)) + (g1 - Double(g0)) * (g1 - Double(g0)) + (b1 - Double(b0)) * (b1 - Double(b0))
                background += 3
            }
        }
        XCTAssertGreaterThan(object.n, 100, "the sample has a red object")
        let (r, g, b) = (object.r / object.n, object.g / object.n, object.b / object.n)
        XCTAssertGreaterThan(b, r + 0.2, "the object is blue now: mean RGB (\(r), \(g), \(b))")
        let psnr = 10 * log10(background / max(se, 1e-12))
        XCTAssertGreaterThan(psnr, 20, "the white background is kept: \(psnr) dB")
        print("demo edit: object mean RGB (\(r), \(g), \(b)), background PSNR \(psnr) dB")
    }
}
