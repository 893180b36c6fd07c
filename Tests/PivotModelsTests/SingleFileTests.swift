import Foundation
import Pivot
import PivotLoading
import PivotDiffusion
import PivotFormats
import PivotTensor
import XCTest

/// Single-file checkpoints in the original layout (fixtures by scripts/fixtures/make_single_file_fixtures.py, checked
/// there with diffusers' own converters): the same component outputs as the diffusers folders, `pivot
/// convert`, detection and defaults, strict loading.
final class SingleFileTests: XCTestCase, CLIRunning {
    func fixture(_ path: String) throws -> String {
        try XCTUnwrap(Bundle.module.path(forResource: "Fixtures/" + path, ofType: nil), path)
    }

    func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "pivot-single-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// sd1-tiny as .safetensors (fp32, CLIP names) and sd2-tiny as .ckpt (fp16, OpenCLIP names with fused
    /// in_proj, an unused extra layer, EMA and schedule buffers) give the folders' golden outputs.
    func testComponentsMatchTheFolders() throws {
        for (file, name) in [("single/sd1-tiny.safetensors", "sd1-tiny"), ("single/sd2-tiny.ckpt", "sd2-tiny")] {
            let dir = try fixture(name)
            let model = try ModelFolder(path: try fixture(file), config: dir + "/model")
            XCTAssertEqual(model.single?.family, name == "sd1-tiny" ? .sd1 : .sd2)
            for (component, output) in [(Component.textEncoder, "last_hidden_state"), (.unet, "out"), (.vaeEncode, "mean"), (.vaeDecode, "image")] {
                try compare(component, model: model, dir: dir, output: output, label: file)
            }
        }
    }

    /// `pivot convert` writes a folder pivot loads with the same outputs (diffusers loads it too: see
    /// docs/PARITY.md); an existing destination is refused.
    func testConvert() throws {
        let tmp = try temporaryDirectory()
        let dir = try fixture("sd2-tiny")
        let r = try pivot([
            "convert", try fixture("single/sd2-tiny.ckpt"), "--config", dir + "/model", "-o", tmp + "/conv",
            "--dtype", "fp32", "--quiet",
        ])
        XCTAssertEqual(r.status, 0, r.err)
        for f in [
            "model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
            "text_encoder/model.safetensors", "scheduler/scheduler_config.json",
        ] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: tmp + "/conv/" + f), f)
        }
        try compare(.unet, model: ModelFolder(path: tmp + "/conv"), dir: dir, output: "out", label: "converted")
        try compare(.textEncoder, model: ModelFolder(path: tmp + "/conv"), dir: dir, output: "last_hidden_state", label: "converted")
        let again = try pivot(["convert", try fixture("single/sd2-tiny.ckpt"), "--config", dir + "/model", "-o", tmp + "/conv"])
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.err.contains("already exists"), again.err)
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: tmp).contains { $0.contains(".partial") })
    }

    /// Without --config the SD defaults apply: SD 1.x ε-prediction at 512², SD 2.x v-prediction at 768²;
    /// the tiny files do not fit them and say which tensor differs.
    func testDefaultsAndOverrides() throws {
        let sd1 = try ModelFolder(path: try fixture("single/sd1-tiny.safetensors"))
        XCTAssertEqual(try sd1.schedulerConfig().predictionType, .epsilon)
        XCTAssertEqual(try sd1.unetConfig().sampleSize, 64)
        XCTAssertEqual(try sd1.tokenizer().vocabularySize, 49408)
        XCTAssertThrowsError(try sd1.loadUNet()) {
            XCTAssertTrue("\($0)".contains("time_embedding.linear_1.weight (model.diffusion_model.time_embed.0.weight)"), "\($0)")
        }
        let sd2 = try ModelFolder(path: try fixture("single/sd2-tiny.ckpt"))
        XCTAssertEqual(try sd2.schedulerConfig().predictionType, .vPrediction)
        XCTAssertEqual(try sd2.unetConfig().sampleSize, 96)
        XCTAssertEqual(try sd2.textEncoderConfig().numHiddenLayers, 23)
        let base = try ModelFolder(path: try fixture("single/sd2-tiny.ckpt"), predictionType: .epsilon)
        XCTAssertEqual(try base.unetConfig().sampleSize, 64)
        XCTAssertNotEqual(
            try sd1.fingerprint(),
            try ModelFolder(
                path: try fixture("single/sd1-tiny.safetensors"),
                config: try fixture("sd1-tiny/model")
            ).fingerprint())
    }

    /// Strict loading: a missing tensor, an unknown one, a file that is no SD checkpoint: one line naming it.
    func testStrictLoading() throws {
        let tmp = try temporaryDirectory()
        let source = try SafeTensorsFile(path: try fixture("single/sd1-tiny.safetensors"))
        var tensors = try source.names.filter { $0 != "model.diffusion_model.out.2.bias" && source.info($0)?.dtype == .F32 }
            .map { ($0, try source.floatTensor($0)) }
        try SafeTensorsWriter.write(tensors, to: tmp + "/missing.safetensors")
        tensors = try source.names.filter { source.info($0)?.dtype == .F32 }.map { ($0, try source.floatTensor($0)) }
        tensors.append(("model.diffusion_model.extra_block.weight", Tensor(zeros: [2])))
        try SafeTensorsWriter.write(tensors, to: tmp + "/extra.safetensors")
        let config = try fixture("sd1-tiny/model")
        let cases: [(String, String)] = [
            (tmp + "/missing.safetensors", "conv_out.bias"),
            (tmp + "/extra.safetensors", "model.diffusion_model.extra_block.weight"),
            (try fixture("embeddings/cat-toy.safetensors"), "not a Stable Diffusion checkpoint"),
        ]
        for (file, expected) in cases {
            let r = try pivot([
                "component", "unet", "--model", file, "--config", config, "--in", try fixture("sd1-tiny/unet.in.safetensors"),
                "--out", tmp + "/out.safetensors",
            ])
            XCTAssertEqual(r.status, 1, file)
            XCTAssertEqual(r.err.split(separator: "\n").filter { $0.hasPrefix("pivot: error: ") }.count, 1, r.err)
            XCTAssertTrue(r.err.contains(expected), "expected '\(expected)' in: \(r.err)")
        }
        let ok = try pivot(["info", "--model", try fixture("single/sd1-tiny.safetensors"), "--config", config, "--json"])
        XCTAssertTrue(ok.out.contains("\"prediction_type\":\"epsilon\""), ok.out)
        XCTAssertEqual(ok.status, 0, ok.err)
    }
}
