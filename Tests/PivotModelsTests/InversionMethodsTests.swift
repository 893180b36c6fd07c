import Foundation
import Pivot
import PivotDiffusion
import PivotFormats
import PivotImage
import PivotLoading
import PivotTensor
import XCTest

/// The inversions beyond the references' null-text: fixed-point DDIM inversion (AIDI) and edit-friendly DDPM
/// noise maps. What each promises with target = source: fixed-point reconstructs better than plain DDIM
/// inversion on a trained model (the demo model), fixed-point+direct lands its source branch on the trajectory,
/// DDPM within 1/255 of the VAE's own reconstruction on any model and prediction type. Plus their files, the
/// cache and the command line.
final class InversionMethodsTests: XCTestCase, CLIRunning {
    var root: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }
    var tinyModel: String { Bundle.module.path(forResource: "Fixtures/sd1-tiny/model", ofType: nil) ?? "missing" }
    var tinyPhoto: String { Bundle.module.path(forResource: "Fixtures/inversion/photo.png", ofType: nil) ?? "missing" }

    func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "pivot-methods-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func psnr(_ a: RGBImage, _ b: RGBImage) -> Double {
        var se = 0.0
        for (x, y) in zip(a.pixels, b.pixels) { se += Double(x - y) * Double(x - y) }
        return 10 * log10(1 / max(se / Double(a.pixels.count), 1e-20))
    }

    func maxDifference(_ a: RGBImage, _ b: RGBImage) -> Float {
        zip(a.pixels, b.pixels).map { abs($0 - $1) }.max() ?? .infinity
    }

    /// The identity edit (target = source) of `photo` inverted with `method`, and the VAE's reconstruction.
    func identity(_ sd: StableDiffusion, photo: String, prompt: String, method: InversionMethod, steps: Int) throws -> (
        edit: RGBImage, vae: RGBImage, record: InversionRecord
    ) {
        var s = InversionSettings()
        s.method = method
        s.steps = steps
        s.innerSteps = 6
        let record = try sd.invert(photo: photo, prompt: prompt, settings: s)
        let images = try sd.render(record, source: prompt, targets: [prompt], guidance: s.guidance)
        XCTAssertEqual(images.count, 2)
        if !method.usesOffsets {  // offsets correct the source branch only
            XCTAssertLessThanOrEqual(maxDifference(images[0], images[1]), 1 / 255, "the identical target follows the source")
        }
        let z0 = try sd.encodePhoto(photo)
        let vae = fromTensor(try sd.vae.decode(scale(z0, Float(1 / sd.vae.config.scalingFactor))), index: 0)
        return (images[0], vae, record)
    }

    /// On the demo model (trained, so its guided ε is smooth enough for the iteration to contract) fixed-point
    /// inversion reconstructs clearly better than plain DDIM inversion, and DDPM within 1/255. fp32, so the
    /// figures do not depend on the processor.
    func testReconstructionOnTheDemoModel() throws {
        let model = root + "/samples/models/shapes", photo = root + "/samples/shapes/red-circle.png"
        try XCTSkipUnless(FileManager.default.fileExists(atPath: model + "/model_index.json"), "no demo model")
        let sd = try StableDiffusion(model: ModelFolder(path: model))
        let prompt = "a red circle on a white background"
        var figures: [InversionMethod: Double] = [:]
        for method in [InversionMethod.ddim, .fixedPoint, .fixedPointDirect, .ddpm] {
            let (edit, vae, record) = try identity(sd, photo: photo, prompt: prompt, method: method, steps: 10)
            figures[method] = psnr(edit, vae)
            print("demo reconstruction \(method.rawValue): \(String(format: "%.2f", figures[method]!)) dB")
            if method == .ddpm { XCTAssertLessThanOrEqual(maxDifference(edit, vae), 1 / 255, "DDPM reconstructs exactly") }
            if method == .fixedPointDirect {
                XCTAssertEqual(record.offsets?.count, 10, "fixed-point+direct stores direct offsets")
                XCTAssertGreaterThan(figures[method]!, 40, "its offsets put the source branch back on the trajectory")
            }
            if method == .fixedPoint {
                let iterations = try XCTUnwrap(record.metadata["fixed_point_iterations"]).split(separator: ",").compactMap { Int($0) }
                XCTAssertEqual(iterations.count, 10)
                XCTAssertTrue(iterations.allSatisfy { (1...6).contains($0) }, "\(iterations)")
                XCTAssertNotNil(record.metadata["fixed_point_residuals"])
            }
        }
        XCTAssertGreaterThan(figures[.fixedPoint]!, figures[.ddim]! + 3, "fixed-point beats plain DDIM inversion")
    }

    /// DDPM's reconstruction is exact by construction, for ε- and v-prediction alike, even on a random model;
    /// fixed-point+direct runs for both prediction types.
    func testDDPMReconstructsExactlyForEveryPredictionType() throws {
        let folder = try ModelFolder(path: tinyModel)
        for v in [false, true] {
            let sd = try StableDiffusion(
                model: folder, scheduler: v ? try folder.schedulerConfig().overriding(predictionType: .vPrediction) : nil)
            let (edit, vae, record) = try identity(sd, photo: tinyPhoto, prompt: "a red circle", method: .ddpm, steps: 6)
            XCTAssertLessThanOrEqual(maxDifference(edit, vae), 1 / 255, v ? "v-prediction" : "ε-prediction")
            XCTAssertEqual(record.noiseMaps?.count, 6)
            XCTAssertEqual(record.latents.count, 7)
            XCTAssertEqual(record.metadata["ddpm_seed"], "0")
            // Fixed-point inversion converts every output to ε at the iterate's own level: it runs for v too.
            var s = InversionSettings()
            (s.method, s.steps, s.innerSteps) = (.fixedPointDirect, 4, 3)
            let fixed = try sd.invert(photo: tinyPhoto, prompt: "a red circle", settings: s)
            XCTAssertEqual(fixed.latents.count, 5)
            XCTAssertTrue(fixed.latents.allSatisfy(\.allFinite))
            XCTAssertEqual(fixed.metadata["fixed_point_iterations"]?.split(separator: ",").count, 4)
            XCTAssertEqual(fixed.offsets?.count, 4)
        }
    }

    /// Noise maps travel through the inversion file; a ddpm file without them, or with maps of another shape,
    /// is a one-line error naming the tensor.
    func testDDPMFileRoundTripAndDamage() throws {
        let dir = try temporaryDirectory()
        let sd = try StableDiffusion(model: ModelFolder(path: tinyModel))
        var s = InversionSettings()
        (s.method, s.steps) = (.ddpm, 3)
        let record = try sd.invert(photo: tinyPhoto, prompt: "a red circle", settings: s)
        let path = dir + "/photo.inversion.safetensors"
        try record.write(to: path)
        let back = try sd.readInversion(path: path, source: "a red circle")
        XCTAssertEqual(back.method, .ddpm)
        XCTAssertEqual(try XCTUnwrap(back.noiseMaps).map(\.scalars), try XCTUnwrap(record.noiseMaps).map(\.scalars))
        XCTAssertEqual(back.contentHash(), record.contentHash())

        let latents = stackBatch(record.latents)
        let maps = stackBatch(try XCTUnwrap(record.noiseMaps))
        let missing = dir + "/missing.safetensors"
        try SafeTensorsWriter.write([("latents", latents)], metadata: record.metadata, to: missing)
        XCTAssertThrowsError(try InversionRecord(path: missing)) {
            XCTAssertTrue("\($0)".contains("noise_maps is missing; a ddpm inversion needs it"), "\($0)")
        }
        let short = dir + "/short.safetensors"
        try SafeTensorsWriter.write(
            [("latents", latents), ("noise_maps", batchSlice(maps, 0..<2))], metadata: record.metadata, to: short)
        XCTAssertThrowsError(try InversionRecord(path: short)) { XCTAssertTrue("\($0)".contains("noise_maps is [2,"), "\($0)") }
    }

    /// `pivot edit --method fixed-point|ddpm` through the cache: the second run reads the first's inversion and
    /// writes the same image; a batch manifest names the methods per row; an inversion file of another method is
    /// refused when a method is given.
    func testCommandLineAndCache() throws {
        let dir = try temporaryDirectory()
        for method in ["fixed-point", "ddpm"] {
            let args = [
                "edit", tinyPhoto, "--model", tinyModel, "--source", "a red circle", "--target", "a blue circle", "--method", method,
                "--steps", "3", "--inner-steps", "2", "--precision", "fp32",
            ]
            let env = ["PIVOT_CACHE_DIR": dir + "/cache"]
            let first = try pivot(args + ["-o", dir + "/\(method)-1.png", "--progress", "log"], environment: env)
            XCTAssertEqual(first.status, 0, first.err)
            XCTAssertTrue(first.err.contains(method == "ddpm" ? "DDPM inversion" : "fixed-point inversion"), first.err)
            let second = try pivot(args + ["-o", dir + "/\(method)-2.png", "--quiet"], environment: env)
            XCTAssertEqual(second.status, 0, second.err)
            XCTAssertEqual(
                try RGBImage(contentsOf: dir + "/\(method)-1.png").pixels, try RGBImage(contentsOf: dir + "/\(method)-2.png").pixels)
        }
        // A batch manifest takes the methods per row.
        try FileManager.default.createDirectory(atPath: dir + "/in", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: tinyPhoto, toPath: dir + "/in/p.png")
        try "image,source,target,method,output\np.png,a red circle,a blue circle,fixed-point,fp.png\np.png,a red circle,a blue circle,ddpm,dd.png\n"
            .write(toFile: dir + "/rows.csv", atomically: true, encoding: .utf8)
        let batch = try pivot([
            "batch", dir + "/in", "--model", tinyModel, "--manifest", dir + "/rows.csv", "-o", dir + "/out", "--steps", "3",
            "--inner-steps", "2", "--no-cache", "--quiet", "--precision", "fp32",
        ])
        XCTAssertEqual(batch.status, 0, batch.err)
        for name in ["fp.png", "dd.png"] { XCTAssertNoThrow(try RGBImage(contentsOf: dir + "/out/" + name), name) }
        let journal = try String(contentsOfFile: dir + "/out/pivot-batch.jsonl", encoding: .utf8)
        XCTAssertEqual(journal.split(separator: "\n").filter { $0.contains("\"status\":\"ok\"") }.count, 2, journal)

        let invert = try pivot([
            "invert", tinyPhoto, "--model", tinyModel, "--prompt", "a red circle", "--method", "ddpm", "--steps", "3",
            "-o", dir + "/d.safetensors", "--quiet",
        ])
        XCTAssertEqual(invert.status, 0, invert.err)
        let refused = try pivot([
            "edit", dir + "/d.safetensors", "--model", tinyModel, "--source", "a red circle", "--target", "a blue circle",
            "--method", "fixed-point", "-o", dir + "/x.png",
        ])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.err.contains("--method fixed-point (the file has ddpm)"), refused.err)
    }
}
