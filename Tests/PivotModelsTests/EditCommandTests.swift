import Foundation
import Pivot
import PivotLoading
import PivotImage
import XCTest

/// `pivot edit`: the Prompt-to-Prompt plan from prompts and flags, the inversion cache, bad input.
final class EditCommandTests: XCTestCase, CLIRunning {
    var model: String { Bundle.module.path(forResource: "Fixtures/sd1-tiny/model", ofType: nil) ?? "missing" }
    var photo: String { Bundle.module.path(forResource: "Fixtures/inversion/photo.png", ofType: nil) ?? "missing" }

    func testPlanChoosesSwapOrRefinementAndChecksWords() throws {
        let sd = try StableDiffusion(model: ModelFolder(path: model))
        var o = EditOptions()
        o.reweight = ["blue": 2]
        let swap = try sd.promptToPrompt(source: "a red circle", targets: ["a blue circle"], steps: 10, latentSide: 16, options: o)
        guard case .replace = swap.edit else { return XCTFail("equal word counts should swap words") }
        XCTAssertEqual(swap.selfReplaceMaxTokens, 64)
        XCTAssertEqual(swap.equalizer?[0].filter { $0 == 2 }.count, sd.tokenizer.contentIds("blue").count)
        o.reweight = [:]
        let refine = try sd.promptToPrompt(source: "a red circle", targets: ["a big red circle"], steps: 10, latentSide: 16, options: o)
        guard case .refine = refine.edit else { return XCTFail("different word counts should refine") }
        o.mode = .replace
        XCTAssertThrowsError(
            try sd.promptToPrompt(
                source: "a red circle", targets: ["a big red circle"], steps: 10,
                latentSide: 16, options: o)
        ) { XCTAssertTrue("\($0)".contains("same number of words")) }
        o.mode = .auto
        o.crossReplaceWords = ["square": 0.3]
        XCTAssertThrowsError(
            try sd.promptToPrompt(
                source: "a red circle", targets: ["a blue circle"], steps: 10,
                latentSide: 16, options: o)
        ) { XCTAssertTrue("\($0)".contains("'square'")) }
        let long = Array(repeating: "red", count: 80).joined(separator: " ")
        XCTAssertThrowsError(try sd.promptToPrompt(source: long, targets: [long], steps: 10, latentSide: 16, options: EditOptions()))
    }

    func testEditWritesImagesAndReusesTheCachedInversion() throws {
        let dir = NSTemporaryDirectory() + "pivot-edit-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let env = ["PIVOT_CACHE_DIR": dir + "/cache"]
        let args = [
            "edit", photo, "--model", model, "--source", "a red circle", "--target", "a blue circle",
            "--target", "a big red circle", "--steps", "2", "--inner-steps", "1", "-o", dir + "/out.png",
        ]
        let first = try pivot(args, environment: env)
        XCTAssertEqual(first.status, 0, first.err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/out-1.png"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/out-2.png"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/cache").filter { $0.hasSuffix(".safetensors") }.count, 1)
        let second = try pivot(
            args + ["--side-by-side", "-o", dir + "/grid.png", "--attention-maps", dir + "/maps.png"],
            environment: env)
        XCTAssertEqual(second.status, 0, second.err)
        XCTAssertTrue(second.err.contains("using the cached inversion"), second.err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/grid.png"))
        // "a red circle" is 8 tokens with the tiny tokenizer (start, a, red, c, ir, c, le, end): one row of
        // 256-pixel tiles 5 pixels apart, each with a 51-pixel label band.
        let maps = try RGBImage(contentsOf: dir + "/maps.png")
        XCTAssertEqual(maps.width, 8 * 256 + 7 * 5)
        XCTAssertEqual(maps.height, 256 + 51)
        XCTAssertTrue(maps.pixels.contains(0), "labels are drawn in black")
    }

    /// Each bad input is one line on stderr, exit status 1, and no output file.
    func testBadInputIsOneLine() throws {
        let dir = NSTemporaryDirectory() + "pivot-edit-bad-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let env = ["PIVOT_CACHE_DIR": dir + "/cache"]
        let inversion = dir + "/inv.safetensors"
        let made = try pivot(
            [
                "invert", photo, "--model", model, "--prompt", "a red circle", "--steps", "2",
                "--inner-steps", "1", "-o", inversion, "--quiet",
            ], environment: env)
        XCTAssertEqual(made.status, 0, made.err)
        let out = dir + "/out.png"
        let fromPhoto = ["edit", photo, "--model", model, "--steps", "2", "--inner-steps", "1", "-o", out]
        let fromFile = ["edit", inversion, "--model", model, "-o", out]
        let long = Array(repeating: "red", count: 80).joined(separator: " ")
        // The same model with one more tokenizer file: another fingerprint.
        let other = dir + "/other-model"
        try FileManager.default.copyItem(atPath: model, toPath: other)
        try Data("changed\n".utf8).write(to: URL(fileURLWithPath: other + "/tokenizer/notes.txt"))
        let cases: [([String], String)] = [
            (fromPhoto + ["--source", "a red circle", "--target", "a blue circle", "--reweight", "green=2"], "'green'"),
            (fromPhoto + ["--source", "a red circle", "--target", "a blue circle", "--cross-replace", "square=0.2"], "'square'"),
            (fromPhoto + ["--source", "a red circle", "--target", "a blue circle", "--blend", "square"], "'square'"),
            (fromPhoto + ["--source", "a red circle", "--target", "a big red circle", "--mode", "replace"], "same number of words"),
            (fromPhoto + ["--source", long, "--target", long], "tokens"),
            (fromPhoto + ["--source", "a red circle", "--target", "a blue circle", "--self-replace", "0.5,0.2"], "fractions"),
            (fromFile + ["--source", "a red circle", "--target", "a blue circle", "--steps", "3"], "--steps 3 (the file has 2)"),
            (fromFile + ["--source", "a red circle", "--target", "a blue circle", "--method", "ddim"], "--method ddim"),
            (fromFile + ["--source", "a blue circle", "--target", "a red circle"], "source prompt"),
            (
                ["edit", inversion, "--model", other, "--source", "a red circle", "--target", "a blue circle", "-o", out],
                "another model"
            ),
            (
                ["edit", model + "/model_index.json", "--model", model, "--source", "a", "--target", "b", "-o", out],
                "not a PNG, JPEG, TIFF, WebP or HEIF image"
            ),
            (
                [
                    "edit", Bundle.module.path(forResource: "Fixtures/sd1-tiny/unet.in.safetensors", ofType: nil) ?? "",
                    "--model", model, "--source", "a", "--target", "b", "-o", out,
                ], "not a pivot inversion file"
            ),
        ]
        for (args, expected) in cases {
            let r = try pivot(args, environment: env)
            XCTAssertEqual(r.status, 1, "\(args)")
            let lines = r.err.split(separator: "\n").filter { $0.hasPrefix("pivot: error: ") }
            XCTAssertEqual(lines.count, 1, r.err)
            XCTAssertTrue(r.err.contains(expected), "expected '\(expected)' in: \(r.err)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(args)")
        }
        let overwrite = try pivot(["edit", photo, "--model", model, "--source", "a", "--target", "b", "-o", photo])
        XCTAssertNotEqual(overwrite.status, 0)
        XCTAssertTrue(overwrite.err.contains("would overwrite the input"), overwrite.err)
        let maps = try pivot([
            "edit", photo, "--model", model, "--source", "a", "--target", "b", "-o", out,
            "--attention-maps", out,
        ])
        XCTAssertNotEqual(maps.status, 0)
        XCTAssertTrue(maps.err.contains("--attention-maps would overwrite"), maps.err)
    }
}
