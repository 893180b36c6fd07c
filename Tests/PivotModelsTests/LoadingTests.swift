import Foundation
import PivotFormats
import PivotModels
import PivotTensor
import XCTest
import Pivot
import PivotLoading

/// Strict loading: every way a model folder can be wrong is a one-line error that names the problem.
final class LoadingTests: XCTestCase {
    var scratch = ""

    override func setUpWithError() throws {
        scratch = NSTemporaryDirectory() + "pivot-loading-\(UUID().uuidString)"
        let source = try XCTUnwrap(Bundle.module.path(forResource: "Fixtures/sd1-tiny/model", ofType: nil))
        try FileManager.default.copyItem(atPath: source, toPath: scratch)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: scratch)
    }

    var unetWeights: String { scratch + "/unet/diffusion_pytorch_model.safetensors" }

    /// Rewrites the UNet weights as fp32 after `edit` changes the name → tensor list.
    func rewriteUNet(_ edit: (inout [(name: String, tensor: Tensor)]) -> Void) throws {
        let file = try SafeTensorsFile(path: unetWeights)
        var tensors = try file.names.map { (name: $0, tensor: try file.floatTensor($0)) }
        edit(&tensors)
        try SafeTensorsWriter.write(tensors, to: unetWeights)
    }

    func assertLoadError(
        _ expected: [String], file: StaticString = #filePath, line: UInt = #line,
        _ load: () throws -> Void
    ) {
        XCTAssertThrowsError(try load(), file: file, line: line) { error in
            let message = String(describing: error)
            XCTAssertFalse(message.contains("\n"), "multi-line: \(message)", file: file, line: line)
            for part in expected {
                XCTAssertTrue(message.contains(part), "'\(message)' lacks '\(part)'", file: file, line: line)
            }
        }
    }

    func testUnchangedCopyLoads() throws {
        try rewriteUNet { _ in }
        XCTAssertNoThrow(try ModelFolder(path: scratch).loadUNet())
    }

    func testMissingTensorIsNamed() throws {
        try rewriteUNet { $0.removeAll { $0.name == "conv_in.bias" } }
        assertLoadError(["diffusion_pytorch_model.safetensors", "missing tensor 'conv_in.bias'"]) {
            _ = try ModelFolder(path: scratch).loadUNet()
        }
    }

    func testUnexpectedTensorIsNamed() throws {
        try rewriteUNet { $0.append((name: "extra.weight", tensor: Tensor(zeros: [2]))) }
        assertLoadError(["unexpected tensor 'extra.weight'"]) { _ = try ModelFolder(path: scratch).loadUNet() }
    }

    func testMisShapedTensorIsNamed() throws {
        try rewriteUNet { list in
            if let i = list.firstIndex(where: { $0.name == "conv_out.bias" }) {
                list[i].tensor = Tensor(zeros: [5])
            }
        }
        assertLoadError(["tensor 'conv_out.bias' has shape [5], expected [4]"]) {
            _ = try ModelFolder(path: scratch).loadUNet()
        }
    }

    func testTruncatedWeights() throws {
        let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: unetWeights))
        try handle.truncate(atOffset: 1000)
        try handle.close()
        assertLoadError(["diffusion_pytorch_model.safetensors"]) { _ = try ModelFolder(path: scratch).loadUNet() }
    }

    func testBrokenConfig() throws {
        try Data("{ not json".utf8).write(to: URL(fileURLWithPath: scratch + "/unet/config.json"))
        assertLoadError(["unet/config.json", "not valid JSON"]) { _ = try ModelFolder(path: scratch).loadUNet() }
    }

    func testUnsupportedConfigValueIsRefusedByName() throws {
        for (field, value) in [
            ("resnet_time_scale_shift", "\"scale_shift\""), ("class_embed_type", "\"timestep\""),
            ("act_fn", "\"gelu\""), ("up_block_types", "[\"UpBlock2D\", \"SimpleCrossAttnUpBlock2D\"]"),
        ] {
            let path = scratch + "/unet/config.json"
            let original = try Data(contentsOf: URL(fileURLWithPath: path))
            var json = try XCTUnwrap(JSONSerialization.jsonObject(with: original) as? [String: Any])
            json[field] = try JSONSerialization.jsonObject(with: Data(value.utf8), options: .fragmentsAllowed)
            try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
            assertLoadError(["unet/config.json", field]) { _ = try ModelFolder(path: scratch).unetConfig() }
            try original.write(to: URL(fileURLWithPath: path))
        }
    }

    func testInconsistentConfigIsRefused() throws {
        let path = scratch + "/unet/config.json"
        var json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        json["attention_head_dim"] = [8, 8, 8]  // three entries for two blocks
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
        assertLoadError(["attention_head_dim"]) { _ = try ModelFolder(path: scratch).unetConfig() }
    }

    func testTextEncoderActivationRefused() throws {
        let path = scratch + "/text_encoder/config.json"
        var json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        json["hidden_act"] = "relu"
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
        assertLoadError(["hidden_act", "relu"]) { _ = try ModelFolder(path: scratch).loadTextEncoder() }
    }

    func testMissingFolderAndWeights() throws {
        assertLoadError(["file not found"]) { _ = try ModelFolder(path: scratch + "/nope") }
        try FileManager.default.removeItem(atPath: unetWeights)
        assertLoadError(["no .safetensors weights"]) { _ = try ModelFolder(path: scratch).loadUNet() }
    }

    func testModelInfo() throws {
        let info = try ModelInfo(model: ModelFolder(path: scratch))
        XCTAssertEqual(info.nativeResolution, 32)
        XCTAssertEqual(info.predictionType, "epsilon")
        XCTAssertEqual(info.networks.map(\.name), ["text_encoder", "unet", "vae"])
        XCTAssertEqual(info.networks[1].dtypes, ["F32": info.networks[1].dtypes["F32"] ?? -1])
        XCTAssertGreaterThan(info.networks[1].parameters, 100_000)
    }

    /// Inputs of the wrong shape are refused before any arithmetic.
    func testBadComponentInputs() throws {
        let model = try ModelFolder(path: scratch)
        let input = scratch + "/in.safetensors", output = scratch + "/out.safetensors"
        try SafeTensorsWriter.write(
            [
                (name: "sample", tensor: Tensor(zeros: [1, 4, 7, 7])),
                (name: "encoder_hidden_states", tensor: Tensor(zeros: [1, 77, 32])),
            ],
            int64: [(name: "timestep", shape: [], values: [10])], to: input)
        assertLoadError(["multiple of 2"]) { try ComponentRunner.run(.unet, model: model, input: input, output: output) }
        try SafeTensorsWriter.write([(name: "sample", tensor: Tensor(zeros: [1, 4, 8, 8]))], to: input)
        assertLoadError(["missing input tensor 'encoder_hidden_states'"]) {
            try ComponentRunner.run(.unet, model: model, input: input, output: output)
        }
        try SafeTensorsWriter.write([], int64: [(name: "input_ids", shape: [1, 77], values: Array(repeating: 5000, count: 77))], to: input)
        assertLoadError(["token id 5000"]) { try ComponentRunner.run(.textEncoder, model: model, input: input, output: output) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: output))
    }
}
