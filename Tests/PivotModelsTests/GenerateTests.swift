import Foundation
import Pivot
import PivotLoading
import PivotDiffusion
import PivotFormats
import PivotImage
import XCTest

/// `pivot generate` against diffusers' StableDiffusionPipeline with DDIM (fixtures by
/// scripts/fixtures/make_generate_fixtures.py): same seed, same image, within 2/255 per pixel.
final class GenerateTests: XCTestCase {
    func testMatchesDiffusers() throws {
        let dir = try XCTUnwrap(Bundle.module.path(forResource: "Fixtures/generate", ofType: nil))
        let model = try ModelFolder(path: try XCTUnwrap(Bundle.module.path(forResource: "Fixtures/sd1-tiny/model", ofType: nil)))
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".safetensors") }.sorted()
        XCTAssertEqual(names.count, 4)
        for name in names {
            let file = try SafeTensorsFile(path: dir + "/" + name)
            let m = file.metadata
            var config = try model.schedulerConfig()
            config.predictionType = try XCTUnwrap(SchedulerConfig.PredictionType(rawValue: m["prediction"] ?? ""))
            let sd = try StableDiffusion(model: model, scheduler: config)
            var r = GenerationRequest(prompt: try XCTUnwrap(m["prompt"]))
            r.negativePrompt = m["negative"] ?? ""
            r.steps = Int(m["steps"] ?? "") ?? 0
            r.guidance = Float(m["guidance"] ?? "") ?? 0
            r.seed = UInt64(m["seed"] ?? "") ?? 0
            r.width = Int(m["width"] ?? "")
            r.height = Int(m["height"] ?? "")
            var stepsSeen = 0
            let image = try sd.generate(r) { done, _ in stepsSeen = done }
            XCTAssertEqual(stepsSeen, r.steps, name)
            let ref = try file.numericValues("image")
            XCTAssertEqual(ref.shape, [image.height, image.width, 3], name)
            let got = image.quantized()
            var worst = 0.0
            for (a, b) in zip(got, ref.values) { worst = max(worst, abs(Double(a) - b)) }
            XCTAssertLessThanOrEqual(worst, 2, "\(name): max pixel difference \(worst)/255")
            print("generate \(name): max pixel difference \(worst)/255")
        }
    }

    func testBadRequests() throws {
        let model = try ModelFolder(path: try XCTUnwrap(Bundle.module.path(forResource: "Fixtures/sd1-tiny/model", ofType: nil)))
        let sd = try StableDiffusion(model: model)
        var r = GenerationRequest(prompt: "x")
        r.steps = 0
        XCTAssertThrowsError(try sd.validate(r))
        r.steps = 10
        r.width = 30
        XCTAssertThrowsError(try sd.validate(r)) { XCTAssertTrue("\($0)".contains("multiples of 4"), "\($0)") }
    }
}
