import Foundation
import Pivot
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
        XCTAssertThrowsError(try sd.promptToPrompt(source: "a red circle", targets: ["a big red circle"], steps: 10,
                                                   latentSide: 16, options: o)) { XCTAssertTrue("\($0)".contains("same number of words")) }
        o.mode = .auto
        o.crossReplaceWords = ["square": 0.3]
        XCTAssertThrowsError(try sd.promptToPrompt(source: "a red circle", targets: ["a blue circle"], steps: 10,
                                                   latentSide: 16, options: o)) { XCTAssertTrue("\($0)".contains("'square'")) }
        let long = Array(repeating: "red", count: 80).joined(separator: " ")
        XCTAssertThrowsError(try sd.promptToPrompt(source: long, targets: [long], steps: 10, latentSide: 16, options: EditOptions()))
    }

    func testEditWritesImagesAndReusesTheCachedInversion() throws {
        let dir = NSTemporaryDirectory() + "pivot-edit-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let env = ["PIVOT_CACHE_DIR": dir + "/cache"]
        let args = ["edit", photo, "--model", model, "--source", "a red circle", "--target", "a blue circle",
                    "--target", "a big red circle", "--steps", "2", "--inner-steps", "1", "-o", dir + "/out.png"]
        let first = try pivot(args, environment: env)
        XCTAssertEqual(first.status, 0, first.err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/out-1.png"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/out-2.png"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/cache").count, 1)
        let second = try pivot(args + ["--side-by-side", "-o", dir + "/grid.png"], environment: env)
        XCTAssertEqual(second.status, 0, second.err)
        XCTAssertTrue(second.err.contains("using the cached inversion"), second.err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/grid.png"))
    }

    func testBadInputIsOneLine() throws {
        let cases: [[String]] = [
            ["edit", photo, "--model", model, "--source", "a red circle", "--target", "a blue circle", "--reweight", "green=2",
             "--steps", "2", "--inner-steps", "1", "-o", "/tmp/pivot-x.png"],
            ["edit", model + "/model_index.json", "--model", model, "--source", "a", "--target", "b", "-o", "/tmp/pivot-x.png"],
            ["edit", Bundle.module.path(forResource: "Fixtures/sd1-tiny/unet.in.safetensors", ofType: nil) ?? "",
             "--model", model, "--source", "a", "--target", "b", "-o", "/tmp/pivot-x.png"],
        ]
        for args in cases {
            let r = try pivot(args, environment: ["PIVOT_CACHE_DIR": NSTemporaryDirectory() + "pivot-edit-cache-\(UUID().uuidString)"])
            XCTAssertEqual(r.status, 1, "\(args)")
            let lines = r.err.split(separator: "\n").filter { $0.hasPrefix("pivot: error: ") }
            XCTAssertEqual(lines.count, 1, r.err)
        }
        let overwrite = try pivot(["edit", photo, "--model", model, "--source", "a", "--target", "b", "-o", photo])
        XCTAssertNotEqual(overwrite.status, 0)
        XCTAssertTrue(overwrite.err.contains("would overwrite the input"), overwrite.err)
    }
}
