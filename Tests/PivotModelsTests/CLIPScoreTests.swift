import Foundation
import Pivot
import PivotFormats
import PivotImage
import PivotTensor
import XCTest

/// `CLIPScore` (PIE-Bench's CLIP similarity) against transformers' `CLIPModel` and torchmetrics' `CLIPScore`
/// formula, on the fixture of scripts/fixtures/make_clip_fixtures.py (Fixtures/clip: a tiny random-weight CLIP
/// model with a 48-pixel crop, four images of other sizes, one masked; expected.json holds the token ids, the
/// pixel values' sum, both feature vectors and the score).
///
/// Tolerances: features within 1e-4 relative (of the vector's norm), scores within 1e-4 relative (1e-4 absolute
/// for a score clamped to 0); token ids exact.
final class CLIPScoreTests: XCTestCase, CLIRunning {
    static let fixture = Bundle.module.path(forResource: "Fixtures/clip", ofType: nil) ?? "missing"

    static let expected: [String: Any] = {
        guard let data = FileManager.default.contents(atPath: fixture + "/expected.json"),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return [:] }
        return object
    }()

    static let model: Result<CLIPScore, Error> = Result { try CLIPScore(folder: fixture + "/model") }

    var cases: [[String: Any]] { Self.expected["cases"] as? [[String: Any]] ?? [] }

    func image(_ name: String) throws -> RGBImage { try RGBImage.read(Self.fixture + "/images/" + name, applyOrientation: false) }

    func mask(_ runs: [Int]?, width: Int, height: Int) -> [UInt8]? {
        guard let runs else { return nil }
        var mask = [UInt8](repeating: 0, count: width * height)
        for k in stride(from: 0, to: runs.count, by: 2) { for i in runs[k]..<(runs[k] + runs[k + 1]) { mask[i] = 1 } }
        return mask
    }

    func assertClose(_ got: [Float], _ want: [Double], _ what: String) {
        XCTAssertEqual(got.count, want.count, what)
        let norm = want.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let worst = zip(got, want).map { abs(Double($0) - $1) }.max() ?? .infinity
        XCTAssertLessThan(worst, 1e-4 * norm, "\(what): max difference \(worst), norm \(norm)")
    }

    func testFixtureIsPresent() {
        XCTAssertEqual(cases.count, 5)
    }

    func testLoadsPreprocessorAndTokenizer() throws {
        let clip = try Self.model.get()
        XCTAssertEqual(clip.shortestEdge, 48)
        XCTAssertEqual(clip.cropSize, 48)
        XCTAssertEqual(clip.eosTokenID, 2)
        XCTAssertEqual(clip.std[0], 0.26862954, accuracy: 1e-9)
    }

    func testTokenIdsMatchTransformers() throws {
        let clip = try Self.model.get()
        for c in cases {
            let prompt = (c["prompt"] as? String ?? "").replacingOccurrences(of: "[", with: "").replacingOccurrences(of: "]", with: "")
            XCTAssertEqual(clip.tokenIDs(prompt), c["ids"] as? [Int], prompt)
        }
    }

    func testPixelValuesMatchTheProcessor() throws {
        let clip = try Self.model.get()
        for c in cases where c["mask"] is NSNull {
            let pixels = clip.pixelValues(try image(c["image"] as! String))
            XCTAssertEqual(pixels.shape, [1, 3, 48, 48])
            let sum = UnsafeBufferPointer(start: pixels.data, count: pixels.count).reduce(0.0) { $0 + Double($1) }
            XCTAssertEqual(sum, c["pixel_values_sum"] as! Double, accuracy: 1e-3, c["image"] as! String)
        }
    }

    func testFeaturesAndScoresMatchTorchmetrics() throws {
        let clip = try Self.model.get()
        for c in cases {
            let name = c["image"] as! String
            let prompt = (c["prompt"] as? String ?? "").replacingOccurrences(of: "[", with: "").replacingOccurrences(of: "]", with: "")
            var input = try image(name)
            if let m = mask(c["mask"] as? [Int], width: input.width, height: input.height) {
                var pixels = input.pixels
                ImageMetrics.applyMask(&pixels, m, keep: 1)
                input = RGBImage(width: input.width, height: input.height, pixels: pixels, bitDepth: 8)
            }
            let imageFeatures = try clip.imageFeatures(input)
            let textFeatures = try clip.textFeatures(prompt)
            assertClose(imageFeatures, c["image_features"] as! [Double], "\(name) image features")
            assertClose(textFeatures, c["text_features"] as! [Double], "\(prompt) text features")
            let want = c["score"] as! Double
            let got = try clip.score(
                image: try image(name), prompt: prompt, mask: mask(c["mask"] as? [Int], width: input.width, height: input.height))
            XCTAssertEqual(got, want, accuracy: max(1e-4 * abs(want), 1e-4), "\(name) \(prompt)")
            let cosine = c["cosine_x100"] as! Double
            XCTAssertEqual(CLIPScore.score(imageFeatures, textFeatures), max(cosine, 0), accuracy: max(1e-4 * abs(cosine), 1e-4))
        }
        XCTAssertTrue(cases.contains { ($0["score"] as? Double) == 0 }, "the fixture has a score clamped at 0")
    }

    // MARK: PIE-Bench

    static let evalFixture = Bundle.module.path(forResource: "Fixtures/eval", ofType: nil) ?? "missing"
    var pieBench: [String: [String: [String: Any]]] { Self.expected["pie_bench"] as? [String: [String: [String: Any]]] ?? [:] }

    func testPIEBenchCLIPMetricsMatchTheReference() throws {
        var options = PIEBenchOptions()
        options.metrics = PIEMetric.clip + [PIEMetric(.psnr, .background)]
        options.clipModel = Self.fixture + "/model"
        let report = try PIEBench.evaluate(layout: PIEBenchLayout(root: Self.evalFixture), options: options)
        XCTAssertEqual(
            report.metrics.map(\.name).prefix(3),
            ["clip_similarity_source_image", "clip_similarity_target_image", "clip_similarity_target_image_edit_part"])
        var compared = 0
        for (m, method) in report.methods.enumerated() {
            for (e, entry) in report.entries.enumerated() {
                let want = try XCTUnwrap(pieBench[method.name]?[entry.key], "\(method.name) \(entry.key)")
                for k in 0..<3 {
                    let name = report.metrics[k].name
                    let w = try XCTUnwrap(want[name] as? Double, name)
                    XCTAssertEqual(report.values[e][m][k], w, accuracy: max(1e-4 * abs(w), 1e-4), "\(method.name) \(entry.key) \(name)")
                    compared += 1
                }
                XCTAssertFalse(report.values[e][m][3].isNaN && entry.key == "000000000000")
            }
        }
        XCTAssertEqual(compared, 2 * 4 * 3)
    }

    func testCLIPMetricsNeedAModel() throws {
        XCTAssertEqual(try PIEMetric(name: "clip_similarity_target_image_edit_part"), PIEMetric(clip: .target, .edited))
        var options = PIEBenchOptions()
        options.metrics = [PIEMetric(clip: .source)]
        XCTAssertThrowsError(try PIEBench.evaluate(layout: PIEBenchLayout(root: Self.evalFixture), options: options)) {
            XCTAssertTrue("\($0)".contains("clip_model") && "\($0)".contains("clip_similarity_source_image"), "\($0)")
        }
    }

    func testEvalCommandComputesCLIPMetrics() throws {
        let run = try pivot([
            "eval", Self.evalFixture, "--json", "--methods", "alpha", "--editing-types", "0", "--clip-model", Self.fixture + "/model",
        ])
        XCTAssertEqual(run.status, 0, run.err)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(run.out.utf8)) as? [String: Any])
        XCTAssertEqual(
            object["metrics"] as? [String],
            [
                "psnr_unedit_part", "mse_unedit_part", "ssim_unedit_part", "clip_similarity_source_image", "clip_similarity_target_image",
                "clip_similarity_target_image_edit_part",
            ])
        let methods = try XCTUnwrap(object["methods"] as? [[String: Any]])
        let mean = try XCTUnwrap(methods.first?["mean"] as? [String: Any])
        let want = try XCTUnwrap(pieBench["alpha"]?["000000000000"]?["clip_similarity_target_image"] as? Double)
        XCTAssertEqual(try XCTUnwrap(mean["clip_similarity_target_image"] as? Double), want, accuracy: 1e-4 * want)

        let missing = try pivot(["eval", Self.evalFixture, "--metrics", "clip_similarity_target_image"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.err.contains("--clip-model"), missing.err)
        let bad = try pivot(["eval", Self.evalFixture, "--clip-model", "/nonexistent/clip"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("/nonexistent/clip"), bad.err)
        XCTAssertEqual(bad.err.split(separator: "\n").count, 1, bad.err)
    }

    // MARK: loading errors

    func copyOfModel() throws -> String {
        let dir = NSTemporaryDirectory() + "clip-\(UUID().uuidString)"
        try FileManager.default.copyItem(atPath: Self.fixture + "/model", toPath: dir)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func message(_ body: () throws -> Void) -> String {
        do { try body() } catch { return "\(error)" }
        return "no error"
    }

    func rewriteWeights(_ dir: String, _ edit: (inout [(name: String, tensor: Tensor)]) -> Void) throws {
        let file = try SafeTensorsFile(path: dir + "/model.safetensors")
        var tensors = try file.names.map { (name: $0, tensor: try file.floatTensor($0)) }
        edit(&tensors)
        try SafeTensorsWriter.write(tensors, to: dir + "/model.safetensors")
    }

    func testMissingTensorIsNamedWithItsFile() throws {
        let dir = try copyOfModel()
        try rewriteWeights(dir) { $0.removeAll { $0.name == "text_projection.weight" } }
        let text = message { _ = try CLIPScore(folder: dir) }
        XCTAssertTrue(text.contains("model.safetensors") && text.contains("text_projection.weight"), text)
        XCTAssertFalse(text.contains("\n"))
    }

    func testUnexpectedAndMisshapedTensorsAreRefused() throws {
        let dir = try copyOfModel()
        try rewriteWeights(dir) { $0.append((name: "vision_model.extra", tensor: Tensor(zeros: [2]))) }
        let extra = message { _ = try CLIPScore(folder: dir) }
        XCTAssertTrue(extra.contains("model.safetensors") && extra.contains("vision_model.extra"), extra)
        try rewriteWeights(dir) { tensors in
            tensors.removeAll { $0.name == "vision_model.extra" }
            if let i = tensors.firstIndex(where: { $0.name == "visual_projection.weight" }) {
                tensors[i].tensor = Tensor(zeros: [16, 31])
            }
        }
        let shape = message { _ = try CLIPScore(folder: dir) }
        XCTAssertTrue(shape.contains("visual_projection.weight") && shape.contains("[16, 31]"), shape)
    }

    func testBadFolderFilesAreOneLineErrors() throws {
        XCTAssertTrue(message { _ = try CLIPScore(folder: "/nonexistent/clip") }.contains("/nonexistent/clip"))
        let dir = try copyOfModel()
        try Data("{\"size\": {\"shortest_edge\": \"big\"}}".utf8).write(to: URL(fileURLWithPath: dir + "/preprocessor_config.json"))
        let processor = message { _ = try CLIPScore(folder: dir) }
        XCTAssertTrue(processor.contains("preprocessor_config.json") && processor.contains("shortest_edge"), processor)
        try Data("{\"crop_size\": 32, \"size\": 48}".utf8).write(to: URL(fileURLWithPath: dir + "/preprocessor_config.json"))
        let crop = message { _ = try CLIPScore(folder: dir) }
        XCTAssertTrue(crop.contains("image_size 48"), crop)
        try FileManager.default.removeItem(atPath: dir + "/preprocessor_config.json")
        try Data("{\"vision_config\": {\"image_size\": 50, \"patch_size\": 8}}".utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        let config = message { _ = try CLIPScore(folder: dir) }
        XCTAssertTrue(config.contains("config.json") && config.contains("patch_size"), config)
        try FileManager.default.removeItem(atPath: dir + "/model.safetensors")
        try FileManager.default.removeItem(atPath: dir + "/config.json")
        let missing = message { _ = try CLIPScore(folder: dir) }
        XCTAssertTrue(missing.contains("config.json"), missing)
    }
}
